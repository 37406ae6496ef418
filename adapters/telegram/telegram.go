// Package telegram connects Telegram private chats to the bridge through the Bot API.
//
// Inbound, Run is a durable long poller: it hands every batch of updates to the core and only
// then asks Telegram for the next one, which is what confirms the batch, so a crash replays
// updates instead of losing them. Outbound, Send posts plain text, split at Telegram's length
// limit, and classifies failures with the bridge's error classes. The bot token is a secret:
// it never appears in a log line or an error string.
package telegram

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-telegram/bot/models"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
)

// DefaultAPIURL is the cloud Bot API.
const DefaultAPIURL = "https://api.telegram.org"

// DefaultPollTimeout is the long-poll timeout sent to getUpdates: long enough to keep the
// request rate low, short enough to stay under the idle timeouts of common proxies.
const DefaultPollTimeout = 50 * time.Second

// httpSlack is added to the poll timeout for the HTTP timeout, so that Telegram's empty reply
// after the poll timeout arrives before the client gives up.
const httpSlack = 15 * time.Second

// callTimeout bounds every call but getUpdates, in case the caller's context has no deadline
// and the HTTP client no timeout.
const callTimeout = 60 * time.Second

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
}

// String describes cfg with the token redacted, so that logging a Config by accident does not
// leak it.
func (cfg Config) String() string {
	token := ""
	if cfg.Token != "" {
		token = redacted
	}
	return fmt.Sprintf("telegram.Config{Token:%s APIURL:%s PollTimeout:%s}", token, cfg.APIURL, cfg.PollTimeout)
}

// GoString is String, for %#v.
func (cfg Config) GoString() string { return cfg.String() }

// Adapter is the Telegram side of the bridge. It implements bridge.Adapter. Send and GetMe may
// be called concurrently with each other and with Run.
type Adapter struct {
	token       string
	endpoint    string // APIURL + "/bot" + token + "/": contains the secret
	pollTimeout time.Duration
	client      *http.Client
	log         *zap.Logger

	// backoff paces retries after failed polls and deliveries.
	backoff backoff
	// wait sleeps for d or until ctx is done. Tests replace it to observe waits without
	// spending them.
	wait func(ctx context.Context, d time.Duration) error
}

var _ bridge.Adapter = (*Adapter)(nil)

// New checks cfg and returns an adapter. It does not contact Telegram, so the bridge starts even
// when Telegram is unreachable; call GetMe to check the token.
func New(cfg Config, logger *zap.Logger) (*Adapter, error) {
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
		client = &http.Client{Timeout: pollTimeout + httpSlack}
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Adapter{
		token:       cfg.Token,
		endpoint:    strings.TrimRight(apiURL, "/") + "/bot" + cfg.Token + "/",
		pollTimeout: pollTimeout,
		client:      client,
		log:         logger,
		backoff:     backoff{base: 500 * time.Millisecond, max: 30 * time.Second},
		wait:        sleepCtx,
	}, nil
}

// Platform returns bridge.Telegram.
func (a *Adapter) Platform() bridge.Platform { return bridge.Telegram }

// GetMe asks Telegram who the bot is and returns its username (without '@'). It is the cheap
// call that proves the token and the API URL work, for start-up and health checks.
func (a *Adapter) GetMe(ctx context.Context) (username string, err error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var me models.User
	if err := a.call(ctx, "getMe", struct{}{}, &me); err != nil {
		return "", err
	}
	return me.Username, nil
}

// sendMessageParams is the part of sendMessage the adapter uses. No parse_mode: the skeleton
// sends plain text, so nothing needs escaping.
type sendMessageParams struct {
	ChatID          int64                   `json:"chat_id"`
	Text            string                  `json:"text"`
	ReplyParameters *models.ReplyParameters `json:"reply_parameters,omitempty"`
}

// maxContinuationAttempts bounds how often Send retries the second and later parts of a split
// message itself (see Send).
const maxContinuationAttempts = 5

// Send delivers m.Text to the private chat m.Chat as plain text, split into parts of at most
// 4096 UTF-16 code units, and returns the ids of the messages it created. The first part
// replies to m.ReplyTo when it is set; if that message is gone the text is still sent.
//
// Failures are classified: 403 (blocked, deactivated) is bridge.Unreachable, 429 is
// bridge.RateLimited with Telegram's retry_after, 400 is bridge.Permanent with Telegram's
// description; anything else is returned as is and worth retrying.
//
// Once the first part is out, a retry of the whole message would duplicate it, so Send retries
// later parts itself (waiting out 429s, backing off on transient errors, a few times at most).
// If it still fails, it returns the ids sent so far together with the error.
func (a *Adapter) Send(ctx context.Context, m bridge.Outbound) ([]string, error) {
	if m.Chat.Platform != bridge.Telegram {
		return nil, bridge.Permanent(fmt.Sprintf("not a telegram chat: %s", m.Chat), nil)
	}
	chatID, err := strconv.ParseInt(m.Chat.ID, 10, 64)
	if err != nil {
		return nil, bridge.Permanent(fmt.Sprintf("invalid telegram chat id %q", m.Chat.ID), err)
	}
	parts := splitText(m.Text, maxMessageLen)
	if len(m.Attachments) > 0 {
		// Sending files is a later issue; until then the agent sees the message fail.
		if len(parts) == 0 {
			return nil, bridge.Permanent("the telegram adapter cannot send attachments yet", nil)
		}
		a.log.Warn("sending only the text of a message with attachments: the telegram adapter cannot send files yet",
			zap.String("chat_id", m.Chat.ID), zap.Int64("onechat_message_id", m.MessageID),
			zap.Int("attachments", len(m.Attachments)))
	}
	if len(parts) == 0 {
		return nil, bridge.Permanent("message has no text", nil)
	}
	var reply *models.ReplyParameters
	if m.ReplyTo != "" {
		if id, err := strconv.Atoi(m.ReplyTo); err == nil && id > 0 {
			reply = &models.ReplyParameters{MessageID: id, AllowSendingWithoutReply: true}
		} else {
			a.log.Warn("ignoring invalid telegram reply-to message id",
				zap.String("chat_id", m.Chat.ID), zap.String("reply_to", m.ReplyTo))
		}
	}
	log := a.log.With(zap.String("chat_id", m.Chat.ID), zap.Int64("onechat_message_id", m.MessageID))
	ids := make([]string, 0, len(parts))
	for i, part := range parts {
		p := sendMessageParams{ChatID: chatID, Text: part}
		if i == 0 {
			p.ReplyParameters = reply
		}
		var msg models.Message
		if i == 0 {
			err = a.sendOnce(ctx, &p, &msg)
		} else {
			err = a.sendContinuation(ctx, log, &p, &msg)
		}
		if err != nil {
			return ids, fmt.Errorf("send part %d of %d to telegram chat %s: %w", i+1, len(parts), m.Chat.ID, err)
		}
		ids = append(ids, strconv.Itoa(msg.ID))
	}
	if len(parts) > 1 {
		log.Debug("sent split telegram message", zap.Int("parts", len(parts)))
	}
	return ids, nil
}

func (a *Adapter) sendOnce(ctx context.Context, p *sendMessageParams, msg *models.Message) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return classify(a.call(ctx, "sendMessage", p, msg))
}

// sendContinuation sends a later part of a split message, retrying what is worth retrying.
func (a *Adapter) sendContinuation(ctx context.Context, log *zap.Logger, p *sendMessageParams, msg *models.Message) error {
	for attempt := 0; ; attempt++ {
		err := a.sendOnce(ctx, p, msg)
		var perm *bridge.PermanentError
		if err == nil || errors.As(err, &perm) || ctx.Err() != nil || attempt+1 >= maxContinuationAttempts {
			return err
		}
		d := a.backoff.duration(attempt)
		var limited *bridge.RateLimitedError
		if errors.As(err, &limited) {
			d = limited.RetryAfter
		}
		log.Warn("retrying part of split telegram message", zap.Error(err),
			zap.Int("attempt", attempt+1), zap.Duration("sleep", d))
		if err := a.wait(ctx, d); err != nil {
			return err
		}
	}
}

// backoff is exponential backoff with jitter.
type backoff struct {
	base, max time.Duration
}

// duration returns the pause before retry number attempt+1: base·2^attempt capped at max, of
// which the upper half is random so that many bridges do not retry in lockstep.
func (b backoff) duration(attempt int) time.Duration {
	d := b.max
	if attempt < 30 {
		d = min(b.base<<attempt, b.max)
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
