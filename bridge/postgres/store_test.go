package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
)

func TestMigrateTwiceIsNoOp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabaseURL(t)
	s, err := postgres.Open(ctx, dbURL, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	version := schemaVersion(t, dbURL)
	if version < 1 {
		t.Fatalf("schema version after Migrate = %d", version)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if v := schemaVersion(t, dbURL); v != version {
		t.Errorf("second Migrate moved the version from %d to %d", version, v)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// TestConcurrentMigrate starts two instances on one empty database at once, as two bridge
// containers would: the advisory lock must let exactly one of them create the schema.
func TestConcurrentMigrate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabaseURL(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		s, err := postgres.Open(ctx, dbURL, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		wg.Go(func() { errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: Migrate: %v", i, err)
		}
	}
	if v := schemaVersion(t, dbURL); v < 1 {
		t.Errorf("schema version = %d", v)
	}
}

func schemaVersion(t *testing.T, dbURL string) int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v int64
	if err := conn.QueryRow(t.Context(), `SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM goose_db_version WHERE version_id = $1`, v).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("version %d recorded %d times", v, n)
	}
	return v
}

func TestOpenErrorsHideThePassword(t *testing.T) {
	t.Parallel()
	const pw = "s3cretPassw0rd"
	for _, dsn := range []string{
		"postgres://bridge:" + pw + "@127.0.0.1:1/bridge?sslmode=disable&connect_timeout=2",
		"postgres://bridge:" + pw + "@127.0.0.1:notaport/bridge",
		"postgres://bridge:" + pw + "@[::1/bridge",
		"postgres://bridge:" + pw + "%zz@127.0.0.1/bridge",
		"postgres://bridge:" + pw + "@127.0.0.1/bridge?sslmode=bogus",
		"host=127.0.0.1 port=1 user=bridge password=" + pw + " dbname=bridge sslmode=disable connect_timeout=2",
		"host=127.0.0.1 port=nope user=bridge password='" + pw + "' dbname=bridge",
		"host=127.0.0.1 user=bridge password=" + pw + " dbname=bridge sslmode=bogus",
	} {
		s, err := postgres.Open(t.Context(), dsn, zaptest.NewLogger(t))
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", strings.ReplaceAll(dsn, pw, "…"))
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("Open error leaks the password: %v", err)
		}
	}
}
