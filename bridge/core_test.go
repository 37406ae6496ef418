package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/bridgetest"
	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// harness runs a Core against a real Postgres, the fake OneChat and a fake adapter.
type harness struct {
	t       *testing.T
	store   *postgres.Store
	oc      *onechattest.Server
	adapter *bridgetest.FakeAdapter
	// platform, when set, is the adapter the core runs instead of adapter (which it wraps, to
	// add a capability).
	platform bridge.Adapter
	opts     bridge.Options
	// core is the Core start ran last; logs holds what it logged.
	core *bridge.Core
	logs *observer.ObservedLogs

	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, ocOpts *onechattest.Options) *harness {
	t.Helper()
	if ocOpts == nil {
		ocOpts = &onechattest.Options{}
	}
	if ocOpts.PingInterval == 0 {
		ocOpts.PingInterval = 50 * time.Millisecond
	}
	h := &harness{
		t:       t,
		store:   pgtest.NewStore(t),
		oc:      onechattest.NewServer(t, ocOpts),
		adapter: bridgetest.NewFakeAdapter(bridge.Platform("telegram")),
	}
	h.opts = bridge.Options{
		Store:      h.store,
		OneChat:    onechat.NewClient(h.oc.URL(), h.oc.InboxIdentifier(), &onechat.Options{HMACToken: h.oc.HMACToken()}),
		CableURL:   h.oc.CableURL(),
		Cable:      &onechat.CableOptions{StaleAfter: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
		IdlePoll:   200 * time.Millisecond,

		OneChatRetryAfter: 20 * time.Millisecond,
	}
	return h
}

// interceptPosts puts a proxy in front of the fake OneChat that hands intercept every POST
// whose path ends in suffix: intercept answers it itself (and reports true), reaching OneChat
// through oneChat as it sees fit, or leaves it to OneChat (false). Call it before start.
func (h *harness) interceptPosts(suffix string, intercept func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool) {
	h.intercept(func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, suffix)
	}, intercept)
}

// intercept puts a proxy in front of the fake OneChat that hands intercept every request
// match selects, as interceptPosts does. Call it before start, once: a second call replaces
// the first.
func (h *harness) intercept(match func(r *http.Request) bool, intercept func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool) {
	target, err := url.Parse(h.oc.URL())
	if err != nil {
		h.t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if match(r) && intercept(w, r, proxy) {
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	h.t.Cleanup(srv.Close) // after the core, which start's cleanup stops first
	h.opts.OneChat = onechat.NewClient(srv.URL, h.oc.InboxIdentifier(), &onechat.Options{HMACToken: h.oc.HMACToken()})
}

// afterConversationCreated lets the fake OneChat create every conversation the bridge opens
// and calls then with the request, the new conversation's id and its number (from 1) before
// the bridge gets OneChat's answer. Call it before start, instead of intercept.
func (h *harness) afterConversationCreated(then func(r *http.Request, conversationID int64, n int)) {
	var created atomic.Int32
	h.interceptPosts("/conversations", func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool {
		rec := httptest.NewRecorder()
		oneChat.ServeHTTP(rec, r)
		var conv struct {
			ID int64 `json:"id"`
		}
		if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &conv) == nil && conv.ID != 0 {
			then(r, conv.ID, int(created.Add(1)))
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return true
	})
}

// start runs a new Core; stop (or the test's end) stops it.
func (h *harness) start() {
	h.t.Helper()
	opts := h.opts
	opts.Adapters = []bridge.AdapterBuilder{h.adapter.Build}
	if h.platform != nil {
		opts.Adapters = []bridge.AdapterBuilder{func(host bridge.Host) (bridge.Adapter, error) {
			if _, err := h.adapter.Build(host); err != nil {
				return nil, err
			}
			return h.platform, nil
		}}
	}
	observed, logs := observer.New(zapcore.DebugLevel)
	h.logs = logs
	opts.Logger = zap.New(zapcore.NewTee(zaptest.NewLogger(h.t).Core(), observed))
	core, err := bridge.New(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.core = core
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- core.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("core stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		h.t.Error("core did not stop within 20 s")
	}
	h.cancel = nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var msgSeq struct {
	sync.Mutex
	n int
}

func userMessage(userID int64, text string) bridge.Inbound {
	msgSeq.Lock()
	msgSeq.n++
	id := msgSeq.n
	msgSeq.Unlock()
	uid := strconv.FormatInt(userID, 10)
	return bridge.Inbound{
		User:        bridge.UserRef{Platform: bridge.Platform("telegram"), ID: uid},
		Chat:        bridge.ChatRef{Platform: bridge.Platform("telegram"), ID: uid},
		MessageID:   strconv.Itoa(id),
		DisplayName: "Alice Example",
		Username:    "alice",
		Text:        text,
		SentAt:      time.Now(),
	}
}

// incoming returns the contents of the contact's incoming messages in conversation order.
func (h *harness) incoming(convID int64) []string {
	var out []string
	for _, m := range h.oc.Messages(convID) {
		if m.MessageType == 0 {
			out = append(out, m.Content)
		}
	}
	return out
}

// waitConversation waits until the contact exists and has n conversations, and returns the
// newest one.
func (h *harness) waitConversation(ctx context.Context, identifier string, n int) (onechattest.Contact, onechattest.Conversation) {
	h.t.Helper()
	var contact onechattest.Contact
	var conv onechattest.Conversation
	err := h.oc.Wait(ctx, func() bool {
		c, ok := h.oc.ContactByIdentifier(identifier)
		if !ok {
			return false
		}
		convs := h.oc.Conversations(c.ID)
		if len(convs) < n {
			return false
		}
		contact, conv = c, convs[0]
		for _, cv := range convs {
			if cv.ID > conv.ID {
				conv = cv
			}
		}
		return true
	})
	if err != nil {
		h.t.Fatalf("waiting for %d conversation(s) of %s: %v", n, identifier, err)
	}
	return contact, conv
}

func (h *harness) waitIncoming(ctx context.Context, convID int64, want ...string) {
	h.t.Helper()
	err := h.oc.Wait(ctx, func() bool { return len(h.incoming(convID)) >= len(want) })
	if err != nil {
		h.t.Fatalf("waiting for %d incoming messages in conversation %d: have %q: %v", len(want), convID, h.incoming(convID), err)
	}
	got := h.incoming(convID)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		h.t.Fatalf("conversation %d has incoming %q, want %q", convID, got, want)
	}
}

func (h *harness) waitSubscribed(ctx context.Context, contactID int64) {
	h.t.Helper()
	err := h.oc.Wait(ctx, func() bool {
		for _, ci := range h.oc.ContactInboxes(contactID) {
			if h.oc.Subscribed(ci.PubsubToken) > 0 {
				return true
			}
		}
		return false
	})
	if err != nil {
		h.t.Fatalf("bridge never subscribed to contact %d: %v", contactID, err)
	}
}

// waitStatus waits until the bridge has recorded the conversation status the cable announced.
// The bridge offers no signal for that, so the store is polled, bounded by ctx.
func (h *harness) waitStatus(ctx context.Context, userID, status string) {
	h.t.Helper()
	var cu bridge.Customer
	var err error
	if !poll(ctx, func() bool {
		cu, err = h.store.Customer(ctx, bridge.UserRef{Platform: bridge.Platform("telegram"), ID: userID})
		return err == nil && cu.ConversationStatus == status
	}) {
		h.t.Fatalf("bridge never recorded status %s: %+v %v", status, cu.ConversationStatus, err)
	}
}

// poll calls cond every 5 ms until it holds (true) or ctx ends (false): the bridge offers
// no signal for what it records in the store (nor for what it logs or has yet to read), so
// tests poll it.
func poll(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// waitLinked waits until the bridge has recorded which OneChat message the platform message
// is, which it does right after the platform accepted it (the adapter's Send returned). The
// bridge offers no signal for that, so the store is polled, bounded by ctx.
func (h *harness) waitLinked(ctx context.Context, chat bridge.ChatRef, platformMessageID string) {
	h.t.Helper()
	var err error
	if !poll(ctx, func() bool {
		_, err = h.store.LinkByPlatform(ctx, chat, platformMessageID)
		return err == nil
	}) {
		h.t.Fatalf("bridge never recorded platform message %s: %v", platformMessageID, err)
	}
}

func sentTexts(sent []bridge.Outbound) []string {
	out := make([]string, len(sent))
	for i, m := range sent {
		out[i] = m.Text
	}
	return out
}

func TestUserMessagesReachOneChatInOrder(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)

	for _, text := range []string{"one", "two", "three"} {
		if err := h.adapter.Receive(ctx, userMessage(1001, text)); err != nil {
			t.Fatal(err)
		}
	}
	contact, conv := h.waitConversation(ctx, "telegram:1001", 1)
	h.waitIncoming(ctx, conv.ID, "one", "two", "three")
	if contact.Name != "Alice Example" {
		t.Errorf("contact name = %q, want the user's display name", contact.Name)
	}
	if n := len(h.oc.ContactInboxes(contact.ID)); n != 1 {
		t.Errorf("contact has %d sessions, want 1", n)
	}
	for _, ci := range h.oc.ContactInboxes(contact.ID) {
		if ci.SourceID == "1001" || ci.SourceID == "telegram:1001" {
			t.Errorf("source_id %q is derived from the user id; it must be random", ci.SourceID)
		}
	}
}

// TestContactSessionIsVerifiedOnlyWhereItCan: with the inbox's HMAC token the new contact
// session is shown once with the identifier hash, which is what marks it verified; without one
// there is nothing to verify, and the show would only spend one of OneChat's requests.
func TestContactSessionIsVerifiedOnlyWhereItCan(t *testing.T) {
	for _, withHMAC := range []bool{true, false} {
		t.Run(fmt.Sprintf("hmac=%v", withHMAC), func(t *testing.T) {
			h := newHarness(t, nil)
			if !withHMAC {
				h.opts.OneChat = onechat.NewClient(h.oc.URL(), h.oc.InboxIdentifier(), nil)
			}
			h.start()
			ctx := ctxT(t)
			if err := h.adapter.Receive(ctx, userMessage(1001, "hello")); err != nil {
				t.Fatal(err)
			}
			contact, conv := h.waitConversation(ctx, "telegram:1001", 1)
			h.waitIncoming(ctx, conv.ID, "hello")
			cis := h.oc.ContactInboxes(contact.ID)
			if len(cis) != 1 || cis[0].HMACVerified != withHMAC {
				t.Errorf("contact sessions %+v; want one, verified %v", cis, withHMAC)
			}
			shows := 0
			for _, r := range h.oc.Requests() {
				if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/contacts/"+cis[0].SourceID) {
					shows++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[withHMAC]; shows != want {
				t.Errorf("the contact session was shown %d times; want %d", shows, want)
			}
		})
	}
}

func TestReplayedMessageIsStoredOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)

	m := userMessage(1002, "hello")
	for range 3 {
		if err := h.adapter.Receive(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.adapter.Receive(ctx, userMessage(1002, "after")); err != nil {
		t.Fatal(err)
	}
	_, conv := h.waitConversation(ctx, "telegram:1002", 1)
	h.waitIncoming(ctx, conv.ID, "hello", "after")
}

func TestAgentReplyReachesUserButNotNotesOrEchoes(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)

	if err := h.adapter.Receive(ctx, userMessage(1003, "I need help")); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:1003", 1)
	h.waitIncoming(ctx, conv.ID, "I need help")
	h.waitSubscribed(ctx, contact.ID)

	h.oc.PrivateNote(conv.ID, "internal: customer is on the pro plan")
	h.oc.AgentReply(conv.ID, "Hi, how can I help?")
	if err := h.adapter.Receive(ctx, userMessage(1003, "my order is late")); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, "I need help", "my order is late")
	h.oc.AgentReply(conv.ID, "Let me check.")

	sent, err := h.adapter.WaitSent(ctx, 2)
	if err != nil {
		t.Fatalf("waiting for agent replies: %v (sent %q)", err, sentTexts(h.adapter.Sent()))
	}
	if got, want := fmt.Sprint(sentTexts(sent)), fmt.Sprint([]string{"Hi, how can I help?", "Let me check."}); got != want {
		t.Fatalf("user received %s, want %s (no private note, no echo of their own messages)", got, want)
	}
	for _, m := range sent {
		if m.Chat != (bridge.ChatRef{Platform: bridge.Platform("telegram"), ID: "1003"}) {
			t.Errorf("reply went to %v, want the user's chat", m.Chat)
		}
		if m.AgentName == "" {
			t.Errorf("reply has no agent name")
		}
	}
}

func TestRestartReusesContactSessionAndConversation(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)

	if err := h.adapter.Receive(ctx, userMessage(1004, "before restart")); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:1004", 1)
	h.waitIncoming(ctx, conv.ID, "before restart")
	h.stop()

	h.start()
	if err := h.adapter.Receive(ctx, userMessage(1004, "after restart")); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, "before restart", "after restart")
	if n := len(h.oc.ContactInboxes(contact.ID)); n != 1 {
		t.Errorf("contact has %d sessions after restart, want 1", n)
	}
	if n := len(h.oc.Conversations(contact.ID)); n != 1 {
		t.Errorf("contact has %d conversations after restart, want 1", n)
	}
	// The restarted bridge subscribes again, so agent replies still arrive.
	h.oc.AgentReply(conv.ID, "welcome back")
	if _, err := h.adapter.WaitSent(ctx, 1); err != nil {
		t.Fatalf("agent reply after restart: %v", err)
	}
}

func TestCableRestartDoesNotStopReplies(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)

	if err := h.adapter.Receive(ctx, userMessage(1005, "hi")); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:1005", 1)
	h.waitIncoming(ctx, conv.ID, "hi")
	h.waitSubscribed(ctx, contact.ID)

	h.oc.RestartCable()
	h.oc.AgentReply(conv.ID, "reply after the cable came back")
	sent, err := h.adapter.WaitSent(ctx, 1)
	if err != nil {
		t.Fatalf("agent reply after cable restart: %v", err)
	}
	if sent[0].Text != "reply after the cable came back" {
		t.Errorf("user received %q", sent[0].Text)
	}
}

func TestRepliesLostByTheCableAreCaughtUp(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)

	if err := h.adapter.Receive(ctx, userMessage(1006, "hi")); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:1006", 1)
	h.waitIncoming(ctx, conv.ID, "hi")
	h.waitSubscribed(ctx, contact.ID)

	h.oc.DropEvents(1)
	h.oc.AgentReply(conv.ID, "this event was lost")
	h.oc.RestartCable()
	h.oc.AgentReply(conv.ID, "and this one was not")
	sent, err := h.adapter.WaitSent(ctx, 2)
	if err != nil {
		t.Fatalf("waiting for both replies: %v (sent %q)", err, sentTexts(h.adapter.Sent()))
	}
	if got, want := fmt.Sprint(sentTexts(sent)), "[this event was lost and this one was not]"; got != want {
		t.Errorf("user received %s, want %s in order", got, want)
	}
}

func TestMessageAfterResolveOpensNewConversation(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)

	if err := h.adapter.Receive(ctx, userMessage(1007, "first issue")); err != nil {
		t.Fatal(err)
	}
	contact, first := h.waitConversation(ctx, "telegram:1007", 1)
	h.waitIncoming(ctx, first.ID, "first issue")
	h.waitSubscribed(ctx, contact.ID)
	h.oc.Resolve(first.ID)
	h.waitStatus(ctx, "1007", "resolved")

	if err := h.adapter.Receive(ctx, userMessage(1007, "second issue")); err != nil {
		t.Fatal(err)
	}
	_, second := h.waitConversation(ctx, "telegram:1007", 2)
	if second.ID == first.ID {
		t.Fatal("no new conversation after resolve")
	}
	h.waitIncoming(ctx, second.ID, "second issue")
	if cv, _ := h.oc.Conversation(first.ID); cv.Status != "resolved" {
		t.Errorf("resolved conversation was reopened: %s", cv.Status)
	}
	if n := len(h.oc.ContactInboxes(contact.ID)); n != 1 {
		t.Errorf("contact has %d sessions, want 1", n)
	}
}

func TestMessageAfterResolveReopensWithReopenPolicy(t *testing.T) {
	h := newHarness(t, nil)
	h.opts.OnResolved = bridge.ReopenConversation
	h.start()
	ctx := ctxT(t)

	if err := h.adapter.Receive(ctx, userMessage(1008, "first")); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:1008", 1)
	h.waitIncoming(ctx, conv.ID, "first")
	h.waitSubscribed(ctx, contact.ID)
	h.oc.Resolve(conv.ID)
	h.waitStatus(ctx, "1008", "resolved")
	if err := h.adapter.Receive(ctx, userMessage(1008, "again")); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, "first", "again")
	if n := len(h.oc.Conversations(contact.ID)); n != 1 {
		t.Errorf("%d conversations, want the resolved one reopened", n)
	}
	if cv, _ := h.oc.Conversation(conv.ID); cv.Status != "open" {
		t.Errorf("conversation status %s, want open", cv.Status)
	}
}

func TestOneChatOutageLosesNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)

	h.oc.FailNext(4, 502)
	if err := h.adapter.Receive(ctx, userMessage(1009, "during outage"), userMessage(1009, "still down")); err != nil {
		t.Fatal(err)
	}
	_, conv := h.waitConversation(ctx, "telegram:1009", 1)
	h.waitIncoming(ctx, conv.ID, "during outage", "still down")

	h.oc.Throttle(2)
	if err := h.adapter.Receive(ctx, userMessage(1009, "throttled")); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, "during outage", "still down", "throttled")
}

func TestDeletedContactIsRecreated(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)

	if err := h.adapter.Receive(ctx, userMessage(1010, "hello")); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:1010", 1)
	h.waitIncoming(ctx, conv.ID, "hello")
	h.oc.DeleteContact(contact.ID)

	if err := h.adapter.Receive(ctx, userMessage(1010, "are you there?")); err != nil {
		t.Fatal(err)
	}
	_, conv2 := h.waitConversation(ctx, "telegram:1010", 1)
	h.waitIncoming(ctx, conv2.ID, "are you there?")
}

func TestBlockedUserFailsMessageAndMarksUnreachable(t *testing.T) {
	h := newHarness(t, nil)
	var attempts sync.Map
	h.adapter.SendFunc = func(ctx context.Context, m bridge.Outbound) error {
		n, _ := attempts.LoadOrStore(m.MessageID, new(int))
		*(n.(*int))++
		if m.Text == "blocked" {
			return bridge.Unreachable("user blocked the bot", errors.New("Forbidden: bot was blocked by the user"))
		}
		return nil
	}
	h.start()
	ctx := ctxT(t)

	if err := h.adapter.Receive(ctx, userMessage(1011, "hi")); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:1011", 1)
	h.waitIncoming(ctx, conv.ID, "hi")
	h.waitSubscribed(ctx, contact.ID)

	blocked := h.oc.AgentReply(conv.ID, "blocked")
	h.oc.AgentReply(conv.ID, "next")
	sent, err := h.adapter.WaitSent(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sent[0].Text != "next" {
		t.Errorf("sent %q, want the queue to move on to the next message", sent[0].Text)
	}
	state, reason, err := h.store.JobState(ctx, bridge.Out, "onechat:"+strconv.FormatInt(blocked.ID, 10))
	if err != nil {
		t.Fatal(err)
	}
	if state != bridge.JobFailed || reason == "" {
		t.Errorf("blocked message state %q reason %q, want failed with a reason", state, reason)
	}
	if n, ok := attempts.Load(blocked.ID); !ok {
		t.Errorf("the blocked message never reached the adapter; sent %q", sentTexts(sent))
	} else if *(n.(*int)) != 1 {
		t.Errorf("permanent failure was tried %d times, want 1", *(n.(*int)))
	}
	cu, err := h.store.Customer(ctx, bridge.UserRef{Platform: bridge.Platform("telegram"), ID: "1011"})
	if err != nil {
		t.Fatal(err)
	}
	if cu.UnreachableReason == "" {
		t.Error("customer not marked unreachable")
	}
}

func TestRateLimitedSendWaitsAndDelivers(t *testing.T) {
	h := newHarness(t, nil)
	var mu sync.Mutex
	limited := 0
	h.adapter.SendFunc = func(ctx context.Context, m bridge.Outbound) error {
		mu.Lock()
		defer mu.Unlock()
		if limited < 2 {
			limited++
			return bridge.RateLimited(50*time.Millisecond, errors.New("Too Many Requests"))
		}
		return nil
	}
	h.start()
	ctx := ctxT(t)
	if err := h.adapter.Receive(ctx, userMessage(1012, "hi")); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:1012", 1)
	h.waitIncoming(ctx, conv.ID, "hi")
	h.waitSubscribed(ctx, contact.ID)
	h.oc.AgentReply(conv.ID, "a")
	h.oc.AgentReply(conv.ID, "b")
	sent, err := h.adapter.WaitSent(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(sentTexts(sent)); got != "[a b]" {
		t.Errorf("sent %s, want [a b] in order after the rate limit", got)
	}
}
