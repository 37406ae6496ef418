package discord

import (
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// Discord's limits that shape what the adapter sends.
const (
	maxContentLen    = 2000 // characters of a message's content
	maxEmbeds        = 10   // embeds per message
	maxButtonsInRow  = 5    // buttons per action row; more options become a select menu
	maxSelectOptions = 25   // options per select menu
	maxButtonLabel   = 80
	maxOptionLabel   = 100
	maxCustomID      = 100
	maxEmbedTitle    = 256
	maxEmbedDesc     = 4096
	maxReplyQuote    = 300 // characters of the replied-to text shown to the agent
)

// Custom ids of the components the bridge sends. A press carries the custom id back, so it says
// what was chosen without any state on our side.
const (
	customOpenTicket = "onechat:open"    // the panel's "Contact support" button
	customSelect     = "onechat:sel:"    // + the option's value
	customSelectIdx  = "onechat:sel#"    // + the option's index, when the value is too long
	customCSAT       = "onechat:csat:"   // + the rating 1..5
	customTicket     = "onechat:ticket:" // + bridge.TicketAction: the user closes or reopens their ticket
)

// Message types a user writes; the others (joins, pins, thread notices…) are not bridged.
const (
	messageTypeDefault = 0
	messageTypeReply   = 19
)

// flagVoiceMessage marks a message (and its attachment) as a voice message.
const flagVoiceMessage = 1 << 13

// attachmentRef locates an inbound attachment durably: the CDN link in the message expires
// after about a day, so OpenAttachment re-reads the message for a fresh link.
func attachmentRef(channelID, messageID, attachmentID string) string {
	return "attachment:" + channelID + "/" + messageID + "/" + attachmentID
}

// stickerRef locates a sticker image on the CDN; sticker links do not expire.
func stickerRef(id, ext string) string { return "sticker:" + id + "." + ext }

// parseRef splits a ref made by attachmentRef or stickerRef.
func parseRef(ref string) (kind string, parts []string, ok bool) {
	kind, rest, ok := strings.Cut(ref, ":")
	if !ok {
		return "", nil, false
	}
	switch kind {
	case "attachment":
		parts = strings.Split(rest, "/")
		if len(parts) != 3 || !isSnowflake(parts[0]) || !isSnowflake(parts[1]) || !isSnowflake(parts[2]) {
			return "", nil, false
		}
	case "sticker":
		id, ext, ok := strings.Cut(rest, ".")
		if !ok || !isSnowflake(id) || (ext != "png" && ext != "gif") {
			return "", nil, false
		}
		parts = []string{id, ext}
	default:
		return "", nil, false
	}
	return kind, parts, true
}

// isSnowflake reports whether s is a Discord id: a positive decimal that fits in int64.
func isSnowflake(s string) bool {
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && n > 0
}

// snowflake parses a Discord id, 0 when it is not one.
func snowflake(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// displayName is the name the agent sees: the server nickname, the global display name, or the
// username, whichever is set first.
func displayName(u *discordgo.User, member *discordgo.Member) string {
	if member != nil && member.Nick != "" {
		return member.Nick
	}
	if u.GlobalName != "" {
		return u.GlobalName
	}
	return u.Username
}

// inboundMessage converts a message a user wrote in chat (a DM channel or their ticket thread).
// ok is false for messages that are not the user's to bridge: system messages, and messages with
// nothing to show. What it adds for agents (notes about forwards, stickers, polls) is in their
// language, from cat.
func inboundMessage(m *discordgo.Message, chat string, cat *texts.Catalogue) (in bridge.Inbound, ok bool) {
	if m.Author == nil || (m.Type != messageTypeDefault && m.Type != messageTypeReply) {
		return bridge.Inbound{}, false
	}
	in = bridge.Inbound{
		User:        bridge.UserRef{Platform: Platform, ID: m.Author.ID},
		Chat:        bridge.ChatRef{Platform: Platform, ID: chat},
		MessageID:   m.ID,
		DisplayName: displayName(m.Author, m.Member),
		Username:    m.Author.Username,
		// Discord gives a user's locale to bots only in interactions; where a user object
		// carries it anyway, it is the user's language.
		Language: m.Author.Locale,
		Text:     m.Content,
		SentAt:   m.Timestamp,
	}
	if ref := m.MessageReference; ref != nil && ref.Type == discordgo.MessageReferenceTypeDefault && ref.MessageID != "" && m.Type == messageTypeReply {
		in.ReplyTo = ref.MessageID
		if rm := m.ReferencedMessage; rm != nil {
			in.ReplyToText = textsplit.Truncate(rm.Content, maxReplyQuote, textsplit.Runes)
			if in.ReplyToText == "" && len(rm.Attachments) > 0 {
				in.ReplyToText = "📎 " + rm.Attachments[0].Filename
			}
		}
	}
	if in.Text == "" && len(m.MessageSnapshots) > 0 && m.MessageSnapshots[0].Message != nil {
		fwd := m.MessageSnapshots[0].Message
		in.Text = fwd.Content
		in.Notes = append(in.Notes, cat.Agent(texts.AgentForwarded, nil))
		in.Attachments = append(in.Attachments, inboundAttachments(m.ChannelID, m.ID, fwd.Attachments, fwd.Flags)...)
	}
	in.Attachments = append(in.Attachments, inboundAttachments(m.ChannelID, m.ID, m.Attachments, m.Flags)...)
	for _, s := range m.StickerItems {
		switch s.FormatType {
		case discordgo.StickerFormatTypePNG, discordgo.StickerFormatTypeAPNG:
			in.Attachments = append(in.Attachments, bridge.Attachment{Kind: bridge.KindSticker, Name: s.Name + ".png", MIME: "image/png", Ref: stickerRef(s.ID, "png")})
		case discordgo.StickerFormatTypeGIF:
			in.Attachments = append(in.Attachments, bridge.Attachment{Kind: bridge.KindSticker, Name: s.Name + ".gif", MIME: "image/gif", Ref: stickerRef(s.ID, "gif")})
		default: // Lottie stickers are animations no helpdesk shows: name them.
			in.Notes = append(in.Notes, cat.Agent(texts.AgentSticker, texts.Vars{"name": s.Name}))
		}
	}
	if m.Poll != nil {
		in.Notes = append(in.Notes, cat.Agent(texts.AgentPoll, texts.Vars{"question": m.Poll.Question.Text}))
	}
	if in.Text == "" && len(in.Attachments) == 0 && len(in.Notes) == 0 {
		return bridge.Inbound{}, false
	}
	return in, true
}

// inboundAttachments describes the files of a message; Ref points back at the message so the
// bytes can be fetched later through a fresh CDN link.
func inboundAttachments(channelID, messageID string, atts []*discordgo.MessageAttachment, flags discordgo.MessageFlags) []bridge.Attachment {
	var out []bridge.Attachment
	for _, a := range atts {
		if a == nil {
			continue
		}
		mime, _, _ := strings.Cut(a.ContentType, ";")
		kind := bridge.KindFile
		switch {
		case flags&flagVoiceMessage != 0 && strings.HasPrefix(mime, "audio/"):
			kind = bridge.KindVoice
		case mime == "image/gif":
			kind = bridge.KindAnimation
		case strings.HasPrefix(mime, "image/"):
			kind = bridge.KindImage
		case strings.HasPrefix(mime, "audio/"):
			kind = bridge.KindAudio
		case strings.HasPrefix(mime, "video/"):
			kind = bridge.KindVideo
		}
		out = append(out, bridge.Attachment{
			Kind: kind, Name: a.Filename, MIME: mime, Size: int64(a.Size),
			Ref: attachmentRef(channelID, messageID, a.ID),
		})
	}
	return out
}

// editID makes the message id of an edit unique per edit, so a replayed edit is a no-op and a
// second edit is not.
func editID(m *discordgo.Message) string {
	ts := m.Timestamp
	if m.EditedTimestamp != nil {
		ts = *m.EditedTimestamp
	}
	return m.ID + ".edit." + strconv.FormatInt(ts.UnixMilli(), 10)
}

// allowedMentions is Discord's allowed_mentions with nothing allowed: agent text that says
// @everyone or names a role never pings anyone.
type allowedMentions struct {
	Parse []string `json:"parse"`
	Roles []string `json:"roles,omitempty"`
	Users []string `json:"users,omitempty"`
}

// noMentions allows no mention to ping.
func noMentions() allowedMentions { return allowedMentions{Parse: []string{}} }

// attachmentMeta names an uploaded file in payload_json.
type attachmentMeta struct {
	ID       int    `json:"id"`
	Filename string `json:"filename"`
}

// messagePayload is the JSON of a message create or edit.
type messagePayload struct {
	Content          string                       `json:"content,omitempty"`
	Embeds           []*discordgo.MessageEmbed    `json:"embeds,omitempty"`
	Components       []discordgo.MessageComponent `json:"components,omitempty"`
	AllowedMentions  allowedMentions              `json:"allowed_mentions"`
	MessageReference *discordgo.MessageReference  `json:"message_reference,omitempty"`
	Attachments      []attachmentMeta             `json:"attachments,omitempty"`
	// Nonce with EnforceNonce makes a create idempotent: Discord returns the message the bot
	// already created with that nonce in the past few minutes instead of a second one.
	Nonce        string `json:"nonce,omitempty"`
	EnforceNonce bool   `json:"enforce_nonce,omitempty"`
}

// plannedMessage is one Discord message of an outbound message, before its files are read.
type plannedMessage struct {
	payload messagePayload
	files   []bridge.Attachment
}

// planOutbound turns an agent message into the Discord messages that show it: text rendered
// as Discord Markdown and split at the length limit (the first part replying to m.ReplyTo), the agent's files on the first
// message, buttons or a select menu on the last, cards and articles as embeds.
//
// choose is the placeholder of a select menu in the user's language (Send fills it and a
// survey's missing prompt from the catalogue); English stands in when it is empty.
func planOutbound(m bridge.Outbound, choose string) []plannedMessage {
	text := m.Text
	var components []discordgo.MessageComponent
	var embeds []*discordgo.MessageEmbed
	switch m.ContentType {
	case "input_select":
		components = selectComponents(m.Items, orDefault(choose, defaultChoose))
	case "input_csat":
		if strings.TrimSpace(text) == "" {
			text = defaultCSATPrompt
		}
		components = csatComponents()
	case "cards", "article":
		embeds = itemEmbeds(m.Items)
	}
	var msgs []plannedMessage
	for _, p := range discordContent(text, maxContentLen) {
		msgs = append(msgs, plannedMessage{payload: messagePayload{Content: p, AllowedMentions: noMentions()}})
	}
	for len(embeds) > 0 {
		n := min(len(embeds), maxEmbeds)
		if len(msgs) > 0 && len(msgs[len(msgs)-1].payload.Embeds) == 0 {
			msgs[len(msgs)-1].payload.Embeds = embeds[:n]
		} else {
			msgs = append(msgs, plannedMessage{payload: messagePayload{Embeds: embeds[:n], AllowedMentions: noMentions()}})
		}
		embeds = embeds[n:]
	}
	if len(m.Attachments) > 0 {
		if len(msgs) == 0 {
			msgs = append(msgs, plannedMessage{payload: messagePayload{AllowedMentions: noMentions()}})
		}
		msgs[0].files = m.Attachments
	}
	if len(components) > 0 {
		if len(msgs) == 0 {
			msgs = append(msgs, plannedMessage{payload: messagePayload{AllowedMentions: noMentions()}})
		}
		msgs[len(msgs)-1].payload.Components = components
	}
	if len(msgs) > 0 && m.ReplyTo != "" && isSnowflake(m.ReplyTo) {
		no := false
		msgs[0].payload.MessageReference = &discordgo.MessageReference{MessageID: m.ReplyTo, ChannelID: m.Chat.ID, FailIfNotExists: &no}
	}
	return msgs
}

// selectComponents shows the options of an input_select: up to five buttons in a row, or a
// select menu beyond that (at most 25 options, Discord's limit).
func selectComponents(items []bridge.Item, placeholder string) []discordgo.MessageComponent {
	if len(items) == 0 {
		return nil
	}
	if len(items) <= maxButtonsInRow {
		row := discordgo.ActionsRow{}
		for i, it := range items {
			row.Components = append(row.Components, discordgo.Button{
				Label: textsplit.Truncate(itemTitle(it), maxButtonLabel, textsplit.Runes), Style: discordgo.PrimaryButton,
				CustomID: selectCustomID(i, it),
			})
		}
		return []discordgo.MessageComponent{row}
	}
	menu := discordgo.SelectMenu{MenuType: discordgo.StringSelectMenu, CustomID: customSelect + "menu", Placeholder: textsplit.Truncate(placeholder, maxPlaceholder, textsplit.Runes)}
	seen := map[string]bool{}
	for i, it := range items {
		if i == maxSelectOptions {
			break
		}
		v := selectCustomID(i, it)
		if seen[v] { // option values must be unique within a menu
			v = customSelectIdx + strconv.Itoa(i)
		}
		seen[v] = true
		menu.Options = append(menu.Options, discordgo.SelectMenuOption{
			Label: textsplit.Truncate(itemTitle(it), maxOptionLabel, textsplit.Runes), Value: v,
			Description: textsplit.Truncate(it.Description, maxOptionLabel, textsplit.Runes),
		})
	}
	return []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{menu}}}
}

func itemTitle(it bridge.Item) string {
	if it.Title != "" {
		return it.Title
	}
	if it.Value != "" {
		return it.Value
	}
	return "—"
}

// selectCustomID carries the option's value when it fits, else its index.
func selectCustomID(i int, it bridge.Item) string {
	v := it.Value
	if v == "" {
		v = it.Title
	}
	if id := customSelect + v; len(id) <= maxCustomID && v != "" {
		return id
	}
	return customSelectIdx + strconv.Itoa(i)
}

// csatComponents are the five rating buttons of a CSAT survey.
func csatComponents() []discordgo.MessageComponent {
	row := discordgo.ActionsRow{}
	for n := 1; n <= 5; n++ {
		row.Components = append(row.Components, discordgo.Button{
			Label: strconv.Itoa(n) + " ★", Style: discordgo.SecondaryButton, CustomID: customCSAT + strconv.Itoa(n),
		})
	}
	return []discordgo.MessageComponent{row}
}

// itemEmbeds shows cards and articles as embeds: title, description, link and image.
func itemEmbeds(items []bridge.Item) []*discordgo.MessageEmbed {
	var out []*discordgo.MessageEmbed
	for _, it := range items {
		e := &discordgo.MessageEmbed{
			Title:       textsplit.Truncate(it.Title, maxEmbedTitle, textsplit.Runes),
			Description: textsplit.Truncate(it.Description, maxEmbedDesc, textsplit.Runes),
		}
		if isWebURL(it.Link) {
			e.URL = it.Link
		}
		if isWebURL(it.MediaURL) {
			e.Image = &discordgo.MessageEmbedImage{URL: it.MediaURL}
		}
		if e.Title == "" && e.Description == "" && e.URL == "" && e.Image == nil {
			continue
		}
		out = append(out, e)
	}
	return out
}

func isWebURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// choiceFromPress reads what a user chose from the custom id (and, for a select menu, the
// value) of a component press on msg. ok is false for components the bridge did not send.
func choiceFromPress(msg *discordgo.Message, customID string, values []string) (bridge.Choice, bool) {
	c := bridge.Choice{}
	if msg != nil {
		c.MessageID = msg.ID
	}
	switch {
	case strings.HasPrefix(customID, customCSAT):
		n, err := strconv.Atoi(strings.TrimPrefix(customID, customCSAT))
		if err != nil || n < 1 || n > 5 {
			return bridge.Choice{}, false
		}
		c.Value = strconv.Itoa(n)
		c.Title = strings.Repeat("★", n)
		return c, true
	case customID == customSelect+"menu":
		if len(values) != 1 {
			return bridge.Choice{}, false
		}
		customID = values[0]
	}
	if !strings.HasPrefix(customID, customSelect) && !strings.HasPrefix(customID, customSelectIdx) {
		return bridge.Choice{}, false
	}
	label := componentLabel(msg, customID)
	if v, ok := strings.CutPrefix(customID, customSelect); ok {
		c.Value = v
	} else {
		c.Value = label
	}
	c.Title = label
	if c.Title == "" {
		c.Title = c.Value
	}
	return c, c.Title != ""
}

// componentLabel finds the label of the button or select option with the given custom id or
// option value in msg.
func componentLabel(msg *discordgo.Message, id string) string {
	if msg == nil {
		return ""
	}
	var find func(cs []discordgo.MessageComponent) string
	find = func(cs []discordgo.MessageComponent) string {
		for _, c := range cs {
			switch c := c.(type) {
			case *discordgo.ActionsRow:
				if l := find(c.Components); l != "" {
					return l
				}
			case *discordgo.Button:
				if c.CustomID == id {
					return c.Label
				}
			case *discordgo.SelectMenu:
				for _, o := range c.Options {
					if o.Value == id {
						return o.Label
					}
				}
			}
		}
		return ""
	}
	return find(msg.Components)
}

// answeredComponents returns msg's components disabled, with the chosen button highlighted, so
// the user sees their answer and cannot answer twice.
func answeredComponents(msg *discordgo.Message, customID string, values []string) []discordgo.MessageComponent {
	if msg == nil {
		return nil
	}
	var out []discordgo.MessageComponent
	for _, c := range msg.Components {
		row, ok := c.(*discordgo.ActionsRow)
		if !ok {
			continue
		}
		nr := discordgo.ActionsRow{}
		for _, c := range row.Components {
			switch c := c.(type) {
			case *discordgo.Button:
				b := *c
				b.Disabled = true
				if b.CustomID == customID {
					b.Style = discordgo.SuccessButton
				} else if b.Style != discordgo.LinkButton {
					b.Style = discordgo.SecondaryButton
				}
				nr.Components = append(nr.Components, b)
			case *discordgo.SelectMenu:
				m := *c
				m.Disabled = true
				m.Options = append([]discordgo.SelectMenuOption(nil), c.Options...)
				for i := range m.Options {
					m.Options[i].Default = len(values) == 1 && m.Options[i].Value == values[0]
				}
				nr.Components = append(nr.Components, m)
			}
		}
		out = append(out, nr)
	}
	return out
}

// sortMessages orders messages oldest first (Discord lists them newest first).
func sortMessages(ms []*discordgo.Message) {
	sort.Slice(ms, func(i, j int) bool { return snowflake(ms[i].ID) < snowflake(ms[j].ID) })
}

// English stand-ins, the catalogue's, for texts Send takes from it in the user's language.
var (
	defaultCSATPrompt = texts.Builtin().Text(texts.Reference, texts.CSATPrompt, nil)
	defaultChoose     = texts.Builtin().Text(texts.Reference, texts.ChooseOption, nil)
)

// maxPlaceholder is Discord's limit on a select menu's placeholder.
const maxPlaceholder = 150

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
