package onechattest

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFailNextStatuses(t *testing.T) {
	for _, tc := range []struct {
		status   int
		wantBody string
	}{
		{500, `{"error":"Internal Server Error","status":500}`},
		{502, "Bad Gateway\n"},
		{503, "Service Unavailable\n"},
		{504, "Gateway Timeout\n"},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			s, c := newClient(t, nil)
			s.FailNext(2, tc.status)
			for range 2 {
				if status, b, _ := c.call("GET", c.inboxPath(""), nil); status != tc.status || string(b) != tc.wantBody {
					t.Errorf("got %d %q, want %d %q", status, b, tc.status, tc.wantBody)
				}
			}
			if status, _, _ := c.call("GET", c.inboxPath(""), nil); status != 200 {
				t.Errorf("third call = %d, want 200", status)
			}
		})
	}
}

func TestDuplicateEvents(t *testing.T) {
	s, rc := newClient(t, nil)
	src, tok := rc.session(nil)
	conv := rc.conversation(src)
	c := dialCable(t, s)
	c.subscribe(tok)
	s.DuplicateEvents(1)
	dup := s.AgentReply(conv, "twice")
	once := s.AgentReply(conv, "once")
	var got []float64
	for len(got) < 3 {
		_, _, d := c.event("message.created")
		got = append(got, d["id"].(float64))
	}
	want := []float64{float64(dup.ID), float64(dup.ID), float64(once.ID)}
	if got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("ids = %v, want %v", got, want)
	}
}

func TestReorderEvents(t *testing.T) {
	s, rc := newClient(t, nil)
	src, tok := rc.session(nil)
	conv := rc.conversation(src)
	c := dialCable(t, s)
	c.subscribe(tok)
	s.ReorderEvents(1)
	first := s.AgentReply(conv, "first") // held back; also emits conversation.updated
	if _, _, d := c.event("message.created", "conversation.updated"); d["id"] == float64(first.ID) {
		t.Fatalf("the held message arrived first")
	}
	if _, _, d := c.event("message.created"); d["id"] != float64(first.ID) {
		t.Errorf("message.created = %v, want the held %d after its successor", d["id"], first.ID)
	}

	// A held event with no successor comes with FlushEvents.
	s.ReorderEvents(1)
	last := s.AgentReply(conv, "last")
	s.FlushEvents()
	if _, _, d := c.event("message.created"); d["id"] != float64(last.ID) {
		t.Errorf("flushed message = %v, want %d", d["id"], last.ID)
	}
}

func TestDelayEvents(t *testing.T) {
	s, rc := newClient(t, nil)
	src, tok := rc.session(nil)
	conv := rc.conversation(src)
	c := dialCable(t, s)
	c.subscribe(tok)
	const delay = 50 * time.Millisecond
	s.DelayEvents(delay)
	start := time.Now()
	m := s.AgentReply(conv, "late")
	if _, _, d := c.event("message.created"); d["id"] != float64(m.ID) {
		t.Fatalf("got %v", d["id"])
	}
	if el := time.Since(start); el < delay {
		t.Errorf("event arrived after %s, want at least %s", el, delay)
	}
	// A pending delivery does not outlive the server (goleak checks the timer goroutine).
	s.DelayEvents(time.Hour)
	s.AgentReply(conv, "never")
	s.Close()
}

func TestRejectAndIgnoreSubscriptions(t *testing.T) {
	s, rc := newClient(t, nil)
	_, tok := rc.session(nil)
	c := dialCable(t, s)
	id := roomIdentifier(tok)

	s.RejectSubscriptions(true)
	c.command("subscribe", id, "")
	if f := c.frame(); f["type"] != "reject_subscription" || f["identifier"] != id {
		t.Fatalf("frame = %v, want reject_subscription", f)
	}
	if n := s.Subscribed(tok); n != 0 {
		t.Errorf("Subscribed = %d after a reject", n)
	}

	// Ignored: nothing comes back, and the identifier stays registered (rough edge 21), so a
	// second subscribe on the same socket is silent even after the fault ends.
	s.RejectSubscriptions(false)
	s.IgnoreSubscriptions(true)
	c.command("subscribe", id, "")
	// End the fault only once the server has read that subscribe; ending it earlier would let
	// the subscribe be confirmed instead.
	registered := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for conn := range s.conns {
			if _, ok := conn.subs[id]; ok {
				return true
			}
		}
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Wait(ctx, registered); err != nil {
		t.Fatal(err)
	}
	s.IgnoreSubscriptions(false)
	c.command("subscribe", id, "")
	c.command("unsubscribe", id, "")
	c.command("subscribe", id, "")
	if f := c.frame(); f["type"] != "confirm_subscription" {
		t.Fatalf("first frame after ignore/unsubscribe/subscribe = %v, want confirm", f)
	}
	if n := s.Subscribed(tok); n != 1 {
		t.Errorf("Subscribed = %d", n)
	}
}

func TestActiveBotBlockedAndLegacyRoutes(t *testing.T) {
	s, c := newClient(t, &Options{ActiveBot: true, MissingRoutes: []string{RouteConversationShow, RouteToggleTyping}})
	src, _ := c.session(map[string]any{"identifier": "telegram:7"})
	conv := c.obj("POST", c.inboxPath("/contacts/"+src+"/conversations"), nil)
	if conv["status"] != "pending" {
		t.Errorf("with an active bot: status %v, want pending", conv["status"])
	}
	id := int64(conv["id"].(float64))
	s.Resolve(id)
	c.obj("POST", c.convPath(src, id, "/messages"), map[string]any{"content": "again"})
	if got, _ := s.Conversation(id); got.Status != "pending" {
		t.Errorf("reopened with a bot: %s, want pending", got.Status)
	}

	// Missing routes answer exactly like an unknown record.
	for _, path := range []string{c.convPath(src, id, ""), c.convPath(src, id+100, "")} {
		if status, b, _ := c.call("GET", path, nil); status != 404 || string(b) != `{"error":"Not Found","status":404}` {
			t.Errorf("GET show: %d %s", status, b)
		}
	}
	if status, _, _ := c.call("POST", c.convPath(src, id, "/toggle_typing"), map[string]any{"typing_status": "on"}); status != 404 {
		t.Errorf("toggle_typing = %d, want 404", status)
	}
	if status, _, _ := c.call("POST", c.convPath(src, id, "/update_last_seen"), nil); status != 200 {
		t.Errorf("update_last_seen = %d, want 200 (not removed)", status)
	}

	ct, _ := s.ContactByIdentifier("telegram:7")
	s.Block(ct.ID)
	blocked := c.obj("POST", c.inboxPath("/contacts/"+src+"/conversations"), nil)
	if blocked["status"] != "resolved" {
		t.Errorf("blocked contact's conversation = %v, want resolved", blocked["status"])
	}
	if b := blocked["contact"].(map[string]any)["blocked"]; b != true {
		t.Errorf("contact.blocked = %v", b)
	}
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestHeldSurveyComesAfterTheStatusEvents: with HoldSurveys, a resolve's status events come
// and a read finds no survey; ReleaseSurveys posts it with its message.created, once per
// conversation, and not for a conversation reopened meanwhile.
func TestHeldSurveyComesAfterTheStatusEvents(t *testing.T) {
	s, c := newClient(t, &Options{CSATSurveyEnabled: true})
	src, tok := c.session(nil)
	conv := c.conversation(src)
	other := c.conversation(src)
	cab := dialCable(t, s)
	cab.subscribe(tok)

	s.HoldSurveys(true)
	c.obj("POST", c.convPath(src, conv, "/toggle_status"), nil)
	s.Resolve(other)
	s.Reopen(other)
	for _, want := range []string{"conversation.status_changed", "conversation.updated"} {
		if _, name, _ := cab.event(); name != want {
			t.Fatalf("event %s after the resolve, want %s", name, want)
		}
	}
	for _, m := range s.Messages(conv) {
		if m.ContentType == "input_csat" {
			t.Fatalf("survey %+v posted while held", m)
		}
	}
	s.ReleaseSurveys()
	var got []string
	for range 5 { // the other conversation's resolve and reopen, then the survey
		_, name, d := cab.event()
		got = append(got, name)
		if name == "message.created" {
			if d["content_type"] != "input_csat" || d["conversation_id"] != float64(conv) {
				t.Errorf("released survey event %v, want conversation %d's survey", d, conv)
			}
			break
		}
	}
	if len(got) != 5 || got[4] != "message.created" {
		t.Errorf("events %v, want the survey's message.created after the other conversation's four", got)
	}
	for id, want := range map[int64]int{conv: 1, other: 0} {
		n := 0
		for _, m := range s.Messages(id) {
			if m.ContentType == "input_csat" {
				n++
			}
		}
		if n != want {
			t.Errorf("conversation %d has %d surveys, want %d", id, n, want)
		}
	}
	// No longer held, a resolve posts its survey at once.
	s.HoldSurveys(false)
	s.Resolve(other)
	if n := len(s.Messages(other)); n != 1 {
		t.Errorf("conversation %d has %d messages after its resolve, want its survey", other, n)
	}
}

func TestCSATSurvey(t *testing.T) {
	clk := &clock{now: time.Now()}
	s, c := newClient(t, &Options{CSATSurveyEnabled: true, Now: clk.Now})
	if in := c.obj("GET", c.inboxPath(""), nil); in["csat_survey_enabled"] != true {
		t.Errorf("inbox csat_survey_enabled = %v", in["csat_survey_enabled"])
	}
	src, tok := c.session(nil)
	conv := c.conversation(src)
	cab := dialCable(t, s)
	cab.subscribe(tok)

	c.obj("POST", c.convPath(src, conv, "/toggle_status"), nil)
	_, _, d := cab.event("message.created")
	if d["content_type"] != "input_csat" || d["message_type"] != float64(MessageTemplate) || d["content"] != csatContent {
		t.Fatalf("CSAT event = %v", d)
	}
	csatID := int64(d["id"].(float64))
	// REST rewrites the content into the survey sentence with a link; the cable keeps it raw.
	list := c.list("GET", c.convPath(src, conv, "/messages"), nil)
	last := list[len(list)-1].(map[string]any)
	if content, _ := last["content"].(string); !strings.HasPrefix(content, csatContent+" ") || !strings.Contains(content, "/survey/responses/") {
		t.Errorf("REST CSAT content = %q", content)
	}
	// Answered with a message update, the object form.
	up := c.obj("PATCH", c.convPath(src, conv, "/messages/"+itoa(csatID)), map[string]any{
		"submitted_values": map[string]any{"csat_survey_response": map[string]any{"rating": 5, "feedback_message": "Great!"}},
	})
	sv := up["content_attributes"].(map[string]any)["submitted_values"].(map[string]any)["csat_survey_response"].(map[string]any)
	if sv["rating"] != float64(5) || sv["feedback_message"] != "Great!" {
		t.Errorf("submitted_values = %v", sv)
	}
	if _, _, d := cab.event("message.updated"); d["id"] != float64(csatID) {
		t.Errorf("message.updated for %v", d["id"])
	}
	// Only once per conversation.
	s.Reopen(conv)
	s.Resolve(conv)
	n := 0
	for _, m := range s.Messages(conv) {
		if m.ContentType == "input_csat" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d CSAT messages, want 1", n)
	}
	// After the expiry the update is refused with 422.
	clk.Add(14*24*time.Hour + time.Second)
	status, b, _ := c.call("PATCH", c.convPath(src, conv, "/messages/"+itoa(csatID)), map[string]any{
		"submitted_values": map[string]any{"csat_survey_response": map[string]any{"rating": 1}},
	})
	if status != 422 || !strings.Contains(string(b), "You cannot update the CSAT survey after 14 days") {
		t.Errorf("expired CSAT update: %d %s", status, b)
	}
}

func TestPresence(t *testing.T) {
	clk := &clock{now: time.Now()}
	s, rc := newClient(t, &Options{Now: clk.Now, PresenceDuration: time.Minute})
	src, tok := rc.session(nil)
	ci, _ := s.ContactInboxBySourceID(src)
	if s.ContactOnline(ci.ContactID) {
		t.Fatal("online before subscribing")
	}
	c := dialCable(t, s)
	id := c.subscribe(tok)
	if !s.ContactOnline(ci.ContactID) {
		t.Fatal("offline right after subscribing")
	}
	clk.Add(time.Minute + time.Second)
	if s.ContactOnline(ci.ContactID) {
		t.Fatal("still online after the presence duration")
	}
	c.command("message", id, `{"action":"update_presence"}`)
	if _, name, d := c.event("presence.update"); name != "presence.update" || d["users"].(map[string]any)["1"] != "online" {
		t.Errorf("presence = %v", d)
	}
	if !s.ContactOnline(ci.ContactID) {
		t.Error("update_presence did not renew the presence")
	}
	s.SetPresence(1, "busy")
	s.SetPresence(2, "online")
	c.event("presence.update") // the first of the two SetPresence broadcasts
	_, _, d := c.event("presence.update")
	users := d["users"].(map[string]any)
	if users["1"] != "busy" || users["2"] != "online" {
		t.Errorf("users = %v", users)
	}
}

func TestInteractiveMessageShapes(t *testing.T) {
	s, c := newClient(t, nil)
	src, tok := c.session(nil)
	conv := c.conversation(src)
	cab := dialCable(t, s)
	cab.subscribe(tok)
	for _, tc := range []struct {
		contentType string
		items       []map[string]any
	}{
		{"input_select", []map[string]any{{"title": "Yes", "value": "yes"}}},
		{"cards", []map[string]any{{"media_url": "https://x/y.png", "title": "Plan", "description": "Pro",
			"actions": []any{map[string]any{"type": "link", "text": "Open", "uri": "https://x"}, map[string]any{"type": "postback", "text": "Buy", "payload": "buy"}}}}},
		{"article", []map[string]any{{"title": "Reset", "description": "How to", "link": "https://help/reset"}}},
	} {
		m := s.PostAgentMessage(conv, AgentMessage{Content: "choose", ContentType: tc.contentType, Items: tc.items})
		_, _, d := cab.event("message.created")
		if d["content_type"] != tc.contentType || d["id"] != float64(m.ID) {
			t.Errorf("%s: cable payload %v", tc.contentType, d)
		}
		items, _ := d["content_attributes"].(map[string]any)["items"].([]any)
		if len(items) != len(tc.items) {
			t.Errorf("%s: cable items %v", tc.contentType, d["content_attributes"])
		}
		list := c.list("GET", c.convPath(src, conv, "/messages"), nil)
		last := list[len(list)-1].(map[string]any)
		wantKeys(t, tc.contentType+" REST message", last, "id", "content", "message_type", "content_type",
			"content_attributes", "created_at", "conversation_id", "sender")
		if last["content_type"] != tc.contentType || len(last["content_attributes"].(map[string]any)["items"].([]any)) != len(tc.items) {
			t.Errorf("%s: REST %v", tc.contentType, last)
		}
	}
}
