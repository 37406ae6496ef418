package telegramtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
)

func TestParseHTMLFollowsTelegramsRules(t *testing.T) {
	good := []struct {
		in, text string
		entities []telegramtest.Entity
	}{
		{"plain", "plain", nil},
		{"<b>bold</b> &lt;x&gt; &amp; &quot;", `bold <x> & "`, []telegramtest.Entity{{Type: "bold", Offset: 0, Length: 4}}},
		{`<a href="https://e.io/?a=1&amp;b=2">l</a>`, "l", []telegramtest.Entity{{Type: "text_link", Offset: 0, Length: 1, URL: "https://e.io/?a=1&b=2"}}},
		{"😀<i>x</i>", "😀x", []telegramtest.Entity{{Type: "italic", Offset: 2, Length: 1}}},
		{`<pre><code class="language-go">x</code></pre>`, "x", []telegramtest.Entity{{Type: "pre", Offset: 0, Length: 1}}},
		{"AT&T", "AT&T", nil},
	}
	for _, g := range good {
		text, es, err := telegramtest.ParseHTML(g.in)
		if err != nil || text != g.text || len(es) != len(g.entities) || (len(es) > 0 && es[0] != g.entities[0]) {
			t.Errorf("ParseHTML(%q) = %q, %+v, %v; want %q, %+v", g.in, text, es, err, g.text, g.entities)
		}
	}
	for _, bad := range []string{"<script>x</script>", "<b>open", "<b><i>x</b></i>", "x < y", "</b>", `<a>x</a>`} {
		if _, _, err := telegramtest.ParseHTML(bad); err == nil {
			t.Errorf("ParseHTML(%q) accepted what Telegram rejects", bad)
		}
	}
}

// upload posts a multipart request with one file, as the Bot API expects uploads.
func upload(t *testing.T, c *http.Client, s *telegramtest.Server, method, field string, fields map[string]string, data string) reply {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile(field, "f.bin")
	_, _ = io.WriteString(fw, data)
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/bot"+token+"/"+method, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return do(t, c, req)
}

func TestMediaUploadsEditsAndDeletes(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	c := newClient(t)
	s.SendText(alice, "hi")

	r := upload(t, c, s, "sendPhoto", "photo", map[string]string{"chat_id": "42", "caption": "<b>chart</b>", "parse_mode": "HTML"}, "PNG")
	if !r.OK {
		t.Fatalf("sendPhoto: %+v", r)
	}
	if r := upload(t, c, s, "sendDocument", "document", map[string]string{"chat_id": "42", "caption": strings.Repeat("x", 1025)}, "D"); r.OK || r.ErrorCode != 400 || !strings.Contains(r.Description, "caption is too long") {
		t.Errorf("long caption: %+v", r)
	}
	if r := callJSON(t, c, s.URL(), token, "sendPhoto", map[string]any{"chat_id": 42}); r.OK {
		t.Errorf("sendPhoto without a photo: %+v", r)
	}
	sent := s.Sent(alice.ID)
	if len(sent) != 1 || sent[0].Method != "sendPhoto" || sent[0].Text != "chart" || string(sent[0].File.Data) != "PNG" || sent[0].File.Field != "photo" {
		t.Fatalf("sent %+v", sent)
	}
	if r := callJSON(t, c, s.URL(), token, "editMessageText", map[string]any{"chat_id": 42, "message_id": 2, "text": "x"}); r.OK || !strings.Contains(r.Description, "no text in the message") {
		t.Errorf("editMessageText on a photo: %+v", r)
	}
	if r := callJSON(t, c, s.URL(), token, "editMessageCaption", map[string]any{"chat_id": 42, "message_id": 2, "caption": "new"}); !r.OK {
		t.Errorf("editMessageCaption: %+v", r)
	}
	callJSON(t, c, s.URL(), token, "sendMessage", map[string]any{"chat_id": 42, "text": "t",
		"reply_markup": map[string]any{"inline_keyboard": [][]map[string]any{{{"text": "A", "callback_data": "v:a", "copy_text": map[string]any{"text": ""}}}}}})
	if r := callJSON(t, c, s.URL(), token, "editMessageText", map[string]any{"chat_id": 42, "message_id": 3, "text": "t",
		"reply_markup": map[string]any{"inline_keyboard": [][]map[string]any{{{"text": "A", "callback_data": "v:a"}}}}}); r.OK || !strings.Contains(r.Description, "message is not modified") {
		t.Errorf("unchanged edit: %+v", r)
	}
	if r := callJSON(t, c, s.URL(), token, "editMessageText", map[string]any{"chat_id": 42, "message_id": 3, "text": "t2"}); !r.OK {
		t.Errorf("edit: %+v", r)
	}
	if sent := s.Sent(alice.ID); sent[0].Text != "new" || sent[1].Text != "t2" || sent[1].Keyboard != nil || sent[1].Edits != 1 {
		t.Errorf("after edits %+v; an edit without reply_markup removes the keyboard", sent)
	}
	s.SetNow(func() time.Time { return time.Now().Add(49 * time.Hour) })
	if r := callJSON(t, c, s.URL(), token, "deleteMessage", map[string]any{"chat_id": 42, "message_id": 2}); r.OK || !strings.Contains(r.Description, "can't be deleted") {
		t.Errorf("delete after 48h: %+v", r)
	}
	s.SetNow(time.Now)
	if r := callJSON(t, c, s.URL(), token, "deleteMessage", map[string]any{"chat_id": 42, "message_id": 2}); !r.OK {
		t.Errorf("delete: %+v", r)
	}
	if r := callJSON(t, c, s.URL(), token, "deleteMessage", map[string]any{"chat_id": 42, "message_id": 2}); r.OK || !strings.Contains(r.Description, "message to delete not found") {
		t.Errorf("second delete: %+v", r)
	}
}

func TestGetFileAndDownloadWithTheCloudLimit(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	c := newClient(t)
	s.SendFile(alice, "document", telegramtest.File{Name: "a.txt", Data: []byte("small")}, "")
	s.SendFile(alice, "document", telegramtest.File{Name: "big.bin", Data: []byte("x"), Size: 21 << 20}, "")
	var us []update
	r := callJSON(t, c, s.URL(), token, "getUpdates", map[string]any{"timeout": 0})
	us = updates(t, r)
	if len(us) != 2 {
		t.Fatalf("updates %+v", us)
	}
	var raw []struct {
		Message struct {
			Document struct {
				FileID string `json:"file_id"`
			} `json:"document"`
		} `json:"message"`
	}
	_ = json.Unmarshal(r.Result, &raw)
	r = callJSON(t, c, s.URL(), token, "getFile", map[string]any{"file_id": raw[0].Message.Document.FileID})
	var f struct {
		FilePath string `json:"file_path"`
	}
	if err := json.Unmarshal(r.Result, &f); err != nil || f.FilePath == "" {
		t.Fatalf("getFile: %+v", r)
	}
	resp, err := c.Get(s.URL() + "/file/bot" + token + "/" + f.FilePath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "small" {
		t.Errorf("download %q", body)
	}
	resp, err = c.Get(s.URL() + "/file/botWRONG/" + f.FilePath)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("download with a wrong token: %d", resp.StatusCode)
	}
	if r := callJSON(t, c, s.URL(), token, "getFile", map[string]any{"file_id": raw[1].Message.Document.FileID}); r.OK || !strings.Contains(r.Description, "file is too big") {
		t.Errorf("getFile above 20 MB: %+v", r)
	}
	s.SetDownloadLimit(0)
	if r := callJSON(t, c, s.URL(), token, "getFile", map[string]any{"file_id": raw[1].Message.Document.FileID}); !r.OK {
		t.Errorf("self-hosted getFile: %+v", r)
	}
}

func TestSetWebhookValidates(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	c := newClient(t)
	if r := callJSON(t, c, s.URL(), token, "setWebhook", map[string]any{"url": "http://x.io/h"}); r.OK {
		t.Errorf("http webhook accepted: %+v", r)
	}
	if r := callJSON(t, c, s.URL(), token, "setWebhook", map[string]any{"url": "https://x.io/h", "secret_token": "bad secret!"}); r.OK {
		t.Errorf("bad secret accepted: %+v", r)
	}
	if r := callJSON(t, c, s.URL(), token, "setWebhook", map[string]any{"url": "https://x.io/h", "secret_token": "ok_1-A"}); !r.OK {
		t.Fatalf("setWebhook: %+v", r)
	}
	if u, sec := s.Webhook(); u != "https://x.io/h" || sec != "ok_1-A" {
		t.Errorf("webhook %q %q", u, sec)
	}
	if r := callJSON(t, c, s.URL(), token, "getUpdates", map[string]any{}); r.OK || r.ErrorCode != 409 {
		t.Errorf("getUpdates with a webhook: %+v", r)
	}
}
