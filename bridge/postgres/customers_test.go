package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
)

func newCustomer(id string) bridge.Customer {
	u := bridge.UserRef{Platform: bridge.Platform("telegram"), ID: id}
	return bridge.Customer{
		User:        u,
		Chat:        bridge.ChatRef{Platform: bridge.Platform("telegram"), ID: id},
		Identifier:  u.Identifier(),
		DisplayName: "User " + id,
		Username:    "user" + id,
	}
}

// saveCustomer stores newCustomer(id) and returns it as stored.
func saveCustomer(t *testing.T, s *postgres.Store, id string) bridge.Customer {
	t.Helper()
	c, err := s.SaveCustomer(t.Context(), newCustomer(id), 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSaveAndLoadCustomer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)

	if _, err := s.Customer(ctx, bridge.UserRef{Platform: bridge.Platform("telegram"), ID: "1"}); !errors.Is(err, bridge.ErrNotFound) {
		t.Fatalf("Customer of an unknown user: err = %v, want ErrNotFound", err)
	}

	c := newCustomer("1")
	saved, err := s.SaveCustomer(ctx, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if saved.ID == 0 {
		t.Fatal("SaveCustomer returned no ID")
	}
	c.ID = saved.ID
	if saved != c {
		t.Errorf("SaveCustomer returned %+v, want %+v", saved, c)
	}
	got, err := s.Customer(ctx, c.User)
	if err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Errorf("Customer = %+v, want %+v", got, c)
	}

	// A customer without a session is not listed.
	list, err := s.Customers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("Customers without sessions = %+v, want none", list)
	}

	// Updating keeps the ID and leaves the conversation alone.
	if err := s.SetConversation(ctx, c.ID, 77, "open"); err != nil {
		t.Fatal(err)
	}
	c.SourceID, c.PubsubToken, c.ContactID = "src-1", "tok-1", 501
	if _, ok, err := s.SetContactSession(ctx, c.ID, "", c); err != nil || !ok {
		t.Fatalf("SetContactSession = %t, %v", ok, err)
	}
	c.DisplayName, c.UnreachableReason = "Renamed", "blocked the bot"
	c.ConversationID, c.ConversationStatus = 999, "resolved" // ignored by SaveCustomer
	saved, err = s.SaveCustomer(ctx, c, bridge.CustomerProfile|bridge.CustomerReachability)
	if err != nil {
		t.Fatal(err)
	}
	c.ConversationID, c.ConversationStatus = 77, "open"
	if saved != c {
		t.Errorf("updated customer = %+v, want %+v", saved, c)
	}
	if got, _ := s.Customer(ctx, c.User); got != c {
		t.Errorf("Customer after update = %+v, want %+v", got, c)
	}

	byToken, _, err := s.CustomerByPubsubToken(ctx, "tok-1", "c.")
	if err != nil || byToken != c {
		t.Errorf("CustomerByPubsubToken = %+v, %v; want %+v", byToken, err, c)
	}
	for _, tok := range []string{"", "tok-2"} {
		if _, _, err := s.CustomerByPubsubToken(ctx, tok, "c."); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("CustomerByPubsubToken(%q): err = %v, want ErrNotFound", tok, err)
		}
	}

	other, err := s.SaveCustomer(ctx, newCustomer("2"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == c.ID {
		t.Fatal("two users share an ID")
	}
	list, err = s.Customers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0] != c {
		t.Errorf("Customers = %+v, want only %+v", list, c)
	}
}

func TestSaveCustomerRejectsBadInput(t *testing.T) {
	t.Parallel()
	s := pgtest.NewStore(t)
	c := newCustomer("1")
	c.Chat.Platform = bridge.Platform("discord")
	if _, err := s.SaveCustomer(t.Context(), c, 0); err == nil {
		t.Error("SaveCustomer accepted a chat on another platform")
	}
	if _, err := s.SaveCustomer(t.Context(), bridge.Customer{}, 0); err == nil {
		t.Error("SaveCustomer accepted a customer without a user")
	}
}

func TestConversations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	c, err := s.SaveCustomer(ctx, newCustomer("1"), 0)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := s.CustomerByConversation(ctx, 10); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("CustomerByConversation of an unknown conversation: err = %v, want ErrNotFound", err)
	}
	if err := s.SetConversationStatus(ctx, 10, "resolved"); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("SetConversationStatus of an unknown conversation: err = %v, want ErrNotFound", err)
	}
	if err := s.SetConversation(ctx, c.ID+100, 10, "open"); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("SetConversation of an unknown customer: err = %v, want ErrNotFound", err)
	}

	if err := s.SetConversation(ctx, c.ID, 10, "open"); err != nil {
		t.Fatal(err)
	}
	got, err := s.CustomerByConversation(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != c.ID || got.ConversationID != 10 || got.ConversationStatus != "open" {
		t.Errorf("CustomerByConversation(10) = %+v", got)
	}

	if err := s.SetConversationStatus(ctx, 10, "resolved"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Customer(ctx, c.User); got.ConversationStatus != "resolved" {
		t.Errorf("status after SetConversationStatus = %q, want resolved", got.ConversationStatus)
	}

	// A new conversation becomes current; the old one still finds its customer and keeps
	// its own status.
	if err := s.SetConversation(ctx, c.ID, 11, "pending"); err != nil {
		t.Fatal(err)
	}
	got, err = s.Customer(ctx, c.User)
	if err != nil {
		t.Fatal(err)
	}
	if got.ConversationID != 11 || got.ConversationStatus != "pending" {
		t.Errorf("current conversation = %d %q, want 11 pending", got.ConversationID, got.ConversationStatus)
	}
	for _, id := range []int64{10, 11} {
		got, err := s.CustomerByConversation(ctx, id)
		if err != nil || got.ID != c.ID {
			t.Errorf("CustomerByConversation(%d) = %+v, %v", id, got, err)
		}
	}
	// Updating the old conversation does not touch the current one's status.
	if err := s.SetConversationStatus(ctx, 10, "open"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Customer(ctx, c.User); got.ConversationStatus != "pending" {
		t.Errorf("current status = %q after changing an old conversation, want pending", got.ConversationStatus)
	}
	// Going back to an old conversation (reopen policy) works too.
	if err := s.SetConversation(ctx, c.ID, 10, "open"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Customer(ctx, c.User); got.ConversationID != 10 || got.ConversationStatus != "open" {
		t.Errorf("after reopening 10: %d %q", got.ConversationID, got.ConversationStatus)
	}
}

// TestRepeatedStatusKeepsIdleClock: the cable repeats a conversation's status with many events.
// A repeat is not a change: a conversation resolved before a moment stays idle from then on,
// while one that really changed status after it does not.
func TestRepeatedStatusKeepsIdleClock(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	nc := newCustomer("1")
	nc.SourceID, nc.PubsubToken = "source-1", "token-1"
	c, err := s.SaveCustomer(ctx, nc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetConversation(ctx, c.ID, 20, "resolved"); err != nil {
		t.Fatal(err)
	}
	mark := time.Now()
	if err := s.SetConversationStatus(ctx, 20, "resolved"); err != nil {
		t.Fatalf("repeating a status: %v", err)
	}
	idle, err := s.IdleCustomers(ctx, mark, []string{c.PubsubToken})
	if err != nil {
		t.Fatal(err)
	}
	if len(idle) != 1 || idle[0].ID != c.ID {
		t.Fatalf("idle before the repeat = %+v, want the customer (resolved before it)", idle)
	}
	for _, st := range []string{"open", "resolved"} {
		if err := s.SetConversationStatus(ctx, 20, st); err != nil {
			t.Fatal(err)
		}
	}
	if idle, err := s.IdleCustomers(ctx, mark, []string{c.PubsubToken}); err != nil || len(idle) != 0 {
		t.Fatalf("idle before a reopen and resolve = %+v, %v; want none", idle, err)
	}
	if got, pos, err := s.CustomerByPubsubToken(ctx, c.PubsubToken, "c."); err != nil || got.ID != c.ID || pos != "" {
		t.Fatalf("CustomerByPubsubToken = %+v, %q, %v; want the customer, no cursor yet", got, pos, err)
	}
	// The current conversation's cursor comes with the customer.
	if _, err := s.Enqueue(ctx, bridge.IntCursor("c.20", 1234)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, bridge.IntCursor("c.2", 99)); err != nil {
		t.Fatal(err)
	}
	if _, pos, err := s.CustomerByPubsubToken(ctx, c.PubsubToken, "c."); err != nil || pos != "1234" {
		t.Fatalf("CustomerByPubsubToken: cursor %q, %v; want the current conversation's, 1234", pos, err)
	}
}

// TestConversationNeverChangesHands: recording a conversation another customer owns is
// refused and changes nothing, neither the conversation nor the customer's current one.
func TestConversationNeverChangesHands(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	a, b := saveCustomer(t, s, "1"), saveCustomer(t, s, "2")
	if err := s.SetConversation(ctx, a.ID, 10, "open"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConversation(ctx, b.ID, 20, "pending"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConversation(ctx, b.ID, 10, "resolved"); !errors.Is(err, bridge.ErrConversationTaken) {
		t.Fatalf("recording a's conversation for b: err = %v, want ErrConversationTaken", err)
	}
	if got, err := s.CustomerByConversation(ctx, 10); err != nil || got.ID != a.ID || got.ConversationStatus != "open" {
		t.Errorf("conversation 10 after the refusal: customer %d status %q (%v), want %d open", got.ID, got.ConversationStatus, err, a.ID)
	}
	if got, _ := s.Customer(ctx, b.User); got.ConversationID != 20 || got.ConversationStatus != "pending" {
		t.Errorf("b's current conversation after the refusal = %d %q, want 20 pending", got.ConversationID, got.ConversationStatus)
	}
	// The owner may record it again (a reopen).
	if err := s.SetConversation(ctx, a.ID, 10, "resolved"); err != nil {
		t.Errorf("the owner recording its own conversation: %v", err)
	}
}

// TestConversationRecordedAtOnceHasOneOwner: two customers recording one new conversation at
// the same time: exactly one gets it, the other is refused.
func TestConversationRecordedAtOnceHasOneOwner(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	var ids []int64
	for _, u := range []string{"1", "2", "3", "4"} {
		c, err := s.SaveCustomer(ctx, newCustomer(u), 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	for conv := int64(100); conv < 120; conv++ {
		errs := make(chan error, len(ids))
		for _, id := range ids {
			go func() { errs <- s.SetConversation(ctx, id, conv, "open") }()
		}
		won := 0
		for range ids {
			switch err := <-errs; {
			case err == nil:
				won++
			case !errors.Is(err, bridge.ErrConversationTaken):
				t.Fatal(err)
			}
		}
		if won != 1 {
			t.Fatalf("conversation %d: %d customers recorded it, want 1", conv, won)
		}
		owner, err := s.CustomerByConversation(ctx, conv)
		if err != nil || owner.ConversationID != conv {
			t.Fatalf("conversation %d: owner %+v (%v) does not have it as current", conv, owner, err)
		}
	}
}

// TestCustomerWritersChangeOnlyTheirColumns: a writer holding an older copy of the customer
// (read before another writer committed) writes only its own columns, so the contact session,
// chat and reachability another writer stored meanwhile stay.
func TestCustomerWritersChangeOnlyTheirColumns(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	c := newCustomer("1")
	c.SourceID = "src-old"
	stale, err := s.SaveCustomer(ctx, c, 0)
	if err != nil {
		t.Fatal(err)
	}

	// Meanwhile: a new contact session, a marked reachability.
	fresh, ok, err := s.SetContactSession(ctx, stale.ID, "src-old", bridge.Customer{SourceID: "src-new", PubsubToken: "tok-new", ContactID: 7})
	if err != nil || !ok {
		t.Fatalf("SetContactSession = %t, %v", ok, err)
	}
	if fresh.SourceID != "src-new" || fresh.PubsubToken != "tok-new" || fresh.ContactID != 7 {
		t.Fatalf("SetContactSession returned %+v", fresh)
	}
	marked := stale
	marked.UnreachableReason = "blocked"
	if _, err := s.UpdateCustomer(ctx, marked, bridge.CustomerReachability); err != nil {
		t.Fatal(err)
	}

	// The stale copy moves the chat and renames the user.
	moved := stale
	moved.Chat = bridge.ChatRef{Platform: moved.User.Platform, ID: "thread"}
	moved.DisplayName = "Renamed"
	got, err := s.UpdateCustomer(ctx, moved, bridge.CustomerChat|bridge.CustomerProfile)
	if err != nil {
		t.Fatal(err)
	}
	want := fresh
	want.Chat, want.DisplayName, want.UnreachableReason = moved.Chat, "Renamed", "blocked"
	if got != want {
		t.Errorf("after the stale writer: %+v\nwant %+v", got, want)
	}
	// An upsert of an existing user writes only its fields too.
	again := stale
	again.Username = "newname"
	if got, err = s.SaveCustomer(ctx, again, bridge.CustomerProfile); err != nil {
		t.Fatal(err)
	}
	want.Username, want.DisplayName = "newname", stale.DisplayName
	if got != want {
		t.Errorf("after the upsert: %+v\nwant %+v", got, want)
	}

	// A session change made from the old session is refused and returns the new one.
	got, ok, err = s.SetContactSession(ctx, stale.ID, "src-old", bridge.Customer{})
	if err != nil || ok || got.SourceID != "src-new" {
		t.Errorf("forgetting the old session: %t %v, session now %q; want refused, src-new kept", ok, err, got.SourceID)
	}

	if _, err := s.UpdateCustomer(ctx, newCustomer("9"), bridge.CustomerChat); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("UpdateCustomer of an unknown user: %v, want ErrNotFound", err)
	}
	if _, _, err := s.SetContactSession(ctx, stale.ID+100, "", bridge.Customer{}); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("SetContactSession of an unknown customer: %v, want ErrNotFound", err)
	}
}

func TestLatestCustomerWithConversation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	if _, err := s.LatestCustomerWithConversation(ctx); !errors.Is(err, bridge.ErrNotFound) {
		t.Fatalf("in an empty store: %v, want ErrNotFound", err)
	}
	var ids []int64
	for _, u := range []string{"1", "2", "3"} {
		c := newCustomer(u)
		c.SourceID = "src-" + u
		saved, err := s.SaveCustomer(ctx, c, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, saved.ID)
	}
	if _, err := s.SaveCustomer(ctx, newCustomer("4"), 0); err != nil { // no session
		t.Fatal(err)
	}
	for i, id := range ids[:2] {
		if err := s.SetConversation(ctx, id, int64(50+i), "open"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LatestCustomerWithConversation(ctx)
	if err != nil || got.ID != ids[1] || got.ConversationID != 51 {
		t.Errorf("latest = customer %d conversation %d (%v), want %d with 51", got.ID, got.ConversationID, err, ids[1])
	}
}

// TestStatusChangeFromAStaleReadChangesNothing: a writer that read the status before another
// writer recorded a change does not undo it, nor queue what its change would cause.
func TestStatusChangeFromAStaleReadChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	c := saveCustomer(t, s, "30")
	if err := s.SetConversation(ctx, c.ID, 30, "open"); err != nil {
		t.Fatal(err)
	}
	job := func(dedup string) func(string) []bridge.NewJob {
		return func(string) []bridge.NewJob {
			return []bridge.NewJob{{Direction: bridge.Out, Key: "telegram:30", Dedup: dedup, Payload: []byte(`{}`)}}
		}
	}
	// Both read "open"; the first records the resolve.
	if prev, err := s.ChangeConversationStatusFrom(ctx, 30, "open", "resolved", job("close")); err != nil || prev != "open" {
		t.Fatalf("first change: previous %q, %v; want open", prev, err)
	}
	if prev, err := s.ChangeConversationStatusFrom(ctx, 30, "open", "pending", job("stale")); err != nil || prev != "" {
		t.Fatalf("stale change: previous %q, %v; want no change", prev, err)
	}
	if got, err := s.Customer(ctx, c.User); err != nil || got.ConversationStatus != "resolved" {
		t.Errorf("status %q (%v), want resolved kept", got.ConversationStatus, err)
	}
	if _, _, err := s.JobState(ctx, bridge.Out, "stale"); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("the stale change queued its job: %v", err)
	}
	if _, _, err := s.JobState(ctx, bridge.Out, "close"); err != nil {
		t.Errorf("the change did not queue its job: %v", err)
	}
	if _, err := s.ChangeConversationStatusFrom(ctx, 31, "open", "resolved", nil); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("unknown conversation: %v, want ErrNotFound", err)
	}
}

// TestStatusChangeQueuesBehindADuplicate: the jobs a status change queues follow Enqueue's rules;
// when a key's first job is one the queue has already (its row kept for dedup), the key's next
// new job becomes its head and is claimed, rather than waiting behind a job that never came.
func TestStatusChangeQueuesBehindADuplicate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	c := saveCustomer(t, s, "32")
	if err := s.SetConversation(ctx, c.ID, 32, "open"); err != nil {
		t.Fatal(err)
	}
	job := func(dedup string) bridge.NewJob {
		return bridge.NewJob{Direction: bridge.Out, Key: "telegram:32", Dedup: dedup, Payload: []byte(`{}`)}
	}
	if _, err := s.Enqueue(ctx, bridge.Cursor{}, job("resolved-note")); err != nil {
		t.Fatal(err)
	}
	done, err := s.Claim(ctx, bridge.Out, time.Minute)
	if err != nil || done == nil {
		t.Fatalf("Claim = %v, %v", done, err)
	}
	if err := s.Complete(ctx, done.Lease()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChangeConversationStatus(ctx, 32, "resolved", func(string) []bridge.NewJob {
		return []bridge.NewJob{job("resolved-note"), job("survey")}
	}); err != nil {
		t.Fatal(err)
	}
	next, err := s.Claim(ctx, bridge.Out, time.Minute)
	if err != nil || next == nil || next.Dedup != "survey" {
		t.Fatalf("Claim after the status change = %+v, %v; want the survey job", next, err)
	}
}

// TestConversationsSinceCountsTheCustomersRecordedConversations: the day's bound on new
// conversations counts what SetConversation recorded for the customer in the window: a
// conversation recorded again (a status change, a reopen) counts once, and other customers'
// conversations not at all.
func TestConversationsSinceCountsTheCustomersRecordedConversations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	a, b := saveCustomer(t, s, "1"), saveCustomer(t, s, "2")
	hourAgo := time.Now().Add(-time.Hour)
	if n, err := s.ConversationsSince(ctx, a.ID, hourAgo); err != nil || n != 0 {
		t.Fatalf("before any conversation: %d (%v), want 0", n, err)
	}
	for _, rec := range []struct {
		customer, conv int64
		status         string
	}{{a.ID, 10, "open"}, {a.ID, 10, "resolved"}, {a.ID, 11, "open"}, {b.ID, 20, "open"}} {
		if err := s.SetConversation(ctx, rec.customer, rec.conv, rec.status); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.ConversationsSince(ctx, a.ID, hourAgo); err != nil || n != 2 {
		t.Errorf("a's conversations of the last hour: %d (%v), want 2", n, err)
	}
	if n, err := s.ConversationsSince(ctx, b.ID, hourAgo); err != nil || n != 1 {
		t.Errorf("b's conversations of the last hour: %d (%v), want 1", n, err)
	}
	if n, err := s.ConversationsSince(ctx, a.ID, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("a's conversations from an hour ahead: %d (%v), want 0", n, err)
	}
}
