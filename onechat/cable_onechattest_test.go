package onechat

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// nextEvent returns the next event named name, passing over others (presence.update after
// each subscribe, conversation.updated bursts).
func nextEvent(t *testing.T, r *recorder, name string) Event {
	t.Helper()
	for {
		if ev := recv(t, r.events, name); ev.Name == name {
			return ev
		}
	}
}

// TestCableAgainstOneChatFake runs the cable against the shared fake OneChat with a real
// contact session: confirm, typed events, a server restart, stalled pings, and a token the
// server does not know.
func TestCableAgainstOneChatFake(t *testing.T) {
	srv := onechattest.NewServer(t, &onechattest.Options{PingInterval: 30 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := NewClient(srv.URL(), srv.InboxIdentifier(), nil)
	contact, err := cl.CreateContact(ctx, ContactParams{Identifier: "telegram:1", Name: "Alice"})
	if err != nil {
		t.Fatal(err)
	}
	conv, err := cl.CreateConversation(ctx, contact.SourceID)
	if err != nil {
		t.Fatal(err)
	}
	const unknown = "NoSuchTokenNoSuchToken12"
	r := newRecorder()
	rc := startCable(t, srv.CableURL(), r, &CableOptions{StaleAfter: 300 * time.Millisecond,
		ConfirmTimeout: 200 * time.Millisecond, SilentAfter: 2}, contact.PubsubToken, unknown)
	defer assertLogsFree(t, rc.logs, contact.PubsubToken, contact.SourceID, unknown)

	if got := recv(t, r.confirms, "confirm"); got != contact.PubsubToken {
		t.Fatal("confirmed another token")
	}
	srv.AgentReply(conv.ID, "hello from the agent")
	ev := nextEvent(t, r, EventMessageCreated)
	if m, err := ev.Message(); err != nil || m.Content != "hello from the agent" || m.MessageType != MessageOutgoing ||
		m.ConversationID != conv.ID || ev.Token != contact.PubsubToken {
		t.Fatalf("message = %+v, %v", m, err)
	}
	srv.AgentTyping(conv.ID, true, true)
	ev = nextEvent(t, r, EventTypingOn)
	if ty, err := ev.Typing(); err != nil || !ty.On || !ty.Private || ty.Conversation.ID != conv.ID {
		t.Fatalf("typing = %+v, %v", ty, err)
	}
	if got := recv(t, r.silent, "silent unknown token"); got != unknown {
		t.Fatal("another token reported silent")
	}

	srv.RestartCable()
	if got := recv(t, r.confirms, "confirm after restart"); got != contact.PubsubToken {
		t.Fatal("confirmed another token")
	}
	srv.AgentReply(conv.ID, "after the restart")
	if m, _ := nextEvent(t, r, EventMessageCreated).Message(); m.Content != "after the restart" {
		t.Fatalf("message = %+v", m)
	}

	srv.StallPings(true)
	recv(t, r.confirms, "confirm after the stale socket was replaced")
	srv.StallPings(false)
	if st := rc.Stats(); st.Reconnects < 2 || st.Silent != 1 || !strings.Contains(st.LastError, "stale") {
		t.Errorf("stats = %+v", st)
	}
}
