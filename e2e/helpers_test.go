package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// conversation waits for the contact with identifier and its newest conversation.
func (r *rig) conversation(ctx context.Context, identifier string) (onechattest.Contact, onechattest.Conversation) {
	r.t.Helper()
	var contact onechattest.Contact
	var conv onechattest.Conversation
	err := r.w.OC.Wait(ctx, func() bool {
		c, ok := r.w.OC.ContactByIdentifier(identifier)
		if !ok {
			return false
		}
		convs := r.w.OC.Conversations(c.ID)
		if len(convs) == 0 {
			return false
		}
		contact, conv = c, convs[len(convs)-1]
		return true
	})
	if err != nil {
		r.t.Fatalf("no OneChat conversation for %s: %v", identifier, err)
	}
	return contact, conv
}

// incoming returns the contact's messages of a conversation, oldest first.
func (r *rig) incoming(convID int64) []onechattest.Message {
	var out []onechattest.Message
	for _, m := range r.w.OC.Messages(convID) {
		if m.MessageType == onechattest.MessageIncoming {
			out = append(out, m)
		}
	}
	return out
}

func contents(ms []onechattest.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Content
	}
	return out
}

// waitIncoming waits until the conversation has want incoming messages, exactly those.
func (r *rig) waitIncoming(ctx context.Context, convID int64, want ...string) []onechattest.Message {
	r.t.Helper()
	if err := r.w.OC.Wait(ctx, func() bool { return len(r.incoming(convID)) >= len(want) }); err != nil {
		r.t.Fatalf("conversation %d: incoming %q, want %q: %v", convID, contents(r.incoming(convID)), want, err)
	}
	got := r.incoming(convID)
	if !slices.Equal(contents(got), want) {
		r.t.Fatalf("conversation %d: incoming %q, want %q", convID, contents(got), want)
	}
	return got
}

// waitSubscribed waits until the bridge holds a confirmed cable subscription for the contact,
// which is when an agent's reply reaches it live.
func (r *rig) waitSubscribed(ctx context.Context, contactID int64) {
	r.t.Helper()
	err := r.w.OC.Wait(ctx, func() bool {
		for _, ci := range r.w.OC.ContactInboxes(contactID) {
			if r.w.OC.Subscribed(ci.PubsubToken) > 0 {
				return true
			}
		}
		return false
	})
	if err != nil {
		r.t.Fatalf("the bridge never subscribed to contact %d: %v", contactID, err)
	}
}

// waitSentTexts waits until the Telegram chat got n messages and returns their texts.
func (r *rig) waitSentTexts(ctx context.Context, chatID int64, n int) []string {
	r.t.Helper()
	sent, err := r.w.TG.WaitSent(ctx, chatID, n)
	if err != nil {
		r.t.Fatalf("Telegram chat %d: %v; it has %q", chatID, err, sentTexts(r.w.TG.Sent(chatID)))
	}
	return sentTexts(sent)
}

func sentTexts(sent []telegramtest.SentMessage) []string {
	out := make([]string, len(sent))
	for i, s := range sent {
		out[i] = s.Text
	}
	return out
}

type telegramSent = telegramtest.SentMessage

// user is a Telegram user with a name derived from id.
func user(id int64) telegramtest.User {
	return telegramtest.User{ID: id, FirstName: "User", LastName: strconv.FormatInt(id, 10)}
}

func tgIdentifier(u telegramtest.User) string { return "telegram:" + strconv.FormatInt(u.ID, 10) }

func seqTexts(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %d", prefix, i+1)
	}
	return out
}
