package postgres_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
)

// TestPruneDeletesOnlyWhatFinishedBeforeRetention: finished jobs and links older than the
// retention go, window by window; unfinished jobs stay however old, and so does anything newer.
func TestPruneDeletesOnlyWhatFinishedBeforeRetention(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, conn := openStore(t, 0)
	chat := bridge.ChatRef{Platform: "telegram", ID: "42"}
	link := func(oc int64, pm string) bridge.MessageLink {
		return bridge.MessageLink{OneChatMessageID: oc, ConversationID: 1, Chat: chat, PlatformMessageID: pm, Direction: bridge.Out}
	}

	jobs := []bridge.NewJob{job(bridge.Out, "a", "old-done"), job(bridge.Out, "b", "old-failed"),
		job(bridge.Out, "c", "old-pending"), job(bridge.Out, "d", "old-running")}
	for i := range 10 {
		jobs = append(jobs, job(bridge.Out, fmt.Sprintf("k%d", i), fmt.Sprintf("old-%d", i)))
	}
	jobs = append(jobs, job(bridge.Out, "e", "new-done"))
	enqueue(t, s, jobs...)
	claimed, err := s.ClaimBatch(ctx, bridge.Out, time.Minute, len(jobs))
	if err != nil || len(claimed) != len(jobs) {
		t.Fatalf("claimed %d of %d: %v", len(claimed), len(jobs), err)
	}
	var done []bridge.Completion
	for _, j := range claimed {
		switch j.Dedup {
		case "old-failed":
			if err := s.Fail(ctx, j.Lease(), "blocked"); err != nil {
				t.Fatal(err)
			}
		case "old-pending":
			if err := s.Retry(ctx, j.Lease(), time.Now().Add(time.Hour), true, "503"); err != nil {
				t.Fatal(err)
			}
		case "old-running":
		case "old-done":
			done = append(done, bridge.Completion{Lease: j.Lease(), Links: []bridge.MessageLink{link(1, "10")}})
		case "new-done":
			done = append(done, bridge.Completion{Lease: j.Lease(), Links: []bridge.MessageLink{link(2, "20")}})
		default:
			done = append(done, bridge.Completion{Lease: j.Lease()})
		}
	}
	if refused, _, err := s.CompleteBatch(ctx, done); err != nil || len(refused) > 0 {
		t.Fatal(refused, err)
	}
	// Forty days pass for everything but new-done and its link.
	if _, err := conn.Exec(ctx, `
		UPDATE queue SET created_at = created_at - interval '40 days', done_at = done_at - interval '40 days'
		WHERE dedup LIKE 'old-%'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE message_map SET created_at = created_at - interval '40 days' WHERE onechat_message_id = 1`); err != nil {
		t.Fatal(err)
	}

	before := time.Now().Add(-30 * 24 * time.Hour)
	nJobs, nLinks, err := s.PruneWindowed(ctx, before, 3)
	if err != nil || nJobs != 12 || nLinks != 1 {
		t.Fatalf("Prune = %d jobs, %d links, %v; want 12 (old done and failed), 1", nJobs, nLinks, err)
	}
	for dedup, want := range map[string]string{"old-pending": bridge.JobPending, "old-running": bridge.JobRunning, "new-done": bridge.JobDone} {
		if st, _ := state(t, s, bridge.Out, dedup); st != want {
			t.Errorf("%s is %s after Prune, want %s", dedup, st, want)
		}
	}
	for _, dedup := range []string{"old-done", "old-failed", "old-3"} {
		if _, _, err := s.JobState(ctx, bridge.Out, dedup); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("%s survived Prune: %v", dedup, err)
		}
	}
	if l, _ := s.LinkByOneChat(ctx, 1); len(l) != 0 {
		t.Errorf("old link survived Prune: %v", l)
	}
	if l, _ := s.LinkByOneChat(ctx, 2); len(l) != 1 {
		t.Errorf("new link = %v after Prune, want kept", l)
	}
	if nJobs, nLinks, err := s.Prune(ctx, before); err != nil || nJobs != 0 || nLinks != 0 {
		t.Errorf("second Prune = %d, %d, %v; want nothing left to delete", nJobs, nLinks, err)
	}
}

// BenchmarkPrune times one retention sweep of 100,000 finished messages and 100,000 links past
// the retention, with 10,000 recent ones of each that stay (figures in docs/benchmarks.md).
func BenchmarkPrune(b *testing.B) {
	const old, recent = 100_000, 10_000
	ctx := b.Context()
	dbURL := pgtest.NewDatabaseURL(b)
	s, err := postgres.Open(ctx, dbURL, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	for i := range b.N {
		b.StopTimer()
		// Ids grow with time, as in production, so every round starts afresh.
		if _, err := conn.Exec(ctx, `TRUNCATE queue, message_map`); err != nil {
			b.Fatal(err)
		}
		for _, batch := range []struct {
			n   int
			age string
		}{{old, "40 days"}, {recent, "1 day"}} {
			if _, err := conn.Exec(ctx, `
				INSERT INTO queue (direction, key, dedup, payload, state, head, created_at, done_at)
				SELECT 'out', 'chat' || (g % 1000), $1 || '-' || g, jsonb_build_object('text', repeat('x', 200)),
					'done', false, now() - $3::interval, now() - $3::interval
				FROM generate_series(1, $2::int) g`, fmt.Sprintf("%d-%s", i, batch.age), batch.n, batch.age); err != nil {
				b.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `
				INSERT INTO message_map (onechat_message_id, conversation_id, platform, chat_id, platform_message_id, direction, created_at)
				SELECT g, 1, 'telegram', '42', $1 || '-' || g, 'out', now() - $3::interval
				FROM generate_series(1, $2::int) g`, fmt.Sprintf("%d-%s", i, batch.age), batch.n, batch.age); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := conn.Exec(ctx, `ANALYZE queue; ANALYZE message_map`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		jobs, links, err := s.Prune(ctx, time.Now().Add(-30*24*time.Hour))
		if err != nil || jobs != old || links != old {
			b.Fatalf("Prune = %d, %d, %v; want %d of each", jobs, links, err, old)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(2*old), "µs/row")
}
