package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/migrations"
)

// QueueStats describes the unfinished jobs of one queue direction.
type QueueStats struct {
	Direction bridge.Direction
	// Pending jobs wait for a worker (or for their retry time); Running jobs are claimed.
	Pending, Running int
	// OldestAge is how long the oldest unfinished (pending or running) job has been in the
	// queue, by the database's clock; 0 when there is none. A growing age with a steady depth
	// means a key is stuck behind a message that keeps failing.
	OldestAge time.Duration
}

// Stats is a snapshot of the store for metrics. It is not part of bridge.Store: only the
// command that serves /metrics needs it.
type Stats struct {
	// Queue has one entry per direction, In first, even when that direction is empty.
	Queue []QueueStats
	// Unreachable counts the customers currently marked unreachable, by platform.
	Unreachable map[bridge.Platform]int
}

// Stats counts the unfinished queue rows per direction and the unreachable customers. The
// queue part reads only the partial index of unfinished rows, so it stays cheap however much
// finished history the table holds.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{
		Queue:       []QueueStats{{Direction: bridge.In}, {Direction: bridge.Out}},
		Unreachable: map[bridge.Platform]int{},
	}
	rows, err := s.pool.Query(ctx, `
		SELECT direction,
		       count(*) FILTER (WHERE state = 'pending'),
		       count(*) FILTER (WHERE state = 'running'),
		       COALESCE(extract(epoch FROM now() - min(created_at)), 0)::float8
		FROM queue
		WHERE state IN ('pending', 'running')
		GROUP BY direction`)
	if err != nil {
		return st, fmt.Errorf("queue stats: %w", err)
	}
	for rows.Next() {
		var dir string
		var q QueueStats
		var age float64
		if err := rows.Scan(&dir, &q.Pending, &q.Running, &age); err != nil {
			rows.Close()
			return st, fmt.Errorf("queue stats: %w", err)
		}
		q.Direction = bridge.Direction(dir)
		q.OldestAge = time.Duration(max(age, 0) * float64(time.Second))
		for i := range st.Queue {
			if st.Queue[i].Direction == q.Direction {
				st.Queue[i] = q
			}
		}
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("queue stats: %w", err)
	}

	rows, err = s.pool.Query(ctx, `
		SELECT platform, count(*) FROM customers WHERE unreachable_reason <> '' GROUP BY platform`)
	if err != nil {
		return st, fmt.Errorf("unreachable stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			return st, fmt.Errorf("unreachable stats: %w", err)
		}
		st.Unreachable[bridge.Platform(p)] = n
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("unreachable stats: %w", err)
	}
	return st, nil
}

// MigrationStatus reports the schema version the database is at (0 when it was never migrated)
// and the newest version this binary carries, for `bridge check`. It only reads: it neither
// migrates nor creates goose's version table.
func (s *Store) MigrationStatus(ctx context.Context) (current, latest int64, err error) {
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return 0, 0, fmt.Errorf("migration status: %w", err)
	}
	for _, f := range files {
		v, err := goose.NumericComponent(f)
		if err != nil {
			return 0, 0, fmt.Errorf("migration status: %s: %w", f, err)
		}
		latest = max(latest, v)
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, latest, fmt.Errorf("migration status: %w", err)
	}
	if !exists {
		return 0, latest, nil
	}
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&current); err != nil {
		return 0, latest, fmt.Errorf("migration status: %w", err)
	}
	return current, latest, nil
}
