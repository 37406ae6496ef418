package slacktest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/goleak"

	"github.com/onechat/onechat-bridge/adapters/slack/slacktest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func client(srv *slacktest.Server, token string) *slack.Client {
	return slack.New(token, slack.OptionAPIURL(srv.APIURL), slack.OptionAppLevelToken(srv.AppToken))
}

func slackErr(t *testing.T, err error, want string) {
	t.Helper()
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != want {
		t.Fatalf("error = %v, want Slack error %s", err, want)
	}
}

func TestAuthTestAndTokens(t *testing.T) {
	srv := slacktest.NewServer(t)
	ctx := context.Background()
	res, err := client(srv, srv.BotToken).AuthTestContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.UserID != slacktest.BotUserID || res.BotID != slacktest.BotID || res.TeamID != slacktest.TeamID ||
		res.URL != "https://fakeworkspace.slack.com/" {
		t.Fatalf("auth.test = %+v", res)
	}

	_, err = client(srv, "xoxb-wrong-token").AuthTestContext(ctx)
	slackErr(t, err, "invalid_auth")
	if strings.Contains(err.Error(), "xoxb-wrong-token") {
		t.Fatalf("the error %q echoes the token", err)
	}
	_, err = client(srv, srv.AppToken).AuthTestContext(ctx)
	slackErr(t, err, "not_allowed_token_type")
	botAsApp := slack.New(srv.BotToken, slack.OptionAPIURL(srv.APIURL), slack.OptionAppLevelToken(srv.BotToken))
	_, _, err = botAsApp.StartSocketModeContext(ctx)
	slackErr(t, err, "not_allowed_token_type") // the bot token in the app token's place
	for _, c := range srv.Calls("") {
		for k, vs := range c.Params {
			for _, v := range vs {
				if strings.Contains(v, "xox") || strings.Contains(v, "xapp") {
					t.Fatalf("call %s kept the token in %s", c.Method, k)
				}
			}
		}
	}
}

func TestPostUpdateDelete(t *testing.T) {
	srv := slacktest.NewServer(t)
	api := client(srv, srv.BotToken)
	ctx := context.Background()
	ch := srv.AddChannel("support")
	alice := srv.AddUser(slacktest.User{Name: "alice", RealName: "Alice A"})
	parent := srv.UserSays(ch, alice, "help", "")

	blocks := slack.NewActionBlock("b1", slack.NewButtonBlockElement("close", "T-1",
		slack.NewTextBlockObject(slack.PlainTextType, "Close", false, false)))
	gotCh, ts1, err := api.PostMessageContext(ctx, ch, slack.MsgOptionText("hello", false),
		slack.MsgOptionBlocks(blocks), slack.MsgOptionTS(parent), slack.MsgOptionDisableLinkUnfurl())
	if err != nil || gotCh != ch {
		t.Fatalf("post: %s %v", gotCh, err)
	}
	_, ts2, err := api.PostMessageContext(ctx, ch, slack.MsgOptionText("second", false), slack.MsgOptionTS(parent))
	if err != nil {
		t.Fatal(err)
	}
	if ts2 <= ts1 || len(ts1) != len("1712345678.000200") {
		t.Fatalf("timestamps %q then %q are not increasing Slack timestamps", ts1, ts2)
	}
	posts := srv.BotPosts()
	if len(posts) != 2 || posts[0].Text != "hello" || posts[0].ThreadTS != parent || len(posts[0].Blocks) == 0 {
		t.Fatalf("bot posts = %+v", posts)
	}
	if p := posts[0].Params; p.Has("parse") || p.Has("link_names") || p.Get("unfurl_links") != "false" {
		t.Fatalf("post params = %v", p)
	}
	if r := srv.ThreadReplies(ch, parent); len(r) != 2 {
		t.Fatalf("thread replies = %d, want 2", len(r))
	}

	if _, _, _, err := api.UpdateMessageContext(ctx, ch, ts1, slack.MsgOptionText("hello again", false)); err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Message(ch, ts1)
	if m.Text != "hello again" || m.Edited == nil || len(m.Blocks) != 0 || m.Updates != 1 {
		t.Fatalf("updated message = %+v", m)
	}
	_, _, _, err = api.UpdateMessageContext(ctx, ch, parent, slack.MsgOptionText("x", false))
	slackErr(t, err, "cant_update_message")
	_, _, err = api.DeleteMessageContext(ctx, ch, parent)
	slackErr(t, err, "cant_delete_message")
	if _, _, err := api.DeleteMessageContext(ctx, ch, ts2); err != nil {
		t.Fatal(err)
	}
	_, _, err = api.DeleteMessageContext(ctx, ch, ts2)
	slackErr(t, err, "message_not_found")
	if m, _ := srv.Message(ch, ts2); !m.Deleted {
		t.Fatal("deleted message not marked")
	}

	_, _, err = api.PostMessageContext(ctx, ch, slack.MsgOptionText(strings.Repeat("x", 40001), false))
	slackErr(t, err, "msg_too_long")
	_, _, err = api.PostMessageContext(ctx, "C404", slack.MsgOptionText("x", false))
	slackErr(t, err, "channel_not_found")
	srv.RemoveBot(ch)
	_, _, err = api.PostMessageContext(ctx, ch, slack.MsgOptionText("x", false))
	slackErr(t, err, "not_in_channel")
	srv.ArchiveChannel(ch)
	_, _, err = api.PostMessageContext(ctx, ch, slack.MsgOptionText("x", false))
	slackErr(t, err, "is_archived")

	// Posting to a user ID lands in the bot's DM with the user.
	dmCh, _, err := api.PostMessageContext(ctx, alice, slack.MsgOptionText("dm", false))
	if err != nil || dmCh != srv.DM(alice) || !strings.HasPrefix(dmCh, "D") {
		t.Fatalf("post to user: %s %v", dmCh, err)
	}
}

func TestReactions(t *testing.T) {
	srv := slacktest.NewServer(t)
	api := client(srv, srv.BotToken)
	ch := srv.AddChannel("support")
	u := srv.AddUser(slacktest.User{Name: "bob"})
	ts := srv.UserSays(ch, u, "hi", "")
	ref := slack.NewRefToMessage(ch, ts)
	if err := api.AddReactionContext(context.Background(), "eyes", ref); err != nil {
		t.Fatal(err)
	}
	slackErr(t, api.AddReactionContext(context.Background(), "eyes", ref), "already_reacted")
	if r := srv.Reactions(ch, ts); len(r) != 1 || r[0].Name != "eyes" || r[0].Users[0] != slacktest.BotUserID {
		t.Fatalf("reactions = %+v", r)
	}
}

func TestHistoryAndRepliesPagination(t *testing.T) {
	srv := slacktest.NewServer(t)
	api := client(srv, srv.BotToken)
	ctx := context.Background()
	ch := srv.AddChannel("support", slacktest.Private())
	u := srv.AddUser(slacktest.User{Name: "carol"})
	var top []string
	for i := range 7 {
		top = append(top, srv.UserSays(ch, u, fmt.Sprint("m", i), ""))
	}
	var replies []string
	for i := range 5 {
		replies = append(replies, srv.UserSays(ch, u, fmt.Sprint("r", i), top[2]))
	}

	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		res, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: ch, Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			got = append(got, m.Timestamp)
		}
		if !res.HasMore {
			if pages != 2 {
				t.Fatalf("%d pages, want 3", pages+1)
			}
			break
		}
		cursor = res.ResponseMetaData.NextCursor
	}
	if want := reversed(top); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history = %v, want %v (newest first, no replies)", got, want)
	}

	res, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: ch, Oldest: top[2], Latest: top[5]})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(timestamps(res.Messages)) != fmt.Sprint([]string{top[4], top[3]}) {
		t.Fatalf("exclusive window = %v", timestamps(res.Messages))
	}
	res, _ = api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: ch, Oldest: top[2], Latest: top[5], Inclusive: true})
	if fmt.Sprint(timestamps(res.Messages)) != fmt.Sprint([]string{top[5], top[4], top[3], top[2]}) {
		t.Fatalf("inclusive window = %v", timestamps(res.Messages))
	}
	if m := res.Messages[3]; m.ReplyCount != 5 || m.ThreadTimestamp != top[2] || m.LatestReply != replies[4] {
		t.Fatalf("thread parent in history = %+v", m.Msg)
	}

	got = nil
	cursor = ""
	for {
		msgs, more, next, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
			ChannelID: ch, Timestamp: replies[1], Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, timestamps(msgs)...)
		if !more {
			break
		}
		cursor = next
	}
	if want := append([]string{top[2]}, replies...); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replies = %v, want %v (parent, then oldest first)", got, want)
	}
	msgs, _, _, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
		ChannelID: ch, Timestamp: top[2], Oldest: replies[2]})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{top[2], replies[3], replies[4]}; fmt.Sprint(timestamps(msgs)) != fmt.Sprint(want) {
		t.Fatalf("replies after oldest = %v, want %v", timestamps(msgs), want)
	}

	// A message written while the bridge was away is in history but never delivered.
	away := srv.UserSays(ch, u, "while away", "", slacktest.Away())
	if _, ok := srv.EventFor("message", ch, away); ok {
		t.Fatal("an away message was delivered as an event")
	}
	res, _ = api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: ch, Limit: 1})
	if res.Messages[0].Timestamp != away {
		t.Fatal("the away message is not in history")
	}
	_, err = api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: ch, Cursor: "bogus"})
	slackErr(t, err, "invalid_cursor")
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func timestamps(ms []slack.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Timestamp)
	}
	return out
}

func TestConversationsUsersTeam(t *testing.T) {
	srv := slacktest.NewServer(t)
	api := client(srv, srv.BotToken)
	ctx := context.Background()
	srv.AddTeam("T0EXT0001", "Partner", "partner")
	ext := srv.AddUser(slacktest.User{Team: "T0EXT0001", Name: "dave", RealName: "Dave D", DisplayName: "dd",
		TZ: "Europe/Berlin", Locale: "de-DE"})
	shared := srv.AddChannel("shared-support", slacktest.SharedWith("T0EXT0001"))

	info, err := api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: shared})
	if err != nil || !info.IsExtShared || info.Name != "shared-support" || !info.IsMember {
		t.Fatalf("conversations.info = %+v, %v", info, err)
	}
	u, err := api.GetUserInfoContext(ctx, ext)
	if err != nil || u.TeamID != "T0EXT0001" || u.Profile.DisplayName != "dd" || u.Locale != "de-DE" ||
		u.TZ != "Europe/Berlin" || u.RealName != "Dave D" {
		t.Fatalf("users.info = %+v, %v", u, err)
	}
	_, err = api.GetUserInfoContext(ctx, "U404")
	slackErr(t, err, "user_not_found")
	team, err := api.GetTeamInfoContext(ctx)
	if err != nil || team.ID != slacktest.TeamID || team.Domain != slacktest.TeamDomain {
		t.Fatalf("team.info = %+v, %v", team, err)
	}
	c, _, already, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{ext}})
	if err != nil || !strings.HasPrefix(c.ID, "D") || already {
		t.Fatalf("conversations.open = %+v %v %v", c, already, err)
	}
	c2, _, already, _ := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{ext}})
	if c2.ID != c.ID || !already {
		t.Fatal("a second conversations.open did not return the same DM")
	}
}

func TestUploadAndDownload(t *testing.T) {
	srv := slacktest.NewServer(t)
	api := client(srv, srv.BotToken)
	ctx := context.Background()
	ch := srv.AddChannel("support")
	u := srv.AddUser(slacktest.User{Name: "erin"})
	parent := srv.UserSays(ch, u, "see attached", "", slacktest.WithFile("report.pdf", "application/pdf", []byte("%PDF-user")))

	data := bytes.Repeat([]byte("0123456789"), 10_000)
	sum, err := api.UploadFileContext(ctx, slack.UploadFileParameters{
		Reader: bytes.NewReader(data), FileSize: len(data), Filename: "log.txt", Title: "Log",
		Channel: ch, ThreadTimestamp: parent, InitialComment: "here it is",
	})
	if err != nil {
		t.Fatal(err)
	}
	replies := srv.ThreadReplies(ch, parent)
	if len(replies) != 1 || replies[0].Subtype != "file_share" || replies[0].Text != "here it is" ||
		len(replies[0].Files) != 1 || replies[0].Files[0].ID != sum.ID || replies[0].Files[0].Title != "Log" {
		t.Fatalf("file share = %+v", replies)
	}
	var buf bytes.Buffer
	if err := api.GetFileContext(ctx, replies[0].Files[0].URLPrivateDownload, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("downloaded %d bytes, want %d", buf.Len(), len(data))
	}

	// The user's file, found through history, downloads with the bot token only.
	msgs, _, _, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: ch, Timestamp: parent})
	if err != nil || len(msgs[0].Files) != 1 {
		t.Fatalf("replies: %v %+v", err, msgs)
	}
	link := msgs[0].Files[0].URLPrivateDownload
	buf.Reset()
	if err := api.GetFileContext(ctx, link, &buf); err != nil || buf.String() != "%PDF-user" {
		t.Fatalf("download: %q %v", buf.String(), err)
	}
	err = client(srv, "xoxb-other").GetFileContext(ctx, link, &buf)
	if err == nil || !strings.Contains(err.Error(), "sign-in page") {
		t.Fatalf("download with a wrong token: %v, want the sign-in redirect", err)
	}

	// A wrong announced length fails the upload step.
	_, err = api.UploadFileContext(ctx, slack.UploadFileParameters{
		Content: "short", FileSize: 99, Filename: "x.txt", Channel: ch})
	var sce slack.StatusCodeError
	if !errors.As(err, &sce) || sce.Code != 400 {
		t.Fatalf("upload with a wrong length: %v", err)
	}
}

func TestFaults(t *testing.T) {
	srv := slacktest.NewServer(t)
	api := client(srv, srv.BotToken)
	ctx := context.Background()
	ch := srv.AddChannel("support")

	srv.RateLimit("chat.postMessage", 7*time.Second, 1)
	_, _, err := api.PostMessageContext(ctx, ch, slack.MsgOptionText("x", false))
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
		t.Fatalf("error = %v, want a RateLimitedError of 7s", err)
	}
	if _, _, err := api.PostMessageContext(ctx, ch, slack.MsgOptionText("x", false)); err != nil {
		t.Fatalf("the 429 did not clear after one call: %v", err)
	}

	srv.Inject("chat.postMessage", slacktest.Fault{Status: 503})
	for range 2 {
		_, _, err = api.PostMessageContext(ctx, ch, slack.MsgOptionText("x", false))
		var sce slack.StatusCodeError
		if !errors.As(err, &sce) || sce.Code != 503 || !sce.Retryable() {
			t.Fatalf("error = %v, want a 503 StatusCodeError", err)
		}
	}
	srv.ClearFaults("chat.postMessage")

	// internal_error after the post took effect: the message exists anyway.
	srv.Inject("chat.postMessage", slacktest.Fault{Error: "internal_error", Times: 1, AfterEffect: true})
	_, _, err = api.PostMessageContext(ctx, ch, slack.MsgOptionText("ambiguous", false))
	slackErr(t, err, "internal_error")
	if posts := srv.BotPosts(); posts[len(posts)-1].Text != "ambiguous" {
		t.Fatal("an after-effect fault did not post")
	}
	srv.FailWith("chat.postMessage", "account_inactive", 0)
	_, _, err = api.PostMessageContext(ctx, ch, slack.MsgOptionText("x", false))
	slackErr(t, err, "account_inactive")
	srv.ClearFaults("")

	// Per-channel posting limit: a burst of 2, refilled far slower than the test runs.
	srv.SetPostRateLimit(0.001, 2)
	for i := range 3 {
		_, _, err = api.PostMessageContext(ctx, ch, slack.MsgOptionText("burst", false))
		if i < 2 && err != nil {
			t.Fatalf("post %d within the burst: %v", i, err)
		}
	}
	if !errors.As(err, &rl) {
		t.Fatalf("third post = %v, want rate limited", err)
	}
	other := srv.AddChannel("other")
	if _, _, err := api.PostMessageContext(ctx, other, slack.MsgOptionText("x", false)); err != nil {
		t.Fatalf("another channel has its own limit: %v", err)
	}
}

// socket runs a real socketmode client against the fake until the test ends.
type socket struct {
	sm *socketmode.Client
}

func runSocket(t *testing.T, srv *slacktest.Server) *socket {
	t.Helper()
	sm := socketmode.New(client(srv, srv.BotToken), socketmode.OptionPingInterval(5*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sm.RunContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("RunContext = %v", err)
		}
	})
	return &socket{sm: sm}
}

// next returns the next event of a type, skipping others.
func (s *socket) next(t *testing.T, typ socketmode.EventType) socketmode.Event {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case evt := <-s.sm.Events:
			if evt.Type == typ {
				return evt
			}
		case <-timeout.C:
			t.Fatalf("no %s event", typ)
		}
	}
}

// nextMessage returns the next events_api envelope carrying a message event.
func (s *socket) nextMessage(t *testing.T) (socketmode.Event, *slackevents.MessageEvent) {
	t.Helper()
	evt := s.next(t, socketmode.EventTypeEventsAPI)
	api := evt.Data.(slackevents.EventsAPIEvent)
	msg, ok := api.InnerEvent.Data.(*slackevents.MessageEvent)
	if !ok {
		t.Fatalf("inner event %T", api.InnerEvent.Data)
	}
	return evt, msg
}

func TestSocketModeDeliveryAndAck(t *testing.T) {
	srv := slacktest.NewServer(t)
	ch := srv.AddChannel("support", slacktest.SharedWith("T0EXT0001"))
	srv.AddTeam("T0EXT0001", "Partner", "partner")
	u := srv.AddUser(slacktest.User{Team: "T0EXT0001", Name: "frank"})
	s := runSocket(t, srv)
	s.next(t, socketmode.EventTypeHello)

	ts := srv.UserSays(ch, u, "hello <@U0BOT0001>", "")
	evt, msg := s.nextMessage(t)
	outer := evt.Data.(slackevents.EventsAPIEvent)
	cb := outer.Data.(*slackevents.EventsAPICallbackEvent)
	if msg.TimeStamp != ts || msg.Channel != ch || msg.User != u || msg.Text != "hello <@U0BOT0001>" ||
		msg.ChannelType != "channel" || msg.UserTeam != "T0EXT0001" || !outer.IsExtSharedChannel ||
		outer.TeamID != slacktest.TeamID || evt.Request.RetryAttempt != 0 {
		t.Fatalf("message event = %+v outer %+v", msg, outer)
	}
	if err := s.sm.AckCtx(context.Background(), evt.Request.EnvelopeID, nil); err != nil {
		t.Fatal(err)
	}
	e := srv.WaitAcked(t, cb.EventID)
	if len(e.Deliveries) != 1 || e.Deliveries[0].EnvelopeID != evt.Request.EnvelopeID {
		t.Fatalf("event = %+v", e)
	}

	// Edits, unfurls and deletions arrive as message subtypes.
	srv.UserEdits(ch, ts, "edited")
	evt, msg = s.nextMessage(t)
	if msg.SubType != "message_changed" || msg.Message.Edited == nil || msg.Message.Text != "edited" ||
		msg.PreviousMessage.Text != "hello <@U0BOT0001>" {
		t.Fatalf("edit event = %+v", msg)
	}
	_ = s.sm.AckCtx(context.Background(), evt.Request.EnvelopeID, nil)
	ts2 := srv.UserSays(ch, u, "look https://example.com", "")
	evt, _ = s.nextMessage(t)
	_ = s.sm.AckCtx(context.Background(), evt.Request.EnvelopeID, nil)
	srv.Unfurl(ch, ts2, "https://example.com")
	evt, msg = s.nextMessage(t)
	if msg.SubType != "message_changed" || msg.Message.Edited != nil || len(msg.Message.Attachments) != 1 {
		t.Fatalf("unfurl event = %+v", msg.Message)
	}
	_ = s.sm.AckCtx(context.Background(), evt.Request.EnvelopeID, nil)
	srv.UserDeletes(ch, ts)
	evt, msg = s.nextMessage(t)
	if msg.SubType != "message_deleted" || msg.DeletedTimeStamp != ts {
		t.Fatalf("delete event = %+v", msg)
	}
	_ = s.sm.AckCtx(context.Background(), evt.Request.EnvelopeID, nil)
	srv.WaitSettled(t)

	// A redelivery of an acknowledged event keeps its event_id.
	srv.Redeliver(cb.EventID)
	evt, _ = s.nextMessage(t)
	if again := evt.Data.(slackevents.EventsAPIEvent).Data.(*slackevents.EventsAPICallbackEvent); again.EventID != cb.EventID {
		t.Fatalf("redelivered event_id %s, want %s", again.EventID, cb.EventID)
	}
	_ = s.sm.AckCtx(context.Background(), evt.Request.EnvelopeID, nil)
	srv.WaitSettled(t)
}

func TestRedeliveryWithoutAck(t *testing.T) {
	srv := slacktest.NewServer(t, slacktest.WithAckTimeout(20*time.Millisecond))
	u := srv.AddUser(slacktest.User{Name: "gina"})
	ch := srv.DM(u)
	s := runSocket(t, srv)
	s.next(t, socketmode.EventTypeHello)
	srv.UserSays(ch, u, "are you there?", "")
	var ids []string
	for attempt := range 4 {
		evt, msg := s.nextMessage(t)
		cb := evt.Data.(slackevents.EventsAPIEvent).Data.(*slackevents.EventsAPICallbackEvent)
		ids = append(ids, cb.EventID)
		wantReason := "timeout"
		if attempt == 0 {
			wantReason = ""
		}
		if evt.Request.RetryAttempt != attempt || evt.Request.RetryReason != wantReason || msg.ChannelType != "im" {
			t.Fatalf("delivery %d: retry_attempt %d reason %q channel_type %s", attempt, evt.Request.RetryAttempt, evt.Request.RetryReason, msg.ChannelType)
		}
	}
	if ids[0] != ids[3] {
		t.Fatalf("event ids %v differ", ids)
	}
	srv.WaitFor(t, "the event dropped after 3 retries", func() bool {
		e, _ := srv.LastEvent()
		return e.Dropped && len(e.Deliveries) == 4
	})
}

func TestEventsWhileDisconnectedArriveAsRetries(t *testing.T) {
	srv := slacktest.NewServer(t)
	ch := srv.AddChannel("support")
	u := srv.AddUser(slacktest.User{Name: "hank"})
	ts := srv.UserSays(ch, u, "early", "")
	s := runSocket(t, srv)
	evt, msg := s.nextMessage(t)
	if msg.TimeStamp != ts || evt.Request.RetryAttempt != 1 || evt.Request.RetryReason != "timeout" {
		t.Fatalf("queued delivery: attempt %d reason %q", evt.Request.RetryAttempt, evt.Request.RetryReason)
	}
	_ = s.sm.AckCtx(context.Background(), evt.Request.EnvelopeID, nil)
	srv.WaitSettled(t)
}

func TestReconnects(t *testing.T) {
	srv := slacktest.NewServer(t, slacktest.WithDisconnectGrace(time.Hour))
	ch := srv.AddChannel("support")
	u := srv.AddUser(slacktest.User{Name: "ivy"})
	s := runSocket(t, srv)
	s.next(t, socketmode.EventTypeHello)

	// slack-go closes the socket on any disconnect frame and dials a new one.
	srv.SendDisconnect("refresh_requested")
	srv.WaitDials(t, 2)
	s.next(t, socketmode.EventTypeHello)
	srv.WaitConnections(t, 1)

	// Held, the client's next dial waits and nothing is delivered; released, it connects and
	// gets what was written meanwhile.
	release := srv.HoldSockets()
	srv.DropSockets()
	t.Cleanup(release)
	srv.WaitFor(t, "a held dial", func() bool { return srv.Holding() == 1 })
	srv.WaitConnections(t, 0)
	held := srv.UserSays(ch, u, "while held", "")
	if srv.Dials() != 2 || srv.Connections() != 0 {
		t.Fatalf("while held: %d dials, %d sockets; want 2 and 0", srv.Dials(), srv.Connections())
	}
	release()
	srv.WaitDials(t, 3)
	srv.WaitConnections(t, 1)
	evt, msg := s.nextMessage(t)
	if msg.TimeStamp != held {
		t.Fatalf("after the hold got %s, want %s", msg.TimeStamp, held)
	}
	_ = s.sm.AckCtx(context.Background(), evt.Request.EnvelopeID, nil)

	srv.SendMalformed(`{"type": events_api}`)
	s.next(t, socketmode.EventTypeIncomingError)
	ts := srv.UserSays(ch, u, "after all that", "")
	evt, msg = s.nextMessage(t)
	if msg.TimeStamp != ts {
		t.Fatalf("got %s, want %s", msg.TimeStamp, ts)
	}
	_ = s.sm.AckCtx(context.Background(), evt.Request.EnvelopeID, nil)
	srv.WaitSettled(t)
	if srv.Dials() != 3 {
		t.Fatalf("%d dials; the malformed frame must not cost a reconnect", srv.Dials())
	}
}

func TestBlockActions(t *testing.T) {
	srv := slacktest.NewServer(t)
	api := client(srv, srv.BotToken)
	ch := srv.AddChannel("support")
	u := srv.AddUser(slacktest.User{Name: "jack"})
	parent := srv.UserSays(ch, u, "ticket", "")
	_, ts, err := api.PostMessageContext(context.Background(), ch, slack.MsgOptionText("close?", false), slack.MsgOptionTS(parent),
		slack.MsgOptionBlocks(slack.NewActionBlock("ticket_actions", slack.NewButtonBlockElement("close_ticket", "T-42",
			slack.NewTextBlockObject(slack.PlainTextType, "Close", false, false)))))
	if err != nil {
		t.Fatal(err)
	}
	srv.WaitFor(t, "a settled queue", func() bool { return len(srv.Events()) == 2 })
	s := runSocket(t, srv)
	for range 2 { // the user's message and the bot's own echo, both as retries
		evt, _ := s.nextMessage(t)
		_ = s.sm.AckCtx(context.Background(), evt.Request.EnvelopeID, nil)
	}

	id := srv.UserPresses(u, ch, ts, "close_ticket", "")
	evt := s.next(t, socketmode.EventTypeInteractive)
	cb := evt.Data.(slack.InteractionCallback)
	if cb.Type != slack.InteractionTypeBlockActions || cb.User.ID != u || cb.Container.MessageTs != ts ||
		cb.Container.ChannelID != ch || cb.Container.ThreadTs != parent || len(cb.ActionCallback.BlockActions) != 1 {
		t.Fatalf("callback = %+v", cb)
	}
	if a := cb.ActionCallback.BlockActions[0]; a.ActionID != "close_ticket" || a.Value != "T-42" || a.BlockID != "ticket_actions" {
		t.Fatalf("action = %+v", a)
	}
	_ = s.sm.AckCtx(context.Background(), evt.Request.EnvelopeID, nil)
	srv.WaitAcked(t, id)

	// The response_url replaces the original.
	if _, _, err := api.PostMessageContext(context.Background(), "", slack.MsgOptionReplaceOriginal(cb.ResponseURL),
		slack.MsgOptionText("closed", false)); err != nil {
		t.Fatal(err)
	}
	if m, _ := srv.Message(ch, ts); m.Text != "closed" {
		t.Fatalf("after replace_original: %+v", m)
	}
}

func TestBroadcastAndPageCap(t *testing.T) {
	srv := slacktest.NewServer(t, slacktest.WithHistoryPageMax(2))
	api := client(srv, srv.BotToken)
	ch := srv.AddChannel("support")
	u := srv.AddUser(slacktest.User{Name: "kim"})
	parent := srv.UserSays(ch, u, "q", "")
	srv.UserSays(ch, u, "hidden reply", parent)
	bc := srv.UserSays(ch, u, "loud reply", parent, slacktest.Broadcast())
	res, err := api.GetConversationHistoryContext(context.Background(), &slack.GetConversationHistoryParameters{ChannelID: ch, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	if got := timestamps(res.Messages); fmt.Sprint(got) != fmt.Sprint([]string{bc, parent}) || res.HasMore {
		t.Fatalf("history = %v has_more %v, want the broadcast and the parent", got, res.HasMore)
	}
	if m := res.Messages[0]; m.SubType != "thread_broadcast" || m.ThreadTimestamp != parent {
		t.Fatalf("broadcast = %+v", m.Msg)
	}
	srv.UserSays(ch, u, "newest", "")
	res, _ = api.GetConversationHistoryContext(context.Background(), &slack.GetConversationHistoryParameters{ChannelID: ch, Limit: 50})
	if len(res.Messages) != 2 || !res.HasMore {
		t.Fatalf("a limit of 50 with a cap of 2 gave %d messages, has_more %v", len(res.Messages), res.HasMore)
	}
}

func TestSocketAuthAndTickets(t *testing.T) {
	srv := slacktest.NewServer(t)
	api := slack.New(srv.BotToken, slack.OptionAPIURL(srv.APIURL), slack.OptionAppLevelToken("xapp-revoked"))
	err := socketmode.New(api).RunContext(context.Background())
	slackErr(t, err, "invalid_auth") // RunContext gives up on invalid_auth

	ctx := context.Background()
	_, wsURL, err := client(srv, srv.BotToken).StartSocketModeContext(ctx)
	if err != nil || !strings.HasPrefix(wsURL, "ws://") || !strings.Contains(wsURL, "ticket=") {
		t.Fatalf("apps.connections.open = %q, %v", wsURL, err)
	}
	conn, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, hello, err := conn.Read(ctx)
	if err != nil || !strings.Contains(string(hello), `"type":"hello"`) {
		t.Fatalf("first frame %s, %v", hello, err)
	}
	_ = conn.CloseNow()
	if _, _, err := websocket.Dial(ctx, wsURL, nil); err == nil {
		t.Fatal("a ticket was accepted twice")
	}
	srv.WaitConnections(t, 0)
}

func TestUnackedInteractionIsNotRetried(t *testing.T) {
	srv := slacktest.NewServer(t, slacktest.WithAckTimeout(20*time.Millisecond))
	api := client(srv, srv.BotToken)
	u := srv.AddUser(slacktest.User{Name: "lee"})
	ch := srv.DM(u)
	_, ts, err := api.PostMessageContext(context.Background(), ch, slack.MsgOptionText("pick", false),
		slack.MsgOptionBlocks(slack.NewActionBlock("b", slack.NewButtonBlockElement("yes", "1",
			slack.NewTextBlockObject(slack.PlainTextType, "Yes", false, false)))))
	if err != nil {
		t.Fatal(err)
	}
	s := runSocket(t, srv)
	s.next(t, socketmode.EventTypeHello) // with no socket, an interaction fails at once
	id := srv.UserPresses(u, ch, ts, "yes", "")
	s.next(t, socketmode.EventTypeInteractive)
	srv.WaitFor(t, "the interaction dropped", func() bool {
		for _, e := range srv.Events() {
			if e.ID == id {
				return e.Dropped
			}
		}
		return false
	})
	for _, e := range srv.Events() {
		if e.ID == id && len(e.Deliveries) != 1 {
			t.Fatalf("an interaction was delivered %d times", len(e.Deliveries))
		}
	}
}

func TestCloseWithSocketOpen(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	srv := slacktest.NewServer(t)
	sm := socketmode.New(client(srv, srv.BotToken))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sm.RunContext(ctx) }()
	srv.WaitConnections(t, 1)
	srv.Close()
	cancel()
	for {
		select {
		case <-sm.Events:
			continue
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("RunContext = %v", err)
			}
		}
		break
	}
	goleak.VerifyNone(t, ignore)
}

func TestWaitReturnsOnChangeOrContext(t *testing.T) {
	srv := slacktest.NewServer(t)
	u := srv.AddUser(slacktest.User{Name: "ann"})
	dm := srv.DM(u)
	done := make(chan error, 1)
	go func() {
		done <- srv.Wait(context.Background(), func() bool { return len(srv.Messages(dm)) == 1 })
	}()
	srv.UserSays(dm, u, "hi", "")
	if err := <-done; err != nil {
		t.Fatalf("Wait = %v after the change it waited for", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Wait(ctx, func() bool { return false }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled context = %v, want context.Canceled", err)
	}
}
