package bridge

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/onechat"
)

// conversationGone is the status the core records for a conversation OneChat no longer has.
const conversationGone = "gone"

// handleInbound brings one user message into OneChat: it makes sure the user has a contact
// session and a conversation that is not resolved (per policy), then posts the message.
func (c *Core) handleInbound(ctx context.Context, j *Job) ([]MessageLink, error) {
	var m Inbound
	if err := json.Unmarshal(j.Payload, &m); err != nil {
		return nil, Permanent("undecodable queued message", err)
	}
	log := c.log.With(zap.String("platform", string(m.User.Platform)), zap.String("chat", m.Chat.ID),
		zap.String("platform_message_id", m.MessageID))

	// A contact or conversation deleted in OneChat answers 404; each pass recreates what went
	// missing, so a few passes always suffice.
	for range 3 {
		cu, err := c.ensureContact(ctx, m)
		if err != nil {
			return nil, c.classifyOneChat(err)
		}
		cu, err = c.ensureConversation(ctx, cu)
		if onechat.IsNotFound(err) {
			log.Warn("contact session missing in OneChat, creating a new one")
			if err := c.forgetContact(ctx, cu); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, c.classifyOneChat(err)
		}
		msg, err := c.oc.CreateMessage(ctx, cu.SourceID, cu.ConversationID, onechat.MessageParams{
			Content: m.Text,
			EchoID:  j.Dedup,
		})
		if onechat.IsNotFound(err) {
			log.Warn("conversation missing in OneChat, creating a new one", zap.Int64("conversation_id", cu.ConversationID))
			if err := c.store.SetConversationStatus(ctx, cu.ConversationID, conversationGone); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, c.classifyOneChat(err)
		}
		log.Debug("message reached OneChat", zap.Int64("conversation_id", cu.ConversationID), zap.Int64("message_id", msg.ID))
		return []MessageLink{{
			OneChatMessageID:  msg.ID,
			ConversationID:    cu.ConversationID,
			Chat:              m.Chat,
			PlatformMessageID: m.MessageID,
			Direction:         In,
		}}, nil
	}
	return nil, errors.New("onechat contact or conversation keeps disappearing")
}

// ensureContact returns the user's customer record with a OneChat contact session, creating
// the session when there is none. The source_id is generated and stored before the contact is
// created with it, so a crash in between reuses the same session instead of making a second.
func (c *Core) ensureContact(ctx context.Context, m Inbound) (Customer, error) {
	cu, err := c.store.Customer(ctx, m.User)
	isNew := errors.Is(err, ErrNotFound)
	if err != nil && !isNew {
		return cu, err
	}
	changed := isNew
	if isNew {
		cu = Customer{User: m.User, Identifier: m.User.Identifier()}
	}
	if cu.Chat != m.Chat {
		cu.Chat, changed = m.Chat, true
	}
	if m.DisplayName != "" && cu.DisplayName != m.DisplayName {
		cu.DisplayName, changed = m.DisplayName, true
	}
	if m.Username != "" && cu.Username != m.Username {
		cu.Username, changed = m.Username, true
	}
	if cu.UnreachableReason != "" {
		// The user wrote to us, so they can be reached again.
		cu.UnreachableReason, changed = "", true
	}
	if cu.SourceID == "" {
		cu.SourceID, cu.PubsubToken, changed = newSourceID(), "", true
	}
	if changed {
		if cu, err = c.store.SaveCustomer(ctx, cu); err != nil {
			return cu, err
		}
	}
	if cu.PubsubToken != "" {
		return cu, nil
	}
	contact, err := c.oc.CreateContact(ctx, onechat.ContactParams{
		Identifier: cu.Identifier,
		Name:       contactName(cu),
		SourceID:   cu.SourceID,
	})
	if err != nil {
		return cu, fmt.Errorf("create contact: %w", err)
	}
	if contact.SourceID != "" {
		cu.SourceID = contact.SourceID
	}
	cu.PubsubToken, cu.ContactID = contact.PubsubToken, contact.ID
	if cu, err = c.store.SaveCustomer(ctx, cu); err != nil {
		return cu, err
	}
	c.log.Info("created OneChat contact", zap.String("platform", string(cu.User.Platform)), zap.Int64("contact_id", cu.ContactID))
	c.cable.Subscribe(cu.PubsubToken)
	return cu, nil
}

// forgetContact drops a contact session OneChat no longer knows, so the next pass creates a
// new one.
func (c *Core) forgetContact(ctx context.Context, cu Customer) error {
	if cu.PubsubToken != "" {
		c.cable.Unsubscribe(cu.PubsubToken)
	}
	if cu.ConversationID != 0 {
		if err := c.store.SetConversationStatus(ctx, cu.ConversationID, conversationGone); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	cu.SourceID, cu.PubsubToken, cu.ContactID = "", "", 0
	_, err := c.store.SaveCustomer(ctx, cu)
	return err
}

// ensureConversation returns cu with a current conversation the next message may go to.
func (c *Core) ensureConversation(ctx context.Context, cu Customer) (Customer, error) {
	switch {
	case cu.ConversationID == 0 || cu.ConversationStatus == conversationGone:
	case cu.ConversationStatus == "resolved" && c.opts.OnResolved == NewConversation:
		// The status may be stale if a reopen event was missed: ask before starting anew.
		conv, err := c.oc.GetConversation(ctx, cu.SourceID, cu.ConversationID)
		if err == nil && conv.Status != "resolved" {
			if err := c.store.SetConversationStatus(ctx, conv.ID, conv.Status); err != nil {
				return cu, err
			}
			cu.ConversationStatus = conv.Status
			return cu, nil
		}
		if err != nil && !onechat.IsNotFound(err) {
			return cu, err
		}
	default:
		return cu, nil
	}
	conv, err := c.oc.CreateConversation(ctx, cu.SourceID)
	if err != nil {
		return cu, fmt.Errorf("create conversation: %w", err)
	}
	if err := c.store.SetConversation(ctx, cu.ID, conv.ID, conv.Status); err != nil {
		return cu, err
	}
	c.log.Info("opened OneChat conversation", zap.String("platform", string(cu.User.Platform)),
		zap.Int64("contact_id", cu.ContactID), zap.Int64("conversation_id", conv.ID), zap.String("status", conv.Status))
	cu.ConversationID, cu.ConversationStatus = conv.ID, conv.Status
	return cu, nil
}

// classifyOneChat maps a OneChat failure onto the queue's classes: 422 is permanent, 429 is a
// rate limit, everything else (network, 5xx, and the HMAC misconfiguration, which an operator
// can fix without losing messages) is retried.
func (c *Core) classifyOneChat(err error) error {
	var apiErr *onechat.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.StatusCode {
		case 422:
			if strings.Contains(apiErr.Message, "Too many messages") {
				// The per-conversation flood limit (200/min by default) frees up within a minute.
				return RateLimited(2*c.opts.OneChatRetryAfter, err)
			}
			reason := "OneChat rejected the message"
			if apiErr.Message != "" {
				reason += ": " + apiErr.Message
			}
			return Permanent(reason, err)
		case 429:
			return RateLimited(c.opts.OneChatRetryAfter, err)
		}
	}
	return err
}

func contactName(cu Customer) string {
	switch {
	case cu.DisplayName != "":
		return cu.DisplayName
	case cu.Username != "":
		return cu.Username
	default:
		return cu.Identifier
	}
}

// newSourceID returns a random UUID v4. The source_id is a credential of the contact session,
// so it is random and never derived from the user id.
func newSourceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
