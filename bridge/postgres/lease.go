package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onechat/onechat-bridge/bridge"
)

// staleInstanceAge is how long after its last heartbeat expired an instance's row is kept (for
// an operator reading the table) before a heartbeat of another instance deletes it.
const staleInstanceAge = time.Hour

// AcquireLeases takes or renews, for holder and for ttl from the database's now, every named
// lease that is free, expired, released, or already holder's, and returns the names holder now
// holds. Concurrent callers are serialised by the rows' locks: of two instances racing for a
// free lease, exactly one gets it. Names are locked in sorted order so that two callers asking
// for overlapping sets cannot deadlock.
func (s *Store) AcquireLeases(ctx context.Context, holder string, names []string, ttl time.Duration) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if holder == "" || ttl <= 0 {
		return nil, fmt.Errorf("acquire leases: empty holder or ttl %s", ttl)
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	rows, err := s.pool.Query(ctx, `
		INSERT INTO leases AS l (name, holder, expires_at, acquired_at)
		SELECT n, $1, now() + make_interval(secs => $3), now()
		  FROM unnest($2::text[]) WITH ORDINALITY AS u(n, i)
		 ORDER BY i
		ON CONFLICT (name) DO UPDATE
		   SET holder = EXCLUDED.holder,
		       expires_at = EXCLUDED.expires_at,
		       acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now()
		                          THEN l.acquired_at ELSE now() END
		 WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
		RETURNING name`, holder, sorted, ttl.Seconds())
	if err != nil {
		return nil, fmt.Errorf("acquire leases: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("acquire leases: %w", err)
	}
	return got, nil
}

// ReleaseLeases expires holder's leases of these names at once.
func (s *Store) ReleaseLeases(ctx context.Context, holder string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `
		UPDATE leases SET expires_at = now()
		 WHERE holder = $1 AND name = ANY($2) AND expires_at > now()`, holder, names)
	if err != nil {
		return fmt.Errorf("release leases: %w", err)
	}
	return nil
}

// Leases returns the leases held now whose name starts with prefix, ordered by name.
func (s *Store) Leases(ctx context.Context, prefix string) ([]bridge.Lease, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT name, holder, acquired_at, expires_at FROM leases
		 WHERE expires_at > now() AND starts_with(name, $1)
		 ORDER BY name`, prefix)
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (bridge.Lease, error) {
		var l bridge.Lease
		err := r.Scan(&l.Name, &l.Holder, &l.AcquiredAt, &l.Expires)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	return out, nil
}

// Heartbeat records that instance is alive for ttl and returns every live instance, sorted. It
// also deletes the rows of instances that have been dead for staleInstanceAge.
func (s *Store) Heartbeat(ctx context.Context, instance string, ttl time.Duration) ([]string, error) {
	if instance == "" || ttl <= 0 {
		return nil, fmt.Errorf("heartbeat: empty instance or ttl %s", ttl)
	}
	// The statement's snapshot does not see the row the CTE writes, hence the UNION.
	rows, err := s.pool.Query(ctx, `
		WITH beat AS (
		    INSERT INTO instances (id, expires_at) VALUES ($1, now() + make_interval(secs => $2))
		    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at
		    RETURNING id
		), gone AS (
		    DELETE FROM instances WHERE expires_at < now() - make_interval(secs => $3)
		)
		SELECT id FROM instances WHERE expires_at > now() AND id <> $1
		UNION
		SELECT id FROM beat
		ORDER BY 1`, instance, ttl.Seconds(), staleInstanceAge.Seconds())
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	live, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	return live, nil
}

// Leave deletes instance's heartbeat and releases its leases, in one transaction, so that the
// other instances rebalance at their next renewal instead of waiting for expiry.
func (s *Store) Leave(ctx context.Context, instance string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM instances WHERE id = $1`, instance); err != nil {
			return fmt.Errorf("leave: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE leases SET expires_at = now() WHERE holder = $1 AND expires_at > now()`, instance); err != nil {
			return fmt.Errorf("leave: %w", err)
		}
		return nil
	})
}
