package postgres_test

import (
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
)

func TestStatsCountUnfinishedJobsAndUnreachableUsers(t *testing.T) {
	t.Parallel()
	s := pgtest.NewStore(t)

	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Queue) != 2 || st.Queue[0].Direction != bridge.In || st.Queue[1].Direction != bridge.Out {
		t.Fatalf("empty store: queue stats %+v, want one entry per direction", st.Queue)
	}
	for _, q := range st.Queue {
		if q.Pending != 0 || q.Running != 0 || q.OldestAge != 0 {
			t.Errorf("empty store: %+v, want zeros", q)
		}
	}

	enqueue(t, s, job(bridge.In, "telegram:1", "a"), job(bridge.In, "telegram:1", "b"), job(bridge.In, "telegram:2", "c"),
		job(bridge.Out, "telegram:9", "x"), job(bridge.Out, "telegram:9", "y"))
	claim(t, s, bridge.In, time.Minute, "a")
	claim(t, s, bridge.Out, time.Minute, "x")
	claim(t, s, bridge.Out, time.Minute, "") // y waits behind x

	st, err = s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	in, out := st.Queue[0], st.Queue[1]
	if in.Pending != 2 || in.Running != 1 {
		t.Errorf("in: pending %d running %d, want 2 and 1", in.Pending, in.Running)
	}
	if out.Pending != 1 || out.Running != 1 {
		t.Errorf("out: pending %d running %d, want 1 and 1", out.Pending, out.Running)
	}
	if in.OldestAge <= 0 || in.OldestAge > time.Minute {
		t.Errorf("in: oldest age %s, want a small positive age", in.OldestAge)
	}

	cu := newCustomer("5")
	cu.UnreachableReason = "bot was blocked by the user"
	if _, err := s.SaveCustomer(t.Context(), cu, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveCustomer(t.Context(), newCustomer("6"), 0); err != nil {
		t.Fatal(err)
	}
	st, err = s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Unreachable[cu.User.Platform]; got != 1 || len(st.Unreachable) != 1 {
		t.Errorf("unreachable %v, want 1 for %s", st.Unreachable, cu.User.Platform)
	}
}

func TestMigrationStatus(t *testing.T) {
	t.Parallel()
	fresh, err := postgres.Open(t.Context(), pgtest.NewDatabaseURL(t), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	current, latest, err := fresh.MigrationStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if current != 0 || latest < 1 {
		t.Errorf("never migrated: current %d latest %d, want 0 and at least 1", current, latest)
	}

	current, latest, err = pgtest.NewStore(t).MigrationStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if latest < 1 || current != latest {
		t.Errorf("migrated store: current %d latest %d, want equal and at least 1", current, latest)
	}
}
