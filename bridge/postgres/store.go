// Package postgres implements bridge.Store on PostgreSQL with pgx/v5. It is the only package of
// the bridge that writes SQL.
//
// Several bridge processes may share one database: the queue hands each job to one worker at a
// time with FOR UPDATE SKIP LOCKED, and migrations are serialised by a Postgres advisory lock.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/migrations"
)

// Store is the bridge's durable state in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	logger *zap.Logger
	// notified is when an enqueue last sent each direction's NOTIFY (unix nanoseconds; in,
	// then out); see shouldNotify.
	notified [2]atomic.Int64
	// self names this Store in its NOTIFYs ("in self"), so that Listen ignores its own: the
	// process that enqueued wakes its workers itself, and only for jobs it did not hand them.
	self string
}

var _ bridge.Store = (*Store)(nil)

// Open connects to the database at databaseURL (a postgres:// URL or a key=value string) and
// checks that it answers, so that a wrong URL fails at start-up rather than at the first message.
// It does not migrate; call Migrate. Errors never contain the database password.
func Open(ctx context.Context, databaseURL string, logger *zap.Logger) (*Store, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// The parse error may quote the URL; pgx masks passwords only on a best-effort basis,
		// so the error is rebuilt from redacted text and the original is not wrapped.
		return nil, fmt.Errorf("parse database url: %s", redact(err.Error(), databaseURL))
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "onechat-bridge"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %s", redact(err.Error(), databaseURL))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s on %s: %w",
			cfg.ConnConfig.Database, cfg.ConnConfig.Host, redactErr(err, cfg.ConnConfig.Password))
	}
	logger.Info("database connected",
		zap.String("host", cfg.ConnConfig.Host),
		zap.Uint16("port", cfg.ConnConfig.Port),
		zap.String("database", cfg.ConnConfig.Database))
	return &Store{pool: pool, logger: logger, self: strconv.FormatUint(rand.Uint64(), 36)}, nil
}

// Close closes every connection. It waits for connections in use to be released.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers; /readyz uses it.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Stat returns connection pool statistics for metrics.
func (s *Store) Stat() *pgxpool.Stat { return s.pool.Stat() }

// migrationLockPeriod (seconds) and migrationLockAttempts bound how Migrate waits for the
// advisory lock while another instance migrates: at most five minutes, polled every second (not
// goose's default five) so that a waiting instance starts soon after the other one finishes.
const (
	migrationLockPeriod   = 1
	migrationLockAttempts = 300
)

// Migrate applies the pending migrations from the migrations package. Applying them again is a
// no-op. Instances that start together are serialised by a session-level advisory lock, so only
// one of them runs each migration.
func (s *Store) Migrate(ctx context.Context) error {
	db := stdlib.OpenDBFromPool(s.pool) // closing db leaves the pool open
	defer db.Close()

	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(migrationLockPeriod, migrationLockAttempts))
	if err != nil {
		return fmt.Errorf("migrate: create locker: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	results, err := provider.Up(ctx)
	for _, r := range results {
		if r.Error != nil {
			continue
		}
		s.logger.Info("migration applied",
			zap.Int64("version", r.Source.Version),
			zap.String("file", r.Source.Path),
			zap.Duration("took", r.Duration))
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction and commits it when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// notFound turns pgx.ErrNoRows into bridge.ErrNotFound so that callers never import pgx.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return bridge.ErrNotFound
	}
	return err
}

var (
	// urlUserinfo matches the userinfo of a URL, up to the last '@' before the path, even when
	// the URL is too malformed for net/url.
	urlUserinfo = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@`)
	// kvPassword matches password=… in a key=value connection string, quoted or not.
	kvPassword = regexp.MustCompile(`(?i)\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]+)`)
)

// redact removes every password found in dsn from msg. It is deliberately generous: it masks
// both the raw and the URL-decoded forms, and the whole userinfo of a malformed URL.
func redact(msg, dsn string) string {
	var secrets []string
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, pw)
		}
	}
	if m := urlUserinfo.FindStringSubmatch(dsn); m != nil {
		if _, pw, ok := strings.Cut(m[1], ":"); ok {
			secrets = append(secrets, pw)
			if dec, err := url.PathUnescape(pw); err == nil {
				secrets = append(secrets, dec)
			}
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(dsn, -1) {
		secrets = append(secrets, m[1], strings.Trim(m[1], "'"))
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}

// redactErr returns err unchanged unless its text contains password, in which case it returns
// a new error with the password masked (the original cannot be wrapped without leaking it).
func redactErr(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "xxxxx"))
}
