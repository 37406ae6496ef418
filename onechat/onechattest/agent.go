package onechattest

import (
	"cmp"
	"time"
)

// File is an attachment posted from the agent side.
type File struct {
	Filename    string
	ContentType string
	Data        []byte
	// FileType overrides the file_type OneChat derives from ContentType, e.g. "fallback",
	// "location" or "embed" for the attachments that point elsewhere (with ExternalURL).
	FileType string
	// ExternalURL is the data_url of an attachment that is a link, not a stored file
	// (fallback, location, embed: OneChat serializes their external_url as data_url).
	ExternalURL string
	// FallbackTitle is the fallback_title of a link attachment.
	FallbackTitle string
	// RedirectTo replaces where the file's data_url redirects: an installation whose storage
	// service is elsewhere (S3), or a crafted redirect. Empty: the fake's own disk URL.
	RedirectTo string
}

// AgentMessage describes a message posted from the agent side with PostAgentMessage.
type AgentMessage struct {
	Content string
	// ContentType is the message content_type: "text" (default), "input_select", "cards",
	// "form", "article", "input_csat", …
	ContentType string
	// Template posts a template message (message_type 3, no sender) such as a greeting,
	// instead of an outgoing reply by Agent Smith.
	Template bool
	// Private posts a private note: stored, never listed over REST or sent to contacts.
	Private bool
	// InReplyTo quotes an earlier message (content_attributes.in_reply_to).
	InReplyTo int64
	// Items are content_attributes.items of an interactive message.
	Items []map[string]any
	// ContentAttributes are merged into content_attributes.
	ContentAttributes map[string]any
	Attachments       []File
}

// AgentReply posts an outgoing message by the user "Agent Smith" and emits message.created,
// plus conversation.updated when it is the first reply or ends the contact's waiting time.
func (s *Server) AgentReply(conversationID int64, content string) Message {
	return s.postMessage("AgentReply", conversationID, MessageOutgoing, AgentMessage{Content: content})
}

// PrivateNote posts a private note. It is stored (see Messages) but never reaches contacts.
func (s *Server) PrivateNote(conversationID int64, content string) Message {
	return s.postMessage("PrivateNote", conversationID, MessageOutgoing, AgentMessage{Content: content, Private: true})
}

// TemplateMessage posts a template message (message_type 3, no sender), as greetings are.
func (s *Server) TemplateMessage(conversationID int64, content string) Message {
	return s.postMessage("TemplateMessage", conversationID, MessageTemplate, AgentMessage{Content: content})
}

// ActivityMessage posts an activity message (message_type 2), which contacts never see.
func (s *Server) ActivityMessage(conversationID int64, content string) Message {
	return s.postMessage("ActivityMessage", conversationID, MessageActivity, AgentMessage{Content: content})
}

// PostAgentMessage posts any agent-side message: replies with quotes, attachments or
// interactive content, templates and private notes.
func (s *Server) PostAgentMessage(conversationID int64, m AgentMessage) Message {
	typ := MessageOutgoing
	if m.Template {
		typ = MessageTemplate
	}
	return s.postMessage("PostAgentMessage", conversationID, typ, m)
}

func (s *Server) postMessage(caller string, conversationID int64, typ int, am AgentMessage) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, found := s.st.convs[conversationID]
	if !found {
		s.errorf("%s: no conversation %d", caller, conversationID)
		return Message{}
	}
	now := time.Now()
	content := am.Content
	attrs := copyMap(am.ContentAttributes)
	if am.InReplyTo != 0 {
		attrs["in_reply_to"] = am.InReplyTo
	}
	if am.Items != nil {
		attrs["items"] = copyValue(am.Items)
	}
	m := &msgRec{
		convID: c.id, typ: typ, contentType: am.ContentType, content: &content, private: am.Private,
		contentAttrs: attrs, createdAt: now, updatedAt: now,
	}
	if typ == MessageOutgoing {
		m.senderType, m.senderID = "User", agentID
	}
	for _, f := range am.Attachments {
		m.attachments = append(m.attachments, &attachmentRec{
			fileType: cmp.Or(f.FileType, fileType(f.ContentType)), contentType: f.ContentType, filename: f.Filename, data: append([]byte(nil), f.Data...),
			externalURL: f.ExternalURL, fallbackTitle: f.FallbackTitle, redirectTo: f.RedirectTo,
		})
	}
	s.addMessage(m)
	var extra map[string]any
	if m.senderType == "User" {
		extra = map[string]any{"performer": agentPush()}
	}
	s.broadcastMessage(m, "message.created", extra)
	if typ == MessageOutgoing && !am.Private {
		changed := false
		if c.firstReplyAt.IsZero() {
			c.firstReplyAt, changed = now, true
		}
		if !c.waitingSince.IsZero() {
			c.waitingSince, changed = time.Time{}, true
		}
		c.lastActivityAt, c.updatedAt = now, now
		if changed {
			s.broadcastConversation(c, "conversation.updated")
		}
	}
	s.notify()
	return s.publicMessage(m)
}

// EditMessage changes a message's content as an agent edit does, with message.updated.
func (s *Server) EditMessage(messageID int64, content string) {
	s.updateMessage("EditMessage", messageID, func(m *msgRec) map[string]any {
		var prev any
		if m.content != nil {
			prev = *m.content
		}
		m.content = &content
		return map[string]any{"performer": agentPush(), "previous_changes": map[string]any{"content": []any{prev, content}}}
	})
}

// DeleteMessage deletes a message as an agent does: content "This message was deleted",
// content_attributes {"deleted": true}, attachments gone, and message.updated.
func (s *Server) DeleteMessage(messageID int64) {
	s.updateMessage("DeleteMessage", messageID, func(m *msgRec) map[string]any {
		content := "This message was deleted"
		m.content, m.contentType = &content, "text"
		m.contentAttrs = map[string]any{"deleted": true}
		for _, a := range m.attachments {
			delete(s.st.attachments, a.key)
		}
		m.attachments = nil
		return map[string]any{"performer": agentPush()}
	})
}

// MarkFailed marks a message failed as a failing API-inbox webhook does: status "failed" and
// content_attributes.external_error, with message.updated.
func (s *Server) MarkFailed(messageID int64, reason string) {
	s.updateMessage("MarkFailed", messageID, func(m *msgRec) map[string]any {
		prev := m.status
		m.status = "failed"
		m.contentAttrs["external_error"] = reason
		return map[string]any{"previous_changes": map[string]any{"status": []any{prev, "failed"}}}
	})
}

func (s *Server) updateMessage(caller string, messageID int64, change func(*msgRec) map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, found := s.st.msgs[messageID]
	if !found {
		s.errorf("%s: no message %d", caller, messageID)
		return
	}
	extra := change(m)
	m.updatedAt = time.Now()
	s.broadcastMessage(m, "message.updated", extra)
	s.notify()
}

// AgentTyping emits conversation.typing_on or typing_off from Agent Smith to the
// conversation's own session. private marks typing in a private note (is_private), which
// OneChat still sends to the contact.
func (s *Server) AgentTyping(conversationID int64, on, private bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, found := s.st.convs[conversationID]
	if !found {
		s.errorf("AgentTyping: no conversation %d", conversationID)
		return
	}
	ci, found := s.st.sessions[c.sessionID]
	if !found {
		return
	}
	event := "conversation.typing_off"
	if on {
		event = "conversation.typing_on"
	}
	s.broadcast([]string{ci.pubsubToken}, event, map[string]any{
		"conversation": s.conversationPush(c), "user": agentPush(), "is_private": private, "performer": agentPush(),
	})
	s.notify()
}

// Resolve resolves a conversation (status_changed + updated when it changes).
func (s *Server) Resolve(conversationID int64) {
	s.changeStatus("Resolve", conversationID, StatusResolved)
}

// Reopen opens a conversation again (status_changed + updated when it changes).
func (s *Server) Reopen(conversationID int64) { s.changeStatus("Reopen", conversationID, StatusOpen) }

// Snooze snoozes a conversation (status_changed + updated when it changes).
func (s *Server) Snooze(conversationID int64) {
	s.changeStatus("Snooze", conversationID, StatusSnoozed)
}

// SetPending puts a conversation in pending, as a bot hand-off does.
func (s *Server) SetPending(conversationID int64) {
	s.changeStatus("SetPending", conversationID, StatusPending)
}

// HoldSurveys(true) makes a resolve leave its CSAT survey (CSATSurveyEnabled) unposted until
// ReleaseSurveys, as OneChat posts it: CsatSurveyListener runs in a Sidekiq job after the
// status change committed, so the survey's message.created can come long after the status
// events, and a read of the conversation in between finds no survey. HoldSurveys(false) stops
// holding; surveys already held wait for ReleaseSurveys.
func (s *Server) HoldSurveys(hold bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdSurveys = hold
}

// ReleaseSurveys posts the CSAT surveys HoldSurveys held, oldest resolve first, each with its
// message.created; a conversation that has a survey by then gets no second one (upstream
// sends one per conversation), nor does one reopened meanwhile (CsatSurveyService checks the
// conversation is still resolved).
func (s *Server) ReleaseSurveys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := s.heldSurveys
	s.heldSurveys = nil
	hold := s.holdSurveys
	s.holdSurveys = false
	for _, id := range held {
		if c, found := s.st.convs[id]; found && c.status == StatusResolved {
			s.sendCSAT(c)
		}
	}
	s.holdSurveys = hold
	s.notify()
}

func (s *Server) changeStatus(caller string, conversationID int64, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, found := s.st.convs[conversationID]
	if !found {
		s.errorf("%s: no conversation %d", caller, conversationID)
		return
	}
	s.setStatus(c, status)
	s.notify()
}

// DeleteContact deletes a contact with its sessions, conversations and messages, as an agent
// deleting the contact does: later Client API calls with its source_ids answer 404, and its
// pubsub tokens no longer receive anything.
func (s *Server) DeleteContact(contactID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, found := s.st.contacts[contactID]; !found {
		s.errorf("DeleteContact: no contact %d", contactID)
		return
	}
	if ct := s.st.contacts[contactID]; s.st.byIdentifier[ct.identifier] == ct {
		delete(s.st.byIdentifier, ct.identifier)
	}
	delete(s.st.contacts, contactID)
	delete(s.st.contactSessions, contactID)
	for id, ci := range s.st.sessions {
		if ci.contactID == contactID {
			delete(s.st.sessions, id)
			delete(s.st.bySource, ci.sourceID)
			delete(s.st.byToken, ci.pubsubToken)
		}
	}
	for id, c := range s.st.convs {
		if c.contactID != contactID {
			continue
		}
		for _, m := range s.st.msgsByConv[id] {
			for _, a := range m.attachments {
				delete(s.st.attachments, a.key)
			}
			if _, ok := s.st.msgs[m.id]; ok {
				s.st.msgsByType[m.typ]--
			}
			delete(s.st.msgs, m.id)
		}
		delete(s.st.msgsByConv, id)
		delete(s.st.convs, id)
	}
	s.notify()
}

// Block blocks a contact as an agent does: its later conversations start resolved (§7), and
// contact payloads say "blocked": true. Messages it posts are still accepted.
func (s *Server) Block(contactID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, found := s.st.contacts[contactID]
	if !found {
		s.errorf("Block: no contact %d", contactID)
		return
	}
	ct.blocked = true
	s.notify()
}

// Unblock undoes Block.
func (s *Server) Unblock(contactID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, found := s.st.contacts[contactID]
	if !found {
		s.errorf("Unblock: no contact %d", contactID)
		return
	}
	ct.blocked = false
	s.notify()
}

// AgeMessage moves a message's creation time back by d, so tests can reach time limits such
// as the CSAT expiry without waiting.
func (s *Server) AgeMessage(messageID int64, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, found := s.st.msgs[messageID]
	if !found {
		s.errorf("AgeMessage: no message %d", messageID)
		return
	}
	m.createdAt = m.createdAt.Add(-d)
	s.notify()
}
