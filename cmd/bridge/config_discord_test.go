package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/discord"
)

func parseDiscord(t *testing.T, vars map[string]string) DiscordSettings {
	t.Helper()
	var s DiscordSettings
	if err := env.ParseWithOptions(&s, env.Options{Environment: vars}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDiscordSettings(t *testing.T) {
	const token = "MTAx.SECRET-discord.xyz"
	s := parseDiscord(t, map[string]string{})
	if s.enabled() || len(s.validate()) != 0 {
		t.Errorf("no token: enabled=%v errs=%v", s.enabled(), s.validate())
	}

	s = parseDiscord(t, map[string]string{"DISCORD_BOT_TOKEN": token, "DISCORD_SUPPORT_CHANNEL_ID": "910000000000000001", "DISCORD_STAFF_ROLE_ID": "920000000000000001"})
	if errs := s.validate(); len(errs) != 0 {
		t.Fatalf("valid settings rejected: %v", errs)
	}
	if s.APIURL != "https://discord.com/api/v10" {
		t.Errorf("default API URL %q", s.APIURL)
	}
	a, err := s.adapter(offlineHost{}, zap.NewNop())
	if err != nil || a.Platform() != discord.Platform {
		t.Fatalf("adapter: %v %v", a, err)
	}
	if got := fmt.Sprintf("%v %+v %#v", s, s, s); strings.Contains(got, "SECRET") {
		t.Errorf("settings print the token: %s", got)
	}

	bad := parseDiscord(t, map[string]string{"DISCORD_BOT_TOKEN": "Bot " + token, "DISCORD_API_URL": "discord.com",
		"DISCORD_SUPPORT_CHANNEL_ID": "#support", "DISCORD_STAFF_ROLE_ID": "staff"})
	errs := bad.validate()
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	joined := strings.Join(all, "\n")
	for _, name := range []string{"DISCORD_BOT_TOKEN", "DISCORD_API_URL", "DISCORD_SUPPORT_CHANNEL_ID", "DISCORD_STAFF_ROLE_ID"} {
		if !strings.Contains(joined, name+":") {
			t.Errorf("no error names %s in:\n%s", name, joined)
		}
	}
	if strings.Contains(joined, "SECRET") {
		t.Errorf("errors leak the token:\n%s", joined)
	}
	role := parseDiscord(t, map[string]string{"DISCORD_BOT_TOKEN": token, "DISCORD_STAFF_ROLE_ID": "920000000000000001"})
	if errs := role.validate(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "DISCORD_SUPPORT_CHANNEL_ID") {
		t.Errorf("staff role without support channel: %v", errs)
	}
}
