package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/onechat/onechat-bridge/adapters/slack/slacktest"
	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// Secrets a World puts in the bridge's environment; none may ever appear in its logs.
const (
	BotToken   = "424242:E2E-telegram-token-never-logged"
	DBPassword = "e2e-db-password-never-logged"
	// SlackBotToken and SlackAppToken are the fake Slack's tokens (WithSlackTokens).
	SlackBotToken = "xoxb-e2e-slack-bot-token-never-logged"
	SlackAppToken = "xapp-e2e-slack-app-token-never-logged"
)

// WithSlackTokens makes a fake Slack accept SlackBotToken and SlackAppToken: pass it to
// slacktest.NewServer for a server given to WorldOptions.Slack.
func WithSlackTokens() slacktest.Option { return slacktest.WithTokens(SlackBotToken, SlackAppToken) }

// WorldOptions configure NewWorld. The zero value is usable.
type WorldOptions struct {
	// OneChat configures the fake OneChat; BaseURL is set by NewWorld. Nil: pings every
	// 200 ms, flood limit off.
	OneChat *onechattest.Options
	// Seed seeds the fault injectors.
	Seed uint64
	// Logf receives the fakes' log lines; nil discards them.
	Logf func(format string, args ...any)
	// Slack, when set, is a fake Slack the bridge is configured for: its tokens and API URL
	// go into Env, its tokens into Secrets. The test makes it (slacktest.NewServer needs the
	// test, and closes the server when the test ends), with its channels set up.
	Slack *slacktest.Server
	// SlackSupportChannels are the channel ids of SLACK_SUPPORT_CHANNELS (with Slack only).
	SlackSupportChannels []string
}

// World is everything the bridge talks to: the fake OneChat and the fake Bot API on loopback
// httptest servers, each behind a Faults injector, and a fresh database behind a PGProxy.
type World struct {
	OC       *onechattest.Server
	OCURL    string
	OCFaults *Faults
	TG       *telegramtest.Server
	TGURL    string
	TGFaults *Faults
	PG       *PGProxy
	// Slack is the fake Slack of WorldOptions.Slack, nil without one.
	Slack *slacktest.Server
	// SlackSupportChannels are the channels of SLACK_SUPPORT_CHANNELS.
	SlackSupportChannels []string
	// DBURL reaches the database directly (not through PG), for the rig's own queries.
	DBURL string
	// Extra is appended to every environment Env builds (e.g. Discord's settings).
	Extra []string

	ocSrv, tgSrv *httptest.Server
	dropDB       func(context.Context) error
}

// NewWorld starts the fakes and creates the database.
func NewWorld(ctx context.Context, o WorldOptions) (*World, error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dbURL, drop, err := CreateDatabase(ctx, ServerURL())
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(dbURL)
	pg, err := NewPGProxy(u.Host)
	if err != nil {
		_ = drop(ctx)
		return nil, err
	}
	w := &World{DBURL: dbURL, PG: pg, dropDB: drop, Slack: o.Slack, SlackSupportChannels: o.SlackSupportChannels}

	ocOpts := onechattest.Options{PingInterval: 200 * time.Millisecond, MessageFloodLimit: -1}
	if o.OneChat != nil {
		ocOpts = *o.OneChat
	}
	ocOpts.Logf = logf
	w.OCFaults = NewFaults(o.Seed + 1)
	w.OCFaults.Eligible = func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/public/") }
	w.OCFaults.Body = OneChatError
	// The fake builds attachment URLs on BaseURL, which is only known once the server listens:
	// start it on a handler that forwards to the fake made right after.
	// A stray request (a process of an earlier test that still knows this port) may arrive
	// before the fake exists: it gets 503 rather than racing the assignment.
	var ocHandler atomic.Pointer[http.Handler]
	w.ocSrv = httptest.NewServer(w.OCFaults.Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h := ocHandler.Load()
		if h == nil {
			http.Error(rw, "starting", http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(rw, r)
	})))
	ocOpts.BaseURL = w.ocSrv.URL
	w.OC = onechattest.New(&ocOpts)
	handler := w.OC.Handler()
	ocHandler.Store(&handler)
	w.OCURL = w.ocSrv.URL

	w.TG = telegramtest.New(BotToken)
	w.TGFaults = NewFaults(o.Seed + 2)
	w.TGFaults.Body = TelegramError
	w.tgSrv = httptest.NewServer(w.TGFaults.Wrap(w.TG.Handler()))
	w.TGURL = w.tgSrv.URL
	return w, nil
}

// DatabaseURL is the bridge's DATABASE_URL: through the proxy, with DBPassword (the test
// server trusts local connections and ignores it; it is there to be looked for in the logs).
func (w *World) DatabaseURL() string {
	u, _ := url.Parse(w.DBURL)
	u.Host = w.PG.Addr()
	user := "postgres"
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, DBPassword)
	return u.String()
}

// Env is the bridge's environment for this world, extra last (a later NAME=value wins).
func (w *World) Env(extra ...string) []string {
	env := []string{
		"DATABASE_URL=" + w.DatabaseURL(),
		"ONECHAT_BASE_URL=" + w.OCURL,
		"ONECHAT_INBOX_IDENTIFIER=" + w.OC.InboxIdentifier(),
		"ONECHAT_HMAC_TOKEN=" + w.OC.HMACToken(),
		"TELEGRAM_BOT_TOKEN=" + BotToken,
		"TELEGRAM_API_URL=" + w.TGURL,
		"TELEGRAM_POLL_TIMEOUT=2s",
		"TELEGRAM_ALBUM_WINDOW=300ms",
		"BRIDGE_ADMIN_ADDR=127.0.0.1:0",
		"BRIDGE_SHUTDOWN_TIMEOUT=5s",
		"LOG_LEVEL=debug",
		"LOG_FORMAT=json",
		// Short retry timing, so faults heal within a test's patience.
		"BRIDGE_LEASE=3s",
		// A killed process's roles (the poller, the cable partitions) are taken over this fast.
		"BRIDGE_LEASE_TTL=3s",
		"BRIDGE_LEASE_RENEW=1s",
		"BRIDGE_MIN_BACKOFF=200ms",
		"BRIDGE_MAX_BACKOFF=3s",
		"BRIDGE_ONECHAT_RETRY_AFTER=1s",
		"BRIDGE_JOB_TIMEOUT=10s",
	}
	if w.Slack != nil {
		env = append(env,
			"SLACK_BOT_TOKEN="+w.Slack.BotToken,
			"SLACK_APP_TOKEN="+w.Slack.AppToken,
			"SLACK_API_URL="+w.Slack.APIURL,
			"SLACK_SUPPORT_CHANNELS="+strings.Join(w.SlackSupportChannels, ","),
		)
	}
	env = append(env, w.Extra...)
	return append(env, extra...)
}

// Secrets lists every credential the bridge knows in this world: the configured ones (always at
// the same positions: Telegram's token and its secret part, the database password, the HMAC
// token, the inbox identifier, Slack's bot and app tokens, "" without Slack) and each contact
// session's source_id and pubsub_token.
func (w *World) Secrets() []string {
	var slackBot, slackApp string
	if w.Slack != nil {
		slackBot, slackApp = w.Slack.BotToken, w.Slack.AppToken
	}
	s := []string{BotToken, strings.SplitN(BotToken, ":", 2)[1], DBPassword, w.OC.HMACToken(), w.OC.InboxIdentifier(),
		slackBot, slackApp}
	for _, c := range w.OC.Contacts() {
		for _, ci := range w.OC.ContactInboxes(c.ID) {
			s = append(s, ci.SourceID, ci.PubsubToken)
		}
	}
	return s
}

// Close stops the fakes and drops the database. The bridge must have exited.
func (w *World) Close() error {
	w.TG.Close() // first: the httptest server's Close waits for the long polls this ends
	w.OC.Close() // closes the websockets, which httptest does not track
	if w.Slack != nil {
		w.Slack.Close() // also closed at the end of the test; twice is harmless
	}
	w.tgSrv.CloseClientConnections()
	w.ocSrv.CloseClientConnections()
	w.tgSrv.Close()
	w.ocSrv.Close()
	w.PG.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.dropDB(ctx); err != nil {
		return fmt.Errorf("drop database: %w", err)
	}
	return nil
}
