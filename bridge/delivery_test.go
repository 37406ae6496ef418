package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
	"github.com/onechat/onechat-bridge/texts"
)

// start begins a conversation for the user and waits until the bridge listens to it.
func (h *harness) begin(ctx context.Context, userID int64, text string) (onechattest.Contact, onechattest.Conversation, bridge.Inbound) {
	h.t.Helper()
	m := userMessage(userID, text)
	if err := h.adapter.Receive(ctx, m); err != nil {
		h.t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:"+strconv.FormatInt(userID, 10), 1)
	h.waitIncoming(ctx, conv.ID, text)
	h.waitSubscribed(ctx, contact.ID)
	return contact, conv, m
}

func TestAgentEditsAndDeletesReachEveryPart(t *testing.T) {
	h := newHarness(t, nil)
	h.adapter.PartsPerMessage = 2
	h.start()
	ctx := ctxT(t)
	contact, conv, _ := h.begin(ctx, 2001, "hi")

	reply := h.oc.AgentReply(conv.ID, "Your order ships on Monday")
	if _, err := h.adapter.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	h.oc.EditMessage(reply.ID, "Your order ships on Tuesday")
	changes, err := h.adapter.WaitChanges(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c := changes[0]; c.Op != bridge.OpEdit || c.Text != "Your order ships on Tuesday" || fmt.Sprint(c.Parts) != "[sent-1 sent-2]" {
		t.Fatalf("edit = %+v, want op edit of both parts with the new text", c)
	}
	// A status-only update (the user read the message) must not become an edit.
	ci := h.oc.ContactInboxes(contact.ID)[0]
	if err := h.opts.OneChat.UpdateLastSeen(ctx, ci.SourceID, conv.ID); err != nil {
		t.Fatal(err)
	}
	h.oc.DeleteMessage(reply.ID)
	changes, err = h.adapter.WaitChanges(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if c := changes[1]; c.Op != bridge.OpDelete || fmt.Sprint(c.Parts) != "[sent-1 sent-2]" {
		t.Fatalf("second change = %+v, want the delete of both parts (a read receipt is no edit)", c)
	}
}

func TestRepliesAreMappedBothWays(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)
	_, conv, first := h.begin(ctx, 2002, "Where is my parcel?")
	var firstID int64
	for _, m := range h.oc.Messages(conv.ID) {
		if m.Content == "Where is my parcel?" {
			firstID = m.ID
		}
	}

	// An agent's reply quoting the user's message becomes a platform reply to it. (The message
	// is mapped when its job is recorded, a moment after OneChat has it.)
	h.waitLinked(ctx, first.Chat, first.MessageID)
	h.oc.PostAgentMessage(conv.ID, onechattest.AgentMessage{Content: "It left the warehouse", InReplyTo: firstID})
	sent, err := h.adapter.WaitSent(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sent[0].ReplyTo != first.MessageID {
		t.Errorf("agent reply has ReplyTo %q, want the user's platform message %q", sent[0].ReplyTo, first.MessageID)
	}

	// A user's reply to the agent's message carries a quote of it for the agent. (The user
	// can reply once the message is delivered, which the bridge records right after sending.)
	h.waitLinked(ctx, sent[0].Chat, "sent-1")
	reply := userMessage(2002, "Thanks!")
	reply.ReplyTo = "sent-1"
	if err := h.adapter.Receive(ctx, reply); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, "Where is my parcel?", "↩️ In reply to:\n> It left the warehouse\n\nThanks!")
}

func TestUserEditsAndDeletesKeepHistory(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)
	_, conv, orig := h.begin(ctx, 2003, "My order number is 1234")

	edit := userMessage(2003, "My order number is 1243")
	edit.MessageID = orig.MessageID + ".edit.1"
	edit.EditOf = orig.MessageID
	del := userMessage(2003, "")
	del.MessageID = orig.MessageID + ".delete"
	del.DeletedOf = orig.MessageID
	if err := h.adapter.Receive(ctx, edit, del); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID,
		"My order number is 1234",
		"✏️ The user edited a message:\n> My order number is 1234\n\nNow it reads:\nMy order number is 1243",
		"🗑 The user deleted a message:\n> My order number is 1234")
}

func TestAgentTypingShowsButPrivateNoteTypingDoesNot(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)
	_, convA, a := h.begin(ctx, 2004, "hello")
	_, convB, b := h.begin(ctx, 2005, "hello too")
	_, convC, c := h.begin(ctx, 2006, "and me")

	h.oc.AgentTyping(convA.ID, true, true) // typing a private note: never shown
	h.oc.AgentTyping(convB.ID, true, false)
	// The platform's indicator fades by itself: the core shows it again every TypingRefresh
	// (1 s here) while the agent types.
	if _, err := h.adapter.WaitTyping(ctx, b.Chat, 3); err != nil {
		t.Fatal(err)
	}
	h.oc.AgentTyping(convB.ID, false, false)
	h.oc.AgentTyping(convC.ID, true, false)
	// Typing events are handled in order: once C shows, B's "off" was handled.
	if _, err := h.adapter.WaitTyping(ctx, c.Chat, 1); err != nil {
		t.Fatal(err)
	}
	bCalls, _ := h.adapter.WaitTyping(ctx, b.Chat, 0)
	if _, err := h.adapter.WaitTyping(ctx, c.Chat, 2); err != nil { // a refresh later
		t.Fatal(err)
	}
	if after, _ := h.adapter.WaitTyping(ctx, b.Chat, 0); len(after) != len(bCalls) {
		t.Errorf("typing was still shown after the agent stopped: %d calls, then %d", len(bCalls), len(after))
	}
	if calls, _ := h.adapter.WaitTyping(ctx, a.Chat, 0); len(calls) != 0 {
		t.Errorf("typing a private note was shown to the user %d times", len(calls))
	}
}

func TestUnreachableUserIsShownToAgents(t *testing.T) {
	h := newHarness(t, nil)
	blocked := atomic.Bool{}
	blocked.Store(true)
	h.adapter.SendFunc = func(ctx context.Context, m bridge.Outbound) error {
		if blocked.Load() {
			return bridge.Unreachable("user blocked the bot", nil)
		}
		return nil
	}
	h.start()
	ctx := ctxT(t)
	contact, conv, _ := h.begin(ctx, 2005, "hi")

	h.oc.AgentReply(conv.ID, "are you there?")
	attr := func() any {
		c, _ := h.oc.ContactByID(contact.ID)
		return c.CustomAttributes["bridge_status"]
	}
	if err := h.oc.Wait(ctx, func() bool { return attr() == "unreachable" }); err != nil {
		t.Fatalf("contact not marked unreachable in OneChat: %v (bridge_status %v)", err, attr())
	}
	c, _ := h.oc.ContactByID(contact.ID)
	if c.CustomAttributes["bridge_unreachable_reason"] != "user blocked the bot" {
		t.Errorf("reason %v", c.CustomAttributes["bridge_unreachable_reason"])
	}

	// The user unblocks the bot and writes again.
	blocked.Store(false)
	if err := h.adapter.Receive(ctx, userMessage(2005, "sorry, back")); err != nil {
		t.Fatal(err)
	}
	if err := h.oc.Wait(ctx, func() bool { return attr() == "reachable" }); err != nil {
		t.Fatalf("contact not marked reachable again: %v (bridge_status %v)", err, attr())
	}
}

func TestRateLimitSpendsNoAttempt(t *testing.T) {
	h := newHarness(t, nil)
	h.opts.MaxOutboundAttempts = 1 // any counted failure would fail the message
	var limited atomic.Int32
	h.adapter.SendFunc = func(ctx context.Context, m bridge.Outbound) error {
		if limited.Add(1) <= 3 {
			return bridge.RateLimited(30*time.Millisecond, fmt.Errorf("429"))
		}
		return nil
	}
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 2006, "hi")
	start := time.Now()
	h.oc.AgentReply(conv.ID, "after the wait")
	sent, err := h.adapter.WaitSent(ctx, 1)
	if err != nil {
		t.Fatalf("rate-limited message never delivered: %v", err)
	}
	if sent[0].Text != "after the wait" {
		t.Errorf("sent %q", sent[0].Text)
	}
	if waited := time.Since(start); waited < 90*time.Millisecond {
		t.Errorf("delivered after %s, before the three 30 ms waits the platform asked for", waited)
	}
}

// flakyOneChat sits between the bridge and the fake OneChat and fails a share of the REST
// requests: half before they reach OneChat, half after (OneChat did the work, the answer is
// lost), which is what makes retries double messages in naive clients.
type flakyOneChat struct {
	srv      *httptest.Server
	mu       sync.Mutex
	rnd      *rand.Rand
	failRate float64
	failed   atomic.Int64
}

func newFlakyOneChat(t *testing.T, target string, failRate float64) *flakyOneChat {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f := &flakyOneChat{rnd: rand.New(rand.NewPCG(1, 2)), failRate: failRate}
	proxy := httputil.NewSingleHostReverseProxy(u)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		roll := f.rnd.Float64()
		f.mu.Unlock()
		switch {
		case roll < f.failRate/2:
			f.failed.Add(1)
			http.Error(w, `{"status":500,"error":"Internal Server Error"}`, http.StatusInternalServerError)
		case roll < f.failRate:
			f.failed.Add(1)
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			http.Error(w, "bad gateway", http.StatusBadGateway)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// TestManyUsersBothWaysUnderFaults: 50 users × 20 messages each direction, concurrently, with
// OneChat failing 20% of requests and the cable restarting twice: everything arrives, once, in
// order per user.
func TestManyUsersBothWaysUnderFaults(t *testing.T) {
	const users, perUser = 50, 20
	h := newHarness(t, &onechattest.Options{MessageFloodLimit: -1})
	flaky := newFlakyOneChat(t, h.oc.URL(), 0.2)
	h.opts.OneChat = onechat.NewClient(flaky.srv.URL, h.oc.InboxIdentifier(), &onechat.Options{HMACToken: h.oc.HMACToken()})
	h.opts.InboundWorkers, h.opts.OutboundWorkers = 8, 8
	h.start()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Inbound: every user sends 20 messages, users in parallel.
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			for i := range perUser {
				if err := h.adapter.Receive(ctx, userMessage(int64(3000+u), fmt.Sprintf("u%d m%02d", u, i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	incoming := func(u int) []string {
		c, ok := h.oc.ContactByIdentifier("telegram:" + strconv.Itoa(3000+u))
		if !ok {
			return nil
		}
		var msgs []onechattest.Message
		for _, cv := range h.oc.Conversations(c.ID) {
			for _, m := range h.oc.Messages(cv.ID) {
				if m.MessageType == 0 {
					msgs = append(msgs, m)
				}
			}
		}
		sort.Slice(msgs, func(i, j int) bool { return msgs[i].ID < msgs[j].ID })
		out := make([]string, len(msgs))
		for i, m := range msgs {
			out[i] = m.Content
		}
		return out
	}
	allIn := func() bool {
		for u := range users {
			if len(incoming(u)) < perUser {
				return false
			}
		}
		return true
	}
	// The cable restarts twice while messages flow.
	h.oc.RestartCable()
	if err := h.oc.Wait(ctx, allIn); err != nil {
		t.Fatalf("inbound incomplete: %v", err)
	}
	for u := range users {
		got := incoming(u)
		for i := range perUser {
			if want := fmt.Sprintf("u%d m%02d", u, i); i >= len(got) || got[i] != want {
				t.Fatalf("user %d: OneChat has %q, want 20 messages in order, once", u, got)
			}
		}
		if len(got) != perUser {
			t.Fatalf("user %d: %d messages in OneChat, want %d (duplicates)", u, len(got), perUser)
		}
	}

	// Outbound: agents answer every user 20 times while the cable restarts.
	convOf := map[int]int64{}
	for u := range users {
		c, _ := h.oc.ContactByIdentifier("telegram:" + strconv.Itoa(3000+u))
		for _, cv := range h.oc.Conversations(c.ID) {
			if len(h.oc.Messages(cv.ID)) > 0 {
				convOf[u] = cv.ID
			}
		}
	}
	for i := range perUser {
		for u := range users {
			h.oc.AgentReply(convOf[u], fmt.Sprintf("a%d r%02d", u, i))
		}
		if i == perUser/2 {
			h.oc.RestartCable()
		}
	}
	if _, err := h.adapter.WaitSent(ctx, users*perUser); err != nil {
		t.Fatalf("outbound incomplete: %d of %d delivered: %v", len(h.adapter.Sent()), users*perUser, err)
	}
	byChat := map[string][]string{}
	for _, m := range h.adapter.Sent() {
		byChat[m.Chat.ID] = append(byChat[m.Chat.ID], m.Text)
	}
	for u := range users {
		got := byChat[strconv.Itoa(3000+u)]
		var want []string
		for i := range perUser {
			want = append(want, fmt.Sprintf("a%d r%02d", u, i))
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("user %d received %q, want %q", u, got, want)
		}
	}
	if len(h.adapter.Sent()) != users*perUser {
		t.Errorf("%d messages delivered, want %d", len(h.adapter.Sent()), users*perUser)
	}
	t.Logf("OneChat failed %d requests", flaky.failed.Load())
}

// TestCrashMidPostDoesNotDoubleTheMessage: the bridge stops while its POST is in flight, after
// OneChat stored the message but before the answer came back; a new bridge (nothing kept in
// memory) finds the message in OneChat and does not post it again.
func TestCrashMidPostDoesNotDoubleTheMessage(t *testing.T) {
	h := newHarness(t, nil)
	var hold atomic.Bool
	hold.Store(true)
	release := make(chan struct{})
	h.interceptPosts("/messages", func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool {
		if !hold.Load() {
			return false
		}
		oneChat.ServeHTTP(httptest.NewRecorder(), r) // OneChat stores the message...
		select {                                     // ...and the answer never makes it back before the crash.
		case <-release:
		case <-r.Context().Done():
		}
		return true
	})
	defer close(release)
	h.opts.ShutdownGrace = 50 * time.Millisecond
	h.start()
	ctx := ctxT(t)

	if err := h.adapter.Receive(ctx, userMessage(2007, "only once please")); err != nil {
		t.Fatal(err)
	}
	_, conv := h.waitConversation(ctx, "telegram:2007", 1)
	h.waitIncoming(ctx, conv.ID, "only once please")
	h.stop() // the crash: the attempt is cut off mid-POST

	hold.Store(false)
	h.start()
	if err := h.adapter.Receive(ctx, userMessage(2007, "and the next one")); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, "only once please", "and the next one")
}

// stallingStore is the real store whose lease renewals fail for the jobs stall picks, as they
// do while the database is out of reach or the process is starved.
type stallingStore struct {
	bridge.Store
	stall func(bridge.JobLease) bool
}

func (s stallingStore) ExtendLease(ctx context.Context, l bridge.JobLease, d time.Duration) error {
	if s.stall(l) {
		return fmt.Errorf("extend lease of job %d: connection reset by peer", l.ID)
	}
	return s.Store.ExtendLease(ctx, l, d)
}

// TestWorkerThatCannotRenewItsLeaseLetsGo: a worker whose lease cannot be renewed (here its
// POST to OneChat hangs meanwhile) stops before the lease runs out, so the worker that takes
// the message over next does not post it beside a late copy: the agent sees it once.
func TestWorkerThatCannotRenewItsLeaseLetsGo(t *testing.T) {
	h := newHarness(t, nil)
	h.opts.Lease = 600 * time.Millisecond
	// The renewals fail while the first post hangs (only then: on a loaded machine the attempt
	// that first renews may still be creating the contact, and must not be the one stopped).
	var hanging atomic.Bool
	h.opts.Store = stallingStore{Store: h.store, stall: func(l bridge.JobLease) bool { return hanging.Load() }}
	reg := prometheus.NewRegistry()
	h.opts.Metrics = bridge.NewMetrics(reg)
	var posts atomic.Int32
	laterPosted := make(chan struct{})
	h.interceptPosts("/messages", func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool {
		if n := posts.Add(1); n > 1 {
			oneChat.ServeHTTP(w, r)
			if n == 2 {
				close(laterPosted)
			}
			return true
		}
		// The first post hangs on its way to OneChat. If its worker still waits when another
		// one has posted the message, it arrives late, beside that copy.
		hanging.Store(true)
		defer hanging.Store(false)
		body, err := io.ReadAll(r.Body) // read, so that a client that gives up is noticed
		if err != nil {
			return true
		}
		select {
		case <-r.Context().Done():
			return true
		case <-laterPosted:
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		oneChat.ServeHTTP(w, r)
		return true
	})
	h.start()
	ctx := ctxT(t)

	if err := h.adapter.Receive(ctx, userMessage(2012, "only once please")); err != nil {
		t.Fatal(err)
	}
	_, conv := h.waitConversation(ctx, "telegram:2012", 1)
	h.waitIncoming(ctx, conv.ID, "only once please")
	if err := h.adapter.Receive(ctx, userMessage(2012, "and the next one")); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, "only once please", "and the next one")
	if n := counterValue(t, reg, "bridge_lease_lost_total", "direction", "in", "reason", bridge.LeaseNotRenewed); n != 1 {
		t.Errorf("bridge_lease_lost_total{direction=in,reason=not_renewed} = %v, want 1", n)
	}
}

// counterValue reads the counter name with the label pairs from reg (0 when it has none).
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestRetryDoesNotTakeAPrunedMessageForItsOwn: the user writes again what they wrote weeks ago,
// whose link the retention sweep has deleted, and the first post fails. The retry must post
// the message, not take the old one, unlinked and word for word the same, for it.
func TestRetryDoesNotTakeAPrunedMessageForItsOwn(t *testing.T) {
	h := newHarness(t, nil)
	var failPost atomic.Bool
	h.interceptPosts("/messages", func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		if !failPost.CompareAndSwap(true, false) {
			return false
		}
		http.Error(w, `{"status":500,"error":"Internal Server Error"}`, http.StatusInternalServerError)
		return true
	})
	h.start()
	ctx := ctxT(t)

	_, conv, first := h.begin(ctx, 2013, "thanks")
	h.waitLinked(ctx, first.Chat, first.MessageID)
	// Forty days later: the sweep deleted the finished message and its link.
	if jobs, links, err := h.store.Prune(ctx, time.Now().Add(time.Second)); err != nil || jobs == 0 || links == 0 {
		t.Fatalf("Prune = %d jobs, %d links, %v; want the first message's", jobs, links, err)
	}
	h.oc.AgeMessage(h.oc.Messages(conv.ID)[0].ID, 40*24*time.Hour)

	failPost.Store(true)
	if err := h.adapter.Receive(ctx, userMessage(2013, "thanks")); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, "thanks", "thanks")
}

// TestRetryFindsItsPostBehindManyAgentMessages: OneChat stored the user's message but its
// answer was lost, and agents wrote more than a page of messages before the retry. The retry
// must find the message behind them instead of posting it again.
func TestRetryFindsItsPostBehindManyAgentMessages(t *testing.T) {
	h := newHarness(t, nil)
	var loseAnswer atomic.Bool
	var conv atomic.Int64
	h.interceptPosts("/messages", func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool {
		if !loseAnswer.CompareAndSwap(true, false) {
			return false
		}
		oneChat.ServeHTTP(httptest.NewRecorder(), r) // OneChat stores the message...
		for i := range 25 {                          // ...agents keep writing...
			h.oc.AgentReply(conv.Load(), fmt.Sprintf("agent %d", i))
		}
		http.Error(w, "bad gateway", http.StatusBadGateway) // ...and the answer is lost.
		return true
	})
	h.start()
	ctx := ctxT(t)

	_, c, _ := h.begin(ctx, 2014, "hello")
	conv.Store(c.ID)
	loseAnswer.Store(true)
	if err := h.adapter.Receive(ctx, userMessage(2014, "is anyone there?")); err != nil {
		t.Fatal(err)
	}
	if err := h.adapter.Receive(ctx, userMessage(2014, "ok")); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, c.ID, "hello", "is anyone there?", "ok")
}

// TestPartlyDeliveredMessageContinuesWhereItStopped: an agent message that becomes three
// platform messages fails on the second; the retry sends the second and third only, and all
// three are mapped (so an edit or delete reaches each).
func TestPartlyDeliveredMessageContinuesWhereItStopped(t *testing.T) {
	h := newHarness(t, nil)
	h.adapter.PartsPerMessage = 3
	var failed atomic.Bool
	h.adapter.PartFunc = func(ctx context.Context, m bridge.Outbound, part int) error {
		if part == 1 && failed.CompareAndSwap(false, true) {
			return fmt.Errorf("upload part %d: 502 Bad Gateway", part)
		}
		return nil
	}
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 2015, "send me the files")
	reply := h.oc.AgentReply(conv.ID, "here are three files")
	if _, err := h.adapter.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range h.adapter.Parts() {
		if p.MessageID == reply.ID {
			got = append(got, strconv.Itoa(p.Index))
		}
	}
	if strings.Join(got, " ") != "0 1 2" {
		t.Fatalf("parts created for the reply, in order: %v; want each of 0 1 2 once", got)
	}
	parts := h.adapter.Parts()
	last := parts[len(parts)-1]
	h.waitLinked(ctx, bridge.ChatRef{Platform: bridge.Platform("telegram"), ID: "2015"}, last.ID)
	links, err := h.store.LinkByOneChat(ctx, reply.ID)
	if err != nil || len(links) != 3 {
		t.Fatalf("links of the reply = %v, %v; want its three parts", links, err)
	}
}

// TestPartsDeliveredBeforeAPermanentFailureStayMapped: the platform refuses the second part of
// a three-part agent message for good; the first part stays mapped, so the agent's later edit
// still reaches it.
func TestPartsDeliveredBeforeAPermanentFailureStayMapped(t *testing.T) {
	h := newHarness(t, nil)
	h.adapter.PartsPerMessage = 3
	h.adapter.PartFunc = func(ctx context.Context, m bridge.Outbound, part int) error {
		if part == 1 {
			return bridge.Permanent("the platform refused the file", nil)
		}
		return nil
	}
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 2016, "send me the files")
	reply := h.oc.AgentReply(conv.ID, "here are three files")
	var st string
	var err error
	if !poll(ctx, func() bool {
		st, _, err = h.store.JobState(ctx, bridge.Out, "onechat:"+strconv.FormatInt(reply.ID, 10))
		return err == nil && st == bridge.JobFailed
	}) {
		t.Fatalf("the reply's job never failed: %s, %v", st, err)
	}
	parts := h.adapter.Parts()
	if len(parts) != 1 || parts[0].MessageID != reply.ID {
		t.Fatalf("parts created = %+v, want the reply's first only", parts)
	}
	h.oc.EditMessage(reply.ID, "here are the files")
	changes, err := h.adapter.WaitChanges(ctx, 1)
	if err != nil {
		t.Fatalf("the agent's edit never reached the part the user has: %v", err)
	}
	if got := changes[0]; got.Op != bridge.OpEdit || strings.Join(got.Parts, ",") != parts[0].ID {
		t.Fatalf("change = %s of parts %v, want an edit of %s", got.Op, got.Parts, parts[0].ID)
	}
}

// TestButtonPressedBeforeItsMessageIsRecorded: the platform shows an agent's buttons as soon
// as it has the message, and the bridge records the message a moment later; a press in that
// moment waits for the record and is stored on the message (not only posted as text).
func TestButtonPressedBeforeItsMessageIsRecorded(t *testing.T) {
	h := newHarness(t, nil)
	var pressed atomic.Bool
	h.adapter.SendFunc = func(ctx context.Context, m bridge.Outbound) error {
		if m.ContentType != "input_select" || !pressed.CompareAndSwap(false, true) {
			return nil
		}
		// The fake adapter names the part it is about to create sent-<parts so far + 1>.
		press := userMessage(2017, "")
		press.Choice = &bridge.Choice{MessageID: fmt.Sprintf("sent-%d", len(h.adapter.Parts())+1), Title: "Billing", Value: "billing"}
		if err := h.adapter.Receive(ctx, press); err != nil {
			return err
		}
		// The send (and so the record) waits until the press has been tried.
		if !poll(ctx, func() bool {
			st, lastErr, err := h.store.JobState(ctx, bridge.In, press.DedupKey())
			return err == nil && (lastErr != "" || st == bridge.JobDone || st == bridge.JobFailed)
		}) {
			return ctx.Err()
		}
		return nil
	}
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 2017, "I have a question")
	msg := h.oc.PostAgentMessage(conv.ID, onechattest.AgentMessage{Content: "Which team?", ContentType: "input_select",
		Items: []map[string]any{{"title": "Billing", "value": "billing"}, {"title": "Shipping", "value": "shipping"}}})
	if err := h.oc.Wait(ctx, func() bool {
		m, _ := h.oc.Message(msg.ID)
		_, ok := m.ContentAttributes["submitted_values"]
		return ok
	}); err != nil {
		m, _ := h.oc.Message(msg.ID)
		t.Fatalf("the press was not stored on the message: content_attributes %v; incoming %q", m.ContentAttributes, h.incoming(conv.ID))
	}
	h.waitIncoming(ctx, conv.ID, "I have a question", "Billing")
}

// TestSilentSubscriptionOfDeletedContactIsForgotten: a contact deleted in OneChat leaves a
// subscription OneChat answers with silence; the bridge reads the session again, forgets it,
// and the user's next message creates a new contact that agents can answer.
func TestSilentSubscriptionOfDeletedContactIsForgotten(t *testing.T) {
	h := newHarness(t, nil)
	h.opts.Cable.ConfirmTimeout = 100 * time.Millisecond
	h.opts.Cable.SilentAfter = 2
	h.start()
	ctx := ctxT(t)
	contact, _, _ := h.begin(ctx, 2008, "hello")

	h.oc.DeleteContact(contact.ID)
	h.oc.RestartCable()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		cu, err := h.store.Customer(ctx, bridge.UserRef{Platform: bridge.Platform("telegram"), ID: "2008"})
		if err == nil && cu.SourceID == "" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the silent subscription's vanished session was never forgotten")
		case <-tick.C:
		}
	}
	if err := h.adapter.Receive(ctx, userMessage(2008, "anyone?")); err != nil {
		t.Fatal(err)
	}
	contact2, conv2 := h.waitConversation(ctx, "telegram:2008", 1)
	h.waitIncoming(ctx, conv2.ID, "anyone?")
	h.waitSubscribed(ctx, contact2.ID)
	h.oc.AgentReply(conv2.ID, "here")
	if _, err := h.adapter.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
}

// TestIdleSubscriptionsAreDroppedAndComeBack: once a conversation has been resolved for
// IdleAfter, its cable subscription is dropped (also across restarts); the user's next message
// subscribes again and agent replies flow.
func TestIdleSubscriptionsAreDroppedAndComeBack(t *testing.T) {
	h := newHarness(t, nil)
	h.opts.IdleAfter = time.Millisecond
	h.opts.IdleSweep = 20 * time.Millisecond
	h.start()
	ctx := ctxT(t)
	contact, conv, _ := h.begin(ctx, 2009, "hello")
	token := h.oc.ContactInboxes(contact.ID)[0].PubsubToken

	h.oc.Resolve(conv.ID)
	if err := h.oc.Wait(ctx, func() bool { return h.oc.Subscribed(token) == 0 }); err != nil {
		t.Fatalf("idle subscription never dropped: %v", err)
	}
	h.stop()
	h.start()
	// A restarted bridge does not subscribe idle customers either: the next subscription the
	// fake sees is the one the user's new message brings.
	if err := h.adapter.Receive(ctx, userMessage(2009, "one more question")); err != nil {
		t.Fatal(err)
	}
	_, conv2 := h.waitConversation(ctx, "telegram:2009", 2)
	h.waitIncoming(ctx, conv2.ID, "one more question")
	h.waitSubscribed(ctx, contact.ID)
	h.oc.AgentReply(conv2.ID, "sure")
	sent, err := h.adapter.WaitSent(ctx, 1)
	if err != nil || sent[0].Text != "sure" {
		t.Fatalf("reply after resubscribe: %v %v", sent, err)
	}
}

// TestCrashedWorkersMessageIsTakenOverAtStart: a message claimed by a worker that died (its
// lease runs out) is delivered by the restarted bridge within the lease.
func TestCrashedWorkersMessageIsTakenOverAtStart(t *testing.T) {
	h := newHarness(t, nil)
	h.opts.Lease = 300 * time.Millisecond
	ctx := ctxT(t)
	// The "crashed" process: it stored the message and claimed it, then died.
	m := userMessage(2010, "sent just before the crash")
	payload, _ := json.Marshal(m)
	if _, err := h.store.Enqueue(ctx, bridge.Cursor{}, bridge.NewJob{Direction: bridge.In, Key: m.User.Identifier(), Dedup: m.DedupKey(), Payload: payload}); err != nil {
		t.Fatal(err)
	}
	if j, err := h.store.Claim(ctx, bridge.In, h.opts.Lease); err != nil || j == nil {
		t.Fatalf("claim: %v %v", j, err)
	}
	h.start()
	_, conv := h.waitConversation(ctx, "telegram:2010", 1)
	h.waitIncoming(ctx, conv.ID, "sent just before the crash")
}

// TestLongSendKeepsItsLease: a send that takes several leases is not taken over by another
// worker meanwhile, so the user gets it once.
func TestLongSendKeepsItsLease(t *testing.T) {
	h := newHarness(t, nil)
	// A lease long enough that a loaded machine's renewal round trip stays well inside the two
	// thirds of it a worker waits for a renewal before it lets go.
	h.opts.Lease = 1500 * time.Millisecond
	var calls atomic.Int32
	h.adapter.SendFunc = func(ctx context.Context, m bridge.Outbound) error {
		if calls.Add(1) == 1 {
			select { // a slow upload: three leases long
			case <-time.After(4500 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 2011, "hi")
	h.oc.AgentReply(conv.ID, "a large file")
	h.oc.AgentReply(conv.ID, "and a note")
	sent, err := h.adapter.WaitSent(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(sentTexts(sent)); got != "[a large file and a note]" || calls.Load() != 2 {
		t.Errorf("sent %s with %d calls, want each message once, in order", got, calls.Load())
	}

}

// TestCatchUpOverSeveralPagesKeepsOrder: more replies than one REST page (20) were lost by the
// cable; the catch-up pages back and queues them oldest first.
func TestCatchUpOverSeveralPagesKeepsOrder(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 2012, "hi")

	const n = 45
	h.oc.DropEvents(n)
	var want []string
	for i := range n {
		text := fmt.Sprintf("reply %02d", i)
		want = append(want, text)
		h.oc.AgentReply(conv.ID, text)
	}
	h.oc.RestartCable()
	sent, err := h.adapter.WaitSent(ctx, n)
	if err != nil {
		t.Fatalf("caught up %d of %d: %v", len(h.adapter.Sent()), n, err)
	}
	if got := strings.Join(sentTexts(sent), "|"); got != strings.Join(want, "|") {
		t.Errorf("user received\n%s\nwant\n%s", got, strings.Join(want, "|"))
	}
}

// TestLostConversationCreateIsAdopted: OneChat opened the conversation but its answer was lost;
// the retry adopts that conversation instead of opening a second, empty one an agent could
// answer unheard. (Another user writes first: the bridge learns its inbox from that
// conversation, and adopts, with a verified session, only conversations of its inbox.)
func TestLostConversationCreateIsAdopted(t *testing.T) {
	h := newHarness(t, nil)
	var lost atomic.Bool
	var creates atomic.Int64
	h.interceptPosts("/conversations", func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool {
		if creates.Add(1) != 2 || !lost.CompareAndSwap(false, true) {
			return false
		}
		oneChat.ServeHTTP(httptest.NewRecorder(), r) // OneChat opens it...
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return true // ...and the answer is lost
	})
	h.start()
	ctx := ctxT(t)
	firstUserWrites(ctx, h)

	if err := h.adapter.Receive(ctx, userMessage(2013, "hello?")); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:2013", 1)
	h.waitIncoming(ctx, conv.ID, "hello?")
	if !lost.Load() {
		t.Fatal("the create's answer was never lost: the test proves nothing")
	}
	if n := len(h.oc.Conversations(contact.ID)); n != 1 {
		t.Errorf("%d conversations, want the one the lost answer was about", n)
	}
}

func TestContactAttributesReachTheContact(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)
	m := userMessage(2101, "hello")
	m.ContactAttributes = map[string]string{"slack_workspace": "Acme Corp"}
	if err := h.adapter.Receive(ctx, m); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:2101", 1)
	h.waitIncoming(ctx, conv.ID, "hello")
	if got := contact.CustomAttributes["slack_workspace"]; got != "Acme Corp" {
		t.Fatalf("created contact has slack_workspace %v, want Acme Corp", got)
	}
	if got := contact.CustomAttributes["telegram_username"]; got != "alice" {
		t.Fatalf("the core's own attribute is lost: telegram_username %v", got)
	}

	// The workspace is renamed: the next message updates the contact.
	m = userMessage(2101, "still there?")
	m.ContactAttributes = map[string]string{"slack_workspace": "Acme Inc"}
	if err := h.adapter.Receive(ctx, m); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, "hello", "still there?")
	c, _ := h.oc.ContactByID(contact.ID)
	if got := c.CustomAttributes["slack_workspace"]; got != "Acme Inc" {
		t.Fatalf("contact has slack_workspace %v after the rename, want Acme Inc", got)
	}

	// A message without attributes (a colleague's, in the user's thread) leaves them alone.
	if err := h.adapter.Receive(ctx, userMessage(2101, "from a colleague")); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, "hello", "still there?", "from a colleague")
	c, _ = h.oc.ContactByID(contact.ID)
	if got := c.CustomAttributes["slack_workspace"]; got != "Acme Inc" {
		t.Fatalf("contact has slack_workspace %v, want it kept", got)
	}
}

func TestUserLanguageReachesTheContactAndIsRemembered(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)
	m := userMessage(2102, "hola")
	m.Language = "es_419"
	if err := h.adapter.Receive(ctx, m); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:2102", 1)
	h.waitIncoming(ctx, conv.ID, "hola")
	if got := contact.CustomAttributes["language"]; got != "es-419" {
		t.Fatalf("contact has language %v, want es-419", got)
	}
	host := h.adapter.Host()
	user := bridge.UserRef{Platform: "telegram", ID: "2102"}
	if got := host.UserLanguage(ctx, user); got != "es-419" {
		t.Errorf("UserLanguage = %q, want es-419", got)
	}
	if got := host.UserLanguage(ctx, bridge.UserRef{Platform: "telegram", ID: "9999"}); got != "" {
		t.Errorf("UserLanguage of a stranger = %q", got)
	}

	// The user switches their app to Portuguese: the contact and the memory follow. A message
	// without a language (or with one that is no tag) changes neither.
	m = userMessage(2102, "olá")
	m.Language = "pt-br"
	bad := userMessage(2102, "oi")
	bad.Language = "português"
	if err := h.adapter.Receive(ctx, m, bad); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, "hola", "olá", "oi")
	c, _ := h.oc.ContactByID(contact.ID)
	if got := c.CustomAttributes["language"]; got != "pt-BR" {
		t.Errorf("contact has language %v, want pt-BR", got)
	}
	if got := host.UserLanguage(ctx, user); got != "pt-BR" {
		t.Errorf("UserLanguage = %q, want pt-BR", got)
	}
	if host.Texts().Text(host.UserLanguage(ctx, user), texts.Greeting, nil) != texts.Builtin().Text("pt-BR", texts.Greeting, nil) {
		t.Error("the host's catalogue does not greet in Portuguese")
	}
}

func TestAgentNotesUseTheAgentLanguage(t *testing.T) {
	h := newHarness(t, nil)
	cat, err := texts.New(texts.Options{AgentLanguage: "es"})
	if err != nil {
		t.Fatal(err)
	}
	h.opts.Texts = cat
	h.start()
	ctx := ctxT(t)
	_, conv, orig := h.begin(ctx, 2103, "Mi pedido es 1234")
	edit := userMessage(2103, "Mi pedido es 1243")
	edit.MessageID = orig.MessageID + ".edit.1"
	edit.EditOf = orig.MessageID
	del := userMessage(2103, "")
	del.MessageID = orig.MessageID + ".delete"
	del.DeletedOf = orig.MessageID
	if err := h.adapter.Receive(ctx, edit, del); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID,
		"Mi pedido es 1234",
		"✏️ El usuario editó un mensaje:\n> Mi pedido es 1234\n\nAhora dice:\nMi pedido es 1243",
		"🗑 El usuario eliminó un mensaje:\n> Mi pedido es 1234")
}

// TestABurstRunsWithoutClaims: a user writes five messages while OneChat holds the first post.
// They reach OneChat once each and in order, and the worker goes from each message straight to
// the next, which the previous one's completion took for it (bridge_jobs_started_total by
// "completion"); only the first is started by a claim or by its own enqueue.
func TestABurstRunsWithoutClaims(t *testing.T) {
	h := newHarness(t, nil)
	reg := prometheus.NewRegistry()
	h.opts.Metrics = bridge.NewMetrics(reg)
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	var posts atomic.Int32
	h.interceptPosts("/messages", func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool {
		if posts.Add(1) == 1 {
			<-gate
		}
		return false
	})
	h.start()
	ctx := ctxT(t)
	started := func(by string) float64 {
		return counterValue(t, reg, "bridge_jobs_started_total", "direction", "in", "by", by)
	}
	var want []string
	for i := range 5 {
		text := fmt.Sprintf("burst %d", i)
		want = append(want, text)
		if err := h.adapter.Receive(ctx, userMessage(3100, text)); err != nil {
			t.Fatal(err)
		}
	}
	release()
	_, conv := h.waitConversation(ctx, "telegram:3100", 1)
	h.waitIncoming(ctx, conv.ID, want...)
	h.waitCounted(reg, bridge.ResultDelivered, 5)
	if got := started(bridge.StartedByCompletion); got != 4 {
		t.Errorf("started by a completion: %v, want 4 (every message after the first)", got)
	}
	if got := started(bridge.StartedByClaim) + started(bridge.StartedByEnqueue); got != 1 {
		t.Errorf("started by a claim or an enqueue: %v, want 1 (the first)", got)
	}
}

// TestRepliesBetweenManyUserMessagesArriveOnce: a conversation's cursor stays behind the user's
// own messages while a catch-up has nothing to queue (cursorLag). Replies whose events are lost
// are still caught up after a few user messages and after more than a page of them, and no
// reply is sent twice.
func TestRepliesBetweenManyUserMessagesArriveOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)
	contact, conv, _ := h.begin(ctx, 1010, "hi")
	h.oc.AgentReply(conv.ID, "first answer")
	if _, err := h.adapter.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	want := []string{"hi"}
	write := func(n int) {
		t.Helper()
		for i := range n {
			text := fmt.Sprintf("more %d", len(want)+i)
			want = append(want, text)
			if err := h.adapter.Receive(ctx, userMessage(1010, text)); err != nil {
				t.Fatal(err)
			}
		}
		h.waitIncoming(ctx, conv.ID, want...)
	}
	lostReply := func(text string, sent int) {
		t.Helper()
		h.oc.DropEvents(1)
		h.oc.AgentReply(conv.ID, text)
		h.oc.RestartCable()
		if _, err := h.adapter.WaitSent(ctx, sent); err != nil {
			t.Fatalf("reply %q whose event was lost: %v (sent %q)", text, err, sentTexts(h.adapter.Sent()))
		}
	}
	write(5) // fewer than cursorLag
	lostReply("second answer", 2)
	write(25) // more than a page
	h.oc.RestartCable()
	h.waitSubscribed(ctx, contact.ID)
	lostReply("third answer", 3)
	h.oc.AgentReply(conv.ID, "last answer")
	sent, err := h.adapter.WaitSent(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(sentTexts(sent)), "[first answer second answer third answer last answer]"; got != want {
		t.Errorf("user received %s, want %s, each once", got, want)
	}
}

// secondConversation runs a user through a first conversation that an agent answers and
// resolves, so that the contact's subscription is long confirmed and every catch-up of it has
// run, and returns the contact and the first conversation. The user's next message opens a new
// conversation (NewConversation policy).
func (h *harness) secondConversation(ctx context.Context, userID int64) (onechattest.Contact, onechattest.Conversation) {
	h.t.Helper()
	contact, conv1, _ := h.begin(ctx, userID, "first")
	h.oc.AgentReply(conv1.ID, "first answer")
	h.waitSentText(ctx, "first answer")
	h.oc.Resolve(conv1.ID)
	h.waitStatus(ctx, strconv.FormatInt(userID, 10), "resolved")
	return contact, conv1
}

// waitSentText waits until the adapter was asked to send a message with this text.
func (h *harness) waitSentText(ctx context.Context, text string) {
	h.t.Helper()
	for n := 1; ; n++ {
		sent, err := h.adapter.WaitSent(ctx, n)
		if err != nil {
			h.t.Fatalf("%q never sent: %v", text, err)
		}
		if sent[n-1].Text == text {
			return
		}
	}
}

// TestConversationOpenedUnderAConfirmedSubscriptionIsNotReadAgain: a conversation opened while
// the contact's subscription is confirmed, with no event for the contact until it is recorded,
// costs OneChat no read: everything that happens in it comes over the cable. An agent's reply
// in it still reaches the user.
func TestConversationOpenedUnderAConfirmedSubscriptionIsNotReadAgain(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)
	contact, _ := h.secondConversation(ctx, 2101)

	before := len(h.oc.Requests())
	if err := h.adapter.Receive(ctx, userMessage(2101, "second")); err != nil {
		t.Fatal(err)
	}
	_, conv2 := h.waitConversation(ctx, "telegram:2101", 2)
	h.waitIncoming(ctx, conv2.ID, "second")
	convPath := "/conversations/" + strconv.FormatInt(conv2.ID, 10)
	for _, r := range h.oc.Requests()[before:] {
		if r.Method == http.MethodGet && (strings.HasSuffix(r.Path, convPath) || strings.HasSuffix(r.Path, convPath+"/messages")) {
			t.Errorf("the new conversation was read (%s %s) although the subscription of contact %d was confirmed throughout", r.Method, r.Path, contact.ID)
		}
	}
	h.oc.AgentReply(conv2.ID, "second answer")
	h.waitSentText(ctx, "second answer")
}

// TestGreetingWrittenWhileTheConversationIsOpenedReachesTheUser: OneChat writes a template
// message (an inbox greeting) into a new conversation before the bridge has recorded the
// conversation as its own, under a confirmed subscription, and the bridge handles its event
// then, passing it over as another's conversation: the event it saw while opening the
// conversation makes the bridge read the conversation once recorded, and the user gets it.
func TestGreetingWrittenWhileTheConversationIsOpenedReachesTheUser(t *testing.T) {
	h := newHarness(t, nil)
	h.afterConversationCreated(func(r *http.Request, conversationID int64, n int) {
		if n != 2 {
			return // the first conversation is opened as usual
		}
		h.oc.TemplateMessage(conversationID, "Welcome back! An agent will be with you shortly.")
		// The bridge answers the greeting's event before it knows the conversation is its own:
		// the event's catch-up passes it over.
		if !poll(r.Context(), func() bool {
			return h.logs.FilterMessage("message for a conversation the bridge does not own").Len() > 0
		}) {
			return
		}
		// No later event of the conversation helps: OneChat loses the events of the user's
		// message that follows (its message.created and the conversation.updated of its
		// waiting time), as a Sidekiq failure or an older OneChat would.
		h.oc.DropEvents(2)
	})
	h.start()
	ctx := ctxT(t)
	h.secondConversation(ctx, 2102)

	if err := h.adapter.Receive(ctx, userMessage(2102, "second")); err != nil {
		t.Fatal(err)
	}
	h.waitSentText(ctx, "Welcome back! An agent will be with you shortly.")
	_, conv2 := h.waitConversation(ctx, "telegram:2102", 2)
	h.waitIncoming(ctx, conv2.ID, "second")
}

// TestConversationEventAfterTheReplyWasReadCostsNoRead: an agent's labels on a conversation give
// the contact a conversation.updated that shows the conversation's latest message; the bridge
// has read the conversation past it (it delivered that reply), so it does not read it again.
// A later reply still arrives.
func TestConversationEventAfterTheReplyWasReadCostsNoRead(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 2103, "hi")
	h.oc.AgentReply(conv.ID, "first answer")
	h.waitSentText(ctx, "first answer")
	// The reply's own events (message.created, and conversation.updated for a first reply)
	// may still be read: wait until they are.
	if !poll(ctx, h.core.CatchupsIdle) {
		t.Fatal("catch-ups never finished")
	}

	before := len(h.oc.Requests())
	skipped := func() int {
		return h.logs.FilterMessage("conversation already read past the status event's latest message").Len()
	}
	was := skipped()
	h.oc.SetLabels(conv.ID, "vip")
	if !poll(ctx, func() bool { return skipped() > was }) {
		t.Fatal("the label change's conversation.updated was never found to need no read")
	}
	for _, r := range h.oc.Requests()[before:] {
		if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/messages") {
			t.Errorf("the conversation was read again (%s %s) for an event that showed nothing new", r.Method, r.Path)
		}
	}
	h.oc.AgentReply(conv.ID, "second answer")
	h.waitSentText(ctx, "second answer")
}

// TestConversationEventRecoversALostFirstReply: the message.created of an agent's first reply
// is lost, and the conversation.updated that follows it shows that reply as the latest message,
// past what the bridge has read: it reads the conversation and the user gets the reply.
func TestConversationEventRecoversALostFirstReply(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 2104, "hi")
	h.oc.DropEvents(1) // the reply's message.created; its conversation.updated comes through
	h.oc.AgentReply(conv.ID, "the answer whose event was lost")
	h.waitSentText(ctx, "the answer whose event was lost")
}
