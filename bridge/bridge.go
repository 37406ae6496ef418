// Package bridge is the core of OneChat Bridge: the vocabulary shared by adapters and the store,
// the Adapter and Store interfaces, and the Core that routes messages between platform users and
// their OneChat conversations.
//
// The core never imports a platform SDK or a database driver: adapters/* implement Adapter and
// bridge/postgres implements Store.
package bridge

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/onechat/onechat-bridge/texts"
)

// Platform names a chat platform. It is stored as text and appears in contact identifiers;
// each adapter package declares its own ("telegram", "discord", "slack").
type Platform string

// UserRef identifies a user on a platform. ID is the platform's own user id as text
// (decimal for Telegram and Discord).
type UserRef struct {
	Platform Platform `json:"platform"`
	ID       string   `json:"id"`
}

// Identifier is the OneChat contact identifier of the user, e.g. "telegram:123456789".
func (u UserRef) Identifier() string { return string(u.Platform) + ":" + u.ID }

// String returns the same as Identifier.
func (u UserRef) String() string { return u.Identifier() }

// ChatRef identifies the chat on a platform where the bridge answers a user: a Telegram private
// chat, a Discord DM channel or a ticket thread.
type ChatRef struct {
	Platform Platform `json:"platform"`
	ID       string   `json:"id"`
}

// String returns "platform:id".
func (c ChatRef) String() string { return string(c.Platform) + ":" + c.ID }

// Inbound is one message a platform user wrote, as an adapter hands it to the core.
type Inbound struct {
	User UserRef `json:"user"`
	// Chat is where replies to this user go.
	Chat ChatRef `json:"chat"`
	// MessageID is the platform's id of the message, unique within Chat. Together with Chat it
	// makes a replayed update a no-op.
	MessageID string `json:"message_id"`
	// DisplayName is the user's name as the platform shows it; it becomes the contact name.
	DisplayName string `json:"display_name,omitempty"`
	// Username is the user's handle on the platform, without '@', if any.
	Username string `json:"username,omitempty"`
	// ContactAttributes are custom attributes the adapter knows about the user (e.g. the
	// Slack workspace they belong to); the core sets them on the OneChat contact so agents
	// see them in the sidebar. Leave it empty when the message is not the user's own words
	// about themselves (a colleague writing in their thread).
	ContactAttributes map[string]string `json:"contact_attributes,omitempty"`
	// Language is the user's language as a BCP 47 tag ("pt-BR", "es-419", "en"), when the
	// platform says it (Telegram's language_code, a Discord interaction's locale, Slack's user
	// locale). The core saves it as the contact attribute "language", so OneChat's automation
	// can route by it, and remembers it for Host.UserLanguage. Leave it empty when the message
	// is not the user's own (a colleague writing in their thread).
	Language string `json:"language,omitempty"`
	// Text is the message text in Markdown as the agent should see it.
	Text string `json:"text,omitempty"`
	// ReplyTo is the platform message id the user replied to, if any.
	ReplyTo string `json:"reply_to,omitempty"`
	// ReplyToText is the text of the message replied to, when the platform includes it; the
	// core quotes it for the agent, since a contact cannot set in_reply_to in OneChat.
	ReplyToText string `json:"reply_to_text,omitempty"`
	// EditOf is set when this is an edit: the platform id of the message edited. MessageID is
	// then an id unique to this edit (e.g. "<id>.edit.<unix time>").
	EditOf string `json:"edit_of,omitempty"`
	// DeletedOf is set when the user deleted a message: its platform id.
	DeletedOf string `json:"deleted_of,omitempty"`
	// Attachments are files the user sent. The core streams them to OneChat through the
	// adapter's AttachmentOpener.
	Attachments []Attachment `json:"attachments,omitempty"`
	// Notes are short visible lines for the agent about what could not be bridged as is,
	// e.g. "📎 video.mp4 (31 MB) is larger than the bot may download".
	Notes []string `json:"notes,omitempty"`
	// Choice is set when the user pressed a button of an interactive agent message.
	Choice *Choice `json:"choice,omitempty"`
	// Ticket is set when the user closes or reopens their ticket (a /close command, a "Close
	// ticket" or "Reopen" button) instead of writing: the core resolves the conversation, or
	// reopens it, and tells the agent in it. Text is ignored then.
	Ticket TicketAction `json:"ticket,omitempty"`
	// SentAt is when the platform says the message was sent.
	SentAt time.Time `json:"sent_at"`
}

// Choice is a button the user pressed on an interactive message the bridge sent.
type Choice struct {
	// MessageID is the platform id of the message that carried the buttons.
	MessageID string `json:"message_id"`
	// Title and Value are the option chosen (for CSAT, Value is the rating "1".."5").
	Title string `json:"title"`
	Value string `json:"value"`
}

// AttachmentKind says how a platform shows a file.
type AttachmentKind string

// Attachment kinds. OneChat itself only distinguishes image, audio, video and file (by MIME
// type); the finer kinds let adapters send a voice note as a voice note.
const (
	KindImage     AttachmentKind = "image"
	KindAudio     AttachmentKind = "audio"
	KindVoice     AttachmentKind = "voice"
	KindVideo     AttachmentKind = "video"
	KindAnimation AttachmentKind = "animation"
	KindSticker   AttachmentKind = "sticker"
	KindFile      AttachmentKind = "file"
	// KindLink is an agent attachment that is a link to something elsewhere (OneChat's
	// fallback, location and embed attachments): Ref is the URL, Name its title. The core
	// sends it as a line of text and never fetches it; adapters never see one.
	KindLink AttachmentKind = "link"
)

// Attachment is a file on its way through the bridge. Its bytes are never held in the queue:
// Ref says where they are (a Telegram file_id, a Discord attachment, a OneChat data_url) and
// Open streams them when the message is sent.
type Attachment struct {
	Kind AttachmentKind `json:"kind"`
	// Name is the file name shown to the receiver.
	Name string `json:"name,omitempty"`
	// MIME is the media type; OneChat decides image/audio/video/file from it.
	MIME string `json:"mime,omitempty"`
	// Size in bytes, 0 when unknown.
	Size int64 `json:"size,omitempty"`
	// Ref locates the bytes for whoever opens them.
	Ref string `json:"ref"`
	// Open streams the bytes. The core sets it before handing a message on; every call
	// returns a fresh reader, so a retry can read again.
	Open func(ctx context.Context) (io.ReadCloser, error) `json:"-"`
}

// FormatSize prints a byte count the way people read file sizes, for notes about files.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// DedupKey is the key that makes a replayed inbound message a no-op.
func (m Inbound) DedupKey() string { return m.Chat.String() + ":" + m.MessageID }

// Outbound operations.
const (
	// OpSend sends a new message (the zero value).
	OpSend = ""
	// OpEdit changes the platform messages (Parts) an earlier send created.
	OpEdit = "edit"
	// OpDelete deletes them.
	OpDelete = "delete"
	// OpClosed tells a TicketKeeper that the conversation was resolved, after every agent
	// message queued before the resolve.
	OpClosed = "closed"
	// OpReopened tells a TicketKeeper that the conversation was reopened.
	OpReopened = "reopened"
	// OpNotice sends a short line of the bridge's own (Text) to the user: it is no OneChat
	// message, so no link is recorded for it.
	OpNotice = "notice"
)

// Outbound is one agent message on its way to a platform user.
type Outbound struct {
	// Op is OpSend, OpEdit, OpDelete, OpClosed, OpReopened or OpNotice.
	Op string `json:"op,omitempty"`
	// User is the platform user the message is for.
	User UserRef `json:"user"`
	Chat ChatRef `json:"chat"`
	// ConversationID is the OneChat conversation (display id) the message belongs to.
	ConversationID int64 `json:"conversation_id"`
	// MessageID is the OneChat message id.
	MessageID int64 `json:"message_id"`
	// Text is the message content as OneChat stores it (Markdown).
	Text string `json:"text,omitempty"`
	// AgentName is the name of the agent who wrote it, if known.
	AgentName string `json:"agent_name,omitempty"`
	// InReplyTo is the OneChat message id the agent quoted, 0 if none.
	InReplyTo int64 `json:"in_reply_to,omitempty"`
	// ReplyTo is the platform message id this message answers: the core fills it from InReplyTo
	// when the quoted message was bridged to the same chat.
	ReplyTo string `json:"reply_to,omitempty"`
	// ContentType is OneChat's content type: text, input_select, input_csat, cards, article, …
	ContentType string `json:"content_type,omitempty"`
	// Items are the options of an input_select, or the cards/articles of cards and article.
	Items []Item `json:"items,omitempty"`
	// Attachments are the agent's files; Open streams them from OneChat.
	Attachments []Attachment `json:"attachments,omitempty"`
	// ByUser is set on OpClosed and OpReopened when the user closed or reopened the ticket
	// themselves.
	ByUser bool `json:"by_user,omitempty"`
	// Parts are the platform message ids an earlier Send of this message returned; the core
	// sets them for Editor.Edit and Deleter.Delete, and for a Send that continues one that
	// failed part-way (see Adapter.Send).
	Parts []string `json:"parts,omitempty"`
}

// Item is one option, card or article of an interactive OneChat message.
type Item struct {
	Title       string `json:"title,omitempty"`
	Value       string `json:"value,omitempty"`
	Description string `json:"description,omitempty"`
	Link        string `json:"link,omitempty"`
	MediaURL    string `json:"media_url,omitempty"`
}

// Cursor is a named, monotonic position an adapter or the core keeps in the store, such as the
// Telegram update offset or the timestamp of the last Slack message delivered from a channel.
// A cursor never moves backwards: positions are ordered by CursorAfter, which orders
// non-negative decimal integers and Slack timestamps; an adapter whose positions have no such
// order keeps them with Host.SetValue instead.
type Cursor struct {
	Name     string
	Position string
}

// IntCursor is a cursor at a non-negative integer position.
func IntCursor(name string, pos int64) Cursor {
	return Cursor{Name: name, Position: strconv.FormatInt(max(pos, 0), 10)}
}

// Int returns the position as an integer, 0 when it is empty or not one.
func (c Cursor) Int() int64 { return ParsePosition(c.Position) }

// ParsePosition reads an integer cursor position, 0 when it is empty or not one.
func ParsePosition(pos string) int64 {
	n, err := strconv.ParseInt(pos, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// CursorAfter reports whether position a comes after b: the longer one, or at equal length the
// greater byte by byte. The store orders cursor positions the same way.
func CursorAfter(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

// Adapter connects one platform to the core. It is built with the Host it uses (see
// AdapterBuilder), so every method works on any instance sharing the store; Run is the only part
// that may run on one instance at a time (SingletonRunner).
type Adapter interface {
	// Platform names the platform this adapter serves.
	Platform() Platform
	// Run receives from the platform until ctx is cancelled and hands every message to the
	// Host's Deliver before acknowledging it to the platform. It returns only after all
	// goroutines it started have exited; it returns nil when ctx was cancelled.
	Run(ctx context.Context) error
	// Send delivers m to its chat and returns the platform ids of the messages it created.
	// Errors are classified with Permanent, Unreachable and RateLimited; anything else is
	// retried. A Send that fails after creating some of the messages (a long text or several
	// files become several) returns their ids with the error, and the retry carries them in
	// m.Parts: Send then creates only the messages after those, and returns their ids.
	// A Send that delivered the message but left part of it out (a file the platform would
	// not take) returns every id with a *PartialError (Partial) naming what and why: the
	// message counts as delivered, and the core shows the notes to agents.
	// Send is called concurrently for different chats, never concurrently for one chat, and on
	// any instance, whether or not this one runs Run.
	Send(ctx context.Context, m Outbound) ([]string, error)
}

// AdapterBuilder builds an adapter around the Host the core gives it. bridge.New calls each
// builder once, before anything runs; a builder must not contact the platform.
type AdapterBuilder func(h Host) (Adapter, error)

// Host is everything the core offers an adapter. The core gives each adapter its own Host
// when it is built; every method works on every instance sharing the store.
type Host interface {
	// Deliver durably stores the messages (a message stored before is a no-op) and, in the same
	// transaction, moves cur forward when cur.Name is not empty. When it returns nil, the
	// adapter may acknowledge the messages to the platform.
	Deliver(ctx context.Context, cur Cursor, msgs ...Inbound) error
	// Cursor returns the stored position of the named cursor, "" if it was never stored.
	Cursor(ctx context.Context, name string) (string, error)
	// Cursors returns the stored cursors whose name starts with prefix, ordered by name, so an
	// adapter can find the chats it must catch up after a restart.
	Cursors(ctx context.Context, prefix string) ([]Cursor, error)
	// MoveChat says that the user's messages go to another chat from now on (e.g. a Discord
	// user whose DMs are closed is answered in their support thread). Messages already queued
	// for the old chat follow to the new one.
	MoveChat(ctx context.Context, u UserRef, chat ChatRef) error
	// UserTyping says the platform reports the user typing in chat; the core shows it to the
	// agent and switches it off when the platform stops reporting it. It does not block.
	UserTyping(ctx context.Context, u UserRef, chat ChatRef)
	// Value returns the adapter's stored value for key and whether there is one. Keys and
	// values belong to this adapter alone: another platform's adapter never sees them.
	Value(ctx context.Context, key string) (string, bool, error)
	// SetValue stores value for key, replacing any earlier one.
	SetValue(ctx context.Context, key, value string) error
	// SetValueIfAbsent stores value for key unless the key has one, and returns the value
	// stored now: value, or the earlier one. Two instances racing to create the same thing (a
	// user's support thread) agree on the winner through it.
	SetValueIfAbsent(ctx context.Context, key, value string) (string, error)
	// DeleteValue forgets key; a key that has no value is not an error.
	DeleteValue(ctx context.Context, key string) error
	// Values returns every key that starts with prefix, with its value.
	Values(ctx context.Context, prefix string) (map[string]string, error)
	// Texts is the message catalogue: every text the adapter says to users (in the user's
	// language: Texts().Text(lang, key, vars)) or adds for agents (Texts().Agent(key, vars)).
	Texts() *texts.Catalogue
	// UserLanguage returns the language the user's latest message carried (Inbound.Language),
	// remembered by the core on every instance, or "" when it is unknown (or cannot be read
	// now): Texts().Text then uses the default language. It is for what the adapter says to
	// a user outside an answer to their message: CSAT prompts, notes about files, notices.
	UserLanguage(ctx context.Context, u UserRef) string
}

// ContactIdentifier builds the OneChat contact identifier for a platform user id.
func ContactIdentifier(p Platform, userID string) string {
	return UserRef{Platform: p, ID: userID}.Identifier()
}

// ParseIdentifier splits a contact identifier into its platform and user id.
func ParseIdentifier(id string) (UserRef, bool) {
	p, u, ok := strings.Cut(id, ":")
	if !ok || p == "" || u == "" {
		return UserRef{}, false
	}
	return UserRef{Platform: Platform(p), ID: u}, true
}

// AttachmentOpener is implemented by adapters whose users send files: it streams an inbound
// attachment's bytes from the platform (Telegram getFile, a fresh Discord CDN link).
type AttachmentOpener interface {
	OpenAttachment(ctx context.Context, a Attachment) (io.ReadCloser, error)
}

// Editor is implemented by adapters that can change a message they sent: m carries the new
// content and, in Parts, the platform ids Send returned for it.
type Editor interface {
	Edit(ctx context.Context, m Outbound) error
}

// Deleter is implemented by adapters that can delete a message they sent (m.Parts).
type Deleter interface {
	Delete(ctx context.Context, m Outbound) error
}

// Typer is implemented by adapters that can show the agent typing in a chat. ShowTyping shows
// the indicator once; the platform lets it fade by itself (Telegram after 5 s, Discord after
// 10 s). While the agent types, the core calls ShowTyping again every TypingRefresh, on the
// instance that hears the agent, and stops calling when the agent stops (or after 30 s without
// news).
type Typer interface {
	ShowTyping(ctx context.Context, chat ChatRef) error
	TypingRefresh() time.Duration
}

// TicketAction is what a user does to their ticket (Inbound.Ticket).
type TicketAction string

// Ticket actions.
const (
	// TicketClose resolves the user's current conversation.
	TicketClose TicketAction = "close"
	// TicketReopen reopens the user's current conversation when it is resolved.
	TicketReopen TicketAction = "reopen"
)

// ParseTicketAction reads a ticket action an adapter put after prefix in a button's id
// (Telegram's callback data, Discord's custom id, Slack's action id).
func ParseTicketAction(id, prefix string) (TicketAction, bool) {
	a, ok := strings.CutPrefix(id, prefix)
	switch action := TicketAction(a); {
	case !ok:
		return "", false
	case action == TicketClose, action == TicketReopen:
		return action, true
	}
	return "", false
}

// ResolvedNotice says when a user is told that their ticket was closed (BRIDGE_RESOLVED_NOTICE).
type ResolvedNotice string

// Resolved-notice settings.
const (
	// NoticeAuto tells users in ticket threads, and users in direct messages only when they
	// closed the ticket themselves (so their command is answered).
	NoticeAuto ResolvedNotice = "auto"
	// NoticeAlways tells every user.
	NoticeAlways ResolvedNotice = "always"
	// NoticeNever tells no one; a Discord thread still gets its closing line.
	NoticeNever ResolvedNotice = "never"
)

// TicketEvent is a change of a user's ticket, the OneChat conversation the bridge keeps for them.
type TicketEvent struct {
	User UserRef
	Chat ChatRef
	// ConversationID is the OneChat conversation (display id).
	ConversationID int64
	// ByUser is true when the user closed or reopened the ticket themselves.
	ByUser bool
	// Surveyed is true when OneChat itself sent the user a CSAT survey or a template message
	// for this resolve: the user then gets no notice of the bridge's own (never two).
	Surveyed bool
	// Notice is the operator's resolved-notice setting.
	Notice ResolvedNotice
}

// ShowNotice says whether the user should get the short "closed" notice with a Reopen button,
// given whether the chat is a ticket thread (true) or a direct conversation (false).
func (e TicketEvent) ShowNotice(inThread bool) bool {
	if e.Surveyed {
		return false
	}
	switch e.Notice {
	case NoticeAlways:
		return true
	case NoticeNever:
		return false
	default:
		return inThread || e.ByUser
	}
}

// TicketKeeper is implemented by adapters that show a ticket's lifecycle on the platform: a
// closing line, an archived thread, a notice with a Reopen button. The core calls it from the
// outbound worker, in the chat's order (after the agent's last reply), with the usual retries:
// errors are classified like Send's. It is called on any instance.
type TicketKeeper interface {
	// TicketClosed is called once when the conversation was resolved (by an agent, an
	// automation, or the user).
	TicketClosed(ctx context.Context, e TicketEvent) error
	// TicketReopened is called once when a resolved conversation was opened again.
	TicketReopened(ctx context.Context, e TicketEvent) error
}

// HealthReporter is implemented by adapters that can say whether they are connected to their
// platform (for /readyz): nil means healthy, an error says what is wrong, without secrets.
type HealthReporter interface {
	Health() error
}

// Checker is implemented by adapters that can check their settings against the platform
// (`bridge check`): Check asks the platform who the bot is and returns a short description for
// the OK line ("bot @name"), or an error that says what to fix, without secrets.
type Checker interface {
	Check(ctx context.Context) (string, error)
}

// ChatLinker is implemented by adapters whose chats have a web link agents can open (a
// Telegram user's t.me/<username>, a Discord channel or thread). ChatLink returns the link of
// the chat where the user u (with the platform username, if any) is answered, or "" when there
// is none; it must not block. With ONECHAT_API_ACCESS_TOKEN the core sets it on each new
// conversation as the custom attribute bridge_chat_link.
type ChatLinker interface {
	ChatLink(u UserRef, username string, chat ChatRef) string
}

// SingletonRunner is implemented by adapters that can say whether their Run must run on one
// instance at a time when several bridge instances share a store. An adapter that does not
// implement it is treated as a singleton, which is right for a long poller (Telegram allows
// one getUpdates per token) and a gateway connection (Discord would deliver every event to
// each). An adapter that only serves requests pushed to it (Telegram's webhook behind a load
// balancer) returns false and runs on every instance. The answer must not change after New.
type SingletonRunner interface {
	NeedsSingleton() bool
}
