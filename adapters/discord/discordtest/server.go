// Package discordtest is an in-memory fake of the Discord API for hermetic tests: REST (API
// v10) with bot-token auth, Discord's rate limits (50 requests a second, 5 message creates per 5 s in
// a channel, 5 edits or deletes a second; SetNow, RateLimited) with their X-RateLimit headers,
// JSON error codes and fault injection; a gateway with HELLO, IDENTIFY/READY, heartbeats and
// ACKs, RESUME/RESUMED with replay, op 7 and op 9; and a CDN whose attachment links expire. Helpers act as users: they write DMs and thread
// messages, edit, delete, type and press buttons, and the fake dispatches what Discord would.
//
// It follows Discord's documented behaviour, not the adapter's: code under test must speak the
// protocol as documented to pass.
package discordtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// GuildID is the fake's one guild.
const GuildID = "900000000000000001"

// Intents the fake checks.
const (
	IntentMessageContent = 1 << 15
)

// Attachment is a file of a message.
type Attachment struct {
	ID          string `json:"id"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type,omitempty"`
	Size        int    `json:"size"`
	Data        []byte `json:"-"`
}

// Sticker is a sticker item of a message.
type Sticker struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	FormatType int    `json:"format_type"`
}

// Message is a stored message. Payload keeps what the bot sent, as sent.
type Message struct {
	ID               string
	ChannelID        string
	AuthorID         string
	Content          string
	Type             int
	Flags            int
	Timestamp        time.Time
	Edited           *time.Time
	Attachments      []Attachment
	Stickers         []Sticker
	ReplyTo          string
	Components       json.RawMessage
	Embeds           json.RawMessage
	AllowedMentions  json.RawMessage
	MessageReference json.RawMessage
	Payload          json.RawMessage
}

// Channel is a DM channel, a guild text channel or a private thread.
type Channel struct {
	ID        string
	Type      int // 1 DM, 0 guild text, 12 private thread
	Recipient string
	ParentID  string
	Name      string
	Archived  bool
	Locked    bool
	Members   map[string]bool
	Invitable bool
}

// User is a Discord user.
type User struct {
	ID, Username, GlobalName string
	Bot                      bool
	// Locale is the language of the user's Discord client, which Discord sends with each of
	// their interactions ("es-ES", "pt-BR"); empty means en-US, Discord's default.
	Locale string
}

// Request is one REST request the fake received.
type Request struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// InteractionResponse is the bot's answer to an interaction (callback or @original edit).
type InteractionResponse struct {
	Type int
	Body json.RawMessage
}

type fault struct {
	method, path string // path is matched as a suffix of the request path
	status, code int
	message      string
	retryAfter   float64
}

type interaction struct {
	id, token, channelID, messageID string
	responses                       []InteractionResponse
}

type frame struct {
	Op int             `json:"op"`
	D  json.RawMessage `json:"d"`
	S  *int64          `json:"s,omitempty"`
	T  string          `json:"t,omitempty"`
}

type gwConn struct {
	ws      *websocket.Conn
	writeMu sync.Mutex
	session *session
}

func (c *gwConn) write(v any) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteJSON(v)
}

type session struct {
	id   string
	seq  int64
	log  []frame // every dispatch, for replay on RESUME
	conn *gwConn
}

// Server is the fake. Its exported fields are fixed at NewServer.
type Server struct {
	// URL is the fake's base URL; APIURL is URL + "/api/v10"; CDNURL serves files.
	URL, APIURL, CDNURL string
	Token               string
	BotID, AppID        string

	srv *httptest.Server
	wg  sync.WaitGroup

	mu              sync.Mutex
	changed         chan struct{}
	next            int64
	users           map[string]*User
	channels        map[string]*Channel
	dms             map[string]string // user → DM channel
	messages        map[string]*Message
	order           map[string][]string // channel → message ids in order
	closedDMs       map[string]bool
	nonces          map[string]nonceUse // the bot's message nonces (enforce_nonce)
	faults          []fault
	requests        []Request
	interactions    map[string]*interaction
	cdnVersion      int
	authOnCDN       int
	typing          map[string]int
	sessions        map[string]*session
	current         *session // the session dispatches go to
	conns           map[*gwConn]bool
	heartbeatMS     int64
	acks            bool
	silentHello     bool
	allowContent    bool
	identifies      int
	resumes         int
	heartbeats      int
	gatewayRequests int
	uploadLimit     int64
	discard         bool

	now         func() time.Time
	rateWindows map[string]*rateWindow // bucket + major parameter → its current window
	globalRate  rateWindow
	limited     int // 429s the limits gave (not injected ones)
}

// NewServer starts a fake for the given bot token, closed when the test ends. The Message
// Content intent is allowed; see AllowMessageContent.
func NewServer(t testing.TB, token string) *Server {
	s := New(token)
	t.Cleanup(s.Close)
	return s
}

// New starts a fake for the given bot token outside a test (for benchmark and soak commands);
// the caller closes it.
func New(token string) *Server {
	s := &Server{
		Token: token, BotID: "800000000000000001", AppID: "800000000000000002",
		changed: make(chan struct{}), next: 1_000_000_000_000_000,
		users: map[string]*User{}, channels: map[string]*Channel{}, dms: map[string]string{},
		messages: map[string]*Message{}, order: map[string][]string{}, closedDMs: map[string]bool{}, nonces: map[string]nonceUse{},
		interactions: map[string]*interaction{}, typing: map[string]int{}, sessions: map[string]*session{},
		conns: map[*gwConn]bool{}, heartbeatMS: 41250, acks: true, allowContent: true,
		now: time.Now, rateWindows: map[string]*rateWindow{},
	}
	s.users[s.BotID] = &User{ID: s.BotID, Username: "onechat", Bot: true}
	mux := http.NewServeMux()
	mux.HandleFunc("/gateway/", s.serveGateway)
	mux.HandleFunc("/cdn/", s.serveCDN)
	mux.HandleFunc("/api/v10/", s.serveREST)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	s.APIURL = s.srv.URL + "/api/v10"
	s.CDNURL = s.srv.URL + "/cdn"
	return s
}

// Close drops every gateway connection and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	for c := range s.conns {
		_ = c.ws.Close()
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
	s.wg.Wait()
}

// notify wakes WaitFor callers; s.mu must be held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// WaitFor waits until cond (called with the fake's state locked, so it must only use the
// fake's methods suffixed Locked or its own data) holds, failing the test after 10 s.
func (s *Server) WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("discordtest: timed out waiting for %s", what)
		}
	}
}

// newID returns a snowflake as Discord makes them: the ms since Discord's epoch (2015) shifted
// left 22 bits, so an id tells when it was made; ids only grow.
func (s *Server) newID() string {
	s.next = max(s.next+1, (time.Now().UnixMilli()-1420070400000)<<22)
	return strconv.FormatInt(s.next, 10)
}

// ---- state helpers used by tests ----

// AddUser registers a user.
func (s *Server) AddUser(id, username, globalName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id] = &User{ID: id, Username: username, GlobalName: globalName}
}

// SetUserLocale sets the locale of a user's client, sent with their interactions.
func (s *Server) SetUserLocale(id, locale string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[id]; ok {
		u.Locale = locale
	}
}

// AddTextChannel creates a guild text channel (the support channel).
func (s *Server) AddTextChannel(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[id] = &Channel{ID: id, Type: 0, Name: "support", Members: map[string]bool{}}
	s.notify()
}

// CloseDMs makes every DM to the user fail with 50007.
func (s *Server) CloseDMs(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closedDMs[userID] = true
}

// DMChannel returns (creating it) the DM channel of a user.
func (s *Server) DMChannel(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dmLocked(userID)
}

func (s *Server) dmLocked(userID string) string {
	if id, ok := s.dms[userID]; ok {
		return id
	}
	id := s.newID()
	s.channels[id] = &Channel{ID: id, Type: 1, Recipient: userID, Members: map[string]bool{}}
	s.dms[userID] = id
	return id
}

// Messages returns copies of a channel's messages, oldest first.
func (s *Server) Messages(channelID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.MessagesLocked(channelID)
}

// MessagesLocked is Messages for WaitFor conditions.
func (s *Server) MessagesLocked(channelID string) []Message {
	var out []Message
	for _, id := range s.order[channelID] {
		if m, ok := s.messages[id]; ok {
			out = append(out, *m)
		}
	}
	return out
}

// Channel returns a copy of a channel.
func (s *Server) Channel(id string) (Channel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ChannelLocked(id)
}

// ChannelLocked is Channel for WaitFor conditions.
func (s *Server) ChannelLocked(id string) (Channel, bool) {
	c, ok := s.channels[id]
	if !ok {
		return Channel{}, false
	}
	cp := *c
	cp.Members = map[string]bool{}
	for k, v := range c.Members {
		cp.Members[k] = v
	}
	return cp, true
}

// Threads returns the ids of the private threads under a channel.
func (s *Server) Threads(parentID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ThreadsLocked(parentID)
}

// ThreadsLocked is Threads for WaitFor conditions.
func (s *Server) ThreadsLocked(parentID string) []string {
	var out []string
	for id, c := range s.channels {
		if c.ParentID == parentID && c.Type == 12 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// Requests returns the REST requests so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// TypingCountLocked is how many typing requests a channel got.
func (s *Server) TypingCountLocked(channelID string) int { return s.typing[channelID] }

// TypingCount is TypingCountLocked with the lock taken.
func (s *Server) TypingCount(channelID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.typing[channelID]
}

// InteractionResponsesLocked returns the bot's answers to an interaction.
func (s *Server) InteractionResponsesLocked(id string) []InteractionResponse {
	if i, ok := s.interactions[id]; ok {
		return append([]InteractionResponse(nil), i.responses...)
	}
	return nil
}

// AuthorizedCDNRequests counts CDN downloads that carried an Authorization header (the token
// must never go to the CDN).
func (s *Server) AuthorizedCDNRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authOnCDN
}

// ExpireCDNLinks makes every attachment link issued so far fail, as Discord's signed links do
// after about a day.
func (s *Server) ExpireCDNLinks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cdnVersion++
}

// Fail makes the next request whose method matches and whose path ends with pathSuffix fail
// with the status and JSON error code.
func (s *Server) Fail(method, pathSuffix string, status, code int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{method: method, path: pathSuffix, status: status, code: code, message: message})
}

// RateLimit makes the next matching request a 429 with retry_after seconds.
func (s *Server) RateLimit(method, pathSuffix string, retryAfter float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{method: method, path: pathSuffix, status: 429, retryAfter: retryAfter, message: "You are being rate limited."})
}

// SetUploadLimit makes message creates whose files add up to more than n bytes fail with
// 413 and code 40005, as Discord answers an upload over the channel's limit (0: no limit).
func (s *Server) SetUploadLimit(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploadLimit = n
}

// ---- user actions ----

// MessageOption adds something to a user's message.
type MessageOption func(*Message)

// WithAttachment attaches a file.
func WithAttachment(name, contentType string, data []byte) MessageOption {
	return func(m *Message) {
		m.Attachments = append(m.Attachments, Attachment{Filename: name, ContentType: contentType, Size: len(data), Data: data})
	}
}

// WithSticker adds a sticker (format 1 PNG, 3 Lottie, 4 GIF).
func WithSticker(id, name string, format int) MessageOption {
	return func(m *Message) { m.Stickers = append(m.Stickers, Sticker{ID: id, Name: name, FormatType: format}) }
}

// ReplyingTo makes the message a reply.
func ReplyingTo(messageID string) MessageOption {
	return func(m *Message) { m.ReplyTo = messageID; m.Type = 19 }
}

// Offline stores the message without dispatching it: it was sent while the bot was away.
func Offline() MessageOption { return func(m *Message) { m.Flags |= offlineFlag } }

const offlineFlag = 1 << 30

// UserSendsDM makes a user write to the bot in their DM channel and returns the message.
func (s *Server) UserSendsDM(userID, content string, opts ...MessageOption) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userSendsLocked(userID, s.dmLocked(userID), content, opts)
}

// UserSendsIn makes a user write in a guild channel or thread.
func (s *Server) UserSendsIn(userID, channelID, content string, opts ...MessageOption) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userSendsLocked(userID, channelID, content, opts)
}

func (s *Server) userSendsLocked(userID, channelID, content string, opts []MessageOption) Message {
	m := &Message{ID: s.newID(), ChannelID: channelID, AuthorID: userID, Content: content, Timestamp: time.Now().UTC()}
	for _, o := range opts {
		o(m)
	}
	for i := range m.Attachments {
		m.Attachments[i].ID = s.newID()
	}
	offline := m.Flags&offlineFlag != 0
	m.Flags &^= offlineFlag
	s.storeLocked(m)
	if !offline {
		s.dispatchLocked("MESSAGE_CREATE", s.renderLocked(m, true))
	}
	s.notify()
	return *m
}

// UserEdits changes a user's message and dispatches MESSAGE_UPDATE.
func (s *Server) UserEdits(messageID, content string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.messages[messageID]
	now := time.Now().UTC()
	m.Content, m.Edited = content, &now
	s.dispatchLocked("MESSAGE_UPDATE", s.renderLocked(m, true))
	s.notify()
}

// UserDeletes deletes a message and dispatches MESSAGE_DELETE (which, as on Discord, does not
// say who deleted it).
func (s *Server) UserDeletes(messageID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.messages[messageID]
	delete(s.messages, messageID)
	d := map[string]any{"id": messageID, "channel_id": m.ChannelID}
	if g := s.guildOfLocked(m.ChannelID); g != "" {
		d["guild_id"] = g
	}
	s.dispatchLocked("MESSAGE_DELETE", d)
	s.notify()
}

// UserTypes dispatches TYPING_START.
func (s *Server) UserTypes(userID, channelID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := map[string]any{"channel_id": channelID, "user_id": userID, "timestamp": time.Now().Unix()}
	if g := s.guildOfLocked(channelID); g != "" {
		d["guild_id"] = g
		d["member"] = map[string]any{"user": s.userJSONLocked(userID), "roles": []string{}}
	}
	s.dispatchLocked("TYPING_START", d)
	s.notify()
}

// UserPresses makes a user press a button (or choose values in a select menu) of a message and
// returns the interaction id.
func (s *Server) UserPresses(userID, channelID, messageID, customID string, values ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.messages[messageID]
	it := &interaction{id: s.newID(), token: "itoken-" + randomHex(), channelID: channelID, messageID: messageID}
	s.interactions[it.id] = it
	data := map[string]any{"custom_id": customID, "component_type": 2}
	if len(values) > 0 {
		data["component_type"] = 3
		data["values"] = values
	}
	d := map[string]any{
		"id": it.id, "application_id": s.AppID, "type": 3, "token": it.token, "version": 1,
		"channel_id": channelID, "data": data, "message": s.renderLocked(m, false),
		"locale": "en-US",
	}
	if u, ok := s.users[userID]; ok && u.Locale != "" {
		d["locale"] = u.Locale
	}
	if g := s.guildOfLocked(channelID); g != "" {
		d["guild_id"] = g
		d["guild_locale"] = "en-US"
		d["member"] = map[string]any{"user": s.userJSONLocked(userID), "roles": []string{}, "nick": nil}
	} else {
		d["user"] = s.userJSONLocked(userID)
	}
	s.dispatchLocked("INTERACTION_CREATE", d)
	s.notify()
	return it.id
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) guildOfLocked(channelID string) string {
	if c, ok := s.channels[channelID]; ok && c.Type != 1 {
		return GuildID
	}
	return ""
}

func (s *Server) storeLocked(m *Message) {
	s.messages[m.ID] = m
	s.order[m.ChannelID] = append(s.order[m.ChannelID], m.ID)
}

func (s *Server) userJSONLocked(id string) map[string]any {
	u, ok := s.users[id]
	if !ok {
		u = &User{ID: id, Username: "user" + id}
	}
	out := map[string]any{"id": u.ID, "username": u.Username, "discriminator": "0", "global_name": nil, "avatar": nil}
	if u.GlobalName != "" {
		out["global_name"] = u.GlobalName
	}
	if u.Bot {
		out["bot"] = true
	}
	return out
}

// renderLocked is a message object as Discord returns it, with fresh attachment links.
func (s *Server) renderLocked(m *Message, gatewayFields bool) map[string]any {
	atts := []map[string]any{}
	for _, a := range m.Attachments {
		u := fmt.Sprintf("%s/attachments/%s/%s/%s?ex=%d", s.CDNURL, m.ChannelID, a.ID, a.Filename, s.cdnVersion)
		atts = append(atts, map[string]any{"id": a.ID, "filename": a.Filename, "content_type": a.ContentType,
			"size": a.Size, "url": u, "proxy_url": u})
	}
	out := map[string]any{
		"id": m.ID, "channel_id": m.ChannelID, "type": m.Type, "content": m.Content,
		"author": s.userJSONLocked(m.AuthorID), "timestamp": m.Timestamp.Format(time.RFC3339Nano),
		"edited_timestamp": nil, "tts": false, "mention_everyone": false, "mentions": []any{},
		"mention_roles": []any{}, "attachments": atts, "embeds": []any{}, "pinned": false, "flags": m.Flags,
	}
	if m.Edited != nil {
		out["edited_timestamp"] = m.Edited.Format(time.RFC3339Nano)
	}
	if len(m.Stickers) > 0 {
		out["sticker_items"] = m.Stickers
	}
	if len(m.Components) > 0 {
		out["components"] = m.Components
	}
	if len(m.Embeds) > 0 {
		out["embeds"] = m.Embeds
	}
	if m.ReplyTo != "" {
		out["message_reference"] = map[string]any{"type": 0, "message_id": m.ReplyTo, "channel_id": m.ChannelID}
		if r, ok := s.messages[m.ReplyTo]; ok {
			out["referenced_message"] = s.renderLocked(r, false)
		} else {
			out["referenced_message"] = nil
		}
	}
	if gatewayFields {
		if g := s.guildOfLocked(m.ChannelID); g != "" {
			out["guild_id"] = g
			out["member"] = map[string]any{"roles": []string{}, "nick": nil}
		}
	}
	return out
}

// ---- gateway ----

// SetHeartbeatInterval sets the interval HELLO announces to new connections.
func (s *Server) SetHeartbeatInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heartbeatMS = d.Milliseconds()
}

// SetHeartbeatACKs turns acknowledging heartbeats on or off (off makes a zombie connection).
func (s *Server) SetHeartbeatACKs(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acks = on
}

// SetSilentHello makes new gateway connections accept the socket but never send HELLO.
func (s *Server) SetSilentHello(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silentHello = on
}

// AllowMessageContent says whether the bot may use the privileged Message Content intent; when
// not, an IDENTIFY asking for it is closed with 4014.
func (s *Server) AllowMessageContent(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowContent = on
}

// GatewayStats are counters of the gateway.
type GatewayStats struct {
	Connections, Identifies, Resumes, Heartbeats, Dials int
}

// StatsLocked returns the gateway counters, for WaitFor conditions.
func (s *Server) StatsLocked() GatewayStats {
	return GatewayStats{Connections: len(s.conns), Identifies: s.identifies, Resumes: s.resumes, Heartbeats: s.heartbeats, Dials: s.gatewayRequests}
}

// Stats is StatsLocked with the lock taken.
func (s *Server) Stats() GatewayStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.StatsLocked()
}

// DropConnections cuts every gateway connection without a close frame, as a network failure
// does. The sessions stay resumable.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.ws.UnderlyingConn().Close()
	}
}

// SendReconnect sends op 7 on every connection.
func (s *Server) SendReconnect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.write(map[string]any{"op": 7, "d": nil})
	}
}

// InvalidateSession sends op 9 with the resumable flag on every connection.
func (s *Server) InvalidateSession(resumable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if !resumable && c.session != nil {
			delete(s.sessions, c.session.id)
		}
		_ = c.write(map[string]any{"op": 9, "d": resumable})
	}
}

// dispatchLocked sends a dispatch on the current session, logging it for replay.
func (s *Server) dispatchLocked(t string, d any) {
	sess := s.current
	if sess == nil {
		return
	}
	raw, _ := json.Marshal(d)
	sess.seq++
	seq := sess.seq
	f := frame{Op: 0, T: t, S: &seq, D: raw}
	sess.log = append(sess.log, f)
	if sess.conn != nil {
		_ = sess.conn.write(f)
	}
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("v") != "10" || r.URL.Query().Get("encoding") != "json" {
		http.Error(w, "unsupported gateway version or encoding", http.StatusBadRequest)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &gwConn{ws: ws}
	s.mu.Lock()
	s.gatewayRequests++
	s.conns[c] = true
	silent, interval := s.silentHello, s.heartbeatMS
	s.wg.Add(1)
	s.notify()
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		if c.session != nil && c.session.conn == c {
			c.session.conn = nil
		}
		s.notify()
		s.mu.Unlock()
		_ = ws.Close()
	}()
	if !silent {
		if c.write(map[string]any{"op": 10, "d": map[string]any{"heartbeat_interval": interval}}) != nil {
			return
		}
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if silent {
			continue
		}
		var f frame
		if json.Unmarshal(data, &f) != nil {
			s.closeWith(c, 4002, "Error while decoding payload.")
			return
		}
		if !s.handleFrame(c, f) {
			return
		}
	}
}

func (s *Server) closeWith(c *gwConn, code int, reason string) {
	c.writeMu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	c.writeMu.Unlock()
}

func (s *Server) tokenOK(tok string) bool { return tok == s.Token || tok == "Bot "+s.Token }

// handleFrame answers one client frame; false closes the connection.
func (s *Server) handleFrame(c *gwConn, f frame) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	switch f.Op {
	case 1:
		s.heartbeats++
		if s.acks {
			_ = c.write(map[string]any{"op": 11})
		}
	case 2:
		var d struct {
			Token      string            `json:"token"`
			Intents    *int              `json:"intents"`
			Properties map[string]string `json:"properties"`
		}
		if json.Unmarshal(f.D, &d) != nil || d.Intents == nil || d.Properties["os"] == "" {
			s.closeWith(c, 4002, "Error while decoding payload.")
			return false
		}
		if !s.tokenOK(d.Token) {
			s.closeWith(c, 4004, "Authentication failed.")
			return false
		}
		if *d.Intents&IntentMessageContent != 0 && !s.allowContent {
			s.closeWith(c, 4014, "Disallowed intent(s).")
			return false
		}
		if c.session != nil {
			s.closeWith(c, 4005, "Already authenticated.")
			return false
		}
		s.identifies++
		sess := &session{id: randomHex(), conn: c}
		s.sessions[sess.id] = sess
		s.current, c.session = sess, sess
		wsURL := "ws" + strings.TrimPrefix(s.URL, "http") + "/gateway/"
		s.dispatchLocked("READY", map[string]any{
			"v": 10, "user": s.userJSONLocked(s.BotID), "guilds": []any{}, "session_id": sess.id,
			"resume_gateway_url": wsURL, "application": map[string]any{"id": s.AppID, "flags": 0},
		})
	case 6:
		var d struct {
			Token     string `json:"token"`
			SessionID string `json:"session_id"`
			Seq       int64  `json:"seq"`
		}
		if json.Unmarshal(f.D, &d) != nil {
			s.closeWith(c, 4002, "Error while decoding payload.")
			return false
		}
		if !s.tokenOK(d.Token) {
			s.closeWith(c, 4004, "Authentication failed.")
			return false
		}
		sess, ok := s.sessions[d.SessionID]
		if !ok || d.Seq > sess.seq {
			_ = c.write(map[string]any{"op": 9, "d": false})
			return true
		}
		s.resumes++
		if sess.conn != nil && sess.conn != c {
			_ = sess.conn.ws.UnderlyingConn().Close()
		}
		sess.conn, c.session, s.current = c, sess, sess
		for _, ev := range sess.log {
			if *ev.S > d.Seq {
				_ = c.write(ev)
			}
		}
		s.dispatchLocked("RESUMED", map[string]any{})
	default:
		s.closeWith(c, 4001, "Unknown opcode.")
		return false
	}
	return true
}

// ---- CDN ----

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Header.Get("Authorization") != "" {
		s.authOnCDN++
	}
	s.notify()
	path := strings.TrimPrefix(r.URL.Path, "/cdn/")
	if rest, ok := strings.CutPrefix(path, "stickers/"); ok {
		id, ext, _ := strings.Cut(rest, ".")
		w.Header().Set("Content-Type", mime.TypeByExtension("."+ext))
		_, _ = io.WriteString(w, "sticker-"+id+"."+ext)
		return
	}
	parts := strings.Split(strings.TrimPrefix(path, "attachments/"), "/")
	if len(parts) != 3 || r.URL.Query().Get("ex") != strconv.Itoa(s.cdnVersion) {
		http.Error(w, "This content is no longer available.", http.StatusNotFound)
		return
	}
	for _, m := range s.messages {
		for _, a := range m.Attachments {
			if a.ID == parts[1] && m.ChannelID == parts[0] {
				w.Header().Set("Content-Type", a.ContentType)
				_, _ = w.Write(a.Data)
				return
			}
		}
	}
	http.Error(w, "This content is no longer available.", http.StatusNotFound)
}

// ---- REST ----

type apiError struct {
	status, code int
	message      string
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// DiscardUploads makes the fake count the bytes of uploaded files instead of keeping them
// (Attachment.Data stays nil, Size says how many arrived), so a test can upload a file larger
// than it wants in memory.
func (s *Server) DiscardUploads() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discard = true
}

// sizeHeader carries, in a body rebuilt by discardFiles, the size of a file part whose content
// was dropped.
const sizeHeader = "X-Discordtest-Size"

// discardFiles reads a multipart body part by part and returns it rebuilt with every file part
// emptied and its size in sizeHeader.
func discardFiles(body io.Reader, boundary string) ([]byte, error) {
	var out bytes.Buffer
	mw := multipart.NewWriter(&out)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, err
	}
	mr := multipart.NewReader(body, boundary)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		h := textproto.MIMEHeader{}
		for k, v := range p.Header {
			h[k] = v
		}
		var data []byte
		if p.FileName() != "" {
			n, err := io.Copy(io.Discard, p)
			if err != nil {
				return nil, err
			}
			h.Set(sizeHeader, strconv.FormatInt(n, 10))
		} else if data, err = io.ReadAll(p); err != nil {
			return nil, err
		}
		pw, err := mw.CreatePart(h)
		if err != nil {
			return nil, err
		}
		_, _ = pw.Write(data)
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func (s *Server) serveREST(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	discard := s.discard
	s.mu.Unlock()
	var body []byte
	var err error
	if mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); discard && mt == "multipart/form-data" {
		body, err = discardFiles(r.Body, params["boundary"])
	} else {
		body, err = io.ReadAll(r.Body)
	}
	if err != nil {
		// A request cut short (its sender gave up mid-body) is not acted on.
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "400: Bad Request", "code": 0})
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/v10")
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	s.requests = append(s.requests, Request{Method: r.Method, Path: path, Header: r.Header.Clone(), Body: body})
	if auth := r.Header.Get("Authorization"); auth != "Bot "+s.Token && !strings.HasPrefix(path, "/interactions/") && !strings.HasPrefix(path, "/webhooks/") {
		writeJSON(w, 401, map[string]any{"message": "401: Unauthorized", "code": 0})
		return
	}
	bucket := r.Method + " " + routeOf(path)
	bucketHash := fmt.Sprintf("%x", hashString(bucket))
	w.Header().Set("X-RateLimit-Bucket", bucketHash)
	for i, f := range s.faults {
		if f.method == r.Method && strings.HasSuffix(path, f.path) {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
			if f.status == 429 {
				w.Header().Set("X-RateLimit-Limit", "5")
				w.Header().Set("X-RateLimit-Remaining", "0")
				w.Header().Set("X-RateLimit-Reset-After", strconv.FormatFloat(f.retryAfter, 'f', 3, 64))
				w.Header().Set("Retry-After", strconv.Itoa(int(f.retryAfter+0.999)))
				w.Header().Set("X-RateLimit-Scope", "user")
				writeJSON(w, 429, map[string]any{"message": f.message, "retry_after": f.retryAfter, "global": false})
				return
			}
			writeJSON(w, f.status, map[string]any{"message": f.message, "code": f.code})
			return
		}
	}
	if !s.admitLocked(w, r.Method, path, bucketHash) {
		return
	}
	status, out, aerr := s.route(r, path, body)
	if aerr != nil {
		writeJSON(w, aerr.status, map[string]any{"message": aerr.message, "code": aerr.code})
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, out)
}

// Discord's published rate limits, which the fake enforces: 50 requests per second for a bot
// in all (interaction callbacks aside), 5 message creates per 5 seconds in a channel, 5 edits or
// deletes of messages per second in a channel, and a generous 50 per second on other routes.
const (
	globalRateLimit = 50
)

func routeLimit(bucket string) (n int, per time.Duration) {
	switch {
	case bucket == "POST /channels/:id/messages":
		return 5, 5 * time.Second
	case strings.HasPrefix(bucket, "PATCH /channels/:id/messages/"), strings.HasPrefix(bucket, "DELETE /channels/:id/messages/"):
		return 5, time.Second
	default:
		return 50, time.Second
	}
}

// rateWindow is a fixed window of a bucket, as Discord counts: it starts with its first
// request and resets after its period.
type rateWindow struct {
	start time.Time
	count int
}

func (w *rateWindow) roll(now time.Time, per time.Duration) {
	if w.start.IsZero() || !now.Before(w.start.Add(per)) {
		w.start, w.count = now, 0
	}
}

// admitLocked applies the global and the route's limits to a request, writing Discord's
// X-RateLimit headers; a request over a limit gets Discord's 429 (global or per route) and
// false.
func (s *Server) admitLocked(w http.ResponseWriter, method, path, bucketHash string) bool {
	now := s.now()
	seconds := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }
	if !strings.HasPrefix(path, "/interactions/") {
		s.globalRate.roll(now, time.Second)
		if s.globalRate.count >= globalRateLimit {
			after := s.globalRate.start.Add(time.Second).Sub(now)
			s.limited++
			w.Header().Set("X-RateLimit-Global", "true")
			w.Header().Set("X-RateLimit-Scope", "global")
			w.Header().Set("Retry-After", strconv.Itoa(int(after.Seconds()+0.999)))
			writeJSON(w, 429, map[string]any{"message": "You are being rate limited.", "retry_after": after.Seconds(), "global": true})
			return false
		}
		s.globalRate.count++
	}
	generic := strings.Split(routeOf(path), "/")
	if len(generic) > 2 {
		generic[2] = ":id" // the limits are the same for every channel
	}
	n, per := routeLimit(method + " " + strings.Join(generic, "/"))
	major := ""
	if seg := strings.Split(strings.Trim(path, "/"), "/"); len(seg) >= 2 {
		major = seg[1]
	}
	win := s.rateWindows[bucketHash+":"+major]
	if win == nil {
		win = &rateWindow{}
		s.rateWindows[bucketHash+":"+major] = win
	}
	win.roll(now, per)
	after := win.start.Add(per).Sub(now)
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(n))
	w.Header().Set("X-RateLimit-Reset-After", seconds(after))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatFloat(float64(win.start.Add(per).UnixMilli())/1000, 'f', 3, 64))
	if win.count >= n {
		s.limited++
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Scope", "user")
		w.Header().Set("Retry-After", strconv.Itoa(int(after.Seconds()+0.999)))
		writeJSON(w, 429, map[string]any{"message": "You are being rate limited.", "retry_after": after.Seconds(), "global": false})
		return false
	}
	win.count++
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(n-win.count))
	return true
}

// SetNow sets the clock the rate limits count by, so a test can run a burst without waiting.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// RateLimited returns how many requests the fake's rate limits refused with a 429 (injected
// ones, see RateLimit, aside).
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limited
}

func hashString(s string) uint32 {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// routeOf is the route of a path with ids after the major parameter replaced, as Discord
// buckets them.
func routeOf(path string) string {
	parts := strings.Split(path, "/")
	for i := 3; i < len(parts); i++ {
		if _, err := strconv.ParseInt(parts[i], 10, 64); err == nil {
			parts[i] = ":id"
		}
	}
	return strings.Join(parts, "/")
}

var (
	errUnknownChannel = &apiError{404, 10003, "Unknown Channel"}
	errUnknownMessage = &apiError{404, 10008, "Unknown Message"}
	errUnknownUser    = &apiError{404, 10013, "Unknown User"}
	errNotFound       = &apiError{404, 0, "404: Not Found"}
	errCannotDM       = &apiError{403, 50007, "Cannot send messages to this user"}
	errEmpty          = &apiError{400, 50006, "Cannot send an empty message"}
	errMissingAccess  = &apiError{403, 50001, "Missing Access"}
)

func (s *Server) route(r *http.Request, path string, body []byte) (int, any, *apiError) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == "GET" && path == "/gateway":
		return 200, map[string]any{"url": "ws" + strings.TrimPrefix(s.URL, "http") + "/gateway"}, nil
	case r.Method == "GET" && len(seg) == 2 && seg[0] == "users":
		id := seg[1]
		if id == "@me" {
			id = s.BotID
		}
		if _, ok := s.users[id]; !ok {
			return 0, nil, errUnknownUser
		}
		return 200, s.userJSONLocked(id), nil
	case r.Method == "POST" && path == "/users/@me/channels":
		var d struct {
			RecipientID string `json:"recipient_id"`
		}
		if json.Unmarshal(body, &d) != nil || d.RecipientID == "" {
			return 0, nil, &apiError{400, 50035, "Invalid Form Body"}
		}
		id := s.dmLocked(d.RecipientID)
		return 200, map[string]any{"id": id, "type": 1, "recipients": []any{s.userJSONLocked(d.RecipientID)}}, nil
	case len(seg) >= 2 && seg[0] == "channels":
		return s.routeChannel(r, seg[1], seg[2:], body)
	case r.Method == "POST" && len(seg) == 4 && seg[0] == "interactions" && seg[3] == "callback":
		it, ok := s.interactions[seg[1]]
		if !ok || it.token != seg[2] {
			return 0, nil, &apiError{404, 10062, "Unknown interaction"}
		}
		var d struct {
			Type int `json:"type"`
			Data struct {
				Components json.RawMessage `json:"components"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &d) != nil || d.Type < 1 {
			return 0, nil, &apiError{400, 50035, "Invalid Form Body"}
		}
		if len(it.responses) > 0 {
			return 0, nil, &apiError{400, 40060, "Interaction has already been acknowledged."}
		}
		it.responses = append(it.responses, InteractionResponse{Type: d.Type, Body: body})
		if d.Type == 7 {
			if m, ok := s.messages[it.messageID]; ok && d.Data.Components != nil {
				m.Components = d.Data.Components
			}
		}
		return http.StatusNoContent, nil, nil
	case r.Method == "PATCH" && len(seg) == 5 && seg[0] == "webhooks" && seg[4] == "@original":
		for _, it := range s.interactions {
			if it.token == seg[2] && seg[1] == s.AppID {
				if len(it.responses) == 0 {
					return 0, nil, &apiError{404, 10015, "Unknown Webhook"}
				}
				it.responses = append(it.responses, InteractionResponse{Type: 0, Body: body})
				return 200, map[string]any{"id": s.newID(), "channel_id": it.channelID}, nil
			}
		}
		return 0, nil, &apiError{404, 10015, "Unknown Webhook"}
	}
	return 0, nil, errNotFound
}

func (s *Server) channelJSONLocked(c *Channel) map[string]any {
	out := map[string]any{"id": c.ID, "type": c.Type}
	switch c.Type {
	case 1:
		out["recipients"] = []any{s.userJSONLocked(c.Recipient)}
	default:
		out["guild_id"] = GuildID
		out["name"] = c.Name
	}
	if c.Type == 12 {
		out["parent_id"] = c.ParentID
		out["owner_id"] = s.BotID
		out["thread_metadata"] = map[string]any{"archived": c.Archived, "locked": c.Locked, "auto_archive_duration": 10080, "invitable": c.Invitable}
	}
	return out
}

func (s *Server) routeChannel(r *http.Request, id string, rest []string, body []byte) (int, any, *apiError) {
	c, ok := s.channels[id]
	if !ok {
		return 0, nil, errUnknownChannel
	}
	switch {
	case len(rest) == 0 && r.Method == "GET":
		return 200, s.channelJSONLocked(c), nil
	case len(rest) == 0 && r.Method == "PATCH":
		var d struct {
			Archived *bool `json:"archived"`
			Locked   *bool `json:"locked"`
		}
		_ = json.Unmarshal(body, &d)
		if (d.Archived != nil || d.Locked != nil) && c.Type != 11 && c.Type != 12 {
			return 0, nil, &apiError{400, 50024, "Cannot execute action on this channel type"}
		}
		if d.Archived != nil {
			c.Archived = *d.Archived
		}
		if d.Locked != nil {
			c.Locked = *d.Locked
		}
		s.dispatchLocked("THREAD_UPDATE", s.channelJSONLocked(c))
		return 200, s.channelJSONLocked(c), nil
	case len(rest) == 1 && rest[0] == "typing" && r.Method == "POST":
		if c.Type == 1 && s.closedDMs[c.Recipient] {
			return 0, nil, errCannotDM
		}
		s.typing[id]++
		return http.StatusNoContent, nil, nil
	case len(rest) == 1 && rest[0] == "threads" && r.Method == "POST":
		var d struct {
			Name      string `json:"name"`
			Type      int    `json:"type"`
			Invitable *bool  `json:"invitable"`
		}
		if json.Unmarshal(body, &d) != nil || d.Name == "" || utf8.RuneCountInString(d.Name) > 100 || c.Type != 0 {
			return 0, nil, &apiError{400, 50035, "Invalid Form Body"}
		}
		if d.Type == 0 {
			d.Type = 12
		}
		t := &Channel{ID: s.newID(), Type: d.Type, ParentID: id, Name: d.Name, Members: map[string]bool{s.BotID: true}, Invitable: d.Invitable == nil || *d.Invitable}
		s.channels[t.ID] = t
		s.dispatchLocked("THREAD_CREATE", s.channelJSONLocked(t))
		return 201, s.channelJSONLocked(t), nil
	case len(rest) == 2 && rest[0] == "thread-members" && r.Method == "PUT":
		if c.Type != 12 {
			return 0, nil, &apiError{400, 50024, "Cannot execute action on this channel type"}
		}
		c.Members[rest[1]] = true
		return http.StatusNoContent, nil, nil
	case len(rest) == 1 && rest[0] == "messages" && r.Method == "GET":
		return s.listMessages(r, c)
	case len(rest) == 1 && rest[0] == "messages" && r.Method == "POST":
		return s.createMessage(r, c, body)
	case len(rest) == 2 && rest[0] == "messages":
		m, ok := s.messages[rest[1]]
		if !ok || m.ChannelID != id {
			return 0, nil, errUnknownMessage
		}
		switch r.Method {
		case "GET":
			return 200, s.renderLocked(m, false), nil
		case "DELETE":
			if m.AuthorID != s.BotID && c.Type == 1 {
				return 0, nil, &apiError{403, 50003, "Cannot execute action on a DM channel"}
			}
			delete(s.messages, m.ID)
			return http.StatusNoContent, nil, nil
		case "PATCH":
			if m.AuthorID != s.BotID {
				return 0, nil, &apiError{403, 50005, "Cannot edit a message authored by another user"}
			}
			var d struct {
				Content         *string         `json:"content"`
				AllowedMentions json.RawMessage `json:"allowed_mentions"`
			}
			if json.Unmarshal(body, &d) != nil {
				return 0, nil, &apiError{400, 50035, "Invalid Form Body"}
			}
			if d.Content != nil {
				if utf8.RuneCountInString(*d.Content) > 2000 {
					return 0, nil, &apiError{400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length."}
				}
				m.Content = *d.Content
			}
			now := time.Now().UTC()
			m.Edited = &now
			m.AllowedMentions = d.AllowedMentions
			return 200, s.renderLocked(m, false), nil
		}
	}
	return 0, nil, errNotFound
}

func (s *Server) listMessages(r *http.Request, c *Channel) (int, any, *apiError) {
	q := r.URL.Query()
	limit := 50
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			return 0, nil, &apiError{400, 50035, "Invalid Form Body"}
		}
		limit = n
	}
	after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	var ids []int64
	for _, id := range s.order[c.ID] {
		if _, ok := s.messages[id]; !ok {
			continue
		}
		n, _ := strconv.ParseInt(id, 10, 64)
		if (q.Get("after") == "" || n > after) && (q.Get("before") == "" || n < before) {
			ids = append(ids, n)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if q.Get("after") != "" && q.Get("before") == "" {
		if len(ids) > limit { // the oldest `limit` after the id
			ids = ids[:limit]
		}
	} else if len(ids) > limit {
		ids = ids[len(ids)-limit:]
	}
	out := []any{}
	for i := len(ids) - 1; i >= 0; i-- { // newest first, as Discord answers
		out = append(out, s.renderLocked(s.messages[strconv.FormatInt(ids[i], 10)], false))
	}
	return 200, out, nil
}

// nonceWindow is how long Discord remembers an enforced nonce ("the past few minutes").
const nonceWindow = 5 * time.Minute

// nonceUse is the message a nonce created, and when.
type nonceUse struct {
	messageID string
	at        time.Time
}

func (s *Server) createMessage(r *http.Request, c *Channel, body []byte) (int, any, *apiError) {
	if c.Type == 1 && s.closedDMs[c.Recipient] {
		return 0, nil, errCannotDM
	}
	if c.Type == 12 && !c.Members[s.BotID] {
		return 0, nil, errMissingAccess
	}
	if c.Archived {
		// A message unarchives the thread; the bot may post in a locked one (it manages
		// threads), members may not (userSendsLocked).
		c.Archived = false
	}
	payload := body
	var files []Attachment
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		payload = nil
		mr := multipart.NewReader(strings.NewReader(string(body)), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			data, _ := io.ReadAll(p)
			switch name := p.FormName(); {
			case name == "payload_json":
				payload = data
			case strings.HasPrefix(name, "files["):
				size := len(data)
				if n, err := strconv.Atoi(p.Header.Get(sizeHeader)); err == nil {
					size, data = n, nil
				}
				files = append(files, Attachment{ID: s.newID(), Filename: p.FileName(), ContentType: p.Header.Get("Content-Type"), Size: size, Data: data})
			}
		}
	} else if mt != "application/json" {
		return 0, nil, &apiError{400, 50035, "Invalid Form Body"}
	}
	if s.uploadLimit > 0 {
		var total int64
		for _, f := range files {
			total += int64(f.Size)
		}
		if total > s.uploadLimit {
			return 0, nil, &apiError{413, 40005, "Request entity too large"}
		}
	}
	var d struct {
		Content          string          `json:"content"`
		Embeds           json.RawMessage `json:"embeds"`
		Components       json.RawMessage `json:"components"`
		AllowedMentions  json.RawMessage `json:"allowed_mentions"`
		MessageReference *struct {
			MessageID       string `json:"message_id"`
			FailIfNotExists *bool  `json:"fail_if_not_exists"`
		} `json:"message_reference"`
		Nonce        json.RawMessage `json:"nonce"`
		EnforceNonce bool            `json:"enforce_nonce"`
	}
	if err := json.Unmarshal(payload, &d); err != nil {
		return 0, nil, &apiError{400, 50109, "The request body contains invalid JSON."}
	}
	// nonce: an integer or a string of up to 25 characters. With enforce_nonce, a message the
	// same author created with it in the past few minutes is returned instead of a new one.
	var nonce string
	if len(d.Nonce) > 0 && string(d.Nonce) != "null" {
		if err := json.Unmarshal(d.Nonce, &nonce); err != nil {
			var n int64
			if json.Unmarshal(d.Nonce, &n) != nil {
				return 0, nil, &apiError{400, 50035, "Invalid Form Body: nonce: Must be an integer or a string."}
			}
			nonce = strconv.FormatInt(n, 10)
		}
		if len(nonce) > 25 {
			return 0, nil, &apiError{400, 50035, "Invalid Form Body: nonce: Must be 25 or fewer in length."}
		}
	}
	if nonce != "" && d.EnforceNonce {
		if u, ok := s.nonces[nonce]; ok && time.Since(u.at) < nonceWindow {
			if prev, ok := s.messages[u.messageID]; ok {
				return 200, s.renderLocked(prev, false), nil
			}
		}
	}
	if utf8.RuneCountInString(d.Content) > 2000 {
		return 0, nil, &apiError{400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length."}
	}
	hasEmbeds := len(d.Embeds) > 0 && string(d.Embeds) != "null" && string(d.Embeds) != "[]"
	hasComponents := len(d.Components) > 0 && string(d.Components) != "null" && string(d.Components) != "[]"
	if strings.TrimSpace(d.Content) == "" && !hasEmbeds && !hasComponents && len(files) == 0 {
		return 0, nil, errEmpty
	}
	m := &Message{ID: s.newID(), ChannelID: c.ID, AuthorID: s.BotID, Content: d.Content, Timestamp: time.Now().UTC(),
		Attachments: files, AllowedMentions: d.AllowedMentions, Payload: payload}
	if hasEmbeds {
		m.Embeds = d.Embeds
	}
	if hasComponents {
		m.Components = d.Components
	}
	if ref := d.MessageReference; ref != nil {
		if _, ok := s.messages[ref.MessageID]; ok {
			m.ReplyTo, m.Type = ref.MessageID, 19
		} else if ref.FailIfNotExists == nil || *ref.FailIfNotExists {
			return 0, nil, &apiError{400, 50035, "Invalid Form Body: message_reference: Unknown message"}
		}
	}
	s.storeLocked(m)
	if nonce != "" {
		s.nonces[nonce] = nonceUse{messageID: m.ID, at: time.Now()}
	}
	s.dispatchLocked("MESSAGE_CREATE", s.renderLocked(m, true))
	return 200, s.renderLocked(m, false), nil
}
