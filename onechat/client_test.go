package onechat

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testInbox    = "bXKr2F2asDjztoVipLF9Lt8v"
	testSourceID = "9b9d46b9-8542-43f5-8077-082d54682581"
	testHMAC     = "wyHVRZzzJhjPMKR2h7LpeJVy"
	inboxPath    = "/public/api/v1/inboxes/" + testInbox
)

// Sample payloads, copied from onechat-client-api.md.
const (
	sampleInbox = `{
  "identifier": "bXKr2F2asDjztoVipLF9Lt8v",
  "identity_validation_enabled": false,
  "name": "Telegram bridge",
  "timezone": "UTC",
  "working_hours": [
    {"day_of_week": 0, "closed_all_day": true,  "open_hour": null, "open_minutes": null, "close_hour": null, "close_minutes": null, "open_all_day": false},
    {"day_of_week": 1, "closed_all_day": false, "open_hour": 9, "open_minutes": 0, "close_hour": 17, "close_minutes": 0, "open_all_day": false}
  ],
  "working_hours_enabled": false,
  "csat_survey_enabled": false,
  "greeting_enabled": false
}`
	sampleContact = `{
  "source_id": "9b9d46b9-8542-43f5-8077-082d54682581",
  "pubsub_token": "JJhR4TG2fY93A3Ag8N2qjd2r",
  "id": 42,
  "name": "Alice",
  "email": "alice@example.com",
  "phone_number": "+15551234567"
}`
	sampleConversation = `{
  "id": 21,
  "uuid": "0c3d5e9a-7f5b-4d61-9b0e-2f8f2a5d9c11",
  "inbox_id": 7,
  "contact_last_seen_at": 0,
  "status": "open",
  "agent_last_seen_at": 1736500100,
  "messages": [ { "id": 1201, "content": "Hello", "message_type": 0, "content_type": "text", "content_attributes": {}, "created_at": 1736500000, "conversation_id": 21, "sender": { "...": "contact push data" } } ],
  "contact": { "id": 42, "name": "Alice", "email": "alice@example.com", "...": "full contact record" }
}`
	sampleMessage = `{
  "id": 1202,
  "content": "Thanks, looking into it",
  "message_type": 1,
  "content_type": "text",
  "content_attributes": {"in_reply_to": 1201},
  "created_at": 1736500060,
  "conversation_id": 21,
  "attachments": [
    {"id": 55, "message_id": 1202, "file_type": "image", "account_id": 1, "extension": null,
     "data_url": "https://chat.example.com/rails/active_storage/blobs/redirect/eyJfcmFpbHMiOnsi...--5f1c/photo.jpg",
     "thumb_url": "https://chat.example.com/rails/active_storage/representations/redirect/eyJfcmFpbHMi...--9a2b/photo.jpg",
     "file_size": 48213, "width": 800, "height": 600}
  ],
  "sender": {"id": 3, "name": "John Doe", "available_name": "John", "avatar_url": "https://…",
             "type": "user", "availability_status": "online", "thumbnail": "https://…"}
}`
)

var wantSampleMessage = Message{
	ID: 1202, Content: "Thanks, looking into it", MessageType: MessageOutgoing, ContentType: "text",
	ContentAttributes: map[string]any{"in_reply_to": float64(1201)}, CreatedAt: 1736500060, ConversationID: 21,
	Attachments: []Attachment{{
		ID: 55, FileType: "image",
		DataURL:  "https://chat.example.com/rails/active_storage/blobs/redirect/eyJfcmFpbHMiOnsi...--5f1c/photo.jpg",
		ThumbURL: "https://chat.example.com/rails/active_storage/representations/redirect/eyJfcmFpbHMi...--9a2b/photo.jpg",
		FileSize: 48213, Width: 800, Height: 600,
	}},
	Sender: &Sender{ID: 3, Name: "John Doe", AvailableName: "John", Type: "user", AvatarURL: "https://…"},
}

// request is what the test server saw.
type request struct {
	Method, Path, RawQuery, Accept, ContentType string
	Body                                        map[string]any
}

// restServer answers every request with status and body and records the requests.
func restServer(t *testing.T, status int, body string) (*httptest.Server, <-chan request) {
	t.Helper()
	reqs := make(chan request, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := request{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
			Accept: r.Header.Get("Accept"), ContentType: r.Header.Get("Content-Type")}
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			if err := json.Unmarshal(b, &rec.Body); err != nil {
				t.Errorf("request body is not JSON: %v", err)
			}
		}
		reqs <- rec
		if strings.HasPrefix(body, "{") || strings.HasPrefix(body, "[") {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, reqs
}

func TestIdentifierHashVectors(t *testing.T) {
	for in, want := range map[string]string{
		"telegram:123456789": "0d6ed93ac5e5ffff4556c651ae81ff369b37461ddccf6864900147d0a23f5d3d",
		"":                   "42a89748822f8b27d139fc9bcc3d0bf8c71e7908dd2257763e66172ccf2206d9",
	} {
		if got := IdentifierHash(testHMAC, in); got != want {
			t.Errorf("IdentifierHash(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestInbox(t *testing.T) {
	srv, reqs := restServer(t, 200, sampleInbox)
	c := NewClient(srv.URL, testInbox, nil)
	in, err := c.Inbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := <-reqs
	if r.Method != "GET" || r.Path != inboxPath || r.Accept != "application/json" {
		t.Errorf("request = %+v", r)
	}
	want := &Inbox{
		Identifier: testInbox, Name: "Telegram bridge", Timezone: "UTC",
		WorkingHours: []WorkingHour{
			{DayOfWeek: 0, ClosedAllDay: true},
			{DayOfWeek: 1, OpenHour: 9, CloseHour: 17},
		},
	}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("inbox = %+v\nwant    %+v", in, want)
	}
}

func TestCreateContact(t *testing.T) {
	params := ContactParams{Identifier: "telegram:123456789", Name: "Alice", Email: "alice@example.com",
		PhoneNumber: "+15551234567", AvatarURL: "https://x/a.png", SourceID: testSourceID,
		CustomAttributes: map[string]any{"plan": "pro"}}
	wantContact := &Contact{ID: 42, SourceID: testSourceID, PubsubToken: "JJhR4TG2fY93A3Ag8N2qjd2r",
		Name: "Alice", Email: "alice@example.com", PhoneNumber: "+15551234567"}

	t.Run("with HMAC", func(t *testing.T) {
		srv, reqs := restServer(t, 200, sampleContact)
		c := NewClient(srv.URL+"/", testInbox, &Options{HMACToken: testHMAC})
		ct, err := c.CreateContact(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ct, wantContact) {
			t.Errorf("contact = %+v", ct)
		}
		r := <-reqs
		if r.Method != "POST" || r.Path != inboxPath+"/contacts" || r.ContentType != "application/json" || r.Accept != "application/json" {
			t.Errorf("request = %+v", r)
		}
		wantBody := map[string]any{
			"identifier": "telegram:123456789", "name": "Alice", "email": "alice@example.com",
			"phone_number": "+15551234567", "avatar_url": "https://x/a.png", "source_id": testSourceID,
			"custom_attributes": map[string]any{"plan": "pro"},
			"identifier_hash":   "0d6ed93ac5e5ffff4556c651ae81ff369b37461ddccf6864900147d0a23f5d3d",
		}
		if !reflect.DeepEqual(r.Body, wantBody) {
			t.Errorf("body = %v\nwant   %v", r.Body, wantBody)
		}
	})
	t.Run("without HMAC, empty fields omitted, nulls decode to empty", func(t *testing.T) {
		srv, reqs := restServer(t, 200, `{"source_id":"s","pubsub_token":"p","id":7,"name":"white-shadow-394","email":null,"phone_number":null}`)
		c := NewClient(srv.URL, testInbox, nil)
		ct, err := c.CreateContact(context.Background(), ContactParams{Identifier: "discord:1"})
		if err != nil {
			t.Fatal(err)
		}
		if want := (&Contact{ID: 7, SourceID: "s", PubsubToken: "p", Name: "white-shadow-394"}); !reflect.DeepEqual(ct, want) {
			t.Errorf("contact = %+v", ct)
		}
		if r := <-reqs; !reflect.DeepEqual(r.Body, map[string]any{"identifier": "discord:1"}) {
			t.Errorf("body = %v", r.Body)
		}
	})
}

func TestGetContact(t *testing.T) {
	t.Run("with HMAC", func(t *testing.T) {
		srv, reqs := restServer(t, 200, sampleContact)
		c := NewClient(srv.URL, testInbox, &Options{HMACToken: testHMAC})
		ct, err := c.GetContact(context.Background(), testSourceID, "telegram:123456789")
		if err != nil {
			t.Fatal(err)
		}
		if ct.PubsubToken != "JJhR4TG2fY93A3Ag8N2qjd2r" {
			t.Errorf("contact = %+v", ct)
		}
		r := <-reqs
		if r.Method != "GET" || r.Path != inboxPath+"/contacts/"+testSourceID {
			t.Errorf("request = %+v", r)
		}
		// The pair travels in the body: a URL lands in proxy and access logs.
		if r.RawQuery != "" {
			t.Errorf("query = %q, want none", r.RawQuery)
		}
		want := map[string]any{"identifier": "telegram:123456789", "identifier_hash": "0d6ed93ac5e5ffff4556c651ae81ff369b37461ddccf6864900147d0a23f5d3d"}
		if !reflect.DeepEqual(r.Body, want) {
			t.Errorf("body = %v, want %v", r.Body, want)
		}
	})
	t.Run("without HMAC", func(t *testing.T) {
		srv, reqs := restServer(t, 200, sampleContact)
		c := NewClient(srv.URL, testInbox, nil)
		if _, err := c.GetContact(context.Background(), "odd/id", "telegram:1"); err != nil {
			t.Fatal(err)
		}
		r := <-reqs
		if r.Path != inboxPath+"/contacts/odd%2Fid" || r.RawQuery != "" {
			t.Errorf("request = %+v", r)
		}
	})
}

func TestConversations(t *testing.T) {
	wantConv := &Conversation{ID: 21, UUID: "0c3d5e9a-7f5b-4d61-9b0e-2f8f2a5d9c11", InboxID: 7, Status: "open",
		AgentLastSeenAt: 1736500100, Messages: []Message{{ID: 1201, Content: "Hello", MessageType: MessageIncoming,
			ContentType: "text", ContentAttributes: map[string]any{}, CreatedAt: 1736500000, ConversationID: 21,
			Sender: &Sender{}}},
		Contact: &Contact{ID: 42, Name: "Alice", Email: "alice@example.com"}}

	srv, reqs := restServer(t, 200, sampleConversation)
	c := NewClient(srv.URL, testInbox, nil)
	cv, err := c.CreateConversation(context.Background(), testSourceID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cv, wantConv) {
		t.Errorf("conversation = %+v\nwant           %+v", cv, wantConv)
	}
	r := <-reqs
	if r.Method != "POST" || r.Path != inboxPath+"/contacts/"+testSourceID+"/conversations" || r.ContentType != "application/json" {
		t.Errorf("request = %+v", r)
	}

	cv, err = c.GetConversation(context.Background(), testSourceID, 21)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cv, wantConv) {
		t.Errorf("conversation = %+v", cv)
	}
	r = <-reqs
	if r.Method != "GET" || r.Path != inboxPath+"/contacts/"+testSourceID+"/conversations/21" {
		t.Errorf("request = %+v", r)
	}
}

func TestCreateMessage(t *testing.T) {
	srv, reqs := restServer(t, 200, sampleMessage)
	c := NewClient(srv.URL, testInbox, nil)
	m, err := c.CreateMessage(context.Background(), testSourceID, 21, MessageParams{Content: "hi", EchoID: "tg:555:1"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*m, wantSampleMessage) {
		t.Errorf("message = %+v\nwant      %+v", *m, wantSampleMessage)
	}
	if m.InReplyTo() != 1201 || m.Deleted() || m.Sender.DisplayName() != "John" {
		t.Errorf("helpers: in_reply_to %d deleted %v name %q", m.InReplyTo(), m.Deleted(), m.Sender.DisplayName())
	}
	r := <-reqs
	if r.Method != "POST" || r.Path != inboxPath+"/contacts/"+testSourceID+"/conversations/21/messages" ||
		r.ContentType != "application/json" {
		t.Errorf("request = %+v", r)
	}
	if !reflect.DeepEqual(r.Body, map[string]any{"content": "hi", "echo_id": "tg:555:1"}) {
		t.Errorf("body = %v", r.Body)
	}
}

// PostMessage sends what CreateMessage sends and reads the new message's id from the answer,
// whether OneChat writes it as a number or a string.
func TestPostMessage(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		want         int64
	}{
		{"full message", sampleMessage, 1202},
		{"id as a string", `{"id":"1203","content":"hi"}`, 1203},
		{"no id", `{"content":"hi"}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, reqs := restServer(t, 200, tc.answer)
			c := NewClient(srv.URL, testInbox, nil)
			id, err := c.PostMessage(context.Background(), testSourceID, 21, MessageParams{Content: "hi", EchoID: "tg:555:1"})
			if err != nil {
				t.Fatal(err)
			}
			if id != tc.want {
				t.Errorf("id = %d, want %d", id, tc.want)
			}
			r := <-reqs
			if r.Method != "POST" || r.Path != inboxPath+"/contacts/"+testSourceID+"/conversations/21/messages" ||
				!reflect.DeepEqual(r.Body, map[string]any{"content": "hi", "echo_id": "tg:555:1"}) {
				t.Errorf("request = %+v", r)
			}
		})
	}
	// An answer that is not a message is an error, as it is for CreateMessage.
	srv, _ := restServer(t, 200, `[1202]`)
	if _, err := NewClient(srv.URL, testInbox, nil).PostMessage(context.Background(), testSourceID, 21, MessageParams{Content: "x"}); err == nil {
		t.Error("an array answer gave no error")
	}
}

// BenchmarkPostedMessageAnswer decodes OneChat's answer to a posted message as PostMessage
// does (its id) and as CreateMessage does (the whole message).
func BenchmarkPostedMessageAnswer(b *testing.B) {
	body := []byte(sampleMessage)
	b.Run("id", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m postedMessage
			if err := decodeJSON(body, &m); err != nil || m.ID != 1202 {
				b.Fatal(err, m.ID)
			}
		}
	})
	b.Run("message", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m Message
			if err := decodeJSON(body, &m); err != nil || m.ID != 1202 {
				b.Fatal(err, m.ID)
			}
		}
	})
}

func TestListMessages(t *testing.T) {
	srv, reqs := restServer(t, 200, "["+sampleMessage+`,{"id":1203,"content":null,"message_type":3,"created_at":1736500061.5}]`)
	c := NewClient(srv.URL, testInbox, nil)
	ms, err := c.ListMessages(context.Background(), testSourceID, 21, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || !reflect.DeepEqual(ms[0], wantSampleMessage) {
		t.Fatalf("messages = %+v", ms)
	}
	if want := (Message{ID: 1203, MessageType: MessageTemplate, CreatedAt: 1736500061}); !reflect.DeepEqual(ms[1], want) {
		t.Errorf("template = %+v", ms[1])
	}
	r := <-reqs
	if r.Method != "GET" || r.Path != inboxPath+"/contacts/"+testSourceID+"/conversations/21/messages" || r.RawQuery != "" {
		t.Errorf("request = %+v", r)
	}
	if _, err := c.ListMessages(context.Background(), testSourceID, 21, 1202); err != nil {
		t.Fatal(err)
	}
	if r := <-reqs; r.RawQuery != "before=1202" {
		t.Errorf("query = %q", r.RawQuery)
	}
}

func TestLenientDecoding(t *testing.T) {
	in := `{"id":"1300","content":null,"message_type":"outgoing","content_type":null,
		"content_attributes":"{\"legacy\":true}","created_at":"2025-01-10T09:07:40.373Z",
		"conversation_id":21.0,"attachments":null,"sender":null,"private":null,"brand_new_key":{"x":[1,2]},
		"conversation":{"contact_inbox":null}}`
	var m Message
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	want := Message{ID: 1300, MessageType: MessageOutgoing, CreatedAt: 1736500060, ConversationID: 21}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("message = %+v\nwant      %+v", m, want)
	}

	var cv Conversation
	if err := json.Unmarshal([]byte(`{"id":21,"contact_last_seen_at":1736500100.99,"agent_last_seen_at":null,"messages":[{"id":1},"junk",{"id":2}]}`), &cv); err != nil {
		t.Fatal(err)
	}
	if cv.ContactLastSeenAt != 1736500100 || cv.AgentLastSeenAt != 0 || len(cv.Messages) != 2 || cv.Messages[1].ID != 2 {
		t.Errorf("conversation = %+v", cv)
	}
	if MessageType(9).String() != "MessageType(9)" || MessageTemplate.String() != "template" {
		t.Error("MessageType.String")
	}
}

func TestSuccessIsAny2xx(t *testing.T) {
	srv, _ := restServer(t, http.StatusCreated, sampleContact)
	c := NewClient(srv.URL, testInbox, nil)
	if _, err := c.CreateContact(context.Background(), ContactParams{}); err != nil {
		t.Fatal(err)
	}
	srv2, _ := restServer(t, http.StatusNoContent, "")
	c2 := NewClient(srv2.URL, testInbox, nil)
	if _, err := c2.ListMessages(context.Background(), testSourceID, 1, 0); err != nil {
		t.Fatal(err)
	}
}

// secrets are the strings no error text may contain.
var secrets = []string{testInbox, testSourceID, IdentifierHash(testHMAC, "telegram:1"), testHMAC}

func assertNoLeak(t *testing.T, err error) {
	t.Helper()
	for _, s := range append(secrets, "SECRET-BODY") {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q leaks %q", err, s)
		}
	}
}

func TestErrorClassification(t *testing.T) {
	ctx := context.Background()
	type call func(c *Client) error
	createMsg := func(c *Client) error {
		_, err := c.CreateMessage(ctx, testSourceID, 21, MessageParams{Content: "x"})
		return err
	}
	getContact := func(c *Client) error {
		_, err := c.GetContact(ctx, testSourceID, "telegram:1")
		return err
	}
	createContact := func(c *Client) error {
		_, err := c.CreateContact(ctx, ContactParams{Identifier: "telegram:1"})
		return err
	}
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		hmac      bool
		call      call
		notFound  bool
		retryable bool
		hmacErr   bool
		message   string
	}{
		{name: "404", status: 404, body: `{"status":404,"error":"Not Found SECRET-BODY"}`, call: createMsg, notFound: true},
		{name: "422 message", status: 422, body: `{"message":"Content is too long (maximum is 150000 characters)","attributes":["content"]}`,
			call: createMsg, message: "Content is too long (maximum is 150000 characters)"},
		{name: "422 without message", status: 422, body: `{"error":"SECRET-BODY"}`, call: createMsg},
		{name: "429 text body", status: 429, body: "Retry later\n", call: createMsg, retryable: true},
		{name: "500 on contact route with HMAC", status: 500, body: `{"status":500,"error":"Internal Server Error"}`,
			hmac: true, call: getContact, hmacErr: true},
		{name: "500 on contact create with HMAC", status: 500, body: `{"status":500}`, hmac: true, call: createContact, hmacErr: true},
		{name: "500 on contact route without HMAC", status: 500, body: "SECRET-BODY", call: getContact, retryable: true},
		{name: "500 on message route with HMAC", status: 500, body: "<html>SECRET-BODY</html>", hmac: true, call: createMsg, retryable: true},
		{name: "502", status: 502, body: "bad gateway", call: createMsg, retryable: true},
		{name: "503", status: 503, call: createMsg, retryable: true},
		{name: "504", status: 504, call: createMsg, retryable: true},
		{name: "400", status: 400, call: createMsg},
		{name: "401", status: 401, call: getContact},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := restServer(t, tc.status, tc.body)
			opts := &Options{}
			if tc.hmac {
				opts.HMACToken = testHMAC
			}
			err := tc.call(NewClient(srv.URL, testInbox, opts))
			if err == nil {
				t.Fatal("no error")
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.StatusCode != tc.status || ae.Message != tc.message {
				t.Fatalf("error = %#v", err)
			}
			if IsNotFound(err) != tc.notFound || IsRetryable(err) != tc.retryable || errors.Is(err, ErrHMAC) != tc.hmacErr {
				t.Errorf("IsNotFound %v IsRetryable %v ErrHMAC %v for %q", IsNotFound(err), IsRetryable(err), errors.Is(err, ErrHMAC), err)
			}
			if tc.message != "" && !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q lacks the 422 message", err)
			}
			if tc.hmacErr && !strings.Contains(err.Error(), "ONECHAT_HMAC_TOKEN") {
				t.Errorf("HMAC error %q does not name ONECHAT_HMAC_TOKEN", err)
			}
			if IsRateLimited(err) != (tc.status == 429) || IsValidation(err) != (tc.status == 422) {
				t.Errorf("IsRateLimited/IsValidation wrong for %q", err)
			}
			assertNoLeak(t, err)
		})
	}
}

func TestRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(429)
	}))
	defer srv.Close()
	_, err := NewClient(srv.URL, testInbox, nil).Inbox(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.RetryAfter != 7*time.Second {
		t.Fatalf("error = %#v", err)
	}
}

func TestNetworkErrorDoesNotLeakPath(t *testing.T) {
	// A listener that is closed at once: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ln.Close()

	c := NewClient(base, testInbox, &Options{HMACToken: testHMAC})
	_, err = c.GetContact(context.Background(), testSourceID, "telegram:1")
	if err == nil {
		t.Fatal("no error")
	}
	if !IsRetryable(err) || IsNotFound(err) || errors.Is(err, ErrHMAC) {
		t.Errorf("classification of %q", err)
	}
	assertNoLeak(t, err)
	if !strings.Contains(err.Error(), "/public/api/v1/inboxes/{inbox}/contacts/{source_id}") {
		t.Errorf("error %q does not name the route template", err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Errorf("error %q does not wrap *url.Error", err)
	}

	_, err = c.ListMessages(context.Background(), testSourceID, 21, 5)
	assertNoLeak(t, err)
	if !strings.Contains(err.Error(), "{source_id}/conversations/{conversation_id}/messages") {
		t.Errorf("error %q does not name the route template", err)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	c := NewClient(srv.URL, testInbox, &Options{HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}})
	_, err := c.CreateMessage(context.Background(), testSourceID, 21, MessageParams{Content: "x"})
	if err == nil || !IsRetryable(err) {
		t.Errorf("client timeout: %v, retryable %v", err, IsRetryable(err))
	}
	assertNoLeak(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	c2 := NewClient(srv.URL, testInbox, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := c2.CreateMessage(ctx, testSourceID, 21, MessageParams{Content: "x"})
		errc <- err
	}()
	cancel()
	err = <-errc
	if !errors.Is(err, context.Canceled) || IsRetryable(err) {
		t.Errorf("cancelled: %v, retryable %v", err, IsRetryable(err))
	}
	assertNoLeak(t, err)
}

func TestDecodeErrorOnGarbage(t *testing.T) {
	srv, _ := restServer(t, 200, "<html>oops</html>")
	_, err := NewClient(srv.URL, testInbox, nil).Inbox(context.Background())
	if err == nil || IsRetryable(err) {
		t.Errorf("err = %v", err)
	}
}

func TestCreateMessageWithAttachments(t *testing.T) {
	type part struct{ name, filename, contentType, body string }
	got := make(chan []part, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.EscapedPath() != inboxPath+"/contacts/"+testSourceID+"/conversations/21/messages" {
			t.Errorf("request %s %s", r.Method, r.URL.EscapedPath())
		}
		mr, err := r.MultipartReader()
		if err != nil {
			t.Errorf("not multipart: %v", err)
			w.WriteHeader(400)
			return
		}
		var parts []part
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("next part: %v", err)
				break
			}
			b, _ := io.ReadAll(p)
			parts = append(parts, part{p.FormName(), p.FileName(), p.Header.Get("Content-Type"), string(b)})
		}
		got <- parts
		_, _ = io.WriteString(w, sampleMessage)
	}))
	defer srv.Close()

	c := NewClient(srv.URL, testInbox, nil)
	m, err := c.CreateMessage(context.Background(), testSourceID, 21, MessageParams{
		Content: "see attached", EchoID: "tg:555:1",
		Attachments: []Upload{
			{Filename: "photo.jpg", ContentType: "image/jpeg", Body: strings.NewReader("JPEGDATA")},
			{Filename: `we"ird.pdf`, ContentType: "application/pdf", Body: strings.NewReader(strings.Repeat("P", 200000))},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != 1202 {
		t.Errorf("message = %+v", m)
	}
	want := []part{
		{"content", "", "", "see attached"},
		{"echo_id", "", "", "tg:555:1"},
		{"attachments[]", "photo.jpg", "image/jpeg", "JPEGDATA"},
		{"attachments[]", `we"ird.pdf`, "application/pdf", strings.Repeat("P", 200000)},
	}
	if parts := <-got; !reflect.DeepEqual(parts, want) {
		t.Errorf("parts differ: got %d parts", len(parts))
		for i := range parts {
			if i < len(want) && !reflect.DeepEqual(parts[i], want[i]) {
				t.Errorf("part %d = %+v", i, parts[i].name+" "+parts[i].filename+" "+parts[i].contentType)
			}
		}
	}
}

// failingReader fails after some bytes, like a platform download cut off.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := min(len(p), r.n)
	r.n -= n
	return n, nil
}

func TestCreateMessageAttachmentFailures(t *testing.T) {
	t.Run("source fails", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, sampleMessage)
		}))
		defer srv.Close()
		c := NewClient(srv.URL, testInbox, nil)
		_, err := c.CreateMessage(context.Background(), testSourceID, 21, MessageParams{
			Attachments: []Upload{{Filename: "a.bin", Body: &failingReader{n: 100000}}}})
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "attachment 1") {
			t.Fatalf("err = %v", err)
		}
		assertNoLeak(t, err)
	})
	t.Run("server answers before reading the body", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			w.WriteHeader(404)
		}))
		defer srv.Close()
		c := NewClient(srv.URL, testInbox, nil)
		_, err := c.CreateMessage(context.Background(), testSourceID, 21, MessageParams{
			Attachments: []Upload{{Filename: "big.bin", Body: strings.NewReader(strings.Repeat("x", 8<<20))}}})
		// Either the 404 arrives, or the transport fails writing the rest of the body.
		if err == nil || (!IsNotFound(err) && !IsRetryable(err)) {
			t.Fatalf("err = %v", err)
		}
		assertNoLeak(t, err)
	})
}

func TestSmallerRoutes(t *testing.T) {
	ctx := context.Background()
	conv := inboxPath + "/contacts/" + testSourceID + "/conversations/21"
	for _, tc := range []struct {
		name     string
		respond  string
		call     func(c *Client) error
		method   string
		path     string
		wantBody map[string]any
	}{
		{"update contact", `{"id":43,"name":"Alice B","email":"alice@example.com","phone_number":null,"account_id":1,"created_at":"2025-01-10T09:00:00.123Z","identifier":"telegram:1","custom_attributes":{"plan":"pro"},"blocked":false}`,
			func(c *Client) error {
				ct, err := c.UpdateContact(ctx, testSourceID, "telegram:1", ContactParams{Name: "Alice B", CustomAttributes: map[string]any{"plan": "pro"}})
				if err == nil && (ct.ID != 43 || ct.Name != "Alice B" || ct.SourceID != "") {
					t.Errorf("contact = %+v", ct)
				}
				return err
			}, "PATCH", inboxPath + "/contacts/" + testSourceID,
			map[string]any{"name": "Alice B", "custom_attributes": map[string]any{"plan": "pro"},
				"identifier": "telegram:1", "identifier_hash": IdentifierHash(testHMAC, "telegram:1")}},
		{"resolve", `{"id":21,"status":"resolved"}`, func(c *Client) error {
			cv, err := c.ResolveConversation(ctx, testSourceID, 21)
			if err == nil && cv.Status != StatusResolved {
				t.Errorf("conversation = %+v", cv)
			}
			return err
		}, "POST", conv + "/toggle_status", map[string]any{}},
		{"typing on", "", func(c *Client) error { return c.ToggleTyping(ctx, testSourceID, 21, true) },
			"POST", conv + "/toggle_typing", map[string]any{"typing_status": "on"}},
		{"typing off", "", func(c *Client) error { return c.ToggleTyping(ctx, testSourceID, 21, false) },
			"POST", conv + "/toggle_typing", map[string]any{"typing_status": "off"}},
		{"last seen", "", func(c *Client) error { return c.UpdateLastSeen(ctx, testSourceID, 21) },
			"POST", conv + "/update_last_seen", map[string]any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, reqs := restServer(t, 200, tc.respond)
			if err := tc.call(NewClient(srv.URL, testInbox, &Options{HMACToken: testHMAC})); err != nil {
				t.Fatal(err)
			}
			r := <-reqs
			if r.Method != tc.method || r.Path != tc.path {
				t.Errorf("request %s %s, want %s %s", r.Method, r.Path, tc.method, tc.path)
			}
			if r.Body == nil {
				r.Body = map[string]any{}
			}
			if !reflect.DeepEqual(r.Body, tc.wantBody) {
				t.Errorf("body = %v, want %v", r.Body, tc.wantBody)
			}
		})
	}
}

// TestClientKeepsConnectionsForConcurrentRequests: the bridge runs dozens of requests to
// OneChat at once. With Go's default of two idle connections per host, every request beyond
// two opened a connection (over HTTPS, a TLS handshake) and closed it afterwards.
func TestClientKeepsConnectionsForConcurrentRequests(t *testing.T) {
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `[]`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := NewClient(srv.URL, testInbox, &Options{RequestsPerSecond: -1})

	const concurrent, rounds = 16, 20
	for range rounds {
		var wg sync.WaitGroup
		for range concurrent {
			wg.Go(func() {
				if _, err := c.ListMessages(t.Context(), testSourceID, 1, 0); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	// A connection goes back to the pool just after its response body is read, so a round may
	// start before the last one's connections are all back and dial one or two more (seen under
	// load). Without kept connections it is some 14 dials per round, 270 in all.
	if n := opened.Load(); n > 2*concurrent {
		t.Errorf("%d rounds of %d concurrent requests opened %d connections; want at most %d, kept and reused",
			rounds, concurrent, n, 2*concurrent)
	}
}
