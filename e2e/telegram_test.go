package e2e_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

var (
	alice = telegramtest.User{ID: 5550001, FirstName: "Alice", LastName: "Liddell", Username: "alice"}
	bob   = telegramtest.User{ID: 5550002, FirstName: "Bob"}
)

// A Telegram user's texts reach OneChat in order as contact telegram:<id>; the agent's replies
// reach the chat in order; a private note and the contact's own echo never do.
func TestTelegramTextBothWays(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := testCtx(t)

	for _, s := range []string{"Hello", "my order #1234", "is *late*"} {
		r.w.TG.SendText(alice, s)
	}
	contact, conv := r.conversation(ctx, tgIdentifier(alice))
	r.waitIncoming(ctx, conv.ID, "Hello", "my order #1234", "is *late*")
	if contact.Name != "Alice Liddell" {
		t.Errorf("contact name %q, want Alice Liddell", contact.Name)
	}
	r.waitSubscribed(ctx, contact.ID)

	r.w.OC.PrivateNote(conv.ID, "internal: VIP")
	r.w.OC.AgentReply(conv.ID, "Hi Alice, **checking** now.")
	r.w.OC.AgentReply(conv.ID, "It ships today.")
	got := r.waitSentTexts(ctx, alice.ID, 2)
	if want := []string{"Hi Alice, checking now.", "It ships today."}; !slices.Equal(got, want) {
		t.Fatalf("Telegram chat got %q, want %q", got, want)
	}
	if sent := r.w.TG.Sent(alice.ID); len(sent[0].Entities) == 0 {
		t.Errorf("bold Markdown reached Telegram without formatting: %+v", sent[0])
	}
	// One more round trip proves nothing else is on its way (the note, an echo).
	r.w.TG.SendText(alice, "thanks")
	r.waitIncoming(ctx, conv.ID, "Hello", "my order #1234", "is *late*", "thanks")
	r.w.OC.AgentReply(conv.ID, "You're welcome.")
	if got := r.waitSentTexts(ctx, alice.ID, 3); len(got) != 3 || got[2] != "You're welcome." {
		t.Fatalf("Telegram chat got %q", got)
	}
}

// Every kind of file a Telegram user can send arrives in OneChat as an attachment with the same
// bytes; every kind of file an agent attaches arrives in Telegram as the matching media.
func TestTelegramAttachmentsBothWays(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := testCtx(t)

	type kind struct {
		kind string
		file telegramtest.File
	}
	kinds := []kind{
		{"photo", telegramtest.File{Name: "p.jpg", MIME: "image/jpeg", Data: []byte("\xff\xd8photo-bytes")}},
		{"document", telegramtest.File{Name: "invoice.pdf", MIME: "application/pdf", Data: []byte("%PDF-1.4 invoice")}},
		{"voice", telegramtest.File{MIME: "audio/ogg", Data: []byte("OggS voice")}},
		{"audio", telegramtest.File{Name: "song.mp3", MIME: "audio/mpeg", Data: []byte("ID3 audio")}},
		{"video", telegramtest.File{Name: "clip.mp4", MIME: "video/mp4", Data: []byte("ftyp video")}},
		{"video_note", telegramtest.File{MIME: "video/mp4", Data: []byte("ftyp round")}},
		{"animation", telegramtest.File{Name: "fun.mp4", MIME: "video/mp4", Data: []byte("ftyp gif")}},
		{"sticker", telegramtest.File{MIME: "image/webp", Data: []byte("RIFF webp"), Emoji: "👍"}},
	}
	for _, k := range kinds {
		r.w.TG.SendFile(alice, k.kind, k.file, "caption "+k.kind)
	}
	contact, conv := r.conversation(ctx, tgIdentifier(alice))
	if err := r.w.OC.Wait(ctx, func() bool { return len(r.incoming(conv.ID)) >= len(kinds) }); err != nil {
		t.Fatalf("OneChat got %d of %d files: %v", len(r.incoming(conv.ID)), len(kinds), err)
	}
	msgs := r.incoming(conv.ID)
	if len(msgs) != len(kinds) {
		t.Fatalf("OneChat got %d messages for %d files: %q", len(msgs), len(kinds), contents(msgs))
	}
	for i, k := range kinds {
		m := msgs[i]
		if len(m.Attachments) != 1 || !bytes.Equal(m.Attachments[0].Data, k.file.Data) {
			t.Errorf("%s: OneChat message %q has attachments %+v, want the %d bytes sent", k.kind, m.Content, m.Attachments, len(k.file.Data))
		}
		if k.kind != "sticker" && !strings.Contains(m.Content, "caption "+k.kind) {
			t.Errorf("%s: OneChat message %q lacks its caption", k.kind, m.Content)
		}
	}

	r.waitSubscribed(ctx, contact.ID)
	out := []struct {
		file   onechattest.File
		method string
	}{
		{onechattest.File{Filename: "chart.png", ContentType: "image/png", Data: []byte("\x89PNG chart")}, "sendPhoto"},
		{onechattest.File{Filename: "terms.pdf", ContentType: "application/pdf", Data: []byte("%PDF terms")}, "sendDocument"},
		{onechattest.File{Filename: "howto.mp4", ContentType: "video/mp4", Data: []byte("ftyp howto")}, "sendVideo"},
		{onechattest.File{Filename: "jingle.mp3", ContentType: "audio/mpeg", Data: []byte("ID3 jingle")}, "sendAudio"},
	}
	for _, o := range out {
		r.w.OC.PostAgentMessage(conv.ID, onechattest.AgentMessage{Content: "here: " + o.file.Filename, Attachments: []onechattest.File{o.file}})
	}
	sent, err := r.w.TG.WaitSent(ctx, alice.ID, len(out))
	if err != nil {
		t.Fatalf("Telegram got %d of %d files: %v", len(r.w.TG.Sent(alice.ID)), len(out), err)
	}
	var files []telegramtest.SentMessage
	for _, s := range sent {
		if s.File != nil {
			files = append(files, s)
		}
	}
	if len(files) != len(out) {
		t.Fatalf("Telegram got %d files, want %d: %+v", len(files), len(out), sent)
	}
	for i, o := range out {
		if files[i].Method != o.method || !bytes.Equal(files[i].File.Data, o.file.Data) {
			t.Errorf("%s reached Telegram by %s with %d bytes, want %s with the %d bytes attached",
				o.file.Filename, files[i].Method, len(files[i].File.Data), o.method, len(o.file.Data))
		}
	}
}

// An agent's input_select becomes buttons; the user's press is stored on that message in
// OneChat as its submitted value. Cards reach the user as text with their links.
func TestTelegramInteractiveBothWays(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := testCtx(t)

	r.w.TG.SendText(alice, "I need help")
	contact, conv := r.conversation(ctx, tgIdentifier(alice))
	r.waitIncoming(ctx, conv.ID, "I need help")
	r.waitSubscribed(ctx, contact.ID)

	sel := r.w.OC.PostAgentMessage(conv.ID, onechattest.AgentMessage{
		Content:     "What is it about?",
		ContentType: "input_select",
		Items:       []map[string]any{{"title": "Billing", "value": "billing"}, {"title": "Shipping", "value": "shipping"}},
	})
	sent, err := r.w.TG.WaitSent(ctx, alice.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	var data string
	for _, row := range sent[0].Keyboard {
		for _, b := range row {
			if b.Text == "Shipping" {
				data = b.CallbackData
			}
		}
	}
	if data == "" {
		t.Fatalf("the input_select reached Telegram without a Shipping button: %+v", sent[0])
	}
	r.w.TG.PressButton(alice, sent[0].MessageID, data)
	err = r.w.OC.Wait(ctx, func() bool {
		m, _ := r.w.OC.Message(sel.ID)
		return strings.Contains(toString(m.ContentAttributes["submitted_values"]), "shipping")
	})
	if err != nil {
		m, _ := r.w.OC.Message(sel.ID)
		t.Fatalf("the press never reached OneChat: content_attributes %v", m.ContentAttributes)
	}
	if _, err := r.w.TG.WaitAnswers(ctx, 1); err != nil {
		t.Errorf("the button press was never answered (the user's client spins): %v", err)
	}

	r.w.OC.PostAgentMessage(conv.ID, onechattest.AgentMessage{
		Content:     "Our guides",
		ContentType: "cards",
		Items: []map[string]any{{"title": "Returns", "description": "How to return",
			"actions": []map[string]any{{"type": "link", "text": "Open", "uri": "https://help.example.com/returns"}}}},
	})
	sent, err = r.w.TG.WaitSent(ctx, alice.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sent[1].Text, "Returns") {
		t.Errorf("cards reached Telegram as %q, without the card's title", sent[1].Text)
	}
}

func toString(v any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				b.WriteString(k + "=")
				walk(e)
				b.WriteString(";")
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case []map[string]any:
			for _, e := range x {
				walk(e)
			}
		case string:
			b.WriteString(x)
		}
	}
	walk(v)
	return b.String()
}
