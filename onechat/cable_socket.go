package onechat

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// subState is where a wanted subscription stands.
type subState uint8

const (
	// statePending: waiting to be sent, or sent and not confirmed yet, or on a socket that is
	// down.
	statePending subState = iota
	stateConfirmed
	// stateSilent: SilentAfter subscribes in a row went unanswered; retried slowly.
	stateSilent
	// stateRejected: the server answered reject_subscription; retried slowly.
	stateRejected
	numStates
)

// subscription is one token's RoomChannel subscription. It is guarded by Cable.mu. It is kept
// small (about 200 bytes with its map entries): a bridge may hold tens of thousands.
type subscription struct {
	token string
	ident string // built once; the server echoes it byte for byte
	sock  *socket

	state subState
	// want is false once Unsubscribe was called; the subscription stays until its socket has
	// sent the unsubscribe.
	want bool
	// sent is true while the server may hold the identifier on the current connection: a
	// subscribe went out since the welcome and was not rejected. A repeated subscribe is then
	// ignored by Rails, so a retry must unsubscribe first.
	sent bool
	// reset asks for unsubscribe + subscribe, after a Subscribe that revived a subscription
	// being removed (broadcasts were dropped meanwhile, so it needs a fresh confirmation).
	reset  bool
	queued bool // in sock.todo
	gone   bool // removed; stale todo and timer entries skip it
	seq    uint32
	// confirms counts the subscription's confirmations, never 0 once confirmed (Confirmation).
	confirms uint32
	misses   uint16 // unconfirmed subscribes in a row
}

// timerKind says what a deadline entry is for.
type timerKind uint8

const (
	timerConfirm timerKind = iota // a subscribe's confirm timeout
	timerRetry                    // the slow retry of a silent or rejected subscription
)

// deadline is a timer entry. Entries are never removed early: one whose seq no longer matches
// its subscription's is stale and skipped when it comes due.
type deadline struct {
	at   time.Time
	s    *subscription
	seq  uint32
	kind timerKind
}

type deadlines []deadline

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].at.Before(d[j].at) }
func (d deadlines) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *deadlines) Push(x any)        { *d = append(*d, x.(deadline)) }
func (d *deadlines) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}

// socket is one websocket of the pool and the subscriptions assigned to it. Its fields other
// than wake are guarded by Cable.mu; nextWrite belongs to the owner goroutine.
type socket struct {
	c    *Cable
	idx  int
	log  *zap.Logger
	wake chan struct{} // capacity 1: a pending signal covers any number of changes

	idents     map[string]*subscription // by identifier, including those being unsubscribed
	identsPeak int                      // the most idents held since it was reallocated
	welcomed   bool
	welcomedAt time.Time
	todo       []*subscription // commands to send, in order
	todoHead   int
	timers     deadlines

	nextWrite time.Time // pacing; owner only
}

func (s *socket) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// needed reports whether the socket should be connected: the first always is (so Connected
// means something before the first subscription), the others while they carry any.
func (s *socket) needed() bool { return s.idx == 0 || len(s.idents) > 0 }

// enqueue queues sub for the owner, if the socket is welcomed (a welcome queues everything).
// The caller holds c.mu.
func (s *socket) enqueue(sub *subscription) {
	if !s.welcomed || sub.queued {
		return
	}
	sub.queued = true
	s.todo = append(s.todo, sub)
}

// clear drops per-connection state: after a welcome, or when the connection ends. Revived
// confirmations become pending; silent and rejected ones keep their state (already reported)
// but are tried again on the next connection. The caller holds c.mu.
func (s *socket) clear(welcomed bool) {
	c := s.c
	s.welcomed = welcomed
	s.todo = s.todo[:0]
	s.todoHead = 0
	s.timers = nil
	removed := false
	for _, sub := range s.idents {
		sub.queued = false
		sub.sent = false
		sub.reset = false
		if !sub.want {
			c.remove(sub)
			removed = true
			continue
		}
		if sub.state == stateConfirmed {
			c.setState(sub, statePending)
		}
		if sub.state == statePending {
			sub.misses = 0
		}
		s.enqueue(sub)
	}
	if removed {
		c.shrink(s)
	}
	if len(s.idents) == 0 {
		s.todo = nil // an idle socket keeps no buffer of its busiest moment
	}
}

// run keeps the socket connected while the pool needs it, until ctx ends or a permanent error.
func (s *socket) run(ctx context.Context, queue chan<- cableItem) error {
	c := s.c
	attempt := 0
	dialed := false
	for {
		if !s.waitNeeded(ctx) {
			return nil
		}
		if dialed {
			c.reconnects.Add(1)
		}
		dialed = true
		welcomed, uptime, err := s.connectOnce(ctx, queue)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errSocketIdle) {
			s.log.Info("cable socket closed: no subscriptions left")
			attempt = 0
			dialed = false
			continue
		}
		c.mu.Lock()
		c.lastErr = fmt.Sprintf("socket %d: %v", s.idx, err)
		c.mu.Unlock()
		var de *DisconnectError
		if errors.As(err, &de) && !de.Reconnect {
			s.log.Error("cable server refused the connection for good", zap.String("reason", de.Reason))
			return fmt.Errorf("onechat cable: %w", err)
		}
		if welcomed {
			c.everWelcomed.Store(true)
		} else if !c.everWelcomed.Load() && permanentDialError(err) {
			return fmt.Errorf("onechat cable: %w", err)
		}
		if welcomed && uptime >= c.opts.StaleAfter {
			attempt = 0 // the connection was healthy; start over from the short delay
		}
		attempt++
		sleep := c.backoff(attempt)
		s.log.Warn("cable disconnected; reconnecting", zap.Error(err),
			zap.Int("attempt", attempt), zap.Duration("sleep", sleep))
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// waitNeeded waits until the pool needs this socket. It returns false when ctx ended.
func (s *socket) waitNeeded(ctx context.Context) bool {
	for {
		s.c.mu.Lock()
		needed := s.needed()
		s.c.mu.Unlock()
		if needed {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-s.wake:
		}
	}
}

// connectOnce dials one websocket and serves it until it ends. It reports whether the server
// welcomed it and for how long it was up.
func (s *socket) connectOnce(ctx context.Context, queue chan<- cableItem) (welcomed bool, uptime time.Duration, err error) {
	c := s.c
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
	return s.serve(ctx, ws, queue)
}

// serve runs the reader and the owner loop until the connection ends.
func (s *socket) serve(ctx context.Context, ws *websocket.Conn, queue chan<- cableItem) (welcomed bool, uptime time.Duration, err error) {
	ctx, cancel := context.WithCancel(ctx)
	readErr := make(chan error, 1)
	go func() { readErr <- s.read(ctx, ws, queue) }()

	readerDone, err := s.own(ctx, ws, queue, readErr)
	cancel()
	_ = ws.CloseNow()
	if !readerDone {
		<-readErr
	}
	s.c.mu.Lock()
	welcomedAt := s.welcomedAt
	s.welcomedAt = time.Time{}
	s.clear(false)
	s.c.mu.Unlock()
	if !welcomedAt.IsZero() {
		return true, time.Since(welcomedAt), err
	}
	return false, 0, err
}

// command is one client frame to write.
type command struct {
	Command    string `json:"command"`
	Identifier string `json:"identifier"`
}

// own is the owner loop: it writes the socket's queued commands and handles its confirm
// timeouts, paced at SubscribeRate. It returns why the connection ended, and whether that
// came from the reader (which has then exited).
func (s *socket) own(ctx context.Context, ws *websocket.Conn, queue chan<- cableItem, readErr <-chan error) (readerDone bool, err error) {
	c := s.c
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	noWelcome := time.Now().Add(c.opts.ConfirmTimeout)
	var cmds []command
	for {
		var wakeAt time.Time
		var note *cableItem
		cmds = cmds[:0]
		now := time.Now()
		// Wait for the pool-wide pace before deciding, so confirm deadlines start when the
		// commands are written; sockets racing for the same slot overshoot it by a few slots.
		if at := c.freeSlot(); at.After(now) {
			if done, err := s.sleep(ctx, readErr, at); done || err != nil {
				return done, err
			}
			continue
		}
		c.mu.Lock()
		switch {
		case !s.welcomed:
			wakeAt = noWelcome
			if !now.Before(wakeAt) {
				c.mu.Unlock()
				return false, fmt.Errorf("no welcome within %s", c.opts.ConfirmTimeout)
			}
		case !s.needed():
			c.mu.Unlock()
			return false, errSocketIdle
		default:
			cmds, note, wakeAt = s.next(now, cmds)
		}
		c.mu.Unlock()

		if note != nil && !c.enqueue(ctx, queue, *note) {
			return false, ctx.Err()
		}
		if len(cmds) > 0 {
			if at := c.reserve(now, len(cmds)); at.After(now) {
				if done, err := s.sleep(ctx, readErr, at); done || err != nil {
					return done, err
				}
				now = at
			}
		}
		for _, cmd := range cmds {
			if err := s.write(ctx, ws, cmd); err != nil {
				return false, err
			}
		}
		if len(cmds) > 0 {
			s.nextWrite = now.Add(time.Duration(len(cmds)) * c.interval)
			continue
		}
		if note != nil {
			continue
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
		case <-s.wake:
		case <-tc:
		}
		timer.Stop()
	}
}

// sleep waits until at, or until ctx ends (err set) or the reader fails (readerDone and err
// set).
func (s *socket) sleep(ctx context.Context, readErr <-chan error, at time.Time) (readerDone bool, err error) {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case err := <-readErr:
		return true, err
	case <-t.C:
		return false, nil
	}
}

// next decides the socket's next paced step: the commands to write now (at most an
// unsubscribe and a subscribe), a notification for the handler, and otherwise when to look
// again (zero: only on a signal). The caller holds c.mu.
func (s *socket) next(now time.Time, cmds []command) ([]command, *cableItem, time.Time) {
	if now.Before(s.nextWrite) {
		return cmds, nil, s.nextWrite
	}
	for s.todoHead < len(s.todo) {
		sub := s.todo[s.todoHead]
		s.todo[s.todoHead] = nil
		s.todoHead++
		sub.queued = false
		if cmds = s.apply(sub, now, cmds); len(cmds) > 0 {
			return cmds, nil, time.Time{}
		}
	}
	s.todo = s.todo[:0]
	s.todoHead = 0
	for len(s.timers) > 0 && !s.timers[0].at.After(now) {
		d := heap.Pop(&s.timers).(deadline)
		if cap(s.timers) >= shrinkMinPeak && len(s.timers) <= cap(s.timers)/4 {
			s.timers = append(deadlines(nil), s.timers...) // the heap of a burst of subscribes
		}
		var note *cableItem
		if cmds, note = s.expire(d, now, cmds); len(cmds) > 0 || note != nil {
			return cmds, note, time.Time{}
		}
	}
	if len(s.timers) > 0 {
		return cmds, nil, s.timers[0].at
	}
	return cmds, nil, time.Time{}
}

// apply brings a queued subscription in line with what is wanted. The caller holds c.mu.
func (s *socket) apply(sub *subscription, now time.Time, cmds []command) []command {
	switch {
	case sub.gone:
	case !sub.want:
		if sub.sent {
			cmds = append(cmds, command{"unsubscribe", sub.ident})
		}
		s.c.remove(sub)
		s.c.shrink(s)
	case sub.reset:
		sub.reset = false
		if sub.sent {
			cmds = append(cmds, command{"unsubscribe", sub.ident})
		}
		cmds = s.subscribe(sub, now, cmds)
	case !sub.sent:
		cmds = s.subscribe(sub, now, cmds)
	}
	return cmds
}

// subscribe appends a subscribe for sub and arms its confirm timeout. The caller holds c.mu.
func (s *socket) subscribe(sub *subscription, now time.Time, cmds []command) []command {
	sub.sent = true
	sub.seq++
	heap.Push(&s.timers, deadline{at: now.Add(s.c.opts.ConfirmTimeout), s: sub, seq: sub.seq, kind: timerConfirm})
	return append(cmds, command{"subscribe", sub.ident})
}

// expire handles a deadline that came due. The caller holds c.mu.
func (s *socket) expire(d deadline, now time.Time, cmds []command) ([]command, *cableItem) {
	c := s.c
	sub := d.s
	if sub.gone || !sub.want || sub.seq != d.seq {
		return cmds, nil
	}
	retryLater := func() {
		heap.Push(&s.timers, deadline{at: now.Add(c.opts.SilentRetryInterval), s: sub, seq: sub.seq, kind: timerRetry})
	}
	switch d.kind {
	case timerConfirm:
		if !sub.sent || sub.state == stateConfirmed {
			return cmds, nil
		}
		sub.misses++
		if sub.state != statePending {
			retryLater()
			return cmds, nil
		}
		if int(sub.misses) >= c.opts.SilentAfter {
			c.setState(sub, stateSilent)
			retryLater()
			s.log.Warn("cable subscription silent: the pubsub token may be unknown to the server",
				zap.String("token_hash", tokenHash(sub.token)), zap.Int("attempts", int(sub.misses)))
			return cmds, &cableItem{kind: itemSilent, token: sub.token}
		}
		// The server keeps a silently failed subscription registered and ignores a repeated
		// subscribe for it, so unsubscribe first.
		s.log.Warn("cable subscription not confirmed; retrying",
			zap.String("token_hash", tokenHash(sub.token)), zap.Duration("timeout", c.opts.ConfirmTimeout))
		cmds = append(cmds, command{"unsubscribe", sub.ident})
		return s.subscribe(sub, now, cmds), &cableItem{kind: itemConfirmTimeout, token: sub.token}
	case timerRetry:
		if sub.state != stateSilent && sub.state != stateRejected {
			return cmds, nil
		}
		if sub.sent {
			cmds = append(cmds, command{"unsubscribe", sub.ident})
		}
		return s.subscribe(sub, now, cmds), nil
	}
	return cmds, nil
}

// write sends one client command, bounded by WriteTimeout.
func (s *socket) write(ctx context.Context, ws *websocket.Conn, cmd command) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("encode %s: %w", cmd.Command, err)
	}
	wctx, cancel := context.WithTimeout(ctx, s.c.opts.WriteTimeout)
	defer cancel()
	if err := ws.Write(wctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("write %s: %w", cmd.Command, err)
	}
	return nil
}

// read is the socket's reader. It runs until the socket fails, goes stale or is told to
// disconnect, and returns why. It applies welcomes, confirmations and rejections to the state
// itself (so Stats already counts a confirmation when CableConfirmed runs) and hands
// broadcasts and notifications to the dispatch queue in arrival order.
func (s *socket) read(ctx context.Context, ws *websocket.Conn, queue chan<- cableItem) error {
	c := s.c
	stale := c.opts.StaleAfter
	for {
		// A read whose context expires closes the whole connection, which is exactly what a
		// stale socket deserves.
		rctx, rcancel := context.WithTimeout(ctx, stale)
		typ, b, err := ws.Read(rctx)
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
			s.log.Warn("cable frame skipped: not text", zap.Int("bytes", len(b)))
			continue
		}
		f, err := parseFrame(b)
		if err != nil {
			s.log.Warn("cable frame skipped: malformed", zap.Int("bytes", len(b)), zap.Error(err))
			continue
		}
		var it cableItem
		switch f.Type {
		case frameWelcome:
			c.mu.Lock()
			if s.welcomed {
				s.log.Info("cable welcomed again; resubscribing")
			}
			s.clear(true)
			s.welcomedAt = time.Now()
			n := len(s.idents)
			c.mu.Unlock()
			s.poke()
			s.log.Info("cable connected", zap.Int("subscriptions", n))
			continue
		case frameConfirm:
			if it.token = s.confirm(f.Identifier); it.token == "" {
				continue
			}
			it.kind = itemConfirmed
		case frameReject:
			if it.token = s.reject(f.Identifier); it.token == "" {
				continue
			}
			it.kind = itemRejected
		case frameDisconnect:
			return &DisconnectError{Reason: f.Reason, Reconnect: f.Reconnect}
		case frameBroadcast:
			ev, ok := f.event()
			if !ok {
				s.log.Warn("cable broadcast skipped: malformed message", zap.Int("bytes", len(b)))
				continue
			}
			if !ev.Known() {
				s.log.Debug("cable broadcast skipped: unknown event", zap.String("event", ev.Name))
				continue
			}
			if ev.Token = s.tokenOf(f.Identifier); ev.Token == "" {
				s.log.Debug("cable broadcast skipped: not subscribed", zap.String("event", ev.Name))
				continue
			}
			it = cableItem{kind: itemEvent, token: ev.Token, ev: ev}
		case framePing:
			continue
		default:
			s.log.Debug("cable frame skipped: unknown type", zap.String("type", f.Type))
			continue
		}
		if !c.enqueue(ctx, queue, it) {
			return ctx.Err()
		}
	}
}

// tokenOf returns the token subscribed under identifier on this socket, or "" when it is not
// wanted (never subscribed, or being unsubscribed).
func (s *socket) tokenOf(identifier string) string {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if sub := s.idents[identifier]; sub != nil && sub.want {
		return sub.token
	}
	return ""
}

// confirm applies a confirm_subscription and returns the token to report, or "" when there is
// nothing to report (unknown, unwanted, or already confirmed: a duplicate).
func (s *socket) confirm(identifier string) string {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	sub := s.idents[identifier]
	if sub == nil || !sub.want || !sub.sent || sub.state == stateConfirmed {
		return ""
	}
	c.setState(sub, stateConfirmed)
	sub.misses = 0
	if sub.confirms++; sub.confirms == 0 {
		sub.confirms = 1
	}
	return sub.token
}

// reject applies a reject_subscription (after which Rails holds nothing for the identifier)
// and schedules a slow retry. It returns the token to report, or "" when there is nothing new
// to report.
func (s *socket) reject(identifier string) string {
	c := s.c
	c.mu.Lock()
	sub := s.idents[identifier]
	if sub == nil || !sub.want || !sub.sent {
		c.mu.Unlock()
		return ""
	}
	sub.sent = false
	sub.misses = 0
	sub.seq++
	heap.Push(&s.timers, deadline{at: time.Now().Add(c.opts.SilentRetryInterval), s: sub, seq: sub.seq, kind: timerRetry})
	already := sub.state == stateRejected
	c.setState(sub, stateRejected)
	c.mu.Unlock()
	s.poke()
	s.log.Warn("cable subscription rejected", zap.String("token_hash", tokenHash(sub.token)))
	if already {
		return ""
	}
	return sub.token
}
