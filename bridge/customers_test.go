package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/onechat"
)

// racingStore is the real store with two seams for interleaving: beforeWrite runs once (when
// armed) before the next customer write, as a concurrent writer whose commit lands between
// the core's read of the customer and its write; hidden conversations look unknown to
// CustomerByConversation, as if recorded only after the core looked them up.
type racingStore struct {
	bridge.Store

	mu          sync.Mutex
	beforeWrite func()
	hidden      map[int64]bool
}

func (s *racingStore) arm(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeWrite = f
}

func (s *racingStore) race() {
	s.mu.Lock()
	f := s.beforeWrite
	s.beforeWrite = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
}

func (s *racingStore) hide(conversationID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hidden == nil {
		s.hidden = map[int64]bool{}
	}
	s.hidden[conversationID] = true
}

func (s *racingStore) SaveCustomer(ctx context.Context, c bridge.Customer, f bridge.CustomerFields) (bridge.Customer, error) {
	s.race()
	return s.Store.SaveCustomer(ctx, c, f)
}

func (s *racingStore) UpdateCustomer(ctx context.Context, c bridge.Customer, f bridge.CustomerFields) (bridge.Customer, error) {
	s.race()
	return s.Store.UpdateCustomer(ctx, c, f)
}

func (s *racingStore) CustomerByConversation(ctx context.Context, id int64) (bridge.Customer, error) {
	s.mu.Lock()
	hidden := s.hidden[id]
	s.mu.Unlock()
	if hidden {
		return bridge.Customer{}, bridge.ErrNotFound
	}
	return s.Store.CustomerByConversation(ctx, id)
}

// freshSession stores a new contact session for the customer the way the inbound worker does
// when it replaces a forgotten one, bypassing the racing seam.
func freshSession(t *testing.T, s bridge.Store, u bridge.UserRef) bridge.Customer {
	t.Helper()
	ctx := context.Background()
	cu, err := s.Customer(ctx, u)
	if err != nil {
		t.Error(err)
		return cu
	}
	fresh := bridge.Customer{SourceID: "fresh-source-" + u.ID, PubsubToken: "fresh-token-" + u.ID, ContactID: cu.ContactID + 1000}
	saved, ok, err := s.SetContactSession(ctx, cu.ID, cu.SourceID, fresh)
	if err != nil || !ok {
		t.Errorf("storing a fresh session: %t, %v", ok, err)
	}
	return saved
}

// TestMoveChatKeepsAFreshContactSession: a chat moved while the inbound worker stores a new
// contact session keeps both, where a whole-row write of the mover's older copy undid the
// session (agent replies then went to a session OneChat had replaced).
func TestMoveChatKeepsAFreshContactSession(t *testing.T) {
	h := newHarness(t, nil)
	rs := &racingStore{Store: h.store}
	h.opts.Store = rs
	h.start()
	ctx := ctxT(t)

	m := userMessage(3001, "hi")
	if err := h.adapter.Receive(ctx, m); err != nil {
		t.Fatal(err)
	}
	_, conv := h.waitConversation(ctx, "telegram:3001", 1)
	h.waitIncoming(ctx, conv.ID, "hi")

	var fresh bridge.Customer
	rs.arm(func() { fresh = freshSession(t, h.store, m.User) })
	thread := bridge.ChatRef{Platform: m.User.Platform, ID: "thread-3001"}
	if err := h.adapter.Host().MoveChat(ctx, m.User, thread); err != nil {
		t.Fatal(err)
	}
	if fresh.SourceID == "" {
		t.Fatal("the concurrent session write never ran: the test proves nothing")
	}
	got, err := h.store.Customer(ctx, m.User)
	if err != nil {
		t.Fatal(err)
	}
	if got.Chat != thread {
		t.Errorf("chat = %v, want the moved-to %v", got.Chat, thread)
	}
	if got.SourceID != fresh.SourceID || got.PubsubToken != fresh.PubsubToken || got.ContactID != fresh.ContactID {
		t.Errorf("moving the chat undid the fresh contact session: have contact %d, want %d", got.ContactID, fresh.ContactID)
	}
}

// TestUnreachableMarkKeepsAFreshContactSessionAndChat: marking a user unreachable writes only
// the reachability, so a session and a chat stored since the outbound worker read the
// customer stay.
func TestUnreachableMarkKeepsAFreshContactSessionAndChat(t *testing.T) {
	h := newHarness(t, nil)
	rs := &racingStore{Store: h.store}
	h.opts.Store = rs
	h.adapter.SendFunc = func(ctx context.Context, m bridge.Outbound) error {
		return bridge.Unreachable("user blocked the bot", errors.New("Forbidden: bot was blocked by the user"))
	}
	h.start()
	ctx := ctxT(t)

	m := userMessage(3002, "hi")
	if err := h.adapter.Receive(ctx, m); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:3002", 1)
	h.waitIncoming(ctx, conv.ID, "hi")
	h.waitSubscribed(ctx, contact.ID)

	var fresh bridge.Customer
	thread := bridge.ChatRef{Platform: m.User.Platform, ID: "thread-3002"}
	raced := make(chan struct{})
	rs.arm(func() {
		defer close(raced)
		if _, err := h.store.UpdateCustomer(context.Background(), bridge.Customer{User: m.User, Chat: thread}, bridge.CustomerChat); err != nil {
			t.Error(err)
		}
		fresh = freshSession(t, h.store, m.User)
	})
	h.oc.AgentReply(conv.ID, "are you there?")
	select {
	case <-raced:
	case <-ctx.Done():
		t.Fatal("the unreachable mark never wrote the customer")
	}
	var got bridge.Customer
	if !poll(ctx, func() bool {
		var err error
		got, err = h.store.Customer(ctx, m.User)
		return err == nil && got.UnreachableReason != ""
	}) {
		t.Fatal("customer never marked unreachable")
	}
	if got.Chat != thread {
		t.Errorf("chat = %v after the unreachable mark, want the moved-to %v", got.Chat, thread)
	}
	if got.SourceID != fresh.SourceID || got.PubsubToken != fresh.PubsubToken {
		t.Errorf("the unreachable mark undid the fresh contact session: contact %d, want %d", got.ContactID, fresh.ContactID)
	}
}

// conversationProxy stands in front of the fake OneChat: it loses the answer to the loseNth
// conversation create (OneChat opens it, then onLost runs), and, when foreign is set, lists
// that conversation as another inbox's.
type conversationProxy struct {
	loseNth int64
	onLost  func(id int64)
	foreign bool

	creates atomic.Int64
	lost    atomic.Int64 // the id of the conversation whose answer was lost
}

func (p *conversationProxy) install(h *harness) {
	target, err := url.Parse(h.oc.URL())
	if err != nil {
		h.t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/conversations") {
			proxy.ServeHTTP(w, r)
			return
		}
		switch {
		case r.Method == http.MethodPost && p.creates.Add(1) == p.loseNth:
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r) // OneChat opens it...
			var conv struct{ ID int64 }
			if err := json.Unmarshal(rec.Body.Bytes(), &conv); err != nil || conv.ID == 0 {
				h.t.Errorf("conversation create answered %q", rec.Body.String())
			}
			if p.onLost != nil {
				p.onLost(conv.ID)
			}
			p.lost.Store(conv.ID)
			http.Error(w, "bad gateway", http.StatusBadGateway) // ...and the answer is lost
		case r.Method == http.MethodGet && p.foreign && p.lost.Load() != 0:
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			var list []map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
				h.t.Errorf("conversation list answered %q", rec.Body.String())
			}
			for _, cv := range list {
				if id, _ := cv["id"].(float64); int64(id) == p.lost.Load() {
					cv["inbox_id"] = 9999
				}
			}
			b, _ := json.Marshal(list)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.Copy(w, bytes.NewReader(b))
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	h.t.Cleanup(srv.Close)
	h.opts.OneChat = onechat.NewClient(srv.URL, h.oc.InboxIdentifier(), &onechat.Options{HMACToken: h.oc.HMACToken()})
}

// firstUserWrites has another user open a conversation, from which the bridge learns its
// inbox, and returns that user's customer.
func firstUserWrites(ctx context.Context, h *harness) bridge.Customer {
	h.t.Helper()
	m := userMessage(3100, "first")
	if err := h.adapter.Receive(ctx, m); err != nil {
		h.t.Fatal(err)
	}
	_, conv := h.waitConversation(ctx, "telegram:3100", 1)
	h.waitIncoming(ctx, conv.ID, "first")
	cu, err := h.store.Customer(ctx, m.User)
	if err != nil {
		h.t.Fatal(err)
	}
	return cu
}

// conversationWith returns the ids of the user's conversations in OneChat and the one their
// message went to.
func (h *harness) conversationWith(ctx context.Context, identifier, text string) (all []int64, with int64) {
	h.t.Helper()
	err := h.oc.Wait(ctx, func() bool {
		c, ok := h.oc.ContactByIdentifier(identifier)
		if !ok {
			return false
		}
		all, with = nil, 0
		for _, cv := range h.oc.Conversations(c.ID) {
			all = append(all, cv.ID)
			for _, in := range h.incoming(cv.ID) {
				if in == text {
					with = cv.ID
				}
			}
		}
		return with != 0
	})
	if err != nil {
		h.t.Fatalf("%q never reached a conversation of %s: %v", text, identifier, err)
	}
	return all, with
}

// TestAdoptionRefusesAnotherCustomersConversation: a conversation recorded for another
// customer between the lookup and the adoption stays that customer's; the user whose create
// was interrupted gets a conversation of their own.
func TestAdoptionRefusesAnotherCustomersConversation(t *testing.T) {
	h := newHarness(t, nil)
	rs := &racingStore{Store: h.store}
	h.opts.Store = rs
	var owner atomic.Int64
	p := &conversationProxy{loseNth: 2, onLost: func(id int64) {
		// Another customer records it meanwhile; the core's lookup does not see that yet.
		if err := h.store.SetConversation(context.Background(), owner.Load(), id, "open"); err != nil {
			t.Error(err)
		}
		rs.hide(id)
	}}
	p.install(h)
	h.start()
	ctx := ctxT(t)
	other := firstUserWrites(ctx, h)
	owner.Store(other.ID)

	if err := h.adapter.Receive(ctx, userMessage(3005, "hello?")); err != nil {
		t.Fatal(err)
	}
	all, with := h.conversationWith(ctx, "telegram:3005", "hello?")
	taken := p.lost.Load()
	if taken == 0 {
		t.Fatal("no create answer was lost: the test proves nothing")
	}
	if with == taken {
		t.Errorf("the message went to conversation %d, which another customer owns", taken)
	}
	if len(all) != 2 {
		t.Errorf("conversations %v, want the lost one and a new one", all)
	}
	got, err := h.store.CustomerByConversation(ctx, taken)
	if err != nil || got.ID != other.ID {
		t.Errorf("conversation %d now belongs to customer %d (%v), want %d", taken, got.ID, err, other.ID)
	}
}

// TestAdoptionRefusesAnotherInboxsConversation: a verified session lists its contact's
// conversations in every inbox; one in another inbox is never adopted.
func TestAdoptionRefusesAnotherInboxsConversation(t *testing.T) {
	h := newHarness(t, nil)
	p := &conversationProxy{loseNth: 2, foreign: true}
	p.install(h)
	h.start()
	ctx := ctxT(t)
	firstUserWrites(ctx, h)

	if err := h.adapter.Receive(ctx, userMessage(3006, "hello?")); err != nil {
		t.Fatal(err)
	}
	all, with := h.conversationWith(ctx, "telegram:3006", "hello?")
	foreign := p.lost.Load()
	if foreign == 0 {
		t.Fatal("no create answer was lost: the test proves nothing")
	}
	if with == foreign {
		t.Errorf("the message went to conversation %d of another inbox", foreign)
	}
	if len(all) != 2 {
		t.Errorf("conversations %v, want the foreign one and a new one", all)
	}
	if _, err := h.store.CustomerByConversation(ctx, foreign); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("the other inbox's conversation was recorded: %v", err)
	}
}
