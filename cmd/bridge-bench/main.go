// Command bridge-bench measures the real bridge binary against the in-repo fakes on loopback:
// inbound and outbound throughput with many users, added latency at a steady rate, the same
// traffic sent directly to the fakes (the physical limit of the setup), memory and goroutines,
// and the time from a cable restart to every subscription re-confirmed. It prints a Markdown
// table for docs/benchmarks.md. It needs a Postgres server (BRIDGE_TEST_DATABASE_URL, as
// scripts/test.sh provides; default postgres://postgres@127.0.0.1:5432/postgres).
//
//	go run ./cmd/bridge-bench                      # every scenario, about 10 minutes
//	go run ./cmd/bridge-bench -users 100,1000 -window 20s
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/e2e"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

func main() {
	bin := flag.String("bin", "", "bridge binary to measure (default: build ./cmd/bridge)")
	usersFlag := flag.String("users", "100,1000,10000", "active user counts for the throughput runs")
	window := flag.Duration("window", 30*time.Second, "longest a throughput run lasts")
	perRun := flag.Int("messages", 2000, "messages per throughput run (at least one per user)")
	rate := flag.Int("rate", 100, "messages per second of the latency runs")
	latFor := flag.Duration("latency-for", 10*time.Second, "how long each latency run sends")
	flag.Parse()

	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, *bin, *usersFlag, *window, *perRun, *rate, *latFor); err != nil {
		fmt.Fprintln(os.Stderr, "bridge-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, usersFlag string, window time.Duration, perRun, rate int, latFor time.Duration) error {
	if bin == "" {
		dir, err := os.MkdirTemp("", "bridge-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		root, err := e2e.ModuleRoot()
		if err != nil {
			return err
		}
		bin = filepath.Join(dir, "bridge")
		if err := e2e.Build(ctx, root, bin, false); err != nil {
			return err
		}
	}
	var users []int
	for _, s := range strings.Split(usersFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-users: bad count %q", s)
		}
		users = append(users, n)
	}
	b := &bench{bin: bin, window: window, perRun: perRun}

	row("scenario", "users", "messages", "seconds", "msg/s", "p50 ms", "p99 ms", "note")
	row("---", "---", "---", "---", "---", "---", "---", "---")
	if err := b.direct(ctx, rate, latFor); err != nil {
		return err
	}
	for _, n := range users {
		if err := b.inbound(ctx, n); err != nil {
			return err
		}
	}
	for _, n := range users {
		if err := b.outbound(ctx, n); err != nil {
			return err
		}
	}
	return b.latency(ctx, rate, latFor)
}

type bench struct {
	bin    string
	window time.Duration
	perRun int
}

func row(cols ...any) {
	s := make([]string, len(cols))
	for i, c := range cols {
		switch v := c.(type) {
		case float64:
			s[i] = strconv.FormatFloat(v, 'f', 1, 64)
		case time.Duration:
			s[i] = strconv.FormatFloat(v.Seconds()*1000, 'f', 1, 64)
		default:
			s[i] = fmt.Sprint(v)
		}
	}
	fmt.Println("| " + strings.Join(s, " | ") + " |")
}

// env is the bridge's environment for the benchmark: info logs (the admin address is an info line), no OneChat request budget and no
// Telegram pacing, so the figures are the bridge's own limits.
func env(w *e2e.World) []string {
	return w.Env("LOG_LEVEL=info", "TELEGRAM_POLL_TIMEOUT=10s",
		"ONECHAT_REQUESTS_PER_SECOND=-1", "TELEGRAM_PER_CHAT_INTERVAL=1ns", "TELEGRAM_GLOBAL_INTERVAL=1ns")
}

// world starts a world and the bridge in it; stop ends both.
func (b *bench) world(ctx context.Context) (*e2e.World, *e2e.Process, func(), error) {
	w, err := e2e.NewWorld(ctx, e2e.WorldOptions{OneChat: &onechattest.Options{PingInterval: time.Second, MessageFloodLimit: -1}})
	if err != nil {
		return nil, nil, nil, err
	}
	logs := e2e.NewLogs(nil)
	p, err := e2e.Start(ctx, b.bin, env(w), logs)
	if err != nil {
		_ = w.Close()
		return nil, nil, nil, err
	}
	stop := func() {
		_ = p.Stop(30 * time.Second)
		_ = w.Close()
	}
	return w, p, stop, nil
}

func tgUser(i int) telegramtest.User {
	return telegramtest.User{ID: int64(9000000 + i), FirstName: "Bench", LastName: strconv.Itoa(i)}
}

// countIncoming counts the contacts' messages in the fake OneChat.
func countIncoming(oc *onechattest.Server) int {
	n := 0
	for _, c := range oc.Contacts() {
		for _, cv := range oc.Conversations(c.ID) {
			for _, m := range oc.Messages(cv.ID) {
				if m.MessageType == onechattest.MessageIncoming {
					n++
				}
			}
		}
	}
	return n
}

// inbound: n users write perRun messages in all (round robin), queued in Telegram at once;
// the figure is messages in OneChat per second until all arrived or the window ended.
func (b *bench) inbound(ctx context.Context, n int) error {
	w, p, stop, err := b.world(ctx)
	if err != nil {
		return err
	}
	defer stop()
	total := max(b.perRun, n)
	start := time.Now()
	for i := range total {
		w.TG.SendText(tgUser(i%n), "bench "+strconv.Itoa(i))
	}
	wctx, cancel := context.WithTimeout(ctx, b.window)
	defer cancel()
	got := waitCount(wctx, func() int { return countIncoming(w.OC) }, total)
	el := time.Since(start)
	m, _ := p.Scrape(ctx)
	row("bridge inbound (new users)", n, got, el.Seconds(), float64(got)/el.Seconds(), "", "",
		fmt.Sprintf("RSS %.0f MB, %v goroutines, %v subscriptions", m.Value("process_resident_memory_bytes")/1e6, m.Value("go_goroutines"),
			m.Value("bridge_cable_subscriptions", "state", "confirmed")))
	return nil
}

// waitCount polls count every 100 ms (the fake's Wait would re-count on every request) until it
// reaches want or ctx ends, and returns the last count.
func waitCount(ctx context.Context, count func() int, want int) int {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		c := count()
		if c >= want {
			return c
		}
		select {
		case <-ctx.Done():
			return count()
		case <-t.C:
		}
	}
}

// outbound: n users each write once (setup, not timed), then agents reply perRun times in all
// (round robin); the figure is replies in Telegram per second. After it, the cable restarts
// and the time until every subscription is confirmed again is measured.
func (b *bench) outbound(ctx context.Context, n int) error {
	w, p, stop, err := b.world(ctx)
	if err != nil {
		return err
	}
	defer stop()
	for i := range n {
		w.TG.SendText(tgUser(i), "hello")
	}
	setupCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	setupStart := time.Now()
	if got := waitCount(setupCtx, func() int { return countIncoming(w.OC) }, n); got < n {
		row("bridge outbound", n, "-", "-", "-", "", "", fmt.Sprintf("setup: only %d of %d users reached OneChat in 10 min", got, n))
		return nil
	}
	convs := make([]int64, n)
	tokens := make([]string, 0, n)
	for i := range n {
		c, _ := w.OC.ContactByIdentifier("telegram:" + strconv.FormatInt(tgUser(i).ID, 10))
		convs[i] = w.OC.Conversations(c.ID)[0].ID
		for _, ci := range w.OC.ContactInboxes(c.ID) {
			tokens = append(tokens, ci.PubsubToken)
		}
	}
	allSubscribed := func() bool {
		for _, t := range tokens {
			if w.OC.Subscribed(t) == 0 {
				return false
			}
		}
		return true
	}
	if err := w.OC.Wait(setupCtx, allSubscribed); err != nil {
		return fmt.Errorf("outbound %d: subscriptions: %w", n, err)
	}
	setup := time.Since(setupStart)

	total := max(b.perRun, n)
	start := time.Now()
	for i := range total {
		w.OC.AgentReply(convs[i%n], "reply "+strconv.Itoa(i))
	}
	wctx, cancelW := context.WithTimeout(ctx, b.window)
	defer cancelW()
	got := waitCount(wctx, func() int {
		c := 0
		for i := range n {
			c += len(w.TG.Sent(tgUser(i).ID))
		}
		return c
	}, total)
	el := time.Since(start)
	m, _ := p.Scrape(ctx)
	row("bridge outbound", n, got, el.Seconds(), float64(got)/el.Seconds(), "", "",
		fmt.Sprintf("setup %s; RSS %.0f MB, %v goroutines", setup.Round(time.Second), m.Value("process_resident_memory_bytes")/1e6, m.Value("go_goroutines")))

	restart := time.Now()
	w.OC.RestartCable()
	rctx, cancelR := context.WithTimeout(ctx, 5*time.Minute)
	defer cancelR()
	if err := w.OC.Wait(rctx, allSubscribed); err != nil {
		row("cable restart → all re-confirmed", n, "-", "-", "-", "", "", "not within 5 min")
		return nil
	}
	row("cable restart → all re-confirmed", n, len(tokens), time.Since(restart).Seconds(), "", "", "", "subscriptions confirmed again on the fake")
	return nil
}

// latency: 100 users, a steady rate each direction; inbound is timed from the user's send to
// the message's creation in OneChat, outbound from the agent's reply to Telegram's answer to
// the bridge's sendMessage.
func (b *bench) latency(ctx context.Context, rate int, d time.Duration) error {
	w, _, stop, err := b.world(ctx)
	if err != nil {
		return err
	}
	defer stop()
	const n = 100
	for i := range n {
		w.TG.SendText(tgUser(i), "hello")
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if got := waitCount(sctx, func() int { return countIncoming(w.OC) }, n); got < n {
		return fmt.Errorf("latency: setup: %d of %d users", got, n)
	}
	convs := make([]int64, n)
	for i := range n {
		c, _ := w.OC.ContactByIdentifier("telegram:" + strconv.FormatInt(tgUser(i).ID, 10))
		convs[i] = w.OC.Conversations(c.ID)[0].ID
	}

	// Inbound.
	sentAt := map[string]time.Time{}
	total := int(d.Seconds()) * rate
	pace(ctx, rate, total, func(i int) {
		text := "lat in " + strconv.Itoa(i)
		sentAt[text] = time.Now()
		w.TG.SendText(tgUser(i%n), text)
	})
	wctx, cancelW := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelW()
	waitCount(wctx, func() int { return countIncoming(w.OC) }, n+total)
	var in []time.Duration
	for _, c := range w.OC.Contacts() {
		for _, cv := range w.OC.Conversations(c.ID) {
			for _, m := range w.OC.Messages(cv.ID) {
				if t, ok := sentAt[m.Content]; ok {
					in = append(in, m.CreatedAt.Sub(t))
				}
			}
		}
	}
	p50, p99 := pct(in)
	row("bridge inbound latency", n, len(in), d.Seconds(), float64(rate), p50, p99, fmt.Sprintf("%d of %d arrived", len(in), total))

	// Outbound: Telegram's answer times, by text, from the sendMessage requests.
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	w.TGFaults.SetServed(func(r *http.Request, body []byte, at time.Time) {
		if !strings.HasSuffix(r.URL.Path, "/sendMessage") {
			return
		}
		text := formText(r, body)
		mu.Lock()
		arrived[text] = at
		mu.Unlock()
	})
	created := map[string]time.Time{}
	pace(ctx, rate, total, func(i int) {
		text := "lat out " + strconv.Itoa(i)
		m := w.OC.AgentReply(convs[i%n], text)
		created[text] = m.CreatedAt
	})
	waitCount(wctx, func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(arrived)
	}, total)
	var out []time.Duration
	mu.Lock()
	for text, at := range arrived {
		if c, ok := created[text]; ok {
			out = append(out, at.Sub(c))
		}
	}
	mu.Unlock()
	p50, p99 = pct(out)
	row("bridge outbound latency", n, len(out), d.Seconds(), float64(rate), p50, p99, fmt.Sprintf("%d of %d arrived", len(out), total))
	return nil
}

func formText(r *http.Request, body []byte) string {
	var j struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(body, &j) == nil && j.Text != "" {
		return j.Text
	}
	if v, err := url.ParseQuery(string(body)); err == nil {
		return v.Get("text")
	}
	return ""
}

// pace calls f(i) for i < total at rate per second.
func pace(ctx context.Context, rate, total int, f func(i int)) {
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	for i := 0; i < total; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f(i)
	}
}

func pct(ds []time.Duration) (time.Duration, time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)*50/100], ds[min(len(ds)-1, len(ds)*99/100)]
}

// direct: the physical limit — a minimal Client API client (8 at a time, as the bridge has 8
// inbound workers) posting messages to the same fake OneChat, and the same against the fake
// Bot API's sendMessage.
func (b *bench) direct(ctx context.Context, rate int, d time.Duration) error {
	w, err := e2e.NewWorld(ctx, e2e.WorldOptions{OneChat: &onechattest.Options{PingInterval: time.Second, MessageFloodLimit: -1}})
	if err != nil {
		return err
	}
	defer w.Close()
	c := &http.Client{Timeout: 10 * time.Second}
	base := w.OCURL + "/public/api/v1/inboxes/" + w.OC.InboxIdentifier()
	const n = 100
	type conv struct {
		source string
		id     int64
	}
	convs := make([]conv, n)
	for i := range n {
		var ct struct {
			SourceID string `json:"source_id"`
		}
		if err := post(ctx, c, base+"/contacts", map[string]any{"name": "direct " + strconv.Itoa(i)}, &ct); err != nil {
			return fmt.Errorf("direct: create contact: %w", err)
		}
		var cv struct {
			ID int64 `json:"id"`
		}
		if err := post(ctx, c, base+"/contacts/"+ct.SourceID+"/conversations", map[string]any{}, &cv); err != nil {
			return fmt.Errorf("direct: create conversation: %w", err)
		}
		convs[i] = conv{ct.SourceID, cv.ID}
	}
	send := func(i int) error {
		cv := convs[i%n]
		return post(ctx, c, fmt.Sprintf("%s/contacts/%s/conversations/%d/messages", base, cv.source, cv.id),
			map[string]any{"content": "direct " + strconv.Itoa(i)}, nil)
	}
	total := b.perRun
	el, err := parallel(ctx, 8, total, send)
	if err != nil {
		return err
	}
	row("direct Client API client → fake OneChat", n, total, el.Seconds(), float64(total)/el.Seconds(), "", "", "8 concurrent")

	var lat []time.Duration
	pace(ctx, rate, int(d.Seconds())*rate, func(i int) {
		t := time.Now()
		if send(i) == nil {
			lat = append(lat, time.Since(t))
		}
	})
	p50, p99 := pct(lat)
	row("direct Client API latency", n, len(lat), d.Seconds(), float64(rate), p50, p99, "request → response")

	tg := w.TGURL + "/bot" + e2e.BotToken + "/sendMessage"
	for i := range n {
		w.TG.SendText(tgUser(i), "hi") // Telegram only lets a bot write to users who wrote first
	}
	el, err = parallel(ctx, 8, total, func(i int) error {
		return post(ctx, c, tg, map[string]any{"chat_id": tgUser(i % n).ID, "text": "direct " + strconv.Itoa(i)}, nil)
	})
	if err != nil {
		return err
	}
	row("direct sendMessage → fake Bot API", n, total, el.Seconds(), float64(total)/el.Seconds(), "", "", "8 concurrent")
	return nil
}

func parallel(ctx context.Context, workers, total int, f func(i int) error) (time.Duration, error) {
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	next := make(chan int)
	for range workers {
		g.Go(func() error {
			for i := range next {
				if err := f(i); err != nil {
					return err
				}
			}
			return nil
		})
	}
feed:
	for i := range total {
		select {
		case next <- i:
		case <-gctx.Done():
			break feed
		}
	}
	close(next)
	return time.Since(start), g.Wait()
}

func post(ctx context.Context, c *http.Client, u string, body any, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d %s", req.URL.Path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}
