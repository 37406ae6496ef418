package telegram

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/bridge"
)

func images(n int) []bridge.Attachment {
	var atts []bridge.Attachment
	for i := range n {
		name := fmt.Sprintf("img%d.jpg", i)
		atts = append(atts, bridge.Attachment{Kind: bridge.KindImage, Name: name, MIME: "image/jpeg", Open: opener(name)})
	}
	return atts
}

// idsOf returns the ids of sent as Send returns them.
func idsOf(sent []telegramtest.SentMessage) []string {
	var ids []string
	for _, s := range sent {
		ids = append(ids, strconv.Itoa(s.MessageID))
	}
	return ids
}

func TestSendPhotosAndVideosAsOneAlbum(t *testing.T) {
	f := newFixture(t, testToken)
	ctx := testCtx(t)
	f.srv.SendText(alice, "hi")

	atts := append(images(2),
		bridge.Attachment{Kind: bridge.KindFile, Name: "terms.pdf", MIME: "application/pdf", Open: opener("%PDF")},
		bridge.Attachment{Kind: bridge.KindVideo, Name: "demo.mp4", MIME: "video/mp4", Open: opener("MP4")})
	ids, err := f.a.Send(ctx, bridge.Outbound{Chat: aliceChat, Text: "Your **photos** & a video", ReplyTo: "1", Attachments: atts})
	if err != nil {
		t.Fatal(err)
	}
	sent := f.srv.Sent(alice.ID)
	if len(sent) != 4 || strings.Join(ids, ",") != strings.Join(idsOf(sent), ",") {
		t.Fatalf("Send = %v, sent %+v; want the ids of all four messages", ids, sent)
	}
	group := sent[0].MediaGroupID
	for i, want := range []string{"img0.jpg", "img1.jpg", "MP4"} {
		if sent[i].Method != "sendMediaGroup" || sent[i].MediaGroupID != group || sent[i].File == nil || string(sent[i].File.Data) != want {
			t.Errorf("sent[%d] = %+v, want album item %q", i, sent[i], want)
		}
	}
	if group == "" || sent[0].Raw != "Your <b>photos</b> &amp; a video" || sent[0].Text != "Your photos & a video" ||
		sent[0].ReplyTo != 1 || sent[1].Text != "" {
		t.Errorf("caption %q (%q), reply %d; second caption %q", sent[0].Raw, sent[0].Text, sent[0].ReplyTo, sent[1].Text)
	}
	if sent[3].Method != "sendDocument" || string(sent[3].File.Data) != "%PDF" {
		t.Errorf("the document: %+v", sent[3])
	}
	if f.srv.Calls("sendmediagroup") != 1 {
		t.Errorf("%d sendMediaGroup calls, want 1", f.srv.Calls("sendmediagroup"))
	}

	// The caption is edited on the album's first item, and a delete reaches every message.
	if err := f.a.Edit(ctx, bridge.Outbound{Chat: aliceChat, Text: "new _caption_", Parts: ids, Attachments: atts}); err != nil {
		t.Fatal(err)
	}
	if err := f.a.Delete(ctx, bridge.Outbound{Chat: aliceChat, Parts: ids}); err != nil {
		t.Fatal(err)
	}
	for i, s := range f.srv.Sent(alice.ID) {
		if !s.Deleted || (i == 0 && (s.Text != "new caption" || s.Edits != 1)) {
			t.Errorf("after edit and delete, sent[%d] = %+v", i, s)
		}
	}
}

func TestSendSplitsManyImagesIntoAlbumsAndLongTextGoesFirst(t *testing.T) {
	f := newFixture(t, testToken)
	f.srv.SendText(alice, "hi")
	clock := time.Now()
	f.a.pacer.now = func() time.Time { return clock }
	long := strings.Repeat("word ", 250) // over the 1024 characters of a caption
	ids, err := f.a.Send(testCtx(t), bridge.Outbound{Chat: aliceChat, Text: long, Attachments: images(12)})
	if err != nil || len(ids) != 13 {
		t.Fatalf("Send = %v, %v; want 13 ids", ids, err)
	}
	sent := f.srv.Sent(alice.ID)
	if sent[0].Method != "sendMessage" || sent[0].Text != strings.TrimSpace(long) {
		t.Fatalf("first %+v, want the text as its own message", sent[0])
	}
	groups := map[string]int{}
	for _, s := range sent[1:] {
		if s.Method != "sendMediaGroup" || s.Text != "" {
			t.Errorf("sent %+v, want an album item without caption", s)
		}
		groups[s.MediaGroupID]++
	}
	if len(groups) != 2 || groups[sent[1].MediaGroupID] != 6 {
		t.Errorf("albums %v, want two of six", groups)
	}
	// The pacer counted every message of the albums.
	if got := f.a.pacer.reserve(alice.ID, 1); got != 13*f.a.pacer.perChat {
		t.Errorf("the next slot is %v away, want the albums' 13 messages counted", got)
	}
}

func TestSendAlbumRetryCarryingPartsDoesNotResendIt(t *testing.T) {
	f := newFixture(t, testToken)
	f.srv.SendText(alice, "hi")
	m := bridge.Outbound{Chat: aliceChat, Text: strings.Repeat("word ", 250), Attachments: images(12)}
	// The second album fails on every attempt the continuation makes.
	rt := &failOnCall{next: f.a.client.Transport, n: 3, inject: func() { f.srv.FailNext(maxContinuationAttempts, 500) }}
	f.a.client.Transport = rt
	ids, err := f.a.Send(testCtx(t), m)
	if err == nil || len(ids) != 7 {
		t.Fatalf("Send = %v, %v; want the text's and the first album's ids and an error", ids, err)
	}

	m.Parts = ids
	more, err := f.a.Send(testCtx(t), m)
	if err != nil || len(more) != 6 {
		t.Fatalf("retry = %v, %v; want the second album's six ids", more, err)
	}
	sent := f.srv.Sent(alice.ID)
	if len(sent) != 13 || strings.Join(append(ids, more...), ",") != strings.Join(idsOf(sent), ",") {
		t.Fatalf("sent %d messages, want 13 with nothing doubled", len(sent))
	}
	m.Parts = append(ids, more...)
	if again, err := f.a.Send(testCtx(t), m); err != nil || len(again) != 0 || len(f.srv.Sent(alice.ID)) != 13 {
		t.Fatalf("Send of a delivered message = %v, %v; want nothing sent", again, err)
	}
}

func TestRefusedAlbumGoesOutFileByFileAndResumesInside(t *testing.T) {
	f := newFixture(t, testToken)
	f.srv.SendText(alice, "hi")
	f.srv.RejectPhotos()
	ids, err := f.a.Send(testCtx(t), bridge.Outbound{Chat: aliceChat, Text: "three", Attachments: images(3)})
	if err != nil || len(ids) != 3 {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	sent := f.srv.Sent(alice.ID)
	for i, s := range sent {
		if s.Method != "sendDocument" || string(s.File.Data) != fmt.Sprintf("img%d.jpg", i) || (i == 0) != (s.Text == "three") {
			t.Errorf("sent[%d] = %+v, want the image as a document, the caption on the first", i, s)
		}
	}

	// A retry whose parts end inside an album (it went out file by file) sends the rest of it,
	// without the caption the first file carried.
	f2 := newFixture(t, testToken)
	f2.srv.SendText(alice, "hi")
	ids, err = f2.a.Send(testCtx(t), bridge.Outbound{Chat: aliceChat, Text: "three", Attachments: images(3), Parts: []string{"9"}})
	if err != nil || len(ids) != 2 {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	sent = f2.srv.Sent(alice.ID)
	if len(sent) != 2 || sent[0].Method != "sendMediaGroup" || string(sent[0].File.Data) != "img1.jpg" || sent[0].Text != "" {
		t.Fatalf("sent %+v, want the last two images as an album", sent)
	}
	f2.srv.Block(alice.ID)
	_, err = f2.a.Send(testCtx(t), bridge.Outbound{Chat: aliceChat, Attachments: images(2)})
	var perm *bridge.PermanentError
	if !errors.As(err, &perm) || !perm.Unreachable {
		t.Errorf("album to a blocked user = %v, want Unreachable", err)
	}
}
