package bridge

import (
	"context"
	"time"
)

// Enqueue queues b as the core's own enqueues do: together with any other enqueue running at
// the same time (enqueue.go).
func (c *Core) Enqueue(ctx context.Context, b JobBatch) (int, error) {
	return c.enqueues.enqueue(ctx, b)
}

// UserEntries counts what the core keeps in memory per user, by where it keeps it, for tests
// that check it forgets idle users.
func (c *Core) UserEntries() map[string]int {
	out := map[string]int{}
	c.wantedMu.Lock()
	out["wanted tokens"] = len(c.wanted)
	c.wantedMu.Unlock()
	c.languagesMu.Lock()
	out["languages"] = len(c.languages)
	c.languagesMu.Unlock()
	c.contactAttrsMu.Lock()
	out["contact attributes"] = len(c.contactAttrs)
	c.contactAttrsMu.Unlock()
	c.blocks.mu.Lock()
	out["blocked flags"] = len(c.blocks.contact)
	c.blocks.mu.Unlock()
	c.catchupMu.Lock()
	out["catch-ups"] = len(c.catchupPending) + len(c.catchupBusy) + len(c.statusPending) + len(c.refresh)
	c.catchupMu.Unlock()
	c.roles.mu.Lock()
	for _, tokens := range c.roles.parts {
		out["partition tokens"] += len(tokens)
	}
	c.roles.mu.Unlock()
	out["cable subscriptions"] = len(c.cable.Tokens())
	return out
}

// SweepIdle runs one idle sweep as if it were now.
func (c *Core) SweepIdle(ctx context.Context, now time.Time) { c.sweepIdle(ctx, now) }

// CatchupsIdle reports whether no catch-up is scheduled or running.
func (c *Core) CatchupsIdle() bool {
	c.catchupMu.Lock()
	defer c.catchupMu.Unlock()
	return len(c.catchupPending) == 0 && len(c.catchupBusy) == 0
}
