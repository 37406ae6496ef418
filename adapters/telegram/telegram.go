// Package telegram connects Telegram private chats to the bridge through the Bot API.
//
// Inbound, Run either long-polls (the default: no public URL needed) or serves a webhook. In
// both modes an update is stored through the core before Telegram learns it was received: the
// poller asks for the next batch only after Deliver returned, the webhook answers 200 only
// then, so a crash replays updates instead of losing them. Every kind of private message
// becomes a bridge.Inbound (files by reference, streamed later through OpenAttachment), albums
// become one message, edits and button presses too.
//
// Outbound, Send converts OneChat Markdown to Telegram HTML, splits it at Telegram's limits,
// uploads files (never URLs for Telegram to fetch), adds inline keyboards for input_select and
// CSAT, paces itself to Telegram's rate limits and classifies failures with the bridge's error
// classes. The bot token is a secret: it never appears in a log line or an error string.
package telegram

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-telegram/bot/models"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/retry"
	"github.com/onechat/onechat-bridge/bridge"
)

// DefaultAPIURL is the cloud Bot API.
const DefaultAPIURL = "https://api.telegram.org"

// Platform is the platform name Telegram users and chats carry: contact identifiers read
// "telegram:<user id>".
const Platform bridge.Platform = "telegram"

// DefaultPollTimeout is the long-poll timeout sent to getUpdates: long enough to keep the
// request rate low, short enough to stay under the idle timeouts of common proxies.
const DefaultPollTimeout = 50 * time.Second

// httpSlack is added to the poll timeout for the HTTP timeout, so that Telegram's empty reply
// after the poll timeout arrives before the client gives up.
const httpSlack = 15 * time.Second

// callTimeout bounds every call but getUpdates, in case the caller's context has no deadline
// and the HTTP client no timeout.
const callTimeout = 60 * time.Second

// Receive modes.
const (
	ModePolling = "polling"
	ModeWebhook = "webhook"
)

// Defaults for the optional settings.
const (
	DefaultAlbumWindow   = time.Second
	DefaultWebhookListen = ":8443"
	// cloudUploadLimit is the largest file a bot may upload to the cloud Bot API.
	cloudUploadLimit = 50 << 20
	// localUploadLimit is the largest file a self-hosted Bot API server accepts.
	localUploadLimit = 2000 << 20
)

// Config configures the Telegram adapter.
type Config struct {
	// Token is the bot token from @BotFather. It is a secret: it never appears in logs or errors.
	Token string
	// APIURL is the Bot API server: DefaultAPIURL when empty, or a self-hosted Bot API server or
	// a test fake. A path prefix is allowed.
	APIURL string
	// PollTimeout is the long-poll timeout sent to getUpdates, in whole seconds (at least 1):
	// DefaultPollTimeout when zero.
	PollTimeout time.Duration
	// HTTPClient sends every request. When nil, the adapter uses its own client with
	// Timeout = PollTimeout + 15s. A client given here must allow a request to last longer
	// than PollTimeout.
	HTTPClient *http.Client

	// Mode is ModePolling (the default) or ModeWebhook.
	Mode string
	// WebhookURL is the public HTTPS URL Telegram posts updates to (webhook mode). Its path is
	// the path the adapter's own server answers on.
	WebhookURL string
	// WebhookSecret is sent by Telegram in X-Telegram-Bot-Api-Secret-Token with every update;
	// requests without it are refused. 1-256 characters of A-Z, a-z, 0-9, _ and -.
	WebhookSecret string
	// WebhookListen is the address the webhook server listens on: DefaultWebhookListen when
	// empty. A reverse proxy terminates TLS in front of it.
	WebhookListen string

	// Greeting is sent (as Markdown) when a user starts the bot with /start; empty sends
	// nothing. /start itself never becomes a OneChat message.
	Greeting string
	// AlbumWindow is how long to wait for more parts of an album (a media group) before it
	// becomes one message: DefaultAlbumWindow when zero.
	AlbumWindow time.Duration
	// MaxDownloadSize is the largest file the Bot API server lets the bot download. Zero means
	// 20 MB for the cloud API and no limit for a self-hosted server (APIURL set); larger files
	// reach the agent as a note naming the file and its size.
	MaxDownloadSize int64
	// MaxUploadSize is the largest file the bot may send: zero means 50 MB for the cloud API
	// and 2000 MB for a self-hosted server.
	MaxUploadSize int64
	// PerChatInterval and GlobalInterval pace sends before Telegram has to: at most one message
	// per PerChatInterval to one chat (1s when zero) and one per GlobalInterval in all (1/30 s).
	PerChatInterval, GlobalInterval time.Duration
}

// String describes cfg with the token redacted, so that logging a Config by accident does not
// leak it.
func (cfg Config) String() string {
	token := ""
	if cfg.Token != "" {
		token = redacted
	}
	secret := ""
	if cfg.WebhookSecret != "" {
		secret = redacted
	}
	return fmt.Sprintf("telegram.Config{Token:%s APIURL:%s PollTimeout:%s Mode:%s WebhookURL:%s WebhookSecret:%s WebhookListen:%s}",
		token, cfg.APIURL, cfg.PollTimeout, cfg.Mode, cfg.WebhookURL, secret, cfg.WebhookListen)
}

// GoString is String, for %#v.
func (cfg Config) GoString() string { return cfg.String() }

// Adapter is the Telegram side of the bridge. It implements bridge.Adapter and the optional
// AttachmentOpener, Editor, Deleter, Typer and HealthReporter. Send and the other methods may
// be called concurrently with each other and with Run.
type Adapter struct {
	token       string
	apiURL      string // for messages: the API URL without the token
	endpoint    string // APIURL + "/bot" + token + "/": contains the secret
	fileBase    string // APIURL + "/file/bot" + token + "/": contains the secret
	pollTimeout time.Duration
	client      *http.Client
	log         *zap.Logger

	mode          string
	webhookURL    string
	webhookSecret string
	webhookListen string
	greeting      string
	albumWindow   time.Duration
	conv          converter
	maxUpload     int64

	// backoff paces retries after failed polls and deliveries.
	backoff retry.Backoff
	// wait sleeps for d or until ctx is done. Tests replace it to observe waits without
	// spending them.
	wait func(ctx context.Context, d time.Duration) error
	// pacer spaces sends to stay under Telegram's limits; its sleep is replaceable too.
	pacer *pacer
	// host is what the core offers the adapter.
	host bridge.Host
	// health is what Health reports.
	health healthState
}

var (
	_ bridge.Adapter          = (*Adapter)(nil)
	_ bridge.AttachmentOpener = (*Adapter)(nil)
	_ bridge.Editor           = (*Adapter)(nil)
	_ bridge.Deleter          = (*Adapter)(nil)
	_ bridge.Typer            = (*Adapter)(nil)
	_ bridge.HealthReporter   = (*Adapter)(nil)
)

// New checks cfg and returns an adapter. It does not contact Telegram, so the bridge starts even
// when Telegram is unreachable; call GetMe to check the token.
func New(cfg Config, host bridge.Host, logger *zap.Logger) (*Adapter, error) {
	if host == nil {
		return nil, errors.New("telegram: no host")
	}
	if cfg.Token == "" {
		return nil, errors.New("telegram: bot token is empty")
	}
	if strings.IndexFunc(cfg.Token, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == ':' || r == '_' || r == '-')
	}) >= 0 {
		// Not echoing the token: it is a secret even when it is malformed.
		return nil, errors.New("telegram: bot token has a character other than letters, digits, ':', '_' and '-'")
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("telegram: API URL must be an absolute http or https URL")
	}
	pollTimeout := cfg.PollTimeout
	switch {
	case pollTimeout == 0:
		pollTimeout = DefaultPollTimeout
	case pollTimeout < time.Second:
		return nil, fmt.Errorf("telegram: poll timeout %s is below one second", pollTimeout)
	}
	pollTimeout = pollTimeout.Truncate(time.Second)
	client := cfg.HTTPClient
	if client != nil && client.Timeout != 0 && client.Timeout <= pollTimeout {
		return nil, fmt.Errorf("telegram: HTTP client timeout %s must exceed the poll timeout %s", client.Timeout, pollTimeout)
	}
	if client == nil {
		// Go's default transport keeps two idle connections per host; the outbound workers
		// and the poller run more requests than that at once, and each beyond two would
		// open a TLS connection of its own and close it after.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		client = &http.Client{Timeout: pollTimeout + httpSlack, Transport: tr}
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	a := &Adapter{
		token:       cfg.Token,
		apiURL:      apiURL,
		endpoint:    strings.TrimRight(apiURL, "/") + "/bot" + cfg.Token + "/",
		fileBase:    strings.TrimRight(apiURL, "/") + "/file/bot" + cfg.Token + "/",
		pollTimeout: pollTimeout,
		client:      client,
		log:         logger,
		greeting:    cfg.Greeting,
		albumWindow: cfg.AlbumWindow,
		backoff:     retry.Backoff{Base: 500 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.5},
		wait:        retry.Sleep,
	}
	if a.albumWindow <= 0 {
		a.albumWindow = DefaultAlbumWindow
	}
	cloud := strings.TrimRight(apiURL, "/") == DefaultAPIURL
	switch {
	case cfg.MaxDownloadSize > 0:
		a.conv.maxDownload = cfg.MaxDownloadSize
	case cfg.MaxDownloadSize == 0 && cloud:
		a.conv.maxDownload = CloudDownloadLimit
	}
	a.maxUpload = cfg.MaxUploadSize
	if a.maxUpload <= 0 {
		a.maxUpload = localUploadLimit
		if cloud {
			a.maxUpload = cloudUploadLimit
		}
	}
	switch cfg.Mode {
	case "", ModePolling:
		a.mode = ModePolling
	case ModeWebhook:
		a.mode = ModeWebhook
		wu, err := url.Parse(cfg.WebhookURL)
		if err != nil || wu.Scheme != "https" || wu.Host == "" {
			return nil, errors.New("telegram: webhook URL must be an absolute https URL (Telegram posts only to HTTPS)")
		}
		if cfg.WebhookSecret == "" || len(cfg.WebhookSecret) > 256 || strings.IndexFunc(cfg.WebhookSecret, func(r rune) bool {
			return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-')
		}) >= 0 {
			return nil, errors.New("telegram: webhook secret must be 1-256 characters of A-Z, a-z, 0-9, '_' and '-'")
		}
		a.webhookURL, a.webhookSecret = cfg.WebhookURL, cfg.WebhookSecret
		a.webhookListen = cfg.WebhookListen
		if a.webhookListen == "" {
			a.webhookListen = DefaultWebhookListen
		}
	default:
		return nil, fmt.Errorf("telegram: mode must be %s or %s, got %q", ModePolling, ModeWebhook, cfg.Mode)
	}
	perChat, global := cfg.PerChatInterval, cfg.GlobalInterval
	if perChat <= 0 {
		perChat = time.Second
	}
	if global <= 0 {
		global = time.Second / 30
	}
	a.pacer = newPacer(perChat, global)
	a.host = host
	a.health.set(errors.New("telegram: not started"))
	return a, nil
}

// Platform returns "telegram".
func (a *Adapter) Platform() bridge.Platform { return Platform }

// GetMe asks Telegram who the bot is and returns its username (without '@'). It is the cheap
// call that proves the token and the API URL work, for start-up and health checks.
// Check implements bridge.Checker: it asks Telegram who the bot is.
func (a *Adapter) Check(ctx context.Context) (string, error) {
	me, err := a.GetMe(ctx)
	if err == nil {
		return "signed in as @" + me, nil
	}
	var apiErr *APIError
	switch {
	case errors.As(err, &apiErr) && (apiErr.Code == http.StatusUnauthorized || apiErr.Code == http.StatusNotFound):
		return "", bridge.Hint(err, "Telegram rejected TELEGRAM_BOT_TOKEN: copy it again from @BotFather (/mybots → your bot → API Token); a revoked token must be replaced")
	case errors.As(err, &apiErr):
		return "", bridge.Hint(err, "Telegram answered with an error: see the message")
	}
	return "", bridge.Hint(err, fmt.Sprintf("cannot reach the Bot API at TELEGRAM_API_URL (%s): check DNS, proxy and outbound HTTPS from the bridge", a.apiURL))
}

// GetMe returns the bot's username.
func (a *Adapter) GetMe(ctx context.Context) (username string, err error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var me models.User
	if err := a.call(ctx, "getMe", struct{}{}, &me); err != nil {
		return "", err
	}
	return me.Username, nil
}

// NeedsSingleton implements bridge.SingletonRunner: the long poller must run on one instance at
// a time (Telegram allows one getUpdates per token), while webhook mode serves what a load
// balancer hands it and runs on every instance.
func (a *Adapter) NeedsSingleton() bool { return a.mode != ModeWebhook }
