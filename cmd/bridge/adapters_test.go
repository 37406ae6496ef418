package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/discord"
	"github.com/onechat/onechat-bridge/adapters/telegram"
)

// adapterConfigOf returns the adapter Config of type C that cfg read.
func adapterConfigOf[C any](t *testing.T, cfg Config) *C {
	t.Helper()
	for _, a := range cfg.adapters {
		if c, ok := any(a.cfg).(*C); ok {
			return c
		}
	}
	var zero C
	t.Fatalf("no %T in the configuration", zero)
	return nil
}

// Every line of the table builds the adapter it names, enabled by its token variable.
func TestAdapterTable(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range adapterTable {
		if seen[string(e.platform)] {
			t.Errorf("%s has two lines", e.platform)
		}
		seen[string(e.platform)] = true
		if v := e.enablingVars(); len(v) != 1 || v[0] != strings.ToUpper(string(e.platform))+"_BOT_TOKEN" {
			t.Errorf("%s is enabled by %v", e.platform, v)
		}
	}
	env := append(validEnv(), "DISCORD_BOT_TOKEN=discord-SECRET-token",
		"SLACK_BOT_TOKEN=xoxb-SECRET-bot", "SLACK_APP_TOKEN=xapp-SECRET-app")
	cfg, err := LoadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	if got := enabledPlatforms(cfg.adapters); strings.Join(got, ",") != "telegram,discord,slack" {
		t.Errorf("enabled %v", got)
	}
	builders, err := buildAdapters(cfg, zap.NewNop())
	if err != nil || len(builders) != len(adapterTable) {
		t.Fatalf("%d builders, %v", len(builders), err)
	}
	for i, build := range builders {
		a, err := build(offlineHost{})
		if err != nil || a.Platform() != adapterTable[i].platform {
			t.Errorf("line %d built %v, %v", i, a, err)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg); strings.Contains(s, "SECRET") || strings.Contains(s, "ABC-secret") {
		t.Errorf("the configuration prints a token: %s", s)
	}
}

// An adapter that is not enabled is not validated; one that is, is, and its errors name its
// variables.
func TestAdapterConfigValidatedWhenEnabled(t *testing.T) {
	if _, err := LoadConfig(append(validEnv(), "DISCORD_API_URL=not a url")); err != nil {
		t.Errorf("a disabled adapter's settings were validated: %v", err)
	}
	_, err := LoadConfig(append(validEnv(), "DISCORD_BOT_TOKEN=x", "DISCORD_API_URL=not a url"))
	if err == nil || !strings.Contains(err.Error(), "DISCORD_API_URL:") {
		t.Errorf("an enabled adapter's settings were not validated: %v", err)
	}
	cfg, err := LoadConfig(append(validEnv(), "TELEGRAM_MODE=webhook", "TELEGRAM_WEBHOOK_URL=https://bridge.example.com/tg"))
	if err != nil {
		t.Fatal(err)
	}
	if tg := adapterConfigOf[telegram.Config](t, cfg); len(tg.WebhookSecret) < 32 {
		t.Errorf("Validate did not fill the derived webhook secret")
	}
}

// NAME_FILE works for every variable of every adapter, and the startup line shows each
// adapter's variables with its secrets redacted.
func TestAdapterVariablesFromFilesAndInTheStartupLine(t *testing.T) {
	env := append(validEnv(),
		"DISCORD_BOT_TOKEN_FILE="+writeSecret(t, "discord-SECRET-from-file\n"),
		"DISCORD_SUPPORT_CHANNEL_ID_FILE="+writeSecret(t, "910000000000000001"),
		"TELEGRAM_MODE=webhook", "TELEGRAM_WEBHOOK_URL=https://bridge.example.com/tg",
		"TELEGRAM_WEBHOOK_SECRET_FILE="+writeSecret(t, "webhook-SECRET-long-enough-to-be-accepted"))
	cfg, err := LoadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	dc := adapterConfigOf[discord.Config](t, cfg)
	if string(dc.Token) != "discord-SECRET-from-file" || dc.SupportChannelID != "910000000000000001" {
		t.Errorf("discord from files: %q", dc.SupportChannelID)
	}
	var out bytes.Buffer
	logger, err := newLogger(cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("starting", configField(&cfg))
	var line struct{ Config map[string]string }
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	params, err := envParams()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range params {
		if _, ok := line.Config[p.Key]; !ok {
			t.Errorf("the startup line lacks %s", p.Key)
		}
	}
	for _, name := range []string{"DISCORD_BOT_TOKEN", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"} {
		if line.Config[name] != "<redacted>" {
			t.Errorf("%s shows as %q", name, line.Config[name])
		}
	}
	if line.Config["DISCORD_SUPPORT_CHANNEL_ID"] != "910000000000000001" || line.Config["TELEGRAM_MODE"] != "webhook" {
		t.Errorf("plain settings: %v", line.Config)
	}
	assertNoSecrets(t, "the startup line", out.String(), []string{"discord-SECRET-from-file", "webhook-SECRET", "ABC-secret-token"})
}
