package e2e_test

import (
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// An agent file whose data_url redirects to another port of 127.0.0.1 is never fetched from
// there: the user gets the message with a line saying the file could not be sent, once.
func TestAgentFileRedirectedToLoopbackIsRefusedWithANote(t *testing.T) {
	r := newRig(t)
	var hits atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("internal secrets"))
	}))
	defer internal.Close()
	r.start()
	ctx := testCtx(t)

	r.w.TG.SendText(alice, "Can I have my invoice?")
	contact, conv := r.conversation(ctx, tgIdentifier(alice))
	r.waitIncoming(ctx, conv.ID, "Can I have my invoice?")
	r.waitSubscribed(ctx, contact.ID)

	r.w.OC.PostAgentMessage(conv.ID, onechattest.AgentMessage{Content: "Here it is", Attachments: []onechattest.File{
		{Filename: "invoice.pdf", ContentType: "application/pdf", Data: []byte("%PDF"), RedirectTo: internal.URL + "/admin/dump"},
	}})
	got := r.waitSentTexts(ctx, alice.ID, 1)
	if want := "Here it is\n\n📎 invoice.pdf could not be sent"; got[0] != want {
		t.Errorf("Telegram chat got %q, want %q", got[0], want)
	}
	// One more reply proves the message was not retried behind it.
	r.w.OC.AgentReply(conv.ID, "Anything else?")
	if got := r.waitSentTexts(ctx, alice.ID, 2); got[1] != "Anything else?" {
		t.Errorf("Telegram chat got %q", got)
	}
	for _, s := range r.w.TG.Sent(alice.ID) {
		if s.File != nil {
			t.Errorf("a file reached Telegram: %+v", s)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback address got %d requests", n)
	}
	if !strings.Contains(r.logs.String(), "agent attachment not sent") {
		t.Error("no log line says why the file was not sent")
	}
}

// OneChat refusing a user's upload with 422 keeps the user's text, with a line naming the file.
func TestUploadRefusedWith422KeepsTheText(t *testing.T) {
	r := newRig(t)
	var refused atomic.Int32
	r.w.OCFaults.SetEligible(func(req *http.Request) bool {
		mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
		if req.Method == http.MethodPost && mt == "multipart/form-data" && strings.HasSuffix(req.URL.Path, "/messages") {
			refused.Add(1)
			return true
		}
		return false
	})
	r.w.OCFaults.SetFail(1, http.StatusUnprocessableEntity)
	r.start()
	ctx := testCtx(t)

	r.w.TG.SendFile(alice, "document", telegramtest.File{Name: "scan.pdf", MIME: "application/pdf", Data: []byte("%PDF scan")}, "my scan")
	_, conv := r.conversation(ctx, tgIdentifier(alice))
	msgs := r.waitIncoming(ctx, conv.ID, "my scan\n\n📎 scan.pdf could not be attached: OneChat refused it (422)")
	if len(msgs[0].Attachments) != 0 {
		t.Errorf("attachments %+v", msgs[0].Attachments)
	}
	// The next message goes through: the refused one is done, not retried or failed.
	r.w.TG.SendText(alice, "did you get it?")
	r.waitIncoming(ctx, conv.ID, "my scan\n\n📎 scan.pdf could not be attached: OneChat refused it (422)", "did you get it?")
	if n := refused.Load(); n != 1 {
		t.Errorf("the upload was tried %d times, want once", n)
	}
}
