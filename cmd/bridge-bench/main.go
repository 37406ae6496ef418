// Command bridge-bench measures the real bridge binary against the in-repo fakes on loopback:
// inbound and outbound throughput with many users, each beside the same traffic done by a
// durable baseline (a minimal client that commits each message to Postgres before acting on it:
// the limit, durable.go) and sent directly to the fakes by a minimal client (a second
// reference), in -runs runs alternating the bridge and the baseline, added latency at a steady
// rate, the time from a cable restart to every subscription re-confirmed, and, with -known,
// memory and goroutines with many known users of whom few are active, and the time from a
// cable restart to the active ones re-confirmed and caught up. It prints a Markdown table for
// docs/benchmarks.md. It needs a Postgres server (BRIDGE_TEST_DATABASE_URL, as scripts/test.sh
// provides; default postgres://postgres@127.0.0.1:5432/postgres).
//
//	go run ./cmd/bridge-bench                      # throughput and latency, about 10 minutes
//	go run ./cmd/bridge-bench -users 100,1000 -window 20s
//	go run ./cmd/bridge-bench -only known -known 50000 -active 5000
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/e2e"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// scenarios are the names -only accepts.
var scenarios = []string{"inbound", "outbound", "latency", "known"}

func main() {
	var b bench
	bin := flag.String("bin", "", "bridge binary to measure (default: build ./cmd/bridge)")
	usersFlag := flag.String("users", "100,1000,10000", "active user counts for the throughput runs")
	flag.DurationVar(&b.window, "window", 30*time.Second, "longest a throughput run lasts")
	flag.IntVar(&b.perRun, "messages", 2000, "messages per throughput run (at least one per user)")
	rate := flag.Int("rate", 100, "messages per second of the latency runs")
	latFor := flag.Duration("latency-for", 10*time.Second, "how long each latency run sends")
	flag.IntVar(&b.runs, "runs", 5, "throughput runs per scenario, alternating the bridge and its durable baseline; the summary gives their medians")
	flag.IntVar(&b.workers, "workers", 8, "the bridge's inbound and outbound workers (BRIDGE_INBOUND_WORKERS, BRIDGE_OUTBOUND_WORKERS; 8 is their default), and the direct client's concurrency")
	only := flag.String("only", "", "comma-separated scenarios to run, of "+strings.Join(scenarios, ", ")+" (default: all; known needs -known)")
	known := flag.Int("known", 0, "known users of the memory scenario (0: no memory scenario)")
	active := flag.Int("active", 5000, "of the -known users, how many keep an open conversation and so a subscription")
	idle := flag.String("idle", "sweep", "how the memory scenario's resolved users lose their subscriptions: sweep (the running bridge's idle sweep, every -idle-sweep; it spares tokens wanted in the last two sweeps) or restart (restart the bridge once BRIDGE_IDLE_AFTER has passed: it subscribes only the active users)")
	flag.DurationVar(&b.idleSweep, "idle-sweep", 15*time.Second, "BRIDGE_IDLE_SWEEP of the memory scenario (a bridge without that setting sweeps every 10 minutes, and -idle sweep then takes about half an hour)")
	flag.StringVar(&b.cpuProfiles, "cpuprofile", "", "directory the throughput runs save the bridge's CPU profiles into (BRIDGE_PPROF=true): 3 s from the start of each inbound phase and of the outbound phase, one file per run; read them with go tool pprof -top")
	flag.StringVar(&b.profiles, "profile", "", "directory the known scenario saves the bridge's heap profiles into (BRIDGE_PPROF=true): when all users are subscribed and at the memory reading; read them with go tool pprof -top -inuse_space")
	selfProfile := flag.String("selfprofile", "", "file to save a CPU profile of this process (the fakes, the durable baseline and the direct client) over the whole invocation; read it with go tool pprof -top")
	flag.Parse()

	run := map[string]bool{}
	if *only == "" {
		run["inbound"], run["outbound"], run["latency"], run["known"] = true, true, true, *known > 0
	} else {
		for _, s := range strings.Split(*only, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(scenarios, s) {
				fail(fmt.Errorf("-only: unknown scenario %q (want %s)", s, strings.Join(scenarios, ", ")))
			}
			run[s] = true
		}
	}
	if run["known"] && (*known < 1 || *active < 1 || *active > *known) {
		fail(errors.New("the known scenario needs -known > 0 and 0 < -active <= -known"))
	}
	if *idle != "sweep" && *idle != "restart" {
		fail(fmt.Errorf("-idle: want sweep or restart, got %q", *idle))
	}
	if b.runs < 1 {
		fail(errors.New("-runs must be at least 1"))
	}
	if b.workers < 1 {
		fail(errors.New("-workers must be at least 1"))
	}
	if b.idleSweep < time.Second {
		fail(errors.New("-idle-sweep must be at least 1s (the bridge's minimum)"))
	}
	var users []int
	for _, s := range strings.Split(*usersFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fail(fmt.Errorf("-users: bad count %q", s))
		}
		users = append(users, n)
	}

	if *selfProfile != "" {
		f, err := os.Create(*selfProfile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	ctx, stop := signalContext()
	defer stop()
	err := func() error {
		if err := b.build(ctx, *bin); err != nil {
			return err
		}
		fmt.Printf("Bridge: %d inbound and %d outbound workers; the durable baseline and the direct client send %d requests at a time.\n\n", b.workers, b.workers, b.workers)
		if run["inbound"] || run["outbound"] {
			runHeader()
		}
		if run["inbound"] {
			for _, n := range users {
				if err := b.inbound(ctx, n); err != nil {
					return err
				}
			}
		}
		if run["outbound"] {
			for _, n := range users {
				if err := b.outbound(ctx, n); err != nil {
					return err
				}
			}
		}
		printSummaries(b.summaries, b.runs)
		if run["latency"] || run["known"] {
			fmt.Println()
			row("scenario", "users", "messages", "seconds", "msg/s", "vs direct", "p50 ms", "p99 ms", "note")
			row("---", "---", "---", "---", "---", "---", "---", "---", "---")
		}
		if run["latency"] {
			if err := b.latency(ctx, *rate, *latFor); err != nil {
				return err
			}
		}
		if run["known"] {
			return b.knownUsers(ctx, *known, *active, *idle == "restart")
		}
		return nil
	}()
	if b.cleanup != nil {
		b.cleanup()
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bridge-bench:", err)
	os.Exit(1)
}

type bench struct {
	bin     string
	cleanup func()
	window  time.Duration
	perRun  int
	workers int
	// runs is how many times each throughput scenario runs, the bridge and its durable baseline
	// alternating; summaries collects them.
	runs      int
	summaries []*summary
	// idleSweep is the memory scenario's BRIDGE_IDLE_SWEEP.
	idleSweep time.Duration
	// profiles, when set, is a directory the memory scenario writes the bridge's heap profiles
	// into (the bridge then runs with BRIDGE_PPROF=true).
	profiles string
	// cpuProfiles, when set, is a directory the throughput runs write the bridge's CPU
	// profiles into.
	cpuProfiles string
	run         int // counts profiled runs, for the profiles' names
}

// build sets the binary: bin, or ./cmd/bridge built into a temporary directory.
func (b *bench) build(ctx context.Context, bin string) error {
	if bin != "" {
		b.bin = bin
		return nil
	}
	dir, err := os.MkdirTemp("", "bridge-bench-")
	if err != nil {
		return err
	}
	b.cleanup = func() { os.RemoveAll(dir) }
	root, err := e2e.ModuleRoot()
	if err != nil {
		return err
	}
	b.bin = filepath.Join(dir, "bridge")
	return e2e.Build(ctx, root, b.bin, false)
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

// share is a bridge rate as a percentage of the direct client's.
func share(bridge, direct float64) string {
	if direct <= 0 {
		return ""
	}
	return strconv.FormatFloat(100*bridge/direct, 'f', 0, 64) + "%"
}

// env is the bridge's environment for the benchmark: info logs (the admin address is an info
// line), no OneChat request budget and Telegram pacing at its minimum (1 ms per message in all,
// which caps outbound at 1,000 msg/s), so the figures are the bridge's own
// limits, and Postgres reached directly rather than through the rig's fault proxy (a TCP relay
// in this process, which costs CPU and latency the bridge would not have). extra comes last.
func (b *bench) env(w *e2e.World, extra ...string) []string {
	workers := strconv.Itoa(b.workers)
	env := w.Env("LOG_LEVEL=info", "TELEGRAM_POLL_TIMEOUT=10s",
		"ONECHAT_REQUESTS_PER_SECOND=-1", "TELEGRAM_PER_CHAT_INTERVAL=1ms", "TELEGRAM_GLOBAL_INTERVAL=100us",
		"BRIDGE_INBOUND_WORKERS="+workers, "BRIDGE_OUTBOUND_WORKERS="+workers,
		"DATABASE_URL="+w.DBURL)
	return append(env, extra...)
}

func newWorld(ctx context.Context) (*e2e.World, error) {
	return e2e.NewWorld(ctx, e2e.WorldOptions{OneChat: &onechattest.Options{PingInterval: time.Second, MessageFloodLimit: -1}})
}

// world starts a world and the bridge in it (extra added to its environment); stop ends both.
func (b *bench) world(ctx context.Context, extra ...string) (*e2e.World, *e2e.Process, func(), error) {
	if b.cpuProfiles != "" {
		extra = append(extra, "BRIDGE_PPROF=true")
	}
	w, err := newWorld(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	p, err := e2e.Start(ctx, b.bin, b.env(w, extra...), e2e.NewLogs(nil))
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

func incoming(oc *onechattest.Server) func() int {
	return func() int { return oc.CountMessages(onechattest.MessageIncoming) }
}

// inbound: n users new to OneChat write max(perRun, n) messages in all (round robin), queued in
// Telegram at once; the figure is messages in OneChat per second until all arrived or the
// window ended; then the same users, now known, write as many again. The direct client does the
// same traffic once before; then b.runs runs alternate the bridge and the durable baseline.
func (b *bench) inbound(ctx context.Context, n int) error {
	total := max(b.perRun, n)
	del, delKnown, err := b.directInbound(ctx, n, total)
	if err != nil {
		return fmt.Errorf("direct inbound %d: %w", n, err)
	}
	direct := [2]float64{float64(total) / del.Seconds(), float64(total) / delKnown.Seconds()}
	names := [2]string{"inbound, new users", "inbound, known users"}
	for i, d := range []time.Duration{del, delKnown} {
		runRow(names[i], n, "-", "direct", total, d.Seconds(), direct[i], "", fmt.Sprintf("%d at a time, one user's messages in order", b.workers))
	}
	sums := [2]*summary{{scenario: names[0], users: n, direct: direct[0]}, {scenario: names[1], users: n, direct: direct[1]}}
	for run := 1; run <= b.runs; run++ {
		br, err := b.bridgeInbound(ctx, n, total)
		if err != nil {
			return err
		}
		dr, err := b.durableInbound(ctx, n, total)
		if err != nil {
			return fmt.Errorf("durable inbound %d: %w", n, err)
		}
		for i := range 2 {
			runRow(names[i], n, run, "bridge", br[i].msgs, br[i].secs, br[i].rate, br[i].cpu(), br[i].note)
			runRow(names[i], n, run, "durable", dr[i].msgs, dr[i].secs, dr[i].rate, dr[i].cpu(), "")
			sums[i].bridge = append(sums[i].bridge, br[i])
			sums[i].durable = append(sums[i].durable, dr[i])
		}
	}
	b.summaries = append(b.summaries, sums[0], sums[1])
	return nil
}

// bridgeInbound runs the bridge's half of inbound in a fresh world.
func (b *bench) bridgeInbound(ctx context.Context, n, total int) ([2]result, error) {
	var res [2]result
	w, p, stop, err := b.world(ctx)
	if err != nil {
		return res, err
	}
	defer stop()
	cpu0 := cpuNow(ctx, w, p.Pid())
	start := time.Now()
	for i := range total {
		w.TG.SendText(tgUser(i%n), "bench "+strconv.Itoa(i))
	}
	b.run++
	b.cpuProfile(ctx, p, fmt.Sprintf("inbound-new-%d-%d", n, b.run))()
	wctx, cancel := context.WithTimeout(ctx, b.window)
	defer cancel()
	got := waitCount(wctx, 20*time.Millisecond, incoming(w.OC), total)
	el := time.Since(start)
	cpu1 := cpuNow(ctx, w, p.Pid())
	m, _ := p.Scrape(ctx)
	res[0] = result{msgs: got, secs: el.Seconds(), rate: float64(got) / el.Seconds(),
		note: fmt.Sprintf("RSS %.0f MB, %v goroutines, %v subscriptions%s", m.Value("process_resident_memory_bytes")/1e6, m.Value("go_goroutines"),
			m.Value("bridge_cable_subscriptions", "state", "confirmed"), short(got, total))}
	res[0].setCPU(cpu0, cpu1, got)
	if got < total {
		return res, nil
	}

	// The same users write as many messages again, now known to the bridge and to OneChat.
	cpu0 = cpuNow(ctx, w, p.Pid())
	start = time.Now()
	for i := range total {
		w.TG.SendText(tgUser(i%n), "again "+strconv.Itoa(i))
	}
	b.run++
	defer b.cpuProfile(ctx, p, fmt.Sprintf("inbound-known-%d-%d", n, b.run))()
	wctx2, cancel2 := context.WithTimeout(ctx, b.window)
	defer cancel2()
	got = waitCount(wctx2, 20*time.Millisecond, incoming(w.OC), 2*total) - total
	el = time.Since(start)
	cpu1 = cpuNow(ctx, w, p.Pid())
	m, _ = p.Scrape(ctx)
	res[1] = result{msgs: got, secs: el.Seconds(), rate: float64(got) / el.Seconds(),
		note: fmt.Sprintf("RSS %.0f MB, %v goroutines%s", m.Value("process_resident_memory_bytes")/1e6, m.Value("go_goroutines"), short(got, total))}
	res[1].setCPU(cpu0, cpu1, got)
	return res, nil
}

func short(got, want int) string {
	if got < want {
		return fmt.Sprintf("; window ended, %d of %d arrived", got, want)
	}
	return ""
}

// directInbound times a minimal Client API client sending total messages of n new users
// (round robin, each user's in order), workers at a time: for a user's first message it creates
// the contact and the conversation, as the bridge must.
func (b *bench) directInbound(ctx context.Context, n, total int) (newUsers, knownUsers time.Duration, err error) {
	w, err := newWorld(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer w.Close()
	c := b.client()
	base := w.OCURL + "/public/api/v1/inboxes/" + w.OC.InboxIdentifier()
	type conv struct {
		source string
		id     int64
	}
	convs := make([]conv, n)
	newUsers, err = ordered(ctx, b.workers, n, total, func(u, k int) error {
		if k == 0 {
			ident := "direct:" + strconv.Itoa(u)
			var ct struct {
				SourceID string `json:"source_id"`
			}
			if err := post(ctx, c, base+"/contacts", map[string]any{
				"identifier": ident, "identifier_hash": w.OC.IdentifierHash(ident), "name": "Direct " + strconv.Itoa(u),
			}, &ct); err != nil {
				return fmt.Errorf("create contact: %w", err)
			}
			var cv struct {
				ID int64 `json:"id"`
			}
			if err := post(ctx, c, base+"/contacts/"+ct.SourceID+"/conversations", map[string]any{}, &cv); err != nil {
				return fmt.Errorf("create conversation: %w", err)
			}
			convs[u] = conv{ct.SourceID, cv.ID}
		}
		cv := convs[u]
		return post(ctx, c, fmt.Sprintf("%s/contacts/%s/conversations/%d/messages", base, cv.source, cv.id),
			map[string]any{"content": "direct " + strconv.Itoa(u) + " " + strconv.Itoa(k)}, nil)
	})
	if err != nil {
		return 0, 0, err
	}
	// The same users write as many messages again, now that they are known.
	knownUsers, err = ordered(ctx, b.workers, n, total, func(u, k int) error {
		cv := convs[u]
		return post(ctx, c, fmt.Sprintf("%s/contacts/%s/conversations/%d/messages", base, cv.source, cv.id),
			map[string]any{"content": "again " + strconv.Itoa(u) + " " + strconv.Itoa(k)}, nil)
	})
	return newUsers, knownUsers, err
}

// client is the direct client's HTTP client: keep-alive connections for every worker (the
// default keeps only two idle per host, so eight workers would keep dialling).
func (b *bench) client() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = b.workers
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// waitCount polls count every interval until it reaches want or ctx ends, and returns the last
// count.
func waitCount(ctx context.Context, interval time.Duration, count func() int, want int) int {
	t := time.NewTicker(interval)
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

// waitFor polls cond every interval until it holds (true) or ctx ends (false).
func waitFor(ctx context.Context, interval time.Duration, cond func() bool) bool {
	return waitCount(ctx, interval, func() int {
		if cond() {
			return 1
		}
		return 0
	}, 1) == 1
}

// benchUser is a bridged user as the fake OneChat knows it.
type benchUser struct {
	conv  int64
	token string
}

// bridgedUsers finds tgUser(0…n-1) in the fake OneChat: the first conversation of each and the
// pubsub token of its contact session. It reads the fake's state once, not once per user.
func bridgedUsers(oc *onechattest.Server, n int) ([]benchUser, error) {
	contactOf := map[string]int64{}
	for _, c := range oc.Contacts() {
		contactOf[c.Identifier] = c.ID
	}
	tokenOf := map[int64]string{}
	for _, ci := range oc.AllContactInboxes() {
		tokenOf[ci.ID] = ci.PubsubToken
	}
	convOf := map[int64]onechattest.Conversation{}
	for _, cv := range oc.AllConversations() {
		if _, ok := convOf[cv.ContactID]; !ok {
			convOf[cv.ContactID] = cv
		}
	}
	out := make([]benchUser, n)
	for i := range out {
		id, ok := contactOf["telegram:"+strconv.FormatInt(tgUser(i).ID, 10)]
		if !ok {
			return nil, fmt.Errorf("user %d has no contact", i)
		}
		cv, ok := convOf[id]
		if !ok {
			return nil, fmt.Errorf("user %d has no conversation", i)
		}
		out[i] = benchUser{conv: cv.ID, token: tokenOf[cv.ContactInboxID]}
	}
	return out, nil
}

// subscribed counts the users whose token has a confirmed subscription on the fake.
func subscribed(oc *onechattest.Server, us []benchUser) int {
	subs := oc.SubscribedTokens()
	n := 0
	for _, u := range us {
		if subs[u.token] > 0 {
			n++
		}
	}
	return n
}

// sendCounter counts, through the fake Bot API's served hook, the distinct texts with a prefix
// the bridge sent with sendMessage, and notes when the count reached want.
type sendCounter struct {
	prefix string
	want   int
	mu     sync.Mutex
	seen   map[string]struct{}
	dups   int
	doneAt time.Time
	done   chan struct{}
}

func countSends(f *e2e.Faults, prefix string, want int) *sendCounter {
	c := &sendCounter{prefix: prefix, want: want, seen: map[string]struct{}{}, done: make(chan struct{})}
	f.SetServed(func(r *http.Request, body []byte, at time.Time) {
		if !strings.HasSuffix(r.URL.Path, "/sendMessage") {
			return
		}
		text := formText(r, body)
		if !strings.HasPrefix(text, prefix) {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, dup := c.seen[text]; dup {
			c.dups++
			return
		}
		c.seen[text] = struct{}{}
		if len(c.seen) == c.want {
			c.doneAt = at
			close(c.done)
		}
	})
	return c
}

// wait waits until every text arrived or ctx ends, and returns how many arrived, when the last
// did (zero when not all did), and the duplicates.
func (c *sendCounter) wait(ctx context.Context) (got int, at time.Time, dups int) {
	select {
	case <-c.done:
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen), c.doneAt, c.dups
}

// outbound: n users each write once (setup, not timed), then agents reply max(perRun, n) times
// in all (round robin); the figure is replies in Telegram per second. The direct client sends
// as many sendMessage calls to the fake Bot API, once; then b.runs runs alternate the bridge and
// the durable baseline. After the first bridge run, the cable restarts and the time until every
// subscription is confirmed again is measured.
func (b *bench) outbound(ctx context.Context, n int) error {
	total := max(b.perRun, n)
	del, err := b.directOutbound(ctx, n, total)
	if err != nil {
		return fmt.Errorf("direct outbound %d: %w", n, err)
	}
	direct := float64(total) / del.Seconds()
	const name = "outbound"
	runRow(name, n, "-", "direct", total, del.Seconds(), direct, "", fmt.Sprintf("sendMessage only, %d at a time, one user's messages in order", b.workers))
	sum := &summary{scenario: name, users: n, direct: direct}
	for run := 1; run <= b.runs; run++ {
		br, err := b.bridgeOutbound(ctx, n, total, run == 1)
		if err != nil {
			return err
		}
		runRow(name, n, run, "bridge", br.msgs, br.secs, br.rate, br.cpu(), br.note)
		dr, err := b.durableOutbound(ctx, n, total)
		if err != nil {
			return fmt.Errorf("durable outbound %d: %w", n, err)
		}
		runRow(name, n, run, "durable", dr.msgs, dr.secs, dr.rate, dr.cpu(), "")
		sum.bridge = append(sum.bridge, br)
		sum.durable = append(sum.durable, dr)
	}
	b.summaries = append(b.summaries, sum)
	return nil
}

// bridgeOutbound runs the bridge's half of outbound in a fresh world; with restart it then
// restarts the cable and notes the time until every subscription is confirmed again.
func (b *bench) bridgeOutbound(ctx context.Context, n, total int, restart bool) (result, error) {
	w, p, stop, err := b.world(ctx)
	if err != nil {
		return result{}, err
	}
	defer stop()
	for i := range n {
		w.TG.SendText(tgUser(i), "hello")
	}
	setupCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	setupStart := time.Now()
	if got := waitCount(setupCtx, 100*time.Millisecond, incoming(w.OC), n); got < n {
		return result{}, fmt.Errorf("outbound %d: setup: only %d of %d users reached OneChat in 10 min", n, got, n)
	}
	us, err := bridgedUsers(w.OC, n)
	if err != nil {
		return result{}, fmt.Errorf("outbound %d: %w", n, err)
	}
	if !waitFor(setupCtx, 100*time.Millisecond, func() bool { return subscribed(w.OC, us) == n }) {
		return result{}, fmt.Errorf("outbound %d: only %d of %d subscribed after 10 min", n, subscribed(w.OC, us), n)
	}
	setup := time.Since(setupStart)

	sent := countSends(w.TGFaults, "reply ", total)
	wctx, cancelW := context.WithTimeout(ctx, b.window)
	defer cancelW()
	cpu0 := cpuNow(ctx, w, p.Pid())
	start := time.Now()
	b.run++
	defer b.cpuProfile(ctx, p, fmt.Sprintf("outbound-%d-%d", n, b.run))()
	for i := range total {
		w.OC.AgentReply(us[i%n].conv, "reply "+strconv.Itoa(i))
	}
	posted := time.Since(start)
	got, at, dups := sent.wait(wctx)
	cpu1 := cpuNow(ctx, w, p.Pid())
	w.TGFaults.SetServed(nil)
	el := at.Sub(start)
	if at.IsZero() {
		el = time.Since(start)
	}
	m, _ := p.Scrape(ctx)
	r := result{msgs: got, secs: el.Seconds(), rate: float64(got) / el.Seconds(),
		note: fmt.Sprintf("setup %s; posting the replies took the fake %.1f s; RSS %.0f MB, %v goroutines%s%s", setup.Round(time.Second), posted.Seconds(),
			m.Value("process_resident_memory_bytes")/1e6, m.Value("go_goroutines"), short(got, total), dupNote(dups))}
	r.setCPU(cpu0, cpu1, got)
	if !restart {
		return r, nil
	}
	rs := time.Now()
	w.OC.RestartCable()
	rctx, cancelR := context.WithTimeout(ctx, 5*time.Minute)
	defer cancelR()
	if !waitFor(rctx, 20*time.Millisecond, func() bool { return subscribed(w.OC, us) == n }) {
		r.note += "; cable restart: not all re-confirmed within 5 min"
		return r, nil
	}
	r.note += fmt.Sprintf("; cable restart → all re-confirmed in %.1f s", time.Since(rs).Seconds())
	return r, nil
}

func dupNote(dups int) string {
	if dups > 0 {
		return fmt.Sprintf("; %d duplicates", dups)
	}
	return ""
}

// directOutbound times total sendMessage calls to n users of the fake Bot API (round robin,
// each user's in order), workers at a time.
func (b *bench) directOutbound(ctx context.Context, n, total int) (time.Duration, error) {
	w, err := newWorld(ctx)
	if err != nil {
		return 0, err
	}
	defer w.Close()
	for i := range n {
		w.TG.SendText(tgUser(i), "hi") // Telegram only lets a bot write to users who wrote first
	}
	c := b.client()
	tg := w.TGURL + "/bot" + e2e.BotToken + "/sendMessage"
	return ordered(ctx, b.workers, n, total, func(u, k int) error {
		return post(ctx, c, tg, map[string]any{"chat_id": tgUser(u).ID, "text": "direct " + strconv.Itoa(u) + " " + strconv.Itoa(k)}, nil)
	})
}

// latency: 100 users, a steady rate each direction; inbound is timed from the user's send to
// the message's creation in OneChat, outbound from the agent's reply to Telegram's answer to
// the bridge's sendMessage. Before them, the direct client's request → response time at the
// same rate.
func (b *bench) latency(ctx context.Context, rate int, d time.Duration) error {
	if err := b.directLatency(ctx, rate, d); err != nil {
		return err
	}
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
	if got := waitCount(sctx, 100*time.Millisecond, incoming(w.OC), n); got < n {
		return fmt.Errorf("latency: setup: %d of %d users", got, n)
	}
	us, err := bridgedUsers(w.OC, n)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
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
	waitCount(wctx, 100*time.Millisecond, incoming(w.OC), n+total)
	var in []time.Duration
	for _, u := range us {
		for _, m := range w.OC.Messages(u.conv) {
			if t, ok := sentAt[m.Content]; ok {
				in = append(in, m.CreatedAt.Sub(t))
			}
		}
	}
	p50, p99 := pct(in)
	row("bridge inbound latency", n, len(in), d.Seconds(), float64(rate), "", p50, p99, fmt.Sprintf("%d of %d arrived", len(in), total))

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
		m := w.OC.AgentReply(us[i%n].conv, text)
		created[text] = m.CreatedAt
	})
	waitCount(wctx, 100*time.Millisecond, func() int {
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
	row("bridge outbound latency", n, len(out), d.Seconds(), float64(rate), "", p50, p99, fmt.Sprintf("%d of %d arrived", len(out), total))
	return nil
}

// directLatency: the direct client posting messages to 100 existing conversations at rate,
// request → response.
func (b *bench) directLatency(ctx context.Context, rate int, d time.Duration) error {
	w, err := newWorld(ctx)
	if err != nil {
		return err
	}
	defer w.Close()
	c := b.client()
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
	var lat []time.Duration
	pace(ctx, rate, int(d.Seconds())*rate, func(i int) {
		cv := convs[i%n]
		t := time.Now()
		if post(ctx, c, fmt.Sprintf("%s/contacts/%s/conversations/%d/messages", base, cv.source, cv.id),
			map[string]any{"content": "direct " + strconv.Itoa(i)}, nil) == nil {
			lat = append(lat, time.Since(t))
		}
	})
	p50, p99 := pct(lat)
	row("direct Client API latency", n, len(lat), d.Seconds(), float64(rate), "", p50, p99, "request → response")
	return nil
}

// heapProfile saves the bridge's heap profile as DIR/heap-NAME.pb.gz when -profile is set,
// after a garbage collection (so after the scrape whose figures it explains).
// cpuProfile, when -cpuprofile is set, starts a 3 s CPU profile of the bridge and returns a
// function that waits for it and saves it as cpu-name.pb.gz.
func (b *bench) cpuProfile(ctx context.Context, p *e2e.Process, name string) (wait func()) {
	if b.cpuProfiles == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		status, body, err := p.Get(ctx, "/debug/pprof/profile?seconds=3")
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("status %d", status)
		}
		if err == nil {
			if err = os.MkdirAll(b.cpuProfiles, 0o755); err == nil {
				err = os.WriteFile(filepath.Join(b.cpuProfiles, "cpu-"+name+".pb.gz"), []byte(body), 0o644)
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "cpu profile %s: %v\n", name, err)
		}
	}()
	return func() { <-done }
}

func (b *bench) heapProfile(ctx context.Context, p *e2e.Process, name string) error {
	if b.profiles == "" {
		return nil
	}
	status, body, err := p.Get(ctx, "/debug/pprof/heap?gc=1")
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("status %d", status)
	}
	if err != nil {
		return fmt.Errorf("heap profile %s: %w", name, err)
	}
	if err := os.MkdirAll(b.profiles, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.profiles, "heap-"+name+".pb.gz"), []byte(body), 0o644)
}

// knownUsers: k users each write once through the bridge (they become contacts with
// conversations and subscriptions); agents resolve the conversations of all but the first a,
// and the bridge drops those subscriptions once they are idle (BRIDGE_IDLE_AFTER, at its
// minimum of a minute). With exactly the a active users subscribed, memory and goroutines are
// read. Then the cable restarts and, at once, an agent replies in each active conversation: the
// bridge can only find those replies by its catch-up reads once it has subscribed again. The
// time to all re-confirmed and to all replies delivered is measured.
func (b *bench) knownUsers(ctx context.Context, k, a int, restartBridge bool) error {
	const idleAfter = time.Minute
	extra := []string{"BRIDGE_IDLE_AFTER=" + idleAfter.String(), "BRIDGE_IDLE_SWEEP=" + b.idleSweep.String()}
	if b.profiles != "" {
		// One heap sample per 4 KiB allocated instead of 512 KiB: the profile then shows
		// small per-user structures, at some cost to speed.
		extra = append(extra, "BRIDGE_PPROF=true", "GODEBUG=memprofilerate=4096")
	}
	w, p, stop, err := b.world(ctx, extra...)
	if err != nil {
		return err
	}
	defer func() { stop() }()

	// Every user writes once.
	start := time.Now()
	for i := range k {
		w.TG.SendText(tgUser(i), "hello")
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Minute)
	defer cancel()
	if got := waitCount(sctx, 250*time.Millisecond, incoming(w.OC), k); got < k {
		return fmt.Errorf("known: only %d of %d users reached OneChat", got, k)
	}
	wrote := time.Since(start)
	row("known users: each writes once (setup)", k, k, wrote.Seconds(), float64(k)/wrote.Seconds(), "", "", "",
		"new contact, conversation and message per user, through the bridge")
	us, err := bridgedUsers(w.OC, k)
	if err != nil {
		return fmt.Errorf("known: %w", err)
	}
	if !waitFor(sctx, 250*time.Millisecond, func() bool { return subscribed(w.OC, us) == k }) {
		return fmt.Errorf("known: only %d of %d subscribed", subscribed(w.OC, us), k)
	}
	allSub := time.Since(start)
	m, _ := p.Scrape(ctx)
	if err := b.heapProfile(ctx, p, "all-subscribed"); err != nil {
		return err
	}
	row("known users: all subscribed (setup)", k, "", allSub.Seconds(), "", "", "", "",
		fmt.Sprintf("since the first message; RSS %s, peak %s, %v goroutines, %v subscriptions",
			mb(m.Value("process_resident_memory_bytes")), peakRSS(p.Pid()), m.Value("go_goroutines"), m.Value("bridge_cable_subscriptions", "state", "confirmed")))

	// Agents resolve all but the first a; the bridge lets those go idle.
	resolveStart := time.Now()
	for _, u := range us[a:] {
		w.OC.Resolve(u.conv)
	}
	resolved := time.Now()
	exact := func() bool {
		subs := w.OC.SubscribedTokens()
		for i, u := range us {
			if (subs[u.token] > 0) != (i < a) {
				return false
			}
		}
		return true
	}
	how := "the running bridge's idle sweep"
	if restartBridge {
		how = "a bridge restart after BRIDGE_IDLE_AFTER"
		if !sleepCtx(ctx, idleAfter+30*time.Second) {
			return ctx.Err()
		}
		if err := p.Stop(30 * time.Second); err != nil {
			return fmt.Errorf("known: stop the bridge: %w", err)
		}
		if p, err = e2e.Start(ctx, b.bin, b.env(w, extra...), e2e.NewLogs(nil)); err != nil {
			return fmt.Errorf("known: start the bridge again: %w", err)
		}
		stop = func() {
			_ = p.Stop(30 * time.Second)
			_ = w.Close()
		}
	}
	ictx, cancelI := context.WithTimeout(ctx, 45*time.Minute)
	defer cancelI()
	if !waitFor(ictx, time.Second, exact) {
		subs := w.OC.SubscribedTokens()
		act, idl := 0, 0
		for i, u := range us {
			if subs[u.token] > 0 {
				if i < a {
					act++
				} else {
					idl++
				}
			}
		}
		return fmt.Errorf("known: after 45 min %d of %d active and %d of %d idle users are subscribed", act, a, idl, k-a)
	}
	row("known users: resolved → unsubscribed", k-a, "", time.Since(resolved).Seconds(), "", "", "", "",
		fmt.Sprintf("from the last of %d resolves (they took %.1f s) until exactly the %d active users are subscribed, by %s; BRIDGE_IDLE_AFTER=%s, BRIDGE_IDLE_SWEEP=%s",
			k-a, resolved.Sub(resolveStart).Seconds(), a, how, idleAfter, b.idleSweep))

	m, _ = p.Scrape(ctx)
	parts := memoryParts(p.Pid(), m) // before the profile's garbage collection
	if err := b.heapProfile(ctx, p, "memory"); err != nil {
		return err
	}
	row("memory: what the resident memory is", k, "", "", "", "", "", "", parts)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	row(fmt.Sprintf("memory: %d known, %d active", k, a), k, "", "", "", "", "", "",
		fmt.Sprintf("bridge RSS %s (peak %s), %v goroutines, %v confirmed subscriptions; heap in use %s; this process (fakes, rig): heap in use %s",
			mb(m.Value("process_resident_memory_bytes")), peakRSS(p.Pid()), m.Value("go_goroutines"),
			m.Value("bridge_cable_subscriptions", "state", "confirmed"), mb(m.Value("go_memstats_heap_inuse_bytes")), mb(float64(ms.HeapInuse))))

	// The cable restarts; an agent replies in every active conversation at once.
	sent := countSends(w.TGFaults, "catch-up ", a)
	defer w.TGFaults.SetServed(nil)
	restart := time.Now()
	w.OC.RestartCable()
	for i, u := range us[:a] {
		w.OC.AgentReply(u.conv, "catch-up "+strconv.Itoa(i))
	}
	posted := time.Since(restart)
	rctx, cancelR := context.WithTimeout(ctx, 10*time.Minute)
	defer cancelR()
	var confirmed time.Duration
	if waitFor(rctx, 20*time.Millisecond, func() bool { return subscribed(w.OC, us[:a]) == a }) {
		confirmed = time.Since(restart)
		row("cable restart → all re-confirmed", a, "", confirmed.Seconds(), "", "", "", "", "subscriptions of the active users confirmed again on the fake")
	} else {
		row("cable restart → all re-confirmed", a, "-", "-", "", "", "", "", fmt.Sprintf("only %d of %d within 10 min", subscribed(w.OC, us[:a]), a))
	}
	got, at, dups := sent.wait(rctx)
	idleBack := subscribed(w.OC, us[a:])
	if at.IsZero() {
		row("cable restart → caught up", a, got, "-", "", "", "", "", fmt.Sprintf("only %d of %d replies reached Telegram within 10 min", got, a))
		return nil
	}
	m, _ = p.Scrape(ctx)
	row("cable restart → caught up", a, got, at.Sub(restart).Seconds(), float64(got)/at.Sub(restart).Seconds(), "", "", "",
		fmt.Sprintf("one agent reply per active conversation, posted right after the restart (took %.1f s), all sent to Telegram; %d idle users subscribed again; RSS %s, %v goroutines%s",
			posted.Seconds(), idleBack, mb(m.Value("process_resident_memory_bytes")), m.Value("go_goroutines"), dupNote(dups)))
	return nil
}

func mb(bytes float64) string { return strconv.FormatFloat(bytes/1e6, 'f', 0, 64) + " MB" }

// peakRSS is the process's resident high-water mark (VmHWM), or "?" where /proc cannot tell.
func peakRSS(pid int) string {
	if kb, ok := procStatus(pid, "VmHWM"); ok {
		return mb(kb * 1024)
	}
	return "?"
}

// procStatus reads a kB (KiB) field (VmHWM, RssAnon, RssFile) of /proc/PID/status.
func procStatus(pid int, field string) (kb float64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, found := strings.CutPrefix(line, field+":"); found {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb, err == nil
		}
	}
	return 0, false
}

// memoryParts says what the bridge's resident memory is made of: pages of the binary and
// shared libraries (file-backed), and of its anonymous memory the Go heap in use, heap
// pages free but not yet returned to the OS, goroutine stacks, and the runtime's own
// structures (spans, GC metadata, profiling buckets, other), from its go_memstats series.
func memoryParts(pid int, m e2e.Metrics) string {
	anon, _ := procStatus(pid, "RssAnon")
	file, _ := procStatus(pid, "RssFile")
	v := func(name string) float64 { return m.Value("go_memstats_" + name) }
	runtimeSys := v("mspan_sys_bytes") + v("mcache_sys_bytes") + v("gc_sys_bytes") + v("buck_hash_sys_bytes") + v("other_sys_bytes")
	return fmt.Sprintf("resident: anonymous %s, file-backed %s; Go: heap in use %s, heap free not returned %s, stacks %s, runtime structures %s (of which GC metadata %s)",
		mb(anon*1024), mb(file*1024), mb(v("heap_inuse_bytes")), mb(v("heap_idle_bytes")-v("heap_released_bytes")),
		mb(v("stack_inuse_bytes")), mb(runtimeSys), mb(v("gc_sys_bytes")))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
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

// ordered calls f(u, k) for total items dealt round robin over n users (user u gets the items
// u, u+n, u+2n, …; k counts a user's items from 0), workers at a time, and returns how long
// that took. A user's items run one at a time and in order, as the bridge's per-user queues
// deliver them: a user waits at the back of the line until its previous item is done.
func ordered(ctx context.Context, workers, n, total int, f func(u, k int) error) (time.Duration, error) {
	items := func(u int) int {
		c := total / n
		if u < total%n {
			c++
		}
		return c
	}
	ready := make(chan int, n)
	for u := range n {
		if items(u) > 0 {
			ready <- u
		}
	}
	next := make([]int, n) // next[u] is touched only by the worker holding u
	var left atomic.Int64
	left.Store(int64(total))
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			for {
				var u int
				select {
				case v, ok := <-ready:
					if !ok {
						return nil
					}
					u = v
				case <-gctx.Done():
					return gctx.Err()
				}
				k := next[u]
				if err := f(u, k); err != nil {
					return err
				}
				next[u] = k + 1
				if k+1 < items(u) {
					ready <- u
				}
				if left.Add(-1) == 0 {
					close(ready)
				}
			}
		})
	}
	err := g.Wait()
	return time.Since(start), err
}

func post(ctx context.Context, c *http.Client, u string, body any, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return do(c, req, out)
}

// do sends req and decodes a 200 answer's JSON body into out (unless nil).
func do(c *http.Client, req *http.Request, out any) error {
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

// cpuUse is the CPU time (user and system) the bridge process and the Postgres backends of the
// world's database have used so far. The difference of two readings over a run, per message, is
// what a message cost each of them: a figure a busy shared machine changes far less than it
// changes messages per second, so it is what A/B comparisons use.
type cpuUse struct {
	bridge, postgres, self time.Duration
	ok                     bool
}

// cpuNow reads cpuUse. Postgres's share is read from /proc, so it is only known when the server
// runs on this machine (ok false otherwise); backends that exited in between are not counted.
func cpuNow(ctx context.Context, w *e2e.World, pid int) cpuUse {
	u := cpuUse{bridge: -1, self: procCPU(os.Getpid()), ok: true}
	if pid > 0 {
		u.bridge = procCPU(pid)
	}
	conn, err := pgx.Connect(ctx, w.DBURL)
	if err != nil {
		return cpuUse{}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		return cpuUse{}
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return cpuUse{}
	}
	for _, p := range pids {
		d := procCPU(int(p))
		if d < 0 {
			return cpuUse{}
		}
		u.postgres += d
	}
	return u
}

// procCPU is the user and system time of the process, or -1 when /proc does not tell.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces; the fields after it are plain numbers.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	const ticks = 100 // USER_HZ, 100 on every Linux the benchmark runs on
	return time.Duration(ut+st) * time.Second / ticks
}
