package onechat

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// fakeClock is a clock tests move by hand; its timers fire when it is moved past them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	set    chan struct{} // a signal for every timer set
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), set: make(chan struct{}, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := fakeTimer{at: c.now.Add(d), c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	c.set <- struct{}{}
	return t.c, func() bool { return true }
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.c <- c.now
	}
	c.timers = kept
}

// awaitTimer waits until a timer is set to fire within d of now.
func (c *fakeClock) awaitTimer(t *testing.T, d time.Duration) {
	t.Helper()
	for {
		c.mu.Lock()
		for _, tm := range c.timers {
			if !tm.at.After(c.now.Add(d)) {
				c.mu.Unlock()
				return
			}
		}
		c.mu.Unlock()
		select {
		case <-c.set:
		case <-time.After(10 * time.Second):
			t.Fatal("no timer set")
		}
	}
}

func newFakeBudget(rate float64, burst int, clk *fakeClock) *budget {
	b := newBudget(rate, burst, clk.Now)
	b.after = clk.After
	return b
}

// signalQueued returns a channel that receives every time a caller starts waiting on b.
func signalQueued(b *budget) <-chan struct{} {
	ch := make(chan struct{}, 100)
	b.queued = func() { ch <- struct{}{} }
	return ch
}

// delay takes a token now if there is one, else says how long until one is.
func (b *budget) delay() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok, d := b.take(b.now()); !ok {
		return d
	}
	return 0
}

func near(a, b time.Duration) bool { return (a - b).Abs() < time.Millisecond }

func TestBudgetKeepsUnderTheLimit(t *testing.T) {
	clk := newFakeClock()
	b := newFakeBudget(DefaultRequestsPerSecond, DefaultRequestBurst, clk)

	// After the burst, callers are spaced at the rate.
	for i := range DefaultRequestBurst {
		if d := b.delay(); d != 0 {
			t.Fatalf("request %d of the burst waits %s", i, d)
		}
	}
	if d := b.delay(); !near(d, time.Second/DefaultRequestsPerSecond) {
		t.Fatalf("request after the burst waits %s", d)
	}

	// A sender that sends as soon as it may: count what goes out in each minute, the window
	// OneChat's Rack::Attack counts in.
	b = newFakeBudget(DefaultRequestsPerSecond, DefaultRequestBurst, clk)
	start := clk.Now()
	perMinute := map[int]int{}
	for clk.Now().Sub(start) < 5*time.Minute {
		if d := b.delay(); d > 0 {
			clk.Advance(d)
			continue
		}
		perMinute[int(clk.Now().Sub(start)/time.Minute)]++
	}
	for m := range 5 {
		if n := perMinute[m]; n > 2705 || n < 2695 {
			t.Errorf("minute %d: %d requests, want about 2700 (45/s), never 3000", m, n)
		}
	}
}

func TestBudgetPausesEveryoneAfter429(t *testing.T) {
	clk := newFakeClock()
	b := newFakeBudget(10, 5, clk)
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if got := b.throttled(0); got != want {
			t.Errorf("429 #%d: pause %s, want %s", i+1, got, want)
		}
	}
	// Every caller waits out the pause, then they go one at a time, not in a burst.
	if got := b.delay(); !near(got, 4*time.Second) {
		t.Errorf("first after the pause waits %s", got)
	}
	clk.Advance(4 * time.Second)
	if got := b.delay(); got != 0 {
		t.Errorf("first at the end of the pause waits %s", got)
	}
	if got := b.delay(); !near(got, 100*time.Millisecond) {
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
	clk := newFakeClock()
	b := newFakeBudget(1, 1, clk)
	if err := b.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.wait(ctx) }()
	clk.awaitTimer(t, time.Second)
	cancel()
	if err := recv(t, done, "wait to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("wait = %v", err)
	}
	// The abandoned wait took nothing: the next caller waits one interval, not two.
	if got := b.delay(); !near(got, time.Second) {
		t.Errorf("next waits %s, want 1s", got)
	}
}

// TestBudgetServesHigherPrioritiesFirst: with the budget spent, an agent's request that
// arrives after a new user's, a known user's and a probe's goes first, then the known user's,
// then the new user's, then the probe's.
func TestBudgetServesHigherPrioritiesFirst(t *testing.T) {
	clk := newFakeClock()
	b := newFakeBudget(1, 1, clk)
	if err := b.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	queued := signalQueued(b)
	order := make(chan Priority, 4)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, p := range []Priority{PriorityProbe, PriorityNewUser, PriorityUser, PriorityAgent} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.wait(WithPriority(context.Background(), p)); err != nil {
				t.Error(err)
			}
			order <- p
		}()
		recv(t, queued, "the caller to wait")

	}
	for _, want := range []Priority{PriorityAgent, PriorityUser, PriorityNewUser, PriorityProbe} {
		clk.awaitTimer(t, time.Second) // the front watches the clock
		clk.Advance(time.Second)
		if got := recv(t, order, "a waiter to go"); got != want {
			t.Fatalf("priority %d went, want %d", got, want)
		}
	}
}

// TestBudgetPriorityWithinFIFO: waiters of one priority go in the order they came.
func TestBudgetPriorityWithinFIFO(t *testing.T) {
	clk := newFakeClock()
	b := newFakeBudget(1, 1, clk)
	if err := b.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	queued := signalQueued(b)
	order := make(chan int, 3)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.wait(context.Background()); err != nil {
				t.Error(err)
			}
			order <- i
		}()
		recv(t, queued, "the caller to wait")
	}
	for want := range 3 {
		clk.awaitTimer(t, time.Second) // the front watches the clock
		clk.Advance(time.Second)
		if got := recv(t, order, "a waiter to go"); got != want {
			t.Fatalf("waiter %d went, want %d", got, want)
		}
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

func BenchmarkBudgetWait(b *testing.B) {
	bud := newBudget(1e9, 1000, time.Now)
	ctx := context.Background()
	for b.Loop() {
		_ = bud.wait(ctx)
	}
}
