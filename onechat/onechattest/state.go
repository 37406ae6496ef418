package onechattest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Fixed ids of the fake's single account, inbox and agent.
const (
	accountID = 1
	inboxID   = 1
	agentID   = 1
	agentName = "Agent Smith"
)

// Message types as OneChat numbers them (message_type in REST and cable payloads).
const (
	MessageIncoming = 0
	MessageOutgoing = 1
	MessageActivity = 2
	MessageTemplate = 3
)

// Conversation statuses.
const (
	StatusOpen     = "open"
	StatusResolved = "resolved"
	StatusPending  = "pending"
	StatusSnoozed  = "snoozed"
)

// Contact is a copy of a contact's state.
type Contact struct {
	ID                   int64
	Identifier           string
	Name                 string
	Email                string
	Phone                string
	CustomAttributes     map[string]any
	AdditionalAttributes map[string]any
	Blocked              bool
}

// ContactInbox is a copy of a contact session: the Client API's {contact_identifier} is its
// SourceID, and PubsubToken subscribes to its cable stream.
type ContactInbox struct {
	ID           int64
	ContactID    int64
	SourceID     string
	PubsubToken  string
	HMACVerified bool
}

// Conversation is a copy of a conversation's state. ID is the display_id the Client API uses.
type Conversation struct {
	ID                int64
	UUID              string
	ContactID         int64
	ContactInboxID    int64
	Status            string
	CustomAttributes  map[string]any
	ContactLastSeenAt time.Time
	// ContactTyping is the last typing_status the contact sent ("on" → true).
	ContactTyping bool
}

// Message is a copy of a message, private notes included. EchoID is kept by the fake for
// assertions only; OneChat itself never stores it.
type Message struct {
	ID                int64
	ConversationID    int64
	MessageType       int
	ContentType       string
	Content           string
	Private           bool
	Status            string
	EchoID            string
	SenderType        string // "Contact", "User" or "" (no sender)
	ContentAttributes map[string]any
	Attachments       []Attachment
	CreatedAt         time.Time
}

// Attachment is a copy of a stored attachment with its bytes.
type Attachment struct {
	ID          int64
	FileType    string
	ContentType string
	Filename    string
	DataURL     string
	Data        []byte
}

type contactRec struct {
	id              int64
	identifier      string
	name            string
	email           string
	phone           string
	customAttrs     map[string]any
	additionalAttrs map[string]any
	blocked         bool
	// onlineUntil is when the contact's presence expires (OnlineStatusTracker).
	onlineUntil    time.Time
	createdAt      time.Time
	updatedAt      time.Time
	lastActivityAt time.Time
}

type sessionRec struct {
	id           int64
	contactID    int64
	sourceID     string
	pubsubToken  string
	hmacVerified bool
	createdAt    time.Time
	updatedAt    time.Time
}

type convRec struct {
	id              int64 // display_id
	uuid            string
	contactID       int64
	sessionID       int64
	status          string
	customAttrs     map[string]any
	labels          []string
	contactLastSeen time.Time
	agentLastSeen   time.Time
	lastActivityAt  time.Time
	waitingSince    time.Time
	firstReplyAt    time.Time
	contactTyping   bool
	createdAt       time.Time
	updatedAt       time.Time
}

type msgRec struct {
	id           int64
	convID       int64
	typ          int
	contentType  string
	content      *string // nil renders as null
	private      bool
	status       string
	echoID       string
	senderType   string
	senderID     int64
	contentAttrs map[string]any
	attachments  []*attachmentRec
	createdAt    time.Time
	updatedAt    time.Time
}

type attachmentRec struct {
	id          int64
	messageID   int64
	fileType    string
	contentType string
	filename    string
	key         string // stands in for the Active Storage signed id
	data        []byte
	// externalURL is the data_url of a link attachment (fallback, location, embed).
	externalURL   string
	fallbackTitle string
	// redirectTo, when set, is where the data_url redirects instead of the fake's disk.
	redirectTo string
}

// state is the fake's database. Every access holds Server.mu.
type state struct {
	contacts map[int64]*contactRec
	sessions map[int64]*sessionRec
	bySource map[string]*sessionRec
	byToken  map[string]*sessionRec
	// byIdentifier and contactSessions index contacts and sessions, so that a fake holding
	// tens of thousands of contacts (benchmarks) does not scan them all per request or event.
	byIdentifier    map[string]*contactRec
	contactSessions map[int64][]*sessionRec
	convs           map[int64]*convRec
	msgs            map[int64]*msgRec
	msgsByType      map[int]int         // len(msgs) by message type, for CountMessages
	msgsByConv      map[int64][]*msgRec // ascending id
	attachments     map[string]*attachmentRec
	seqContact      int64
	seqSession      int64
	seqConv         int64
	seqMsg          int64
	seqAttach       int64
}

func newState() state {
	return state{
		contacts:        map[int64]*contactRec{},
		sessions:        map[int64]*sessionRec{},
		bySource:        map[string]*sessionRec{},
		byToken:         map[string]*sessionRec{},
		byIdentifier:    map[string]*contactRec{},
		contactSessions: map[int64][]*sessionRec{},
		convs:           map[int64]*convRec{},
		msgs:            map[int64]*msgRec{},
		msgsByType:      map[int]int{},
		msgsByConv:      map[int64][]*msgRec{},
		attachments:     map[string]*attachmentRec{},
		// Message ids start far from conversation ids so a client mixing them up fails.
		seqMsg: 1000,
	}
}

// ContactByIdentifier returns the contact with that identifier.
func (s *Server) ContactByIdentifier(identifier string) (Contact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.st.byIdentifier[identifier]; identifier != "" && c != nil {
		return c.public(), true
	}
	return Contact{}, false
}

// ContactByID returns the contact with that id.
func (s *Server) ContactByID(id int64) (Contact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.st.contacts[id]
	if !ok {
		return Contact{}, false
	}
	return c.public(), true
}

// Contacts returns every contact, ascending id.
func (s *Server) Contacts() []Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Contact, 0, len(s.st.contacts))
	for _, c := range s.st.contacts {
		out = append(out, c.public())
	}
	slices.SortFunc(out, func(a, b Contact) int { return cmpInt(a.ID, b.ID) })
	return out
}

// ContactInboxes returns the sessions of a contact, ascending id.
func (s *Server) ContactInboxes(contactID int64) []ContactInbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ContactInbox
	for _, ci := range s.st.sessions {
		if ci.contactID == contactID {
			out = append(out, ci.public())
		}
	}
	slices.SortFunc(out, func(a, b ContactInbox) int { return cmpInt(a.ID, b.ID) })
	return out
}

// ContactInboxBySourceID returns the session with that source_id.
func (s *Server) ContactInboxBySourceID(sourceID string) (ContactInbox, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ci, ok := s.st.bySource[sourceID]
	if !ok {
		return ContactInbox{}, false
	}
	return ci.public(), true
}

// Conversations returns the conversations of a contact (all its sessions), ascending id. The
// REST index, unlike this, is unordered.
func (s *Server) Conversations(contactID int64) []Conversation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Conversation
	for _, c := range s.st.convs {
		if c.contactID == contactID {
			out = append(out, c.public())
		}
	}
	slices.SortFunc(out, func(a, b Conversation) int { return cmpInt(a.ID, b.ID) })
	return out
}

// Conversation returns the conversation with that display id.
func (s *Server) Conversation(id int64) (Conversation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.st.convs[id]
	if !ok {
		return Conversation{}, false
	}
	return c.public(), true
}

// Messages returns every message of a conversation, private notes and activity included,
// ascending id.
func (s *Server) Messages(conversationID int64) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.st.msgsByConv[conversationID]
	out := make([]Message, 0, len(list))
	for _, m := range list {
		out = append(out, s.publicMessage(m))
	}
	return out
}

// Message returns one message by id.
func (s *Server) Message(id int64) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.st.msgs[id]
	if !ok {
		return Message{}, false
	}
	return s.publicMessage(m), true
}

func (c *contactRec) public() Contact {
	return Contact{
		ID: c.id, Identifier: c.identifier, Name: c.name, Email: c.email, Phone: c.phone,
		CustomAttributes:     copyMap(c.customAttrs),
		AdditionalAttributes: copyMap(c.additionalAttrs),
		Blocked:              c.blocked,
	}
}

func (ci *sessionRec) public() ContactInbox {
	return ContactInbox{ID: ci.id, ContactID: ci.contactID, SourceID: ci.sourceID, PubsubToken: ci.pubsubToken, HMACVerified: ci.hmacVerified}
}

func (c *convRec) public() Conversation {
	return Conversation{
		ID: c.id, UUID: c.uuid, ContactID: c.contactID, ContactInboxID: c.sessionID, Status: c.status,
		CustomAttributes: copyMap(c.customAttrs), ContactLastSeenAt: c.contactLastSeen, ContactTyping: c.contactTyping,
	}
}

func (s *Server) publicMessage(m *msgRec) Message {
	out := Message{
		ID: m.id, ConversationID: m.convID, MessageType: m.typ, ContentType: m.contentType,
		Private: m.private, Status: m.status, EchoID: m.echoID, SenderType: m.senderType,
		ContentAttributes: copyMap(m.contentAttrs), CreatedAt: m.createdAt,
	}
	if m.content != nil {
		out.Content = *m.content
	}
	for _, a := range m.attachments {
		out.Attachments = append(out.Attachments, Attachment{
			ID: a.id, FileType: a.fileType, ContentType: a.contentType, Filename: a.filename,
			DataURL: s.dataURL(a), Data: slices.Clone(a.data),
		})
	}
	return out
}

// ---- mutations shared by REST and the test controls; the caller holds s.mu ----

func (s *Server) newSession(contactID int64, sourceID string, now time.Time) *sessionRec {
	s.st.seqSession++
	ci := &sessionRec{id: s.st.seqSession, contactID: contactID, sourceID: sourceID, pubsubToken: secureToken(), createdAt: now, updatedAt: now}
	s.st.sessions[ci.id] = ci
	s.st.bySource[sourceID] = ci
	s.st.byToken[ci.pubsubToken] = ci
	s.st.contactSessions[contactID] = append(s.st.contactSessions[contactID], ci)
	return ci
}

func (s *Server) newConversation(ci *sessionRec, customAttrs map[string]any, now time.Time) *convRec {
	s.st.seqConv++
	// Conversation#determine_conversation_status: resolved for a blocked contact, pending
	// with an active bot, else open.
	status := StatusOpen
	if ct := s.st.contacts[ci.contactID]; ct != nil && ct.blocked {
		status = StatusResolved
	} else if s.opts.ActiveBot {
		status = StatusPending
	}
	c := &convRec{
		id: s.st.seqConv, uuid: uuidV4(), contactID: ci.contactID, sessionID: ci.id, status: status,
		customAttrs: customAttrs, createdAt: now, updatedAt: now, lastActivityAt: now,
	}
	if c.customAttrs == nil {
		c.customAttrs = map[string]any{}
	}
	s.st.convs[c.id] = c
	s.broadcastConversation(c, "conversation.created")
	return c
}

func (s *Server) addMessage(m *msgRec) {
	s.st.seqMsg++
	m.id = s.st.seqMsg
	if m.contentAttrs == nil {
		m.contentAttrs = map[string]any{}
	}
	if m.contentType == "" {
		m.contentType = "text"
	}
	if m.status == "" {
		m.status = "sent"
	}
	for _, a := range m.attachments {
		s.st.seqAttach++
		a.id = s.st.seqAttach
		a.messageID = m.id
		a.key = secureToken() + secureToken()
		s.st.attachments[a.key] = a
	}
	if _, ok := s.st.msgs[m.id]; !ok {
		s.st.msgsByType[m.typ]++
	}
	s.st.msgs[m.id] = m
	s.st.msgsByConv[m.convID] = append(s.st.msgsByConv[m.convID], m)
}

// setStatus changes a conversation's status and emits status_changed and updated, as OneChat
// does for every status change.
func (s *Server) setStatus(c *convRec, status string) {
	if c.status == status {
		return
	}
	c.status = status
	c.updatedAt = time.Now()
	s.broadcastConversation(c, "conversation.status_changed")
	s.broadcastConversation(c, "conversation.updated")
	if status == StatusResolved {
		s.sendCSAT(c)
	}
}

// csatContent is the raw content of the CSAT template message (what cable payloads carry).
const csatContent = "Please rate the conversation"

// sendCSAT posts the CSAT survey when the inbox has it enabled, once per conversation, as
// CsatSurveyService does on resolve: a template message with content_type input_csat. The
// caller holds s.mu.
func (s *Server) sendCSAT(c *convRec) {
	if !s.opts.CSATSurveyEnabled {
		return
	}
	if s.holdSurveys {
		s.heldSurveys = append(s.heldSurveys, c.id)
		return
	}
	for _, m := range s.st.msgsByConv[c.id] {
		if m.contentType == "input_csat" {
			return
		}
	}
	content := csatContent
	now := s.opts.Now()
	m := &msgRec{convID: c.id, typ: MessageTemplate, contentType: "input_csat", content: &content, createdAt: now, updatedAt: now}
	s.addMessage(m)
	s.broadcastMessage(m, "message.created", nil)
}

// mergeContacts merges mergee into base as ContactMergeAction does: sessions, conversations
// and messages move to base, base's non-blank attributes win, and mergee is destroyed.
func (s *Server) mergeContacts(base, mergee *contactRec) *contactRec {
	if base.id == mergee.id {
		return base
	}
	for _, ci := range s.st.contactSessions[mergee.id] {
		ci.contactID = base.id
	}
	s.st.contactSessions[base.id] = append(s.st.contactSessions[base.id], s.st.contactSessions[mergee.id]...)
	delete(s.st.contactSessions, mergee.id)
	for _, c := range s.st.convs {
		if c.contactID == mergee.id {
			c.contactID = base.id
		}
	}
	for _, m := range s.st.msgs {
		if m.senderType == "Contact" && m.senderID == mergee.id {
			m.senderID = base.id
		}
	}
	if base.identifier == "" {
		base.identifier = mergee.identifier
	}
	if base.name == "" {
		base.name = mergee.name
	}
	if base.email == "" {
		base.email = mergee.email
	}
	if base.phone == "" {
		base.phone = mergee.phone
	}
	base.customAttrs = deepMerge(copyMap(mergee.customAttrs), base.customAttrs)
	base.additionalAttrs = deepMerge(copyMap(mergee.additionalAttrs), base.additionalAttrs)
	base.updatedAt = time.Now()
	delete(s.st.contacts, mergee.id)
	if s.st.byIdentifier[mergee.identifier] == mergee {
		delete(s.st.byIdentifier, mergee.identifier)
	}
	if base.identifier != "" {
		s.st.byIdentifier[base.identifier] = base
	}
	return base
}

func (s *Server) chatMessages(convID int64) []*msgRec {
	var out []*msgRec
	for _, m := range s.st.msgsByConv[convID] {
		if !m.private && m.typ != MessageActivity {
			out = append(out, m)
		}
	}
	return out
}

func (s *Server) dataURL(a *attachmentRec) string {
	if a.externalURL != "" {
		return a.externalURL
	}
	return s.baseURL + storagePrefix + "blobs/redirect/" + a.key + "/" + escapeFilename(a.filename)
}

// ---- helpers ----

const base58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// secureToken returns a Rails has_secure_token value: 24 base58 characters.
func secureToken() string {
	out := make([]byte, 0, 24)
	var b [1]byte
	for len(out) < 24 {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (it crashes instead)
		if b[0] < 58*4 {
			out = append(out, base58[b[0]%58])
		}
	}
	return string(out)
}

// uuidV4 returns a lowercase random UUID, as SecureRandom.uuid does.
func uuidV4() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

var (
	haikuAdjectives = []string{"white", "autumn", "hidden", "bitter", "misty", "silent", "empty", "dry", "dark", "summer"}
	haikuNouns      = []string{"shadow", "waterfall", "river", "breeze", "moon", "rain", "wind", "sea", "morning", "snow"}
)

// haikuName stands in for Haikunator, which names contacts created without a name.
func haikuName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s-%d", haikuAdjectives[int(b[0])%len(haikuAdjectives)], haikuNouns[int(b[1])%len(haikuNouns)], (int(b[2])<<8|int(b[3]))%1000)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// copyValue deep-copies a JSON-like value so callers never share state with the fake.
func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return copyMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyValue(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyMap(e)
		}
		return out
	}
	return v
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

// deepMerge merges src into dst like Ruby's Hash#deep_merge (src wins) and returns dst.
func deepMerge(dst, src map[string]any) map[string]any {
	if dst == nil {
		dst = map[string]any{}
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = deepMerge(dm, sm)
				continue
			}
		}
		dst[k] = copyValue(v)
	}
	return dst
}

func escapeFilename(name string) string {
	if name == "" {
		name = "file"
	}
	r := strings.NewReplacer("/", "_", "\\", "_", "?", "_", "#", "_", "%", "_")
	return r.Replace(name)
}

func isoTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
