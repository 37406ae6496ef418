package telegram

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-telegram/bot/models"

	"github.com/onechat/onechat-bridge/bridge"
)

func TestToInbound(t *testing.T) {
	alice := &models.User{ID: 42, FirstName: "Alice", LastName: "Liddell", Username: "alice"}
	private := models.Chat{ID: 42, Type: models.ChatTypePrivate, FirstName: "Alice"}
	date := 1_700_000_000
	wantBase := bridge.Inbound{
		User:        bridge.UserRef{Platform: bridge.Telegram, ID: "42"},
		Chat:        bridge.ChatRef{Platform: bridge.Telegram, ID: "42"},
		MessageID:   "7",
		DisplayName: "Alice Liddell",
		Username:    "alice",
		Text:        "hello",
		SentAt:      time.Unix(int64(date), 0).UTC(),
	}
	with := func(f func(*bridge.Inbound)) bridge.Inbound {
		in := wantBase
		f(&in)
		return in
	}
	msg := func(f func(*models.Message)) *models.Message {
		m := &models.Message{ID: 7, From: alice, Chat: private, Date: date, Text: "hello"}
		if f != nil {
			f(m)
		}
		return m
	}

	tests := []struct {
		name     string
		update   models.Update
		want     bridge.Inbound
		wantSkip skipReason
	}{
		{name: "private text", update: models.Update{ID: 1, Message: msg(nil)}, want: wantBase},
		{
			name:   "reply",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) { m.ReplyToMessage = &models.Message{ID: 5, Chat: private, Text: "earlier"} })},
			want:   with(func(in *bridge.Inbound) { in.ReplyTo, in.ReplyToText = "5", "earlier" }),
		},
		{
			name: "first name only, no username",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.From = &models.User{ID: 42, FirstName: "Bob"}
			})},
			want: with(func(in *bridge.Inbound) { in.DisplayName, in.Username = "Bob", "" }),
		},
		{
			name: "names are trimmed",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.From = &models.User{ID: 42, FirstName: " Ann ", LastName: " Lee "}
			})},
			want: with(func(in *bridge.Inbound) { in.DisplayName, in.Username = "Ann Lee", "" }),
		},
		{
			name: "no name falls back to the username",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.From = &models.User{ID: 42, Username: "anon"}
			})},
			want: with(func(in *bridge.Inbound) { in.DisplayName, in.Username = "anon", "anon" }),
		},
		{
			name: "large ids stay exact",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.From = &models.User{ID: 7_123_456_789, FirstName: "Big"}
				m.Chat.ID = 7_123_456_789
			})},
			want: with(func(in *bridge.Inbound) {
				in.User.ID, in.Chat.ID, in.DisplayName, in.Username = "7123456789", "7123456789", "Big", ""
			}),
		},
		{
			name:   "bot command passes through as text",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) { m.Text = "/start" })},
			want:   with(func(in *bridge.Inbound) { in.Text = "/start" }),
		},
		{
			name: "group skipped",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Chat = models.Chat{ID: -100, Type: models.ChatTypeGroup, Title: "g"}
			})},
			wantSkip: skipNotPrivate,
		},
		{
			name: "supergroup skipped",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Chat = models.Chat{ID: -1001, Type: models.ChatTypeSupergroup}
			})},
			wantSkip: skipNotPrivate,
		},
		{
			name:     "channel post skipped",
			update:   models.Update{ID: 1, ChannelPost: &models.Message{ID: 1, Chat: models.Chat{ID: -1002, Type: models.ChatTypeChannel}, Text: "news"}},
			wantSkip: skipNotPrivate,
		},
		{
			name: "photo without caption is not text",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text, m.Photo = "", []models.PhotoSize{{FileID: "f"}}
			})},
			wantSkip: skipNotText,
		},
		{
			name:     "edited message",
			update:   models.Update{ID: 1, EditedMessage: msg(nil)},
			wantSkip: skipEdited,
		},
		{
			name:     "callback query",
			update:   models.Update{ID: 1, CallbackQuery: &models.CallbackQuery{ID: "q", From: *alice, Data: "x"}},
			wantSkip: skipCallback,
		},
		{name: "unknown kind", update: models.Update{ID: 1}, wantSkip: skipUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, skip := toInbound(&tc.update)
			if skip != tc.wantSkip {
				t.Fatalf("skip = %v, want %v", skip, tc.wantSkip)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestUTF16Len(t *testing.T) {
	for in, want := range map[string]int{"": 0, "abc": 3, "é": 1, "€": 1, "😀": 2, "👍🏽": 4, "a😀b": 4} {
		if got := utf16Len(in); got != want {
			t.Errorf("utf16Len(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestSplitText(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
		want  []string
	}{
		{name: "short", in: "hello", limit: 10, want: []string{"hello"}},
		{name: "exactly the limit", in: "0123456789", limit: 10, want: []string{"0123456789"}},
		{name: "empty", in: "", limit: 10, want: nil},
		{name: "whitespace only", in: " \n\n \t", limit: 10, want: nil},
		{name: "paragraph break preferred", in: "aaaa bbb\n\ncc dd", limit: 12, want: []string{"aaaa bbb", "cc dd"}},
		{name: "line break before space", in: "aaaa b\ncc dd ee", limit: 12, want: []string{"aaaa b", "cc dd ee"}},
		{name: "word boundary", in: "aaa bbb ccc ddd", limit: 9, want: []string{"aaa bbb", "ccc ddd"}},
		{name: "separator right at the limit", in: "aaaaa bbbbb", limit: 5, want: []string{"aaaaa", "bbbbb"}},
		{name: "no break: hard cut", in: "abcdefghij", limit: 4, want: []string{"abcd", "efgh", "ij"}},
		{name: "early paragraph break loses to a late space", in: "a\n\nbbbbbbb cc", limit: 10, want: []string{"a\n\nbbbbbbb", "cc"}},
		{name: "no empty parts from runs of blank lines", in: "aaaa\n\n\n\n\n\n\n\nbbbb", limit: 5, want: []string{"aaaa", "bbbb"}},
		{name: "emoji count twice", in: "😀😀😀", limit: 4, want: []string{"😀😀", "😀"}},
		{name: "surrogate pair never split", in: "a😀😀", limit: 2, want: []string{"a", "😀", "😀"}},
		{name: "crlf", in: "aaaa\r\nbbbb", limit: 6, want: []string{"aaaa", "bbbb"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := splitText(tc.in, tc.limit)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("splitText(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
			}
		})
	}
}

// TestSplitTextTelegramLimit checks the properties that matter at Telegram's real limit: every
// part fits, no part is empty, runes survive and no word is lost.
func TestSplitTextTelegramLimit(t *testing.T) {
	para := strings.Repeat("lorem ipsum dolor sit amet 😀, ", 40) // ~1.2k units
	inputs := map[string]string{
		"paragraphs":  strings.Repeat(para+"\n\n", 10),
		"one line":    strings.Repeat("word ", 3000),
		"emoji only":  strings.Repeat("👍🏽", 3000),
		"no spaces":   strings.Repeat("x", 9000),
		"mixed lines": strings.Repeat("a line with é and 😀\n", 900),
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			parts := splitText(in, maxMessageLen)
			if len(parts) < 2 {
				t.Fatalf("got %d parts, want a split", len(parts))
			}
			for i, p := range parts {
				if n := utf16Len(p); n > maxMessageLen || strings.TrimSpace(p) == "" {
					t.Fatalf("part %d: %d UTF-16 units, empty=%v", i, n, strings.TrimSpace(p) == "")
				}
				if !utf8.ValidString(p) {
					t.Fatalf("part %d is not valid UTF-8: a rune was cut", i)
				}
			}
			if name == "no spaces" || name == "emoji only" {
				if strings.Join(parts, "") != in {
					t.Fatal("hard cut lost or changed text")
				}
				return
			}
			if !slices.Equal(strings.Fields(strings.Join(parts, " ")), strings.Fields(in)) {
				t.Fatal("splitting lost or changed words")
			}
		})
	}
}
