package telegram

import (
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// en is what a user whose language the bridge does not know reads.
func en(k texts.Key) string { return texts.Builtin().Text("en", k, nil) }

func TestTicketNoticeFollowsTheSetting(t *testing.T) {
	chat := bridge.ChatRef{Platform: Platform, ID: "42"}
	tests := []struct {
		name string
		ev   bridge.TicketEvent
		want string // "" for no notice
	}{
		{"agent resolve, auto: nothing in a private chat", bridge.TicketEvent{Chat: chat, Notice: bridge.NoticeAuto}, ""},
		{"the user's /close, auto: answered", bridge.TicketEvent{Chat: chat, Notice: bridge.NoticeAuto, ByUser: true}, en(texts.TicketClosed)},
		{"agent resolve, always", bridge.TicketEvent{Chat: chat, Notice: bridge.NoticeAlways}, en(texts.TicketClosed)},
		{"never", bridge.TicketEvent{Chat: chat, Notice: bridge.NoticeNever, ByUser: true}, ""},
		{"OneChat sent its CSAT survey: never two notices", bridge.TicketEvent{Chat: chat, Notice: bridge.NoticeAlways, Surveyed: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, testToken)
			ctx := testCtx(t)
			f.srv.SendText(alice, "hello") // the chat exists
			if err := f.a.TicketClosed(ctx, tt.ev); err != nil {
				t.Fatal(err)
			}
			sent := f.srv.Sent(alice.ID)
			if tt.want == "" {
				if len(sent) != 0 {
					t.Fatalf("sent %+v, want nothing", sent)
				}
				return
			}
			if len(sent) != 1 || sent[0].Text != tt.want {
				t.Fatalf("sent %+v, want one notice %q", sent, tt.want)
			}
			want := [][]telegramtest.Button{{{Text: en(texts.ReopenButton), CallbackData: "t:reopen"}}}
			if got := sent[0].Keyboard; len(got) != 1 || len(got[0]) != 1 || got[0][0] != want[0][0] {
				t.Errorf("keyboard %+v, want %+v", got, want)
			}
		})
	}
}

func TestReopenButtonReopensAndIsAnswered(t *testing.T) {
	f := newFixture(t, testToken)
	ctx := testCtx(t)
	f.srv.SendText(alice, "hello")
	chat := bridge.ChatRef{Platform: Platform, ID: "42"}
	if err := f.a.TicketClosed(ctx, bridge.TicketEvent{Chat: chat, Notice: bridge.NoticeAlways}); err != nil {
		t.Fatal(err)
	}
	notice := f.srv.Sent(alice.ID)[0]
	in := newInbox()
	f.run(t, in)
	f.srv.PressButton(alice, notice.MessageID, "t:reopen")
	msgs := waitMessages(t, in, 2)
	press := msgs[1]
	if press.Ticket != bridge.TicketReopen || press.Choice != nil || press.User.ID != "42" || press.Chat != chat {
		t.Fatalf("press = %+v, want a reopen of alice's ticket", press)
	}
	if err := f.a.TicketReopened(ctx, bridge.TicketEvent{Chat: chat, ByUser: true}); err != nil {
		t.Fatal(err)
	}
	if err := f.a.TicketReopened(ctx, bridge.TicketEvent{Chat: chat}); err != nil {
		t.Fatal(err)
	}
	sent := f.srv.Sent(alice.ID)
	if len(sent) != 2 || sent[1].Text != en(texts.TicketReopened) {
		t.Errorf("sent %+v, want the notice and one reopened line (an agent's reopen says nothing)", sent)
	}
}

func TestTicketButtonDataDecodes(t *testing.T) {
	for data, want := range map[string]bridge.TicketAction{"t:close": bridge.TicketClose, "t:reopen": bridge.TicketReopen, "t:x": "", "r:5": ""} {
		got, ok := decodeTicketAction(data)
		if got != want || ok != (want != "") {
			t.Errorf("decodeTicketAction(%q) = %q, %v; want %q", data, got, ok, want)
		}
	}
}

// TestTicketNoticeInTheUsersLanguage: the closing notice and its button come from the message
// catalogue, in the language of the user's latest message.
func TestTicketNoticeInTheUsersLanguage(t *testing.T) {
	f := newFixture(t, testToken)
	ctx := testCtx(t)
	f.srv.SendText(alice, "hola")
	u := bridge.UserRef{Platform: Platform, ID: "42"}
	chat := bridge.ChatRef{Platform: Platform, ID: "42"}
	if err := f.a.host.Deliver(ctx, bridge.Cursor{}, bridge.Inbound{User: u, Chat: chat, MessageID: "1", Text: "hola", Language: "es", SentAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := f.a.TicketClosed(ctx, bridge.TicketEvent{User: u, Chat: chat, Notice: bridge.NoticeAlways}); err != nil {
		t.Fatal(err)
	}
	es := func(k texts.Key) string { return texts.Builtin().Text("es", k, nil) }
	sent := f.srv.Sent(alice.ID)
	if len(sent) != 1 || sent[0].Text != es(texts.TicketClosed) || len(sent[0].Keyboard) != 1 || sent[0].Keyboard[0][0].Text != es(texts.ReopenButton) {
		t.Fatalf("sent %+v, want the Spanish notice %q with the button %q", sent, es(texts.TicketClosed), es(texts.ReopenButton))
	}
}
