package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/adapters/telegram"
	"github.com/onechat/onechat-bridge/bridge"
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
		{"access token without account", append(validEnv(), "ONECHAT_API_ACCESS_TOKEN=agent-token-x"), []string{"ONECHAT_ACCOUNT_ID"}},
		{"account without access token", append(validEnv(), "ONECHAT_ACCOUNT_ID=3"), []string{"ONECHAT_API_ACCESS_TOKEN"}},
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
			for _, secret := range []string{"ABC-secret-token", "db-password-x", "wyHVRZzzJhjPMKR2h7LpeJVy", "agent-token-x"} {
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

func TestConfigRefusesURLCredentials(t *testing.T) {
	for _, kv := range []string{
		"ONECHAT_BASE_URL=https://admin:hunter2-cred@chat.example.com",
		"ONECHAT_CABLE_URL=wss://admin:hunter2-cred@chat.example.com/cable",
		"TELEGRAM_API_URL=https://admin:hunter2-cred@tg.example.com",
		"DISCORD_API_URL=https://admin:hunter2-cred@discord.example.com/api/v10",
		"ONECHAT_STORAGE_ORIGINS=https://bucket.s3.amazonaws.com,https://admin:hunter2-cred@minio:9000",
	} {
		name, _, _ := strings.Cut(kv, "=")
		t.Run(name, func(t *testing.T) {
			env := append(validEnv(), kv)
			if name == "DISCORD_API_URL" {
				env = append(env, "DISCORD_BOT_TOKEN=discord-token-x")
			}
			var stderr bytes.Buffer
			if code := realMain([]string{"run"}, env, &bytes.Buffer{}, &stderr); code != 2 {
				t.Fatalf("exit code %d, want 2; stderr: %s", code, stderr.String())
			}
			out := stderr.String()
			if !strings.Contains(out, name+": must not contain credentials") {
				t.Errorf("stderr does not name %s: %s", name, out)
			}
			if strings.Contains(out, "hunter2-cred") || strings.Contains(out, "admin:") {
				t.Errorf("stderr prints the credentials: %s", out)
			}
		})
	}
	t.Run("DATABASE_URL carries credentials by design", func(t *testing.T) {
		if _, err := LoadConfig(validEnv()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConfigAttachmentSettings(t *testing.T) {
	cfg, err := LoadConfig(validEnv())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.maxAttachmentSize != 100<<20 || cfg.storageOrigins != nil {
		t.Errorf("defaults: size %d, origins %v", cfg.maxAttachmentSize, cfg.storageOrigins)
	}
	cfg, err = LoadConfig(append(validEnv(), "ONECHAT_MAX_ATTACHMENT_SIZE=2GB",
		"ONECHAT_STORAGE_ORIGINS= https://bucket.s3.eu-west-1.amazonaws.com , https://storage.googleapis.com"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.maxAttachmentSize != 2<<30 || len(cfg.storageOrigins) != 2 || cfg.storageOrigins[1] != "https://storage.googleapis.com:443" {
		t.Errorf("size %d, origins %v", cfg.maxAttachmentSize, cfg.storageOrigins)
	}
	for _, kv := range []string{"ONECHAT_MAX_ATTACHMENT_SIZE=lots", "ONECHAT_MAX_ATTACHMENT_SIZE=10",
		"ONECHAT_STORAGE_ORIGINS=https://bucket.s3.amazonaws.com/path", "ONECHAT_STORAGE_ORIGINS=bucket.s3.amazonaws.com"} {
		name, _, _ := strings.Cut(kv, "=")
		if _, err := LoadConfig(append(validEnv(), kv)); err == nil || !strings.Contains(err.Error(), name+":") {
			t.Errorf("%s: err = %v, want one naming it", kv, err)
		}
	}
}

func TestTicketLifecycleSettings(t *testing.T) {
	cfg, err := LoadConfig(validEnv())
	if err != nil {
		t.Fatal(err)
	}
	var o bridge.Options
	cfg.Tuning.apply(&o)
	if o.ResolvedNotice != bridge.NoticeAuto || o.CSATCommentWindow != 10*time.Minute {
		t.Errorf("defaults: notice %q, comment window %s; want auto, 10m", o.ResolvedNotice, o.CSATCommentWindow)
	}
	cfg, err = LoadConfig(append(validEnv(), "BRIDGE_RESOLVED_NOTICE=never", "BRIDGE_CSAT_COMMENT_WINDOW=0"))
	if err != nil {
		t.Fatal(err)
	}
	o = bridge.Options{}
	cfg.Tuning.apply(&o)
	if o.ResolvedNotice != bridge.NoticeNever || o.CSATCommentWindow >= 0 {
		t.Errorf("notice %q, comment window %s; want never, off", o.ResolvedNotice, o.CSATCommentWindow)
	}
	_, err = LoadConfig(append(validEnv(), "BRIDGE_RESOLVED_NOTICE=sometimes", "BRIDGE_CSAT_COMMENT_WINDOW=soon"))
	for _, v := range []string{"BRIDGE_RESOLVED_NOTICE", "BRIDGE_CSAT_COMMENT_WINDOW"} {
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("error %v does not name %s", err, v)
		}
	}
}
