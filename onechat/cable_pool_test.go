package onechat

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// tokenOfIdent returns the pubsub token inside a RoomChannel identifier.
func tokenOfIdent(t *testing.T, identifier string) string {
	t.Helper()
	var id struct {
		PubsubToken string `json:"pubsub_token"`
	}
	if err := json.Unmarshal([]byte(identifier), &id); err != nil {
		t.Fatalf("identifier %q: %v", identifier, err)
	}
	return id.PubsubToken
}

// eventually waits until cond holds, for state that offers no signal (Stats after a socket
// the server saw close is cleaned up on the client side).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noValue fails when ch already holds a value.
func noValue[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Errorf("unexpected %s: %v", what, v)
	default:
	}
}

func sorted(s []string) string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return strings.Join(s, ",")
}

func TestCablePoolGrowsPastMaxPerConnection(t *testing.T) {
	f := newFakeCable(t, nil)
	toks := []string{"tA", "tB", "tC", "tD", "tE", "tF", "tG"}
	for _, tok := range toks {
		f.setKnown(tok, true)
	}
	r := newRecorder()
	rc := startCable(t, f.url(), r, &CableOptions{MaxPerConnection: 2}, toks[:5]...)

	conns := map[int]*fakeConn{}
	for range 3 {
		fc := recv(t, f.connected, "connection")
		conns[fc.n] = fc
	}
	byConn := map[int][]string{}
	connOf := map[string]int{}
	for range 5 {
		cmd := recv(t, f.cmds, "subscribe")
		tok := tokenOfIdent(t, cmd.Identifier)
		if cmd.Command != "subscribe" || connOf[tok] != 0 {
			t.Fatalf("command %+v (token already on connection %d)", cmd, connOf[tok])
		}
		byConn[cmd.conn] = append(byConn[cmd.conn], tok)
		connOf[tok] = cmd.conn
	}
	if len(byConn) != 3 {
		t.Fatalf("5 tokens at 2 per connection spread over %d connections: %v", len(byConn), byConn)
	}
	for n, ts := range byConn {
		if len(ts) > 2 {
			t.Errorf("connection %d carries %v, more than MaxPerConnection", n, ts)
		}
	}
	for range 5 {
		recv(t, r.confirms, "confirm")
	}
	if st := rc.Stats(); !st.Connected || st.Sockets != 3 || st.Connections != 3 || st.Confirmed != 5 || st.Subscriptions != 5 {
		t.Errorf("stats = %+v", st)
	}

	// A dropped socket comes back with exactly its own tokens: assignment is stable.
	dropped := connOf["tA"]
	conns[dropped].close()
	if n := recv(t, f.closed, "close"); n != dropped {
		t.Fatalf("closed %d, want %d", n, dropped)
	}
	fc := recv(t, f.connected, "reconnection")
	var again []string
	for range byConn[dropped] {
		cmd := recv(t, f.cmds, "resubscribe")
		if cmd.conn != fc.n || cmd.Command != "subscribe" {
			t.Fatalf("command %+v, want a subscribe on connection %d", cmd, fc.n)
		}
		again = append(again, tokenOfIdent(t, cmd.Identifier))
	}
	if sorted(again) != sorted(byConn[dropped]) {
		t.Errorf("resubscribed %v, want %v", again, byConn[dropped])
	}
	for range again {
		recv(t, r.confirms, "reconfirm")
	}

	// The socket holding only tE closes once tE is unsubscribed; a new token fills the hole.
	lone := connOf["tE"]
	rc.Unsubscribe("tE")
	if cmd := recv(t, f.cmds, "unsubscribe"); cmd.Command != "unsubscribe" || cmd.conn != lone {
		t.Fatalf("command %+v", cmd)
	}
	if n := recv(t, f.closed, "idle close"); n != lone {
		t.Fatalf("closed %d, want the idle connection %d", n, lone)
	}
	eventually(t, "two sockets", func() bool { st := rc.Stats(); return st.Sockets == 2 && st.Connected })
	rc.Subscribe("tF")
	fc = recv(t, f.connected, "connection for tF")
	if cmd := recv(t, f.cmds, "subscribe tF"); cmd.conn != fc.n || tokenOfIdent(t, cmd.Identifier) != "tF" {
		t.Fatalf("command %+v", cmd)
	}
	recv(t, r.confirms, "confirm tF")
	if st := rc.Stats(); !st.Connected || st.Sockets != 3 || st.Confirmed != 5 {
		t.Errorf("stats = %+v", st)
	}
}

func TestCableRestartReconfirmsEverySocket(t *testing.T) {
	f := newFakeCable(t, nil)
	toks := []string{"tA", "tB", "tC", "tD", "tE"}
	for _, tok := range toks {
		f.setKnown(tok, true)
	}
	r := newRecorder()
	rc := startCable(t, f.url(), r, &CableOptions{MaxPerConnection: 2}, toks...)
	for range toks {
		recv(t, r.confirms, "confirm")
	}
	f.restartAll()
	seen := map[string]int{}
	for range toks {
		seen[recv(t, r.confirms, "reconfirm")]++
	}
	for _, tok := range toks {
		if seen[tok] != 1 {
			t.Errorf("token %s reconfirmed %d times", tok, seen[tok])
		}
	}
	if st := rc.Stats(); st.Confirmed != 5 || st.Reconnects < 3 || !strings.Contains(st.LastError, "server_restart") {
		t.Errorf("stats = %+v", st)
	}
}

func TestCableSilentReportedAndRetried(t *testing.T) {
	f := newFakeCable(t, nil) // tok1 unknown: silence
	r := newRecorder()
	rc := startCable(t, f.url(), r, &CableOptions{ConfirmTimeout: 50 * time.Millisecond, SilentAfter: 2,
		SilentRetryInterval: 100 * time.Millisecond}, tok1)
	expectCmd(t, f, "subscribe", tok1)
	expectCmd(t, f, "unsubscribe", tok1)
	expectCmd(t, f, "subscribe", tok1)
	if got := recv(t, r.timeouts, "timeout"); got != tok1 {
		t.Fatalf("timeout for %q", got)
	}
	if got := recv(t, r.silent, "silent"); got != tok1 {
		t.Fatalf("silent %q", got)
	}
	if st := rc.Stats(); st.Silent != 1 || st.Pending != 0 || st.Subscriptions != 1 || !st.Connected {
		t.Errorf("stats = %+v", st)
	}
	// Still retried, slowly, with an unsubscribe first: once the server knows the token, it
	// confirms.
	f.setKnown(tok1, true)
	if got := recv(t, r.confirms, "confirm"); got != tok1 {
		t.Fatalf("confirmed %q", got)
	}
	if st := rc.Stats(); st.Silent != 0 || st.Confirmed != 1 {
		t.Errorf("stats = %+v", st)
	}
	noValue(t, r.silent, "second silent report")
	logged := rc.logs.FilterMessage("cable subscription silent: the pubsub token may be unknown to the server").All()
	if len(logged) != 1 || logged[0].ContextMap()["token_hash"] != tokenHash(tok1) {
		t.Errorf("silent logs = %+v", logged)
	}
}

func TestCableRejectedReportedAndRetried(t *testing.T) {
	f := newFakeCable(t, nil)
	f.setKnown(tok1, true)
	f.setReject(tok1, true)
	r := newRecorder()
	rc := startCable(t, f.url(), r, &CableOptions{SilentRetryInterval: 100 * time.Millisecond}, tok1)
	expectCmd(t, f, "subscribe", tok1)
	if got := recv(t, r.rejected, "rejected"); got != tok1 {
		t.Fatalf("rejected %q", got)
	}
	if st := rc.Stats(); st.Rejected != 1 || st.Subscriptions != 1 || st.Confirmed != 0 {
		t.Errorf("stats = %+v", st)
	}
	// Rails dropped the rejected subscription, so the retry is a plain subscribe.
	expectCmd(t, f, "subscribe", tok1)
	f.setReject(tok1, false)
	if got := recv(t, r.confirms, "confirm"); got != tok1 {
		t.Fatalf("confirmed %q", got)
	}
	if st := rc.Stats(); st.Rejected != 0 || st.Confirmed != 1 {
		t.Errorf("stats = %+v", st)
	}
	noValue(t, r.rejected, "second rejection report")
}

func TestCableUnsubscribeDuringResubscribe(t *testing.T) {
	t.Run("while a retry awaits its confirm", func(t *testing.T) {
		f := newFakeCable(t, nil) // tok1 unknown
		f.setKnown(tok2, true)
		r := newRecorder()
		rc := startCable(t, f.url(), r, &CableOptions{ConfirmTimeout: 50 * time.Millisecond}, tok1)
		fc := recv(t, f.connected, "connection")
		expectCmd(t, f, "subscribe", tok1)
		expectCmd(t, f, "unsubscribe", tok1)
		expectCmd(t, f, "subscribe", tok1)
		rc.Unsubscribe(tok1)
		rc.Unsubscribe(tok1) // idempotent
		expectCmd(t, f, "unsubscribe", tok1)
		// The socket's commands are ordered: what follows is tok2, no more retries of tok1.
		rc.Subscribe(tok2)
		expectCmd(t, f, "subscribe", tok2)
		recv(t, r.confirms, "confirm tok2")
		fc.mu.Lock()
		_, held := fc.subs[ident(tok1)]
		fc.mu.Unlock()
		if held {
			t.Error("server still holds tok1")
		}
		if st := rc.Stats(); st.Subscriptions != 1 || st.Confirmed != 1 || st.Pending != 0 {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("while a restart's resubscribes are paced", func(t *testing.T) {
		f := newFakeCable(t, nil)
		toks := []string{"tA", "tB", "tC", "tD", "tE", "tF"}
		for _, tok := range append(toks, tok2) {
			f.setKnown(tok, true)
		}
		r := newRecorder()
		rc := startCable(t, f.url(), r, &CableOptions{SubscribeRate: 20}, toks...)
		recv(t, f.connected, "connection")
		for range toks {
			recv(t, r.confirms, "confirm")
			recv(t, f.cmds, "subscribe")
		}
		f.restartAll()
		fc := recv(t, f.connected, "reconnection")
		first := tokenOfIdent(t, recv(t, f.cmds, "first resubscribe").Identifier)
		for _, tok := range toks {
			if tok != first {
				rc.Unsubscribe(tok) // whether or not its subscribe went out yet
			}
		}
		rc.Subscribe(tok2) // a barrier: the socket writes in order
		for {
			cmd := recv(t, f.cmds, "command")
			if tokenOfIdent(t, cmd.Identifier) == tok2 {
				break
			}
		}
		recv(t, r.confirms, "confirm first")
		for tok := range r.confirms {
			if tok == tok2 {
				break
			}
			if tok != first {
				t.Errorf("unsubscribed token %s was confirmed", tok)
			}
		}
		fc.mu.Lock()
		held := len(fc.subs)
		fc.mu.Unlock()
		if held != 2 {
			t.Errorf("server holds %d subscriptions, want 2", held)
		}
		if st := rc.Stats(); st.Subscriptions != 2 || st.Confirmed != 2 {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("then subscribe again while confirmed", func(t *testing.T) {
		f := newFakeCable(t, nil)
		f.setKnown(tok1, true)
		r := newRecorder()
		rc := startCable(t, f.url(), r, &CableOptions{SubscribeRate: 5}, tok1)
		expectCmd(t, f, "subscribe", tok1)
		recv(t, r.confirms, "confirm")
		rc.Unsubscribe(tok1)
		rc.Subscribe(tok1) // before the paced unsubscribe went out
		// Broadcasts in between were dropped: a fresh subscription gives a fresh confirm, so
		// the handler catches up.
		expectCmd(t, f, "unsubscribe", tok1)
		expectCmd(t, f, "subscribe", tok1)
		if got := recv(t, r.confirms, "second confirm"); got != tok1 {
			t.Fatalf("confirmed %q", got)
		}
		if st := rc.Stats(); st.Subscriptions != 1 || st.Confirmed != 1 {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("while the socket is down", func(t *testing.T) {
		f := newFakeCable(t, nil)
		f.setKnown(tok1, true)
		f.setKnown(tok2, true)
		r := newRecorder()
		rc := startCable(t, f.url(), r, &CableOptions{MinBackoff: 300 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}, tok1, tok2)
		fc := recv(t, f.connected, "connection")
		recv(t, r.confirms, "confirm")
		recv(t, r.confirms, "confirm")
		recv(t, f.cmds, "subscribe")
		recv(t, f.cmds, "subscribe")
		fc.close()
		eventually(t, "socket down", func() bool { return !rc.Connected() })
		rc.Unsubscribe(tok1)
		recv(t, f.connected, "reconnection")
		expectCmd(t, f, "subscribe", tok2) // and nothing for tok1: no subscribe, no unsubscribe
		recv(t, r.confirms, "reconfirm")
		if st := rc.Stats(); st.Subscriptions != 1 || st.Confirmed != 1 {
			t.Errorf("stats = %+v", st)
		}
	})
}

func TestCableDuplicatesAndUnknownEvents(t *testing.T) {
	f := newFakeCable(t, nil)
	f.setKnown(tok1, true)
	r := newRecorder()
	rc := startCable(t, f.url(), r, nil, tok1)
	fc := recv(t, f.connected, "connection")
	expectCmd(t, f, "subscribe", tok1)
	recv(t, r.confirms, "confirm")
	idJSON, _ := json.Marshal(ident(tok1))
	_ = fc.send(`{"identifier":` + string(idJSON) + `,"type":"confirm_subscription"}`) // duplicate
	fc.broadcast(tok1, "conversation.recording", `{"id":1}`)                           // a fork's event
	fc.broadcast(tok1, EventMessageCreated, `{"id":7,"message_type":1}`)
	fc.broadcast(tok1, EventMessageCreated, `{"id":7,"message_type":1}`) // duplicate: delivered, harmless
	for range 2 {
		ev := recv(t, r.events, "event")
		if m, err := ev.Message(); ev.Name != EventMessageCreated || err != nil || m.ID != 7 {
			t.Fatalf("event %s: %+v, %v", ev.Name, m, err)
		}
	}
	noValue(t, r.confirms, "second confirm for a duplicate frame")
	if st := rc.Stats(); st.Confirmed != 1 {
		t.Errorf("stats = %+v", st)
	}

	// A second welcome (Rails sends one per socket, but be safe) resends the subscription.
	_ = fc.send(`{"type":"welcome"}`)
	cmd := recv(t, f.cmds, "command after second welcome")
	if cmd.Command != "subscribe" && cmd.Command != "unsubscribe" {
		t.Fatalf("command %+v", cmd)
	}
}

func TestCableDisconnectNoReconnectStopsPool(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	f := newFakeCable(t, func(f *fakeCable) { f.pingEvery = 20 * time.Millisecond })
	toks := []string{"tA", "tB", "tC"}
	for _, tok := range toks {
		f.setKnown(tok, true)
	}
	r := newRecorder()
	rc := startCable(t, f.url(), r, &CableOptions{MaxPerConnection: 1}, toks...)
	var fc *fakeConn
	for range toks {
		fc = recv(t, f.connected, "connection")
		recv(t, r.confirms, "confirm")
	}
	_ = fc.send(`{"type":"disconnect","reason":"unauthorized","reconnect":false}`)
	err := rc.wait(t)
	var de *DisconnectError
	if !errors.As(err, &de) || de.Reason != "unauthorized" || de.Reconnect {
		t.Fatalf("Run = %v", err)
	}
	if rc.Connected() || rc.Stats().Connections != 0 {
		t.Errorf("after Run: stats %+v", rc.Stats())
	}
	f.close()
	goleak.VerifyNone(t, ignore)
}

func TestCableCancelPoolLeavesNoGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	f := newFakeCable(t, func(f *fakeCable) { f.pingEvery = 20 * time.Millisecond })
	toks := []string{"tA", "tB", "tC", "tD"}
	for _, tok := range toks {
		f.setKnown(tok, true)
	}
	h := &blockingHandler{entered: make(chan struct{})}
	rc := startCable(t, f.url(), h, &CableOptions{MaxPerConnection: 1, QueueSize: 1}, toks...)
	var conns []*fakeConn
	for range toks {
		conns = append(conns, recv(t, f.connected, "connection"))
	}
	for range toks {
		recv(t, f.cmds, "subscribe")
	}
	// Fill the handler and the queue from every socket, so all readers wait.
	for range 3 {
		for _, fc := range conns {
			for _, tok := range toks {
				fc.broadcast(tok, EventMessageCreated, `{"id":1}`)
			}
		}
	}
	recv(t, h.entered, "handler entered")
	if err := rc.stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	f.close()
	goleak.VerifyNone(t, ignore)
}

func TestCableTotalSubscribeRate(t *testing.T) {
	f := newFakeCable(t, nil)
	toks := []string{"tA", "tB", "tC", "tD", "tE"}
	for _, tok := range toks {
		f.setKnown(tok, true)
	}
	r := newRecorder()
	// Five sockets that could each subscribe at once; the pool-wide cap spaces them 50 ms apart.
	startCable(t, f.url(), r, &CableOptions{MaxPerConnection: 1, SubscribeRate: 1000, TotalSubscribeRate: 20}, toks...)
	var first time.Time
	for i := range toks {
		if cmd := recv(t, f.cmds, "subscribe"); cmd.Command != "subscribe" {
			t.Fatalf("command %+v", cmd)
		}
		if i == 0 {
			first = time.Now()
		}
	}
	if d := time.Since(first); d < 150*time.Millisecond {
		t.Errorf("five subscribes on five sockets took %s, want paced at 20/s overall", d)
	}
	for range toks {
		recv(t, r.confirms, "confirm")
	}
}

// TestCableGivesBackMemoryOfUnsubscribedTokens: after most subscriptions are dropped at once
// (the bridge's idle sweep), the pool keeps no table sized for them: its maps are copied into
// right-sized ones, sockets left without subscriptions close and drop their buffers, and the
// tokens left are exactly the ones still wanted.
func TestCableGivesBackMemoryOfUnsubscribedTokens(t *testing.T) {
	f := newFakeCable(t, nil)
	const total, kept = 300, 10
	var toks []string
	for i := range total {
		tok := fmt.Sprintf("tok-%03d", i)
		f.setKnown(tok, true)
		toks = append(toks, tok)
	}
	r := newRecorder()
	rc := startCable(t, f.url(), r, &CableOptions{MaxPerConnection: 100, SubscribeRate: 1000}, toks...)
	for range total {
		recv(t, f.cmds, "subscribe")
		recv(t, r.confirms, "confirm")
	}
	rc.mu.Lock()
	before := reflect.ValueOf(rc.subs).UnsafePointer()
	peak := rc.subsPeak
	rc.mu.Unlock()
	if peak != total {
		t.Fatalf("peak %d subscriptions recorded, want %d", peak, total)
	}

	for _, tok := range toks[kept:] {
		rc.Unsubscribe(tok)
	}
	for range total - kept {
		if cmd := recv(t, f.cmds, "unsubscribe"); cmd.Command != "unsubscribe" {
			t.Fatalf("command %+v, want an unsubscribe", cmd)
		}
	}
	// Two of the three sockets are left without subscriptions and close.
	eventually(t, "one socket", func() bool { st := rc.Stats(); return st.Sockets == 1 && st.Connections == 1 })

	rc.mu.Lock()
	after := reflect.ValueOf(rc.subs).UnsafePointer()
	n, peakNow := len(rc.subs), rc.subsPeak
	var idle []int
	for _, s := range rc.sockets[1:] {
		if len(s.idents) != 0 || s.todo != nil || s.identsPeak >= shrinkMinPeak {
			idle = append(idle, s.idx)
		}
	}
	rc.mu.Unlock()
	if n != kept || after == before || peakNow > 4*kept {
		t.Errorf("after unsubscribing %d of %d: %d subscriptions in the map, reallocated %v, peak %d; want %d in a new map",
			total-kept, total, n, after != before, peakNow, kept)
	}
	if len(idle) > 0 {
		t.Errorf("sockets %v without subscriptions still hold their tables or buffers", idle)
	}
	if got := sorted(rc.Tokens()); got != sorted(toks[:kept]) {
		t.Errorf("Tokens() = %s, want %s", got, sorted(toks[:kept]))
	}
}
