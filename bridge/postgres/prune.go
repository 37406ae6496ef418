package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pruneWindow is how many consecutive ids one prune transaction covers, so a sweep never holds
// many row locks or one long transaction.
const pruneWindow = 5000

// Prune deletes the jobs that finished (done or failed) before `before` and the message links
// recorded before it. Payloads hold what users and agents wrote; the links map messages for
// replies, edits and deletes; neither is needed once a conversation has moved on. Unfinished
// jobs are never deleted, however old.
//
// Both tables are walked along their primary key (ids grow with time) in windows of
// pruneWindow ids, each deleted in its own transaction, from the oldest candidate up to the
// first row created at or after `before`, so a sweep reads each old row once and nothing newer.
func (s *Store) Prune(ctx context.Context, before time.Time) (jobs, links int64, err error) {
	return s.prune(ctx, before, pruneWindow)
}

func (s *Store) prune(ctx context.Context, before time.Time, window int64) (jobs, links int64, err error) {
	jobs, err = s.pruneWindows(ctx, before, window,
		`SELECT (SELECT min(id) FROM queue WHERE state IN ('done', 'failed')),
			(SELECT id FROM queue WHERE created_at >= $1 ORDER BY id LIMIT 1),
			(SELECT max(id) + 1 FROM queue)`,
		`DELETE FROM queue WHERE id >= $2 AND id < $3 AND state IN ('done', 'failed') AND done_at < $1`)
	if err != nil {
		return jobs, 0, fmt.Errorf("prune finished messages: %w", err)
	}
	links, err = s.pruneWindows(ctx, before, window,
		`SELECT (SELECT min(id) FROM message_map),
			(SELECT id FROM message_map WHERE created_at >= $1 ORDER BY id LIMIT 1),
			(SELECT max(id) + 1 FROM message_map)`,
		`DELETE FROM message_map WHERE id >= $2 AND id < $3 AND created_at < $1`)
	if err != nil {
		return jobs, links, fmt.Errorf("prune message links: %w", err)
	}
	return jobs, links, nil
}

// pruneWindows reads with bounds ($1 before) the first candidate id, the first id created at or
// after before, and the id after the last; then runs del ($1 before, $2 from, $3 to) over the
// ids in between, window by window. Both run under indexPlans: the bounds are meant to be
// read along the primary key, whatever the statistics say.
func (s *Store) pruneWindows(ctx context.Context, before time.Time, window int64, bounds, del string) (int64, error) {
	var lo, firstNew, end *int64
	b := &pgx.Batch{}
	b.Queue(indexPlans)
	b.Queue(bounds, before).QueryRow(func(row pgx.Row) error { return row.Scan(&lo, &firstNew, &end) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return 0, err
	}
	if lo == nil {
		return 0, nil
	}
	hi := *end
	if firstNew != nil {
		hi = *firstNew
	}
	var n int64
	for from := *lo; from < hi; from += window {
		b := &pgx.Batch{}
		b.Queue(indexPlans)
		b.Queue(del, before, from, min(from+window, hi)).Exec(func(tag pgconn.CommandTag) error {
			n += tag.RowsAffected()
			return nil
		})
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			return n, err
		}
	}
	return n, nil
}
