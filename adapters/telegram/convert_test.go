package telegram

import (
	"reflect"
	"testing"
	"time"

	"github.com/go-telegram/bot/models"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

func TestToInbound(t *testing.T) {
	alice := &models.User{ID: 42, FirstName: "Alice", LastName: "Liddell", Username: "alice"}
	private := models.Chat{ID: 42, Type: models.ChatTypePrivate, FirstName: "Alice"}
	date := 1_700_000_000
	wantBase := bridge.Inbound{
		User:        bridge.UserRef{Platform: Platform, ID: "42"},
		Chat:        bridge.ChatRef{Platform: Platform, ID: "42"},
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
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) { m.Text = "/help" })},
			want:   with(func(in *bridge.Inbound) { in.Text = "/help" }),
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
			name: "photo: the largest size, caption as text",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text, m.Caption = "", "look"
				m.Photo = []models.PhotoSize{{FileID: "small", FileSize: 10}, {FileID: "big", FileSize: 9000}}
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text = "look"
				in.Attachments = []bridge.Attachment{{Kind: bridge.KindImage, Name: "photo_7.jpg", MIME: "image/jpeg", Size: 9000, Ref: "big"}}
			}),
		},
		{
			name: "document keeps its name and type",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text = ""
				m.Document = &models.Document{FileID: "d", FileName: "invoice.pdf", MimeType: "application/pdf", FileSize: 1234}
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text = ""
				in.Attachments = []bridge.Attachment{{Kind: bridge.KindFile, Name: "invoice.pdf", MIME: "application/pdf", Size: 1234, Ref: "d"}}
			}),
		},
		{
			name: "file above the download limit becomes a note",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text = ""
				m.Video = &models.Video{FileID: "v", FileName: "holiday.mp4", MimeType: "video/mp4", FileSize: 31 << 20}
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text = ""
				in.Notes = []string{"📎 holiday.mp4 (31.0 MB) is larger than the 20.0 MB a bot may download from Telegram; ask the user to send it another way"}
			}),
		},
		{
			name: "voice note",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text, m.Voice = "", &models.Voice{FileID: "vo", MimeType: "audio/ogg", FileSize: 5}
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text = ""
				in.Attachments = []bridge.Attachment{{Kind: bridge.KindVoice, Name: "voice_7.ogg", MIME: "audio/ogg", Size: 5, Ref: "vo"}}
			}),
		},
		{
			name: "audio without a file name is named after the track",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text, m.Audio = "", &models.Audio{FileID: "au", Performer: "Band", Title: "Song"}
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text = ""
				in.Attachments = []bridge.Attachment{{Kind: bridge.KindAudio, Name: "Band - Song.mp3", MIME: "audio/mpeg", Ref: "au"}}
			}),
		},
		{
			name: "video note",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text, m.VideoNote = "", &models.VideoNote{FileID: "vn", FileSize: 100}
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text = ""
				in.Attachments = []bridge.Attachment{{Kind: bridge.KindVideo, Name: "video_note_7.mp4", MIME: "video/mp4", Size: 100, Ref: "vn"}}
			}),
		},
		{
			name: "animation wins over the document Telegram also sends",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text = ""
				m.Animation = &models.Animation{FileID: "an", FileName: "cat.mp4", MimeType: "video/mp4"}
				m.Document = &models.Document{FileID: "an", FileName: "cat.mp4", MimeType: "video/mp4"}
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text = ""
				in.Attachments = []bridge.Attachment{{Kind: bridge.KindAnimation, Name: "cat.mp4", MIME: "video/mp4", Ref: "an"}}
			}),
		},
		{
			name: "static sticker as an image, not a thumbnail",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text = ""
				m.Sticker = &models.Sticker{FileID: "st", Emoji: "😀", FileSize: 300, Thumbnail: &models.PhotoSize{FileID: "thumb"}}
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text = ""
				in.Attachments = []bridge.Attachment{{Kind: bridge.KindSticker, Name: "sticker_7.webp", MIME: "image/webp", Size: 300, Ref: "st"}}
			}),
		},
		{
			name: "animated sticker as a file plus its emoji",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text = ""
				m.Sticker = &models.Sticker{FileID: "at", Emoji: "🎉", IsAnimated: true}
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text = "Animated sticker 🎉"
				in.Attachments = []bridge.Attachment{{Kind: bridge.KindFile, Name: "sticker_7.tgs", MIME: "application/x-tgsticker", Ref: "at"}}
			}),
		},
		{
			name: "video sticker as a file plus its emoji",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text = ""
				m.Sticker = &models.Sticker{FileID: "vs", Emoji: "🔥", IsVideo: true}
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text = "Video sticker 🔥"
				in.Attachments = []bridge.Attachment{{Kind: bridge.KindFile, Name: "sticker_7.webm", MIME: "video/webm", Ref: "vs"}}
			}),
		},
		{
			name: "location with a map link",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text, m.Location = "", &models.Location{Latitude: 52.52, Longitude: 13.405}
			})},
			want: with(func(in *bridge.Inbound) { in.Text = "📍 Location: https://maps.google.com/?q=52.520000,13.405000" }),
		},
		{
			name: "venue with title, address and map link",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text = ""
				m.Location = &models.Location{Latitude: 1, Longitude: 2}
				m.Venue = &models.Venue{Location: models.Location{Latitude: 1, Longitude: 2}, Title: "Cafe *Central*", Address: "Main St 1"}
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text = "📍 **Cafe \\*Central\\***\nMain St 1\nhttps://maps.google.com/?q=1.000000,2.000000"
			}),
		},
		{
			name: "shared contact",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text, m.Contact = "", &models.Contact{PhoneNumber: "+4912345", FirstName: "Carol", LastName: "King", UserID: 99}
			})},
			want: with(func(in *bridge.Inbound) { in.Text = "👤 Contact: Carol King, +4912345 (Telegram user 99)" }),
		},
		{
			name: "forwarded from a user",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.ForwardOrigin = &models.MessageOrigin{Type: models.MessageOriginTypeUser,
					MessageOriginUser: &models.MessageOriginUser{SenderUser: models.User{ID: 5, FirstName: "Dan", Username: "dan_1"}}}
			})},
			want: with(func(in *bridge.Inbound) { in.Text = "_Forwarded from Dan (@dan\\_1)_\n\nhello" }),
		},
		{
			name: "forwarded from a channel",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.ForwardOrigin = &models.MessageOrigin{Type: models.MessageOriginTypeChannel,
					MessageOriginChannel: &models.MessageOriginChannel{Chat: models.Chat{ID: -100, Title: "News", Type: models.ChatTypeChannel}}}
			})},
			want: with(func(in *bridge.Inbound) { in.Text = "_Forwarded from News_\n\nhello" }),
		},
		{
			name: "reply to a photo quotes what it was",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.ReplyToMessage = &models.Message{ID: 3, Chat: private, Photo: []models.PhotoSize{{FileID: "p"}}}
			})},
			want: with(func(in *bridge.Inbound) { in.ReplyTo, in.ReplyToText = "3", "[photo]" }),
		},
		{
			name: "a partial quote wins over the whole replied message",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.ReplyToMessage = &models.Message{ID: 3, Chat: private, Text: "one two three"}
				m.Quote = &models.TextQuote{Text: "two"}
			})},
			want: with(func(in *bridge.Inbound) { in.ReplyTo, in.ReplyToText = "3", "two" }),
		},
		{
			name: "entities become Markdown",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text = "bold link code"
				m.Entities = []models.MessageEntity{
					{Type: models.MessageEntityTypeBold, Offset: 0, Length: 4},
					{Type: models.MessageEntityTypeTextLink, Offset: 5, Length: 4, URL: "https://example.com"},
					{Type: models.MessageEntityTypeCode, Offset: 10, Length: 4},
				}
			})},
			want: with(func(in *bridge.Inbound) { in.Text = "**bold** [link](https://example.com) `code`" }),
		},
		{
			name: "edit: its own message id, the original in EditOf",
			update: models.Update{ID: 1, EditedMessage: msg(func(m *models.Message) {
				m.Text, m.EditDate = "hello again", 1_700_000_100
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text, in.EditOf, in.MessageID = "hello again", "7", "7.edit.1700000100"
				in.SentAt = time.Unix(1_700_000_100, 0).UTC()
			}),
		},
		{
			name:     "start is not a message",
			update:   models.Update{ID: 1, Message: msg(func(m *models.Message) { m.Text = "/start" })},
			wantSkip: skipStart,
		},
		{
			name:     "start with a deep-link payload is not a message either",
			update:   models.Update{ID: 1, Message: msg(func(m *models.Message) { m.Text = "/start promo42" })},
			wantSkip: skipStart,
		},
		{
			name:   "/close closes the user's ticket",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) { m.Text = "/close@support_bot" })},
			want:   with(func(in *bridge.Inbound) { in.Text, in.Ticket = "", bridge.TicketClose }),
		},
		{
			name: "an edit to /close is only text",
			update: models.Update{ID: 1, EditedMessage: msg(func(m *models.Message) {
				m.Text, m.EditDate = "/close", 1_700_000_100
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text, in.EditOf, in.MessageID = "/close", "7", "7.edit.1700000100"
				in.SentAt = time.Unix(1_700_000_100, 0).UTC()
			}),
		},
		{
			name:     "service message skipped",
			update:   models.Update{ID: 1, Message: msg(func(m *models.Message) { m.Text = ""; m.NewChatTitle = "x" })},
			wantSkip: skipEmpty,
		},
		{
			name: "poll becomes a note",
			update: models.Update{ID: 1, Message: msg(func(m *models.Message) {
				m.Text, m.Poll = "", &models.Poll{Question: "Pizza?"}
			})},
			want: with(func(in *bridge.Inbound) {
				in.Text, in.Notes = "", []string{"The user sent a poll (“Pizza?”), which the bridge cannot show"}
			}),
		},
		{
			name:     "callback query with foreign data",
			update:   models.Update{ID: 1, CallbackQuery: &models.CallbackQuery{ID: "q", From: *alice, Data: "x", Message: models.MaybeInaccessibleMessage{Message: msg(nil)}}},
			wantSkip: skipCallback,
		},
		{name: "unknown kind", update: models.Update{ID: 1}, wantSkip: skipUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, skip := converter{maxDownload: CloudDownloadLimit, texts: texts.Builtin()}.toInbound(&tc.update)
			if skip != tc.wantSkip {
				t.Fatalf("skip = %v, want %v", skip, tc.wantSkip)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestConverterSpeaksTheAgentLanguage: what the adapter writes for agents about a user's
// message (a location, a contact, a poll, a file too large to download, a forward, what a reply
// quotes) is in BRIDGE_AGENT_LANGUAGE, whatever the user's own language.
func TestConverterSpeaksTheAgentLanguage(t *testing.T) {
	cat, err := texts.New(texts.Options{AgentLanguage: "es"})
	if err != nil {
		t.Fatal(err)
	}
	c := converter{maxDownload: CloudDownloadLimit, texts: cat}
	alice := &models.User{ID: 42, FirstName: "Alice", LanguageCode: "de"}
	private := models.Chat{ID: 42, Type: models.ChatTypePrivate}
	convert := func(f func(m *models.Message)) bridge.Inbound {
		t.Helper()
		m := &models.Message{ID: 7, From: alice, Chat: private, Date: 1_700_000_000}
		f(m)
		in, skip := c.toInbound(&models.Update{ID: 1, Message: m})
		if skip != skipNone {
			t.Fatalf("skipped: %v", skip)
		}
		return in
	}
	for _, tc := range []struct {
		name      string
		msg       func(m *models.Message)
		got       func(in bridge.Inbound) string
		want      string
		wantNotes int
	}{
		{"location", func(m *models.Message) { m.Location = &models.Location{Latitude: 40.4168, Longitude: -3.7038} },
			func(in bridge.Inbound) string { return in.Text }, "📍 Ubicación: https://maps.google.com/?q=40.416800,-3.703800", 0},
		{"live location", func(m *models.Message) { m.Location = &models.Location{Latitude: 1, Longitude: 2, LivePeriod: 60} },
			func(in bridge.Inbound) string { return in.Text },
			"📍 Ubicación en tiempo real (las actualizaciones no se transfieren): https://maps.google.com/?q=1.000000,2.000000", 0},
		{"contact", func(m *models.Message) {
			m.Contact = &models.Contact{FirstName: "Carol", PhoneNumber: "+34600111222", UserID: 99}
		}, func(in bridge.Inbound) string { return in.Text }, "👤 Contacto: Carol, +34600111222 (usuario 99 de Telegram)", 0},
		{"dice", func(m *models.Message) { m.Dice = &models.Dice{Emoji: "🎲", Value: 5} },
			func(in bridge.Inbound) string { return in.Text }, "🎲 (sacó 5)", 0},
		{"animated sticker", func(m *models.Message) { m.Sticker = &models.Sticker{FileID: "s", Emoji: "🎉", IsAnimated: true} },
			func(in bridge.Inbound) string { return in.Text }, "Pegatina animada 🎉", 0},
		{"forwarded", func(m *models.Message) {
			m.Text = "hola"
			m.ForwardOrigin = &models.MessageOrigin{MessageOriginHiddenUser: &models.MessageOriginHiddenUser{SenderUserName: "Dan"}}
		}, func(in bridge.Inbound) string { return in.Text }, "_Reenviado de Dan_\n\nhola", 0},
		{"forwarded by someone unnamed", func(m *models.Message) {
			m.Text = "hola"
			m.ForwardOrigin = &models.MessageOrigin{MessageOriginHiddenUser: &models.MessageOriginHiddenUser{}}
		}, func(in bridge.Inbound) string { return in.Text }, "_↪️ Mensaje reenviado_\n\nhola", 0},
		{"reply to a voice message", func(m *models.Message) {
			m.Text = "¿y esto?"
			m.ReplyToMessage = &models.Message{ID: 3, Chat: private, Voice: &models.Voice{FileID: "v"}}
		}, func(in bridge.Inbound) string { return in.ReplyToText }, "[mensaje de voz]", 0},
		{"poll", func(m *models.Message) { m.Poll = &models.Poll{Question: "¿Pizza?"} },
			func(in bridge.Inbound) string { return in.Notes[0] }, "El usuario envió una encuesta («¿Pizza?»), que el puente no puede mostrar", 1},
		{"unsupported", func(m *models.Message) { m.Game = &models.Game{Title: "x"} },
			func(in bridge.Inbound) string { return in.Notes[0] }, "El usuario envió un tipo de mensaje de Telegram que el puente no puede mostrar", 1},
		{"file too large to download", func(m *models.Message) {
			m.Document = &models.Document{FileID: "d", FileName: "big.zip", FileSize: 31 << 20}
		}, func(in bridge.Inbound) string { return in.Notes[0] },
			"📎 big.zip (31.0 MB) supera los 20.0 MB que un bot puede descargar de Telegram; pide al usuario que lo envíe de otra forma", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := convert(tc.msg)
			if len(in.Notes) != tc.wantNotes {
				t.Fatalf("notes %q, want %d", in.Notes, tc.wantNotes)
			}
			if got := tc.got(in); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
