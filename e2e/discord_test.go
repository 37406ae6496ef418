package e2e_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/onechat/onechat-bridge/adapters/discord/discordtest"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

const discordToken = "MTIzNDU2Nzg5.e2e-discord-token.never-logged"

// withDiscord runs the bridge with Discord (DM mode) next to Telegram, against a fake Discord.
func withDiscord(t *testing.T, dc **discordtest.Server) rigOption {
	srv := discordtest.NewServer(t, discordToken)
	*dc = srv
	return withEnv("DISCORD_BOT_TOKEN="+discordToken, "DISCORD_API_URL="+srv.APIURL)
}

const (
	carol = "800000000000000101"
	dave  = "800000000000000102"
)

// botMessages returns what the bot wrote in a channel.
func botMessages(dc *discordtest.Server, channel string) []discordtest.Message {
	var out []discordtest.Message
	for _, m := range dc.Messages(channel) {
		if m.AuthorID == dc.BotID {
			out = append(out, m)
		}
	}
	return out
}

func waitBotMessages(t *testing.T, dc *discordtest.Server, channel string, n int) []discordtest.Message {
	t.Helper()
	dc.WaitFor(t, "bot messages in the DM", func() bool {
		c := 0
		for _, m := range dc.MessagesLocked(channel) {
			if m.AuthorID == dc.BotID {
				c++
			}
		}
		return c >= n
	})
	return botMessages(dc, channel)
}

func discordContents(ms []discordtest.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Content
	}
	return out
}

// A Discord user's DMs reach OneChat in order as contact discord:<id>, with files; the agent's
// replies and files reach the DM in order; a private note never does. Telegram runs alongside.
func TestDiscordTextAndFilesBothWays(t *testing.T) {
	var dc *discordtest.Server
	r := newRig(t, withDiscord(t, &dc))
	dc.AddUser(carol, "carol", "Carol")
	r.start()
	ctx := testCtx(t)

	dc.UserSendsDM(carol, "Hello from Discord")
	dc.UserSendsDM(carol, "see attached", discordtest.WithAttachment("receipt.pdf", "application/pdf", []byte("%PDF receipt")))
	dc.UserSendsDM(carol, "and a photo", discordtest.WithAttachment("cat.png", "image/png", []byte("\x89PNG cat")))
	r.w.TG.SendText(alice, "Hello from Telegram")

	contact, conv := r.conversation(ctx, "discord:"+carol)
	msgs := r.waitIncoming(ctx, conv.ID, "Hello from Discord", "see attached", "and a photo")
	for i, want := range [][]byte{nil, []byte("%PDF receipt"), []byte("\x89PNG cat")} {
		if want == nil {
			continue
		}
		if len(msgs[i].Attachments) != 1 || !bytes.Equal(msgs[i].Attachments[0].Data, want) {
			t.Errorf("OneChat message %q has attachments %+v, want %q", msgs[i].Content, msgs[i].Attachments, want)
		}
	}
	_, tgConv := r.conversation(ctx, tgIdentifier(alice))
	r.waitIncoming(ctx, tgConv.ID, "Hello from Telegram")

	r.waitSubscribed(ctx, contact.ID)
	r.w.OC.PrivateNote(conv.ID, "internal")
	r.w.OC.AgentReply(conv.ID, "Hi Carol")
	r.w.OC.PostAgentMessage(conv.ID, onechattest.AgentMessage{Content: "the form",
		Attachments: []onechattest.File{{Filename: "form.pdf", ContentType: "application/pdf", Data: []byte("%PDF form")}}})
	r.w.OC.AgentReply(conv.ID, "anything else?")

	dm := dc.DMChannel(carol)
	got := waitBotMessages(t, dc, dm, 3)
	if want := []string{"Hi Carol", "the form", "anything else?"}; !slices.Equal(discordContents(got), want) {
		t.Fatalf("the DM got %q, want %q", discordContents(got), want)
	}
	if len(got[1].Attachments) != 1 || !bytes.Equal(got[1].Attachments[0].Data, []byte("%PDF form")) {
		t.Errorf("the agent's file reached Discord as %+v", got[1].Attachments)
	}
	if n := len(r.w.TG.Sent(alice.ID)); n != 0 {
		t.Errorf("the Telegram user got %d of the Discord user's replies", n)
	}
}

// Buttons both ways on Discord: an input_select becomes buttons, the user's press is stored on
// the OneChat message and shows as the user's answer. Discord 429s and a dropped gateway connection lose nothing.
func TestDiscordInteractiveAndFaults(t *testing.T) {
	var dc *discordtest.Server
	r := newRig(t, withDiscord(t, &dc))
	dc.AddUser(dave, "dave", "Dave")
	r.start()
	ctx := testCtx(t)

	dc.UserSendsDM(dave, "help")
	contact, conv := r.conversation(ctx, "discord:"+dave)
	r.waitIncoming(ctx, conv.ID, "help")
	r.waitSubscribed(ctx, contact.ID)

	sel := r.w.OC.PostAgentMessage(conv.ID, onechattest.AgentMessage{
		Content: "Which plan?", ContentType: "input_select",
		Items: []map[string]any{{"title": "Basic", "value": "basic"}, {"title": "Pro", "value": "pro"}},
	})
	dm := dc.DMChannel(dave)
	got := waitBotMessages(t, dc, dm, 1)
	id := customIDWith(got[0].Components, "pro")
	if id == "" {
		t.Fatalf("the input_select reached Discord without a Pro button: %s", got[0].Components)
	}
	dc.UserPresses(dave, dm, got[0].ID, id)
	if err := r.w.OC.Wait(ctx, func() bool {
		m, _ := r.w.OC.Message(sel.ID)
		return strings.Contains(toString(m.ContentAttributes["submitted_values"]), "pro")
	}); err != nil {
		m, _ := r.w.OC.Message(sel.ID)
		t.Fatalf("the press never reached OneChat: %v", m.ContentAttributes)
	}

	// The chosen option is also posted as the user's message, so the agent sees it.
	r.waitIncoming(ctx, conv.ID, "help", "Pro")

	// Faults: the next send is rate limited, the gateway drops, messages flow on.
	dc.RateLimit("POST", "/messages", 0.5)
	r.w.OC.AgentReply(conv.ID, "after a 429")
	dc.DropConnections()
	dc.UserSendsDM(dave, "after a gateway drop")
	r.waitIncoming(ctx, conv.ID, "help", "Pro", "after a gateway drop")
	got = waitBotMessages(t, dc, dm, 2)
	if got[len(got)-1].Content != "after a 429" {
		t.Errorf("the DM got %q", discordContents(got))
	}
}

// customIDWith finds the custom_id of a component whose custom_id or value ends with suffix.
func customIDWith(components json.RawMessage, suffix string) string {
	var rows []struct {
		Components []struct {
			CustomID string `json:"custom_id"`
		} `json:"components"`
	}
	_ = json.Unmarshal(components, &rows)
	for _, row := range rows {
		for _, c := range row.Components {
			if strings.HasSuffix(c.CustomID, suffix) {
				return c.CustomID
			}
		}
	}
	return ""
}
