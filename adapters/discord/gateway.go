package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// Gateway opcodes (https://discord.com/developers/docs/topics/opcodes-and-status-codes).
const (
	opDispatch       = 0
	opHeartbeat      = 1
	opIdentify       = 2
	opResume         = 6
	opReconnect      = 7
	opInvalidSession = 9
	opHello          = 10
	opHeartbeatACK   = 11
)

// gatewayVersion is the API and gateway version the adapter speaks.
const gatewayVersion = "10"

// writeTimeout bounds every frame the adapter writes.
const writeTimeout = 10 * time.Second

// Gateway intents.
const (
	intentGuilds              = 1 << 0
	intentGuildMessages       = 1 << 9
	intentGuildMessageTyping  = 1 << 11
	intentDirectMessages      = 1 << 12
	intentDirectMessageTyping = 1 << 14
	intentMessageContent      = 1 << 15 // privileged: enable it in the Developer Portal
	dmIntents                 = intentDirectMessages | intentDirectMessageTyping
	supportIntents            = dmIntents | intentGuilds | intentGuildMessages | intentGuildMessageTyping | intentMessageContent
)

// frame is one gateway payload.
type frame struct {
	Op int             `json:"op"`
	D  json.RawMessage `json:"d"`
	S  *int64          `json:"s,omitempty"`
	T  string          `json:"t,omitempty"`
}

// event is a dispatch (op 0) handed to the adapter's event loop.
type event struct {
	Type string
	Data json.RawMessage
}

// gatewayState survives reconnects: what a RESUME needs.
type gatewayState struct {
	url       string // from GET /gateway
	resumeURL string // resume_gateway_url from READY
	sessionID string
	seq       atomic.Int64
}

// fatalGatewayError is a close code that reconnecting cannot fix (bad token, intents not
// allowed): Run returns it.
type fatalGatewayError struct {
	code websocket.StatusCode
	msg  string
}

func (e *fatalGatewayError) Error() string {
	if e.code == 0 {
		return "discord refused the bot: " + e.msg
	}
	return fmt.Sprintf("discord gateway closed with %d: %s", int(e.code), e.msg)
}

var (
	errReconnect = errors.New("discord gateway asked to reconnect")
	errZombie    = errors.New("discord gateway did not acknowledge a heartbeat")
	errNoHello   = errors.New("discord gateway sent no HELLO in time")
	// errInvalidSession is returned after op 9: identify afresh after a short random pause.
	errInvalidSession = errors.New("discord gateway invalidated the session")
)

// runGateway keeps a gateway connection until ctx is done, reconnecting (resuming when Discord
// allows) with backoff. Dispatches go to out in the order Discord sent them.
func (a *Adapter) runGateway(ctx context.Context, out chan<- event) error {
	st := &gatewayState{}
	for attempt := 0; ; {
		ready, err := a.connect(ctx, st, out)
		if ctx.Err() != nil {
			a.setHealth(errors.New("discord gateway: stopped"))
			return nil
		}
		a.setHealth(fmt.Errorf("discord gateway: %w", err))
		var fatal *fatalGatewayError
		if errors.As(err, &fatal) {
			a.log.Error("discord gateway refused the bot", zap.Error(err))
			return err
		}
		if ready {
			attempt = 0
		}
		wait := a.backoff.Delay(attempt)
		switch {
		case errors.Is(err, errReconnect) && ready:
			wait = 0
		case errors.Is(err, errInvalidSession):
			wait = a.invalidSessionWait()
		}
		attempt++
		a.log.Warn("discord gateway disconnected", zap.Error(err), zap.Int("attempt", attempt),
			zap.Duration("sleep", wait), zap.Bool("resume", st.sessionID != ""))
		if err := a.wait(ctx, wait); err != nil {
			a.setHealth(errors.New("discord gateway: stopped"))
			return nil
		}
	}
}

// connect runs one gateway connection: HELLO, IDENTIFY or RESUME, then heartbeats and
// dispatches until the connection fails. ready says whether READY or RESUMED arrived.
func (a *Adapter) connect(ctx context.Context, st *gatewayState, out chan<- event) (ready bool, err error) {
	if st.url == "" {
		var g struct {
			URL string `json:"url"`
		}
		if err := a.rest.do(ctx, "GET", "/gateway", nil, &g); err != nil {
			var apiErr *APIError
			if errors.As(err, &apiErr) && apiErr.Status == 401 {
				return false, &fatalGatewayError{0, "authentication failed: check DISCORD_BOT_TOKEN"}
			}
			return false, fmt.Errorf("get gateway url: %w", err)
		}
		if g.URL == "" {
			return false, errors.New("get gateway url: empty answer")
		}
		st.url = g.URL
	}
	base := st.url
	if st.sessionID != "" && st.resumeURL != "" {
		base = st.resumeURL
	}
	u, err := url.Parse(base)
	if err != nil {
		st.url, st.resumeURL = "", ""
		return false, fmt.Errorf("parse gateway url: %w", err)
	}
	q := u.Query()
	q.Set("v", gatewayVersion)
	q.Set("encoding", "json")
	u.RawQuery = q.Encode()

	dialCtx, cancel := context.WithTimeout(ctx, a.helloTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(dialCtx, u.String(), nil)
	if err != nil {
		// The URL may be stale: ask /gateway again next time.
		st.url, st.resumeURL = "", ""
		return false, fmt.Errorf("dial gateway: %w", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(16 << 20)

	// HELLO must come first, and soon: a gateway that accepts the socket but says nothing is
	// replaced rather than waited on forever.
	var hello struct {
		HeartbeatInterval int64 `json:"heartbeat_interval"`
	}
	f, err := readFrame(dialCtx, conn)
	if err != nil {
		if dialCtx.Err() != nil && ctx.Err() == nil {
			return false, errNoHello
		}
		return false, fmt.Errorf("read hello: %w", err)
	}
	if f.Op != opHello || json.Unmarshal(f.D, &hello) != nil || hello.HeartbeatInterval <= 0 {
		return false, fmt.Errorf("expected HELLO, got op %d", f.Op)
	}
	interval := time.Duration(hello.HeartbeatInterval) * time.Millisecond

	if st.sessionID != "" {
		err = writeJSON(ctx, conn, map[string]any{"op": opResume, "d": map[string]any{
			"token": a.rest.token, "session_id": st.sessionID, "seq": st.seq.Load(),
		}})
	} else {
		err = writeJSON(ctx, conn, map[string]any{"op": opIdentify, "d": map[string]any{
			"token":   a.rest.token,
			"intents": a.intents,
			"properties": map[string]string{
				"os": runtime.GOOS, "browser": "onechat-bridge", "device": "onechat-bridge",
			},
		}})
	}
	if err != nil {
		return false, fmt.Errorf("send identify: %w", err)
	}

	var acked atomic.Bool
	acked.Store(true)
	var isReady atomic.Bool
	g, gctx := errgroup.WithContext(ctx)
	beat := make(chan struct{}, 1) // the gateway asked for a heartbeat now (op 1)
	g.Go(func() error { return a.heartbeat(gctx, conn, st, interval, &acked, beat) })
	g.Go(func() error {
		for {
			f, err := readFrame(gctx, conn)
			if err != nil {
				return closeError(err, st)
			}
			if f.S != nil {
				st.seq.Store(*f.S)
			}
			switch f.Op {
			case opDispatch:
				switch f.T {
				case "READY":
					var r struct {
						SessionID        string `json:"session_id"`
						ResumeGatewayURL string `json:"resume_gateway_url"`
						User             struct {
							ID string `json:"id"`
						} `json:"user"`
					}
					if err := json.Unmarshal(f.D, &r); err != nil {
						return fmt.Errorf("decode READY: %w", err)
					}
					st.sessionID, st.resumeURL = r.SessionID, r.ResumeGatewayURL
					a.botID.Store(&r.User.ID)
					isReady.Store(true)
					a.setHealth(nil)
					a.log.Info("discord gateway ready", zap.String("bot_id", r.User.ID))
				case "RESUMED":
					isReady.Store(true)
					a.setHealth(nil)
					a.log.Info("discord gateway resumed", zap.Int64("seq", st.seq.Load()))
				}
				select {
				case out <- event{Type: f.T, Data: f.D}:
				case <-gctx.Done():
					return gctx.Err()
				}
			case opHeartbeat:
				select {
				case beat <- struct{}{}:
				default:
				}
			case opHeartbeatACK:
				acked.Store(true)
			case opReconnect:
				return errReconnect
			case opInvalidSession:
				var resumable bool
				_ = json.Unmarshal(f.D, &resumable)
				if !resumable {
					st.sessionID, st.resumeURL = "", ""
					st.seq.Store(0)
				}
				return errInvalidSession
			}
		}
	})
	err = g.Wait()
	if ctx.Err() != nil {
		_ = conn.Close(websocket.StatusNormalClosure, "")
	}
	return isReady.Load(), err
}

// heartbeat sends op 1 every interval (the first after a random part of it, as Discord asks)
// and whenever the gateway asks. A heartbeat that was not acknowledged when the next is due
// means a zombie connection: it is dropped so that the adapter reconnects and resumes.
func (a *Adapter) heartbeat(ctx context.Context, conn *websocket.Conn, st *gatewayState, interval time.Duration, acked *atomic.Bool, beat <-chan struct{}) error {
	t := time.NewTimer(time.Duration(rand.Float64() * float64(interval)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-beat:
		case <-t.C:
			if !acked.Swap(false) {
				return errZombie
			}
			t.Reset(interval)
		}
		var seq any
		if s := st.seq.Load(); s > 0 {
			seq = s
		}
		if err := writeJSON(ctx, conn, map[string]any{"op": opHeartbeat, "d": seq}); err != nil {
			return fmt.Errorf("send heartbeat: %w", err)
		}
	}
}

// closeError turns the gateway's close code into what the adapter does next.
func closeError(err error, st *gatewayState) error {
	code := websocket.CloseStatus(err)
	switch code {
	case 4004:
		return &fatalGatewayError{code, "authentication failed: check DISCORD_BOT_TOKEN"}
	case 4010, 4011:
		return &fatalGatewayError{code, "invalid shard or sharding required"}
	case 4012:
		return &fatalGatewayError{code, "invalid API version"}
	case 4013:
		return &fatalGatewayError{code, "invalid intents"}
	case 4014:
		return &fatalGatewayError{code, "disallowed intents: support-channel mode needs the Message Content intent, enable it for the bot in the Discord Developer Portal"}
	case 4007, 4009:
		st.sessionID, st.resumeURL = "", ""
		st.seq.Store(0)
	}
	return fmt.Errorf("read gateway: %w", err)
}

func readFrame(ctx context.Context, conn *websocket.Conn) (frame, error) {
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return frame{}, err
		}
		if typ != websocket.MessageText {
			continue // we never ask for compression
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			return frame{}, fmt.Errorf("decode gateway frame: %w", err)
		}
		return f, nil
	}
}

func writeJSON(ctx context.Context, conn *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, b)
}
