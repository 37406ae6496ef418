package bridge

import (
	"context"
	"runtime/debug"
	"slices"
	"time"

	"go.uber.org/zap"
)

// idleLoop unsubscribes, every IdleSweep, the cable subscriptions of customers whose
// conversation has been resolved for IdleAfter, so the cable pool holds only active
// conversations, and forgets what the core remembers of users idle that long. A user who
// writes again is subscribed again (ensureContact), and the subscription's confirmation brings
// the usual catch-up.
func (c *Core) idleLoop(ctx context.Context) error {
	t := time.NewTicker(c.opts.IdleSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		c.sweepIdle(ctx, time.Now())
	}
}

// customerPage is how many customers one listing of the store brings into memory at once
// (the idle among the subscribed tokens, a partition's active customers): with tens of
// thousands of users, a listing of them all is a heap peak that the process keeps.
const customerPage = 1000

// freeOSMemoryAfter is how many subscriptions one sweep must drop before the core hands the
// freed memory back to the OS at once (debug.FreeOSMemory: a garbage collection and a return
// of every free page, some milliseconds of CPU). Go's own scavenger would take tens of minutes
// to return what a sweep of 45,000 subscriptions frees.
const freeOSMemoryAfter = 1000

// sweepIdle is one pass of idleLoop, as of now. It asks the store which of the tokens the
// cable holds belong to idle customers, a page at a time, so it costs what the subscriptions
// cost, not what every user ever seen would.
func (c *Core) sweepIdle(ctx context.Context, now time.Time) {
	// A user who just wrote may be between subscribing and getting a new conversation, when
	// the listing still sees the resolved one: leave recently wanted tokens alone.
	recent := now.Add(-max(2*c.opts.IdleSweep, 5*time.Second))
	c.wantedMu.Lock()
	for tok, at := range c.wanted {
		if at.Before(recent) {
			delete(c.wanted, tok)
		}
	}
	c.wanted = resized(c.wanted)
	c.wantedMu.Unlock()

	before := now.Add(-c.opts.IdleAfter)
	dropped := 0
	for page := range slices.Chunk(c.cable.Tokens(), customerPage) {
		idle, err := c.store.IdleCustomers(ctx, before, page)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("list idle customers", zap.Error(err))
			}
			return
		}
		dropped += c.roles.dropIdle(idle)
	}
	c.roles.resize()
	c.forgetIdleUsers(now)
	if dropped > 0 {
		c.log.Debug("unsubscribed idle customers", zap.Int("customers", dropped))
	}
	if dropped >= freeOSMemoryAfter {
		debug.FreeOSMemory()
	}
}

// subscribe subscribes the cable to a customer's token because the customer is active now,
// marking it wanted so that the idle sweep leaves it alone for two sweeps. The caller holds
// the role manager's lock (track), which orders it with the sweep's dropIdle.
func (c *Core) subscribe(token string) {
	c.wantedMu.Lock()
	c.wanted[token] = time.Now()
	c.wantedMu.Unlock()
	c.cable.Subscribe(token)
}

// wantedNow reports whether the token was marked wanted since the last sweep's cut-off.
func (c *Core) wantedNow(token string) bool {
	c.wantedMu.Lock()
	defer c.wantedMu.Unlock()
	_, ok := c.wanted[token]
	return ok
}

// pruneLoop deletes, at start and every PruneEvery, the finished messages and message links
// older than Retention. Every instance sweeps; sweeps that meet delete each row once.
func (c *Core) pruneLoop(ctx context.Context) error {
	if c.opts.Retention < 0 {
		return nil
	}
	t := time.NewTicker(c.opts.PruneEvery)
	defer t.Stop()
	for {
		jobs, links, err := c.store.Prune(ctx, time.Now().Add(-c.opts.Retention))
		switch {
		case err != nil && ctx.Err() == nil:
			c.log.Warn("retention sweep failed; the next one tries again", zap.Error(err))
		case jobs > 0 || links > 0:
			c.log.Info("deleted finished messages and message links past retention",
				zap.Int64("messages", jobs), zap.Int64("links", links), zap.Duration("retention", c.opts.Retention))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
