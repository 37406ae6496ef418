package onechat

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest/observer"
)

const (
	tok1 = "JJhR4TG2fY93A3Ag8N2qjd2r"
	tok2 = "Zz9mW4pQ7rT2vX5yB8nC3dF6"
)

// Sample cable payloads, copied from onechat-client-api.md §8.5.
const (
	sampleCableMessage = `{
      "id": 1202,
      "content": "Thanks, looking into it",
      "account_id": 1,
      "inbox_id": 7,
      "conversation_id": 21,
      "message_type": 1,
      "created_at": 1736500060,
      "updated_at": "2025-01-10T09:07:40.373Z",
      "private": false,
      "status": "sent",
      "source_id": null,
      "content_type": "text",
      "content_attributes": {"in_reply_to": 1201},
      "sender_type": "User",
      "sender_id": 3,
      "external_source_ids": {},
      "additional_attributes": {},
      "processed_message_content": "Thanks, looking into it",
      "sentiment": {},
      "conversation": {
        "assignee_id": 3,
        "unread_count": 0,
        "last_activity_at": 1736500060,
        "contact_inbox": {"source_id": "9b9d46b9-8542-43f5-8077-082d54682581"}
      },
      "attachments": [{"id": 55, "message_id": 1202, "file_type": "image", "account_id": 1, "extension": null, "data_url": "https://…", "thumb_url": "https://…", "file_size": 48213, "width": 800, "height": 600}],
      "sender": {"id": 3, "name": "John Doe", "available_name": "John", "avatar_url": "https://…", "type": "user", "availability_status": "online", "thumbnail": "https://…"},
      "performer": {"id": 3, "name": "John Doe", "available_name": "John", "avatar_url": "https://…", "type": "user", "availability_status": "online", "thumbnail": "https://…"}
    }`
	sampleCableEcho = `{"id":1203,"content":"hi","account_id":1,"inbox_id":7,"conversation_id":21,"message_type":0,
      "created_at":1736500070,"private":false,"status":"sent","content_type":"text","content_attributes":{},
      "sender_type":"Contact","echo_id":"tg:555:1",
      "sender":{"additional_attributes":{},"custom_attributes":{},"email":null,"id":42,"identifier":"telegram:123","name":"Alice","phone_number":null,"thumbnail":"","blocked":false,"type":"contact"}}`
	sampleCableConversation = `{
  "additional_attributes": {},
  "can_reply": true,
  "channel": "Channel::Api",
  "contact_inbox": {"id": 88, "contact_id": 42, "inbox_id": 7, "source_id": "9b9d46b9-8542-43f5-8077-082d54682581",
                    "created_at": "2025-01-10T09:00:00.123Z", "updated_at": "2025-01-10T09:00:00.123Z",
                    "hmac_verified": false, "pubsub_token": "JJhR4TG2fY93A3Ag8N2qjd2r"},
  "id": 21,
  "inbox_id": 7,
  "messages": [{"id": 1202, "content": "Your order ships on Monday", "message_type": 1, "content_type": "text", "content_attributes": {}, "created_at": 1736500060, "conversation_id": 21}],
  "labels": [],
  "meta": {
    "sender": {"additional_attributes": {}, "custom_attributes": {}, "email": "alice@example.com", "id": 42, "identifier": "telegram:123456789", "name": "Alice", "phone_number": null, "thumbnail": "", "blocked": false, "type": "contact"},
    "assignee": {"id": 3, "name": "John Doe", "available_name": "John", "avatar_url": "…", "type": "user", "availability_status": "online", "thumbnail": "…"},
    "team": null,
    "hmac_verified": false
  },
  "status": "resolved",
  "custom_attributes": {"plan": "pro"},
  "snoozed_until": null,
  "unread_count": 0,
  "first_reply_created_at": "2025-01-10T09:07:40.373Z",
  "priority": null,
  "waiting_since": 0,
  "agent_last_seen_at": 1736500100,
  "contact_last_seen_at": 0,
  "last_activity_at": 1736500060,
  "timestamp": 1736500060,
  "created_at": 1736499000,
  "updated_at": 1736500200.123456,
  "account_id": 1
}`
)

// recorder is a CableHandler that hands everything to channels.
type recorder struct {
	events   chan Event
	confirms chan string
	timeouts chan string
	silent   chan string
	rejected chan string
	// stats, when set, is filled with the cable's Stats at each confirmation.
	cable *Cable
	stats chan CableStats
}

func newRecorder() *recorder {
	return &recorder{events: make(chan Event, 256), confirms: make(chan string, 256),
		timeouts: make(chan string, 256), silent: make(chan string, 256), rejected: make(chan string, 256),
		stats: make(chan CableStats, 256)}
}

func (r *recorder) CableEvent(ctx context.Context, ev Event) {
	select {
	case r.events <- ev:
	case <-ctx.Done():
	}
}

func (r *recorder) CableConfirmed(ctx context.Context, token string) {
	if r.cable != nil {
		select {
		case r.stats <- r.cable.Stats():
		default:
		}
	}
	select {
	case r.confirms <- token:
	case <-ctx.Done():
	}
}

func (r *recorder) CableSilent(ctx context.Context, token string) {
	select {
	case r.silent <- token:
	case <-ctx.Done():
	}
}

func (r *recorder) CableRejected(ctx context.Context, token string) {
	select {
	case r.rejected <- token:
	case <-ctx.Done():
	}
}

func (r *recorder) CableConfirmTimeout(ctx context.Context, token string) {
	select {
	case r.timeouts <- token:
	case <-ctx.Done():
	}
}

// runningCable is a Cable whose Run goroutine the test owns.
type runningCable struct {
	*Cable
	logs   *observer.ObservedLogs
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// startCable makes a cable for url, subscribes tokens and runs it until the test ends.
func startCable(t *testing.T, url string, h CableHandler, opts *CableOptions, tokens ...string) *runningCable {
	t.Helper()
	log, logs := testLogger(t)
	var o CableOptions
	if opts != nil {
		o = *opts
	}
	o.Logger = log
	if o.MinBackoff == 0 {
		o.MinBackoff = time.Millisecond
		o.MaxBackoff = 10 * time.Millisecond
	}
	c := NewCable(url, h, &o)
	if r, ok := h.(*recorder); ok {
		r.cable = c
	}
	for _, tok := range tokens {
		c.Subscribe(tok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc := &runningCable{Cable: c, logs: logs, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rc.done)
		rc.err = c.Run(ctx)
	}()
	t.Cleanup(func() {
		rc.stop()
		assertLogsFree(t, logs, tok1, tok2, testSourceID)
	})
	return rc
}

// stop cancels Run and returns what it returned.
func (rc *runningCable) stop() error {
	rc.cancel()
	<-rc.done
	return rc.err
}

// wait waits for Run to return on its own.
func (rc *runningCable) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-rc.done:
		return rc.err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func ident(tok string) string { return `{"channel":"RoomChannel","pubsub_token":"` + tok + `"}` }

func expectCmd(t *testing.T, f *fakeCable, command, tok string) fakeCmd {
	t.Helper()
	cmd := recv(t, f.cmds, command)
	if cmd.Command != command || cmd.Identifier != ident(tok) {
		t.Fatalf("command = %+v, want %s %s", cmd, command, ident(tok))
	}
	return cmd
}

func TestCableSubscribeConfirmEvents(t *testing.T) {
	f := newFakeCable(t, func(f *fakeCable) { f.pingEvery = 50 * time.Millisecond })
	f.setKnown(tok1, true)
	r := newRecorder()
	rc := startCable(t, f.url(), r, nil, tok1)

	fc := recv(t, f.connected, "connection")
	if got, want := fc.header.Get("Origin"), f.srv.URL; got != want {
		t.Errorf("Origin = %q, want %q", got, want)
	}
	if got := fc.header.Get("Sec-WebSocket-Protocol"); got != "actioncable-v1-json,actioncable-unsupported" {
		t.Errorf("offered subprotocols %q", got)
	}
	expectCmd(t, f, "subscribe", tok1)
	if got := recv(t, r.confirms, "confirm"); got != tok1 {
		t.Fatalf("confirmed %q", got)
	}
	if st := recv(t, r.stats, "stats"); st != (CableStats{Connected: true, Subscriptions: 1, Confirmed: 1, Connections: 1, Sockets: 1}) {
		t.Errorf("stats at confirm = %+v", st)
	}
	if !rc.Connected() {
		t.Error("not Connected after confirm")
	}

	// A broadcast for an identifier we never subscribed is skipped; the next one arrives.
	_ = fc.send(`{"identifier":"{\"channel\":\"RoomChannel\",\"pubsub_token\":\"` + tok2 + `\"}","message":{"event":"message.created","data":{}}}`)
	// The same token with keys in another order is another identifier to ActionCable.
	_ = fc.send(`{"identifier":"{\"pubsub_token\":\"` + tok1 + `\",\"channel\":\"RoomChannel\"}","message":{"event":"message.created","data":{}}}`)
	for _, b := range []struct{ event, data string }{
		{EventMessageCreated, sampleCableMessage},
		{EventMessageCreated, sampleCableEcho},
		{EventConversationStatusChanged, sampleCableConversation},
		{EventTypingOn, `{"conversation":` + sampleCableConversation + `,"user":{"id":3,"name":"John Doe","type":"user"},"is_private":true,"account_id":1}`},
		{EventPresenceUpdate, `{"account_id":1,"users":{"3":"online"}}`},
	} {
		if n := fc.broadcast(tok1, b.event, b.data); n != 1 {
			t.Fatalf("broadcast reached %d subscriptions", n)
		}
	}

	ev := recv(t, r.events, "message.created")
	if ev.Token != tok1 || ev.Name != EventMessageCreated {
		t.Fatalf("event = %s for %q", ev.Name, ev.Token)
	}
	m, err := ev.Message()
	if err != nil {
		t.Fatal(err)
	}
	want := wantSampleMessage
	want.Attachments = []Attachment{{ID: 55, FileType: "image", DataURL: "https://…", ThumbURL: "https://…", FileSize: 48213, Width: 800, Height: 600}}
	want.Status, want.SenderType, want.InboxID, want.ContactSourceID = "sent", "User", 7, testSourceID
	if m.ID != want.ID || m.Content != want.Content || m.MessageType != want.MessageType || m.Private ||
		m.Status != want.Status || m.SenderType != want.SenderType || m.InboxID != 7 ||
		m.ContactSourceID != testSourceID || m.InReplyTo() != 1201 || m.CreatedAt != 1736500060 ||
		m.ConversationID != 21 || len(m.Attachments) != 1 || m.Attachments[0] != want.Attachments[0] ||
		*m.Sender != *want.Sender {
		t.Errorf("message = %+v\nwant      %+v", m, want)
	}

	ev = recv(t, r.events, "echo")
	if m, err := ev.Message(); err != nil || m.EchoID != "tg:555:1" || m.MessageType != MessageIncoming || m.Sender.Type != "contact" {
		t.Errorf("echo = %+v, %v", m, err)
	}

	ev = recv(t, r.events, "status_changed")
	cv, err := ev.Conversation()
	if err != nil || *cv != (ConversationEvent{ID: 21, Status: StatusResolved, ContactSourceID: testSourceID, InboxID: 7, LatestMessageID: 1202}) {
		t.Errorf("conversation = %+v, %v", cv, err)
	}

	ev = recv(t, r.events, "typing")
	ty, err := ev.Typing()
	if err != nil || !ty.On || !ty.Private || ty.Conversation.ID != 21 || ty.User == nil || ty.User.ID != 3 {
		t.Errorf("typing = %+v, %v", ty, err)
	}
	if cv, err := ev.Conversation(); err != nil || cv.ID != 21 {
		t.Errorf("conversation of typing = %+v, %v", cv, err)
	}
	if ev = recv(t, r.events, "presence"); ev.Name != EventPresenceUpdate {
		t.Errorf("event = %s", ev.Name)
	}

	// Unsubscribe sends the same identifier and stops delivery at once.
	rc.Unsubscribe(tok1)
	expectCmd(t, f, "unsubscribe", tok1)
	if st := rc.Stats(); st.Subscriptions != 0 {
		t.Errorf("stats after unsubscribe = %+v", st)
	}
	if err := rc.stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if rc.Connected() {
		t.Error("Connected after Run returned")
	}
	select {
	case ev := <-r.events:
		t.Errorf("unexpected event %s", ev.Name)
	default:
	}
}

func TestCableSubscribeWhileRunning(t *testing.T) {
	f := newFakeCable(t, nil)
	f.setKnown(tok1, true)
	f.setKnown(tok2, true)
	r := newRecorder()
	rc := startCable(t, f.url(), r, nil)
	recv(t, f.connected, "connection")
	rc.Subscribe(tok1)
	rc.Subscribe(tok1) // idempotent
	expectCmd(t, f, "subscribe", tok1)
	recv(t, r.confirms, "confirm 1")
	rc.Subscribe(tok2)
	expectCmd(t, f, "subscribe", tok2)
	recv(t, r.confirms, "confirm 2")
	if st := rc.Stats(); st.Subscriptions != 2 || st.Confirmed != 2 {
		t.Errorf("stats = %+v", st)
	}
	// A token OneChat does not know gets no answer: its confirmation is still awaited, unlike
	// a confirmed one or one never subscribed.
	const unknown = "Qq1wE2rT3yU4iO5pA6sD7fG8"
	rc.Subscribe(unknown)
	expectCmd(t, f, "subscribe", unknown)
	if !rc.AwaitsConfirmation(unknown) {
		t.Error("AwaitsConfirmation = false for an unanswered subscribe")
	}
	if rc.AwaitsConfirmation(tok1) || rc.AwaitsConfirmation("never-subscribed") {
		t.Error("AwaitsConfirmation = true for a confirmed or a never subscribed token")
	}
	if rc.Confirmation(tok1) == 0 || rc.Confirmation(unknown) != 0 || rc.Confirmation("never-subscribed") != 0 {
		t.Errorf("Confirmation: confirmed %d, unanswered %d, never subscribed %d; want only the first not 0",
			rc.Confirmation(tok1), rc.Confirmation(unknown), rc.Confirmation("never-subscribed"))
	}
}

func TestCableReconnectAfterServerClose(t *testing.T) {
	f := newFakeCable(t, nil)
	f.setKnown(tok1, true)
	r := newRecorder()
	rc := startCable(t, f.url(), r, nil, tok1)

	fc := recv(t, f.connected, "connection 1")
	expectCmd(t, f, "subscribe", tok1)
	recv(t, r.confirms, "confirm 1")
	first := rc.Confirmation(tok1)
	fc.close()

	fc2 := recv(t, f.connected, "connection 2")
	cmd := expectCmd(t, f, "subscribe", tok1)
	if cmd.conn != fc2.n {
		t.Errorf("resubscribe on connection %d, want %d", cmd.conn, fc2.n)
	}
	recv(t, r.confirms, "confirm after reconnect")
	// Broadcasts of the gap were lost: the reading tells the two confirmations apart.
	if again := rc.Confirmation(tok1); first == 0 || again == 0 || again == first {
		t.Errorf("Confirmation before and after the reconnect: %d, %d; want two different numbers, not 0", first, again)
	}
	if st := recv(t, r.stats, "stats 1"); st.Reconnects != 0 {
		t.Errorf("first stats %+v", st)
	}
	if st := recv(t, r.stats, "stats 2"); st.Reconnects != 1 || !st.Connected || st.Confirmed != 1 {
		t.Errorf("stats after reconnect %+v", st)
	}
	fc2.broadcast(tok1, EventMessageCreated, sampleCableMessage)
	if ev := recv(t, r.events, "event after reconnect"); ev.Name != EventMessageCreated {
		t.Errorf("event %s", ev.Name)
	}
	// The reconnect was logged with attempt and sleep.
	found := false
	for _, e := range rc.logs.FilterMessage("cable disconnected; reconnecting").All() {
		m := e.ContextMap()
		_, a := m["attempt"]
		_, s := m["sleep"]
		found = found || (a && s)
	}
	if !found {
		t.Error("no reconnect log with attempt and sleep")
	}
}

func TestCableStalePingsReconnect(t *testing.T) {
	f := newFakeCable(t, nil) // never pings
	f.setKnown(tok1, true)
	r := newRecorder()
	startCable(t, f.url(), r, &CableOptions{StaleAfter: 200 * time.Millisecond}, tok1)
	recv(t, f.connected, "connection 1")
	recv(t, r.confirms, "confirm 1")
	recv(t, f.connected, "connection 2 after silence")
	recv(t, r.confirms, "confirm 2")
}

func TestCablePingsKeepConnectionAlive(t *testing.T) {
	f := newFakeCable(t, func(f *fakeCable) { f.pingEvery = 20 * time.Millisecond })
	f.setKnown(tok1, true)
	r := newRecorder()
	rc := startCable(t, f.url(), r, &CableOptions{StaleAfter: 150 * time.Millisecond}, tok1)
	recv(t, f.connected, "connection")
	recv(t, r.confirms, "confirm")
	for i := 0; i < 25; i++ { // about 500 ms, more than three stale periods
		recv(t, f.pinged, "ping")
	}
	if st := rc.Stats(); st.Reconnects != 0 || !st.Connected {
		t.Errorf("stats = %+v", st)
	}
	select {
	case <-f.connected:
		t.Error("reconnected although pings kept coming")
	default:
	}
}

func TestCableDisconnectFrame(t *testing.T) {
	t.Run("reconnect true", func(t *testing.T) {
		f := newFakeCable(t, nil)
		f.setKnown(tok1, true)
		r := newRecorder()
		startCable(t, f.url(), r, nil, tok1)
		fc := recv(t, f.connected, "connection 1")
		recv(t, r.confirms, "confirm 1")
		_ = fc.send(`{"type":"disconnect","reason":"server_restart","reconnect":true}`)
		recv(t, f.connected, "connection 2")
		recv(t, r.confirms, "confirm 2")
	})
	t.Run("reconnect false", func(t *testing.T) {
		f := newFakeCable(t, nil)
		f.setKnown(tok1, true)
		r := newRecorder()
		rc := startCable(t, f.url(), r, nil, tok1)
		fc := recv(t, f.connected, "connection")
		recv(t, r.confirms, "confirm")
		_ = fc.send(`{"type":"disconnect","reason":"unauthorized","reconnect":false}`)
		err := rc.wait(t)
		var de *DisconnectError
		if !errors.As(err, &de) || de.Reason != "unauthorized" || de.Reconnect {
			t.Fatalf("Run = %v", err)
		}
	})
}

func TestCableConfirmTimeoutResubscribes(t *testing.T) {
	f := newFakeCable(t, nil)
	r := newRecorder()
	rc := startCable(t, f.url(), r, &CableOptions{ConfirmTimeout: 150 * time.Millisecond}, tok1)
	recv(t, f.connected, "connection")
	expectCmd(t, f, "subscribe", tok1) // unknown token: silence, but the server keeps it registered
	f.setKnown(tok1, true)             // a plain repeated subscribe would now still be ignored
	expectCmd(t, f, "unsubscribe", tok1)
	expectCmd(t, f, "subscribe", tok1)
	if got := recv(t, r.confirms, "confirm after retry"); got != tok1 {
		t.Fatalf("confirmed %q", got)
	}
	if got := recv(t, r.timeouts, "timeout callback"); got != tok1 {
		t.Fatalf("timeout for %q", got)
	}
	logged := rc.logs.FilterMessage("cable subscription not confirmed; retrying").All()
	if len(logged) == 0 || logged[0].ContextMap()["token_hash"] != tokenHash(tok1) {
		t.Errorf("confirm timeout logs = %+v", logged)
	}
}

func TestCableMalformedFramesSkipped(t *testing.T) {
	f := newFakeCable(t, nil)
	f.setKnown(tok1, true)
	r := newRecorder()
	rc := startCable(t, f.url(), r, nil, tok1)
	fc := recv(t, f.connected, "connection")
	recv(t, r.confirms, "confirm")

	for _, frame := range []string{
		`not json SECRET-FRAME`,
		`{"identifier":"SECRET-FRAME`,
		`{"identifier":5,"message":{}}`,
		`{"type":"weird_new_type"}`,
		`{}`,
		`[1,2,3]`,
		`{"identifier":"` + strings.ReplaceAll(ident(tok1), `"`, `\"`) + `","message":"SECRET-FRAME"}`,
		`{"identifier":"` + strings.ReplaceAll(ident(tok1), `"`, `\"`) + `","message":{"data":{}}}`,
	} {
		if err := fc.send(frame); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := fc.ws.Write(ctx, websocket.MessageBinary, []byte{0xff, 0x00}); err != nil {
		t.Fatal(err)
	}
	fc.broadcast(tok1, EventMessageCreated, `{"id":1,"message_type":1}`)
	ev := recv(t, r.events, "valid event")
	if m, err := ev.Message(); err != nil || m.ID != 1 {
		t.Fatalf("event = %+v, %v", m, err)
	}
	if st := rc.Stats(); st.Reconnects != 0 || !st.Connected {
		t.Errorf("stats = %+v", st)
	}
	assertLogsFree(t, rc.logs, "SECRET-FRAME")
	if len(rc.logs.FilterMessage("cable frame skipped: malformed").All()) == 0 {
		t.Error("malformed frames were not logged")
	}
}

func TestCableRefusesWrongSubprotocol(t *testing.T) {
	f := newFakeCable(t, func(f *fakeCable) { f.noProtocol = true })
	rc := startCable(t, f.url(), newRecorder(), nil, tok1)
	if err := rc.wait(t); !errors.Is(err, ErrCableProtocol) {
		t.Fatalf("Run = %v", err)
	}
}

func TestCableHandshakeStatus(t *testing.T) {
	t.Run("404 stops Run", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		defer srv.Close()
		rc := startCable(t, srv.URL+"/cable", newRecorder(), nil, tok1)
		err := rc.wait(t)
		var he *HandshakeError
		if !errors.As(err, &he) || he.StatusCode != 404 {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("503 is retried", func(t *testing.T) {
		hits := make(chan struct{}, 64)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case hits <- struct{}{}:
			default:
			}
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		defer srv.Close()
		rc := startCable(t, srv.URL+"/cable", newRecorder(), nil, tok1)
		for i := 0; i < 3; i++ {
			recv(t, hits, "dial attempt")
		}
		if err := rc.stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if rc.Stats().Reconnects < 2 {
			t.Errorf("stats = %+v", rc.Stats())
		}
	})
}

func TestCablePacesSubscribes(t *testing.T) {
	f := newFakeCable(t, nil)
	toks := []string{"a1", "a2", "a3", "a4", "a5", "a6"}
	for _, tok := range toks {
		f.setKnown(tok, true)
	}
	r := newRecorder()
	startCable(t, f.url(), r, &CableOptions{SubscribeRate: 20}, toks...)
	var first time.Time
	for i := range toks {
		cmd := recv(t, f.cmds, "subscribe")
		if cmd.Command != "subscribe" {
			t.Fatalf("command %+v", cmd)
		}
		if i == 0 {
			first = time.Now()
		}
	}
	// Six subscribes at 20/s take five intervals of 50 ms.
	if d := time.Since(first); d < 200*time.Millisecond {
		t.Errorf("six subscribes took %s, want paced at 20/s", d)
	}
	seen := map[string]bool{}
	for range toks {
		seen[recv(t, r.confirms, "confirm")] = true
	}
	if len(seen) != len(toks) {
		t.Errorf("confirmed %v", seen)
	}
}

// blockingHandler blocks in CableEvent until its context ends.
type blockingHandler struct {
	entered chan struct{}
	once    sync.Once
}

func (h *blockingHandler) CableEvent(ctx context.Context, ev Event) {
	h.once.Do(func() { close(h.entered) })
	<-ctx.Done()
}

func (h *blockingHandler) CableConfirmed(ctx context.Context, token string) {}

func TestCableCancelLeavesNoGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	f := newFakeCable(t, func(f *fakeCable) { f.pingEvery = 20 * time.Millisecond })
	f.setKnown(tok1, true)
	h := &blockingHandler{entered: make(chan struct{})}
	rc := startCable(t, f.url(), h, &CableOptions{QueueSize: 1}, tok1)
	fc := recv(t, f.connected, "connection")
	expectCmd(t, f, "subscribe", tok1)
	// Fill the handler and the queue so the reader waits too.
	for i := 0; i < 4; i++ {
		fc.broadcast(tok1, EventMessageCreated, `{"id":1}`)
	}
	recv(t, h.entered, "handler entered")
	if err := rc.stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	f.close()
	goleak.VerifyNone(t, ignore)
}

func TestCableRunTwice(t *testing.T) {
	f := newFakeCable(t, nil)
	f.setKnown(tok1, true)
	r := newRecorder()
	rc := startCable(t, f.url(), r, nil, tok1)
	recv(t, r.confirms, "confirm")
	if err := rc.Run(context.Background()); err == nil {
		t.Fatal("second Run did not fail")
	}
}

func TestCableBackoff(t *testing.T) {
	c := NewCable("ws://x/cable", newRecorder(), &CableOptions{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	for attempt, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for i := 0; i < 50; i++ {
			if d := c.backoff(attempt); d < ceiling/2 || d > ceiling {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", attempt, d, ceiling/2, ceiling)
			}
		}
	}
}

func TestCableURLAndOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://chat.example.com":        "wss://chat.example.com/cable",
		"http://127.0.0.1:3000/":          "ws://127.0.0.1:3000/cable",
		"https://example.com/onechat?x=1": "wss://example.com/onechat/cable",
	} {
		if got, err := CableURL(in); err != nil || got != want {
			t.Errorf("CableURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := CableURL("ftp://x"); err == nil {
		t.Error("CableURL accepted ftp")
	}
	for in, want := range map[string]string{
		"wss://chat.example.com/cable":   "https://chat.example.com",
		"ws://127.0.0.1:3000/cable":      "http://127.0.0.1:3000",
		"https://chat.example.com/cable": "https://chat.example.com",
	} {
		if got := originOf(in); got != want {
			t.Errorf("originOf(%q) = %q, want %q", in, got, want)
		}
	}
	if id := identifierFor(tok1); id != `{"channel":"RoomChannel","pubsub_token":"JJhR4TG2fY93A3Ag8N2qjd2r"}` {
		t.Errorf("identifier = %s", id)
	}
}
