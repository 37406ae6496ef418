package onechat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// ActionCable subprotocols. Rails offers both; a server that picks the second (or none) does
// not speak the JSON protocol this client implements.
const (
	protocolV1          = "actioncable-v1-json"
	protocolUnsupported = "actioncable-unsupported"
)

// Cable defaults. Rails pings every 3 s and its JS client calls a socket stale after 6 s
// without one; 8 s leaves room for a slow network without waiting long on a dead socket.
const (
	defaultStaleAfter     = 8 * time.Second
	defaultConfirmTimeout = 10 * time.Second
	defaultMinBackoff     = 500 * time.Millisecond
	defaultMaxBackoff     = 30 * time.Second
	defaultDialTimeout    = 15 * time.Second
	defaultWriteTimeout   = 5 * time.Second
	defaultSubscribeRate  = 50
	defaultQueueSize      = 1024
	defaultReadLimit      = 4 << 20
)

// ErrCableProtocol says the cable server did not select the actioncable-v1-json subprotocol:
// the URL does not point at an ActionCable endpoint, or a proxy strips the header.
var ErrCableProtocol = errors.New("cable server did not select the actioncable-v1-json subprotocol")

// ErrCableStale says the socket went quiet: no frame at all (pings included) for StaleAfter.
var ErrCableStale = errors.New("cable went stale: no frame received")

// DisconnectError is a disconnect frame from the server. With Reconnect false (for example
// "unauthorized"), Run stops and returns it.
type DisconnectError struct {
	Reason    string
	Reconnect bool
}

func (e *DisconnectError) Error() string {
	return fmt.Sprintf("cable server sent disconnect (reason %q, reconnect %t)", e.Reason, e.Reconnect)
}

// HandshakeError is a websocket upgrade the server answered with a non-101 status. Before the
// first successful connection of a Run, a 4xx other than 408 and 429 stops Run: it is a
// configuration error (wrong URL, a proxy that refuses websockets), not an outage.
type HandshakeError struct {
	StatusCode int
	Err        error
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("cable handshake answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// CableOptions configures a Cable. The zero value (or nil) is usable.
type CableOptions struct {
	// Origin is sent on the upgrade. Default: the cable URL's origin with an http/https scheme.
	Origin string
	// StaleAfter is how long the socket may stay silent (no frame at all; pings come every 3 s)
	// before it is dropped and redialled. Default 8 s.
	StaleAfter time.Duration
	// ConfirmTimeout is how long a subscribe may go unconfirmed before it is retried with an
	// unsubscribe and a new subscribe (the server ignores a repeated subscribe otherwise), and
	// how long to wait for the welcome. Default 10 s.
	ConfirmTimeout time.Duration
	// MinBackoff and MaxBackoff bound the exponential, jittered reconnect delay. Defaults
	// 500 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives connection-level logs. Pubsub tokens are never logged, only a short hash
	// (token_hash). nil means zap.NewNop().
	Logger *zap.Logger
	// HTTPClient performs the upgrade. nil means http.DefaultClient (DialTimeout bounds it).
	HTTPClient *http.Client

	// DialTimeout bounds one dial including the upgrade. Default 15 s.
	DialTimeout time.Duration
	// WriteTimeout bounds each frame written. Default 5 s.
	WriteTimeout time.Duration
	// SubscribeRate caps subscribe and unsubscribe commands per second, so a reconnect with
	// hundreds of subscriptions does not flood the server's small worker pool. Default 50.
	SubscribeRate int
	// QueueSize is the buffer between the reader and the handler. When it is full the reader
	// waits (and logs): nothing is dropped. Default 1024.
	QueueSize int
	// ReadLimit caps one frame. Default 4 MiB.
	ReadLimit int64
}

// CableHandler receives what the cable hears.
type CableHandler interface {
	// CableEvent is called for every broadcast frame, in arrival order, from one dispatch
	// goroutine (the reader never blocks on the handler for long: a buffered queue sits between
	// them). It should return quickly; a slow handler eventually stalls the reader.
	CableEvent(ctx context.Context, ev Event)
	// CableConfirmed is called after every confirmation (first subscribe and each resubscribe
	// after a reconnect), from the same goroutine and in order with CableEvent. The cable has
	// no replay, so this is where to catch up over REST.
	CableConfirmed(ctx context.Context, token string)
}

// CableConfirmTimeoutHandler is an optional interface of a CableHandler. CableConfirmTimeout
// is called (from the dispatch goroutine) each time a subscription stays unconfirmed for
// ConfirmTimeout and is retried. OneChat answers an unknown pubsub token with silence, so
// repeated timeouts for a token suggest fetching the contact again for a fresh one.
type CableConfirmTimeoutHandler interface {
	CableConfirmTimeout(ctx context.Context, token string)
}

// CableStats is a snapshot of a Cable's state, for metrics and health checks.
type CableStats struct {
	// Connected is true while a welcomed socket is up.
	Connected bool
	// Subscriptions is the number of tokens the cable should be subscribed to.
	Subscriptions int
	// Confirmed is the number of those confirmed on the current socket.
	Confirmed int
	// Reconnects counts dials after the first one since the Cable was made.
	Reconnects int64
}

// Cable keeps RoomChannel subscriptions for a set of pubsub tokens on one ActionCable
// websocket, reconnecting and resubscribing as needed. Subscribe, Unsubscribe, Connected and
// Stats are safe for concurrent use; Run must be called once at a time.
type Cable struct {
	url    string
	h      CableHandler
	opts   CableOptions
	origin string
	log    *zap.Logger

	mu      sync.Mutex
	byToken map[string]string // pubsub token → identifier
	byIdent map[string]string // identifier → pubsub token

	// wake tells the connection that the wanted set changed. Capacity 1: a pending signal
	// covers any number of changes, because the connection reads the whole set.
	wake chan struct{}

	running    atomic.Bool
	connected  atomic.Bool
	confirmed  atomic.Int64
	reconnects atomic.Int64
}

// NewCable returns a cable for the ActionCable endpoint at url (ws://, wss://, http:// or
// https://; see CableURL). It does nothing until Run. opts may be nil.
func NewCable(url string, h CableHandler, opts *CableOptions) *Cable {
	var o CableOptions
	if opts != nil {
		o = *opts
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = defaultStaleAfter
	}
	if o.ConfirmTimeout <= 0 {
		o.ConfirmTimeout = defaultConfirmTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = defaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = defaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = defaultWriteTimeout
	}
	if o.SubscribeRate <= 0 {
		o.SubscribeRate = defaultSubscribeRate
	}
	if o.QueueSize <= 0 {
		o.QueueSize = defaultQueueSize
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = defaultReadLimit
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	origin := o.Origin
	if origin == "" {
		origin = originOf(url)
	}
	return &Cable{
		url:     url,
		h:       h,
		opts:    o,
		origin:  origin,
		log:     o.Logger,
		byToken: map[string]string{},
		byIdent: map[string]string{},
		wake:    make(chan struct{}, 1),
	}
}

// CableURL derives the cable endpoint from a OneChat base URL: "https://chat.example.com"
// gives "wss://chat.example.com/cable".
func CableURL(baseURL string) (string, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", errors.New("cable url: base URL does not parse")
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("cable url: unsupported scheme %q", u.Scheme)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/cable"
	u.RawPath = ""
	u.RawQuery = ""
	u.Fragment = ""
	return u.String(), nil
}

// originOf returns scheme://host of a cable URL with ws mapped to http and wss to https.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	scheme := u.Scheme
	switch scheme {
	case "ws":
		scheme = "http"
	case "wss":
		scheme = "https"
	}
	return scheme + "://" + u.Host
}

// identifierFor builds the RoomChannel identifier of a token. The server keys subscriptions by
// the raw string and echoes it byte for byte, so it is built once per token and reused.
func identifierFor(token string) string {
	b, _ := json.Marshal(struct {
		Channel     string `json:"channel"`
		PubsubToken string `json:"pubsub_token"`
	}{"RoomChannel", token})
	return string(b)
}

// tokenHash is a short, irreversible tag for a pubsub token, for correlating log lines.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}

// Subscribe adds token to the subscriptions. It is idempotent and may be called before or
// while Run; the subscribe is (re)sent after every welcome.
func (c *Cable) Subscribe(token string) {
	if token == "" {
		return
	}
	c.mu.Lock()
	if _, ok := c.byToken[token]; !ok {
		id := identifierFor(token)
		c.byToken[token] = id
		c.byIdent[id] = token
	}
	c.mu.Unlock()
	c.poke()
}

// Unsubscribe removes token. Broadcasts for it stop being delivered at once; the unsubscribe
// command follows on the socket.
func (c *Cable) Unsubscribe(token string) {
	c.mu.Lock()
	if id, ok := c.byToken[token]; ok {
		delete(c.byToken, token)
		delete(c.byIdent, id)
	}
	c.mu.Unlock()
	c.poke()
}

func (c *Cable) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// tokenOf returns the token subscribed under identifier, or "".
func (c *Cable) tokenOf(identifier string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byIdent[identifier]
}

// wanted returns a copy of identifier → token for every subscription.
func (c *Cable) wanted() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]string, len(c.byIdent))
	for id, tok := range c.byIdent {
		m[id] = tok
	}
	return m
}

// Connected reports whether a welcomed socket is up.
func (c *Cable) Connected() bool { return c.connected.Load() }

// Stats returns a snapshot of the cable's state.
func (c *Cable) Stats() CableStats {
	c.mu.Lock()
	n := len(c.byToken)
	c.mu.Unlock()
	return CableStats{
		Connected:     c.connected.Load(),
		Subscriptions: n,
		Confirmed:     int(c.confirmed.Load()),
		Reconnects:    c.reconnects.Load(),
	}
}

// cableItem is one entry of the dispatch queue.
type cableItem struct {
	kind  itemKind
	token string
	ev    Event
}

type itemKind int

const (
	itemEvent itemKind = iota
	itemConfirmed
	itemConfirmTimeout
)

// Run owns the connection: it dials, waits for the welcome, subscribes every token, reads, and
// reconnects with backoff on a drop, a stale socket or a disconnect frame. It returns nil when
// ctx is cancelled, and an error when the server says not to reconnect or, before the first
// successful connection, when the endpoint is plainly wrong (HandshakeError with a 4xx,
// ErrCableProtocol). It returns only after all its goroutines have exited.
func (c *Cable) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("cable: Run is already running")
	}
	defer c.running.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	queue := make(chan cableItem, c.opts.QueueSize)
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		c.dispatch(ctx, queue)
	}()

	err := c.loop(ctx, queue)
	cancel()
	<-dispatched
	return err
}

// dispatch calls the handler for each queued item, in order, until ctx ends.
func (c *Cable) dispatch(ctx context.Context, queue <-chan cableItem) {
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-queue:
			switch it.kind {
			case itemEvent:
				c.h.CableEvent(ctx, it.ev)
			case itemConfirmed:
				c.h.CableConfirmed(ctx, it.token)
			case itemConfirmTimeout:
				if th, ok := c.h.(CableConfirmTimeoutHandler); ok {
					th.CableConfirmTimeout(ctx, it.token)
				}
			}
		}
	}
}

// enqueue hands an item to the dispatcher, waiting (with a warning) when the queue is full
// rather than dropping it. It returns false when ctx ended first.
func (c *Cable) enqueue(ctx context.Context, queue chan<- cableItem, it cableItem) bool {
	select {
	case queue <- it:
		return true
	default:
	}
	c.log.Warn("cable dispatch queue full; reader waits for the handler", zap.Int("capacity", cap(queue)))
	select {
	case queue <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

// loop dials and redials until ctx ends or a permanent error.
func (c *Cable) loop(ctx context.Context, queue chan<- cableItem) error {
	everWelcomed := false
	attempt := 0
	for {
		welcomed, uptime, err := c.connectOnce(ctx, queue)
		if ctx.Err() != nil {
			return nil
		}
		var de *DisconnectError
		if errors.As(err, &de) && !de.Reconnect {
			c.log.Error("cable server refused the connection for good", zap.String("reason", de.Reason))
			return fmt.Errorf("onechat cable: %w", err)
		}
		if welcomed {
			everWelcomed = true
		} else if !everWelcomed && permanentDialError(err) {
			return fmt.Errorf("onechat cable: %w", err)
		}
		if welcomed && uptime >= c.opts.StaleAfter {
			attempt = 0 // the connection was healthy; start over from the short delay
		}
		attempt++
		sleep := c.backoff(attempt)
		c.log.Warn("cable disconnected; reconnecting", zap.Error(err),
			zap.Int("attempt", attempt), zap.Duration("sleep", sleep))
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		c.reconnects.Add(1)
	}
}

// permanentDialError reports whether a failed first connection means misconfiguration.
func permanentDialError(err error) bool {
	if errors.Is(err, ErrCableProtocol) {
		return true
	}
	var he *HandshakeError
	if errors.As(err, &he) {
		s := he.StatusCode
		return s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests
	}
	return false
}

// backoff returns the delay before reconnect attempt n (from 1): MinBackoff doubled per
// attempt up to MaxBackoff, with equal jitter (between half and all of it) so that many
// bridges dropped by one server restart do not come back in lockstep.
func (c *Cable) backoff(attempt int) time.Duration {
	d := c.opts.MinBackoff
	for i := 1; i < attempt && d < c.opts.MaxBackoff; i++ {
		d *= 2
	}
	if d > c.opts.MaxBackoff {
		d = c.opts.MaxBackoff
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// connectOnce dials one socket and serves it until it ends. It reports whether the server
// welcomed it and for how long it was up.
func (c *Cable) connectOnce(ctx context.Context, queue chan<- cableItem) (welcomed bool, uptime time.Duration, err error) {
	dctx, dcancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	hdr := http.Header{}
	if c.origin != "" {
		hdr.Set("Origin", c.origin)
	}
	ws, resp, err := websocket.Dial(dctx, c.url, &websocket.DialOptions{
		HTTPClient:   c.opts.HTTPClient,
		HTTPHeader:   hdr,
		Subprotocols: []string{protocolV1, protocolUnsupported},
	})
	dcancel()
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return false, 0, &HandshakeError{StatusCode: resp.StatusCode, Err: err}
		}
		return false, 0, fmt.Errorf("dial: %w", err)
	}
	if ws.Subprotocol() != protocolV1 {
		_ = ws.CloseNow()
		return false, 0, ErrCableProtocol
	}
	ws.SetReadLimit(c.opts.ReadLimit)

	cc := &cableConn{
		c:     c,
		ws:    ws,
		queue: queue,
		subs:  map[string]*connSub{},
		log:   c.log,
	}
	return cc.serve(ctx)
}

// cableConn is the state of one socket. Everything but the reader is owned by the goroutine
// that runs serve; the reader talks to it through channels.
type cableConn struct {
	c     *Cable
	ws    *websocket.Conn
	queue chan<- cableItem
	log   *zap.Logger

	welcomed   bool
	welcomedAt time.Time
	subs       map[string]*connSub // by identifier: what this socket has sent
	confirmed  int
	nextWrite  time.Time // pacing of subscribe/unsubscribe commands
}

// connSub is one identifier as this socket sees it.
type connSub struct {
	sentAt    time.Time
	confirmed bool
}

// control is what the reader tells the connection owner.
type control struct {
	typ        string // "welcome", "confirm_subscription", "reject_subscription"
	identifier string
	// handled, when set, is closed once the owner applied the frame, so that the handler's
	// CableConfirmed sees Stats that already count the confirmation.
	handled chan struct{}
}

// serve runs the reader and the control loop until the socket ends.
func (cc *cableConn) serve(ctx context.Context) (welcomed bool, uptime time.Duration, err error) {
	ctx, cancel := context.WithCancel(ctx)
	ctrl := make(chan control, 64)
	readErr := make(chan error, 1)
	go func() { readErr <- cc.read(ctx, ctrl) }()

	dialed := time.Now()
	readerDone, err := cc.control(ctx, ctrl, readErr, dialed)
	cancel()
	_ = cc.ws.CloseNow()
	if !readerDone {
		<-readErr
	}
	cc.c.connected.Store(false)
	cc.c.confirmed.Store(0)
	if cc.welcomed {
		uptime = time.Since(cc.welcomedAt)
	}
	return cc.welcomed, uptime, err
}

// control is the owner loop: it reacts to the reader's control frames and keeps the socket's
// subscriptions in line with the wanted set, paced and with confirm timeouts. It returns the
// reason the socket ended, and whether that came from the reader (which has then exited).
func (cc *cableConn) control(ctx context.Context, ctrl <-chan control, readErr <-chan error, dialed time.Time) (readerDone bool, err error) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var wakeAt time.Time
		if cc.welcomed {
			if wakeAt, err = cc.sync(ctx); err != nil {
				return false, err
			}
		} else {
			wakeAt = dialed.Add(cc.c.opts.ConfirmTimeout)
			if !time.Now().Before(wakeAt) {
				return false, fmt.Errorf("no welcome within %s", cc.c.opts.ConfirmTimeout)
			}
		}
		var tc <-chan time.Time
		if !wakeAt.IsZero() {
			timer.Reset(time.Until(wakeAt))
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case err := <-readErr:
			return true, err
		case m := <-ctrl:
			cc.handle(m)
			if m.handled != nil {
				close(m.handled)
			}
		case <-cc.c.wake:
		case <-tc:
		}
		timer.Stop()
	}
}

// handle applies one control frame to the socket's state.
func (cc *cableConn) handle(m control) {
	switch m.typ {
	case "welcome":
		if cc.welcomed {
			// Rails welcomes once per socket; if a server repeats it, resend everything.
			cc.log.Info("cable welcomed again; resubscribing")
		}
		cc.welcomed = true
		cc.welcomedAt = time.Now()
		cc.subs = map[string]*connSub{}
		cc.setConfirmed(0)
		cc.c.connected.Store(true)
		cc.log.Info("cable connected", zap.Int("subscriptions", cc.c.Stats().Subscriptions))
	case "confirm_subscription":
		s := cc.subs[m.identifier]
		if s == nil || s.confirmed {
			return
		}
		s.confirmed = true
		cc.setConfirmed(cc.confirmed + 1)
	case "reject_subscription":
		// OneChat never rejects, but Rails may. The confirm timeout retries it.
		if s := cc.subs[m.identifier]; s != nil && s.confirmed {
			s.confirmed = false
			cc.setConfirmed(cc.confirmed - 1)
		}
		cc.log.Warn("cable subscription rejected", zap.String("token_hash", tokenHash(cc.c.tokenOf(m.identifier))))
	}
}

func (cc *cableConn) setConfirmed(n int) {
	cc.confirmed = n
	cc.c.confirmed.Store(int64(n))
}

// sync performs at most one paced command that brings the socket closer to the wanted set,
// and returns when it next needs to run (zero: only on a signal).
func (cc *cableConn) sync(ctx context.Context) (time.Time, error) {
	now := time.Now()
	if now.Before(cc.nextWrite) {
		return cc.nextWrite, nil
	}
	interval := time.Second / time.Duration(cc.c.opts.SubscribeRate)
	wanted := cc.c.wanted()

	for id, s := range cc.subs {
		if _, ok := wanted[id]; ok {
			continue
		}
		if err := cc.command(ctx, "unsubscribe", id); err != nil {
			return time.Time{}, err
		}
		if s.confirmed {
			cc.setConfirmed(cc.confirmed - 1)
		}
		delete(cc.subs, id)
		cc.nextWrite = now.Add(interval)
		return cc.nextWrite, nil
	}
	for id := range wanted {
		if _, ok := cc.subs[id]; ok {
			continue
		}
		if err := cc.command(ctx, "subscribe", id); err != nil {
			return time.Time{}, err
		}
		cc.subs[id] = &connSub{sentAt: now}
		cc.nextWrite = now.Add(interval)
		return cc.nextWrite, nil
	}
	var earliest time.Time
	for id, s := range cc.subs {
		if s.confirmed {
			continue
		}
		deadline := s.sentAt.Add(cc.c.opts.ConfirmTimeout)
		if now.Before(deadline) {
			if earliest.IsZero() || deadline.Before(earliest) {
				earliest = deadline
			}
			continue
		}
		// The server keeps a silently failed subscription registered and ignores a repeated
		// subscribe for it, so unsubscribe first.
		token := wanted[id]
		cc.log.Warn("cable subscription not confirmed; retrying",
			zap.String("token_hash", tokenHash(token)), zap.Duration("timeout", cc.c.opts.ConfirmTimeout))
		if err := cc.command(ctx, "unsubscribe", id); err != nil {
			return time.Time{}, err
		}
		if err := cc.command(ctx, "subscribe", id); err != nil {
			return time.Time{}, err
		}
		s.sentAt = now
		cc.nextWrite = now.Add(2 * interval)
		if !cc.c.enqueue(ctx, cc.queue, cableItem{kind: itemConfirmTimeout, token: token}) {
			return time.Time{}, ctx.Err()
		}
		return cc.nextWrite, nil
	}
	return earliest, nil
}

// command writes one client command, bounded by WriteTimeout.
func (cc *cableConn) command(ctx context.Context, command, identifier string) error {
	b, err := json.Marshal(struct {
		Command    string `json:"command"`
		Identifier string `json:"identifier"`
	}{command, identifier})
	if err != nil {
		return fmt.Errorf("encode %s: %w", command, err)
	}
	wctx, cancel := context.WithTimeout(ctx, cc.c.opts.WriteTimeout)
	defer cancel()
	if err := cc.ws.Write(wctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("write %s: %w", command, err)
	}
	return nil
}

// frame is any server frame. Broadcasts have no type.
type frame struct {
	Type       string          `json:"type"`
	Identifier string          `json:"identifier"`
	Message    json.RawMessage `json:"message"`
	Reason     string          `json:"reason"`
	Reconnect  *bool           `json:"reconnect"`
}

// read is the socket's reader. It runs until the socket fails, goes stale or is told to
// disconnect, and returns why. Broadcasts and confirmations go straight to the dispatch queue
// so the handler sees them in arrival order; control frames also go to the owner loop.
func (cc *cableConn) read(ctx context.Context, ctrl chan<- control) error {
	stale := cc.c.opts.StaleAfter
	for {
		// A read whose context expires closes the whole connection, which is exactly what a
		// stale socket deserves.
		rctx, rcancel := context.WithTimeout(ctx, stale)
		typ, b, err := cc.ws.Read(rctx)
		timedOut := errors.Is(rctx.Err(), context.DeadlineExceeded)
		rcancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if timedOut {
				return fmt.Errorf("%w for %s", ErrCableStale, stale)
			}
			return fmt.Errorf("read: %w", err)
		}
		if typ != websocket.MessageText {
			cc.log.Warn("cable frame skipped: not text", zap.Int("bytes", len(b)))
			continue
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			cc.log.Warn("cable frame skipped: malformed", zap.Int("bytes", len(b)), zap.Error(err))
			continue
		}
		switch f.Type {
		case "ping":
		case "welcome", "reject_subscription":
			if !cc.tell(ctx, ctrl, control{typ: f.Type, identifier: f.Identifier}) {
				return ctx.Err()
			}
		case "confirm_subscription":
			handled := make(chan struct{})
			if !cc.tell(ctx, ctrl, control{typ: f.Type, identifier: f.Identifier, handled: handled}) {
				return ctx.Err()
			}
			select {
			case <-handled:
			case <-ctx.Done():
				return ctx.Err()
			}
			if tok := cc.c.tokenOf(f.Identifier); tok != "" {
				if !cc.c.enqueue(ctx, cc.queue, cableItem{kind: itemConfirmed, token: tok}) {
					return ctx.Err()
				}
			}
		case "disconnect":
			return &DisconnectError{Reason: f.Reason, Reconnect: f.Reconnect == nil || *f.Reconnect}
		case "":
			if f.Identifier == "" || len(f.Message) == 0 {
				cc.log.Warn("cable frame skipped: no type and no broadcast", zap.Int("bytes", len(b)))
				continue
			}
			var msg struct {
				Event string          `json:"event"`
				Data  json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(f.Message, &msg); err != nil || msg.Event == "" {
				cc.log.Warn("cable broadcast skipped: malformed message", zap.Int("bytes", len(b)))
				continue
			}
			tok := cc.c.tokenOf(f.Identifier)
			if tok == "" {
				cc.log.Debug("cable broadcast skipped: not subscribed", zap.String("event", msg.Event))
				continue
			}
			ev := Event{Token: tok, Name: msg.Event, Data: msg.Data}
			if !cc.c.enqueue(ctx, cc.queue, cableItem{kind: itemEvent, token: tok, ev: ev}) {
				return ctx.Err()
			}
		default:
			cc.log.Debug("cable frame skipped: unknown type", zap.String("type", f.Type))
		}
	}
}

// tell passes a control frame to the owner loop.
func (cc *cableConn) tell(ctx context.Context, ctrl chan<- control, m control) bool {
	select {
	case ctrl <- m:
		return true
	case <-ctx.Done():
		return false
	}
}
