package discord

import (
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
)

func parseEnv(t *testing.T, vars map[string]string) Config {
	t.Helper()
	var cfg Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: vars}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestConfig(t *testing.T) {
	if cfg := parseEnv(t, map[string]string{}); cfg.Enabled() {
		t.Error("enabled without a token")
	}
	cfg := parseEnv(t, map[string]string{"DISCORD_BOT_TOKEN": testToken, "DISCORD_SUPPORT_CHANNEL_ID": "910000000000000001", "DISCORD_STAFF_ROLE_ID": "920000000000000001"})
	if err := cfg.Validate(); err != nil || !cfg.Enabled() {
		t.Fatalf("valid settings rejected: %v", err)
	}
	if cfg.APIURL != DefaultAPIURL || cfg.apiURL != DefaultAPIURL || cfg.cdnURL != DefaultCDNURL {
		t.Errorf("defaults %q %q %q", cfg.APIURL, cfg.apiURL, cfg.cdnURL)
	}
	if a, err := New(cfg, newInbox(), nil); err != nil || a.Platform() != Platform || a.support != cfg.SupportChannelID || a.minAge != 0 {
		t.Fatalf("adapter: %v %v", a, err)
	}
	cfg = parseEnv(t, map[string]string{"DISCORD_BOT_TOKEN": testToken, "DISCORD_MIN_ACCOUNT_AGE": "168h"})
	if a, err := New(cfg, newInbox(), nil); err != nil || a.minAge != 7*24*time.Hour {
		t.Fatalf("min account age: %v %v", a, err)
	}

	for _, tc := range []struct {
		vars map[string]string
		want []string
	}{
		{map[string]string{}, []string{"DISCORD_BOT_TOKEN"}},
		{map[string]string{"DISCORD_BOT_TOKEN": "Bot " + testToken, "DISCORD_API_URL": "discord.com",
			"DISCORD_SUPPORT_CHANNEL_ID": "#support", "DISCORD_STAFF_ROLE_ID": "staff"},
			[]string{"DISCORD_BOT_TOKEN", "DISCORD_API_URL", "DISCORD_SUPPORT_CHANNEL_ID", "DISCORD_STAFF_ROLE_ID"}},
		{map[string]string{"DISCORD_BOT_TOKEN": "tab\t" + testToken, "DISCORD_API_URL": "https://user:pw@discord.example"},
			[]string{"DISCORD_BOT_TOKEN", "DISCORD_API_URL"}},
		{map[string]string{"DISCORD_BOT_TOKEN": testToken, "DISCORD_STAFF_ROLE_ID": "920000000000000001"},
			[]string{"DISCORD_STAFF_ROLE_ID"}},
		{map[string]string{"DISCORD_BOT_TOKEN": testToken, "DISCORD_MIN_ACCOUNT_AGE": "a week"},
			[]string{"DISCORD_MIN_ACCOUNT_AGE"}},
		{map[string]string{"DISCORD_BOT_TOKEN": testToken, "DISCORD_MIN_ACCOUNT_AGE": "-1h"},
			[]string{"DISCORD_MIN_ACCOUNT_AGE"}},
	} {
		cfg := parseEnv(t, tc.vars)
		err := cfg.Validate()
		if err == nil {
			t.Errorf("%v: accepted", tc.vars)
			continue
		}
		if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != len(tc.want) {
			t.Errorf("%d errors, want %d: %v", n, len(tc.want), err)
		}
		for _, name := range tc.want {
			if !strings.Contains(err.Error(), name+":") {
				t.Errorf("no error names %s in:\n%v", name, err)
			}
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("errors leak the token:\n%v", err)
		}
		if _, err := New(cfg, newInbox(), nil); err == nil {
			t.Errorf("%v: New accepted what Validate refused", tc.vars)
		}
	}
}
