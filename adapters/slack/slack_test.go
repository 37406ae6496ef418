package slack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/onechat/onechat-bridge/adapters/slack/slacktest"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rig is an adapter running against a fake Slack.
type rig struct {
	t       *testing.T
	srv     *slacktest.Server
	host    *memHost
	a       *Adapter
	logs    *observer.ObservedLogs
	support string
	alice   string // a customer in another workspace (Slack Connect)
	bob     string // alice's colleague
	cancel  context.CancelFunc
	done    chan error
}

func newRig(t *testing.T, opts ...slacktest.Option) *rig {
	t.Helper()
	srv := slacktest.NewServer(t, opts...)
	srv.AddTeam("T0ACME", "Acme Corp", "acme")
	r := &rig{t: t, srv: srv, host: newMemHost()}
	r.alice = srv.AddUser(slacktest.User{Team: "T0ACME", Name: "alice", RealName: "Alice Smith", DisplayName: "alice"})
	r.bob = srv.AddUser(slacktest.User{Team: "T0ACME", Name: "bob", RealName: "Bob Jones"})
	r.support = srv.AddChannel("acme-support", slacktest.SharedWith("T0ACME"))
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	r.logs = logs
	a, err := New(Config{BotToken: srv.BotToken, AppToken: srv.AppToken, APIURL: srv.APIURL,
		SupportChannels: []string{r.support}}, r.host, logger)
	if err != nil {
		t.Fatal(err)
	}
	a.pacer = newPacer(time.Millisecond, 100)
	a.backoff.Base, a.backoff.Max = 10*time.Millisecond, 50*time.Millisecond
	r.a = a
	t.Cleanup(func() {
		r.stop()
		for _, e := range logs.All() {
			line := e.Message + " " + zapFields(e)
			if strings.Contains(line, srv.BotToken) || strings.Contains(line, srv.AppToken) {
				t.Errorf("a log line has a token: %s", line)
			}
		}
	})
	return r
}

func zapFields(e observer.LoggedEntry) string {
	var b strings.Builder
	for k, v := range e.ContextMap() {
		b.WriteString(k + "=" + strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", " ")) + " ")
	}
	return b.String()
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return ""
}

// start runs the adapter and waits until its socket is up and its catch-up listed.
func (r *rig) start() {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	dials := r.srv.Dials()
	go func() { r.done <- r.a.Run(ctx) }()
	r.srv.WaitDials(r.t, dials+1)
	r.srv.WaitConnections(r.t, 1)
}

func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("Run returned %v after cancel, want nil", err)
	}
	r.cancel = nil
}

func (r *rig) ref(user string) string { return "T0ACME:" + user }

func TestDirectMessageBothWays(t *testing.T) {
	r := newRig(t)
	r.start()
	dm := r.srv.DM(r.alice)
	ts := r.srv.UserSays(dm, r.alice, "Hello *there* & <https://example.com|docs>", "")
	got := r.host.waitN(t, 1)[0]
	if got.User != (bridge.UserRef{Platform: Platform, ID: r.ref(r.alice)}) || got.Chat != (bridge.ChatRef{Platform: Platform, ID: dm}) {
		t.Fatalf("user/chat = %v/%v", got.User, got.Chat)
	}
	if got.MessageID != ts || got.DisplayName != "Alice Smith" || got.Username != "alice" {
		t.Fatalf("message = %+v", got)
	}
	if got.Text != "Hello **there** & [docs](https://example.com)" {
		t.Fatalf("text = %q", got.Text)
	}
	if got.ContactAttributes["slack_workspace"] != "Acme Corp" {
		t.Fatalf("contact attributes = %v", got.ContactAttributes)
	}
	if got.User.Identifier() != "slack:T0ACME:"+r.alice {
		t.Fatalf("identifier = %s", got.User.Identifier())
	}
	ev, _ := r.srv.EventFor("message", dm, ts)
	r.srv.WaitAcked(t, ev.ID)

	ids, err := r.a.Send(context.Background(), bridge.Outbound{User: got.User, Chat: got.Chat, Text: "Hi **Alice**, see [the guide](https://example.com/a?b=1&c=2)"})
	if err != nil || len(ids) != 1 {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	m, ok := r.srv.Message(dm, ids[0])
	if !ok || m.Text != "Hi *Alice*, see <https://example.com/a?b=1&amp;c=2|the guide>" {
		t.Fatalf("posted %+v", m)
	}
	for _, k := range []string{"link_names", "parse"} {
		if m.Params.Has(k) {
			t.Errorf("chat.postMessage was sent %s", k)
		}
	}
	if m.Params.Get("unfurl_links") != "false" || m.Params.Get("unfurl_media") != "false" {
		t.Errorf("unfurls not off: %v", m.Params)
	}
	// The bot's own post came back as an event: it is not delivered.
	r.srv.WaitSettled(t)
	if n := len(r.host.messages()); n != 1 {
		t.Fatalf("%d messages delivered, want 1 (the bot's echo is dropped)", n)
	}
}

func TestSupportChannelTicketRepliesAndColleague(t *testing.T) {
	r := newRig(t)
	r.start()
	top := r.srv.UserSays(r.support, r.alice, "My printer is on fire", "")
	first := r.host.waitN(t, 1)[0]
	chat := bridge.ChatRef{Platform: Platform, ID: r.support + ":" + top}
	if first.Chat != chat || first.User.ID != r.ref(r.alice) {
		t.Fatalf("ticket = %+v", first)
	}
	r.srv.WaitFor(t, "the ticket's reaction", func() bool { return len(r.srv.Reactions(r.support, top)) > 0 })
	if rs := r.srv.Reactions(r.support, top); rs[0].Name != ticketReaction {
		t.Fatalf("reactions = %+v", rs)
	}

	reply := r.srv.UserSays(r.support, r.alice, "Still burning", top)
	broadcast := r.srv.UserSays(r.support, r.alice, "Hello everyone", top, slacktest.Broadcast())
	colleague := r.srv.UserSays(r.support, r.bob, "I can confirm, *flames*", top)
	msgs := r.host.waitN(t, 4)
	for i, want := range []string{reply, broadcast, colleague} {
		m := msgs[i+1]
		if m.Chat != chat || m.MessageID != want || m.User.ID != r.ref(r.alice) {
			t.Fatalf("message %d = %+v, want %s in %v from alice's ticket", i+1, m, want, chat)
		}
	}
	col := msgs[3]
	if col.Text != "**Bob Jones** (colleague of the requester) wrote:\nI can confirm, **flames**" {
		t.Fatalf("colleague's text = %q", col.Text)
	}
	if col.DisplayName != "" || col.Username != "" || col.ContactAttributes != nil {
		t.Fatalf("a colleague's message renames the owner: %+v", col)
	}

	// An agent reply goes into the thread.
	ids, err := r.a.Send(context.Background(), bridge.Outbound{User: first.User, Chat: chat, Text: "We are on it"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := r.srv.Message(r.support, ids[0])
	if m.ThreadTS != top || m.Params.Get("reply_broadcast") != "" {
		t.Fatalf("reply posted as %+v", m)
	}

	// A second top-level message opens a second ticket.
	top2 := r.srv.UserSays(r.support, r.alice, "Now the scanner too", "")
	last := r.host.waitN(t, 5)[4]
	if last.Chat.ID != r.support+":"+top2 {
		t.Fatalf("second ticket chat = %v", last.Chat)
	}
}

func TestTicketAcknowledgedByReply(t *testing.T) {
	r := newRig(t)
	r.a.ticketAck = AckReply
	r.start()
	top := r.srv.UserSays(r.support, r.alice, "help", "")
	r.host.waitN(t, 1)
	r.srv.WaitFor(t, "the ticket's reply", func() bool { return len(r.srv.ThreadReplies(r.support, top)) == 1 })
	if rep := r.srv.ThreadReplies(r.support, top)[0]; rep.User != slacktest.BotUserID || rep.Text != texts.Builtin().Text("", texts.TicketAck, nil) {
		t.Fatalf("reply = %+v", rep)
	}
	r.srv.WaitSettled(t)
	if n := len(r.host.messages()); n != 1 {
		t.Fatalf("%d messages delivered; the bot's acknowledgement must not be one", n)
	}
}

func TestRedeliveredEnvelopeIsNotDoubled(t *testing.T) {
	r := newRig(t)
	r.start()
	dm := r.srv.DM(r.alice)
	ts := r.srv.UserSays(dm, r.alice, "once", "")
	r.host.waitN(t, 1)
	ev, _ := r.srv.EventFor("message", dm, ts)
	r.srv.WaitAcked(t, ev.ID)
	r.srv.Redeliver(ev.ID)
	r.srv.WaitAcked(t, ev.ID)
	r.srv.UserSays(dm, r.alice, "twice", "")
	msgs := r.host.waitN(t, 2)
	if len(msgs) != 2 || msgs[0].Text != "once" || msgs[1].Text != "twice" {
		t.Fatalf("messages = %+v", msgs)
	}
}

func TestDeliverFailureLeavesEnvelopeUnacked(t *testing.T) {
	r := newRig(t, slacktest.WithAckTimeout(300*time.Millisecond))
	r.start()
	r.host.mu.Lock()
	r.host.fail = 1
	r.host.mu.Unlock()
	dm := r.srv.DM(r.alice)
	ts := r.srv.UserSays(dm, r.alice, "important", "")
	ev, _ := r.srv.EventFor("message", dm, ts)
	ev = r.srv.WaitAcked(t, ev.ID)
	if len(ev.Deliveries) < 2 || ev.Deliveries[0].Acked {
		t.Fatalf("deliveries = %+v: the failed one must not be acked", ev.Deliveries)
	}
	if msgs := r.host.waitN(t, 1); len(msgs) != 1 || msgs[0].Text != "important" {
		t.Fatalf("messages = %+v", msgs)
	}
}

func TestCatchUpAfterDisconnectDeliversOnceInOrder(t *testing.T) {
	for _, drop := range []string{"disconnect", "dropped"} {
		t.Run(drop, func(t *testing.T) {
			r := newRig(t, slacktest.WithHistoryPageMax(2))
			r.start()
			dm := r.srv.DM(r.alice)
			r.srv.UserSays(dm, r.alice, "dm 1", "")
			top := r.srv.UserSays(r.support, r.alice, "ticket", "")
			r.srv.UserSays(r.support, r.alice, "reply 1", top)
			r.host.waitN(t, 3)
			r.srv.WaitSettled(t)

			// The bridge goes away; meanwhile people write, and Slack gives up on some
			// events (Away: only history has them).
			r.srv.SetQueueWhileDisconnected(true)
			dials := r.srv.Dials()
			release := r.srv.HoldSockets()
			if drop == "disconnect" {
				r.srv.SendDisconnect("refresh_requested")
			} else {
				r.srv.DropSockets()
			}
			r.srv.UserSays(dm, r.alice, "dm 2", "", slacktest.Away())
			r.srv.UserSays(dm, r.alice, "dm 3", "", slacktest.Away())
			r.srv.UserSays(dm, r.alice, "dm 4", "")
			r.srv.UserSays(dm, r.alice, "dm 5", "", slacktest.Away())
			r.srv.UserSays(r.support, r.alice, "reply 2", top, slacktest.Away())
			r.srv.UserSays(r.support, r.bob, "reply 3", top)
			r.srv.UserSays(r.support, r.alice, "reply 4", top, slacktest.Away())
			top2 := r.srv.UserSays(r.support, r.alice, "ticket 2", "", slacktest.Away())
			r.srv.UserSays(r.support, r.alice, "ticket 2 reply", top2, slacktest.Away())
			release()
			r.srv.WaitDials(t, dials+1)

			msgs := r.host.waitN(t, 12)
			r.srv.WaitSettled(t)
			var dms, thread []string
			for _, m := range r.host.messages() {
				switch m.Chat.ID {
				case dm:
					dms = append(dms, m.Text)
				case r.support + ":" + top:
					thread = append(thread, m.Text)
				}
			}
			if strings.Join(dms, "|") != "dm 1|dm 2|dm 3|dm 4|dm 5" {
				t.Errorf("dm = %q", dms)
			}
			if strings.Join(thread, "|") != "ticket|reply 1|reply 2|**Bob Jones** (colleague of the requester) wrote:\nreply 3|reply 4" {
				t.Errorf("thread = %q", thread)
			}
			if len(msgs) != 12 {
				t.Errorf("%d messages, want 12: %+v", len(msgs), msgs)
			}
			last := msgs[len(msgs)-1]
			if got := r.host.messages(); len(got) != 12 {
				t.Errorf("%d messages after settling, want 12", len(got))
			}
			_ = last
			// The new ticket was opened and acknowledged, its reply caught up too.
			r.srv.WaitFor(t, "ticket 2's reaction", func() bool { return len(r.srv.Reactions(r.support, top2)) > 0 })
			var t2 []string
			for _, m := range r.host.messages() {
				if m.Chat.ID == r.support+":"+top2 {
					t2 = append(t2, m.Text)
				}
			}
			if strings.Join(t2, "|") != "ticket 2|ticket 2 reply" {
				t.Errorf("ticket 2 = %q", t2)
			}
		})
	}
}

func TestEditsAndDeletesBothWays(t *testing.T) {
	r := newRig(t)
	r.start()
	dm := r.srv.DM(r.alice)
	ts := r.srv.UserSays(dm, r.alice, "see https://example.com", "")
	r.host.waitN(t, 1)
	r.srv.Unfurl(dm, ts, "https://example.com")
	r.srv.UserEdits(dm, ts, "see https://example.org")
	edit := r.host.waitN(t, 2)[1]
	if edit.EditOf != ts || edit.Text != "see https://example.org" || edit.MessageID == ts {
		t.Fatalf("edit = %+v", edit)
	}
	r.srv.UserDeletes(dm, ts)
	del := r.host.waitN(t, 3)[2]
	if del.DeletedOf != ts || del.User.ID != r.ref(r.alice) {
		t.Fatalf("delete = %+v", del)
	}
	r.srv.WaitSettled(t)
	if n := len(r.host.messages()); n != 3 {
		t.Fatalf("%d messages: the unfurl must not be an edit", n)
	}

	// Agent side: a long message in parts, edited shorter, then deleted.
	ctx := context.Background()
	out := bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: dm}, Text: strings.Repeat("word ", 1000)}
	ids, err := r.a.Send(ctx, out)
	if err != nil || len(ids) != 2 {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	out.Parts, out.Text = ids, "short now"
	if err := r.a.Edit(ctx, out); err != nil {
		t.Fatal(err)
	}
	if m, _ := r.srv.Message(dm, ids[0]); m.Text != "short now" || m.Edited == nil {
		t.Fatalf("first part after edit = %+v", m)
	}
	if m, _ := r.srv.Message(dm, ids[1]); !m.Deleted {
		t.Fatalf("second part not deleted after a shorter edit")
	}
	if err := r.a.Delete(ctx, out); err != nil {
		t.Fatal(err)
	}
	if m, _ := r.srv.Message(dm, ids[0]); !m.Deleted {
		t.Fatalf("first part not deleted")
	}
}

func TestButtons(t *testing.T) {
	r := newRig(t)
	r.start()
	dm := r.srv.DM(r.alice)
	chat := bridge.ChatRef{Platform: Platform, ID: dm}
	ctx := context.Background()
	ids, err := r.a.Send(ctx, bridge.Outbound{Chat: chat, Text: "Which one?", ContentType: "input_select",
		Items: []bridge.Item{{Title: "Red", Value: "red"}, {Title: "Blue", Value: "blue"}}})
	if err != nil || len(ids) != 1 {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	m, _ := r.srv.Message(dm, ids[0])
	if m.Text != "Which one?" || !bytes.Contains(m.Blocks, []byte(`"Blue"`)) {
		t.Fatalf("posted %+v / %s", m, m.Blocks)
	}
	id := r.srv.UserPresses(r.alice, dm, ids[0], choiceActionPrefix+"1", "")
	got := r.host.waitN(t, 1)[0]
	if got.Choice == nil || got.Choice.MessageID != ids[0] || got.Choice.Value != "blue" || got.Choice.Title != "Blue" || got.User.ID != r.ref(r.alice) {
		t.Fatalf("choice = %+v", got)
	}
	r.srv.WaitAcked(t, id)
	r.srv.WaitFor(t, "the message to show the choice", func() bool {
		m, _ := r.srv.Message(dm, ids[0])
		return m.Updates > 0
	})
	m, _ = r.srv.Message(dm, ids[0])
	if !strings.Contains(m.Text, "Blue") || bytes.Contains(m.Blocks, []byte(choiceActionPrefix)) {
		t.Fatalf("after the press: %q %s", m.Text, m.Blocks)
	}

	ids, err = r.a.Send(ctx, bridge.Outbound{Chat: chat, ContentType: "input_csat"})
	if err != nil {
		t.Fatal(err)
	}
	r.srv.UserPresses(r.alice, dm, ids[0], choiceActionPrefix+"5", "")
	got = r.host.waitN(t, 2)[1]
	if got.Choice == nil || got.Choice.Value != "5" {
		t.Fatalf("csat = %+v", got)
	}
}

func TestFilesBothWays(t *testing.T) {
	r := newRig(t)
	r.start()
	dm := r.srv.DM(r.alice)
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	r.srv.UserSays(dm, r.alice, "here is the log", "", slacktest.WithFile("log.txt", "text/plain", data))
	got := r.host.waitN(t, 1)[0]
	if len(got.Attachments) != 1 || got.Attachments[0].Name != "log.txt" || got.Attachments[0].Size != int64(len(data)) {
		t.Fatalf("attachments = %+v", got.Attachments)
	}
	ctx := context.Background()
	rc, err := r.a.OpenAttachment(ctx, got.Attachments[0])
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("downloaded %d bytes, %v", len(back), err)
	}
	// A link elsewhere is never opened with the token.
	bad := got.Attachments[0]
	bad.Ref = "F1 https://evil.example.com/steal"
	var perm *bridge.PermanentError
	if _, err := r.a.OpenAttachment(ctx, bad); !errors.As(err, &perm) {
		t.Fatalf("foreign link: %v", err)
	}
	// A file Slack refuses (the sign-in redirect) is a permanent error naming the size.
	gone := got.Attachments[0]
	gone.Ref = "F404 " + r.srv.URL + "/files-pri/" + slacktest.TeamID + "-F404/download/x.txt"
	r.a.botToken = "xoxb-wrong"
	_, err = r.a.OpenAttachment(ctx, gone)
	r.a.botToken = r.srv.BotToken
	if !errors.As(err, &perm) || !strings.Contains(perm.Reason, "MB") {
		t.Fatalf("refused file: %v", err)
	}

	// Agent files: one of known size streams, one of unknown size is spooled.
	open := func(b []byte) func(context.Context) (io.ReadCloser, error) {
		return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	ids, err := r.a.Send(ctx, bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: dm}, Text: "two files",
		Attachments: []bridge.Attachment{
			{Name: "a.bin", Size: int64(len(data)), Open: open(data)},
			{Name: "b.txt", Open: open([]byte("hello"))},
		}})
	if err != nil || len(ids) != 3 || !strings.HasPrefix(ids[1], "file:") {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	var files []slacktest.File
	for _, m := range r.srv.Messages(dm) {
		if m.User == slacktest.BotUserID {
			files = append(files, m.Files...)
		}
	}
	if len(files) != 2 || !bytes.Equal(files[0].Data, data) || string(files[1].Data) != "hello" {
		t.Fatalf("uploaded %d files", len(files))
	}
	r.srv.WaitSettled(t)
	if n := len(r.host.messages()); n != 1 {
		t.Fatalf("%d messages: the bot's file shares must not come back", n)
	}

	// A file the workspace refuses becomes a note in the chat, and agents learn it was left out.
	r.srv.Inject("files.getUploadURLExternal", slacktest.Fault{Error: "file_uploads_disabled", Times: 1})
	ids, err = r.a.Send(ctx, bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: dm}, Text: "the report",
		Attachments: []bridge.Attachment{{Name: "report.pdf", Size: 5, Open: open([]byte("hello"))}}})
	var partial *bridge.PartialError
	if len(ids) != 2 || !errors.As(err, &partial) ||
		strings.Join(partial.Notes, "|") != "📎 report.pdf could not be sent: this Slack workspace does not accept it" {
		t.Fatalf("Send = %v, %v; want the text and a note, delivered in part", ids, err)
	}
}

func TestLongTextSplitAndContinued(t *testing.T) {
	r := newRig(t)
	r.start()
	dm := r.srv.DM(r.alice)
	ctx := context.Background()
	link := "<https://example.com/x|" + strings.Repeat("y", 50) + ">"
	text := strings.Repeat("a ", 1400) + "[" + strings.Repeat("y", 50) + "](https://example.com/x) " + strings.Repeat("b ", 2000)
	out := bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: dm}, Text: text}
	r.srv.FailWith("chat.postMessage", "internal_error", 0)
	r.srv.ClearFaults("")
	r.srv.Inject("chat.postMessage", slacktest.Fault{Status: 503, Times: 1})
	ids, err := r.a.Send(ctx, out)
	if err == nil || len(ids) != 0 {
		t.Fatalf("first Send = %v, %v; want a retryable failure", ids, err)
	}
	var perm *bridge.PermanentError
	if errors.As(err, &perm) {
		t.Fatalf("503 is permanent: %v", err)
	}
	ids, err = r.a.Send(ctx, out)
	if err != nil || len(ids) < 2 {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	var joined string
	for _, id := range ids {
		m, _ := r.srv.Message(dm, id)
		if n := len([]rune(m.Text)); n > maxPartLen {
			t.Fatalf("part of %d characters", n)
		}
		joined += m.Text + " "
	}
	if !strings.Contains(joined, link) {
		t.Fatalf("the link was cut")
	}
	// A retry carrying the first part sends only the rest.
	before := len(r.srv.BotPosts())
	out.Parts = ids[:1]
	rest, err := r.a.Send(ctx, out)
	if err != nil || len(rest) != len(ids)-1 || len(r.srv.BotPosts()) != before+len(ids)-1 {
		t.Fatalf("continuation = %v, %v", rest, err)
	}
}

func TestAgentTextNeverPings(t *testing.T) {
	r := newRig(t)
	r.start()
	dm := r.srv.DM(r.alice)
	ids, err := r.a.Send(context.Background(), bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: dm},
		Text: "<!channel> @here <!everyone> <@U0BOT0001> @everyone"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := r.srv.Message(dm, ids[0])
	for _, bad := range []string{"<!", "<@", "@here", "@everyone"} {
		if strings.Contains(m.Text, bad) {
			t.Fatalf("posted %q contains %q", m.Text, bad)
		}
	}
}

func TestErrorsAreClassified(t *testing.T) {
	r := newRig(t)
	r.start()
	dm := r.srv.DM(r.alice)
	ctx := context.Background()
	out := bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: dm}, Text: "hi"}
	check := func(name string, inject func(), want func(error) bool) {
		t.Helper()
		r.srv.ClearFaults("")
		inject()
		_, err := r.a.Send(ctx, out)
		if !want(err) {
			t.Errorf("%s: error %v", name, err)
		}
		if err != nil && (strings.Contains(err.Error(), r.srv.BotToken) || strings.Contains(err.Error(), r.srv.AppToken)) {
			t.Errorf("%s: error has a token: %v", name, err)
		}
	}
	check("429", func() { r.srv.RateLimit("chat.postMessage", 7*time.Second, 1) }, func(err error) bool {
		var rl *bridge.RateLimitedError
		return errors.As(err, &rl) && rl.RetryAfter == 7*time.Second
	})
	for _, code := range []string{"not_in_channel", "channel_not_found", "is_archived", "account_inactive", "user_not_found"} {
		check(code, func() { r.srv.FailWith("chat.postMessage", code, 1) }, func(err error) bool {
			var perm *bridge.PermanentError
			return errors.As(err, &perm) && perm.Unreachable && perm.Reason != ""
		})
	}
	check("invalid_blocks", func() { r.srv.FailWith("chat.postMessage", "invalid_blocks", 1) }, func(err error) bool {
		var perm *bridge.PermanentError
		return errors.As(err, &perm) && !perm.Unreachable
	})
	for _, inject := range []func(){
		func() { r.srv.Inject("chat.postMessage", slacktest.Fault{Status: 500, Times: 1}) },
		func() { r.srv.FailWith("chat.postMessage", "internal_error", 1) },
	} {
		check("transient", inject, func(err error) bool {
			var perm *bridge.PermanentError
			var rl *bridge.RateLimitedError
			return err != nil && !errors.As(err, &perm) && !errors.As(err, &rl)
		})
	}
	if _, err := r.a.Send(ctx, bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: "nonsense"}, Text: "x"}); err == nil {
		t.Error("a chat that is not Slack's is accepted")
	}
}

func TestWrongTokensFailRunAndCheck(t *testing.T) {
	srv := slacktest.NewServer(t)
	core, logs := observer.New(zapcore.DebugLevel)
	a, err := New(Config{BotToken: "xoxb-wrong-secret", AppToken: srv.AppToken, APIURL: srv.APIURL}, newMemHost(), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(context.Background())
	if err == nil || strings.Contains(err.Error(), "xoxb-wrong-secret") {
		t.Fatalf("Run = %v", err)
	}
	_, err = a.Check(context.Background())
	var hint *bridge.HintError
	if !errors.As(err, &hint) || strings.Contains(err.Error(), "xoxb-wrong-secret") || !strings.Contains(hint.Hint, "SLACK_BOT_TOKEN") {
		t.Fatalf("Check = %v", err)
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message+zapFields(e), "xoxb-wrong-secret") {
			t.Fatalf("log line with the token: %v", e)
		}
	}
	good, _ := New(Config{BotToken: srv.BotToken, AppToken: srv.AppToken, APIURL: srv.APIURL}, newMemHost(), nil)
	if desc, err := good.Check(context.Background()); err != nil || !strings.Contains(desc, "onechat") {
		t.Fatalf("Check = %q, %v", desc, err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{BotToken: "xoxb-1", AppToken: "xapp-1", SupportChannels: []string{"C123"}}
	if err := ok.Validate(); err != nil || !ok.Enabled() {
		t.Fatalf("valid config: %v", err)
	}
	bad := Config{BotToken: "xapp-secret1", AppToken: "xoxb-secret2", APIURL: "ftp://x", SupportChannels: []string{"general"}, TicketAck: "loud"}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, v := range []string{"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_API_URL", "SLACK_SUPPORT_CHANNELS", "SLACK_TICKET_ACK"} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("no error names %s: %v", v, err)
		}
	}
	if strings.Contains(err.Error(), "secret") || strings.Contains(bad.String(), "secret") {
		t.Errorf("a token is printed: %v / %s", err, bad)
	}
	if (&Config{}).Enabled() {
		t.Error("an empty config is enabled")
	}
}

func TestPostsArePacedBeforeSlackRefuses(t *testing.T) {
	r := newRig(t, slacktest.WithPostRateLimit(1, 3))
	r.a.pacer = newPacer(postInterval, 3)
	r.start()
	dm := r.srv.DM(r.alice)
	for i := range 6 {
		if _, err := r.a.Send(context.Background(), bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: dm}, Text: "message " + strconv.Itoa(i)}); err != nil {
			t.Fatalf("message %d: %v (the pacer let Slack refuse it)", i, err)
		}
	}
}

func TestUnparsableEnvelopeIsAcknowledgedAndHealth(t *testing.T) {
	r := newRig(t)
	r.start()
	id := r.srv.EmitEvent(map[string]any{"type": "no_such_event_type_slack_go_knows", "channel": r.support})
	r.srv.WaitAcked(t, id)
	if err := r.a.Health(); err != nil {
		t.Fatalf("Health = %v while connected", err)
	}
	r.stop()
	if r.a.Health() == nil {
		t.Fatal("Health = nil after Run stopped")
	}
}

func TestFailedStoreInAThreadKeepsOrder(t *testing.T) {
	r := newRig(t, slacktest.WithAckTimeout(300*time.Millisecond))
	r.start()
	top := r.srv.UserSays(r.support, r.alice, "ticket", "")
	r.host.waitN(t, 1)
	r.host.mu.Lock()
	r.host.fail = 1
	r.host.mu.Unlock()
	r.srv.UserSays(r.support, r.alice, "first reply, whose store fails", top)
	r.srv.UserSays(r.support, r.bob, "second reply", top)
	msgs := r.host.waitN(t, 3)
	if msgs[1].Text != "first reply, whose store fails" || !strings.HasSuffix(msgs[2].Text, "second reply") {
		t.Fatalf("thread = %q, %q", msgs[1].Text, msgs[2].Text)
	}
	// The colleague edits their reply: the edit goes to the owner's conversation, named.
	second := msgs[2].MessageID
	r.srv.UserEdits(r.support, second, "second reply, edited")
	edit := r.host.waitN(t, 4)[3]
	if edit.EditOf != second || edit.User.ID != r.ref(r.alice) || !strings.Contains(edit.Text, "**Bob Jones**") {
		t.Fatalf("colleague's edit = %+v", edit)
	}
	r.srv.WaitSettled(t)
	if n := len(r.host.messages()); n != 4 {
		t.Fatalf("%d messages, want 4", n)
	}
}

func TestTicketsAreAnsweredInTheUsersSlackLanguage(t *testing.T) {
	r := newRig(t)
	r.a.ticketAck = AckReply
	carlos := r.srv.AddUser(slacktest.User{Team: "T0ACME", Name: "carlos", RealName: "Carlos Ruiz", Locale: "es-ES"})
	r.start()
	top := r.srv.UserSays(r.support, carlos, "ayuda", "")
	first := r.host.waitN(t, 1)[0]
	if first.Language != "es-ES" {
		t.Fatalf("message language %q, want the Slack locale es-ES", first.Language)
	}
	r.srv.WaitFor(t, "the ticket's reply", func() bool { return len(r.srv.ThreadReplies(r.support, top)) == 1 })
	cat := texts.Builtin()
	if rep := r.srv.ThreadReplies(r.support, top)[0]; rep.Text != cat.Text("es", texts.TicketAck, nil) {
		t.Fatalf("reply %q, want Spanish", rep.Text)
	}
	// A colleague's message in the thread carries no language: it is not the owner's.
	r.srv.UserSays(r.support, r.bob, "same here", top)
	if col := r.host.waitN(t, 2)[1]; col.Language != "" {
		t.Errorf("colleague's message carries language %q", col.Language)
	}
	// A survey without text asks in the language the core remembers for the owner.
	ids, err := r.a.Send(context.Background(), bridge.Outbound{User: first.User, Chat: first.Chat, ContentType: "input_csat"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := r.srv.Message(r.support, ids[0])
	if m.Text != cat.Text("es", texts.CSATPrompt, nil) {
		t.Errorf("survey text %q, want Spanish", m.Text)
	}
}

// TestNotesSpeakTheAgentLanguage: what the adapter writes for agents (the line that names a
// colleague writing in someone's ticket, a file it cannot take from Slack, a file the workspace
// refuses) is in BRIDGE_AGENT_LANGUAGE; the line in the file's place is in the user's.
func TestNotesSpeakTheAgentLanguage(t *testing.T) {
	r := newRig(t)
	cat, err := texts.New(texts.Options{AgentLanguage: "es"})
	if err != nil {
		t.Fatal(err)
	}
	r.host.texts = cat
	r.start()
	top := r.srv.UserSays(r.support, r.alice, "My printer is on fire", "")
	r.srv.UserSays(r.support, r.bob, "I can confirm", top)
	msgs := r.host.waitN(t, 2)
	if want := "**Bob Jones** (compañero de quien hizo la solicitud) escribió:\nI can confirm"; msgs[1].Text != want {
		t.Errorf("colleague's text = %q, want %q", msgs[1].Text, want)
	}

	r.srv.Inject("files.getUploadURLExternal", slacktest.Fault{Error: "file_uploads_disabled", Times: 1})
	dm := r.srv.DM(r.alice)
	ids, err := r.a.Send(context.Background(), bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: dm}, Text: "the report",
		Attachments: []bridge.Attachment{{Name: "report.pdf", Size: 5, Open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader("hello")), nil
		}}}})
	var partial *bridge.PartialError
	if len(ids) != 2 || !errors.As(err, &partial) ||
		strings.Join(partial.Notes, "|") != "📎 No se pudo enviar report.pdf: este espacio de trabajo de Slack no lo acepta" {
		t.Fatalf("Send = %v, %v; want the Spanish note for agents", ids, err)
	}
	if m, _ := r.srv.Message(dm, ids[1]); m.Text != "📎 report.pdf could not be sent: this Slack workspace does not accept it" {
		t.Errorf("the user read %q, want the line in their (default, English) language", m.Text)
	}

	// A file the bot cannot download (an external one) is named to agents in their language.
	_, note := attachmentOf(slackgo.File{ID: "F0123ABC", Name: "plan.pdf", Size: 2_500_000, IsExternal: true}, cat)
	if want := "📎 No se pudo transferir plan.pdf (2.5 MB) desde Slack"; note != want {
		t.Errorf("note %q, want %q", note, want)
	}
}
