package bridge

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/texts"
)

// corePlatform is the namespace of the core's own values in the store's adapter values; no
// adapter can have it (platform names have no leading underscore by convention, and the core
// never hands this one to an adapter's Host).
const corePlatform Platform = "_core"

// csatCommentKey names the value that remembers a user's CSAT rating awaiting a comment.
func csatCommentKey(u UserRef) string { return "csat_comment." + u.Identifier() }

// ticketByUserKey names the core value that says the user is closing or reopening the
// conversation's ticket right now ("closed <unix time>" or "reopened <unix time>"). It is
// stored before the change reaches OneChat, so whichever instance records the resulting status
// change (the user's own job, or another instance's catch-up after the cable's event) tells
// the adapter the user did it.
func ticketByUserKey(conversationID int64) string {
	return "ticket_by_user." + strconv.FormatInt(conversationID, 10)
}

// ticketByUserFor bounds how long a user's close or reopen is taken for the cause of the
// status change that follows: the user's job deletes the value once the change is recorded,
// and the bound keeps a value left behind by a job that failed from naming the user as the
// author of a later change by an agent.
const ticketByUserFor = 10 * time.Minute

// markTicketByUser records that the user is about to make op (OpClosed, OpReopened) happen to
// the conversation.
func (c *Core) markTicketByUser(ctx context.Context, conversationID int64, op string) error {
	return c.store.SetValue(ctx, corePlatform, ticketByUserKey(conversationID), op+" "+strconv.FormatInt(time.Now().Unix(), 10))
}

// ticketByUser returns the change (OpClosed, OpReopened) the user is making to the
// conversation's ticket, "" if none.
func (c *Core) ticketByUser(ctx context.Context, conversationID int64) (string, error) {
	v, ok, err := c.store.Value(ctx, corePlatform, ticketByUserKey(conversationID))
	if err != nil || !ok {
		return "", err
	}
	op, at, _ := strings.Cut(v, " ")
	sec, err := strconv.ParseInt(at, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)) > ticketByUserFor {
		return "", nil
	}
	return op, nil
}

// takeStatuses returns and forgets the statuses the cable announced for the conversations
// convs names; 0 names current, the customer's current conversation, whose status a catch-up
// reads over REST instead (so one announced before that read is older than what it finds,
// and is dropped).
func (c *Core) takeStatuses(current int64, convs catchupSet) map[int64]string {
	c.catchupMu.Lock()
	defer c.catchupMu.Unlock()
	out := make(map[int64]string)
	for id := range convs {
		if id == 0 {
			delete(c.statusPending, current)
			continue
		}
		if s, ok := c.statusPending[id]; ok {
			out[id] = s
			delete(c.statusPending, id)
		}
	}
	if _, withStatus := convs[0]; withStatus {
		delete(out, current)
	}
	return out
}

// putStatus gives back a status that could not be recorded, unless a newer one arrived.
func (c *Core) putStatus(id int64, status string) {
	c.catchupMu.Lock()
	defer c.catchupMu.Unlock()
	if _, newer := c.statusPending[id]; !newer {
		c.statusPending[id] = status
	}
}

// ticketOp is the outbound operation a status change causes: OpClosed when a conversation is
// resolved, OpReopened when a resolved one is opened again, "" otherwise.
func ticketOp(previous, status string) string {
	switch {
	case status == "resolved" && previous != "resolved" && previous != conversationGone && previous != "":
		return OpClosed
	case previous == "resolved" && (status == "open" || status == "pending"):
		return OpReopened
	}
	return ""
}

// recordStatus records a conversation's new status. For the customer's current conversation,
// a resolve or a reopen also queues OpClosed or OpReopened in the chat's FIFO, in the same
// transaction, so it reaches the adapter after every agent message queued before it and is
// not lost to a crash; and only while the recorded status is still from, the one the caller
// read before it learnt status ("" for any): a writer that learnt a status earlier than
// another one recorded its own must not undo it (a catch-up that read "open" just before the
// user's close was recorded would reopen the ticket). Every status change brings an event and
// the status read of the catch-up it causes, so a change left out here is recorded by that.
func (c *Core) recordStatus(ctx context.Context, conversationID int64, from, status string, byUser bool) error {
	// The customer is read afresh: a catch-up that began before the conversation became the
	// customer's current one holds a stale copy.
	cu, err := c.store.CustomerByConversation(ctx, conversationID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if conversationID != cu.ConversationID || cu.Chat.ID == "" {
		err := c.store.SetConversationStatus(ctx, conversationID, status)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	// The user's own close or reopen may reach this instance through the cable (or a
	// catch-up) before, or instead of, the user's job that made it: the store says.
	var userOp string
	if !byUser {
		if userOp, err = c.ticketByUser(ctx, conversationID); err != nil {
			return err
		}
	}
	var op string
	onChange := func(previous string) []NewJob {
		op = ticketOp(previous, status)
		if op == "" {
			return nil
		}
		byUser = byUser || op == userOp
		payload, err := jsonMarshal(Outbound{Op: op, User: cu.User, Chat: cu.Chat, ConversationID: conversationID, ByUser: byUser})
		if err != nil {
			op = ""
			return nil
		}
		return []NewJob{{Direction: Out, Key: cu.Chat.String(), Dedup: "ticket:" + strconv.FormatInt(conversationID, 10) + ":" + op + ":" + rand.Text(), Payload: payload}}
	}
	var previous string
	if from == "" {
		previous, err = c.store.ChangeConversationStatus(ctx, conversationID, status, onChange)
	} else {
		previous, err = c.store.ChangeConversationStatusFrom(ctx, conversationID, from, status, onChange)
	}
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if previous != "" {
		c.log.Debug("recorded conversation status", zap.Int64("conversation_id", conversationID), zap.String("status", status),
			zap.String("previous", previous), zap.String("ticket", op), zap.Bool("by_user", byUser))
	}
	if previous != "" && op != "" {
		c.opts.Metrics.queued(Out, cu.Chat.Platform, 1)
		c.wake[dirIndex(Out)].notify()
	}
	return nil
}

// afterSurvey ends the dedup key of a close queued again behind OneChat's survey
// (closeAfterSurvey).
const afterSurvey = ":after-survey"

// csatRecheck is how long the inbox's csat_survey_enabled is trusted before it is read again.
const csatRecheck = time.Minute

// ticketChanged hands a resolve or reopen to the adapter's TicketKeeper.
//
// The user gets one word about a resolve: OneChat's CSAT survey (or another template it sends
// for the resolve) or the adapter's notice, never both (TicketEvent.Surveyed). OneChat posts
// the survey in a job of its own after the status change committed, so it may not exist yet
// when the close comes to be sent. When the inbox sends surveys and this conversation has none
// yet, the close waits for it, in the queue (a wait of SurveyWait at most, looked at about
// every second, not counted as an attempt, kept across restarts and instances); a survey that
// came after the close was queued is sent first, and the close is queued again behind it. Only
// this chat's later messages wait meanwhile, and only while a survey is due.
func (c *Core) ticketChanged(ctx context.Context, a Adapter, j *Job, m Outbound) error {
	k, ok := a.(TicketKeeper)
	if !ok {
		return nil
	}
	ev := TicketEvent{User: m.User, Chat: m.Chat, ConversationID: m.ConversationID, ByUser: m.ByUser, Notice: c.opts.ResolvedNotice}
	if m.Op == OpReopened {
		return k.TicketReopened(ctx, ev)
	}
	requeued := strings.HasSuffix(j.Dedup, afterSurvey)
	if j.Retried && !requeued {
		// An earlier attempt may have queued this close again behind the survey.
		switch _, _, err := c.store.JobState(ctx, Out, j.Dedup+afterSurvey); {
		case err == nil:
			return nil
		case !errors.Is(err, ErrNotFound):
			return err
		}
	}
	cu, err := c.store.Customer(ctx, m.User)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil || cu.SourceID == "" {
		return k.TicketClosed(ctx, ev)
	}
	page, err := c.oc.ListMessages(ctx, cu.SourceID, m.ConversationID, 0)
	if onechat.IsNotFound(err) {
		return k.TicketClosed(ctx, ev)
	}
	if err != nil {
		return c.classifyOneChat(err)
	}
	surveys, hadSurvey := surveysOf(page)
	switch {
	case len(surveys) > 0:
		ev.Surveyed = true
		if requeued {
			break
		}
		sent, err := c.sentBefore(ctx, surveys)
		if err != nil {
			return err
		}
		if !sent {
			return c.closeAfterSurvey(ctx, cu, j, m.ConversationID)
		}
	case !hadSurvey && c.opts.SurveyWait > 0 && time.Since(j.CreatedAt) < c.opts.SurveyWait:
		on, err := c.csatEnabled(ctx)
		if err != nil {
			return c.classifyOneChat(err)
		}
		if on {
			c.opts.Metrics.surveyWaited(m.Chat.Platform)
			return &waitError{after: min(time.Second, c.opts.SurveyWait/4), reason: "waiting for OneChat's CSAT survey"}
		}
	}
	return k.TicketClosed(ctx, ev)
}

// surveysOf reads a page of a conversation's messages (the newest) for what OneChat sent after
// the resolve: the ids of the template messages (a CSAT survey, another template) newer than
// anyone's last message, and whether the page holds a CSAT survey at all (OneChat sends one
// per conversation).
func surveysOf(page []onechat.Message) (ids []int64, hadSurvey bool) {
	page = slices.Clone(page)
	slices.SortFunc(page, func(a, b onechat.Message) int { return cmp.Compare(b.ID, a.ID) })
	last := true
	for _, msg := range page {
		hadSurvey = hadSurvey || msg.ContentType == "input_csat"
		switch {
		case msg.Private || msg.MessageType == onechat.MessageActivity:
		case msg.MessageType == onechat.MessageTemplate && last:
			ids = append(ids, msg.ID)
		default:
			last = false
		}
	}
	return ids, hadSurvey
}

// sentBefore reports whether every one of these agent messages was queued before the running
// job and is finished: sent (or given up on) ahead of it in the chat's FIFO.
func (c *Core) sentBefore(ctx context.Context, messageIDs []int64) (bool, error) {
	for _, id := range messageIDs {
		state, _, err := c.store.JobState(ctx, Out, outboundDedup(id))
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if state != JobDone && state != JobFailed {
			return false, nil // queued behind this job
		}
	}
	return true, nil
}

// closeAfterSurvey queues the close of job j again behind OneChat's survey, which came after
// the close was queued: a catch-up of the conversation queues the survey (unless it is queued
// already, behind j) and the close after it, in one transaction; j then ends. The new close's
// dedup key is j's with afterSurvey, so a retry of j finds it and does nothing.
func (c *Core) closeAfterSurvey(ctx context.Context, cu Customer, j *Job, conversationID int64) error {
	again := NewJob{Direction: Out, Key: j.Key, Dedup: j.Dedup + afterSurvey, Payload: j.Payload}
	if err := c.catchUp(onechat.WithPriority(ctx, onechat.PriorityAgent), cu, conversationID, cursorRead{}, again); err != nil {
		return err
	}
	c.log.Debug("close queued again behind OneChat's survey", zap.Int64("conversation_id", conversationID))
	return nil
}

// csatEnabled reports whether the inbox sends a CSAT survey when a conversation is resolved
// (csat_survey_enabled), read again every csatRecheck.
func (c *Core) csatEnabled(ctx context.Context) (bool, error) {
	c.csatMu.Lock()
	on, at := c.csatOn, c.csatAt
	c.csatMu.Unlock()
	if !at.IsZero() && time.Since(at) < csatRecheck {
		return on, nil
	}
	in, err := c.oc.Inbox(ctx)
	if err != nil {
		return false, err
	}
	c.csatMu.Lock()
	c.csatOn, c.csatAt = in.CSATSurveyEnabled, time.Now()
	c.csatMu.Unlock()
	return in.CSATSurveyEnabled, nil
}

// ticketAction closes or reopens the user's current conversation at their request, and posts a
// line in it so the agent sees who did it. A close resolves through the Client API
// (toggle_status); a reopen is the line itself, since a contact's message reopens a resolved
// conversation (the Client API has no other way). Pressing twice does nothing the second time.
func (c *Core) ticketAction(ctx context.Context, cu Customer, m Inbound, j *Job) (_ []MessageLink, rerr error) {
	log := c.log.With(zap.String("platform", string(m.User.Platform)), zap.String("ticket", string(m.Ticket)))
	if cu.ConversationID == 0 || cu.ConversationStatus == conversationGone {
		log.Info("user has no ticket to change")
		return nil, nil
	}
	resolved := cu.ConversationStatus == "resolved"
	var text, status, op string
	switch m.Ticket {
	case TicketClose:
		if resolved && j.Attempts == 0 {
			log.Debug("ticket already closed")
			return nil, nil
		}
		text, status, op = c.texts.Agent(texts.AgentUserClosed, nil), "resolved", OpClosed
	case TicketReopen:
		if !resolved && j.Attempts == 0 {
			log.Debug("ticket already open")
			return nil, nil
		}
		text, status, op = c.texts.Agent(texts.AgentUserReopened, nil), "open", OpReopened
	default:
		return nil, Permanent(fmt.Sprintf("unknown ticket action %q", m.Ticket), nil)
	}
	// Stored before OneChat hears of it, for the instance that records the status change.
	if err := c.markTicketByUser(ctx, cu.ConversationID, op); err != nil {
		return nil, err
	}
	defer func() {
		// Kept while the job will be tried again (it stores it anew); gone once the change is
		// recorded or the job gave up.
		var perm *PermanentError
		if rerr != nil && !errors.As(rerr, &perm) && onechat.Classify(rerr) != onechat.ClassPermanent {
			return
		}
		if err := c.store.DeleteValue(context.WithoutCancel(ctx), corePlatform, ticketByUserKey(cu.ConversationID)); err != nil && rerr == nil {
			rerr = err
		}
	}()
	var id int64
	posted := false
	if j.Attempts > 0 {
		msg, err := c.alreadyPosted(ctx, cu, text, 0, j.CreatedAt)
		if err != nil && !onechat.IsNotFound(err) {
			return nil, err
		}
		if msg != nil {
			id, posted = msg.ID, true
		}
	}
	if !posted {
		var err error
		id, err = c.oc.PostMessage(ctx, cu.SourceID, cu.ConversationID, onechat.MessageParams{Content: text, EchoID: j.Dedup})
		if err != nil {
			return nil, err
		}
	}
	if m.Ticket == TicketClose {
		if _, err := c.oc.ResolveConversation(ctx, cu.SourceID, cu.ConversationID); err != nil {
			if errors.Is(err, onechat.ErrUnsupported) {
				return nil, Permanent("this OneChat cannot resolve conversations through the Client API (toggle_status)", err)
			}
			return nil, err
		}
	}
	// Agent messages written before the change whose events have not been read yet (or were
	// dropped) are queued first, so the change reaches the user after them.
	if err := c.catchUp(onechat.WithPriority(ctx, onechat.PriorityAgent), cu, cu.ConversationID, cursorRead{}); err != nil {
		return nil, err
	}
	if err := c.recordStatus(ctx, cu.ConversationID, cu.ConversationStatus, status, true); err != nil {
		return nil, err
	}
	log.Info("user changed their ticket", zap.Int64("conversation_id", cu.ConversationID))
	return []MessageLink{{OneChatMessageID: id, ConversationID: cu.ConversationID, Chat: m.Chat, PlatformMessageID: m.MessageID, Direction: In}}, nil
}

// awaitCSATComment remembers that the user just rated a CSAT survey, so that their next text
// within CSATCommentWindow becomes the rating's comment.
func (c *Core) awaitCSATComment(ctx context.Context, cu Customer, conversationID, messageID int64, rating int) error {
	if c.opts.CSATCommentWindow <= 0 {
		return nil
	}
	v := fmt.Sprintf("%d %d %d %d", conversationID, messageID, rating, time.Now().Unix())
	return c.store.SetValue(ctx, corePlatform, csatCommentKey(cu.User), v)
}

// csatComment makes the user's text the comment of the CSAT rating they gave within
// CSATCommentWindow, and thanks them; done says the message needs nothing more. The comment
// is not posted as a message: that would reopen the resolved conversation. A survey OneChat no
// longer accepts (expired) lets the text go on as an ordinary message.
func (c *Core) csatComment(ctx context.Context, cu Customer, m Inbound, j *Job) (done bool, err error) {
	text := strings.TrimSpace(m.Text)
	if c.opts.CSATCommentWindow <= 0 || text == "" || m.EditOf != "" || m.DeletedOf != "" || m.Choice != nil {
		return false, nil
	}
	if cu.ConversationStatus == "open" || cu.ConversationID == 0 {
		// A rating is given on a survey, which OneChat sends when it resolves the conversation,
		// and the status is recorded as soon as the survey is queued: an open conversation
		// has no rating waiting for its comment, and a customer without a conversation (a new
		// user) was never sent a survey. (Spares every ordinary message and every new user a
		// read.)
		return false, nil
	}
	key := csatCommentKey(cu.User)
	v, ok, err := c.store.Value(ctx, corePlatform, key)
	if err != nil || !ok {
		return false, err
	}
	var conv, msgID, at int64
	var rating int
	if _, err := fmt.Sscanf(v, "%d %d %d %d", &conv, &msgID, &rating, &at); err != nil || j.CreatedAt.Sub(time.Unix(at, 0)) > c.opts.CSATCommentWindow {
		return false, c.store.DeleteValue(ctx, corePlatform, key)
	}
	_, err = c.oc.UpdateMessage(ctx, cu.SourceID, conv, msgID, onechat.SubmittedValues{CSAT: &onechat.CSATResponse{Rating: rating, FeedbackMessage: text}})
	if onechat.IsValidation(err) || onechat.IsNotFound(err) {
		c.log.Info("CSAT comment refused by OneChat; posting it as a message", zap.Error(err))
		return false, c.store.DeleteValue(ctx, corePlatform, key)
	}
	if err != nil {
		return false, err
	}
	payload, err := jsonMarshal(Outbound{Op: OpNotice, User: cu.User, Chat: cu.Chat, ConversationID: conv, Text: c.texts.Text(c.UserLanguage(ctx, cu.User), texts.CSATThanks, nil)})
	if err != nil {
		return false, err
	}
	if _, err := c.enqueues.enqueue(ctx, JobBatch{Jobs: []NewJob{{Direction: Out, Key: cu.Chat.String(), Dedup: "csat-thanks:" + j.Dedup, Payload: payload}}}); err != nil {
		return false, err
	}
	c.log.Info("CSAT comment recorded", zap.Int64("conversation_id", conv), zap.Int64("message_id", msgID))
	return true, c.store.DeleteValue(ctx, corePlatform, key)
}
