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
	// greeting is the operator's greeting for everyone; "" means the catalogue's in the user's
	// language (texts.Greeting), unless greetingOff.
	greeting    string
	greetingOff bool
	// greetingInterval spaces greetings to one chat.
	greetingInterval time.Duration
	// followUps sends greetings and button answers off the intake path.
	followUps *followUpSender
	// now is the clock for greeting times; tests replace it.
	now         func() time.Time
	albumWindow time.Duration
	conv        converter
	maxUpload   int64

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
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("telegram: invalid configuration: %w", err)
	}
	apiURL, pollTimeout := cfg.apiURL, cfg.pollTimeout
	client := cfg.HTTPClient
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
		token:            string(cfg.Token),
		apiURL:           apiURL,
		endpoint:         strings.TrimRight(apiURL, "/") + "/bot" + string(cfg.Token) + "/",
		fileBase:         strings.TrimRight(apiURL, "/") + "/file/bot" + string(cfg.Token) + "/",
		pollTimeout:      pollTimeout,
		client:           client,
		log:              logger,
		greeting:         cfg.greeting,
		greetingOff:      cfg.greetingOff,
		greetingInterval: cfg.greetingInterval,
		followUps:        newFollowUpSender(followUpQueueSize),
		now:              time.Now,
		albumWindow:      cfg.albumWindow,
		backoff:          retry.Backoff{Base: 500 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.5},
		wait:             retry.Sleep,
	}
	a.conv.texts = host.Texts()
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
	a.mode = ModePolling
	if cfg.Mode == ModeWebhook {
		a.mode = ModeWebhook
		a.webhookURL, a.webhookSecret, a.webhookListen = cfg.WebhookURL, string(cfg.WebhookSecret), cfg.WebhookListen
	}
	if cfg.webhookSecretGenerated {
		logger.Info("webhook secret generated for this start; setWebhook hands it to Telegram (set TELEGRAM_WEBHOOK_SECRET to keep one)")
	}
	a.pacer = newPacer(cfg.perChat, cfg.global)
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
