package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDatabaseURL names the Postgres server the rig creates its databases on; scripts/test.sh
// sets it. Without it, a trust-auth server on 127.0.0.1:5432 is assumed.
const EnvDatabaseURL = "BRIDGE_TEST_DATABASE_URL"

// ServerURL returns the Postgres server to create databases on.
func ServerURL() string {
	if u := os.Getenv(EnvDatabaseURL); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// CreateDatabase creates an empty database with a random name on server and returns its URL and
// a function that drops it (with any connections still open to it).
func CreateDatabase(ctx context.Context, server string) (string, func(context.Context) error, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("%s must be a postgres:// URL", EnvDatabaseURL)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "bridge_e2e_" + hex.EncodeToString(b)
	if err := execOn(ctx, server, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, err
	}
	drop := func(ctx context.Context) error {
		return execOn(ctx, server, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

func execOn(ctx context.Context, server, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		u, _ := url.Parse(server)
		return fmt.Errorf("cannot reach the test PostgreSQL server %s (run the tests with scripts/test.sh or set %s): %w",
			u.Redacted(), EnvDatabaseURL, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// PGProxy forwards TCP connections to a Postgres server, so a test can kill every connection
// the bridge holds (as a failover or an idle-connection reaper does) without touching the
// server.
type PGProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	cuts   int
}

// NewPGProxy listens on 127.0.0.1 and forwards to target (host:port).
func NewPGProxy(target string) (*PGProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &PGProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's host:port.
func (p *PGProxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection through the proxy; new ones are accepted as before.
func (p *PGProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cuts++
	for c := range p.conns {
		_ = c.Close()
	}
}

// Cuts returns how many times Cut was called.
func (p *PGProxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// Close stops the proxy and waits for its goroutines.
func (p *PGProxy) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *PGProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *PGProxy) untrack(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *PGProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *PGProxy) serve(c net.Conn) {
	defer p.untrack(c)
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(up, c); _ = up.Close() })
	_, _ = io.Copy(c, up)
	_ = c.Close()
	wg.Wait()
}
