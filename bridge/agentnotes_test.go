package bridge_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
	"github.com/onechat/onechat-bridge/texts"
)

// withApplication gives the core an Application API client with the fake's token (or token).
func (h *harness) withApplication(token string) {
	if token == "" {
		token = h.oc.AccessToken()
	}
	h.opts.Application = h.opts.OneChat.Application(h.oc.AccountID(), token)
}

// notes returns the contents of a conversation's private notes, oldest first.
func (h *harness) notes(convID int64) []string {
	var out []string
	for _, m := range h.oc.PrivateNotes(convID) {
		out = append(out, m.Content)
	}
	return out
}

func TestFailedDeliveriesReachAgentsAsPrivateNotes(t *testing.T) {
	h := newHarness(t, nil)
	// The conversation OneChat opens already has a label and an attribute (an automation's):
	// the bridge adds its own and keeps them.
	h.afterConversationCreated(func(r *http.Request, conversationID int64, n int) {
		h.oc.SetLabels(conversationID, "vip")
		h.oc.SetConversationAttributes(conversationID, map[string]any{"priority": "high"})
	})
	h.withApplication("")
	h.adapter.ChatLinkFunc = func(u bridge.UserRef, username string, chat bridge.ChatRef) string {
		return "https://t.me/" + username
	}
	var unreachable atomic.Bool
	h.adapter.SendFunc = func(ctx context.Context, m bridge.Outbound) error {
		switch {
		case unreachable.Load():
			return bridge.Unreachable("user blocked the bot", nil)
		case m.Text == "the contract":
			return bridge.Permanent("attachment contract.pdf cannot be read", nil)
		}
		return nil
	}
	h.adapter.LeftOutFunc = func(m bridge.Outbound) []string {
		if m.Text == "here is the backup" {
			return []string{"📎 backup.zip (73 MB) is larger than the 50 MB the platform lets a bot send; send a link instead"}
		}
		return nil
	}
	h.adapter.ChangeFunc = func(ctx context.Context, m bridge.Outbound) error {
		if m.Op == bridge.OpDelete {
			return bridge.Permanent("the message is too old to delete", nil)
		}
		return nil
	}
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 3001, "hello")

	// The new conversation is labelled and described for routing, without losing what it had.
	err := h.oc.Wait(ctx, func() bool {
		c, _ := h.oc.Conversation(conv.ID)
		return slices.Equal(h.oc.Labels(conv.ID), []string{"telegram", "vip"}) && len(c.CustomAttributes) == 3
	})
	c, _ := h.oc.Conversation(conv.ID)
	if err != nil || c.CustomAttributes["bridge_platform"] != "telegram" || c.CustomAttributes["bridge_chat_link"] != "https://t.me/alice" ||
		c.CustomAttributes["priority"] != "high" {
		t.Fatalf("labels %v, attributes %v: %v", h.oc.Labels(conv.ID), c.CustomAttributes, err)
	}

	partial := h.oc.AgentReply(conv.ID, "here is the backup")
	h.oc.AgentReply(conv.ID, "the contract")
	want := []string{
		"⚠️ Part of this message did not reach the user:\n📎 backup.zip (73 MB) is larger than the 50 MB the platform lets a bot send; send a link instead\n> here is the backup",
		"⚠️ This message did not reach the user: attachment contract.pdf cannot be read\n> the contract",
	}
	if err := h.oc.Wait(ctx, func() bool { return len(h.notes(conv.ID)) >= 2 }); err != nil {
		t.Fatalf("notes %q: %v", h.notes(conv.ID), err)
	}
	if got := h.notes(conv.ID); !slices.Equal(got, want) {
		t.Fatalf("notes\n%q\nwant\n%q", got, want)
	}
	// The message delivered in part counts as delivered: a delete of it reaches the platform,
	// which refuses it.
	h.waitLinked(ctx, bridge.ChatRef{Platform: "telegram", ID: "3001"}, "sent-1")
	h.oc.DeleteMessage(partial.ID)
	want = append(want, "⚠️ Your deletion of this message did not reach the user, who still sees it: the message is too old to delete\n> here is the backup")
	if err := h.oc.Wait(ctx, func() bool { return len(h.notes(conv.ID)) >= 3 }); err != nil || !slices.Equal(h.notes(conv.ID), want) {
		t.Fatalf("notes %q: %v", h.notes(conv.ID), err)
	}
	unreachable.Store(true)
	h.oc.AgentReply(conv.ID, "are you there?")
	want = append(want, "⚠️ This message did not reach the user: the bridge cannot reach them on telegram (user blocked the bot)\n> are you there?")
	if err := h.oc.Wait(ctx, func() bool { return len(h.notes(conv.ID)) >= 4 }); err != nil || !slices.Equal(h.notes(conv.ID), want) {
		t.Fatalf("notes %q: %v", h.notes(conv.ID), err)
	}
	// A private note is for agents only: none reached the platform.
	for _, m := range h.adapter.Sent() {
		if strings.Contains(m.Text, "⚠️") {
			t.Errorf("a private note was sent to the user: %q", m.Text)
		}
	}
	if got := sentTexts(h.adapter.Sent()); !slices.Equal(got, []string{"here is the backup"}) {
		t.Errorf("sent %q, want only the backup message", got)
	}
}

func TestWithoutTokenTheLastFailureIsOnTheContact(t *testing.T) {
	for _, tc := range []struct {
		name  string
		token string // "" runs without the Application API
	}{
		{name: "no token"},
		{name: "refused token", token: "not-the-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			if tc.token != "" {
				h.withApplication(tc.token)
			}
			h.adapter.SendFunc = func(ctx context.Context, m bridge.Outbound) error {
				return bridge.Permanent("Bad Request: file is too big", nil)
			}
			h.start()
			ctx := ctxT(t)
			contact, conv, _ := h.begin(ctx, 3002, "hello")
			before := time.Now().UTC().Truncate(time.Second)
			h.oc.AgentReply(conv.ID, "the invoice")
			attr := func(k string) any {
				c, _ := h.oc.ContactByID(contact.ID)
				return c.CustomAttributes[k]
			}
			if err := h.oc.Wait(ctx, func() bool { return attr("bridge_last_failure") != nil }); err != nil {
				t.Fatal(err)
			}
			if got := attr("bridge_last_failure"); got != "⚠️ This message did not reach the user: Bad Request: file is too big\n> the invoice" {
				t.Errorf("bridge_last_failure %q", got)
			}
			at, err := time.Parse(time.RFC3339, attr("bridge_last_failure_at").(string))
			if err != nil || at.Before(before) {
				t.Errorf("bridge_last_failure_at %v (%v), want a time after %v", attr("bridge_last_failure_at"), err, before)
			}
			if n := h.notes(conv.ID); len(n) != 0 {
				t.Errorf("private notes %q without a valid token", n)
			}
			if l := h.oc.Labels(conv.ID); len(l) != 0 {
				t.Errorf("labels %q without a valid token", l)
			}
		})
	}
}

func TestAgentFileTheBridgeCannotFetchIsNamedToAgents(t *testing.T) {
	h := newHarness(t, nil)
	storage, _ := countingServer(t, http.StatusServiceUnavailable)
	h.opts.OneChat = onechat.NewClient(h.oc.URL(), h.oc.InboxIdentifier(), &onechat.Options{
		HMACToken: h.oc.HMACToken(), StorageOrigins: []string{storage.URL}})
	h.withApplication("")
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 3003, "the report?")
	h.oc.PostAgentMessage(conv.ID, onechattest.AgentMessage{Content: "Attached", Attachments: []onechattest.File{
		{Filename: "report.pdf", ContentType: "application/pdf", Data: []byte("x"), RedirectTo: storage.URL + "/bucket/report.pdf"},
	}})
	want := "⚠️ Part of this message did not reach the user:\n📎 report.pdf was left out: its download from OneChat failed 3 times\n> Attached"
	if err := h.oc.Wait(ctx, func() bool { return len(h.notes(conv.ID)) > 0 }); err != nil || !slices.Equal(h.notes(conv.ID), []string{want}) {
		t.Fatalf("notes %q, want %q: %v", h.notes(conv.ID), want, err)
	}
}

// TestFailureNotesUseTheAgentLanguage: a private note about an agent message that did not reach
// the user is written in BRIDGE_AGENT_LANGUAGE.
func TestFailureNotesUseTheAgentLanguage(t *testing.T) {
	h := newHarness(t, nil)
	cat, err := texts.New(texts.Options{AgentLanguage: "es"})
	if err != nil {
		t.Fatal(err)
	}
	h.opts.Texts = cat
	h.withApplication("")
	h.adapter.SendFunc = func(ctx context.Context, m bridge.Outbound) error {
		if m.Text == "el contrato" {
			return bridge.Permanent("contract.pdf cannot be read", nil)
		}
		return nil
	}
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 2104, "hola")
	h.oc.AgentReply(conv.ID, "el contrato")
	if err := h.oc.Wait(ctx, func() bool { return len(h.notes(conv.ID)) >= 1 }); err != nil {
		t.Fatalf("no private note: %v", err)
	}
	want := cat.Agent(texts.AgentNotDelivered, texts.Vars{"reason": "contract.pdf cannot be read"})
	if got := h.notes(conv.ID)[0]; !strings.HasPrefix(got, want) || !strings.HasPrefix(got, "⚠️ Este mensaje no llegó") {
		t.Errorf("note %q, want it to start with the Spanish %q", got, want)
	}
}

// TestUserIsToldOfFilesLeftOutInTheirLanguage: when the platform would not take a file and the
// message does not say so (bridge.LeftOut), the user gets one line after the message, in their
// own language, while agents get their note in BRIDGE_AGENT_LANGUAGE. A failure that is
// retried tells the user nothing, and a message the adapter marked in the file's place
// (bridge.Partial) gets no line.
func TestUserIsToldOfFilesLeftOutInTheirLanguage(t *testing.T) {
	h := newHarness(t, nil)
	cat, err := texts.New(texts.Options{AgentLanguage: "de"})
	if err != nil {
		t.Fatal(err)
	}
	h.opts.Texts = cat
	h.withApplication("")
	h.adapter.PartsPerMessage = 2
	var failedOnce atomic.Bool
	h.adapter.PartFunc = func(ctx context.Context, m bridge.Outbound, part int) error {
		if m.Text == "la copia" && part == 1 && failedOnce.CompareAndSwap(false, true) {
			return errors.New("connection reset") // retried: the second part goes out later
		}
		return nil
	}
	h.adapter.LeftOutFunc = func(m bridge.Outbound) []string {
		switch m.Text {
		case "la copia", "las dos copias":
			return []string{"📎 the note for agents"}
		case "ya te lo dije":
			return []string{"📎 the adapter told the user in the message"}
		}
		return nil
	}
	h.adapter.UntoldFunc = func(m bridge.Outbound) []bridge.LeftOutFile {
		switch m.Text {
		case "la copia":
			return []bridge.LeftOutFile{{Name: "backup.zip", Size: 73 << 20}}
		case "las dos copias":
			return []bridge.LeftOutFile{{Name: "a.iso", Size: 60 << 20}, {Name: "b\u202e.iso"}}
		}
		return nil
	}
	h.start()
	ctx := ctxT(t)
	m := userMessage(2105, "hola")
	m.Language = "es-MX"
	if err := h.adapter.Receive(ctx, m); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:2105", 1)
	h.waitIncoming(ctx, conv.ID, "hola")
	h.waitSubscribed(ctx, contact.ID)

	h.oc.AgentReply(conv.ID, "la copia")
	h.oc.AgentReply(conv.ID, "ya te lo dije")
	h.oc.AgentReply(conv.ID, "las dos copias")
	one := "📎 No se pudo enviar aquí un archivo (backup.zip, 73.0 MB); nuestro equipo ya está avisado."
	two := "📎 No se pudieron enviar aquí algunos archivos (a.iso, 60.0 MB; b.iso); nuestro equipo ya está avisado."
	want := []string{"la copia", "ya te lo dije", "las dos copias", one, two}
	sent, err := h.adapter.WaitSent(ctx, len(want))
	if err != nil {
		t.Fatalf("sent %q: %v", sentTexts(h.adapter.Sent()), err)
	}
	// Each line follows its message; it may come after messages queued for the chat before it.
	got := sentTexts(sent)
	if !slices.Equal(slices.DeleteFunc(slices.Clone(got), func(s string) bool { return s == one || s == two }), want[:3]) ||
		slices.Index(got, one) < slices.Index(got, "la copia") || slices.Index(got, two) < slices.Index(got, "las dos copias") ||
		!slices.Contains(got, one) || !slices.Contains(got, two) {
		t.Fatalf("sent\n%q\nwant the messages in order, each line once after its message:\n%q", got, want)
	}
	if !failedOnce.Load() {
		t.Fatal("the first attempt did not fail: the test proves nothing about retries")
	}
	if err := h.oc.Wait(ctx, func() bool { return len(h.notes(conv.ID)) >= 3 }); err != nil {
		t.Fatalf("notes %q: %v", h.notes(conv.ID), err)
	}
	for _, n := range h.notes(conv.ID) {
		if !strings.HasPrefix(n, "⚠️ Ein Teil dieser Nachricht hat die Person nicht erreicht:") {
			t.Errorf("agent note %q is not in German", n)
		}
	}
	// Nothing more follows: the line went once per message, however often it was attempted.
	h.oc.AgentReply(conv.ID, "fin")
	sent, err = h.adapter.WaitSent(ctx, len(want)+1)
	if err != nil || len(sent) != len(want)+1 || sent[len(want)].Text != "fin" {
		t.Fatalf("sent %q after the last line: %v", sentTexts(h.adapter.Sent()), err)
	}
}
