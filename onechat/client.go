package onechat

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Route templates, used in errors and logs instead of real paths, which contain credentials.
const (
	routeInbox         = "/public/api/v1/inboxes/{inbox}"
	routeContacts      = routeInbox + "/contacts"
	routeContact       = routeContacts + "/{source_id}"
	routeConversations = routeContact + "/conversations"
	routeConversation  = routeConversations + "/{conversation_id}"
	routeMessages      = routeConversation + "/messages"
	routeMessage       = routeMessages + "/{message_id}"
)

const (
	defaultHTTPTimeout = 30 * time.Second
	// idleConnsPerHost is how many idle connections to OneChat the default client keeps: about
	// as many as the bridge runs requests at once (workers and catch-ups).
	idleConnsPerHost = 64
	// maxBodyBytes caps a success body. Conversation payloads embed every message, so this is
	// generous; an error body is read only up to maxErrorBodyBytes.
	maxBodyBytes      = 32 << 20
	maxErrorBodyBytes = 64 << 10
)

// Options configures a Client. The zero value (or nil) is usable.
type Options struct {
	// HTTPClient sends the requests. nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// HMACToken is the inbox's HMAC token. When set, contact create and show add
	// identifier_hash = IdentifierHash(HMACToken, identifier).
	HMACToken string
	// Logger receives debug lines per request (route template, status, duration; never paths)
	// and one warning per feature the server turns out to lack. nil means zap.NewNop().
	Logger *zap.Logger
	// RequestsPerSecond is the client-side request budget every call (downloads included)
	// waits on, so the bridge stays under OneChat's per-IP limit (3000/min by default, 300 on
	// old installs) instead of discovering it by 429s. 0 means DefaultRequestsPerSecond (45);
	// negative means unlimited. Set it lower when other clients share the bridge's IP.
	RequestsPerSecond float64
	// RequestBurst is how many requests may start at once after a quiet spell. 0 means
	// DefaultRequestBurst (5).
	RequestBurst int
	// StorageOrigins are the origins (scheme://host[:port], see ParseOrigin) that attachment
	// downloads may reach besides the base URL's: where OneChat's Active Storage redirects
	// (S3, GCS, Azure). Entries that are not origins are ignored; validate them with
	// ParseOrigin first.
	StorageOrigins []string
	// MaxDownloadBytes caps one attachment download. 0 means DefaultMaxDownloadBytes.
	MaxDownloadBytes int64
}

// Client calls the OneChat Client API of one inbox. It is safe for concurrent use.
type Client struct {
	base      string // scheme://host[/prefix], no trailing slash
	inboxPath string // "/public/api/v1/inboxes/<escaped identifier>"
	http      *http.Client
	hmacToken string
	log       *zap.Logger
	budget    *budget
	// missing marks the optional routes this server turned out not to have.
	missing [numFeatures]atomic.Bool
	// badHosts are data_url hosts that proved unreachable; downloads go to base instead.
	badHosts sync.Map // host string → struct{}
	// foreignHosts are data_url hosts outside the allowed origins already warned about.
	foreignHosts sync.Map // host string → struct{}
	// guard and dl make downloads reach only allowed origins and addresses (download_guard.go).
	guard       *downloadGuard
	dl          *http.Client
	maxDownload int64
}

// NewClient returns a client for the inbox inboxIdentifier of the OneChat at baseURL (for
// example "https://chat.example.com"). opts may be nil.
func NewClient(baseURL, inboxIdentifier string, opts *Options) *Client {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.HTTPClient == nil {
		// Go's default transport keeps two idle connections per host: the bridge's workers
		// and catch-ups run dozens of requests to OneChat at once, and every one beyond two
		// would open (over HTTPS: handshake) a connection of its own and close it after.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = idleConnsPerHost
		o.HTTPClient = &http.Client{Timeout: defaultHTTPTimeout, Transport: tr}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.RequestsPerSecond == 0 {
		o.RequestsPerSecond = DefaultRequestsPerSecond
	}
	if o.RequestBurst == 0 {
		o.RequestBurst = DefaultRequestBurst
	}
	if o.MaxDownloadBytes <= 0 {
		o.MaxDownloadBytes = DefaultMaxDownloadBytes
	}
	guard := newDownloadGuard(baseURL, o.StorageOrigins)
	return &Client{
		guard:       guard,
		dl:          downloadClient(o.HTTPClient, guard),
		maxDownload: o.MaxDownloadBytes,
		base:        strings.TrimRight(baseURL, "/"),
		inboxPath:   "/public/api/v1/inboxes/" + url.PathEscape(inboxIdentifier),
		http:        o.HTTPClient,
		hmacToken:   o.HMACToken,
		log:         o.Logger,
		budget:      newBudget(o.RequestsPerSecond, o.RequestBurst, time.Now),
	}
}

// IdentifierHash returns the identifier_hash OneChat expects for identifier: the lowercase hex
// HMAC-SHA256 of identifier keyed with the inbox's HMAC token.
func IdentifierHash(token, identifier string) string {
	h := hmac.New(sha256.New, []byte(token))
	h.Write([]byte(identifier))
	return hex.EncodeToString(h.Sum(nil))
}

// Inbox returns the inbox's public details. A 404 means the inbox identifier is wrong (or the
// inbox is not an API inbox).
func (c *Client) Inbox(ctx context.Context) (*Inbox, error) {
	var in Inbox
	err := c.do(ctx, call{op: "get inbox", method: http.MethodGet, route: routeInbox, path: c.inboxPath}, &in)
	if err != nil {
		return nil, err
	}
	return &in, nil
}

// CreateContact creates a contact session. Every call without SourceID creates a new session
// (new source_id and pubsub_token), even for a known identifier; with a SourceID that exists,
// the existing session is returned unchanged.
func (c *Client) CreateContact(ctx context.Context, p ContactParams) (*Contact, error) {
	body := map[string]any{}
	setIf := func(k, v string) {
		if v != "" {
			body[k] = v
		}
	}
	setIf("identifier", p.Identifier)
	setIf("name", p.Name)
	setIf("email", p.Email)
	setIf("phone_number", p.PhoneNumber)
	setIf("avatar_url", p.AvatarURL)
	setIf("source_id", p.SourceID)
	if len(p.CustomAttributes) > 0 {
		body["custom_attributes"] = p.CustomAttributes
	}
	if c.hmacToken != "" {
		// OneChat hashes identifier.to_s, so a missing identifier is hashed as "".
		body["identifier_hash"] = IdentifierHash(c.hmacToken, p.Identifier)
	}
	var ct Contact
	err := c.do(ctx, call{op: "create contact", method: http.MethodPost, route: routeContacts,
		path: c.inboxPath + "/contacts", body: body, contactRoute: true}, &ct)
	if err != nil {
		return nil, err
	}
	return &ct, nil
}

// VerifiesIdentity reports whether the client has an HMAC token, and so whether a show of a
// contact session (GetContact) marks it verified.
func (c *Client) VerifiesIdentity() bool { return c.hmacToken != "" }

// GetContact shows the contact session sourceID. When an HMAC token is configured, identifier
// and its hash are sent: that is what marks the session verified (hmac_verified), which a
// create never does, so call it once after CreateContact when verification matters
// (cross-session history, fan-out, the agents' verified badge). An inbox with identity
// validation needs the pair even for this read. identifier is unused without a token.
//
// The pair goes in a JSON request body, not the query: Rails merges body parameters into a
// GET's params as it does the query's, and a URL lands in proxy and access logs, where the hash
// would let anyone who reads them verify that session.
func (c *Client) GetContact(ctx context.Context, sourceID, identifier string) (*Contact, error) {
	var body any
	if c.hmacToken != "" {
		body = map[string]any{"identifier": identifier, "identifier_hash": IdentifierHash(c.hmacToken, identifier)}
	}
	var ct Contact
	err := c.do(ctx, call{op: "get contact", method: http.MethodGet, route: routeContact, path: c.contactPath(sourceID),
		body: body, contactRoute: true}, &ct)
	if err != nil {
		return nil, err
	}
	return &ct, nil
}

// CreateConversation starts a new conversation for the session. With the inbox's
// lock_to_single_conversation the server returns the last existing one instead, in any
// status: compare the returned ID.
func (c *Client) CreateConversation(ctx context.Context, sourceID string) (*Conversation, error) {
	var cv Conversation
	err := c.do(ctx, call{op: "create conversation", method: http.MethodPost, route: routeConversations,
		path: c.contactPath(sourceID) + "/conversations", body: map[string]any{}}, &cv)
	if err != nil {
		return nil, err
	}
	return &cv, nil
}

// GetConversation shows one conversation of the session by its display id. A 404 means the
// conversation does not exist (or was deleted). Servers older than the show route answer 404
// for every id; the client tells the two apart (see featureMissing) and then answers from the
// conversation list instead, which every version has, after one warning.
func (c *Client) GetConversation(ctx context.Context, sourceID string, conversationID int64) (*Conversation, error) {
	const op = "get conversation"
	if !c.missing[featureShow].Load() {
		var cv Conversation
		err := c.do(ctx, call{op: op, method: http.MethodGet, route: routeConversation,
			path: c.conversationPath(sourceID, conversationID)}, &cv)
		if err == nil {
			return &cv, nil
		}
		if missing, perr := c.featureMissing(ctx, featureShow, sourceID, conversationID, err); perr != nil || !missing {
			return nil, cmp.Or(perr, err)
		}
	}
	list, err := c.ListConversations(ctx, sourceID)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	for i := range list {
		if list[i].ID == conversationID {
			return &list[i], nil
		}
	}
	return nil, &APIError{StatusCode: http.StatusNotFound, Op: op}
}

// ListConversations lists the session's conversations, in no particular order, each with all
// its messages embedded (unpaged): avoid it on hot paths. A verified session also sees its
// contact's conversations from other sessions and inboxes; compare InboxID when that matters.
func (c *Client) ListConversations(ctx context.Context, sourceID string) ([]Conversation, error) {
	var cs flexList[Conversation]
	err := c.do(ctx, call{op: "list conversations", method: http.MethodGet, route: routeConversations,
		path: c.contactPath(sourceID) + "/conversations"}, &cs)
	if err != nil {
		return nil, err
	}
	return cs, nil
}

// UpdateMessage answers an interactive message (input_select, form, input_csat …) by storing
// submitted values on it, which replace any earlier answer; OneChat then broadcasts
// message.updated. It posts no message of its own: a bridge that wants the choice visible
// as text must CreateMessage too. A CSAT answer after the survey expired is a 422
// (IsValidation), and OneChat reports any other failure of this route as a 500.
func (c *Client) UpdateMessage(ctx context.Context, sourceID string, conversationID, messageID int64, v SubmittedValues) (*Message, error) {
	var m Message
	err := c.do(ctx, call{op: "update message", method: http.MethodPatch, route: routeMessage,
		path: c.conversationPath(sourceID, conversationID) + "/messages/" + strconv.FormatInt(messageID, 10),
		body: map[string]any{"submitted_values": v}}, &m)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// CreateMessage posts an incoming message as the contact: JSON without attachments, a streamed
// multipart/form-data upload with them. A message to a resolved conversation reopens it.
// It returns the message as OneChat recorded it; PostMessage, for callers that need only its
// id, decodes nothing else of the answer.
func (c *Client) CreateMessage(ctx context.Context, sourceID string, conversationID int64, p MessageParams) (*Message, error) {
	var m Message
	if err := c.do(ctx, c.postMessage(sourceID, conversationID, p), &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// PostMessage posts a message as CreateMessage does and returns its id in OneChat (0 when the
// answer has none): of OneChat's answer, the full message with its sender, attachments and
// conversation, it decodes only the id, which is all the bridge records of a message it posted.
func (c *Client) PostMessage(ctx context.Context, sourceID string, conversationID int64, p MessageParams) (int64, error) {
	var m postedMessage
	if err := c.do(ctx, c.postMessage(sourceID, conversationID, p), &m); err != nil {
		return 0, err
	}
	return int64(m.ID), nil
}

// postedMessage is the part of OneChat's answer to a posted message that PostMessage reads.
type postedMessage struct {
	ID flexInt `json:"id"`
}

// postMessage is the request CreateMessage and PostMessage send.
func (c *Client) postMessage(sourceID string, conversationID int64, p MessageParams) call {
	cl := call{op: "create message", method: http.MethodPost, route: routeMessages,
		path: c.conversationPath(sourceID, conversationID) + "/messages"}
	if len(p.Attachments) > 0 {
		cl.multipart = writeMessageForm(p)
	} else {
		body := map[string]any{"content": p.Content}
		if p.EchoID != "" {
			body["echo_id"] = p.EchoID
		}
		cl.body = body
	}
	return cl
}

// ListMessages returns up to 20 messages of the conversation in ascending order: the latest
// 20 when before is 0, else the 20 just before message id before. Private notes and activity
// messages are never included. A page shorter than 20 is the last one.
func (c *Client) ListMessages(ctx context.Context, sourceID string, conversationID int64, before int64) ([]Message, error) {
	path := c.conversationPath(sourceID, conversationID) + "/messages"
	if before > 0 {
		path += "?before=" + strconv.FormatInt(before, 10)
	}
	var ms messageList
	err := c.do(ctx, call{op: "list messages", method: http.MethodGet, route: routeMessages, path: path}, &ms)
	if err != nil {
		return nil, err
	}
	return ms, nil
}

// UpdateContact updates the session's contact (name, email, phone number, avatar URL; custom
// attributes are deep-merged), which a create that matched an existing contact never does.
// p.Identifier is never sent: OneChat would ignore it anyway. identifier is sent only with its
// hash for the HMAC check (which also verifies the session) when a token is configured. The answer is the full
// contact record: it has no SourceID or PubsubToken (keep yours), and its ID can differ when
// OneChat merged the contact into another with the same email or phone.
func (c *Client) UpdateContact(ctx context.Context, sourceID, identifier string, p ContactParams) (*Contact, error) {
	body := map[string]any{}
	for k, v := range map[string]string{"name": p.Name, "email": p.Email,
		"phone_number": p.PhoneNumber, "avatar_url": p.AvatarURL} {
		if v != "" {
			body[k] = v
		}
	}
	if len(p.CustomAttributes) > 0 {
		body["custom_attributes"] = p.CustomAttributes
	}
	if c.hmacToken != "" {
		body["identifier"] = identifier
		body["identifier_hash"] = IdentifierHash(c.hmacToken, identifier)
	}
	var ct Contact
	err := c.do(ctx, call{op: "update contact", method: http.MethodPatch, route: routeContact,
		path: c.contactPath(sourceID), body: body, contactRoute: true}, &ct)
	if err != nil {
		return nil, err
	}
	return &ct, nil
}

// ResolveConversation resolves the conversation (toggle_status, which never reopens). It is
// idempotent. On a server older than the route it returns ErrUnsupported, after one warning
// and without asking again.
func (c *Client) ResolveConversation(ctx context.Context, sourceID string, conversationID int64) (*Conversation, error) {
	var cv Conversation
	err := c.optional(ctx, featureToggleStatus, sourceID, conversationID, call{op: "resolve conversation",
		method: http.MethodPost, route: routeConversation + "/toggle_status",
		path: c.conversationPath(sourceID, conversationID) + "/toggle_status", body: map[string]any{}}, &cv)
	if err != nil {
		return nil, err
	}
	return &cv, nil
}

// ToggleTyping shows or hides the contact's typing indicator to agents. OneChat never times
// it out, so always send off. On a server older than the route it returns ErrUnsupported,
// after one warning and without asking again.
func (c *Client) ToggleTyping(ctx context.Context, sourceID string, conversationID int64, on bool) error {
	status := "off"
	if on {
		status = "on"
	}
	return c.optional(ctx, featureToggleTyping, sourceID, conversationID, call{op: "toggle typing",
		method: http.MethodPost, route: routeConversation + "/toggle_typing",
		path: c.conversationPath(sourceID, conversationID) + "/toggle_typing",
		body: map[string]any{"typing_status": status}}, nil)
}

// UpdateLastSeen marks the conversation seen by the contact; OneChat then marks agent
// messages read (and broadcasts message.updated for each). On a server older than the route
// it returns ErrUnsupported, after one warning and without asking again.
func (c *Client) UpdateLastSeen(ctx context.Context, sourceID string, conversationID int64) error {
	return c.optional(ctx, featureUpdateLastSeen, sourceID, conversationID, call{op: "update last seen",
		method: http.MethodPost, route: routeConversation + "/update_last_seen",
		path: c.conversationPath(sourceID, conversationID) + "/update_last_seen", body: map[string]any{}}, nil)
}

func (c *Client) contactPath(sourceID string) string {
	return c.inboxPath + "/contacts/" + url.PathEscape(sourceID)
}

func (c *Client) conversationPath(sourceID string, conversationID int64) string {
	return c.contactPath(sourceID) + "/conversations/" + strconv.FormatInt(conversationID, 10)
}

// call describes one request. path is the real (secret-bearing) path and query; route is the
// template that stands in for it in errors and logs.
type call struct {
	op     string
	method string
	route  string
	path   string
	body   any // JSON-encoded when non-nil
	// multipart, when set, writes a multipart/form-data body instead, streamed.
	multipart func(*multipart.Writer) error
	// contactRoute marks the routes where OneChat checks HMAC, and so where a 500 while we
	// send an identifier_hash means ErrHMAC.
	contactRoute bool
	// accessToken, when set, goes in the api_access_token header (Application API calls).
	accessToken string
}

// do sends the request and decodes a 2xx JSON body into out (when out is non-nil and the body
// is not empty).
func (c *Client) do(ctx context.Context, cl call, out any) error {
	if err := c.budget.wait(ctx); err != nil {
		return fmt.Errorf("%s: %w: %w", cl.op, ErrNoBudget, err)
	}
	var (
		rdr         io.Reader
		contentType string
		finish      = func() error { return nil }
	)
	switch {
	case cl.multipart != nil:
		rdr, contentType, finish = streamMultipart(cl.multipart)
	case cl.body != nil:
		b, err := json.Marshal(cl.body)
		if err != nil {
			return fmt.Errorf("%s: encode request: %w", cl.op, err)
		}
		rdr, contentType = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.base+cl.path, rdr)
	if err != nil {
		_ = finish()
		// The error text of a bad URL contains the URL; keep only the route.
		return fmt.Errorf("%s: build request for %s: invalid base URL", cl.op, cl.route)
	}
	req.Header.Set("Accept", "application/json")
	if cl.accessToken != "" {
		req.Header.Set("api_access_token", cl.accessToken)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}

	start := time.Now()
	resp, err := c.http.Do(req)
	if werr := finish(); werr != nil {
		// The body could not be produced (an attachment's reader failed): that is the cause,
		// whatever the transport made of the cut-off request.
		if resp != nil {
			resp.Body.Close()
		}
		return fmt.Errorf("%s: write request body: %w", cl.op, werr)
	}
	if err != nil {
		c.log.Debug("onechat request failed", zap.String("op", cl.op), zap.String("route", cl.route),
			zap.Duration("duration", time.Since(start)))
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("%s: %w", cl.op, ctx.Err())
		}
		return fmt.Errorf("%s: %w", cl.op, &transportError{err: redactURLError(err, c.base+cl.route)})
	}
	defer resp.Body.Close()
	c.log.Debug("onechat request", zap.String("op", cl.op), zap.String("route", cl.route),
		zap.Int("status", resp.StatusCode), zap.Duration("duration", time.Since(start)))

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.apiError(ctx, cl, resp)
	}
	c.budget.succeeded()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return fmt.Errorf("%s: read response: %w", cl.op, &transportError{err: redactURLError(err, c.base+cl.route)})
	}
	if len(b) > maxBodyBytes {
		return fmt.Errorf("%s: response larger than %d bytes", cl.op, maxBodyBytes)
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := decodeJSON(b, out); err != nil {
		return fmt.Errorf("%s: decode response: %w", cl.op, err)
	}
	return nil
}

// decodeJSON is json.Unmarshal, except that a type with a decoder of its own (Message, Contact,
// Conversation: each validates its input with json.Unmarshal) is handed the bytes directly;
// json.Unmarshal would first validate and skip them, two passes for nothing.
func decodeJSON(b []byte, out any) error {
	if u, ok := out.(json.Unmarshaler); ok {
		return u.UnmarshalJSON(b)
	}
	return json.Unmarshal(b, out)
}

// errBodyAbandoned is what the multipart writer sees when the request ended before it finished
// (the server answered early, or the transport failed): not an error of the body itself.
var errBodyAbandoned = errors.New("request ended before its body was written")

// streamMultipart runs write in a goroutine that feeds a pipe, so large attachments are never
// held in memory. finish closes the pipe, waits for the goroutine and returns its error, if
// the body itself failed; it must be called once the request is done.
func streamMultipart(write func(*multipart.Writer) error) (body io.Reader, contentType string, finish func() error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan error, 1)
	go func() {
		err := write(mw)
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	return pr, mw.FormDataContentType(), func() error {
		pr.CloseWithError(errBodyAbandoned)
		err := <-done
		if errors.Is(err, errBodyAbandoned) || errors.Is(err, io.ErrClosedPipe) {
			return nil
		}
		return err
	}
}

var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"", "\r", "", "\n", "")

// writeMessageForm writes the multipart form of a message: content, echo_id and one
// attachments[] part per upload, each with its own Content-Type.
func writeMessageForm(p MessageParams) func(*multipart.Writer) error {
	return func(mw *multipart.Writer) error {
		if err := mw.WriteField("content", p.Content); err != nil {
			return err
		}
		if p.EchoID != "" {
			if err := mw.WriteField("echo_id", p.EchoID); err != nil {
				return err
			}
		}
		for i, u := range p.Attachments {
			ct := u.ContentType
			if ct == "" {
				ct = "application/octet-stream"
			}
			name := u.Filename
			if name == "" {
				name = "file"
			}
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="attachments[]"; filename="`+quoteEscaper.Replace(name)+`"`)
			h.Set("Content-Type", ct)
			w, err := mw.CreatePart(h)
			if err != nil {
				return err
			}
			if u.Body == nil {
				continue
			}
			if _, err := io.Copy(w, u.Body); err != nil {
				return fmt.Errorf("attachment %d: %w", i+1, err)
			}
		}
		return nil
	}
}

// apiError builds the *APIError for a non-2xx response. Bodies are opaque except for the
// "message" of a 422, which is the validation text operators need.
func (c *Client) apiError(ctx context.Context, cl call, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	ae := &APIError{StatusCode: resp.StatusCode, Op: cl.op}
	switch resp.StatusCode {
	case http.StatusUnprocessableEntity:
		var body struct {
			Message flexString `json:"message"`
			Error   flexString `json:"error"`
		}
		if json.Unmarshal(b, &body) == nil {
			ae.Message = string(body.Message)
			if cl.route == routeMessage {
				// The CSAT expiry is the one 422 that says "error" instead of "message".
				ae.Message = string(cmp.Or(body.Message, body.Error))
			}
		}
	case http.StatusTooManyRequests:
		// The limit is per IP, so every caller of this client pauses, not just this one.
		// RetryAfter tells the caller how long: the server's header, or the pause chosen.
		ae.RetryAfter = c.budget.throttled(parseRetryAfter(resp.Header.Get("Retry-After")))
		c.log.Warn("onechat throttled the bridge; pausing all requests", zap.String("op", cl.op),
			zap.Duration("pause", ae.RetryAfter))
	case http.StatusServiceUnavailable:
		ae.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
	case http.StatusInternalServerError:
		if !cl.contactRoute {
			break
		}
		if c.hmacToken != "" {
			ae.err = ErrHMAC
		} else if cl.route != routeInbox && c.inboxDemandsHMAC(ctx) {
			ae.err = ErrHMACRequired
		}
	case http.StatusUnauthorized:
		// Servers with the "fixed" HMAC check (upstream PR #15338 and forks) answer 401.
		if cl.contactRoute && c.hmacToken != "" {
			ae.err = ErrHMAC
		}
	}
	return ae
}

// inboxDemandsHMAC reports whether the inbox has identity validation on. It is asked only
// after a 500 on a contact route sent without a hash, to tell a missing ONECHAT_HMAC_TOKEN
// (a configuration error) from a server fault (worth retrying).
func (c *Client) inboxDemandsHMAC(ctx context.Context) bool {
	var in Inbox
	err := c.do(ctx, call{op: "get inbox", method: http.MethodGet, route: routeInbox, path: c.inboxPath}, &in)
	return err == nil && in.IdentityValidationEnabled
}

// parseRetryAfter reads a Retry-After in seconds or as an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
