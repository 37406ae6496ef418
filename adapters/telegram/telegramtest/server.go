// Package telegramtest is an in-memory fake of the Telegram Bot API for hermetic tests.
//
// It speaks the real wire protocol, so the adapter is tested against Telegram's behaviour
// rather than against its own assumptions: POST (or GET) /bot<token>/<method> with a
// multipart, form or JSON body; replies {"ok":true,"result":…} or
// {"ok":false,"error_code":…,"description":…,"parameters":{"retry_after":…}} with the HTTP
// status equal to error_code; a wrong token gets 401. getUpdates long-polls, an offset
// confirms (drops) the updates before it, and a getUpdates that overlaps an earlier one
// terminates that one with 409, all as Telegram does.
//
// sendMediaGroup takes 2–10 items whose media name their multipart part as attach://<part>,
// checks every item before sending any, and answers with the array of messages it created.
//
// Tests play the users (SendText, SendGroupText, PushUpdate), inspect what the bot sent
// (Sent, WaitSent) and what it confirmed (Acked, WaitAcked), and inject faults (Block,
// RateLimit, FailNext). Every Wait method blocks on a state change, never on a timer.
package telegramtest

import (
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
)

// BotUsername is the username getMe reports for the fake bot.
const BotUsername = "telegramtest_bot"

// firstUpdateID is the id of the first update. Real update ids are large; a large start catches
// code that confuses update ids with message ids.
const firstUpdateID = 100_000_001

// maxTextLen is Telegram's limit for a message text, in UTF-16 code units.
const maxTextLen = 4096

// User is a Telegram user the test plays.
type User struct {
	ID                            int64
	FirstName, LastName, Username string
	// LanguageCode is the IETF tag of the user's app language ("es", "pt-br"), as Telegram
	// sends it in every message's from; empty sends none.
	LanguageCode string
}

// SentMessage is a message the bot sent to a chat, as the user sees it now: edits change it,
// a deletion marks it.
type SentMessage struct {
	MessageID int
	// Method is the Bot API method that created it: sendMessage, sendPhoto, …
	Method string
	// Text is the text (or caption) as the user sees it: with parse_mode HTML, the tags are
	// parsed away into Entities, as Telegram does.
	Text string
	// Raw is the text or caption parameter exactly as the bot sent it.
	Raw string
	// Entities are the formatting Telegram parsed out of Raw.
	Entities []Entity
	// ReplyTo is the message the bot replied to, or 0.
	ReplyTo int
	// MediaGroupID is the album the message belongs to (sendMediaGroup), or "".
	MediaGroupID string
	// ParseMode is the parse_mode the bot asked for, or "".
	ParseMode string
	// File is the uploaded file of a media message, nil for text.
	File *Upload
	// Keyboard is the inline keyboard, if any.
	Keyboard [][]Button
	// Edits counts the edits of this message; Deleted says whether it was deleted.
	Edits   int
	Deleted bool
}

// Entity is a formatting entity, offsets in UTF-16 code units as Telegram counts them.
type Entity struct {
	Type   string
	Offset int
	Length int
	URL    string
}

// Upload is a file the bot uploaded.
type Upload struct {
	// Field is the multipart field it came in (photo, document, voice, …).
	Field string
	Name  string
	MIME  string
	Data  []byte
	// Size is the file's length: len(Data), or what arrived when uploads are discarded (see
	// DiscardUploads).
	Size int64
}

// Button is an inline keyboard button.
type Button struct {
	Text         string `json:"text"`
	CallbackData string `json:"callback_data,omitempty"`
	URL          string `json:"url,omitempty"`
}

// Wire types: the fake builds its JSON from its own types rather than the client library's
// models, so a bug in those models cannot cancel out in tests.
type wireUser struct {
	ID        int64  `json:"id"`
	IsBot     bool   `json:"is_bot"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name,omitempty"`
	Username  string `json:"username,omitempty"`
	Language  string `json:"language_code,omitempty"`
}

type wireChat struct {
	ID        int64  `json:"id"`
	Type      string `json:"type"`
	Title     string `json:"title,omitempty"`
	Username  string `json:"username,omitempty"`
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
}

type wireEntity struct {
	Type   string `json:"type"`
	Offset int    `json:"offset"`
	Length int    `json:"length"`
	URL    string `json:"url,omitempty"`
}

type wireMessage struct {
	MessageID       int             `json:"message_id"`
	From            *wireUser       `json:"from,omitempty"`
	Chat            wireChat        `json:"chat"`
	Date            int64           `json:"date"`
	EditDate        int64           `json:"edit_date,omitempty"`
	MediaGroupID    string          `json:"media_group_id,omitempty"`
	ReplyToMessage  *wireMessage    `json:"reply_to_message,omitempty"`
	Text            string          `json:"text,omitempty"`
	Entities        []wireEntity    `json:"entities,omitempty"`
	Caption         string          `json:"caption,omitempty"`
	CaptionEntities []wireEntity    `json:"caption_entities,omitempty"`
	Photo           json.RawMessage `json:"photo,omitempty"`
	Document        json.RawMessage `json:"document,omitempty"`
	Voice           json.RawMessage `json:"voice,omitempty"`
	Audio           json.RawMessage `json:"audio,omitempty"`
	Video           json.RawMessage `json:"video,omitempty"`
	VideoNote       json.RawMessage `json:"video_note,omitempty"`
	Animation       json.RawMessage `json:"animation,omitempty"`
	Sticker         json.RawMessage `json:"sticker,omitempty"`
	ReplyMarkup     *wireMarkup     `json:"reply_markup,omitempty"`
}

type wireMarkup struct {
	InlineKeyboard [][]Button `json:"inline_keyboard"`
}

type update struct {
	id   int64
	kind string // "message", "edited_message", …: the field that carries the payload
	raw  json.RawMessage
}

type chat struct {
	info   wireChat
	lastID int // message ids are per chat, shared by the user and the bot
	msgs   map[int]wireMessage
}

// Server is the fake Bot API. Its methods are safe for concurrent use.
type Server struct {
	token string
	bot   wireUser
	url   string

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change: what Wait* block on
	closed  bool

	nextUpdateID int64
	queue        []update // unconfirmed updates, ascending id
	acked        int64
	allowed      []string // allowed_updates of the last getUpdates that set it; nil: all
	pollGen      uint64   // bumped by every getUpdates; an older waiting poll gets 409
	polling      int      // getUpdates calls waiting right now
	webhookURL   string

	chats   map[int64]*chat
	sent    map[int64][]SentMessage
	blocked map[int64]bool
	calls   map[string]int

	rateN, rateAfter int
	failN, failCode  int

	files         map[string]*storedFile // by file_id
	nextFile      int
	downloadLimit int64
	webhookSecret string
	answers       []CallbackAnswer
	actions       map[int64]int
	rejectPhotos  bool
	now           func() time.Time
	discard       bool
	nextGroup     int
}

// New returns a fake Bot API that accepts token, for use without testing.TB (for example by an
// end-to-end test that runs the real binary). Serve Handler yourself and call Close when done.
func New(token string) *Server {
	botID, _ := strconv.ParseInt(strings.SplitN(token, ":", 2)[0], 10, 64)
	if botID == 0 {
		botID = 1
	}
	return &Server{
		token:         token,
		bot:           wireUser{ID: botID, IsBot: true, FirstName: "Test Bot", Username: BotUsername},
		changed:       make(chan struct{}),
		nextUpdateID:  firstUpdateID,
		chats:         make(map[int64]*chat),
		sent:          make(map[int64][]SentMessage),
		blocked:       make(map[int64]bool),
		calls:         make(map[string]int),
		files:         make(map[string]*storedFile),
		actions:       make(map[int64]int),
		downloadLimit: CloudDownloadLimit,
		now:           time.Now,
	}
}

// NewServer starts the fake on an httptest server on 127.0.0.1 and closes both when the test
// ends.
func NewServer(t testing.TB, token string) *Server {
	t.Helper()
	s := New(token)
	hs := httptest.NewServer(s.Handler())
	s.url = hs.URL
	t.Cleanup(func() {
		s.Close() // first: httptest's Close waits for the long polls it unblocks
		hs.Close()
	})
	return s
}

// URL is the base URL to use as the adapter's API URL. It is empty for a Server made with New.
func (s *Server) URL() string { return s.url }

// Handler serves the Bot API.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Close makes pending long polls return (empty) and every later request fail with 500.
// It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.broadcastLocked()
}

// broadcastLocked wakes everything waiting on a state change. s.mu must be held.
func (s *Server) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitFor blocks until cond, called with s.mu held, returns true, or ctx is done.
func (s *Server) waitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		if cond() {
			s.mu.Unlock()
			return nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// SendText makes from write text to the bot in their private chat (whose id is from.ID) and
// returns the message id. Text starting with '/' carries a bot_command entity, as Telegram
// adds one.
func (s *Server) SendText(from User, text string) (messageID int) {
	return s.SendReply(from, text, 0)
}

// SendReply is SendText replying to the message replyTo of that chat (0: no reply).
func (s *Server) SendReply(from User, text string, replyTo int) (messageID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.chatLocked(wireChat{ID: from.ID, Type: "private", Username: from.Username,
		FirstName: from.FirstName, LastName: from.LastName})
	return s.userMessageLocked(c, from, text, replyTo)
}

// SendGroupText makes from write text in the group chatID (negative, as Telegram's are) and
// returns the message id.
func (s *Server) SendGroupText(chatID int64, from User, text string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.chatLocked(wireChat{ID: chatID, Type: "group", Title: "Group " + strconv.FormatInt(chatID, 10)})
	return s.userMessageLocked(c, from, text, 0)
}

func (s *Server) chatLocked(info wireChat) *chat {
	c, ok := s.chats[info.ID]
	if !ok {
		c = &chat{info: info, msgs: make(map[int]wireMessage)}
		s.chats[info.ID] = c
	}
	return c
}

func (s *Server) userMessageLocked(c *chat, from User, text string, replyTo int) int {
	c.lastID++
	m := wireMessage{
		MessageID: c.lastID,
		From:      &wireUser{ID: from.ID, FirstName: from.FirstName, LastName: from.LastName, Username: from.Username, Language: from.LanguageCode},
		Chat:      c.info,
		Date:      time.Now().Unix(),
		Text:      text,
	}
	if strings.HasPrefix(text, "/") {
		cmd, _, _ := strings.Cut(text, " ")
		m.Entities = []wireEntity{{Type: "bot_command", Offset: 0, Length: utf16Len(cmd)}}
	}
	if r, ok := c.msgs[replyTo]; ok {
		r.ReplyToMessage = nil // Telegram does not nest replies further
		m.ReplyToMessage = &r
	}
	c.msgs[m.MessageID] = m
	s.enqueueLocked("message", m)
	return m.MessageID
}

// PushUpdate queues an update of any kind, e.g. PushUpdate("edited_message", msg) or a message
// with a photo, and returns its update_id. payload is marshalled as the value of field.
func (s *Server) PushUpdate(field string, payload any) (updateID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enqueueLocked(field, payload)
}

func (s *Server) enqueueLocked(kind string, payload any) int64 {
	id := s.nextUpdateID
	s.nextUpdateID++
	if s.allowed != nil && !slices.Contains(s.allowed, kind) {
		return id // Telegram does not even create updates the bot did not subscribe to
	}
	p, err := json.Marshal(payload)
	if err != nil {
		panic("telegramtest: cannot marshal update payload: " + err.Error())
	}
	raw, _ := json.Marshal(map[string]json.RawMessage{
		"update_id": json.RawMessage(strconv.FormatInt(id, 10)),
		kind:        p,
	})
	s.queue = append(s.queue, update{id: id, kind: kind, raw: raw})
	s.broadcastLocked()
	return id
}

// Sent returns the messages the bot sent to chatID, oldest first.
func (s *Server) Sent(chatID int64) []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent[chatID])
}

// WaitSent waits until the bot has sent at least n messages to chatID and returns them all.
func (s *Server) WaitSent(ctx context.Context, chatID int64, n int) ([]SentMessage, error) {
	var out []SentMessage
	err := s.waitFor(ctx, func() bool {
		if len(s.sent[chatID]) < n {
			return false
		}
		out = slices.Clone(s.sent[chatID])
		return true
	})
	return out, err
}

// Acked returns the highest update_id confirmed by a getUpdates offset, or 0.
func (s *Server) Acked() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// WaitAcked waits until updateID is confirmed.
func (s *Server) WaitAcked(ctx context.Context, updateID int64) error {
	return s.waitFor(ctx, func() bool { return s.acked >= updateID })
}

// WaitPolling waits until a getUpdates long poll is waiting for updates.
func (s *Server) WaitPolling(ctx context.Context) error {
	return s.waitFor(ctx, func() bool { return s.polling > 0 })
}

// Pending returns how many updates are queued and not yet confirmed.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// AllowedUpdates returns the allowed_updates of the last getUpdates that set them.
func (s *Server) AllowedUpdates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.allowed)
}

// Calls returns how often method was called with the right token (case-insensitive, as
// Telegram's method names are).
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[strings.ToLower(method)]
}

// Block makes every send to the private chat of userID fail with 403 "Forbidden: bot was
// blocked by the user".
func (s *Server) Block(userID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked[userID] = true
}

// RateLimit makes the next n send calls (methods starting with "send") fail with 429 and
// parameters.retry_after = retryAfter seconds.
func (s *Server) RateLimit(n int, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateN, s.rateAfter = n, retryAfter
}

// FailNext makes the next n calls of any method fail with the Bot API error for status
// (400, 401, 403, 409, 429, 500, 502, …), with Telegram's usual description.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode = n, status
}

// apiError is an error reply.
type apiError struct {
	code        int
	description string
	retryAfter  int
}

func describe(code int) apiError {
	switch code {
	case http.StatusBadRequest:
		return apiError{code: code, description: "Bad Request: injected failure"}
	case http.StatusUnauthorized:
		return apiError{code: code, description: "Unauthorized"}
	case http.StatusForbidden:
		return apiError{code: code, description: "Forbidden: bot was blocked by the user"}
	case http.StatusNotFound:
		return apiError{code: code, description: "Not Found"}
	case http.StatusConflict:
		return errTerminated
	case http.StatusTooManyRequests:
		return apiError{code: code, description: "Too Many Requests: retry after 1", retryAfter: 1}
	default:
		return apiError{code: code, description: http.StatusText(code)}
	}
}

var (
	errTerminated = apiError{code: http.StatusConflict, description: "Conflict: terminated by other " +
		"getUpdates request; make sure that only one bot instance is running"}
	errWebhookActive = apiError{code: http.StatusConflict, description: "Conflict: can't use getUpdates " +
		"method while webhook is active; use deleteWebhook to delete the webhook first"}
)

func badRequest(description string) apiError {
	return apiError{code: http.StatusBadRequest, description: "Bad Request: " + description}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeResult(w http.ResponseWriter, result any) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "result": result})
}

func writeError(w http.ResponseWriter, e apiError) {
	body := map[string]any{"ok": false, "error_code": e.code, "description": e.description}
	if e.retryAfter > 0 {
		body["parameters"] = map[string]int{"retry_after": e.retryAfter}
	}
	writeJSON(w, e.code, body)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/file/bot"); ok {
		s.serveFile(w, r, rest)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	if !ok {
		writeError(w, describe(http.StatusNotFound))
		return
	}
	token, method, _ := strings.Cut(rest, "/")
	if token != s.token {
		writeError(w, describe(http.StatusUnauthorized))
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		writeError(w, describe(http.StatusNotFound))
		return
	}
	s.mu.Lock()
	discard := s.discard
	s.mu.Unlock()
	p, files, err := parseParams(r, discard)
	if err != nil {
		writeError(w, badRequest("can't parse request body"))
		return
	}
	method = strings.ToLower(method)

	s.mu.Lock()
	s.calls[method]++
	if s.closed {
		s.mu.Unlock()
		writeError(w, apiError{code: http.StatusInternalServerError, description: "Internal Server Error: fake closed"})
		return
	}
	if s.failN > 0 {
		s.failN--
		e := describe(s.failCode)
		s.mu.Unlock()
		writeError(w, e)
		return
	}
	if strings.HasPrefix(method, "send") && s.rateN > 0 {
		s.rateN--
		e := apiError{code: http.StatusTooManyRequests, retryAfter: s.rateAfter,
			description: "Too Many Requests: retry after " + strconv.Itoa(s.rateAfter)}
		s.mu.Unlock()
		writeError(w, e)
		return
	}
	s.mu.Unlock()

	var (
		result  any
		failure *apiError
	)
	switch method {
	case "getme":
		result = s.bot
	case "getupdates":
		result, failure = s.getUpdates(r, p)
		if result == nil && failure == nil {
			return // the client went away
		}
	case "sendmessage":
		result, failure = s.sendMessage(p)
	case "sendchataction":
		result, failure = s.sendChatAction(p)
	case "setwebhook":
		result, failure = s.setWebhook(p)
	case "deletewebhook":
		s.mu.Lock()
		s.webhookURL = ""
		if p["drop_pending_updates"] == "true" && len(s.queue) > 0 {
			s.acked = max(s.acked, s.queue[len(s.queue)-1].id)
			s.queue = nil
		}
		s.broadcastLocked()
		s.mu.Unlock()
		result = true
	case "getwebhookinfo":
		s.mu.Lock()
		result = map[string]any{"url": s.webhookURL, "has_custom_certificate": false, "pending_update_count": len(s.queue)}
		s.mu.Unlock()
	default:
		var handled bool
		result, failure, handled = s.moreMethods(method, p, files)
		if !handled {
			e := describe(http.StatusNotFound)
			failure = &e
		}
	}
	// Replies are written without s.mu held, so a slow client cannot stall the fake.
	if failure != nil {
		writeError(w, *failure)
		return
	}
	writeResult(w, result)
}

// params are a request's parameters. Like Telegram, the fake takes them from the query string
// and from a JSON, urlencoded or multipart body; in a JSON body, a string is unquoted and
// anything else (numbers, objects, arrays) is kept as JSON text, which is how the other
// encodings carry it.
type params map[string]string

func parseParams(r *http.Request, discard bool) (params, map[string]*Upload, error) {
	p := make(params)
	var files map[string]*Upload
	for k, v := range r.URL.Query() {
		p[k] = v[0]
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var m map[string]json.RawMessage
		body, err := io.ReadAll(io.LimitReader(r.Body, 50<<20))
		if err != nil {
			return nil, nil, err
		}
		if len(body) == 0 {
			return p, nil, nil
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, nil, err
		}
		for k, v := range m {
			var s string
			if json.Unmarshal(v, &s) == nil {
				p[k] = s
			} else if string(v) != "null" {
				p[k] = string(v)
			}
		}
	case "multipart/form-data":
		if discard {
			return parseStreamed(r, p)
		}
		if err := r.ParseMultipartForm(50 << 20); err != nil {
			return nil, nil, err
		}
		for k, v := range r.MultipartForm.Value {
			p[k] = v[0]
		}
		files = make(map[string]*Upload)
		for k, fhs := range r.MultipartForm.File {
			f, err := fhs[0].Open()
			if err != nil {
				return nil, nil, err
			}
			data, err := io.ReadAll(f)
			_ = f.Close()
			if err != nil {
				return nil, nil, err
			}
			files[k] = &Upload{Field: k, Name: fhs[0].Filename, MIME: fhs[0].Header.Get("Content-Type"), Data: data, Size: int64(len(data))}
		}
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return nil, nil, err
		}
		for k, v := range r.PostForm {
			p[k] = v[0]
		}
	}
	return p, files, nil
}

// parseStreamed reads a multipart body part by part, counting the bytes of files instead of
// keeping them.
func parseStreamed(r *http.Request, p params) (params, map[string]*Upload, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, nil, err
	}
	files := make(map[string]*Upload)
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return p, files, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if part.FileName() == "" {
			v, err := io.ReadAll(io.LimitReader(part, 1<<20))
			if err != nil {
				return nil, nil, err
			}
			p[part.FormName()] = string(v)
			continue
		}
		n, err := io.Copy(io.Discard, part)
		if err != nil {
			return nil, nil, err
		}
		files[part.FormName()] = &Upload{Field: part.FormName(), Name: part.FileName(), MIME: part.Header.Get("Content-Type"), Size: n}
	}
}

// DiscardUploads makes the fake count the bytes of uploaded files instead of keeping them
// (Upload.Data stays nil, Upload.Size says how many arrived), and lifts the 50 MB limit of its
// form parser, so a test can upload a file larger than it wants in memory.
func (s *Server) DiscardUploads() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discard = true
}

func (p params) int64(name string, def int64) (int64, bool) {
	v, ok := p[name]
	if !ok || v == "" {
		return def, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// getUpdates long-polls: it returns the queued updates at once, or waits until one arrives,
// the timeout passes, a newer getUpdates terminates it (409) or the fake closes. It returns
// nil, nil when the client went away.
func (s *Server) getUpdates(r *http.Request, p params) (any, *apiError) {
	offset, ok1 := p.int64("offset", 0)
	limit, ok2 := p.int64("limit", 100)
	timeout, ok3 := p.int64("timeout", 0)
	if !ok1 || !ok2 || !ok3 {
		e := badRequest("wrong parameter")
		return nil, &e
	}
	limit = min(max(limit, 1), 100)
	var allowed []string
	if v := p["allowed_updates"]; v != "" {
		if err := json.Unmarshal([]byte(v), &allowed); err != nil {
			e := badRequest("can't parse allowed updates")
			return nil, &e
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.webhookURL != "" {
		return nil, &errWebhookActive
	}
	if allowed != nil {
		if len(allowed) == 0 {
			allowed = nil // an empty list means "all" to Telegram
		}
		s.allowed = allowed
	}
	s.confirmLocked(offset)
	s.pollGen++
	gen := s.pollGen
	s.broadcastLocked() // terminates an older waiting poll

	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(time.Duration(timeout) * time.Second)
		defer t.Stop()
		expired = t.C
	}
	waiting := false
	defer func() { // runs before the Unlock above
		if waiting {
			s.polling--
			s.broadcastLocked()
		}
	}()
	for {
		switch {
		case s.closed:
			return []json.RawMessage{}, nil
		case gen != s.pollGen:
			return nil, &errTerminated
		case len(s.queue) > 0 || expired == nil:
			n := min(len(s.queue), int(limit))
			out := make([]json.RawMessage, 0, n)
			for _, u := range s.queue[:n] {
				out = append(out, u.raw)
			}
			return out, nil
		}
		if !waiting {
			waiting = true
			s.polling++
			s.broadcastLocked()
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-expired:
			expired = nil // look once more: return what is there, or nothing
		case <-r.Context().Done():
			s.mu.Lock()
			return nil, nil
		}
		s.mu.Lock()
	}
}

// confirmLocked applies a getUpdates offset: a positive offset confirms every update before
// it, a negative one keeps only the last -offset updates.
func (s *Server) confirmLocked(offset int64) {
	switch {
	case offset > 0:
		i := 0
		for i < len(s.queue) && s.queue[i].id < offset {
			i++
		}
		s.queue = s.queue[i:]
		s.acked = max(s.acked, offset-1)
	case offset < 0:
		drop := max(len(s.queue)-int(-offset), 0)
		if drop > 0 {
			s.acked = max(s.acked, s.queue[drop-1].id)
			s.queue = s.queue[drop:]
		}
	default:
		return
	}
	s.broadcastLocked()
}

// sendTargetLocked resolves chat_id for a send method: the chat, or the error Telegram gives.
func (s *Server) sendTargetLocked(p params) (*chat, *apiError) {
	v, ok := p["chat_id"]
	if !ok || v == "" {
		e := badRequest("chat_id is empty")
		return nil, &e
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e := badRequest("chat not found")
		return nil, &e
	}
	if s.blocked[id] {
		e := describe(http.StatusForbidden)
		return nil, &e
	}
	c, ok := s.chats[id]
	if !ok {
		e := badRequest("chat not found")
		return nil, &e
	}
	return c, nil
}

func (s *Server) sendMessage(p params) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, apiErr := s.sendTargetLocked(p)
	if apiErr != nil {
		return nil, apiErr
	}
	text, entities, apiErr := parseText(p["text"], p["parse_mode"], maxTextLen, "message is too long")
	if apiErr != nil {
		return nil, apiErr
	}
	if strings.TrimSpace(text) == "" {
		e := badRequest("message text is empty")
		return nil, &e
	}
	m, sm, apiErr := s.newBotMessageLocked(c, p)
	if apiErr != nil {
		return nil, apiErr
	}
	m.Text, m.Entities = text, toWire(entities)
	sm.Method, sm.Text, sm.Raw, sm.Entities = "sendMessage", text, p["text"], entities
	return s.recordLocked(c, m, sm), nil
}

// newBotMessageLocked starts a message from the bot in c: reply and keyboard checked, not yet
// recorded.
func (s *Server) newBotMessageLocked(c *chat, p params) (wireMessage, SentMessage, *apiError) {
	replyTo, allowWithout := 0, p["allow_sending_without_reply"] == "true"
	if v := p["reply_parameters"]; v != "" {
		var rp struct {
			MessageID                int  `json:"message_id"`
			AllowSendingWithoutReply bool `json:"allow_sending_without_reply"`
		}
		if err := json.Unmarshal([]byte(v), &rp); err != nil {
			e := badRequest("can't parse reply parameters JSON object")
			return wireMessage{}, SentMessage{}, &e
		}
		replyTo, allowWithout = rp.MessageID, rp.AllowSendingWithoutReply
	} else if v := p["reply_to_message_id"]; v != "" {
		replyTo, _ = strconv.Atoi(v)
	}
	bot := s.bot
	m := wireMessage{From: &bot, Chat: c.info, Date: s.now().Unix()}
	if replyTo != 0 {
		r, ok := c.msgs[replyTo]
		switch {
		case ok:
			r.ReplyToMessage = nil
			m.ReplyToMessage = &r
		case allowWithout:
			replyTo = 0
		default:
			e := badRequest("message to be replied not found")
			return wireMessage{}, SentMessage{}, &e
		}
	}
	kb, apiErr := parseKeyboard(p["reply_markup"])
	if apiErr != nil {
		return wireMessage{}, SentMessage{}, apiErr
	}
	if kb != nil {
		m.ReplyMarkup = &wireMarkup{InlineKeyboard: kb}
	}
	return m, SentMessage{ReplyTo: replyTo, ParseMode: p["parse_mode"], Keyboard: kb}, nil
}

// recordLocked gives m the chat's next id and records it as sent.
func (s *Server) recordLocked(c *chat, m wireMessage, sm SentMessage) wireMessage {
	c.lastID++
	m.MessageID = c.lastID
	sm.MessageID = m.MessageID
	c.msgs[m.MessageID] = m
	s.sent[c.info.ID] = append(s.sent[c.info.ID], sm)
	s.broadcastLocked()
	return m
}

func (s *Server) sendChatAction(p params) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, apiErr := s.sendTargetLocked(p)
	if apiErr != nil {
		return nil, apiErr
	}
	if p["action"] == "" {
		e := badRequest("action is empty")
		return nil, &e
	}
	s.actions[c.info.ID]++
	s.broadcastLocked()
	return true, nil
}

func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }
