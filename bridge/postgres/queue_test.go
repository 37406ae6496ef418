package postgres_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for goose
	"github.com/pressly/goose/v3"
	"go.uber.org/zap/zaptest"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
	"github.com/onechat/onechat-bridge/migrations"
)

const offsetCursor = "telegram.update_offset"

func job(dir bridge.Direction, key, dedup string) bridge.NewJob {
	return bridge.NewJob{Direction: dir, Key: key, Dedup: dedup, Payload: json.RawMessage(`{"dedup":"` + dedup + `"}`)}
}

func enqueue(t *testing.T, s *postgres.Store, jobs ...bridge.NewJob) {
	t.Helper()
	if _, err := s.Enqueue(t.Context(), bridge.Cursor{}, jobs...); err != nil {
		t.Fatal(err)
	}
}

// claim claims a job and fails the test unless it has the given dedup ("" means none).
func claim(t *testing.T, s *postgres.Store, dir bridge.Direction, lease time.Duration, want string) *bridge.Job {
	t.Helper()
	j, err := s.Claim(t.Context(), dir, lease)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case j == nil && want != "":
		t.Fatalf("Claim(%s) = nil, want %s", dir, want)
	case j != nil && j.Dedup != want:
		t.Fatalf("Claim(%s) = %s, want %q", dir, j.Dedup, want)
	}
	return j
}

func cursor(t *testing.T, s *postgres.Store) int64 {
	t.Helper()
	n, err := s.Cursor(t.Context(), offsetCursor)
	if err != nil {
		t.Fatal(err)
	}
	return bridge.ParsePosition(n)
}

func state(t *testing.T, s *postgres.Store, dir bridge.Direction, dedup string) (string, string) {
	t.Helper()
	st, reason, err := s.JobState(t.Context(), dir, dedup)
	if err != nil {
		t.Fatal(err)
	}
	return st, reason
}

func TestEnqueueDedupAndCursor(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)

	n, err := s.Enqueue(ctx, bridge.Cursor{Name: offsetCursor, Position: "10"},
		job(bridge.In, "u1", "m1"), job(bridge.In, "u1", "m2"))
	if err != nil || n != 2 {
		t.Fatalf("Enqueue = %d, %v; want 2", n, err)
	}
	if got := cursor(t, s); got != 10 {
		t.Errorf("cursor = %d, want 10", got)
	}

	// A replay adds only what is new, and an older position never moves the cursor back.
	n, err = s.Enqueue(ctx, bridge.Cursor{Name: offsetCursor, Position: "5"},
		job(bridge.In, "u1", "m1"), job(bridge.In, "u1", "m2"), job(bridge.In, "u1", "m3"), job(bridge.In, "u1", "m3"))
	if err != nil || n != 1 {
		t.Fatalf("replayed Enqueue = %d, %v; want 1", n, err)
	}
	if got := cursor(t, s); got != 10 {
		t.Errorf("cursor moved back to %d", got)
	}

	// Dedup is per direction, and a finished job still deduplicates.
	j := claim(t, s, bridge.In, time.Minute, "m1")
	if err := s.Complete(ctx, j.Lease()); err != nil {
		t.Fatal(err)
	}
	n, err = s.Enqueue(ctx, bridge.Cursor{}, job(bridge.Out, "c1", "m1"), job(bridge.In, "u1", "m1"))
	if err != nil || n != 1 {
		t.Fatalf("Enqueue across directions = %d, %v; want 1", n, err)
	}

	// A cursor alone can move.
	if n, err := s.Enqueue(ctx, bridge.Cursor{Name: offsetCursor, Position: "20"}); err != nil || n != 0 {
		t.Fatalf("cursor-only Enqueue = %d, %v", n, err)
	}
	if got := cursor(t, s); got != 20 {
		t.Errorf("cursor = %d, want 20", got)
	}

	// A job the database rejects (an index entry this large cannot exist) rolls everything back.
	huge := make([]byte, 8000)
	_, _ = rand.Read(huge)
	_, err = s.Enqueue(ctx, bridge.Cursor{Name: offsetCursor, Position: "30"},
		job(bridge.In, "u2", "ok"), job(bridge.In, "u2", hex.EncodeToString(huge)))
	if err == nil {
		t.Fatal("Enqueue of an oversized dedup succeeded")
	}
	if got := cursor(t, s); got != 20 {
		t.Errorf("cursor = %d after a failed Enqueue, want 20", got)
	}
	if _, _, err := s.JobState(ctx, bridge.In, "ok"); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("job of a failed Enqueue: err = %v, want ErrNotFound", err)
	}
}

// TestEnqueueBatch stores several enqueues in one transaction: each batch's count is of its own
// new jobs (a job two batches share counts for the first), and each cursor moves to the highest
// position given for it, never back.
func TestEnqueueBatch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	if _, err := s.Enqueue(ctx, bridge.Cursor{Name: "b", Position: "9"}, job(bridge.Out, "c0", "old")); err != nil {
		t.Fatal(err)
	}
	n, _, err := s.EnqueueBatch(ctx, []bridge.JobBatch{
		{Cursor: bridge.Cursor{Name: "a", Position: "5"}, Jobs: []bridge.NewJob{job(bridge.Out, "c1", "m1"), job(bridge.Out, "c1", "m2")}},
		{Cursor: bridge.Cursor{Name: "a", Position: "3"}, Jobs: []bridge.NewJob{job(bridge.Out, "c1", "m2"), job(bridge.Out, "c2", "m3")}},
		{Cursor: bridge.Cursor{Name: "b", Position: "7"}, Jobs: []bridge.NewJob{job(bridge.Out, "c0", "old")}},
		{},
	}, bridge.Take{})
	if err != nil || !slices.Equal(n, []int{2, 1, 0, 0}) {
		t.Fatalf("EnqueueBatch = %v, %v; want [2 1 0 0]", n, err)
	}
	for name, want := range map[string]string{"a": "5", "b": "9"} {
		if got, err := s.Cursor(ctx, name); err != nil || got != want {
			t.Errorf("cursor %s = %q, %v; want %q", name, got, err, want)
		}
	}
	// Each key's jobs run in the order given, across batches.
	claim(t, s, bridge.Out, time.Minute, "old")
	j := claim(t, s, bridge.Out, time.Minute, "m1")
	claim(t, s, bridge.Out, time.Minute, "m3")
	claim(t, s, bridge.Out, time.Minute, "")
	if err := s.Complete(ctx, j.Lease()); err != nil {
		t.Fatal(err)
	}
	claim(t, s, bridge.Out, time.Minute, "m2")
}

func TestEnqueueRejectsBadJobs(t *testing.T) {
	t.Parallel()
	s := pgtest.NewStore(t)
	for name, j := range map[string]bridge.NewJob{
		"direction": {Direction: "sideways", Key: "k", Dedup: "d"},
		"key":       {Direction: bridge.In, Dedup: "d"},
		"dedup":     {Direction: bridge.In, Key: "k"},
		"payload":   {Direction: bridge.In, Key: "k", Dedup: "d", Payload: json.RawMessage(`{`)},
	} {
		if _, err := s.Enqueue(t.Context(), bridge.Cursor{Name: offsetCursor, Position: "1"}, j); err == nil {
			t.Errorf("bad %s: Enqueue succeeded", name)
		}
	}
	if got := cursor(t, s); got != 0 {
		t.Errorf("cursor = %d after rejected jobs, want 0", got)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	in := bridge.Inbound{
		User:      bridge.UserRef{Platform: bridge.Platform("telegram"), ID: "42"},
		Chat:      bridge.ChatRef{Platform: bridge.Platform("telegram"), ID: "42"},
		MessageID: "7",
		// jsonb cannot hold NUL; it must not make the message impossible to store.
		Text:   "hi \x00 there \\u0000 «ü» 😀",
		SentAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	payload, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, bridge.Cursor{}, bridge.NewJob{Direction: bridge.In, Key: in.User.String(), Dedup: in.DedupKey(), Payload: payload}); err != nil {
		t.Fatal(err)
	}
	j := claim(t, s, bridge.In, time.Minute, in.DedupKey())
	var got bridge.Inbound
	if err := json.Unmarshal(j.Payload, &got); err != nil {
		t.Fatal(err)
	}
	want := in
	want.Text = "hi \uFFFD there \\u0000 «ü» 😀"
	if !got.SentAt.Equal(want.SentAt) || got.Text != want.Text || got.User != want.User || got.MessageID != want.MessageID {
		t.Errorf("payload = %+v, want %+v", got, want)
	}
	if j.Key != in.User.String() || j.Direction != bridge.In || j.Attempts != 0 || j.CreatedAt.IsZero() {
		t.Errorf("job = %+v", j)
	}

	// An empty payload is stored as JSON null.
	enqueue(t, s, bridge.NewJob{Direction: bridge.Out, Key: "c", Dedup: "empty"})
	if j := claim(t, s, bridge.Out, time.Minute, "empty"); string(j.Payload) != "null" {
		t.Errorf("empty payload came back as %q", j.Payload)
	}
}

func TestPerKeyFIFO(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	enqueue(t, s, job(bridge.In, "A", "a1"), job(bridge.In, "A", "a2"), job(bridge.In, "B", "b1"),
		job(bridge.Out, "A", "out1"))

	a1 := claim(t, s, bridge.In, time.Minute, "a1")
	claim(t, s, bridge.In, time.Minute, "b1") // a2 waits behind the running a1
	claim(t, s, bridge.In, time.Minute, "")
	if err := s.Complete(ctx, a1.Lease()); err != nil {
		t.Fatal(err)
	}
	claim(t, s, bridge.In, time.Minute, "a2")
	claim(t, s, bridge.Out, time.Minute, "out1") // directions are separate queues

	// A head waiting for a retry blocks its key, and only its key.
	enqueue(t, s, job(bridge.In, "C", "c1"), job(bridge.In, "C", "c2"), job(bridge.In, "D", "d1"))
	c1 := claim(t, s, bridge.In, time.Minute, "c1")
	if err := s.Retry(ctx, c1.Lease(), time.Now().Add(time.Hour), true, "timeout"); err != nil {
		t.Fatal(err)
	}
	claim(t, s, bridge.In, time.Minute, "d1")
	claim(t, s, bridge.In, time.Minute, "")
	if st, _ := state(t, s, bridge.In, "c2"); st != bridge.JobPending {
		t.Errorf("c2 is %s, want pending", st)
	}
}

func TestLeaseExpiryReclaim(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	enqueue(t, s, job(bridge.Out, "chat", "m1"), job(bridge.Out, "chat", "m2"))

	// A worker that leased m1 for a microsecond and vanished: the next claim takes it over.
	first := claim(t, s, bridge.Out, time.Microsecond, "m1")
	again := claim(t, s, bridge.Out, time.Minute, "m1")
	if again.ID != first.ID || again.Attempts != 1 || !again.Retried {
		t.Errorf("reclaimed job = %+v, want id %d with 1 attempt", again, first.ID)
	}
	if st, reason := state(t, s, bridge.Out, "m1"); st != bridge.JobRunning || reason != "lease expired" {
		t.Errorf("reclaimed job state = %s %q", st, reason)
	}
	claim(t, s, bridge.Out, time.Minute, "") // the live lease holds, and m2 waits behind it

	// The late first worker can no longer renew, finish or reschedule it, nor record links
	// for it: the new holder decides.
	chat := bridge.ChatRef{Platform: "telegram", ID: "42"}
	late := bridge.MessageLink{OneChatMessageID: 77, ConversationID: 1, Chat: chat, PlatformMessageID: "770", Direction: bridge.Out}
	for name, err := range map[string]error{
		"ExtendLease": s.ExtendLease(ctx, first.Lease(), time.Hour),
		"Complete":    s.Complete(ctx, first.Lease(), late),
		"Retry":       s.Retry(ctx, first.Lease(), time.Now(), true, "late", late),
		"Fail":        s.Fail(ctx, first.Lease(), "late", late),
	} {
		if !errors.Is(err, bridge.ErrLeaseLost) {
			t.Errorf("%s under the expired lease: err = %v, want ErrLeaseLost", name, err)
		}
	}
	if st, reason := state(t, s, bridge.Out, "m1"); st != bridge.JobRunning || reason != "lease expired" {
		t.Errorf("after the late worker's calls m1 is %s %q, want running under the new lease", st, reason)
	}
	if links, err := s.LinkByOneChat(ctx, 77); err != nil || len(links) != 0 {
		t.Errorf("the late worker's links were recorded: %v, %v", links, err)
	}
	claim(t, s, bridge.Out, time.Minute, "") // still held, and m2 still waits
	if err := s.ExtendLease(ctx, again.Lease(), time.Minute); err != nil {
		t.Errorf("ExtendLease by the holder: %v", err)
	}
	if err := s.Complete(ctx, again.Lease()); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, again.Lease()); !errors.Is(err, bridge.ErrLeaseLost) {
		t.Errorf("second Complete of a job: err = %v, want ErrLeaseLost", err)
	}
	claim(t, s, bridge.Out, time.Minute, "m2")

	if _, err := s.Claim(ctx, bridge.Out, 0); err == nil {
		t.Error("Claim accepted a zero lease")
	}
	if _, err := s.Claim(ctx, "sideways", time.Minute); err == nil {
		t.Error("Claim accepted an unknown direction")
	}
}

func TestRetryCounting(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	enqueue(t, s, job(bridge.In, "u", "m"))

	past := time.Now().Add(-time.Second)
	j := claim(t, s, bridge.In, time.Minute, "m")
	if j.Retried {
		t.Error("a job never tried before claims to be retried")
	}
	// The attempt delivered one part before it failed: recorded with the retry.
	part := bridge.MessageLink{OneChatMessageID: 5, ConversationID: 1, Chat: bridge.ChatRef{Platform: "telegram", ID: "42"}, PlatformMessageID: "50", Direction: bridge.Out}
	if err := s.Retry(ctx, j.Lease(), past, true, "503 from onechat", part); err != nil {
		t.Fatal(err)
	}
	if links, err := s.LinkByOneChat(ctx, 5); err != nil || len(links) != 1 || links[0] != part {
		t.Errorf("links recorded with the retry = %v, %v; want %v", links, err, part)
	}
	if st, reason := state(t, s, bridge.In, "m"); st != bridge.JobPending || reason != "503 from onechat" {
		t.Errorf("after Retry: %s %q", st, reason)
	}
	j = claim(t, s, bridge.In, time.Minute, "m")
	if j.Attempts != 1 || !j.Retried {
		t.Errorf("Attempts = %d, Retried = %v after a counted retry, want 1, true", j.Attempts, j.Retried)
	}
	if err := s.Retry(ctx, j.Lease(), past, false, "rate limited"); err != nil {
		t.Fatal(err)
	}
	j = claim(t, s, bridge.In, time.Minute, "m")
	if j.Attempts != 1 {
		t.Errorf("Attempts = %d after a rate-limit wait, want 1", j.Attempts)
	}
	if err := s.Retry(ctx, j.Lease(), past, true, "again"); err != nil {
		t.Fatal(err)
	}
	j = claim(t, s, bridge.In, time.Minute, "m")
	if j.Attempts != 2 {
		t.Errorf("Attempts = %d, want 2", j.Attempts)
	}

	if err := s.Complete(ctx, j.Lease()); err != nil {
		t.Fatal(err)
	}
	err := s.Retry(ctx, j.Lease(), past, true, "late")
	if !errors.Is(err, bridge.ErrLeaseLost) {
		t.Errorf("Retry of a done job: err = %v, want ErrLeaseLost", err)
	}
	if st, _ := state(t, s, bridge.In, "m"); st != bridge.JobDone {
		t.Errorf("Retry resurrected a done job: %s", st)
	}
	if err := s.Retry(ctx, bridge.JobLease{ID: j.ID + 1000}, past, true, "x"); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("Retry of an unknown job: err = %v, want ErrNotFound", err)
	}
}

func TestFailMovesKeyOn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	enqueue(t, s, job(bridge.Out, "chat", "m1"), job(bridge.Out, "chat", "m2"))

	j := claim(t, s, bridge.Out, time.Minute, "m1")
	// The attempt delivered a first part before the platform refused the rest.
	part := bridge.MessageLink{OneChatMessageID: 6, ConversationID: 1, Chat: bridge.ChatRef{Platform: "telegram", ID: "42"}, PlatformMessageID: "60", Direction: bridge.Out}
	if err := s.Fail(ctx, j.Lease(), "user blocked the bot", part); err != nil {
		t.Fatal(err)
	}
	if links, err := s.LinkByOneChat(ctx, 6); err != nil || len(links) != 1 || links[0] != part {
		t.Errorf("links recorded with the failure = %v, %v; want %v", links, err, part)
	}
	if st, reason := state(t, s, bridge.Out, "m1"); st != bridge.JobFailed || reason != "user blocked the bot" {
		t.Errorf("failed job state = %s %q", st, reason)
	}
	claim(t, s, bridge.Out, time.Minute, "m2")

	if err := s.Fail(ctx, j.Lease(), "again"); !errors.Is(err, bridge.ErrLeaseLost) {
		t.Errorf("Fail of a failed job: err = %v, want ErrLeaseLost", err)
	}
	if err := s.Fail(ctx, bridge.JobLease{ID: j.ID + 1000}, "x"); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("Fail of an unknown job: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.JobState(ctx, bridge.Out, "nope"); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("JobState of an unknown job: err = %v, want ErrNotFound", err)
	}
}

func TestLinks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	chat := bridge.ChatRef{Platform: bridge.Platform("telegram"), ID: "42"}

	if links, err := s.LinkByOneChat(ctx, 900); err != nil || len(links) != 0 {
		t.Errorf("LinkByOneChat of an unknown message = %v, %v", links, err)
	}
	if _, err := s.LinkByPlatform(ctx, chat, "1"); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("LinkByPlatform of an unknown message: err = %v, want ErrNotFound", err)
	}

	enqueue(t, s, job(bridge.Out, chat.String(), "900"), job(bridge.Out, chat.String(), "901"))
	j := claim(t, s, bridge.Out, time.Minute, "900")
	// A long agent message went out as two platform messages.
	want := []bridge.MessageLink{
		{OneChatMessageID: 900, ConversationID: 5, Chat: chat, PlatformMessageID: "11", Direction: bridge.Out},
		{OneChatMessageID: 900, ConversationID: 5, Chat: chat, PlatformMessageID: "12", Direction: bridge.Out},
	}
	if err := s.Complete(ctx, j.Lease(), want...); err != nil {
		t.Fatal(err)
	}
	got, err := s.LinkByOneChat(ctx, 900)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("LinkByOneChat = %+v, want %+v", got, want)
	}
	if l, err := s.LinkByPlatform(ctx, chat, "12"); err != nil || l != want[1] {
		t.Errorf("LinkByPlatform = %+v, %v; want %+v", l, err, want[1])
	}

	// A platform message id already linked keeps its first link.
	j = claim(t, s, bridge.Out, time.Minute, "901")
	if err := s.Complete(ctx, j.Lease(), bridge.MessageLink{OneChatMessageID: 901, ConversationID: 5, Chat: chat, PlatformMessageID: "12", Direction: bridge.Out}); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.LinkByPlatform(ctx, chat, "12"); l.OneChatMessageID != 900 {
		t.Errorf("duplicate link replaced the first: %+v", l)
	}

	// Completing an unknown job records nothing.
	err = s.Complete(ctx, bridge.JobLease{ID: 12345}, bridge.MessageLink{OneChatMessageID: 902, ConversationID: 5, Chat: chat, PlatformMessageID: "13", Direction: bridge.Out})
	if !errors.Is(err, bridge.ErrLeaseLost) {
		t.Errorf("Complete of an unknown job: err = %v, want ErrLeaseLost", err)
	}
	if links, _ := s.LinkByOneChat(ctx, 902); len(links) != 0 {
		t.Errorf("a failed Complete recorded links: %+v", links)
	}
}

func TestNextDue(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	nextDue := func() (time.Time, bool) {
		t.Helper()
		at, ok, err := s.NextDue(ctx, bridge.Out)
		if err != nil {
			t.Fatal(err)
		}
		return at, ok
	}
	if _, ok := nextDue(); ok {
		t.Fatal("NextDue of an empty queue reports a job")
	}

	enqueue(t, s, job(bridge.Out, "A", "a1"), job(bridge.Out, "A", "a2"))
	if at, ok := nextDue(); !ok || at.After(time.Now()) {
		t.Errorf("NextDue with a new job = %v, %v; want a time not after now", at, ok)
	}

	// While a1 runs, a2 cannot: the next moment anything can happen is a1's lease expiry.
	a1 := claim(t, s, bridge.Out, time.Hour, "a1")
	if at, ok := nextDue(); !ok || at.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("NextDue with a running head = %v, %v; want about an hour from now", at, ok)
	}

	retryAt := time.Now().Add(2 * time.Hour).Truncate(time.Microsecond)
	if err := s.Retry(ctx, a1.Lease(), retryAt, true, "x"); err != nil {
		t.Fatal(err)
	}
	if at, ok := nextDue(); !ok || !at.Equal(retryAt) {
		t.Errorf("NextDue = %v, %v; want %v", at, ok, retryAt)
	}

	enqueue(t, s, job(bridge.Out, "B", "b1"))
	if at, ok := nextDue(); !ok || at.After(time.Now()) {
		t.Errorf("NextDue with a due job on another key = %v, %v", at, ok)
	}
	if _, ok, err := s.NextDue(ctx, bridge.In); err != nil || ok {
		t.Errorf("NextDue(in) = %v, %v; want none", ok, err)
	}
}

// TestConcurrentClaimers runs producers and workers against one store at once, as several
// bridge instances would: every job must run exactly once, one job per key at a time, in the
// order of its key.
// TestConcurrentClaimers runs workers that claim and complete one job at a time, and workers
// that claim and complete several at once, against producers: every job runs once, a key's jobs
// run one at a time and in order.
func TestConcurrentClaimers(t *testing.T) {
	t.Parallel()
	t.Run("one at a time", func(t *testing.T) { t.Parallel(); concurrentClaimers(t, 1) })
	t.Run("batches", func(t *testing.T) { t.Parallel(); concurrentClaimers(t, 6) })
}

func concurrentClaimers(t *testing.T, claimBatch int) {
	const (
		workers   = 8
		producers = 2
		jobs      = 500
		keys      = 20
		batch     = 5
	)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s := pgtest.NewStore(t)

	var (
		mu        sync.Mutex
		running   = map[string]bool{}
		lastID    = map[string]int64{}
		lastSeq   = map[string]int{}
		claimed   = map[int64]int{}
		problems  []string
		completed atomic.Int64
		wg        sync.WaitGroup
		errs      = make(chan error, workers+producers)
	)
	for p := range producers {
		wg.Go(func() {
			// Producer p owns the keys k with k%producers == p and writes each key's jobs in
			// sequence, interleaved with the other producer's keys.
			var pending []bridge.NewJob
			for i := p; i < jobs; i += producers {
				key := fmt.Sprintf("k%02d", (i/producers)%(keys/producers)*producers+p)
				pending = append(pending, bridge.NewJob{Direction: bridge.In, Key: key,
					Dedup: fmt.Sprint(i), Payload: json.RawMessage(fmt.Sprintf(`{"seq":%d}`, i))})
				if len(pending) == batch || i+producers >= jobs {
					if _, err := s.Enqueue(ctx, bridge.Cursor{Name: offsetCursor, Position: strconv.Itoa(i)}, pending...); err != nil {
						errs <- err
						return
					}
					pending = pending[:0]
				}
			}
		})
	}
	for range workers {
		wg.Go(func() {
			for completed.Load() < jobs {
				got, err := s.ClaimBatch(ctx, bridge.In, time.Minute, claimBatch)
				if err != nil {
					errs <- err
					return
				}
				if len(got) > claimBatch {
					errs <- fmt.Errorf("ClaimBatch(%d) returned %d jobs", claimBatch, len(got))
					return
				}
				var done []bridge.Completion
				for _, j := range got {
					var p struct{ Seq int }
					if err := json.Unmarshal(j.Payload, &p); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					claimed[j.ID]++
					if running[j.Key] {
						problems = append(problems, fmt.Sprintf("job %d of key %s claimed while another job of the key runs", j.ID, j.Key))
					}
					if last, ok := lastID[j.Key]; ok && j.ID < last {
						problems = append(problems, fmt.Sprintf("key %s: job %d ran after job %d", j.Key, j.ID, last))
					}
					if last, ok := lastSeq[j.Key]; ok && p.Seq < last {
						problems = append(problems, fmt.Sprintf("key %s: seq %d ran after seq %d", j.Key, p.Seq, last))
					}
					running[j.Key], lastID[j.Key], lastSeq[j.Key] = true, j.ID, p.Seq
					mu.Unlock()
					done = append(done, bridge.Completion{Lease: j.Lease()})
				}
				mu.Lock()
				for _, j := range got {
					running[j.Key] = false
				}
				mu.Unlock()
				if refused, _, err := s.CompleteBatch(ctx, done); err != nil || len(refused) > 0 {
					errs <- fmt.Errorf("complete: refused %v, %w", refused, err)
					return
				}
				completed.Add(int64(len(got)))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	if len(claimed) != jobs {
		t.Errorf("%d distinct jobs ran, want %d", len(claimed), jobs)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("job %d claimed %d times", id, n)
		}
	}
	if len(lastID) != keys {
		t.Errorf("%d keys ran, want %d", len(lastID), keys)
	}
	if got := cursor(t, s); got != jobs-1 {
		t.Errorf("cursor = %d, want %d", got, jobs-1)
	}
}

// TestBatchClaimAndComplete: a batch claim takes the oldest heads, one per key; a batch
// completion records every job and its links in one go, moves each key on, and names the jobs it
// does not know without losing the others.
func TestBatchClaimAndComplete(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	enqueue(t, s, job(bridge.Out, "a", "a1"), job(bridge.Out, "a", "a2"), job(bridge.Out, "b", "b1"),
		job(bridge.Out, "c", "c1"), job(bridge.Out, "b", "b2"))
	got, err := s.ClaimBatch(ctx, bridge.Out, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range got {
		names = append(names, j.Dedup)
	}
	if strings.Join(names, " ") != "a1 b1 c1" {
		t.Fatalf("first batch = %v, want the heads a1 b1 c1", names)
	}
	if more, err := s.ClaimBatch(ctx, bridge.Out, time.Minute, 10); err != nil || len(more) != 0 {
		t.Fatalf("claim while every head runs = %d jobs, %v; want none", len(more), err)
	}
	chat := bridge.ChatRef{Platform: "telegram", ID: "42"}
	refused, _, err := s.CompleteBatch(ctx, []bridge.Completion{
		{Lease: got[0].Lease(), Links: []bridge.MessageLink{{OneChatMessageID: 7, ConversationID: 1, Chat: chat, PlatformMessageID: "70", Direction: bridge.Out}}},
		{Lease: got[1].Lease()},
		{Lease: bridge.JobLease{ID: 999999}},
		{Lease: bridge.JobLease{ID: got[2].ID, Attempts: 5}, Links: []bridge.MessageLink{{OneChatMessageID: 8, ConversationID: 1, Chat: chat, PlatformMessageID: "80", Direction: bridge.Out}}},
	})
	if err != nil || fmt.Sprint(refused) != "[2 3]" {
		t.Fatalf("CompleteBatch with an unknown job and a stale lease = refused %v, %v; want [2 3]", refused, err)
	}
	if st, _ := state(t, s, bridge.Out, "c1"); st != bridge.JobRunning {
		t.Errorf("c1 is %s after a completion under a lease it is not held by, want running", st)
	}
	if links, _ := s.LinkByOneChat(ctx, 8); len(links) != 0 {
		t.Errorf("a refused completion recorded links: %v", links)
	}
	for _, d := range []string{"a1", "b1"} {
		if st, _ := state(t, s, bridge.Out, d); st != bridge.JobDone {
			t.Errorf("%s is %s after CompleteBatch, want done", d, st)
		}
	}
	if links, err := s.LinkByOneChat(ctx, 7); err != nil || len(links) != 1 || links[0].PlatformMessageID != "70" {
		t.Errorf("links of message 7 = %v, %v; want the one recorded", links, err)
	}
	next, err := s.ClaimBatch(ctx, bridge.Out, time.Minute, 1)
	if err != nil || len(next) != 1 || next[0].Dedup != "a2" {
		t.Fatalf("claim of one after a1 and b1 finished = %v, %v; want a2 (the oldest head)", next, err)
	}
	next, err = s.ClaimBatch(ctx, bridge.Out, time.Minute, 5)
	if err != nil || len(next) != 1 || next[0].Dedup != "b2" {
		t.Fatalf("next claim = %v, %v; want b2 only (c1 still runs)", next, err)
	}
	if _, err := s.ClaimBatch(ctx, bridge.Out, time.Minute, 0); err == nil {
		t.Error("ClaimBatch of 0 jobs did not fail")
	}
}

func BenchmarkEnqueueClaimComplete(b *testing.B) {
	ctx := b.Context()
	s := pgtest.NewStore(b)
	payload := json.RawMessage(`{"text":"` + strings.Repeat("x", 200) + `"}`)
	b.ResetTimer()
	for i := range b.N {
		nj := bridge.NewJob{Direction: bridge.Out, Key: fmt.Sprintf("chat%d", i%16), Dedup: fmt.Sprint(i), Payload: payload}
		if _, err := s.Enqueue(ctx, bridge.Cursor{}, nj); err != nil {
			b.Fatal(err)
		}
		j, err := s.Claim(ctx, bridge.Out, time.Minute)
		if err != nil || j == nil {
			b.Fatalf("Claim = %v, %v", j, err)
		}
		if err := s.Complete(ctx, j.Lease()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEnqueueSerialisesPerKey holds the advisory lock of one key, as a concurrent Enqueue of that
// key would, and checks that an Enqueue of the key waits for it while other keys go ahead. This
// is what keeps ids in commit order within a key (see queue.go).
func TestEnqueueSerialisesPerKey(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dbURL := pgtest.NewDatabaseURL(t)
	s, err := postgres.Open(ctx, dbURL, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, postgres.KeyLockID(bridge.In, "K")); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(ctx, bridge.Cursor{}, job(bridge.In, "J", "j1"), job(bridge.In, "K", "k1"))
		done <- err
	}()
	waitForKeyLock(t, ctx, conn, "Enqueue", done)
	if n, err := s.Enqueue(ctx, bridge.Cursor{}, job(bridge.In, "other", "o1"), job(bridge.Out, "K", "k1")); err != nil || n != 2 {
		t.Errorf("Enqueue of other keys = %d, %v; want 2 without waiting", n, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, postgres.KeyLockID(bridge.In, "K")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Enqueue after the lock was released: %v", err)
	}
}

// BenchmarkClaimBacklog measures one Claim while 1,000 or 10,000 jobs wait (on 1,000 keys), the
// situation of a burst the workers have not caught up with: the cost should not grow with the
// backlog. Each iteration also completes the claimed job and enqueues another, outside the
// timer, so the backlog stays the same.
func BenchmarkClaimBacklog(b *testing.B) {
	for _, backlog := range []int{1_000, 10_000} {
		b.Run(fmt.Sprint(backlog), func(b *testing.B) { benchmarkClaimBacklog(b, backlog) })
	}
}

func benchmarkClaimBacklog(b *testing.B, backlog int) {
	const keys, batch = 1_000, 500
	ctx := b.Context()
	s := pgtest.NewStore(b)
	payload := json.RawMessage(`{"text":"` + strings.Repeat("x", 200) + `"}`)
	seq := 0
	next := func() bridge.NewJob {
		nj := bridge.NewJob{Direction: bridge.Out, Key: fmt.Sprintf("chat%d", seq%keys), Dedup: fmt.Sprint(seq), Payload: payload}
		seq++
		return nj
	}
	for range backlog / batch {
		jobs := make([]bridge.NewJob, batch)
		for i := range jobs {
			jobs[i] = next()
		}
		if _, err := s.Enqueue(ctx, bridge.Cursor{}, jobs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		j, err := s.Claim(ctx, bridge.Out, time.Minute)
		if err != nil || j == nil {
			b.Fatalf("Claim = %v, %v", j, err)
		}
		b.StopTimer()
		if err := s.Complete(ctx, j.Lease()); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Enqueue(ctx, bridge.Cursor{}, next()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// openStore opens a store on a fresh database migrated up to version (0: every migration) and
// returns it with a direct connection for looking at the table.
func openStore(t *testing.T, version int64) (*postgres.Store, *pgx.Conn) {
	t.Helper()
	ctx := t.Context()
	dbURL := pgtest.NewDatabaseURL(t)
	s, err := postgres.Open(ctx, dbURL, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if version == 0 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	} else {
		db, err := sql.Open("pgx", dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithDisableGlobalRegistry(true))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.UpTo(ctx, version); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return s, conn
}

// checkHeads fails the test unless every key with unfinished jobs has exactly one head, its
// lowest unfinished job, and no other row is marked head.
func checkHeads(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	rows, err := conn.Query(t.Context(), `
		SELECT direction, key, id, state, head FROM queue q
		WHERE head <> (state IN ('pending', 'running') AND id = (
			SELECT min(id) FROM queue u
			WHERE u.direction = q.direction AND u.key = q.key AND u.state IN ('pending', 'running')))
		ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	type bad struct {
		Dir, Key string
		ID       int64
		State    string
		Head     bool
	}
	wrong, err := pgx.CollectRows(rows, pgx.RowToStructByPos[bad])
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wrong {
		t.Errorf("%s job %d of key %s is %s with head = %v", w.Dir, w.ID, w.Key, w.State, w.Head)
	}
}

// TestHeadMarking follows the head flag through the ways a key's head changes: enqueues in
// batches (with duplicates), completion, failure, retries and lease takeovers.
func TestHeadMarking(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, conn := openStore(t, 0)

	// Several jobs of a new key in one batch: only the first is the head.
	enqueue(t, s, job(bridge.In, "A", "a1"), job(bridge.In, "A", "a2"), job(bridge.Out, "A", "o1"), job(bridge.In, "A", "a3"))
	checkHeads(t, conn)
	a1 := claim(t, s, bridge.In, time.Minute, "a1")
	claim(t, s, bridge.In, time.Minute, "")
	if err := s.Retry(ctx, a1.Lease(), time.Now().Add(-time.Second), false, "rate limited"); err != nil {
		t.Fatal(err)
	}
	checkHeads(t, conn)
	claim(t, s, bridge.In, time.Microsecond, "a1")
	a1 = claim(t, s, bridge.In, time.Minute, "a1") // the lease expired: taken over, still the head
	checkHeads(t, conn)
	if err := s.Fail(ctx, a1.Lease(), "permanent"); err != nil {
		t.Fatal(err)
	}
	checkHeads(t, conn)
	a2 := claim(t, s, bridge.In, time.Minute, "a2")
	if err := s.Complete(ctx, a2.Lease()); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, a2.Lease()); !errors.Is(err, bridge.ErrLeaseLost) { // a late worker's second Complete
		t.Fatalf("second Complete: %v, want ErrLeaseLost", err)
	}
	checkHeads(t, conn)
	a3 := claim(t, s, bridge.In, time.Minute, "a3")
	if err := s.Complete(ctx, a3.Lease()); err != nil {
		t.Fatal(err)
	}
	checkHeads(t, conn)

	// A batch whose first job of the key is a duplicate: the first new one becomes the head.
	enqueue(t, s, job(bridge.In, "A", "a3"), job(bridge.In, "A", "a4"), job(bridge.In, "A", "a5"))
	checkHeads(t, conn)
	claim(t, s, bridge.In, time.Minute, "a4")
	claim(t, s, bridge.In, time.Minute, "")
	// The same for a duplicate within the batch, of another key's job.
	enqueue(t, s, job(bridge.Out, "K1", "x"), job(bridge.Out, "K2", "x"), job(bridge.Out, "K2", "z"))
	checkHeads(t, conn)

	// Completing a job that is not the head leaves the head alone.
	enqueue(t, s, job(bridge.In, "B", "b1"), job(bridge.In, "B", "b2"))
	var b2 int64
	if err := conn.QueryRow(ctx, `SELECT id FROM queue WHERE dedup = 'b2'`).Scan(&b2); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, bridge.JobLease{ID: b2}); !errors.Is(err, bridge.ErrLeaseLost) {
		t.Fatalf("Complete of a job nobody claimed: %v, want ErrLeaseLost", err)
	}
	checkHeads(t, conn)
	claim(t, s, bridge.In, time.Minute, "b1")
	claim(t, s, bridge.Out, time.Minute, "o1")
	claim(t, s, bridge.Out, time.Minute, "x")
	claim(t, s, bridge.Out, time.Minute, "z")
	checkHeads(t, conn)
}

// TestEnqueueWhileHeadFinishes races an Enqueue of a key against the Complete or Fail of the
// key's only job, many times over on many keys: whichever commits first, the new job must become
// the head. Without the advisory lock in Complete and Fail the new job could be left without a
// head, and its key would never run again.
func TestEnqueueWhileHeadFinishes(t *testing.T) {
	t.Parallel()
	const keys, rounds = 16, 40
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, conn := openStore(t, 0)
	pool, err := pgxpool.New(ctx, conn.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 2*keys)
	for k := range keys {
		wg.Go(func() {
			key := fmt.Sprintf("k%d", k)
			for r := range rounds {
				dedup := fmt.Sprintf("%s-%d", key, r)
				if r == 0 {
					if _, err := s.Enqueue(ctx, bridge.Cursor{}, job(bridge.Out, key, dedup)); err != nil {
						errs <- err
						return
					}
				}
				// The key's only unfinished job, its head, leased here as a claim would (a
				// claim takes whichever key is due, which would make the keys contend).
				var cur bridge.JobLease
				if err := pool.QueryRow(ctx, `
					UPDATE queue SET state = 'running', locked_until = now() + interval '1 minute'
					WHERE direction = 'out' AND dedup = $1 RETURNING id, attempts`, dedup).Scan(&cur.ID, &cur.Attempts); err != nil {
					errs <- err
					return
				}
				var inner sync.WaitGroup
				inner.Go(func() {
					next := fmt.Sprintf("%s-%d", key, r+1)
					if _, err := s.Enqueue(ctx, bridge.Cursor{}, job(bridge.Out, key, next)); err != nil {
						errs <- err
					}
				})
				inner.Go(func() {
					var err error
					if r%2 == 0 {
						err = s.Complete(ctx, cur)
					} else {
						err = s.Fail(ctx, cur, "failed")
					}
					if err != nil {
						errs <- err
					}
				})
				inner.Wait()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkHeads(t, conn)
	// Every key's last job is its head, so each key runs once more.
	seen := map[string]bool{}
	for range keys {
		j, err := s.Claim(ctx, bridge.Out, time.Minute)
		if err != nil || j == nil {
			t.Fatalf("Claim = %v, %v; want the last job of a key", j, err)
		}
		if want := fmt.Sprintf("%s-%d", j.Key, rounds); j.Dedup != want || seen[j.Key] {
			t.Errorf("claimed %s of key %s, want %s once", j.Dedup, j.Key, want)
		}
		seen[j.Key] = true
	}
	claim(t, s, bridge.Out, time.Minute, "")
}

// TestMigrationMarksHeads applies migration 00003 to a queue that holds finished, running and
// pending jobs, as an upgrade would, and checks that it marks each key's head and that the
// queue carries on in order from there.
func TestMigrationMarksHeads(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, conn := openStore(t, 2)
	// Rows as the previous version left them: A's first job is done and its second running
	// (with a lease that has expired), B has only finished jobs, C waits for a retry, and the
	// same key in the other direction is a separate queue.
	_, err := conn.Exec(ctx, `
		INSERT INTO queue (direction, key, dedup, payload, state, run_at, locked_until) VALUES
			('in',  'A', 'a1', '{}', 'done',    now(), NULL),
			('in',  'A', 'a2', '{}', 'running', now(), now() - interval '1 second'),
			('in',  'B', 'b1', '{}', 'failed',  now(), NULL),
			('in',  'A', 'a3', '{}', 'pending', now(), NULL),
			('in',  'C', 'c1', '{}', 'pending', now() + interval '1 hour', NULL),
			('in',  'C', 'c2', '{}', 'pending', now(), NULL),
			('out', 'A', 'o1', '{}', 'pending', now(), NULL),
			('out', 'A', 'o2', '{}', 'pending', now(), NULL),
			('in',  'B', 'b2', '{}', 'done',    now(), NULL)`)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	checkHeads(t, conn)

	a2 := claim(t, s, bridge.In, time.Minute, "a2") // taken over from the dead worker
	if a2.Attempts != 1 {
		t.Errorf("taken-over job has %d attempts, want 1", a2.Attempts)
	}
	claim(t, s, bridge.In, time.Minute, "") // a3 waits behind a2, c2 behind c1
	// Nothing is due until a2's lease ends (c1, C's head, waits an hour).
	if at, ok, err := s.NextDue(ctx, bridge.In); err != nil || !ok || at.Before(time.Now().Add(50*time.Second)) || at.After(time.Now().Add(time.Minute)) {
		t.Errorf("NextDue = %v, %v, %v; want a2's lease end, a minute from now", at, ok, err)
	}
	if err := s.Complete(ctx, a2.Lease()); err != nil {
		t.Fatal(err)
	}
	claim(t, s, bridge.In, time.Minute, "a3")
	claim(t, s, bridge.Out, time.Minute, "o1")
	enqueue(t, s, job(bridge.In, "B", "b3"))
	claim(t, s, bridge.In, time.Minute, "b3")
	checkHeads(t, conn)
}

// TestFinishWaitsForKeyLock holds the advisory lock of a key, as an Enqueue of that key would,
// and checks that Complete and Fail of the key's jobs wait for it: that is what lets the one
// that commits second see the other's job (see queue.go).
func TestFinishWaitsForKeyLock(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, conn := openStore(t, 0)
	enqueue(t, s, job(bridge.In, "K", "k1"), job(bridge.In, "K", "k2"), job(bridge.In, "K", "k3"))
	head := claim(t, s, bridge.In, time.Minute, "k1")

	// k1 is completed, then k2 failed.
	for _, f := range []struct {
		name, next string
		finish     func(bridge.JobLease) error
	}{
		{"Complete", "k2", func(l bridge.JobLease) error { return s.Complete(ctx, l) }},
		{"Fail", "k3", func(l bridge.JobLease) error { return s.Fail(ctx, l, "x") }},
	} {
		name := f.name
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, postgres.KeyLockID(bridge.In, "K")); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- f.finish(head.Lease()) }()
		waitForKeyLock(t, ctx, conn, name, done)
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, postgres.KeyLockID(bridge.In, "K")); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("%s after the lock was released: %v", name, err)
		}
		checkHeads(t, conn)
		head = claim(t, s, bridge.In, time.Minute, f.next)
	}
}

// waitForKeyLock waits until a transaction waits for an advisory lock (what, running in the
// background, which reports its result on done, waits for the key lock conn holds). It fails
// the test if what finishes first.
func waitForKeyLock(t *testing.T, ctx context.Context, conn *pgx.Conn, what string, done <-chan error) {
	t.Helper()
	for {
		var waiting int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("%s finished (err %v) while another transaction held its key's lock", what, err)
		case <-ctx.Done():
			t.Fatalf("%s never waited for its key's lock", what)
		case <-time.After(5 * time.Millisecond): // polling pg_locks; there is no signal to await
		}
	}
}

// TestBacklogUnknownToStatistics plans the claim and the insert as the store runs them: generic
// plans, made and cached while the queue was empty or nearly so, and its statistics said so (in
// production the queue is nearly empty when it is analysed, and a burst comes later). With 10,000
// keys then waiting, each statement must still read a handful of pages, not the backlog: reading
// every head or every unfinished row on each claim and enqueue is what made a burst for many
// users ten times slower than one for a few.
func TestBacklogUnknownToStatistics(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// before runs before the statements are planned.
		before func(t *testing.T, s *postgres.Store, run func(string))
	}{
		{"empty, never analysed", func(*testing.T, *postgres.Store, func(string)) {}},
		{"three jobs, analysed", func(t *testing.T, s *postgres.Store, run func(string)) {
			enqueue(t, s, job(bridge.Out, "a", "a1"), job(bridge.Out, "b", "b1"), job(bridge.Out, "c", "c1"))
			run(`ANALYZE queue`)
		}},
		{"1,000 outbound jobs done, analysed", func(t *testing.T, s *postgres.Store, run func(string)) {
			var jobs []bridge.NewJob
			for i := range 1000 {
				jobs = append(jobs, job(bridge.Out, fmt.Sprintf("old%d", i), fmt.Sprintf("old%d", i)))
			}
			enqueue(t, s, jobs...)
			run(`UPDATE queue SET state = 'done', head = false, done_at = now()`)
			run(`ANALYZE queue`)
		}},
		// As after users first wrote: the statistics know no outbound job.
		{"10,000 inbound jobs delivered, never analysed", func(t *testing.T, s *postgres.Store, _ func(string)) {
			deliverInbound(t, s, 10000)
		}},
		{"10,000 inbound jobs delivered, vacuumed and analysed", func(t *testing.T, s *postgres.Store, run func(string)) {
			deliverInbound(t, s, 10000)
			run(`VACUUM ANALYZE queue`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testBacklogUnknownToStatistics(t, tc.before)
		})
	}
}

// deliverInbound enqueues n inbound jobs of as many keys and delivers them all.
func deliverInbound(t *testing.T, s *postgres.Store, n int) {
	t.Helper()
	// In slices: each transaction takes an advisory lock per key, and the lock table is shared
	// by every test running at the same time.
	for start := 0; start < n; start += 500 {
		var jobs []bridge.NewJob
		for i := start; i < min(n, start+500); i++ {
			jobs = append(jobs, job(bridge.In, fmt.Sprintf("old%d", i), fmt.Sprintf("old%d", i)))
		}
		enqueue(t, s, jobs...)
	}
	for {
		claimed, err := s.ClaimBatch(t.Context(), bridge.In, time.Minute, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(claimed) == 0 {
			break
		}
		done := make([]bridge.Completion, len(claimed))
		for i, j := range claimed {
			done[i].Lease = j.Lease()
		}
		if refused, _, err := s.CompleteBatch(t.Context(), done); err != nil || len(refused) > 0 {
			t.Fatal(refused, err)
		}
	}
}

func testBacklogUnknownToStatistics(t *testing.T, before func(*testing.T, *postgres.Store, func(string))) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s, conn := openStore(t, 0)
	run := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// Autovacuum must not analyse the backlog behind the test's back.
	run(`ALTER TABLE queue SET (autovacuum_enabled = false)`)
	before(t, s, run)
	run(`PREPARE claim_jobs AS ` + postgres.ClaimJobs)
	run(`PREPARE promote_heads AS ` + postgres.PromoteHeads)
	run(`PREPARE complete_jobs AS ` + postgres.CompleteJobs)
	run(`PREPARE insert_jobs AS ` + postgres.InsertJobs)
	run(`PREPARE move_cursors AS ` + postgres.MoveCursors)
	run(`PREPARE next_due AS ` + postgres.NextDue)

	// pages runs the prepared statement as the store would, rolls it back, and returns the
	// pages its execution read.
	pages := func(execute string) int {
		t.Helper()
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.Background()) //nolint:errcheck // the point is to undo
		if _, err := tx.Exec(ctx, postgres.IndexPlans); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SET LOCAL plan_cache_mode = force_generic_plan`); err != nil {
			t.Fatal(err)
		}
		var out []struct {
			Plan struct {
				Hit  int `json:"Shared Hit Blocks"`
				Read int `json:"Shared Read Blocks"`
			}
			JIT any
		}
		var raw []byte
		if err := tx.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) `+execute).Scan(&raw); err != nil {
			t.Fatalf("%s: %v", execute, err)
		}
		if err := json.Unmarshal(raw, &out); err != nil || len(out) != 1 {
			t.Fatalf("plan of %s: %v in %s", execute, err, raw)
		}
		// The settings make plans that cannot keep to them look enormous; compiling those
		// with JIT would cost more than any page read.
		if out[0].JIT != nil {
			t.Errorf("%s was compiled with JIT: %s", execute, raw)
		}
		return out[0].Plan.Hit + out[0].Plan.Read
	}
	const (
		claimOne  = `EXECUTE claim_jobs('out', 60000000, 1)`
		insertOne = `EXECUTE insert_jobs('{out}', '{new}', '{new1}', '{"{}"}', '{t}', '{60000000}')`
	)
	// A completer of key user1 that asks for a job: the key's next, or another key's head.
	const completeOne = `EXECUTE promote_heads('{out}', '{user1}', '{60000000}', 0, 1, 60000000)`
	// The completion's update of a job (here one that is no longer running) with its link.
	const finishOne = `EXECUTE complete_jobs('{1}', '{0}', '{1}', '{7}', '{3}', '{telegram}', '{42}', '{99}', '{out}')`
	smallClaim, smallInsert, smallComplete, smallFinish := pages(claimOne), pages(insertOne), pages(completeOne), pages(finishOne)
	pages(`EXECUTE move_cursors('{a,b,c}', '{1,2,3}')`)

	const backlog = 10_000
	for i := 0; i < backlog; i += 500 {
		jobs := make([]bridge.NewJob, 0, 500)
		for k := i; k < i+500; k++ {
			jobs = append(jobs, job(bridge.Out, fmt.Sprintf("user%d", k), fmt.Sprintf("m%d", k)))
		}
		enqueue(t, s, jobs...)
	}
	claimPages, insertPages, duePages := pages(claimOne), pages(insertOne), pages(`EXECUTE next_due('out')`)
	completePages, finishPages := pages(completeOne), pages(finishOne)
	t.Logf("pages read before and with %d keys waiting: claim %d and %d, insert %d and %d, completion's update %d and %d, "+
		"its promotion and claim %d and %d, next due %d",
		backlog, smallClaim, claimPages, smallInsert, insertPages, smallFinish, finishPages, smallComplete, completePages, duePages)
	if finishPages > 60 {
		t.Errorf("with %d keys waiting a completion's update read %d pages (%d before): it reads the backlog", backlog, finishPages, smallFinish)
	}
	// They may grow by an index level or two; reading the backlog is hundreds of pages.
	if completePages > 60 {
		t.Errorf("with %d keys waiting a completion's promotion and claim read %d pages (%d before): it reads the backlog", backlog, completePages, smallComplete)
	}
	if claimPages > 60 || insertPages > 60 || duePages > 60 {
		t.Errorf("with %d keys waiting a claim read %d pages (%d before), an insert %d (%d) and "+
			"the next due moment %d: they read the backlog", backlog, claimPages, smallClaim, insertPages, smallInsert, duePages)
	}
}

// TestClaimReadsTheInboundCustomer: a job comes with the customer of the user its payload names
// (or word that there is none), so the worker need not read it.
func TestClaimReadsTheInboundCustomer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	known, saved := savedCustomer(t, s, "7")
	slackUser := bridge.UserRef{Platform: "slack", ID: "T1:U2"}
	slack, err := s.SaveCustomer(ctx, bridge.Customer{User: slackUser, Chat: bridge.ChatRef{Platform: "slack", ID: "D9"}, Identifier: slackUser.Identifier()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	withUser := func(dir bridge.Direction, key, dedup string, u bridge.UserRef) bridge.NewJob {
		p, _ := json.Marshal(map[string]any{"user": u, "text": dedup})
		return bridge.NewJob{Direction: dir, Key: key, Dedup: dedup, Payload: p}
	}
	enqueue(t, s, withUser(bridge.In, known.User.Identifier(), "a", known.User),
		withUser(bridge.In, "telegram:8", "b", bridge.UserRef{Platform: "telegram", ID: "8"}),
		withUser(bridge.In, slackUser.Identifier(), "c", slackUser),
		withUser(bridge.Out, known.Chat.String(), "d", known.User), job(bridge.Out, "telegram:99", "e"))
	in, err := s.ClaimBatch(ctx, bridge.In, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 3 {
		t.Fatalf("claimed %d inbound jobs, want 3", len(in))
	}
	for _, j := range in {
		if !j.CustomerRead {
			t.Errorf("job %s: customer not read with the claim", j.Dedup)
		}
	}
	if c := in[0].Customer; c == nil || c.ID != saved.ID || c.User != known.User || c.Chat != known.Chat || c.DisplayName != known.DisplayName {
		t.Errorf("job a came with customer %+v, want %+v", c, saved)
	}
	if c := in[1].Customer; c != nil {
		t.Errorf("job b (an unknown user) came with customer %+v, want none", c)
	}
	if c := in[2].Customer; c == nil || c.ID != slack.ID || c.User != slackUser {
		t.Errorf("job c (a Slack user, id with a colon) came with customer %+v, want %+v", c, slack)
	}
	out, err := s.ClaimBatch(ctx, bridge.Out, time.Minute, 10)
	if err != nil || len(out) != 2 {
		t.Fatal(out, err)
	}
	if c := out[0].Customer; !out[0].CustomerRead || c == nil || c.ID != saved.ID {
		t.Errorf("outbound job d came with customer %+v (read %v), want %+v", c, out[0].CustomerRead, saved)
	}
	if !out[1].CustomerRead || out[1].Customer != nil {
		t.Errorf("job e, without a user in its payload: customer read %v, %+v; want read, none", out[1].CustomerRead, out[1].Customer)
	}
}

// TestCompletionTakesTheKeysNextJob: a completion that asks for it leases its key's next job in
// the same transaction (with the customer, as a claim reads it), so no claim returns that job;
// a completion that does not ask, or is refused, takes nothing.
func TestCompletionTakesTheKeysNextJob(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	known, saved := savedCustomer(t, s, "7")
	withUser := func(key, dedup string) bridge.NewJob {
		p, _ := json.Marshal(map[string]any{"user": known.User, "text": dedup})
		return bridge.NewJob{Direction: bridge.In, Key: key, Dedup: dedup, Payload: p}
	}
	enqueue(t, s, withUser("a", "a1"), withUser("a", "a2"), withUser("a", "a3"),
		withUser("b", "b1"), withUser("b", "b2"), withUser("c", "c1"), withUser("c", "c2"))
	got, err := s.ClaimBatch(ctx, bridge.In, time.Minute, 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("claimed %v, %v; want the heads a1 b1 c1", got, err)
	}
	a1, b1, c1 := got[0], got[1], got[2]
	// A completion under a lease c1 is not held by (a late worker's) is refused.
	stale := bridge.JobLease{ID: c1.ID, Attempts: 5}
	refused, next, err := s.CompleteBatch(ctx, []bridge.Completion{
		{Lease: a1.Lease(), Direction: bridge.In, Key: "a", Next: time.Minute},
		{Lease: b1.Lease(), Direction: bridge.In, Key: "b"},
		{Lease: stale, Direction: bridge.In, Key: "c", Next: time.Minute},
	})
	if err != nil || fmt.Sprint(refused) != "[2]" {
		t.Fatalf("CompleteBatch = refused %v, %v; want [2] (c1's stale lease)", refused, err)
	}
	if len(next) != 1 || next[0].Dedup != "a2" {
		t.Fatalf("next jobs = %v, want a2 only (b1 did not ask, c1's completion was refused)", next)
	}
	a2 := next[0]
	if c := a2.Customer; !a2.CustomerRead || c == nil || c.ID != saved.ID || a2.Key != "a" || a2.Direction != bridge.In || a2.Attempts != 0 || a2.Retried {
		t.Errorf("next job = %+v with customer %+v, want a fresh lease of a2 with customer %d", a2, c, saved.ID)
	}
	if st, _ := state(t, s, bridge.In, "a2"); st != bridge.JobRunning {
		t.Errorf("a2 is %s after the completion took it, want running", st)
	}
	// Claims see b2 (b's new head, not taken) but neither a2 (leased) nor a3 (behind it).
	claimed, err := s.ClaimBatch(ctx, bridge.In, time.Minute, 10)
	if err != nil || len(claimed) != 1 || claimed[0].Dedup != "b2" {
		t.Fatalf("claim after the completion = %v, %v; want b2 only", claimed, err)
	}
	// The taken job is held like a claimed one: renewed, completed, and it hands on again.
	if err := s.ExtendLease(ctx, a2.Lease(), time.Minute); err != nil {
		t.Errorf("ExtendLease of the taken job: %v", err)
	}
	refused, next, err = s.CompleteBatch(ctx, []bridge.Completion{{Lease: a2.Lease(), Direction: bridge.In, Key: "a", Next: time.Minute}})
	if err != nil || len(refused) != 0 || len(next) != 1 || next[0].Dedup != "a3" {
		t.Fatalf("completing a2 = refused %v, next %v, %v; want a3", refused, next, err)
	}
	// The last job of a key hands on nothing of its own, and nothing else is eligible.
	a3 := next[0]
	if _, next, err = s.CompleteBatch(ctx, []bridge.Completion{{Lease: a3.Lease(), Direction: bridge.In, Key: "a", Next: time.Minute}}); err != nil || len(next) != 0 {
		t.Fatalf("completing a3 = next %v, %v; want none", next, err)
	}
	// A completer whose key has no next job gets the head of another key that has been due
	// longest instead, claimed in the same statement; one that did not ask gets nothing.
	enqueue(t, s, withUser("x", "x1"), withUser("y", "y1"), withUser("z", "z1"))
	refused, next, err = s.CompleteBatch(ctx, []bridge.Completion{
		{Lease: claimed[0].Lease(), Direction: bridge.In, Key: "b", Next: time.Minute},
		{Lease: bridge.JobLease{ID: c1.ID, Attempts: c1.Attempts}, Direction: bridge.In, Key: "c"},
	})
	if err != nil || len(refused) != 0 || len(next) != 1 || next[0].Dedup != "x1" || next[0].Customer == nil || next[0].Customer.ID != saved.ID {
		t.Fatalf("completing b2 and c1 = refused %v, next %v, %v; want x1 (the oldest head) with its customer for b2's worker", refused, next, err)
	}
	claimed, err = s.ClaimBatch(ctx, bridge.In, time.Minute, 10)
	var names []string
	for _, j := range claimed {
		names = append(names, j.Dedup)
	}
	slices.Sort(names)
	if err != nil || fmt.Sprint(names) != "[c2 y1 z1]" {
		t.Fatalf("claim after = %v, %v; want c2 (c1's completion did not ask for it), y1, z1", names, err)
	}
}

// TestEnqueueTakesFreshHeads: an enqueue leases the jobs it is asked to take when they are
// pending, due heads once stored (with their customers, as a claim reads them); a job behind its
// key's earlier work, a duplicate of a finished job and one of another direction are not taken,
// and no claim returns a taken job.
func TestEnqueueTakesFreshHeads(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.NewStore(t)
	known, saved := savedCustomer(t, s, "7")
	p, _ := json.Marshal(map[string]any{"user": known.User, "text": "hi"})
	enqueue(t, s, job(bridge.In, "busy", "b1"), job(bridge.In, "done", "d1"))
	d1 := claim(t, s, bridge.In, time.Minute, "b1")
	if err := s.Complete(ctx, d1.Lease()); err != nil {
		t.Fatal(err)
	}
	d1 = claim(t, s, bridge.In, time.Minute, "d1")
	if err := s.Complete(ctx, d1.Lease()); err != nil {
		t.Fatal(err)
	}
	enqueue(t, s, job(bridge.In, "busy", "b2")) // pending head of "busy"
	n, taken, err := s.EnqueueBatch(ctx, []bridge.JobBatch{{Jobs: []bridge.NewJob{
		{Direction: bridge.In, Key: known.User.Identifier(), Dedup: "k1", Payload: p},
		{Direction: bridge.In, Key: known.User.Identifier(), Dedup: "k2", Payload: p},
		job(bridge.In, "busy", "b3"),
		job(bridge.In, "done", "d1"),
		job(bridge.Out, "chat", "o1"),
	}}}, bridge.Take{Lease: time.Minute, Dedups: map[bridge.Direction][]string{bridge.In: {"k1", "b3", "d1", "o1"}}})
	if err != nil || !slices.Equal(n, []int{4}) {
		t.Fatalf("EnqueueBatch = %v, %v; want 4 new jobs", n, err)
	}
	if len(taken) != 1 || taken[0].Dedup != "k1" {
		t.Fatalf("taken = %v, want k1 only", taken)
	}
	if k1 := taken[0]; !k1.CustomerRead || k1.Customer == nil || k1.Customer.ID != saved.ID || k1.Attempts != 0 || k1.Retried || k1.Key != known.User.Identifier() {
		t.Errorf("taken job = %+v with customer %+v, want a fresh lease of k1 with customer %d", k1, k1.Customer, saved.ID)
	}
	if st, _ := state(t, s, bridge.In, "k1"); st != bridge.JobRunning {
		t.Errorf("k1 is %s, want running", st)
	}
	got, err := s.ClaimBatch(ctx, bridge.In, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].Dedup != "b2" {
		t.Fatalf("claim after the enqueue = %v, %v; want b2 only (k1 taken, k2 and b3 behind)", got, err)
	}
	if err := s.ExtendLease(ctx, taken[0].Lease(), time.Minute); err != nil {
		t.Errorf("ExtendLease of the taken job: %v", err)
	}
	refused, next, err := s.CompleteBatch(ctx, []bridge.Completion{{Lease: taken[0].Lease(), Direction: bridge.In, Key: known.User.Identifier(), Next: time.Minute}})
	if err != nil || len(refused) != 0 || len(next) != 1 || next[0].Dedup != "k2" {
		t.Fatalf("completing k1 = refused %v, next %v, %v; want k2", refused, next, err)
	}
}

// savedCustomer saves the customer newCustomer(id) makes and returns it as given and as saved.
func savedCustomer(t *testing.T, s *postgres.Store, id string) (known, saved bridge.Customer) {
	t.Helper()
	known = newCustomer(id)
	saved, err := s.SaveCustomer(t.Context(), known, 0)
	if err != nil {
		t.Fatal(err)
	}
	return known, saved
}
