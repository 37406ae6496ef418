package slacktest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// apiError is a Slack error code answered as {"ok":false,"error":code}.
type apiError string

type result map[string]any

type handler func(s *Server, p url.Values) (result, apiError)

var methods = map[string]handler{
	"auth.test":                    (*Server).authTest,
	"apps.connections.open":        (*Server).connectionsOpen,
	"chat.postMessage":             (*Server).postMessage,
	"chat.update":                  (*Server).updateMessage,
	"chat.delete":                  (*Server).deleteMessage,
	"reactions.add":                (*Server).addReaction,
	"conversations.history":        (*Server).history,
	"conversations.replies":        (*Server).replies,
	"conversations.info":           (*Server).conversationInfo,
	"conversations.open":           (*Server).conversationOpen,
	"users.info":                   (*Server).userInfo,
	"team.info":                    (*Server).teamInfo,
	"files.getUploadURLExternal":   (*Server).getUploadURL,
	"files.completeUploadExternal": (*Server).completeUpload,
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readParams reads a call's arguments: the query, then a form or JSON body. JSON values that
// are not strings are kept as their JSON text, as Slack reads them.
func readParams(r *http.Request) (url.Values, error) {
	p := cloneValues(r.URL.Query())
	body, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
	if err != nil {
		return nil, err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case ct == "application/json":
		if len(strings.TrimSpace(string(body))) == 0 || string(body) == "null" {
			return p, nil
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, err
		}
		for k, raw := range m {
			var str string
			if json.Unmarshal(raw, &str) == nil {
				p.Set(k, str)
			} else {
				p.Set(k, string(raw))
			}
		}
	case len(body) > 0:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, err
		}
		for k, vs := range form {
			p[k] = vs
		}
	}
	return p, nil
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	p, err := readParams(r)
	if err != nil {
		writeJSON(w, http.StatusOK, result{"ok": false, "error": "invalid_form_data"})
		return
	}
	token := p.Get("token")
	p.Del("token")
	if auth := r.Header.Get("Authorization"); auth != "" {
		token = strings.TrimPrefix(auth, "Bearer ")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{Method: method, Params: cloneValues(p)})
	defer s.notify()

	if code := s.checkToken(method, token); code != "" {
		writeJSON(w, http.StatusOK, result{"ok": false, "error": code})
		return
	}
	h, ok := methods[method]
	if !ok {
		writeJSON(w, http.StatusOK, result{"ok": false, "error": "unknown_method"})
		return
	}
	channel := p.Get("channel")
	if channel == "" {
		channel = p.Get("channel_id")
	}
	f := s.takeFaultLocked(method, channel)
	if f != nil && !f.AfterEffect {
		writeFault(w, f)
		return
	}
	if method == "chat.postMessage" && f == nil {
		if ok, retry := s.allowPostLocked(channel); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(retry))
			writeJSON(w, http.StatusTooManyRequests, result{"ok": false, "error": "ratelimited"})
			return
		}
	}
	res, code := h(s, p)
	if f != nil {
		writeFault(w, f)
		return
	}
	if code != "" {
		writeJSON(w, http.StatusOK, result{"ok": false, "error": string(code)})
		return
	}
	res["ok"] = true
	writeJSON(w, http.StatusOK, res)
}

func writeFault(w http.ResponseWriter, f *fault) {
	switch {
	case f.RetryAfter > 0:
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		writeJSON(w, http.StatusTooManyRequests, result{"ok": false, "error": "ratelimited"})
	case f.Status != 0:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(f.Status)
		_, _ = io.WriteString(w, "<html><body><h1>Slack is having trouble</h1></body></html>")
	default:
		writeJSON(w, http.StatusOK, result{"ok": false, "error": f.Error})
	}
}

// checkToken returns the Slack error for a call's token, or "". The token is never echoed.
func (s *Server) checkToken(method, token string) apiError {
	switch {
	case token == "":
		return "not_authed"
	case method == "apps.connections.open" && token == s.AppToken:
		return ""
	case method == "apps.connections.open" && token == s.BotToken,
		method != "apps.connections.open" && token == s.AppToken:
		return "not_allowed_token_type"
	case method != "apps.connections.open" && token == s.BotToken:
		return ""
	}
	return "invalid_auth"
}

// ---- rendering ----

func (s *Server) channelType(c *Channel) string {
	switch {
	case c.IM:
		return "im"
	case c.Private:
		return "group"
	}
	return "channel"
}

func (s *Server) renderChannelLocked(c *Channel) result {
	out := result{
		"id": c.ID, "created": c.Created, "is_archived": c.Archived, "is_im": c.IM,
		"is_channel": !c.IM && !c.Private, "is_group": !c.IM && c.Private, "is_private": c.IM || c.Private,
		"is_mpim": false, "is_member": c.BotMember, "is_general": false,
		"is_shared": len(c.SharedWith) > 0, "is_ext_shared": len(c.SharedWith) > 0, "is_org_shared": false,
		"is_pending_ext_shared": false, "context_team_id": TeamID, "updated": c.Created * 1000,
	}
	if c.IM {
		out["user"] = c.User
		out["is_open"] = true
		out["is_user_deleted"] = s.users[c.User] != nil && s.users[c.User].Deleted
	} else {
		out["name"] = c.Name
		out["name_normalized"] = c.Name
		out["creator"] = BotUserID
		out["shared_team_ids"] = append([]string{TeamID}, c.SharedWith...)
		out["topic"] = result{"value": "", "creator": "", "last_set": 0}
		out["purpose"] = result{"value": "", "creator": "", "last_set": 0}
	}
	return out
}

func (s *Server) renderFile(f *File) result {
	ext := ""
	if i := strings.LastIndexByte(f.Name, '.'); i >= 0 {
		ext = f.Name[i+1:]
	}
	return result{
		"id": f.ID, "created": f.Created, "timestamp": f.Created, "name": f.Name, "title": f.Title,
		"mimetype": f.Mimetype, "filetype": ext, "pretty_type": strings.ToUpper(ext), "user": f.User,
		"user_team": s.teamOfLocked(f.User), "editable": false, "size": f.Size, "mode": "hosted",
		"is_external": false, "external_type": "", "is_public": false, "public_url_shared": false,
		"display_as_bot": false, "username": "", "url_private": f.URLPrivate,
		"url_private_download": f.URLPrivateDownload,
		"permalink":            fmt.Sprintf("https://%s.slack.com/files/%s/%s/%s", TeamDomain, f.User, f.ID, f.Name),
	}
}

func (s *Server) teamOfLocked(user string) string {
	if u, ok := s.users[user]; ok {
		return u.Team
	}
	return TeamID
}

// renderMessageLocked is a message as conversations.history and events show it.
func (s *Server) renderMessageLocked(m *Message) result {
	if m.Deleted {
		return result{"type": "message", "subtype": "tombstone", "text": "This message was deleted.",
			"user": "USLACKBOT", "hidden": true, "ts": m.TS, "thread_ts": m.ThreadTS, "reply_count": s.replyCountLocked(m)}
	}
	out := result{"type": "message", "text": m.Text, "user": m.User, "ts": m.TS, "team": m.Team}
	if m.Subtype != "" {
		out["subtype"] = m.Subtype
	}
	if len(m.Blocks) > 0 {
		out["blocks"] = m.Blocks
	}
	if len(m.Attachments) > 0 {
		out["attachments"] = m.Attachments
	}
	if m.ClientMsgID != "" {
		out["client_msg_id"] = m.ClientMsgID
	}
	if m.BotID != "" {
		out["bot_id"] = m.BotID
		out["app_id"] = AppID
		out["bot_profile"] = result{"id": BotID, "app_id": AppID, "name": "OneChat Support", "deleted": false, "team_id": TeamID}
	}
	if len(m.Files) > 0 {
		files := []result{}
		for i := range m.Files {
			files = append(files, s.renderFile(&m.Files[i]))
		}
		out["files"] = files
		out["upload"] = false
		out["display_as_bot"] = false
	}
	if m.Edited != nil {
		out["edited"] = *m.Edited
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
		if m.IsReply() {
			if p := s.findLocked(m.Channel, m.ThreadTS); p != nil {
				out["parent_user_id"] = p.User
			}
		} else {
			n, users, latest := s.threadStatsLocked(m)
			out["reply_count"], out["reply_users_count"], out["latest_reply"] = n, len(users), latest
			out["reply_users"] = users
			out["is_locked"], out["subscribed"] = false, false
		}
	}
	if len(m.Reactions) > 0 {
		rs := []result{}
		for _, r := range m.Reactions {
			rs = append(rs, result{"name": r.Name, "users": r.Users, "count": len(r.Users)})
		}
		out["reactions"] = rs
	}
	return out
}

func (s *Server) replyCountLocked(m *Message) int {
	n, _, _ := s.threadStatsLocked(m)
	return n
}

func (s *Server) threadStatsLocked(parent *Message) (n int, users []string, latest string) {
	users = []string{}
	for _, r := range s.msgs[parent.Channel] {
		if r.Deleted || !r.IsReply() || r.ThreadTS != parent.TS {
			continue
		}
		n++
		latest = r.TS
		if !slices.Contains(users, r.User) {
			users = append(users, r.User)
		}
	}
	return n, users, latest
}

// ---- methods ----

func (s *Server) authTest(url.Values) (result, apiError) {
	return result{
		"url": "https://" + TeamDomain + ".slack.com/", "team": TeamName, "user": "onechat",
		"team_id": TeamID, "user_id": BotUserID, "bot_id": BotID, "is_enterprise_install": false,
	}, ""
}

func (s *Server) connectionsOpen(url.Values) (result, apiError) {
	ticket := randomHex(16)
	s.tickets[ticket] = true
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/link/?ticket=" + ticket + "&app_id=" + AppID
	return result{"url": u}, ""
}

// channelLocked resolves a channel argument: a channel ID, or a user ID meaning the bot's DM
// with that user (as chat.postMessage accepts).
func (s *Server) channelLocked(id string) (*Channel, apiError) {
	if c, ok := s.channels[id]; ok {
		return c, ""
	}
	if u, ok := s.users[id]; ok && !u.IsBot {
		return s.channels[s.dmLocked(id)], ""
	}
	return nil, "channel_not_found"
}

// writableLocked checks that the bot may post in the channel.
func (s *Server) writableLocked(id string) (*Channel, apiError) {
	c, code := s.channelLocked(id)
	switch {
	case code != "":
		return nil, code
	case c.Archived:
		return nil, "is_archived"
	case !c.BotMember:
		return nil, "not_in_channel"
	case c.IM && s.users[c.User] != nil && s.users[c.User].Deleted:
		// What Slack answers for a DM to a deactivated user is not documented; the fake fails.
		return nil, "user_disabled"
	}
	return c, ""
}

// threadRootLocked returns the ts of the thread a thread_ts argument names: a reply's ts names
// its parent's thread.
func (s *Server) threadRootLocked(c *Channel, threadTS string) (string, apiError) {
	if threadTS == "" {
		return "", ""
	}
	m := s.findLocked(c.ID, threadTS)
	if m == nil {
		// Slack's answer to an unknown thread_ts is not documented; the fake refuses it.
		return "", "thread_not_found"
	}
	if m.IsReply() {
		return m.ThreadTS, ""
	}
	return m.TS, ""
}

func (s *Server) postMessage(p url.Values) (result, apiError) {
	c, code := s.writableLocked(p.Get("channel"))
	if code != "" {
		return nil, code
	}
	text, blocks, attachments := p.Get("text"), p.Get("blocks"), p.Get("attachments")
	if text == "" && blocks == "" && attachments == "" {
		return nil, "no_text"
	}
	if utf8.RuneCountInString(text) > maxTextLen {
		return nil, "msg_too_long"
	}
	var rawBlocks json.RawMessage
	if blocks != "" {
		if code := validateBlocks(blocks); code != "" {
			return nil, code
		}
		rawBlocks = json.RawMessage(blocks)
	}
	root, code := s.threadRootLocked(c, p.Get("thread_ts"))
	if code != "" {
		return nil, code
	}
	m := &Message{Channel: c.ID, TS: s.newTS(), ThreadTS: root, User: BotUserID, Team: TeamID, BotID: BotID,
		Text: text, Blocks: rawBlocks, Params: cloneValues(p)}
	if root != "" && p.Get("reply_broadcast") == "true" {
		m.Subtype = "thread_broadcast"
	}
	if attachments != "" {
		m.Attachments = json.RawMessage(attachments)
	}
	s.storeLocked(m)
	s.emitMessageLocked(c, m)
	return result{"channel": c.ID, "ts": m.TS, "message": s.renderMessageLocked(m)}, ""
}

// storeLocked appends a message to its channel, marking the parent as a thread parent.
func (s *Server) storeLocked(m *Message) {
	if m.IsReply() {
		if p := s.findLocked(m.Channel, m.ThreadTS); p != nil && p.ThreadTS == "" {
			p.ThreadTS = p.TS
		}
	}
	s.msgs[m.Channel] = append(s.msgs[m.Channel], m)
}

func (s *Server) ownMessageLocked(p url.Values, notOurs apiError) (*Channel, *Message, apiError) {
	c, code := s.channelLocked(p.Get("channel"))
	if code != "" {
		return nil, nil, code
	}
	m := s.findLocked(c.ID, p.Get("ts"))
	switch {
	case m == nil || m.Deleted:
		return nil, nil, "message_not_found"
	case m.User != BotUserID:
		return nil, nil, notOurs
	}
	return c, m, ""
}

func (s *Server) updateMessage(p url.Values) (result, apiError) {
	c, m, code := s.ownMessageLocked(p, "cant_update_message")
	if code != "" {
		return nil, code
	}
	_, hasText := p["text"]
	blocks := p.Get("blocks")
	if !hasText && blocks == "" && p.Get("attachments") == "" {
		return nil, "no_text"
	}
	if utf8.RuneCountInString(p.Get("text")) > maxTextLen {
		return nil, "msg_too_long"
	}
	if blocks != "" {
		if code := validateBlocks(blocks); code != "" {
			return nil, code
		}
	}
	prev := s.renderMessageLocked(m)
	if hasText {
		m.Text = p.Get("text")
	}
	if blocks != "" {
		m.Blocks = json.RawMessage(blocks)
	} else {
		// Text without blocks removes the old blocks (chat.update docs), and shows "edited".
		m.Blocks = nil
		m.Edited = &Edited{User: BotUserID, TS: s.newTS()}
	}
	m.Updates++
	s.emitChangedLocked(c, m, prev)
	return result{"channel": c.ID, "ts": m.TS, "text": m.Text, "message": s.renderMessageLocked(m)}, ""
}

func (s *Server) deleteMessage(p url.Values) (result, apiError) {
	c, m, code := s.ownMessageLocked(p, "cant_delete_message")
	if code != "" {
		return nil, code
	}
	s.deleteLocked(c, m)
	return result{"channel": c.ID, "ts": m.TS}, ""
}

func (s *Server) addReaction(p url.Values) (result, apiError) {
	name := strings.Trim(p.Get("name"), ":")
	if p.Get("channel") == "" || p.Get("timestamp") == "" {
		return nil, "no_item_specified"
	}
	if name == "" || strings.ContainsAny(name, " :") {
		return nil, "invalid_name"
	}
	c, code := s.channelLocked(p.Get("channel"))
	if code != "" {
		return nil, code
	}
	m := s.findLocked(c.ID, p.Get("timestamp"))
	if m == nil || m.Deleted {
		return nil, "message_not_found"
	}
	for i := range m.Reactions {
		if m.Reactions[i].Name == name {
			if slices.Contains(m.Reactions[i].Users, BotUserID) {
				return nil, "already_reacted"
			}
			m.Reactions[i].Users = append(m.Reactions[i].Users, BotUserID)
			return result{}, ""
		}
	}
	m.Reactions = append(m.Reactions, Reaction{Name: name, Users: []string{BotUserID}})
	return result{}, ""
}

// readableLocked checks that the bot may read a channel's history.
func (s *Server) readableLocked(id string) (*Channel, apiError) {
	c, ok := s.channels[id]
	if !ok {
		return nil, "channel_not_found"
	}
	if !c.BotMember {
		return nil, "not_in_channel"
	}
	return c, ""
}

type window struct {
	oldest, latest int64
	hasOldest      bool
	hasLatest      bool
	inclusive      bool
	limit          int
	cursor         int64
	hasCursor      bool
}

func parseWindow(p url.Values, pageMax int) (window, apiError) {
	w := window{latest: 1 << 62, limit: 100, inclusive: p.Get("inclusive") == "1" || p.Get("inclusive") == "true"}
	var ok bool
	if v := p.Get("oldest"); v != "" {
		if w.oldest, ok = tsKey(v); !ok {
			return w, "invalid_ts_oldest"
		}
		w.hasOldest = true
	}
	if v := p.Get("latest"); v != "" {
		if w.latest, ok = tsKey(v); !ok {
			return w, "invalid_ts_latest"
		}
		w.hasLatest = true
	}
	if v := p.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return w, "invalid_limit"
		}
		if n > 0 {
			w.limit = n
		}
	}
	w.limit = min(w.limit, pageMax)
	if v := p.Get("cursor"); v != "" {
		raw, err := base64.StdEncoding.DecodeString(v)
		ts, found := strings.CutPrefix(string(raw), "next_ts:")
		if err != nil || !found {
			return w, "invalid_cursor"
		}
		if w.cursor, ok = tsKey(ts); !ok {
			return w, "invalid_cursor"
		}
		w.hasCursor = true
	}
	return w, ""
}

func (w window) contains(k int64) bool {
	if w.hasOldest && (k < w.oldest || k == w.oldest && !w.inclusive) {
		return false
	}
	if w.hasLatest && (k > w.latest || k == w.latest && !w.inclusive) {
		return false
	}
	return true
}

func cursorFor(ts string) string {
	k, _ := tsKey(ts)
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("next_ts:%d.%06d", k/1e6, k%1e6)))
}

// history answers conversations.history: top-level messages (and the tombstones of deleted
// thread parents that still have replies), newest first, paged by cursor.
func (s *Server) history(p url.Values) (result, apiError) {
	c, code := s.readableLocked(p.Get("channel"))
	if code != "" {
		return nil, code
	}
	w, code := parseWindow(p, s.historyMax)
	if code != "" {
		return nil, code
	}
	var sel []*Message
	ms := s.msgs[c.ID]
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		k, _ := tsKey(m.TS)
		if (m.IsReply() && m.Subtype != "thread_broadcast") || !w.contains(k) || (w.hasCursor && k > w.cursor) {
			continue
		}
		if m.Deleted && s.replyCountLocked(m) == 0 {
			continue
		}
		sel = append(sel, m)
	}
	return s.page(sel, w.limit), ""
}

func (s *Server) page(sel []*Message, limit int) result {
	out := result{"messages": []result{}, "has_more": false, "pin_count": 0}
	msgs := []result{}
	for i, m := range sel {
		if i == limit {
			out["has_more"] = true
			out["response_metadata"] = result{"next_cursor": cursorFor(m.TS)}
			break
		}
		msgs = append(msgs, s.renderMessageLocked(m))
	}
	out["messages"] = msgs
	return out
}

// replies answers conversations.replies: the thread's parent, then its replies oldest first.
// The parent comes first on the first page whatever oldest says, as Slack is widely reported
// to do (not in the method's docs).
func (s *Server) replies(p url.Values) (result, apiError) {
	c, code := s.readableLocked(p.Get("channel"))
	if code != "" {
		return nil, code
	}
	if p.Get("ts") == "" {
		return nil, "invalid_arguments"
	}
	w, code := parseWindow(p, s.historyMax)
	if code != "" {
		return nil, code
	}
	m := s.findLocked(c.ID, p.Get("ts"))
	if m == nil || (m.Deleted && s.replyCountLocked(m) == 0) {
		return nil, "thread_not_found"
	}
	root := m.TS
	if m.IsReply() {
		root = m.ThreadTS
	}
	var sel []*Message
	for _, r := range s.msgs[c.ID] {
		k, _ := tsKey(r.TS)
		switch {
		case r.TS == root:
			if !w.hasCursor && (!r.Deleted || s.replyCountLocked(r) > 0) {
				sel = append([]*Message{r}, sel...)
			}
		case r.ThreadTS == root && !r.Deleted && w.contains(k) && (!w.hasCursor || k >= w.cursor):
			sel = append(sel, r)
		}
	}
	return s.page(sel, w.limit), ""
}

func (s *Server) conversationInfo(p url.Values) (result, apiError) {
	c, ok := s.channels[p.Get("channel")]
	if !ok {
		return nil, "channel_not_found"
	}
	ch := s.renderChannelLocked(c)
	if p.Get("include_num_members") == "true" || p.Get("include_num_members") == "1" {
		ch["num_members"] = 2
	}
	return result{"channel": ch}, ""
}

func (s *Server) conversationOpen(p url.Values) (result, apiError) {
	if id := p.Get("channel"); id != "" {
		c, ok := s.channels[id]
		if !ok {
			return nil, "channel_not_found"
		}
		return result{"channel": s.renderChannelLocked(c), "no_op": true, "already_open": true}, ""
	}
	users := strings.Split(p.Get("users"), ",")
	if p.Get("users") == "" {
		return nil, "users_list_not_supplied"
	}
	if len(users) > 1 {
		return nil, "not_supported" // multi-person DMs are not faked
	}
	u, ok := s.users[users[0]]
	switch {
	case !ok:
		return nil, "user_not_found"
	case u.IsBot:
		return nil, "cannot_dm_bot"
	case u.Deleted:
		return nil, "user_disabled"
	}
	_, existed := s.dms[u.ID]
	c := s.channels[s.dmLocked(u.ID)]
	ch := result{"id": c.ID}
	if p.Get("return_im") == "true" || p.Get("return_im") == "1" {
		ch = s.renderChannelLocked(c)
	}
	out := result{"channel": ch}
	if existed {
		out["no_op"], out["already_open"] = true, true
	}
	return out, ""
}

func (s *Server) userInfo(p url.Values) (result, apiError) {
	u, ok := s.users[p.Get("user")]
	if !ok {
		return nil, "user_not_found"
	}
	tzOffset, tzLabel := 0, "Coordinated Universal Time"
	if loc, err := time.LoadLocation(u.TZ); err == nil && u.TZ != "" {
		name, off := time.Now().In(loc).Zone()
		tzOffset, tzLabel = off, name
	}
	out := result{
		"id": u.ID, "team_id": u.Team, "name": u.Name, "deleted": u.Deleted, "real_name": u.RealName,
		"tz": u.TZ, "tz_label": tzLabel, "tz_offset": tzOffset, "is_bot": u.IsBot, "is_app_user": false,
		"is_admin": false, "is_owner": false, "is_restricted": false, "is_ultra_restricted": false,
		"updated": time.Now().Unix(),
		"profile": result{
			"display_name": u.DisplayName, "display_name_normalized": u.DisplayName,
			"real_name": u.RealName, "real_name_normalized": u.RealName, "team": u.Team,
			"image_72": s.URL + "/avatars/" + u.ID + "_72.png",
		},
	}
	if u.Team != TeamID {
		out["is_stranger"] = false
	}
	if u.IsBot && u.ID == BotUserID {
		out["profile"].(result)["bot_id"] = BotID
	}
	if p.Get("include_locale") == "true" || p.Get("include_locale") == "1" {
		out["locale"] = u.Locale
	}
	return result{"user": out}, ""
}

func (s *Server) teamInfo(p url.Values) (result, apiError) {
	id := p.Get("team")
	if id == "" {
		id = TeamID
	}
	t, ok := s.teams[id]
	if !ok {
		return nil, "team_not_found"
	}
	return result{"team": result{
		"id": t.ID, "name": t.Name, "domain": t.Domain, "email_domain": "",
		"icon": result{"image_default": true, "image_68": s.URL + "/team/" + t.ID + "_68.png"},
	}}, ""
}

// validateBlocks checks the Block Kit limits the adapter can hit: at most 50 blocks, 25
// elements per actions block, button text ≤ 75 characters, action_id ≤ 255, value ≤ 2000,
// text objects ≤ 3000.
func validateBlocks(raw string) apiError {
	var blocks []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		return "invalid_blocks_format"
	}
	if len(blocks) > 50 {
		return "invalid_blocks"
	}
	type textObj struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type element struct {
		Type     string  `json:"type"`
		ActionID string  `json:"action_id"`
		Value    string  `json:"value"`
		Text     textObj `json:"text"`
	}
	for _, b := range blocks {
		var typ string
		if json.Unmarshal(b["type"], &typ) != nil || typ == "" {
			return "invalid_blocks"
		}
		if t, ok := b["text"]; ok {
			var to textObj
			if json.Unmarshal(t, &to) != nil || utf8.RuneCountInString(to.Text) > 3000 ||
				(to.Type != "plain_text" && to.Type != "mrkdwn") {
				return "invalid_blocks"
			}
		}
		if typ != "actions" {
			continue
		}
		var els []element
		if json.Unmarshal(b["elements"], &els) != nil || len(els) == 0 || len(els) > 25 {
			return "invalid_blocks"
		}
		for _, e := range els {
			if e.Type == "button" && (e.Text.Type != "plain_text" || utf8.RuneCountInString(e.Text.Text) > 75 ||
				e.Text.Text == "" || len(e.ActionID) > 255 || len(e.Value) > 2000) {
				return "invalid_blocks"
			}
		}
	}
	return ""
}
