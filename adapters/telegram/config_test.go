package telegram

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
)

// parseEnv reads a Config from vars the way the bridge does.
func parseEnv(t *testing.T, vars ...string) Config {
	t.Helper()
	m := map[string]string{}
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	var cfg Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: m}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The envDefault tags and the defaults of a zero field are the same settings.
func TestConfigDefaults(t *testing.T) {
	cfg := parseEnv(t, "TELEGRAM_BOT_TOKEN="+testToken)
	if !cfg.Enabled() || cfg.Greeting != DefaultGreeting || cfg.Mode != ModePolling {
		t.Fatalf("env defaults: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	zero := Config{Token: testToken, Greeting: DefaultGreeting}
	if err := zero.Validate(); err != nil {
		t.Fatal(err)
	}
	type derived struct {
		api                          string
		poll, album, perChat, global time.Duration
		greeting                     string
		greetingInterval             time.Duration
	}
	d := func(c Config) derived {
		return derived{c.apiURL, c.pollTimeout, c.albumWindow, c.perChat, c.global, c.greeting, c.greetingInterval}
	}
	if cfg.greetingInterval != 24*time.Hour {
		t.Errorf("greeting interval %s, want 24h", cfg.greetingInterval)
	}
	// 34ms is 1/30 s rounded up to a whole millisecond.
	zero.global = 34 * time.Millisecond
	if d(cfg) != d(zero) {
		t.Errorf("env defaults %+v, zero Config %+v", d(cfg), d(zero))
	}
	if (&Config{}).Enabled() {
		t.Error("enabled without a token")
	}
	cfg = parseEnv(t, "TELEGRAM_BOT_TOKEN="+testToken, "TELEGRAM_GREETING=none")
	if err := cfg.Validate(); err != nil || cfg.greeting != "" {
		t.Errorf("greeting none: %q, %v", cfg.greeting, err)
	}
}

func TestConfigWebhook(t *testing.T) {
	vars := []string{"TELEGRAM_BOT_TOKEN=" + testToken, "TELEGRAM_MODE=webhook", "TELEGRAM_WEBHOOK_URL=https://bridge.example.com/tg"}
	cfg := parseEnv(t, vars...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := string(cfg.WebhookSecret)
	if cfg.WebhookListen != ":8443" || len(s) < 32 || !cfg.webhookSecretGenerated {
		t.Fatalf("webhook %+v", cfg)
	}
	if err := cfg.Validate(); err != nil || string(cfg.WebhookSecret) != s {
		t.Fatalf("validating again changed the secret or failed: %v", err)
	}
	a, err := New(cfg, newInbox(), nil)
	if err != nil {
		t.Fatalf("a generated secret must be one Telegram accepts: %v", err)
	}
	if a.webhookSecret != s || a.mode != ModeWebhook {
		t.Errorf("adapter mode %s", a.mode)
	}
	if p := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg); strings.Contains(p, s) || strings.Contains(p, testToken) {
		t.Fatalf("a secret prints: %s", p)
	}
	given := "my-Secret_1" + strings.Repeat("x", 21)
	cfg = parseEnv(t, append(vars, "TELEGRAM_WEBHOOK_SECRET="+given)...)
	if err := cfg.Validate(); err != nil || string(cfg.WebhookSecret) != given || cfg.webhookSecretGenerated {
		t.Fatalf("given secret: %v", err)
	}
	// A short secret can be guessed: refused, without echoing it.
	cfg = parseEnv(t, append(vars, "TELEGRAM_WEBHOOK_SECRET=my-Secret_1")...)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "TELEGRAM_WEBHOOK_SECRET:") || strings.Contains(err.Error(), "my-Secret_1") {
		t.Fatalf("a secret of 11 characters: %v", err)
	}
}

func TestConfigErrorsNameTheirVariable(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{nil, []string{"TELEGRAM_BOT_TOKEN"}},
		{[]string{"TELEGRAM_BOT_TOKEN=nocolon", "TELEGRAM_API_URL=ftp://x", "TELEGRAM_POLL_TIMEOUT=forever"},
			[]string{"TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL", "TELEGRAM_POLL_TIMEOUT"}},
		{[]string{"TELEGRAM_BOT_TOKEN=1:a/b"}, []string{"TELEGRAM_BOT_TOKEN"}},
		{[]string{"TELEGRAM_MODE=push"}, []string{"TELEGRAM_MODE"}},
		{[]string{"TELEGRAM_MODE=webhook"}, []string{"TELEGRAM_WEBHOOK_URL"}},
		{[]string{"TELEGRAM_MODE=webhook", "TELEGRAM_WEBHOOK_URL=http://insecure.example.com/tg",
			"TELEGRAM_WEBHOOK_SECRET=has spaces!", "TELEGRAM_WEBHOOK_LISTEN=8443"},
			[]string{"TELEGRAM_WEBHOOK_URL", "TELEGRAM_WEBHOOK_SECRET", "TELEGRAM_WEBHOOK_LISTEN"}},
		{[]string{"TELEGRAM_ALBUM_WINDOW=1h", "TELEGRAM_PER_CHAT_INTERVAL=0s", "TELEGRAM_GLOBAL_INTERVAL=2m", "TELEGRAM_GREETING_INTERVAL=soon"},
			[]string{"TELEGRAM_ALBUM_WINDOW", "TELEGRAM_PER_CHAT_INTERVAL", "TELEGRAM_GLOBAL_INTERVAL", "TELEGRAM_GREETING_INTERVAL"}},
	} {
		vars := tc.env
		if !strings.Contains(strings.Join(vars, " "), "TELEGRAM_BOT_TOKEN=") && tc.env != nil {
			vars = append(vars, "TELEGRAM_BOT_TOKEN="+testToken)
		}
		cfg := parseEnv(t, vars...)
		err := cfg.Validate()
		if err == nil {
			t.Errorf("%v: no error", tc.env)
			continue
		}
		if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != len(tc.want) {
			t.Errorf("%v: %d errors, want %d: %v", tc.env, n, len(tc.want), err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w+":") {
				t.Errorf("%v: error %q does not name %s", tc.env, err, w)
			}
		}
		for _, secret := range []string{"has spaces", "nocolon", "a/b", testToken} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("a secret is echoed: %v", err)
			}
		}
		// New relies on the same rules.
		if _, err := New(cfg, newInbox(), nil); err == nil {
			t.Errorf("%v: New accepted what Validate refused", tc.env)
		}
	}
}
