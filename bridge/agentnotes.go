package bridge

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/texts"
)

// Agents learn here what the bridge could not deliver, without reading logs: a private note in
// the conversation (Options.Application), or, without an access token, the contact's custom
// attributes bridge_last_failure and bridge_last_failure_at. Both are best effort, after the
// queue recorded the outcome: a crash in between loses the note, never the message's state.

// agentNoteTimeout bounds telling agents about one message, so a slow OneChat cannot hold a
// worker.
const agentNoteTimeout = 10 * time.Second

// excerptLimit bounds the quote of the agent's message in a note, in runes: enough to tell
// which message it was.
const excerptLimit = 100

// reasonLimit bounds a failure's text in a note, in runes.
const reasonLimit = 300

// tellLeftOut tells agents that an agent message was delivered without what the adapter left
// out (PartialError), naming what and why.
func (c *Core) tellLeftOut(ctx context.Context, j *Job, notes []string) {
	m, ok := c.outboundOf(ctx, j)
	if !ok {
		return
	}
	text := c.texts.Agent(texts.AgentPartlyDelivered, nil) + "\n" + strings.Join(notes, "\n")
	c.tellAgents(ctx, m, joinNonEmpty("\n", text, excerpt(m)))
}

// tellUserLeftOut queues one line for the user of agent message m, in their language, naming
// the files the adapter left out without a word in the message (PartialError.Untold) and
// saying the team knows. It goes into the chat's queue behind the message (and behind what
// else is queued for the chat), at most once per message: its dedup key names the message, so
// a retry of the message queues nothing more. A transient failure here fails the attempt, whose
// retry sends only what is left of the message and queues the line again.
func (c *Core) tellUserLeftOut(ctx context.Context, m Outbound, files []LeftOutFile) error {
	names := make([]string, 0, len(files))
	for _, f := range files {
		name := cmp.Or(cleanLine(f.Name), "file")
		if f.Size > 0 {
			name += ", " + FormatSize(f.Size)
		}
		names = append(names, name)
	}
	lang := c.UserLanguage(ctx, m.User)
	text := c.texts.Text(lang, texts.FilesLeftOut, texts.Vars{"files": strings.Join(names, "; ")})
	if len(names) == 1 {
		text = c.texts.Text(lang, texts.FileLeftOut, texts.Vars{"file": names[0]})
	}
	err := c.notice(ctx, Customer{User: m.User, Chat: m.Chat}, "left-out:"+strconv.FormatInt(m.MessageID, 10), text)
	if err != nil {
		return fmt.Errorf("queue the line telling the user a file was left out: %w", err)
	}
	return nil
}

// tellUndelivered tells agents that an agent message (or an edit or delete of one) did not
// reach the user, and why: a refusal for good, the user unreachable (then why is the
// platform's reason), or too many failed attempts.
func (c *Core) tellUndelivered(ctx context.Context, j *Job, why string, unreachable bool) {
	m, ok := c.outboundOf(ctx, j)
	if !ok {
		return
	}
	why = truncateRunes(strings.TrimSpace(why), reasonLimit)
	if unreachable {
		why = c.texts.Agent(texts.AgentUnreachable, texts.Vars{"platform": string(m.Chat.Platform), "reason": why})
	}
	key := texts.AgentNotDelivered
	switch m.Op {
	case OpEdit:
		key = texts.AgentEditNotDelivered
	case OpDelete:
		key = texts.AgentDeleteNotDelivered
	}
	text := c.texts.Agent(key, texts.Vars{"reason": why})
	c.tellAgents(ctx, m, joinNonEmpty("\n", text, excerpt(m)))
}

// outboundOf decodes an outbound job's message. A delete carries no text: the message as it
// was sent is read from its own job, so the note can quote it.
func (c *Core) outboundOf(ctx context.Context, j *Job) (Outbound, bool) {
	var m Outbound
	// A notice of the bridge's own (MessageID 0) is no agent's message: nobody to tell.
	if j.Direction != Out || json.Unmarshal(j.Payload, &m) != nil || m.ConversationID == 0 || m.MessageID == 0 {
		return m, false
	}
	if m.Op != OpSend && m.Op != OpEdit && m.Op != OpDelete {
		return m, false // a ticket's closing or reopening line is the bridge's, not an agent's
	}
	if m.Op == OpDelete && m.Text == "" {
		if p, err := c.store.JobPayload(ctx, Out, outboundDedup(m.MessageID)); err == nil {
			var sent Outbound
			if json.Unmarshal(p, &sent) == nil {
				m.Text = sent.Text
			}
		}
	}
	return m, true
}

// tellAgents posts text as a private note in m's conversation, or, without an access token (or
// when the note is refused), records it in the contact's custom attributes.
func (c *Core) tellAgents(ctx context.Context, m Outbound, text string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), agentNoteTimeout)
	defer cancel()
	log := c.log.With(zap.String("platform", string(m.Chat.Platform)), zap.Int64("conversation_id", m.ConversationID),
		zap.Int64("message_id", m.MessageID))
	if c.app != nil {
		_, err := c.app.CreatePrivateNote(ctx, m.ConversationID, text)
		if err == nil {
			log.Info("told agents in a private note what did not reach the user")
			return
		}
		log.Warn("cannot post a private note for agents; recording the failure on the contact instead", zap.Error(err))
	}
	cu, err := c.store.Customer(ctx, m.User)
	if err != nil || cu.SourceID == "" {
		log.Warn("cannot tell agents what did not reach the user: no contact", zap.Error(err))
		return
	}
	attrs := map[string]any{
		"bridge_last_failure":    text,
		"bridge_last_failure_at": time.Now().UTC().Format(time.RFC3339),
	}
	if _, err := c.oc.UpdateContact(ctx, cu.SourceID, cu.Identifier, onechat.ContactParams{CustomAttributes: attrs}); err != nil {
		log.Warn("cannot record the failure on the contact", zap.Error(err))
		return
	}
	log.Info("recorded what did not reach the user on the contact")
}

// describeConversation gives a conversation the bridge just opened (or adopted) its platform's
// label and the custom attributes bridge_platform and, where the adapter has one
// (ChatLinker), bridge_chat_link, so teams can route and filter. OneChat replaces the whole
// label list and the whole attribute set, so both are read and merged first. It needs
// Options.Application and is best effort: a failure is logged, the message goes on.
func (c *Core) describeConversation(ctx context.Context, cu Customer, conversationID int64) {
	if c.app == nil || conversationID == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, agentNoteTimeout)
	defer cancel()
	log := c.log.With(zap.String("platform", string(cu.User.Platform)), zap.Int64("conversation_id", conversationID))
	if err := c.labelConversation(ctx, cu, conversationID); err != nil {
		log.Warn("cannot set the platform's label on the conversation", zap.Error(err))
	}
	if err := c.setConversationAttributes(ctx, cu, conversationID); err != nil {
		log.Warn("cannot set the conversation's custom attributes", zap.Error(err))
	}
}

func (c *Core) labelConversation(ctx context.Context, cu Customer, conversationID int64) error {
	label := strings.ToLower(string(cu.User.Platform))
	labels, err := c.app.ConversationLabels(ctx, conversationID)
	if err != nil {
		return err
	}
	if slices.Contains(labels, label) {
		return nil
	}
	_, err = c.app.SetConversationLabels(ctx, conversationID, append(labels, label))
	return err
}

func (c *Core) setConversationAttributes(ctx context.Context, cu Customer, conversationID int64) error {
	want := map[string]any{"bridge_platform": string(cu.User.Platform)}
	if l, ok := c.adapters[cu.Chat.Platform].(ChatLinker); ok {
		if link := l.ChatLink(cu.User, cu.Username, cu.Chat); link != "" {
			want["bridge_chat_link"] = link
		}
	}
	conv, err := c.app.Conversation(ctx, conversationID)
	if err != nil {
		return err
	}
	attrs := maps.Clone(conv.CustomAttributes)
	if attrs == nil {
		attrs = map[string]any{}
	}
	changed := false
	for k, v := range want {
		if attrs[k] != v {
			attrs[k], changed = v, true
		}
	}
	if !changed {
		return nil
	}
	return c.app.SetConversationAttributes(ctx, conversationID, attrs)
}

// excerpt quotes the start of an agent message for a note, or names its files when it has no
// text.
func excerpt(m Outbound) string {
	s := strings.TrimSpace(m.Text)
	if s == "" && len(m.Attachments) > 0 {
		names := make([]string, 0, len(m.Attachments))
		for _, a := range m.Attachments {
			names = append(names, cmp.Or(a.Name, "file"))
		}
		s = "📎 " + strings.Join(names, ", ")
	}
	if s == "" {
		return ""
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i]) + " …"
	}
	return quote(truncateRunes(s, excerptLimit))
}

func truncateRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return strings.TrimSpace(string(r[:n])) + "…"
	}
	return s
}
