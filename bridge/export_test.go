package bridge

import "context"

// Enqueue queues b as the core's own enqueues do: together with any other enqueue running at
// the same time (enqueue.go).
func (c *Core) Enqueue(ctx context.Context, b JobBatch) (int, error) {
	return c.enqueues.enqueue(ctx, b)
}
