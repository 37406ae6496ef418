// Package onechattest is an in-memory fake of a OneChat (Chatwoot) API inbox: the public Client
// API under /public/api/v1/inboxes/{inbox} and the ActionCable websocket at /cable.
//
// It follows /work/shared/onechat-client-api.md §11 and reproduces the upstream quirks a client
// must survive (every success is 200, HMAC failures are 500, unknown pubsub tokens get no reply,
// no replay on reconnect, the echo of the contact's own message may beat the POST response). It
// deliberately does not import the onechat client, so that it catches that client's bugs instead
// of sharing them.
//
// Tests use NewServer, which runs the fake on an httptest server and closes it with t.Cleanup. A
// standalone process (end-to-end tests of the real binary) uses New, Handler and Close. Test
// controls (AgentReply, Resolve, RestartCable, FailNext, …) are methods, not HTTP routes, and
// every method is safe for concurrent use.
package onechattest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Options configures a fake server. The zero value (or nil) gives the defaults documented on
// each field.
type Options struct {
	// PingInterval is how often the cable sends {"type":"ping"}. Default 3s, as Rails does;
	// tests pass e.g. 50ms so stale-ping detection runs fast.
	PingInterval time.Duration
	// HMACToken is the inbox's hmac_token. Default: a random 24-character token.
	HMACToken string
	// HMACMandatory is the inbox's hmac_mandatory: contact routes then need identifier +
	// identifier_hash, even a plain GET (§5.2).
	HMACMandatory bool
	// StrictHMAC selects the "fixed" upstream behaviour of §5.2: HMAC failures answer 401
	// instead of 500, and a valid pair verifies a session only when the identifier is the
	// session contact's own.
	StrictHMAC bool
	// LockToSingleConversation makes POST …/conversations return the session's last
	// conversation (any status, no event) when one exists.
	LockToSingleConversation bool
	// ActiveBot gives the inbox an active agent bot: new conversations start pending, and a
	// contact message reopens a resolved conversation as pending (§7).
	ActiveBot bool
	// CSATSurveyEnabled is the inbox's csat_survey_enabled: resolving a conversation posts
	// one input_csat template message, which the contact answers with a message update (§6.5).
	CSATSurveyEnabled bool
	// CSATExpiry is how long a CSAT survey may be answered; later updates get 422. Default
	// 14 days (upstream's default csat_expiry_hours is 336).
	CSATExpiry time.Duration
	// PresenceDuration is how long a contact shows online after a subscribe or an
	// update_presence (OnlineStatusTracker::PRESENCE_DURATION). Default 60s.
	PresenceDuration time.Duration
	// MissingRoutes emulates an older OneChat without some routes, which then answer 404 with
	// the same JSON body as an unknown record (§2.1, rough edge 19). Names: RouteConversationShow,
	// RouteToggleStatus, RouteToggleTyping, RouteUpdateLastSeen.
	MissingRoutes []string
	// Now is the fake's clock for presence expiry and CSAT expiry. Default time.Now.
	Now func() time.Time
	// MessageFloodLimit is the per-conversation limit of messages per minute before contact
	// messages get 422 "Too many messages". Default 200; negative disables the check.
	MessageFloodLimit int
	// InboxIdentifier is the inbox_identifier. Default: a random 24-character token.
	InboxIdentifier string
	// InboxName is the inbox name in GET /inboxes/{inbox}. Default "OneChat Bridge".
	InboxName string
	// BaseURL is the absolute URL the fake is reachable at; attachment data_urls are built on
	// it as OneChat builds them on FRONTEND_URL. NewServer sets it. When empty, the first
	// request's Host decides.
	BaseURL string
	// AccessToken is the api_access_token the Application API (/api/v1/accounts/{account_id}/…)
	// accepts: an agent's access token. Default: a random 24-character token.
	AccessToken string
	// Logf receives the fake's log lines (never tokens or hashes). Default t.Logf for
	// NewServer, log.Printf for New.
	Logf func(format string, args ...any)
}

// Request is one HTTP request the fake answered, for assertions on what a client called. The
// log holds every request: Client API calls, /cable upgrades (101) and attachment downloads.
type Request struct {
	Method string
	Path   string
	Query  string
	Status int
}

// Server is the fake. Create it with NewServer (tests) or New (standalone).
type Server struct {
	opts    Options
	tb      testing.TB // nil when made by New
	hs      *httptest.Server
	handler http.Handler
	logOff  atomic.Bool
	stalled atomic.Bool

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every state change; see Wait
	closed   bool
	baseURL  string
	st       state
	requests []Request
	failN    int
	failCode int
	throttle int
	dropN    int
	dupN     int
	reorderN int
	held     []heldFrame // a delivery ReorderEvents holds back until the next event
	delay    time.Duration
	timers   map[*time.Timer]struct{} // pending DelayEvents deliveries
	timerWG  sync.WaitGroup
	subMode  subscribeMode

	// holdSurveys and heldSurveys (conversation ids): see HoldSurveys.
	holdSurveys bool
	heldSurveys []int64

	// agentPresence is the availability of agents by id, as presence.update reports it.
	agentPresence map[int64]string
	conns         map[*cableConn]struct{}
	tokenSubs     map[string]map[subRef]struct{} // confirmed subscriptions by pubsub token
	connSeq       int64
	wg            sync.WaitGroup // cable handlers
}

// NewServer starts a fake OneChat on an httptest server bound to 127.0.0.1. t.Cleanup closes
// it together with every websocket it accepted. opts may be nil.
func NewServer(t testing.TB, opts *Options) *Server {
	t.Helper()
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	s := newServer(&o, t)
	s.hs = httptest.NewServer(s.Handler())
	s.mu.Lock()
	s.baseURL = s.hs.URL
	s.mu.Unlock()
	t.Cleanup(func() {
		s.hs.Close()
		s.Close()
	})
	return s
}

// New makes a fake that is not bound to a listener or a test, for a standalone process: serve
// Handler on any http.Server and call Close when done. opts may be nil; set BaseURL when the
// address is known so data_urls are right from the start.
func New(opts *Options) *Server {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Logf == nil {
		o.Logf = log.Printf
	}
	return newServer(&o, nil)
}

func newServer(o *Options, tb testing.TB) *Server {
	if o.PingInterval <= 0 {
		o.PingInterval = 3 * time.Second
	}
	if o.HMACToken == "" {
		o.HMACToken = secureToken()
	}
	if o.InboxIdentifier == "" {
		o.InboxIdentifier = secureToken()
	}
	if o.AccessToken == "" {
		o.AccessToken = secureToken()
	}
	if o.InboxName == "" {
		o.InboxName = "OneChat Bridge"
	}
	if o.CSATExpiry <= 0 {
		o.CSATExpiry = 14 * 24 * time.Hour
	}
	if o.PresenceDuration <= 0 {
		o.PresenceDuration = 60 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MessageFloodLimit == 0 {
		o.MessageFloodLimit = 200
	}
	s := &Server{
		opts:          *o,
		tb:            tb,
		changed:       make(chan struct{}),
		baseURL:       strings.TrimRight(o.BaseURL, "/"),
		conns:         make(map[*cableConn]struct{}),
		tokenSubs:     make(map[string]map[subRef]struct{}),
		timers:        make(map[*time.Timer]struct{}),
		agentPresence: map[int64]string{agentID: "online"},
		st:            newState(),
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s
}

// Handler returns the fake's HTTP handler: the Client API, /cable and the attachment URLs.
func (s *Server) Handler() http.Handler { return s.handler }

// Close closes every websocket and waits for their goroutines. REST requests still in flight
// finish normally; new websocket upgrades are refused. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for t := range s.timers {
		if t.Stop() {
			s.timerWG.Done()
		}
	}
	clear(s.timers)
	conns := make([]*cableConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.cancel()
	}
	s.timerWG.Wait()
	s.wg.Wait()
	// A test's t.Logf must not be called after the test ends.
	s.logOff.Store(true)
}

// URL is the base URL of the fake, e.g. http://127.0.0.1:34567 (the client's base URL).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseURL
}

// CableURL is the websocket URL, ws://host/cable.
func (s *Server) CableURL() string {
	u := s.URL()
	switch {
	case strings.HasPrefix(u, "https://"):
		return "wss://" + strings.TrimPrefix(u, "https://") + "/cable"
	case strings.HasPrefix(u, "http://"):
		return "ws://" + strings.TrimPrefix(u, "http://") + "/cable"
	}
	return u + "/cable"
}

// InboxIdentifier is the inbox_identifier of the fake's one API inbox.
func (s *Server) InboxIdentifier() string { return s.opts.InboxIdentifier }

// HMACToken is the inbox's hmac_token, for computing identifier_hash.
func (s *Server) HMACToken() string { return s.opts.HMACToken }

// IdentifierHash returns the identifier_hash OneChat expects for identifier: lowercase hex
// HMAC-SHA256 keyed with the inbox's hmac_token (§5.1).
func (s *Server) IdentifierHash(identifier string) string {
	h := hmac.New(sha256.New, []byte(s.opts.HMACToken))
	h.Write([]byte(identifier))
	return hex.EncodeToString(h.Sum(nil))
}

// Wait blocks until cond returns true or ctx ends. cond is evaluated now and again after every
// state change of the fake (REST writes, cable subscriptions, connections, requests), so tests
// need no polling sleeps. cond may call the Server's accessors; it must not block.
func (s *Server) Wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for fake onechat state: %w", ctx.Err())
		case <-ch:
		}
	}
}

// notify wakes every Wait. The caller holds s.mu.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Requests returns the log of HTTP requests answered so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// FailNext makes the next n Client API requests (/public/…) answer status without touching
// state: 500 with Rails' generic JSON body, any other status with a plain-text body (502 "Bad
// Gateway" as a proxy would).
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode = n, status
}

// Throttle makes the next n Client API requests answer 429 text/plain "Retry later\n", as
// Rack::Attack does (no Retry-After).
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = n
}

// DropEvents makes the next n contact-facing events (message.*, conversation.*, typing) vanish,
// as if the broadcast job were lost, so tests can check REST catch-up. One event counts once
// however many subscriptions it would have reached; presence.update is not counted.
func (s *Server) DropEvents(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropN = n
}

// DuplicateEvents makes the next n contact-facing events arrive twice on every subscription
// they reach, as they do when a job is retried or several verified sessions are subscribed on
// one socket (rough edge 3). Handlers must be idempotent.
func (s *Server) DuplicateEvents(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dupN = n
}

// ReorderEvents makes each of the next n contact-facing events arrive after the event that
// follows it, as ActionCable's worker pool can transmit two broadcasts in either order (rough
// edge 22): a message.updated before its message.created, conversation.updated before the
// message that caused it. A held event with no successor is delivered by FlushEvents.
func (s *Server) ReorderEvents(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reorderN = n
}

// FlushEvents delivers an event ReorderEvents is still holding back.
func (s *Server) FlushEvents() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseHeld()
}

// DelayEvents delays every contact-facing event by d (0 turns the delay off), as a slow
// Sidekiq queue does: a REST answer then arrives long before its event. Delayed events still
// go only to subscriptions live at delivery time; Close discards those not yet delivered.
func (s *Server) DelayEvents(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// RejectSubscriptions makes the cable answer every later subscribe with reject_subscription
// (true), or confirm known tokens again (false). Chatwoot's RoomChannel never rejects, but
// ActionCable servers can, and a client must report it rather than wait.
func (s *Server) RejectSubscriptions(reject bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reject {
		s.subMode = subscribeReject
	} else if s.subMode == subscribeReject {
		s.subMode = subscribeNormal
	}
}

// IgnoreSubscriptions makes the cable answer nothing to every later subscribe, even for known
// tokens (true), as when the subscribed hook raises or the broadcast backend is down; false
// restores confirmations. Like Rails, the silent subscription stays in the socket's table, so
// the same identifier on the same socket is ignored until the client unsubscribes.
func (s *Server) IgnoreSubscriptions(ignore bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ignore {
		s.subMode = subscribeIgnore
	} else if s.subMode == subscribeIgnore {
		s.subMode = subscribeNormal
	}
}

// StallPings stops (true) or resumes (false) the cable pings on every socket. Sockets stay
// open, so a client must detect the stale connection itself.
func (s *Server) StallPings(stall bool) { s.stalled.Store(stall) }

func (s *Server) logf(format string, args ...any) {
	if s.logOff.Load() {
		return
	}
	s.opts.Logf("onechattest: "+format, args...)
}

// errorf reports a misuse of a test control (an unknown id): the test fails, or, standalone,
// the line is logged.
func (s *Server) errorf(format string, args ...any) {
	if s.tb != nil && !s.logOff.Load() {
		s.tb.Errorf("onechattest: "+format, args...)
		return
	}
	s.logf(format, args...)
}

// serveHTTP routes a request: /cable, the attachment URLs, and everything else to the API
// (where unknown routes are 404s, as in Rails).
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.baseURL == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		s.baseURL = scheme + "://" + r.Host
	}
	s.mu.Unlock()

	if r.URL.Path == "/cable" {
		s.serveCable(w, r)
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	switch {
	case strings.HasPrefix(r.URL.Path, storagePrefix):
		s.serveStorage(rec, r)
	case strings.HasPrefix(r.URL.Path, appPrefix):
		s.serveApplication(rec, r)
	default:
		s.serveAPI(rec, r)
	}
	s.record(r, rec.status)
}

func (s *Server) record(r *http.Request, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: status})
	s.notify()
}

// injectedFault consumes one throttle or failure, if any is pending, and writes it.
func (s *Server) injectedFault(w http.ResponseWriter) bool {
	s.mu.Lock()
	var code int
	switch {
	case s.throttle > 0:
		s.throttle--
		code = http.StatusTooManyRequests
	case s.failN > 0:
		s.failN--
		code = s.failCode
	}
	s.mu.Unlock()
	switch code {
	case 0:
		return false
	case http.StatusTooManyRequests:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		_, _ = w.Write([]byte("Retry later\n"))
	case http.StatusInternalServerError:
		writeJSON(w, code, errInternal)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(http.StatusText(code) + "\n"))
	}
	s.logf("injected %d", code)
	return true
}

// statusRecorder remembers the status a handler wrote, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
