package onechat

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// fakeEnv is a client wired to a fresh fake OneChat, with observed logs.
type fakeEnv struct {
	t    *testing.T
	fake *onechattest.Server
	c    *Client
	// warnings counts the warning log lines so far.
	warnings func() int
	secrets  []string
}

func newFakeEnv(t *testing.T, fo *onechattest.Options, o *Options) *fakeEnv {
	t.Helper()
	fake := onechattest.NewServer(t, fo)
	log, logs := testLogger(t)
	opts := Options{}
	if o != nil {
		opts = *o
	}
	opts.Logger = log
	if opts.RequestsPerSecond == 0 {
		opts.RequestsPerSecond = -1 // these tests are about behaviour; the budget has its own
	}
	e := &fakeEnv{t: t, fake: fake, c: NewClient(fake.URL(), fake.InboxIdentifier(), &opts),
		warnings: func() int { return logs.FilterLevelExact(zapcore.WarnLevel).Len() },
		secrets:  []string{fake.InboxIdentifier(), fake.HMACToken()}}
	t.Cleanup(func() {
		for _, ci := range e.allSessions() {
			e.secrets = append(e.secrets, ci.SourceID, ci.PubsubToken)
		}
		assertLogsFree(t, logs, e.secrets...)
	})
	return e
}

func (e *fakeEnv) allSessions() []onechattest.ContactInbox {
	var out []onechattest.ContactInbox
	for _, ct := range e.fake.Contacts() {
		out = append(out, e.fake.ContactInboxes(ct.ID)...)
	}
	return out
}

// session creates a contact session and a conversation through the client.
func (e *fakeEnv) session(identifier string) (*Contact, *Conversation) {
	e.t.Helper()
	ctx := context.Background()
	ct, err := e.c.CreateContact(ctx, ContactParams{Identifier: identifier, Name: "Alice"})
	if err != nil {
		e.t.Fatalf("create contact: %v", err)
	}
	cv, err := e.c.CreateConversation(ctx, ct.SourceID)
	if err != nil {
		e.t.Fatalf("create conversation: %v", err)
	}
	return ct, cv
}

func (e *fakeEnv) requestsTo(suffix string) int {
	n := 0
	for _, r := range e.fake.Requests() {
		if strings.HasSuffix(r.Path, suffix) {
			n++
		}
	}
	return n
}

func (e *fakeEnv) noLeak(err error) {
	e.t.Helper()
	if err == nil {
		return
	}
	for _, s := range e.secrets {
		if strings.Contains(err.Error(), s) {
			e.t.Errorf("error %q leaks a secret", err)
		}
	}
	for _, ci := range e.allSessions() {
		if strings.Contains(err.Error(), ci.SourceID) || strings.Contains(err.Error(), ci.PubsubToken) {
			e.t.Errorf("error %q leaks a session credential", err)
		}
	}
}

func TestClientAgainstFakeRoutes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		fo   *onechattest.Options
		run  func(t *testing.T, e *fakeEnv)
	}{
		{"inbox show", &onechattest.Options{InboxName: "Support", CSATSurveyEnabled: true, HMACMandatory: true}, func(t *testing.T, e *fakeEnv) {
			in, err := e.c.Inbox(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if in.Name != "Support" || in.Identifier != e.fake.InboxIdentifier() || !in.CSATSurveyEnabled ||
				!in.IdentityValidationEnabled || len(in.WorkingHours) != 7 {
				t.Errorf("inbox = %+v", in)
			}
		}},
		{"contact create is a new session each time, same contact", nil, func(t *testing.T, e *fakeEnv) {
			a, _ := e.session("telegram:1")
			b, err := e.c.CreateContact(ctx, ContactParams{Identifier: "telegram:1"})
			if err != nil {
				t.Fatal(err)
			}
			if a.ID != b.ID || a.SourceID == b.SourceID || a.PubsubToken == b.PubsubToken || a.PubsubToken == "" {
				t.Errorf("a = %+v, b = %+v", a, b)
			}
			// A given source_id makes the create idempotent.
			c1, err := e.c.CreateContact(ctx, ContactParams{Identifier: "telegram:2", SourceID: "tg-2"})
			if err != nil {
				t.Fatal(err)
			}
			c2, err := e.c.CreateContact(ctx, ContactParams{Identifier: "telegram:2", SourceID: "tg-2"})
			if err != nil || *c1 != *c2 || c1.SourceID != "tg-2" {
				t.Errorf("c1 = %+v, c2 = %+v, %v", c1, c2, err)
			}
		}},
		{"contact show with the HMAC pair verifies the session", nil, func(t *testing.T, e *fakeEnv) {
			e.c.hmacToken = e.fake.HMACToken()
			ct, _ := e.session("telegram:1")
			if ci, _ := e.fake.ContactInboxBySourceID(ct.SourceID); ci.HMACVerified {
				t.Fatal("create verified the session; OneChat never does")
			}
			got, err := e.c.GetContact(ctx, ct.SourceID, "telegram:1")
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != ct.ID || got.PubsubToken != ct.PubsubToken {
				t.Errorf("show = %+v, want %+v", got, ct)
			}
			if ci, _ := e.fake.ContactInboxBySourceID(ct.SourceID); !ci.HMACVerified {
				t.Error("show with the pair did not verify the session")
			}
			for _, r := range e.fake.Requests() {
				if strings.Contains(r.Query, "identifier") {
					t.Errorf("%s %s carries the identifier pair in its query", r.Method, r.Path)
				}
			}
		}},
		{"contact update keeps the identifier and follows a merge", nil, func(t *testing.T, e *fakeEnv) {
			e.c.hmacToken = e.fake.HMACToken()
			other, err := e.c.CreateContact(ctx, ContactParams{Identifier: "email:1", Email: "alice@example.com"})
			if err != nil {
				t.Fatal(err)
			}
			ct, _ := e.session("telegram:1")
			up, err := e.c.UpdateContact(ctx, ct.SourceID, "telegram:1", ContactParams{
				Identifier: "telegram:999", Name: "Alice B", CustomAttributes: map[string]any{"plan": "pro"}})
			if err != nil {
				t.Fatal(err)
			}
			if up.ID != ct.ID || up.Name != "Alice B" || up.Identifier != "telegram:1" || up.SourceID != "" {
				t.Errorf("update = %+v", up)
			}
			if ci, _ := e.fake.ContactInboxBySourceID(ct.SourceID); !ci.HMACVerified {
				t.Error("update with the pair did not verify the session")
			}
			merged, err := e.c.UpdateContact(ctx, ct.SourceID, "telegram:1", ContactParams{Email: "alice@example.com"})
			if err != nil {
				t.Fatal(err)
			}
			if merged.ID != other.ID {
				t.Errorf("after the merge id = %d, want the other contact's %d", merged.ID, other.ID)
			}
			// The session survives the merge.
			if _, err := e.c.ListMessages(ctx, ct.SourceID, 1, 0); err != nil {
				t.Errorf("session after merge: %v", err)
			}
		}},
		{"conversation list, create, show, resolve", nil, func(t *testing.T, e *fakeEnv) {
			ct, cv := e.session("telegram:1")
			cv2, err := e.c.CreateConversation(ctx, ct.SourceID)
			if err != nil || cv2.ID == cv.ID || cv.Status != StatusOpen {
				t.Fatalf("second conversation %+v, first %+v, %v", cv2, cv, err)
			}
			list, err := e.c.ListConversations(ctx, ct.SourceID)
			if err != nil || len(list) != 2 {
				t.Fatalf("list = %+v, %v", list, err)
			}
			got, err := e.c.GetConversation(ctx, ct.SourceID, cv.ID)
			if err != nil || got.ID != cv.ID || got.UUID != cv.UUID {
				t.Errorf("show = %+v, %v", got, err)
			}
			for range 2 { // idempotent
				res, err := e.c.ResolveConversation(ctx, ct.SourceID, cv.ID)
				if err != nil || res.Status != StatusResolved {
					t.Errorf("resolve = %+v, %v", res, err)
				}
			}
			if _, err := e.c.GetConversation(ctx, ct.SourceID, 9999); !IsNotFound(err) || !IsPermanent(err) {
				t.Errorf("unknown conversation: %v", err)
			}
		}},
		{"typing and last seen", nil, func(t *testing.T, e *fakeEnv) {
			ct, cv := e.session("telegram:1")
			if err := e.c.ToggleTyping(ctx, ct.SourceID, cv.ID, true); err != nil {
				t.Fatal(err)
			}
			if got, _ := e.fake.Conversation(cv.ID); !got.ContactTyping {
				t.Error("typing on not recorded")
			}
			if err := e.c.ToggleTyping(ctx, ct.SourceID, cv.ID, false); err != nil {
				t.Fatal(err)
			}
			if got, _ := e.fake.Conversation(cv.ID); got.ContactTyping {
				t.Error("typing off not recorded")
			}
			reply := e.fake.AgentReply(cv.ID, "hello")
			if err := e.c.UpdateLastSeen(ctx, ct.SourceID, cv.ID); err != nil {
				t.Fatal(err)
			}
			if m, _ := e.fake.Message(reply.ID); m.Status != "read" {
				t.Errorf("agent message status = %s, want read", m.Status)
			}
		}},
		{"messages: create, latest 20, page back with before", nil, func(t *testing.T, e *fakeEnv) {
			ct, cv := e.session("telegram:1")
			var ids []int64
			for i := range 45 {
				m, err := e.c.CreateMessage(ctx, ct.SourceID, cv.ID, MessageParams{Content: "m" + itoa(int64(i)), EchoID: "e"})
				if err != nil {
					t.Fatal(err)
				}
				if m.MessageType != MessageIncoming || m.ConversationID != cv.ID || m.Sender == nil || m.Sender.Type != "contact" {
					t.Fatalf("message = %+v", m)
				}
				ids = append(ids, m.ID)
			}
			var got []int64
			before := int64(0)
			for {
				page, err := e.c.ListMessages(ctx, ct.SourceID, cv.ID, before)
				if err != nil {
					t.Fatal(err)
				}
				for i := len(page) - 1; i >= 0; i-- {
					got = append([]int64{page[i].ID}, got...)
				}
				if len(page) < 20 {
					break
				}
				before = page[0].ID
			}
			if len(got) != 45 || got[0] != ids[0] || got[44] != ids[44] {
				t.Errorf("paged %d messages (%v…), want 45", len(got), got[:min(3, len(got))])
			}
		}},
		{"message with attachments streams as multipart", nil, func(t *testing.T, e *fakeEnv) {
			ct, cv := e.session("telegram:1")
			m, err := e.c.CreateMessage(ctx, ct.SourceID, cv.ID, MessageParams{Content: "see", Attachments: []Upload{
				{Filename: "a.png", ContentType: "image/png", Body: strings.NewReader("PNG")},
				{Filename: "b.ogg", ContentType: "audio/ogg", Body: strings.NewReader("OGG")},
				{Filename: "c.svg", ContentType: "image/svg+xml", Body: strings.NewReader("<svg/>")},
			}})
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, a := range m.Attachments {
				types = append(types, a.FileType)
			}
			if strings.Join(types, ",") != "image,audio,file" {
				t.Errorf("file types = %v", types)
			}
			rc, info, err := e.c.Download(ctx, m.Attachments[0].DataURL)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if string(b) != "PNG" || info.ContentType != "image/png" || info.Filename != "a.png" || info.Size != 3 {
				t.Errorf("download %q %+v", b, info)
			}
		}},
		{"update message: select values, CSAT, CSAT expiry", &onechattest.Options{CSATSurveyEnabled: true}, func(t *testing.T, e *fakeEnv) {
			ct, cv := e.session("telegram:1")
			sel := e.fake.PostAgentMessage(cv.ID, onechattest.AgentMessage{Content: "Pick", ContentType: "input_select",
				Items: []map[string]any{{"title": "Yes", "value": "yes"}, {"title": "No", "value": "no"}}})
			m, err := e.c.UpdateMessage(ctx, ct.SourceID, cv.ID, sel.ID, SubmittedValues{Values: []SubmittedValue{{Title: "Yes", Value: "yes"}}})
			if err != nil {
				t.Fatal(err)
			}
			if sv, _ := m.ContentAttributes["submitted_values"].([]any); len(sv) != 1 || sv[0].(map[string]any)["value"] != "yes" {
				t.Errorf("submitted_values = %v", m.ContentAttributes)
			}
			if items, _ := m.ContentAttributes["items"].([]any); len(items) != 2 || m.ContentType != "input_select" {
				t.Errorf("input_select shape = %+v", m)
			}
			if _, err := e.c.ResolveConversation(ctx, ct.SourceID, cv.ID); err != nil {
				t.Fatal(err)
			}
			msgs, err := e.c.ListMessages(ctx, ct.SourceID, cv.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			csat := msgs[len(msgs)-1]
			if csat.ContentType != "input_csat" || csat.MessageType != MessageTemplate {
				t.Fatalf("last message after resolve = %+v, want the CSAT survey", csat)
			}
			m, err = e.c.UpdateMessage(ctx, ct.SourceID, cv.ID, csat.ID, SubmittedValues{CSAT: &CSATResponse{Rating: 4, FeedbackMessage: "ok"}})
			if err != nil {
				t.Fatal(err)
			}
			r, _ := m.ContentAttributes["submitted_values"].(map[string]any)["csat_survey_response"].(map[string]any)
			if r["rating"] != float64(4) || r["feedback_message"] != "ok" {
				t.Errorf("csat answer = %v", m.ContentAttributes)
			}
			e.fake.AgeMessage(csat.ID, 15*24*time.Hour)
			_, err = e.c.UpdateMessage(ctx, ct.SourceID, cv.ID, csat.ID, SubmittedValues{CSAT: &CSATResponse{Rating: 1}})
			if !IsValidation(err) || !IsPermanent(err) || !strings.Contains(err.Error(), "after 14 days") {
				t.Errorf("expired CSAT: %v", err)
			}
			e.noLeak(err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newFakeEnv(t, tc.fo, nil))
		})
	}
}

func TestClientAgainstFakeErrorClasses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		fo       *onechattest.Options
		hmac     string // "", "right" or "wrong"
		setup    func(e *fakeEnv)
		call     func(e *fakeEnv, ct *Contact, cv *Conversation) error
		class    ErrorClass
		status   int
		sentinel error
		text     string
	}{
		{name: "500 on a message route", setup: func(e *fakeEnv) { e.fake.FailNext(1, 500) },
			call: createMsg, class: ClassRetryable, status: 500},
		{name: "502", setup: func(e *fakeEnv) { e.fake.FailNext(1, 502) }, call: createMsg, class: ClassRetryable, status: 502},
		{name: "503", setup: func(e *fakeEnv) { e.fake.FailNext(1, 503) }, call: createMsg, class: ClassRetryable, status: 503},
		{name: "504", setup: func(e *fakeEnv) { e.fake.FailNext(1, 504) }, call: createMsg, class: ClassRetryable, status: 504},
		{name: "429 Retry later", setup: func(e *fakeEnv) { e.fake.Throttle(1) }, call: createMsg, class: ClassRateLimited, status: 429},
		{name: "404 unknown conversation", call: func(e *fakeEnv, ct *Contact, _ *Conversation) error {
			_, err := e.c.CreateMessage(ctx, ct.SourceID, 4242, MessageParams{Content: "x"})
			return err
		}, class: ClassPermanent, status: 404},
		{name: "404 deleted contact", call: func(e *fakeEnv, ct *Contact, _ *Conversation) error {
			e.fake.DeleteContact(ct.ID)
			_, err := e.c.ListConversations(ctx, ct.SourceID)
			return err
		}, class: ClassPermanent, status: 404},
		{name: "422 content too long", call: func(e *fakeEnv, ct *Contact, cv *Conversation) error {
			_, err := e.c.CreateMessage(ctx, ct.SourceID, cv.ID, MessageParams{Content: strings.Repeat("x", 150001)})
			return err
		}, class: ClassPermanent, status: 422, text: "Content is too long (maximum is 150000 characters)"},
		{name: "422 invalid email", call: func(e *fakeEnv, _ *Contact, _ *Conversation) error {
			_, err := e.c.CreateContact(ctx, ContactParams{Email: "not-an-email"})
			return err
		}, class: ClassPermanent, status: 422, text: "Email Invalid email"},
		{name: "wrong HMAC token: 500 is a config error", hmac: "wrong", call: getContact,
			class: ClassConfig, status: 500, sentinel: ErrHMAC, text: "ONECHAT_HMAC_TOKEN"},
		{name: "identity validation on, no token", fo: &onechattest.Options{HMACMandatory: true}, call: getContact,
			class: ClassConfig, status: 500, sentinel: ErrHMACRequired, text: "ONECHAT_HMAC_TOKEN"},
		{name: "500 on a contact route without token or validation is a fault", setup: func(e *fakeEnv) { e.fake.FailNext(1, 500) },
			call: getContact, class: ClassRetryable, status: 500},
		{name: "fixed servers answer 401", fo: &onechattest.Options{StrictHMAC: true}, hmac: "wrong", call: getContact,
			class: ClassConfig, status: 401, sentinel: ErrHMAC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t, tc.fo, nil)
			if tc.fo != nil && tc.fo.HMACMandatory {
				e.c.hmacToken = e.fake.HMACToken() // to set up the session; cleared below
			}
			ct, cv := e.session("telegram:1")
			e.c.hmacToken = ""
			switch tc.hmac {
			case "right":
				e.c.hmacToken = e.fake.HMACToken()
			case "wrong":
				e.c.hmacToken = "wrong-token-wrong-token1"
				e.secrets = append(e.secrets, e.c.hmacToken)
			}
			if tc.setup != nil {
				tc.setup(e)
			}
			err := tc.call(e, ct, cv)
			if got := Classify(err); got != tc.class {
				t.Fatalf("Classify(%v) = %s, want %s", err, got, tc.class)
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.StatusCode != tc.status {
				t.Errorf("error %#v, want status %d", err, tc.status)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("%v is not %v", err, tc.sentinel)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q lacks %q", err, tc.text)
			}
			if IsRetryable(err) != (tc.class == ClassRetryable || tc.class == ClassRateLimited) {
				t.Errorf("IsRetryable disagrees with the class for %v", err)
			}
			if tc.class == ClassRateLimited && ae.RetryAfter <= 0 {
				t.Errorf("429 without a pause: %+v", ae)
			}
			e.noLeak(err)
		})
	}
}

func createMsg(e *fakeEnv, ct *Contact, cv *Conversation) error {
	_, err := e.c.CreateMessage(context.Background(), ct.SourceID, cv.ID, MessageParams{Content: "x"})
	return err
}

func getContact(e *fakeEnv, ct *Contact, _ *Conversation) error {
	_, err := e.c.GetContact(context.Background(), ct.SourceID, "telegram:1")
	return err
}

func TestClientOlderServerFeatures(t *testing.T) {
	ctx := context.Background()
	e := newFakeEnv(t, &onechattest.Options{MissingRoutes: []string{
		onechattest.RouteConversationShow, onechattest.RouteToggleStatus,
		onechattest.RouteToggleTyping, onechattest.RouteUpdateLastSeen,
	}}, nil)
	ct, cv := e.session("telegram:1")

	// A 404 for a conversation that is gone stays a 404, even on an old server, and does not
	// switch anything off.
	if err := e.c.ToggleTyping(ctx, ct.SourceID, 4242, true); !IsNotFound(err) || errors.Is(err, ErrUnsupported) {
		t.Fatalf("typing in an unknown conversation: %v", err)
	}
	if !e.c.Supported()[featureRoutes[featureToggleTyping]] {
		t.Fatal("a missing conversation switched typing off")
	}

	for _, tc := range []struct {
		route string
		call  func() error
	}{
		{"/toggle_typing", func() error { return e.c.ToggleTyping(ctx, ct.SourceID, cv.ID, true) }},
		{"/update_last_seen", func() error { return e.c.UpdateLastSeen(ctx, ct.SourceID, cv.ID) }},
		{"/toggle_status", func() error { _, err := e.c.ResolveConversation(ctx, ct.SourceID, cv.ID); return err }},
	} {
		warnings, asked := e.warnings(), e.requestsTo(tc.route)
		for range 3 {
			if err := tc.call(); !errors.Is(err, ErrUnsupported) || Classify(err) != ClassUnsupported || IsRetryable(err) {
				t.Errorf("%s: %v, want ErrUnsupported", tc.route, err)
			}
		}
		if n := e.requestsTo(tc.route) - asked; n != 1 {
			t.Errorf("%s asked %d times, want once", tc.route, n)
		}
		if n := e.warnings() - warnings; n != 1 {
			t.Errorf("%s: %d warnings, want exactly one", tc.route, n)
		}
	}

	// Show falls back to the list, which every version has.
	for range 2 {
		got, err := e.c.GetConversation(ctx, ct.SourceID, cv.ID)
		if err != nil || got.ID != cv.ID || got.Status != StatusOpen {
			t.Fatalf("show on an old server = %+v, %v", got, err)
		}
	}
	if _, err := e.c.GetConversation(ctx, ct.SourceID, 4242); !IsNotFound(err) {
		t.Errorf("unknown conversation through the fallback: %v", err)
	}
	if n := e.requestsTo("/conversations/" + itoa(cv.ID)); n != 1 {
		t.Errorf("show asked %d times, want once before switching to the list", n)
	}

	// A modern server never switches anything off, even when conversations vanish.
	m := newFakeEnv(t, nil, nil)
	ct2, cv2 := m.session("telegram:2")
	m.fake.DeleteContact(ct2.ID)
	if err := m.c.UpdateLastSeen(ctx, ct2.SourceID, cv2.ID); !IsNotFound(err) {
		t.Errorf("deleted conversation: %v", err)
	}
	for route, on := range m.c.Supported() {
		if !on {
			t.Errorf("%s switched off on a modern server", route)
		}
	}

	// A probe that fails is not taken for a decision either way: the caller gets a
	// retryable error, and the feature stays on.
	p := newFakeEnv(t, &onechattest.Options{MissingRoutes: []string{onechattest.RouteToggleTyping}},
		&Options{HTTPClient: &http.Client{Transport: failProbes{http.DefaultTransport}}})
	ct3, cv3 := p.session("telegram:3")
	if err := p.c.ToggleTyping(ctx, ct3.SourceID, cv3.ID, true); !IsRetryable(err) || errors.Is(err, ErrUnsupported) || IsNotFound(err) {
		t.Errorf("typing with a failing probe: %v", err)
	}
	if !p.c.Supported()[featureRoutes[featureToggleTyping]] {
		t.Error("an undecided probe switched typing off")
	}
}

// failProbes answers 502 to the feature probe (GET …/messages?before=1) as a flaky proxy would.
type failProbes struct{ next http.RoundTripper }

func (f failProbes) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/messages") && r.URL.RawQuery == "before=1" {
		return &http.Response{StatusCode: 502, Body: io.NopCloser(strings.NewReader("Bad Gateway")), Request: r, Header: http.Header{}}, nil
	}
	return f.next.RoundTrip(r)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
