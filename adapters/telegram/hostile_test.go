package telegram

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/bridgetest"
)

// userMessage is a Telegram message from u in their private chat, for PushUpdate.
func userMessage(u telegramtest.User, id int, text string) map[string]any {
	m := map[string]any{
		"message_id": id, "date": 1_700_000_000,
		"chat": map[string]any{"id": u.ID, "type": "private", "first_name": u.FirstName},
		"from": map[string]any{"id": u.ID, "is_bot": false, "first_name": u.FirstName},
	}
	if text != "" {
		m["text"] = text
	}
	return m
}

func TestStartFloodDoesNotHoldOtherUsersIntake(t *testing.T) {
	f := newFixture(t, testToken)
	f.a.greeting = "Hello!"
	in := newInbox()
	// When bob's message is stored, count the greetings alice has received so far: intake
	// must not have waited for them.
	greetedBeforeBob := -1
	in.DeliverHook(func(call int, cur bridge.Cursor, msgs []bridge.Inbound) error {
		for _, m := range msgs {
			if m.User.ID == strconv.FormatInt(bob.ID, 10) {
				greetedBeforeBob = len(f.srv.Sent(alice.ID))
			}
		}
		return nil
	})
	for range 100 {
		f.srv.SendText(alice, "/start")
	}
	f.srv.SendText(bob, "hello")
	stop := f.run(t, in)

	msgs := waitMessages(t, in, 1)
	var before int
	locked(in, func() { before = greetedBeforeBob })
	if len(msgs) != 1 || msgs[0].Text != "hello" {
		t.Fatalf("messages %+v", msgs)
	}
	if before > 1 {
		t.Errorf("alice had %d greetings before bob's message was stored: intake waited for them", before)
	}
	if _, err := f.srv.WaitSent(testCtx(t), alice.ID, 1); err != nil {
		t.Fatal(err)
	}
	stop() // waits for the follow-up sender
	if n := len(f.srv.Sent(alice.ID)); n != 1 {
		t.Errorf("alice was greeted %d times for 100 /start, want once", n)
	}
	if _, remembered, _ := in.Value(context.Background(), greetedKey(alice.ID)); !remembered {
		t.Error("the greeting was not remembered in the host's store")
	}
}

func TestGreetingIntervalIsRememberedAcrossRestarts(t *testing.T) {
	f := newFixture(t, testToken)
	f.a.greeting = "Hello!"
	now := time.Unix(1_800_000_000, 0)
	f.a.now = func() time.Time { return now }
	in := newInbox()
	// An earlier run (or another instance) greeted alice an hour ago, bob two days ago.
	ctx := context.Background()
	_ = in.SetValue(ctx, greetedKey(alice.ID), strconv.FormatInt(now.Add(-time.Hour).Unix(), 10))
	_ = in.SetValue(ctx, greetedKey(bob.ID), strconv.FormatInt(now.Add(-48*time.Hour).Unix(), 10))
	f.srv.SendText(alice, "/start")
	f.srv.SendText(bob, "/start")
	stop := f.run(t, in)

	// Follow-ups run in order: once bob is greeted, alice's /start was handled.
	if _, err := f.srv.WaitSent(testCtx(t), bob.ID, 1); err != nil {
		t.Fatal(err)
	}
	stop()
	if n := len(f.srv.Sent(alice.ID)); n != 0 {
		t.Errorf("alice was greeted again %d times within the interval", n)
	}
	if got, _, _ := in.Value(ctx, greetedKey(bob.ID)); !strings.HasPrefix(got, strconv.FormatInt(now.Unix(), 10)+".") {
		t.Errorf("bob's greeting time = %q, want now", got)
	}
}

func TestFollowUpsBeyondTheBoundAreDropped(t *testing.T) {
	f := newFixture(t, testToken)
	s := newFollowUpSender(2)
	for _, chat := range []int64{1, 1, 2, 1, 3, 4} {
		s.offer(f.a.log, followUp{greetChat: chat})
	}
	if n := s.dropped.Load(); n != 2 {
		t.Errorf("dropped %d follow-ups, want 2 (chats 3 and 4; chat 1's repeats merge)", n)
	}
	if n := len(s.queue); n != 2 {
		t.Errorf("%d follow-ups queued, want 2", n)
	}
	if f.logCount("dropped a telegram follow-up") != 2 {
		t.Error("drops were not logged")
	}
}

func TestAlbumsOfTwoUsersWithOneGroupIDStayApart(t *testing.T) {
	f := newFixture(t, testToken)
	in := newInbox()
	var last int64
	for i, u := range []telegramtest.User{alice, bob, alice, bob} {
		m := userMessage(u, 10+i, "")
		m["media_group_id"] = "same"
		m["photo"] = []map[string]any{{"file_id": fmt.Sprintf("p%d", i), "file_unique_id": fmt.Sprintf("u%d", i), "width": 1, "height": 1}}
		last = f.srv.PushUpdate("message", m)
	}
	f.run(t, in)
	waitCursor(t, in, last+1)
	msgs := in.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want one album per user: %+v", len(msgs), msgs)
	}
	for _, m := range msgs {
		if len(m.Attachments) != 2 || m.User.ID != m.Chat.ID {
			t.Errorf("album %+v", m)
		}
		for _, a := range m.Attachments {
			i, _ := strconv.Atoi(strings.TrimPrefix(a.Ref, "p"))
			if owner := []int64{alice.ID, bob.ID}[i%2]; strconv.FormatInt(owner, 10) != m.User.ID {
				t.Errorf("file %s of user %d is in %s's album", a.Ref, owner, m.User.ID)
			}
		}
	}
}

func TestWebhookAlbumsOfTwoUsersWithOneGroupIDStayApart(t *testing.T) {
	in := newInbox()
	f, url := webhookFixture(t, in)
	defer http.DefaultClient.CloseIdleConnections()
	_, secret := f.srv.Webhook()
	var wg sync.WaitGroup
	for i, u := range []telegramtest.User{alice, bob} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := userMessage(u, 10+i, "")
			m["media_group_id"] = "same"
			m["photo"] = []map[string]any{{"file_id": fmt.Sprintf("p%d", i), "file_unique_id": "u", "width": 1, "height": 1}}
			if code := postUpdate(t, url, secret, int64(10+i), "message", m); code != http.StatusOK {
				t.Errorf("part %d: %d", i, code)
			}
		}()
	}
	wg.Wait()
	msgs := waitMessages(t, in, 2)
	if len(msgs) != 2 || len(msgs[0].Attachments) != 1 || len(msgs[1].Attachments) != 1 || msgs[0].User == msgs[1].User {
		t.Fatalf("messages %+v", msgs)
	}
}

func TestReadyOnceTheFirstLongPollIsHeld(t *testing.T) {
	f := newFixture(t, testToken)
	in := newInbox()
	in.SetCursor(OffsetCursor, "7") // a restart with nothing pending
	f.run(t, in)
	if err := f.srv.WaitPolling(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for {
		changed, err := f.a.health.watch()
		if err == nil {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("not healthy while the long poll is held: %v", err)
		}
	}
	// The poll (50 s long) has not returned: it is still the first one.
	if n := f.srv.Calls("getUpdates"); n != 1 {
		t.Errorf("%d getUpdates calls, want the first one still held", n)
	}
}

func TestHealthStaysFailingWhileTelegramRefusesPolls(t *testing.T) {
	f := newFixture(t, testToken)
	waits := make(blockingWaits)
	f.a.wait = waits.wait
	f.srv.FailNext(2, http.StatusBadGateway)
	f.run(t, newInbox())
	w := waits.next(t) // after the first failure
	if f.a.Health() == nil {
		t.Error("healthy after a failed poll")
	}
	close(w.release)
	w = waits.next(t) // the second request was written and refused
	if f.a.Health() == nil {
		t.Error("healthy while polls keep failing")
	}
	close(w.release)
}

func TestWebhookRefusalsAreLoggedAtABoundedRate(t *testing.T) {
	in := newInbox()
	f, url := webhookFixture(t, in)
	defer http.DefaultClient.CloseIdleConnections()
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	f.a.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	const msg = "refused telegram webhook requests without the right secret"
	for range 5 {
		if code := postUpdate(t, url, "wrong", 1, "message", privateMessage(1, "forged")); code != http.StatusForbidden {
			t.Fatalf("wrong secret: %d", code)
		}
	}
	if n := f.logCount(msg); n != 1 {
		t.Errorf("%d log lines for 5 refusals within the interval, want 1", n)
	}
	mu.Lock()
	now = now.Add(refusalLogInterval)
	mu.Unlock()
	postUpdate(t, url, "", 1, "message", privateMessage(1, "forged"))
	lines := f.logs.FilterMessageSnippet(msg).All()
	if len(lines) != 2 || lines[1].ContextMap()["refused"] != int64(5) {
		t.Errorf("log lines %+v, want a second one counting the 5 refusals since the first", lines)
	}
}

func TestWebhookServerLimitsHeaders(t *testing.T) {
	in := newInbox()
	f, url := webhookFixture(t, in)
	defer http.DefaultClient.CloseIdleConnections()
	_, secret := f.srv.Webhook()
	req, _ := http.NewRequestWithContext(testCtx(t), http.MethodPost, url, bytes.NewReader([]byte(`{}`)))
	req.Header.Set(secretHeader, secret)
	req.Header.Set("X-Padding", strings.Repeat("a", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB of headers: %d, want 431", resp.StatusCode)
	}
}

// staleReads is a host whose Value never sees a stored value, as an instance that read just
// before another stored one.
type staleReads struct{ *bridgetest.MemHost }

func (staleReads) Value(context.Context, string) (string, bool, error) { return "", false, nil }

func TestTwoInstancesGreetingAtOnceGreetOnce(t *testing.T) {
	f := newFixture(t, testToken)
	f.a.greeting = "Hello!"
	f.a.host = staleReads{newInbox()}
	f.srv.SendText(alice, "/start") // the chat exists
	ctx := testCtx(t)
	f.a.greet(ctx, alice.ID, "") // this instance stores its time first
	f.a.greet(ctx, alice.ID, "") // the other read before that, and finds it taken
	if n := len(f.srv.Sent(alice.ID)); n != 1 {
		t.Errorf("alice was greeted %d times, want once", n)
	}
}
