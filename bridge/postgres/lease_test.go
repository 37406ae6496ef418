package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
)

// openStores opens n stores (n "processes") on one fresh, migrated database.
func openStores(t *testing.T, ctx context.Context, n int) []*postgres.Store {
	t.Helper()
	return openStoresAt(t, ctx, pgtest.NewDatabaseURL(t), n)
}

// openStoresAt opens n stores on the database at dbURL and migrates it.
func openStoresAt(t *testing.T, ctx context.Context, dbURL string, n int) []*postgres.Store {
	t.Helper()
	var out []*postgres.Store
	for range n {
		s, err := postgres.Open(ctx, dbURL, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func TestLeasesHaveOneHolder(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := openStores(t, ctx, 1)[0]
	const ttl = time.Minute

	got, err := s.AcquireLeases(ctx, "a", []string{"x", "y"}, ttl)
	if err != nil || fmt.Sprint(sorted(got)) != "[x y]" {
		t.Fatalf("a acquires x, y: %v %v", got, err)
	}
	got, err = s.AcquireLeases(ctx, "b", []string{"x", "y", "z"}, ttl)
	if err != nil || fmt.Sprint(got) != "[z]" {
		t.Fatalf("b gets only the free z: %v %v", got, err)
	}
	before, _ := s.Leases(ctx, "x")
	got, err = s.AcquireLeases(ctx, "a", []string{"x", "y", "y"}, ttl) // a renewal
	if err != nil || fmt.Sprint(sorted(got)) != "[x y]" {
		t.Fatalf("a renews x, y: %v %v", got, err)
	}
	after, _ := s.Leases(ctx, "x")
	if len(before) != 1 || len(after) != 1 || !after[0].AcquiredAt.Equal(before[0].AcquiredAt) || !after[0].Expires.After(before[0].Expires) {
		t.Errorf("renewal should extend the lease and keep its acquisition time: before %+v after %+v", before, after)
	}
	leases, err := s.Leases(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	holders := map[string]string{}
	for _, l := range leases {
		holders[l.Name] = l.Holder
	}
	if fmt.Sprint(holders) != "map[x:a y:a z:b]" {
		t.Errorf("leases = %v", holders)
	}

	if err := s.ReleaseLeases(ctx, "b", []string{"x", "z"}); err != nil { // x is not b's: ignored
		t.Fatal(err)
	}
	if got, _ := s.AcquireLeases(ctx, "c", []string{"x", "z"}, ttl); fmt.Sprint(got) != "[z]" {
		t.Errorf("after b released z (and could not release a's x), c got %v, want [z]", got)
	}
	if err := s.ReleaseLeases(ctx, "a", []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.AcquireLeases(ctx, "c", []string{"x"}, ttl); fmt.Sprint(got) != "[x]" {
		t.Errorf("a released x, c got %v", got)
	}
	if got, _ := s.AcquireLeases(ctx, "a", []string{"x", "y"}, ttl); fmt.Sprint(got) != "[y]" {
		t.Errorf("a renewing after losing x got %v, want only [y]", got)
	}
}

// TestLeaseExpiresWhenNotRenewed: a holder that stops renewing (it died) loses the lease after
// its ttl, on the database's clock, and not before.
func TestLeaseExpiresWhenNotRenewed(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := openStores(t, ctx, 1)[0]
	const ttl = 300 * time.Millisecond

	if got, err := s.AcquireLeases(ctx, "dead", []string{"poller"}, ttl); err != nil || len(got) != 1 {
		t.Fatalf("acquire: %v %v", got, err)
	}
	start := time.Now()
	// The standby tries every few milliseconds, as a renewal loop would every few seconds.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		got, err := s.AcquireLeases(ctx, "standby", []string{"poller"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the lease never expired")
		case <-tick.C:
		}
	}
	if took := time.Since(start); took < ttl/2 {
		t.Errorf("taken over after %s, before the ttl %s could have passed", took, ttl)
	}
	if got, _ := s.AcquireLeases(ctx, "dead", []string{"poller"}, ttl); len(got) != 0 {
		t.Error("the old holder renewed a lease that was taken over")
	}
	if leases, _ := s.Leases(ctx, ""); len(leases) != 1 || leases[0].Holder != "standby" {
		t.Errorf("leases = %+v", leases)
	}
}

// TestRacingInstancesNeverShareALease: instances (each its own pool) grab the same 64 names at
// once; every name ends up with exactly one holder.
func TestRacingInstancesNeverShareALease(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const instances = 6
	stores := openStores(t, ctx, instances)
	var names []string
	for p := range 64 {
		names = append(names, bridge.PartitionRole(p))
	}
	got := make([][]string, instances)
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			// Each asks in its own order, as shuffled claims would.
			mine := slices.Clone(names)
			slices.Reverse(mine[:i*10])
			for range 5 {
				g, err := s.AcquireLeases(ctx, "inst-"+strconv.Itoa(i), mine, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = g
			}
		})
	}
	wg.Wait()
	owner := map[string]int{}
	for i, g := range got {
		for _, n := range g {
			if j, dup := owner[n]; dup {
				t.Errorf("%s held by inst-%d and inst-%d", n, j, i)
			}
			owner[n] = i
		}
	}
	if len(owner) != 64 {
		t.Errorf("%d of 64 names held", len(owner))
	}
}

func TestHeartbeatAndLeave(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stores := openStores(t, ctx, 2)
	a, b := stores[0], stores[1]

	if live, err := a.Heartbeat(ctx, "a", time.Minute); err != nil || fmt.Sprint(live) != "[a]" {
		t.Fatalf("first heartbeat: %v %v", live, err)
	}
	if live, err := b.Heartbeat(ctx, "b", time.Minute); err != nil || fmt.Sprint(live) != "[a b]" {
		t.Fatalf("second instance: %v %v", live, err)
	}
	if live, _ := a.Heartbeat(ctx, "a", time.Minute); fmt.Sprint(live) != "[a b]" {
		t.Fatalf("renewed heartbeat: %v", live)
	}
	if _, err := a.AcquireLeases(ctx, "a", []string{"adapter/telegram", "cable/01"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := a.Leave(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if live, _ := b.Heartbeat(ctx, "b", time.Minute); fmt.Sprint(live) != "[b]" {
		t.Errorf("after a left: %v", live)
	}
	if got, _ := b.AcquireLeases(ctx, "b", []string{"adapter/telegram", "cable/01"}, time.Minute); len(got) != 2 {
		t.Errorf("a's leases were not released when it left: b got %v", got)
	}
	// An instance that stops heartbeating drops out after its ttl.
	if _, err := a.Heartbeat(ctx, "c", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		live, err := b.Heartbeat(ctx, "b", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(live) == "[b]" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("c never expired: %v", live)
		case <-tick.C:
		}
	}
}

func TestPartitionCustomersAndAnnouncements(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stores := openStores(t, ctx, 2)
	a, b := stores[0], stores[1]

	var ids []int64
	for i := range 8 {
		uid := strconv.Itoa(100 + i)
		cu := bridge.Customer{User: bridge.UserRef{Platform: bridge.Platform("telegram"), ID: uid}, Identifier: "telegram:" + uid, SourceID: "src" + uid}
		if i != 7 {
			cu.PubsubToken = "tok" + uid // the last one has no contact yet
		}
		saved, err := a.SaveCustomer(ctx, cu, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, saved.ID)
	}
	got, err := a.PartitionCustomers(ctx, 4, []int{1, 2}, time.Now().Add(-time.Hour), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The same, a page of two at a time.
	var paged []int64
	for after := int64(0); ; {
		page, err := a.PartitionCustomers(ctx, 4, []int{1, 2}, time.Now().Add(-time.Hour), after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 2 {
			t.Fatalf("a page of %d customers, want at most 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, cu := range page {
			paged = append(paged, cu.ID)
		}
		after = page[len(page)-1].ID
	}
	var want, have []int64
	for _, id := range ids[:7] {
		if id%4 == 1 || id%4 == 2 {
			want = append(want, id)
		}
	}
	for _, cu := range got {
		have = append(have, cu.ID)
		if cu.PubsubToken == "" {
			t.Errorf("customer %d without a token listed", cu.ID)
		}
	}
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Errorf("partitions 1, 2 of 4: customers %v, want %v", have, want)
	}
	if fmt.Sprint(paged) != fmt.Sprint(want) {
		t.Errorf("partitions 1, 2 of 4 in pages of 2: customers %v, want %v", paged, want)
	}
	if got, _ := a.PartitionCustomers(ctx, 4, nil, time.Now(), 0, 0); len(got) != 0 {
		t.Errorf("no partitions listed %d customers", len(got))
	}
	cu, err := b.CustomerByID(ctx, ids[3])
	if err != nil || cu.User.ID != "103" {
		t.Errorf("CustomerByID = %+v, %v", cu, err)
	}
	if _, err := b.CustomerByID(ctx, 99999); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("unknown id: %v, want ErrNotFound", err)
	}

	// An announcement through a reaches b's listener.
	announced := make(chan int64, 16)
	listenCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.ListenCustomers(listenCtx, func(id int64) { announced <- id }) }()
	// LISTEN starts asynchronously: announce until one arrives.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		if err := a.AnnounceCustomer(ctx, ids[2]); err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-announced:
			if id != ids[2] {
				t.Errorf("announced %d, want %d", id, ids[2])
			}
			break wait
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("announcement never arrived")
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("ListenCustomers returned %v after cancel, want nil", err)
	}
}
