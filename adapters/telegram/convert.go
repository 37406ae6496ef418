package telegram

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-telegram/bot/models"

	"github.com/onechat/onechat-bridge/bridge"
)

// maxMessageLen is Telegram's limit for the text of one message, in UTF-16 code units after
// entity parsing. Plain text (no parse_mode) has no entities, so it is the raw length.
const maxMessageLen = 4096

// skipReason says why an update produced no bridge.Inbound. The transport logs it; conversion
// stays pure so it can be table-tested.
type skipReason int

const (
	skipNone       skipReason = iota
	skipNotPrivate            // a group, supergroup or channel: the bridge serves private chats only
	skipNotText               // media, stickers, service messages: a later issue converts them
	skipEdited                // edited_message: edits are a later issue
	skipCallback              // callback_query: buttons are a later issue
	skipUnknown               // an update kind the bridge does not subscribe to or understand
)

func (r skipReason) String() string {
	switch r {
	case skipNone:
		return "none"
	case skipNotPrivate:
		return "not a private chat"
	case skipNotText:
		return "not a text message"
	case skipEdited:
		return "edited message"
	case skipCallback:
		return "callback query"
	default:
		return "unsupported update"
	}
}

// toInbound converts one update into the message the core stores. It returns skipNone and the
// message, or the reason the update carries nothing for the core. It never looks at the network.
func toInbound(u *models.Update) (bridge.Inbound, skipReason) {
	switch {
	case u.Message != nil:
		return messageToInbound(u.Message)
	case u.EditedMessage != nil:
		if u.EditedMessage.Chat.Type != models.ChatTypePrivate {
			return bridge.Inbound{}, skipNotPrivate
		}
		return bridge.Inbound{}, skipEdited
	case u.ChannelPost != nil, u.EditedChannelPost != nil:
		return bridge.Inbound{}, skipNotPrivate
	case u.CallbackQuery != nil:
		return bridge.Inbound{}, skipCallback
	default:
		return bridge.Inbound{}, skipUnknown
	}
}

func messageToInbound(m *models.Message) (bridge.Inbound, skipReason) {
	// A private chat always has a sender; checking From as well keeps a malformed update from
	// producing a user with id 0.
	if m.Chat.Type != models.ChatTypePrivate || m.From == nil {
		return bridge.Inbound{}, skipNotPrivate
	}
	if m.Text == "" {
		return bridge.Inbound{}, skipNotText
	}
	in := bridge.Inbound{
		User:        bridge.UserRef{Platform: bridge.Telegram, ID: strconv.FormatInt(m.From.ID, 10)},
		Chat:        bridge.ChatRef{Platform: bridge.Telegram, ID: strconv.FormatInt(m.Chat.ID, 10)},
		MessageID:   strconv.Itoa(m.ID),
		DisplayName: displayName(m.From),
		Username:    m.From.Username,
		Text:        m.Text,
		SentAt:      time.Unix(int64(m.Date), 0).UTC(),
	}
	if r := m.ReplyToMessage; r != nil && r.ID != 0 {
		in.ReplyTo = strconv.Itoa(r.ID)
		in.ReplyToText = r.Text
	}
	return in, skipNone
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

// utf16Len is the length of s in UTF-16 code units, the unit Telegram counts limits in. Runes
// outside the Basic Multilingual Plane (most emoji) count twice.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16RuneLen(r)
	}
	return n
}

func utf16RuneLen(r rune) int {
	if r >= 0x10000 && r <= utf8.MaxRune {
		return 2
	}
	return 1
}

// splitText cuts s into parts of at most limit UTF-16 code units each, so that a long agent
// answer arrives as several messages instead of being rejected. It prefers, in this order, a
// paragraph break, a line break and a space in the second half of the window, then any of
// them anywhere, and cuts between runes only when a part has no break at all, so a
// surrogate pair is never split. The break itself is dropped, trailing whitespace is trimmed
// from each part and parts that are only whitespace are left out, because Telegram rejects an
// empty message. It returns nil when s has nothing to send.
func splitText(s string, limit int) []string {
	var parts []string
	add := func(p string) {
		p = strings.TrimRight(p, " \t\r\n")
		if strings.TrimSpace(p) != "" {
			parts = append(parts, p)
		}
	}
	s = strings.TrimLeft(s, "\r\n")
	for {
		// cut is the largest byte index such that s[:cut] fits in limit.
		cut, units := 0, 0
		for i, r := range s {
			n := utf16RuneLen(r)
			if units+n > limit {
				break
			}
			units += n
			_, size := utf8.DecodeRuneInString(s[i:])
			cut = i + size
		}
		if cut == 0 {
			// Only with a limit below 2: take one rune so the loop always progresses.
			_, cut = utf8.DecodeRuneInString(s)
		}
		if cut == len(s) {
			add(s)
			return parts
		}
		head, rest := splitAt(s, cut)
		add(head)
		s = strings.TrimLeft(rest, "\r\n")
	}
}

// splitAt splits s, which is longer than its first cut bytes, at the best break at or before
// cut. The returned head is at most cut bytes long.
func splitAt(s string, cut int) (head, rest string) {
	seps := []string{"\n\n", "\n", " "}
	for _, minIdx := range []int{cut / 2, 1} {
		for _, sep := range seps {
			// The separator may start at cut: it is dropped, so the head still fits.
			window := s[:min(len(s), cut+len(sep))]
			i := strings.LastIndex(window, sep)
			if i >= minIdx && i <= cut {
				return s[:i], s[i+len(sep):]
			}
		}
	}
	return s[:cut], s[cut:]
}
