package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
)

// queueChannel is the LISTEN/NOTIFY channel Enqueue notifies with the direction of new jobs,
// so that workers of every bridge process sharing the database wake at once instead of at
// their next idle poll.
const queueChannel = "bridge_queue"

// Listen calls wake with the direction of every batch of new jobs any process enqueues, until
// ctx is cancelled. It holds one connection of the pool for LISTEN and reconnects with backoff
// when it breaks; a notification lost while reconnecting only delays work until the workers'
// idle poll. It returns nil when ctx is cancelled.
func (s *Store) Listen(ctx context.Context, wake func(bridge.Direction)) error {
	return s.listenLoop(ctx, queueChannel, "queue", func() {
		// Jobs may have been enqueued while no one listened.
		wake(bridge.In)
		wake(bridge.Out)
	}, func(payload string) {
		// "in" or "out", then the notifying Store's name; a bridge before that sent the
		// direction alone.
		d, from, _ := strings.Cut(payload, " ")
		if dir := bridge.Direction(d); (dir == bridge.In || dir == bridge.Out) && from != s.self {
			wake(dir)
		}
	})
}

// listenLoop LISTENs on channel and hands every notification's payload to notify until ctx is
// cancelled (then it returns nil), reconnecting with backoff and jitter when the connection
// breaks. connected runs after each successful LISTEN, for what may have been missed meanwhile.
func (s *Store) listenLoop(ctx context.Context, channel, what string, connected func(), notify func(payload string)) error {
	for attempt := 0; ; attempt++ {
		err := s.listenOnce(ctx, channel, func() { attempt = 0; connected() }, notify)
		if ctx.Err() != nil {
			return nil
		}
		d := min(100*time.Millisecond<<min(attempt, 8), 10*time.Second)
		d += time.Duration(rand.Int64N(int64(d)/2 + 1))
		s.logger.Warn(what+" notifications interrupted, reconnecting", zap.Int("attempt", attempt), zap.Duration("sleep", d), zap.Error(err))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, channel string, connected func(), notify func(payload string)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection for %s notifications: %w", channel, err)
	}
	// A connection that was LISTENing must not go back to the pool.
	pc := conn.Hijack()
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = pc.Close(closeCtx)
	}()
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen for %s notifications: %w", channel, err)
	}
	connected()
	for {
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for %s notification: %w", channel, err)
		}
		notify(n.Payload)
	}
}

// JobPayload returns the payload of the job with this dedup key, or bridge.ErrNotFound. Done
// and failed jobs keep their payload, so the core can compare an agent's edit with what it
// sent.
func (s *Store) JobPayload(ctx context.Context, dir bridge.Direction, dedup string) (json.RawMessage, error) {
	var p []byte
	err := s.pool.QueryRow(ctx, `SELECT payload FROM queue WHERE direction = $1 AND dedup = $2`,
		string(dir), dedup).Scan(&p)
	if err != nil {
		return nil, fmt.Errorf("payload of %s job %q: %w", dir, dedup, notFound(err))
	}
	return p, nil
}

// Cursors returns every cursor whose name starts with prefix, ordered by name.
func (s *Store) Cursors(ctx context.Context, prefix string) ([]bridge.Cursor, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, position FROM cursors WHERE starts_with(name, $1) ORDER BY name`, prefix)
	if err != nil {
		return nil, fmt.Errorf("cursors %q: %w", prefix, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (bridge.Cursor, error) {
		var c bridge.Cursor
		err := r.Scan(&c.Name, &c.Position)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("cursors %q: %w", prefix, err)
	}
	return out, nil
}

// ExtendLease keeps a running job leased for another lease from now, so a worker busy with a
// long send keeps it while a crashed worker's job is taken over soon. Only the holder of l
// may: it returns an error wrapping bridge.ErrLeaseLost when the job was taken over or is no
// longer running, and bridge.ErrNotFound when it does not exist.
func (s *Store) ExtendLease(ctx context.Context, l bridge.JobLease, lease time.Duration) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE queue SET locked_until = now() + $3::bigint * interval '1 microsecond'
		WHERE id = $1 AND attempts = $2 AND state = 'running'`, l.ID, l.Attempts, lease.Microseconds())
	if err == nil && tag.RowsAffected() == 0 {
		err = s.whyUnchanged(ctx, l.ID)
	}
	if err != nil {
		return fmt.Errorf("extend lease of job %d: %w", l.ID, err)
	}
	return nil
}
