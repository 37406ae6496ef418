package onechat

import (
	"encoding/json"
	"io"
	"strconv"
)

// Inbox is the public description of an API-channel inbox (GET /public/api/v1/inboxes/{inbox}).
type Inbox struct {
	Identifier string `json:"identifier"`
	Name       string `json:"name"`
	Timezone   string `json:"timezone"`
	// IdentityValidationEnabled is the inbox's hmac_mandatory: contact routes then need an
	// identifier_hash, so an Options.HMACToken must be configured.
	IdentityValidationEnabled bool          `json:"identity_validation_enabled"`
	WorkingHoursEnabled       bool          `json:"working_hours_enabled"`
	WorkingHours              []WorkingHour `json:"working_hours"`
	CSATSurveyEnabled         bool          `json:"csat_survey_enabled"`
	GreetingEnabled           bool          `json:"greeting_enabled"`
}

// WorkingHour is one day of an inbox's working hours. Null hours decode as 0.
type WorkingHour struct {
	DayOfWeek    int  `json:"day_of_week"`
	ClosedAllDay bool `json:"closed_all_day"`
	OpenAllDay   bool `json:"open_all_day"`
	OpenHour     int  `json:"open_hour"`
	OpenMinutes  int  `json:"open_minutes"`
	CloseHour    int  `json:"close_hour"`
	CloseMinutes int  `json:"close_minutes"`
}

// UnmarshalJSON decodes an inbox leniently.
func (in *Inbox) UnmarshalJSON(b []byte) error {
	var w struct {
		Identifier                flexString            `json:"identifier"`
		Name                      flexString            `json:"name"`
		Timezone                  flexString            `json:"timezone"`
		IdentityValidationEnabled flexBool              `json:"identity_validation_enabled"`
		WorkingHoursEnabled       flexBool              `json:"working_hours_enabled"`
		WorkingHours              flexList[WorkingHour] `json:"working_hours"`
		CSATSurveyEnabled         flexBool              `json:"csat_survey_enabled"`
		GreetingEnabled           flexBool              `json:"greeting_enabled"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*in = Inbox{
		Identifier:                string(w.Identifier),
		Name:                      string(w.Name),
		Timezone:                  string(w.Timezone),
		IdentityValidationEnabled: bool(w.IdentityValidationEnabled),
		WorkingHoursEnabled:       bool(w.WorkingHoursEnabled),
		WorkingHours:              w.WorkingHours,
		CSATSurveyEnabled:         bool(w.CSATSurveyEnabled),
		GreetingEnabled:           bool(w.GreetingEnabled),
	}
	return nil
}

// UnmarshalJSON decodes a working-hours entry leniently (closed days carry null hours).
func (h *WorkingHour) UnmarshalJSON(b []byte) error {
	var w struct {
		DayOfWeek    flexInt  `json:"day_of_week"`
		ClosedAllDay flexBool `json:"closed_all_day"`
		OpenAllDay   flexBool `json:"open_all_day"`
		OpenHour     flexInt  `json:"open_hour"`
		OpenMinutes  flexInt  `json:"open_minutes"`
		CloseHour    flexInt  `json:"close_hour"`
		CloseMinutes flexInt  `json:"close_minutes"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*h = WorkingHour{
		DayOfWeek: int(w.DayOfWeek), ClosedAllDay: bool(w.ClosedAllDay), OpenAllDay: bool(w.OpenAllDay),
		OpenHour: int(w.OpenHour), OpenMinutes: int(w.OpenMinutes),
		CloseHour: int(w.CloseHour), CloseMinutes: int(w.CloseMinutes),
	}
	return nil
}

// Contact is a contact session as returned by contact create and show. SourceID and
// PubsubToken are credentials of the session: store them, never log them. A contact update
// answers with the full contact record instead: SourceID and PubsubToken are then empty (keep
// yours) and Identifier is set.
type Contact struct {
	ID          int64  `json:"id"`
	SourceID    string `json:"source_id"`
	PubsubToken string `json:"pubsub_token"`
	Name        string `json:"name"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phone_number"`
	// Identifier is the contact's external id; only the full record (update) carries it.
	Identifier string `json:"identifier,omitempty"`
	// Blocked is set when agents blocked the contact (full record only): its new
	// conversations start resolved.
	Blocked bool `json:"blocked,omitempty"`
}

// UnmarshalJSON decodes a contact leniently; null email and phone become "".
func (c *Contact) UnmarshalJSON(b []byte) error {
	var w struct {
		ID          flexInt    `json:"id"`
		SourceID    flexString `json:"source_id"`
		PubsubToken flexString `json:"pubsub_token"`
		Name        flexString `json:"name"`
		Email       flexString `json:"email"`
		PhoneNumber flexString `json:"phone_number"`
		Identifier  flexString `json:"identifier"`
		Blocked     flexBool   `json:"blocked"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Contact{
		ID: int64(w.ID), SourceID: string(w.SourceID), PubsubToken: string(w.PubsubToken),
		Name: string(w.Name), Email: string(w.Email), PhoneNumber: string(w.PhoneNumber),
		Identifier: string(w.Identifier), Blocked: bool(w.Blocked),
	}
	return nil
}

// ContactParams are the fields of a contact create. Empty fields are not sent. Identifier is
// the stable external id (for example "telegram:123"); SourceID, when set, makes the create
// idempotent: an existing session with that source_id is returned unchanged.
type ContactParams struct {
	Identifier       string
	Name             string
	Email            string
	PhoneNumber      string
	AvatarURL        string
	SourceID         string
	CustomAttributes map[string]any
}

// Conversation statuses.
const (
	StatusOpen     = "open"
	StatusResolved = "resolved"
	StatusPending  = "pending"
	StatusSnoozed  = "snoozed"
)

// Conversation is a conversation as the Client API returns it. ID is the per-account
// display_id, which is what every route and every conversation_id field means.
type Conversation struct {
	ID                int64     `json:"id"`
	UUID              string    `json:"uuid"`
	InboxID           int64     `json:"inbox_id"`
	Status            string    `json:"status"`
	ContactLastSeenAt int64     `json:"contact_last_seen_at"`
	AgentLastSeenAt   int64     `json:"agent_last_seen_at"`
	Messages          []Message `json:"messages"`
	// Contact is the conversation's contact, its full record (with Blocked), when the
	// server renders it (create and show do).
	Contact *Contact `json:"contact,omitempty"`
}

// UnmarshalJSON decodes a conversation leniently.
func (c *Conversation) UnmarshalJSON(b []byte) error {
	var w struct {
		ID                flexInt          `json:"id"`
		UUID              flexString       `json:"uuid"`
		InboxID           flexInt          `json:"inbox_id"`
		Status            flexString       `json:"status"`
		ContactLastSeenAt flexInt          `json:"contact_last_seen_at"`
		AgentLastSeenAt   flexInt          `json:"agent_last_seen_at"`
		Messages          messageList      `json:"messages"`
		Contact           flexRef[Contact] `json:"contact"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Conversation{
		ID: int64(w.ID), UUID: string(w.UUID), InboxID: int64(w.InboxID), Status: string(w.Status),
		ContactLastSeenAt: int64(w.ContactLastSeenAt), AgentLastSeenAt: int64(w.AgentLastSeenAt),
		Messages: w.Messages, Contact: w.Contact.v,
	}
	return nil
}

// MessageType says who a message is from. OneChat sends it as an integer.
type MessageType int

// Message types, as OneChat numbers them.
const (
	MessageIncoming MessageType = 0 // from the contact (our own messages, echoed back)
	MessageOutgoing MessageType = 1 // from an agent or bot
	MessageActivity MessageType = 2 // system activity; never sent to contacts
	MessageTemplate MessageType = 3 // greeting, out-of-office, CSAT
)

// String returns OneChat's name for the type.
func (t MessageType) String() string {
	switch t {
	case MessageIncoming:
		return "incoming"
	case MessageOutgoing:
		return "outgoing"
	case MessageActivity:
		return "activity"
	case MessageTemplate:
		return "template"
	}
	return "MessageType(" + strconv.Itoa(int(t)) + ")"
}

// UnmarshalJSON accepts the integer OneChat sends and, defensively, the type's name.
func (t *MessageType) UnmarshalJSON(b []byte) error {
	var s flexString
	_ = s.UnmarshalJSON(b)
	switch s {
	case "incoming":
		*t = MessageIncoming
	case "outgoing":
		*t = MessageOutgoing
	case "activity":
		*t = MessageActivity
	case "template":
		*t = MessageTemplate
	default:
		var n flexInt
		_ = n.UnmarshalJSON(b)
		*t = MessageType(n)
	}
	return nil
}

// Message is a message from the REST API or a cable payload. The fields after Sender are
// present only in cable payloads.
type Message struct {
	ID                int64          `json:"id"`
	Content           string         `json:"content"`
	MessageType       MessageType    `json:"message_type"`
	ContentType       string         `json:"content_type"`
	ContentAttributes map[string]any `json:"content_attributes"`
	// CreatedAt is in Unix seconds.
	CreatedAt int64 `json:"created_at"`
	// ConversationID is the conversation's display_id.
	ConversationID int64        `json:"conversation_id"`
	Attachments    []Attachment `json:"attachments,omitempty"`
	Sender         *Sender      `json:"sender,omitempty"`

	Private bool `json:"private,omitempty"`
	// EchoID is the echo_id we sent, present only on the cable echo of our own message.
	EchoID     string `json:"echo_id,omitempty"`
	Status     string `json:"status,omitempty"`
	SenderType string `json:"sender_type,omitempty"`
	InboxID    int64  `json:"inbox_id,omitempty"`
	// ContactSourceID is data.conversation.contact_inbox.source_id when the payload carries it:
	// it names the session the conversation belongs to. It is a credential: never log it.
	ContactSourceID string `json:"-"`
}

// InReplyTo returns content_attributes.in_reply_to, the id of the message an agent quoted,
// or 0.
func (m *Message) InReplyTo() int64 {
	return attrInt(m.ContentAttributes, "in_reply_to")
}

// Deleted reports whether an agent deleted the message (content_attributes.deleted).
func (m *Message) Deleted() bool {
	v, _ := m.ContentAttributes["deleted"].(bool)
	return v
}

func attrInt(m map[string]any, key string) int64 {
	switch v := m[key].(type) {
	case float64:
		return int64(v)
	case string:
		return parseIntish(v)
	case json.Number:
		return parseIntish(string(v))
	}
	return 0
}

// UnmarshalJSON decodes a message leniently: unknown, missing and null keys are fine, and
// timestamps may be integers, floats or ISO strings.
func (m *Message) UnmarshalJSON(b []byte) error {
	var w messageWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*m = w.message()
	return nil
}

// messageList decodes a JSON array of messages as flexList does, in one decode: its elements
// are decoded as messageWire, where a list of Message would have each element validated and
// decoded again by Message's own decoder.
type messageList []Message

func (l *messageList) UnmarshalJSON(b []byte) error {
	var ws flexList[messageWire]
	if err := ws.UnmarshalJSON(b); err != nil {
		return err
	}
	*l = nil
	if ws != nil {
		*l = make([]Message, len(ws))
		for i := range ws {
			(*l)[i] = ws[i].message()
		}
	}
	return nil
}

// messageWire is a message as OneChat sends it, decoded leniently (flex types): Message's
// decoder and, within every cable payload, payloadWire.
type messageWire struct {
	ID                flexInt              `json:"id"`
	Content           flexString           `json:"content"`
	MessageType       MessageType          `json:"message_type"`
	ContentType       flexString           `json:"content_type"`
	ContentAttributes flexObject           `json:"content_attributes"`
	CreatedAt         flexInt              `json:"created_at"`
	ConversationID    flexInt              `json:"conversation_id"`
	Attachments       flexList[Attachment] `json:"attachments"`
	Sender            flexRef[Sender]      `json:"sender"`
	Private           flexBool             `json:"private"`
	EchoID            flexString           `json:"echo_id"`
	Status            flexString           `json:"status"`
	SenderType        flexString           `json:"sender_type"`
	InboxID           flexInt              `json:"inbox_id"`
	// Conversation is a message's conversation (cable payloads: its contact_inbox), and a
	// typing event's.
	Conversation flexRef[conversationWire] `json:"conversation"`
}

func (w *messageWire) message() Message {
	m := Message{
		ID: int64(w.ID), Content: string(w.Content), MessageType: w.MessageType,
		ContentType: string(w.ContentType), ContentAttributes: w.ContentAttributes,
		CreatedAt: int64(w.CreatedAt), ConversationID: int64(w.ConversationID),
		Attachments: w.Attachments, Sender: w.Sender.v,
		Private: bool(w.Private), EchoID: string(w.EchoID), Status: string(w.Status),
		SenderType: string(w.SenderType), InboxID: int64(w.InboxID),
	}
	if conv := w.Conversation.v; conv != nil && conv.ContactInbox.v != nil {
		m.ContactSourceID = string(conv.ContactInbox.v.SourceID)
	}
	return m
}

// Sender is who sent a message: a contact, a user (agent), an agent bot or an assistant.
type Sender struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	AvailableName string `json:"available_name,omitempty"`
	// Type is "contact", "user", "agent_bot" or "captain_assistant".
	Type      string `json:"type"`
	AvatarURL string `json:"avatar_url,omitempty"`
	// Blocked is set on a contact that agents blocked (newer OneChat versions say it).
	Blocked bool `json:"blocked,omitempty"`
}

// UnmarshalJSON decodes a sender leniently.
func (s *Sender) UnmarshalJSON(b []byte) error {
	var w struct {
		ID            flexInt    `json:"id"`
		Name          flexString `json:"name"`
		AvailableName flexString `json:"available_name"`
		Type          flexString `json:"type"`
		AvatarURL     flexString `json:"avatar_url"`
		Blocked       flexBool   `json:"blocked"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*s = Sender{ID: int64(w.ID), Name: string(w.Name), AvailableName: string(w.AvailableName),
		Type: string(w.Type), AvatarURL: string(w.AvatarURL), Blocked: bool(w.Blocked)}
	return nil
}

// DisplayName returns the name to show for the sender: available_name when set, else name.
func (s *Sender) DisplayName() string {
	if s == nil {
		return ""
	}
	if s.AvailableName != "" {
		return s.AvailableName
	}
	return s.Name
}

// Attachment is a file on a message. DataURL is a redirect URL (follow the 302 promptly: the
// storage URL it points to expires). ThumbURL is "" for non-images.
type Attachment struct {
	ID int64 `json:"id"`
	// FileType is "image", "audio", "video", "file", "location", "fallback", … as a name.
	FileType      string `json:"file_type"`
	DataURL       string `json:"data_url"`
	ThumbURL      string `json:"thumb_url"`
	FileSize      int64  `json:"file_size"`
	Width         int64  `json:"width,omitempty"`
	Height        int64  `json:"height,omitempty"`
	FallbackTitle string `json:"fallback_title,omitempty"`
}

// UnmarshalJSON decodes an attachment leniently (width and height are often null).
func (a *Attachment) UnmarshalJSON(b []byte) error {
	var w struct {
		ID            flexInt    `json:"id"`
		FileType      flexString `json:"file_type"`
		DataURL       flexString `json:"data_url"`
		ThumbURL      flexString `json:"thumb_url"`
		FileSize      flexInt    `json:"file_size"`
		Width         flexInt    `json:"width"`
		Height        flexInt    `json:"height"`
		FallbackTitle flexString `json:"fallback_title"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*a = Attachment{ID: int64(w.ID), FileType: string(w.FileType), DataURL: string(w.DataURL),
		ThumbURL: string(w.ThumbURL), FileSize: int64(w.FileSize), Width: int64(w.Width),
		Height: int64(w.Height), FallbackTitle: string(w.FallbackTitle)}
	return nil
}

// MessageParams are the fields of a message the contact sends. EchoID comes back on the cable
// echo of the message, so a sender can recognise its own message before the POST returns.
type MessageParams struct {
	Content string
	EchoID  string
	// Attachments, when present, turn the request into a streamed multipart upload. Their
	// bodies are read once, so a retry needs fresh Uploads. Keep to 15 or fewer.
	Attachments []Upload
}

// Upload is one file of a message. ContentType alone decides how OneChat shows it (image/jpeg,
// image/png, image/gif, image/webp → image; video/mp4 … → video; audio/* → audio; anything
// else → file), so set it from the source, not from the file name.
type Upload struct {
	Filename    string
	ContentType string
	Body        io.Reader
}

// SubmittedValues answers an interactive message with UpdateMessage. It is sent as
// submitted_values: the array of Values for input_select and form messages, or, when CSAT is
// set, the object {"csat_survey_response": {...}} that answers an input_csat survey.
type SubmittedValues struct {
	// Values are the chosen options ({Title, Value} for input_select) or the filled fields
	// ({Name, Value} for a form).
	Values []SubmittedValue
	// CSAT answers a CSAT survey; Values is then ignored.
	CSAT *CSATResponse
}

// SubmittedValue is one chosen option or form field. Empty fields are not sent.
type SubmittedValue struct {
	Name  string `json:"name,omitempty"`
	Title string `json:"title,omitempty"`
	Value string `json:"value"`
}

// CSATResponse is a contact's answer to a CSAT survey: a rating (1 to 5 in OneChat's UI) and
// an optional comment.
type CSATResponse struct {
	Rating          int    `json:"rating"`
	FeedbackMessage string `json:"feedback_message,omitempty"`
}

// MarshalJSON encodes the array or the CSAT object form OneChat permits.
func (v SubmittedValues) MarshalJSON() ([]byte, error) {
	if v.CSAT != nil {
		return json.Marshal(map[string]any{"csat_survey_response": v.CSAT})
	}
	if v.Values == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(v.Values)
}

// DownloadInfo describes a downloaded attachment, from the response that carries the bytes.
type DownloadInfo struct {
	// ContentType is the served Content-Type; "application/octet-stream" when none was sent.
	ContentType string
	// Filename comes from Content-Disposition or, failing that, the data_url's last path
	// segment ("file" when neither has one).
	Filename string
	// Size is the Content-Length, or -1 when the server did not say.
	Size int64
}
