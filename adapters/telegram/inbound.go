package telegram

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"

	"github.com/go-telegram/bot/models"

	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/markdown"
	"github.com/onechat/onechat-bridge/texts"
)

// CloudDownloadLimit is the largest file the cloud Bot API lets a bot download with getFile.
// A self-hosted Bot API server has no such limit.
const CloudDownloadLimit = 20 << 20

// skipReason says why an update produced no bridge.Inbound. The transport logs it; conversion
// stays pure so it can be table-tested.
type skipReason int

const (
	skipNone       skipReason = iota
	skipNotPrivate            // a group, supergroup or channel: the bridge serves private chats only
	skipEmpty                 // a service message (pinned, auto-delete timer, …): nothing for the agent
	skipStart                 // /start: the adapter greets the user and stores nothing
	skipCallback              // a callback query the bridge cannot map (no chat, no data)
	skipUnknown               // an update kind the bridge does not subscribe to or understand
)

func (r skipReason) String() string {
	switch r {
	case skipNone:
		return "none"
	case skipNotPrivate:
		return "not a private chat"
	case skipEmpty:
		return "service message"
	case skipStart:
		return "start command"
	case skipCallback:
		return "callback query without chat or data"
	default:
		return "unsupported update"
	}
}

// converter turns updates into the messages the core stores. It is pure: it never looks at
// the network, so every kind of message is table-tested.
type converter struct {
	// maxDownload is the largest file the Bot API server lets the bot download; larger files
	// become a visible note instead of an attachment. 0 means no limit (a self-hosted server).
	maxDownload int64
	// texts is the catalogue: what the converter adds for agents (a location's line, a note
	// about a poll) is in BRIDGE_AGENT_LANGUAGE.
	texts *texts.Catalogue
}

// agent returns the catalogue's text of k for agents.
func (c converter) agent(k texts.Key, vars texts.Vars) string { return c.texts.Agent(k, vars) }

// toInbound converts one update into the message the core stores. It returns skipNone and the
// message, or the reason the update carries nothing for the core.
func (c converter) toInbound(u *models.Update) (bridge.Inbound, skipReason) {
	switch {
	case u.Message != nil:
		return c.message(u.Message, false)
	case u.EditedMessage != nil:
		return c.message(u.EditedMessage, true)
	case u.ChannelPost != nil, u.EditedChannelPost != nil:
		return bridge.Inbound{}, skipNotPrivate
	case u.CallbackQuery != nil:
		return callbackToInbound(u.CallbackQuery)
	default:
		return bridge.Inbound{}, skipUnknown
	}
}

func (c converter) message(m *models.Message, edited bool) (bridge.Inbound, skipReason) {
	// A private chat always has a sender; checking From as well keeps a malformed update from
	// producing a user with id 0.
	if m.Chat.Type != models.ChatTypePrivate || m.From == nil {
		return bridge.Inbound{}, skipNotPrivate
	}
	in := bridge.Inbound{
		User:        bridge.UserRef{Platform: Platform, ID: strconv.FormatInt(m.From.ID, 10)},
		Chat:        bridge.ChatRef{Platform: Platform, ID: strconv.FormatInt(m.Chat.ID, 10)},
		MessageID:   strconv.Itoa(m.ID),
		DisplayName: displayName(m.From),
		Username:    m.From.Username,
		Language:    m.From.LanguageCode,
		SentAt:      time.Unix(int64(m.Date), 0).UTC(),
	}
	if !edited && isStart(m) {
		return bridge.Inbound{}, skipStart
	}
	if !edited && isCommand(m, "/close") {
		in.Ticket = bridge.TicketClose
		return in, skipNone
	}
	var lines []string
	if o := m.ForwardOrigin; o != nil {
		lines = append(lines, c.forwarded(o))
	}
	body := entitiesToMarkdown(m.Text, m.Entities)
	if body == "" {
		body = entitiesToMarkdown(m.Caption, m.CaptionEntities)
	}
	lines = append(lines, c.media(m, &in)...)
	if body != "" {
		lines = append(lines, body)
	}
	in.Text = strings.Join(lines, "\n\n")
	if r := m.ReplyToMessage; r != nil && r.ID != 0 {
		in.ReplyTo = strconv.Itoa(r.ID)
		in.ReplyToText = c.summary(r)
	}
	if q := m.Quote; q != nil && q.Text != "" {
		in.ReplyToText = q.Text // the part the user chose to quote says more than the whole
	}
	if edited {
		in.EditOf = in.MessageID
		editDate := m.EditDate
		if editDate == 0 {
			editDate = m.Date
		}
		in.MessageID = in.MessageID + ".edit." + strconv.Itoa(editDate)
		in.SentAt = time.Unix(int64(editDate), 0).UTC()
		// An edit changes the text or caption; the files were bridged with the original.
		in.Attachments = nil
		in.Notes = nil
	}
	if in.Text == "" && len(in.Attachments) == 0 && len(in.Notes) == 0 {
		return bridge.Inbound{}, skipEmpty
	}
	return in, skipNone
}

// isStart reports whether m is the /start command (alone or with a deep-link payload), which
// Telegram clients send when a user opens the bot for the first time.
func isStart(m *models.Message) bool { return isCommand(m, "/start") }

// isCommand reports whether m is the bot command name, alone, with arguments, or addressed to
// the bot ("/close@name_bot").
func isCommand(m *models.Message, name string) bool {
	cmd, _, _ := strings.Cut(m.Text, " ")
	cmd, _, _ = strings.Cut(cmd, "@")
	return cmd == name
}

// media adds the message's files to in (or a note when one cannot be downloaded) and returns
// lines of text describing what is not a file: locations, venues, contacts, polls.
func (c converter) media(m *models.Message, in *bridge.Inbound) []string {
	id := strconv.Itoa(m.ID)
	add := func(a bridge.Attachment) {
		if c.maxDownload > 0 && a.Size > c.maxDownload {
			in.Notes = append(in.Notes, c.agent(texts.AgentFileOverDownloadLimit, texts.Vars{"name": a.Name,
				"size": bridge.FormatSize(a.Size), "limit": bridge.FormatSize(c.maxDownload), "platform": "Telegram"}))
			return
		}
		in.Attachments = append(in.Attachments, a)
	}
	var lines []string
	switch {
	case len(m.Photo) > 0:
		p := m.Photo[len(m.Photo)-1] // sizes ascend: the last is the original
		add(bridge.Attachment{Kind: bridge.KindImage, Name: "photo_" + id + ".jpg", MIME: "image/jpeg", Size: int64(p.FileSize), Ref: p.FileID})
	case m.Animation != nil: // Telegram also fills Document for an animation: check first
		a := m.Animation
		add(bridge.Attachment{Kind: bridge.KindAnimation, Name: orDefault(a.FileName, "animation_"+id+".mp4"), MIME: orDefault(a.MimeType, "video/mp4"), Size: a.FileSize, Ref: a.FileID})
	case m.Document != nil:
		d := m.Document
		add(bridge.Attachment{Kind: bridge.KindFile, Name: orDefault(d.FileName, "file_"+id), MIME: orDefault(d.MimeType, "application/octet-stream"), Size: d.FileSize, Ref: d.FileID})
	case m.Voice != nil:
		v := m.Voice
		add(bridge.Attachment{Kind: bridge.KindVoice, Name: "voice_" + id + ".ogg", MIME: orDefault(v.MimeType, "audio/ogg"), Size: v.FileSize, Ref: v.FileID})
	case m.Audio != nil:
		a := m.Audio
		name := a.FileName
		if name == "" {
			name = strings.Trim(a.Performer+" - "+a.Title, " -")
			if name == "" {
				name = "audio_" + id
			}
			name += ".mp3"
		}
		add(bridge.Attachment{Kind: bridge.KindAudio, Name: name, MIME: orDefault(a.MimeType, "audio/mpeg"), Size: a.FileSize, Ref: a.FileID})
	case m.Video != nil:
		v := m.Video
		add(bridge.Attachment{Kind: bridge.KindVideo, Name: orDefault(v.FileName, "video_"+id+".mp4"), MIME: orDefault(v.MimeType, "video/mp4"), Size: v.FileSize, Ref: v.FileID})
	case m.VideoNote != nil:
		v := m.VideoNote
		add(bridge.Attachment{Kind: bridge.KindVideo, Name: "video_note_" + id + ".mp4", MIME: "video/mp4", Size: int64(v.FileSize), Ref: v.FileID})
	case m.Sticker != nil:
		s := m.Sticker
		switch {
		case s.IsAnimated:
			add(bridge.Attachment{Kind: bridge.KindFile, Name: "sticker_" + id + ".tgs", MIME: "application/x-tgsticker", Size: int64(s.FileSize), Ref: s.FileID})
			lines = append(lines, strings.TrimSpace(c.agent(texts.AgentStickerAnimated, texts.Vars{"emoji": s.Emoji})))
		case s.IsVideo:
			add(bridge.Attachment{Kind: bridge.KindFile, Name: "sticker_" + id + ".webm", MIME: "video/webm", Size: int64(s.FileSize), Ref: s.FileID})
			lines = append(lines, strings.TrimSpace(c.agent(texts.AgentStickerVideo, texts.Vars{"emoji": s.Emoji})))
		default:
			add(bridge.Attachment{Kind: bridge.KindSticker, Name: "sticker_" + id + ".webp", MIME: "image/webp", Size: int64(s.FileSize), Ref: s.FileID})
		}
	case m.Venue != nil:
		v := m.Venue
		lines = append(lines, "📍 **"+escapeMarkdown(v.Title)+"**\n"+escapeMarkdown(v.Address)+"\n"+mapLink(v.Location))
	case m.Location != nil:
		k := texts.AgentLocation
		if m.Location.LivePeriod > 0 {
			k = texts.AgentLiveLocation
		}
		lines = append(lines, c.agent(k, texts.Vars{"link": mapLink(*m.Location)}))
	case m.Contact != nil:
		ct := m.Contact
		vars := texts.Vars{"name": escapeMarkdown(strings.TrimSpace(ct.FirstName + " " + ct.LastName)), "phone": escapeMarkdown(ct.PhoneNumber)}
		k := texts.AgentContact
		if ct.UserID != 0 {
			k, vars["platform"], vars["id"] = texts.AgentContactUser, "Telegram", strconv.FormatInt(ct.UserID, 10)
		}
		lines = append(lines, c.agent(k, vars))
	case m.Poll != nil:
		in.Notes = append(in.Notes, c.agent(texts.AgentPoll, texts.Vars{"question": m.Poll.Question}))
	case m.Dice != nil:
		lines = append(lines, c.agent(texts.AgentDice, texts.Vars{"emoji": m.Dice.Emoji, "value": strconv.Itoa(m.Dice.Value)}))
	case m.Story != nil, m.Game != nil, m.PaidMedia != nil, m.Invoice != nil, m.Checklist != nil:
		in.Notes = append(in.Notes, c.agent(texts.AgentUnsupported, texts.Vars{"platform": "Telegram"}))
	}
	return lines
}

// summary is a short text for a message the user replied to, so the agent sees what the reply
// refers to even when it is a file.
func (c converter) summary(m *models.Message) string {
	switch {
	case m.Text != "":
		return m.Text
	case m.Caption != "":
		return m.Caption
	case len(m.Photo) > 0:
		return c.agent(texts.AgentQuotedPhoto, nil)
	case m.Sticker != nil:
		return c.agent(texts.AgentQuotedSticker, texts.Vars{"emoji": m.Sticker.Emoji})
	case m.Voice != nil:
		return c.agent(texts.AgentQuotedVoice, nil)
	case m.Document != nil:
		return c.agent(texts.AgentQuotedFile, texts.Vars{"name": m.Document.FileName})
	case m.Video != nil, m.VideoNote != nil, m.Animation != nil:
		return c.agent(texts.AgentQuotedVideo, nil)
	case m.Audio != nil:
		return c.agent(texts.AgentQuotedAudio, nil)
	case m.Location != nil, m.Venue != nil:
		return c.agent(texts.AgentQuotedLocation, nil)
	default:
		return ""
	}
}

// forwarded is the line, in italics, that heads a forwarded message: who wrote it, when
// Telegram says.
func (c converter) forwarded(o *models.MessageOrigin) string {
	line := c.agent(texts.AgentForwarded, nil)
	if name := originName(o); name != "" {
		line = c.agent(texts.AgentForwardedFrom, texts.Vars{"name": escapeMarkdown(name)})
	}
	return "_" + line + "_"
}

// originName says who wrote a forwarded message, "" when Telegram does not say.
func originName(o *models.MessageOrigin) string {
	switch {
	case o.MessageOriginUser != nil:
		u := o.MessageOriginUser.SenderUser
		name := displayName(&u)
		if u.Username != "" {
			name += " (@" + u.Username + ")"
		}
		return name
	case o.MessageOriginHiddenUser != nil:
		return o.MessageOriginHiddenUser.SenderUserName
	case o.MessageOriginChat != nil:
		return chatName(o.MessageOriginChat.SenderChat)
	case o.MessageOriginChannel != nil:
		return chatName(o.MessageOriginChannel.Chat)
	default:
		return ""
	}
}

func chatName(c models.Chat) string {
	name := c.Title
	if name == "" {
		name = strings.TrimSpace(c.FirstName + " " + c.LastName)
	}
	if c.Username != "" {
		name = strings.TrimSpace(name + " (@" + c.Username + ")")
	}
	return name
}

func mapLink(l models.Location) string {
	return fmt.Sprintf("https://maps.google.com/?q=%.6f,%.6f", l.Latitude, l.Longitude)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// callbackToInbound turns a button press into a Choice. The button's callback_data carries
// the value (see keyboard); its title is read from the keyboard of the message it was on.
func callbackToInbound(q *models.CallbackQuery) (bridge.Inbound, skipReason) {
	var (
		chat   models.Chat
		msgID  int
		markup *models.InlineKeyboardMarkup
	)
	switch {
	case q.Message.Message != nil:
		chat, msgID, markup = q.Message.Message.Chat, q.Message.Message.ID, q.Message.Message.ReplyMarkup
	case q.Message.InaccessibleMessage != nil:
		chat, msgID = q.Message.InaccessibleMessage.Chat, q.Message.InaccessibleMessage.MessageID
	default:
		return bridge.Inbound{}, skipCallback
	}
	if chat.Type != models.ChatTypePrivate && chat.Type != "" {
		return bridge.Inbound{}, skipNotPrivate
	}
	if q.From.ID == 0 {
		return bridge.Inbound{}, skipCallback
	}
	if action, ok := decodeTicketAction(q.Data); ok {
		chatID := chat.ID
		if chatID == 0 {
			chatID = q.From.ID
		}
		return bridge.Inbound{
			User:        bridge.UserRef{Platform: Platform, ID: strconv.FormatInt(q.From.ID, 10)},
			Chat:        bridge.ChatRef{Platform: Platform, ID: strconv.FormatInt(chatID, 10)},
			MessageID:   "cb." + q.ID,
			DisplayName: displayName(&q.From),
			Username:    q.From.Username,
			Ticket:      action,
			SentAt:      time.Now().UTC(),
		}, skipNone
	}
	choice, ok := decodeChoice(q.Data)
	if !ok || msgID == 0 {
		return bridge.Inbound{}, skipCallback
	}
	choice.MessageID = strconv.Itoa(msgID)
	if markup != nil {
		for _, row := range markup.InlineKeyboard {
			for _, b := range row {
				if b.CallbackData == q.Data {
					choice.Title = b.Text
				}
			}
		}
	}
	if choice.Title == "" {
		choice.Title = choice.Value
	}
	chatID := chat.ID
	if chatID == 0 {
		chatID = q.From.ID // a private chat's id is the user's
	}
	return bridge.Inbound{
		User:        bridge.UserRef{Platform: Platform, ID: strconv.FormatInt(q.From.ID, 10)},
		Chat:        bridge.ChatRef{Platform: Platform, ID: strconv.FormatInt(chatID, 10)},
		MessageID:   "cb." + q.ID,
		DisplayName: displayName(&q.From),
		Username:    q.From.Username,
		Language:    q.From.LanguageCode,
		Choice:      &choice,
		SentAt:      time.Now().UTC(), // a callback query has no date of its own
	}, skipNone
}

// Callback data prefixes. Telegram limits callback_data to 64 bytes, so a value that does not
// fit is sent by position and recovered from the button's title.
const (
	cbValue  = "v:" // v:<value> of an input_select option
	cbIndex  = "i:" // i:<index>: the value was too long; Choice.Value stays empty
	cbCSAT   = "r:" // r:<1..5>: a CSAT rating
	cbTicket = "t:" // t:close or t:reopen: the user's own ticket (bridge.TicketAction)
)

// decodeTicketAction reads the data of a Close or Reopen button.
func decodeTicketAction(data string) (bridge.TicketAction, bool) {
	return bridge.ParseTicketAction(data, cbTicket)
}

// maxCallbackData is Telegram's limit on callback_data, in bytes.
const maxCallbackData = 64

// decodeChoice reads what encodeChoice wrote.
func decodeChoice(data string) (bridge.Choice, bool) {
	switch {
	case strings.HasPrefix(data, cbValue):
		return bridge.Choice{Value: data[len(cbValue):]}, true
	case strings.HasPrefix(data, cbCSAT):
		v := data[len(cbCSAT):]
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 5 {
			return bridge.Choice{}, false
		}
		return bridge.Choice{Value: v}, true
	case strings.HasPrefix(data, cbIndex):
		return bridge.Choice{}, true
	default:
		return bridge.Choice{}, false
	}
}

// displayName is the name Telegram shows for u: first name, then last name when set. Telegram
// requires a first name, but a username or the id keeps a contact from being nameless if an
// update ever lacks one.
func displayName(u *models.User) string {
	name := strings.TrimSpace(strings.TrimSpace(u.FirstName) + " " + strings.TrimSpace(u.LastName))
	switch {
	case name != "":
		return name
	case u.Username != "":
		return u.Username
	default:
		return strconv.FormatInt(u.ID, 10)
	}
}

// escapeMarkdown backslash-escapes the characters that Markdown would read as formatting, for
// names and addresses the bridge puts into Markdown it writes itself.
func escapeMarkdown(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_[]~>#|", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// entitiesToMarkdown renders Telegram's formatted text (plain text plus entities whose offsets
// count UTF-16 code units) as the Markdown OneChat shows agents: bold, italic, strikethrough,
// code, code blocks and links. Other entities (mentions, hashtags, bare URLs) are plain text
// already. Entities that are out of range or overlap inconsistently are clamped or ignored, so
// a hostile update cannot make the text disappear.
func entitiesToMarkdown(text string, entities []models.MessageEntity) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	if len(entities) == 0 {
		return text
	}
	units := utf16.Encode([]rune(text))
	type mark struct {
		open, close string
		start, end  int
		pre         bool
	}
	var marks []mark
	for _, e := range entities {
		start, end := e.Offset, e.Offset+e.Length
		if start < 0 || e.Length <= 0 || end > len(units) {
			continue
		}
		var open, closeTag string
		pre := false
		switch e.Type {
		case models.MessageEntityTypeBold:
			open, closeTag = "**", "**"
		case models.MessageEntityTypeItalic:
			open, closeTag = "_", "_"
		case models.MessageEntityTypeStrikethrough:
			open, closeTag = "~~", "~~"
		case models.MessageEntityTypeCode:
			open, closeTag = "`", "`"
		case models.MessageEntityTypePre:
			open, closeTag, pre = "```"+strings.Map(func(r rune) rune {
				if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '+' || r == '-' || r == '#' {
					return r
				}
				return -1
			}, e.Language)+"\n", "\n```", true
		case models.MessageEntityTypeTextLink:
			if !markdown.SafeLinkURL(e.URL) {
				continue
			}
			open, closeTag = "[", "]("+strings.NewReplacer("(", "%28", ")", "%29", " ", "%20").Replace(e.URL)+")"
		default:
			continue
		}
		if !pre {
			// Markdown does not render "** bold**": keep surrounding whitespace outside.
			for start < end && isSpaceUnit(units[start]) {
				start++
			}
			for end > start && isSpaceUnit(units[end-1]) {
				end--
			}
			if start == end {
				continue
			}
		}
		marks = append(marks, mark{open: open, close: closeTag, start: start, end: end, pre: pre})
	}
	if len(marks) == 0 {
		return text
	}
	var b strings.Builder
	var openStack []int // indexes into marks, innermost last
	inCode := 0         // marks inside code are dropped: code shows its text verbatim
	pos := 0
	emitAt := func(p int) {
		// Close what ends here, innermost first; a mark that ends later but was opened after
		// one ending now is closed and not reopened, which keeps the Markdown balanced.
		for i := len(openStack) - 1; i >= 0; i-- {
			m := marks[openStack[i]]
			if m.end <= p {
				b.WriteString(m.close)
				if m.open == "`" || m.pre {
					inCode--
				}
				openStack = append(openStack[:i], openStack[i+1:]...)
			}
		}
		// Open what starts here, the longest first so that nesting is proper.
		var starting []int
		for i, m := range marks {
			if m.start == p {
				starting = append(starting, i)
			}
		}
		for len(starting) > 0 {
			best := 0
			for j, i := range starting {
				if marks[i].end > marks[starting[best]].end {
					best = j
				}
			}
			i := starting[best]
			starting = append(starting[:best], starting[best+1:]...)
			if inCode > 0 {
				continue
			}
			// Do not open past the end of an enclosing mark.
			if len(openStack) > 0 && marks[i].end > marks[openStack[len(openStack)-1]].end {
				marks[i].end = marks[openStack[len(openStack)-1]].end
			}
			b.WriteString(marks[i].open)
			if marks[i].open == "`" || marks[i].pre {
				inCode++
			}
			openStack = append(openStack, i)
		}
	}
	for _, r := range text {
		emitAt(pos)
		b.WriteRune(r)
		pos += textsplit.UTF16.RuneLen(r)
	}
	emitAt(pos)
	for i := len(openStack) - 1; i >= 0; i-- {
		b.WriteString(marks[openStack[i]].close)
	}
	return b.String()
}

func isSpaceUnit(u uint16) bool { return u == ' ' || u == '\n' || u == '\t' || u == '\r' }
