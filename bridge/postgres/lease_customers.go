package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/onechat/onechat-bridge/bridge"
)

// customerChannel is the LISTEN/NOTIFY channel AnnounceCustomer notifies with a customer id,
// so that the instance holding the customer's cable partition subscribes its token at once.
const customerChannel = "bridge_customer"

// PartitionCustomers returns the customers with a cable token whose id modulo partitions is in
// which and that were not idle at activeSince (the condition ActiveCustomers uses), in id order:
// those with an id above afterID, at most limit of them (0: all).
func (s *Store) PartitionCustomers(ctx context.Context, partitions int, which []int, activeSince time.Time, afterID int64, limit int) ([]bridge.Customer, error) {
	if partitions <= 0 {
		return nil, fmt.Errorf("partition customers: %d partitions", partitions)
	}
	if len(which) == 0 {
		return nil, nil
	}
	parts := make([]int64, len(which))
	for i, p := range which {
		parts[i] = int64(p)
	}
	var lim *int64 // LIMIT NULL: no limit
	if limit > 0 {
		l := int64(limit)
		lim = &l
	}
	return s.listCustomers(ctx, "partition customers", selectCustomer+`
		WHERE c.pubsub_token <> '' AND NOT `+idleCondition+`
		  AND c.id % $2 = ANY($3::bigint[]) AND c.id > $4
		ORDER BY c.id LIMIT $5`, activeSince, int64(partitions), parts, afterID, lim)
}

// CustomerByID returns the customer with this store id, or bridge.ErrNotFound.
func (s *Store) CustomerByID(ctx context.Context, id int64) (bridge.Customer, error) {
	c, err := scanCustomer(s.pool.QueryRow(ctx, selectCustomer+` WHERE c.id = $1`, id))
	if err != nil {
		return bridge.Customer{}, fmt.Errorf("customer %d: %w", id, err)
	}
	return c, nil
}

// AnnounceCustomer notifies every ListenCustomers of any process sharing the database with the
// customer's id. The payload is the id only: tokens never travel in notifications.
func (s *Store) AnnounceCustomer(ctx context.Context, id int64) error {
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, customerChannel, strconv.FormatInt(id, 10)); err != nil {
		return fmt.Errorf("announce customer %d: %w", id, err)
	}
	return nil
}

// ListenCustomers calls announced with every customer id announced by any process, until ctx
// is cancelled; it returns nil then. It holds one connection of the pool for LISTEN and
// reconnects with backoff when it breaks.
func (s *Store) ListenCustomers(ctx context.Context, announced func(id int64)) error {
	return s.listenLoop(ctx, customerChannel, "customer", func() {}, func(payload string) {
		if id, err := strconv.ParseInt(payload, 10, 64); err == nil {
			announced(id)
		}
	})
}
