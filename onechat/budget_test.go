package onechat

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func near(a, b time.Duration) bool { return (a - b).Abs() < time.Millisecond }

func TestBudgetKeepsUnderTheLimit(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	b := newBudget(DefaultRequestsPerSecond, DefaultRequestBurst, clk.Now)

	// Many callers asking at the same instant are spaced at the rate after the burst.
	for i := range 100 {
		want := time.Duration(0)
		if i >= DefaultRequestBurst {
			want = time.Duration(float64(i-DefaultRequestBurst+1) / DefaultRequestsPerSecond * float64(time.Second))
		}
		if got := b.reserve(); !near(got, want) {
			t.Fatalf("request %d waits %s, want %s", i, got, want)
		}
	}

	// A sender that sends as soon as it may: count what goes out in each minute, the window
	// OneChat's Rack::Attack counts in.
	b = newBudget(DefaultRequestsPerSecond, DefaultRequestBurst, clk.Now)
	start := clk.Now()
	perMinute := map[int]int{}
	for clk.Now().Sub(start) < 5*time.Minute {
		clk.Advance(b.reserve())
		perMinute[int(clk.Now().Sub(start)/time.Minute)]++
	}
	for m := range 5 {
		if n := perMinute[m]; n > 2705 || n < 2695 {
			t.Errorf("minute %d: %d requests, want about 2700 (45/s), never 3000", m, n)
		}
	}
}

func TestBudgetPausesEveryoneAfter429(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	b := newBudget(10, 5, clk.Now)
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if got := b.throttled(0); got != want {
			t.Errorf("429 #%d: pause %s, want %s", i+1, got, want)
		}
	}
	// Every caller waits out the pause, then they go one at a time, not in a burst.
	if got := b.reserve(); !near(got, 4*time.Second) {
		t.Errorf("first after the pause waits %s", got)
	}
	if got := b.reserve(); !near(got, 4*time.Second+100*time.Millisecond) {
		t.Errorf("second after the pause waits %s", got)
	}
	b.succeeded()
	if got := b.throttled(0); got != time.Second {
		t.Errorf("after a success the backoff starts again: %s", got)
	}
	if got := b.throttled(7 * time.Second); got != 7*time.Second {
		t.Errorf("a Retry-After wins: %s", got)
	}
	for range 20 {
		b.throttled(0)
	}
	if got := b.throttled(0); got != throttleMax {
		t.Errorf("backoff is capped: %s", got)
	}
}

func TestBudgetWaitHonoursContext(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	b := newBudget(1, 1, clk.Now)
	if err := b.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.wait(ctx) }()
	cancel()
	if err := recv(t, done, "wait to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("wait = %v", err)
	}
	// The abandoned token came back: the next caller waits one interval, not two.
	if got := b.reserve(); !near(got, time.Second) {
		t.Errorf("next waits %s, want 1s", got)
	}
}

func TestClientSharesThe429Pause(t *testing.T) {
	fake := onechattest.NewServer(t, nil)
	c := NewClient(fake.URL(), fake.InboxIdentifier(), nil)
	ctx := context.Background()
	if _, err := c.Inbox(ctx); err != nil {
		t.Fatal(err)
	}
	fake.Throttle(1)
	_, err := c.Inbox(ctx)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 429 || ae.RetryAfter != time.Second {
		t.Fatalf("err = %#v", err)
	}
	// Any other call now waits for the pause: with a short deadline it gives up instead.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = c.CreateContact(short, ContactParams{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call during the pause: %v", err)
	}
	if n := len(fake.Requests()); n != 2 {
		t.Errorf("%d requests reached the server, want 2 (none during the pause)", n)
	}
}

func BenchmarkBudgetReserve(b *testing.B) {
	bud := newBudget(1e9, 1000, time.Now)
	for b.Loop() {
		bud.reserve()
	}
}
