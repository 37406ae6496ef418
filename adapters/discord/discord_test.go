package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/onechat/onechat-bridge/adapters/discord/discordtest"
	"github.com/onechat/onechat-bridge/adapters/retry"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/bridgetest"
	"github.com/onechat/onechat-bridge/texts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testToken is distinctive so that a leak is easy to spot in any string.
const testToken = "MTAx.SECRET-discord-token.xyz"

const (
	alice   = "700000000000000001"
	bob     = "700000000000000002"
	support = "910000000000000001"
	staff   = "920000000000000001"
)

// newInbox returns the in-memory host the adapter delivers to in these tests.
func newInbox() *bridgetest.MemHost { return bridgetest.NewMemHost() }

// waitFor waits until cond holds on in's state, failing the test after 10 s.
func waitFor(t *testing.T, in *bridgetest.MemHost, what string, cond func(s bridgetest.Snapshot) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Wait(ctx, cond); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitMsgs waits until n messages were delivered and returns them.
func waitMsgs(t *testing.T, in *bridgetest.MemHost, n int) []bridge.Inbound {
	t.Helper()
	waitFor(t, in, "delivered messages", func(s bridgetest.Snapshot) bool { return len(s.Messages()) >= n })
	return in.Messages()
}

// testLogger logs to t and keeps every entry so the test can check none holds the token.
func testLogger(t *testing.T) *zap.Logger {
	core, logs := observer.New(zapcore.DebugLevel)
	t.Cleanup(func() {
		for _, e := range logs.All() {
			line := e.Message
			for k, v := range e.ContextMap() {
				line += " " + k + "=" + toString(v)
			}
			if strings.Contains(line, testToken) || strings.Contains(line, "SECRET") {
				t.Errorf("log line leaks the token: %s", line)
			}
		}
	})
	return zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core))
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// harness runs an adapter against a fake Discord.
type harness struct {
	srv    *discordtest.Server
	a      *Adapter
	in     *bridgetest.MemHost
	health chan error
	stop   func() error
}

func newAdapter(t *testing.T, srv *discordtest.Server, mode string) *Adapter {
	t.Helper()
	cfg := Config{Token: testToken, APIURL: srv.APIURL, CDNURL: srv.CDNURL, HelloTimeout: 2 * time.Second}
	if mode == "support" {
		cfg.SupportChannelID, cfg.StaffRoleID = support, staff
	}
	a, err := New(cfg, newInbox(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	a.backoff = retry.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond, Jitter: 0.5}
	a.invalidWait = func() time.Duration { return 10 * time.Millisecond }
	useVirtualClock(srv, a)
	t.Cleanup(func() { clocks.Delete(srv) })
	return a
}

// start runs a on in until the test ends (or stop is called) and waits for READY.
func start(t *testing.T, srv *discordtest.Server, a *Adapter, in *bridgetest.MemHost) *harness {
	t.Helper()
	h := &harness{srv: srv, a: a, in: in, health: make(chan error, 100)}
	a.healthMu.Lock()
	a.observeHealth = func(err error) { h.health <- err }
	a.healthMu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	a.host = in
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	h.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	h.waitHealthy(t)
	return h
}

func (h *harness) waitHealthy(t *testing.T) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case err := <-h.health:
			if err == nil {
				return
			}
		case <-timeout:
			t.Fatalf("adapter never became healthy: %v", h.a.Health())
		}
	}
}

func (h *harness) waitUnhealthy(t *testing.T) error {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case err := <-h.health:
			if err != nil {
				return err
			}
		case <-timeout:
			t.Fatal("adapter never reported a problem")
		}
	}
}

func dmSetup(t *testing.T) *harness {
	srv := discordtest.NewServer(t, testToken)
	srv.AddUser(alice, "alice", "Alice A.")
	srv.AddUser(bob, "bob", "")
	return start(t, srv, newAdapter(t, srv, "dm"), newInbox())
}

func TestDMInboundEveryKindInOrder(t *testing.T) {
	h := dmSetup(t)
	ctx := context.Background()
	first := h.srv.UserSendsDM(alice, "hello **there**")
	dm := first.ChannelID
	h.srv.UserSendsDM(alice, "see file", discordtest.WithAttachment("report.pdf", "application/pdf", []byte("%PDF-1")),
		discordtest.WithAttachment("cat.png", "image/png", []byte("png-bytes")))
	h.srv.UserSendsDM(alice, "", discordtest.WithSticker("930000000000000001", "wave", 1), discordtest.WithSticker("930000000000000002", "dance", 3))
	reply := h.srv.UserSendsDM(alice, "answering", discordtest.ReplyingTo(first.ID))
	h.srv.UserEdits(first.ID, "hello **everyone**")
	h.srv.UserDeletes(reply.ID)
	h.srv.UserTypes(alice, dm)
	h.srv.UserSendsDM(bob, "I am bob")

	got := waitMsgs(t, h.in, 7)
	if got[0].Text != "hello **there**" || got[0].DisplayName != "Alice A." || got[0].Username != "alice" ||
		got[0].User.ID != alice || got[0].Chat != (bridge.ChatRef{Platform: Platform, ID: dm}) {
		t.Errorf("text message: %+v", got[0])
	}
	if len(got[1].Attachments) != 2 || got[1].Attachments[0].Kind != bridge.KindFile || got[1].Attachments[1].Kind != bridge.KindImage ||
		got[1].Attachments[0].Name != "report.pdf" || got[1].Attachments[0].MIME != "application/pdf" {
		t.Errorf("attachments: %+v", got[1].Attachments)
	}
	if len(got[2].Attachments) != 1 || got[2].Attachments[0].Kind != bridge.KindSticker || len(got[2].Notes) != 1 || !strings.Contains(got[2].Notes[0], "dance") {
		t.Errorf("stickers: %+v", got[2])
	}
	if got[3].ReplyTo != first.ID || got[3].ReplyToText != "hello **there**" {
		t.Errorf("reply: %+v", got[3])
	}
	if got[4].EditOf != first.ID || got[4].Text != "hello **everyone**" || got[4].MessageID == first.ID {
		t.Errorf("edit: %+v", got[4])
	}
	if got[5].DeletedOf != reply.ID || got[5].User.ID != alice {
		t.Errorf("delete: %+v", got[5])
	}
	if got[6].User.ID != bob || got[6].Text != "I am bob" {
		t.Errorf("bob: %+v", got[6])
	}
	waitFor(t, h.in, "typing", func(s bridgetest.Snapshot) bool { return len(s.Typings()) == 1 && s.Typings()[0].Chat.ID == dm })

	// Attachments are fetched through a fresh link even after the one in the event expired,
	// and the token never goes to the CDN.
	h.srv.ExpireCDNLinks()
	for i, want := range []string{"%PDF-1", "png-bytes"} {
		rc, err := h.a.OpenAttachment(ctx, got[1].Attachments[i])
		if err != nil {
			t.Fatalf("OpenAttachment: %v", err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != want {
			t.Errorf("attachment %d = %q, want %q", i, b, want)
		}
	}
	rc, err := h.a.OpenAttachment(ctx, got[2].Attachments[0])
	if err != nil {
		t.Fatalf("sticker: %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "sticker-930000000000000001.png" {
		t.Errorf("sticker bytes %q", b)
	}
	if n := h.srv.AuthorizedCDNRequests(); n != 0 {
		t.Errorf("%d CDN downloads carried the token", n)
	}
	// A deleted message's file is gone for good: permanent, not retried forever.
	_, err = h.a.OpenAttachment(ctx, bridge.Attachment{Ref: attachmentRef(dm, reply.ID, "1")})
	var perm *bridge.PermanentError
	if !errors.As(err, &perm) {
		t.Errorf("attachment of a deleted message: %v, want permanent", err)
	}
	// The channel cursor follows the last message.
	if c, _ := h.in.Cursor(ctx, cursorChannel+dm); c != reply.ID {
		t.Errorf("cursor %s, want %s", c, reply.ID)
	}
}

func TestBotsOwnMessagesAndOtherGuildChannelsAreNotBridged(t *testing.T) {
	h := dmSetup(t)
	dm := h.srv.DMChannel(alice)
	if _, err := h.a.Send(context.Background(), bridge.Outbound{User: bridge.UserRef{Platform: Platform, ID: alice}, Chat: bridge.ChatRef{Platform: Platform, ID: dm}, Text: "agent says hi"}); err != nil {
		t.Fatal(err)
	}
	h.srv.AddTextChannel(support)
	h.srv.UserSendsIn(bob, support, "chatter in a guild channel")
	h.srv.UserSendsDM(alice, "marker")
	got := waitMsgs(t, h.in, 1)
	if len(got) != 1 || got[0].Text != "marker" {
		t.Fatalf("delivered %+v, want only the marker", got)
	}
}

// outIDs numbers the OneChat messages out makes: each agent message has its own id.
var outIDs atomic.Int64

func out(chat string, text string) bridge.Outbound {
	return bridge.Outbound{User: bridge.UserRef{Platform: Platform, ID: alice}, Chat: bridge.ChatRef{Platform: Platform, ID: chat}, Text: text, MessageID: outIDs.Add(1)}
}

func TestSendEveryKind(t *testing.T) {
	h := dmSetup(t)
	ctx := context.Background()
	first := h.srv.UserSendsDM(alice, "hi")
	dm := first.ChannelID
	waitMsgs(t, h.in, 1)

	// Long text is split, replies reference the user's message, mentions never ping.
	long := strings.Repeat("word ", 500) + "@everyone"
	m := out(dm, long)
	m.ReplyTo = first.ID
	ids, err := h.a.Send(ctx, m)
	if err != nil || len(ids) != 2 {
		t.Fatalf("Send long = %v, %v", ids, err)
	}
	msgs := h.srv.Messages(dm)
	sent := msgs[len(msgs)-2:]
	if sent[0].ReplyTo != first.ID || sent[1].ReplyTo != "" {
		t.Errorf("reply reference on parts: %q %q", sent[0].ReplyTo, sent[1].ReplyTo)
	}
	if strings.Join([]string{sent[0].Content, sent[1].Content}, " ") != strings.TrimSpace(long) {
		t.Errorf("split text does not add up")
	}
	for _, s := range sent {
		if string(s.AllowedMentions) != `{"parse":[]}` {
			t.Errorf("allowed_mentions = %s", s.AllowedMentions)
		}
	}

	// Files are uploaded, not linked.
	m = out(dm, "your invoice")
	m.Attachments = []bridge.Attachment{{Name: "invoice.pdf", MIME: "application/pdf", Open: func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("PDF!")), nil
	}}, {Name: "huge.bin", Size: 1 << 40}}
	m.MessageID = outIDs.Add(1) // another agent message
	ids, err = h.a.Send(ctx, m)
	if len(ids) != 1 || !slices.Equal(leftOut(err), []string{"📎 huge.bin is larger than Discord lets the bot send here; send a link instead"}) {
		t.Fatalf("Send file = %v, %v, want one message and the large file left out", ids, err)
	}
	msgs = h.srv.Messages(dm)
	last := msgs[len(msgs)-1]
	if len(last.Attachments) != 1 || string(last.Attachments[0].Data) != "PDF!" || last.Attachments[0].Filename != "invoice.pdf" ||
		!strings.Contains(last.Content, "huge.bin is too large") {
		t.Errorf("file message: %+v", last)
	}

	// input_select with few options: buttons; the press is acknowledged, the buttons disabled,
	// and the choice reaches the core as the user's message.
	m = out(dm, "Which plan?")
	m.ContentType = "input_select"
	m.Items = []bridge.Item{{Title: "Basic", Value: "basic"}, {Title: "Pro", Value: "pro"}}
	m.MessageID = outIDs.Add(1) // another agent message
	ids, err = h.a.Send(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	iid := h.srv.UserPresses(alice, dm, ids[0], "onechat:sel:pro")
	got := waitMsgs(t, h.in, 2)
	c := got[1]
	if c.Choice == nil || c.Choice.Value != "pro" || c.Choice.Title != "Pro" || c.Choice.MessageID != ids[0] || c.Text != "Pro" {
		t.Errorf("choice: %+v %+v", c, c.Choice)
	}
	h.srv.WaitFor(t, "press acknowledged", func() bool { return len(h.srv.InteractionResponsesLocked(iid)) == 1 })
	h.srv.WaitFor(t, "buttons disabled", func() bool {
		for _, m := range h.srv.MessagesLocked(dm) {
			if m.ID == ids[0] {
				return strings.Contains(string(m.Components), `"disabled":true`) && strings.Contains(string(m.Components), `"style":3`)
			}
		}
		return false
	})

	// Beyond five options: a select menu.
	m.Items = nil
	for _, v := range []string{"a", "b", "c", "d", "e", "f"} {
		m.Items = append(m.Items, bridge.Item{Title: strings.ToUpper(v), Value: v})
	}
	m.MessageID = outIDs.Add(1) // another agent message
	ids, err = h.a.Send(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.UserPresses(alice, dm, ids[0], "onechat:sel:menu", "onechat:sel:f")
	got = waitMsgs(t, h.in, 3)
	if ch := got[2].Choice; ch == nil || ch.Value != "f" || ch.Title != "F" {
		t.Errorf("menu choice: %+v", got[2])
	}

	// CSAT: five buttons; the rating comes back as a choice.
	m = out(dm, "")
	m.ContentType = "input_csat"
	m.MessageID = outIDs.Add(1) // another agent message
	ids, err = h.a.Send(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.UserPresses(alice, dm, ids[0], "onechat:csat:4")
	got = waitMsgs(t, h.in, 4)
	if ch := got[3].Choice; ch == nil || ch.Value != "4" {
		t.Errorf("csat choice: %+v", got[3])
	}

	// Cards as embeds.
	m = out(dm, "")
	m.ContentType = "cards"
	m.Items = []bridge.Item{{Title: "Guide", Description: "How to", Link: "https://example.com/g", MediaURL: "https://example.com/g.png"}}
	m.MessageID = outIDs.Add(1) // another agent message
	ids, err = h.a.Send(ctx, m)
	if err != nil || len(ids) != 1 {
		t.Fatal(ids, err)
	}
	msgs = h.srv.Messages(dm)
	if e := string(msgs[len(msgs)-1].Embeds); !strings.Contains(e, `"title":"Guide"`) || !strings.Contains(e, `"url":"https://example.com/g"`) {
		t.Errorf("embeds: %s", e)
	}

	// Agent edits and deletes.
	m = out(dm, "first version")
	m.MessageID = outIDs.Add(1) // another agent message
	ids, err = h.a.Send(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	m.Text, m.Parts = "second version @here", ids
	if err := h.a.Edit(ctx, m); err != nil {
		t.Fatal(err)
	}
	var edited discordtest.Message
	for _, x := range h.srv.Messages(dm) {
		if x.ID == ids[0] {
			edited = x
		}
	}
	if edited.Content != "second version @here" || string(edited.AllowedMentions) != `{"parse":[]}` {
		t.Errorf("edited: %+v", edited)
	}
	if err := h.a.Delete(ctx, m); err != nil {
		t.Fatal(err)
	}
	for _, x := range h.srv.Messages(dm) {
		if x.ID == ids[0] {
			t.Errorf("deleted message still there")
		}
	}
	if err := h.a.Delete(ctx, m); err != nil { // already gone: fine
		t.Errorf("second delete: %v", err)
	}
}

func TestShowTypingSendsOneRequest(t *testing.T) {
	h := dmSetup(t)
	dm := h.srv.DMChannel(alice)
	if err := h.a.ShowTyping(context.Background(), bridge.ChatRef{Platform: Platform, ID: dm}); err != nil {
		t.Fatal(err)
	}
	if n := h.srv.TypingCount(dm); n != 1 {
		t.Errorf("typing requests %d, want 1 (the core repeats it)", n)
	}
	// Discord shows typing for about 10 s: the core must refresh it before.
	if d := h.a.TypingRefresh(); d <= 0 || d >= 10*time.Second {
		t.Errorf("TypingRefresh = %v, want under 10 s", d)
	}
}

// TestRetriedSendIsNotDoubled: a message sent again (the bridge crashed after Discord created
// it, before the result was recorded, and the queue ran it again) comes back as the messages
// already sent instead of a second copy; another message with the same text is still sent.
func TestRetriedSendIsNotDoubled(t *testing.T) {
	h := dmSetup(t)
	ctx := context.Background()
	dm := h.srv.DMChannel(alice)
	m := out(dm, strings.Repeat("long words ", 300))
	m.MessageID = 9223372036854775807 // the longest id: its nonces must still fit Discord's 25 characters
	first, err := h.a.Send(ctx, m)
	if err != nil || len(first) != 2 {
		t.Fatalf("Send = %v, %v; want two parts", first, err)
	}
	again, err := h.a.Send(ctx, m)
	if err != nil || strings.Join(again, ",") != strings.Join(first, ",") {
		t.Fatalf("Send again = %v, %v; want the same messages %v", again, err, first)
	}
	if n := len(h.srv.Messages(dm)); n != 2 {
		t.Fatalf("%d messages in the DM after a retried send, want 2", n)
	}
	other := m
	other.MessageID = 77
	if ids, err := h.a.Send(ctx, other); err != nil || len(ids) != 2 || ids[0] == first[0] {
		t.Fatalf("Send of another message with the same text = %v, %v; want two new messages", ids, err)
	}
	if n := len(h.srv.Messages(dm)); n != 4 {
		t.Errorf("%d messages in the DM, want 4", n)
	}
}

// TestSendContinuesAfterDeliveredParts: a retry hours later (the nonces long expired) of a
// message whose first part an earlier Send delivered sends only the second.
func TestSendContinuesAfterDeliveredParts(t *testing.T) {
	h := dmSetup(t)
	ctx := context.Background()
	dm := h.srv.DMChannel(alice)
	m := out(dm, strings.Repeat("long words ", 300))
	m.MessageID = 78
	m.Parts = []string{"1"}
	ids, err := h.a.Send(ctx, m)
	if err != nil || len(ids) != 1 {
		t.Fatalf("Send = %v, %v; want the second part only", ids, err)
	}
	if msgs := h.srv.Messages(dm); len(msgs) != 1 || msgs[0].ID != ids[0] {
		t.Fatalf("the DM holds %+v, want only the second part", msgs)
	}
}

func TestRateLimitAndClosedDMs(t *testing.T) {
	h := dmSetup(t)
	ctx := context.Background()
	dm := h.srv.DMChannel(alice)
	h.srv.RateLimit("POST", "/channels/"+dm+"/messages", 2.5)
	start := time.Now()
	_, err := h.a.Send(ctx, out(dm, "hi"))
	var rl *bridge.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 2500*time.Millisecond {
		t.Fatalf("Send on 429 = %v, want RateLimited 2.5s", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("Send slept on the 429")
	}
	if _, err := h.a.Send(ctx, out(dm, "hi again")); err != nil {
		t.Errorf("after the 429: %v", err)
	}

	h.srv.CloseDMs(alice)
	_, err = h.a.Send(ctx, out(dm, "are you there?"))
	var perm *bridge.PermanentError
	if !errors.As(err, &perm) || !perm.Unreachable {
		t.Fatalf("Send to closed DMs = %v, want Unreachable", err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("error leaks token: %v", err)
	}
	bobDM := h.srv.DMChannel(bob)
	h.srv.Fail("POST", "/channels/"+bobDM+"/messages", 500, 0, "Internal Server Error")
	_, err = h.a.Send(ctx, out(bobDM, "x"))
	if err == nil || errors.As(err, &perm) || errors.As(err, &rl) {
		t.Errorf("Send on 500 = %v, want a transient error", err)
	}
	if _, err = h.a.Send(ctx, out("", "x")); !errors.As(err, &perm) {
		t.Errorf("bad chat: %v", err)
	}
}

func TestCatchUpAfterRestart(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	srv.AddUser(alice, "alice", "")
	in := newInbox()
	h := start(t, srv, newAdapter(t, srv, "dm"), in)
	srv.UserSendsDM(alice, "before")
	waitMsgs(t, in, 1)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	// While the bridge is down.
	for _, s := range []string{"missed 1", "missed 2", "missed 3"} {
		srv.UserSendsDM(alice, s, discordtest.Offline())
	}
	// A new process: it only has what the inbox stored.
	start(t, srv, newAdapter(t, srv, "dm"), in)
	srv.UserSendsDM(alice, "live")
	got := waitMsgs(t, in, 5)
	var texts []string
	for _, m := range got {
		texts = append(texts, m.Text)
	}
	if strings.Join(texts, "|") != "before|missed 1|missed 2|missed 3|live" {
		t.Errorf("delivered %q", texts)
	}
}

func TestGatewayDropResumesWithoutLoss(t *testing.T) {
	h := dmSetup(t)
	h.srv.UserSendsDM(alice, "one")
	waitMsgs(t, h.in, 1)
	h.srv.DropConnections()
	if err := h.waitUnhealthy(t); err == nil {
		t.Fatal("health did not reflect the drop")
	}
	h.srv.UserSendsDM(alice, "two") // dispatched while the socket is down: replayed on RESUME
	h.waitHealthy(t)
	h.srv.UserSendsDM(alice, "three")
	got := waitMsgs(t, h.in, 3)
	if got[1].Text != "two" || got[2].Text != "three" {
		t.Errorf("after resume: %+v", got)
	}
	if s := h.srv.Stats(); s.Identifies != 1 || s.Resumes != 1 {
		t.Errorf("identifies %d resumes %d, want 1 and 1", s.Identifies, s.Resumes)
	}

	// op 7: reconnect and resume at once.
	h.srv.SendReconnect()
	h.srv.WaitFor(t, "second resume", func() bool { return h.srv.StatsLocked().Resumes == 2 })
	// op 9 not resumable: identify afresh.
	h.srv.InvalidateSession(false)
	h.srv.WaitFor(t, "re-identify", func() bool { return h.srv.StatsLocked().Identifies == 2 })
	h.waitHealthy(t)
	h.srv.UserSendsDM(alice, "four")
	waitFor(t, h.in, "four", func(s bridgetest.Snapshot) bool { return len(s.Messages()) == 4 && s.Messages()[3].Text == "four" })
}

func TestZombieAndSilentGatewaysAreReplaced(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	srv.SetHeartbeatInterval(30 * time.Millisecond)
	a := newAdapter(t, srv, "dm")
	// Short enough for the silent-HELLO phase below; set before Run, which reads it.
	a.helloTimeout = 200 * time.Millisecond
	h := start(t, srv, a, newInbox())
	srv.WaitFor(t, "heartbeats", func() bool { return srv.StatsLocked().Heartbeats >= 2 })

	srv.SetHeartbeatACKs(false)
	if err := h.waitUnhealthy(t); !strings.Contains(err.Error(), "heartbeat") {
		t.Errorf("health = %v, want a heartbeat problem", err)
	}
	srv.SetHeartbeatACKs(true)
	h.waitHealthy(t)
	if s := srv.Stats(); s.Resumes < 1 {
		t.Errorf("zombie connection was not resumed: %+v", s)
	}

	srv.SetSilentHello(true)
	srv.DropConnections()
	if err := h.waitUnhealthy(t); err == nil {
		t.Fatal("no health error")
	}
	srv.WaitFor(t, "redial after a silent gateway", func() bool { return srv.StatsLocked().Dials >= 4 })
	if err := h.a.Health(); err == nil || !strings.Contains(err.Error(), "HELLO") && !strings.Contains(err.Error(), "gateway") {
		t.Errorf("health = %v", err)
	}
	srv.SetSilentHello(false)
	h.waitHealthy(t)
}

func TestBadTokenStopsRunWithoutLeakingIt(t *testing.T) {
	srv := discordtest.NewServer(t, "another-token")
	a := newAdapter(t, srv, "dm")
	err := runOnce(a)
	if err == nil {
		t.Fatal("Run with a bad token returned nil")
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("error leaks the token: %v", err)
	}
	if a.Health() == nil || strings.Contains(a.Health().Error(), testToken) {
		t.Errorf("health = %v", a.Health())
	}
}

func TestSupportChannelMode(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	srv.AddUser(alice, "alice", "Alice")
	srv.AddUser(bob, "bob", "")
	srv.AddTextChannel(support)
	in := newInbox()
	a := newAdapter(t, srv, "support")
	if a.Intents()&intentMessageContent == 0 {
		t.Fatal("support mode must ask for the Message Content intent")
	}
	h := start(t, srv, a, in)
	ctx := context.Background()

	// The panel is posted once, and kept across restarts.
	srv.WaitFor(t, "panel", func() bool { return len(srv.MessagesLocked(support)) == 1 })
	panel := srv.Messages(support)[0]
	if !strings.Contains(string(panel.Components), customOpenTicket) {
		t.Fatalf("panel components %s", panel.Components)
	}

	// Pressing the button opens a private thread with the user and the staff role in it.
	iid := srv.UserPresses(alice, support, panel.ID, customOpenTicket)
	waitFor(t, in, "move to thread", func(s bridgetest.Snapshot) bool { return len(s.Moves()) == 1 })
	thread := in.Moves()[0].Chat.ID
	ch, ok := srv.Channel(thread)
	if !ok || ch.Type != 12 || ch.ParentID != support || !ch.Members[alice] || ch.Invitable {
		t.Fatalf("thread %+v", ch)
	}
	welcome := srv.Messages(thread)[0]
	if !strings.Contains(welcome.Content, "<@&"+staff+">") || !strings.Contains(string(welcome.AllowedMentions), staff) {
		t.Errorf("staff role not added: %+v", welcome)
	}
	srv.WaitFor(t, "ephemeral answer", func() bool {
		rs := srv.InteractionResponsesLocked(iid)
		if len(rs) != 2 || rs[0].Type != 5 {
			return false
		}
		var answer struct{ Content string }
		_ = json.Unmarshal(rs[1].Body, &answer)
		return strings.Contains(answer.Content, "<#"+thread+">")
	})
	// A second press finds the same thread.
	srv.UserPresses(alice, support, panel.ID, customOpenTicket)
	waitFor(t, in, "second move", func(s bridgetest.Snapshot) bool { return len(s.Moves()) == 2 })
	if in.Moves()[1].Chat.ID != thread || len(srv.Threads(support)) != 1 {
		t.Errorf("second press opened another thread")
	}

	// The user's messages in the thread are bridged; staff chatter there is not.
	srv.UserSendsIn(bob, thread, "staff note")
	srv.UserSendsIn(alice, thread, "my printer is on fire")
	got := waitMsgs(t, in, 1)
	if got[0].Text != "my printer is on fire" || got[0].Chat.ID != thread || got[0].User.ID != alice {
		t.Errorf("thread message %+v", got[0])
	}
	srv.UserTypes(alice, thread)
	waitFor(t, in, "typing in thread", func(s bridgetest.Snapshot) bool { return len(s.Typings()) == 1 })

	// Agent replies go into the thread.
	if _, err := a.Send(ctx, bridge.Outbound{User: bridge.UserRef{Platform: Platform, ID: alice}, Chat: bridge.ChatRef{Platform: Platform, ID: thread}, Text: "on it"}); err != nil {
		t.Fatal(err)
	}

	// Bob's DMs are closed: his answer opens his thread, the core is told, the message lands there.
	dm := srv.DMChannel(bob)
	srv.CloseDMs(bob)
	ids, err := a.Send(ctx, bridge.Outbound{User: bridge.UserRef{Platform: Platform, ID: bob}, Chat: bridge.ChatRef{Platform: Platform, ID: dm}, Text: "hello bob"})
	if err != nil || len(ids) != 1 {
		t.Fatalf("Send to closed DMs in support mode = %v, %v", ids, err)
	}
	waitFor(t, in, "bob moved", func(s bridgetest.Snapshot) bool { return len(s.Moves()) == 3 })
	bobThread := in.Moves()[2].Chat.ID
	msgs := srv.Messages(bobThread)
	if msgs[len(msgs)-1].Content != "hello bob" {
		t.Errorf("bob's thread: %+v", msgs)
	}

	// After a restart the panel is reused and the thread's missed messages are caught up.
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	srv.UserSendsIn(alice, thread, "still burning", discordtest.Offline())
	start(t, srv, newAdapter(t, srv, "support"), in)
	waitFor(t, in, "thread catch-up", func(s bridgetest.Snapshot) bool {
		return len(s.Messages()) == 2 && s.Messages()[1].Text == "still burning"
	})
	if n := len(srv.Messages(support)); n != 1 {
		t.Errorf("%d panel messages after restart, want 1", n)
	}
}

func TestSupportModeNeedsMessageContentIntent(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	srv.AllowMessageContent(false)
	err := runOnce(newAdapter(t, srv, "support"))
	if err == nil || !strings.Contains(err.Error(), "Message Content intent") {
		t.Fatalf("Run = %v, want a message naming the Message Content intent", err)
	}
}

func TestStoreFailureIsRetriedInOrder(t *testing.T) {
	h := dmSetup(t)
	h.in.FailDelivers(2)
	h.srv.UserSendsDM(alice, "a")
	h.srv.UserSendsDM(alice, "b")
	got := waitMsgs(t, h.in, 2)
	if got[0].Text != "a" || got[1].Text != "b" {
		t.Errorf("order after store failures: %q %q", got[0].Text, got[1].Text)
	}
}

func TestNewRejectsBadConfigWithoutEchoingToken(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Token: "has space " + testToken},
		{Token: testToken, APIURL: "ftp://x"},
		{Token: testToken, SupportChannelID: "abc"},
		{Token: testToken, StaffRoleID: "1"},
	} {
		_, err := New(cfg, newInbox(), nil)
		if err == nil {
			t.Errorf("New(%v) accepted", cfg)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error leaks token: %v", err)
		}
	}
	cfg := Config{Token: testToken}
	if s := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg); strings.Contains(s, "SECRET") {
		t.Errorf("a printed Config leaks the token: %s", s)
	}
	if u, _ := normalizeAPIURL("http://proxy:8080"); u != "http://proxy:8080/api/v10" {
		t.Errorf("bare host → %s", u)
	}
	if u, _ := normalizeAPIURL("http://proxy:8080/discord/api/v10/"); u != "http://proxy:8080/discord/api/v10" {
		t.Errorf("prefix → %s", u)
	}
}

func TestGetMeNamesTheBotAndRejectsABadToken(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	a := newAdapter(t, srv, "dm")
	me, err := a.GetMe(t.Context())
	if err != nil || me != "onechat" {
		t.Fatalf("GetMe = %q, %v; want the bot's username", me, err)
	}
	bad, err := New(Config{Token: "not-the-token", APIURL: srv.APIURL, CDNURL: srv.CDNURL}, newInbox(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.GetMe(t.Context()); err == nil || strings.Contains(err.Error(), "not-the-token") {
		t.Errorf("GetMe with a bad token = %v, want an error without the token", err)
	}
}

// runOnce runs a with a fresh inbox until Run returns by itself.
func runOnce(a *Adapter) error {
	a.host = newInbox()
	return a.Run(context.Background())
}

func TestUsersAreAnsweredInTheirClientsLanguage(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	srv.AddUser(alice, "alice", "Alicia")
	srv.SetUserLocale(alice, "es-ES")
	srv.AddTextChannel(support)
	in := newInbox()
	cat, err := texts.New(texts.Options{DefaultLanguage: "fr"})
	if err != nil {
		t.Fatal(err)
	}
	in.SetTexts(cat)
	a := newAdapter(t, srv, "support")
	start(t, srv, a, in)
	ctx := context.Background()

	// The panel is for everyone: the default language.
	srv.WaitFor(t, "panel", func() bool { return len(srv.MessagesLocked(support)) == 1 })
	panel := srv.Messages(support)[0]
	if panel.Content != cat.Text("fr", texts.PanelText, nil) || !strings.Contains(string(panel.Components), cat.Text("fr", texts.PanelButton, nil)) {
		t.Errorf("panel %q %s, want French", panel.Content, panel.Components)
	}

	// Alice's client is Spanish: the thread's welcome and the answer to her press are Spanish.
	iid := srv.UserPresses(alice, support, panel.ID, customOpenTicket)
	waitFor(t, in, "move to thread", func(s bridgetest.Snapshot) bool { return len(s.Moves()) == 1 })
	thread := in.Moves()[0].Chat.ID
	if welcome := srv.Messages(thread)[0]; !strings.HasPrefix(welcome.Content, cat.Text("es", texts.TicketWelcome, texts.Vars{"user": "<@" + alice + ">"})) {
		t.Errorf("welcome %q, want Spanish", welcome.Content)
	}
	if ch, _ := srv.Channel(thread); ch.Name != "Soporte · Alicia" {
		t.Errorf("thread name %q, want Spanish", ch.Name)
	}
	want := cat.Text("es", texts.TicketOpened, texts.Vars{"thread": "<#" + thread + ">"})
	srv.WaitFor(t, "ephemeral answer", func() bool {
		rs := srv.InteractionResponsesLocked(iid)
		if len(rs) != 2 {
			return false
		}
		var answer struct{ Content string }
		_ = json.Unmarshal(rs[1].Body, &answer)
		return answer.Content == want
	})

	// Her answer to a survey carries her language to the core; a survey the agent sent without
	// a text asks in the language the core remembers.
	aliceRef := bridge.UserRef{Platform: Platform, ID: alice}
	threadRef := bridge.ChatRef{Platform: Platform, ID: thread}
	if _, err := a.Send(ctx, bridge.Outbound{User: aliceRef, Chat: threadRef, ContentType: "input_csat", MessageID: 7}); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages(thread)
	survey := msgs[len(msgs)-1]
	if survey.Content != cat.Text("fr", texts.CSATPrompt, nil) {
		t.Errorf("survey before the core knows her language: %q, want the default (French)", survey.Content)
	}
	srv.UserPresses(alice, thread, survey.ID, customCSAT+"5")
	got := waitMsgs(t, in, 1)
	if got[0].Language != "es-ES" || got[0].Choice == nil {
		t.Fatalf("press %+v, want a choice in es-ES", got[0])
	}
	if _, err := a.Send(ctx, bridge.Outbound{User: aliceRef, Chat: threadRef, ContentType: "input_csat", MessageID: 8}); err != nil {
		t.Fatal(err)
	}
	msgs = srv.Messages(thread)
	if survey := msgs[len(msgs)-1]; survey.Content != cat.Text("es", texts.CSATPrompt, nil) {
		t.Errorf("survey %q, want Spanish", survey.Content)
	}
}

// TestNotesSpeakTheAgentLanguage: what the adapter writes for agents (a sticker it cannot pass
// on, a file over the size the bridge passes on, a file Discord would not take from the bot) is
// in BRIDGE_AGENT_LANGUAGE; what the user reads in the file's place stays in theirs.
func TestNotesSpeakTheAgentLanguage(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	srv.AddUser(alice, "alice", "Alice A.")
	in := newInbox()
	cat, err := texts.New(texts.Options{AgentLanguage: "es"})
	if err != nil {
		t.Fatal(err)
	}
	in.SetTexts(cat)
	a := newAdapter(t, srv, "dm")
	a.maxDownload = 8
	h := start(t, srv, a, in)
	first := h.srv.UserSendsDM(alice, "", discordtest.WithSticker("930000000000000002", "dance", 3),
		discordtest.WithAttachment("big.bin", "application/octet-stream", []byte("sixteen bytes!!!")))
	got := waitMsgs(t, h.in, 1)
	want := []string{"Pegatina: dance",
		"📎 big.bin (16 bytes) supera los 8 bytes que transfiere el puente; pide al usuario que lo envíe de otra forma"}
	if !slices.Equal(got[0].Notes, want) || len(got[0].Attachments) != 0 {
		t.Errorf("notes %q (files %+v), want %q", got[0].Notes, got[0].Attachments, want)
	}

	m := out(first.ChannelID, "la copia")
	m.Attachments = []bridge.Attachment{{Name: "huge.bin", Size: 1 << 40}}
	_, err = a.Send(context.Background(), m)
	if note := "📎 huge.bin supera lo que Discord permite enviar al bot aquí; envía un enlace en su lugar"; !slices.Equal(leftOut(err), []string{note}) {
		t.Errorf("Send = %v, want the note %q", err, note)
	}
	msgs := h.srv.Messages(first.ChannelID)
	if last := msgs[len(msgs)-1]; !strings.Contains(last.Content, cat.Text("", texts.FileTooLarge, texts.Vars{"name": "huge.bin", "platform": "Discord"})) {
		t.Errorf("the user read %q, want the English line in the file's place", last.Content)
	}
}
