package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/adapters/telegram"
)

// secretsOf lists every secret the world's bridge knows, for leak checks.
func (w *world) secretsOf() []string {
	s := []string{testBotToken, "TEST-bot-token", testDBPassword, w.oc.HMACToken(), w.oc.InboxIdentifier()}
	if c, ok := w.oc.ContactByIdentifier("telegram:777001"); ok {
		for _, ci := range w.oc.ContactInboxes(c.ID) {
			s = append(s, ci.SourceID, ci.PubsubToken)
		}
	}
	return s
}

func assertNoSecrets(t *testing.T, where, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains the secret %.6s…", where, s)
		}
	}
}

func TestConfigEveryVariable(t *testing.T) {
	env := []string{
		"DATABASE_URL=postgres://bridge:pw@db:5432/bridge",
		"ONECHAT_BASE_URL=https://chat.example.com",
		"ONECHAT_INBOX_IDENTIFIER=inbox123",
		"ONECHAT_HMAC_TOKEN=hmac123",
		"ONECHAT_CABLE_URL=wss://cable.example.com/cable",
		"ONECHAT_ON_RESOLVED=reopen",
		"TELEGRAM_BOT_TOKEN=1:tok",
		"TELEGRAM_API_URL=http://tg.local",
		"TELEGRAM_POLL_TIMEOUT=30s",
		"BRIDGE_ADMIN_ADDR=0.0.0.0:9191",
		"BRIDGE_SHUTDOWN_TIMEOUT=25s",
		"LOG_LEVEL=warn",
		"LOG_FORMAT=console",
	}
	cfg, err := LoadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	tg := adapterConfigOf[telegram.Config](t, cfg)
	got := fmt.Sprint(string(cfg.DatabaseURL), cfg.OneChatBaseURL, string(cfg.InboxIdentifier), string(cfg.HMACToken), cfg.CableURL,
		cfg.OnResolved, string(tg.Token), tg.APIURL, tg.PollTimeout, cfg.AdminAddr,
		cfg.shutdownTimeout, cfg.LogLevel, cfg.LogFormat)
	want := fmt.Sprint("postgres://bridge:pw@db:5432/bridge", "https://chat.example.com", "inbox123", "hmac123", "wss://cable.example.com/cable",
		"reopen", "1:tok", "http://tg.local", "30s", "0.0.0.0:9191", 25*time.Second, "warn", "console")
	if got != want {
		t.Errorf("loaded\n %s\nwant\n %s", got, want)
	}
	if cfg.shutdownTimeout != 25*time.Second || coreShutdownGrace(cfg.shutdownTimeout) >= cfg.shutdownTimeout {
		t.Errorf("core grace %s must leave room within the deadline %s", coreShutdownGrace(cfg.shutdownTimeout), cfg.shutdownTimeout)
	}
}

func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func without(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func TestConfigSecretsFromFiles(t *testing.T) {
	env := without(without(without(validEnv(), "TELEGRAM_BOT_TOKEN"), "DATABASE_URL"), "ONECHAT_INBOX_IDENTIFIER")
	env = append(env,
		"TELEGRAM_BOT_TOKEN_FILE="+writeSecret(t, "123456:ABC-from-file\n"),
		"DATABASE_URL_FILE="+writeSecret(t, "postgres://bridge:file-pw@db/bridge\r\n"),
		"ONECHAT_INBOX_IDENTIFIER_FILE="+writeSecret(t, "inboxFromFile"),
		"UNRELATED_FILE=/nonexistent/never/read", // not a bridge variable: ignored
	)
	cfg, err := LoadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	tg := adapterConfigOf[telegram.Config](t, cfg)
	if string(tg.Token) != "123456:ABC-from-file" || string(cfg.DatabaseURL) != "postgres://bridge:file-pw@db/bridge" ||
		string(cfg.InboxIdentifier) != "inboxFromFile" {
		t.Errorf("secrets from files not loaded (or newline kept): token %q, db %q, inbox %q",
			string(tg.Token), string(cfg.DatabaseURL), string(cfg.InboxIdentifier))
	}
}

func TestConfigFileErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name, extra, want string
	}{
		{"both set", "TELEGRAM_BOT_TOKEN_FILE=" + writeSecret(t, "1:x"), "TELEGRAM_BOT_TOKEN_FILE: set either TELEGRAM_BOT_TOKEN or TELEGRAM_BOT_TOKEN_FILE, not both"},
		{"missing file", "ONECHAT_HMAC_TOKEN_FILE=/nonexistent/hmac", "ONECHAT_HMAC_TOKEN_FILE: cannot read /nonexistent/hmac: no such file or directory"},
		{"empty file", "ONECHAT_HMAC_TOKEN_FILE=" + writeSecret(t, "\n"), "ONECHAT_HMAC_TOKEN_FILE: "},
		{"empty name", "ONECHAT_HMAC_TOKEN_FILE=", "ONECHAT_HMAC_TOKEN_FILE: is empty"},
		{"bad shutdown timeout", "BRIDGE_SHUTDOWN_TIMEOUT=soon", "BRIDGE_SHUTDOWN_TIMEOUT: must be a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := validEnv()
			if strings.HasPrefix(tt.extra, "ONECHAT_HMAC_TOKEN_FILE") {
				env = without(env, "ONECHAT_HMAC_TOKEN")
			}
			var stderr bytes.Buffer
			if code := realMain([]string{"run"}, append(env, tt.extra), &bytes.Buffer{}, &stderr); code != 2 {
				t.Fatalf("exit code %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), "  "+tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, stderr.String())
			}
			assertNoSecrets(t, "stderr", stderr.String(), []string{"ABC-secret-token", "db-password-x", "wyHVRZzzJhjPMKR2h7LpeJVy"})
		})
	}
}

// The startup line shows the effective configuration: every variable by name, secrets only as
// set, and the database without credentials.
func TestStartupLogShowsConfigWithoutSecrets(t *testing.T) {
	w := newWorld(t)
	w.start()
	ctx := testCtx(t)
	w.tg.SendText(alice, "Hello")
	_, conv := w.conversation(ctx, "telegram:777001")
	w.waitIncoming(ctx, conv.ID, "Hello")
	w.stop()

	var startup map[string]any
	for _, line := range strings.Split(w.logs.String(), "\n") {
		if strings.Contains(line, `"starting onechat-bridge"`) {
			if err := json.Unmarshal([]byte(line), &startup); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg, _ := startup["config"].(map[string]any)
	if cfg == nil {
		t.Fatalf("no config object in the startup line:\n%s", w.logs.String())
	}
	for _, name := range []string{"DATABASE_URL", "ONECHAT_BASE_URL", "ONECHAT_INBOX_IDENTIFIER", "ONECHAT_HMAC_TOKEN", "ONECHAT_CABLE_URL",
		"ONECHAT_ON_RESOLVED", "TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL", "TELEGRAM_POLL_TIMEOUT", "BRIDGE_ADMIN_ADDR",
		"BRIDGE_SHUTDOWN_TIMEOUT", "LOG_LEVEL", "LOG_FORMAT"} {
		if _, ok := cfg[name]; !ok {
			t.Errorf("startup config lacks %s", name)
		}
	}
	if cfg["TELEGRAM_BOT_TOKEN"] != "<redacted>" || cfg["ONECHAT_INBOX_IDENTIFIER"] != "<redacted>" {
		t.Errorf("secrets not shown as <redacted>: %v", cfg)
	}
	if db, _ := cfg["DATABASE_URL"].(string); !strings.Contains(db, w.pg.ln.Addr().String()) {
		t.Errorf("DATABASE_URL should still name the host: %q", db)
	}
	assertNoSecrets(t, "the logs (debug level)", w.logs.String(), w.secretsOf())
}

func readyz(ctx context.Context, addr string) (int, map[string]string) {
	code, body := get(ctx, addr, "/readyz")
	var b readyBody
	_ = json.Unmarshal([]byte(body), &b)
	return code, b.Down
}

func TestReadyzNamesWhatIsDown(t *testing.T) {
	w := newWorld(t)
	addr := w.adminAddr()
	w.start()
	ctx := testCtx(t)

	waitReady := func(want int, wantDown ...string) {
		t.Helper()
		ok, desc := poll(ctx, func() (bool, string) {
			code, down := readyz(ctx, addr)
			if code != want {
				return false, fmt.Sprint(code, down)
			}
			for _, d := range wantDown {
				if _, ok := down[d]; !ok {
					return false, fmt.Sprint(code, down)
				}
			}
			return true, ""
		})
		if !ok {
			t.Fatalf("/readyz never answered %d naming %v; last %s", want, wantDown, desc)
		}
	}
	waitReady(200)

	w.pg.setDown(true)
	waitReady(503, "postgres")
	w.pg.setDown(false)
	waitReady(200)

	w.ocGate.down.Store(true)
	w.oc.RestartCable() // the open socket drops; the gate refuses the reconnect
	waitReady(503, "onechat", "cable")
	w.ocGate.down.Store(false)
	waitReady(200)

	if code, _ := get(ctx, addr, "/livez"); code != 200 {
		t.Errorf("/livez = %d", code)
	}
	// A lone instance holds every role, and says so.
	_, body := get(ctx, addr, "/readyz")
	var rb readyBody
	if err := json.Unmarshal([]byte(body), &rb); err != nil || rb.Roles == nil {
		t.Fatalf("/readyz has no roles: %s (%v)", body, err)
	}
	if !rb.Roles.Coordinated || rb.Roles.Instances != 1 || rb.Roles.Partitions != 64 ||
		strings.Join(rb.Roles.Running, ",") != "telegram" {
		t.Errorf("roles of a lone instance: %+v, want it coordinated, alone, with 64 partitions and the poller", *rb.Roles)
	}
	// bridge health is the container's health check: it asks the same listener.
	var out, errOut bytes.Buffer
	if code := realMain([]string{"health"}, []string{"BRIDGE_ADMIN_ADDR=" + addr}, &out, &errOut); code != 0 {
		t.Errorf("bridge health = %d (%s)", code, errOut.String())
	}
	if code := realMain([]string{"health", "--ready"}, []string{"BRIDGE_ADMIN_ADDR=" + addr}, &out, &errOut); code != 0 {
		t.Errorf("bridge health --ready = %d (%s)", code, errOut.String())
	}
	w.stop()
	errOut.Reset()
	if code := realMain([]string{"health"}, []string{"BRIDGE_ADMIN_ADDR=" + addr}, &out, &errOut); code != 1 {
		t.Errorf("bridge health with the bridge stopped = %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "not answering") {
		t.Errorf("bridge health should say the bridge is not answering: %q", errOut.String())
	}
}

func TestMetricsMoveWhenMessagesFlow(t *testing.T) {
	w := newWorld(t)
	addr := w.adminAddr()
	w.start()
	ctx := testCtx(t)

	waitMetric := func(name string, want float64, labels ...string) string {
		t.Helper()
		var body string
		ok, _ := poll(ctx, func() (bool, string) {
			_, body = get(ctx, addr, "/metrics")
			v, _ := metric(body, name, labels...)
			return v == want, ""
		})
		if !ok {
			v, found := metric(body, name, labels...)
			t.Fatalf("%s%v = %v (present %t), want %v", name, labels, v, found, want)
		}
		return body
	}

	w.tg.SendText(alice, "Hello")
	contact, conv := w.conversation(ctx, "telegram:777001")
	w.waitIncoming(ctx, conv.ID, "Hello")
	w.waitSubscribed(ctx, contact.ID)
	body := waitMetric("bridge_messages_total", 1, "direction=in", "platform=telegram", "result=delivered")
	if v, _ := metric(body, "bridge_messages_total", "direction=in", "platform=telegram", "result=queued"); v != 1 {
		t.Errorf("inbound queued = %v, want 1", v)
	}
	if v, _ := metric(body, "bridge_delivery_seconds_count", "direction=in", "platform=telegram"); v != 1 {
		t.Errorf("inbound latency observations = %v, want 1", v)
	}

	w.oc.AgentReply(conv.ID, "Hi Alice")
	if _, err := w.tg.WaitSent(ctx, alice.ID, 1); err != nil {
		t.Fatal(err)
	}
	waitMetric("bridge_messages_total", 1, "direction=out", "platform=telegram", "result=delivered")

	w.tg.RateLimit(1, 1)
	w.oc.AgentReply(conv.ID, "after a pause")
	if _, err := w.tg.WaitSent(ctx, alice.ID, 2); err != nil {
		t.Fatal(err)
	}
	waitMetric("bridge_rate_limit_waits_total", 1, "direction=out", "platform=telegram")

	w.tg.Block(alice.ID)
	w.oc.AgentReply(conv.ID, "are you there?")
	waitMetric("bridge_messages_total", 1, "direction=out", "platform=telegram", "result=failed")
	body = waitMetric("bridge_unreachable_users", 1, "platform=telegram")

	for _, want := range []struct {
		name   string
		labels []string
		value  float64
	}{
		{"bridge_queue_depth", []string{"direction=in", "state=pending"}, 0},
		{"bridge_queue_oldest_age_seconds", []string{"direction=out"}, 0},
		{"bridge_cable_connections", []string{"state=connected"}, 1},
		{"bridge_cable_subscriptions", []string{"state=confirmed"}, 1},
		{"bridge_postgres_up", nil, 1},
		{"bridge_build_info", nil, 1},
	} {
		if v, ok := metric(body, want.name, want.labels...); !ok || v != want.value {
			t.Errorf("%s%v = %v (present %t), want %v", want.name, want.labels, v, ok, want.value)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "bridge_unreachable_marked_total"} {
		if _, ok := metric(body, name); !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	assertNoSecrets(t, "/metrics", body, w.secretsOf())
	if strings.Contains(body, "777001") {
		t.Error("/metrics carries a user id")
	}
}

// A message in flight when SIGTERM comes is handed back to the queue within the deadline and
// delivered after the restart.
func TestShutdownWithinDeadlineLosesNothing(t *testing.T) {
	w := newWorld(t)
	w.start()
	ctx := testCtx(t)

	w.tg.SendText(alice, "Hello")
	contact, conv := w.conversation(ctx, "telegram:777001")
	w.waitIncoming(ctx, conv.ID, "Hello")
	w.waitSubscribed(ctx, contact.ID)

	w.tgGate.hangSends.Store(true)
	w.oc.AgentReply(conv.ID, "in flight at shutdown")
	ok, _ := poll(ctx, func() (bool, string) { return w.tgGate.held.Load() > 0, "" })
	if !ok {
		t.Fatal("the reply never reached Telegram's send")
	}
	start := time.Now()
	w.cancel()
	select {
	case err := <-w.done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(w.cfg.shutdownTimeout + 2*time.Second):
		t.Fatalf("run did not return within the %s deadline", w.cfg.shutdownTimeout)
	}
	w.cancel = nil
	if took := time.Since(start); took > w.cfg.shutdownTimeout {
		t.Errorf("shutdown took %s, deadline %s", took, w.cfg.shutdownTimeout)
	}
	if !strings.Contains(w.logs.String(), "returning in-flight message to the queue at shutdown") {
		t.Error("the in-flight message was not handed back to the queue")
	}

	w.tgGate.hangSends.Store(false)
	w.start()
	sent, err := w.tg.WaitSent(ctx, alice.ID, 1)
	if err != nil {
		t.Fatalf("the message in flight at shutdown was lost: %v", err)
	}
	if sent[0].Text != "in flight at shutdown" {
		t.Errorf("sent %q", sent[0].Text)
	}
}

func TestAwaitShutdownEnforcesTheDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	finished := make(chan struct{})
	cancel()
	start := time.Now()
	err := awaitShutdown(ctx, 100*time.Millisecond, func() error {
		defer close(finished)
		<-release // a component that ignores cancellation
		return nil
	})
	if !errors.Is(err, errShutdownDeadline) {
		t.Errorf("err = %v, want the deadline error", err)
	}
	if took := time.Since(start); took < 100*time.Millisecond || took > 5*time.Second {
		t.Errorf("returned after %s, want about 100ms", took)
	}
	close(release)
	<-finished

	want := errors.New("core failed")
	if err := awaitShutdown(context.Background(), time.Hour, func() error { return want }); !errors.Is(err, want) {
		t.Errorf("a component's own error = %v, want %v", err, want)
	}
}
