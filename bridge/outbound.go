package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/onechat/onechat-bridge/onechat"
)

// catchupParallelism bounds concurrent REST catch-ups after a reconnect.
const catchupParallelism = 4

// messagePageSize is the fixed page size of OneChat's message list.
const messagePageSize = 20

// conversationCursor names the cursor that holds the highest OneChat message id of a
// conversation the core has read over REST and queued what needed queueing.
func conversationCursor(conversationID int64) string {
	return "onechat.conversation." + strconv.FormatInt(conversationID, 10)
}

// CableEvent implements onechat.CableHandler.
func (c *Core) CableEvent(ctx context.Context, ev onechat.Event) {
	switch ev.Name {
	case "message.created":
		msg, err := ev.Message()
		if err != nil {
			c.log.Warn("undecodable cable message", zap.String("event", ev.Name), zap.Error(err))
			c.scheduleCatchup(ev.Token)
			return
		}
		cu, err := c.store.CustomerByConversation(ctx, msg.ConversationID)
		if errors.Is(err, ErrNotFound) {
			c.log.Debug("message for a conversation the bridge does not own", zap.Int64("conversation_id", msg.ConversationID))
			return
		}
		if err == nil {
			_, err = c.enqueueAgentMessages(ctx, cu, msg.ConversationID, []onechat.Message{*msg}, Cursor{})
		}
		if err != nil {
			// The cursor did not move past this message, so a catch-up finds it again.
			c.log.Warn("queue agent message", zap.Int64("message_id", msg.ID), zap.Error(err))
			c.scheduleCatchup(ev.Token)
		}
	case "conversation.status_changed", "conversation.updated", "conversation.created":
		conv, err := ev.Conversation()
		if err != nil {
			c.log.Warn("undecodable cable conversation", zap.String("event", ev.Name), zap.Error(err))
			return
		}
		if conv.Status == "" {
			return
		}
		err = c.store.SetConversationStatus(ctx, conv.ID, conv.Status)
		if err != nil && !errors.Is(err, ErrNotFound) {
			c.log.Warn("record conversation status", zap.Int64("conversation_id", conv.ID), zap.Error(err))
		}
	}
}

// CableConfirmed implements onechat.CableHandler: the cable has no replay, so every
// (re)confirmed subscription is followed by a REST catch-up of its conversation.
func (c *Core) CableConfirmed(ctx context.Context, token string) {
	c.scheduleCatchup(token)
}

func (c *Core) scheduleCatchup(token string) {
	c.catchupMu.Lock()
	c.catchupPending[token] = struct{}{}
	c.catchupMu.Unlock()
	c.catchupWake.notify()
}

// catchupLoop runs the scheduled catch-ups until ctx is cancelled. A catch-up that fails is
// scheduled again after a backoff.
func (c *Core) catchupLoop(ctx context.Context) error {
	failures := 0
	for {
		woken := c.catchupWake.wait()
		c.catchupMu.Lock()
		tokens := make([]string, 0, len(c.catchupPending))
		for t := range c.catchupPending {
			tokens = append(tokens, t)
		}
		clear(c.catchupPending)
		c.catchupMu.Unlock()

		if len(tokens) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-woken:
			}
			continue
		}
		var g errgroup.Group
		g.SetLimit(catchupParallelism)
		for _, token := range tokens {
			g.Go(func() error {
				if err := c.catchupToken(ctx, token); err != nil {
					if ctx.Err() == nil {
						c.log.Warn("catch-up failed, will retry", zap.Error(err))
					}
					c.catchupMu.Lock()
					c.catchupPending[token] = struct{}{}
					c.catchupMu.Unlock()
					return err
				}
				return nil
			})
		}
		if g.Wait() != nil {
			failures++
			sleepCtx(ctx, c.backoff(failures))
		} else {
			failures = 0
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (c *Core) catchupToken(ctx context.Context, token string) error {
	cu, err := c.store.CustomerByPubsubToken(ctx, token)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return c.catchUp(ctx, cu)
}

// catchUp reads the customer's current conversation over REST back to its cursor and queues
// every agent message the cable did not bring. The message list only pages backwards, 20 at a
// time, so it pages until it reaches the cursor or the first message.
func (c *Core) catchUp(ctx context.Context, cu Customer) error {
	if cu.ConversationID == 0 || cu.ConversationStatus == conversationGone || cu.SourceID == "" {
		return nil
	}
	// A status change the cable missed (an agent resolved while it was down) matters for the
	// resolved-conversation policy, so the status is read again too.
	conv, err := c.oc.GetConversation(ctx, cu.SourceID, cu.ConversationID)
	switch {
	case err == nil && conv.Status != "" && conv.Status != cu.ConversationStatus:
		if err := c.store.SetConversationStatus(ctx, cu.ConversationID, conv.Status); err != nil {
			return err
		}
	case err != nil && !onechat.IsNotFound(err):
		return fmt.Errorf("catch up conversation %d: %w", cu.ConversationID, err)
	}
	name := conversationCursor(cu.ConversationID)
	pos, err := c.store.Cursor(ctx, name)
	if err != nil {
		return err
	}
	var missed []onechat.Message
	var before, highest int64
	for {
		page, err := c.oc.ListMessages(ctx, cu.SourceID, cu.ConversationID, before)
		if err != nil {
			return fmt.Errorf("catch up conversation %d: %w", cu.ConversationID, err)
		}
		oldest := int64(0)
		for _, m := range page {
			highest = max(highest, m.ID)
			if oldest == 0 || m.ID < oldest {
				oldest = m.ID
			}
			if m.ID > pos {
				missed = append(missed, m)
			}
		}
		if len(page) < messagePageSize || oldest <= pos || oldest == 0 {
			break
		}
		before = oldest
	}
	if highest <= pos {
		return nil
	}
	n, err := c.enqueueAgentMessages(ctx, cu, cu.ConversationID, missed, Cursor{Name: name, Position: highest})
	if err != nil {
		return err
	}
	if n > 0 {
		c.log.Info("caught up agent messages the cable missed", zap.Int64("conversation_id", cu.ConversationID), zap.Int("messages", n))
	}
	return nil
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
	return m.Content != "" || len(m.Attachments) > 0
}

// enqueueAgentMessages queues the deliverable messages for the customer's chat, keyed by chat so
// they are sent in order, and moves cur in the same transaction.
func (c *Core) enqueueAgentMessages(ctx context.Context, cu Customer, conversationID int64, msgs []onechat.Message, cur Cursor) (int, error) {
	jobs := make([]NewJob, 0, len(msgs))
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
		jobs = append(jobs, NewJob{Direction: Out, Key: cu.Chat.String(), Dedup: "onechat:" + strconv.FormatInt(m.ID, 10), Payload: payload})
	}
	if len(jobs) == 0 && cur.Name == "" {
		return 0, nil
	}
	n, err := c.store.Enqueue(ctx, cur, jobs...)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		c.opts.Metrics.queued(Out, cu.Chat.Platform, n)
		c.wake[dirIndex(Out)].notify()
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
	var m Outbound
	if err := json.Unmarshal(j.Payload, &m); err != nil {
		return nil, Permanent("undecodable queued message", err)
	}
	a, ok := c.adapters[m.Chat.Platform]
	if !ok {
		return nil, Permanent(fmt.Sprintf("no %s adapter is configured", m.Chat.Platform), nil)
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
	ids, err := a.Send(ctx, m)
	if err != nil {
		return nil, err
	}
	c.log.Debug("agent message delivered", zap.String("platform", string(m.Chat.Platform)), zap.String("chat", m.Chat.ID),
		zap.Int64("conversation_id", m.ConversationID), zap.Int64("message_id", m.MessageID), zap.Strings("platform_message_ids", ids))
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
	return links, nil
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
	cu.UnreachableReason = reason
	if _, err := c.store.SaveCustomer(ctx, cu); err != nil {
		c.log.Warn("record unreachable user", zap.Error(err))
	}
}
