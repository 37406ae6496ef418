package main

import (
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
