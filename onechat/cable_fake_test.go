package onechat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// fakeCable is a small ActionCable server with RoomChannel semantics as OneChat has them:
// welcome on connect, pings, confirm for known tokens, silence for unknown ones (which stay
// registered, so a repeated subscribe is ignored: rough edge 21), broadcasts to confirmed
// subscriptions with the identifier echoed verbatim.
type fakeCable struct {
	t   *testing.T
	srv *httptest.Server

	pingEvery  time.Duration // 0: never ping
	noProtocol bool          // accept without selecting actioncable-v1-json

	mu     sync.Mutex
	known  map[string]bool
	reject map[string]bool // tokens answered with reject_subscription (and not registered)
	conns  map[*fakeConn]bool
	nconns int

	wg        sync.WaitGroup
	connected chan *fakeConn
	closed    chan int // the number of each connection whose handler ended
	cmds      chan fakeCmd
	pinged    chan struct{} // one value per ping sent, dropped when nobody listens
	closing   bool          // set by close, under mu
	closeOnce sync.Once
}

type fakeConn struct {
	f      *fakeCable
	n      int
	ws     *websocket.Conn
	header http.Header
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	subs map[string]bool // identifier → confirmed
}

type fakeCmd struct {
	conn       int
	Command    string `json:"command"`
	Identifier string `json:"identifier"`
	Data       string `json:"data"`
}

func newFakeCable(t *testing.T, setup func(f *fakeCable)) *fakeCable {
	t.Helper()
	f := &fakeCable{
		t:         t,
		known:     map[string]bool{},
		reject:    map[string]bool{},
		closed:    make(chan int, 64),
		conns:     map[*fakeConn]bool{},
		connected: make(chan *fakeConn, 16),
		cmds:      make(chan fakeCmd, 1024),
		pinged:    make(chan struct{}, 1024),
	}
	if setup != nil {
		setup(f)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.close)
	return f
}

// close stops the server and waits for every connection handler. It is idempotent.
func (f *fakeCable) close() {
	f.closeOnce.Do(func() {
		f.srv.Close()
		f.mu.Lock()
		f.closing = true // a handler that registers after this cancels itself
		for fc := range f.conns {
			fc.cancel()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
}

// url is the cable URL of the fake, with a ws scheme.
func (f *fakeCable) url() string { return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/cable" }

func (f *fakeCable) setKnown(token string, ok bool) {
	f.mu.Lock()
	f.known[token] = ok
	f.mu.Unlock()
}

func (f *fakeCable) setReject(token string, ok bool) {
	f.mu.Lock()
	f.reject[token] = ok
	f.mu.Unlock()
}

// restartAll sends disconnect server_restart on every open connection and closes it, as a
// Rails deploy does.
func (f *fakeCable) restartAll() {
	f.mu.Lock()
	conns := make([]*fakeConn, 0, len(f.conns))
	for fc := range f.conns {
		conns = append(conns, fc)
	}
	f.mu.Unlock()
	for _, fc := range conns {
		_ = fc.send(`{"type":"disconnect","reason":"server_restart","reconnect":true}`)
		fc.close()
	}
}

func (f *fakeCable) serve(w http.ResponseWriter, r *http.Request) {
	f.wg.Add(1)
	defer f.wg.Done()
	opts := &websocket.AcceptOptions{Subprotocols: []string{protocolV1}}
	if f.noProtocol {
		opts.Subprotocols = nil
	}
	ws, err := websocket.Accept(w, r, opts)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.mu.Lock()
	f.nconns++
	fc := &fakeConn{f: f, n: f.nconns, ws: ws, header: r.Header.Clone(), ctx: ctx, cancel: cancel, subs: map[string]bool{}}
	f.conns[fc] = true
	if f.closing {
		cancel()
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, fc)
		f.mu.Unlock()
		select {
		case f.closed <- fc.n:
		default:
		}
	}()

	select {
	case f.connected <- fc:
	case <-ctx.Done():
		return
	}
	if ws.Subprotocol() != protocolV1 {
		// Nothing more to say on this socket: wait until the client hangs up or the fake closes.
		<-ws.CloseRead(ctx).Done()
		return
	}
	fc.send(`{"type":"welcome"}`)

	var pinger sync.WaitGroup
	if f.pingEvery > 0 {
		pinger.Add(1)
		go func() {
			defer pinger.Done()
			tk := time.NewTicker(f.pingEvery)
			defer tk.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-tk.C:
					if fc.send(fmt.Sprintf(`{"type":"ping","message":%d}`, now.Unix())) == nil {
						select {
						case f.pinged <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	defer pinger.Wait()
	defer cancel()

	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return
		}
		var cmd fakeCmd
		if err := json.Unmarshal(b, &cmd); err != nil {
			f.t.Errorf("fake cable: client sent malformed command: %v", err)
			return
		}
		cmd.conn = fc.n
		fc.handle(cmd) // before publishing, so a test that saw the command sees its effect
		select {
		case f.cmds <- cmd:
		case <-ctx.Done():
			return
		}
	}
}

func (fc *fakeConn) handle(cmd fakeCmd) {
	var id struct {
		Channel     string `json:"channel"`
		PubsubToken string `json:"pubsub_token"`
	}
	if err := json.Unmarshal([]byte(cmd.Identifier), &id); err != nil {
		fc.f.t.Errorf("fake cable: identifier is not a JSON string of an object: %q", cmd.Identifier)
		return
	}
	switch cmd.Command {
	case "subscribe":
		fc.mu.Lock()
		_, dup := fc.subs[cmd.Identifier]
		if !dup {
			fc.subs[cmd.Identifier] = false // registered even when subscribed raises
		}
		fc.mu.Unlock()
		if dup || id.Channel != "RoomChannel" {
			return
		}
		fc.f.mu.Lock()
		ok := fc.f.known[id.PubsubToken]
		rejected := fc.f.reject[id.PubsubToken]
		fc.f.mu.Unlock()
		if rejected {
			// Rails removes a rejected subscription from the connection's table.
			fc.mu.Lock()
			delete(fc.subs, cmd.Identifier)
			fc.mu.Unlock()
			b, _ := json.Marshal(map[string]string{"identifier": cmd.Identifier, "type": "reject_subscription"})
			_ = fc.send(string(b))
			return
		}
		if !ok {
			return // OneChat: find_by! raises, nothing is sent
		}
		fc.mu.Lock()
		fc.subs[cmd.Identifier] = true
		fc.mu.Unlock()
		b, _ := json.Marshal(map[string]string{"identifier": cmd.Identifier, "type": "confirm_subscription"})
		_ = fc.send(string(b))
	case "unsubscribe":
		fc.mu.Lock()
		delete(fc.subs, cmd.Identifier)
		fc.mu.Unlock()
	}
}

func (fc *fakeConn) send(frame string) error {
	ctx, cancel := context.WithTimeout(fc.ctx, 5*time.Second)
	defer cancel()
	return fc.ws.Write(ctx, websocket.MessageText, []byte(frame))
}

// broadcast sends event to every confirmed subscription of token on this connection and
// reports how many got it.
func (fc *fakeConn) broadcast(token, event, data string) int {
	fc.mu.Lock()
	var ids []string
	for id, confirmed := range fc.subs {
		if confirmed && strings.Contains(id, `"pubsub_token":"`+token+`"`) {
			ids = append(ids, id)
		}
	}
	fc.mu.Unlock()
	for _, id := range ids {
		idJSON, _ := json.Marshal(id)
		_ = fc.send(fmt.Sprintf(`{"identifier":%s,"message":{"event":%q,"data":%s}}`, idJSON, event, data))
	}
	return len(ids)
}

// close drops the socket without a close handshake.
func (fc *fakeConn) close() { _ = fc.ws.CloseNow() }
