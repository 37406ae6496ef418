package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/e2e"
)

// A hundred /start from one user hold back nobody: another user's message reaches OneChat and
// an agent's reply reaches its user while the flooder has been greeted at most a few times
// (each /start used to wait for the chat's send pacer inside the poll loop, about a second
// each, so the others waited for a hundred greetings); the flooder is greeted once in all.
func TestStartFloodStallsNobody(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := testCtx(t)

	r.w.TG.SendText(alice, "hello")
	contact, conv := r.conversation(ctx, tgIdentifier(alice))
	r.waitIncoming(ctx, conv.ID, "hello")
	r.waitSubscribed(ctx, contact.ID)

	flooder := user(5550099)
	for range 100 {
		r.w.TG.SendText(flooder, "/start")
	}
	r.w.TG.SendText(bob, "is anyone there?")
	r.w.OC.AgentReply(conv.ID, "Yes, Alice.")

	_, bobConv := r.conversation(ctx, tgIdentifier(bob))
	r.waitIncoming(ctx, bobConv.ID, "is anyone there?")
	if got := r.waitSentTexts(ctx, alice.ID, 1); got[0] != "Yes, Alice." {
		t.Errorf("Alice got %q, want the agent's reply", got)
	}
	if n := len(r.w.TG.Sent(flooder.ID)); n > 3 {
		t.Errorf("the others waited for %d greetings of the flooder", n)
	}

	// Bob's message came after every /start, so all of them were taken in; the one greeting
	// is sent by the time it shows, and no other follows once the bridge has stopped.
	if _, err := r.w.TG.WaitSent(ctx, flooder.ID, 1); err != nil {
		t.Fatalf("the flooder was never greeted: %v", err)
	}
	r.stop()
	if n := len(r.w.TG.Sent(flooder.ID)); n != 1 {
		t.Errorf("the flooder was greeted %d times, want once", n)
	}
	if c, ok := r.w.OC.ContactByIdentifier(tgIdentifier(flooder)); ok {
		t.Errorf("/start reached OneChat as contact %d", c.ID)
	}
}

// After a restart with no update waiting, /readyz answers 200 long before the first long poll
// returns: TELEGRAM_POLL_TIMEOUT is 50 s here, and readiness waits only for Telegram to accept
// the poll (it used to wait for the poll to return, so for 50 s).
func TestReadyzSoonAfterRestartWithNothingPending(t *testing.T) {
	r := newRig(t, withEnv("TELEGRAM_POLL_TIMEOUT=50s"))
	r.start()
	ctx := testCtx(t)

	r.w.TG.SendText(alice, "before the restart")
	_, conv := r.conversation(ctx, tgIdentifier(alice))
	r.waitIncoming(ctx, conv.ID, "before the restart")
	r.stop()
	if n := r.w.TG.Pending(); n != 0 {
		t.Fatalf("%d updates pending before the restart, want none", n)
	}

	p, err := e2e.Start(ctx, bridgeBin, r.env, r.logs)
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	// Far below the poll timeout; startup of a race-enabled binary included.
	readyCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var code int
	var body string
	if !poll(readyCtx, func() bool {
		code, body, _ = r.p.Get(readyCtx, "/readyz")
		return code == 200
	}) {
		t.Fatalf("/readyz did not answer 200 within 20 s of the restart (poll timeout 50 s): %d %s", code, body)
	}
	// Ready while its long poll is still waiting, and working: a message after it goes through.
	if err := r.w.TG.WaitPolling(ctx); err != nil {
		t.Fatal(err)
	}
	r.w.TG.SendText(alice, "after the restart")
	r.waitIncoming(ctx, conv.ID, "before the restart", "after the restart")
}
