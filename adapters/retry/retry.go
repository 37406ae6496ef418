// Package retry paces the retries of the adapters: an exponential, capped, jittered Backoff and
// a Sleep that a cancelled context cuts short. Every adapter retries the same way (a failed
// poll, a store that is down, a dropped gateway), so the arithmetic lives here once.
package retry

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Backoff computes the pause before a retry: Base doubled per attempt, capped at Max, of which
// the fraction Jitter is random so that many bridges that failed together do not retry in
// lockstep. The zero Rand uses math/rand/v2, which is safe for concurrent use, so one Backoff
// value may be shared by every goroutine of an adapter.
type Backoff struct {
	// Base is the pause before the first retry (attempt 0).
	Base time.Duration
	// Max caps the pause, jitter included; zero or less means no cap.
	Max time.Duration
	// Jitter is the fraction of the pause that is random, clamped to [0, 1]: with 0.5 (equal
	// jitter) a pause d becomes a random duration in (d/2, d].
	Jitter float64
	// Rand returns a number in [0, 1); nil means rand.Float64. Tests inject a fixed source.
	Rand func() float64
}

// Delay returns the pause before retry number attempt+1 (attempt counts from 0): Base·2^attempt
// capped at Max, less a random part of at most Jitter of it. It never overflows, however large
// attempt grows, and returns 0 for a non-positive Base.
func (b Backoff) Delay(attempt int) time.Duration {
	if b.Base <= 0 {
		return 0
	}
	limit := b.Max
	if limit <= 0 {
		limit = math.MaxInt64
	}
	d := min(b.Base, limit)
	for i := 0; i < attempt && d < limit; i++ {
		if d > limit/2 {
			d = limit
			break
		}
		d *= 2
	}
	j := min(max(b.Jitter, 0), 1)
	if j == 0 {
		return d
	}
	rnd := b.Rand
	if rnd == nil {
		rnd = rand.Float64
	}
	return d - time.Duration(j*rnd()*float64(d))
}

// Sleep waits for d or until ctx is done, whichever comes first, and returns ctx.Err() when ctx
// ended the wait (or had already ended it: a non-positive d still reports a cancelled ctx, so a
// retry loop that was told to hurry still stops). The timer is stopped on return.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
