package onechattest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client drives the fake's REST API with plain net/http.
type client struct {
	t    *testing.T
	s    *Server
	http *http.Client
	base string // default s.URL()
}

func newClient(t *testing.T, opts *Options) (*Server, *client) {
	t.Helper()
	s := NewServer(t, opts)
	return s, &client{t: t, s: s, http: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *client) inboxPath(rest string) string {
	return "/public/api/v1/inboxes/" + c.s.InboxIdentifier() + rest
}

// call sends body as JSON (nil: no body) and returns status, raw body and headers.
func (c *client) call(method, path string, body any) (int, []byte, http.Header) {
	c.t.Helper()
	var r io.Reader
	ct := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r, ct = bytes.NewReader(b), "application/json"
	}
	return c.raw(method, path, ct, r)
}

func (c *client) raw(method, path, contentType string, body io.Reader) (int, []byte, http.Header) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	target := path
	if !strings.HasPrefix(path, "http") {
		base := c.base
		if base == "" {
			base = c.s.URL()
		}
		target = base + path
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// mustJSON calls and requires a 200 with a JSON object or array body.
func (c *client) mustJSON(method, path string, body any) any {
	c.t.Helper()
	status, b, _ := c.call(method, path, body)
	if status != http.StatusOK {
		c.t.Fatalf("%s %s: status %d, body %s", method, path, status, b)
	}
	return decode(c.t, b)
}

func (c *client) obj(method, path string, body any) map[string]any {
	c.t.Helper()
	m, ok := c.mustJSON(method, path, body).(map[string]any)
	if !ok {
		c.t.Fatalf("%s %s: not an object", method, path)
	}
	return m
}

func (c *client) list(method, path string, body any) []any {
	c.t.Helper()
	l, ok := c.mustJSON(method, path, body).([]any)
	if !ok {
		c.t.Fatalf("%s %s: not an array", method, path)
	}
	return l
}

// session creates a contact session and returns its source_id and pubsub_token.
func (c *client) session(body map[string]any) (sourceID, token string) {
	c.t.Helper()
	m := c.obj("POST", c.inboxPath("/contacts"), body)
	return m["source_id"].(string), m["pubsub_token"].(string)
}

func (c *client) conversation(sourceID string) int64 {
	c.t.Helper()
	m := c.obj("POST", c.inboxPath("/contacts/"+sourceID+"/conversations"), nil)
	return int64(m["id"].(float64))
}

func (c *client) convPath(sourceID string, conv int64, rest string) string {
	return c.inboxPath("/contacts/" + sourceID + "/conversations/" + itoa(conv) + rest)
}

type part struct {
	field, filename, contentType string
	data                         []byte
}

func multipartBody(t *testing.T, fields map[string]string, parts []part) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="`+p.field+`"; filename="`+p.filename+`"`)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = pw.Write(p.data)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.FormDataContentType(), &buf
}

func formBody(v url.Values) (string, io.Reader) {
	return "application/x-www-form-urlencoded", strings.NewReader(v.Encode())
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func wantKeys(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := keys(m); !slices.Equal(got, want) {
		t.Errorf("%s keys = %v, want %v", what, got, want)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// cable is a raw ActionCable test client on coder/websocket.
type cable struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialCable(t *testing.T, s *Server) *cable {
	t.Helper()
	ws, resp, err := websocket.Dial(ctxT(t), s.CableURL(), &websocket.DialOptions{
		Subprotocols: []string{"actioncable-v1-json", "actioncable-unsupported"},
	})
	if err != nil {
		t.Fatalf("dial cable: %v", err)
	}
	_ = resp
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	c := &cable{t: t, ws: ws}
	if f := c.frame(); f["type"] != "welcome" {
		t.Fatalf("first frame = %v, want welcome", f)
	}
	return c
}

func (c *cable) sendRaw(b []byte) {
	c.t.Helper()
	if err := c.ws.Write(ctxT(c.t), websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *cable) command(command, identifier string, data string) {
	c.t.Helper()
	m := map[string]any{"command": command, "identifier": identifier}
	if data != "" {
		m["data"] = data
	}
	b, _ := json.Marshal(m)
	c.sendRaw(b)
}

// readFrame reads one frame, pings included.
func (c *cable) readFrame(ctx context.Context) (map[string]any, error) {
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("frame %s: %v", b, err)
	}
	return m, nil
}

// frame reads the next frame that is not a ping.
func (c *cable) frame() map[string]any {
	c.t.Helper()
	ctx := ctxT(c.t)
	for {
		m, err := c.readFrame(ctx)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if m["type"] != "ping" {
			return m
		}
	}
}

// event reads frames until a broadcast of one of the named events (all when none is named).
func (c *cable) event(names ...string) (identifier, name string, data map[string]any) {
	c.t.Helper()
	for {
		f := c.frame()
		msg, ok := f["message"].(map[string]any)
		if !ok {
			continue
		}
		name, _ = msg["event"].(string)
		if len(names) == 0 || slices.Contains(names, name) {
			data, _ = msg["data"].(map[string]any)
			return f["identifier"].(string), name, data
		}
	}
}

// subscribe subscribes to the token and waits for the confirmation and the presence.update
// the fake sends right after it; it returns the identifier.
func (c *cable) subscribe(token string) string {
	c.t.Helper()
	id := roomIdentifier(token)
	c.command("subscribe", id, "")
	f := c.frame()
	if f["type"] != "confirm_subscription" || f["identifier"] != id {
		c.t.Fatalf("after subscribe got %v", f)
	}
	if gotID, name, _ := c.event(); gotID != id || name != "presence.update" {
		c.t.Fatalf("after confirm got %s %s, want presence.update", gotID, name)
	}
	return id
}

func roomIdentifier(token string) string {
	b, _ := json.Marshal(map[string]string{"channel": "RoomChannel", "pubsub_token": token})
	return string(b)
}
