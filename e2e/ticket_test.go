package e2e_test

import (
	"strings"
	"testing"

	"github.com/onechat/onechat-bridge/adapters/discord/discordtest"
	"github.com/onechat/onechat-bridge/texts"
)

// A Telegram user closes their ticket with /close: the agent sees the line, the conversation is
// resolved through the Client API, and the user gets one notice with Reopen; pressing it
// reopens the same conversation and says so on both sides.
func TestTelegramCloseAndReopen(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := testCtx(t)

	r.w.TG.SendText(alice, "problem")
	contact, conv := r.conversation(ctx, tgIdentifier(alice))
	r.waitIncoming(ctx, conv.ID, "problem")
	r.waitSubscribed(ctx, contact.ID)

	r.w.TG.SendText(alice, "/close")
	if err := r.w.OC.Wait(ctx, func() bool { c, _ := r.w.OC.Conversation(conv.ID); return c.Status == "resolved" }); err != nil {
		t.Fatalf("/close did not resolve the conversation: %v", err)
	}
	r.waitIncoming(ctx, conv.ID, "problem", texts.Builtin().Agent(texts.AgentUserClosed, nil))
	if got := r.waitSentTexts(ctx, alice.ID, 1); got[0] != texts.Builtin().Text("en", texts.TicketClosed, nil) {
		t.Fatalf("Telegram got %q, want the closed notice", got)
	}
	notice := r.w.TG.Sent(alice.ID)[0]
	if len(notice.Keyboard) != 1 || notice.Keyboard[0][0].Text != texts.Builtin().Text("en", texts.ReopenButton, nil) {
		t.Fatalf("notice keyboard %+v, want Reopen", notice.Keyboard)
	}

	r.w.TG.PressButton(alice, notice.MessageID, notice.Keyboard[0][0].CallbackData)
	if err := r.w.OC.Wait(ctx, func() bool { c, _ := r.w.OC.Conversation(conv.ID); return c.Status == "open" }); err != nil {
		t.Fatalf("Reopen did not reopen the conversation: %v", err)
	}
	r.waitIncoming(ctx, conv.ID, "problem", texts.Builtin().Agent(texts.AgentUserClosed, nil), texts.Builtin().Agent(texts.AgentUserReopened, nil))
	if got := r.waitSentTexts(ctx, alice.ID, 2); got[1] != texts.Builtin().Text("en", texts.TicketReopened, nil) {
		t.Errorf("Telegram got %q, want the reopened line", got)
	}
	if n := len(r.w.OC.Conversations(contact.ID)); n != 1 {
		t.Errorf("%d conversations, want the one reopened", n)
	}
}

// Discord's support channel keeps one thread per ticket: the agent's resolve archives and
// locks the thread with a closing line; the panel's button then opens a new thread, whose first
// message opens a new conversation.
func TestDiscordTicketThreadClosesOnResolve(t *testing.T) {
	var dc *discordtest.Server
	const support = "800000000000000900"
	r := newRig(t, withDiscord(t, &dc), withEnv("DISCORD_SUPPORT_CHANNEL_ID="+support))
	dc.AddUser(carol, "carol", "Carol")
	dc.AddTextChannel(support)
	r.start()
	ctx := testCtx(t)

	dc.WaitFor(t, "the panel", func() bool { return len(dc.MessagesLocked(support)) == 1 })
	panel := dc.Messages(support)[0]
	dc.UserPresses(carol, support, panel.ID, "onechat:open")
	dc.WaitFor(t, "the first thread", func() bool { return len(dc.ThreadsLocked(support)) == 1 })
	first := dc.Threads(support)[0]
	waitBotMessages(t, dc, first, 1) // the welcome
	dc.UserSendsIn(carol, first, "my order is late")
	contact, conv := r.conversation(ctx, "discord:"+carol)
	r.waitIncoming(ctx, conv.ID, "my order is late")
	r.waitSubscribed(ctx, contact.ID)

	r.w.OC.AgentReply(conv.ID, "it ships today")
	r.w.OC.Resolve(conv.ID)
	dc.WaitFor(t, "the thread archived and locked", func() bool { ch, _ := dc.ChannelLocked(first); return ch.Archived && ch.Locked })
	got := discordContents(botMessages(dc, first))
	if len(got) != 3 || got[1] != "it ships today" || !strings.Contains(got[2], "closed") {
		t.Fatalf("bot messages in the thread %q, want welcome, the reply, then the closing line", got)
	}

	dc.UserPresses(carol, support, panel.ID, "onechat:open")
	dc.WaitFor(t, "a second thread", func() bool { return len(dc.ThreadsLocked(support)) == 2 })
	second := dc.Threads(support)[1]
	if second == first {
		t.Fatal("the panel reused the closed thread")
	}
	waitBotMessages(t, dc, second, 1)
	dc.UserSendsIn(carol, second, "another question")
	if err := r.w.OC.Wait(ctx, func() bool { return len(r.w.OC.Conversations(contact.ID)) == 2 }); err != nil {
		t.Fatalf("no new conversation for the new thread: %v", err)
	}
	next := r.w.OC.Conversations(contact.ID)[1]
	r.waitIncoming(ctx, next.ID, "another question")
	r.w.OC.AgentReply(next.ID, "sure")
	if got := discordContents(waitBotMessages(t, dc, second, 2)); got[1] != "sure" {
		t.Errorf("second thread got %q", got)
	}
}
