package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
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
// error classified with PermanentError and RateLimitedError, with the links of what it
// delivered before the failure (recorded when the job is retried).
type jobHandler func(ctx context.Context, j *Job) ([]MessageLink, error)

// maxClaimBatch bounds how many jobs one claim takes (at most the idle workers).
const maxClaimBatch = 64

// maxCompleteBatch bounds how many delivered jobs one transaction records.
const maxCompleteBatch = 256

// work runs the queue of one direction with n workers until claimCtx is cancelled. One
// dispatcher claims, in one statement, as many jobs as workers are idle and hands them out; one
// recorder commits the workers' delivered jobs together, so that the commits per message do not
// grow with the load. Jobs run under jobCtx, which outlives claimCtx by the shutdown grace so
// in-flight messages can finish; work returns when every worker has finished and its result is
// recorded.
func (c *Core) work(claimCtx, jobCtx context.Context, dir Direction, n int, h jobHandler) {
	jobs := make(chan Job)
	// free holds one token per idle worker.
	free := make(chan struct{}, n)
	rec := newRecorder(c, dir, claimCtx)
	var recDone sync.WaitGroup
	recDone.Go(rec.run)
	var workers sync.WaitGroup
	for range n {
		free <- struct{}{}
		workers.Go(func() {
			for job := range jobs {
				// A worker goes on with the next job of its key that its completion took.
				for j := &job; j != nil; {
					j = c.run(jobCtx, dir, j, h, rec)
				}
				free <- struct{}{}
			}
		})
	}
	hand := c.enqueues.hands[dirIndex(dir)]
	hand.start(jobs, free)
	c.dispatch(claimCtx, dir, jobs, free)
	hand.stop()
	close(jobs)
	workers.Wait()
	rec.close()
	recDone.Wait()
}

// dispatch claims jobs for the idle workers until ctx is cancelled.
func (c *Core) dispatch(ctx context.Context, dir Direction, jobs chan<- Job, free chan struct{}) {
	wake := c.wake[dirIndex(dir)]
	idle := 0
	for ctx.Err() == nil {
		if idle == 0 {
			select {
			case <-ctx.Done():
				return
			case <-free:
				idle++
			}
		}
	take:
		for idle < maxClaimBatch {
			select {
			case <-free:
				idle++
			default:
				break take
			}
		}
		woken := wake.wait()
		sent := time.Now()
		got, err := c.store.ClaimBatch(ctx, dir, c.opts.Lease, idle)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("claim failed", zap.String("direction", string(dir)), zap.Error(err))
			sleepCtx(ctx, c.opts.MinBackoff)
			continue
		}
		c.opts.Metrics.startedJobs(dir, StartedByClaim, len(got))
		// Every job goes to an idle worker, so handing them out does not wait for long.
		for _, j := range got {
			j.leasedFrom = sent
			jobs <- j
		}
		idle -= len(got)
		if len(got) == 0 {
			// Idle workers are put back while the dispatcher waits, so that an enqueue can hand
			// them fresh jobs (handoff); it takes them again when it wakes.
			for ; idle > 0; idle-- {
				free <- struct{}{}
			}
			c.idle(ctx, dir, woken)
		}
	}
}

// recorder commits delivered jobs for the workers of one direction: a worker hands its
// result over and waits until it is committed; results that arrive while a commit runs go
// into the next one together. Until claiming ends, each completion also takes its key's next
// job when that is due (Completion.Next), so a user's burst runs without a claim per message.
type recorder struct {
	c     *Core
	dir   Direction
	in    chan recording
	stop  chan struct{}
	claim context.Context
}

type recording struct {
	done Completion
	res  chan recorded
}

// recorded is the result of a completion: the key's next job it took, if any.
type recorded struct {
	next *Job
	err  error
}

func newRecorder(c *Core, dir Direction, claim context.Context) *recorder {
	return &recorder{c: c, dir: dir, in: make(chan recording, maxCompleteBatch), stop: make(chan struct{}), claim: claim}
}

// complete records the delivered job and returns once it is committed (or failed to be, or
// refused with ErrLeaseLost), with the key's next job when the completion took it: the caller
// must run that one.
func (r *recorder) complete(job *Job, links []MessageLink) (*Job, error) {
	res := make(chan recorded, 1)
	done := Completion{Lease: job.Lease(), Links: links, Direction: job.Direction, Key: job.Key}
	if r.claim.Err() == nil {
		done.Next = r.c.opts.Lease
	}
	r.in <- recording{done: done, res: res}
	got := <-res
	return got.next, got.err
}

// close ends run once every recording handed over before it is committed. Callers must not
// call complete after close.
func (r *recorder) close() { close(r.stop) }

func (r *recorder) run() {
	batch := make([]recording, 0, maxCompleteBatch)
	for {
		select {
		case first := <-r.in:
			batch = append(batch[:0], first)
		case <-r.stop:
			return
		}
	more:
		for len(batch) < maxCompleteBatch {
			select {
			case next := <-r.in:
				batch = append(batch, next)
			default:
				break more
			}
		}
		r.commit(batch)
	}
}

// commit records the batch. Recording must not be cut short by shutdown, so it has its own
// deadline. If the batch fails as a whole, each job is tried alone, so one bad job cannot
// keep the others unrecorded (and sent again after their leases expire).
func (r *recorder) commit(batch []recording) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make([]Completion, len(batch))
	for i, b := range batch {
		done[i] = b.done
	}
	sent := time.Now()
	refused, next, err := r.c.store.CompleteBatch(ctx, done)
	switch {
	case err != nil && len(batch) > 1:
		for _, b := range batch {
			b.res <- r.commitOne(ctx, b.done)
		}
	case err != nil:
		batch[0].res <- recorded{err: err}
	default:
		r.c.opts.Metrics.startedJobs(r.dir, StartedByCompletion, len(next))
		// A key has one completion in a batch (only its head runs), and so at most one next
		// job: that goes to the worker that finished the key's previous one. Jobs the
		// completion claimed besides go to the other workers that asked, one each.
		byKey := make(map[string]*Job, len(next))
		for i := range next {
			next[i].leasedFrom = sent
			byKey[next[i].Key] = &next[i]
		}
		res := make([]recorded, len(batch))
		for i, b := range batch {
			if slices.Contains(refused, i) {
				res[i].err = fmt.Errorf("complete job %d: %w", b.done.Lease.ID, ErrLeaseLost)
			}
			if j, ok := byKey[b.done.Key]; ok {
				res[i].next = j
				delete(byKey, b.done.Key)
			}
		}
		for i, b := range batch {
			if len(byKey) == 0 {
				break
			}
			if res[i].next != nil || b.done.Next <= 0 {
				continue
			}
			for k, j := range byKey {
				res[i].next = j
				delete(byKey, k)
				break
			}
		}
		// The store returns at most one job per completion that asked, so none is left; were one
		// left, its lease runs out and a claim takes it over like a dead worker's.
		for _, j := range byKey {
			r.c.log.Error("a completion took a job no worker asked for; it runs when its lease expires",
				zap.String("direction", string(r.dir)), zap.Int64("job", j.ID))
		}
		for i, b := range batch {
			b.res <- res[i]
		}
	}
	// The next job of each key is its head now. A completion with a Next lease took it already
	// (a key's next job is always due: only a head waits for a retry), so the dispatcher need
	// not look for it.
	for i, b := range batch {
		if err != nil || b.done.Next <= 0 || slices.Contains(refused, i) {
			r.c.wake[dirIndex(r.dir)].notify()
			break
		}
	}
}

func (r *recorder) commitOne(ctx context.Context, done Completion) recorded {
	sent := time.Now()
	refused, next, err := r.c.store.CompleteBatch(ctx, []Completion{done})
	if err == nil && len(refused) > 0 {
		err = fmt.Errorf("complete job %d: %w", done.Lease.ID, ErrLeaseLost)
	}
	var j *Job
	if len(next) > 0 {
		j = &next[0]
		j.leasedFrom = sent
		r.c.opts.Metrics.startedJobs(r.dir, StartedByCompletion, 1)
	}
	return recorded{next: j, err: err}
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

// errLeaseUnconfirmed ends an attempt whose lease could not be renewed in time: the store
// may hand the job to another worker soon, so this one must not act on it any more.
var errLeaseUnconfirmed = errors.New("the message's lease could not be renewed in time")

// run executes one attempt of job and records the result. It returns the key's next job when
// the completion took it; the caller runs it next.
//
// A job is held under a lease that expires unless renewed, so that a crashed worker's message
// is taken over soon. While the attempt runs and until its result is recorded, the lease is
// renewed every third of it. A worker acts on the job only while it knows it holds it: the
// attempt is cancelled when the store says the job was taken over, and when no renewal
// succeeded for two thirds of a lease (the store's lease runs from no earlier than the
// renewal was sent). The last third is the margin in which a request cut short lands
// before anyone else may take the job and check what reached the other side.
func (c *Core) run(ctx context.Context, dir Direction, job *Job, h jobHandler, results *recorder) (next *Job) {
	log := c.log.With(zap.String("direction", string(dir)), zap.Int64("job", job.ID), zap.String("key", job.Key))
	timeoutCtx, cancel := context.WithTimeout(ctx, c.opts.JobTimeout)
	defer cancel()
	attemptCtx, stopAttempt := context.WithCancelCause(timeoutCtx)
	defer stopAttempt(nil)
	leaseCtx, stopLease := context.WithCancel(context.WithoutCancel(ctx))
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		c.keepLease(leaseCtx, log, job, stopAttempt)
	}()
	defer func() {
		stopLease()
		<-renewed
	}()
	links, err := h(attemptCtx, job)
	lost := context.Cause(attemptCtx)
	cancel()
	// Recording the result must not be cut short by shutdown.
	rec, cancelRec := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelRec()
	if err == nil {
		next, err := results.complete(job, links)
		switch {
		case errors.Is(err, ErrLeaseLost):
			// Another worker holds the message now; it checks what reached the other side
			// before it sends anything.
			log.Warn("message delivered after its lease passed to another worker; that one records it", zap.Error(err))
			c.opts.Metrics.lostLease(dir, LeaseTakenOver)
		case err != nil:
			log.Error("record delivered message", zap.Error(err))
		default:
			c.opts.Metrics.delivered(dir, job)
			if len(job.leftOut) > 0 {
				c.tellLeftOut(rec, job, job.leftOut)
			}
		}
		return next
	}
	if errors.Is(lost, ErrLeaseLost) {
		log.Warn("stopped a message another worker took over", zap.Error(err))
		c.opts.Metrics.lostLease(dir, LeaseTakenOver)
		return
	}
	// A failed job moves its key on to the next one; a retried one may be due again soon.
	defer c.wake[dirIndex(dir)].notify()
	if errors.Is(lost, errLeaseUnconfirmed) {
		// However the cut-short attempt classified its failure, it says nothing about the
		// message: try again (the next attempt checks what reached the other side).
		c.opts.Metrics.lostLease(dir, LeaseNotRenewed)
		c.opts.Metrics.retried(dir, job)
		delay := c.backoff(job.Attempts + 1)
		log.Warn("attempt stopped because its lease could not be renewed, will retry", zap.Duration("sleep", delay), zap.Error(err))
		c.retry(rec, log, job, time.Now().Add(delay), true, fmt.Sprintf("%v (%v)", errLeaseUnconfirmed, err), links)
		return
	}
	var perm *PermanentError
	var rl *RateLimitedError
	var wait *waitError
	switch {
	case ctx.Err() != nil:
		// Shutdown cut the attempt short: hand the job back. It counts as an attempt, because
		// the message may have reached the other side, which the next attempt checks first.
		log.Info("returning in-flight message to the queue at shutdown")
		c.retry(rec, log, job, time.Now(), true, "interrupted by shutdown", links)
	case errors.As(err, &perm):
		if !perm.Blocked {
			log.Warn("message failed permanently", zap.String("reason", perm.Reason), zap.Error(err))
		}
		if perm.Blocked {
			log.Info("message of a blocked contact stored, not posted")
			c.opts.Metrics.blocked(dir, job)
		} else {
			c.opts.Metrics.failed(dir, job, perm.Unreachable)
		}
		if err := c.store.Fail(rec, job.Lease(), perm.Error(), links...); err != nil {
			log.Error("record failed message", zap.Error(err))
		}
		if perm.Unreachable {
			c.markUnreachable(rec, job, perm.Reason)
		}
		if dir == Out {
			c.tellUndelivered(rec, job, perm.Reason, perm.Unreachable)
		}
	case errors.As(err, &wait):
		log.Debug("message waits", zap.String("reason", wait.reason), zap.Duration("retry_after", wait.after))
		c.retry(rec, log, job, time.Now().Add(wait.after), false, wait.reason, links)
	case errors.As(err, &rl):
		log.Info("rate limited", zap.Duration("retry_after", rl.RetryAfter))
		c.opts.Metrics.rateLimited(dir, job, rl.RetryAfter)
		c.retry(rec, log, job, time.Now().Add(rl.RetryAfter), false, err.Error(), links)
	default:
		attempt := job.Attempts + 1
		if dir == Out && attempt >= c.opts.MaxOutboundAttempts {
			log.Error("giving up on message", zap.Int("attempts", attempt), zap.Error(err))
			c.opts.Metrics.failed(dir, job, false)
			if err := c.store.Fail(rec, job.Lease(), "gave up: "+err.Error(), links...); err != nil {
				log.Error("record failed message", zap.Error(err))
			}
			c.tellUndelivered(rec, job, fmt.Sprintf("the bridge gave up after %d attempts (%v)", attempt, err), false)
			return
		}
		delay := c.backoff(attempt)
		log.Warn("message attempt failed, will retry", zap.Int("attempt", attempt), zap.Duration("sleep", delay), zap.Error(err))
		c.opts.Metrics.retried(dir, job)
		c.retry(rec, log, job, time.Now().Add(delay), true, err.Error(), links)
	}
	return nil
}

// retry makes the job pending again, due at `at`, and records the links of the parts the
// attempt delivered (a handler that fails part-way returns them with its error), so the next
// attempt sends only the rest.
func (c *Core) retry(ctx context.Context, log *zap.Logger, job *Job, at time.Time, count bool, reason string, delivered []MessageLink) {
	if err := c.store.Retry(ctx, job.Lease(), at, count, reason, delivered...); errors.Is(err, ErrLeaseLost) {
		log.Warn("another worker took the message over; leaving it to that one", zap.Error(err))
		c.opts.Metrics.lostLease(job.Direction, LeaseTakenOver)
	} else if err != nil {
		log.Error("reschedule message", zap.Error(err))
	}
}

// keepLease renews the lease of job until ctx is cancelled, and calls stop with ErrLeaseLost
// when the store says another worker took the job over, or with errLeaseUnconfirmed when no
// renewal succeeded for two thirds of a lease; see run.
func (c *Core) keepLease(ctx context.Context, log *zap.Logger, job *Job, stop context.CancelCauseFunc) {
	every := c.opts.Lease / 3
	from := job.leasedFrom
	if from.IsZero() {
		from = time.Now()
	}
	held := time.NewTimer(time.Until(from.Add(c.opts.Lease - every)))
	defer held.Stop()
	renew := time.NewTimer(every)
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-held.C:
			log.Warn("the message's lease could not be renewed in time; stopping the attempt")
			stop(errLeaseUnconfirmed)
		case <-renew.C:
			sent := time.Now()
			err := c.store.ExtendLease(ctx, job.Lease(), c.opts.Lease)
			switch {
			case err == nil:
				held.Reset(time.Until(sent.Add(c.opts.Lease - every)))
				renew.Reset(every)
			case errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrNotFound):
				stop(fmt.Errorf("renew: %w", ErrLeaseLost))
				return
			case ctx.Err() != nil:
				return
			default:
				// Try again soon: the lease must not run out over one failed round trip.
				log.Warn("could not renew the lease of a running message", zap.Error(err))
				renew.Reset(every / 4)
			}
		}
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
