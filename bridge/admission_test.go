package bridge_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onechat/onechat-bridge/bridge"
)

// waitCounted waits until bridge_messages_total{direction="in",result=result} reaches n.
func (h *harness) waitCounted(reg *prometheus.Registry, result string, n float64) {
	h.t.Helper()
	if !pollStore(ctxT(h.t), func() bool {
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
	h.opts.BlockedNotice = "You cannot write to us any more."
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
	if len(sent) != 1 || sent[0].Text != h.opts.BlockedNotice {
		t.Errorf("user was sent %q, want the blocked notice once", sentTexts(sent))
	}

	// Unblocked: the next message is posted (in a new conversation, by the policy); what was
	// stored while blocked stays unposted.
	h.oc.Unblock(contact.ID)
	if err := h.adapter.Receive(ctx, userMessage(3001, "sorry")); err != nil {
		t.Fatal(err)
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
	if !pollStore(ctx, func() bool {
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
