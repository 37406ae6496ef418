package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
)

// TestListenWakesOnAnotherProcessesEnqueue: a job enqueued through one store (process) wakes
// the workers listening through another store on the same database.
func TestListenWakesOnAnotherProcessesEnqueue(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dbURL := pgtest.NewDatabaseURL(t)
	stores := openStoresAt(t, ctx, dbURL, 2)
	listener, producer := stores[0], stores[1]

	wakes, stop := listen(t, ctx, listener)
	// The listener's own enqueue wakes nothing through Listen (its process wakes its own
	// workers); notifications arrive in commit order, so the first wake-up is the producer's.
	if _, err := listener.Enqueue(ctx, bridge.Cursor{}, bridge.NewJob{Direction: bridge.In, Key: "telegram:2", Dedup: "telegram:2:1", Payload: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := producer.Enqueue(ctx, bridge.Cursor{}, bridge.NewJob{Direction: bridge.Out, Key: "telegram:1", Dedup: "onechat:1", Payload: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if d := nextWake(t, ctx, wakes, "enqueue in another process"); d != bridge.Out {
		t.Errorf("woken for %q, want out (the listener's own inbound enqueue must not wake it)", d)
	}
	// A bridge of an earlier version notifies with the direction alone.
	notifyInbound(t, ctx, dbURL)
	if d := nextWake(t, ctx, wakes, "an earlier version's notify"); d != bridge.In {
		t.Errorf("woken for %q by an earlier version's notify, want in", d)
	}
	// A cancelled Listen returns nil.
	if err := stop(); err != nil {
		t.Errorf("Listen returned %v after cancel, want nil", err)
	}
}

// notifyInbound sends the queue notification an earlier bridge sent for new inbound jobs: the
// direction alone.
func notifyInbound(t *testing.T, ctx context.Context, dbURL string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `SELECT pg_notify('bridge_queue', 'in')`); err != nil {
		t.Fatal(err)
	}
}

// nextWake returns the next wake-up, failing the test when what (the cause) brings none.
func nextWake(t *testing.T, ctx context.Context, wakes <-chan bridge.Direction, what string) bridge.Direction {
	t.Helper()
	select {
	case d := <-wakes:
		return d
	case <-ctx.Done():
		t.Fatalf("%s did not wake the listener", what)
		return ""
	}
}

// listen runs s.Listen, sending every wake-up to the returned channel, and waits for the wake-up
// of both directions Listen gives once it listens (for jobs enqueued before it did). stop
// cancels it and returns what Listen returned; the test's cleanup stops it too.
func listen(t *testing.T, ctx context.Context, s *postgres.Store) (wakes <-chan bridge.Direction, stop func() error) {
	t.Helper()
	ch := make(chan bridge.Direction, 1024)
	listenCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Listen(listenCtx, func(d bridge.Direction) { ch <- d }) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	seen := map[bridge.Direction]bool{}
	for len(seen) < 2 {
		select {
		case d := <-ch:
			seen[d] = true
		case <-ctx.Done():
			t.Fatal("no initial wake-up")
		}
	}
	return ch, stop
}

// TestEnqueueNotifiesAtMostEvery10ms: a stream of enqueues (one per conversation catch-up)
// does not notify once each, which would make Postgres commit them one at a time, but other
// processes still hear of new jobs at least every 10 ms while the stream lasts.
func TestEnqueueNotifiesAtMostEvery10ms(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabaseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stores := openStoresAt(t, ctx, dbURL, 2)
	listener, producer := stores[0], stores[1]
	wakes, _ := listen(t, ctx, listener)

	const jobs = 50
	start := time.Now()
	for i := range jobs {
		if _, err := producer.Enqueue(ctx, bridge.Cursor{}, bridge.NewJob{Direction: bridge.Out,
			Key: fmt.Sprintf("telegram:%d", i), Dedup: fmt.Sprintf("onechat:%d", i), Payload: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	// Notifications arrive in commit order: an "in" notification sent now marks the end.
	notifyInbound(t, ctx, dbURL)
	outs := 0
	for d := range wakes {
		if d == bridge.In {
			break
		}
		outs++
	}
	most := int(elapsed/(10*time.Millisecond)) + 1
	if outs < 1 || outs > most {
		t.Errorf("%d enqueues in %s woke the other process %d times, want 1 to %d", jobs, elapsed, outs, most)
	}
}

func TestJobPayloadKeepsFinishedJobs(t *testing.T) {
	t.Parallel()
	s := pgtest.NewStore(t)
	ctx := t.Context()
	if _, err := s.JobPayload(ctx, bridge.Out, "onechat:9"); !errors.Is(err, bridge.ErrNotFound) {
		t.Fatalf("unknown job: %v, want ErrNotFound", err)
	}
	if _, err := s.Enqueue(ctx, bridge.Cursor{}, bridge.NewJob{Direction: bridge.Out, Key: "k", Dedup: "onechat:9", Payload: json.RawMessage(`{"text":"hi"}`)}); err != nil {
		t.Fatal(err)
	}
	j, err := s.Claim(ctx, bridge.Out, time.Minute)
	if err != nil || j == nil {
		t.Fatalf("claim: %v %v", j, err)
	}
	if err := s.Complete(ctx, j.Lease()); err != nil {
		t.Fatal(err)
	}
	p, err := s.JobPayload(ctx, bridge.Out, "onechat:9")
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Text string }
	if err := json.Unmarshal(p, &v); err != nil || v.Text != "hi" {
		t.Errorf("payload %s (%v), want text hi", p, err)
	}
}

func TestCursorsByPrefix(t *testing.T) {
	t.Parallel()
	s := pgtest.NewStore(t)
	ctx := t.Context()
	for _, c := range []bridge.Cursor{{Name: "discord.channel.2", Position: "20"}, {Name: "discord.channel.1", Position: "10"}, {Name: "telegram.update_offset", Position: "5"}} {
		if _, err := s.Enqueue(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Cursors(ctx, "discord.channel.")
	if err != nil {
		t.Fatal(err)
	}
	want := []bridge.Cursor{{Name: "discord.channel.1", Position: "10"}, {Name: "discord.channel.2", Position: "20"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Cursors = %v, want %v", got, want)
	}
	if got, _ := s.Cursors(ctx, "slack."); len(got) != 0 {
		t.Errorf("unknown prefix gave %v", got)
	}
}

func TestIdleAndActiveCustomers(t *testing.T) {
	t.Parallel()
	s := pgtest.NewStore(t)
	ctx := t.Context()
	save := func(id, token string) bridge.Customer {
		c, err := s.SaveCustomer(ctx, bridge.Customer{
			User: bridge.UserRef{Platform: bridge.Platform("telegram"), ID: id}, Chat: bridge.ChatRef{Platform: bridge.Platform("telegram"), ID: id},
			Identifier: "telegram:" + id, SourceID: "src-" + id, PubsubToken: token,
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	open := save("1", "tok1")
	resolved := save("2", "tok2")
	save("3", "") // no session yet: never listed
	if err := s.SetConversation(ctx, open.ID, 11, "open"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConversation(ctx, resolved.ID, 12, "resolved"); err != nil {
		t.Fatal(err)
	}
	names := func(cs []bridge.Customer, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.User.ID)
		}
		return strings.Join(out, ",")
	}
	future := time.Now().Add(time.Hour)
	all := []string{"tok1", "tok2", "tok-unknown"}
	if got := names(s.IdleCustomers(ctx, future, all)); got != "2" {
		t.Errorf("idle before now+1h = %q, want the resolved one", got)
	}
	if got := names(s.IdleCustomers(ctx, future, []string{"tok1"})); got != "" {
		t.Errorf("idle before now+1h among tok1 = %q, want none (only the tokens asked about)", got)
	}
	if got := names(s.IdleCustomers(ctx, future, nil)); got != "" {
		t.Errorf("idle among no tokens = %q, want none", got)
	}
	if got := names(s.ActiveCustomers(ctx, future)); got != "1" {
		t.Errorf("active at now+1h = %q, want the open one", got)
	}
	past := time.Now().Add(-time.Hour)
	if got := names(s.IdleCustomers(ctx, past, all)); got != "" {
		t.Errorf("idle before now-1h = %q, want none (resolved just now)", got)
	}
	if got := names(s.ActiveCustomers(ctx, past)); got != "1,2" {
		t.Errorf("active at now-1h = %q, want both", got)
	}
}
