// Package pgtest gives tests a fresh, private PostgreSQL database on a real server.
//
// The server is named by BRIDGE_TEST_DATABASE_URL and defaults to a trust-auth Postgres on
// 127.0.0.1:5432; scripts/test.sh finds or starts one and sets the variable. Tests fail, rather
// than skip, when no server answers: a silently skipped store test hides real breakage.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/onechat/onechat-bridge/bridge/postgres"
)

// EnvURL is the environment variable naming the test server (any database on it; pgtest only
// uses it to create and drop databases).
const EnvURL = "BRIDGE_TEST_DATABASE_URL"

// DefaultURL is the test server used when EnvURL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// connectTimeout bounds how long a test waits for the server before failing.
const connectTimeout = 10 * time.Second

// ServerURL returns the URL of the test server: EnvURL, or DefaultURL.
func ServerURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// NewDatabaseURL creates an empty database with a random name on the test server and returns
// its URL. The database is dropped, with any connections still open to it, when the test ends.
// The test fails when the server cannot be reached.
func NewDatabaseURL(t testing.TB) string {
	t.Helper()
	server := ServerURL()
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s must be a postgres:// URL", EnvURL)
	}

	name := "bridgetest_" + randomHex(8)
	exec(t, server, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() {
		exec(t, server, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})

	u.Path = "/" + name
	return u.String()
}

// NewStore opens a migrated store on a fresh database (see NewDatabaseURL), logging to t. It is
// closed when the test ends, before its database is dropped.
func NewStore(t testing.TB) *postgres.Store {
	t.Helper()
	dbURL := NewDatabaseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	s, err := postgres.Open(ctx, dbURL, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("pgtest: open store: %v", err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	return s
}

// exec runs one statement on the server in its own connection. CREATE and DROP DATABASE cannot
// run in a transaction, which rules out a pool's conveniences anyway.
func exec(t testing.TB, server, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("pgtest: cannot reach the test PostgreSQL server (%s): %v\n"+
			"Run the tests with scripts/test.sh, which finds or starts a server, or set %s "+
			"to a server where user postgres may create databases.",
			redactedURL(server), err, EnvURL)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// redactedURL hides the password of a server URL for messages.
func redactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "unparsable " + EnvURL
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
