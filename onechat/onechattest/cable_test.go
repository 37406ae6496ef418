package onechattest

import (
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestCableHandshakeAndPings(t *testing.T) {
	s, _ := newClient(t, &Options{PingInterval: 20 * time.Millisecond})
	// No Origin header and no auth are needed.
	c := dialCable(t, s)
	if got := c.ws.Subprotocol(); got != "actioncable-v1-json" {
		t.Errorf("subprotocol = %q", got)
	}
	ctx := ctxT(t)
	for range 2 {
		f, err := c.readFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f["type"] != "ping" {
			t.Fatalf("frame = %v, want ping", f)
		}
		if _, isNumber := f["message"].(float64); !isNumber {
			t.Errorf("ping message = %v, want a unix time", f["message"])
		}
	}
	// A foreign Origin is accepted too.
	ws, _, err := websocket.Dial(ctx, s.CableURL(), &websocket.DialOptions{
		Subprotocols: []string{"actioncable-v1-json"},
		HTTPHeader:   http.Header{"Origin": {"https://evil.example"}},
	})
	if err != nil {
		t.Fatalf("dial with a foreign origin: %v", err)
	}
	_ = ws.CloseNow()
}

func TestCableSubscribeEchoAndReplies(t *testing.T) {
	s, rc := newClient(t, nil)
	src, tok := rc.session(map[string]any{"identifier": "telegram:1"})
	conv := rc.conversation(src)
	c := dialCable(t, s)

	// The identifier is echoed byte for byte, whatever its key order and spacing.
	id := `{ "pubsub_token":"` + tok + `",  "channel":"RoomChannel"}`
	c.command("subscribe", id, "")
	if f := c.frame(); f["type"] != "confirm_subscription" || f["identifier"] != id {
		t.Fatalf("confirm = %v", f)
	}
	if gotID, name, data := c.event(); gotID != id || name != "presence.update" {
		t.Fatalf("after confirm: %s %s %v", gotID, name, data)
	} else {
		wantKeys(t, "presence", data, "account_id", "users")
	}
	if n := s.Subscribed(tok); n != 1 {
		t.Errorf("Subscribed = %d", n)
	}

	// The contact's own message comes back with its echo_id.
	posted := rc.obj("POST", rc.convPath(src, conv, "/messages"), map[string]any{"content": "hi", "echo_id": "tg:1:1"})
	gotID, _, data := c.event("message.created")
	if gotID != id {
		t.Errorf("broadcast identifier = %q", gotID)
	}
	if data["id"] != posted["id"] || data["echo_id"] != "tg:1:1" || data["message_type"] != 0.0 || data["sender_type"] != "Contact" {
		t.Errorf("echo = %v", data)
	}
	wantKeys(t, "echo", data, "id", "content", "account_id", "inbox_id", "conversation_id", "message_type",
		"created_at", "updated_at", "private", "status", "source_id", "content_type", "content_attributes",
		"sender_type", "sender_id", "external_source_ids", "additional_attributes", "processed_message_content",
		"sentiment", "conversation", "sender", "echo_id")
	if _, isString := data["updated_at"].(string); !isString {
		t.Errorf("message updated_at = %v, want an ISO string", data["updated_at"])
	}

	// A private note never reaches the contact; the reply after it does, without echo_id.
	s.PrivateNote(conv, "secret")
	reply := s.AgentReply(conv, "hello from agent")
	_, _, data = c.event("message.created")
	if data["id"] != float64(reply.ID) || data["content"] != "hello from agent" || data["message_type"] != 1.0 {
		t.Fatalf("next message.created = %v, want the reply", data)
	}
	if _, has := data["echo_id"]; has {
		t.Error("agent reply carries echo_id")
	}
	if sender := data["sender"].(map[string]any); sender["type"] != "user" || sender["name"] != "Agent Smith" {
		t.Errorf("sender = %v", sender)
	}
	// The first reply updates the conversation (first_reply_created_at, waiting_since).
	_, _, convData := c.event("conversation.updated")
	wantKeys(t, "conversation payload", convData, "additional_attributes", "can_reply", "channel", "contact_inbox", "id",
		"inbox_id", "messages", "labels", "meta", "status", "custom_attributes", "snoozed_until", "unread_count",
		"first_reply_created_at", "priority", "waiting_since", "agent_last_seen_at", "contact_last_seen_at",
		"last_activity_at", "timestamp", "created_at", "updated_at", "account_id")
	if convData["id"] != float64(conv) || convData["contact_inbox"].(map[string]any)["pubsub_token"] != tok {
		t.Errorf("conversation payload = %v", convData)
	}

	// Status changes give status_changed and updated.
	s.Resolve(conv)
	if _, name, d := c.event(); name != "conversation.status_changed" || d["status"] != "resolved" {
		t.Errorf("got %s %v", name, d["status"])
	}
	if _, name, _ := c.event(); name != "conversation.updated" {
		t.Errorf("got %s, want conversation.updated", name)
	}
	// A contact message reopens it, with the same pair of events.
	rc.obj("POST", rc.convPath(src, conv, "/messages"), map[string]any{"content": "again"})
	c.event("message.created")
	if _, name, d := c.event(); name != "conversation.status_changed" || d["status"] != "open" {
		t.Errorf("got %s %v, want status_changed open", name, d["status"])
	}

	// update_last_seen marks the reply read with message.updated.
	rc.call("POST", rc.convPath(src, conv, "/update_last_seen"), nil)
	_, _, upd := c.event("message.updated")
	if upd["id"] != float64(reply.ID) || upd["status"] != "read" {
		t.Errorf("message.updated = %v", upd)
	}
	if m, _ := s.Message(reply.ID); m.Status != "read" {
		t.Errorf("stored status = %s", m.Status)
	}

	// Agent typing carries is_private; the contact's own typing is not echoed.
	rc.call("POST", rc.convPath(src, conv, "/toggle_typing"), map[string]any{"typing_status": "on"})
	s.AgentTyping(conv, true, true)
	_, name, typing := c.event()
	if name != "conversation.typing_on" || typing["is_private"] != true {
		t.Errorf("got %s %v, want the agent's private typing first", name, typing)
	}
	wantKeys(t, "typing", typing, "conversation", "user", "is_private", "account_id", "performer")

	// Edits, deletes and failures arrive as message.updated.
	s.EditMessage(reply.ID, "edited")
	if _, _, d := c.event("message.updated"); d["content"] != "edited" {
		t.Errorf("edit = %v", d["content"])
	}
	s.DeleteMessage(reply.ID)
	if _, _, d := c.event("message.updated"); d["content_attributes"].(map[string]any)["deleted"] != true {
		t.Errorf("delete = %v", d)
	}
}

func TestCableUnknownTokenIsSilent(t *testing.T) {
	s, rc := newClient(t, nil)
	_, tok := rc.session(nil)
	c := dialCable(t, s)

	unknown := roomIdentifier("nosuchtoken0000000000000")
	c.command("subscribe", unknown, "")
	c.command("subscribe", `{"channel":"OtherChannel","pubsub_token":"`+tok+`"}`, "")
	c.command("subscribe", `{"channel":"RoomChannel","pubsub_token":"`+tok+`","user_id":1}`, "")
	c.sendRaw([]byte("not json"))
	c.sendRaw([]byte(`{"command":"subscribe","identifier":{"channel":"RoomChannel"}}`))
	c.command("bogus", unknown, "")
	c.command("message", unknown, `{"action":"update_presence"}`)
	// The next frame is the confirmation of a good subscription: nothing answered the above.
	good := c.subscribe(tok)

	// A second identical subscribe is ignored while the first stays registered.
	c.command("subscribe", good, "")
	c.command("message", good, `{"action":"update_presence"}`)
	if f := c.frame(); f["identifier"] != good || f["message"].(map[string]any)["event"] != "presence.update" {
		t.Fatalf("got %v, want only presence.update after a duplicate subscribe", f)
	}
	// After unsubscribe the same identifier can subscribe again.
	c.command("unsubscribe", good, "")
	if err := s.Wait(ctxT(t), func() bool { return s.Subscribed(tok) == 0 }); err != nil {
		t.Fatal(err)
	}
	c.subscribe(tok)
	if n := s.Subscribed(tok); n != 1 {
		t.Errorf("Subscribed = %d", n)
	}
}

func TestCableNoReplayAndDrops(t *testing.T) {
	s, rc := newClient(t, nil)
	src, tok := rc.session(nil)
	conv := rc.conversation(src)

	first := dialCable(t, s)
	first.subscribe(tok)
	_ = first.ws.CloseNow()
	if err := s.Wait(ctxT(t), func() bool { return s.Subscribed(tok) == 0 && s.Connections() == 0 }); err != nil {
		t.Fatal(err)
	}
	missed := s.AgentReply(conv, "while you were away")

	c := dialCable(t, s)
	c.subscribe(tok)
	s.DropEvents(1) // not the first reply, so no conversation.updated follows it
	s.AgentReply(conv, "dropped")
	seen := s.AgentReply(conv, "seen")
	if _, _, d := c.event("message.created"); d["id"] != float64(seen.ID) {
		t.Errorf("first message.created = %v, want %d (no replay of %d, drop of the next)", d["id"], seen.ID, missed.ID)
	}
	if l := rc.list("GET", rc.convPath(src, conv, "/messages"), nil); len(l) != 3 {
		t.Errorf("REST has %d messages, want all 3 for catch-up", len(l))
	}
}

func TestCableRestart(t *testing.T) {
	s, rc := newClient(t, nil)
	_, tok := rc.session(nil)
	c := dialCable(t, s)
	c.subscribe(tok)

	s.RestartCable()
	if n := s.Subscribed(tok); n != 0 {
		t.Errorf("Subscribed right after restart = %d, want 0", n)
	}
	f := c.frame()
	if f["type"] != "disconnect" || f["reason"] != "server_restart" || f["reconnect"] != true {
		t.Errorf("frame = %v", f)
	}
	_, err := c.readFrame(ctxT(t))
	if status := websocket.CloseStatus(err); status != websocket.StatusNormalClosure {
		t.Errorf("after disconnect: %v (status %d), want a normal close", err, status)
	}
	// A new connection works at once.
	again := dialCable(t, s)
	again.subscribe(tok)
	if err := s.Wait(ctxT(t), func() bool { return s.Connections() == 1 }); err != nil {
		t.Fatal(err)
	}
}

func TestCableStallPings(t *testing.T) {
	const interval = 20 * time.Millisecond
	s, _ := newClient(t, &Options{PingInterval: interval})
	s.StallPings(true)
	c := dialCable(t, s)

	type result struct {
		frame []byte
		err   error
	}
	next := make(chan result, 1)
	go func() {
		_, b, err := c.ws.Read(ctxT(t))
		next <- result{b, err}
	}()
	// Absence can only be observed over time: ten intervals without a frame.
	select {
	case r := <-next:
		t.Fatalf("got %s, %v while pings are stalled", r.frame, r.err)
	case <-time.After(10 * interval):
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("Connections = %d: the stalled socket must stay open", n)
	}
	// The same socket gets pings again.
	s.StallPings(false)
	r := <-next
	if r.err != nil {
		t.Fatal(r.err)
	}
	if f := decode(t, r.frame).(map[string]any); f["type"] != "ping" {
		t.Errorf("after StallPings(false): %v", f)
	}
}

func TestCableVerifiedFanOut(t *testing.T) {
	s, rc := newClient(t, nil)
	verify := map[string]any{"identifier": "telegram:1", "identifier_hash": s.IdentifierHash("telegram:1")}
	src1, tok1 := rc.session(map[string]any{"identifier": "telegram:1"})
	src2, tok2 := rc.session(map[string]any{"identifier": "telegram:1"})
	src3, tok3 := rc.session(map[string]any{"identifier": "telegram:1"}) // stays unverified
	for _, src := range []string{src1, src2} {
		rc.obj("GET", rc.inboxPath("/contacts/"+src+"?identifier=telegram:1&identifier_hash="+verify["identifier_hash"].(string)), nil)
	}
	conv := rc.conversation(src1)

	conv3 := rc.conversation(src3)

	c := dialCable(t, s)
	id1, id2 := c.subscribe(tok1), c.subscribe(tok2)
	c3 := dialCable(t, s)
	c3.subscribe(tok3)
	reply := s.AgentReply(conv, "to every verified session")
	marker := s.AgentReply(conv3, "only for the unverified session")
	if _, _, d := c3.event("message.created"); d["id"] != float64(marker.ID) {
		t.Errorf("unverified session got message %v before its own", d["id"])
	}
	got := map[string]bool{}
	for len(got) < 2 {
		id, _, d := c.event("message.created")
		if d["id"] != float64(reply.ID) {
			t.Fatalf("unexpected message %v", d["id"])
		}
		if id != id1 && id != id2 {
			t.Fatalf("delivered to %s, which is not verified", id)
		}
		got[id] = true
	}
	// Typing goes only to the conversation's own session.
	s.AgentTyping(conv, true, false)
	if id, _, _ := c.event("conversation.typing_on"); id != id1 {
		t.Errorf("typing went to %s", id)
	}
}
