package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/telegram"
	"github.com/onechat/onechat-bridge/bridge"
)

// defaultGreeting answers /start, the first thing a Telegram user sends to a bot.
const defaultGreeting = "Hi! Send us your question here and our team will answer as soon as possible."

// TelegramSettings are the Telegram adapter's settings. TELEGRAM_BOT_TOKEN enables it.
type TelegramSettings struct {
	BotToken    Secret `env:"TELEGRAM_BOT_TOKEN"`
	APIURL      string `env:"TELEGRAM_API_URL" envDefault:"https://api.telegram.org"`
	PollTimeout string `env:"TELEGRAM_POLL_TIMEOUT" envDefault:"50s"`
	// Mode is polling (default: no public URL needed) or webhook.
	Mode          string `env:"TELEGRAM_MODE" envDefault:"polling"`
	WebhookURL    string `env:"TELEGRAM_WEBHOOK_URL"`
	WebhookSecret Secret `env:"TELEGRAM_WEBHOOK_SECRET"`
	WebhookListen string `env:"TELEGRAM_WEBHOOK_LISTEN" envDefault:":8443"`
	// Greeting answers /start; "none" sends nothing.
	Greeting    string `env:"TELEGRAM_GREETING" envDefault:"Hi! Send us your question here and our team will answer as soon as possible."` // keep in step with defaultGreeting
	AlbumWindow string `env:"TELEGRAM_ALBUM_WINDOW" envDefault:"1s"`
	// PerChatInterval and GlobalInterval pace sends below Telegram's limits (about one message
	// a second per chat, 30 a second in all). Raise them only for a self-hosted Bot API server.
	PerChatInterval string `env:"TELEGRAM_PER_CHAT_INTERVAL" envDefault:"1s"`
	GlobalInterval  string `env:"TELEGRAM_GLOBAL_INTERVAL" envDefault:"34ms"`

	pollTimeout     time.Duration
	perChat, global time.Duration
	albumWindow     time.Duration
	secretGenerated bool
}

func (s *TelegramSettings) enabled() bool { return s.BotToken != "" }

// validate checks the settings of an enabled adapter, one error per problem, each naming its
// variable. In webhook mode without TELEGRAM_WEBHOOK_SECRET it generates a random secret:
// the bridge registers the webhook at every start, so Telegram always has the current one.
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
	if d, err := time.ParseDuration(s.AlbumWindow); err != nil || d < 100*time.Millisecond || d > 10*time.Second {
		errs = append(errs, fmt.Errorf("TELEGRAM_ALBUM_WINDOW: must be a duration between 100ms and 10s, got %q", s.AlbumWindow))
	} else {
		s.albumWindow = d
	}
	for _, iv := range []struct {
		name, v string
		dst     *time.Duration
	}{{"TELEGRAM_PER_CHAT_INTERVAL", s.PerChatInterval, &s.perChat}, {"TELEGRAM_GLOBAL_INTERVAL", s.GlobalInterval, &s.global}} {
		if d, err := time.ParseDuration(iv.v); err != nil || d <= 0 || d > time.Minute {
			errs = append(errs, fmt.Errorf("%s: must be a duration above 0 and up to 1m, got %q", iv.name, iv.v))
		} else {
			*iv.dst = d
		}
	}
	switch s.Mode {
	case telegram.ModePolling:
	case telegram.ModeWebhook:
		if u, err := url.Parse(s.WebhookURL); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("TELEGRAM_WEBHOOK_URL: must be the public https:// URL Telegram posts updates to, got %q", s.WebhookURL))
		}
		if _, _, err := net.SplitHostPort(s.WebhookListen); err != nil {
			errs = append(errs, fmt.Errorf("TELEGRAM_WEBHOOK_LISTEN: must be host:port, got %q", s.WebhookListen))
		}
		switch secret := string(s.WebhookSecret); {
		case secret == "":
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			s.WebhookSecret = Secret(base64.RawURLEncoding.EncodeToString(b))
			s.secretGenerated = true
		case len(secret) > 256 || strings.IndexFunc(secret, func(r rune) bool {
			return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-')
		}) >= 0:
			errs = append(errs, fmt.Errorf("TELEGRAM_WEBHOOK_SECRET: must be 1-256 characters of A-Z, a-z, 0-9, '_' and '-'"))
		}
	default:
		errs = append(errs, fmt.Errorf("TELEGRAM_MODE: must be polling or webhook, got %q", s.Mode))
	}
	return errs
}

// logFields describes the effective settings for the startup log line, without secrets.
func (s *TelegramSettings) logFields() []zap.Field {
	fields := []zap.Field{
		zap.Bool("telegram", s.enabled()),
		zap.String("telegram_api_url", s.APIURL),
		zap.String("telegram_mode", s.Mode),
	}
	if s.Mode == telegram.ModeWebhook {
		fields = append(fields, zap.String("telegram_webhook_url", s.WebhookURL),
			zap.String("telegram_webhook_listen", s.WebhookListen),
			zap.Bool("telegram_webhook_secret_generated", s.secretGenerated))
	}
	return fields
}

// adapter builds the Telegram adapter.
func (s *TelegramSettings) adapter(h bridge.Host, logger *zap.Logger) (bridge.Adapter, error) {
	return telegram.New(s.config(), h, logger.Named("telegram"))
}

// config is the adapter's Config from the validated settings.
func (s *TelegramSettings) config() telegram.Config {
	greeting := s.Greeting
	if strings.EqualFold(strings.TrimSpace(greeting), "none") {
		greeting = ""
	}
	return telegram.Config{
		Token:         string(s.BotToken),
		APIURL:        s.APIURL,
		PollTimeout:   s.pollTimeout,
		Mode:          s.Mode,
		WebhookURL:    s.WebhookURL,
		WebhookSecret: string(s.WebhookSecret),
		WebhookListen: s.WebhookListen,
		Greeting:      greeting,
		AlbumWindow:   s.albumWindow,

		PerChatInterval: s.perChat,
		GlobalInterval:  s.global,
	}
}
