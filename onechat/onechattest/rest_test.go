package onechattest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var (
	uuidRe  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	tokenRe = regexp.MustCompile(`^[1-9A-HJ-NP-Za-km-z]{24}$`)
)

const notFoundBody = `{"error":"Not Found","status":404}`

func TestInboxAndUnknownRoutes(t *testing.T) {
	s, c := newClient(t, nil)
	if !tokenRe.MatchString(s.InboxIdentifier()) || !tokenRe.MatchString(s.HMACToken()) {
		t.Errorf("inbox identifier %q / hmac token length %d are not 24-char base58 tokens", s.InboxIdentifier(), len(s.HMACToken()))
	}
	inbox := c.obj("GET", c.inboxPath(""), nil)
	wantKeys(t, "inbox", inbox, "identifier", "identity_validation_enabled", "name", "timezone",
		"working_hours", "working_hours_enabled", "csat_survey_enabled", "greeting_enabled")
	if inbox["identifier"] != s.InboxIdentifier() || inbox["identity_validation_enabled"] != false {
		t.Errorf("inbox = %v", inbox)
	}

	src, _ := c.session(nil)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/public/api/v1/inboxes/nosuchinbox"},
		{"POST", "/public/api/v1/inboxes/nosuchinbox/contacts"},
		{"GET", "/public/api/v1/inboxes"},                              // index: not implemented
		{"GET", c.inboxPath("/contacts")},                              // no contacts index
		{"DELETE", c.inboxPath("/contacts/" + src)},                    // no destroy
		{"POST", c.inboxPath("/contacts/" + src)},                      // no such route
		{"GET", c.inboxPath("/contacts/nosuchsource")},                 // unknown source_id
		{"GET", c.inboxPath("/contacts/" + src + "/conversations/99")}, // unknown conversation
		{"GET", c.inboxPath("/contacts/" + src + "/conversations/abc")},
		{"POST", c.inboxPath("/contacts/" + src + "/conversations/1/reopen")},
		{"GET", "/public/api/v1/widget/config"},
		{"GET", "/nothing/here"},
	} {
		status, body, _ := c.call(tc.method, tc.path, nil)
		if status != http.StatusNotFound || string(body) != notFoundBody {
			t.Errorf("%s %s = %d %s, want 404 %s", tc.method, tc.path, status, body, notFoundBody)
		}
	}

	// A dot ends a dynamic segment: ".json" is a format, a dotted source_id does not match.
	if status, _, _ := c.call("GET", c.inboxPath("/contacts/"+src+".json"), nil); status != http.StatusOK {
		t.Errorf("GET contact.json = %d, want 200", status)
	}
	dotted, _ := c.session(map[string]any{"source_id": "tg.42"})
	if dotted != "tg.42" {
		t.Fatalf("source_id = %q", dotted)
	}
	if status, _, _ := c.call("GET", c.inboxPath("/contacts/tg.42/conversations"), nil); status != http.StatusNotFound {
		t.Errorf("dotted source_id in the middle of a path = %d, want 404 as in Rails", status)
	}

	status, body, _ := c.raw("POST", c.inboxPath("/contacts"), "application/json", strings.NewReader("{not json"))
	if status != http.StatusBadRequest || string(body) != `{"error":"Bad Request","status":400}` {
		t.Errorf("malformed JSON = %d %s", status, body)
	}
}

func TestContactCreate(t *testing.T) {
	s, c := newClient(t, nil)
	m := c.obj("POST", c.inboxPath("/contacts"), map[string]any{
		"identifier": "telegram:1", "name": "Alice", "email": "Alice@Example.com",
		"custom_attributes": map[string]any{"plan": "pro"},
	})
	wantKeys(t, "contact", m, "source_id", "pubsub_token", "id", "name", "email", "phone_number")
	if !uuidRe.MatchString(m["source_id"].(string)) || !tokenRe.MatchString(m["pubsub_token"].(string)) {
		t.Errorf("source_id %v / pubsub_token %v have the wrong shape", m["source_id"], m["pubsub_token"])
	}
	if m["email"] != "alice@example.com" || m["phone_number"] != nil || m["name"] != "Alice" {
		t.Errorf("contact = %v", m)
	}
	ct, ok := s.ContactByIdentifier("telegram:1")
	if !ok || ct.CustomAttributes["plan"] != "pro" || float64(ct.ID) != m["id"] {
		t.Fatalf("stored contact = %+v, %v", ct, ok)
	}

	// The same identifier reuses the contact without updating it, in a new session.
	again := c.obj("POST", c.inboxPath("/contacts"), map[string]any{"identifier": "telegram:1", "name": "Bob"})
	if again["id"] != m["id"] || again["name"] != "Alice" || again["source_id"] == m["source_id"] || again["pubsub_token"] == m["pubsub_token"] {
		t.Errorf("re-create = %v, first = %v", again, m)
	}
	byEmail := c.obj("POST", c.inboxPath("/contacts"), map[string]any{"email": "ALICE@example.com"})
	if byEmail["id"] != m["id"] {
		t.Errorf("email lookup made contact %v, want %v", byEmail["id"], m["id"])
	}
	if got := len(s.ContactInboxes(ct.ID)); got != 3 {
		t.Errorf("sessions = %d, want 3", got)
	}

	// A client source_id is honoured, and an existing one returns that session unchanged.
	own := c.obj("POST", c.inboxPath("/contacts"), map[string]any{"source_id": "tg-7", "identifier": "telegram:7"})
	same := c.obj("POST", c.inboxPath("/contacts"), map[string]any{"source_id": "tg-7", "identifier": "telegram:other"})
	if own["source_id"] != "tg-7" || same["pubsub_token"] != own["pubsub_token"] || same["id"] != own["id"] {
		t.Errorf("own source_id: %v then %v", own, same)
	}
	if _, ok := s.ContactByIdentifier("telegram:other"); ok {
		t.Error("an existing source_id created a contact")
	}

	// No name: a Haikunator-style one.
	anon := c.obj("POST", c.inboxPath("/contacts"), nil)
	if !regexp.MustCompile(`^[a-z]+-[a-z]+-\d+$`).MatchString(anon["name"].(string)) {
		t.Errorf("generated name %q", anon["name"])
	}

	// Form bodies with Rack nested keys work too.
	ctype, body := formBody(url.Values{"identifier": {"discord:9"}, "custom_attributes[tier]": {"gold"}, "phone_number": {"+15551234567"}})
	status, raw, _ := c.raw("POST", c.inboxPath("/contacts"), ctype, body)
	if status != http.StatusOK {
		t.Fatalf("form create = %d %s", status, raw)
	}
	if d, _ := s.ContactByIdentifier("discord:9"); d.CustomAttributes["tier"] != "gold" || d.Phone != "+15551234567" {
		t.Errorf("form contact = %+v", d)
	}

	for _, tc := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"email": "not-an-email"}, `{"attributes":["email"],"message":"Email Invalid email"}`},
		{map[string]any{"phone_number": "5551234"}, `{"attributes":["phone_number"],"message":"Phone number should be in e164 format"}`},
		{map[string]any{"source_id": ""}, `{"attributes":["source_id"],"message":"Source can't be blank"}`},
	} {
		status, b, _ := c.call("POST", c.inboxPath("/contacts"), tc.body)
		if status != http.StatusUnprocessableEntity || string(b) != tc.want {
			t.Errorf("create %v = %d %s, want 422 %s", tc.body, status, b, tc.want)
		}
	}
}

func TestContactShowAndUpdate(t *testing.T) {
	s, c := newClient(t, nil)
	src, tok := c.session(map[string]any{"identifier": "telegram:1", "name": "Alice", "custom_attributes": map[string]any{"a": map[string]any{"x": 1}}})
	show := c.obj("GET", c.inboxPath("/contacts/"+src), nil)
	wantKeys(t, "show", show, "source_id", "pubsub_token", "id", "name", "email", "phone_number")
	if show["pubsub_token"] != tok {
		t.Errorf("show token differs")
	}

	up := c.obj("PATCH", c.inboxPath("/contacts/"+src), map[string]any{
		"name": "Alice B", "identifier": "telegram:changed", "email": "",
		"custom_attributes": map[string]any{"a": map[string]any{"y": 2}, "b": true},
	})
	wantKeys(t, "update", up, "id", "name", "email", "phone_number", "account_id", "created_at", "updated_at",
		"additional_attributes", "identifier", "custom_attributes", "last_activity_at", "contact_type",
		"middle_name", "last_name", "location", "country_code", "blocked")
	if up["name"] != "Alice B" || up["identifier"] != "telegram:1" || up["email"] != nil {
		t.Errorf("update = %v", up)
	}
	if got := fmt.Sprint(up["custom_attributes"]); got != "map[a:map[x:1 y:2] b:true]" {
		t.Errorf("custom_attributes not deep-merged: %s", got)
	}
	if put := c.obj("PUT", c.inboxPath("/contacts/"+src), map[string]any{"name": "Alice C"}); put["name"] != "Alice C" {
		t.Errorf("PUT = %v", put)
	}

	// An email that belongs to another contact merges this one into it.
	other := c.obj("POST", c.inboxPath("/contacts"), map[string]any{"identifier": "telegram:2", "email": "two@example.com"})
	merged := c.obj("PATCH", c.inboxPath("/contacts/"+src), map[string]any{"email": "two@example.com"})
	if merged["id"] != other["id"] || merged["identifier"] != "telegram:2" {
		t.Errorf("merge returned %v, want contact %v", merged, other["id"])
	}
	if _, ok := s.ContactByIdentifier("telegram:1"); ok {
		t.Error("the merged contact still exists")
	}
	if again := c.obj("GET", c.inboxPath("/contacts/"+src), nil); again["id"] != other["id"] || again["pubsub_token"] != tok {
		t.Errorf("session after merge = %v", again)
	}

	if status, b, _ := c.call("PATCH", c.inboxPath("/contacts/"+src), map[string]any{"phone_number": "12"}); status != http.StatusUnprocessableEntity {
		t.Errorf("bad phone on update = %d %s", status, b)
	}
}

func TestHMAC(t *testing.T) {
	// §5.1 test vectors.
	v := New(&Options{HMACToken: "wyHVRZzzJhjPMKR2h7LpeJVy", Logf: t.Logf})
	if got := v.IdentifierHash("telegram:123456789"); got != "0d6ed93ac5e5ffff4556c651ae81ff369b37461ddccf6864900147d0a23f5d3d" {
		t.Errorf("hash = %s", got)
	}
	if got := v.IdentifierHash(""); got != "42a89748822f8b27d139fc9bcc3d0bf8c71e7908dd2257763e66172ccf2206d9" {
		t.Errorf("empty hash = %s", got)
	}
	v.Close()

	const ident = "telegram:5"
	type pair int
	const (
		none pair = iota
		valid
		invalid
		otherIdent // a valid pair for another identifier
	)
	query := func(s *Server, p pair) (string, map[string]any) {
		switch p {
		case valid:
			return "?identifier=" + ident + "&identifier_hash=" + s.IdentifierHash(ident), map[string]any{"identifier": ident, "identifier_hash": s.IdentifierHash(ident)}
		case invalid:
			return "?identifier=" + ident + "&identifier_hash=00ff", map[string]any{"identifier": ident, "identifier_hash": "00ff"}
		case otherIdent:
			return "?identifier=x&identifier_hash=" + s.IdentifierHash("x"), map[string]any{"identifier": "x", "identifier_hash": s.IdentifierHash("x")}
		}
		return "", map[string]any{"identifier": ident}
	}
	for _, tc := range []struct {
		mandatory, strict bool
		pair              pair
		create, show      int
		verified          bool
	}{
		{false, false, none, 200, 200, false},
		{false, false, valid, 200, 200, true},
		{false, false, invalid, 500, 500, false},
		{false, false, otherIdent, 200, 200, true}, // upstream's binding weakness
		{true, false, none, 500, 500, false},
		{true, false, valid, 200, 200, true},
		{true, false, invalid, 500, 500, false},
		{false, true, invalid, 401, 401, false},
		{false, true, otherIdent, 200, 401, false},
		{true, true, none, 401, 401, false},
		{true, true, valid, 200, 200, true},
	} {
		name := fmt.Sprintf("mandatory=%v strict=%v pair=%d", tc.mandatory, tc.strict, tc.pair)
		t.Run(name, func(t *testing.T) {
			s, c := newClient(t, &Options{HMACMandatory: tc.mandatory, StrictHMAC: tc.strict})
			q, body := query(s, tc.pair)
			status, b, _ := c.call("POST", c.inboxPath("/contacts"), body)
			if status != tc.create {
				t.Fatalf("create = %d %s, want %d", status, b, tc.create)
			}
			if status == 500 && string(b) != `{"error":"Internal Server Error","status":500}` {
				t.Errorf("500 body = %s", b)
			}
			// A session to show: made with a valid pair so it exists whatever the mode.
			_, good := query(s, valid)
			src, _ := c.session(good)
			if ci, _ := s.ContactInboxBySourceID(src); ci.HMACVerified {
				t.Fatal("create verified the session")
			}
			status, b, _ = c.call("GET", c.inboxPath("/contacts/"+src+q), nil)
			if status != tc.show {
				t.Fatalf("show = %d %s, want %d", status, b, tc.show)
			}
			if ci, _ := s.ContactInboxBySourceID(src); ci.HMACVerified != tc.verified {
				t.Errorf("verified = %v, want %v", ci.HMACVerified, tc.verified)
			}
			// Update behaves like show; conversation routes never check HMAC.
			if status, _, _ := c.call("PATCH", c.inboxPath("/contacts/"+src), body); status != tc.show {
				t.Errorf("update = %d, want %d", status, tc.show)
			}
			if status, _, _ := c.call("POST", c.inboxPath("/contacts/"+src+"/conversations"), nil); status != 200 {
				t.Errorf("conversation create = %d, want 200", status)
			}
		})
	}
}

func TestConversations(t *testing.T) {
	s, c := newClient(t, nil)
	src, _ := c.session(map[string]any{"identifier": "telegram:1"})
	conv := c.obj("POST", c.inboxPath("/contacts/"+src+"/conversations"), map[string]any{"custom_attributes": map[string]any{"k": "v"}})
	wantKeys(t, "conversation", conv, "id", "uuid", "inbox_id", "contact_last_seen_at", "status", "agent_last_seen_at", "messages", "contact")
	id := int64(conv["id"].(float64))
	if conv["status"] != "open" || !uuidRe.MatchString(conv["uuid"].(string)) || len(conv["messages"].([]any)) != 0 {
		t.Errorf("conversation = %v", conv)
	}
	if got, _ := s.Conversation(id); got.CustomAttributes["k"] != "v" {
		t.Errorf("custom attributes not stored: %+v", got)
	}
	if show := c.obj("GET", c.convPath(src, id, ""), nil); show["id"] != conv["id"] {
		t.Errorf("show = %v", show)
	}

	// A second session of the same contact sees nothing until verified.
	src2, _ := c.session(map[string]any{"identifier": "telegram:1"})
	id2 := c.conversation(src2)
	if l := c.list("GET", c.inboxPath("/contacts/"+src2+"/conversations"), nil); len(l) != 1 {
		t.Errorf("unverified index has %d conversations, want 1", len(l))
	}
	if status, _, _ := c.call("GET", c.convPath(src2, id, ""), nil); status != 404 {
		t.Errorf("other session's conversation = %d, want 404", status)
	}
	if status, _, _ := c.call("GET", c.convPath(src2, id, "/messages"), nil); status != 404 {
		t.Errorf("other session's messages = %d, want 404", status)
	}
	// The pair in a GET's JSON body, as the bridge sends it (Rails merges body params into a
	// GET's params like the query's).
	c.obj("GET", c.inboxPath("/contacts/"+src2), map[string]any{"identifier": "telegram:1", "identifier_hash": s.IdentifierHash("telegram:1")})
	if l := c.list("GET", c.inboxPath("/contacts/"+src2+"/conversations"), nil); len(l) != 2 {
		t.Errorf("verified index has %d conversations, want 2", len(l))
	}
	if status, _, _ := c.call("GET", c.convPath(src2, id, ""), nil); status != 200 {
		t.Errorf("verified session, contact's conversation = %d, want 200", status)
	}

	// toggle_status only resolves, and is idempotent.
	for range 2 {
		if r := c.obj("POST", c.convPath(src, id, "/toggle_status"), nil); r["status"] != "resolved" {
			t.Errorf("toggle_status = %v", r["status"])
		}
	}
	// typing and last-seen answer an empty 200.
	for _, path := range []string{"/toggle_typing?typing_status=on", "/update_last_seen"} {
		status, b, _ := c.call("POST", c.convPath(src2, id2, path), nil)
		if status != 200 || len(b) != 0 {
			t.Errorf("%s = %d %q", path, status, b)
		}
	}
	if got, _ := s.Conversation(id2); !got.ContactTyping || got.ContactLastSeenAt.IsZero() {
		t.Errorf("typing/last seen not recorded: %+v", got)
	}
	c.call("POST", c.convPath(src2, id2, "/toggle_typing"), map[string]any{"typing_status": "off"})
	if got, _ := s.Conversation(id2); got.ContactTyping {
		t.Error("typing off not recorded")
	}
}

func TestLockToSingleConversation(t *testing.T) {
	s, c := newClient(t, &Options{LockToSingleConversation: true})
	src, _ := c.session(nil)
	first := c.conversation(src)
	s.Resolve(first)
	if again := c.conversation(src); again != first {
		t.Errorf("locked inbox made conversation %d, want %d", again, first)
	}
	if got, _ := s.Conversation(first); got.Status != "resolved" {
		t.Errorf("status = %s, want the old conversation unchanged", got.Status)
	}
}

func TestMessages(t *testing.T) {
	s, c := newClient(t, &Options{MessageFloodLimit: 40})
	src, _ := c.session(map[string]any{"identifier": "telegram:1", "name": "Alice"})
	conv := c.conversation(src)

	m := c.obj("POST", c.convPath(src, conv, "/messages"), map[string]any{"content": "hello", "echo_id": "e-1", "private": true, "message_type": "outgoing"})
	wantKeys(t, "message", m, "id", "content", "message_type", "content_type", "content_attributes", "created_at", "conversation_id", "sender")
	if m["message_type"] != 0.0 || m["content"] != "hello" || m["content_type"] != "text" || m["conversation_id"] != float64(conv) {
		t.Errorf("message = %v", m)
	}
	sender := m["sender"].(map[string]any)
	wantKeys(t, "contact sender", sender, "additional_attributes", "custom_attributes", "email", "id", "identifier", "name", "phone_number", "thumbnail", "blocked", "type")
	if sender["type"] != "contact" || sender["identifier"] != "telegram:1" {
		t.Errorf("sender = %v", sender)
	}
	stored := s.Messages(conv)
	if len(stored) != 1 || stored[0].EchoID != "e-1" || stored[0].Private || stored[0].SenderType != "Contact" {
		t.Errorf("stored = %+v", stored)
	}
	empty := c.obj("POST", c.convPath(src, conv, "/messages"), nil)
	if v, present := empty["content"]; !present || v != nil {
		t.Errorf("empty message content = %v (present %v), want null", v, present)
	}

	s.PrivateNote(conv, "internal")
	s.ActivityMessage(conv, "Conversation was resolved")
	tmpl := s.TemplateMessage(conv, "Welcome")
	for i := range 22 {
		s.AgentReply(conv, fmt.Sprintf("reply %d", i))
	}
	page := c.list("GET", c.convPath(src, conv, "/messages"), nil)
	if len(page) != 20 {
		t.Fatalf("page has %d messages, want 20", len(page))
	}
	ids := func(l []any) []int64 {
		var out []int64
		for _, e := range l {
			out = append(out, int64(e.(map[string]any)["id"].(float64)))
		}
		return out
	}
	got := ids(page)
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("page not ascending: %v", got)
		}
	}
	if last := page[19].(map[string]any); last["content"] != "reply 21" {
		t.Errorf("last = %v, want the latest", last["content"])
	}
	agent := page[19].(map[string]any)
	wantKeys(t, "agent message", agent, "id", "content", "message_type", "content_type", "content_attributes", "created_at", "conversation_id", "sender")
	if s := agent["sender"].(map[string]any); s["type"] != "user" || s["name"] != "Agent Smith" {
		t.Errorf("agent sender = %v", s)
	}
	// after= is ignored; before= pages back.
	if again := ids(c.list("GET", c.convPath(src, conv, "/messages?after="+itoa(got[0])), nil)); fmt.Sprint(again) != fmt.Sprint(got) {
		t.Errorf("after= changed the page: %v", again)
	}
	older := c.list("GET", c.convPath(src, conv, "/messages?before="+itoa(got[0])), nil)
	if len(older) != 5 {
		t.Fatalf("older page has %d, want 5 (2 contact, template, 2 replies)", len(older))
	}
	for _, e := range older {
		mm := e.(map[string]any)
		if mm["content"] == "internal" || mm["message_type"] == 2.0 {
			t.Errorf("private or activity message listed: %v", mm)
		}
		if mm["id"] == float64(tmpl.ID) {
			wantKeys(t, "template", mm, "id", "content", "message_type", "content_type", "content_attributes", "created_at", "conversation_id")
		}
	}
	conversation := c.obj("GET", c.convPath(src, conv, ""), nil)
	if n := len(conversation["messages"].([]any)); n != 25 {
		t.Errorf("conversation embeds %d messages, want the 25 chat messages", n)
	}
	if all := s.Messages(conv); len(all) != 27 {
		t.Errorf("Messages = %d, want 27 including note and activity", len(all))
	}

	long := strings.Repeat("é", maxContentLength+1)
	status, b, _ := c.call("POST", c.convPath(src, conv, "/messages"), map[string]any{"content": long})
	if status != 422 || string(b) != `{"attributes":["content"],"message":"Content is too long (maximum is 150000 characters)"}` {
		t.Errorf("long content = %d %s", status, b)
	}
	if status, _, _ := c.call("POST", c.convPath(src, conv, "/messages"), map[string]any{"content": strings.Repeat("é", maxContentLength)}); status != 200 {
		t.Errorf("content at the limit = %d", status)
	}
	// 28 messages so far in this minute; the limit is 40.
	for range 12 {
		c.obj("POST", c.convPath(src, conv, "/messages"), map[string]any{"content": "x"})
	}
	status, b, _ = c.call("POST", c.convPath(src, conv, "/messages"), map[string]any{"content": "x"})
	if status != 422 || string(b) != `{"attributes":["base"],"message":"Too many messages"}` {
		t.Errorf("flood = %d %s", status, b)
	}
}

func TestMessageCreateReopensAndUpdate(t *testing.T) {
	s, c := newClient(t, nil)
	src, _ := c.session(nil)
	conv := c.conversation(src)
	s.Resolve(conv)
	c.obj("POST", c.convPath(src, conv, "/messages"), map[string]any{"content": "back again"})
	if got, _ := s.Conversation(conv); got.Status != "open" {
		t.Errorf("status = %s, want open after a contact message", got.Status)
	}

	sel := s.PostAgentMessage(conv, AgentMessage{Content: "Pick", ContentType: "input_select", Items: []map[string]any{{"title": "A", "value": "a"}}})
	up := c.obj("PATCH", c.convPath(src, conv, "/messages/"+itoa(sel.ID)), map[string]any{
		"submitted_values": []any{map[string]any{"title": "A", "value": "a", "evil": "x"}},
	})
	if got := fmt.Sprint(up["content_attributes"].(map[string]any)["submitted_values"]); got != "[map[title:A value:a]]" {
		t.Errorf("submitted_values = %s", got)
	}
	if m, _ := s.Message(sel.ID); fmt.Sprint(m.ContentAttributes["items"]) != "[map[title:A value:a]]" {
		t.Errorf("items lost: %v", m.ContentAttributes)
	}
	if status, _, _ := c.call("PUT", c.convPath(src, conv, "/messages/999999"), map[string]any{"submitted_values": []any{}}); status != 404 {
		t.Errorf("unknown message = %d", status)
	}
}

func TestAttachments(t *testing.T) {
	s, c := newClient(t, nil)
	src, _ := c.session(nil)
	conv := c.conversation(src)
	parts := []part{
		{"attachments[]", "a.jpg", "image/jpeg", []byte("jpeg-bytes")},
		{"attachments[]", "b.svg", "image/svg+xml", []byte("<svg/>")},
		{"attachments[]", "c.mp4", "video/mp4", []byte("mp4")},
		{"attachments[]", "d.ogg", "audio/ogg", []byte("ogg")},
		{"attachments[]", "e.pdf", "application/pdf", []byte("pdf")},
		{"attachments[]", "f.bin", "", []byte("bin")}, // Go's default: application/octet-stream
	}
	ctype, body := multipartBody(t, map[string]string{"content": "see attached", "echo_id": "e-9"}, parts)
	status, raw, _ := c.raw("POST", c.convPath(src, conv, "/messages"), ctype, body)
	if status != 200 {
		t.Fatalf("multipart create = %d %s", status, raw)
	}
	m := decode(t, raw).(map[string]any)
	atts := m["attachments"].([]any)
	want := []string{"image", "file", "video", "audio", "file", "file"}
	if len(atts) != len(want) {
		t.Fatalf("attachments = %v", atts)
	}
	for i, a := range atts {
		am := a.(map[string]any)
		if am["file_type"] != want[i] {
			t.Errorf("%s: file_type %v, want %s", parts[i].filename, am["file_type"], want[i])
		}
		base := []string{"id", "message_id", "file_type", "account_id", "extension", "data_url", "thumb_url", "file_size", "width", "height"}
		if want[i] == "audio" {
			base = append(base, "transcribed_text")
		}
		wantKeys(t, "attachment", am, base...)
		if (want[i] == "image") != (am["thumb_url"] != "") {
			t.Errorf("%s: thumb_url %q", parts[i].filename, am["thumb_url"])
		}
		dataURL := am["data_url"].(string)
		if !strings.HasPrefix(dataURL, s.URL()+"/") {
			t.Errorf("data_url %q is not absolute on the fake", dataURL)
		}
		status, b, h := c.raw("GET", dataURL, "", nil)
		if status != http.StatusFound || h.Get("Location") == "" {
			t.Fatalf("data_url = %d %s", status, b)
		}
		status, b, _ = c.raw("GET", h.Get("Location"), "", nil)
		if status != 200 || string(b) != string(parts[i].data) {
			t.Errorf("redirect target = %d %q, want %q", status, b, parts[i].data)
		}
	}
	stored := s.Messages(conv)[0]
	if stored.EchoID != "e-9" || len(stored.Attachments) != 6 || string(stored.Attachments[0].Data) != "jpeg-bytes" {
		t.Errorf("stored = %+v", stored)
	}

	// Only attachments[] works: a single "attachments" part makes Rails raise.
	ctype, body = multipartBody(t, nil, []part{{"attachments", "a.jpg", "image/jpeg", []byte("x")}})
	if status, _, _ := c.raw("POST", c.convPath(src, conv, "/messages"), ctype, body); status != 500 {
		t.Errorf("attachments without [] = %d, want 500", status)
	}
	if status, _, _ := c.raw("GET", s.URL()+storagePrefix+"blobs/redirect/nosuchkey/a.jpg", "", nil); status != 404 {
		t.Errorf("unknown blob = %d", status)
	}
}

func TestDeleteContact(t *testing.T) {
	s, c := newClient(t, nil)
	src, _ := c.session(map[string]any{"identifier": "telegram:1"})
	conv := c.conversation(src)
	ct, _ := s.ContactByIdentifier("telegram:1")
	s.DeleteContact(ct.ID)
	for _, p := range []string{c.inboxPath("/contacts/" + src), c.convPath(src, conv, ""), c.convPath(src, conv, "/messages")} {
		if status, _, _ := c.call("GET", p, nil); status != 404 {
			t.Errorf("GET %s after delete = %d", p, status)
		}
	}
	if _, ok := s.Conversation(conv); ok {
		t.Error("conversation survived")
	}
}

func TestFaultsAndRequestLog(t *testing.T) {
	s, c := newClient(t, nil)
	path := c.inboxPath("")
	s.FailNext(2, 500)
	for range 2 {
		status, b, _ := c.call("GET", path, nil)
		if status != 500 || string(b) != `{"error":"Internal Server Error","status":500}` {
			t.Errorf("FailNext 500 = %d %s", status, b)
		}
	}
	s.FailNext(1, 502)
	if status, b, h := c.call("GET", path, nil); status != 502 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Errorf("FailNext 502 = %d %s %v", status, b, h)
	}
	s.Throttle(1)
	if status, b, h := c.call("POST", c.inboxPath("/contacts"), nil); status != 429 || string(b) != "Retry later\n" || h.Get("Content-Type") != "text/plain" || h.Get("Retry-After") != "" {
		t.Errorf("throttle = %d %q %v", status, b, h)
	}
	if len(s.Contacts()) != 0 {
		t.Error("a throttled create changed state")
	}
	if status, _, _ := c.call("GET", path, nil); status != 200 {
		t.Errorf("after faults = %d", status)
	}
	var statuses []int
	for _, r := range s.Requests() {
		statuses = append(statuses, r.Status)
	}
	if fmt.Sprint(statuses) != "[500 500 502 429 200]" {
		t.Errorf("request log statuses = %v", statuses)
	}
	if r := s.Requests()[3]; r.Method != "POST" || r.Path != c.inboxPath("/contacts") {
		t.Errorf("request log entry = %+v", r)
	}
}

func TestWait(t *testing.T) {
	s, c := newClient(t, nil)
	done := make(chan error, 1)
	go func() {
		done <- s.Wait(ctxT(t), func() bool { _, ok := s.ContactByIdentifier("telegram:1"); return ok })
	}()
	c.session(map[string]any{"identifier": "telegram:1"})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Wait(ctx, func() bool { return false }); err == nil {
		t.Error("Wait with a cancelled context returned nil")
	}
}

func TestStandaloneNew(t *testing.T) {
	s := New(&Options{Logf: t.Logf})
	hs := httptest.NewServer(s.Handler())
	defer func() { hs.Close(); s.Close() }()
	c := &client{t: t, s: s, http: hs.Client(), base: hs.URL}
	src, _ := c.session(nil)
	if s.URL() != hs.URL {
		t.Errorf("URL = %q, want %q from the first request", s.URL(), hs.URL)
	}
	if _, ok := s.ContactInboxBySourceID(src); !ok {
		t.Error("session not stored")
	}
}
