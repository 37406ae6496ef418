package main

import (
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/telegram"
	"github.com/onechat/onechat-bridge/bridge"
)

// TelegramSettings are the Telegram adapter's settings. TELEGRAM_BOT_TOKEN enables it.
type TelegramSettings struct {
	BotToken    Secret `env:"TELEGRAM_BOT_TOKEN"`
	APIURL      string `env:"TELEGRAM_API_URL" envDefault:"https://api.telegram.org"`
	PollTimeout string `env:"TELEGRAM_POLL_TIMEOUT" envDefault:"50s"`

	pollTimeout time.Duration
}

func (s *TelegramSettings) enabled() bool { return s.BotToken != "" }

// validate checks the settings of an enabled adapter, one error per problem, each naming its
// variable.
func (s *TelegramSettings) validate() []error {
	if !s.enabled() {
		return nil
	}
	var errs []error
	if !strings.Contains(string(s.BotToken), ":") {
		errs = append(errs, fmt.Errorf("TELEGRAM_BOT_TOKEN: does not look like a bot token (expected 123456:ABC...)"))
	}
	if !isHTTPURL(s.APIURL) {
		errs = append(errs, fmt.Errorf("TELEGRAM_API_URL: must be an http:// or https:// URL, got %q", s.APIURL))
	}
	if d, err := time.ParseDuration(s.PollTimeout); err != nil || d < time.Second || d > 10*time.Minute {
		errs = append(errs, fmt.Errorf("TELEGRAM_POLL_TIMEOUT: must be a duration between 1s and 10m, got %q", s.PollTimeout))
	} else {
		s.pollTimeout = d
	}
	return errs
}

// logFields describes the effective settings for the startup log line, without secrets.
func (s *TelegramSettings) logFields() []zap.Field {
	return []zap.Field{
		zap.Bool("telegram", s.enabled()),
		zap.String("telegram_api_url", s.APIURL),
	}
}

// adapter builds the Telegram adapter.
func (s *TelegramSettings) adapter(logger *zap.Logger) (bridge.Adapter, error) {
	return telegram.New(telegram.Config{
		Token:       string(s.BotToken),
		APIURL:      s.APIURL,
		PollTimeout: s.pollTimeout,
	}, logger.Named("telegram"))
}
