package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/telegram"
)

func TestTelegramConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(validEnv())
	if err != nil {
		t.Fatal(err)
	}
	tc := cfg.Telegram.config()
	if tc.Mode != telegram.ModePolling || tc.Greeting != defaultGreeting || tc.AlbumWindow != time.Second || tc.PollTimeout != 50*time.Second {
		t.Fatalf("defaults %v greeting %q album %s", tc, tc.Greeting, tc.AlbumWindow)
	}
	if _, err := cfg.Telegram.adapter(offlineHost{}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	cfg, err = LoadConfig(append(validEnv(), "TELEGRAM_GREETING=none"))
	if err != nil || cfg.Telegram.config().Greeting != "" {
		t.Fatalf("greeting none: %q, %v", cfg.Telegram.config().Greeting, err)
	}
}

func TestTelegramWebhookConfig(t *testing.T) {
	env := append(validEnv(), "TELEGRAM_MODE=webhook", "TELEGRAM_WEBHOOK_URL=https://bridge.example.com/tg")
	cfg, err := LoadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	tc := cfg.Telegram.config()
	if tc.WebhookListen != ":8443" || len(tc.WebhookSecret) < 32 || !cfg.Telegram.secretGenerated {
		t.Fatalf("webhook %v", tc)
	}
	if _, err := cfg.Telegram.adapter(offlineHost{}, zap.NewNop()); err != nil {
		t.Fatalf("a generated secret must be one Telegram accepts: %v", err)
	}
	if s := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg); strings.Contains(s, tc.WebhookSecret) {
		t.Fatal("the webhook secret prints")
	}
	cfg, err = LoadConfig(append(env, "TELEGRAM_WEBHOOK_SECRET=my-Secret_1"))
	if err != nil || cfg.Telegram.config().WebhookSecret != "my-Secret_1" {
		t.Fatalf("given secret: %v", err)
	}
}

func TestTelegramConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{[]string{"TELEGRAM_MODE=push"}, []string{"TELEGRAM_MODE"}},
		{[]string{"TELEGRAM_MODE=webhook"}, []string{"TELEGRAM_WEBHOOK_URL"}},
		{[]string{"TELEGRAM_MODE=webhook", "TELEGRAM_WEBHOOK_URL=http://insecure.example.com/tg",
			"TELEGRAM_WEBHOOK_SECRET=has spaces!", "TELEGRAM_WEBHOOK_LISTEN=8443"},
			[]string{"TELEGRAM_WEBHOOK_URL", "TELEGRAM_WEBHOOK_SECRET", "TELEGRAM_WEBHOOK_LISTEN"}},
		{[]string{"TELEGRAM_ALBUM_WINDOW=1h"}, []string{"TELEGRAM_ALBUM_WINDOW"}},
	} {
		_, err := LoadConfig(append(validEnv(), tc.env...))
		if err == nil {
			t.Errorf("%v: no error", tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w+":") {
				t.Errorf("%v: error %q does not name %s", tc.env, err, w)
			}
		}
		if strings.Contains(err.Error(), "has spaces") {
			t.Errorf("the secret is echoed: %v", err)
		}
	}
}
