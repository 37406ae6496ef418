package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/onechat/onechat-bridge/adapters/telegram"
)

func validEnv() []string {
	return []string{
		"DATABASE_URL=postgres://bridge:db-password-x@db:5432/bridge",
		"ONECHAT_BASE_URL=https://chat.example.com",
		"ONECHAT_INBOX_IDENTIFIER=bXKr2F2asDjztoVipLF9Lt8v",
		"ONECHAT_HMAC_TOKEN=wyHVRZzzJhjPMKR2h7LpeJVy",
		"TELEGRAM_BOT_TOKEN=123456:ABC-secret-token",
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(validEnv())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CableURL != "wss://chat.example.com/cable" {
		t.Errorf("cable URL %q, want wss://chat.example.com/cable", cfg.CableURL)
	}
	if cfg.AdminAddr != "127.0.0.1:9090" || adapterConfigOf[telegram.Config](t, cfg).APIURL != "https://api.telegram.org" || cfg.OnResolved != "new" {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	cfg, err = LoadConfig(append(validEnv(), "ONECHAT_BASE_URL=http://onechat:3000/"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CableURL != "ws://onechat:3000/cable" {
		t.Errorf("cable URL %q, want ws://onechat:3000/cable", cfg.CableURL)
	}
}

func TestConfigErrorsNameEachVariable(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		// The line for "no platform" names every platform's variable: TELEGRAM_BOT_TOKEN or
		// DISCORD_BOT_TOKEN or ...
		{"nothing set", nil, []string{"DATABASE_URL", "ONECHAT_BASE_URL", "ONECHAT_INBOX_IDENTIFIER", "TELEGRAM_BOT_TOKEN"}},
		{"malformed", append(validEnv(),
			"DATABASE_URL=mysql://x", "ONECHAT_BASE_URL=chat.example.com", "ONECHAT_CABLE_URL=https://x/cable",
			"TELEGRAM_BOT_TOKEN=nocolon", "TELEGRAM_API_URL=ftp://x", "BRIDGE_ADMIN_ADDR=9090",
			"LOG_LEVEL=loud", "LOG_FORMAT=xml", "ONECHAT_ON_RESOLVED=maybe", "TELEGRAM_POLL_TIMEOUT=forever"),
			[]string{"DATABASE_URL", "ONECHAT_BASE_URL", "ONECHAT_CABLE_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL",
				"BRIDGE_ADMIN_ADDR", "LOG_LEVEL", "LOG_FORMAT", "ONECHAT_ON_RESOLVED", "TELEGRAM_POLL_TIMEOUT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := realMain([]string{"run"}, tt.env, &bytes.Buffer{}, &stderr)
			if code != 2 {
				t.Fatalf("exit code %d, want 2", code)
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != len(tt.want)+1 {
				t.Errorf("got %d problem lines, want %d:\n%s", len(lines)-1, len(tt.want), stderr.String())
			}
			for _, v := range tt.want {
				if !regexp.MustCompile(`(?m)^  (\S+ or )*` + v + `( or \S+)*:`).MatchString(stderr.String()) {
					t.Errorf("no line names %s:\n%s", v, stderr.String())
				}
			}
			for _, secret := range []string{"ABC-secret-token", "db-password-x", "wyHVRZzzJhjPMKR2h7LpeJVy"} {
				if strings.Contains(stderr.String(), secret) {
					t.Errorf("stderr leaks %q", secret)
				}
			}
		})
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	cfg, err := LoadConfig(validEnv())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		for _, secret := range []string{"ABC-secret-token", "db-password-x", "wyHVRZzzJhjPMKR2h7LpeJVy", "bXKr2F2asDjztoVipLF9Lt8v"} {
			if strings.Contains(s, secret) {
				t.Errorf("printed config contains %q", secret)
			}
		}
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := realMain([]string{"version"}, nil, &out, &errOut); code != 0 || !strings.Contains(out.String(), "onechat-bridge") {
		t.Errorf("version: code %d, output %q", code, out.String())
	}
	if code := realMain([]string{"frobnicate"}, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Errorf("unknown command: code %d, stderr %q", code, errOut.String())
	}
}
