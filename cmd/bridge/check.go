package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/texts"
)

// checkTimeout bounds each check of `bridge check`, so one unreachable host does not hide the
// results of the others for long.
const checkTimeout = 10 * time.Second

// checkResult is one line of `bridge check`: what was checked, whether it passed, what was
// found, and for a failure what to fix.
type checkResult struct {
	name   string
	ok     bool
	skip   bool
	detail string
	hint   string
}

func (r checkResult) String() string {
	status := "OK"
	switch {
	case r.skip:
		status = "SKIP"
	case !r.ok:
		status = "FAIL"
	}
	// One line per check: multi-line errors (pgx lists every address it tried) are folded.
	detail := strings.Join(strings.Fields(r.detail), " ")
	s := fmt.Sprintf("%-5s %-10s %s", status, r.name, detail)
	if r.hint != "" {
		s += " — fix: " + r.hint
	}
	return s
}

// offlineHost is the Host adapters are built with for `bridge check`, which never runs them:
// every call says so.
type offlineHost struct{ texts *texts.Catalogue }

var errOffline = errors.New("bridge check does not run adapters")

func (offlineHost) Deliver(context.Context, bridge.Cursor, ...bridge.Inbound) error {
	return errOffline
}
func (offlineHost) Cursor(context.Context, string) (string, error)                 { return "", errOffline }
func (offlineHost) Cursors(context.Context, string) ([]bridge.Cursor, error)       { return nil, errOffline }
func (offlineHost) MoveChat(context.Context, bridge.UserRef, bridge.ChatRef) error { return errOffline }
func (offlineHost) UserTyping(context.Context, bridge.UserRef, bridge.ChatRef)     {}
func (offlineHost) Value(context.Context, string) (string, bool, error)            { return "", false, errOffline }
func (offlineHost) SetValue(context.Context, string, string) error                 { return errOffline }
func (offlineHost) SetValueIfAbsent(context.Context, string, string) (string, error) {
	return "", errOffline
}
func (offlineHost) DeleteValue(context.Context, string) error { return errOffline }
func (offlineHost) Texts() *texts.Catalogue                   { return texts.Builtin() }
func (offlineHost) UserLanguage(context.Context, bridge.UserRef) string {
	return ""
}
func (offlineHost) Values(context.Context, string) (map[string]string, error) {
	return nil, errOffline
}

// check validates cfg (already done by LoadConfig) and reaches every dependency, printing one
// line per check to out. It reports whether everything passed. Nothing it prints holds a
// secret: every error it shows is one the libraries already redact, or its own text.
func check(ctx context.Context, cfg Config, logger *zap.Logger, out io.Writer) bool {
	logger = logger.WithOptions(zap.IncreaseLevel(zap.WarnLevel))
	allOK := true
	report := func(r checkResult) {
		if !r.ok && !r.skip {
			allOK = false
		}
		fmt.Fprintln(out, r)
	}
	within := func(fn func(ctx context.Context) checkResult) checkResult {
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		return fn(cctx)
	}

	builders, adapterErr := buildAdapters(cfg, logger)
	var adapters []bridge.Adapter
	for _, build := range builders {
		a, err := build(offlineHost{texts: cfg.Texts.Catalogue()})
		if err != nil {
			adapterErr = errors.Join(adapterErr, err)
			continue
		}
		adapters = append(adapters, a)
	}
	var names []string
	for _, a := range adapters {
		names = append(names, string(a.Platform()))
	}
	report(checkResult{name: "config", ok: true, detail: "valid; platforms: " + strings.Join(names, ", ")})
	report(checkTexts(cfg.Texts))

	var store *postgres.Store
	report(within(func(ctx context.Context) checkResult {
		s, err := postgres.Open(ctx, string(cfg.DatabaseURL), logger.Named("postgres"))
		if err != nil {
			return checkResult{name: "postgres", detail: err.Error(),
				hint: "check the host, port, user, password and database name in DATABASE_URL, and that Postgres accepts connections from the bridge (in Compose, the host is the service name, e.g. db)"}
		}
		store = s
		return checkResult{name: "postgres", ok: true, detail: "connected to " + databaseTarget(string(cfg.DatabaseURL))}
	}))
	if store != nil {
		defer store.Close()
		report(within(func(ctx context.Context) checkResult { return checkMigrations(ctx, store) }))
	} else {
		report(checkResult{name: "migrations", skip: true, detail: "not checked: no database connection"})
	}

	oc := newOneChat(cfg, logger)
	report(within(func(ctx context.Context) checkResult { return checkInbox(ctx, cfg, oc) }))
	if app := newApplication(cfg, oc); app != nil {
		report(within(func(ctx context.Context) checkResult { return checkApplication(ctx, app) }))
	}
	report(within(func(ctx context.Context) checkResult { return checkCable(ctx, cfg.CableURL) }))

	if adapterErr != nil {
		report(checkResult{name: "adapters", detail: adapterErr.Error(), hint: "see the variable named in the message"})
	}
	for _, a := range adapters {
		report(within(func(ctx context.Context) checkResult { return checkAdapter(ctx, a) }))
	}
	return allOK
}

// databaseTarget names the database of a postgres URL without its credentials.
func databaseTarget(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "the database"
	}
	return strings.TrimPrefix(u.Path, "/") + " on " + u.Host
}

func checkMigrations(ctx context.Context, store *postgres.Store) checkResult {
	current, latest, err := store.MigrationStatus(ctx)
	switch {
	case err != nil:
		return checkResult{name: "migrations", detail: err.Error(), hint: "the bridge's user needs read access to its own tables"}
	case current > latest:
		return checkResult{name: "migrations", detail: fmt.Sprintf("database schema is at version %d, newer than this build knows (%d)", current, latest),
			hint: "a newer bridge migrated this database: run that version (migrations are forward-only) or restore a backup taken before the upgrade"}
	case current < latest:
		return checkResult{name: "migrations", ok: true, detail: fmt.Sprintf("schema at version %d; %d pending, applied at the next start (or by `bridge migrate`)", current, latest-current)}
	default:
		return checkResult{name: "migrations", ok: true, detail: fmt.Sprintf("schema up to date (version %d)", current)}
	}
}

func checkInbox(ctx context.Context, cfg Config, oc *onechat.Client) checkResult {
	r := checkResult{name: "onechat"}
	in, err := oc.Inbox(ctx)
	var apiErr *onechat.APIError
	switch {
	case err == nil:
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound:
		r.detail = err.Error()
		r.hint = "ONECHAT_INBOX_IDENTIFIER is wrong or the inbox is not an API inbox: copy the identifier from Settings → Inboxes → your API inbox → Configuration"
		return r
	case errors.As(err, &apiErr) && apiErr.StatusCode >= 500:
		r.detail = err.Error()
		r.hint = "OneChat itself is failing: look at its logs (rails and sidekiq containers)"
		return r
	case errors.As(err, &apiErr):
		r.detail = err.Error()
		r.hint = "ONECHAT_BASE_URL may point at something that is not OneChat, or a proxy in front of it blocks /public/api"
		return r
	default:
		r.detail = err.Error()
		r.hint = fmt.Sprintf("cannot reach ONECHAT_BASE_URL (%s) from the bridge: check the URL, DNS and firewall; inside OneChat's Compose network use the rails service, e.g. http://rails:3000", cfg.OneChatBaseURL)
		return r
	}
	r.ok = true
	r.detail = fmt.Sprintf("inbox %q answers", in.Name)
	if in.IdentityValidationEnabled && cfg.HMACToken == "" {
		r.ok = false
		r.hint = "the inbox enforces identity validation (HMAC): set ONECHAT_HMAC_TOKEN to the inbox's HMAC token (Settings → Inboxes → your inbox → Configuration)"
		r.detail += ", but it requires identity validation and no ONECHAT_HMAC_TOKEN is set"
	}
	return r
}

// checkApplication proves ONECHAT_API_ACCESS_TOKEN and ONECHAT_ACCOUNT_ID with a cheap
// authenticated read: the account's labels.
func checkApplication(ctx context.Context, app *onechat.AppClient) checkResult {
	r := checkResult{name: "agent api"}
	labels, err := app.AccountLabels(ctx)
	var apiErr *onechat.APIError
	switch {
	case err == nil:
		r.ok = true
		r.detail = fmt.Sprintf("account %d answers (%d labels); private notes for agents are on", app.AccountID(), len(labels))
		return r
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized:
		r.hint = "OneChat refused ONECHAT_API_ACCESS_TOKEN: copy an agent's access token (Profile settings → Access token) or an agent bot's, of this account"
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound:
		r.hint = "ONECHAT_ACCOUNT_ID is wrong, or the token's agent is not in that account: use the number after /app/accounts/ in OneChat's address bar"
	case errors.As(err, &apiErr):
		r.hint = "OneChat refused the Application API call: see the message"
	default:
		r.hint = "cannot reach OneChat's Application API at ONECHAT_BASE_URL"
	}
	r.detail = err.Error()
	return r
}

// checkCable dials the cable and waits for ActionCable's welcome frame. It dials directly
// rather than through onechat.Cable, whose reconnect loop would hide the first failure.
func checkCable(ctx context.Context, cableURL string) checkResult {
	r := checkResult{name: "cable"}
	hint := "ONECHAT_CABLE_URL must be OneChat's ActionCable endpoint (by default ONECHAT_BASE_URL with ws:// or wss:// and /cable), and a reverse proxy in front of OneChat must pass websocket upgrades on /cable"
	conn, resp, err := websocket.Dial(ctx, cableURL, &websocket.DialOptions{
		Subprotocols: []string{"actioncable-v1-json", "actioncable-unsupported"},
		HTTPHeader:   http.Header{"Origin": {cableOrigin(cableURL)}},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			r.detail = fmt.Sprintf("websocket upgrade answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
		} else {
			r.detail = "cannot connect: " + dialReason(err)
		}
		r.hint = hint
		return r
	}
	defer conn.CloseNow()
	if conn.Subprotocol() != "actioncable-v1-json" {
		r.detail = "the server did not select the actioncable-v1-json subprotocol"
		r.hint = "a proxy in front of OneChat drops the Sec-WebSocket-Protocol header, or the URL is not OneChat's /cable"
		return r
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			r.detail = "connected, but no welcome from the server: " + dialReason(err)
			r.hint = hint
			return r
		}
		var f struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		}
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		switch f.Type {
		case "welcome":
			_ = conn.Close(websocket.StatusNormalClosure, "")
			r.ok, r.detail = true, "websocket welcomed at "+cableURL
			return r
		case "disconnect":
			r.detail = fmt.Sprintf("the server refused the connection (disconnect, reason %q)", f.Reason)
			r.hint = "OneChat rejected the cable connection; if the reason is unauthorized, check that its allowed request origins include " + cableOrigin(cableURL)
			return r
		}
	}
}

// dialReason shortens a network error to its cause; the cable URL holds no secret, but the
// cause alone reads better on one line.
func dialReason(err error) string {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}

// cableOrigin is the Origin header OneChat expects on the upgrade: the cable URL's host with
// an http(s) scheme.
func cableOrigin(cableURL string) string {
	u, err := url.Parse(cableURL)
	if err != nil {
		return ""
	}
	scheme := "http"
	if u.Scheme == "wss" || u.Scheme == "https" {
		scheme = "https"
	}
	return scheme + "://" + u.Host
}

// checkAdapter asks an adapter to check itself against its platform (bridge.Checker).
func checkAdapter(ctx context.Context, a bridge.Adapter) checkResult {
	name := string(a.Platform())
	c, ok := a.(bridge.Checker)
	if !ok {
		return checkResult{name: name, skip: true, detail: "this adapter offers no check"}
	}
	detail, err := c.Check(ctx)
	if err != nil {
		hint := "check the " + strings.ToUpper(name) + "_* variables"
		var h *bridge.HintError
		if errors.As(err, &h) {
			hint = h.Hint
		}
		return checkResult{name: name, detail: err.Error(), hint: hint}
	}
	return checkResult{name: name, ok: true, detail: detail}
}
