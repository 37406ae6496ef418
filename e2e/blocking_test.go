package e2e_test

import (
	"slices"
	"testing"
)

// TestBlockedContactIsStoredNeverPosted: an agent blocks a contact in OneChat. The user's
// further messages are stored by the bridge (counted as blocked) but never posted, and none of
// them opens a new conversation, although ONECHAT_ON_RESOLVED=new would open one per message
// for a resolved conversation. The first message after the block may still reach OneChat: the
// bridge learns of the block from OneChat's answers.
func TestBlockedContactIsStoredNeverPosted(t *testing.T) {
	r := newRig(t, withEnv("ONECHAT_ON_RESOLVED=new"))
	r.start()
	ctx := testCtx(t)

	r.w.TG.SendText(alice, "hello")
	contact, conv := r.conversation(ctx, tgIdentifier(alice))
	r.waitIncoming(ctx, conv.ID, "hello")

	r.w.OC.Block(contact.ID)
	later := []string{"one", "two", "three", "four"}
	for _, s := range later {
		r.w.TG.SendText(alice, s)
	}
	if !poll(ctx, func() bool {
		m, err := r.p.Scrape(ctx)
		return err == nil && m.Value("bridge_messages_total", "direction", "in", "platform", "telegram", "result", "blocked") >= 3
	}) {
		t.Fatal("/metrics never counted three blocked messages")
	}
	var posted []string
	for _, cv := range r.w.OC.Conversations(contact.ID) {
		posted = append(posted, contents(r.incoming(cv.ID))...)
	}
	for _, s := range later[1:] {
		if slices.Contains(posted, s) {
			t.Errorf("a blocked contact's %q reached OneChat (posted: %q)", s, posted)
		}
	}
	if n := len(r.w.OC.Conversations(contact.ID)); n != 1 {
		t.Errorf("the blocked contact has %d conversations, want the one from before the block", n)
	}
	if sent := r.w.TG.Sent(alice.ID); len(sent) != 0 {
		t.Errorf("the blocked user was sent %d messages, want none (BRIDGE_BLOCKED_NOTICE is not set)", len(sent))
	}
}
