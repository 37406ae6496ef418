package retry_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/adapters/retry"
)

// fixed returns a random source that always yields v.
func fixed(v float64) func() float64 { return func() float64 { return v } }

func TestBackoffDelay(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name    string
		b       retry.Backoff
		attempt int
		want    time.Duration
	}{
		{"first attempt is base", retry.Backoff{Base: 100 * ms, Max: time.Second}, 0, 100 * ms},
		{"doubles", retry.Backoff{Base: 100 * ms, Max: time.Second}, 3, 800 * ms},
		{"capped", retry.Backoff{Base: 100 * ms, Max: time.Second}, 4, time.Second},
		{"capped far out", retry.Backoff{Base: 100 * ms, Max: time.Second}, 1 << 30, time.Second},
		{"base above max", retry.Backoff{Base: 2 * time.Second, Max: time.Second}, 0, time.Second},
		{"no cap never overflows", retry.Backoff{Base: time.Second}, 200, math.MaxInt64},
		{"no base", retry.Backoff{Max: time.Second}, 5, 0},
		{"negative attempt is the first", retry.Backoff{Base: 100 * ms, Max: time.Second}, -1, 100 * ms},
		{"jitter drawn at 0 keeps all", retry.Backoff{Base: 100 * ms, Max: time.Second, Jitter: 0.5, Rand: fixed(0)}, 1, 200 * ms},
		{"jitter drawn at 0.5", retry.Backoff{Base: 100 * ms, Max: time.Second, Jitter: 0.5, Rand: fixed(0.5)}, 1, 150 * ms},
		{"jitter applies after the cap", retry.Backoff{Base: 100 * ms, Max: time.Second, Jitter: 0.5, Rand: fixed(0.5)}, 9, 750 * ms},
		{"full jitter", retry.Backoff{Base: 100 * ms, Max: time.Second, Jitter: 1, Rand: fixed(0.25)}, 0, 75 * ms},
		{"jitter above 1 is clamped", retry.Backoff{Base: 100 * ms, Max: time.Second, Jitter: 7, Rand: fixed(0.25)}, 0, 75 * ms},
		{"negative jitter is none", retry.Backoff{Base: 100 * ms, Max: time.Second, Jitter: -1, Rand: fixed(0.25)}, 0, 100 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.b.Delay(tc.attempt); got != tc.want {
				t.Errorf("Delay(%d) = %s, want %s", tc.attempt, got, tc.want)
			}
		})
	}
}

// TestBackoffDelayBounds draws from a seeded source: every delay stays in (d·(1-Jitter), d].
func TestBackoffDelayBounds(t *testing.T) {
	b := retry.Backoff{Base: time.Second, Max: time.Minute, Jitter: 0.5, Rand: rand.New(rand.NewPCG(1, 2)).Float64}
	for attempt := range 12 {
		d := min(time.Second<<attempt, time.Minute)
		for range 100 {
			got := b.Delay(attempt)
			if got <= d/2 || got > d {
				t.Fatalf("Delay(%d) = %s, want in (%s, %s]", attempt, got, d/2, d)
			}
		}
	}
}

func TestSleep(t *testing.T) {
	t.Run("elapses", func(t *testing.T) {
		if err := retry.Sleep(context.Background(), time.Nanosecond); err != nil {
			t.Fatalf("Sleep = %v, want nil", err)
		}
	})
	t.Run("no wait on a live context", func(t *testing.T) {
		if err := retry.Sleep(context.Background(), 0); err != nil {
			t.Fatalf("Sleep = %v, want nil", err)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, d := range []time.Duration{-time.Second, 0, time.Hour} {
			if err := retry.Sleep(ctx, d); !errors.Is(err, context.Canceled) {
				t.Errorf("Sleep(%s) = %v, want context.Canceled", d, err)
			}
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- retry.Sleep(ctx, time.Hour) }()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep = %v, want context.Canceled", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Sleep = %v, want context.DeadlineExceeded", err)
		}
	})
}

func ExampleBackoff() {
	b := retry.Backoff{Base: 500 * time.Millisecond, Max: 4 * time.Second, Jitter: 0.5, Rand: func() float64 { return 0 }}
	for attempt := range 6 {
		fmt.Println(attempt, b.Delay(attempt))
	}
	// Output:
	// 0 500ms
	// 1 1s
	// 2 2s
	// 3 4s
	// 4 4s
	// 5 4s
}
