package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"
)

// signal wakes every goroutine waiting on it. Waiters take the channel before they look for
// work, so a notify between the look and the wait is not lost.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

// wait returns a channel that is closed at the next notify.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

func dirIndex(d Direction) int {
	if d == In {
		return 0
	}
	return 1
}

func jsonMarshal(v any) (json.RawMessage, error) { return json.Marshal(v) }

// jobHandler processes one claimed job. It returns the links to record on success, or an
// error classified with PermanentError and RateLimitedError.
type jobHandler func(ctx context.Context, j *Job) ([]MessageLink, error)

// work claims and runs jobs of one direction until claimCtx is cancelled. Jobs run under
// jobCtx, which outlives claimCtx by the shutdown grace so in-flight messages can finish.
func (c *Core) work(claimCtx, jobCtx context.Context, dir Direction, h jobHandler) {
	wake := c.wake[dirIndex(dir)]
	lease := c.opts.Lease
	for claimCtx.Err() == nil {
		woken := wake.wait()
		job, err := c.store.Claim(claimCtx, dir, lease)
		if err != nil {
			if claimCtx.Err() != nil {
				return
			}
			c.log.Warn("claim failed", zap.String("direction", string(dir)), zap.Error(err))
			sleepCtx(claimCtx, c.opts.MinBackoff)
			continue
		}
		if job == nil {
			c.idle(claimCtx, dir, woken)
			continue
		}
		c.run(jobCtx, dir, job, h)
		// Another job of the same key may be due now that this one is finished.
		wake.notify()
	}
}

// idle waits until the queue is signalled, the next retry is due, or the idle poll passes.
func (c *Core) idle(ctx context.Context, dir Direction, woken <-chan struct{}) {
	d := c.opts.IdlePoll
	if at, ok, err := c.store.NextDue(ctx, dir); err == nil && ok {
		if until := time.Until(at); until < d {
			d = max(until, time.Millisecond)
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-woken:
	case <-t.C:
	}
}

// run executes one attempt of job and records the result.
func (c *Core) run(ctx context.Context, dir Direction, job *Job, h jobHandler) {
	log := c.log.With(zap.String("direction", string(dir)), zap.Int64("job", job.ID), zap.String("key", job.Key))
	attemptCtx, cancel := context.WithTimeout(ctx, c.opts.JobTimeout)
	// The lease is short, so a crashed worker's message is taken over soon; while this
	// attempt runs, the lease is renewed.
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(c.opts.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-attemptCtx.Done():
				return
			case <-t.C:
				if err := c.store.ExtendLease(attemptCtx, job.ID, c.opts.Lease); err != nil && attemptCtx.Err() == nil {
					log.Warn("could not renew the lease of a running message", zap.Error(err))
				}
			}
		}
	}()
	links, err := h(attemptCtx, job)
	cancel()
	<-renewed
	// Recording the result must not be cut short by shutdown.
	rec, cancelRec := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelRec()
	if err == nil {
		if err := c.store.Complete(rec, job.ID, links...); err != nil {
			log.Error("record delivered message", zap.Error(err))
		}
		c.opts.Metrics.delivered(dir, job)
		return
	}
	var perm *PermanentError
	var rl *RateLimitedError
	switch {
	case ctx.Err() != nil:
		// Shutdown cut the attempt short: hand the job back. It counts as an attempt, because
		// the message may have reached the other side, which the next attempt checks first.
		log.Info("returning in-flight message to the queue at shutdown")
		c.retry(rec, log, job, time.Now(), true, "interrupted by shutdown")
	case errors.As(err, &perm):
		log.Warn("message failed permanently", zap.String("reason", perm.Reason), zap.Error(err))
		c.opts.Metrics.failed(dir, job, perm.Unreachable)
		if err := c.store.Fail(rec, job.ID, perm.Error()); err != nil {
			log.Error("record failed message", zap.Error(err))
		}
		if perm.Unreachable {
			c.markUnreachable(rec, job, perm.Reason)
		}
	case errors.As(err, &rl):
		log.Info("rate limited", zap.Duration("retry_after", rl.RetryAfter))
		c.opts.Metrics.rateLimited(dir, job, rl.RetryAfter)
		c.retry(rec, log, job, time.Now().Add(rl.RetryAfter), false, err.Error())
	default:
		attempt := job.Attempts + 1
		if dir == Out && attempt >= c.opts.MaxOutboundAttempts {
			log.Error("giving up on message", zap.Int("attempts", attempt), zap.Error(err))
			c.opts.Metrics.failed(dir, job, false)
			if err := c.store.Fail(rec, job.ID, "gave up: "+err.Error()); err != nil {
				log.Error("record failed message", zap.Error(err))
			}
			return
		}
		delay := c.backoff(attempt)
		log.Warn("message attempt failed, will retry", zap.Int("attempt", attempt), zap.Duration("sleep", delay), zap.Error(err))
		c.opts.Metrics.retried(dir, job)
		c.retry(rec, log, job, time.Now().Add(delay), true, err.Error())
	}
}

func (c *Core) retry(ctx context.Context, log *zap.Logger, job *Job, at time.Time, count bool, reason string) {
	if err := c.store.Retry(ctx, job.ID, at, count, reason); err != nil {
		log.Error("reschedule message", zap.Error(err))
	}
}

// backoff is exponential from MinBackoff, capped at MaxBackoff, with ±25% jitter.
func (c *Core) backoff(attempt int) time.Duration {
	d := c.opts.MinBackoff
	for i := 1; i < attempt && d < c.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxBackoff)
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return d + jitter
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
