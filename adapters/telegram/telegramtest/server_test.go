package telegramtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "123456:TEST-token_abc"

type reply struct {
	OK          bool            `json:"ok"`
	Result      json.RawMessage `json:"result"`
	ErrorCode   int             `json:"error_code"`
	Description string          `json:"description"`
	Parameters  struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
	status int
}

type update struct {
	UpdateID int64 `json:"update_id"`
	Message  struct {
		MessageID int    `json:"message_id"`
		Text      string `json:"text"`
		Chat      struct {
			ID   int64  `json:"id"`
			Type string `json:"type"`
		} `json:"chat"`
		From struct {
			ID        int64  `json:"id"`
			FirstName string `json:"first_name"`
		} `json:"from"`
		ReplyToMessage *struct {
			MessageID int `json:"message_id"`
		} `json:"reply_to_message"`
		Entities []struct {
			Type   string `json:"type"`
			Length int    `json:"length"`
		} `json:"entities"`
	} `json:"message"`
}

func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// do sends req and decodes the reply. It reports failures with Errorf, not Fatalf, because
// some tests call it from a goroutine of their own.
func do(t *testing.T, c *http.Client, req *http.Request) reply {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("request: %v", err)
		return reply{}
	}
	defer resp.Body.Close()
	var r reply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Errorf("decode reply: %v", err)
	}
	r.status = resp.StatusCode
	return r
}

// callJSON calls method with a JSON body, as the adapter does.
func callJSON(t *testing.T, c *http.Client, base, tok, method string, params map[string]any) reply {
	t.Helper()
	body, _ := json.Marshal(params)
	req, _ := http.NewRequest(http.MethodPost, base+"/bot"+tok+"/"+method, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return do(t, c, req)
}

func updates(t *testing.T, r reply) []update {
	t.Helper()
	if !r.OK {
		t.Fatalf("getUpdates failed: %d %s", r.ErrorCode, r.Description)
	}
	var us []update
	if err := json.Unmarshal(r.Result, &us); err != nil {
		t.Fatalf("decode updates: %v", err)
	}
	return us
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var alice = telegramtest.User{ID: 42, FirstName: "Alice", LastName: "Liddell", Username: "alice"}

func TestWrongTokenIsUnauthorized(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	r := callJSON(t, newClient(t), s.URL(), "999:wrong", "getMe", nil)
	if r.OK || r.ErrorCode != 401 || r.status != 401 || r.Description != "Unauthorized" {
		t.Fatalf("got %+v, want 401 Unauthorized", r)
	}
	r = callJSON(t, newClient(t), s.URL(), token, "getMe", nil)
	var me struct {
		ID       int64  `json:"id"`
		IsBot    bool   `json:"is_bot"`
		Username string `json:"username"`
	}
	if err := json.Unmarshal(r.Result, &me); err != nil || !me.IsBot || me.ID != 123456 || me.Username != telegramtest.BotUsername {
		t.Fatalf("getMe = %s (%v)", r.Result, err)
	}
}

func TestGetUpdatesLongPollsAndOffsetConfirms(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	c := newClient(t)
	got := make(chan reply, 1)
	go func() {
		got <- callJSON(t, c, s.URL(), token, "getUpdates", map[string]any{"timeout": 30, "allowed_updates": []string{"message"}})
	}()
	if err := s.WaitPolling(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	msgID := s.SendText(alice, "/start hello")
	us := updates(t, <-got)
	if len(us) != 1 {
		t.Fatalf("got %d updates, want 1", len(us))
	}
	u := us[0]
	if u.Message.MessageID != msgID || u.Message.Text != "/start hello" || u.Message.Chat.ID != alice.ID ||
		u.Message.Chat.Type != "private" || u.Message.From.FirstName != "Alice" {
		t.Fatalf("unexpected update %+v", u)
	}
	if len(u.Message.Entities) != 1 || u.Message.Entities[0].Type != "bot_command" || u.Message.Entities[0].Length != 6 {
		t.Fatalf("entities = %+v, want one bot_command of length 6", u.Message.Entities)
	}
	if got := s.AllowedUpdates(); len(got) != 1 || got[0] != "message" {
		t.Fatalf("allowed updates = %v", got)
	}

	// Without an offset the update is delivered again: nothing is confirmed yet.
	if us := updates(t, callJSON(t, c, s.URL(), token, "getUpdates", nil)); len(us) != 1 || s.Acked() != 0 {
		t.Fatalf("redelivery: %d updates, acked %d", len(us), s.Acked())
	}
	second := s.SendReply(alice, "again", msgID)
	us = updates(t, callJSON(t, c, s.URL(), token, "getUpdates", map[string]any{"offset": u.UpdateID + 1}))
	if len(us) != 1 || us[0].Message.MessageID != second || us[0].Message.ReplyToMessage == nil ||
		us[0].Message.ReplyToMessage.MessageID != msgID {
		t.Fatalf("after offset: %+v", us)
	}
	if s.Acked() != u.UpdateID || s.Pending() != 1 {
		t.Fatalf("acked %d pending %d, want %d and 1", s.Acked(), s.Pending(), u.UpdateID)
	}
	if err := s.WaitAcked(ctxT(t), u.UpdateID); err != nil {
		t.Fatal(err)
	}
}

func TestGetUpdatesTimeoutReturnsEmpty(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	start := time.Now()
	us := updates(t, callJSON(t, newClient(t), s.URL(), token, "getUpdates", map[string]any{"timeout": 1}))
	if len(us) != 0 {
		t.Fatalf("got %d updates", len(us))
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("returned after %s: the long poll did not wait", d)
	}
}

func TestNegativeOffsetKeepsTheLastUpdates(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	for _, text := range []string{"a", "b", "c"} {
		s.SendText(alice, text)
	}
	us := updates(t, callJSON(t, newClient(t), s.URL(), token, "getUpdates", map[string]any{"offset": -1}))
	if len(us) != 1 || us[0].Message.Text != "c" || s.Acked() != us[0].UpdateID-1 {
		t.Fatalf("got %+v acked %d", us, s.Acked())
	}
}

func TestOverlappingGetUpdatesTerminatesTheOlder(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	c := newClient(t)
	first := make(chan reply, 1)
	go func() { first <- callJSON(t, c, s.URL(), token, "getUpdates", map[string]any{"timeout": 30}) }()
	if err := s.WaitPolling(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	second := make(chan reply, 1)
	go func() { second <- callJSON(t, c, s.URL(), token, "getUpdates", map[string]any{"timeout": 30}) }()
	r := <-first
	if r.OK || r.ErrorCode != 409 || !strings.Contains(r.Description, "terminated by other getUpdates") {
		t.Fatalf("older poll got %+v, want 409", r)
	}
	s.SendText(alice, "hi")
	if us := updates(t, <-second); len(us) != 1 {
		t.Fatalf("newer poll got %d updates", len(us))
	}
}

func TestWebhookBlocksGetUpdates(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	c := newClient(t)
	callJSON(t, c, s.URL(), token, "setWebhook", map[string]any{"url": "https://example.invalid/hook"})
	if r := callJSON(t, c, s.URL(), token, "getUpdates", nil); r.ErrorCode != 409 {
		t.Fatalf("got %+v, want 409", r)
	}
	callJSON(t, c, s.URL(), token, "deleteWebhook", nil)
	if r := callJSON(t, c, s.URL(), token, "getUpdates", nil); !r.OK {
		t.Fatalf("got %+v after deleteWebhook", r)
	}
}

func TestCloseUnblocksPendingPolls(t *testing.T) {
	s := telegramtest.New(token)
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	c := newClient(t)
	got := make(chan reply, 1)
	go func() { got <- callJSON(t, c, hs.URL, token, "getUpdates", map[string]any{"timeout": 50}) }()
	if err := s.WaitPolling(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if us := updates(t, <-got); len(us) != 0 {
		t.Fatalf("got %d updates", len(us))
	}
	if r := callJSON(t, c, hs.URL, token, "getMe", nil); r.OK || r.ErrorCode != 500 {
		t.Fatalf("after Close: %+v", r)
	}
}

func TestSendMessageAcceptsEveryBodyEncoding(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	c := newClient(t)
	s.SendText(alice, "hi")
	endpoint := s.URL() + "/bot" + token + "/sendMessage"

	callJSON(t, c, s.URL(), token, "sendMessage", map[string]any{"chat_id": alice.ID, "text": "json"})

	form := url.Values{"chat_id": {"42"}, "text": {"form"}, "parse_mode": {"HTML"}}
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	do(t, c, req)

	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("chat_id", "42")
	_ = mw.WriteField("text", "multipart")
	_ = mw.WriteField("reply_parameters", `{"message_id":1}`)
	_ = mw.Close()
	req, _ = http.NewRequest(http.MethodPost, endpoint, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	do(t, c, req)

	req, _ = http.NewRequest(http.MethodGet, endpoint+"?chat_id=42&text=query", nil)
	do(t, c, req)

	sent, err := s.WaitSent(ctxT(t), alice.ID, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []telegramtest.SentMessage{
		{MessageID: 2, Method: "sendMessage", Text: "json", Raw: "json"},
		{MessageID: 3, Method: "sendMessage", Text: "form", Raw: "form", ParseMode: "HTML"},
		{MessageID: 4, Method: "sendMessage", Text: "multipart", Raw: "multipart", ReplyTo: 1},
		{MessageID: 5, Method: "sendMessage", Text: "query", Raw: "query"},
	}
	for i := range want {
		if !reflect.DeepEqual(sent[i], want[i]) {
			t.Errorf("sent[%d] = %+v, want %+v", i, sent[i], want[i])
		}
	}
}

func TestSendMessageValidates(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	c := newClient(t)
	s.SendText(alice, "hi")
	for _, tc := range []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"unknown chat", map[string]any{"chat_id": 7, "text": "x"}, "Bad Request: chat not found"},
		{"empty text", map[string]any{"chat_id": 42, "text": " \n"}, "Bad Request: message text is empty"},
		{"too long", map[string]any{"chat_id": 42, "text": strings.Repeat("😀", 2049)}, "Bad Request: message is too long"},
		{"missing reply", map[string]any{"chat_id": 42, "text": "x", "reply_parameters": map[string]any{"message_id": 99}},
			"Bad Request: message to be replied not found"},
	} {
		r := callJSON(t, c, s.URL(), token, "sendMessage", tc.params)
		if r.OK || r.ErrorCode != 400 || r.Description != tc.want {
			t.Errorf("%s: got %d %q, want 400 %q", tc.name, r.ErrorCode, r.Description, tc.want)
		}
	}
	r := callJSON(t, c, s.URL(), token, "sendMessage", map[string]any{"chat_id": 42, "text": strings.Repeat("😀", 2048),
		"reply_parameters": map[string]any{"message_id": 99, "allow_sending_without_reply": true}})
	if !r.OK {
		t.Fatalf("4096 UTF-16 units with allow_sending_without_reply: %+v", r)
	}
	if sent := s.Sent(alice.ID); len(sent) != 1 || sent[0].ReplyTo != 0 {
		t.Fatalf("sent = %+v", sent)
	}
}

func TestFaultInjection(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	c := newClient(t)
	s.SendText(alice, "hi")
	send := func() reply {
		return callJSON(t, c, s.URL(), token, "sendMessage", map[string]any{"chat_id": 42, "text": "x"})
	}

	s.RateLimit(2, 7)
	for range 2 {
		if r := send(); r.ErrorCode != 429 || r.Parameters.RetryAfter != 7 || r.status != 429 {
			t.Fatalf("rate limited: %+v", r)
		}
	}
	if r := callJSON(t, c, s.URL(), token, "getMe", nil); !r.OK {
		t.Fatalf("getMe is not a send call: %+v", r)
	}
	if r := send(); !r.OK {
		t.Fatalf("after the rate limit: %+v", r)
	}

	s.FailNext(1, 502)
	if r := callJSON(t, c, s.URL(), token, "getMe", nil); r.ErrorCode != 502 || r.status != 502 {
		t.Fatalf("FailNext: %+v", r)
	}

	s.Block(alice.ID)
	if r := send(); r.ErrorCode != 403 || r.Description != "Forbidden: bot was blocked by the user" {
		t.Fatalf("blocked: %+v", r)
	}
	if got := s.Calls("sendmessage"); got != 4 {
		t.Fatalf("Calls(sendMessage) = %d, want 4", got)
	}
}
