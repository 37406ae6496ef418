package onechattest

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

const (
	cableProtocol = "actioncable-v1-json"
	// cableWriteTimeout bounds one frame write, so a client that stops reading cannot hold a
	// writer goroutine forever.
	cableWriteTimeout = 5 * time.Second
	// cableMaxQueue is how many frames may wait for a slow socket before the fake drops it,
	// like a real server disconnecting a consumer that cannot keep up.
	cableMaxQueue = 10000
)

// cableConn is one accepted websocket. Its handler goroutine reads commands; one writer
// goroutine, owned by the handler, sends queued frames and pings.
type cableConn struct {
	s      *Server
	id     int64
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{}

	// subs and retired are guarded by Server.mu. subs is keyed by the raw identifier string,
	// as Rails keys its subscription table.
	subs    map[string]*cableSub
	retired bool // RestartCable sent disconnect: no more events, not counted as subscribed

	qmu        sync.Mutex
	queue      [][]byte
	closeAfter bool
}

// cableSub is one entry in a socket's subscription table. A subscription whose subscribed hook
// failed (unknown token) stays in the table with confirmed false, as in Rails.
type cableSub struct {
	token     string
	confirmed bool
}

// subRef names one subscription: its socket and identifier. Server.tokenSubs indexes the
// confirmed ones by pubsub token, so an event reaches its subscribers without a scan of every
// subscription (benchmarks hold tens of thousands). The caller holds s.mu.
type subRef struct {
	conn *cableConn
	id   string
}

func (s *Server) indexSub(token string, r subRef) {
	m := s.tokenSubs[token]
	if m == nil {
		m = make(map[subRef]struct{})
		s.tokenSubs[token] = m
	}
	m[r] = struct{}{}
}

func (s *Server) unindexSub(token string, r subRef) {
	if m := s.tokenSubs[token]; m != nil {
		delete(m, r)
		if len(m) == 0 {
			delete(s.tokenSubs, token)
		}
	}
}

// eachSub calls f for every confirmed subscription of the tokens on a socket that is not
// retired. The caller holds s.mu.
func (s *Server) eachSub(tokens []string, f func(c *cableConn, id string)) {
	for i, t := range tokens {
		if slices.Contains(tokens[:i], t) {
			continue
		}
		for r := range s.tokenSubs[t] {
			if !r.conn.retired {
				f(r.conn, r.id)
			}
		}
	}
}

// Subscribed returns how many confirmed subscriptions for the pubsub token are live on open
// sockets (not counting sockets RestartCable is closing).
func (s *Server) Subscribed(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	s.eachSub([]string{token}, func(*cableConn, string) { n++ })
	return n
}

// Connections returns how many websockets are open and not being closed by RestartCable.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if !c.retired {
			n++
		}
	}
	return n
}

// RestartCable sends {"type":"disconnect","reason":"server_restart","reconnect":true} on every
// socket and closes them, as a Rails restart or deploy does. The sockets stop counting in
// Subscribed at once; they close asynchronously after the frame is written. New connections
// are accepted right away.
func (s *Server) RestartCable() {
	frame := mustMarshal(map[string]any{"type": "disconnect", "reason": "server_restart", "reconnect": true})
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.retired {
			continue
		}
		c.retired = true
		c.sendAndClose(frame)
	}
	s.notify()
}

func (s *Server) serveCable(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		s.record(r, http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{cableProtocol, "actioncable-unsupported"},
		// Chatwoot disables request forgery protection for the cable: any Origin, or none.
		InsecureSkipVerify: true,
	})
	if err != nil {
		s.logf("cable upgrade failed: %v", err)
		s.record(r, http.StatusBadRequest)
		return
	}
	s.record(r, http.StatusSwitchingProtocols)
	ws.SetReadLimit(1 << 20)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := &cableConn{s: s, ws: ws, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), subs: map[string]*cableSub{}}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.CloseNow()
		return
	}
	s.connSeq++
	c.id = s.connSeq
	s.conns[c] = struct{}{}
	c.send(mustMarshal(map[string]any{"type": "welcome"}))
	s.notify()
	s.mu.Unlock()
	s.logf("cable %d: connected (subprotocol %q)", c.id, ws.Subprotocol())

	var writer sync.WaitGroup
	writer.Go(c.writeLoop)
	err = c.readLoop()
	cancel()
	writer.Wait()
	_ = ws.CloseNow()

	s.mu.Lock()
	delete(s.conns, c)
	for id, sub := range c.subs {
		if sub.confirmed {
			s.unindexSub(sub.token, subRef{c, id})
		}
	}
	s.notify()
	s.mu.Unlock()
	s.logf("cable %d: closed: %v", c.id, err)
}

func (c *cableConn) readLoop() error {
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			c.s.logf("cable %d: ignoring a binary frame", c.id)
			continue
		}
		c.s.handleCommand(c, data)
	}
}

// writeLoop sends queued frames in order and a ping every PingInterval until the connection
// ends. It is the only writer of the socket.
func (c *cableConn) writeLoop() {
	t := time.NewTicker(c.s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
			c.qmu.Lock()
			frames, closeAfter := c.queue, c.closeAfter
			c.queue = nil
			c.qmu.Unlock()
			for _, f := range frames {
				if err := c.write(f); err != nil {
					c.cancel()
					return
				}
			}
			if closeAfter {
				_ = c.ws.Close(websocket.StatusNormalClosure, "")
				c.cancel()
				return
			}
		case now := <-t.C:
			if c.s.stalled.Load() {
				continue
			}
			if err := c.write(mustMarshal(map[string]any{"type": "ping", "message": now.Unix()})); err != nil {
				c.cancel()
				return
			}
		}
	}
}

func (c *cableConn) write(frame []byte) error {
	ctx, cancel := context.WithTimeout(c.ctx, cableWriteTimeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, frame)
}

// send queues a frame for the writer. It never blocks, so it may be called with Server.mu held.
func (c *cableConn) send(frame []byte) {
	c.qmu.Lock()
	if c.closeAfter {
		c.qmu.Unlock()
		return
	}
	if len(c.queue) >= cableMaxQueue {
		c.qmu.Unlock()
		c.s.logf("cable %d: client too slow, closing", c.id)
		c.cancel()
		return
	}
	c.queue = append(c.queue, frame)
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *cableConn) sendAndClose(frame []byte) {
	c.send(frame)
	c.qmu.Lock()
	c.closeAfter = true
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// handleCommand executes one client frame. Like Rails, it logs and ignores anything malformed
// and never answers a failed command.
func (s *Server) handleCommand(c *cableConn, data []byte) {
	var cmd struct {
		Command    string `json:"command"`
		Identifier any    `json:"identifier"`
		Data       any    `json:"data"`
	}
	if err := json.Unmarshal(data, &cmd); err != nil {
		s.logf("cable %d: could not decode a frame: %v", c.id, err)
		return
	}
	id, ok := cmd.Identifier.(string)
	if !ok {
		s.logf("cable %d: %q without a string identifier ignored", c.id, cmd.Command)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.retired {
		return
	}
	switch cmd.Command {
	case "subscribe":
		s.subscribe(c, id)
	case "unsubscribe":
		if _, ok := c.subs[id]; !ok {
			s.logf("cable %d: unable to find subscription to unsubscribe", c.id)
			return
		}
		if sub := c.subs[id]; sub.confirmed {
			s.unindexSub(sub.token, subRef{c, id})
		}
		delete(c.subs, id)
		s.notify()
	case "message":
		sub, ok := c.subs[id]
		if !ok {
			s.logf("cable %d: unable to find subscription for message", c.id)
			return
		}
		raw, _ := cmd.Data.(string)
		var action struct {
			Action string `json:"action"`
		}
		if err := json.Unmarshal([]byte(raw), &action); err != nil {
			s.logf("cable %d: could not decode message data: %v", c.id, err)
			return
		}
		if !sub.confirmed {
			// RoomChannel looks the token up again and raises.
			s.logf("cable %d: %q on a failed subscription", c.id, action.Action)
			return
		}
		if action.Action != "update_presence" {
			s.logf("cable %d: unable to process RoomChannel#%s", c.id, action.Action)
			return
		}
		s.markOnline(sub.token)
		s.presence(sub.token)
	default:
		s.logf("cable %d: unrecognized command %q", c.id, cmd.Command)
	}
}

// subscribe implements RoomChannel#subscribed. The caller holds s.mu.
func (s *Server) subscribe(c *cableConn, id string) {
	if _, dup := c.subs[id]; dup {
		s.logf("cable %d: already subscribed to this identifier, ignored", c.id)
		return
	}
	var params map[string]any
	if err := json.Unmarshal([]byte(id), &params); err != nil {
		s.logf("cable %d: could not decode identifier: %v", c.id, err)
		return
	}
	if ch, _ := params["channel"].(string); ch != "RoomChannel" {
		s.logf("cable %d: subscription class not found: %v", c.id, params["channel"])
		return
	}
	// From here on Rails has registered the subscription; a failing subscribed hook leaves it
	// registered and answers nothing (rough edge 21).
	if s.subMode == subscribeReject {
		// A rejected subscription is removed from the table, so it may be retried at once.
		s.logf("cable %d: subscription rejected (RejectSubscriptions)", c.id)
		c.send(mustMarshal(map[string]any{"identifier": id, "type": "reject_subscription"}))
		s.notify()
		return
	}
	sub := &cableSub{}
	c.subs[id] = sub
	s.notify()
	if s.subMode == subscribeIgnore {
		s.logf("cable %d: subscription ignored (IgnoreSubscriptions): no reply", c.id)
		return
	}
	if _, hasUser := params["user_id"]; hasUser {
		s.logf("cable %d: subscribe with user_id: no such user, no reply", c.id)
		return
	}
	token, _ := params["pubsub_token"].(string)
	if _, ok := s.st.byToken[token]; !ok {
		s.logf("cable %d: subscribe with an unknown pubsub_token: no reply", c.id)
		return
	}
	sub.token, sub.confirmed = token, true
	s.indexSub(token, subRef{c, id})
	s.markOnline(token)
	c.send(mustMarshal(map[string]any{"identifier": id, "type": "confirm_subscription"}))
	c.send(envelope(id, s.presencePayload()))
}

// presence sends presence.update to every subscription of the token, as broadcast_presence
// does. It is not subject to DropEvents. The caller holds s.mu.
func (s *Server) presence(token string) {
	payload := s.presencePayload()
	s.eachSub([]string{token}, func(c *cableConn, id string) { c.send(envelope(id, payload)) })
}

// presencePayload is broadcast_presence's data: the agents' availability keyed by id as a
// string; agents set offline are left out. The caller holds s.mu.
func (s *Server) presencePayload() []byte {
	users := map[string]any{}
	for id, status := range s.agentPresence {
		if status != "offline" {
			users[strconv.FormatInt(id, 10)] = status
		}
	}
	return mustMarshal(map[string]any{"event": "presence.update", "data": map[string]any{
		"account_id": accountID,
		"users":      users,
	}})
}

// markOnline records the token's contact as online for PresenceDuration, as
// OnlineStatusTracker.update_presence does. The caller holds s.mu.
func (s *Server) markOnline(token string) {
	ci, ok := s.st.byToken[token]
	if !ok {
		return
	}
	if ct, ok := s.st.contacts[ci.contactID]; ok {
		ct.onlineUntil = s.opts.Now().Add(s.opts.PresenceDuration)
		s.notify()
	}
}

// ContactOnline reports whether the contact shows online to agents: it subscribed or sent
// update_presence within PresenceDuration (by Options.Now). Presence is never cleared on
// disconnect; it only expires.
func (s *Server) ContactOnline(contactID int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, ok := s.st.contacts[contactID]
	return ok && s.opts.Now().Before(ct.onlineUntil)
}

// SetPresence sets an agent's availability ("online", "busy" or "offline") and sends
// presence.update to every confirmed subscription, as an agent changing status does.
func (s *Server) SetPresence(agentID int64, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agentPresence[agentID] = status
	payload := s.presencePayload()
	for c := range s.conns {
		if c.retired {
			continue
		}
		for id, sub := range c.subs {
			if sub.confirmed {
				c.send(envelope(id, payload))
			}
		}
	}
	s.notify()
}

// envelope wraps an {"event","data"} payload for one subscription, echoing its identifier
// verbatim.
func envelope(identifier string, payload []byte) []byte {
	return mustMarshal(map[string]any{"identifier": identifier, "message": json.RawMessage(payload)})
}

// subscribeMode is how the cable answers a subscribe with a known token.
type subscribeMode int

const (
	subscribeNormal subscribeMode = iota // confirm_subscription, as RoomChannel does
	subscribeReject                      // reject_subscription
	subscribeIgnore                      // nothing at all
)

// heldFrame is one frame for one socket, kept back by ReorderEvents or DelayEvents.
type heldFrame struct {
	conn  *cableConn
	frame []byte
}

// broadcast delivers an event to every live confirmed subscription of the tokens. Nothing is
// kept for later: a token without a live subscription simply misses it. The fault controls
// (DropEvents, DuplicateEvents, ReorderEvents, DelayEvents) apply here, once per event. The
// caller holds s.mu.
func (s *Server) broadcast(tokens []string, event string, data map[string]any) {
	if len(tokens) == 0 {
		return
	}
	if s.dropN > 0 {
		s.dropN--
		s.logf("dropped event %s", event)
		return
	}
	data["account_id"] = accountID
	payload, err := json.Marshal(map[string]any{"event": event, "data": data})
	if err != nil {
		s.logf("could not encode event %s: %v", event, err)
		return
	}
	copies := 1
	if s.dupN > 0 {
		s.dupN--
		copies = 2
	}
	if s.delay > 0 {
		s.deliverLater(tokens, payload, copies, s.delay)
		return
	}
	var frames []heldFrame
	s.eachSub(tokens, func(c *cableConn, id string) {
		for range copies {
			frames = append(frames, heldFrame{c, envelope(id, payload)})
		}
	})
	if s.reorderN > 0 && s.held == nil {
		s.reorderN--
		s.held = frames
		s.logf("holding back event %s to deliver it after the next one", event)
		return
	}
	for _, f := range frames {
		f.conn.send(f.frame)
	}
	s.releaseHeld()
}

// releaseHeld delivers what ReorderEvents held back. The caller holds s.mu.
func (s *Server) releaseHeld() {
	held := s.held
	s.held = nil
	for _, f := range held {
		if !f.conn.retired {
			f.conn.send(f.frame)
		}
	}
}

// deliverLater broadcasts payload after d, to the subscriptions live at that time. The timer
// is tracked so Close can stop it and wait for a callback already running. The caller holds
// s.mu.
func (s *Server) deliverLater(tokens []string, payload []byte, copies int, d time.Duration) {
	if s.closed {
		return
	}
	tokens = slices.Clone(tokens)
	s.timerWG.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer s.timerWG.Done()
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, pending := s.timers[t]; !pending {
			return // Close stopped it first
		}
		delete(s.timers, t)
		s.eachSub(tokens, func(c *cableConn, id string) {
			for range copies {
				c.send(envelope(id, payload))
			}
		})
		s.notify()
	})
	s.timers[t] = struct{}{}
}

// contactTokens is contact_inbox_tokens (§8.6): a verified session's events go to every
// verified session of its contact, an unverified one's only to itself.
func (s *Server) contactTokens(sessionID int64) []string {
	ci, ok := s.st.sessions[sessionID]
	if !ok {
		return nil
	}
	if !ci.hmacVerified {
		return []string{ci.pubsubToken}
	}
	var out []string
	for _, other := range s.st.contactSessions[ci.contactID] {
		if other.hmacVerified {
			out = append(out, other.pubsubToken)
		}
	}
	return out
}

func (s *Server) broadcastConversation(c *convRec, event string) {
	s.broadcast(s.contactTokens(c.sessionID), event, s.conversationPush(c))
}

// broadcastMessage sends message.created or message.updated; private notes and activity
// messages never reach contact streams.
func (s *Server) broadcastMessage(m *msgRec, event string, extra map[string]any) {
	if m.private || m.typ == MessageActivity {
		return
	}
	c, ok := s.st.convs[m.convID]
	if !ok {
		return
	}
	data := s.messagePush(m)
	for k, v := range extra {
		data[k] = v
	}
	s.broadcast(s.contactTokens(c.sessionID), event, data)
}

// messagePush is Message#push_event_data: every column, created_at as an int, updated_at as
// an ISO string, conversation_id as the display id. The caller holds s.mu.
func (s *Server) messagePush(m *msgRec) map[string]any {
	c := s.st.convs[m.convID]
	var content any
	if m.content != nil {
		content = *m.content
	}
	var senderType, senderID any
	if m.senderType != "" {
		senderType, senderID = m.senderType, m.senderID
	}
	data := map[string]any{
		"id":                        m.id,
		"content":                   content,
		"account_id":                accountID,
		"inbox_id":                  inboxID,
		"conversation_id":           m.convID,
		"message_type":              m.typ,
		"created_at":                m.createdAt.Unix(),
		"updated_at":                isoTime(m.updatedAt),
		"private":                   m.private,
		"status":                    m.status,
		"source_id":                 nil,
		"content_type":              m.contentType,
		"content_attributes":        copyMap(m.contentAttrs),
		"sender_type":               senderType,
		"sender_id":                 senderID,
		"external_source_ids":       map[string]any{},
		"additional_attributes":     map[string]any{},
		"processed_message_content": content,
		"sentiment":                 map[string]any{},
	}
	if c != nil {
		conv := map[string]any{"assignee_id": nil, "unread_count": 0, "last_activity_at": unixOrZero(c.lastActivityAt)}
		if ci, ok := s.st.sessions[c.sessionID]; ok {
			conv["contact_inbox"] = map[string]any{"source_id": ci.sourceID}
		}
		data["conversation"] = conv
	}
	if len(m.attachments) > 0 {
		data["attachments"] = s.attachmentsPush(m)
	}
	if sender := s.senderPush(m); sender != nil {
		data["sender"] = sender
	}
	return data
}

func (s *Server) attachmentsPush(m *msgRec) []any {
	out := make([]any, 0, len(m.attachments))
	for _, a := range m.attachments {
		thumb := ""
		if a.fileType == "image" {
			thumb = s.baseURL + storagePrefix + "representations/redirect/" + a.key + "/" + escapeFilename(a.filename)
		}
		p := map[string]any{
			"id": a.id, "message_id": a.messageID, "file_type": a.fileType, "account_id": accountID,
			"extension": nil, "data_url": s.dataURL(a), "thumb_url": thumb, "file_size": len(a.data),
			"width": nil, "height": nil,
		}
		if a.fileType == "audio" {
			p["transcribed_text"] = ""
		}
		if a.externalURL != "" {
			p["fallback_title"] = a.fallbackTitle
		}
		out = append(out, p)
	}
	return out
}

func (s *Server) senderPush(m *msgRec) map[string]any {
	switch m.senderType {
	case "User":
		return agentPush()
	case "Contact":
		if ct, ok := s.st.contacts[m.senderID]; ok {
			return contactPush(ct)
		}
	}
	return nil
}

func agentPush() map[string]any {
	return map[string]any{
		"id": agentID, "name": agentName, "available_name": agentName, "avatar_url": "",
		"type": "user", "availability_status": "online", "thumbnail": "",
	}
}

func contactPush(c *contactRec) map[string]any {
	return map[string]any{
		"additional_attributes": copyMap(c.additionalAttrs), "custom_attributes": copyMap(c.customAttrs),
		"email": nullable(c.email), "id": c.id, "identifier": nullable(c.identifier), "name": c.name,
		"phone_number": nullable(c.phone), "thumbnail": "", "blocked": c.blocked, "type": "contact",
	}
}

// conversationPush is Conversations::EventDataPresenter#push_data (without account_id, which
// broadcast adds). The caller holds s.mu.
func (s *Server) conversationPush(c *convRec) map[string]any {
	messages := []any{}
	if chat := s.chatMessages(c.id); len(chat) > 0 {
		messages = append(messages, s.messagePush(chat[len(chat)-1]))
	}
	meta := map[string]any{"assignee": nil, "team": nil, "hmac_verified": false}
	if ct, ok := s.st.contacts[c.contactID]; ok {
		meta["sender"] = contactPush(ct)
	}
	var contactInbox any
	if ci, ok := s.st.sessions[c.sessionID]; ok {
		meta["hmac_verified"] = ci.hmacVerified
		contactInbox = map[string]any{
			"id": ci.id, "contact_id": ci.contactID, "inbox_id": inboxID, "source_id": ci.sourceID,
			"created_at": isoTime(ci.createdAt), "updated_at": isoTime(ci.updatedAt),
			"hmac_verified": ci.hmacVerified, "pubsub_token": ci.pubsubToken,
		}
	}
	return map[string]any{
		"additional_attributes":  map[string]any{},
		"can_reply":              true,
		"channel":                "Channel::Api",
		"contact_inbox":          contactInbox,
		"id":                     c.id,
		"inbox_id":               inboxID,
		"messages":               messages,
		"labels":                 []any{},
		"meta":                   meta,
		"status":                 c.status,
		"custom_attributes":      copyMap(c.customAttrs),
		"snoozed_until":          nil,
		"unread_count":           0,
		"first_reply_created_at": isoTime(c.firstReplyAt),
		"priority":               nil,
		"waiting_since":          unixOrZero(c.waitingSince),
		"agent_last_seen_at":     unixOrZero(c.agentLastSeen),
		"contact_last_seen_at":   unixOrZero(c.contactLastSeen),
		"last_activity_at":       unixOrZero(c.lastActivityAt),
		"timestamp":              unixOrZero(c.lastActivityAt),
		"created_at":             c.createdAt.Unix(),
		"updated_at":             float64(c.updatedAt.UnixMicro()) / 1e6,
	}
}

// mustMarshal encodes the fake's own frames, which are plain maps of strings and numbers and
// cannot fail to encode.
func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{}`)
	}
	return b
}
