package onechat

import (
	"container/list"
	"context"
	"errors"
	"math"
	"sync"
	"time"
)

const (
	// DefaultRequestsPerSecond keeps one bridge at 2700 requests/min, under OneChat's default
	// Rack::Attack limit of 3000/min per IP with room for the cable and an operator's curl.
	DefaultRequestsPerSecond = 45
	// DefaultRequestBurst is how many requests may go out at once after a quiet spell. It is
	// small on purpose: Rack::Attack counts per minute, and a large burst after a pause is how
	// a client walks into the limit.
	DefaultRequestBurst = 5

	// throttleBase and throttleMax bound the shared pause after 429s: 1 s, 2 s, 4 s … 30 s.
	// Rack::Attack sends no Retry-After and its window is a minute, so doubling probes find
	// the end of the window without hammering it.
	throttleBase = time.Second
	throttleMax  = 30 * time.Second
)

// Priority orders the requests waiting on the client's budget: when several wait, the one of
// the highest priority goes first, and requests of one priority go in the order they came.
// Requests never wait for a token to be kept for a higher priority: a lower one goes whenever
// no higher one is waiting, so nothing starves while the budget has room.
type Priority int

const (
	// PriorityProbe is a readiness probe's request: it goes last, since an operator's check
	// must never hold back a user or an agent.
	PriorityProbe Priority = iota - 2
	// PriorityNewUser is the first contact of a new user (contact and conversation creation),
	// so that a flood of new accounts cannot hold back the users the bridge already serves.
	PriorityNewUser
	// PriorityUser is a known user's message, and the default of requests that say nothing.
	PriorityUser
	// PriorityAgent is an agent's reply and the catch-up reads that find it: a person is
	// waiting on the other side, and agents are few.
	PriorityAgent
)

// ErrNoBudget wraps the context's error when a request gave up waiting for its turn in the
// client's request budget: it was never sent.
var ErrNoBudget = errors.New("no turn in the request budget")

type priorityKey struct{}

// WithPriority returns a context whose requests wait on the client's budget with priority p.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf returns the priority ctx carries, PriorityUser when it carries none.
func PriorityOf(ctx context.Context) Priority {
	if p, ok := ctx.Value(priorityKey{}).(Priority); ok {
		return min(PriorityAgent, max(PriorityProbe, p))
	}
	return PriorityUser
}

// budget is the client-side token bucket every request of a Client waits on, so the bridge
// paces itself under OneChat's per-IP limit instead of discovering it by 429s. A 429 pauses
// the whole bucket (every caller, not just the one that was refused), because the limit is
// per IP: one worker's 429 means every worker is over.
//
// Callers that find no token wait in one FIFO per priority; only the first waiter of the
// highest priority (the front) watches the clock, and when it takes a token it wakes the next
// front. A waiter of a higher priority that arrives becomes the front at once, so it goes
// before everyone already waiting.
type budget struct {
	rate  float64 // tokens per second; +Inf means no limit
	burst float64
	now   func() time.Time
	after func(time.Duration) (<-chan time.Time, func() bool)
	// queued, when set (tests), is called with mu held after a caller started waiting.
	queued func()

	mu      sync.Mutex
	tokens  float64   // never above burst, never below 0
	last    time.Time // the time tokens was computed at; in the future during a pause
	strikes int       // 429s since the last success
	waiting [PriorityAgent - PriorityProbe + 1]list.List
}

// waiter is one caller waiting for a token. kick tells it to look again: it became the front.
type waiter struct {
	kick chan struct{}
}

func newBudget(rate float64, burst int, now func() time.Time) *budget {
	if rate <= 0 {
		rate = math.Inf(1)
	}
	if burst < 1 {
		burst = 1
	}
	return &budget{rate: rate, burst: float64(burst), tokens: float64(burst), now: now, after: realAfter}
}

func realAfter(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// refill adds the tokens earned since last. Called with mu held.
func (b *budget) refill(now time.Time) {
	if b.last.IsZero() {
		b.last = now
	}
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
}

// take takes a token if one is there now, else says how long until one is. Called with mu
// held.
func (b *budget) take(now time.Time) (bool, time.Duration) {
	b.refill(now)
	if !now.Before(b.last) && b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	d := max(0, b.last.Sub(now))
	if b.tokens < 1 {
		d += time.Duration(math.Ceil((1 - b.tokens) / b.rate * float64(time.Second)))
	}
	return false, max(d, time.Nanosecond)
}

// front returns the element of the waiter that goes next, or nil. Called with mu held.
func (b *budget) front() *list.Element {
	for i := len(b.waiting) - 1; i >= 0; i-- {
		if e := b.waiting[i].Front(); e != nil {
			return e
		}
	}
	return nil
}

// kickFront wakes the waiter that goes next. Called with mu held.
func (b *budget) kickFront() {
	if e := b.front(); e != nil {
		select {
		case e.Value.(*waiter).kick <- struct{}{}:
		default:
		}
	}
}

// wait blocks until the caller may send, or ctx ends. Callers of a higher priority (from
// ctx, see WithPriority) go before those of a lower one.
func (b *budget) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if math.IsInf(b.rate, 1) {
		return nil
	}
	b.mu.Lock()
	if b.front() == nil {
		if ok, _ := b.take(b.now()); ok {
			b.mu.Unlock()
			return nil
		}
	}
	q := &b.waiting[PriorityOf(ctx)-PriorityProbe]
	w := &waiter{kick: make(chan struct{}, 1)}
	e := q.PushBack(w)
	b.kickFront() // this caller may have become the front
	if b.queued != nil {
		b.queued()
	}
	b.mu.Unlock()

	for {
		select {
		case <-w.kick:
		case <-ctx.Done():
			b.mu.Lock()
			wasFront := b.front() == e
			q.Remove(e)
			if wasFront {
				b.kickFront()
			}
			b.mu.Unlock()
			return ctx.Err()
		}
		b.mu.Lock()
		if b.front() != e {
			b.mu.Unlock()
			continue // a higher priority came first: wait to be kicked again
		}
		ok, d := b.take(b.now())
		if ok {
			q.Remove(e)
			b.kickFront()
			b.mu.Unlock()
			return nil
		}
		b.mu.Unlock()
		c, stop := b.after(d)
		select {
		case <-c:
			// Look again: still the front, and the token is due (or a pause moved it).
			select {
			case w.kick <- struct{}{}:
			default:
			}
		case <-w.kick:
			stop()
			// Someone came before us, or a pause moved the time: look again.
			select {
			case w.kick <- struct{}{}:
			default:
			}
		case <-ctx.Done():
			stop()
			b.mu.Lock()
			wasFront := b.front() == e
			q.Remove(e)
			if wasFront {
				b.kickFront()
			}
			b.mu.Unlock()
			return ctx.Err()
		}
	}
}

// throttled records a 429 and pauses the bucket: nothing is sent until the pause ends, and
// then requests resume one token at a time, without a burst. retryAfter, when the server sent
// one, overrides the doubling backoff. It returns the pause.
func (b *budget) throttled(retryAfter time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.strikes++
	pause := retryAfter
	if pause <= 0 {
		pause = min(throttleMax, throttleBase<<min(b.strikes-1, 10))
	}
	if math.IsInf(b.rate, 1) {
		return pause
	}
	now := b.now()
	b.refill(now)
	until := now.Add(pause)
	if until.After(b.last) {
		// Waiters keep their order: they wait out the pause, then go at the rate.
		b.last, b.tokens = until, min(b.tokens, 1)
		b.kickFront() // its timer was set for the old time
	}
	return pause
}

// succeeded ends a run of 429s, so the next one starts the backoff again from its base.
func (b *budget) succeeded() {
	b.mu.Lock()
	b.strikes = 0
	b.mu.Unlock()
}
