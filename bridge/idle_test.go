package bridge_test

import (
	"fmt"
	"testing"
	"time"
)

// TestIdleUsersLeaveNothingInMemory: what the core keeps per user (the cable subscription and
// the role manager's record of it, the language and contact attributes it stored, the
// contact's blocked flag, catch-ups in flight) is gone after the idle sweep once the users'
// conversations have been resolved for IdleAfter, so the bridge's memory follows its active
// users, not every user who ever wrote. A user whose conversation is open keeps only their
// subscription.
func TestIdleUsersLeaveNothingInMemory(t *testing.T) {
	h := newHarness(t, nil)
	h.opts.IdleAfter = time.Hour
	h.opts.IdleSweep = time.Hour // the test sweeps itself, as of a later time
	h.start()
	ctx := ctxT(t)

	const users = 4
	var convs []int64
	for i := range users + 1 {
		m := userMessage(int64(2600+i), "hello")
		m.Language = "de"
		m.ContactAttributes = map[string]string{"plan": "pro"}
		if err := h.adapter.Receive(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range users + 1 {
		contact, conv := h.waitConversation(ctx, fmt.Sprintf("telegram:%d", 2600+i), 1)
		h.waitIncoming(ctx, conv.ID, "hello")
		h.waitSubscribed(ctx, contact.ID)
		convs = append(convs, conv.ID)
	}
	held := h.core.UserEntries()
	for _, what := range []string{"wanted tokens", "languages", "contact attributes", "blocked flags", "partition tokens", "cable subscriptions"} {
		if held[what] != users+1 {
			t.Errorf("after %d users wrote: %d %s, want %d", users+1, held[what], what, users+1)
		}
	}

	// All but the last user's conversations are resolved and recorded as such.
	for _, id := range convs[:users] {
		h.oc.Resolve(id)
	}
	for i := range users {
		h.waitStatus(ctx, fmt.Sprint(2600+i), "resolved")
	}
	// The resolves' catch-ups finish just after their statuses are recorded.
	if err := h.oc.Wait(ctx, func() bool { return h.core.UserEntries()["catch-ups"] == 0 }); err != nil {
		t.Fatalf("catch-ups still in flight: %v", h.core.UserEntries())
	}
	h.core.SweepIdle(ctx, time.Now().Add(3*time.Hour))

	want := map[string]int{"cable subscriptions": 1, "partition tokens": 1}
	if got := h.core.UserEntries(); fmt.Sprint(got) != fmt.Sprint(fullEntries(want)) {
		t.Errorf("three hours after %d of %d users' conversations were resolved: kept %v, want %v",
			users, users+1, got, fullEntries(want))
	}
	// OneChat sees the unsubscribes as the cable writes them.
	if err := h.oc.Wait(ctx, func() bool {
		for i := range users {
			contact, _ := h.oc.ContactByIdentifier(fmt.Sprintf("telegram:%d", 2600+i))
			for _, ci := range h.oc.ContactInboxes(contact.ID) {
				if h.oc.Subscribed(ci.PubsubToken) > 0 {
					return false
				}
			}
		}
		return true
	}); err != nil {
		t.Errorf("idle users still subscribed in OneChat: %v", err)
	}

	// The user whose conversation stays open still gets agent replies.
	h.oc.AgentReply(convs[users], "still here")
	if sent, err := h.adapter.WaitSent(ctx, 1); err != nil || sent[0].Text != "still here" {
		t.Fatalf("reply to the active user: %v %v", sent, err)
	}
}

// fullEntries is want with every other kind of UserEntries at 0.
func fullEntries(want map[string]int) map[string]int {
	out := map[string]int{}
	for _, k := range []string{"wanted tokens", "languages", "contact attributes", "blocked flags", "catch-ups", "partition tokens", "cable subscriptions"} {
		out[k] = want[k]
	}
	return out
}
