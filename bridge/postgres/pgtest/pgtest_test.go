package pgtest_test

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
)

func TestNewDatabaseURLCreatesAndDrops(t *testing.T) {
	t.Parallel()
	var dbURL string
	t.Run("use", func(t *testing.T) {
		dbURL = pgtest.NewDatabaseURL(t)
		conn, err := pgx.Connect(t.Context(), dbURL)
		if err != nil {
			t.Fatalf("connect to new database: %v", err)
		}
		// An open connection must not stop the drop at cleanup.
		t.Cleanup(func() { conn.Close(context.Background()) })
		var n int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("new database has %d tables, want 0", n)
		}
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")

	conn, err := pgx.Connect(t.Context(), pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestNewStoreIsMigrated(t *testing.T) {
	t.Parallel()
	s := pgtest.NewStore(t)
	if n, err := s.Cursor(t.Context(), "telegram.update_offset"); err != nil || n != "" {
		t.Fatalf("Cursor on a fresh store = %q, %v; want \"\", nil", n, err)
	}
}

// fatalTB records Fatalf instead of failing the real test, and stops the calling goroutine as
// testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestUnreachableServerFailsClearly(t *testing.T) {
	t.Setenv(pgtest.EnvURL, "postgres://postgres:hunter2secret@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		pgtest.NewDatabaseURL(f)
	}()
	<-done
	if f.msg == "" {
		t.Fatal("NewDatabaseURL did not fail without a server")
	}
	for _, want := range []string{"cannot reach", "scripts/test.sh", pgtest.EnvURL} {
		if !strings.Contains(f.msg, want) {
			t.Errorf("failure message %q does not mention %q", f.msg, want)
		}
	}
	if strings.Contains(f.msg, "hunter2secret") {
		t.Errorf("failure message leaks the password: %q", f.msg)
	}
}
