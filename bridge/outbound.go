package bridge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"mime"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/onechat"
)

// catchupParallelism bounds concurrent REST catch-ups (each reads one customer's
// conversations; a reconnect schedules one per subscription).
const catchupParallelism = 16

// messagePageSize is the fixed page size of OneChat's message list.
const messagePageSize = 20

// cursorLag is how many messages not for the user a conversation's cursor may stay behind, so
// that a catch-up that queues nothing need not write it. Well under a page: a read then still
// reaches the cursor with its first request.
const cursorLag = messagePageSize / 2

// conversationCursor names the cursor that holds the highest OneChat message id of a
// conversation the core has read over REST and queued what needed queueing.
func conversationCursor(conversationID int64) string {
	return conversationCursorPrefix + strconv.FormatInt(conversationID, 10)
}

const conversationCursorPrefix = "onechat.conversation."

// cursorRead is the position of a conversation's cursor as read with its customer, so that the
// catch-up need not read it again.
type cursorRead struct {
	conversationID int64
	position       string
}

// reaches reports whether the cursor is at or past message id.
func (r cursorRead) reaches(id int64) bool {
	pos, err := strconv.ParseInt(r.position, 10, 64)
	return err == nil && pos >= id
}

// CableEvent implements onechat.CableHandler.
func (c *Core) CableEvent(ctx context.Context, ev onechat.Event) {
	switch ev.Name {
	case onechat.EventMessageCreated, onechat.EventMessageUpdated, onechat.EventConversationStatusChanged, onechat.EventConversationUpdated:
		c.watched.saw(ev.Token)
	}
	switch ev.Name {
	case onechat.EventMessageCreated:
		msg, err := ev.Message()
		if err != nil {
			c.log.Warn("undecodable cable message", zap.String("event", ev.Name), zap.Error(err))
			c.scheduleCatchup(ev.Token, 0)
			return
		}
		if msg.MessageType == onechat.MessageIncoming && msg.Sender != nil && msg.Sender.Type == "contact" {
			// The contact's own message says whether agents blocked it since.
			c.blocks.setContact(msg.Sender.ID, msg.Sender.Blocked, time.Now())
		}
		if !deliverable(*msg) {
			return
		}
		// The event is a hint, not the message to send: OneChat may have dropped earlier events
		// (its broadcasts have no sequence and no replay, and go through Sidekiq), so the
		// conversation is read over REST from its cursor and everything new is queued in order.
		// Several events of one conversation share one read, which also checks that the bridge
		// owns the conversation (events are handled one at a time: no database read here).
		c.scheduleCatchup(ev.Token, msg.ConversationID)
	case onechat.EventMessageUpdated:
		c.agentMessageUpdated(ctx, ev)
	case onechat.EventTypingOn, onechat.EventTypingOff:
		c.agentTyping(ev)
	case onechat.EventConversationCreated:
		// Nothing to read: a conversation the bridge created is recorded by its creator (open,
		// with no agent message yet, and the first one has its own event), and one an agent
		// opened with the contact is not the bridge's to deliver. Reading it cost every new
		// user a REST read and a cursor write.
	case onechat.EventConversationStatusChanged, onechat.EventConversationUpdated:
		conv, err := ev.Conversation()
		if err != nil {
			c.log.Warn("undecodable cable conversation", zap.String("event", ev.Name), zap.Error(err))
			return
		}
		if conv.Status == "" || conv.ID == 0 {
			return
		}
		// The status is recorded after the conversation's catch-up, so that what a resolve
		// causes (TicketKeeper) is queued after the agent's last reply. The event also shows
		// the conversation's latest chat message: a conversation read past it already (an
		// agent's first reply gives message.created and then conversation.updated) need not be
		// read again for this event (catchupToken).
		c.catchupMu.Lock()
		c.statusPending[conv.ID] = conv.Status
		c.catchupMu.Unlock()
		latest := readAll
		if conv.LatestMessageID > 0 {
			latest = conv.LatestMessageID
		}
		c.scheduleStatusCatchup(ev.Token, conv.ID, latest)
	}
}

// catchupSet is what a customer's next catch-up reads: conversation id (0: the current one,
// with its status) → readAll, or the id of the latest chat message a status event of the
// conversation showed, when only such events asked for the read: then a cursor already at or
// past that message means nothing announced so far is missing, and the read is skipped.
type catchupSet map[int64]int64

// readAll marks a conversation of a catchupSet that is read whatever its cursor.
const readAll int64 = -1

// CableConfirmed implements onechat.CableHandler: the cable has no replay, so every
// (re)confirmed subscription is followed by a REST catch-up of its current conversation, with
// its status.
func (c *Core) CableConfirmed(ctx context.Context, token string) {
	c.scheduleCatchup(token, 0)
}

// scheduleCatchup asks for a catch-up of one conversation of the token's customer, or of its
// current conversation and status when conversationID is 0.
func (c *Core) scheduleCatchup(token string, conversationID int64) {
	c.scheduleStatusCatchup(token, conversationID, readAll)
}

// scheduleStatusCatchup asks for a catch-up of one conversation of the token's customer for a
// status event that showed latest as the conversation's latest chat message (readAll: read it
// in any case); see catchupSet.
func (c *Core) scheduleStatusCatchup(token string, conversationID, latest int64) {
	c.catchupMu.Lock()
	convs := c.catchupPending[token]
	if convs == nil {
		convs = make(catchupSet)
		c.catchupPending[token] = convs
	}
	if prev, ok := convs[conversationID]; ok && (prev == readAll || latest == readAll) {
		latest = readAll
	} else if ok {
		latest = max(prev, latest)
	}
	convs[conversationID] = latest
	c.catchupMu.Unlock()
	c.catchupWake.notify()
}

// catchupLoop runs the scheduled catch-ups with catchupParallelism workers until ctx is
// cancelled. A customer's catch-ups never run concurrently: events that arrive while one runs
// are read by the next. A catch-up that fails is scheduled again, and its worker backs off.
func (c *Core) catchupLoop(ctx context.Context) error {
	var workers sync.WaitGroup
	for range catchupParallelism {
		workers.Go(func() { c.catchupWorker(ctx) })
	}
	workers.Wait()
	return nil
}

func (c *Core) catchupWorker(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		woken := c.catchupWake.wait()
		token, convs, ok := c.takeCatchup()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-woken:
			}
			continue
		}
		err := c.catchupToken(ctx, token, convs)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("catch-up failed, will retry", zap.Error(err))
			failures++
			// The customer stays taken while this worker backs off, so no other retries it sooner.
			sleepCtx(ctx, c.backoff(failures))
			for conv := range convs {
				c.scheduleCatchup(token, conv)
			}
		} else {
			failures = 0
		}
		c.catchupMu.Lock()
		delete(c.catchupBusy, token)
		c.catchupMu.Unlock()
		// Catch-ups of this customer scheduled meanwhile waited for it: wake a worker for them.
		c.catchupWake.notify()
	}
}

// takeCatchup takes a scheduled catch-up of a customer no other worker is reading.
func (c *Core) takeCatchup() (token string, convs catchupSet, ok bool) {
	c.catchupMu.Lock()
	defer c.catchupMu.Unlock()
	for token, convs := range c.catchupPending {
		if _, busy := c.catchupBusy[token]; busy {
			continue
		}
		delete(c.catchupPending, token)
		c.catchupBusy[token] = struct{}{}
		return token, convs, true
	}
	return "", nil, false
}

func (c *Core) catchupToken(ctx context.Context, token string, convs catchupSet) error {
	// Catch-up reads find agents' replies: they go before every user's request.
	ctx = onechat.WithPriority(ctx, onechat.PriorityAgent)
	cu, pos, err := c.store.CustomerByPubsubToken(ctx, token, conversationCursorPrefix)
	current := cursorRead{conversationID: cu.ConversationID, position: pos}
	if errors.Is(err, ErrNotFound) {
		c.takeStatuses(0, convs)
		return nil
	}
	if err != nil {
		return err
	}
	c.catchupMu.Lock()
	_, refresh := c.refresh[token]
	delete(c.refresh, token)
	c.catchupMu.Unlock()
	if refresh {
		return c.refreshContact(ctx, cu)
	}
	// Statuses the cable announced before this read began are recorded after it, behind the
	// agent messages it queues: every message written before the status changed is in the
	// read. A status announced during the read waits for the next one, which its event
	// scheduled: recorded now, it could overtake a message the read missed.
	statuses := c.takeStatuses(cu.ConversationID, convs)
	defer func() {
		for id, status := range statuses {
			c.putStatus(id, status)
		}
	}()
	if status, ok := statuses[cu.ConversationID]; ok && cu.ConversationID != 0 {
		// The event's status may be older than one another writer recorded since (the
		// user's close, recorded while this event was on its way): the current conversation's
		// status is read over REST instead, before its messages (0), and recorded only over
		// the status read from the store above.
		delete(statuses, cu.ConversationID)
		if status != cu.ConversationStatus {
			convs[0] = readAll
		}
	}
	if latest, ok := convs[cu.ConversationID]; ok && latest != readAll && cu.ConversationID != 0 {
		if _, withStatus := convs[0]; !withStatus && current.reaches(latest) {
			// Only status events asked, with an unchanged status, and the conversation was read
			// past the latest message they showed: every message they could stand for is queued.
			delete(convs, cu.ConversationID)
			c.log.Debug("conversation already read past the status event's latest message", zap.Int64("conversation_id", cu.ConversationID))
		}
	}
	// Oldest conversation first, the current one (0) with its status.
	ids := slices.Sorted(maps.Keys(convs))
	for _, id := range ids {
		if id == cu.ConversationID && slices.Contains(ids, 0) {
			continue // the current conversation is read with its status (0)
		}
		if id != 0 && id != cu.ConversationID {
			// A past conversation of the customer's, or one an agent opened with the contact
			// that the bridge does not own: only the bridge's own are delivered.
			owner, err := c.store.CustomerByConversation(ctx, id)
			if errors.Is(err, ErrNotFound) || err == nil && owner.ID != cu.ID {
				c.log.Debug("message for a conversation the bridge does not own", zap.Int64("conversation_id", id))
				delete(statuses, id)
				continue
			}
			if err != nil {
				return err
			}
		}
		if err := c.catchUp(ctx, cu, id, current); err != nil {
			return err
		}
		if id == 0 {
			continue
		}
		if status, ok := statuses[id]; ok {
			if err := c.recordStatus(ctx, id, "", status, false); err != nil {
				return err // given back by the deferred putStatus
			}
			delete(statuses, id)
		}
	}
	return nil
}

// CableSilent implements onechat.CableSilentHandler: OneChat answers an unknown pubsub token
// with silence, so a subscription that stays unconfirmed gets its contact session read again.
func (c *Core) CableSilent(ctx context.Context, token string) {
	c.catchupMu.Lock()
	c.refresh[token] = struct{}{}
	c.catchupMu.Unlock()
	c.scheduleCatchup(token, 0)
}

// CableRejected implements onechat.CableRejectedHandler. The cable keeps retrying; a rejection
// only happens when something in front of OneChat refuses the channel, which operators must see.
func (c *Core) CableRejected(ctx context.Context, token string) {
	c.log.Warn("OneChat's cable rejected a contact subscription; agent replies to that user arrive only through catch-up")
}

// refreshContact reads a silent subscription's contact session again: a new pubsub token is
// stored and subscribed instead of the old one; a session OneChat no longer has is forgotten,
// so the user's next message creates a new one.
func (c *Core) refreshContact(ctx context.Context, cu Customer) error {
	contact, err := c.oc.GetContact(ctx, cu.SourceID, cu.Identifier)
	if onechat.IsNotFound(err) {
		c.log.Warn("contact session of a silent subscription is gone from OneChat; the user's next message creates a new one",
			zap.Int64("contact_id", cu.ContactID))
		return c.forgetContact(ctx, cu)
	}
	if err != nil {
		return fmt.Errorf("refresh contact: %w", err)
	}
	if contact.PubsubToken == "" || contact.PubsubToken == cu.PubsubToken {
		c.log.Warn("OneChat does not confirm a contact subscription although the session exists: check OneChat's cable and Sidekiq",
			zap.Int64("contact_id", cu.ContactID))
		return nil
	}
	old := cu.PubsubToken
	cu, ok, err := c.store.SetContactSession(ctx, cu.ID, cu.SourceID,
		Customer{SourceID: cu.SourceID, PubsubToken: contact.PubsubToken, ContactID: cu.ContactID})
	if err != nil {
		return err
	}
	if !ok {
		return nil // the session was replaced meanwhile, and its writer subscribed it
	}
	c.roles.untrack(cu.ID, old)
	c.subscribeCustomer(ctx, cu)
	c.log.Info("contact's cable token changed; subscribed the new one", zap.Int64("contact_id", cu.ContactID))
	return nil
}

// catchUp reads one of the customer's conversations (0: the current one, with its status)
// over REST back to its cursor and queues every agent message not queued yet, oldest first,
// and then the jobs then, in the same transaction. The message list only pages backwards, 20
// at a time, so it pages until it reaches the cursor or the first message.
func (c *Core) catchUp(ctx context.Context, cu Customer, conversationID int64, read cursorRead, then ...NewJob) (rerr error) {
	if cu.SourceID == "" {
		return c.enqueueThen(ctx, then)
	}
	// A catch-up for a message event reads what that event announced; one after a
	// (re)confirm finds only what the cable missed.
	afterEvent := conversationID != 0
	if conversationID == 0 {
		if cu.ConversationID == 0 || cu.ConversationStatus == conversationGone {
			return nil
		}
		conversationID = cu.ConversationID
		// A status change the cable missed (an agent resolved while it was down) matters for
		// the resolved-conversation policy and the ticket's lifecycle, so the status is read
		// again too, and recorded after the messages are queued.
		conv, err := c.oc.GetConversation(ctx, cu.SourceID, cu.ConversationID)
		if err == nil {
			c.learnInbox(conv)
		}
		switch {
		case err == nil && conv.Status != "" && conv.Status != cu.ConversationStatus:
			id := cu.ConversationID
			defer func() {
				if rerr == nil {
					rerr = c.recordStatus(ctx, id, cu.ConversationStatus, conv.Status, false)
				}
			}()
		case err != nil && !onechat.IsNotFound(err):
			return fmt.Errorf("catch up conversation %d: %w", cu.ConversationID, err)
		}
	}
	cu.ConversationID = conversationID
	name := conversationCursor(cu.ConversationID)
	stored := read.position
	var err error
	if read.conversationID == 0 || read.conversationID != cu.ConversationID {
		if stored, err = c.store.Cursor(ctx, name); err != nil {
			return err
		}
	}
	pos := ParsePosition(stored)
	var missed []onechat.Message
	var highest int64
	err = c.messagesBack(ctx, cu.SourceID, cu.ConversationID, func(m onechat.Message) bool {
		highest = max(highest, m.ID)
		if m.ID <= pos {
			return false
		}
		missed = append(missed, m)
		return true
	})
	if onechat.IsNotFound(err) {
		return c.enqueueThen(ctx, then) // the conversation is gone from OneChat: nothing more to deliver
	}
	if err != nil {
		return fmt.Errorf("catch up conversation %d: %w", cu.ConversationID, err)
	}
	if highest <= pos {
		return c.enqueueThen(ctx, then)
	}
	if len(then) == 0 && len(missed) < cursorLag && !slices.ContainsFunc(missed, deliverable) {
		// Only messages not for the user (their own, mostly) since the cursor, and few: the
		// cursor stays, which saves a commit per message of a user who writes and is not
		// answered yet. The next read meets them again in its first page and passes over them.
		return nil
	}
	// Pages come newest first: queue the messages oldest first, as the agent wrote them.
	slices.SortFunc(missed, func(a, b onechat.Message) int { return cmp.Compare(a.ID, b.ID) })
	n, err := c.enqueueAgentMessages(ctx, cu, cu.ConversationID, missed, IntCursor(name, highest), then...)
	if err != nil {
		return err
	}
	switch {
	case n > 0 && !afterEvent:
		c.log.Info("caught up agent messages the cable missed", zap.Int64("conversation_id", cu.ConversationID), zap.Int("messages", n))
	case n > 0:
		c.log.Debug("queued agent messages", zap.Int64("conversation_id", cu.ConversationID), zap.Int("messages", n))
	}
	return nil
}

// messagesBack calls yield with the conversation's messages from the newest back, reading a
// page (20) per request, until yield returns false or the first message was passed. The message
// list only pages backwards.
func (c *Core) messagesBack(ctx context.Context, sourceID string, conversationID int64, yield func(onechat.Message) bool) error {
	var before int64
	for {
		page, err := c.oc.ListMessages(ctx, sourceID, conversationID, before)
		if err != nil {
			return err
		}
		slices.SortFunc(page, func(a, b onechat.Message) int { return cmp.Compare(b.ID, a.ID) })
		for _, m := range page {
			if !yield(m) {
				return nil
			}
		}
		// A short page is the conversation's first; a page that does not go back means a
		// server that ignores `before`.
		if len(page) < messagePageSize || (before != 0 && page[len(page)-1].ID >= before) {
			return nil
		}
		before = page[len(page)-1].ID
	}
}

// deliverable says whether a OneChat message is one the user should receive: an agent's or a
// template message, not a private note, not the contact's own message.
func deliverable(m onechat.Message) bool {
	if m.Private {
		return false
	}
	if m.MessageType != onechat.MessageOutgoing && m.MessageType != onechat.MessageTemplate {
		return false
	}
	if m.Deleted() {
		return false
	}
	return m.Content != "" || len(m.Attachments) > 0 || m.ContentType == "input_csat"
}

// enqueueThen queues jobs of the core's own (a catch-up's then) in the outbound queue.
func (c *Core) enqueueThen(ctx context.Context, jobs []NewJob) error {
	if len(jobs) == 0 {
		return nil
	}
	n, err := c.enqueues.enqueue(ctx, JobBatch{Jobs: jobs})
	if n > 0 {
		c.opts.Metrics.queued(Out, Platform(platformOf(jobs[0].Key)), n)
	}
	return err
}

// enqueueAgentMessages queues the deliverable messages for the customer's chat, keyed by chat so
// they are sent in order, then the jobs then, and moves cur in the same transaction.
func (c *Core) enqueueAgentMessages(ctx context.Context, cu Customer, conversationID int64, msgs []onechat.Message, cur Cursor, then ...NewJob) (int, error) {
	jobs := make([]NewJob, 0, len(msgs)+len(then))
	for _, m := range msgs {
		if !deliverable(m) {
			continue
		}
		out := Outbound{
			User:           cu.User,
			Chat:           cu.Chat,
			ConversationID: conversationID,
			MessageID:      m.ID,
			Text:           m.Content,
			InReplyTo:      inReplyTo(m),
			ContentType:    m.ContentType,
			Items:          items(m),
			Attachments:    attachments(m),
		}
		if m.Sender != nil {
			out.AgentName = m.Sender.AvailableName
			if out.AgentName == "" {
				out.AgentName = m.Sender.Name
			}
		}
		payload, err := jsonMarshal(out)
		if err != nil {
			return 0, err
		}
		jobs = append(jobs, NewJob{Direction: Out, Key: cu.Chat.String(), Dedup: outboundDedup(m.ID), Payload: payload})
	}
	jobs = append(jobs, then...)
	if len(jobs) == 0 && cur.Name == "" {
		return 0, nil
	}
	n, err := c.enqueues.enqueue(ctx, JobBatch{Cursor: cur, Jobs: jobs})
	if err != nil {
		return 0, err
	}
	if n > 0 {
		c.opts.Metrics.queued(Out, cu.Chat.Platform, n)
	}
	return n, nil
}

func inReplyTo(m onechat.Message) int64 {
	switch v := m.ContentAttributes["in_reply_to"].(type) {
	case float64:
		return int64(v)
	case int64:
		return v
	case json.Number:
		n, _ := v.Int64()
		return n
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// handleOutbound sends one agent message through the adapter of its platform.
func (c *Core) handleOutbound(ctx context.Context, j *Job) ([]MessageLink, error) {
	// An agent's reply (its files are downloaded from OneChat) goes before users' requests.
	ctx = onechat.WithPriority(ctx, onechat.PriorityAgent)
	var m Outbound
	if err := json.Unmarshal(j.Payload, &m); err != nil {
		return nil, Permanent("undecodable queued message", err)
	}
	// The user's chat may have moved since the message was queued (ChatMover). The claim read
	// the customer, usually.
	cu, err := j.Customer, error(nil)
	if !j.CustomerRead || cu != nil && cu.User != m.User {
		var read Customer
		read, err = c.store.Customer(ctx, m.User)
		cu = &read
	}
	if err == nil && cu != nil && cu.Chat.ID != "" && cu.Chat.Platform == m.Chat.Platform {
		m.Chat = cu.Chat
	}
	a, ok := c.adapters[m.Chat.Platform]
	if !ok {
		return nil, Permanent(fmt.Sprintf("no %s adapter is configured", m.Chat.Platform), nil)
	}
	moveLinksToText(&m)
	switch m.Op {
	case OpEdit, OpDelete:
		return nil, c.changeSent(ctx, a, m)
	case OpClosed, OpReopened:
		return nil, c.ticketChanged(ctx, a, j, m)
	case OpNotice:
		_, err := a.Send(ctx, m)
		return nil, err
	}
	if m.InReplyTo != 0 && m.ReplyTo == "" {
		links, err := c.store.LinkByOneChat(ctx, m.InReplyTo)
		if err != nil {
			return nil, err
		}
		for _, l := range links {
			if l.Chat == m.Chat {
				m.ReplyTo = l.PlatformMessageID
				break
			}
		}
	}
	if j.Retried {
		// An earlier attempt may have delivered some of the message's parts before it failed:
		// send only the rest.
		var err error
		if m.Parts, err = c.sentParts(ctx, m); err != nil {
			return nil, err
		}
		if len(m.Parts) > 0 {
			c.log.Info("continuing an agent message an earlier attempt delivered in part", zap.Int64("message_id", m.MessageID),
				zap.Int("parts_delivered", len(m.Parts)))
		}
	}
	release, leftOut, err := c.openOutbound(ctx, &m, j.Attempts+1)
	if err != nil {
		return nil, err
	}
	ids, err := a.Send(ctx, m)
	release()
	if m.MessageID == 0 {
		// A notice of the bridge's own (blocked, slow down) is no OneChat message: nothing to link.
		ids = nil
	}
	var partial *PartialError
	if errors.As(err, &partial) {
		// Delivered without what the platform would not take: agents are told once it is
		// recorded, the user by a line queued behind the message now (durable before the
		// delivery is recorded, and once: a retry finds it queued).
		leftOut, err = append(leftOut, partial.Notes...), nil
		if len(partial.Untold) > 0 && m.MessageID != 0 {
			err = c.tellUserLeftOut(ctx, m, partial.Untold)
		}
	}
	if err == nil {
		j.leftOut = leftOut
	}
	links := make([]MessageLink, 0, len(ids))
	for _, id := range ids {
		links = append(links, MessageLink{
			OneChatMessageID:  m.MessageID,
			ConversationID:    m.ConversationID,
			Chat:              m.Chat,
			PlatformMessageID: id,
			Direction:         Out,
		})
	}
	if err != nil {
		return links, err // the parts delivered are recorded with the retry
	}
	c.log.Debug("agent message delivered", zap.String("platform", string(m.Chat.Platform)), zap.String("chat", m.Chat.ID),
		zap.Int64("conversation_id", m.ConversationID), zap.Int64("message_id", m.MessageID), zap.Strings("platform_message_ids", ids))
	return links, nil
}

// sentParts returns the platform ids of the parts of agent message m delivered to its chat so
// far, in order.
func (c *Core) sentParts(ctx context.Context, m Outbound) ([]string, error) {
	links, err := c.store.LinkByOneChat(ctx, m.MessageID)
	if err != nil {
		return nil, err
	}
	var parts []string
	for _, l := range links {
		if l.Chat == m.Chat && l.Direction == Out {
			parts = append(parts, l.PlatformMessageID)
		}
	}
	return parts, nil
}

// markUnreachable records that the user of an outbound job cannot be reached, so operators
// see it; the user's next message clears it.
func (c *Core) markUnreachable(ctx context.Context, j *Job, reason string) {
	if j.Direction != Out {
		return
	}
	var m Outbound
	if err := json.Unmarshal(j.Payload, &m); err != nil {
		return
	}
	cu, err := c.store.Customer(ctx, m.User)
	if err != nil {
		return
	}
	wasReachable := cu.UnreachableReason == ""
	cu.UnreachableReason = reason
	if cu, err = c.store.UpdateCustomer(ctx, cu, CustomerReachability); err != nil {
		c.log.Warn("record unreachable user", zap.Error(err))
		return
	}
	if wasReachable {
		c.setReachability(ctx, cu, reason)
	}
}

// setReachability tells agents in the contact's custom attributes whether the bridge can reach
// the user (bridge_status, with the reason and time when it cannot). It is best effort: the
// queue already recorded the failure.
func (c *Core) setReachability(ctx context.Context, cu Customer, reason string) {
	if cu.SourceID == "" || cu.PubsubToken == "" {
		return
	}
	attrs := map[string]any{"bridge_status": "reachable", "bridge_unreachable_reason": "", "bridge_unreachable_since": ""}
	if reason != "" {
		attrs = map[string]any{
			"bridge_status":             "unreachable",
			"bridge_unreachable_reason": reason,
			"bridge_unreachable_since":  time.Now().UTC().Format(time.RFC3339),
		}
	}
	if _, err := c.oc.UpdateContact(ctx, cu.SourceID, cu.Identifier, onechat.ContactParams{CustomAttributes: attrs}); err != nil {
		c.log.Warn("record reachability in OneChat", zap.Int64("contact_id", cu.ContactID), zap.Error(err))
	}
}

// agentMessageUpdated turns an agent's edit or delete of a message the bridge delivered into an
// edit or delete of the platform messages it became. message.updated also fires for status
// changes (read, delivered) with unchanged content: those are recognised by comparing with
// what was sent, and ignored.
func (c *Core) agentMessageUpdated(ctx context.Context, ev onechat.Event) {
	msg, err := ev.Message()
	if err != nil {
		c.log.Warn("undecodable cable message", zap.String("event", ev.Name), zap.Error(err))
		return
	}
	if msg.Private || (msg.MessageType != onechat.MessageOutgoing && msg.MessageType != onechat.MessageTemplate) {
		return
	}
	cu, err := c.store.CustomerByConversation(ctx, msg.ConversationID)
	if err != nil {
		return
	}
	sentDedup := outboundDedup(msg.ID)
	p, err := c.store.JobPayload(ctx, Out, sentDedup)
	if errors.Is(err, ErrNotFound) {
		// Never queued: an update can overtake its message.created (rough edge 22), and the
		// catch-up or the created event will queue the current content.
		return
	}
	if err != nil {
		c.log.Warn("look up sent message", zap.Int64("message_id", msg.ID), zap.Error(err))
		return
	}
	var sent Outbound
	if err := json.Unmarshal(p, &sent); err != nil {
		return
	}
	out := Outbound{
		User:           cu.User,
		Chat:           cu.Chat,
		ConversationID: msg.ConversationID,
		MessageID:      msg.ID,
		Text:           msg.Content,
		ContentType:    msg.ContentType,
		Items:          items(*msg),
		// An edit must describe the message as it was sent (the platform decides from the
		// files which parts carry text); OneChat keeps the files on an edit.
		Attachments: attachments(*msg),
	}
	if len(out.Attachments) == 0 {
		out.Attachments = sent.Attachments
	}
	var dedup string
	switch {
	case msg.Deleted():
		out.Op, out.Text = OpDelete, ""
		dedup = sentDedup + ":delete"
	case msg.Content != sent.Text:
		out.Op = OpEdit
		dedup = sentDedup + ":edit:" + contentHash(msg.Content)
	default:
		return
	}
	payload, err := jsonMarshal(out)
	if err != nil {
		return
	}
	if _, err := c.enqueues.enqueue(ctx, JobBatch{Jobs: []NewJob{{Direction: Out, Key: cu.Chat.String(), Dedup: dedup, Payload: payload}}}); err != nil {
		c.log.Warn("queue agent edit", zap.Int64("message_id", msg.ID), zap.Error(err))
	}
}

// changeSent edits or deletes the platform messages an agent message became. Parts are read
// from the message map when the job runs, after the original send (same chat, FIFO).
func (c *Core) changeSent(ctx context.Context, a Adapter, m Outbound) error {
	var err error
	if m.Parts, err = c.sentParts(ctx, m); err != nil {
		return err
	}
	log := c.log.With(zap.String("platform", string(m.Chat.Platform)), zap.Int64("message_id", m.MessageID), zap.String("op", m.Op))
	if len(m.Parts) == 0 {
		log.Info("agent changed a message the user never received; nothing to change")
		return nil
	}
	switch m.Op {
	case OpEdit:
		e, ok := a.(Editor)
		if !ok {
			log.Info("platform cannot edit messages; the edit stays in OneChat")
			return nil
		}
		return e.Edit(ctx, m)
	default:
		d, ok := a.(Deleter)
		if !ok {
			log.Info("platform cannot delete messages; the delete stays in OneChat")
			return nil
		}
		return d.Delete(ctx, m)
	}
}

// agentTyping shows an agent's typing in the user's chat. Typing while writing a private note
// is never shown. It is ephemeral, so it is handed to the typing loop and dropped if that is
// busy rather than queued durably.
func (c *Core) agentTyping(ev onechat.Event) {
	t, err := ev.Typing()
	if err != nil || t.Private || t.Conversation.ID == 0 {
		return
	}
	select {
	case c.typing <- typingReq{conversationID: t.Conversation.ID, on: t.On}:
	default:
		c.log.Debug("typing indicator dropped: typing loop busy")
	}
}

// typingReq is a typing change: an agent's (conversationID set) or a user's (user set).
type typingReq struct {
	conversationID int64
	on             bool
	user           *UserRef
}

// userTypingFor is how long a user's typing shows in OneChat without news from the platform.
const userTypingFor = 10 * time.Second

// agentTypingFor is how long the agent's typing is kept alive on the platform without news
// from OneChat (a lost "typing off" must not leave the indicator on for ever).
const agentTypingFor = 30 * time.Second

// agentTyping is a chat where the agent's typing is shown.
type agentTypingState struct {
	typer      Typer
	next, stop time.Time // when to show it again; when to give up without news
}

// typingLoop relays typing both ways until ctx is cancelled. OneChat never times typing out,
// so the user's typing is switched off userTypingFor after the platform last reported it.
// Platforms time their indicator out after a few seconds, so the agent's typing is shown again
// every Typer.TypingRefresh until the agent stops (or agentTypingFor passes without news): one
// keep-alive for every adapter, on the instance that hears the agent.
func (c *Core) typingLoop(ctx context.Context) error {
	userOff := map[int64]time.Time{} // conversation → when to switch the user's typing off
	sourceOf := map[int64]string{}
	agents := map[ChatRef]*agentTypingState{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	call := func(f func(ctx context.Context) error) {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := f(callCtx); err != nil && ctx.Err() == nil {
			c.log.Debug("typing indicator not shown", zap.Error(err))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			for chat, st := range agents {
				switch {
				case now.After(st.stop):
					delete(agents, chat)
				case !now.Before(st.next):
					st.next = now.Add(st.typer.TypingRefresh())
					call(func(ctx context.Context) error { return st.typer.ShowTyping(ctx, chat) })
				}
			}
			for conv, at := range userOff {
				if now.After(at) {
					delete(userOff, conv)
					src := sourceOf[conv]
					delete(sourceOf, conv)
					call(func(ctx context.Context) error { return c.oc.ToggleTyping(ctx, src, conv, false) })
				}
			}
		case r := <-c.typing:
			if r.user != nil {
				cu, err := c.store.Customer(ctx, *r.user)
				if err != nil || cu.ConversationID == 0 || cu.SourceID == "" {
					continue
				}
				if _, showing := userOff[cu.ConversationID]; !showing {
					call(func(ctx context.Context) error { return c.oc.ToggleTyping(ctx, cu.SourceID, cu.ConversationID, true) })
				}
				userOff[cu.ConversationID] = time.Now().Add(userTypingFor)
				sourceOf[cu.ConversationID] = cu.SourceID
				continue
			}
			cu, err := c.store.CustomerByConversation(ctx, r.conversationID)
			if err != nil || cu.ConversationID != r.conversationID {
				continue
			}
			t, ok := c.adapters[cu.Chat.Platform].(Typer)
			if !ok {
				continue
			}
			if !r.on {
				delete(agents, cu.Chat)
				continue
			}
			now := time.Now()
			if st, showing := agents[cu.Chat]; showing {
				st.stop = now.Add(agentTypingFor)
				continue
			}
			agents[cu.Chat] = &agentTypingState{typer: t, next: now.Add(t.TypingRefresh()), stop: now.Add(agentTypingFor)}
			call(func(ctx context.Context) error { return t.ShowTyping(ctx, cu.Chat) })
		}
	}
}

// UserTyping is Host.UserTyping for every adapter.
func (c *Core) UserTyping(ctx context.Context, u UserRef, chat ChatRef) {
	select {
	case c.typing <- typingReq{user: &u}:
	default:
	}
}

// MoveChat is Host.MoveChat for every adapter: the user's replies go to chat from now on, including those
// already queued (the outbound worker reads the customer's chat when it sends).
func (c *Core) MoveChat(ctx context.Context, u UserRef, chat ChatRef) error {
	if chat.Platform != u.Platform {
		return fmt.Errorf("move chat: %s user cannot move to a %s chat", u.Platform, chat.Platform)
	}
	// Only the chat is written, so a contact session or reachability stored meanwhile stays.
	if _, err := c.store.UpdateCustomer(ctx, Customer{User: u, Chat: chat}, CustomerChat); err != nil {
		return fmt.Errorf("move chat: %w", err)
	}
	c.log.Info("user's chat moved", zap.String("platform", string(u.Platform)), zap.String("chat", chat.ID))
	return nil
}

func outboundDedup(messageID int64) string { return "onechat:" + strconv.FormatInt(messageID, 10) }

func contentHash(s string) string {
	h := fnv.New64a()
	h.Write([]byte(s))
	return strconv.FormatUint(h.Sum64(), 36)
}

// attachments describes a OneChat message's files; they are streamed from data_url at send
// time, never relayed as links.
func attachments(m onechat.Message) []Attachment {
	var out []Attachment
	for _, a := range m.Attachments {
		if a.DataURL == "" {
			continue
		}
		kind := KindFile
		switch a.FileType {
		case "fallback", "location", "embed":
			// Links to elsewhere, not stored files: sent as text, never fetched.
			out = append(out, Attachment{Kind: KindLink, Name: a.FallbackTitle, Ref: a.DataURL})
			continue
		case "image":
			kind = KindImage
		case "audio":
			kind = KindAudio
		case "video":
			kind = KindVideo
		}
		name := ""
		if i := strings.IndexAny(a.DataURL, "?#"); i >= 0 {
			name = path.Base(a.DataURL[:i])
		} else {
			name = path.Base(a.DataURL)
		}
		// The platform picks how to show a file (photo, audio, document) from its type; the
		// REST shape has none, so it is taken from the file name, as OneChat stored it.
		mimeType := mimeByExt(path.Ext(name))
		if i := strings.IndexByte(mimeType, ';'); i >= 0 {
			mimeType = mimeType[:i]
		}
		if name, err := url.PathUnescape(name); err == nil {
			out = append(out, Attachment{Kind: kind, Name: name, MIME: mimeType, Size: a.FileSize, Ref: a.DataURL})
			continue
		}
		out = append(out, Attachment{Kind: kind, Name: name, MIME: mimeType, Size: a.FileSize, Ref: a.DataURL})
	}
	return out
}

// items reads content_attributes.items of interactive messages (input_select options, cards,
// articles).
func items(m onechat.Message) []Item {
	raw, ok := m.ContentAttributes["items"].([]any)
	if !ok {
		return nil
	}
	str := func(v map[string]any, keys ...string) string {
		for _, k := range keys {
			if s, ok := v[k].(string); ok && s != "" {
				return s
			}
			if f, ok := v[k].(float64); ok {
				return strconv.FormatFloat(f, 'f', -1, 64)
			}
		}
		return ""
	}
	var out []Item
	for _, r := range raw {
		v, ok := r.(map[string]any)
		if !ok {
			continue
		}
		out = append(out, Item{
			Title:       str(v, "title", "label"),
			Value:       str(v, "value", "payload"),
			Description: str(v, "description"),
			Link:        str(v, "link", "url"),
			MediaURL:    str(v, "media_url"),
		})
	}
	return out
}

// mediaTypes covers the media files agents send most, since the container image has no
// system MIME table and Go's own knows images and documents only.
var mediaTypes = map[string]string{
	".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
	".m4a": "audio/mp4", ".wav": "audio/wav", ".aac": "audio/aac", ".flac": "audio/flac",
	".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime",
	".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
	".webp": "image/webp", ".pdf": "application/pdf",
}

func mimeByExt(ext string) string {
	ext = strings.ToLower(ext)
	if t, ok := mediaTypes[ext]; ok {
		return t
	}
	return mime.TypeByExtension(ext)
}
