package bridge

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// idleLoop unsubscribes, every IdleSweep, the cable subscriptions of customers whose
// conversation has been resolved for IdleAfter, so the cable pool holds only active
// conversations. A user who writes again is subscribed again (ensureContact), and the
// subscription's confirmation brings the usual catch-up.
func (c *Core) idleLoop(ctx context.Context) error {
	t := time.NewTicker(c.opts.IdleSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		idle, err := c.store.IdleCustomers(ctx, time.Now().Add(-c.opts.IdleAfter))
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("list idle customers", zap.Error(err))
			}
			continue
		}
		// A user who just wrote may be between subscribing and getting a new conversation,
		// when the listing still sees the resolved one: leave recently wanted tokens alone.
		recent := time.Now().Add(-max(2*c.opts.IdleSweep, 5*time.Second))
		c.wantedMu.Lock()
		for tok, at := range c.wanted {
			if at.Before(recent) {
				delete(c.wanted, tok)
			}
		}
		for _, cu := range idle {
			if _, ok := c.wanted[cu.PubsubToken]; !ok {
				c.cable.Unsubscribe(cu.PubsubToken)
			}
		}
		c.wantedMu.Unlock()
		if len(idle) > 0 {
			c.log.Debug("unsubscribed idle customers", zap.Int("customers", len(idle)))
		}
	}
}

// subscribe subscribes the cable to a customer's token because the customer is active now.
func (c *Core) subscribe(token string) {
	c.wantedMu.Lock()
	c.wanted[token] = time.Now()
	c.wantedMu.Unlock()
	c.cable.Subscribe(token)
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
