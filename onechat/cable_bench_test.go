package onechat

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// benchServerEnv makes the test binary a lean ActionCable server (TestCableBenchServer). The
// benchmark runs its server in a child process so that the heap it measures is the client's
// alone, and uses a lean server rather than onechattest because 50,000 contacts through the
// fake's REST routes (with HMAC, presence and event bookkeeping per subscribe) would measure
// the fake, not the cable.
const benchServerEnv = "ONECHAT_CABLE_BENCH_SERVER"

// TestCableBenchServer is the child process of BenchmarkCableSubscriptions, not a test: it does
// nothing unless benchServerEnv is set, as in os/exec's TestHelperProcess. It serves /cable
// (welcome, pings every 3 s, a confirm for every subscribe) and POST /restart (disconnect
// server_restart on every socket, then close), prints its address, and exits when stdin closes.
func TestCableBenchServer(t *testing.T) {
	if os.Getenv(benchServerEnv) != "1" {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[*websocket.Conn]bool{}
	mux := http.NewServeMux()
	mux.HandleFunc("/cable", func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocolV1}})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(1 << 20)
		mu.Lock()
		conns[ws] = true
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(conns, ws)
			mu.Unlock()
		}()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		send := func(b []byte) error {
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			defer wcancel()
			return ws.Write(wctx, websocket.MessageText, b)
		}
		_ = send([]byte(`{"type":"welcome"}`))
		var pinger sync.WaitGroup
		pinger.Go(func() {
			tk := time.NewTicker(3 * time.Second)
			defer tk.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-tk.C:
					_ = send(fmt.Appendf(nil, `{"type":"ping","message":%d}`, now.Unix()))
				}
			}
		})
		defer pinger.Wait()
		defer cancel()
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var cmd struct{ Command, Identifier string }
			if json.Unmarshal(b, &cmd) != nil || cmd.Command != "subscribe" {
				continue
			}
			id, _ := json.Marshal(cmd.Identifier)
			if send(fmt.Appendf(nil, `{"identifier":%s,"type":"confirm_subscription"}`, id)) != nil {
				return
			}
		}
	})
	mux.HandleFunc("/restart", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		all := make([]*websocket.Conn, 0, len(conns))
		for ws := range conns {
			all = append(all, ws)
		}
		mu.Unlock()
		for _, ws := range all {
			ctx, cancel := context.WithTimeout(r.Context(), time.Second)
			_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"disconnect","reason":"server_restart","reconnect":true}`))
			cancel()
			_ = ws.CloseNow()
		}
	})
	srv := &http.Server{Handler: mux}
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); _ = srv.Close() }()
	fmt.Printf("%s\n", ln.Addr())
	_ = srv.Serve(ln)
}

// startBenchServer runs the lean server in a child process and returns its address.
func startBenchServer(b *testing.B) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCableBenchServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), benchServerEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }() // the child's "PASS"; ends when it exits
	return strings.TrimSpace(addr)
}

// countingHandler signals when the number of confirmations reaches a target.
type countingHandler struct {
	confirmed atomic.Int64
	target    atomic.Int64
	reached   chan struct{}
}

func (h *countingHandler) CableEvent(context.Context, Event) {}

func (h *countingHandler) CableConfirmed(context.Context, string) {
	if h.confirmed.Add(1) == h.target.Load() {
		h.reached <- struct{}{}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkCableSubscriptions holds 10,000 and 50,000 subscriptions with the default options
// (500 per socket, 50 subscribes/s per socket) against a lean ActionCable server, and reports
// the client's heap per idle subscription, the time to confirm all, the time to re-confirm all
// after the server restarts every socket, and the goroutines held. It fails when a target is
// missed: 3 KB per subscription, 60 s to re-confirm, no goroutine per subscription. Run it
// with -benchtime=1x (each size takes about half a minute).
func BenchmarkCableSubscriptions(b *testing.B) {
	for _, n := range []int{10_000, 50_000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			for b.Loop() {
				benchCable(b, n)
			}
		})
	}
}

func benchCable(b *testing.B, n int) {
	addr := startBenchServer(b)
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("%024d", i) // the length of a real pubsub token
	}
	goroutines0 := runtime.NumGoroutine()
	heap0 := heapInUse()

	h := &countingHandler{reached: make(chan struct{}, 1)}
	h.target.Store(int64(n))
	c := NewCable("ws://"+addr+"/cable", h, nil)
	for _, tok := range tokens {
		c.Subscribe(tok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run = %v", err)
		}
	}()
	wait := func(what string) time.Duration {
		select {
		case <-h.reached:
			return time.Since(start)
		case err := <-done:
			b.Fatalf("Run returned %v before %s", err, what)
		case <-time.After(3 * time.Minute):
			b.Fatalf("%s: %d of %d confirmed after 3 min", what, h.confirmed.Load()-h.target.Load()+int64(n), n)
		}
		return 0
	}
	confirmAll := wait("confirm all")

	perSub := float64(heapInUse()-heap0) / float64(n)
	goroutines := runtime.NumGoroutine() - goroutines0
	st := c.Stats()

	h.target.Store(int64(2 * n))
	start = time.Now()
	resp, err := http.Post("http://"+addr+"/restart", "text/plain", nil)
	if err != nil {
		b.Fatal(err)
	}
	_ = resp.Body.Close()
	reconfirmAll := wait("re-confirm all after restart")

	b.ReportMetric(perSub, "B/sub")
	b.ReportMetric(confirmAll.Seconds(), "s-confirm-all")
	b.ReportMetric(reconfirmAll.Seconds(), "s-reconfirm-all")
	b.ReportMetric(float64(st.Sockets), "sockets")
	b.ReportMetric(float64(goroutines), "goroutines")
	if perSub > 3<<10 {
		b.Errorf("%.0f B per idle subscription, target 3 KB", perSub)
	}
	if reconfirmAll > time.Minute {
		b.Errorf("re-confirming %d took %s, target 60 s", n, reconfirmAll)
	}
	if goroutines > 2*st.Sockets+10 {
		b.Errorf("%d goroutines for %d sockets: more than the owner and reader of each", goroutines, st.Sockets)
	}
	if st.Confirmed != n || !st.Connected {
		b.Errorf("stats = %+v", st)
	}
}
