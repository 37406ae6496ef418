package bridge

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/texts"
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
	cleanInbound(&m)
	log := c.log.With(zap.String("platform", string(m.User.Platform)), zap.String("chat", m.Chat.ID),
		zap.String("platform_message_id", m.MessageID))

	if c.blocks.listed(m.User.Identifier()) {
		// The operator's blocklist: not even a contact is created.
		return nil, c.storeBlocked(ctx, Customer{User: m.User, Chat: m.Chat})
	}
	// A contact or conversation deleted in OneChat answers 404; each pass recreates what went
	// missing, so a few passes always suffice.
	for pass := range 3 {
		// The claim read the customer; a later pass reads it again.
		prefetched := j.CustomerRead && pass == 0 && (j.Customer == nil || j.Customer.User == m.User)
		cu, err := c.ensureContact(ctx, m, prefetched, j.Customer)
		if err != nil {
			return nil, c.classifyOneChat(err)
		}
		switch blocked, err := c.isBlocked(ctx, cu); {
		case err != nil:
			return nil, c.classifyOneChat(err)
		case blocked:
			return nil, c.storeBlocked(ctx, cu)
		}
		if m.Choice != nil {
			done, err := c.submitChoice(ctx, cu, m, j.CreatedAt)
			if err != nil || done {
				return nil, c.classifyOneChat(err)
			}
		}
		if m.Ticket != "" {
			links, err := c.ticketAction(ctx, cu, m, j)
			return links, c.classifyOneChat(err)
		}
		if done, err := c.csatComment(ctx, cu, m, j); err != nil || done {
			return nil, c.classifyOneChat(err)
		}
		if cu.ConversationID == 0 {
			// A new user's first message (its conversation and the post) waits behind the
			// users the bridge already serves, so a flood of new accounts cannot hold them back.
			ctx = onechat.WithPriority(ctx, onechat.PriorityNewUser)
		}
		cu, err = c.ensureConversation(ctx, cu, j.Attempts > 0)
		if errors.Is(err, errContactBlocked) {
			return nil, c.storeBlocked(ctx, cu)
		}
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
		content, err := c.inboundContent(ctx, cu, m)
		if err != nil {
			return nil, c.classifyOneChat(err)
		}
		if content == "" && m.Choice != nil {
			// The option the user pressed, posted as their message so the agent sees it.
			content = m.Choice.Title
		}
		link := func(id int64) []MessageLink {
			return []MessageLink{{
				OneChatMessageID:  id,
				ConversationID:    cu.ConversationID,
				Chat:              m.Chat,
				PlatformMessageID: m.MessageID,
				Direction:         In,
			}}
		}
		if j.Attempts > 0 {
			// An earlier attempt may have reached OneChat before the bridge crashed or lost the
			// answer: if OneChat already has this message, record it instead of doubling it.
			msg, err := c.alreadyPosted(ctx, cu, content, len(m.Attachments), j.CreatedAt)
			if err != nil && !onechat.IsNotFound(err) {
				return nil, c.classifyOneChat(err)
			}
			if msg != nil {
				log.Info("message reached OneChat before an interruption; not sending it again", zap.Int64("message_id", msg.ID))
				return link(msg.ID), nil
			}
		}
		uploads, notes, closeAll, err := c.openAttachments(ctx, m)
		if err != nil {
			return nil, err
		}
		if len(notes) > 0 {
			content = joinNonEmpty("\n\n", content, strings.Join(notes, "\n"))
		}
		id, err := c.oc.PostMessage(ctx, cu.SourceID, cu.ConversationID, onechat.MessageParams{
			Content:     content,
			EchoID:      j.Dedup,
			Attachments: uploads,
		})
		closeAll()
		if reason, refused := uploadRefused(err); refused && len(uploads) > 0 {
			// The files are refused for good (too large for OneChat's proxy, a type it will
			// not take): the user's words still reach the agent, with a line per file.
			log.Warn("OneChat refused the message's files; posting its text with a note instead", zap.Error(err))
			content = withUploadNotes(content, uploads, reason)
			id, err = c.oc.PostMessage(ctx, cu.SourceID, cu.ConversationID, onechat.MessageParams{Content: content, EchoID: j.Dedup})
		}
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
		log.Debug("message reached OneChat", zap.Int64("conversation_id", cu.ConversationID), zap.Int64("message_id", id))
		return link(id), nil
	}
	return nil, errors.New("onechat contact or conversation keeps disappearing")
}

// choiceLinkWait is how long a button press waits for the message it was pressed on to be
// recorded before it is posted as plain text.
const choiceLinkWait = 30 * time.Second

// quoteLimit bounds a quoted message in runes: enough to recognise it, short enough not to
// drown the new text.
const quoteLimit = 200

// inboundContent is the text the agent sees: the user's text, with a quote of the message
// replied to, or a note that says the message is an edit (quoting the original) or that the
// user deleted a message, and any notes the adapter added about what it could not bridge.
func (c *Core) inboundContent(ctx context.Context, cu Customer, m Inbound) (string, error) {
	var text string
	switch {
	case m.DeletedOf != "":
		orig, err := c.platformMessageText(ctx, cu, m.Chat, m.DeletedOf)
		if err != nil {
			return "", err
		}
		text = c.texts.Agent(texts.AgentDeleted, nil)
		if orig != "" {
			text += ":\n" + quote(orig)
		} else {
			text += "."
		}
	case m.EditOf != "":
		orig, err := c.platformMessageText(ctx, cu, m.Chat, m.EditOf)
		if err != nil {
			return "", err
		}
		text = c.texts.Agent(texts.AgentEdited, nil)
		if orig != "" {
			text += ":\n" + quote(orig)
		}
		text += "\n\n" + c.texts.Agent(texts.AgentNowReads, nil) + "\n" + escapeUserText(m.Text)
	default:
		text = escapeUserText(m.Text)
		if m.ReplyTo != "" {
			q := m.ReplyToText
			if q == "" {
				var err error
				if q, err = c.platformMessageText(ctx, cu, m.Chat, m.ReplyTo); err != nil {
					return "", err
				}
			}
			if q != "" {
				text = c.texts.Agent(texts.AgentInReplyTo, nil) + "\n" + quote(q) + "\n\n" + text
			}
		}
	}
	if len(m.Notes) > 0 {
		text = joinNonEmpty("\n\n", text, strings.Join(m.Notes, "\n"))
	}
	return text, nil
}

// platformMessageText returns the OneChat content of the platform message, or "" when the
// bridge never mapped it or OneChat no longer has it.
func (c *Core) platformMessageText(ctx context.Context, cu Customer, chat ChatRef, platformID string) (string, error) {
	l, err := c.store.LinkByPlatform(ctx, chat, platformID)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	msg, err := c.findMessage(ctx, cu.SourceID, l.ConversationID, l.OneChatMessageID)
	if err != nil || msg == nil {
		return "", err
	}
	return msg.Content, nil
}

// findMessage reads one message over REST: the page before id+1 ends with it.
func (c *Core) findMessage(ctx context.Context, sourceID string, conversationID, id int64) (*onechat.Message, error) {
	page, err := c.oc.ListMessages(ctx, sourceID, conversationID, id+1)
	if onechat.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for i := range page {
		if page[i].ID == id {
			return &page[i], nil
		}
	}
	return nil, nil
}

// clockSkew is how far OneChat's clock may be behind the database's before a message posted
// by an interrupted attempt looks older than its job.
const clockSkew = 10 * time.Minute

// alreadyPosted returns the conversation's latest incoming message when it is this one: same
// content and attachment count, created after the job was queued (so not an older twin whose
// link the retention sweep deleted), and not linked to any other platform message. A user's
// messages are posted one at a time, in order, so an interrupted post can only be the latest
// incoming one; agents may have written any number of messages since, so the pages are read
// back until an incoming message, or one older than the job, is met.
func (c *Core) alreadyPosted(ctx context.Context, cu Customer, content string, attachments int, queued time.Time) (*onechat.Message, error) {
	oldest := queued.Add(-clockSkew).Unix()
	var latest *onechat.Message
	err := c.messagesBack(ctx, cu.SourceID, cu.ConversationID, func(m onechat.Message) bool {
		if m.CreatedAt != 0 && m.CreatedAt < oldest { // 0: a server that does not say
			return false
		}
		if m.MessageType != onechat.MessageIncoming {
			return true
		}
		latest = &m
		return false
	})
	if err != nil || latest == nil {
		return nil, err
	}
	same := strings.TrimSpace(latest.Content) == strings.TrimSpace(content) && len(latest.Attachments) == attachments
	if !same && !isUploadFallback(latest, content, attachments) {
		return nil, nil
	}
	links, err := c.store.LinkByOneChat(ctx, latest.ID)
	if err != nil || len(links) > 0 {
		return nil, err
	}
	return latest, nil
}

// openAttachments opens the user's files for streaming to OneChat. A file the platform will
// not give (too large, gone) becomes a visible note instead of blocking the message; a
// transient failure fails the attempt so it is retried.
func (c *Core) openAttachments(ctx context.Context, m Inbound) (uploads []onechat.Upload, notes []string, closeAll func(), err error) {
	var closers []io.Closer
	closeAll = func() {
		for _, cl := range closers {
			_ = cl.Close()
		}
	}
	if len(m.Attachments) == 0 {
		return nil, nil, closeAll, nil
	}
	opener, ok := c.adapters[m.User.Platform].(AttachmentOpener)
	for _, a := range m.Attachments {
		name := a.Name
		if name == "" {
			name = string(a.Kind)
		}
		if !ok {
			notes = append(notes, c.texts.Agent(texts.AgentFileNotBridged, texts.Vars{"name": name}))
			continue
		}
		rc, err := opener.OpenAttachment(ctx, a)
		var perm *PermanentError
		if errors.As(err, &perm) {
			// The size the platform declared tells the agent what the user tried to send.
			if a.Size > 0 {
				name += " (" + FormatSize(a.Size) + ")"
			}
			notes = append(notes, c.texts.Agent(texts.AgentFileNotBridgedReason, texts.Vars{"name": name, "reason": perm.Reason}))
			continue
		}
		if err != nil {
			closeAll()
			return nil, nil, func() {}, fmt.Errorf("open attachment from %s: %w", m.User.Platform, err)
		}
		closers = append(closers, rc)
		mime := a.MIME
		if mime == "" {
			mime = "application/octet-stream"
		}
		uploads = append(uploads, onechat.Upload{Filename: name, ContentType: mime, Body: rc})
	}
	return uploads, notes, closeAll, nil
}

// uploadNoteInfix is what every note of a file OneChat refused contains, between the name and
// the reason; isUploadFallback recognises such a post by it.
const uploadNoteInfix = " could not be attached: "

// uploadRefused reports whether err is OneChat (or the proxy in front of it) refusing a
// message's upload for good, and why, in words for the agent: a 4xx other than 404 (the
// conversation is gone), 408 and 429 (try again) and the per-conversation flood limit.
func uploadRefused(err error) (reason string, refused bool) {
	var apiErr *onechat.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode < 400 || apiErr.StatusCode > 499 {
		return "", false
	}
	switch apiErr.StatusCode {
	case http.StatusNotFound, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return "", false
	case http.StatusRequestEntityTooLarge:
		return "too large for OneChat (413)", true
	case http.StatusUnsupportedMediaType:
		return "OneChat does not accept this type of file (415)", true
	case http.StatusUnprocessableEntity:
		if strings.Contains(apiErr.Message, "Too many messages") {
			return "", false
		}
		if msg := cleanLine(apiErr.Message); msg != "" {
			return "OneChat refused it (422: " + msg + ")", true
		}
	}
	return fmt.Sprintf("OneChat refused it (%d)", apiErr.StatusCode), true
}

// withUploadNotes is the content posted when OneChat refused the files: the text, then a line
// naming each file and why.
func withUploadNotes(content string, uploads []onechat.Upload, reason string) string {
	lines := make([]string, 0, len(uploads))
	for _, u := range uploads {
		lines = append(lines, "📎 "+u.Filename+uploadNoteInfix+reason)
	}
	return joinNonEmpty("\n\n", content, strings.Join(lines, "\n"))
}

// isUploadFallback reports whether m is what withUploadNotes made of content: no files, the
// content, then only notes of refused files. An attempt interrupted after that post must
// recognise it as its own.
func isUploadFallback(m *onechat.Message, content string, attachments int) bool {
	if attachments == 0 || len(m.Attachments) != 0 {
		return false
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(m.Content), strings.TrimSpace(content))
	rest = strings.TrimSpace(rest)
	if !ok || rest == "" {
		return false
	}
	lines := strings.Split(rest, "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, "📎 ") || !strings.Contains(l, uploadNoteInfix) {
			return false
		}
	}
	return len(lines) <= attachments
}

// submitChoice records a button the user pressed on an interactive agent message: the choice
// is stored on that message (submitted_values), as OneChat's own widget does. It reports done
// when nothing more is to be posted (a CSAT rating); an option of an input_select is then
// also posted as the user's message, so the agent sees it in the conversation.
func (c *Core) submitChoice(ctx context.Context, cu Customer, m Inbound, queued time.Time) (done bool, err error) {
	l, err := c.store.LinkByPlatform(ctx, m.Chat, m.Choice.MessageID)
	if errors.Is(err, ErrNotFound) {
		if time.Since(queued) < choiceLinkWait {
			// The user sees the buttons as soon as the platform has the message, and the
			// bridge records the message a moment later: a quick press can overtake that.
			return false, fmt.Errorf("the message with the pressed button is not recorded yet")
		}
		// Never recorded, or past retention: the press still reaches the agent as text.
		return false, nil
	}
	if err != nil {
		return false, err
	}
	msg, err := c.findMessage(ctx, cu.SourceID, l.ConversationID, l.OneChatMessageID)
	if err != nil || msg == nil {
		return false, err
	}
	if msg.ContentType == "input_csat" {
		rating, _ := strconv.Atoi(m.Choice.Value)
		err := c.submitValues(ctx, cu.SourceID, l.ConversationID, msg.ID, rating, nil)
		if onechat.IsValidation(err) {
			// The survey expired (14 days by default): nothing to record any more.
			c.log.Info("CSAT rating refused by OneChat", zap.Error(err))
			return true, nil
		}
		if err == nil {
			err = c.awaitCSATComment(ctx, cu, l.ConversationID, msg.ID, rating)
		}
		return err == nil, err
	}
	choice := *m.Choice
	// A platform may carry only one of title and value on the button (Telegram's callback data
	// is 64 bytes at most): complete the choice from the message's items.
	for _, it := range items(*msg) {
		if choice.Value == "" && it.Title == choice.Title {
			choice.Value = it.Value
		}
		if choice.Title == "" && it.Value == choice.Value {
			choice.Title = it.Title
		}
	}
	m.Choice.Title = choice.Title
	err = c.submitValues(ctx, cu.SourceID, l.ConversationID, msg.ID, 0, &choice)
	return false, err
}

func quote(s string) string {
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > quoteLimit {
		s = strings.TrimSpace(string(r[:quoteLimit])) + "…"
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "> " + l
	}
	return strings.Join(lines, "\n")
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

// ensureContact returns the user's customer record with a OneChat contact session, creating
// the session when there is none. The source_id is generated and stored before the contact is
// created with it, so a crash in between reuses the same session instead of making a second.
// When prefetched, pre is the customer as the job's claim read it (nil: none yet) and the store
// is not asked again.
func (c *Core) ensureContact(ctx context.Context, m Inbound, prefetched bool, pre *Customer) (Customer, error) {
	var cu Customer
	var err error
	switch {
	case !prefetched:
		cu, err = c.store.Customer(ctx, m.User)
	case pre == nil:
		err = ErrNotFound
	default:
		cu = *pre
	}
	isNew := errors.Is(err, ErrNotFound)
	if err != nil && !isNew {
		return cu, err
	}
	// Only the columns this message changes are written (CustomerFields): an outbound worker
	// marking the user unreachable or an adapter moving the chat meanwhile must not be undone
	// by this read's older copy of them.
	var fields CustomerFields
	if isNew {
		cu = Customer{User: m.User, Identifier: m.User.Identifier()}
	}
	if cu.Chat != m.Chat {
		cu.Chat, fields = m.Chat, fields|CustomerChat
	}
	profileChanged := false
	if m.DisplayName != "" && cu.DisplayName != m.DisplayName {
		cu.DisplayName, fields, profileChanged = m.DisplayName, fields|CustomerProfile, true
	}
	if m.Username != "" && cu.Username != m.Username {
		cu.Username, fields, profileChanged = m.Username, fields|CustomerProfile, true
	}
	wasUnreachable := cu.UnreachableReason != ""
	if wasUnreachable {
		// The user wrote to us, so they can be reached again.
		cu.UnreachableReason, fields = "", fields|CustomerReachability
	}
	switch {
	case isNew:
		// The session id is stored with the new row, before the contact is created with it.
		cu.SourceID = newSourceID()
		if cu, err = c.store.SaveCustomer(ctx, cu, fields); err != nil {
			return cu, err
		}
	case fields != 0:
		if cu, err = c.store.UpdateCustomer(ctx, cu, fields); err != nil {
			return cu, err
		}
	}
	if cu.SourceID == "" {
		// A session forgotten (or never made): store a new id before creating the contact
		// with it, unless another writer stored one first, which is then the one to use.
		if cu, _, err = c.store.SetContactSession(ctx, cu.ID, "", Customer{SourceID: newSourceID()}); err != nil {
			return cu, err
		}
	}
	if cu.PubsubToken != "" {
		// Idempotent and cheap: makes sure the cable listens even if an earlier attempt
		// stopped between storing the token and subscribing.
		c.subscribeCustomer(ctx, cu)
		if wasUnreachable {
			c.setReachability(ctx, cu, "")
		}
		attrsChanged := !c.contactAttrsKnown(cu.ID, m.ContactAttributes)
		if (profileChanged || attrsChanged) && !isNew {
			// A contact create that matched never updates it, and names change: keep
			// OneChat's contact as the user is now. Best effort: the message matters more.
			params := onechat.ContactParams{CustomAttributes: withAttributes(profileAttributes(cu), m.ContactAttributes)}
			if profileChanged {
				params.Name = contactName(cu)
			}
			if _, err := c.oc.UpdateContact(ctx, cu.SourceID, cu.Identifier, params); err != nil {
				c.log.Warn("update contact profile", zap.Int64("contact_id", cu.ContactID), zap.Error(err))
			} else {
				c.rememberContactAttrs(cu.ID, m.ContactAttributes)
			}
		}
		return cu, nil
	}
	// A new contact is a new user's first request: it goes after known users' and agents'.
	ctx = onechat.WithPriority(ctx, onechat.PriorityNewUser)
	contact, err := c.oc.CreateContact(ctx, onechat.ContactParams{
		Identifier:       cu.Identifier,
		Name:             contactName(cu),
		SourceID:         cu.SourceID,
		CustomAttributes: withAttributes(profileAttributes(cu), m.ContactAttributes),
	})
	if err != nil {
		return cu, fmt.Errorf("create contact: %w", err)
	}
	session := Customer{SourceID: cu.SourceID, PubsubToken: contact.PubsubToken, ContactID: contact.ID}
	if contact.SourceID != "" {
		session.SourceID = contact.SourceID
	}
	c.blocks.setContact(contact.ID, contact.Blocked, time.Now())
	cu, ok, err := c.store.SetContactSession(ctx, cu.ID, cu.SourceID, session)
	if err != nil {
		return cu, err
	}
	if !ok {
		// Another writer replaced the session id this contact was created with; the next
		// attempt starts from the session stored now.
		return cu, errors.New("create contact: the contact session changed meanwhile")
	}
	c.rememberContactAttrs(cu.ID, m.ContactAttributes)
	c.subscribeCustomer(ctx, cu)
	// Only a show (or update) with the identifier hash marks the session verified; create never
	// does. Without a configured HMAC token there is nothing to verify, and the read would
	// only spend one of OneChat's requests.
	if c.oc.VerifiesIdentity() {
		if _, err := c.oc.GetContact(ctx, cu.SourceID, cu.Identifier); err != nil {
			return cu, fmt.Errorf("verify contact: %w", err)
		}
	}
	c.log.Info("created OneChat contact", zap.String("platform", string(cu.User.Platform)), zap.Int64("contact_id", cu.ContactID))
	return cu, nil
}

// forgetContact drops a contact session OneChat no longer knows, so the next pass creates a
// new one.
func (c *Core) forgetContact(ctx context.Context, cu Customer) error {
	c.roles.untrack(cu.ID, cu.PubsubToken)
	if cu.ConversationID != 0 {
		if err := c.store.SetConversationStatus(ctx, cu.ConversationID, conversationGone); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	// Only the session that is gone is forgotten: one created since stays.
	_, _, err := c.store.SetContactSession(ctx, cu.ID, cu.SourceID, Customer{})
	return err
}

// ensureConversation returns cu with a current conversation the next message may go to.
func (c *Core) ensureConversation(ctx context.Context, cu Customer, retry bool) (Customer, error) {
	switch {
	case cu.ConversationID == 0 || cu.ConversationStatus == conversationGone:
	case cu.ConversationStatus == "resolved" && c.opts.OnResolved == NewConversation:
		// The status may be stale if a reopen event was missed: ask before starting anew.
		conv, err := c.oc.GetConversation(ctx, cu.SourceID, cu.ConversationID)
		if err == nil {
			c.learnInbox(conv)
		}
		if err == nil && conv.Contact != nil {
			// A contact agents blocked gets every new conversation already resolved: opening
			// one per message would flood the inbox.
			c.blocks.setContact(cu.ContactID, conv.Contact.Blocked, time.Now())
			if conv.Contact.Blocked {
				return cu, errContactBlocked
			}
		}
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
		if err == nil {
			// Past the day's bound the message goes to the latest conversation (reopening
			// it), so one user cannot fill the inbox with conversations.
			ok, err := c.mayOpenConversation(ctx, cu)
			if err != nil {
				return cu, err
			}
			if !ok {
				c.log.Info("user opened too many conversations today; writing into the latest",
					zap.Int64("conversation_id", cu.ConversationID), zap.Int("per_day", c.opts.NewConversationsPerDay))
				return cu, nil
			}
		}
	default:
		return cu, nil
	}
	if retry {
		// An earlier attempt may have created the conversation and lost OneChat's answer:
		// adopt it rather than leave an empty conversation an agent might answer unheard.
		if conv, err := c.unrecordedConversation(ctx, cu); err != nil {
			return cu, err
		} else if conv != nil {
			err := c.store.SetConversation(ctx, cu.ID, conv.ID, conv.Status)
			switch {
			case errors.Is(err, ErrConversationTaken):
				// Recorded for another customer since it was listed: it is theirs, and this
				// user gets a conversation of their own.
				c.log.Warn("not adopting a conversation another customer owns; opening a new one",
					zap.Int64("conversation_id", conv.ID), zap.Int64("contact_id", cu.ContactID))
			case err != nil:
				return cu, err
			default:
				c.log.Info("adopted a conversation an interrupted attempt had opened", zap.Int64("conversation_id", conv.ID))
				cu.ConversationID, cu.ConversationStatus = conv.ID, conv.Status
				c.describeConversation(ctx, cu, conv.ID)
				// Agents may have answered while the bridge did not know the conversation was
				// its own (their events were passed over): read it.
				c.scheduleCatchup(cu.PubsubToken, conv.ID)
				return cu, nil
			}
		}
	}
	// Whether the contact's subscription is confirmed from before the create until the
	// conversation is recorded, with no event for the contact in between, decides whether the
	// new conversation needs a read of its own (below).
	confirmed := c.cable.Confirmation(cu.PubsubToken)
	watch := c.watched.watch(cu.PubsubToken)
	defer c.watched.unwatch(cu.PubsubToken, watch)
	conv, err := c.oc.CreateConversation(ctx, cu.SourceID)
	if err != nil {
		return cu, fmt.Errorf("create conversation: %w", err)
	}
	c.learnInbox(conv)
	if err := c.store.SetConversation(ctx, cu.ID, conv.ID, conv.Status); err != nil {
		if errors.Is(err, ErrConversationTaken) {
			c.log.Error("OneChat answered a new conversation with one another customer owns; the message waits",
				zap.Int64("conversation_id", conv.ID), zap.Int64("contact_id", cu.ContactID))
		}
		return cu, err
	}
	if conv.Contact != nil {
		c.blocks.setContact(cu.ContactID, conv.Contact.Blocked, time.Now())
		if conv.Contact.Blocked {
			// Recorded (so the next message reuses it), but nothing is posted into it.
			c.scheduleCatchup(cu.PubsubToken, conv.ID)
			return cu, errContactBlocked
		}
	}
	// An agent (or a greeting template) may have written before the conversation was recorded
	// as the bridge's, when its events were passed over (their catch-ups found a conversation
	// the bridge did not own yet) or lost (the subscription was not confirmed): read it once
	// now, unless neither can have happened:
	//   - this instance's subscription of the contact was confirmed before the conversation was
	//     created and stayed so until it was recorded, and no event for the contact came
	//     meanwhile: all there was to bring came, and none was passed over (an event still on
	//     its way is handled after the record, and its catch-up reads the conversation);
	//   - the subscription awaits its confirmation (a new user's, while subscribes are paced):
	//     no event has come through it, and the confirmation brings a catch-up of the current
	//     conversation, which this one is now.
	// A new user whose subscription is confirmed before their first message is posted costs
	// OneChat no read of its conversation.
	quiet := confirmed != 0 && c.cable.Confirmation(cu.PubsubToken) == confirmed && !c.watched.seen(watch)
	if !quiet && !c.cable.AwaitsConfirmation(cu.PubsubToken) {
		c.scheduleCatchup(cu.PubsubToken, conv.ID)
	}
	c.log.Info("opened OneChat conversation", zap.String("platform", string(cu.User.Platform)),
		zap.Int64("contact_id", cu.ContactID), zap.Int64("conversation_id", conv.ID), zap.String("status", conv.Status))
	cu.ConversationID, cu.ConversationStatus = conv.ID, conv.Status
	c.describeConversation(ctx, cu, conv.ID)
	return cu, nil
}

// eventWatches are the contacts whose new conversation ensureConversation is opening: whether
// an event for one of them came meanwhile says whether the conversation needs a read of its own.
type eventWatches struct {
	n  atomic.Int32 // watches open: CableEvent takes the lock only when there are some
	mu sync.Mutex
	by map[string]*eventWatch // pubsub token → its watch
}

// eventWatch records whether an event came for a watched contact. Two openings for one token
// (which a user's one-at-a-time messages rule out) would share one, which only costs a read.
type eventWatch struct {
	refs int
	saw  bool
}

func (w *eventWatches) watch(token string) *eventWatch {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.by == nil {
		w.by = make(map[string]*eventWatch)
	}
	ew := w.by[token]
	if ew == nil {
		ew = &eventWatch{}
		w.by[token] = ew
	}
	ew.refs++
	w.n.Add(1)
	return ew
}

func (w *eventWatches) unwatch(token string, ew *eventWatch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ew.refs--; ew.refs == 0 {
		delete(w.by, token)
	}
	w.n.Add(-1)
}

// saw records an event for token, if it is watched.
func (w *eventWatches) saw(token string) {
	if w.n.Load() == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if ew := w.by[token]; ew != nil {
		ew.saw = true
	}
}

// seen reports whether an event came for the contact of ew since it was watched.
func (w *eventWatches) seen(ew *eventWatch) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return ew.saw
}

// unrecordedConversation returns the newest conversation of the contact session that is not
// resolved, that the bridge never recorded (for any customer), and that is in the bridge's
// inbox, or nil. A verified session lists every conversation of its contact, those of the
// account's other inboxes too (where anyone may have claimed the contact's identifier, e.g. in a
// website widget without identity validation), so a conversation of another inbox is never
// adopted. The inbox's id is learned (learnInbox, inboxFromStore); while no conversation was
// ever recorded, a verified session adopts nothing and the retry opens a new conversation.
func (c *Core) unrecordedConversation(ctx context.Context, cu Customer) (*onechat.Conversation, error) {
	convs, err := c.oc.ListConversations(ctx, cu.SourceID)
	if err != nil {
		return nil, fmt.Errorf("list conversations: %w", err)
	}
	inbox := c.inboxID.Load()
	var candidates []*onechat.Conversation
	for i := range convs {
		cv := &convs[i]
		owner, err := c.store.CustomerByConversation(ctx, cv.ID)
		if err == nil {
			if owner.ID == cu.ID && inbox == 0 {
				inbox = cv.InboxID // the customer's own earlier conversation names the inbox
			}
			continue // known: resolved or gone by the bridge's account, or someone else's
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if cv.Status != "resolved" {
			candidates = append(candidates, cv)
		}
	}
	if inbox == 0 && len(candidates) > 0 && c.oc.VerifiesIdentity() {
		if inbox, err = c.inboxFromStore(ctx); err != nil {
			return nil, err
		}
	}
	var newest *onechat.Conversation
	for _, cv := range candidates {
		if (inbox != 0 && cv.InboxID != inbox) || (inbox == 0 && c.oc.VerifiesIdentity()) {
			c.log.Warn("not adopting a conversation that may be in another inbox",
				zap.Int64("conversation_id", cv.ID), zap.Int64("inbox_id", cv.InboxID), zap.Int64("known_inbox_id", inbox))
			continue
		}
		if newest == nil || cv.ID > newest.ID {
			newest = cv
		}
	}
	return newest, nil
}

// inboxFromStore learns the inbox from the conversation of the newest customer that has one (a
// process that has not opened or read a conversation yet), or returns 0 when there is none or
// OneChat cannot show it.
func (c *Core) inboxFromStore(ctx context.Context) (int64, error) {
	cu, err := c.store.LatestCustomerWithConversation(ctx)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	conv, err := c.oc.GetConversation(ctx, cu.SourceID, cu.ConversationID)
	if onechat.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the inbox of conversation %d: %w", cu.ConversationID, err)
	}
	c.learnInbox(conv)
	return conv.InboxID, nil
}

// learnInbox remembers the inbox of a conversation the bridge opened or owns.
func (c *Core) learnInbox(conv *onechat.Conversation) {
	if conv != nil && conv.InboxID != 0 {
		c.inboxID.Store(conv.InboxID)
	}
}

// classifyOneChat maps a OneChat failure onto the queue's classes, once: a 429 is a rate limit
// (waiting what the client's shared budget chose), a validation error is permanent except the
// per-conversation flood limit, and everything else (network, 5xx, and the HMAC
// misconfiguration, which an operator can fix without losing messages) is retried.
func (c *Core) classifyOneChat(err error) error {
	if err == nil {
		return nil
	}
	var apiErr *onechat.APIError
	errors.As(err, &apiErr)
	switch onechat.Classify(err) {
	case onechat.ClassRateLimited:
		after := c.opts.OneChatRetryAfter
		if apiErr != nil && apiErr.RetryAfter > 0 {
			after = apiErr.RetryAfter
		}
		return RateLimited(after, err)
	case onechat.ClassConfig:
		c.log.Error("OneChat refused the contact's identity hash: fix ONECHAT_HMAC_TOKEN; messages wait in the queue", zap.Error(err))
		return err
	case onechat.ClassPermanent:
		if apiErr != nil && apiErr.StatusCode == 422 {
			if strings.Contains(apiErr.Message, "Too many messages") {
				// The per-conversation flood limit (200/min by default) frees up within a minute.
				return RateLimited(2*c.opts.OneChatRetryAfter, err)
			}
			reason := "OneChat rejected the message"
			if apiErr.Message != "" {
				reason += ": " + apiErr.Message
			}
			return Permanent(reason, err)
		}
	}
	return err
}

// profileAttributes are the contact's custom attributes the bridge keeps: the user's handle
// on the platform (e.g. telegram_username), which agents use to recognise people.
func profileAttributes(cu Customer) map[string]any {
	if cu.Username == "" {
		return nil
	}
	return map[string]any{string(cu.User.Platform) + "_username": cu.Username}
}

// withAttributes adds the adapter's contact attributes (Inbound.ContactAttributes) to the
// ones the core keeps; the core's own win a clash.
func withAttributes(attrs map[string]any, extra map[string]string) map[string]any {
	if len(extra) == 0 {
		return attrs
	}
	out := make(map[string]any, len(attrs)+len(extra))
	for k, v := range extra {
		out[k] = v
	}
	for k, v := range attrs {
		out[k] = v
	}
	return out
}

// contactAttrsKnown says whether attrs were set on the customer's contact by this process
// already. The attributes are not stored with the customer, so each process sets them once
// per contact (and again when they change), at the cost of one contact update per user after
// a restart.
func (c *Core) contactAttrsKnown(customerID int64, attrs map[string]string) bool {
	if len(attrs) == 0 {
		return true
	}
	c.contactAttrsMu.Lock()
	defer c.contactAttrsMu.Unlock()
	set, ok := c.contactAttrs[customerID]
	if !ok || set.key != attrsKey(attrs) {
		return false
	}
	set.at = time.Now() // the user is active: keep it past the idle sweep
	c.contactAttrs[customerID] = set
	return true
}

// contactAttrsSet is what contactAttrs holds per customer: the attributes set (attrsKey) and
// when they were last set or found unchanged (forgetIdleUsers drops it after IdleAfter).
type contactAttrsSet struct {
	key string
	at  time.Time
}

func (c *Core) rememberContactAttrs(customerID int64, attrs map[string]string) {
	if len(attrs) == 0 {
		return
	}
	c.contactAttrsMu.Lock()
	defer c.contactAttrsMu.Unlock()
	if c.contactAttrs == nil || len(c.contactAttrs) > 100000 {
		c.contactAttrs = map[int64]contactAttrsSet{}
	}
	c.contactAttrs[customerID] = contactAttrsSet{attrsKey(attrs), time.Now()}
}

// attrsKey is a canonical form of attrs to compare.
func attrsKey(attrs map[string]string) string {
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(strconv.Quote(k) + "=" + strconv.Quote(attrs[k]) + ";")
	}
	return b.String()
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
