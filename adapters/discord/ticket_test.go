package discord

import (
	"context"
	"strings"
	"testing"

	"github.com/onechat/onechat-bridge/adapters/discord/discordtest"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/bridgetest"
	"github.com/onechat/onechat-bridge/texts"
)

// TestTicketThreadLifecycle: one thread per ticket. The welcome's Close ticket button is the
// user's close; a resolve posts a closing line and archives and locks the thread, once even when
// retried; an agent's reopen unarchives and unlocks it; after a close the panel opens a new
// thread for the next ticket.
func TestTicketThreadLifecycle(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	srv.AddUser(alice, "alice", "Alice")
	srv.AddUser(bob, "bob", "")
	srv.AddTextChannel(support)
	in := newInbox()
	a := newAdapter(t, srv, "support")
	start(t, srv, a, in)
	ctx := context.Background()

	srv.WaitFor(t, "panel", func() bool { return len(srv.MessagesLocked(support)) == 1 })
	panel := srv.Messages(support)[0]
	srv.UserPresses(alice, support, panel.ID, customOpenTicket)
	waitFor(t, in, "move to thread", func(s bridgetest.Snapshot) bool { return len(s.Moves()) == 1 })
	thread := in.Moves()[0].Chat.ID
	welcome := srv.Messages(thread)[0]
	if !strings.Contains(string(welcome.Components), customTicket+"close") || !strings.Contains(string(welcome.Components), enText(texts.CloseButton, nil)) {
		t.Fatalf("welcome components %s, want a Close ticket button", welcome.Components)
	}

	// Someone else in the thread cannot close it; the user can.
	srv.UserPresses(bob, thread, welcome.ID, customTicket+"close")
	iid := srv.UserPresses(alice, thread, welcome.ID, customTicket+"close")
	got := waitMsgs(t, in, 1)
	if got[0].Ticket != bridge.TicketClose || got[0].Chat.ID != thread || got[0].User.ID != alice || got[0].Text != "" {
		t.Fatalf("press = %+v, want alice closing her ticket", got[0])
	}
	srv.WaitFor(t, "press acknowledged", func() bool {
		rs := srv.InteractionResponsesLocked(iid)
		return len(rs) == 1 && rs[0].Type == callbackDeferredUpdate
	})

	user := bridge.UserRef{Platform: Platform, ID: alice}
	ev := bridge.TicketEvent{User: user, Chat: bridge.ChatRef{Platform: Platform, ID: thread}, ByUser: true, Notice: bridge.NoticeAuto}
	for range 2 { // the second call is a retry: nothing is posted twice
		if err := a.TicketClosed(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	msgs := srv.Messages(thread)
	last := msgs[len(msgs)-1]
	if last.Content != threadClosedEN || !strings.Contains(string(last.Components), customTicket+"reopen") {
		t.Errorf("last thread message %+v, want the closing line with a Reopen button", last)
	}
	if n := strings.Count(strings.Join(contents(msgs), "\n"), threadClosedEN); n != 1 {
		t.Errorf("closing line posted %d times, want once", n)
	}
	if ch, _ := srv.Channel(thread); !ch.Archived || !ch.Locked {
		t.Errorf("thread archived %v locked %v, want both", ch.Archived, ch.Locked)
	}

	// The agent reopens: the thread opens again.
	if err := a.TicketReopened(ctx, bridge.TicketEvent{User: user, Chat: ev.Chat, Notice: bridge.NoticeAuto}); err != nil {
		t.Fatal(err)
	}
	if ch, _ := srv.Channel(thread); ch.Archived || ch.Locked {
		t.Errorf("thread archived %v locked %v after reopen, want neither", ch.Archived, ch.Locked)
	}
	msgs = srv.Messages(thread)
	if last := msgs[len(msgs)-1]; last.Content != enText(texts.TicketReopened, nil) {
		t.Errorf("last thread message %q, want the reopened line", last.Content)
	}

	// Resolved again, with OneChat's own survey: no Reopen notice, still archived and locked;
	// the panel then opens a new thread for the next ticket.
	if err := a.TicketClosed(ctx, bridge.TicketEvent{User: user, Chat: ev.Chat, Surveyed: true, Notice: bridge.NoticeAuto}); err != nil {
		t.Fatal(err)
	}
	msgs = srv.Messages(thread)
	if last := msgs[len(msgs)-1]; last.Content != threadClosedEN || strings.Contains(string(last.Components), "reopen") {
		t.Errorf("last thread message %+v, want the closing line without a button", last)
	}
	srv.UserPresses(alice, support, panel.ID, customOpenTicket)
	waitFor(t, in, "second move", func(s bridgetest.Snapshot) bool { return len(s.Moves()) == 2 })
	if next := in.Moves()[1].Chat.ID; next == thread || len(srv.Threads(support)) != 2 {
		t.Errorf("the next ticket went to thread %s (first %s), want a new thread", next, thread)
	}
}

// TestTicketNoticeInDMs: in direct messages an agent's resolve says nothing by default, the
// user's own close is answered with a Reopen button, and Reopen's press becomes a reopen.
func TestTicketNoticeInDMs(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	srv.AddUser(alice, "alice", "Alice")
	in := newInbox()
	a := newAdapter(t, srv, "dm")
	start(t, srv, a, in)
	ctx := context.Background()
	srv.UserSendsDM(alice, "hi")
	waitMsgs(t, in, 1)
	dm := srv.DMChannel(alice)
	ev := bridge.TicketEvent{User: bridge.UserRef{Platform: Platform, ID: alice}, Chat: bridge.ChatRef{Platform: Platform, ID: dm}, Notice: bridge.NoticeAuto}
	if err := a.TicketClosed(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Messages(dm)); n != 1 {
		t.Fatalf("%d DM messages after an agent's resolve, want only the user's", n)
	}
	ev.ByUser = true
	if err := a.TicketClosed(ctx, ev); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages(dm)
	notice := msgs[len(msgs)-1]
	if notice.Content != enText(texts.TicketClosed, nil) || !strings.Contains(string(notice.Components), customTicket+"reopen") {
		t.Fatalf("notice %+v, want the closed notice with a Reopen button", notice)
	}
	srv.UserPresses(alice, dm, notice.ID, customTicket+"reopen")
	got := waitMsgs(t, in, 2)
	if got[1].Ticket != bridge.TicketReopen || got[1].Chat.ID != dm {
		t.Errorf("press = %+v, want a reopen", got[1])
	}
}

func contents(msgs []discordtest.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Content
	}
	return out
}

func TestTicketActionCustomIDs(t *testing.T) {
	for id, want := range map[string]bridge.TicketAction{customTicket + "close": bridge.TicketClose, customTicket + "reopen": bridge.TicketReopen,
		customTicket + "x": "", customOpenTicket: ""} {
		if got, ok := ticketAction(id); got != want || ok != (want != "") {
			t.Errorf("ticketAction(%q) = %q, %v; want %q", id, got, ok, want)
		}
	}
}

// enText is a catalogue text as a user whose language is English (or unknown) reads it.
func enText(k texts.Key, vars texts.Vars) string { return texts.Builtin().Text("en", k, vars) }

// threadClosedEN is the closing line of a ticket thread in English.
var threadClosedEN = enText(texts.ThreadClosedPanel, texts.Vars{"button": enText(texts.PanelButton, nil)})
