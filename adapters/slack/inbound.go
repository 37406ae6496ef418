package slack

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// route says where a Slack message belongs in the bridge.
type route struct {
	// unit is what catch-up reads as one: "c:<channel>" (a DM or a support channel's
	// top-level messages) or "t:<channel>.<thread ts>" (a ticket thread, or a thread in a DM).
	unit string
	// parent is the channel unit of a thread reply: a thread of a ticket the bridge has not
	// seen yet is found by the channel's catch-up.
	parent string
	// cursor is the catch-up cursor the message moves.
	cursor string
	chat   bridge.ChatRef
	// owner is the UserRef.ID of the person whose conversation this is; empty for a new
	// ticket (the author becomes its owner).
	owner string
	// opens says the message opens a ticket (a person's top-level message in a support
	// channel).
	opens bool
}

func channelUnit(ch string) string          { return "c:" + ch }
func threadUnit(ch, thread string) string   { return "t:" + ch + "." + thread }
func threadKey(ch, thread string) string    { return valueThread + ch + "." + thread }
func threadCursor(ch, thread string) string { return cursorThread + ch + "." + thread }

// ticketChat is the ChatRef of a support-channel ticket: "<channel>:<thread ts>".
func ticketChat(ch, thread string) bridge.ChatRef {
	return bridge.ChatRef{Platform: Platform, ID: ch + ":" + thread}
}

// parseChat splits a ChatRef into its channel and, for a ticket, the thread ts.
func parseChat(c bridge.ChatRef) (channel, thread string, ok bool) {
	if c.Platform != Platform {
		return "", "", false
	}
	channel, thread, _ = strings.Cut(c.ID, ":")
	if !isChannelID(channel) || (thread != "" && !isTS(thread)) {
		return "", "", false
	}
	return channel, thread, true
}

// routeOf finds where message m of channel belongs. isNew is false for edits, deletes and
// button presses, which never open a ticket. ok is false for messages the bridge does not
// serve (other channels, threads that are no ticket).
func (a *Adapter) routeOf(ctx context.Context, channel string, m *slackgo.Msg, isNew bool) (route, bool, error) {
	if strings.HasPrefix(channel, "D") {
		r := route{unit: channelUnit(channel), cursor: cursorChannel + channel,
			chat: bridge.ChatRef{Platform: Platform, ID: channel}}
		// A reply in a thread of the DM is still the DM's chat, but conversations.history
		// never lists it: it is its own catch-up unit with its own cursor, read with
		// conversations.replies.
		if thread := m.ThreadTimestamp; thread != "" && thread != m.Timestamp && isTS(thread) {
			r.unit, r.parent, r.cursor = threadUnit(channel, thread), channelUnit(channel), threadCursor(channel, thread)
		}
		return r, true, nil
	}
	if !a.support[channel] {
		return route{}, false, nil
	}
	thread := m.ThreadTimestamp
	if thread == "" || thread == m.Timestamp {
		r := route{unit: channelUnit(channel), cursor: cursorChannel + channel, chat: ticketChat(channel, m.Timestamp)}
		if isNew {
			r.opens = true
			return r, true, nil
		}
		owner, ok, err := a.host.Value(ctx, threadKey(channel, m.Timestamp))
		r.owner = owner
		return r, ok && owner != "", err
	}
	owner, ok, err := a.host.Value(ctx, threadKey(channel, thread))
	r := route{unit: threadUnit(channel, thread), parent: channelUnit(channel), cursor: threadCursor(channel, thread),
		chat: ticketChat(channel, thread), owner: owner}
	return r, ok && owner != "", err
}

// held says whether messages of r must wait for the catch-up of their unit; it marks the unit
// dirty, so the catch-up reads once more before it lets live messages through.
func (a *Adapter) held(r route) bool {
	a.unitsMu.Lock()
	defer a.unitsMu.Unlock()
	if a.catchAll {
		return true
	}
	held := false
	for _, u := range []string{r.unit, r.parent} {
		if st, ok := a.pending[u]; ok && u != "" {
			st.dirty, held = true, true
		}
	}
	return held
}

// fromBot says whether m was written by a bot (ours or another), or is the share of a file
// the bot uploaded: the bridge never forwards those.
func (a *Adapter) fromBot(m *slackgo.Msg) bool {
	me := a.me.Load()
	if m.BotID != "" || m.SubType == "bot_message" || (me != nil && m.User == me.UserID) {
		return true
	}
	if m.SubType == "file_share" && len(m.Files) > 0 {
		ours := true
		for _, f := range m.Files {
			ours = ours && a.uploaded.has(f.ID)
		}
		return ours
	}
	return m.User == ""
}

// bridged says whether a message of this subtype carries something a person wrote.
func bridged(subtype string) bool {
	switch subtype {
	case "", "file_share", "thread_broadcast", "me_message":
		return true
	}
	return false
}

// onEventsAPI handles one Events API event; it reports whether the event may be acknowledged
// (stored, or nothing to store).
func (a *Adapter) onEventsAPI(ctx context.Context, ev slackevents.EventsAPIEvent) bool {
	if ev.Type != slackevents.CallbackEvent {
		return true
	}
	me, ok := ev.InnerEvent.Data.(*slackevents.MessageEvent)
	if !ok || me.Message == nil {
		return true
	}
	switch me.SubType {
	case "message_changed":
		return a.onEdit(ctx, me)
	case "message_deleted":
		return a.onDelete(ctx, me)
	}
	if !bridged(me.SubType) {
		return true
	}
	m := *me.Message
	m.Channel = me.Channel
	if m.Team == "" {
		m.Team = me.UserTeam
	}
	return a.onMessage(ctx, me.Channel, &m)
}

// onMessage stores a new message; it reports whether it may be acknowledged.
func (a *Adapter) onMessage(ctx context.Context, channel string, m *slackgo.Msg) bool {
	if a.fromBot(m) || !isTS(m.Timestamp) {
		return true
	}
	r, ok, err := a.routeOf(ctx, channel, m, true)
	if err != nil {
		a.log.Warn("cannot read a slack thread's owner", zap.String("channel", channel), zap.Error(err))
		return false
	}
	if !ok {
		return true
	}
	if a.held(r) {
		return false
	}
	dctx, cancel := context.WithTimeout(ctx, deliverTimeout)
	defer cancel()
	if err := a.deliverMessage(dctx, channel, r, m); err != nil {
		thread := ""
		if strings.HasPrefix(r.unit, "t:") {
			thread = m.ThreadTimestamp
		}
		a.retryLater(r, channel, thread, m.Timestamp)
		return false
	}
	return true
}

// deliverMessage converts m and stores it, moving r's cursor to it; a message that opens a
// ticket records its owner first and is acknowledged to the person after it is stored.
func (a *Adapter) deliverMessage(ctx context.Context, channel string, r route, m *slackgo.Msg) error {
	author := a.person(ctx, m.User, m.Team)
	if r.opens {
		owner, err := a.host.SetValueIfAbsent(ctx, threadKey(channel, m.Timestamp), author.ref)
		if err != nil {
			return fmt.Errorf("record ticket owner: %w", err)
		}
		r.owner = owner
	}
	if r.owner == "" {
		r.owner = author.ref
	}
	msg := a.inbound(ctx, r, author, m)
	if err := a.host.Deliver(ctx, bridge.Cursor{Name: r.cursor, Position: m.Timestamp}, msg); err != nil {
		a.log.Warn("cannot store a slack message", zap.String("channel", channel), zap.Error(err))
		return err
	}
	if r.opens && a.ticketAck != AckNone {
		// The reply is in the language of the user who opened the ticket.
		a.queueAck(ackJob{kind: a.ticketAck, channel: channel, ts: m.Timestamp,
			text:   a.host.Texts().Text(msg.Language, texts.TicketAck, nil),
			button: a.host.Texts().Text(msg.Language, texts.CloseButton, nil)})
	}
	return nil
}

// person is a message's author as the bridge names them.
type person struct {
	id, team string
	ref      string // UserRef.ID: "<team>:<user>"
	name     string
	handle   string
	teamName string
	locale   string // the language of the person's Slack client, "" when unknown
}

// person looks the author up (cached users.info and team.info).
func (a *Adapter) person(ctx context.Context, userID, team string) person {
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	u, _ := a.names.user(lctx, userID)
	if team == "" {
		team = u.team
	}
	if team == "" {
		if me := a.me.Load(); me != nil {
			team = me.TeamID
		}
	}
	p := person{id: userID, team: team, ref: team + ":" + userID, name: u.name, handle: u.handle, locale: u.locale}
	p.teamName = a.names.team(lctx, team)
	return p
}

// inbound converts a person's message. A message written in someone else's ticket thread
// goes to the owner's conversation (so the owner's messages stay in order) with the writer
// named in the text; the owner's name and attributes are then left alone.
func (a *Adapter) inbound(ctx context.Context, r route, author person, m *slackgo.Msg) bridge.Inbound {
	text := a.toMarkdown(ctx, m.Text)
	msg := bridge.Inbound{
		User:      bridge.UserRef{Platform: Platform, ID: r.owner},
		Chat:      r.chat,
		MessageID: m.Timestamp,
		SentAt:    tsTime(m.Timestamp),
	}
	if r.owner == author.ref {
		msg.DisplayName, msg.Username, msg.Language = author.name, author.handle, author.locale
		if author.teamName != "" {
			msg.ContactAttributes = map[string]string{"slack_workspace": author.teamName}
		}
	} else {
		name := author.name
		if name == "" {
			name = author.handle
		}
		if name == "" {
			name = author.id
		}
		text = a.host.Texts().Agent(texts.AgentColleagueWrote, texts.Vars{"name": "**" + escapeMarkdown(name) + "**"}) + "\n" + text
	}
	msg.Text = text
	for _, f := range m.Files {
		att, note := attachmentOf(f, a.host.Texts())
		if note != "" {
			msg.Notes = append(msg.Notes, note)
			continue
		}
		msg.Attachments = append(msg.Attachments, att)
	}
	return msg
}

// escapeMarkdown keeps a name from turning into Markdown.
func escapeMarkdown(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `_`, `\_`, "`", "\\`", `[`, `\[`, `]`, `\]`).Replace(s)
}

// toMarkdown converts mrkdwn with user and channel mentions resolved to names.
func (a *Adapter) toMarkdown(ctx context.Context, text string) string {
	if text == "" {
		return ""
	}
	return mrkdwnToMarkdown(text, func(kind byte, id string) string {
		lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		defer cancel()
		switch kind {
		case '@':
			if u, ok := a.names.user(lctx, id); ok {
				return u.name
			}
		case '#':
			return a.names.channel(lctx, id)
		}
		return ""
	})
}

// attachmentOf turns a Slack file into an attachment streamed later by OpenAttachment, or a
// note for agents (in their language, from cat) when the bot cannot download it.
func attachmentOf(f slackgo.File, cat *texts.Catalogue) (bridge.Attachment, string) {
	name := f.Name
	if name == "" {
		name = f.Title
	}
	if name == "" {
		name = f.ID
	}
	link := f.URLPrivateDownload
	if link == "" {
		link = f.URLPrivate
	}
	if f.IsExternal || f.Mode == "external" || f.Mode == "tombstone" || f.FileAccess == "check_file_info" || link == "" || !isID(f.ID) {
		if f.Size > 0 {
			name += " (" + sizeText(int64(f.Size)) + ")"
		}
		return bridge.Attachment{}, cat.Agent(texts.AgentFileNotBridgedFrom, texts.Vars{"name": name, "platform": "Slack"})
	}
	mt := f.Mimetype
	if mt == "" {
		mt = mime.TypeByExtension(path.Ext(name))
	}
	return bridge.Attachment{Kind: kindOf(mt), Name: name, MIME: mt, Size: int64(f.Size), Ref: f.ID + " " + link}, ""
}

func kindOf(mt string) bridge.AttachmentKind {
	switch {
	case strings.HasPrefix(mt, "image/"):
		return bridge.KindImage
	case strings.HasPrefix(mt, "audio/"):
		return bridge.KindAudio
	case strings.HasPrefix(mt, "video/"):
		return bridge.KindVideo
	}
	return bridge.KindFile
}

// sizeText is a size for people: "512 B", "1.5 MB".
func sizeText(n int64) string {
	switch {
	case n <= 0:
		return "size unknown"
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1000)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}

// tsTime turns a Slack ts into a time.
func tsTime(ts string) time.Time {
	sec, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Now()
	}
	us, _ := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	return time.Unix(s, us*1000)
}

// onEdit tells the agent that a person edited a message. message_changed also fires for link
// previews and thread bookkeeping: only a change with `edited` set and new text is an edit.
func (a *Adapter) onEdit(ctx context.Context, ev *slackevents.MessageEvent) bool {
	m, prev := ev.Message, ev.PreviousMessage
	if m == nil || m.Edited == nil || (prev != nil && prev.Text == m.Text) || a.fromBot(m) || !isTS(m.Timestamp) {
		return true
	}
	r, ok, err := a.routeOf(ctx, ev.Channel, m, false)
	if err != nil {
		return false
	}
	if !ok {
		return true
	}
	if a.held(r) {
		return false
	}
	dctx, cancel := context.WithTimeout(ctx, deliverTimeout)
	defer cancel()
	author := a.person(dctx, m.User, m.Team)
	if r.owner == "" {
		r.owner = author.ref
	}
	msg := a.inbound(dctx, r, author, m)
	msg.EditOf, msg.MessageID = m.Timestamp, m.Timestamp+".edit."+m.Edited.Timestamp
	msg.Attachments, msg.Notes = nil, nil
	if t := tsTime(m.Edited.Timestamp); !t.IsZero() {
		msg.SentAt = t
	}
	if err := a.host.Deliver(dctx, bridge.Cursor{}, msg); err != nil {
		a.log.Warn("cannot store a slack edit", zap.Error(err))
		return false
	}
	return true
}

// onDelete tells the agent that a person deleted a message.
func (a *Adapter) onDelete(ctx context.Context, ev *slackevents.MessageEvent) bool {
	prev := ev.PreviousMessage
	if prev == nil || a.fromBot(prev) || !isTS(ev.DeletedTimeStamp) {
		return true
	}
	m := *prev
	m.Timestamp = ev.DeletedTimeStamp
	r, ok, err := a.routeOf(ctx, ev.Channel, &m, false)
	if err != nil {
		return false
	}
	if !ok {
		return true
	}
	if a.held(r) {
		return false
	}
	dctx, cancel := context.WithTimeout(ctx, deliverTimeout)
	defer cancel()
	if r.owner == "" {
		r.owner = a.person(dctx, m.User, m.Team).ref
	}
	err = a.host.Deliver(dctx, bridge.Cursor{}, bridge.Inbound{
		User:      bridge.UserRef{Platform: Platform, ID: r.owner},
		Chat:      r.chat,
		MessageID: m.Timestamp + ".delete",
		DeletedOf: m.Timestamp,
		SentAt:    time.Now(),
	})
	if err != nil {
		a.log.Warn("cannot store a slack delete", zap.Error(err))
		return false
	}
	return true
}

// onBlockActions bridges a button pressed on one of the bot's messages: the choice goes to
// the conversation, and the message is changed to show it once stored.
func (a *Adapter) onBlockActions(ctx context.Context, cb *slackgo.InteractionCallback) bool {
	me := a.me.Load()
	msgTS, channel := cb.Container.MessageTs, cb.Container.ChannelID
	if channel == "" {
		channel = cb.Channel.ID
	}
	if me == nil || len(cb.ActionCallback.BlockActions) == 0 || !isTS(msgTS) ||
		(cb.Message.BotID != me.BotID && cb.Message.User != me.UserID) {
		return true
	}
	act := cb.ActionCallback.BlockActions[0]
	action, isTicket := ticketAction(act.ActionID)
	if !isTicket && !strings.HasPrefix(act.ActionID, choiceActionPrefix) {
		return true
	}
	m := slackgo.Msg{User: cb.User.ID, Team: cb.User.TeamID, Timestamp: msgTS, ThreadTimestamp: cb.Container.ThreadTs}
	r, ok, err := a.routeOf(ctx, channel, &m, false)
	if err != nil {
		return false
	}
	if !ok {
		return true
	}
	dctx, cancel := context.WithTimeout(ctx, deliverTimeout)
	defer cancel()
	presser := a.person(dctx, cb.User.ID, cb.User.TeamID)
	if r.owner == "" {
		r.owner = presser.ref
	}
	title := act.Text.Text
	actionTS := act.ActionTs
	if actionTS == "" {
		actionTS = cb.ActionTs
	}
	msg := bridge.Inbound{
		User:      bridge.UserRef{Platform: Platform, ID: r.owner},
		Chat:      r.chat,
		MessageID: msgTS + ".choice." + actionTS,
		Text:      title,
		Choice:    &bridge.Choice{MessageID: msgTS, Title: title, Value: act.Value},
		SentAt:    time.Now(),
	}
	if r.owner == presser.ref {
		msg.DisplayName, msg.Username = presser.name, presser.handle
	}
	if isTicket {
		if r.owner != presser.ref {
			return true // only the ticket's person closes or reopens it; colleagues use OneChat
		}
		msg.MessageID, msg.Text, msg.Choice, msg.Ticket = msgTS+".ticket."+actionTS, "", nil, action
	}
	if err := a.host.Deliver(dctx, bridge.Cursor{}, msg); err != nil {
		a.log.Warn("cannot store a slack button press", zap.Error(err))
		return false
	}
	if isTicket {
		return true // answered by the bridge's line when the ticket changes
	}
	a.queueAck(ackJob{kind: "choice", channel: channel, ts: msgTS, text: cb.Message.Text, choice: title})
	return true
}

// ---- who is who ----

// directory caches users.info, team.info and conversations.info answers for ttl; failures
// are remembered for a minute so a missing scope does not cost a call per message.
type directory struct {
	a   *Adapter
	ttl time.Duration

	mu       sync.Mutex
	users    map[string]cached[userInfo]
	teams    map[string]cached[string]
	channels map[string]cached[string]
}

type cached[T any] struct {
	v       T
	ok      bool
	expires time.Time
}

type userInfo struct {
	name, handle, team string
	locale             string // the user's Slack locale ("es-ES"), from include_locale
}

func newDirectory(a *Adapter, ttl time.Duration) *directory {
	return &directory{a: a, ttl: ttl, users: map[string]cached[userInfo]{}, teams: map[string]cached[string]{}, channels: map[string]cached[string]{}}
}

const negativeTTL = time.Minute

func (d *directory) user(ctx context.Context, id string) (userInfo, bool) {
	if !isID(id) {
		return userInfo{}, false
	}
	d.mu.Lock()
	c, hit := d.users[id]
	d.mu.Unlock()
	if hit && time.Now().Before(c.expires) {
		return c.v, c.ok
	}
	u, err := d.a.api.GetUserInfoContext(ctx, id)
	c = cached[userInfo]{expires: time.Now().Add(d.ttl)}
	if err != nil {
		d.a.log.Debug("cannot look a slack user up", zap.String("user", id), zap.Error(d.a.redact(err)))
		c.expires = time.Now().Add(negativeTTL)
	} else {
		name := u.Profile.RealName
		for _, n := range []string{u.RealName, u.Profile.DisplayName, u.Name} {
			if name == "" {
				name = n
			}
		}
		c.v, c.ok = userInfo{name: name, handle: u.Name, team: u.TeamID, locale: u.Locale}, true
	}
	d.mu.Lock()
	if len(d.users) > 100000 {
		clear(d.users)
	}
	d.users[id] = c
	d.mu.Unlock()
	return c.v, c.ok
}

func (d *directory) team(ctx context.Context, id string) string {
	if !isID(id) {
		return ""
	}
	d.mu.Lock()
	c, hit := d.teams[id]
	d.mu.Unlock()
	if hit && time.Now().Before(c.expires) {
		return c.v
	}
	t, err := d.a.api.GetOtherTeamInfoContext(ctx, id)
	c = cached[string]{expires: time.Now().Add(d.ttl)}
	if err != nil {
		c.expires = time.Now().Add(negativeTTL)
	} else {
		c.v, c.ok = t.Name, true
	}
	d.mu.Lock()
	d.teams[id] = c
	d.mu.Unlock()
	return c.v
}

func (d *directory) channel(ctx context.Context, id string) string {
	if !isChannelID(id) {
		return ""
	}
	d.mu.Lock()
	c, hit := d.channels[id]
	d.mu.Unlock()
	if hit && time.Now().Before(c.expires) {
		return c.v
	}
	ch, err := d.a.api.GetConversationInfoContext(ctx, &slackgo.GetConversationInfoInput{ChannelID: id})
	c = cached[string]{expires: time.Now().Add(d.ttl)}
	if err != nil {
		c.expires = time.Now().Add(negativeTTL)
	} else {
		c.v, c.ok = ch.Name, true
	}
	d.mu.Lock()
	d.channels[id] = c
	d.mu.Unlock()
	return c.v
}

// ---- acknowledgements ----

// ackJob is something the bot says after a message is stored: a reaction or a reply on a new
// ticket, or a pressed button's message changed to show the choice. They run on their own
// goroutine so the events loop never waits for the Web API.
type ackJob struct {
	kind        string // AckReaction, AckReply or "choice"
	channel, ts string
	text        string // AckReply: the reply; "choice": the message's text
	button      string // AckReply: the Close ticket button's label, in the same language
	choice      string
}

// ticketReaction acknowledges a new ticket (AckReaction); AckReply says texts.TicketAck.
const ticketReaction = "eyes"

func (a *Adapter) queueAck(j ackJob) {
	if a.acks == nil {
		return
	}
	select {
	case a.acks <- j:
	default:
		a.log.Warn("slack acknowledgement queue full, dropping one", zap.String("kind", j.kind))
	}
}

func (a *Adapter) ackLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-a.acks:
			for attempt := 0; attempt < 5; attempt++ {
				err := a.runAck(ctx, j)
				if err == nil || ctx.Err() != nil {
					break
				}
				d := a.backoff.Delay(attempt)
				var rl *bridge.RateLimitedError
				if errors.As(err, &rl) {
					d = rl.RetryAfter
				}
				var perm *bridge.PermanentError
				if errors.As(err, &perm) {
					a.log.Warn("slack acknowledgement refused", zap.String("kind", j.kind), zap.Error(err))
					break
				}
				if a.wait(ctx, d) != nil {
					return
				}
			}
		}
	}
}

func (a *Adapter) runAck(ctx context.Context, j ackJob) error {
	switch j.kind {
	case AckReaction:
		err := a.api.AddReactionContext(ctx, ticketReaction, slackgo.NewRefToMessage(j.channel, j.ts))
		if hasCode(err, "already_reacted") {
			return nil
		}
		return classify(a.redact(err))
	case AckReply:
		// The reply is said once per ticket, even when the ticket's message is delivered
		// again (catch-up after a crash).
		mark := strconv.FormatInt(time.Now().UnixNano(), 10)
		stored, err := a.host.SetValueIfAbsent(ctx, "acked."+j.channel+"."+j.ts, mark)
		if err != nil || stored != mark {
			return err
		}
		if err := a.pacer.wait(ctx, j.channel); err != nil {
			return err
		}
		_, _, err = a.api.PostMessageContext(ctx, j.channel, slackgo.MsgOptionText(j.text, false),
			slackgo.MsgOptionBlocks(ticketLineBlocks(j.text, bridge.TicketClose, j.button)...),
			slackgo.MsgOptionTS(j.ts), slackgo.MsgOptionDisableLinkUnfurl(), slackgo.MsgOptionDisableMediaUnfurl())
		return classify(a.redact(err))
	case "choice":
		_, _, _, err := a.api.UpdateMessageContext(ctx, j.channel, j.ts, choiceMade(j.text, j.choice)...)
		return classify(a.redact(err))
	}
	return nil
}
