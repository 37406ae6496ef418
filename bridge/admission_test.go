package bridge_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// waitCounted waits until bridge_messages_total{direction="in",result=result} reaches n.
func (h *harness) waitCounted(reg *prometheus.Registry, result string, n float64) {
	h.t.Helper()
	if !poll(ctxT(h.t), func() bool {
		return counterValue(h.t, reg, "bridge_messages_total", "direction", "in", "result", result) >= n
	}) {
		h.t.Fatalf("never counted %v inbound messages as %s (have %v)", n, result,
			counterValue(h.t, reg, "bridge_messages_total", "direction", "in", "result", result))
	}
}

// TestBlockedContactsMessagesAreStoredNotPosted: an agent blocks the contact in OneChat and
// resolves its conversation. With the default policy (a message after a resolve opens a new
// conversation) each later message used to open another conversation (OneChat creates a
// blocked contact's conversations resolved); now they are stored as blocked, no conversation
// is opened, the user gets the blocked notice once, and after an unblock the next message is
// posted again.
func TestBlockedContactsMessagesAreStoredNotPosted(t *testing.T) {
	h := newHarness(t, nil)
	reg := prometheus.NewRegistry()
	h.opts.Metrics = bridge.NewMetrics(reg)
	h.opts.BlockedNotice = bridge.DefaultNotice // the catalogue's, in the user's language (English)
	h.opts.BlockRecheck = 50 * time.Millisecond
	h.start()
	ctx := ctxT(t)

	contact, conv, _ := h.begin(ctx, 3001, "hi")
	h.oc.Block(contact.ID)
	h.oc.Resolve(conv.ID)
	h.waitStatus(ctx, "3001", "resolved")
	for _, text := range []string{"one", "two", "three"} {
		if err := h.adapter.Receive(ctx, userMessage(3001, text)); err != nil {
			t.Fatal(err)
		}
	}
	h.waitCounted(reg, bridge.ResultBlocked, 3)
	if n := len(h.oc.Conversations(contact.ID)); n != 1 {
		t.Errorf("%d conversations, want 1: a blocked contact's messages must not open any", n)
	}
	if got := h.incoming(conv.ID); len(got) != 1 {
		t.Errorf("conversation has %q, want only the message from before the block", got)
	}
	sent, err := h.adapter.WaitSent(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 1 || sent[0].Text != texts.Builtin().Text("en", texts.Blocked, nil) {
		t.Errorf("user was sent %q, want the blocked notice once", sentTexts(sent))
	}

	// Unblocked: the next message is posted (in a new conversation, by the policy); what was
	// stored while blocked stays unposted.
	// The unblock is seen within BlockRecheck: until then a message is still stored as
	// blocked, so write until one gets through, each after the last was handled.
	h.oc.Unblock(contact.ID)
	for blocked := 3.0; ; blocked++ {
		if err := h.adapter.Receive(ctx, userMessage(3001, "sorry")); err != nil {
			t.Fatal(err)
		}
		through := false
		if !poll(ctx, func() bool {
			through = len(h.oc.Conversations(contact.ID)) == 2
			return through || counterValue(t, reg, "bridge_messages_total", "direction", "in", "result", bridge.ResultBlocked) > blocked
		}) {
			t.Fatal("message after the unblock neither posted nor blocked")
		}
		if through {
			break
		}
	}
	_, conv2 := h.waitConversation(ctx, "telegram:3001", 2)
	h.waitIncoming(ctx, conv2.ID, "sorry")
	if got := h.incoming(conv.ID); len(got) != 1 {
		t.Errorf("old conversation has %q after the unblock, want the messages stored while blocked left out", got)
	}
	if n := len(h.adapter.Sent()); n != 1 {
		t.Errorf("%d messages sent to the user, want only the one notice", n)
	}
}

// TestBlocklistFileIsReadAgainWithoutRestart: a user named in BRIDGE_BLOCKLIST_FILE gets no
// contact and their messages are stored as blocked; removed from the file, their next message
// is posted.
func TestBlocklistFileIsReadAgainWithoutRestart(t *testing.T) {
	h := newHarness(t, nil)
	reg := prometheus.NewRegistry()
	h.opts.Metrics = bridge.NewMetrics(reg)
	file := filepath.Join(t.TempDir(), "blocklist")
	if err := os.WriteFile(file, []byte("# spammers\ntelegram:3002\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.opts.BlocklistFile = file
	h.opts.Blocklist = []string{"telegram:3003"}
	h.opts.BlocklistReread = 10 * time.Millisecond
	h.start()
	ctx := ctxT(t)

	for _, uid := range []int64{3002, 3003, 3002} {
		if err := h.adapter.Receive(ctx, userMessage(uid, "spam")); err != nil {
			t.Fatal(err)
		}
	}
	h.waitCounted(reg, bridge.ResultBlocked, 3)
	for _, id := range []string{"telegram:3002", "telegram:3003"} {
		if _, ok := h.oc.ContactByIdentifier(id); ok {
			t.Errorf("a contact was created for %s, which the blocklist names", id)
		}
	}
	if err := os.WriteFile(file, []byte("# nobody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The file is read again within BlocklistReread; until then messages are still blocked, so
	// keep writing until one is posted. Nothing is posted twice or lost after that.
	if !poll(ctx, func() bool {
		if err := h.adapter.Receive(ctx, userMessage(3002, "hello")); err != nil {
			t.Fatal(err)
		}
		_, ok := h.oc.ContactByIdentifier("telegram:3002")
		return ok
	}) {
		t.Fatal("the user removed from the blocklist file never got through")
	}
	h.waitConversation(ctx, "telegram:3002", 1)
}

// TestNewConversationsPerDayAreBounded: past NewConversationsPerDay, a message after a
// resolve goes to the user's latest conversation (reopening it) instead of opening another.
func TestNewConversationsPerDayAreBounded(t *testing.T) {
	h := newHarness(t, nil)
	h.opts.NewConversationsPerDay = 2
	h.start()
	ctx := ctxT(t)

	_, conv1, _ := h.begin(ctx, 3004, "a")
	h.oc.Resolve(conv1.ID)
	h.waitStatus(ctx, "3004", "resolved")
	if err := h.adapter.Receive(ctx, userMessage(3004, "b")); err != nil {
		t.Fatal(err)
	}
	_, conv2 := h.waitConversation(ctx, "telegram:3004", 2)
	h.waitIncoming(ctx, conv2.ID, "b")
	for _, text := range []string{"c", "d"} {
		h.oc.Resolve(conv2.ID)
		h.waitStatus(ctx, "3004", "resolved")
		if err := h.adapter.Receive(ctx, userMessage(3004, text)); err != nil {
			t.Fatal(err)
		}
		h.waitStatus(ctx, "3004", "open") // posting reopened it
	}
	h.waitIncoming(ctx, conv2.ID, "b", "c", "d")
	contact, _ := h.oc.ContactByIdentifier("telegram:3004")
	if n := len(h.oc.Conversations(contact.ID)); n != 2 {
		t.Errorf("%d conversations, want 2 (the day's bound)", n)
	}
}

// TestMessagesBeyondUserMaxPendingAreHeldAndTheUserToldOnce: ten messages from one user
// arrive while OneChat holds the first post; with UserMaxPending 3, seven are counted as held
// and the user is told once to slow down. Nothing is lost or reordered: all ten are posted,
// in order, once OneChat answers.
func TestMessagesBeyondUserMaxPendingAreHeldAndTheUserToldOnce(t *testing.T) {
	h := newHarness(t, nil)
	reg := prometheus.NewRegistry()
	h.opts.Metrics = bridge.NewMetrics(reg)
	h.opts.UserMaxPending = 3
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	h.interceptPosts("/messages", func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool {
		<-gate
		return false
	})
	h.start()
	ctx := ctxT(t)

	// Another user's two messages in the same delivery, first: counted on their own, neither
	// held nor told.
	burst := []bridge.Inbound{userMessage(3006, "other 1")}
	var want []string
	for i := range 10 {
		text := fmt.Sprintf("m%d", i)
		m := userMessage(3005, text)
		m.Language = "es-MX" // the notice is in the user's language
		burst = append(burst, m)
		want = append(want, text)
	}
	burst = append(burst, userMessage(3006, "other 2"))
	if err := h.adapter.Receive(ctx, burst...); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, reg, "bridge_messages_total", "direction", "in", "result", bridge.ResultHeld); got != 7 {
		t.Errorf("held = %v, want 7", got)
	}
	release()
	_, conv := h.waitConversation(ctx, "telegram:3005", 1)
	h.waitIncoming(ctx, conv.ID, want...)
	_, other := h.waitConversation(ctx, "telegram:3006", 1)
	h.waitIncoming(ctx, other.ID, "other 1", "other 2")
	sent, err := h.adapter.WaitSent(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 1 || sent[0].Text != texts.Builtin().Text("es", texts.SlowDown, nil) {
		t.Errorf("user was sent %q, want one slow-down notice", sentTexts(sent))
	}
	// Under the bound again: a message is neither held nor answered with a notice.
	if err := h.adapter.Receive(ctx, userMessage(3005, "calm")); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, append(want, "calm")...)
	if got := counterValue(t, reg, "bridge_messages_total", "direction", "in", "result", bridge.ResultHeld); got != 7 {
		t.Errorf("held = %v after the backlog drained, want still 7", got)
	}
	if n := len(h.adapter.Sent()); n != 1 {
		t.Errorf("%d notices, want 1", n)
	}
}
