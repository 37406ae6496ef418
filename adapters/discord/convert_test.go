package discord

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

func TestPlanOutbound(t *testing.T) {
	chat := bridge.ChatRef{Platform: Platform, ID: "5"}
	six := []bridge.Item{{Title: "A", Value: "a"}, {Title: "B", Value: "b"}, {Title: "C", Value: "c"}, {Title: "D", Value: "d"}, {Title: "E", Value: "e"}, {Title: "F", Value: "f"}}
	for _, tc := range []struct {
		name  string
		in    bridge.Outbound
		check func(t *testing.T, got []plannedMessage, js []string)
	}{
		{"text with reply, mentions off", bridge.Outbound{Chat: chat, Text: "hi @everyone", ReplyTo: "77"}, func(t *testing.T, got []plannedMessage, js []string) {
			if len(got) != 1 || !strings.Contains(js[0], `"allowed_mentions":{"parse":[]}`) ||
				!strings.Contains(js[0], `"message_id":"77"`) || !strings.Contains(js[0], `"fail_if_not_exists":false`) {
				t.Errorf("%s", js)
			}
		}},
		{"nothing", bridge.Outbound{Chat: chat}, func(t *testing.T, got []plannedMessage, js []string) {
			if len(got) != 0 {
				t.Errorf("%s", js)
			}
		}},
		{"select as buttons", bridge.Outbound{Chat: chat, Text: "pick", ContentType: "input_select", Items: six[:2]}, func(t *testing.T, got []plannedMessage, js []string) {
			if len(got) != 1 || !strings.Contains(js[0], `"custom_id":"onechat:sel:a"`) || !strings.Contains(js[0], `"type":2`) {
				t.Errorf("%s", js)
			}
		}},
		{"select as menu beyond five", bridge.Outbound{Chat: chat, ContentType: "input_select", Items: six}, func(t *testing.T, got []plannedMessage, js []string) {
			if len(got) != 1 || !strings.Contains(js[0], `"type":3`) || !strings.Contains(js[0], `"value":"onechat:sel:f"`) {
				t.Errorf("%s", js)
			}
		}},
		{"long value goes by index", bridge.Outbound{Chat: chat, ContentType: "input_select", Items: []bridge.Item{{Title: "x", Value: strings.Repeat("v", 200)}}}, func(t *testing.T, got []plannedMessage, js []string) {
			if !strings.Contains(js[0], `"custom_id":"onechat:sel#0"`) {
				t.Errorf("%s", js)
			}
		}},
		{"csat", bridge.Outbound{Chat: chat, ContentType: "input_csat"}, func(t *testing.T, got []plannedMessage, js []string) {
			if len(got) != 1 || strings.Count(js[0], "onechat:csat:") != 5 || got[0].payload.Content == "" {
				t.Errorf("%s", js)
			}
		}},
		{"article embeds, bad links dropped", bridge.Outbound{Chat: chat, ContentType: "article", Items: []bridge.Item{{Title: "T", Description: "D", Link: "javascript:x"}}}, func(t *testing.T, got []plannedMessage, js []string) {
			if len(got) != 1 || !strings.Contains(js[0], `"title":"T"`) || strings.Contains(js[0], "javascript") {
				t.Errorf("%s", js)
			}
		}},
		{"files on the first, buttons on the last part", bridge.Outbound{Chat: chat, Text: strings.Repeat("x ", 1500), ContentType: "input_select", Items: six[:1], Attachments: []bridge.Attachment{{Name: "f"}}}, func(t *testing.T, got []plannedMessage, js []string) {
			if len(got) != 2 || len(got[0].files) != 1 || len(got[1].files) != 0 || got[0].payload.Components != nil || got[1].payload.Components == nil {
				t.Errorf("%+v", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := planOutbound(tc.in, "")
			var js []string
			for _, p := range got {
				b, err := json.Marshal(p.payload)
				if err != nil {
					t.Fatal(err)
				}
				js = append(js, string(b))
			}
			tc.check(t, got, js)
		})
	}
}

func TestInboundMessage(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	user := &discordgo.User{ID: "11", Username: "ann", GlobalName: "Ann"}
	for _, tc := range []struct {
		name   string
		in     *discordgo.Message
		ok     bool
		expect func(t *testing.T, got bridge.Inbound)
	}{
		{"text", &discordgo.Message{ID: "1", ChannelID: "5", Author: user, Content: "**hi**", Timestamp: ts}, true, func(t *testing.T, got bridge.Inbound) {
			if got.Text != "**hi**" || got.DisplayName != "Ann" || got.Chat.ID != "5" || !got.SentAt.Equal(ts) {
				t.Errorf("%+v", got)
			}
		}},
		{"system message", &discordgo.Message{ID: "1", Author: user, Type: 7, Content: "joined"}, false, nil},
		{"empty", &discordgo.Message{ID: "1", Author: user}, false, nil},
		{"voice message", &discordgo.Message{ID: "1", ChannelID: "5", Author: user, Flags: flagVoiceMessage,
			Attachments: []*discordgo.MessageAttachment{{ID: "9", Filename: "voice-message.ogg", ContentType: "audio/ogg", Size: 10}}}, true, func(t *testing.T, got bridge.Inbound) {
			if len(got.Attachments) != 1 || got.Attachments[0].Kind != bridge.KindVoice || got.Attachments[0].Ref != "attachment:5/1/9" {
				t.Errorf("%+v", got.Attachments)
			}
		}},
		{"gif and video", &discordgo.Message{ID: "1", ChannelID: "5", Author: user, Attachments: []*discordgo.MessageAttachment{
			{ID: "9", Filename: "a.gif", ContentType: "image/gif"}, {ID: "8", Filename: "v.mp4", ContentType: "video/mp4"}}}, true, func(t *testing.T, got bridge.Inbound) {
			if got.Attachments[0].Kind != bridge.KindAnimation || got.Attachments[1].Kind != bridge.KindVideo {
				t.Errorf("%+v", got.Attachments)
			}
		}},
		{"reply quotes the original", &discordgo.Message{ID: "2", Type: messageTypeReply, Author: user, Content: "yes",
			MessageReference:  &discordgo.MessageReference{MessageID: "1"},
			ReferencedMessage: &discordgo.Message{ID: "1", Content: strings.Repeat("q", 500)}}, true, func(t *testing.T, got bridge.Inbound) {
			if got.ReplyTo != "1" || len([]rune(got.ReplyToText)) != maxReplyQuote {
				t.Errorf("%+v", got)
			}
		}},
		{"forward", &discordgo.Message{ID: "2", Author: user, MessageReference: &discordgo.MessageReference{Type: discordgo.MessageReferenceTypeForward, MessageID: "1"},
			MessageSnapshots: []discordgo.MessageSnapshot{{Message: &discordgo.Message{Content: "fwd text"}}}}, true, func(t *testing.T, got bridge.Inbound) {
			if got.Text != "fwd text" || got.ReplyTo != "" || len(got.Notes) != 1 {
				t.Errorf("%+v", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := inboundMessage(tc.in, "5", texts.Builtin())
			if ok != tc.ok {
				t.Fatalf("ok = %v", ok)
			}
			if ok {
				tc.expect(t, got)
			}
		})
	}
}

func TestParseRef(t *testing.T) {
	for ref, ok := range map[string]bool{
		"attachment:1/2/3": true, "sticker:4.png": true, "sticker:4.gif": true,
		"attachment:1/2": false, "sticker:4.json": false, "https://cdn/x": false, "attachment:a/b/c": false,
	} {
		if _, _, got := parseRef(ref); got != ok {
			t.Errorf("parseRef(%q) ok = %v", ref, got)
		}
	}
}

func TestRedactPath(t *testing.T) {
	for in, want := range map[string]string{
		"/interactions/1/tok/callback":       "/interactions/1/<token>/callback",
		"/webhooks/2/tok/messages/@original": "/webhooks/2/<token>/messages/@original",
		"/channels/3/messages":               "/channels/3/messages",
	} {
		if got := redactPath(in); got != want {
			t.Errorf("redactPath(%q) = %q", in, got)
		}
	}
}
