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
	n, err := g.store.EnqueueBatch(cctx, batches)
	if err != nil && len(group) > 1 {
		// One call's bad job must not fail the others: each alone.
		for _, c := range group {
			var n []int
			if n, c.err = g.store.EnqueueBatch(cctx, []JobBatch{c.batch}); c.err == nil {
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
