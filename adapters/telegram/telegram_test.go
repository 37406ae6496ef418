package telegram

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/onechat/onechat-bridge/adapters/retry"
	"github.com/onechat/onechat-bridge/adapters/secret"
	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/bridgetest"
	"github.com/onechat/onechat-bridge/texts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testToken is distinctive so that a leak is easy to spot in any string.
const testToken = "123456:SECRET-token_xyz"

var (
	alice = telegramtest.User{ID: 42, FirstName: "Alice", LastName: "Liddell", Username: "alice"}
	bob   = telegramtest.User{ID: 43, FirstName: "Bob"}
)

// privateMessage is a Telegram message from alice in her private chat, for PushUpdate.
func privateMessage(id int, text string) map[string]any {
	m := map[string]any{
		"message_id": id, "date": 1_700_000_000,
		"chat": map[string]any{"id": alice.ID, "type": "private", "first_name": alice.FirstName},
		"from": map[string]any{"id": alice.ID, "is_bot": false, "first_name": alice.FirstName},
	}
	if text != "" {
		m["text"] = text
	}
	return m
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newInbox returns the in-memory host the adapter delivers to in these tests.
func newInbox() *bridgetest.MemHost { return bridgetest.NewMemHost() }

// waitMessages waits until h stored at least n messages and returns them all.
func waitMessages(t *testing.T, h *bridgetest.MemHost, n int) []bridge.Inbound {
	t.Helper()
	msgs, err := h.WaitMessages(testCtx(t), n)
	if err != nil {
		t.Fatalf("waiting for %d messages, have %d: %v", n, len(msgs), err)
	}
	return msgs
}

// waitCursor waits until h stored the update offset pos or a later one.
func waitCursor(t *testing.T, h *bridgetest.MemHost, pos int64) {
	t.Helper()
	if err := h.WaitCursor(testCtx(t), OffsetCursor, strconv.FormatInt(pos, 10)); err != nil {
		t.Fatalf("waiting for cursor %d: %v", pos, err)
	}
}

// locked runs f under h's lock, the one its Deliver hook runs under, so f may read what the
// hook wrote.
func locked(h *bridgetest.MemHost, f func()) {
	_ = h.Wait(context.Background(), func(bridgetest.Snapshot) bool { f(); return true })
}

// waitRecorder replaces Adapter.wait: it records what the adapter asked to wait and returns at
// once, so backoff and retry_after are observable without spending them.
type waitRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
	ch    chan time.Duration
}

func (w *waitRecorder) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.waits = append(w.waits, d)
	w.mu.Unlock()
	select {
	case w.ch <- d:
	default:
	}
	return ctx.Err()
}

func (w *waitRecorder) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.waits...)
}

type fixture struct {
	srv   *telegramtest.Server
	a     *Adapter
	logs  *observer.ObservedLogs
	waits *waitRecorder
	// paces records the pacer's waits, which are skipped as well.
	paces *waitRecorder
}

// newFixture starts a fake Bot API and an adapter pointed at it. The adapter logs to the test
// and to an observer; its waits are recorded and skipped.
func newFixture(t *testing.T, token string) *fixture {
	t.Helper()
	srv := telegramtest.NewServer(t, testToken)
	return newFixtureURL(t, srv, srv.URL(), token)
}

func newFixtureURL(t *testing.T, srv *telegramtest.Server, apiURL, token string) *fixture {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	a, err := New(Config{Token: secret.String(token), APIURL: apiURL, HTTPClient: &http.Client{Transport: tr, Timeout: time.Minute}}, newInbox(), logger)
	if err != nil {
		t.Fatal(err)
	}
	w := &waitRecorder{ch: make(chan time.Duration, 16)}
	a.wait = w.wait
	a.backoff = retry.Backoff{Base: time.Millisecond, Max: 8 * time.Millisecond, Jitter: 0.5}
	paces := &waitRecorder{ch: make(chan time.Duration, 16)}
	a.pacer.sleep = paces.wait
	// The fake stands for the cloud Bot API, with its 20 MB download limit.
	a.conv.maxDownload = CloudDownloadLimit
	a.maxUpload = cloudUploadLimit
	return &fixture{srv: srv, a: a, logs: logs, waits: w, paces: paces}
}

// run starts a.Run and returns a function that cancels it and waits for it to return, which
// the test's cleanup also calls. It fails the test if Run returns an error or does not return
// promptly.
func (f *fixture) run(t *testing.T, in bridge.Host) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	f.a.host, f.a.conv.texts = in, in.Texts()
	go func() { done <- f.a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil after cancel", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return within 5s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (f *fixture) logCount(msgPrefix string) int {
	return f.logs.FilterMessageSnippet(msgPrefix).Len()
}

func TestRunDeliversPrivateTextAndSkipsGroups(t *testing.T) {
	f := newFixture(t, testToken)
	f.a.greeting = "Hi! How can **we** help?"
	in := newInbox()
	f.run(t, in)

	m1 := f.srv.SendText(alice, "hello")
	f.srv.SendGroupText(-100, bob, "in a group")
	f.srv.SendGroupText(-100, bob, "again in a group")
	f.srv.SendText(bob, "/start")
	m3 := f.srv.SendReply(alice, "second", m1)
	f.srv.SendGroupText(-200, bob, "another group")
	edit := privateMessage(m1, "hello!")
	edit["edit_date"] = 2
	lastUpdate := f.srv.PushUpdate("edited_message", edit)

	msgs := waitMessages(t, in, 3)
	waitCursor(t, in, lastUpdate+1)
	if err := f.srv.WaitAcked(testCtx(t), lastUpdate); err != nil {
		t.Fatalf("the last update was not confirmed: %v", err)
	}
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want 3: %+v", len(msgs), msgs)
	}
	want := []struct{ user, text, id, replyTo, name string }{
		{"42", "hello", "1", "", "Alice Liddell"},
		{"42", "second", fmt.Sprint(m3), "1", "Alice Liddell"},
		{"42", "hello!", "1.edit.2", "", "Alice"},
	}
	for i, w := range want {
		m := msgs[i]
		if m.User != (bridge.UserRef{Platform: Platform, ID: w.user}) || m.Chat.ID != w.user ||
			m.Text != w.text || m.MessageID != w.id || m.ReplyTo != w.replyTo || m.DisplayName != w.name ||
			m.SentAt.IsZero() {
			t.Errorf("message %d = %+v, want %+v", i, m, w)
		}
	}
	if msgs[0].Username != "alice" || msgs[1].ReplyToText != "hello" || msgs[2].EditOf != "1" {
		t.Errorf("username %q, reply-to text %q, edit of %q", msgs[0].Username, msgs[1].ReplyToText, msgs[2].EditOf)
	}
	// /start created no message but was greeted, once the update was stored.
	greeting, err := f.srv.WaitSent(testCtx(t), bob.ID, 1)
	if err != nil || len(greeting) != 1 || greeting[0].Text != "Hi! How can we help?" || greeting[0].Raw != "Hi! How can <b>we</b> help?" {
		t.Errorf("greeting %+v, %v", greeting, err)
	}
	if n := f.logCount("ignoring telegram messages from a chat that is not private"); n != 2 {
		t.Errorf("logged %d skipped group chats, want one line per chat (2)", n)
	}
	if got := f.srv.AllowedUpdates(); strings.Join(got, ",") != "message,edited_message,callback_query" {
		t.Errorf("allowed_updates = %v", got)
	}
}

func TestRunRetriesDeliverAndAcksOnlyAfterSuccess(t *testing.T) {
	f := newFixture(t, testToken)
	in := newInbox()
	f.srv.SendText(alice, "must not be lost")
	updateID := f.srv.PushUpdate("message", privateMessage(2, "me too")) // the same batch
	var polls []int
	in.DeliverHook(func(call int, cur bridge.Cursor, msgs []bridge.Inbound) error {
		if acked := f.srv.Acked(); acked >= updateID-1 {
			t.Errorf("Deliver call %d: update %d already confirmed (acked %d) before Deliver succeeded", call, updateID-1, acked)
		}
		if cur.Name != OffsetCursor || cur.Int() != updateID+1 || len(msgs) != 2 {
			t.Errorf("Deliver call %d: cursor %+v with %d messages, want position %d and 2", call, cur, len(msgs), updateID+1)
		}
		polls = append(polls, f.srv.Calls("getUpdates"))
		if call <= 2 {
			return errors.New("database is down")
		}
		return nil
	})
	f.run(t, in)

	msgs := waitMessages(t, in, 2)
	if err := f.srv.WaitAcked(testCtx(t), updateID); err != nil {
		t.Fatal(err)
	}
	delivers, _ := in.Delivers()
	if delivers != 3 || len(msgs) != 2 || msgs[0].Text != "must not be lost" || msgs[1].Text != "me too" {
		t.Fatalf("%d delivers, messages %+v", delivers, msgs)
	}
	locked(in, func() { polls = slices.Clone(polls) })
	if polls[0] != polls[1] || polls[1] != polls[2] {
		t.Errorf("getUpdates calls at each Deliver attempt: %v; Run must not poll before Deliver succeeds", polls)
	}
	if n := f.logCount("deliver telegram updates failed, retrying"); n != 2 {
		t.Errorf("logged %d delivery failures, want 2", n)
	}
	if w := f.waits.all(); len(w) != 2 || w[0] <= 0 || w[1] <= 0 {
		t.Errorf("waits %v, want two backoffs", w)
	}
}

func TestRunResumesFromStoredOffset(t *testing.T) {
	f := newFixture(t, testToken)
	in := newInbox()
	stored := f.srv.PushUpdate("message", privateMessage(1, "already stored before the restart"))
	next := f.srv.PushUpdate("message", privateMessage(2, "new"))
	// The first update was stored by an earlier run, which stopped before confirming it.
	in.SetCursor(OffsetCursor, strconv.FormatInt(stored+1, 10))
	f.run(t, in)

	msgs := waitMessages(t, in, 1)
	if err := f.srv.WaitAcked(testCtx(t), next); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Text != "new" {
		t.Fatalf("messages %+v, want only the one after the stored offset", msgs)
	}
}

func TestRunMovesOffsetPastSkippedUpdates(t *testing.T) {
	f := newFixture(t, testToken)
	in := newInbox()
	var empty int
	in.DeliverHook(func(_ int, _ bridge.Cursor, msgs []bridge.Inbound) error {
		if len(msgs) == 0 {
			empty++
		}
		return nil
	})
	f.srv.SendGroupText(-100, bob, "group")
	service := privateMessage(9, "")
	service["new_chat_title"] = "a service message: nothing for the agent"
	stickerID := f.srv.PushUpdate("message", service)
	f.run(t, in)

	waitCursor(t, in, stickerID+1)
	if err := f.srv.WaitAcked(testCtx(t), stickerID); err != nil {
		t.Fatal(err)
	}
	var emptyDelivers int
	locked(in, func() { emptyDelivers = empty })
	if msgs := in.Messages(); len(msgs) != 0 || emptyDelivers == 0 {
		t.Fatalf("messages %+v, empty delivers %d", msgs, emptyDelivers)
	}
	if f.logCount("skipping telegram update") != 1 {
		t.Errorf("the service message should be skipped with one debug line")
	}
}

func TestRunSkipsAnUpdateItCannotDecode(t *testing.T) {
	f := newFixture(t, testToken)
	in := newInbox()
	fwd := privateMessage(1, "forwarded")
	fwd["forward_origin"] = map[string]any{"type": "from_the_future"}
	f.srv.PushUpdate("message", fwd)
	f.srv.SendText(alice, "next")
	f.run(t, in)

	msgs := waitMessages(t, in, 1)
	if msgs[0].Text != "next" {
		t.Fatalf("messages %+v", msgs)
	}
	if f.logCount("skipping telegram update that cannot be decoded") != 1 {
		t.Error("the undecodable update was not logged")
	}
}

func TestRunReturnsErrorWhenTokenRejected(t *testing.T) {
	srv := telegramtest.NewServer(t, testToken)
	wrong := "999:WRONG-token"
	f := newFixtureURL(t, srv, srv.URL(), wrong)
	f.a.host = newInbox()
	err := f.a.Run(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "TELEGRAM_BOT_TOKEN rejected") {
		t.Fatalf("Run = %v, want TELEGRAM_BOT_TOKEN rejected", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestRunBacksOffOnPollFailures(t *testing.T) {
	for _, tc := range []struct {
		status int
		log    string
	}{
		{http.StatusTooManyRequests, "telegram getUpdates rate limited"},
		{http.StatusConflict, "telegram getUpdates conflict"},
		{http.StatusBadGateway, "telegram getUpdates failed, retrying"},
		{http.StatusInternalServerError, "telegram getUpdates failed, retrying"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			f := newFixture(t, testToken)
			in := newInbox()
			f.srv.FailNext(2, tc.status)
			f.srv.SendText(alice, "after the failures")
			f.run(t, in)

			waitMessages(t, in, 1)
			waits := f.waits.all()
			if len(waits) != 2 {
				t.Fatalf("waits %v, want 2", waits)
			}
			for _, w := range waits {
				if tc.status == http.StatusTooManyRequests {
					if w != time.Second { // the fake's retry_after
						t.Errorf("waited %s, want retry_after 1s", w)
					}
				} else if w <= 0 || w > f.a.backoff.Max {
					t.Errorf("waited %s, want a backoff in (0, %s]", w, f.a.backoff.Max)
				}
			}
			if n := f.logCount(tc.log); n != 2 {
				t.Errorf("logged %q %d times, want 2", tc.log, n)
			}
		})
	}
}

func TestRunRetriesWhileStoreUnavailable(t *testing.T) {
	f := newFixture(t, testToken)
	in := &flakyCursorInbox{MemHost: newInbox(), failures: 2}
	f.srv.SendText(alice, "hi")
	f.run(t, in)
	waitMessages(t, in.MemHost, 1)
	if n := f.logCount("read telegram update offset failed, retrying"); n != 2 {
		t.Errorf("logged %d cursor failures, want 2", n)
	}
}

type flakyCursorInbox struct {
	*bridgetest.MemHost
	mu       sync.Mutex
	failures int
}

func (b *flakyCursorInbox) Cursor(ctx context.Context, name string) (string, error) {
	b.mu.Lock()
	fail := b.failures > 0
	b.failures--
	b.mu.Unlock()
	if fail {
		return "", errors.New("database is down")
	}
	return b.MemHost.Cursor(ctx, name)
}

func TestRunStopsPromptlyDuringLongPoll(t *testing.T) {
	f := newFixture(t, testToken)
	if f.a.pollTimeout != DefaultPollTimeout {
		t.Fatalf("poll timeout %s, want the default", f.a.pollTimeout)
	}
	stop := f.run(t, newInbox())
	if err := f.srv.WaitPolling(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop() // fails the test unless Run returns nil within 5s; the poll would last 50s
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %s to stop", d)
	}
}

func TestSendPlainTextAndReplies(t *testing.T) {
	f := newFixture(t, testToken)
	ctx := testCtx(t)
	userMsg := f.srv.SendText(alice, "question")
	chat := bridge.ChatRef{Platform: Platform, ID: "42"}

	ids, err := f.a.Send(ctx, bridge.Outbound{Chat: chat, Text: "now *Markdown* <b> & **bold**"})
	if err != nil || len(ids) != 1 || ids[0] != "2" {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	if _, err := f.a.Send(ctx, bridge.Outbound{Chat: chat, Text: "answer", ReplyTo: fmt.Sprint(userMsg)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Send(ctx, bridge.Outbound{Chat: chat, Text: "to a deleted message", ReplyTo: "999"}); err != nil {
		t.Fatalf("reply to a missing message must still send: %v", err)
	}
	sent, err := f.srv.WaitSent(ctx, alice.ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []telegramtest.SentMessage{
		{MessageID: 2, Method: "sendMessage", Text: "now Markdown <b> & bold", Raw: "now <i>Markdown</i> &lt;b&gt; &amp; <b>bold</b>", ParseMode: "HTML",
			Entities: []telegramtest.Entity{{Type: "italic", Offset: 4, Length: 8}, {Type: "bold", Offset: 19, Length: 4}}},
		{MessageID: 3, Method: "sendMessage", Text: "answer", Raw: "answer", ReplyTo: userMsg, ParseMode: "HTML"},
		{MessageID: 4, Method: "sendMessage", Text: "to a deleted message", Raw: "to a deleted message", ParseMode: "HTML"},
	}
	for i := range want {
		if !reflect.DeepEqual(sent[i], want[i]) {
			t.Errorf("sent[%d] = %+v, want %+v", i, sent[i], want[i])
		}
	}
}

func TestSendSplitsLongText(t *testing.T) {
	f := newFixture(t, testToken)
	f.srv.SendText(alice, "hi")
	para := strings.Repeat("emoji 😀 words ", 200) // 3000 UTF-16 units
	text := para + "\n\n" + para
	ids, err := f.a.Send(testCtx(t), bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: "42"}, Text: text})
	if err != nil || len(ids) != 2 {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	sent := f.srv.Sent(alice.ID)
	if len(sent) != 2 || sent[0].Text != strings.TrimSpace(para) || sent[1].Text != strings.TrimSpace(para) {
		t.Fatalf("sent %d messages, not split at the paragraph", len(sent))
	}
	if ids[0] != fmt.Sprint(sent[0].MessageID) || ids[1] != fmt.Sprint(sent[1].MessageID) {
		t.Fatalf("ids %v do not match sent %+v", ids, sent)
	}
}

// TestSendContinuesAfterDeliveredParts: a retry of a message whose first part an earlier Send
// delivered sends only the second, and returns its id.
func TestSendContinuesAfterDeliveredParts(t *testing.T) {
	f := newFixture(t, testToken)
	f.srv.SendText(alice, "hi")
	para := strings.Repeat("words ", 600)
	m := bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: "42"}, Text: "first " + para + "\n\nsecond " + para}
	m.Parts = []string{"7"} // the first part, delivered by the earlier attempt
	ids, err := f.a.Send(testCtx(t), m)
	if err != nil || len(ids) != 1 {
		t.Fatalf("Send = %v, %v; want the second part's id only", ids, err)
	}
	sent := f.srv.Sent(alice.ID)
	if len(sent) != 1 || !strings.HasPrefix(sent[0].Text, "second ") || ids[0] != fmt.Sprint(sent[0].MessageID) {
		t.Fatalf("sent %+v, want only the second part", sent)
	}
	m.Parts = []string{"7", ids[0]} // everything was delivered: nothing more to send
	if ids, err := f.a.Send(testCtx(t), m); err != nil || len(ids) != 0 || len(f.srv.Sent(alice.ID)) != 1 {
		t.Fatalf("Send of a delivered message = %v, %v; sent %d; want nothing sent", ids, err, len(f.srv.Sent(alice.ID)))
	}
}

// failOnCall is a RoundTripper that runs a fault injection just before the nth request, so a
// test can make a later part of a split message fail.
type failOnCall struct {
	next   http.RoundTripper
	n      int
	inject func()
	mu     sync.Mutex
	count  int
}

func (f *failOnCall) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.count++
	if f.count == f.n {
		f.inject()
	}
	f.mu.Unlock()
	return f.next.RoundTrip(r)
}

func TestSendRetriesLaterPartsItself(t *testing.T) {
	f := newFixture(t, testToken)
	f.srv.SendText(alice, "hi")
	rt := &failOnCall{next: f.a.client.Transport, n: 2, inject: func() { f.srv.RateLimit(1, 3) }}
	f.a.client = &http.Client{Transport: rt}
	text := strings.Repeat("a", 4000) + "\n" + strings.Repeat("b", 100)

	ids, err := f.a.Send(testCtx(t), bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: "42"}, Text: text})
	if err != nil || len(ids) != 2 {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	if sent := f.srv.Sent(alice.ID); len(sent) != 2 {
		t.Fatalf("sent %d messages, want 2 (no duplicate of the first part)", len(sent))
	}
	if w := f.waits.all(); len(w) != 1 || w[0] != 3*time.Second {
		t.Fatalf("waits %v, want retry_after 3s", w)
	}

	// A permanent failure of a later part returns the parts that did go out.
	rt.mu.Lock()
	rt.count, rt.inject = 0, func() { f.srv.Block(alice.ID) }
	rt.mu.Unlock()
	ids, err = f.a.Send(testCtx(t), bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: "42"}, Text: text})
	var perm *bridge.PermanentError
	if !errors.As(err, &perm) || !perm.Unreachable || len(ids) != 1 {
		t.Fatalf("Send = %v, %v; want one id and an Unreachable error", ids, err)
	}
}

func TestSendClassifiesErrors(t *testing.T) {
	chat := bridge.ChatRef{Platform: Platform, ID: "42"}
	tests := []struct {
		name   string
		setup  func(*telegramtest.Server)
		msg    bridge.Outbound
		check  func(t *testing.T, err error)
		reason string
	}{
		{
			name:   "blocked",
			setup:  func(s *telegramtest.Server) { s.Block(alice.ID) },
			reason: "user blocked the bot",
			check:  wantPermanent(true, "user blocked the bot"),
		},
		{
			name:  "rate limited",
			setup: func(s *telegramtest.Server) { s.RateLimit(1, 7) },
			check: func(t *testing.T, err error) {
				var rl *bridge.RateLimitedError
				if !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
					t.Fatalf("got %v, want RateLimited 7s", err)
				}
			},
		},
		{
			name:  "bad request",
			setup: func(s *telegramtest.Server) { s.FailNext(1, 400) },
			check: wantPermanent(false, "Bad Request: injected failure"),
		},
		{
			name:  "unknown chat",
			msg:   bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: "777"}, Text: "x"},
			check: wantPermanent(false, "Bad Request: chat not found"),
		},
		{name: "server error", setup: func(s *telegramtest.Server) { s.FailNext(1, 500) }, check: wantTransient},
		{name: "bad gateway", setup: func(s *telegramtest.Server) { s.FailNext(1, 502) }, check: wantTransient},
		{
			name:  "empty text",
			msg:   bridge.Outbound{Chat: chat, Text: " \n "},
			check: wantPermanent(false, "message has no text"),
		},
		{
			name:  "not a telegram chat",
			msg:   bridge.Outbound{Chat: bridge.ChatRef{Platform: bridge.Platform("discord"), ID: "42"}, Text: "x"},
			check: wantPermanent(false, "not a telegram chat: discord:42"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, testToken)
			f.srv.SendText(alice, "hi")
			if tc.setup != nil {
				tc.setup(f.srv)
			}
			m := tc.msg
			if m.Chat.ID == "" {
				m = bridge.Outbound{Chat: chat, Text: "hello"}
			}
			ids, err := f.a.Send(testCtx(t), m)
			if err == nil || len(ids) != 0 {
				t.Fatalf("Send = %v, %v; want an error and no ids", ids, err)
			}
			tc.check(t, err)
			if strings.Contains(fmt.Sprintf("%+v", err), testToken) {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
}

func wantPermanent(unreachable bool, reason string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var perm *bridge.PermanentError
		if !errors.As(err, &perm) || perm.Unreachable != unreachable || perm.Reason != reason {
			t.Fatalf("got %v (%#v), want Permanent(unreachable=%v, %q)", err, perm, unreachable, reason)
		}
	}
}

func wantTransient(t *testing.T, err error) {
	t.Helper()
	var perm *bridge.PermanentError
	var rl *bridge.RateLimitedError
	if errors.As(err, &perm) || errors.As(err, &rl) {
		t.Fatalf("got %v, want a plain (retried) error", err)
	}
}

func TestGetMe(t *testing.T) {
	f := newFixture(t, testToken)
	name, err := f.a.GetMe(testCtx(t))
	if err != nil || name != telegramtest.BotUsername {
		t.Fatalf("GetMe = %q, %v", name, err)
	}
}

// assertNoToken checks an error, every error it wraps, and every log line for the token.
func assertNoToken(t *testing.T, err error, logs *observer.ObservedLogs) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s := fmt.Sprintf("%v %+v %#v", e, e, e.Error()); strings.Contains(s, testToken) {
			t.Errorf("error leaks the token: %s", s)
		}
		var ue *url.Error
		if errors.As(e, &ue) && strings.Contains(ue.URL, testToken) {
			t.Errorf("*url.Error leaks the token: %s", ue.URL)
		}
	}
	enc := zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig())
	for _, entry := range logs.All() {
		buf, encErr := enc.EncodeEntry(entry.Entry, entry.Context)
		if encErr != nil {
			t.Fatal(encErr)
		}
		if strings.Contains(buf.String(), testToken) {
			t.Errorf("log line leaks the token: %s", buf.String())
		}
		buf.Free()
	}
}

func TestTokenNeverLeaks(t *testing.T) {
	t.Run("network error", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := "http://" + l.Addr().String()
		_ = l.Close() // nothing listens there any more: connection refused
		f := newFixtureURL(t, nil, dead, testToken)
		ctx := testCtx(t)

		_, err = f.a.Send(ctx, bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: "42"}, Text: "x"})
		if err == nil || !strings.Contains(err.Error(), redacted) {
			t.Fatalf("Send = %v, want a network error with the URL redacted", err)
		}
		wantTransient(t, err)
		assertNoToken(t, err, f.logs)
		_, err = f.a.GetMe(ctx)
		assertNoToken(t, err, f.logs)

		// Run logs the poll failures; stop it after a few.
		stop := f.run(t, newInbox())
		for range 3 {
			select {
			case <-f.waits.ch:
			case <-ctx.Done():
				t.Fatal("Run did not retry")
			}
		}
		stop()
		if f.logCount("telegram getUpdates failed, retrying") == 0 {
			t.Fatal("poll failures were not logged")
		}
		assertNoToken(t, nil, f.logs)
	})
	t.Run("cancelled request", func(t *testing.T) {
		f := newFixture(t, testToken)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := f.a.Send(ctx, bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: "42"}, Text: "x"})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v, want context.Canceled in the chain", err)
		}
		assertNoToken(t, err, f.logs)
	})
	t.Run("transport error echoing the URL", func(t *testing.T) {
		f := newFixture(t, testToken)
		errProxy := errors.New("proxy refused")
		f.a.client = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return nil, fmt.Errorf("%w the request to %s", errProxy, r.URL)
		})}
		_, err := f.a.Send(testCtx(t), bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: "42"}, Text: "x"})
		if !errors.Is(err, errProxy) || !strings.Contains(err.Error(), "/bot"+redacted+"/sendMessage") {
			t.Fatalf("Send = %v, want the proxy error, redacted", err)
		}
		assertNoToken(t, err, f.logs)
	})
	t.Run("api errors", func(t *testing.T) {
		f := newFixture(t, testToken)
		ctx := testCtx(t)
		f.srv.SendText(alice, "hi")
		for _, status := range []int{400, 403, 404, 429, 500} {
			f.srv.FailNext(1, status)
			_, err := f.a.Send(ctx, bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: "42"}, Text: "x"})
			if err == nil {
				t.Fatalf("status %d: no error", status)
			}
			assertNoToken(t, err, f.logs)
		}
		srv := f.srv
		wrong := newFixtureURL(t, srv, srv.URL(), "654321:OTHER-token")
		_, err := wrong.a.GetMe(ctx)
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Code != 401 || strings.Contains(err.Error(), "OTHER-token") {
			t.Fatalf("GetMe with a wrong token = %v", err)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNewValidatesConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"empty token", Config{}},
		{"token with a slash", Config{Token: "123:abc/../" + testToken}},
		{"relative URL", Config{Token: testToken, APIURL: "api.telegram.org"}},
		{"poll timeout below a second", Config{Token: testToken, PollTimeout: "1ms"}},
		{"HTTP timeout shorter than the poll", Config{Token: testToken, HTTPClient: &http.Client{Timeout: 30 * time.Second}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(tc.cfg, newInbox(), nil)
			if err == nil || a != nil {
				t.Fatalf("New = %v, %v; want an error", a, err)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
	a, err := New(Config{Token: testToken}, newInbox(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Platform() != Platform || a.pollTimeout != DefaultPollTimeout ||
		a.client.Timeout != DefaultPollTimeout+15*time.Second ||
		a.endpoint != "https://api.telegram.org/bot"+testToken+"/" {
		t.Fatalf("defaults not applied: %+v", a)
	}
	cfg := Config{Token: testToken, APIURL: "http://127.0.0.1:1"}
	if s := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg); strings.Contains(s, testToken) {
		t.Fatalf("formatting a Config leaks the token: %s", s)
	}
}

func TestUsersAreGreetedAndAskedInTheirOwnLanguage(t *testing.T) {
	f := newFixture(t, testToken)
	in := newInbox()
	f.run(t, in)
	carmen := telegramtest.User{ID: 77, FirstName: "Carmen", LanguageCode: "es"}
	joao := telegramtest.User{ID: 78, FirstName: "João", LanguageCode: "pt-br"}
	kenji := telegramtest.User{ID: 79, FirstName: "Kenji", LanguageCode: "ja"}
	f.srv.SendText(carmen, "/start")
	f.srv.SendText(joao, "/start")
	f.srv.SendText(kenji, "/start")
	f.srv.SendText(joao, "Olá")
	ctx := testCtx(t)
	cat := texts.Builtin()
	for _, tc := range []struct {
		user telegramtest.User
		lang string
	}{{carmen, "es"}, {joao, "pt-BR"}, {kenji, "en"}} {
		sent, err := f.srv.WaitSent(ctx, tc.user.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := cat.Text(tc.lang, texts.Greeting, nil); sent[0].Text != want {
			t.Errorf("%s (%s) was greeted %q, want %q", tc.user.FirstName, tc.user.LanguageCode, sent[0].Text, want)
		}
	}
	msgs := waitMessages(t, in, 1)
	if msgs[0].Language != "pt-br" {
		t.Errorf("message carries language %q, want Telegram's language_code pt-br", msgs[0].Language)
	}
	// A survey the agent sent without a text is asked in the language the core remembers.
	joaoRef := bridge.UserRef{Platform: Platform, ID: "78"}
	if got := in.UserLanguage(ctx, joaoRef); got != "pt-BR" {
		t.Fatalf("host remembers %q for João", got)
	}
	if _, err := f.a.Send(ctx, bridge.Outbound{User: joaoRef, Chat: bridge.ChatRef{Platform: Platform, ID: "78"}, ContentType: "input_csat"}); err != nil {
		t.Fatal(err)
	}
	sent, err := f.srv.WaitSent(ctx, joao.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := cat.Text("pt-BR", texts.CSATPrompt, nil); sent[1].Text != want {
		t.Errorf("CSAT prompt %q, want %q", sent[1].Text, want)
	}
}

func TestAGreetingSetByTheOperatorIsForEveryone(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{DefaultGreeting, ""},
		{"", ""},
		{"¡Hola! / Hello!", "¡Hola! / Hello!"},
		{"none", ""},
	} {
		cfg := Config{Token: testToken, Greeting: tc.env}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if cfg.greeting != tc.want || cfg.greetingOff != (tc.env == "none") {
			t.Errorf("TELEGRAM_GREETING=%q: fixed greeting %q, off %v", tc.env, cfg.greeting, cfg.greetingOff)
		}
	}
	f := newFixture(t, testToken)
	f.a.greeting = "¡Hola! / Hello!"
	f.run(t, newInbox())
	f.srv.SendText(telegramtest.User{ID: 80, FirstName: "Ana", LanguageCode: "es"}, "/start")
	sent, err := f.srv.WaitSent(testCtx(t), 80, 1)
	if err != nil || sent[0].Text != "¡Hola! / Hello!" {
		t.Errorf("greeting %+v, %v", sent, err)
	}
}
