package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/caarlos0/env/v11"
)

// Secret is a configuration value that never prints.
type Secret string

// String implements fmt.Stringer so a Secret never appears in logs or errors.
func (Secret) String() string { return "<redacted>" }

// GoString keeps %#v from printing the value either.
func (Secret) GoString() string { return "<redacted>" }

// Config is the bridge's whole configuration, read from the environment.
type Config struct {
	DatabaseURL Secret `env:"DATABASE_URL"`

	OneChatBaseURL  string `env:"ONECHAT_BASE_URL"`
	InboxIdentifier Secret `env:"ONECHAT_INBOX_IDENTIFIER"`
	HMACToken       Secret `env:"ONECHAT_HMAC_TOKEN"`
	CableURL        string `env:"ONECHAT_CABLE_URL"`
	// OnResolved is "new" (a user's message after resolve opens a new conversation) or
	// "reopen" (it reopens the resolved one).
	OnResolved string `env:"ONECHAT_ON_RESOLVED" envDefault:"new"`

	// Each adapter's settings live in their own file (config_<platform>.go).
	Telegram TelegramSettings

	AdminAddr string `env:"BRIDGE_ADMIN_ADDR" envDefault:"127.0.0.1:9090"`
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
}

// LoadConfig reads the configuration from environ (os.Environ() form) and validates it. The
// error lists one line per problem, each naming the variable.
func LoadConfig(environ []string) (Config, error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var cfg Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: vars}); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Validate checks every setting and fills the derived ones. It reports all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	if c.DatabaseURL == "" {
		bad("DATABASE_URL", "is required (e.g. postgres://bridge:secret@db:5432/bridge)")
	} else if u, err := url.Parse(string(c.DatabaseURL)); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("DATABASE_URL", "must be a postgres:// URL")
	}
	if c.OneChatBaseURL == "" {
		bad("ONECHAT_BASE_URL", "is required (e.g. https://chat.example.com)")
	} else if !isHTTPURL(c.OneChatBaseURL) {
		bad("ONECHAT_BASE_URL", "must be an http:// or https:// URL, got %q", c.OneChatBaseURL)
	}
	if c.InboxIdentifier == "" {
		bad("ONECHAT_INBOX_IDENTIFIER", "is required: the identifier shown in the API inbox's settings")
	} else if strings.ContainsAny(string(c.InboxIdentifier), "/?# ") {
		bad("ONECHAT_INBOX_IDENTIFIER", "must be the bare inbox identifier, not a URL")
	}
	if c.CableURL == "" && isHTTPURL(c.OneChatBaseURL) {
		c.CableURL = defaultCableURL(c.OneChatBaseURL)
	} else if c.CableURL != "" {
		if u, err := url.Parse(c.CableURL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			bad("ONECHAT_CABLE_URL", "must be a ws:// or wss:// URL, got %q", c.CableURL)
		}
	}
	if c.OnResolved != "new" && c.OnResolved != "reopen" {
		bad("ONECHAT_ON_RESOLVED", "must be new or reopen, got %q", c.OnResolved)
	}
	errs = append(errs, c.Telegram.validate()...)
	if !c.Telegram.enabled() {
		bad("TELEGRAM_BOT_TOKEN", "is required: the token @BotFather gave your bot")
	}
	if c.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			bad("BRIDGE_ADMIN_ADDR", "must be host:port (or empty to disable), got %q", c.AdminAddr)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		bad("LOG_FORMAT", "must be json or console, got %q", c.LogFormat)
	}
	return errors.Join(errs...)
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// defaultCableURL turns the OneChat base URL into its ActionCable URL: ws(s)://host/cable.
func defaultCableURL(base string) string {
	u, _ := url.Parse(base)
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/cable"
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}
