package slacktest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// maxRetries is how often Slack redelivers an unacknowledged event.
const maxRetries = 3

// Event is an event the fake delivers (or tried to) over Socket Mode.
type Event struct {
	// ID is the event_id of an events_api event, or the fake's own ID of an interactive one.
	ID string
	// Type is the envelope type: "events_api" or "interactive".
	Type string
	// Subtype says what happened: "message", "message_changed", "message_deleted",
	// "block_actions", or an EmitEvent type.
	Subtype     string
	Channel, TS string
	Deliveries  []Delivery
	// Acked says some delivery was acknowledged; Dropped says Slack gave up (retries used up,
	// or an interactive envelope not acknowledged in time).
	Acked, Dropped bool
}

// Delivery is one envelope sent for an event.
type Delivery struct {
	EnvelopeID   string
	RetryAttempt int
	RetryReason  string
	Acked        bool
	// Ack is the payload of the acknowledgement, if it had one.
	Ack json.RawMessage
}

type event struct {
	Event
	payload  json.RawMessage
	attempt  int
	reason   string
	inflight bool
	deadline time.Time
}

// enqueueLocked records an event and wakes the dispatcher to deliver it.
func (s *Server) enqueueLocked(kind, subtype, channel, ts, id string, payload any) *event {
	raw, _ := json.Marshal(payload)
	if id == "" {
		id = s.nextID("act")
	}
	ev := &event{Event: Event{ID: id, Type: kind, Subtype: subtype, Channel: channel, TS: ts}, payload: raw}
	s.events = append(s.events, ev)
	s.notify()
	return ev
}

// Events returns every event so far, oldest first.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, 0, len(s.events))
	for _, ev := range s.events {
		cp := ev.Event
		cp.Deliveries = slices.Clone(ev.Deliveries)
		out = append(out, cp)
	}
	return out
}

// LastEvent returns the newest event.
func (s *Server) LastEvent() (Event, bool) {
	evs := s.Events()
	if len(evs) == 0 {
		return Event{}, false
	}
	return evs[len(evs)-1], true
}

// EventFor returns the newest event of a subtype about a message (channel, ts).
func (s *Server) EventFor(subtype, channel, ts string) (Event, bool) {
	evs := s.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if e := evs[i]; e.Subtype == subtype && e.Channel == channel && e.TS == ts {
			return e, true
		}
	}
	return Event{}, false
}

func (s *Server) event(id string) (Event, bool) {
	for _, e := range s.Events() {
		if e.ID == id {
			return e, true
		}
	}
	return Event{}, false
}

// WaitAcked waits until the event with this ID is acknowledged.
func (s *Server) WaitAcked(t testing.TB, id string) Event {
	t.Helper()
	var e Event
	s.WaitFor(t, "ack of event "+id, func() bool {
		e, _ = s.event(id)
		return e.Acked
	})
	return e
}

// WaitDeliveries waits until the event with this ID has been sent in n envelopes.
func (s *Server) WaitDeliveries(t testing.TB, id string, n int) Event {
	t.Helper()
	var e Event
	s.WaitFor(t, fmt.Sprintf("%d deliveries of event %s", n, id), func() bool {
		e, _ = s.event(id)
		return len(e.Deliveries) >= n
	})
	return e
}

// WaitSettled waits until every event is acknowledged or dropped.
func (s *Server) WaitSettled(t testing.TB) {
	t.Helper()
	s.WaitFor(t, "every event acknowledged or dropped", func() bool {
		for _, e := range s.Events() {
			if !e.Acked && !e.Dropped {
				return false
			}
		}
		return true
	})
}

// SetQueueWhileDisconnected says whether events that happen while no socket is open are held
// and delivered as retries when one connects (the default), or lost, as when Slack's retries
// ran out before the app came back.
func (s *Server) SetQueueWhileDisconnected(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queueAway = on
}

// Redeliver sends an event again in a new envelope with retry_attempt 0 even if it was
// acknowledged, as Slack sometimes does (bolt-js#2487), so deduplication on event_id can be
// tested. The redelivery must be acknowledged again.
func (s *Server) Redeliver(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.events {
		if ev.ID == id {
			ev.Acked, ev.Dropped, ev.inflight, ev.attempt, ev.reason = false, false, false, 0, ""
		}
	}
	s.notify()
}

// ---- the dispatcher ----

// dispatch delivers events and redelivers the ones whose ack timed out. It is the only
// goroutine that decides deliveries, so an event is never in two envelopes at once.
func (s *Server) dispatch() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		next := s.pumpLocked(time.Now())
		s.mu.Unlock()
		timer.Reset(next)
		select {
		case <-s.done:
			return
		case <-s.kick:
		case <-timer.C:
		}
	}
}

// pumpLocked sends what is due and returns how long until the next ack deadline.
func (s *Server) pumpLocked(now time.Time) time.Duration {
	next := time.Hour
	changed := false
	for _, ev := range s.events {
		if ev.Acked || ev.Dropped {
			continue
		}
		if ev.inflight {
			if now.Before(ev.deadline) {
				next = min(next, ev.deadline.Sub(now))
				continue
			}
			ev.inflight = false
			changed = true
			if ev.Type == "interactive" || ev.attempt >= maxRetries {
				ev.Dropped = true
				continue
			}
			ev.attempt++
			ev.reason = "timeout"
		}
		c := s.pickSockLocked()
		if c == nil {
			if ev.Type == "interactive" || !s.queueAway {
				ev.Dropped, changed = true, true
			} else if ev.attempt == 0 {
				// The first attempt found no socket: Slack will only retry it.
				ev.attempt, ev.reason = 1, "timeout"
			}
			continue
		}
		envID := fmt.Sprintf("%s-%s", randomHex(4), randomHex(12))
		frame, _ := json.Marshal(map[string]any{
			"envelope_id": envID, "type": ev.Type, "payload": ev.payload,
			"accepts_response_payload": false, "retry_attempt": ev.attempt, "retry_reason": ev.reason,
		})
		c.sendLocked(outFrame{data: frame})
		ev.inflight, ev.deadline = true, now.Add(s.ackTimeout)
		ev.Deliveries = append(ev.Deliveries, Delivery{EnvelopeID: envID, RetryAttempt: ev.attempt, RetryReason: ev.reason})
		s.envelopes[envID] = ev
		next = min(next, s.ackTimeout)
		changed = true
	}
	if changed {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	return next
}

// pickSockLocked chooses the socket for the next envelope: the newest one not told to
// disconnect, else the newest.
func (s *Server) pickSockLocked() *sock {
	for i := len(s.socks) - 1; i >= 0; i-- {
		if !s.socks[i].leaving {
			return s.socks[i]
		}
	}
	if len(s.socks) > 0 {
		return s.socks[len(s.socks)-1]
	}
	return nil
}

// ---- sockets ----

type outFrame struct {
	data       []byte
	disconnect bool
}

// sock is one Socket Mode connection. Its reader is the HTTP handler's goroutine; a writer and
// a pinger run beside it and are waited for before the handler returns.
type sock struct {
	conn    *websocket.Conn
	ctx     context.Context
	cancel  context.CancelFunc
	out     []outFrame // guarded by Server.mu
	wake    chan struct{}
	leaving bool // a disconnect frame was queued
}

func (c *sock) sendLocked(f outFrame) {
	c.out = append(c.out, f)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Connections returns how many sockets are open.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.socks)
}

// Dials returns how many sockets were opened so far.
func (s *Server) Dials() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dials
}

// WaitConnections waits until n sockets are open.
func (s *Server) WaitConnections(t testing.TB, n int) {
	t.Helper()
	s.WaitFor(t, fmt.Sprintf("%d open sockets", n), func() bool { return s.Connections() == n })
}

// WaitDials waits until n sockets have been opened in total.
func (s *Server) WaitDials(t testing.TB, n int) {
	t.Helper()
	s.WaitFor(t, fmt.Sprintf("%d socket dials", n), func() bool { return s.Dials() >= n })
}

// DropSockets cuts every socket without a close frame, as a network failure does.
func (s *Server) DropSockets() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.socks {
		_ = c.conn.CloseNow()
	}
}

// SendDisconnect sends {"type":"disconnect","reason":reason} on every socket ("warning",
// "refresh_requested", "link_disabled", "too_many_websockets"). The fake then stops sending
// envelopes there and closes the socket after the disconnect grace (WithDisconnectGrace).
func (s *Server) SendDisconnect(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	frame, _ := json.Marshal(map[string]any{"type": "disconnect", "reason": reason,
		"debug_info": map[string]any{"host": "applink-fake-1"}})
	for _, c := range s.socks {
		c.leaving = true
		c.sendLocked(outFrame{data: frame, disconnect: true})
	}
	s.notify()
}

// SendMalformed sends a frame that is not a valid envelope on every socket.
func (s *Server) SendMalformed(raw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.socks {
		c.sendLocked(outFrame{data: []byte(raw)})
	}
}

// StrayAcks returns the envelope IDs of acknowledgements the fake could not match.
func (s *Server) StrayAcks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.strayAcks)
}

// HoldSockets makes new Socket Mode connections wait, before their upgrade is answered, until
// the returned release is called (it may be called more than once). A test uses it to keep the
// bridge away for certain while things happen "while it is away": without it, the bridge may
// reconnect, and catch up, before the test has finished writing.
func (s *Server) HoldSockets() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := make(chan struct{})
	s.held = held
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			close(held)
			if s.held == held {
				s.held = nil
			}
		})
	}
}

// Holding returns how many socket upgrades wait for a HoldSockets release.
func (s *Server) Holding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holding
}

func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	held := s.held
	if held != nil {
		s.holding++
		s.notify()
	}
	s.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-s.done:
		case <-r.Context().Done():
		}
		s.mu.Lock()
		s.holding--
		s.notify()
		s.mu.Unlock()
		if r.Context().Err() != nil {
			return
		}
	}
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	valid := s.tickets[ticket] && !s.closed
	delete(s.tickets, ticket) // one use only
	s.mu.Unlock()
	if !valid {
		// Slack's answer to a reused or unknown ticket is not documented; the fake refuses the
		// upgrade, which slack-go treats as a failed dial and retries via apps.connections.open.
		http.Error(w, "invalid ticket", http.StatusUnauthorized)
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: []string{"api.slack.com", "*.slack.com"}})
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &sock{conn: conn, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		_ = conn.CloseNow()
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	s.dials++
	s.socks = append(s.socks, c)
	hello, _ := json.Marshal(map[string]any{
		"type": "hello", "num_connections": len(s.socks),
		"debug_info":      map[string]any{"host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": AppID},
	})
	c.sendLocked(outFrame{data: hello})
	s.notify()
	s.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { s.writeLoop(c) })
	wg.Go(func() { s.pingLoop(c) })
	s.readLoop(c)
	cancel()
	_ = conn.CloseNow()
	wg.Wait()
	s.mu.Lock()
	s.socks = slices.DeleteFunc(s.socks, func(x *sock) bool { return x == c })
	s.notify()
	s.mu.Unlock()
}

// readLoop reads acknowledgements until the socket fails.
func (s *Server) readLoop(c *sock) {
	for {
		_, data, err := c.conn.Read(c.ctx)
		if err != nil {
			return
		}
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &ack) != nil || ack.EnvelopeID == "" {
			continue
		}
		s.mu.Lock()
		if ev, ok := s.envelopes[ack.EnvelopeID]; ok {
			for i := range ev.Deliveries {
				if ev.Deliveries[i].EnvelopeID == ack.EnvelopeID {
					ev.Deliveries[i].Acked, ev.Deliveries[i].Ack = true, ack.Payload
				}
			}
			ev.Acked, ev.inflight = true, false
		} else {
			s.strayAcks = append(s.strayAcks, ack.EnvelopeID)
		}
		s.notify()
		s.mu.Unlock()
	}
}

// writeLoop writes queued frames in order; after a disconnect frame it closes the socket when
// the grace period ends.
func (s *Server) writeLoop(c *sock) {
	var graceC <-chan time.Time
	for {
		s.mu.Lock()
		frames := c.out
		c.out = nil
		s.mu.Unlock()
		for _, f := range frames {
			ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
			err := c.conn.Write(ctx, websocket.MessageText, f.data)
			cancel()
			if err != nil {
				c.cancel()
				return
			}
			if f.disconnect && graceC == nil {
				t := time.NewTimer(s.disconnectGrace)
				defer t.Stop()
				graceC = t.C
			}
		}
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		case <-graceC:
			_ = c.conn.Close(websocket.StatusNormalClosure, "")
			c.cancel()
			return
		}
	}
}

// pingLoop pings the socket at once and then every ping interval, as Slack does; slack-go
// closes a socket that goes without pings.
func (s *Server) pingLoop(c *sock) {
	t := time.NewTicker(s.pingInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(c.ctx, s.pingInterval)
		_ = c.conn.Ping(ctx)
		cancel()
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
	}
}
