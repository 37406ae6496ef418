package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// testDBPassword is put in DATABASE_URL so the tests can look for it in logs and output. The
// test server uses trust authentication, which ignores it.
const testDBPassword = "db-password-never-logged"

// gate sits in front of a fake server: down makes it answer 503 to everything (the server is
// gone), hangSends makes Bot API send calls hang until the client gives up.
type gate struct {
	down      atomic.Bool
	hangSends atomic.Bool
	held      atomic.Int32 // send calls hanging right now
}

func (g *gate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		if g.hangSends.Load() && strings.HasSuffix(r.URL.Path, "/sendMessage") {
			// The server notices a client that gave up only once the body is read.
			_, _ = io.Copy(io.Discard, r.Body)
			g.held.Add(1)
			defer g.held.Add(-1)
			<-r.Context().Done()
			return
		}
		h.ServeHTTP(w, r)
	})
}

// tcpProxy forwards TCP connections to the Postgres test server, so a test can take the
// database away (every connection cut, new ones refused) and bring it back.
type tcpProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	dbURL  *url.URL

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newTCPProxy(t *testing.T, dbURL string) *tcpProxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, ln: ln, target: u.Host, dbURL: u, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// url is the database URL through the proxy, with password as the user's password.
func (p *tcpProxy) url(password string) string {
	u := *p.dbURL
	u.Host = p.ln.Addr().String()
	user := "postgres"
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

func (p *tcpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *tcpProxy) serve(c net.Conn) {
	defer func() {
		c.Close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	defer func() {
		up.Close()
		p.mu.Lock()
		delete(p.conns, up)
		p.mu.Unlock()
	}()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); up.Close(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); c.Close(); done <- struct{}{} }()
	<-done
	<-done
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// setDown takes the database away (true) or brings it back (false).
func (p *tcpProxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.cut()
	}
}

// adminAddr gives the world a fixed admin address and returns it.
func (w *world) adminAddr() string {
	w.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w.cfg.AdminAddr = addr
	return addr
}

func get(ctx context.Context, addr, path string) (int, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// poll calls cond every 20 ms until it is true or ctx ends: the way a prober or Prometheus
// would look at the admin listener. It returns the last description cond gave.
func poll(ctx context.Context, cond func() (bool, string)) (bool, string) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, desc := cond()
		if ok {
			return true, desc
		}
		select {
		case <-ctx.Done():
			return false, desc
		case <-tick.C:
		}
	}
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)

// metric returns the value of the sample of name whose labels include every "k=v" given, and
// whether there is one. Several matches are summed.
func metric(body, name string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		m := sampleLine.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != name {
			continue
		}
		match := true
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if !strings.Contains(m[2], k+`="`+v+`"`) {
				match = false
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// execSQL runs one statement on the database at dbURL.
func execSQL(t *testing.T, dbURL, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatal(err)
	}
}
