package e2e_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/onechat/onechat-bridge/adapters/slack/slacktest"
	"github.com/onechat/onechat-bridge/e2e"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// bridgeBin is the bridge binary TestMain built for this run of the package.
var bridgeBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "bridge-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root, err := e2e.ModuleRoot()
	if prebuilt := os.Getenv("E2E_BRIDGE_BIN"); prebuilt != "" {
		// A binary built elsewhere (a release build, or a clean checkout while the work tree
		// is mid-edit).
		bridgeBin = prebuilt
	} else if err == nil {
		bridgeBin = filepath.Join(dir, "bridge")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		err = e2e.Build(ctx, root, bridgeBin, raceEnabled)
		cancel()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the bridge:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// rig is one test's world and the bridge process running in it (one at a time; restarts
// share the log).
type rig struct {
	t    *testing.T
	w    *e2e.World
	logs *e2e.Logs
	p    *e2e.Process
	env  []string
}

type rigOption func(*rigConfig)

type rigConfig struct {
	oc    *onechattest.Options
	env   []string
	slack *slacktest.Server
	// support are the Slack support channels.
	support []string
}

func withOneChat(o onechattest.Options) rigOption { return func(c *rigConfig) { c.oc = &o } }
func withEnv(kv ...string) rigOption              { return func(c *rigConfig) { c.env = append(c.env, kv...) } }

// newRig builds a world. At the end of the test it stops the bridge and checks its logs for
// secrets, data races and panics.
func newRig(t *testing.T, opts ...rigOption) *rig {
	t.Helper()
	var cfg rigConfig
	for _, o := range opts {
		o(&cfg)
	}
	ctx := testCtx(t)
	w, err := e2e.NewWorld(ctx, e2e.WorldOptions{OneChat: cfg.oc, Logf: t.Logf, Slack: cfg.slack, SlackSupportChannels: cfg.support})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, w: w, logs: e2e.NewLogs(nil)}
	r.env = w.Env(cfg.env...)
	t.Cleanup(func() {
		if r.p != nil {
			if err := r.p.Stop(20 * time.Second); err != nil {
				t.Errorf("stopping the bridge: %v", err)
			}
		}
		r.checkLogs()
		if dir := os.Getenv("E2E_LOG_DIR"); dir != "" && t.Failed() {
			// The whole stderr, for a failure the last lines do not explain.
			_ = os.WriteFile(filepath.Join(dir, t.Name()+".log"), []byte(r.logs.String()), 0o644)
		}
		if t.Failed() {
			lines := r.logs.LinesSince(max(0, r.logs.Len()-150))
			t.Logf("last %d lines of the bridge's stderr:\n%s", len(lines), strings.Join(lines, "\n"))
		}
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// start runs the bridge and waits for /readyz to answer 200.
func (r *rig) start() {
	r.t.Helper()
	if r.p != nil {
		r.t.Fatal("bridge already running")
	}
	ctx := testCtx(r.t)
	p, err := e2e.Start(ctx, bridgeBin, r.env, r.logs)
	if err != nil {
		r.t.Fatal(err)
	}
	r.p = p
	r.waitReady(ctx)
}

func (r *rig) waitReady(ctx context.Context) {
	r.t.Helper()
	var code int
	var body string
	ok := poll(ctx, func() bool {
		code, body, _ = r.p.Get(ctx, "/readyz")
		return code == 200
	})
	if !ok {
		r.t.Fatalf("/readyz never answered 200: %d %s", code, body)
	}
}

// stop sends SIGTERM and expects a clean exit.
func (r *rig) stop() {
	r.t.Helper()
	if err := r.p.Stop(20 * time.Second); err != nil {
		r.t.Fatal(err)
	}
	r.p = nil
}

// kill sends SIGKILL and makes what the dead process held claimable, as its lease expiring
// would.
func (r *rig) kill() {
	r.t.Helper()
	r.p.Kill()
	r.p = nil
	// The rows the dead process was working on are taken over when their lease (BRIDGE_LEASE,
	// 3 s here) runs out, as in production: by then a request it had in flight has either
	// reached OneChat (and is found there, not posted twice) or died with it.
}

// checkLogs fails the test when a secret, a data race or a panic is in the bridge's stderr.
func (r *rig) checkLogs() {
	secrets := append([]string{discordToken}, r.w.Secrets()...)
	names := []string{"the Discord bot token", "the Telegram bot token", "the Telegram bot token's secret part",
		"the database password", "the HMAC token", "the inbox identifier", "the Slack bot token", "the Slack app token"}
	for _, i := range r.logs.Leaks(secrets) {
		what := "a contact session's source_id or pubsub_token"
		if i < len(names) {
			what = names[i]
		}
		r.t.Errorf("the bridge's logs contain %s", what)
	}
	for _, line := range r.logs.LinesSince(0) {
		if strings.Contains(line, "DATA RACE") || strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
			r.t.Errorf("the bridge's stderr: %s", line)
		}
	}
}

// testCtx bounds one test's waits.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// poll calls cond every 25 ms until it holds or ctx ends. It is for conditions only an HTTP
// endpoint can tell (readiness, metrics), which send no signal of their own.
func poll(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

var _ = syscall.SIGTERM
