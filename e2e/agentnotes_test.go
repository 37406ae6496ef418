package e2e_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// With ONECHAT_API_ACCESS_TOKEN, a conversation the bridge opens is labelled and described for
// routing, and an agent's file Telegram refuses (400) becomes a private note in the
// conversation that names the message and the reason; the note never reaches the user, and the
// token never reaches the logs.
func TestTelegramFailedDeliveryBecomesAPrivateNote(t *testing.T) {
	r := newRig(t)
	token := r.w.OC.AccessToken()
	r.env = append(r.env, "ONECHAT_API_ACCESS_TOKEN="+token, "ONECHAT_ACCOUNT_ID=1")
	r.start()
	ctx := testCtx(t)

	r.w.TG.SendText(alice, "Can you send the contract?")
	contact, conv := r.conversation(ctx, tgIdentifier(alice))
	r.waitIncoming(ctx, conv.ID, "Can you send the contract?")
	r.waitSubscribed(ctx, contact.ID)
	err := r.w.OC.Wait(ctx, func() bool {
		c, _ := r.w.OC.Conversation(conv.ID)
		return slices.Equal(r.w.OC.Labels(conv.ID), []string{"telegram"}) && c.CustomAttributes["bridge_chat_link"] != nil
	})
	c, _ := r.w.OC.Conversation(conv.ID)
	if err != nil || c.CustomAttributes["bridge_platform"] != "telegram" || c.CustomAttributes["bridge_chat_link"] != "https://t.me/alice" {
		t.Fatalf("labels %v, attributes %v: %v", r.w.OC.Labels(conv.ID), c.CustomAttributes, err)
	}

	r.w.TGFaults.SetEligible(func(req *http.Request) bool { return strings.HasSuffix(req.URL.Path, "/sendDocument") })
	r.w.TGFaults.SetFail(1, http.StatusBadRequest)
	r.w.OC.PostAgentMessage(conv.ID, onechattest.AgentMessage{Content: "the contract", Attachments: []onechattest.File{
		{Filename: "contract.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.4 contract")},
	}})
	var notes []onechattest.Message
	if err := r.w.OC.Wait(ctx, func() bool { notes = r.w.OC.PrivateNotes(conv.ID); return len(notes) > 0 }); err != nil {
		t.Fatalf("no private note: %v", err)
	}
	if want := "⚠️ This message did not reach the user: Bad Request\n> the contract"; notes[0].Content != want {
		t.Errorf("private note %q, want %q", notes[0].Content, want)
	}
	r.w.TGFaults.Clear()

	// The next reply is the first thing the user gets: the note never went out.
	r.w.OC.AgentReply(conv.ID, "I'll send a link instead.")
	if got := r.waitSentTexts(ctx, alice.ID, 1); !slices.Equal(got, []string{"I'll send a link instead."}) {
		t.Errorf("Telegram chat got %q", got)
	}
	r.stop()
	if strings.Contains(r.logs.String(), token) {
		t.Error("the access token is in the bridge's logs")
	}
}
