package main

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/onechat/onechat-bridge/adapters/discord/discordtest"
)

// runCheck runs `bridge check` with env and returns its exit code and output.
func runCheck(t *testing.T, env []string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := realMain([]string{"check"}, env, &out, &errOut)
	return code, out.String() + errOut.String()
}

func replaceEnv(env []string, kv string) []string {
	name, _, _ := strings.Cut(kv, "=")
	return append(without(env, name), kv)
}

func TestCheckAllOK(t *testing.T) {
	w := newWorld(t)
	code, out := runCheck(t, w.env)
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, out)
	}
	for _, name := range []string{"config", "postgres", "migrations", "onechat", "cable", "telegram"} {
		if !strings.Contains(out, "OK    "+name) {
			t.Errorf("no OK line for %s:\n%s", name, out)
		}
	}
	if strings.Contains(out, "FAIL") {
		t.Errorf("unexpected FAIL:\n%s", out)
	}
	assertNoSecrets(t, "check output", out, w.secretsOf())
}

func TestCheckFailuresCarryHints(t *testing.T) {
	w := newWorld(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name, set, check, hint string
	}{
		{"database unreachable", "DATABASE_URL=postgres://bridge:" + testDBPassword + "@" + closedAddr + "/bridge",
			"postgres", "DATABASE_URL"},
		{"wrong inbox", "ONECHAT_INBOX_IDENTIFIER=notTheInbox", "onechat", "ONECHAT_INBOX_IDENTIFIER is wrong or the inbox is not an API inbox"},
		{"onechat unreachable", "ONECHAT_BASE_URL=http://" + closedAddr, "onechat", "cannot reach ONECHAT_BASE_URL"},
		{"cable not at /cable", "ONECHAT_CABLE_URL=ws" + strings.TrimPrefix(w.ocURL, "http") + "/nocable", "cable", "ONECHAT_CABLE_URL"},
		{"bot token rejected", "TELEGRAM_BOT_TOKEN=999:WRONG-token", "telegram", "Telegram rejected TELEGRAM_BOT_TOKEN"},
		{"bad config", "LOG_LEVEL=loud", "config", "LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runCheck(t, replaceEnv(w.env, tt.set))
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			var line string
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "FAIL  "+tt.check) {
					line = l
				}
			}
			if line == "" {
				t.Fatalf("no FAIL line for %s:\n%s", tt.check, out)
			}
			if !strings.Contains(line, tt.hint) {
				t.Errorf("the FAIL line does not say %q:\n%s", tt.hint, line)
			}
			assertNoSecrets(t, "check output", out, append(w.secretsOf(), "WRONG-token", "notTheInbox"))
		})
	}

	t.Run("schema newer than the binary", func(t *testing.T) {
		if code, out := runCheck(t, w.env); code != 0 { // migrates nothing; the bridge has not run
			t.Logf("before the first run: %s", out)
		}
		if code := realMain([]string{"migrate"}, w.env, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
			t.Fatal("migrate failed")
		}
		execSQL(t, w.pg.url(""), "INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, true)")
		code, out := runCheck(t, w.env)
		if code != 1 || !strings.Contains(out, "FAIL  migrations") || !strings.Contains(out, "a newer bridge migrated this database") {
			t.Errorf("exit %d, want 1 with a migrations FAIL and hint:\n%s", code, out)
		}
	})
}

func TestCheckDiscord(t *testing.T) {
	w := newWorld(t)
	dc := discordtest.NewServer(t, "discord-bot-token-x")
	env := append(w.env, "DISCORD_BOT_TOKEN=discord-bot-token-x", "DISCORD_API_URL="+dc.APIURL)
	code, out := runCheck(t, env)
	if code != 0 || !strings.Contains(out, "OK    discord") {
		t.Fatalf("exit %d, want 0 and an OK line for discord:\n%s", code, out)
	}
	code, out = runCheck(t, replaceEnv(env, "DISCORD_BOT_TOKEN=wrong-discord-token"))
	if code != 1 || !strings.Contains(out, "Discord rejected DISCORD_BOT_TOKEN") {
		t.Errorf("exit %d, want 1 with the token hint:\n%s", code, out)
	}
	assertNoSecrets(t, "check output", out, append(w.secretsOf(), "wrong-discord-token", "discord-bot-token-x"))
}

func TestCheckAgentAPIToken(t *testing.T) {
	w := newWorld(t)
	token := w.oc.AccessToken()
	env := append(w.env, "ONECHAT_API_ACCESS_TOKEN="+token, "ONECHAT_ACCOUNT_ID=1")
	code, out := runCheck(t, env)
	if code != 0 || !strings.Contains(out, "OK    agent api") {
		t.Fatalf("exit %d, want 0 and an OK line for the agent api:\n%s", code, out)
	}
	for _, tt := range []struct{ set, hint string }{
		{"ONECHAT_API_ACCESS_TOKEN=wrong-access-token", "OneChat refused ONECHAT_API_ACCESS_TOKEN"},
		{"ONECHAT_ACCOUNT_ID=2", "ONECHAT_ACCOUNT_ID is wrong"},
	} {
		code, out = runCheck(t, replaceEnv(env, tt.set))
		if code != 1 || !strings.Contains(out, "FAIL  agent api") || !strings.Contains(out, tt.hint) {
			t.Errorf("%s: exit %d, want 1 with the hint %q:\n%s", tt.set, code, tt.hint, out)
		}
		assertNoSecrets(t, "check output", out, append(w.secretsOf(), token, "wrong-access-token"))
	}
	// Without the token there is no line for it.
	if code, out = runCheck(t, w.env); code != 0 || strings.Contains(out, "agent api") {
		t.Errorf("exit %d without a token:\n%s", code, out)
	}
}
