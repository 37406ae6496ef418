package onechat

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// Event names a contact stream receives. Others (forks add some) may arrive too; ignore what
// you do not know.
const (
	EventMessageCreated            = "message.created"
	EventMessageUpdated            = "message.updated"
	EventConversationCreated       = "conversation.created"
	EventConversationStatusChanged = "conversation.status_changed"
	EventConversationUpdated       = "conversation.updated"
	EventTypingOn                  = "conversation.typing_on"
	EventTypingOff                 = "conversation.typing_off"
	EventPresenceUpdate            = "presence.update"
)

// Event is one broadcast on a subscription: Token is the pubsub token it arrived for (a
// credential: never log it), Name the OneChat event name and Data its raw payload. Events
// the cable delivers come with their payload decoded together with the frame (one decode, not
// two) and no Data; the methods below read either.
type Event struct {
	Token string
	Name  string
	Data  json.RawMessage

	payload *payloadWire
}

// payloadWire is every key of a contact stream's payloads that this package reads: a message's
// (messageWire), a conversation's (its id, status and inbox come from messageWire's keys of
// the same names), a typing event's and a presence update's. All lenient (flex types).
type payloadWire struct {
	messageWire
	ContactInbox    flexRef[contactInboxWire] `json:"contact_inbox"`
	Messages        flexList[messageRef]      `json:"messages"`
	User            flexRef[Sender]           `json:"user"`
	IsPrivate       flexBool                  `json:"is_private"`
	Users           flexObject                `json:"users"`
	PreviousChanges flexObject                `json:"previous_changes"`
}

// decoded returns the event's payload: as the cable decoded it, or decoded from Data.
func (e Event) decoded() (*payloadWire, error) {
	if e.payload != nil {
		return e.payload, nil
	}
	var p payloadWire
	if err := json.Unmarshal(e.Data, &p); err != nil {
		return nil, fmt.Errorf("decode %s payload: %w", e.Name, err)
	}
	return &p, nil
}

// Message decodes the payload of a message.created or message.updated event. Cable payloads
// carry more than REST: Private, EchoID (the echo of our own message), Status, SenderType,
// InboxID and ContactSourceID.
func (e Event) Message() (*Message, error) {
	p, err := e.decoded()
	if err != nil {
		return nil, err
	}
	m := p.message()
	return &m, nil
}

// ConversationEvent is the part of a conversation.* payload the bridge needs.
type ConversationEvent struct {
	// ID is the conversation's display_id.
	ID     int64
	Status string
	// ContactSourceID is contact_inbox.source_id: the session the conversation belongs to.
	// Verified sessions receive other sessions' conversations, so compare it. A credential:
	// never log it.
	ContactSourceID string
	InboxID         int64
	// LatestMessageID is the id of the conversation's latest chat message as the payload
	// embeds it (messages: the last one that is neither private nor activity), 0 when the
	// payload has none.
	LatestMessageID int64
}

// Conversation decodes the conversation of a conversation.created, .status_changed or
// .updated payload. For typing events it decodes the embedded data.conversation.
func (e Event) Conversation() (*ConversationEvent, error) {
	p, err := e.decoded()
	if err != nil {
		return nil, err
	}
	cw := conversationWire{ID: p.ID, Status: p.Status, InboxID: p.InboxID, ContactInbox: p.ContactInbox, Messages: p.Messages}
	if cw.ID == 0 && p.Conversation.v != nil {
		cw = *p.Conversation.v
	}
	return cw.event(), nil
}

type conversationWire struct {
	ID           flexInt                   `json:"id"`
	Status       flexString                `json:"status"`
	InboxID      flexInt                   `json:"inbox_id"`
	ContactInbox flexRef[contactInboxWire] `json:"contact_inbox"`
	Messages     flexList[messageRef]      `json:"messages"`
}

// contactInboxWire is a payload's contact_inbox: the contact session.
type contactInboxWire struct {
	SourceID flexString `json:"source_id"`
}

// messageRef is a message embedded in a conversation payload, of which only the id is read.
type messageRef struct {
	ID flexInt `json:"id"`
}

func (w conversationWire) event() *ConversationEvent {
	ev := &ConversationEvent{ID: int64(w.ID), Status: string(w.Status), InboxID: int64(w.InboxID)}
	for _, m := range w.Messages {
		ev.LatestMessageID = max(ev.LatestMessageID, int64(m.ID))
	}
	if w.ContactInbox.v != nil {
		ev.ContactSourceID = string(w.ContactInbox.v.SourceID)
	}
	return ev
}

// TypingEvent is a conversation.typing_on or typing_off payload.
type TypingEvent struct {
	// On is true for typing_on.
	On bool
	// Private is true when the agent is typing a private note: never show that to the user.
	Private      bool
	Conversation ConversationEvent
	// User is who types (an agent), when present.
	User *Sender
}

// Typing decodes a conversation.typing_on or typing_off payload.
func (e Event) Typing() (*TypingEvent, error) {
	p, err := e.decoded()
	if err != nil {
		return nil, err
	}
	t := &TypingEvent{On: e.Name == EventTypingOn, Private: bool(p.IsPrivate), User: p.User.v}
	if p.Conversation.v != nil {
		t.Conversation = *p.Conversation.v.event()
	}
	return t, nil
}

// ErrUnknownEvent is what Decode returns for an event this package does not know (forks add
// some). The cable passes such events over rather than delivering them.
var ErrUnknownEvent = errors.New("unknown cable event")

// Known reports whether the event is one a contact stream carries and Decode understands.
func (e Event) Known() bool {
	switch e.Name {
	case EventMessageCreated, EventMessageUpdated,
		EventConversationCreated, EventConversationStatusChanged, EventConversationUpdated,
		EventTypingOn, EventTypingOff, EventPresenceUpdate:
		return true
	}
	return false
}

// Decode returns the event's payload as a typed value: *Message for message.created and
// message.updated, *ConversationEvent for conversation.created, .status_changed and .updated,
// *TypingEvent for typing_on and typing_off, *PresenceEvent for presence.update, and
// ErrUnknownEvent for anything else. Decoding is lenient (missing, unknown and oddly typed
// keys are fine); only a payload that is not JSON at all fails.
func (e Event) Decode() (any, error) {
	switch e.Name {
	case EventMessageCreated, EventMessageUpdated:
		return e.Message()
	case EventConversationCreated, EventConversationStatusChanged, EventConversationUpdated:
		return e.Conversation()
	case EventTypingOn, EventTypingOff:
		return e.Typing()
	case EventPresenceUpdate:
		return e.Presence()
	}
	return nil, fmt.Errorf("decode %q: %w", e.Name, ErrUnknownEvent)
}

// ChangedFields returns the keys of a message.updated payload's previous_changes (newer
// OneChat versions send it: "status" for delivery receipts, "content" for an edit, …), and
// whether the payload had it at all. Without it, compare with what you stored.
func (e Event) ChangedFields() (fields []string, ok bool) {
	p, err := e.decoded()
	if err != nil || p.PreviousChanges == nil {
		return nil, false
	}
	fields = make([]string, 0, len(p.PreviousChanges))
	for k := range p.PreviousChanges {
		fields = append(fields, k)
	}
	sort.Strings(fields)
	return fields, true
}

// PresenceEvent is a presence.update payload: which agents are online.
type PresenceEvent struct {
	// Users maps agent ids to "online", "busy" or "offline". Contact streams carry no
	// contacts map.
	Users map[int64]string
}

// Presence decodes a presence.update payload. Keys that are not agent ids are skipped.
func (e Event) Presence() (*PresenceEvent, error) {
	p, err := e.decoded()
	if err != nil {
		return nil, err
	}
	pe := &PresenceEvent{Users: make(map[int64]string, len(p.Users))}
	for k, v := range p.Users {
		id, err := strconv.ParseInt(k, 10, 64)
		status, ok := v.(string)
		if err != nil || !ok {
			continue
		}
		pe.Users[id] = status
	}
	return pe, nil
}
