package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

const testBotToken = "123456:TEST-bot-token-never-logged"

// world is a Telegram user, a OneChat agent and the bridge between them: the fake Bot API,
// the fake OneChat, a fresh Postgres database and the bridge's run function.
type world struct {
	t      *testing.T
	tg     *telegramtest.Server
	oc     *onechattest.Server
	cfg    Config
	env    []string
	ocURL  string
	pg     *tcpProxy
	tgGate *gate // in front of the fake Bot API
	ocGate *gate // in front of the fake OneChat
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{
		t:      t,
		tg:     telegramtest.New(testBotToken),
		oc:     onechattest.New(&onechattest.Options{PingInterval: 50 * time.Millisecond, Logf: t.Logf}),
		logs:   &syncBuffer{},
		tgGate: &gate{},
		ocGate: &gate{},
	}
	tgSrv := httptest.NewServer(w.tgGate.wrap(w.tg.Handler()))
	ocSrv := httptest.NewServer(w.ocGate.wrap(w.oc.Handler()))
	t.Cleanup(func() {
		w.tg.Close() // first: httptest's Close waits for the long polls this unblocks
		w.oc.Close() // closes the websockets, which httptest does not track
		// A request the gate holds, or a keep-alive the bridge left behind, must not hold
		// Close up.
		tgSrv.CloseClientConnections()
		ocSrv.CloseClientConnections()
		tgSrv.Close()
		ocSrv.Close()
	})
	w.ocURL = ocSrv.URL
	w.pg = newTCPProxy(t, pgtest.NewDatabaseURL(t))
	env := []string{
		"DATABASE_URL=" + w.pg.url(testDBPassword),
		"ONECHAT_BASE_URL=" + ocSrv.URL,
		"ONECHAT_INBOX_IDENTIFIER=" + w.oc.InboxIdentifier(),
		"ONECHAT_HMAC_TOKEN=" + w.oc.HMACToken(),
		"ONECHAT_CABLE_URL=ws" + strings.TrimPrefix(ocSrv.URL, "http") + "/cable",
		"TELEGRAM_BOT_TOKEN=" + testBotToken,
		"TELEGRAM_API_URL=" + tgSrv.URL,
		"TELEGRAM_POLL_TIMEOUT=2s",
		"BRIDGE_ADMIN_ADDR=127.0.0.1:0",
		"BRIDGE_SHUTDOWN_TIMEOUT=6s",
		"LOG_LEVEL=debug",
	}
	w.env = env
	cfg, err := LoadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	w.cfg = cfg
	return w
}

func (w *world) start() {
	w.t.Helper()
	logger := zaptest.NewLogger(w.t, zaptest.Level(zap.DebugLevel)).WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		return zapcore.NewTee(c, zapcore.NewCore(enc, zapcore.AddSync(w.logs), zap.DebugLevel))
	}))
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan error, 1)
	go func() { w.done <- run(ctx, w.cfg, logger) }()
	w.t.Cleanup(w.stop)
}

func (w *world) stop() {
	if w.cancel == nil {
		return
	}
	w.cancel()
	select {
	case err := <-w.done:
		if err != nil {
			w.t.Errorf("bridge stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		w.t.Error("bridge did not stop within 20 s of SIGTERM")
	}
	w.cancel = nil
}

func (w *world) conversation(ctx context.Context, identifier string) (onechattest.Contact, onechattest.Conversation) {
	w.t.Helper()
	var contact onechattest.Contact
	var conv onechattest.Conversation
	err := w.oc.Wait(ctx, func() bool {
		c, ok := w.oc.ContactByIdentifier(identifier)
		if !ok {
			return false
		}
		convs := w.oc.Conversations(c.ID)
		if len(convs) == 0 {
			return false
		}
		contact, conv = c, convs[len(convs)-1]
		return true
	})
	if err != nil {
		w.t.Fatalf("no OneChat conversation for %s: %v", identifier, err)
	}
	return contact, conv
}

func (w *world) waitIncoming(ctx context.Context, convID int64, want ...string) {
	w.t.Helper()
	incoming := func() []string {
		var out []string
		for _, m := range w.oc.Messages(convID) {
			if m.MessageType == 0 {
				out = append(out, m.Content)
			}
		}
		return out
	}
	if err := w.oc.Wait(ctx, func() bool { return len(incoming()) >= len(want) }); err != nil {
		w.t.Fatalf("conversation %d: incoming %q, want %q: %v", convID, incoming(), want, err)
	}
	if got := incoming(); fmt.Sprint(got) != fmt.Sprint(want) {
		w.t.Fatalf("conversation %d: incoming %q, want %q", convID, got, want)
	}
}

func (w *world) waitSubscribed(ctx context.Context, contactID int64) {
	w.t.Helper()
	err := w.oc.Wait(ctx, func() bool {
		for _, ci := range w.oc.ContactInboxes(contactID) {
			if w.oc.Subscribed(ci.PubsubToken) > 0 {
				return true
			}
		}
		return false
	})
	if err != nil {
		w.t.Fatalf("bridge never subscribed to the contact's cable: %v", err)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var alice = telegramtest.User{ID: 777001, FirstName: "Alice", LastName: "Liddell", Username: "alice"}

// Shown by test 1 of the walking skeleton: a private-chat message reaches OneChat as an
// incoming message of contact telegram:<id>, and three quick messages arrive in order.
func TestTelegramMessagesReachOneChatInOrder(t *testing.T) {
	w := newWorld(t)
	w.start()
	ctx := testCtx(t)

	w.tg.SendText(alice, "Hello")
	w.tg.SendText(alice, "my order")
	last := w.tg.SendText(alice, "is late")
	contact, conv := w.conversation(ctx, "telegram:777001")
	w.waitIncoming(ctx, conv.ID, "Hello", "my order", "is late")
	if contact.Name != "Alice Liddell" {
		t.Errorf("contact name %q, want Alice Liddell", contact.Name)
	}
	_ = last
	w.stop()
	if strings.Contains(w.logs.String(), testBotToken) || strings.Contains(w.logs.String(), "TEST-bot-token") {
		t.Error("the bot token appears in the logs")
	}
	if strings.Contains(w.logs.String(), w.oc.HMACToken()) {
		t.Error("the HMAC token appears in the logs")
	}
}

// Shown by test 2: an agent reply reaches the user's chat; a private note does not; the
// contact's own echoed message is not sent back.
func TestAgentReplyReachesTelegramChat(t *testing.T) {
	w := newWorld(t)
	w.start()
	ctx := testCtx(t)

	w.tg.SendText(alice, "Hello")
	contact, conv := w.conversation(ctx, "telegram:777001")
	w.waitIncoming(ctx, conv.ID, "Hello")
	w.waitSubscribed(ctx, contact.ID)

	w.oc.PrivateNote(conv.ID, "note: VIP customer")
	w.oc.AgentReply(conv.ID, "Hi Alice, how can I help?")
	w.tg.SendText(alice, "Where is my parcel?")
	w.waitIncoming(ctx, conv.ID, "Hello", "Where is my parcel?")
	w.oc.AgentReply(conv.ID, "Checking now.")

	sent, err := w.tg.WaitSent(ctx, alice.ID, 2)
	if err != nil {
		t.Fatalf("waiting for replies in the Telegram chat: %v (have %v)", err, w.tg.Sent(alice.ID))
	}
	var texts []string
	for _, s := range sent {
		texts = append(texts, s.Text)
	}
	if got, want := fmt.Sprint(texts), fmt.Sprint([]string{"Hi Alice, how can I help?", "Checking now."}); got != want {
		t.Fatalf("Telegram chat received %s, want %s", got, want)
	}
}

// Shown by test 3: after the bridge stops and starts again, the same user's next message lands
// in the same contact session and conversation.
func TestRestartKeepsSessionAndConversation(t *testing.T) {
	w := newWorld(t)
	w.start()
	ctx := testCtx(t)

	w.tg.SendText(alice, "before")
	contact, conv := w.conversation(ctx, "telegram:777001")
	w.waitIncoming(ctx, conv.ID, "before")
	w.stop()

	w.start()
	w.tg.SendText(alice, "after")
	w.waitIncoming(ctx, conv.ID, "before", "after")
	if n := len(w.oc.ContactInboxes(contact.ID)); n != 1 {
		t.Errorf("%d contact sessions after restart, want 1", n)
	}
	if n := len(w.oc.Conversations(contact.ID)); n != 1 {
		t.Errorf("%d conversations after restart, want 1", n)
	}
}

// Shown by test 4: the cable dropping and coming back does not stop the next agent reply.
func TestCableDropDoesNotStopReplies(t *testing.T) {
	w := newWorld(t)
	w.start()
	ctx := testCtx(t)

	w.tg.SendText(alice, "hi")
	contact, conv := w.conversation(ctx, "telegram:777001")
	w.waitIncoming(ctx, conv.ID, "hi")
	w.waitSubscribed(ctx, contact.ID)

	w.oc.RestartCable()
	w.oc.AgentReply(conv.ID, "still here")
	sent, err := w.tg.WaitSent(ctx, alice.ID, 1)
	if err != nil {
		t.Fatalf("reply after the cable dropped: %v", err)
	}
	if sent[0].Text != "still here" {
		t.Errorf("Telegram chat received %q", sent[0].Text)
	}
}

func TestAdminEndpoints(t *testing.T) {
	w := newWorld(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w.cfg.AdminAddr = addr
	w.start()
	ctx := testCtx(t)

	get := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	// Wait for the listener and the cable without sleeping blindly: readiness is a signal the
	// bridge gives, polled here the way a container runtime polls it.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		code, body := get("/readyz")
		if code == http.StatusOK {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/readyz never became ready: %d %s", code, body)
		case <-tick.C:
		}
	}
	if code, _ := get("/livez"); code != http.StatusOK {
		t.Errorf("/livez = %d", code)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
