package slacktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Defaults of the fake's identities. Tests may compare against them.
const (
	TeamID     = "T0FAKE001"
	TeamName   = "Fake Workspace"
	TeamDomain = "fakeworkspace"
	BotUserID  = "U0BOT0001"
	BotID      = "B0BOT0001"
	AppID      = "A0APP0001"
	// VerificationToken is the legacy verification token Slack puts in event payloads. It is
	// not a credential; the fake uses a fixed value so no test token ever appears in an event.
	VerificationToken = "fakeverificationtoken"
)

// maxTextLen is chat.postMessage's limit on text; longer text fails with msg_too_long.
const maxTextLen = 40000

// Team is a Slack workspace: the bot's own, or the other side of a Slack Connect channel.
type Team struct {
	ID, Name, Domain string
}

// User is a Slack user.
type User struct {
	ID          string
	Team        string // team ID; the main team when empty
	Name        string // the handle
	RealName    string
	DisplayName string
	TZ          string // IANA zone, e.g. "Europe/Berlin"
	Locale      string // e.g. "de-DE"; returned by users.info only with include_locale
	IsBot       bool
	Deleted     bool
}

// Channel is a conversation: a public or private channel (Slack Connect when shared with other
// teams) or the bot's DM with a user.
type Channel struct {
	ID         string
	Name       string
	Private    bool
	IM         bool
	User       string   // the other party of a DM
	SharedWith []string // other teams of a Slack Connect channel
	Archived   bool
	BotMember  bool
	Created    int64
}

// Edited marks an edited message.
type Edited struct {
	User string `json:"user"`
	TS   string `json:"ts"`
}

// File is an uploaded file.
type File struct {
	ID       string
	Name     string
	Title    string
	Mimetype string
	User     string
	Data     []byte
	// Size is the file's length: len(Data), or what was uploaded when the fake discards
	// uploads (DiscardUploads).
	Size int64
	// URLPrivate and URLPrivateDownload are the fake's links; both need the bot token.
	URLPrivate, URLPrivateDownload string
	Created                        int64
}

// Reaction is a reaction on a message.
type Reaction struct {
	Name  string
	Users []string
}

// Message is a stored message as Slack keeps it; edits change it and a deletion marks it.
type Message struct {
	Channel  string
	TS       string
	ThreadTS string // the parent's ts for a reply; the message's own ts for a thread parent
	User     string
	Team     string // the author's team
	BotID    string // set for the bot's chat.postMessage posts
	Subtype  string // "", "file_share", "bot_message"…
	Text     string
	Blocks   json.RawMessage
	// Attachments holds legacy attachments, such as unfurls added by Unfurl.
	Attachments json.RawMessage
	Files       []File
	Edited      *Edited
	Deleted     bool
	Reactions   []Reaction
	ClientMsgID string
	// Params are the form values of the call that created the message (chat.postMessage or
	// files.completeUploadExternal), without the token, so a test can assert that parse or
	// link_names were never sent. Nil for user messages.
	Params url.Values
	// Updates counts the chat.update calls on the message.
	Updates int
}

// IsReply says whether the message is a reply in a thread.
func (m Message) IsReply() bool { return m.ThreadTS != "" && m.ThreadTS != m.TS }

// Call is one Web API call the fake received.
type Call struct {
	Method string
	Params url.Values // without the token
}

// Option configures a Server.
type Option func(*Server)

// WithAckTimeout sets how long an envelope may stay unacknowledged before it is redelivered
// (Slack: 3 s).
func WithAckTimeout(d time.Duration) Option { return func(s *Server) { s.ackTimeout = d } }

// WithPingInterval sets how often the fake pings each socket (default 10 s). slack-go drops a
// socket that sees no ping for its OptionPingInterval (default 30 s), so keep this below it.
func WithPingInterval(d time.Duration) Option { return func(s *Server) { s.pingInterval = d } }

// WithDisconnectGrace sets how long a socket stays open after a disconnect frame before the fake
// closes it (default 1 s; Slack: a few seconds, about 10 s for "warning").
func WithDisconnectGrace(d time.Duration) Option { return func(s *Server) { s.disconnectGrace = d } }

// WithHistoryPageMax caps the limit of conversations.history and conversations.replies (default
// 999). Slack caps it at 15 for apps outside the Marketplace created after 2025-05-29, along
// with a rate of 1 call per minute (see RateLimit).
func WithHistoryPageMax(n int) Option { return func(s *Server) { s.historyMax = n } }

// WithTokens sets the bot token (xoxb-…) and the app-level token (xapp-…).
func WithTokens(bot, app string) Option {
	return func(s *Server) { s.BotToken, s.AppToken = bot, app }
}

// WithPostRateLimit sets chat.postMessage's per-channel limit: rate messages per second with
// bursts of burst (Slack: about 1 per second with short bursts). Off by default.
func WithPostRateLimit(rate float64, burst int) Option {
	return func(s *Server) { s.postRate, s.postBurst = rate, burst }
}

// Server is the fake. Its exported fields are fixed at NewServer.
type Server struct {
	// URL is the server's base URL; APIURL is URL + "/api/", what slack.OptionAPIURL takes.
	URL, APIURL        string
	BotToken, AppToken string

	t   testing.TB
	srv *httptest.Server
	wg  sync.WaitGroup // socket goroutines and the dispatcher

	ackTimeout, pingInterval, disconnectGrace time.Duration
	postRate                                  float64
	postBurst                                 int
	historyMax                                int

	mu         sync.Mutex
	closed     bool
	held       chan struct{} // while not nil, socket upgrades wait (HoldSockets)
	holding    int           // socket upgrades waiting on held
	done       chan struct{}
	changed    chan struct{}
	kick       chan struct{} // wakes the dispatcher
	seq        int
	lastTS     int64 // microseconds of the last ts handed out
	teams      map[string]*Team
	users      map[string]*User
	channels   map[string]*Channel
	dms        map[string]string // user → DM channel
	msgs       map[string][]*Message
	files      map[string]*File
	uploads    map[string]*upload
	calls      []Call
	faults     []*fault
	buckets    map[string]*bucket
	tickets    map[string]bool
	socks      []*sock
	dials      int
	events     []*event
	envelopes  map[string]*event
	strayAcks  []string
	queueAway  bool
	ephemerals []Call
	actions    map[string][2]string // response_url key → channel, ts
	discard    bool                 // uploads are counted, not kept (DiscardUploads)
}

// NewServer starts a fake, closed when the test ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	s := &Server{
		t: t, BotToken: "xoxb-1-fake-bot-token", AppToken: "xapp-1-fake-app-token",
		historyMax: 999, ackTimeout: 3 * time.Second, pingInterval: 10 * time.Second, disconnectGrace: time.Second,
		done: make(chan struct{}), changed: make(chan struct{}), kick: make(chan struct{}, 1),
		teams: map[string]*Team{}, users: map[string]*User{}, channels: map[string]*Channel{},
		dms: map[string]string{}, msgs: map[string][]*Message{}, files: map[string]*File{},
		uploads: map[string]*upload{}, buckets: map[string]*bucket{}, tickets: map[string]bool{},
		envelopes: map[string]*event{}, queueAway: true, actions: map[string][2]string{},
	}
	for _, o := range opts {
		o(s)
	}
	s.teams[TeamID] = &Team{ID: TeamID, Name: TeamName, Domain: TeamDomain}
	s.users[BotUserID] = &User{ID: BotUserID, Team: TeamID, Name: "onechat", RealName: "OneChat Support",
		DisplayName: "OneChat Support", TZ: "UTC", Locale: "en-US", IsBot: true}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.serveAPI)
	mux.HandleFunc("/link/", s.serveSocket)
	mux.HandleFunc("/upload/v1/", s.serveUpload)
	mux.HandleFunc("/files-pri/", s.serveFile)
	mux.HandleFunc("/actions/", s.serveResponseURL)
	mux.HandleFunc("/", s.serveSignIn)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	s.APIURL = s.srv.URL + "/api/"
	s.wg.Add(1)
	go s.dispatch()
	t.Cleanup(s.Close)
	return s
}

// Close drops every socket and stops the server; it returns after every goroutine of the fake
// has exited. Calling it twice is harmless.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	for _, c := range s.socks {
		c.cancel()
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
	s.wg.Wait()
}

// notify wakes WaitFor callers and the dispatcher; s.mu must be held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// waitTimeout bounds every Wait helper; a correct test never gets near it.
const waitTimeout = 10 * time.Second

// WaitFor blocks until cond holds, re-checking it after every change of the fake's state, and
// fails the test after 10 s. cond runs without the fake's lock, so it may call any method.
func (s *Server) WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("slacktest: timed out waiting for %s", what)
		}
	}
}

// Wait blocks until cond holds, re-checking it after every change of the fake's state, or
// until ctx ends. It is WaitFor for callers with their own deadline, such as end-to-end tests
// where the fake sits behind a whole bridge process and 10 s may not be enough.
func (s *Server) Wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("slacktest: wait: %w", ctx.Err())
		}
	}
}

func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%07d", prefix, s.seq)
}

// newTS returns a Slack timestamp ("1712345678.000200") from the clock, strictly greater than
// every earlier one, so it is unique per channel and increasing.
func (s *Server) newTS() string {
	now := time.Now().UnixMicro()
	if now <= s.lastTS {
		now = s.lastTS + 1
	}
	s.lastTS = now
	return fmt.Sprintf("%d.%06d", now/1e6, now%1e6)
}

// tsKey makes a timestamp comparable; ok is false for a malformed one.
func tsKey(ts string) (int64, bool) {
	sec, frac, _ := strings.Cut(ts, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n < 0 || len(frac) > 6 {
		return 0, false
	}
	var us int64
	if frac != "" {
		f, err := strconv.ParseInt((frac + "000000")[:6], 10, 64)
		if err != nil || f < 0 {
			return 0, false
		}
		us = f
	}
	return n*1e6 + us, true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---- workspace set-up ----

// AddTeam registers another workspace (the far side of a Slack Connect channel).
func (s *Server) AddTeam(id, name, domain string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.teams[id] = &Team{ID: id, Name: name, Domain: domain}
	s.notify()
}

// AddUser registers a user; an empty Team means the main team, an empty ID gets one.
// It returns the user's ID.
func (s *Server) AddUser(u User) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		u.ID = s.nextID("U")
	}
	if u.Team == "" {
		u.Team = TeamID
	}
	if u.Name == "" {
		u.Name = strings.ToLower(u.ID)
	}
	s.users[u.ID] = &u
	s.notify()
	return u.ID
}

// ChannelOption configures AddChannel.
type ChannelOption func(*Channel)

// Private makes the channel private (message.groups, channel_type "group").
func Private() ChannelOption { return func(c *Channel) { c.Private = true } }

// SharedWith makes it a Slack Connect channel shared with the given teams (add them first).
func SharedWith(teams ...string) ChannelOption {
	return func(c *Channel) { c.SharedWith = append(c.SharedWith, teams...) }
}

// WithoutBot creates the channel without the bot in it: posts fail with not_in_channel and no
// events are delivered from it.
func WithoutBot() ChannelOption { return func(c *Channel) { c.BotMember = false } }

// AddChannel creates a channel with the bot in it and returns its ID (C…).
func (s *Server) AddChannel(name string, opts ...ChannelOption) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &Channel{ID: s.nextID("C"), Name: name, BotMember: true, Created: time.Now().Unix()}
	for _, o := range opts {
		o(c)
	}
	s.channels[c.ID] = c
	s.notify()
	return c.ID
}

// DM returns the ID (D…) of the bot's DM with a user, creating it (as the user opening the
// app's Messages tab does).
func (s *Server) DM(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dmLocked(userID)
}

func (s *Server) dmLocked(userID string) string {
	if id, ok := s.dms[userID]; ok {
		return id
	}
	c := &Channel{ID: s.nextID("D"), IM: true, User: userID, BotMember: true, Created: time.Now().Unix()}
	s.channels[c.ID] = c
	s.dms[userID] = c.ID
	s.notify()
	return c.ID
}

// ArchiveChannel archives a channel: posts fail with is_archived.
func (s *Server) ArchiveChannel(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.channels[id]; ok {
		c.Archived = true
	}
	s.notify()
}

// RemoveBot removes the bot from a channel: posts and history fail with not_in_channel.
func (s *Server) RemoveBot(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.channels[id]; ok {
		c.BotMember = false
	}
	s.notify()
}

// DeleteChannel removes a channel: every call on it fails with channel_not_found.
func (s *Server) DeleteChannel(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.channels, id)
	s.notify()
}

// ---- readers ----

// Channel returns a copy of a channel.
func (s *Server) Channel(id string) (Channel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[id]
	if !ok {
		return Channel{}, false
	}
	cp := *c
	cp.SharedWith = slices.Clone(c.SharedWith)
	return cp, true
}

func copyMessage(m *Message) Message {
	cp := *m
	if m.Params != nil {
		cp.Params = cloneValues(m.Params)
	}
	cp.Files = slices.Clone(m.Files)
	cp.Reactions = nil
	for _, r := range m.Reactions {
		cp.Reactions = append(cp.Reactions, Reaction{Name: r.Name, Users: slices.Clone(r.Users)})
	}
	if m.Edited != nil {
		e := *m.Edited
		cp.Edited = &e
	}
	return cp
}

// Messages returns copies of a channel's messages that are not deleted, thread replies
// included, oldest first.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.msgs[channel] {
		if !m.Deleted {
			out = append(out, copyMessage(m))
		}
	}
	return out
}

// Message returns a copy of one message, deleted or not.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findLocked(channel, ts)
	if m == nil {
		return Message{}, false
	}
	return copyMessage(m), true
}

// ThreadReplies returns the replies (not the parent) of a thread that are not deleted, oldest
// first.
func (s *Server) ThreadReplies(channel, threadTS string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.msgs[channel] {
		if !m.Deleted && m.ThreadTS == threadTS && m.TS != threadTS {
			out = append(out, copyMessage(m))
		}
	}
	return out
}

// BotPosts returns every message the bot posted, in every channel, in the order posted,
// deleted ones included (marked Deleted).
func (s *Server) BotPosts() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, ms := range s.msgs {
		for _, m := range ms {
			if m.User == BotUserID {
				out = append(out, copyMessage(m))
			}
		}
	}
	slices.SortFunc(out, func(a, b Message) int {
		ka, _ := tsKey(a.TS)
		kb, _ := tsKey(b.TS)
		return int(ka - kb)
	})
	return out
}

// Reactions returns the reactions on a message.
func (s *Server) Reactions(channel, ts string) []Reaction {
	m, _ := s.Message(channel, ts)
	return m.Reactions
}

// Calls returns the Web API calls of a method so far ("" for every method), without tokens.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, Call{Method: c.Method, Params: cloneValues(c.Params)})
		}
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// ResponseURLPosts returns what the bot POSTed to response_url links that neither replaced nor
// deleted the original (ephemeral answers, which Slack keeps out of history).
func (s *Server) ResponseURLPosts() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ephemerals)
}

// WaitBotPosts waits until the bot has posted at least n messages and returns them.
func (s *Server) WaitBotPosts(t testing.TB, n int) []Message {
	t.Helper()
	var out []Message
	s.WaitFor(t, fmt.Sprintf("%d bot posts", n), func() bool {
		out = s.BotPosts()
		return len(out) >= n
	})
	return out
}

func (s *Server) findLocked(channel, ts string) *Message {
	for _, m := range s.msgs[channel] {
		if m.TS == ts {
			return m
		}
	}
	return nil
}
