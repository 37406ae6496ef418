package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/retry"
	"github.com/onechat/onechat-bridge/bridge"
)

// Platform is the platform name Slack users and chats carry: contact identifiers read
// "slack:<team id>:<user id>".
const Platform bridge.Platform = "slack"

// Key and cursor names in the adapter's store.
const (
	cursorChannel = "slack.channel." // + channel: ts of the last top-level message delivered
	cursorThread  = "slack.thread."  // + channel.thread ts: ts of the last reply delivered
	valueThread   = "thread."        // + channel.thread ts: the ticket owner's UserRef.ID
)

// Timeouts of the event loop: an envelope must be acknowledged within 3 s of its delivery.
const (
	deliverTimeout = 5 * time.Second
	ackTimeout     = 2 * time.Second
	lookupTimeout  = 2 * time.Second
)

// identity is who the bot is, from auth.test.
type identity struct {
	UserID, BotID, TeamID, Team, User string
}

// Adapter is the Slack side of the bridge. Send, Edit, Delete and OpenAttachment may be
// called concurrently with each other and with Run, on any instance.
type Adapter struct {
	api       *slackgo.Client
	apiURL    *url.URL
	appToken  string
	botToken  string
	client    *http.Client
	support   map[string]bool
	ticketAck string
	host      bridge.Host
	log       *zap.Logger
	backoff   retry.Backoff
	wait      func(ctx context.Context, d time.Duration) error

	me atomic.Pointer[identity]

	healthMu sync.Mutex
	health   error

	names  *directory
	pacer  *pacer
	events *recentSet // event ids delivered and acknowledged

	// units whose catch-up is pending: their live messages wait (unacknowledged) until the
	// catch-up has read history past them.
	unitsMu  sync.Mutex
	pending  map[string]*unitState
	catchAll bool          // from a (re)connect until the units to catch up are listed
	extra    []catchUpUnit // units of failed live deliveries, for the catch-up goroutine

	catchUpKick chan catchUpPass
	retryKick   chan struct{}
	acks        chan ackJob
	uploaded    *recentSet // file ids the bot uploaded, to drop their echoes
}

type unitState struct{ dirty bool }

var (
	_ bridge.Adapter          = (*Adapter)(nil)
	_ bridge.AttachmentOpener = (*Adapter)(nil)
	_ bridge.Editor           = (*Adapter)(nil)
	_ bridge.Deleter          = (*Adapter)(nil)
	_ bridge.Checker          = (*Adapter)(nil)
	_ bridge.HealthReporter   = (*Adapter)(nil)
)

// New checks cfg and returns an adapter. It does not contact Slack.
func New(cfg Config, host bridge.Host, logger *zap.Logger) (*Adapter, error) {
	if host == nil {
		return nil, errors.New("slack: no host")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	u, err := url.Parse(apiURL)
	if err != nil {
		return nil, errors.New("slack: SLACK_API_URL is not a URL")
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	client := cfg.HTTPClient
	if client == nil {
		// No overall timeout: an upload or download of a large file takes as long as it
		// takes (the caller's context bounds it); a server that does not answer is cut after
		// 30 s.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		tr.ResponseHeaderTimeout = 30 * time.Second
		client = &http.Client{Transport: tr}
	}
	download := *client
	download.Timeout = 0
	download.CheckRedirect = sameHostRedirects
	api := slackgo.New(cfg.BotToken,
		slackgo.OptionAPIURL(apiURL),
		slackgo.OptionAppLevelToken(cfg.AppToken),
		slackgo.OptionHTTPClient(client))
	a := &Adapter{
		api:       api,
		apiURL:    u,
		appToken:  cfg.AppToken,
		botToken:  cfg.BotToken,
		client:    &download,
		support:   map[string]bool{},
		ticketAck: cfg.TicketAck,
		host:      host,
		log:       logger,
		backoff:   retry.Backoff{Base: time.Second, Max: 2 * time.Minute, Jitter: 0.5},
		wait:      retry.Sleep,
		health:    errors.New("slack socket mode: not connected yet"),
		pacer:     newPacer(postInterval, 3),
		events:    newRecentSet(4096),
		uploaded:  newRecentSet(4096),
		pending:   map[string]*unitState{},
	}
	a.names = newDirectory(a, time.Hour)
	if a.ticketAck == "" {
		a.ticketAck = AckReaction
	}
	for _, ch := range cfg.SupportChannels {
		if ch = strings.TrimSpace(ch); ch != "" {
			a.support[ch] = true
		}
	}
	return a, nil
}

// Platform returns Platform.
func (a *Adapter) Platform() bridge.Platform { return Platform }

// Health implements bridge.HealthReporter: nil while a Socket Mode connection is up.
func (a *Adapter) Health() error {
	a.healthMu.Lock()
	defer a.healthMu.Unlock()
	return a.health
}

func (a *Adapter) setHealth(err error) {
	a.healthMu.Lock()
	a.health = err
	a.healthMu.Unlock()
}

// identity returns who the bot is, asking auth.test the first time.
func (a *Adapter) identity(ctx context.Context) (*identity, error) {
	if me := a.me.Load(); me != nil {
		return me, nil
	}
	r, err := a.api.AuthTestContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth.test: %w", err)
	}
	me := &identity{UserID: r.UserID, BotID: r.BotID, TeamID: r.TeamID, Team: r.Team, User: r.User}
	a.me.Store(me)
	return me, nil
}

// fatalAuth says whether err means the tokens are no good, which no retry fixes.
func fatalAuth(err error) bool {
	var se slackgo.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "not_allowed_token_type":
			return true
		}
	}
	switch err.Error() {
	case "invalid_auth", "not_authed", "token_revoked", "account_inactive":
		return true
	}
	return false
}

// Run connects to Slack in Socket Mode and hands every message of a served chat to the host
// before acknowledging its envelope, until ctx is cancelled. It returns nil then, or an error
// when Slack refuses the tokens. It returns only after every goroutine it started has exited
// (socketmode's own goroutines end with its RunContext).
func (a *Adapter) Run(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		_, err := a.identity(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if fatalAuth(err) {
			a.setHealth(errors.New("slack refused the bot token"))
			return fmt.Errorf("slack: %w", a.redact(err))
		}
		d := a.backoff.Delay(attempt)
		a.log.Warn("cannot ask slack who the bot is, retrying", zap.Error(a.redact(err)), zap.Int("attempt", attempt+1), zap.Duration("sleep", d))
		if a.wait(ctx, d) != nil {
			return nil
		}
	}
	// Never socketmode.OptionDebug: it shortens sockets to 6 minutes and logs message text.
	sm := socketmode.New(a.api)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.catchUpKick = make(chan catchUpPass, 1)
	a.retryKick = make(chan struct{}, 1)
	a.acks = make(chan ackJob, 256)
	var wg sync.WaitGroup
	smErr := make(chan error, 1)
	wg.Go(func() {
		defer cancel()
		smErr <- sm.RunContext(ctx)
	})
	wg.Go(func() { a.catchUpLoop(ctx) })
	wg.Go(func() { a.ackLoop(ctx) })
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case ev := <-sm.Events:
			a.handle(ctx, sm, ev)
		}
	}
	cancel()
	wg.Wait()
	a.setHealth(errors.New("slack socket mode: stopped"))
	err := <-smErr
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	if fatalAuth(err) {
		return fmt.Errorf("slack socket mode: SLACK_APP_TOKEN refused: %w", a.redact(err))
	}
	return fmt.Errorf("slack socket mode: %w", a.redact(err))
}

// handle processes one socketmode event. It does no more than converting, storing and
// acknowledging: a slow loop stops slack-go reading the socket, which then misses pings and
// reconnects.
func (a *Adapter) handle(ctx context.Context, sm *socketmode.Client, ev socketmode.Event) {
	switch ev.Type {
	case socketmode.EventTypeConnecting:
		a.setHealth(errors.New("slack socket mode: connecting"))
	case socketmode.EventTypeConnectionError:
		a.setHealth(errors.New("slack socket mode: cannot connect"))
		if ce, ok := ev.Data.(*slackgo.ConnectionErrorEvent); ok {
			a.log.Warn("slack socket mode connection failed", zap.Error(a.redact(ce.ErrorObj)), zap.Int("attempt", ce.Attempt), zap.Duration("sleep", ce.Backoff))
		}
	case socketmode.EventTypeInvalidAuth:
		a.setHealth(errors.New("slack socket mode: the app-level token was refused"))
	case socketmode.EventTypeConnected:
		a.log.Info("slack socket mode connected")
	case socketmode.EventTypeHello:
		a.setHealth(nil)
		a.startCatchUp(ctx)
	case socketmode.EventTypeErrorBadMessage:
		// slack-go does not acknowledge what it cannot parse (an inner event type it does
		// not know): without an ack Slack sends it three more times.
		if bad, ok := ev.Data.(*socketmode.ErrorBadMessage); ok {
			var env struct {
				EnvelopeID string `json:"envelope_id"`
			}
			if json.Unmarshal(bad.Message, &env) == nil && env.EnvelopeID != "" {
				a.ack(ctx, sm, env.EnvelopeID)
			}
		}
	case socketmode.EventTypeEventsAPI:
		if ev.Request == nil {
			return
		}
		api, ok := ev.Data.(slackevents.EventsAPIEvent)
		if !ok {
			a.ack(ctx, sm, ev.Request.EnvelopeID)
			return
		}
		eventID := ""
		if cb, ok := api.Data.(*slackevents.EventsAPICallbackEvent); ok {
			eventID = cb.EventID
		}
		if eventID != "" && a.events.has(eventID) {
			a.ack(ctx, sm, ev.Request.EnvelopeID)
			return
		}
		if !a.onEventsAPI(ctx, api) {
			return // not stored: Slack delivers it again
		}
		if eventID != "" {
			a.events.add(eventID)
		}
		a.ack(ctx, sm, ev.Request.EnvelopeID)
	case socketmode.EventTypeInteractive:
		if ev.Request == nil {
			return
		}
		cb, ok := ev.Data.(slackgo.InteractionCallback)
		if ok && cb.Type == slackgo.InteractionTypeBlockActions {
			if !a.onBlockActions(ctx, &cb) {
				return
			}
		}
		a.ack(ctx, sm, ev.Request.EnvelopeID)
	case socketmode.EventTypeSlashCommand:
		if ev.Request != nil {
			a.ack(ctx, sm, ev.Request.EnvelopeID)
		}
	}
}

func (a *Adapter) ack(ctx context.Context, sm *socketmode.Client, envelopeID string) {
	actx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	if err := sm.AckCtx(actx, envelopeID, nil); err != nil && ctx.Err() == nil {
		a.log.Warn("cannot acknowledge a slack envelope", zap.Error(err))
	}
}

// redact removes the tokens from an error's text; nil stays nil. slack-go does not put tokens
// in its errors, but a transport error quoting a request must not leak one either.
func (a *Adapter) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if (a.botToken == "" || !strings.Contains(msg, a.botToken)) && (a.appToken == "" || !strings.Contains(msg, a.appToken)) {
		return err
	}
	for _, t := range []string{a.botToken, a.appToken} {
		if t != "" {
			msg = strings.ReplaceAll(msg, t, "<redacted>")
		}
	}
	return &redactedError{msg: msg, err: err}
}

// redactedError keeps err for errors.As (classification) but prints without the tokens.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// recentSet remembers the last n strings added.
type recentSet struct {
	mu    sync.Mutex
	n     int
	set   map[string]bool
	order []string
}

func newRecentSet(n int) *recentSet { return &recentSet{n: n, set: map[string]bool{}} }

func (s *recentSet) has(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set[k]
}

func (s *recentSet) add(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set[k] {
		return
	}
	s.set[k] = true
	s.order = append(s.order, k)
	if len(s.order) > s.n {
		delete(s.set, s.order[0])
		s.order = s.order[1:]
	}
}

// Check implements bridge.Checker: auth.test proves the bot token and the API URL.
func (a *Adapter) Check(ctx context.Context) (string, error) {
	r, err := a.api.AuthTestContext(ctx)
	if err == nil {
		return fmt.Sprintf("bot @%s in %s", r.User, r.Team), nil
	}
	err = a.redact(err)
	var se slackgo.SlackErrorResponse
	switch {
	case errors.As(err, &se) && (se.Err == "invalid_auth" || se.Err == "not_authed" || se.Err == "token_revoked" || se.Err == "token_expired"):
		return "", bridge.Hint(err, "Slack rejected SLACK_BOT_TOKEN: copy the Bot User OAuth Token (xoxb-…) again from your app's OAuth & Permissions page, or reinstall the app")
	case errors.As(err, &se) && se.Err == "account_inactive":
		return "", bridge.Hint(err, "the workspace or bot user of SLACK_BOT_TOKEN is deactivated: reinstall the app")
	case errors.As(err, &se):
		return "", bridge.Hint(err, "Slack answered with an error: see the message")
	}
	return "", bridge.Hint(err, "cannot reach Slack's Web API (SLACK_API_URL): check DNS, proxy and outbound HTTPS from the bridge")
}
