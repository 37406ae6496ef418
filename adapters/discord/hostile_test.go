package discord

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/adapters/discord/discordtest"
	"github.com/onechat/onechat-bridge/bridge"
)

func TestInboundFileOverTheLimitIsRefusedByItsDeclaredSize(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	srv.AddUser(alice, "alice", "Alice")
	a := newAdapter(t, srv, "dm")
	a.maxDownload = 8
	h := start(t, srv, a, newInbox())
	sent := srv.UserSendsDM(alice, "two files", discordtest.WithAttachment("small.txt", "text/plain", []byte("tiny")),
		discordtest.WithAttachment("big.bin", "application/octet-stream", []byte(strings.Repeat("x", 20))))
	got := waitMsgs(t, h.in, 1)[0]
	if len(got.Attachments) != 1 || got.Attachments[0].Name != "small.txt" {
		t.Errorf("attachments %+v, want small.txt only", got.Attachments)
	}
	if len(got.Notes) != 1 || !strings.Contains(got.Notes[0], "big.bin (20 bytes)") {
		t.Errorf("notes %q, want one naming big.bin and its size", got.Notes)
	}
	// Opening it anyway (a ref stored before the limit was lowered) is refused before the
	// download, for good.
	ref := bridge.Attachment{Ref: attachmentRef(sent.ChannelID, sent.ID, sent.Attachments[1].ID)}
	_, err := a.OpenAttachment(context.Background(), ref)
	if !isPermanent(err) || !strings.Contains(err.Error(), "20 bytes") {
		t.Errorf("OpenAttachment of the big file = %v, want a permanent refusal naming its size", err)
	}
}

// countingSource is an agent file whose bytes are made as they are read.
type countingSource struct {
	left int
	read *atomic.Int64
}

func (s *countingSource) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), s.left)
	for i := range p[:n] {
		p[i] = 'z'
	}
	s.left -= n
	s.read.Add(int64(n))
	return n, nil
}

func (s *countingSource) Close() error { return nil }

func TestSendStreamsFilesIntoTheUpload(t *testing.T) {
	h := dmSetup(t)
	dm := h.srv.DMChannel(alice)
	var read atomic.Int64
	readAtSend := int64(-1)
	var contentLength int64
	inner := h.a.rest.client
	h.a.rest.client = &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
			readAtSend, contentLength = read.Load(), r.ContentLength
		}
		return inner.Do(r)
	})}
	const size = 3 << 20
	m := out(dm, "the log")
	m.Attachments = []bridge.Attachment{{Name: "log.txt", MIME: "text/plain", Open: func(context.Context) (io.ReadCloser, error) {
		return &countingSource{left: size, read: &read}, nil
	}}}
	if _, err := h.a.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if readAtSend != 0 || contentLength > 0 {
		t.Errorf("%d bytes of the file were read before the upload started (length %d): it was buffered, not streamed", readAtSend, contentLength)
	}
	msgs := h.srv.Messages(dm)
	if last := msgs[len(msgs)-1]; len(last.Attachments) != 1 || len(last.Attachments[0].Data) != size {
		t.Errorf("uploaded %+v", last.Attachments)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func opened(data string) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(data)), nil }
}

func TestFilesTooLargeForDiscordAreLeftOutWithANote(t *testing.T) {
	h := dmSetup(t)
	dm := h.srv.DMChannel(alice)
	ctx := context.Background()

	// Larger than the adapter's limit once read (no size was declared): the rest still goes.
	h.a.maxUpload = 10
	m := out(dm, "two files")
	m.Attachments = []bridge.Attachment{{Name: "ok.txt", Open: opened("fine")}, {Name: "huge.bin", Open: opened(strings.Repeat("x", 20))}}
	if _, err := h.a.Send(ctx, m); !slices.Equal(leftOut(err), []string{"📎 huge.bin is larger than Discord lets the bot send here; send a link instead"}) {
		t.Fatalf("Send = %v, want the message without the large file, and a note for agents", err)
	}
	msgs := h.srv.Messages(dm)
	last := msgs[len(msgs)-1]
	if len(last.Attachments) != 1 || last.Attachments[0].Filename != "ok.txt" || !strings.Contains(last.Content, "huge.bin is too large") ||
		!strings.HasPrefix(last.Content, "two files") {
		t.Errorf("message %+v", last)
	}

	// Discord's own limit (413, code 40005) is lower than the adapter's: the text goes out with
	// a note for each file.
	h.a.maxUpload = 10 << 20
	h.srv.SetUploadLimit(5)
	m = out(dm, "another")
	m.Attachments = []bridge.Attachment{{Name: "big.pdf", Open: opened(strings.Repeat("x", 20))}}
	if _, err := h.a.Send(ctx, m); !slices.Equal(leftOut(err), []string{"📎 big.pdf is larger than Discord lets the bot send here; send a link instead"}) {
		t.Fatalf("Send = %v, want the text with a note", err)
	}
	msgs = h.srv.Messages(dm)
	last = msgs[len(msgs)-1]
	if len(last.Attachments) != 0 || !strings.Contains(last.Content, "big.pdf is too large") {
		t.Errorf("message %+v", last)
	}
}

// slowSource never yields a byte: it blocks until the download is given up.
type slowSource struct{ ctx context.Context }

func (s slowSource) Read([]byte) (int, error) { <-s.ctx.Done(); return 0, s.ctx.Err() }
func (s slowSource) Close() error             { return nil }

func TestSlowDownloadIsGivenUpAfterBoundedAttempts(t *testing.T) {
	h := dmSetup(t)
	dm := h.srv.DMChannel(alice)
	h.a.fileTimeout = 20 * time.Millisecond
	m := out(dm, "the video")
	m.Attachments = []bridge.Attachment{{Name: "video.mp4", Open: func(ctx context.Context) (io.ReadCloser, error) {
		return slowSource{ctx}, nil
	}}}
	// The core retries a failed Send; each attempt is bounded and counted.
	for attempt := 1; attempt < maxFileAttempts; attempt++ {
		ids, err := h.a.Send(context.Background(), m)
		if err == nil || isPermanent(err) || len(ids) != 0 {
			t.Fatalf("attempt %d: %v, %v, want a failure worth retrying", attempt, ids, err)
		}
	}
	ids, err := h.a.Send(context.Background(), m)
	if len(ids) != 1 || !slices.Equal(leftOut(err), []string{"📎 video.mp4 was left out: its download from OneChat failed 3 times"}) {
		t.Fatalf("attempt %d: %v, %v, want the text sent without the file", maxFileAttempts, ids, err)
	}
	msgs := h.srv.Messages(dm)
	last := msgs[len(msgs)-1]
	if len(last.Attachments) != 0 || !strings.Contains(last.Content, "video.mp4 could not be sent") {
		t.Errorf("message %+v", last)
	}
}

// youngID is the id of an account made an hour before now.
func youngID(now time.Time) string {
	return strconv.FormatInt((now.Add(-time.Hour).UnixMilli()-discordEpoch)<<22|1, 10)
}

func TestYoungAccountsAreRefusedWithOneNotice(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	srv.AddUser(alice, "alice", "Alice")
	young := youngID(time.Now())
	srv.AddUser(young, "fresh", "")
	a := newAdapter(t, srv, "dm")
	a.minAge = 7 * 24 * time.Hour
	in := newInbox()
	h := start(t, srv, a, in)
	for range 3 {
		srv.UserSendsDM(young, "buy cheap followers")
	}
	srv.UserSendsDM(alice, "hello")
	// Events are handled in order: once alice's message is in, the young account's were seen.
	got := waitMsgs(t, h.in, 1)
	n := len(in.Messages())
	if n != 1 || got[0].User.ID != alice {
		t.Fatalf("stored %d messages (%+v), want alice's only", n, got)
	}
	dm := srv.DMChannel(young)
	var notices []string
	for _, m := range srv.Messages(dm) {
		if m.AuthorID == srv.BotID {
			notices = append(notices, m.Content)
		}
	}
	if len(notices) != 1 || !youngNoticeRE.MatchString(notices[0]) {
		t.Errorf("notices %q, want one saying when the account may write", notices)
	}
	if pos, _ := in.Cursor(context.Background(), cursorOwner+dm); pos != "" {
		t.Error("the young account's DM channel was recorded")
	}
}

func TestYoungAccountCannotOpenATicket(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	young := youngID(time.Now())
	srv.AddUser(young, "fresh", "")
	srv.AddTextChannel(support)
	a := newAdapter(t, srv, "support")
	a.minAge = 24 * time.Hour
	in := newInbox()
	start(t, srv, a, in)
	srv.WaitFor(t, "panel", func() bool { return len(srv.MessagesLocked(support)) == 1 })
	panel := srv.Messages(support)[0]
	iid := srv.UserPresses(young, support, panel.ID, customOpenTicket)
	srv.WaitFor(t, "refusal", func() bool { return len(srv.InteractionResponsesLocked(iid)) == 1 })
	var answer struct {
		Data struct{ Content string }
	}
	if err := json.Unmarshal(srv.InteractionResponsesLocked(iid)[0].Body, &answer); err != nil {
		t.Fatal(err)
	}
	if !youngNoticeRE.MatchString(answer.Data.Content) || len(srv.Threads(support)) != 0 {
		t.Errorf("answer %q, threads %v", answer.Data.Content, srv.Threads(support))
	}
}

func isPermanent(err error) bool {
	var p *bridge.PermanentError
	return errors.As(err, &p)
}

// leftOut returns the notes of a Send that delivered a message in part (bridge.PartialError),
// nil for any other outcome.
func leftOut(err error) []string {
	var p *bridge.PartialError
	if errors.As(err, &p) {
		return p.Notes
	}
	return nil
}

// youngNoticeRE matches the English notice to a young account, with the date it may write again.
var youngNoticeRE = regexp.MustCompile(`new Discord accounts yet\. Please write again after \d{4}-\d\d-\d\d \d\d:\d\d UTC\.$`)
