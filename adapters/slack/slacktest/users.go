package slacktest

import (
	"encoding/json"
	"fmt"
	"time"
)

// SayOption adds something to a user's message.
type SayOption func(*sayOpts)

type sayOpts struct {
	files     []File
	away      bool
	broadcast bool
}

// Broadcast makes a thread reply also show in the channel ("Also send to #channel"): subtype
// thread_broadcast, listed by conversations.history, and still a reply (it has thread_ts).
func Broadcast() SayOption { return func(o *sayOpts) { o.broadcast = true } }

// WithFile attaches a file: the message becomes a file_share message whose file the bot can
// download from url_private_download with its token.
func WithFile(name, mimetype string, data []byte) SayOption {
	return func(o *sayOpts) { o.files = append(o.files, File{Name: name, Mimetype: mimetype, Data: data}) }
}

// Away makes the action happen while the bridge is away and Slack has given up on delivering
// it: it changes history (conversations.history and .replies show it) but no event is sent.
// Without Away, an action while no socket is open is held and delivered as a retry when one
// connects.
func Away() SayOption { return func(o *sayOpts) { o.away = true } }

// UserSays makes a user write in a channel (or DM), as a reply in the thread of threadTS when
// it is not empty, and returns the message's ts. The message goes into history, and a message
// event (subtype file_share with files) is delivered unless Away.
func (s *Server) UserSays(channel, user, text, threadTS string, opts ...SayOption) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var o sayOpts
	for _, f := range opts {
		f(&o)
	}
	c, ok := s.channels[channel]
	u, uok := s.users[user]
	if !ok || !uok {
		s.t.Errorf("slacktest: UserSays: unknown channel %q or user %q", channel, user)
		return ""
	}
	root := ""
	if threadTS != "" {
		var code apiError
		if root, code = s.threadRootLocked(c, threadTS); code != "" {
			s.t.Errorf("slacktest: UserSays: no message %s in %s", threadTS, channel)
			return ""
		}
	}
	m := &Message{Channel: c.ID, TS: s.newTS(), ThreadTS: root, User: u.ID, Team: u.Team, Text: text,
		ClientMsgID: fmt.Sprintf("%s-%s-%s-%s-%s", randomHex(4), randomHex(2), randomHex(2), randomHex(2), randomHex(6))}
	if text != "" {
		m.Blocks = richText(text)
	}
	if o.broadcast && root != "" {
		m.Subtype = "thread_broadcast"
	}
	for _, f := range o.files {
		m.Files = append(m.Files, s.newFileLocked(s.nextID("F"), f.Name, f.Name, f.Mimetype, u.ID, f.Data, int64(len(f.Data))))
		m.Subtype = "file_share"
	}
	s.storeLocked(m)
	if !o.away {
		s.emitMessageLocked(c, m)
	}
	s.notify()
	return m.TS
}

// richText is the rich_text block Slack adds to a message typed in a client.
func richText(text string) json.RawMessage {
	b, _ := json.Marshal([]any{map[string]any{
		"type": "rich_text", "block_id": randomHex(3),
		"elements": []any{map[string]any{"type": "rich_text_section", "elements": []any{map[string]any{"type": "text", "text": text}}}},
	}})
	return b
}

// UserEdits changes a user's message; a message_changed event carries the new message (with
// edited set) and the previous one.
func (s *Server) UserEdits(channel, ts, text string, opts ...SayOption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var o sayOpts
	for _, f := range opts {
		f(&o)
	}
	c, m := s.channels[channel], s.findLocked(channel, ts)
	if c == nil || m == nil || m.Deleted {
		s.t.Errorf("slacktest: UserEdits: no message %s in %s", ts, channel)
		return
	}
	prev := s.renderMessageLocked(m)
	m.Text = text
	m.Blocks = richText(text)
	m.Edited = &Edited{User: m.User, TS: s.newTS()}
	if !o.away {
		s.emitChangedLocked(c, m, prev)
	}
	s.notify()
}

// Unfurl adds a link preview to a message, firing a message_changed event without edited, as
// Slack does for unfurls: it is not an edit.
func (s *Server) Unfurl(channel, ts, link string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, m := s.channels[channel], s.findLocked(channel, ts)
	if c == nil || m == nil || m.Deleted {
		s.t.Errorf("slacktest: Unfurl: no message %s in %s", ts, channel)
		return
	}
	prev := s.renderMessageLocked(m)
	m.Attachments, _ = json.Marshal([]any{map[string]any{
		"id": 1, "from_url": link, "original_url": link, "fallback": link, "title": "Preview of " + link,
		"title_link": link, "service_name": "example",
	}})
	s.emitChangedLocked(c, m, prev)
	s.notify()
}

// UserDeletes deletes a message; a message_deleted event follows (unless Away).
func (s *Server) UserDeletes(channel, ts string, opts ...SayOption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var o sayOpts
	for _, f := range opts {
		f(&o)
	}
	c, m := s.channels[channel], s.findLocked(channel, ts)
	if c == nil || m == nil || m.Deleted {
		s.t.Errorf("slacktest: UserDeletes: no message %s in %s", ts, channel)
		return
	}
	if o.away {
		m.Deleted = true
	} else {
		s.deleteLocked(c, m)
	}
	s.notify()
}

// UserPresses makes a user press the button actionID of a message (value, when not empty,
// replaces the button's value, as for a select menu), delivering a block_actions payload in an
// interactive envelope. It returns the event's ID for Events and WaitAcked.
//
// Interactive envelopes are not retried: if the app does not acknowledge within the ack
// timeout, Slack shows the user an error instead, and the event is marked Dropped.
func (s *Server) UserPresses(user, channel, ts, actionID, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, m, u := s.channels[channel], s.findLocked(channel, ts), s.users[user]
	if c == nil || m == nil || m.Deleted || u == nil {
		s.t.Errorf("slacktest: UserPresses: no message %s in %s or no user %s", ts, channel, user)
		return ""
	}
	action, ok := findButton(m.Blocks, actionID)
	if !ok {
		s.t.Errorf("slacktest: UserPresses: message %s has no element %q", ts, actionID)
		return ""
	}
	actionTS := s.newTS()
	action["action_ts"] = actionTS
	if value != "" {
		action["value"] = value
	}
	key := randomHex(12)
	s.actions[key] = [2]string{c.ID, m.TS}
	container := map[string]any{"type": "message", "message_ts": m.TS, "channel_id": c.ID, "is_ephemeral": false}
	if m.ThreadTS != "" {
		container["thread_ts"] = m.ThreadTS
	}
	chName := c.Name
	if c.IM {
		chName = "directmessage"
	}
	team := s.teams[u.Team]
	payload := map[string]any{
		"type": "block_actions", "api_app_id": AppID, "token": VerificationToken,
		"user":      map[string]any{"id": u.ID, "username": u.Name, "name": u.Name, "team_id": u.Team},
		"container": container, "trigger_id": fmt.Sprintf("%d.%s", time.Now().Unix(), randomHex(8)),
		"team": map[string]any{"id": team.ID, "domain": team.Domain}, "enterprise": nil, "is_enterprise_install": false,
		"channel": map[string]any{"id": c.ID, "name": chName}, "message": s.renderMessageLocked(m),
		"state": map[string]any{"values": map[string]any{}}, "response_url": s.URL + "/actions/" + key,
		"actions": []any{action},
	}
	ev := s.enqueueLocked("interactive", "block_actions", c.ID, m.TS, "", payload)
	return ev.ID
}

// findButton finds an interactive element by action_id in a message's blocks and returns it as
// a block_actions action.
func findButton(blocks json.RawMessage, actionID string) (map[string]any, bool) {
	var bs []struct {
		BlockID   string           `json:"block_id"`
		Elements  []map[string]any `json:"elements"`
		Accessory map[string]any   `json:"accessory"`
	}
	if json.Unmarshal(blocks, &bs) != nil {
		return nil, false
	}
	for _, b := range bs {
		els := b.Elements
		if b.Accessory != nil {
			els = append(els, b.Accessory)
		}
		for _, e := range els {
			if e["action_id"] == actionID {
				a := map[string]any{"action_id": actionID, "block_id": b.BlockID, "type": e["type"]}
				for _, k := range []string{"text", "value", "style"} {
					if v, ok := e[k]; ok {
						a[k] = v
					}
				}
				return a, true
			}
		}
	}
	return nil, false
}

// EmitEvent delivers any inner event (channel_shared, app_uninstalled, a type slack-go does not
// know…) in an event_callback envelope and returns its event ID.
func (s *Server) EmitEvent(inner map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	typ, _ := inner["type"].(string)
	ch, _ := inner["channel"].(string)
	return s.callbackLocked(typ, ch, "", false, inner).ID
}

// ---- events from changes ----

func (s *Server) messageEventLocked(c *Channel, msg map[string]any) map[string]any {
	msg["channel"] = c.ID
	msg["channel_type"] = s.channelType(c)
	return msg
}

// emitMessageLocked delivers a new message's event, if the app is in the channel.
func (s *Server) emitMessageLocked(c *Channel, m *Message) {
	if !c.BotMember {
		return
	}
	inner := s.messageEventLocked(c, s.renderMessageLocked(m))
	inner["event_ts"] = m.TS
	if m.Team != TeamID {
		inner["user_team"], inner["source_team"] = m.Team, m.Team
	}
	if p := s.findLocked(c.ID, m.ThreadTS); m.Subtype == "thread_broadcast" && p != nil {
		inner["root"] = s.renderMessageLocked(p)
	}
	s.callbackLocked("message", c.ID, m.TS, len(c.SharedWith) > 0, inner)
}

func (s *Server) emitChangedLocked(c *Channel, m *Message, prev map[string]any) {
	if !c.BotMember {
		return
	}
	ts := s.newTS()
	inner := s.messageEventLocked(c, map[string]any{
		"type": "message", "subtype": "message_changed", "hidden": true, "message": s.renderMessageLocked(m),
		"previous_message": prev, "ts": ts, "event_ts": ts,
	})
	s.callbackLocked("message_changed", c.ID, m.TS, len(c.SharedWith) > 0, inner)
}

func (s *Server) deleteLocked(c *Channel, m *Message) {
	prev := s.renderMessageLocked(m)
	m.Deleted = true
	if !c.BotMember {
		return
	}
	ts := s.newTS()
	inner := s.messageEventLocked(c, map[string]any{
		"type": "message", "subtype": "message_deleted", "hidden": true, "deleted_ts": m.TS,
		"previous_message": prev, "ts": ts, "event_ts": ts,
	})
	if m.IsReply() {
		inner["thread_ts"] = m.ThreadTS
	}
	s.callbackLocked("message_deleted", c.ID, m.TS, len(c.SharedWith) > 0, inner)
}

// callbackLocked wraps an inner event in an event_callback and queues it for delivery.
func (s *Server) callbackLocked(subtype, channel, ts string, extShared bool, inner map[string]any) *event {
	eventID := "Ev" + s.nextID("0FAKE")
	payload := map[string]any{
		"token": VerificationToken, "team_id": TeamID, "context_team_id": TeamID, "context_enterprise_id": nil,
		"api_app_id": AppID, "event": inner, "type": "event_callback", "event_id": eventID,
		"event_time": time.Now().Unix(), "is_ext_shared_channel": extShared, "event_context": "4-" + randomHex(16),
		"authorizations": []any{map[string]any{"enterprise_id": nil, "team_id": TeamID, "user_id": BotUserID,
			"is_bot": true, "is_enterprise_install": false}},
	}
	return s.enqueueLocked("events_api", subtype, channel, ts, eventID, payload)
}
