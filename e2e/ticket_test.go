package e2e_test

import (
	"testing"

	"github.com/onechat/onechat-bridge/adapters/telegram"
	"github.com/onechat/onechat-bridge/bridge"
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
	r.waitIncoming(ctx, conv.ID, "problem", bridge.TextUserClosed)
	if got := r.waitSentTexts(ctx, alice.ID, 1); got[0] != telegram.TextTicketClosedByUser {
		t.Fatalf("Telegram got %q, want the closed notice", got)
	}
	notice := r.w.TG.Sent(alice.ID)[0]
	if len(notice.Keyboard) != 1 || notice.Keyboard[0][0].Text != telegram.TextReopenButton {
		t.Fatalf("notice keyboard %+v, want Reopen", notice.Keyboard)
	}

	r.w.TG.PressButton(alice, notice.MessageID, notice.Keyboard[0][0].CallbackData)
	if err := r.w.OC.Wait(ctx, func() bool { c, _ := r.w.OC.Conversation(conv.ID); return c.Status == "open" }); err != nil {
		t.Fatalf("Reopen did not reopen the conversation: %v", err)
	}
	r.waitIncoming(ctx, conv.ID, "problem", bridge.TextUserClosed, bridge.TextUserReopened)
	if got := r.waitSentTexts(ctx, alice.ID, 2); got[1] != telegram.TextTicketReopened {
		t.Errorf("Telegram got %q, want the reopened line", got)
	}
	if n := len(r.w.OC.Conversations(contact.ID)); n != 1 {
		t.Errorf("%d conversations, want the one reopened", n)
	}
}
