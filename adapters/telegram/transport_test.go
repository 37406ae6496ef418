package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/bridgetest"
	"github.com/onechat/onechat-bridge/texts"
)

var aliceChat = bridge.ChatRef{Platform: Platform, ID: "42"}

func readAll(t *testing.T, f *fixture, a bridge.Attachment) string {
	t.Helper()
	rc, err := f.a.OpenAttachment(testCtx(t), a)
	if err != nil {
		t.Fatalf("OpenAttachment(%s): %v", a.Name, err)
	}
	defer func() { _ = rc.Close() }()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRunDeliversFilesAndOpensThem(t *testing.T) {
	f := newFixture(t, testToken)
	in := newInbox()
	f.run(t, in)

	f.srv.SendFile(alice, "photo", telegramtest.File{Data: []byte("PHOTO-ORIGINAL")}, "my receipt")
	f.srv.SendFile(alice, "document", telegramtest.File{Name: "contract.pdf", MIME: "application/pdf", Data: []byte("%PDF")}, "")
	f.srv.SendFile(alice, "voice", telegramtest.File{MIME: "audio/ogg", Data: []byte("OGG")}, "")
	f.srv.SendFile(alice, "sticker", telegramtest.File{Data: []byte("WEBP"), Emoji: "😀"}, "")
	f.srv.SendFile(alice, "sticker", telegramtest.File{Data: []byte("TGS"), Emoji: "🎉", Animated: true}, "")
	f.srv.SendFile(alice, "video", telegramtest.File{Name: "holiday.mp4", MIME: "video/mp4", Data: []byte("x"), Size: 31 << 20}, "from the beach")

	msgs := waitMessages(t, in, 6)
	photo, doc, voice, sticker, animated, video := msgs[0], msgs[1], msgs[2], msgs[3], msgs[4], msgs[5]
	if photo.Text != "my receipt" || len(photo.Attachments) != 1 || photo.Attachments[0].Kind != bridge.KindImage {
		t.Fatalf("photo %+v", photo)
	}
	if got := readAll(t, f, photo.Attachments[0]); got != "PHOTO-ORIGINAL" {
		t.Errorf("photo bytes %q, want the largest size, not the thumbnail", got)
	}
	if doc.Attachments[0].Name != "contract.pdf" || doc.Attachments[0].MIME != "application/pdf" || readAll(t, f, doc.Attachments[0]) != "%PDF" {
		t.Errorf("document %+v", doc.Attachments)
	}
	if voice.Attachments[0].Kind != bridge.KindVoice || readAll(t, f, voice.Attachments[0]) != "OGG" {
		t.Errorf("voice %+v", voice.Attachments)
	}
	if sticker.Attachments[0].MIME != "image/webp" || readAll(t, f, sticker.Attachments[0]) != "WEBP" {
		t.Errorf("static sticker %+v: want the sticker itself as an image", sticker.Attachments)
	}
	if animated.Text != "Animated sticker 🎉" || readAll(t, f, animated.Attachments[0]) != "TGS" {
		t.Errorf("animated sticker %+v", animated)
	}
	if len(video.Attachments) != 0 || len(video.Notes) != 1 || !strings.Contains(video.Notes[0], "holiday.mp4 (31.0 MB)") || video.Text != "from the beach" {
		t.Errorf("a video above 20 MB must reach the agent as a note: %+v", video)
	}
	for _, m := range msgs {
		for _, a := range m.Attachments {
			if strings.Contains(a.Ref, "/") || strings.Contains(a.Ref, testToken) {
				t.Errorf("attachment ref %q is not a bare file id", a.Ref)
			}
		}
	}
	assertNoToken(t, nil, f.logs)
}

func TestSelfHostedServerPassesLargeFiles(t *testing.T) {
	f := newFixture(t, testToken)
	f.a.conv.maxDownload = 0 // what New sets for a self-hosted TELEGRAM_API_URL
	f.srv.SetDownloadLimit(0)
	in := newInbox()
	f.run(t, in)
	f.srv.SendFile(alice, "document", telegramtest.File{Name: "big.zip", Data: []byte("ZIP"), Size: 300 << 20}, "")
	m := waitMessages(t, in, 1)[0]
	if len(m.Attachments) != 1 || len(m.Notes) != 0 || readAll(t, f, m.Attachments[0]) != "ZIP" {
		t.Fatalf("message %+v", m)
	}
}

func TestOpenAttachmentRefusedIsPermanent(t *testing.T) {
	f := newFixture(t, testToken)
	f.a.conv.maxDownload = 0 // misconfigured: the server still has the cloud limit
	in := newInbox()
	f.run(t, in)
	f.srv.SendFile(alice, "document", telegramtest.File{Name: "big.zip", Data: []byte("ZIP"), Size: 30 << 20}, "")
	m := waitMessages(t, in, 1)[0]
	_, err := f.a.OpenAttachment(testCtx(t), m.Attachments[0])
	var perm *bridge.PermanentError
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), "file is too big") {
		t.Fatalf("OpenAttachment = %v, want a permanent 'file is too big'", err)
	}
	_, err = f.a.OpenAttachment(testCtx(t), bridge.Attachment{Name: "x", Ref: "no-such-file"})
	if !errors.As(err, &perm) {
		t.Fatalf("unknown file id: %v, want permanent", err)
	}
}

func TestNewSetsDownloadLimitByServer(t *testing.T) {
	cloud, err := New(Config{Token: testToken}, newInbox(), nil)
	if err != nil {
		t.Fatal(err)
	}
	own, err := New(Config{Token: testToken, APIURL: "http://bot-api:8081"}, newInbox(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cloud.conv.maxDownload != CloudDownloadLimit || own.conv.maxDownload != 0 || cloud.maxUpload != 50<<20 || own.maxUpload != 2000<<20 {
		t.Fatalf("cloud %d/%d, self-hosted %d/%d", cloud.conv.maxDownload, cloud.maxUpload, own.conv.maxDownload, own.maxUpload)
	}
}

func TestTokenNeverLeaksFromDownloads(t *testing.T) {
	f := newFixture(t, testToken)
	in := newInbox()
	stop := f.run(t, in)
	f.srv.SendFile(alice, "document", telegramtest.File{Name: "a.txt", Data: []byte("A")}, "")
	m := waitMessages(t, in, 1)[0]
	stop()
	inner := f.a.client.Transport
	f.a.client = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.Contains(r.URL.Path, "/file/") {
			return nil, fmt.Errorf("connection reset while fetching %s", r.URL)
		}
		return inner.RoundTrip(r)
	})}
	_, err := f.a.OpenAttachment(testCtx(t), m.Attachments[0])
	if err == nil || !strings.Contains(err.Error(), "/file/bot"+redacted) {
		t.Fatalf("OpenAttachment = %v, want the download error with the URL redacted", err)
	}
	assertNoToken(t, err, f.logs)
}

// blockingWaits replaces Adapter.wait: every wait is handed to the test, which decides when
// it ends.
type blockingWaits chan blockedWait

type blockedWait struct {
	d       time.Duration
	release chan struct{}
}

func (b blockingWaits) wait(ctx context.Context, d time.Duration) error {
	w := blockedWait{d: d, release: make(chan struct{})}
	select {
	case b <- w:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-w.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b blockingWaits) next(t *testing.T) blockedWait {
	t.Helper()
	select {
	case w := <-b:
		return w
	case <-testCtx(t).Done():
		t.Fatal("no wait")
		return blockedWait{}
	}
}

func TestAlbumBecomesOneMessageAndIsConfirmedOnlyAfterStored(t *testing.T) {
	f := newFixture(t, testToken)
	waits := make(blockingWaits)
	f.a.wait = waits.wait
	in := newInbox()
	f.srv.SendText(alice, "before the album")
	ids := f.srv.SendAlbum(alice, "photo", []telegramtest.File{{Data: []byte("P1")}, {Data: []byte("P2")}}, "our trip")
	f.run(t, in)

	w := waits.next(t)
	if w.d != f.a.albumWindow {
		t.Fatalf("waited %s, want the album window %s", w.d, f.a.albumWindow)
	}
	// The text before the album is stored; the album is neither stored nor confirmed.
	if msgs := waitMessages(t, in, 1); len(msgs) != 1 || msgs[0].Text != "before the album" {
		t.Fatalf("messages %+v", msgs)
	}
	pos, _ := in.Cursor(context.Background(), OffsetCursor)
	albumStart := bridge.ParsePosition(pos) // stored past the text, up to the album
	if acked := f.srv.Acked(); acked >= albumStart || f.srv.Pending() != 3 {
		t.Fatalf("acked %d (album starts at update %d), pending %d: the album was confirmed before it was stored",
			acked, albumStart, f.srv.Pending())
	}
	// A third part arrives during the window: the adapter waits once more.
	f.srv.SendAlbumPart(alice, "photo", telegramtest.File{Data: []byte("P3")}, ids[0])
	f.srv.SendText(alice, "after the album")
	close(w.release)
	w = waits.next(t)
	n := len(in.Messages())
	if acked := f.srv.Acked(); n != 1 || acked >= albumStart {
		t.Fatalf("%d messages stored, acked %d, while the album was still growing", n, acked)
	}
	close(w.release)

	msgs := waitMessages(t, in, 3)
	album, after := msgs[1], msgs[2]
	if album.MessageID != strconv.Itoa(ids[0]) || album.Text != "our trip" || len(album.Attachments) != 3 || after.Text != "after the album" {
		t.Fatalf("album %+v, then %+v", album, after)
	}
	for i, want := range []string{"P1", "P2", "P3"} {
		if got := readAll(t, f, album.Attachments[i]); got != want {
			t.Errorf("album file %d = %q, want %q", i, got, want)
		}
	}
}

func TestButtonPressBecomesChoiceAndIsAnswered(t *testing.T) {
	f := newFixture(t, testToken)
	f.srv.SendText(alice, "hi")
	ids, err := f.a.Send(testCtx(t), bridge.Outbound{Chat: aliceChat, ContentType: "input_select", Text: "Which team?",
		Items: []bridge.Item{{Title: "Sales", Value: "sales"}, {Title: "Support", Value: "support"}}})
	if err != nil {
		t.Fatal(err)
	}
	sent := f.srv.Sent(alice.ID)[0]
	if sent.Text != "Which team?" || len(sent.Keyboard) != 2 || sent.Keyboard[1][0].Text != "Support" {
		t.Fatalf("sent %+v", sent)
	}
	msgID, _ := strconv.Atoi(ids[0])
	qid := f.srv.PressButton(alice, msgID, sent.Keyboard[1][0].CallbackData)
	f.srv.PressButton(alice, msgID, "forged-data")
	in := newInbox()
	f.run(t, in)

	m := waitMessages(t, in, 2)[1]
	if m.Choice == nil || *m.Choice != (bridge.Choice{MessageID: ids[0], Title: "Support", Value: "support"}) ||
		m.User.ID != "42" || m.MessageID != "cb."+qid || m.Text != "" {
		t.Fatalf("message %+v, choice %+v", m, m.Choice)
	}
	answers, err := f.srv.WaitAnswers(testCtx(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	if answers[0] != (telegramtest.CallbackAnswer{QueryID: qid, Text: "✓ Support"}) || answers[1].Text != "" {
		t.Errorf("answers %+v: every press is answered, the forged one without a choice", answers)
	}
	if _, err := f.srv.WaitSentMatch(testCtx(t), alice.ID, func(s []telegramtest.SentMessage) bool { return s[0].Keyboard == nil }); err != nil {
		t.Errorf("keyboard still there after the choice: %v", err)
	}
}

func opener(data string) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(data)), nil }
}

func TestSendUploadsFilesByType(t *testing.T) {
	f := newFixture(t, testToken)
	ctx := testCtx(t)
	f.srv.SendText(alice, "hi")

	ids, err := f.a.Send(ctx, bridge.Outbound{Chat: aliceChat, Text: "Here is **your** invoice", ReplyTo: "1", Attachments: []bridge.Attachment{
		{Kind: bridge.KindFile, Name: "invoice.pdf", MIME: "application/pdf", Size: 4, Open: opener("%PDF")},
		{Kind: bridge.KindImage, Name: "chart.png", MIME: "image/png", Open: opener("PNG")},
		{Kind: bridge.KindAudio, Name: "note.ogg", MIME: "audio/ogg", Open: opener("OGG")},
		{Kind: bridge.KindAudio, Name: "song.mp3", MIME: "audio/mpeg", Open: opener("MP3")},
	}})
	if err != nil || len(ids) != 4 {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	sent := f.srv.Sent(alice.ID)
	want := []struct{ method, field, name, data, caption string }{
		{"sendDocument", "document", "invoice.pdf", "%PDF", "Here is your invoice"},
		{"sendPhoto", "photo", "chart.png", "PNG", ""},
		{"sendVoice", "voice", "note.ogg", "OGG", ""},
		{"sendAudio", "audio", "song.mp3", "MP3", ""},
	}
	for i, w := range want {
		s := sent[i]
		if s.Method != w.method || s.File == nil || s.File.Field != w.field || s.File.Name != w.name || string(s.File.Data) != w.data || s.Text != w.caption {
			t.Errorf("sent[%d] = %+v (file %+v), want %+v", i, s, s.File, w)
		}
	}
	if sent[0].ReplyTo != 1 || sent[0].Raw != "Here is <b>your</b> invoice" || sent[1].ReplyTo != 0 {
		t.Errorf("caption %q, replies %d %d", sent[0].Raw, sent[0].ReplyTo, sent[1].ReplyTo)
	}

	// Text too long for a caption goes first, as its own message.
	long := strings.Repeat("word ", 300)
	ids, err = f.a.Send(ctx, bridge.Outbound{Chat: aliceChat, Text: long, Attachments: []bridge.Attachment{
		{Kind: bridge.KindImage, Name: "a.jpg", MIME: "image/jpeg", Open: opener("JPG")}}})
	if err != nil || len(ids) != 2 {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	sent = f.srv.Sent(alice.ID)
	if sent[4].Method != "sendMessage" || sent[4].Text != strings.TrimSpace(long) || sent[5].Method != "sendPhoto" || sent[5].Text != "" {
		t.Errorf("long caption: %+v / %+v", sent[4].Method, sent[5].Method)
	}

	// A photo Telegram cannot process still reaches the user, as a document.
	f.srv.RejectPhotos()
	if _, err := f.a.Send(ctx, bridge.Outbound{Chat: aliceChat, Attachments: []bridge.Attachment{
		{Kind: bridge.KindImage, Name: "odd.png", MIME: "image/png", Open: opener("ODD")}}}); err != nil {
		t.Fatal(err)
	}
	if last := f.srv.Sent(alice.ID)[6]; last.Method != "sendDocument" || string(last.File.Data) != "ODD" {
		t.Errorf("rejected photo sent as %+v", last)
	}

	// Too big for the Bot API: the text goes without it, agents learn what was left out, and
	// the file is named for the core to tell the user (the message does not).
	ids, err = f.a.Send(ctx, bridge.Outbound{Chat: aliceChat, Text: "x", Attachments: []bridge.Attachment{
		{Name: "huge.iso", Size: 60 << 20, Open: opener("")}}})
	var partial *bridge.PartialError
	if !errors.As(err, &partial) || len(ids) != 1 || len(f.srv.Sent(alice.ID)) != 8 ||
		strings.Join(partial.Notes, "|") != "📎 huge.iso (60.0 MB) is larger than the 50.0 MB Telegram lets a bot send; send a link instead" ||
		!slices.Equal(partial.Untold, []bridge.LeftOutFile{{Name: "huge.iso", Size: 60 << 20}}) {
		t.Errorf("Send = %v, %v", ids, err)
	}
	// A message that was only such a file sends nothing: the core's line tells the user.
	ids, err = f.a.Send(ctx, bridge.Outbound{Chat: aliceChat, Attachments: []bridge.Attachment{
		{Name: "huge.iso", Size: 60 << 20, Open: opener("")}}})
	if !errors.As(err, &partial) || len(ids) != 0 || len(partial.Untold) != 1 || len(partial.Notes) != 1 || len(f.srv.Sent(alice.ID)) != 8 {
		t.Errorf("Send = %v, %v", ids, err)
	}
}

// TestSendNotesSpeakTheAgentLanguage: the note for agents about a file Telegram would not take
// is in BRIDGE_AGENT_LANGUAGE.
func TestSendNotesSpeakTheAgentLanguage(t *testing.T) {
	f := newFixture(t, testToken)
	cat, err := texts.New(texts.Options{AgentLanguage: "es"})
	if err != nil {
		t.Fatal(err)
	}
	f.a.host.(*bridgetest.MemHost).SetTexts(cat)
	f.srv.SendText(alice, "hi") // the chat exists
	_, err = f.a.Send(testCtx(t), bridge.Outbound{Chat: aliceChat, Text: "la copia",
		Attachments: []bridge.Attachment{{Name: "copia.zip", Size: 73 << 20, Open: func(context.Context) (io.ReadCloser, error) { return nil, errors.New("not read") }}}})
	var partial *bridge.PartialError
	want := "📎 copia.zip (73.0 MB) supera los 50.0 MB que Telegram permite enviar a un bot; envía un enlace en su lugar"
	if !errors.As(err, &partial) || !slices.Equal(partial.Notes, []string{want}) {
		t.Fatalf("Send = %v, want the note %q", err, want)
	}
}

func TestSendInteractiveKinds(t *testing.T) {
	f := newFixture(t, testToken)
	ctx := testCtx(t)
	f.srv.SendText(alice, "hi")
	if _, err := f.a.Send(ctx, bridge.Outbound{Chat: aliceChat, ContentType: "input_csat"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Send(ctx, bridge.Outbound{Chat: aliceChat, ContentType: "article", Text: "Read this",
		Items: []bridge.Item{{Title: "Reset your password", Link: "https://help.example.com/reset", Description: "Step by step"}}}); err != nil {
		t.Fatal(err)
	}
	sent := f.srv.Sent(alice.ID)
	if sent[0].Text != defaultCSATText || len(sent[0].Keyboard) != 1 || len(sent[0].Keyboard[0]) != 5 || sent[0].Keyboard[0][0].CallbackData != "r:1" {
		t.Errorf("csat %+v", sent[0])
	}
	linked := false
	for _, e := range sent[1].Entities {
		linked = linked || e.Type == "text_link" && e.URL == "https://help.example.com/reset" && e.Offset == 11 && e.Length == 19
	}
	if sent[1].Text != "Read this\n\nReset your password\nStep by step" || !linked {
		t.Errorf("article %q %+v", sent[1].Text, sent[1].Entities)
	}
}

func TestSendPacesPerChatAndOverall(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := newPacer(time.Second, time.Second/30)
	p.now = func() time.Time { return now }
	got := []time.Duration{p.reserve(1, 1), p.reserve(1, 1), p.reserve(2, 1), p.reserve(1, 1)}
	want := []time.Duration{0, time.Second, time.Second / 15, 2 * time.Second}
	// chat 2's first message waits only for the global slot after chat 1's two reservations.
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("reservations %v, want %v", got, want)
		}
	}
	now = now.Add(10 * time.Second)
	if d := p.reserve(1, 1); d != 0 {
		t.Errorf("after a pause: %s", d)
	}
	// 30 chats at once: the 30th waits about a second in all.
	for c := int64(100); c < 129; c++ {
		p.reserve(c, 1)
	}
	if d := p.reserve(129, 1); d < 990*time.Millisecond || d > time.Second {
		t.Errorf("the 31st message in a second waits %s", d)
	}

	f := newFixture(t, testToken)
	f.srv.SendText(alice, "hi")
	if _, err := f.a.Send(testCtx(t), bridge.Outbound{Chat: aliceChat, Text: strings.Repeat("a ", 3000)}); err != nil {
		t.Fatal(err)
	}
	if w := f.paces.all(); len(w) != 1 || w[0] < 900*time.Millisecond {
		t.Errorf("the second part of a split message waited %v, want about 1s", w)
	}
}

func TestEditAndDelete(t *testing.T) {
	f := newFixture(t, testToken)
	ctx := testCtx(t)
	f.srv.SendText(alice, "hi")
	text, err := f.a.Send(ctx, bridge.Outbound{Chat: aliceChat, Text: "first **draft**"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.a.Edit(ctx, bridge.Outbound{Chat: aliceChat, Text: "final **text**", Parts: text}); err != nil {
		t.Fatal(err)
	}
	if err := f.a.Edit(ctx, bridge.Outbound{Chat: aliceChat, Text: "final **text**", Parts: text}); err != nil {
		t.Fatalf("an edit to the same content must succeed: %v", err)
	}
	photo, err := f.a.Send(ctx, bridge.Outbound{Chat: aliceChat, Text: "a chart", Attachments: []bridge.Attachment{
		{Kind: bridge.KindImage, Name: "c.png", MIME: "image/png", Open: opener("PNG")}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.a.Edit(ctx, bridge.Outbound{Chat: aliceChat, Text: "the _new_ chart", Parts: photo,
		Attachments: []bridge.Attachment{{Kind: bridge.KindImage, Name: "c.png"}}}); err != nil {
		t.Fatal(err)
	}
	sel := bridge.Outbound{Chat: aliceChat, ContentType: "input_select", Text: "Pick", Items: []bridge.Item{{Title: "A", Value: "a"}}}
	selIDs, err := f.a.Send(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	sel.Text, sel.Parts = "Pick one", selIDs
	if err := f.a.Edit(ctx, sel); err != nil {
		t.Fatal(err)
	}
	sent := f.srv.Sent(alice.ID)
	if sent[0].Text != "final text" || sent[0].Edits != 1 || sent[1].Text != "the new chart" || sent[1].Edits != 1 ||
		sent[2].Text != "Pick one" || len(sent[2].Keyboard) != 1 {
		t.Fatalf("after edits: %+v", sent)
	}

	if err := f.a.Delete(ctx, bridge.Outbound{Chat: aliceChat, Parts: text}); err != nil {
		t.Fatal(err)
	}
	if err := f.a.Delete(ctx, bridge.Outbound{Chat: aliceChat, Parts: text}); err != nil {
		t.Fatalf("deleting a message already gone must succeed: %v", err)
	}
	if !f.srv.Sent(alice.ID)[0].Deleted {
		t.Error("not deleted")
	}
	f.srv.SetNow(func() time.Time { return time.Now().Add(49 * time.Hour) })
	err = f.a.Delete(ctx, bridge.Outbound{Chat: aliceChat, Parts: photo})
	var perm *bridge.PermanentError
	if !errors.As(err, &perm) || !strings.Contains(perm.Reason, "48 hours") {
		t.Fatalf("Delete after 48 h = %v, want a permanent error saying why", err)
	}
	if f.logCount("telegram refused to delete the message") != 1 {
		t.Error("the refused delete was not logged")
	}
	if err := f.a.Edit(ctx, bridge.Outbound{Chat: aliceChat, Text: "x"}); !errors.As(err, &perm) {
		t.Errorf("Edit without parts = %v, want permanent", err)
	}
}

func TestShowTypingSendsOneAction(t *testing.T) {
	f := newFixture(t, testToken)
	f.srv.SendText(alice, "hi")
	f.run(t, newInbox())
	ctx := testCtx(t)
	if err := f.a.ShowTyping(ctx, aliceChat); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.WaitActions(ctx, alice.ID, 1); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Actions(alice.ID); n != 1 {
		t.Fatalf("typing actions %d, want 1 (the core repeats it)", n)
	}
	// Telegram shows the action for about five seconds: the core must refresh it before.
	if d := f.a.TypingRefresh(); d <= 0 || d >= 5*time.Second {
		t.Fatalf("TypingRefresh = %v, want under 5 s", d)
	}
}

func TestPollingRemovesAWebhook(t *testing.T) {
	f := newFixture(t, testToken)
	f.srv.SetWebhookDirect("https://old.example.com/hook")
	f.srv.SendText(alice, "written while the webhook was set")
	in := newInbox()
	f.run(t, in)
	if m := waitMessages(t, in, 1); m[0].Text != "written while the webhook was set" {
		t.Fatalf("%+v", m)
	}
	if u, _ := f.srv.Webhook(); u != "" {
		t.Errorf("webhook %q still set", u)
	}
}

func TestHealth(t *testing.T) {
	f := newFixture(t, testToken)
	if f.a.Health() == nil {
		t.Error("healthy before the first poll")
	}
	in := newInbox()
	f.run(t, in)
	f.srv.SendText(alice, "x")
	waitMessages(t, in, 1)
	if err := f.a.Health(); err != nil {
		t.Errorf("Health after a poll = %v", err)
	}
}

// webhookFixture runs the adapter in webhook mode on a local port.
func webhookFixture(t *testing.T, in bridge.Host) (*fixture, string) {
	t.Helper()
	f := newFixture(t, testToken)
	f.a.mode, f.a.webhookURL, f.a.webhookSecret = ModeWebhook, "https://bridge.example.com/telegram/hook", "s3cret-Value_1"
	f.a.albumWindow = 50 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- f.a.withFollowUps(ctx, func(ctx context.Context) error { return f.a.serveWebhook(ctx, in, ln) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveWebhook = %v", err)
		}
	})
	if err := f.srv.WaitWebhook(testCtx(t), true); err != nil {
		t.Fatal(err)
	}
	return f, "http://" + ln.Addr().String() + "/telegram/hook"
}

func postUpdate(t *testing.T, url, secret string, id int64, field string, payload any) int {
	t.Helper()
	body := fmt.Sprintf(`{"update_id":%d,%q:%s}`, id, field, mustJSON(t, payload))
	req, _ := http.NewRequestWithContext(testCtx(t), http.MethodPost, url, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set(secretHeader, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestWebhookStoresBeforeAnswering(t *testing.T) {
	in := newInbox()
	fail := true
	in.DeliverHook(func(call int, cur bridge.Cursor, msgs []bridge.Inbound) error {
		if cur.Name != "" {
			t.Errorf("webhook delivery moved cursor %+v", cur)
		}
		if fail {
			fail = false
			return errors.New("database is down")
		}
		return nil
	})
	f, url := webhookFixture(t, in)
	defer http.DefaultClient.CloseIdleConnections()
	u, secret := f.srv.Webhook()
	if u != "https://bridge.example.com/telegram/hook" || secret != "s3cret-Value_1" {
		t.Fatalf("registered %q with secret %q", u, secret)
	}
	if code := postUpdate(t, url, "wrong", 1, "message", privateMessage(1, "forged")); code != http.StatusForbidden {
		t.Errorf("wrong secret: %d", code)
	}
	if code := postUpdate(t, url, secret, 2, "message", privateMessage(2, "hello")); code != http.StatusInternalServerError {
		t.Errorf("store failed: %d, want 500 so Telegram delivers again", code)
	}
	if code := postUpdate(t, url, secret, 2, "message", privateMessage(2, "hello")); code != http.StatusOK {
		t.Errorf("redelivery: %d", code)
	}
	stored := len(in.Messages())
	if stored != 1 {
		t.Fatalf("%d messages stored when 200 was answered", stored)
	}

	// An album posted part by part, concurrently, is one message.
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := privateMessage(10+i, "")
			m["media_group_id"] = "g1"
			m["photo"] = []map[string]any{{"file_id": fmt.Sprintf("p%d", i), "file_unique_id": "u", "width": 1, "height": 1}}
			codes[i] = postUpdate(t, url, secret, int64(10+i), "message", m)
		}()
	}
	wg.Wait()
	msgs := waitMessages(t, in, 2)
	if codes[0] != 200 || codes[1] != 200 || len(msgs) != 2 || len(msgs[1].Attachments) != 2 || msgs[1].MessageID != "10" {
		t.Fatalf("codes %v, messages %+v", codes, msgs)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOnlyThePollerNeedsASingleInstance(t *testing.T) {
	f := newFixture(t, testToken)
	if !f.a.NeedsSingleton() {
		t.Error("the long poller must run on one instance at a time")
	}
	f.a.mode = ModeWebhook
	if f.a.NeedsSingleton() {
		t.Error("webhook mode serves what the load balancer hands it, on every instance")
	}
}
