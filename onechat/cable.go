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

	"go.uber.org/zap"
)

// ActionCable subprotocols. Rails offers both; a server that picks the second (or none) does
// not speak the JSON protocol this client implements.
const (
	protocolV1          = "actioncable-v1-json"
	protocolUnsupported = "actioncable-unsupported"
)

// Cable defaults. Rails pings every 3 s and its JS client calls a socket stale after 6 s
// (two intervals) without one; 8 s leaves room for a slow network without waiting long on a
// dead socket.
const (
	defaultStaleAfter       = 8 * time.Second
	defaultConfirmTimeout   = 10 * time.Second
	defaultMinBackoff       = 500 * time.Millisecond
	defaultMaxBackoff       = 30 * time.Second
	defaultDialTimeout      = 15 * time.Second
	defaultWriteTimeout     = 5 * time.Second
	defaultSubscribeRate    = 50
	defaultQueueSize        = 1024
	defaultReadLimit        = 4 << 20
	defaultMaxPerConnection = 500
	defaultSilentAfter      = 3
	defaultSilentRetry      = 2 * time.Minute
)

// ErrCableProtocol says the cable server did not select the actioncable-v1-json subprotocol:
// the URL does not point at an ActionCable endpoint, or a proxy strips the header.
var ErrCableProtocol = errors.New("cable server did not select the actioncable-v1-json subprotocol")

// ErrCableStale says the socket went quiet: no frame at all (pings included) for StaleAfter.
var ErrCableStale = errors.New("cable went stale: no frame received")

// errSocketIdle ends a connection of an extra socket whose last subscription went away, so
// the pool does not keep empty sockets open.
var errSocketIdle = errors.New("socket has no subscriptions left")

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
// first successful connection of a Cable, a 4xx other than 408 and 429 stops Run: it is a
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
	// Origin is sent on the upgrade. Default: the cable URL's origin with an http/https scheme,
	// which is the OneChat base URL's origin (Rails refuses a foreign or missing Origin unless
	// forgery protection is off).
	Origin string
	// StaleAfter is how long a socket may stay silent (no frame at all; pings come every 3 s)
	// before it is dropped and redialled. Default 8 s.
	StaleAfter time.Duration
	// ConfirmTimeout is how long a subscribe may go unconfirmed before it is retried with an
	// unsubscribe and a new subscribe (the server ignores a repeated subscribe otherwise), and
	// how long to wait for the welcome. Default 10 s.
	ConfirmTimeout time.Duration
	// SilentAfter is how many subscribes in a row may go unconfirmed before the subscription
	// is reported silent (CableSilentHandler): OneChat answers an unknown pubsub token with
	// nothing at all. Default 3.
	SilentAfter int
	// SilentRetryInterval is how often a silent or rejected subscription is tried again, so it
	// recovers if the server does. Default 2 min.
	SilentRetryInterval time.Duration
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
	// SubscribeRate caps subscribe and unsubscribe commands per second on each socket, so a
	// reconnect with hundreds of subscriptions does not flood the server's small worker pool
	// (Rails runs subscribed hooks on 4 threads). Default 50.
	SubscribeRate int
	// TotalSubscribeRate, when positive, also caps subscribe and unsubscribe commands per
	// second across the whole pool: SubscribeRate multiplies with the number of sockets, and a
	// server restart resubscribes every socket at once. Default 0: only SubscribeRate applies
	// (50,000 subscriptions on 100 sockets then re-confirm in about 10 s; a cap of 1000/s
	// makes that at least 50 s, but spares a small Rails worker pool a burst of 5,000/s).
	TotalSubscribeRate int
	// MaxPerConnection caps the subscriptions one websocket carries; the pool opens another
	// socket when all are full. Smaller means a dropped socket blinds fewer conversations and
	// resubscribes faster. Default 500.
	MaxPerConnection int
	// QueueSize is the buffer between the readers and the handler. When it is full the readers
	// wait (and log): nothing is dropped. Default 1024.
	QueueSize int
	// ReadLimit caps one frame. Default 4 MiB (a message with many attachments is large; the
	// websocket library's default of 32 KiB is not enough).
	ReadLimit int64
}

// CableHandler receives what the cable hears.
type CableHandler interface {
	// CableEvent is called for every broadcast of a known event (see Event.Decode), in arrival
	// order per socket, from one dispatch goroutine (a buffered queue sits between the sockets'
	// readers and it). It should return quickly; a slow handler eventually stalls the readers.
	// The same event may come twice (a verified contact's sessions, a resubscribe): handle it
	// idempotently.
	CableEvent(ctx context.Context, ev Event)
	// CableConfirmed is called after every confirmation (first subscribe and each resubscribe
	// after a reconnect or retry), from the same goroutine and in order with CableEvent. The
	// cable has no replay, so this is where to catch up over REST.
	CableConfirmed(ctx context.Context, token string)
}

// CableConfirmTimeoutHandler is an optional interface of a CableHandler. CableConfirmTimeout
// is called (from the dispatch goroutine) each time a subscription stays unconfirmed for
// ConfirmTimeout and is retried.
type CableConfirmTimeoutHandler interface {
	CableConfirmTimeout(ctx context.Context, token string)
}

// CableSilentHandler is an optional interface of a CableHandler. CableSilent is called (from
// the dispatch goroutine) once when a subscription has gone unconfirmed SilentAfter times in a
// row. OneChat answers an unknown or expired pubsub token with silence, so the handler should
// fetch the contact again and, if its token changed, Unsubscribe the old one and Subscribe the
// new one. The cable keeps retrying every SilentRetryInterval meanwhile.
type CableSilentHandler interface {
	CableSilent(ctx context.Context, token string)
}

// CableRejectedHandler is an optional interface of a CableHandler. CableRejected is called
// (from the dispatch goroutine) when the server answers reject_subscription, once per run of
// rejections. OneChat's RoomChannel never rejects, but a Rails server in front of it may. The
// cable retries every SilentRetryInterval.
type CableRejectedHandler interface {
	CableRejected(ctx context.Context, token string)
}

// CableStats is a snapshot of a Cable's state, for metrics and health checks.
type CableStats struct {
	// Connected is true while every socket the pool needs is up and welcomed (see
	// Cable.Connected).
	Connected bool
	// Subscriptions is the number of tokens the cable should be subscribed to. Each is in
	// exactly one of Pending, Confirmed, Silent and Rejected.
	Subscriptions int
	// Confirmed counts subscriptions confirmed on a live socket.
	Confirmed int
	// Pending counts subscriptions waiting to be sent or confirmed, including those of a
	// socket that is down.
	Pending int
	// Silent counts subscriptions that went unconfirmed SilentAfter times in a row.
	Silent int
	// Rejected counts subscriptions the server rejected.
	Rejected int
	// Connections is the number of welcomed sockets; Sockets the number the pool needs.
	Connections, Sockets int
	// Reconnects counts dials after the first one of each socket since the Cable was made.
	Reconnects int64
	// LastError describes why a socket last dropped or failed to dial, or is "".
	LastError string
}

// Cable keeps RoomChannel subscriptions for a set of pubsub tokens on a pool of ActionCable
// websockets, each carrying up to MaxPerConnection of them. A token stays on the socket it was
// first given until it is unsubscribed. Each socket has two goroutines (an owner that writes
// paced commands and a reader); no goroutine exists per subscription.
//
// Subscribe, Unsubscribe, Connected and Stats are safe for concurrent use; Run must be called
// once at a time.
type Cable struct {
	url      string
	h        CableHandler
	opts     CableOptions
	origin   string
	log      *zap.Logger
	interval time.Duration // between two paced commands of one socket

	mu       sync.Mutex
	subs     map[string]*subscription // by token, including those being unsubscribed
	subsPeak int                      // the most subs held since subs was reallocated (shrink)
	sockets  []*socket
	counts   [numStates]int // wanted subscriptions by state
	lastErr  string
	// nextSlot is the next free slot of TotalSubscribeRate.
	nextSlot time.Time

	// grow tells Run that the pool gained a socket. Capacity 1.
	grow chan struct{}

	running      atomic.Bool
	everWelcomed atomic.Bool
	reconnects   atomic.Int64
}

// NewCable returns a cable for the ActionCable endpoint at url (ws://, wss://, http:// or
// https://; see CableURL). It does nothing until Run. opts may be nil.
func NewCable(url string, h CableHandler, opts *CableOptions) *Cable {
	var o CableOptions
	if opts != nil {
		o = *opts
	}
	setDefault(&o.StaleAfter, defaultStaleAfter)
	setDefault(&o.ConfirmTimeout, defaultConfirmTimeout)
	setDefault(&o.SilentAfter, defaultSilentAfter)
	setDefault(&o.SilentRetryInterval, defaultSilentRetry)
	setDefault(&o.MinBackoff, defaultMinBackoff)
	setDefault(&o.MaxBackoff, defaultMaxBackoff)
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	setDefault(&o.DialTimeout, defaultDialTimeout)
	setDefault(&o.WriteTimeout, defaultWriteTimeout)
	setDefault(&o.SubscribeRate, defaultSubscribeRate)
	setDefault(&o.MaxPerConnection, defaultMaxPerConnection)
	setDefault(&o.QueueSize, defaultQueueSize)
	setDefault(&o.ReadLimit, defaultReadLimit)
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	origin := o.Origin
	if origin == "" {
		origin = originOf(url)
	}
	return &Cable{
		url:      url,
		h:        h,
		opts:     o,
		origin:   origin,
		log:      o.Logger,
		interval: time.Second / time.Duration(o.SubscribeRate),
		subs:     map[string]*subscription{},
		grow:     make(chan struct{}, 1),
	}
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
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
// while Run. The token goes to the first socket with room (a new one when all are full) and
// stays there; its subscribe is (re)sent after every welcome of that socket.
func (c *Cable) Subscribe(token string) {
	if token == "" {
		return
	}
	c.mu.Lock()
	s, ok := c.subs[token]
	switch {
	case ok && s.want:
		c.mu.Unlock()
		return
	case ok:
		// Being unsubscribed: broadcasts were dropped meanwhile, so subscribe afresh for a new
		// confirmation (and the caller's catch-up).
		s.want = true
		s.reset = true
		s.state = statePending
		s.misses = 0
		c.counts[s.state]++
		s.sock.enqueue(s)
	default:
		sock, grown := c.pickSocket()
		s = &subscription{token: token, ident: identifierFor(token), sock: sock, want: true}
		c.subs[token] = s
		sock.idents[s.ident] = s
		c.subsPeak = max(c.subsPeak, len(c.subs))
		sock.identsPeak = max(sock.identsPeak, len(sock.idents))
		c.counts[statePending]++
		sock.enqueue(s)
		if grown {
			select {
			case c.grow <- struct{}{}:
			default:
			}
		}
	}
	sock := s.sock
	c.mu.Unlock()
	sock.poke()
}

// Unsubscribe removes token. Broadcasts and confirmations for it stop being delivered at once;
// the unsubscribe command follows on its socket (none is needed when no subscribe is
// outstanding there). It is cheap, idempotent, and safe while a resubscribe is in flight.
func (c *Cable) Unsubscribe(token string) {
	c.mu.Lock()
	s, ok := c.subs[token]
	if !ok || !s.want {
		c.mu.Unlock()
		return
	}
	c.counts[s.state]--
	s.want = false
	sock := s.sock
	if s.sent {
		sock.enqueue(s)
	} else {
		c.remove(s)
		c.shrink(sock)
	}
	c.mu.Unlock()
	sock.poke()
}

// AwaitsConfirmation reports whether token is subscribed or subscribing and its subscription is
// not confirmed now: its confirmation, and with it the handler's CableConfirmed, is still to
// come (unless OneChat rejects it or stays silent, which the handler hears of instead), and no
// broadcast for it is delivered until then.
func (c *Cable) AwaitsConfirmation(token string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.subs[token]
	return ok && s.want && s.state != stateConfirmed
}

// Confirmation returns a number that is not zero while token's subscription is confirmed and
// that changes with every confirmation of it (after a reconnect, a resubscribe). Two equal
// readings other than zero therefore mean the subscription stayed confirmed in between: every
// broadcast for token in that time came through and is delivered to the handler, in time.
func (c *Cable) Confirmation(token string) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.subs[token]
	if !ok || !s.want || s.state != stateConfirmed {
		return 0
	}
	return s.confirms
}

// Tokens returns the tokens the cable is subscribed to or subscribing (not those being
// unsubscribed), in no particular order.
func (c *Cable) Tokens() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.subs))
	for token, s := range c.subs {
		if s.want {
			out = append(out, token)
		}
	}
	return out
}

// pickSocket returns the first socket with room, appending one when all are full. The caller
// holds c.mu.
func (c *Cable) pickSocket() (sock *socket, grown bool) {
	for _, s := range c.sockets {
		if len(s.idents) < c.opts.MaxPerConnection {
			return s, false
		}
	}
	return c.addSocket(), true
}

// addSocket appends a socket to the pool. The caller holds c.mu.
func (c *Cable) addSocket() *socket {
	s := &socket{c: c, idx: len(c.sockets), idents: map[string]*subscription{}, wake: make(chan struct{}, 1)}
	s.log = c.log.With(zap.Int("socket", s.idx))
	c.sockets = append(c.sockets, s)
	return s
}

// freeSlot returns when the next slot of TotalSubscribeRate is free (zero without a cap).
func (c *Cable) freeSlot() time.Time {
	if c.opts.TotalSubscribeRate <= 0 {
		return time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nextSlot
}

// reserve books n command slots of TotalSubscribeRate and returns when the first may be
// written (now, or zero, when there is no pool-wide cap).
func (c *Cable) reserve(now time.Time, n int) time.Time {
	if c.opts.TotalSubscribeRate <= 0 {
		return time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	at := c.nextSlot
	if at.Before(now) {
		at = now
	}
	c.nextSlot = at.Add(time.Duration(n) * time.Second / time.Duration(c.opts.TotalSubscribeRate))
	return at
}

// remove forgets s. The caller holds c.mu, and calls shrink once it has removed what it
// removes.
func (c *Cable) remove(s *subscription) {
	s.gone = true
	delete(s.sock.idents, s.ident)
	if c.subs[s.token] == s {
		delete(c.subs, s.token)
	}
}

// shrink gives back the memory of subscriptions removed in bulk (an idle sweep unsubscribes
// thousands at once): a Go map keeps its largest table, so the pool's and sock's maps are
// copied into right-sized ones once they hold a quarter of their peak. The caller holds c.mu.
func (c *Cable) shrink(sock *socket) {
	c.subs = shrinkMap(c.subs, &c.subsPeak)
	sock.idents = shrinkMap(sock.idents, &sock.identsPeak)
}

// shrinkMinPeak is the smallest peak worth a copy.
const shrinkMinPeak = 64

// shrinkMap returns m, or a copy of it sized for its entries once it holds at most a quarter
// of *peak (the most it held since the last copy, kept by the caller on insert). The copies
// cost O(1) per deletion, amortised.
func shrinkMap[K comparable, V any](m map[K]V, peak *int) map[K]V {
	if *peak < shrinkMinPeak || len(m) > *peak/4 {
		return m
	}
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	*peak = len(out)
	return out
}

// setState moves s to state, keeping the counts of wanted subscriptions. The caller holds c.mu.
func (c *Cable) setState(s *subscription, state subState) {
	if s.want {
		c.counts[s.state]--
		c.counts[state]++
	}
	s.state = state
}

// Connected reports whether every socket the pool needs (the first, and each that carries a
// subscription) is up and welcomed. It is false before Run and after it returns.
func (c *Cable) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sockets) == 0 {
		return false
	}
	for _, s := range c.sockets {
		if s.needed() && !s.welcomed {
			return false
		}
	}
	return true
}

// Stats returns a snapshot of the cable's state.
func (c *Cable) Stats() CableStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := CableStats{
		Connected:  len(c.sockets) > 0,
		Confirmed:  c.counts[stateConfirmed],
		Pending:    c.counts[statePending],
		Silent:     c.counts[stateSilent],
		Rejected:   c.counts[stateRejected],
		Reconnects: c.reconnects.Load(),
		LastError:  c.lastErr,
	}
	st.Subscriptions = st.Confirmed + st.Pending + st.Silent + st.Rejected
	for _, s := range c.sockets {
		if s.welcomed {
			st.Connections++
		}
		if s.needed() {
			st.Sockets++
			st.Connected = st.Connected && s.welcomed
		}
	}
	return st
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
	itemSilent
	itemRejected
)

// Run owns the pool: it runs every socket (dial, welcome, paced subscribes, reads, reconnects
// with backoff on a drop, a stale socket or a disconnect frame) and starts sockets the pool
// gains while it runs. It returns nil when ctx is cancelled. It returns an error, after
// stopping every socket, when the server sends disconnect with reconnect:false (a
// *DisconnectError: the server refuses this client for good, and a supervisor should know)
// or, before any socket was ever welcomed, when the endpoint is plainly wrong (HandshakeError
// with a 4xx, ErrCableProtocol). It returns only after all its goroutines have exited.
func (c *Cable) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("cable: Run is already running")
	}
	defer c.running.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan cableItem, c.opts.QueueSize)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.dispatch(ctx, queue)
	}()

	fatal := make(chan error, 1)
	started := map[*socket]bool{}
	start := func() {
		c.mu.Lock()
		if len(c.sockets) == 0 {
			c.addSocket()
		}
		socks := append([]*socket(nil), c.sockets...)
		c.mu.Unlock()
		for _, s := range socks {
			if started[s] {
				continue
			}
			started[s] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.run(ctx, queue); err != nil {
					select {
					case fatal <- err:
					default:
					}
				}
			}()
		}
	}
	start()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-c.grow:
			start()
		case err = <-fatal:
			break loop
		}
	}
	cancel()
	wg.Wait()
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
			case itemSilent:
				if sh, ok := c.h.(CableSilentHandler); ok {
					sh.CableSilent(ctx, it.token)
				}
			case itemRejected:
				if rh, ok := c.h.(CableRejectedHandler); ok {
					rh.CableRejected(ctx, it.token)
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
// sockets dropped by one server restart do not come back in lockstep.
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
