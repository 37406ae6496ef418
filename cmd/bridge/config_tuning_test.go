package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/bridge"
)

// TestRetentionSetting: finished messages and links are kept 30 days unless told otherwise, "0"
// keeps them forever, and a retention too short to be meant is refused by name.
func TestRetentionSetting(t *testing.T) {
	for _, tt := range []struct {
		value string // "" leaves BRIDGE_RETENTION unset
		want  time.Duration
		err   bool
	}{
		{"", 30 * 24 * time.Hour, false},
		{"2160h", 90 * 24 * time.Hour, false},
		{"0", -1, false},
		{"30m", 0, true},
		{"30d", 0, true},
	} {
		env := validEnv()
		if tt.value != "" {
			env = append(env, "BRIDGE_RETENTION="+tt.value)
		}
		cfg, err := LoadConfig(env)
		if tt.err {
			if err == nil || !strings.Contains(err.Error(), "BRIDGE_RETENTION") {
				t.Errorf("BRIDGE_RETENTION=%q: err = %v, want one naming the variable", tt.value, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("BRIDGE_RETENTION=%q: %v", tt.value, err)
		}
		var o bridge.Options
		cfg.Tuning.apply(&o)
		if o.Retention != tt.want {
			t.Errorf("BRIDGE_RETENTION=%q: retention %s, want %s", tt.value, o.Retention, tt.want)
		}
	}
}

// TestAdmissionSettings: the per-user bounds default to 200 pending messages and 20 new
// conversations a day, the blocklist takes identifiers and refuses anything else by name.
func TestAdmissionSettings(t *testing.T) {
	cfg, err := LoadConfig(validEnv())
	if err != nil {
		t.Fatal(err)
	}
	var o bridge.Options
	cfg.Tuning.apply(&o)
	if o.UserMaxPending != 200 || o.NewConversationsPerDay != 20 || len(o.Blocklist) != 0 || o.BlockedNotice != "" {
		t.Errorf("defaults: %d pending, %d per day, blocklist %q, notice %q", o.UserMaxPending, o.NewConversationsPerDay, o.Blocklist, o.BlockedNotice)
	}
	cfg, err = LoadConfig(append(validEnv(), "BRIDGE_BLOCKLIST=telegram:1, discord:22 ,",
		"BRIDGE_BLOCKED_NOTICE=Bye", "BRIDGE_USER_MAX_PENDING=50", "BRIDGE_USER_NEW_CONVERSATIONS_PER_DAY=3"))
	if err != nil {
		t.Fatal(err)
	}
	o = bridge.Options{}
	cfg.Tuning.apply(&o)
	if strings.Join(o.Blocklist, " ") != "telegram:1 discord:22" || o.BlockedNotice != "Bye" ||
		o.UserMaxPending != 50 || o.NewConversationsPerDay != 3 {
		t.Errorf("parsed %+v", o)
	}
	// The file is checked at start and then left to the core, which reads it again on change.
	file := filepath.Join(t.TempDir(), "blocklist")
	if err := os.WriteFile(file, []byte("# spammers\ntelegram:7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = LoadConfig(append(validEnv(), "BRIDGE_BLOCKLIST_FILE="+file))
	if err != nil {
		t.Fatal(err)
	}
	o = bridge.Options{}
	cfg.Tuning.apply(&o)
	if o.BlocklistFile != file || len(o.Blocklist) != 0 {
		t.Errorf("file: %q, list %q", o.BlocklistFile, o.Blocklist)
	}
	for _, bad := range []string{"BRIDGE_BLOCKLIST=123", "BRIDGE_USER_MAX_PENDING=0", "BRIDGE_USER_NEW_CONVERSATIONS_PER_DAY=x"} {
		name, _, _ := strings.Cut(bad, "=")
		if _, err := LoadConfig(append(validEnv(), bad)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want one naming the variable", bad, err)
		}
	}
}
