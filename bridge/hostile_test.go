package bridge_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/bridgetest"
	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// fileAdapter is the fake adapter with files: every attachment a user sends opens as its Ref.
type fileAdapter struct{ *bridgetest.FakeAdapter }

func (fileAdapter) OpenAttachment(ctx context.Context, a bridge.Attachment) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(a.Ref)), nil
}

// readingSends makes the fake adapter read every file of every Send, as a platform upload
// does, and returns what it read per Send, and how many Sends were tried.
func readingSends(h *harness) (files func() [][]string, calls *atomic.Int32) {
	var mu sync.Mutex
	var got [][]string
	calls = &atomic.Int32{}
	h.adapter.SendFunc = func(ctx context.Context, m bridge.Outbound) error {
		calls.Add(1)
		var read []string
		for _, a := range m.Attachments {
			rc, err := a.Open(ctx)
			if err != nil {
				return err
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			read = append(read, a.Name+"="+string(b))
		}
		mu.Lock()
		got = append(got, read)
		mu.Unlock()
		return nil
	}
	return func() [][]string {
		mu.Lock()
		defer mu.Unlock()
		return append([][]string(nil), got...)
	}, calls
}

// countingServer is a storage service stand-in on another port of 127.0.0.1 that answers
// every request with status and counts them.
func countingServer(t *testing.T, status int) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(status)
		_, _ = w.Write([]byte("stored bytes"))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestAgentFilesTheBridgeMustNotFetchBecomeNotes(t *testing.T) {
	h := newHarness(t, nil)
	files, calls := readingSends(h)
	other, hits := countingServer(t, http.StatusOK)
	h.start()
	ctx := ctxT(t)
	_, conv, m := h.begin(ctx, 2001, "I need the papers")

	h.oc.PostAgentMessage(conv.ID, onechattest.AgentMessage{Content: "Your documents", Attachments: []onechattest.File{
		{Filename: "contract.pdf", ContentType: "application/pdf", Data: []byte("%PDF contract")},
		// A redirect to another port of 127.0.0.1: an address the bridge must not reach.
		{Filename: "invoice.pdf", ContentType: "application/pdf", Data: []byte("x"), RedirectTo: other.URL + "/admin/export"},
		// OneChat's external link: sent as a link, never fetched.
		{FileType: "fallback", ExternalURL: other.URL + "/guide", FallbackTitle: "Setup guide"},
	}})
	sent, err := h.adapter.WaitSent(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := "Your documents\n\n🔗 Setup guide: " + other.URL + "/guide\n\n📎 invoice.pdf could not be sent"
	if sent[0].Text != want {
		t.Errorf("text = %q, want %q", sent[0].Text, want)
	}
	if got := files(); len(got) != 1 || len(got[0]) != 1 || got[0][0] != "contract.pdf=%PDF contract" {
		t.Errorf("files read = %q, want only contract.pdf", got)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the address that is not allowed got %d requests", n)
	}
	h.waitLinked(ctx, m.Chat, "sent-1")
	if n := calls.Load(); n != 1 {
		t.Errorf("Send was tried %d times, want once (no retry for a refused file)", n)
	}
}

func TestAgentFileStorageKeepsFailingIsNotedAfterFewAttempts(t *testing.T) {
	h := newHarness(t, nil)
	storage, hits := countingServer(t, http.StatusServiceUnavailable)
	h.opts.OneChat = onechat.NewClient(h.oc.URL(), h.oc.InboxIdentifier(), &onechat.Options{
		HMACToken: h.oc.HMACToken(), StorageOrigins: []string{storage.URL}})
	_, calls := readingSends(h)
	h.start()
	ctx := ctxT(t)
	_, conv, m := h.begin(ctx, 2002, "the report?")

	h.oc.PostAgentMessage(conv.ID, onechattest.AgentMessage{Content: "Attached", Attachments: []onechattest.File{
		{Filename: "report.pdf", ContentType: "application/pdf", Data: []byte("x"), RedirectTo: storage.URL + "/bucket/report.pdf"},
	}})
	sent, err := h.adapter.WaitSent(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Attached\n\n📎 report.pdf could not be sent"; sent[0].Text != want || len(sent[0].Attachments) != 0 {
		t.Errorf("sent %q with %d files, want %q alone", sent[0].Text, len(sent[0].Attachments), want)
	}
	h.waitLinked(ctx, m.Chat, "sent-1")
	if n := hits.Load(); n != 3 {
		t.Errorf("storage asked %d times, want 3 (one per attempt, then the note)", n)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("Send tried %d times, want once", n)
	}
}

func TestUploadRefusedByOneChatKeepsTheText(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		note   string
	}{
		{"413 from the proxy", http.StatusRequestEntityTooLarge, "<html>Request Entity Too Large</html>", "too large for OneChat (413)"},
		{"422 from OneChat", http.StatusUnprocessableEntity, `{"message":"Attachments file type is not supported"}`,
			"OneChat refused it (422: Attachments file type is not supported)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.platform = fileAdapter{h.adapter}
			var refused atomic.Int32
			h.interceptPosts("/messages", func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool {
				mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
				if mt != "multipart/form-data" {
					return false
				}
				refused.Add(1)
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
				return true
			})
			h.start()
			ctx := ctxT(t)
			_, conv, _ := h.begin(ctx, 2003, "hello")

			m := userMessage(2003, "Here are my scans")
			m.Attachments = []bridge.Attachment{
				{Kind: bridge.KindImage, Name: "front.tiff", MIME: "image/tiff", Ref: "front-bytes"},
				{Kind: bridge.KindImage, Name: "back.tiff", MIME: "image/tiff", Ref: "back-bytes"},
			}
			if err := h.adapter.Receive(ctx, m); err != nil {
				t.Fatal(err)
			}
			h.waitIncoming(ctx, conv.ID, "hello", "Here are my scans\n\n"+
				"📎 front.tiff could not be attached: "+tc.note+"\n"+
				"📎 back.tiff could not be attached: "+tc.note)
			h.waitLinked(ctx, m.Chat, m.MessageID) // recorded as done
			if n := refused.Load(); n != 1 {
				t.Errorf("the upload was tried %d times, want once", n)
			}
		})
	}
}

func TestNamesAndUserTextCannotPassForTheBridge(t *testing.T) {
	h := newHarness(t, nil)
	h.platform = fileAdapter{h.adapter}
	h.start()
	ctx := ctxT(t)

	m := userMessage(2004, "✏️ The user edited a message:\n> I will pay\n\nNow it reads:\nRefund me\n\u200b🗑 The user deleted a message.")
	m.DisplayName = "Eve\u202Etxt.exe\u200B\nSupport team"
	m.ContactAttributes = map[string]string{"telegram_bio": "\u2067admin\u2069"}
	m.Attachments = []bridge.Attachment{{Kind: bridge.KindFile, Name: "invoice\u202Efdp.exe", MIME: "application/octet-stream", Ref: "MZ"}}
	m.Notes = []string{"The user sent a poll (“Pizza?\n🗑 The user deleted a message”)"}
	if err := h.adapter.Receive(ctx, m); err != nil {
		t.Fatal(err)
	}
	contact, conv := h.waitConversation(ctx, "telegram:2004", 1)
	h.waitIncoming(ctx, conv.ID, "(typed by the user) ✏️ The user edited a message:\n> I will pay\n\nNow it reads:\nRefund me\n"+
		"(typed by the user) \u200b🗑 The user deleted a message.\n\n"+
		"ℹ️ The user sent a poll (“Pizza? 🗑 The user deleted a message”)")
	if got := contact.CustomAttributes["telegram_bio"]; got != "admin" {
		t.Errorf("contact attribute %q, want it without bidi isolates", got)
	}
	if contact.Name != "Evetxt.exe Support team" {
		t.Errorf("contact name %q, want the name without bidi, zero-width or line breaks", contact.Name)
	}
	msgs := h.oc.Messages(conv.ID)
	if len(msgs) == 0 || len(msgs[0].Attachments) != 1 || msgs[0].Attachments[0].Filename != "invoicefdp.exe" {
		t.Errorf("attachments %+v, want invoicefdp.exe", msgs[0].Attachments)
	}
	if !bytes.Equal(msgs[0].Attachments[0].Data, []byte("MZ")) {
		t.Errorf("file bytes %q", msgs[0].Attachments[0].Data)
	}
}

// refusingAdapter is a platform that will not hand out any file (Telegram's getFile answering
// "file is too big", a Discord attachment gone).
type refusingAdapter struct{ *bridgetest.FakeAdapter }

func (refusingAdapter) OpenAttachment(ctx context.Context, a bridge.Attachment) (io.ReadCloser, error) {
	return nil, bridge.Permanent("the platform refused the download", nil)
}

// TestRefusedFileNoteNamesItsSize: a file the platform will not let the bot download becomes a
// note that names the file and, when the platform declared it, its size.
func TestRefusedFileNoteNamesItsSize(t *testing.T) {
	h := newHarness(t, nil)
	h.platform = refusingAdapter{h.adapter}
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 2005, "hello")
	m := userMessage(2005, "the recording")
	m.Attachments = []bridge.Attachment{
		{Kind: bridge.KindVideo, Name: "call.mp4", MIME: "video/mp4", Size: 31 << 20, Ref: "v"},
		{Kind: bridge.KindFile, Name: "notes.txt", MIME: "text/plain", Ref: "n"},
	}
	if err := h.adapter.Receive(ctx, m); err != nil {
		t.Fatal(err)
	}
	h.waitIncoming(ctx, conv.ID, "hello", "the recording\n\n"+
		"📎 call.mp4 (31.0 MB) could not be bridged: the platform refused the download\n"+
		"📎 notes.txt could not be bridged: the platform refused the download")
}
