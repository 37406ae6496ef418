package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/onechat/onechat-bridge/adapters/discord/discordtest"
	"github.com/onechat/onechat-bridge/adapters/slack/slacktest"
	"github.com/onechat/onechat-bridge/e2e"
)

// slackWorld is the fake Slack of a rig: a customer workspace (Acme Corp) sharing a support
// channel with the bot's workspace, and two of its people.
type slackWorld struct {
	srv     *slacktest.Server
	support string // the Slack Connect support channel
	ann     string // a customer who writes in the DM and in the support channel
	ben     string // another customer
}

const (
	acmeTeam = "T0ACME"
	acmeName = "Acme Corp"
)

// withSlack runs the bridge with Slack (its tokens, API URL and support channel) against a
// fake Slack set up as slackWorld says.
func withSlack(t *testing.T, sw *slackWorld) rigOption {
	srv := slacktest.NewServer(t, e2e.WithSlackTokens())
	srv.AddTeam(acmeTeam, acmeName, "acme")
	*sw = slackWorld{
		srv:     srv,
		support: srv.AddChannel("acme-support", slacktest.SharedWith(acmeTeam)),
		ann:     srv.AddUser(slacktest.User{Team: acmeTeam, Name: "ann", RealName: "Ann Archer", DisplayName: "ann"}),
		ben:     srv.AddUser(slacktest.User{Team: acmeTeam, Name: "ben", RealName: "Ben Baker"}),
	}
	return func(c *rigConfig) {
		c.slack = srv
		c.support = []string{sw.support}
	}
}

// withoutTelegram disables Telegram (an empty TELEGRAM_BOT_TOKEN wins over the world's).
func withoutTelegram() rigOption { return withEnv("TELEGRAM_BOT_TOKEN=") }

func slackIdentifier(user string) string { return "slack:" + acmeTeam + ":" + user }

// botTexts returns the texts of the bot's posts that match keep, oldest first.
func (sw *slackWorld) botTexts(keep func(slacktest.Message) bool) []string {
	var out []string
	for _, m := range sw.srv.BotPosts() {
		if !m.Deleted && keep(m) {
			out = append(out, m.Text)
		}
	}
	return out
}

// waitSlackPosts waits until the bot posted n messages matching keep and returns their texts.
func (r *rig) waitSlackPosts(ctx context.Context, sw *slackWorld, what string, n int, keep func(slacktest.Message) bool) []string {
	r.t.Helper()
	if err := sw.srv.Wait(ctx, func() bool { return len(sw.botTexts(keep)) >= n }); err != nil {
		r.t.Fatalf("Slack: %d bot posts %s, want %d: %q: %v", len(sw.botTexts(keep)), what, n, sw.botTexts(keep), err)
	}
	return sw.botTexts(keep)
}

func inChannel(ch string) func(slacktest.Message) bool {
	return func(m slacktest.Message) bool { return m.Channel == ch && m.ThreadTS == "" }
}

func inThread(ch, ts string) func(slacktest.Message) bool {
	return func(m slacktest.Message) bool { return m.Channel == ch && m.ThreadTS == ts }
}

// wj is the word joiner the bridge puts after the @ of @here, @channel and @everyone.
const wj = "\u2060"

// The real binary with Slack alone: a DM reaches OneChat as contact slack:<team>:<user> with
// its workspace as an attribute, the agent's reply reaches the DM as mrkdwn that pings no one;
// a support-channel message opens a ticket acknowledged with a reaction, the agent answers in
// its thread and the user's thread reply reaches the same conversation; /metrics counts Slack
// and `bridge check` passes for it.
func TestSlackAlone(t *testing.T) {
	var sw slackWorld
	r := newRig(t, withSlack(t, &sw), withoutTelegram())
	r.start()
	ctx := testCtx(t)

	dm := sw.srv.DM(sw.ann)
	sw.srv.UserSays(dm, sw.ann, "Hello from *Slack*", "")
	contact, conv := r.conversation(ctx, slackIdentifier(sw.ann))
	r.waitIncoming(ctx, conv.ID, "Hello from **Slack**")
	if contact.Name != "Ann Archer" {
		t.Errorf("contact name %q, want Ann Archer", contact.Name)
	}
	if err := r.w.OC.Wait(ctx, func() bool {
		c, _ := r.w.OC.ContactByIdentifier(slackIdentifier(sw.ann))
		return c.CustomAttributes["slack_workspace"] == acmeName
	}); err != nil {
		c, _ := r.w.OC.ContactByIdentifier(slackIdentifier(sw.ann))
		t.Fatalf("the contact's attributes are %v, want slack_workspace %q: %v", c.CustomAttributes, acmeName, err)
	}
	r.waitSubscribed(ctx, contact.ID)

	r.w.OC.PrivateNote(conv.ID, "internal: VIP")
	r.w.OC.AgentReply(conv.ID, "Hi **Ann**, @here <!channel> see [the guide](https://example.com/a?b=1&c=2)")
	got := r.waitSlackPosts(ctx, &sw, "in the DM", 1, inChannel(dm))
	want := "Hi *Ann*, @" + wj + "here &lt;!channel&gt; see <https://example.com/a?b=1&amp;c=2|the guide>"
	if got[0] != want {
		t.Errorf("the DM got %q, want %q", got[0], want)
	}

	// A top-level message in the support channel opens a ticket, acknowledged with a reaction.
	top := sw.srv.UserSays(sw.support, sw.ann, "My printer is on fire", "")
	r.waitIncoming(ctx, conv.ID, "Hello from **Slack**", "My printer is on fire")
	if err := sw.srv.Wait(ctx, func() bool { return len(sw.srv.Reactions(sw.support, top)) > 0 }); err != nil {
		t.Fatalf("the ticket was never acknowledged: %v", err)
	}
	r.w.OC.AgentReply(conv.ID, "We are on it")
	if got := r.waitSlackPosts(ctx, &sw, "in the ticket's thread", 1, inThread(sw.support, top)); got[0] != "We are on it" {
		t.Errorf("the ticket's thread got %q", got)
	}
	sw.srv.UserSays(sw.support, sw.ann, "Still burning", top)
	r.waitIncoming(ctx, conv.ID, "Hello from **Slack**", "My printer is on fire", "Still burning")
	r.w.OC.AgentReply(conv.ID, "Firefighters are coming")
	if got := r.waitSlackPosts(ctx, &sw, "in the ticket's thread", 2, inThread(sw.support, top)); got[1] != "Firefighters are coming" {
		t.Errorf("the ticket's thread got %q", got)
	}
	// Nothing else went anywhere: one post in the DM, none at the channel's top level, none
	// broadcast; the note never left OneChat.
	if got := sw.botTexts(inChannel(dm)); len(got) != 1 {
		t.Errorf("the DM got %q, want only the first reply", got)
	}
	if got := sw.botTexts(inChannel(sw.support)); len(got) != 0 {
		t.Errorf("the support channel got %q at its top level", got)
	}
	for _, m := range sw.srv.BotPosts() {
		if m.Params.Get("reply_broadcast") == "true" || m.Params.Has("link_names") || m.Params.Has("parse") {
			t.Errorf("a post was sent with %v", m.Params)
		}
	}

	var m e2e.Metrics
	ok := poll(ctx, func() bool {
		m, _ = r.p.Scrape(ctx)
		return m.Value("bridge_messages_total", "direction", "in", "platform", "slack", "result", "delivered") == 3 &&
			m.Value("bridge_messages_total", "direction", "out", "platform", "slack", "result", "delivered") == 3
	})
	if !ok {
		t.Errorf("/metrics: slack in delivered %v, out delivered %v, want 3 and 3",
			m.Value("bridge_messages_total", "direction", "in", "platform", "slack", "result", "delivered"),
			m.Value("bridge_messages_total", "direction", "out", "platform", "slack", "result", "delivered"))
	}
	if v, ok := m.Get("bridge_messages_total", "direction", "in", "platform", "telegram", "result", "delivered"); ok && v != 0 {
		t.Errorf("/metrics counts %v Telegram messages with Telegram disabled", v)
	}

	out, code, err := e2e.Check(ctx, bridgeBin, r.env, r.logs)
	if err != nil {
		t.Fatal(err)
	}
	var slackLine string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[1] == "slack" {
			slackLine = line
		}
		if f := strings.Fields(line); len(f) >= 2 && f[1] == "telegram" {
			t.Errorf("bridge check checked Telegram, which is disabled: %s", line)
		}
	}
	if code != 0 || !strings.HasPrefix(slackLine, "OK") || !strings.Contains(slackLine, slacktest.TeamName) {
		t.Errorf("bridge check exited %d with its slack line %q; it printed:\n%s", code, slackLine, out)
	}
	for _, s := range []string{e2e.SlackBotToken, e2e.SlackAppToken} {
		if strings.Contains(out, s) {
			t.Errorf("bridge check printed a Slack token")
		}
	}
}

// Socket faults with the real binary: a dropped socket, a disconnect frame, messages written
// while the bridge is away (held by Slack and redelivered, or only in history), a SIGKILL and a
// restart, and envelopes redelivered with the same event_id: every user message reaches
// OneChat once and in order, in the DM and in a ticket's thread.
func TestSlackSocketFaults(t *testing.T) {
	var sw slackWorld
	r := newRig(t, withSlack(t, &sw), withoutTelegram())
	r.start()
	ctx := testCtx(t)
	srv := sw.srv

	dm := srv.DM(sw.ann)
	var dmWant, ticketWant []string
	say := func(text string, opts ...slacktest.SayOption) string {
		dmWant = append(dmWant, text)
		return srv.UserSays(dm, sw.ann, text, "", opts...)
	}
	first := say("dm 1")
	_, conv := r.conversation(ctx, slackIdentifier(sw.ann))
	r.waitIncoming(ctx, conv.ID, dmWant...)

	// Ben opens a ticket: his own conversation, whose thread the faults below also hit.
	top := srv.UserSays(sw.support, sw.ben, "ticket opened", "")
	ticketWant = append(ticketWant, "ticket opened")
	reply := func(text string, opts ...slacktest.SayOption) {
		ticketWant = append(ticketWant, text)
		srv.UserSays(sw.support, sw.ben, text, top, opts...)
	}
	_, tconv := r.conversation(ctx, slackIdentifier(sw.ben))
	r.waitIncoming(ctx, tconv.ID, ticketWant...)

	// The socket drops without a close frame; what is written meanwhile is held and
	// redelivered.
	dials := srv.Dials()
	srv.DropSockets()
	say("dm 2 after a drop")
	reply("thread 2 after a drop")
	r.waitSlackSocket(ctx, &sw, dials+1)
	r.waitIncoming(ctx, conv.ID, dmWant...)
	r.waitIncoming(ctx, tconv.ID, ticketWant...)

	// Slack asks the bridge to reconnect; messages written during the handover arrive.
	dials = srv.Dials()
	srv.SendDisconnect("refresh_requested")
	say("dm 3 during a refresh")
	reply("thread 3 during a refresh")
	r.waitSlackSocket(ctx, &sw, dials+1)
	r.waitIncoming(ctx, conv.ID, dmWant...)
	r.waitIncoming(ctx, tconv.ID, ticketWant...)

	// An envelope already acknowledged comes again with the same event_id: acknowledged, not
	// doubled (the next message proves the queue has nothing more for the conversation).
	ev, _ := srv.EventFor("message", dm, first)
	deliveries := len(ev.Deliveries)
	srv.Redeliver(ev.ID)
	if err := srv.Wait(ctx, func() bool {
		e, _ := srv.EventFor("message", dm, first)
		return len(e.Deliveries) > deliveries && e.Acked
	}); err != nil {
		t.Fatalf("the redelivered envelope was never acknowledged: %v", err)
	}
	say("dm 4 after a redelivery")
	r.waitIncoming(ctx, conv.ID, dmWant...)

	// SIGTERM, then messages while the bridge is away: some held by Slack and redelivered on
	// connect, some past Slack's retries (only in history, read by the catch-up), in both the
	// DM and the thread, interleaved.
	r.stop()
	held := say("dm 5 held")
	say("dm 6 only in history", slacktest.Away())
	say("dm 7 held")
	reply("thread 4 only in history", slacktest.Away())
	reply("thread 5 held")
	reply("thread 6 only in history", slacktest.Away())
	r.start()
	r.waitIncoming(ctx, conv.ID, dmWant...)
	r.waitIncoming(ctx, tconv.ID, ticketWant...)
	// Both paths were taken: the held message came as Slack's retry, history was read.
	// (Its envelope may wait unacknowledged until the catch-up is done, and come again.)
	if err := srv.Wait(ctx, func() bool { ev, _ := srv.EventFor("message", dm, held); return ev.Acked }); err != nil {
		t.Errorf("the message held while the bridge was away was never acknowledged: %v", err)
	}
	if ev, _ := srv.EventFor("message", dm, held); ev.Deliveries[0].RetryAttempt == 0 {
		t.Errorf("the message held while the bridge was away was delivered as %+v, want Slack's retries", ev)
	}
	if len(srv.Calls("conversations.history")) == 0 || len(srv.Calls("conversations.replies")) == 0 {
		t.Errorf("the catch-up read no history (%d history, %d replies calls)",
			len(srv.Calls("conversations.history")), len(srv.Calls("conversations.replies")))
	}

	// SIGKILL in the middle of a burst, more written while it is dead, and a restart.
	for i := 8; i <= 12; i++ {
		say(fmt.Sprintf("dm %d burst", i))
		reply(fmt.Sprintf("thread %d burst", i-1))
	}
	if err := r.w.OC.Wait(ctx, func() bool { return len(r.incoming(conv.ID)) >= 8 }); err != nil {
		t.Fatal(err)
	}
	r.kill()
	say("dm 13 while dead, held")
	say("dm 14 while dead, only in history", slacktest.Away())
	reply("thread 12 while dead, only in history", slacktest.Away())
	reply("thread 13 while dead, held")
	r.start()
	r.waitIncoming(ctx, conv.ID, dmWant...)
	r.waitIncoming(ctx, tconv.ID, ticketWant...)

	// An envelope from before the restart comes again: the new process has never seen its
	// event_id, the queue's dedup key makes it a no-op.
	ev, _ = srv.EventFor("message", dm, first)
	deliveries = len(ev.Deliveries)
	srv.Redeliver(ev.ID)
	if err := srv.Wait(ctx, func() bool {
		e, _ := srv.EventFor("message", dm, first)
		return len(e.Deliveries) > deliveries && e.Acked
	}); err != nil {
		t.Fatalf("the envelope redelivered after the restart was never acknowledged: %v", err)
	}
	say("dm 15 last")
	reply("thread 14 last")
	r.waitIncoming(ctx, conv.ID, dmWant...)
	r.waitIncoming(ctx, tconv.ID, ticketWant...)

	// Every message still makes its round trip: the agent's answers reach both.
	r.w.OC.AgentReply(conv.ID, "all received")
	r.w.OC.AgentReply(tconv.ID, "all received too")
	if got := r.waitSlackPosts(ctx, &sw, "in the DM", 1, inChannel(dm)); !slices.Equal(got, []string{"all received"}) {
		t.Errorf("the DM got %q", got)
	}
	if got := r.waitSlackPosts(ctx, &sw, "in the thread", 1, inThread(sw.support, top)); !slices.Equal(got, []string{"all received too"}) {
		t.Errorf("the thread got %q", got)
	}

	// Replies in a thread of the DM, under the bot's message, go to the DM's conversation:
	// written while the bridge is away (conversations.history never lists them), live, and
	// away again.
	var botTS string
	for _, m := range srv.BotPosts() {
		if m.Channel == dm {
			botTS = m.TS
		}
	}
	inDMThread := func(text string, opts ...slacktest.SayOption) {
		dmWant = append(dmWant, text)
		srv.UserSays(dm, sw.ann, text, botTS, opts...)
	}
	r.stop()
	inDMThread("dm thread 1, away", slacktest.Away())
	r.start()
	r.waitIncoming(ctx, conv.ID, dmWant...)
	inDMThread("dm thread 2, live")
	r.waitIncoming(ctx, conv.ID, dmWant...)
	r.kill()
	inDMThread("dm thread 3, away", slacktest.Away())
	inDMThread("dm thread 4, held")
	r.start()
	r.waitIncoming(ctx, conv.ID, dmWant...)
}

// waitSlackSocket waits until the bridge has dialled the fake Slack dials times and has a
// socket open.
func (r *rig) waitSlackSocket(ctx context.Context, sw *slackWorld, dials int) {
	r.t.Helper()
	if err := sw.srv.Wait(ctx, func() bool { return sw.srv.Dials() >= dials && sw.srv.Connections() > 0 }); err != nil {
		r.t.Fatalf("the bridge never reconnected to Slack (%d dials, want %d): %v", sw.srv.Dials(), dials, err)
	}
}

// Telegram, Discord and Slack in one process: a user on each writes, each gets the agent's
// reply on their own platform, and nothing crosses platforms.
func TestThreePlatformsAtOnce(t *testing.T) {
	var sw slackWorld
	var dc *discordtest.Server
	r := newRig(t, withSlack(t, &sw), withDiscord(t, &dc))
	dc.AddUser(carol, "carol", "Carol")
	r.start()
	ctx := testCtx(t)

	slackDM := sw.srv.DM(sw.ann)
	r.w.TG.SendText(alice, "hello from Telegram")
	dc.UserSendsDM(carol, "hello from Discord")
	sw.srv.UserSays(slackDM, sw.ann, "hello from Slack", "")

	type person struct {
		identifier, in, out string
		contactID, convID   int64
	}
	people := []*person{
		{identifier: tgIdentifier(alice), in: "hello from Telegram", out: "for Alice on Telegram"},
		{identifier: "discord:" + carol, in: "hello from Discord", out: "for Carol on Discord"},
		{identifier: slackIdentifier(sw.ann), in: "hello from Slack", out: "for Ann on Slack"},
	}
	for _, p := range people {
		contact, conv := r.conversation(ctx, p.identifier)
		p.contactID, p.convID = contact.ID, conv.ID
		r.waitIncoming(ctx, conv.ID, p.in)
	}
	for _, p := range people {
		r.waitSubscribed(ctx, p.contactID)
		r.w.OC.AgentReply(p.convID, p.out)
	}

	if got := r.waitSentTexts(ctx, alice.ID, 1); !slices.Equal(got, []string{people[0].out}) {
		t.Errorf("Telegram got %q", got)
	}
	dm := dc.DMChannel(carol)
	if got := discordContents(waitBotMessages(t, dc, dm, 1)); !slices.Equal(got, []string{people[1].out}) {
		t.Errorf("Discord got %q", got)
	}
	if got := r.waitSlackPosts(ctx, &sw, "in the DM", 1, inChannel(slackDM)); !slices.Equal(got, []string{people[2].out}) {
		t.Errorf("Slack got %q", got)
	}

	// A second round, written at once on all three: still each to its own, in order.
	r.w.TG.SendText(alice, "again from Telegram")
	dc.UserSendsDM(carol, "again from Discord")
	sw.srv.UserSays(slackDM, sw.ann, "again from Slack", "")
	for _, p := range people {
		r.waitIncoming(ctx, p.convID, p.in, strings.Replace(p.in, "hello", "again", 1))
		r.w.OC.AgentReply(p.convID, "again "+p.out)
	}
	if got := r.waitSentTexts(ctx, alice.ID, 2); !slices.Equal(got, []string{people[0].out, "again " + people[0].out}) {
		t.Errorf("Telegram got %q", got)
	}
	if got := discordContents(waitBotMessages(t, dc, dm, 2)); !slices.Equal(got, []string{people[1].out, "again " + people[1].out}) {
		t.Errorf("Discord got %q", got)
	}
	if got := r.waitSlackPosts(ctx, &sw, "in the DM", 2, inChannel(slackDM)); !slices.Equal(got, []string{people[2].out, "again " + people[2].out}) {
		t.Errorf("Slack got %q", got)
	}
	// Nothing crossed: every bot post on Slack went to Ann's DM (each chat above holds exactly
	// its own two replies), and OneChat has exactly the three contacts.
	if all := sw.botTexts(func(slacktest.Message) bool { return true }); len(all) != 2 {
		t.Errorf("the Slack bot posted %q, want only Ann's two replies", all)
	}
	if n := len(r.w.OC.Contacts()); n != 3 {
		t.Errorf("OneChat has %d contacts, want 3", n)
	}
}
