package onechat

import (
	"context"
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

// budget is the client-side token bucket every request of a Client waits on, so the bridge
// paces itself under OneChat's per-IP limit instead of discovering it by 429s. A 429 pauses
// the whole bucket (every caller, not just the one that was refused), because the limit is
// per IP: one worker's 429 means every worker is over.
type budget struct {
	rate  float64 // tokens per second; +Inf means no limit
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	tokens  float64   // may go negative: reservations queued behind the bucket
	last    time.Time // the time tokens was computed at; in the future during a pause
	strikes int       // 429s since the last success
}

func newBudget(rate float64, burst int, now func() time.Time) *budget {
	if rate <= 0 {
		rate = math.Inf(1)
	}
	if burst < 1 {
		burst = 1
	}
	return &budget{rate: rate, burst: float64(burst), tokens: float64(burst), now: now}
}

// reserve takes one token and returns how long the caller must wait before sending. Callers
// that give up must hand the token back with cancel.
func (b *budget) reserve() time.Duration {
	if math.IsInf(b.rate, 1) {
		return 0
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.last = now
	}
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	b.tokens--
	ready := b.last
	if b.tokens < 0 {
		ready = ready.Add(time.Duration(-b.tokens / b.rate * float64(time.Second)))
	}
	return max(0, ready.Sub(now))
}

// cancel returns a reserved token that was not used.
func (b *budget) cancel() {
	if math.IsInf(b.rate, 1) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.burst, b.tokens+1)
}

// wait blocks until the caller may send, or ctx ends.
func (b *budget) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := b.reserve()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		b.cancel()
		return ctx.Err()
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
	until := b.now().Add(pause)
	if until.After(b.last) {
		// Queued reservations keep their order: they wait out the pause, then go at the rate.
		b.last, b.tokens = until, min(b.tokens, 1)
	}
	return pause
}

// succeeded ends a run of 429s, so the next one starts the backoff again from its base.
func (b *budget) succeeded() {
	b.mu.Lock()
	b.strikes = 0
	b.mu.Unlock()
}
