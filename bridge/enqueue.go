package bridge

import (
	"context"
	"sync"
	"time"
)

// A group takes at most maxEnqueueGroup enqueues and, unless its first enqueue alone has more,
// maxEnqueueGroupJobs jobs: its transaction holds an advisory lock per queue key, and
// Postgres's lock table is shared by every session.
const (
	maxEnqueueGroup     = 64
	maxEnqueueGroupJobs = 256
)

// enqueueGroup commits concurrent enqueues together (group commit): catch-ups of different
// conversations, the Telegram poller and the Discord gateway each enqueue on their own, and one
// transaction per enqueue would cost Postgres a commit and several statements for every agent
// message when every message is alone in its conversation. No goroutine of its own runs it: the
// first caller that finds no commit in progress leads, commits what is pending (its own call
// included), and hands the lead to the first call that arrived meanwhile. A call returns when
// its jobs are committed or failed to be.
type enqueueGroup struct {
	store Store
	// hands, by dirIndex, give fresh heads to this process's idle workers (see handoff).
	hands   [2]*handoff
	lease   time.Duration
	metrics *Metrics
	// wake, by dirIndex, wakes this process's dispatchers after a commit that stored jobs
	// their workers were not handed.
	wake [2]*signal

	mu      sync.Mutex
	busy    bool // a leader is committing
	pending []*enqueueCall
}

type enqueueCall struct {
	batch JobBatch
	n     int
	err   error
	// done receives true when the call was committed (n and err are set), false when its
	// caller is to lead the next group.
	done chan bool
}

// enqueue stores the jobs and moves the cursor in one transaction, shared with other calls,
// and returns how many of the jobs were new. The commit is bounded by commitTimeout, not by
// ctx (whose values it keeps): the other calls in a group wait for it, and one caller's
// cancellation must not fail their jobs. So a call returns within about commitTimeout of its
// group's turn even when ctx is done; at shutdown that means its jobs are stored or not, never
// half.
func (g *enqueueGroup) enqueue(ctx context.Context, b JobBatch) (int, error) {
	call := &enqueueCall{batch: b, done: make(chan bool, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, call)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	if !lead {
		if committed := <-call.done; committed {
			return call.n, call.err
		}
	}
	g.lead(ctx)
	return call.n, call.err
}

// commitTimeout bounds a group's commit; it must not be cut short by its leader's shutdown,
// since the other calls in it wait for it.
const commitTimeout = 10 * time.Second

// lead commits the pending calls (its own first), then hands the lead on or ends it.
func (g *enqueueGroup) lead(ctx context.Context) {
	g.mu.Lock()
	k, jobs := 1, len(g.pending[0].batch.Jobs)
	for ; k < min(len(g.pending), maxEnqueueGroup); k++ {
		if jobs += len(g.pending[k].batch.Jobs); jobs > maxEnqueueGroupJobs {
			break
		}
	}
	group := g.pending[:k:k]
	g.pending = g.pending[k:]
	g.mu.Unlock()

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	batches := make([]JobBatch, len(group))
	for i, c := range group {
		batches[i] = c.batch
	}
	take, release := g.reserve(batches)
	sent := time.Now()
	n, taken, err := g.store.EnqueueBatch(cctx, batches, take)
	release(taken, sent)
	g.wakeFor(batches, taken)
	if err != nil && len(group) > 1 {
		// One call's bad job must not fail the others: each alone.
		for _, c := range group {
			var n []int
			if n, _, c.err = g.store.EnqueueBatch(cctx, []JobBatch{c.batch}, Take{}); c.err == nil {
				c.n = n[0]
			}
		}
	} else {
		for i, c := range group {
			if c.err = err; err == nil {
				c.n = n[i]
			}
		}
	}
	for _, c := range group[1:] {
		c.done <- true
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) == 0 {
		g.busy = false
		return
	}
	g.pending[0].done <- false
}

// wakeFor wakes the dispatcher of each direction that has jobs in batches, unless the enqueue
// handed every one of them to a worker: a claim would find nothing for it.
func (g *enqueueGroup) wakeFor(batches []JobBatch, taken []Job) {
	var jobs, got [2]int
	for _, b := range batches {
		for _, j := range b.Jobs {
			jobs[dirIndex(j.Direction)]++
		}
	}
	for _, j := range taken {
		got[dirIndex(j.Direction)]++
	}
	for di, w := range g.wake {
		if jobs[di] > got[di] && w != nil {
			w.notify()
		}
	}
}

// handoff lets an enqueue hand fresh heads straight to idle workers of its direction, leased in
// the enqueue's own transaction (Take), instead of waking the dispatcher to claim them: a
// message alone in its conversation then costs no claim. An enqueue reserves idle workers by
// taking their tokens from free before it commits; after the commit it sends each job it took
// to one of them and gives back the tokens of jobs it did not get (duplicates, keys with
// earlier work, a failed commit). Reservations hold mu for reading; the dispatcher's exit holds
// it for writing to close the hand-off, so no job is sent once the workers may be leaving.
type handoff struct {
	mu   sync.RWMutex
	open bool
	free chan struct{}
	jobs chan<- Job
}

func (h *handoff) start(jobs chan<- Job, free chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open, h.jobs, h.free = true, jobs, free
}

// stop closes the hand-off once every reservation has handed its jobs over.
func (h *handoff) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open = false
}

// reserve takes, per direction, an idle worker's token for each key's first job in batches (the
// jobs that may become heads), as many as there are idle workers, and names those jobs in take.
// release must be called after the enqueue, with what it took: it hands those jobs to the
// reserved workers and gives the other tokens back.
func (g *enqueueGroup) reserve(batches []JobBatch) (take Take, release func(taken []Job, sent time.Time)) {
	var held [2]int
	var locked [2]bool
	for di, d := range []Direction{In, Out} {
		h := g.hands[di]
		if h == nil || !hasDirection(batches, d) {
			continue
		}
		h.mu.RLock()
		locked[di] = true
		if !h.open {
			continue
		}
		seen := make(map[string]bool)
	reserve:
		for _, b := range batches {
			for _, j := range b.Jobs {
				if j.Direction != d || seen[j.Key] {
					continue
				}
				seen[j.Key] = true
				select {
				case <-h.free:
				default:
					break reserve // no idle worker left
				}
				held[di]++
				if take.Dedups == nil {
					take.Dedups, take.Lease = make(map[Direction][]string, 2), g.lease
				}
				take.Dedups[d] = append(take.Dedups[d], j.Dedup)
			}
		}
	}
	return take, func(taken []Job, sent time.Time) {
		for _, j := range taken {
			di := dirIndex(j.Direction)
			if held[di] == 0 {
				continue // cannot happen: the store takes only jobs named in take, each once
			}
			held[di]--
			j.leasedFrom = sent
			g.metrics.startedJobs(j.Direction, StartedByEnqueue, 1)
			g.hands[di].jobs <- j
		}
		for di, h := range g.hands {
			for range held[di] {
				h.free <- struct{}{}
			}
			if locked[di] {
				h.mu.RUnlock()
			}
		}
	}
}

func hasDirection(batches []JobBatch, d Direction) bool {
	for _, b := range batches {
		for _, j := range b.Jobs {
			if j.Direction == d {
				return true
			}
		}
	}
	return false
}
