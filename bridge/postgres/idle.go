package postgres

import (
	"context"
	"time"

	"github.com/onechat/onechat-bridge/bridge"
)

// idleCondition is true for a customer whose contact session is idle: its current conversation
// was resolved (or vanished) before $1, or it never got one and the customer has not changed
// since $1. The bridge holds cable subscriptions only for customers that are not idle.
const idleCondition = `(
	(v.id IS NOT NULL AND v.status IN ('resolved', 'gone') AND v.updated_at < $1)
	OR (v.id IS NULL AND c.updated_at < $1))`

// IdleCustomers returns, of the customers whose cable token is in tokens, those that went idle
// before `before`. The bridge asks about the tokens it holds, a page at a time, so neither the
// query nor its answer grows with the users that went idle long ago.
func (s *Store) IdleCustomers(ctx context.Context, before time.Time, tokens []string) ([]bridge.Customer, error) {
	if len(tokens) == 0 {
		return nil, nil
	}
	return s.listCustomers(ctx, "idle customers",
		selectCustomer+` WHERE c.pubsub_token = ANY($2::text[]) AND c.pubsub_token <> '' AND `+idleCondition+` ORDER BY c.id`, before, tokens)
}

// ActiveCustomers returns the customers with a contact session that were not idle at `since`.
func (s *Store) ActiveCustomers(ctx context.Context, since time.Time) ([]bridge.Customer, error) {
	return s.listCustomers(ctx, "active customers",
		selectCustomer+` WHERE c.pubsub_token <> '' AND NOT `+idleCondition+` ORDER BY c.id`, since)
}
