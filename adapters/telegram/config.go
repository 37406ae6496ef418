package telegram

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/onechat/onechat-bridge/adapters/secret"
)

// DefaultGreeting answers /start, the first thing a Telegram user sends to a bot. It is the
// envDefault of Config.Greeting (a test keeps the two in step) and the English text of
// texts.Greeting: left at it, the greeting is the catalogue's, in the user's language.
const DefaultGreeting = "Hi! Send us your question here and our team will answer as soon as possible."

// MinWebhookSecret is the shortest TELEGRAM_WEBHOOK_SECRET accepted: the secret is all that
// tells Telegram's posts from anyone else's on the public URL, so it must not be guessable.
const MinWebhookSecret = 32

// Config configures the Telegram adapter. The env tags name the bridge's environment
// variables; TELEGRAM_BOT_TOKEN enables the adapter. A zero field means its default, so a
// Config built in code needs only Token. Validate is the one place its rules live: New calls
// it, and fills the derived values from it.
type Config struct {
	// Token is the bot token from @BotFather.
	Token secret.String `env:"TELEGRAM_BOT_TOKEN"`
	// APIURL is the Bot API server: DefaultAPIURL when empty, or a self-hosted Bot API server or
	// a test fake. A path prefix is allowed.
	APIURL string `env:"TELEGRAM_API_URL" envDefault:"https://api.telegram.org"`
	// PollTimeout is the long-poll timeout sent to getUpdates, 1s to 10m in whole seconds:
	// DefaultPollTimeout when empty.
	PollTimeout string `env:"TELEGRAM_POLL_TIMEOUT" envDefault:"50s"`

	// Mode is ModePolling (the default: no public URL needed) or ModeWebhook.
	Mode string `env:"TELEGRAM_MODE" envDefault:"polling"`
	// WebhookURL is the public HTTPS URL Telegram posts updates to (webhook mode). Its path is
	// the path the adapter's own server answers on.
	WebhookURL string `env:"TELEGRAM_WEBHOOK_URL"`
	// WebhookSecret is sent by Telegram in X-Telegram-Bot-Api-Secret-Token with every update;
	// requests without it are refused. 32-256 characters of A-Z, a-z, 0-9, _ and -. In webhook
	// mode Validate generates a random one when it is empty: the adapter registers the webhook
	// at every start, so Telegram always has the current one.
	WebhookSecret secret.String `env:"TELEGRAM_WEBHOOK_SECRET"`
	// WebhookListen is the address the webhook server listens on: DefaultWebhookListen when
	// empty. A reverse proxy terminates TLS in front of it.
	WebhookListen string `env:"TELEGRAM_WEBHOOK_LISTEN" envDefault:":8443"`

	// Greeting is sent (as Markdown) when a user starts the bot with /start; "none" sends
	// nothing. /start itself never becomes a OneChat message. Left at DefaultGreeting, or
	// empty, the greeting is the catalogue's (texts.Greeting) in the user's language; any other
	// text is sent to every user as it is, whatever their language.
	Greeting string `env:"TELEGRAM_GREETING" envDefault:"Hi! Send us your question here and our team will answer as soon as possible."`
	// GreetingInterval is how long after greeting a chat its further /start are not answered,
	// 1s to a year: DefaultGreetingInterval when empty. It is remembered in the host's store, so
	// it holds across restarts and instances.
	GreetingInterval string `env:"TELEGRAM_GREETING_INTERVAL" envDefault:"24h"`
	// AlbumWindow is how long to wait for more parts of an album (a media group) before it
	// becomes one message, 100ms to 10s: DefaultAlbumWindow when empty.
	AlbumWindow string `env:"TELEGRAM_ALBUM_WINDOW" envDefault:"1s"`
	// PerChatInterval and GlobalInterval pace sends before Telegram has to: at most one message
	// per PerChatInterval to one chat (1s when empty) and one per GlobalInterval in all (1/30 s
	// when empty). Raise them only for a self-hosted Bot API server.
	PerChatInterval string `env:"TELEGRAM_PER_CHAT_INTERVAL" envDefault:"1s"`
	GlobalInterval  string `env:"TELEGRAM_GLOBAL_INTERVAL" envDefault:"34ms"`

	// HTTPClient sends every request. When nil, the adapter uses its own client with
	// Timeout = PollTimeout + 15s. A client given here must allow a request to last longer
	// than PollTimeout.
	HTTPClient *http.Client
	// MaxDownloadSize is the largest file the Bot API server lets the bot download. Zero means
	// 20 MB for the cloud API and no limit for a self-hosted server (APIURL set); larger files
	// reach the agent as a note naming the file and its size.
	MaxDownloadSize int64
	// MaxUploadSize is the largest file the bot may send: zero means 50 MB for the cloud API
	// and 2000 MB for a self-hosted server.
	MaxUploadSize int64

	// Derived by Validate.
	apiURL                 string
	pollTimeout            time.Duration
	albumWindow            time.Duration
	greetingInterval       time.Duration
	perChat, global        time.Duration
	greeting               string // a fixed greeting for everyone; "" means the catalogue's
	greetingOff            bool
	webhookSecretGenerated bool
}

// Enabled reports whether the bridge is to run the adapter: a bot token is set.
func (cfg *Config) Enabled() bool { return cfg.Token != "" }

// Validate checks every setting, fills the derived ones and the defaults of empty ones, and
// reports all problems at once, one error per problem naming its variable. No error holds
// the token or the webhook secret.
func (cfg *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	switch token := string(cfg.Token); {
	case token == "":
		bad("TELEGRAM_BOT_TOKEN", "is required (the token @BotFather gave your bot)")
	case !strings.Contains(token, ":") || strings.IndexFunc(token, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == ':' || r == '_' || r == '-')
	}) >= 0:
		// Not echoing the token: it is a secret even when it is malformed.
		bad("TELEGRAM_BOT_TOKEN", "does not look like a bot token (expected 123456:ABC..., letters, digits, ':', '_' and '-')")
	}
	cfg.apiURL = cfg.APIURL
	if cfg.apiURL == "" {
		cfg.apiURL = DefaultAPIURL
	}
	if u, err := url.Parse(cfg.apiURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("TELEGRAM_API_URL", "must be an http:// or https:// URL, got %q", cfg.APIURL)
	}
	duration := func(name, v string, def, minD, maxD time.Duration, dst *time.Duration) {
		if v == "" {
			*dst = def
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < minD || d > maxD {
			bad(name, "must be a duration between %s and %s, got %q", minD, maxD, v)
			return
		}
		*dst = d
	}
	duration("TELEGRAM_POLL_TIMEOUT", cfg.PollTimeout, DefaultPollTimeout, time.Second, 10*time.Minute, &cfg.pollTimeout)
	cfg.pollTimeout = cfg.pollTimeout.Truncate(time.Second)
	duration("TELEGRAM_ALBUM_WINDOW", cfg.AlbumWindow, DefaultAlbumWindow, 100*time.Millisecond, 10*time.Second, &cfg.albumWindow)
	duration("TELEGRAM_GREETING_INTERVAL", cfg.GreetingInterval, DefaultGreetingInterval, time.Second, 365*24*time.Hour, &cfg.greetingInterval)
	duration("TELEGRAM_PER_CHAT_INTERVAL", cfg.PerChatInterval, time.Second, time.Millisecond, time.Minute, &cfg.perChat)
	// Down to 100 µs: bots with raised limits, and benchmarks against a fake, where 1 ms would
	// cap sends at 1,000 a second.
	duration("TELEGRAM_GLOBAL_INTERVAL", cfg.GlobalInterval, time.Second/30, 100*time.Microsecond, time.Minute, &cfg.global)
	if c := cfg.HTTPClient; c != nil && c.Timeout != 0 && c.Timeout <= cfg.pollTimeout {
		errs = append(errs, fmt.Errorf("telegram: HTTP client timeout %s must exceed the poll timeout %s", c.Timeout, cfg.pollTimeout))
	}
	switch cfg.Mode {
	case "", ModePolling:
	case ModeWebhook:
		if u, err := url.Parse(cfg.WebhookURL); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("TELEGRAM_WEBHOOK_URL", "must be the public https:// URL Telegram posts updates to, got %q", cfg.WebhookURL)
		}
		if cfg.WebhookListen == "" {
			cfg.WebhookListen = DefaultWebhookListen
		}
		if _, _, err := net.SplitHostPort(cfg.WebhookListen); err != nil {
			bad("TELEGRAM_WEBHOOK_LISTEN", "must be host:port, got %q", cfg.WebhookListen)
		}
		switch s := string(cfg.WebhookSecret); {
		case s == "":
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			cfg.WebhookSecret = secret.String(base64.RawURLEncoding.EncodeToString(b))
			cfg.webhookSecretGenerated = true
		case len(s) < MinWebhookSecret || len(s) > 256 || strings.IndexFunc(s, func(r rune) bool {
			return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-')
		}) >= 0:
			// Its length is not said either: the secret is all that guards the public URL.
			bad("TELEGRAM_WEBHOOK_SECRET", "must be %d-256 characters of A-Z, a-z, 0-9, '_' and '-' (or unset, for a generated one)", MinWebhookSecret)
		}
	default:
		bad("TELEGRAM_MODE", "must be %s or %s, got %q", ModePolling, ModeWebhook, cfg.Mode)
	}
	cfg.greeting, cfg.greetingOff = cfg.Greeting, false
	switch {
	case strings.EqualFold(strings.TrimSpace(cfg.Greeting), "none"):
		cfg.greeting, cfg.greetingOff = "", true
	case strings.TrimSpace(cfg.Greeting) == "", cfg.Greeting == DefaultGreeting:
		cfg.greeting = "" // the catalogue's, in the user's language
	}
	return errors.Join(errs...)
}
