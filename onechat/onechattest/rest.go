package onechattest

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	apiPrefix     = "/public/api/v1/inboxes/"
	storagePrefix = "/rails/active_storage/"

	maxContentLength = 150000
	messagesPageSize = 20
	maxBodyBytes     = 64 << 20
)

// Rails' default error bodies for JSON-format requests (§2.1). They are only marshalled,
// never modified.
var (
	errNotFound   = map[string]any{"status": 404, "error": "Not Found"}
	errInternal   = map[string]any{"status": 500, "error": "Internal Server Error"}
	errBadRequest = map[string]any{"status": 400, "error": "Bad Request"}
)

var (
	// emailRe is Devise.email_regexp.
	emailRe = regexp.MustCompile(`\A[^@\s]+@[^@\s]+\z`)
	// phoneRe is the Contact model's E.164 check; like upstream it is anchored only at the end.
	phoneRe = regexp.MustCompile(`\+[1-9]\d{1,14}\z`)
)

// response is what a route handler decided; it is written after Server.mu is released.
type response struct {
	status int
	body   any // nil: empty body
}

func ok(body any) response { return response{status: http.StatusOK, body: body} }
func notFound() response   { return response{status: http.StatusNotFound, body: errNotFound} }
func internalError() response {
	return response{status: http.StatusInternalServerError, body: errInternal}
}

func unprocessable(message string, attributes ...string) response {
	return response{status: http.StatusUnprocessableEntity, body: map[string]any{"message": message, "attributes": attributes}}
}

// upload is a multipart file part, read eagerly so no handler does I/O under Server.mu.
type upload struct {
	filename    string
	contentType string
	data        []byte
}

// params are Rails' merged request parameters: query, then the body (JSON, form or multipart)
// on top. Nested form keys (a[b], a[]) become maps and lists as Rack builds them.
type params map[string]any

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/public/") {
		// CORS on /public/api allows any origin, header and method.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS, HEAD")
			w.Header().Set("Access-Control-Allow-Headers", r.Header.Get("Access-Control-Request-Headers"))
			w.WriteHeader(http.StatusOK)
			return
		}
		if s.injectedFault(w) {
			return
		}
	}
	segs, routed := apiSegments(r)
	if !routed {
		writeJSON(w, http.StatusNotFound, errNotFound)
		return
	}
	p, err := parseParams(r)
	if err != nil {
		s.logf("%s %s: bad request body: %v", r.Method, r.URL.Path, err)
		writeJSON(w, http.StatusBadRequest, errBadRequest)
		return
	}
	s.mu.Lock()
	resp := s.route(r.Method, segs, p)
	s.mu.Unlock()
	if resp.body == nil {
		w.WriteHeader(resp.status)
		return
	}
	writeJSON(w, resp.status, resp.body)
}

// apiSegments splits the path after /public/api/v1/inboxes/ into unescaped segments. Like the
// Rails router, a dot ends a dynamic segment: in the last segment it starts the format
// (".json"), anywhere else the route does not match.
func apiSegments(r *http.Request) ([]string, bool) {
	p := r.URL.EscapedPath()
	if !strings.HasPrefix(p, apiPrefix) {
		return nil, false
	}
	rest := strings.TrimSuffix(strings.TrimPrefix(p, apiPrefix), "/")
	if rest == "" {
		return nil, false
	}
	parts := strings.Split(rest, "/")
	for i, part := range parts {
		u, err := url.PathUnescape(part)
		if err != nil || u == "" {
			return nil, false
		}
		if dot := strings.IndexByte(u, '.'); dot >= 0 {
			if i != len(parts)-1 || dot == 0 {
				return nil, false
			}
			u = u[:dot]
		}
		parts[i] = u
	}
	return parts, true
}

// route dispatches to the Client API actions of §2. The caller holds s.mu.
func (s *Server) route(method string, segs []string, p params) response {
	if segs[0] != s.opts.InboxIdentifier {
		return notFound()
	}
	n := len(segs)
	isGet := method == http.MethodGet || method == http.MethodHead
	isUpdate := method == http.MethodPatch || method == http.MethodPut
	isPost := method == http.MethodPost
	if n == 1 {
		if isGet {
			return ok(s.inboxJSON())
		}
		return notFound()
	}
	if segs[1] != "contacts" {
		return notFound()
	}
	if n == 2 {
		if isPost {
			return s.contactCreate(p)
		}
		return notFound()
	}
	// Every route below must exist for the method before the session lookup runs its
	// before_actions.
	switch {
	case n == 3 && (isGet || isUpdate):
	case n == 4 && segs[3] == "conversations" && (isGet || isPost):
	case n == 5 && segs[3] == "conversations" && isGet:
	case n == 6 && segs[3] == "conversations" && isPost &&
		(segs[5] == "toggle_status" || segs[5] == "toggle_typing" || segs[5] == "update_last_seen"):
	case n == 6 && segs[3] == "conversations" && segs[5] == "messages" && (isGet || isPost):
	case n == 7 && segs[3] == "conversations" && segs[5] == "messages" && isUpdate:
	default:
		return notFound()
	}
	if s.routeMissing(n, segs) {
		return notFound()
	}
	sess, found := s.st.bySource[segs[2]]
	if !found {
		return notFound()
	}
	if n == 3 {
		if resp, passed := s.processHMAC(p, sess); !passed {
			return resp
		}
		if isGet {
			return ok(s.publicContact(sess))
		}
		return s.contactUpdate(sess, p)
	}
	if n == 4 {
		if isGet {
			return ok(s.conversationIndex(sess))
		}
		return s.conversationCreate(sess, p)
	}
	conv := s.visibleConversation(sess, segs[4])
	if conv == nil {
		return notFound()
	}
	switch {
	case n == 5:
		return ok(s.conversationREST(conv))
	case segs[5] == "toggle_status":
		s.setStatus(conv, StatusResolved)
		s.notify()
		return ok(s.conversationREST(conv))
	case segs[5] == "toggle_typing":
		return s.toggleTyping(conv, p)
	case segs[5] == "update_last_seen":
		return s.updateLastSeen(conv)
	case n == 6 && isGet:
		return s.messageIndex(conv, p)
	case n == 6:
		return s.messageCreate(sess, conv, p)
	default:
		return s.messageUpdate(conv, segs[6], p)
	}
}

// Route names for Options.MissingRoutes: the routes added to the Client API over time.
const (
	RouteConversationShow = "conversation_show" // GET …/conversations/{id}
	RouteToggleStatus     = "toggle_status"     // POST …/conversations/{id}/toggle_status
	RouteToggleTyping     = "toggle_typing"     // POST …/conversations/{id}/toggle_typing
	RouteUpdateLastSeen   = "update_last_seen"  // POST …/conversations/{id}/update_last_seen
)

// routeMissing reports whether the matched route is one Options.MissingRoutes removes.
func (s *Server) routeMissing(n int, segs []string) bool {
	name := ""
	switch {
	case n == 5:
		name = RouteConversationShow
	case n == 6 && segs[5] != "messages":
		name = segs[5]
	}
	return name != "" && slices.Contains(s.opts.MissingRoutes, name)
}

// processHMAC is the contacts controller's before_action (§5.2). sess is nil on create.
func (s *Server) processHMAC(p params, sess *sessionRec) (response, bool) {
	hash := p["identifier_hash"]
	if isBlank(hash) && !s.opts.HMACMandatory {
		return response{}, true
	}
	identifier, _ := scalar(p["identifier"])
	hashStr, _ := hash.(string)
	if hashStr != s.IdentifierHash(identifier) {
		s.logf("HMAC failed: Invalid Identifier Hash Provided")
		if s.opts.StrictHMAC {
			return response{status: http.StatusUnauthorized, body: map[string]any{"error": "HMAC failed: Invalid Identifier Hash Provided"}}, false
		}
		return internalError(), false
	}
	if sess == nil {
		return response{}, true
	}
	if s.opts.StrictHMAC {
		ct := s.st.contacts[sess.contactID]
		if ct == nil || subtle.ConstantTimeCompare([]byte(ct.identifier), []byte(identifier)) != 1 {
			s.logf("HMAC failed: Identifier does not match contact")
			return response{status: http.StatusUnauthorized, body: map[string]any{"error": "HMAC failed: Identifier does not match contact"}}, false
		}
	}
	if !sess.hmacVerified {
		sess.hmacVerified = true
		sess.updatedAt = time.Now()
		s.notify()
	}
	return response{}, true
}

func (s *Server) inboxJSON() map[string]any {
	hours := make([]any, 0, 7)
	for day := range 7 {
		open := day >= 1 && day <= 5
		h := map[string]any{
			"day_of_week": day, "closed_all_day": !open, "open_all_day": false,
			"open_hour": nil, "open_minutes": nil, "close_hour": nil, "close_minutes": nil,
		}
		if open {
			h["open_hour"], h["open_minutes"], h["close_hour"], h["close_minutes"] = 9, 0, 17, 0
		}
		hours = append(hours, h)
	}
	return map[string]any{
		"identifier":                  s.opts.InboxIdentifier,
		"identity_validation_enabled": s.opts.HMACMandatory,
		"name":                        s.opts.InboxName,
		"timezone":                    "UTC",
		"working_hours":               hours,
		"working_hours_enabled":       false,
		"csat_survey_enabled":         s.opts.CSATSurveyEnabled,
		"greeting_enabled":            false,
	}
}

// contactCreate is ContactInboxWithContactBuilder (§3.2): a given source_id that exists
// returns that session unchanged; otherwise a contact found by identifier, email or phone is
// reused as is (or a new one created) and always gets a new session.
func (s *Server) contactCreate(p params) response {
	if resp, passed := s.processHMAC(p, nil); !passed {
		return resp
	}
	now := time.Now()
	var sourceID string
	if v := p["source_id"]; v != nil {
		str, isScalar := scalar(v)
		if !isScalar {
			return internalError()
		}
		if str == "" {
			return unprocessable("Source can't be blank", "source_id")
		}
		if sess, found := s.st.bySource[str]; found {
			return ok(s.publicContact(sess))
		}
		sourceID = str
	}
	identifier := nonBlank(p, "identifier")
	email := strings.ToLower(nonBlank(p, "email"))
	phone := nonBlank(p, "phone_number")

	ct := s.findContact(identifier, email, phone)
	if ct == nil {
		if resp, valid := validateContact(email, phone); !valid {
			return resp
		}
		name := nonBlank(p, "name")
		if name == "" {
			name = haikuName()
		}
		custom, _ := sanitize(p["custom_attributes"]).(map[string]any)
		if custom == nil {
			custom = map[string]any{}
		}
		s.st.seqContact++
		ct = &contactRec{
			id: s.st.seqContact, identifier: identifier, name: name, email: email, phone: phone,
			customAttrs: custom, additionalAttrs: map[string]any{}, createdAt: now, updatedAt: now,
		}
		s.st.contacts[ct.id] = ct
		if identifier != "" {
			s.st.byIdentifier[identifier] = ct
		}
	}
	if sourceID == "" {
		sourceID = uuidV4()
	}
	sess := s.newSession(ct.id, sourceID, now)
	s.notify()
	return ok(s.publicContact(sess))
}

func (s *Server) findContact(identifier, email, phone string) *contactRec {
	if identifier != "" {
		if c := s.st.byIdentifier[identifier]; c != nil {
			return c
		}
	}
	if email != "" {
		for _, c := range s.st.contacts {
			if c.email == email {
				return c
			}
		}
	}
	if phone != "" {
		for _, c := range s.st.contacts {
			if c.phone == phone {
				return c
			}
		}
	}
	return nil
}

func validateContact(email, phone string) (response, bool) {
	var msgs, attrs []string
	if email != "" && !emailRe.MatchString(email) {
		msgs, attrs = append(msgs, "Email Invalid email"), append(attrs, "email")
	}
	if phone != "" && !phoneRe.MatchString(phone) {
		msgs, attrs = append(msgs, "Phone number should be in e164 format"), append(attrs, "phone_number")
	}
	if len(msgs) > 0 {
		return unprocessable(strings.Join(msgs, ", "), attrs...), false
	}
	return response{}, true
}

// contactUpdate is ContactIdentifyAction without the identifier (§3.4): an email or phone that
// belongs to another contact merges this contact into that one, so the returned id can change.
func (s *Server) contactUpdate(sess *sessionRec, p params) response {
	ct := s.st.contacts[sess.contactID]
	if ct == nil {
		return notFound()
	}
	email := strings.ToLower(nonBlank(p, "email"))
	phone := nonBlank(p, "phone_number")
	// Validation failures roll the whole action back, merges included, so check first.
	if resp, valid := validateContact(email, phone); !valid {
		return resp
	}
	if email != "" {
		if other := s.findContact("", email, ""); other != nil && other.id != ct.id {
			ct = s.mergeContacts(other, ct)
		}
	}
	if phone != "" {
		if other := s.findContact("", "", phone); other != nil && other.id != ct.id {
			ct = s.mergeContacts(other, ct)
		}
	}
	if name := nonBlank(p, "name"); name != "" {
		ct.name = name
	}
	if email != "" {
		ct.email = email
	}
	if phone != "" {
		ct.phone = phone
	}
	if m, isMap := sanitize(p["custom_attributes"]).(map[string]any); isMap {
		ct.customAttrs = deepMerge(ct.customAttrs, m)
	}
	if m, isMap := sanitize(p["additional_attributes"]).(map[string]any); isMap {
		ct.additionalAttrs = deepMerge(ct.additionalAttrs, m)
	}
	ct.updatedAt = time.Now()
	s.notify()
	return ok(fullContact(ct))
}

func (s *Server) publicContact(sess *sessionRec) map[string]any {
	out := map[string]any{"source_id": sess.sourceID, "pubsub_token": sess.pubsubToken, "id": sess.contactID, "name": nil, "email": nil, "phone_number": nil}
	if ct, found := s.st.contacts[sess.contactID]; found {
		out["name"], out["email"], out["phone_number"] = ct.name, nullable(ct.email), nullable(ct.phone)
	}
	return out
}

// fullContact is the Contact model's as_json, what update and conversation.contact render.
func fullContact(c *contactRec) map[string]any {
	contactType := "visitor"
	if c.email != "" || c.phone != "" {
		contactType = "lead"
	}
	return map[string]any{
		"id": c.id, "name": c.name, "email": nullable(c.email), "phone_number": nullable(c.phone),
		"account_id": accountID, "created_at": isoTime(c.createdAt), "updated_at": isoTime(c.updatedAt),
		"additional_attributes": copyMap(c.additionalAttrs), "identifier": nullable(c.identifier),
		"custom_attributes": copyMap(c.customAttrs), "last_activity_at": isoTime(c.lastActivityAt),
		"contact_type": contactType, "middle_name": "", "last_name": "", "location": "", "country_code": "",
		"blocked": c.blocked,
	}
}

// visibleConversation finds a conversation by display id the way show does (§3.7): a verified
// session sees its contact's conversations, an unverified one only its own.
func (s *Server) visibleConversation(sess *sessionRec, idText string) *convRec {
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		return nil
	}
	c, found := s.st.convs[id]
	if !found {
		return nil
	}
	if c.sessionID == sess.id || (sess.hmacVerified && c.contactID == sess.contactID) {
		return c
	}
	return nil
}

// conversationIndex lists in map order, i.e. no order at all, as upstream promises none.
func (s *Server) conversationIndex(sess *sessionRec) []any {
	out := []any{}
	for _, c := range s.st.convs {
		if c.sessionID == sess.id || (sess.hmacVerified && c.contactID == sess.contactID) {
			out = append(out, s.conversationREST(c))
		}
	}
	return out
}

func (s *Server) conversationCreate(sess *sessionRec, p params) response {
	if s.opts.LockToSingleConversation {
		var last *convRec
		for _, c := range s.st.convs {
			if c.sessionID == sess.id && (last == nil || c.id > last.id) {
				last = c
			}
		}
		if last != nil {
			return ok(s.conversationREST(last))
		}
	}
	custom, _ := sanitize(p["custom_attributes"]).(map[string]any)
	c := s.newConversation(sess, custom, time.Now())
	s.notify()
	return ok(s.conversationREST(c))
}

func (s *Server) conversationREST(c *convRec) map[string]any {
	msgs := []any{}
	for _, m := range s.chatMessages(c.id) {
		msgs = append(msgs, s.messageREST(m))
	}
	var contact any
	if ct, found := s.st.contacts[c.contactID]; found {
		contact = fullContact(ct)
	}
	return map[string]any{
		"id": c.id, "uuid": c.uuid, "inbox_id": inboxID,
		"contact_last_seen_at": unixOrZero(c.contactLastSeen), "status": c.status,
		"agent_last_seen_at": unixOrZero(c.agentLastSeen), "messages": msgs, "contact": contact,
	}
}

// toggleTyping records the contact's typing. The event goes to agents only, never back to the
// contact's own stream (§3.9).
func (s *Server) toggleTyping(c *convRec, p params) response {
	switch v, _ := scalar(p["typing_status"]); v {
	case "on":
		c.contactTyping = true
	case "off":
		c.contactTyping = false
	}
	s.notify()
	return response{status: http.StatusOK}
}

// updateLastSeen marks the agent side's sent and delivered messages read, with one
// message.updated each (§3.10).
func (s *Server) updateLastSeen(c *convRec) response {
	now := time.Now()
	c.contactLastSeen = now
	for _, m := range s.st.msgsByConv[c.id] {
		if m.typ == MessageIncoming || (m.status != "sent" && m.status != "delivered") || m.createdAt.After(now) {
			continue
		}
		prev := m.status
		m.status, m.updatedAt = "read", now
		s.broadcastMessage(m, "message.updated", map[string]any{"previous_changes": map[string]any{"status": []any{prev, "read"}}})
	}
	s.notify()
	return response{status: http.StatusOK}
}

// messageIndex returns the latest 20 chat messages ascending, or the 20 before ?before=;
// after= is ignored as upstream's public controller ignores it (§3.11).
func (s *Server) messageIndex(c *convRec, p params) response {
	msgs := s.chatMessages(c.id)
	if b := p["before"]; !isBlank(b) {
		str, _ := scalar(b)
		before, _ := strconv.ParseInt(str, 10, 64)
		cut := 0
		for cut < len(msgs) && msgs[cut].id < before {
			cut++
		}
		msgs = msgs[:cut]
	}
	if len(msgs) > messagesPageSize {
		msgs = msgs[len(msgs)-messagesPageSize:]
	}
	out := make([]any, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, s.messageREST(m))
	}
	return ok(out)
}

// messageCreate posts an incoming message as the contact (§3.12).
func (s *Server) messageCreate(sess *sessionRec, c *convRec, p params) response {
	now := time.Now()
	if limit := s.opts.MessageFloodLimit; limit > 0 {
		recent := 0
		for _, m := range s.st.msgsByConv[c.id] {
			if m.createdAt.After(now.Add(-time.Minute)) {
				recent++
			}
		}
		if recent >= limit {
			return unprocessable("Too many messages", "base")
		}
	}
	var content *string
	if v, isScalar := scalar(p["content"]); isScalar {
		content = &v
		if utf8.RuneCountInString(v) > maxContentLength {
			return unprocessable(fmt.Sprintf("Content is too long (maximum is %d characters)", maxContentLength), "content")
		}
	}
	var uploads []*upload
	switch v := p["attachments"].(type) {
	case []any:
		for _, e := range v {
			up, isUpload := e.(*upload)
			if !isUpload {
				// Rails calls content_type on each element and raises.
				return internalError()
			}
			uploads = append(uploads, up)
		}
	default:
		if !isBlank(v) {
			// "attachments" without [] is one file or a hash; each raises in Rails.
			return internalError()
		}
	}
	echoID, _ := scalar(p["echo_id"])

	m := &msgRec{
		convID: c.id, typ: MessageIncoming, content: content, echoID: echoID,
		senderType: "Contact", senderID: sess.contactID, createdAt: now, updatedAt: now,
	}
	for _, up := range uploads {
		m.attachments = append(m.attachments, &attachmentRec{
			fileType: fileType(up.contentType), contentType: up.contentType, filename: up.filename, data: up.data,
		})
	}
	s.addMessage(m)
	var extra map[string]any
	if echoID != "" {
		extra = map[string]any{"echo_id": echoID}
	}
	s.broadcastMessage(m, "message.created", extra)

	// after_create_commit: reopen, last activity, waiting_since.
	c.lastActivityAt, c.updatedAt = now, now
	reopened := false
	if c.status == StatusResolved || c.status == StatusSnoozed {
		// A resolved conversation reopens pending when a bot is active; snoozed → open.
		if c.status == StatusResolved && s.opts.ActiveBot {
			c.status = StatusPending
		} else {
			c.status = StatusOpen
		}
		reopened = true
	}
	waiting := false
	if c.waitingSince.IsZero() {
		c.waitingSince = now
		waiting = true
	}
	if reopened {
		s.broadcastConversation(c, "conversation.status_changed")
	}
	if reopened || waiting {
		s.broadcastConversation(c, "conversation.updated")
	}
	if ct, found := s.st.contacts[sess.contactID]; found {
		ct.lastActivityAt = now
	}
	s.notify()
	return ok(s.messageREST(m))
}

// messageUpdate stores submitted_values of an interactive message (§3.13).
func (s *Server) messageUpdate(c *convRec, idText string, p params) response {
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		return notFound()
	}
	m, found := s.st.msgs[id]
	if !found || m.convID != c.id {
		return notFound()
	}
	if m.contentType == "input_csat" && s.opts.Now().Sub(m.createdAt) > s.opts.CSATExpiry {
		return response{status: http.StatusUnprocessableEntity, body: map[string]any{"error": "You cannot update the CSAT survey after 14 days"}}
	}
	values, permitted := permitSubmittedValues(p["submitted_values"])
	if permitted {
		m.contentAttrs["submitted_values"] = values
		m.updatedAt = time.Now()
		s.broadcastMessage(m, "message.updated", nil)
		s.notify()
	}
	return ok(s.messageREST(m))
}

// permitSubmittedValues applies the strong-parameters filter
// submitted_values: [:name, :title, :value, {csat_survey_response: [:feedback_message, :rating]}].
func permitSubmittedValues(v any) (any, bool) {
	filter := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for _, k := range []string{"name", "title", "value"} {
			if x, present := m[k]; present {
				if _, isScalar := scalar(x); isScalar || x == nil {
					out[k] = x
				}
			}
		}
		if csat, isMap := m["csat_survey_response"].(map[string]any); isMap {
			inner := map[string]any{}
			for _, k := range []string{"feedback_message", "rating"} {
				if x, present := csat[k]; present {
					if _, isScalar := scalar(x); isScalar || x == nil {
						inner[k] = x
					}
				}
			}
			out["csat_survey_response"] = inner
		}
		return out
	}
	switch x := v.(type) {
	case map[string]any:
		return filter(x), true
	case []any:
		out := []any{}
		for _, e := range x {
			if m, isMap := e.(map[string]any); isMap {
				out = append(out, filter(m))
			}
		}
		return out, true
	}
	return nil, false
}

func (s *Server) messageREST(m *msgRec) map[string]any {
	var content any
	if m.content != nil {
		content = *m.content
	}
	if m.contentType == "input_csat" && m.content != nil {
		// Message#content rewrites a CSAT survey for non-widget inboxes (§4.4): the REST
		// text is the survey sentence plus a link; cable payloads keep the raw content.
		if c := s.st.convs[m.convID]; c != nil {
			content = *m.content + " " + s.baseURL + "/survey/responses/" + c.uuid
		}
	}
	out := map[string]any{
		"id": m.id, "content": content, "message_type": m.typ, "content_type": m.contentType,
		"content_attributes": copyMap(m.contentAttrs), "created_at": m.createdAt.Unix(), "conversation_id": m.convID,
	}
	if len(m.attachments) > 0 {
		out["attachments"] = s.attachmentsPush(m)
	}
	if sender := s.senderPush(m); sender != nil {
		out["sender"] = sender
	}
	return out
}

// fileType is FileTypeHelper#file_type: the part's declared Content-Type decides, exactly.
func fileType(contentType string) string {
	switch contentType {
	case "image/jpeg", "image/jpg", "image/png", "image/gif", "image/bmp", "image/webp", "image":
		return "image"
	case "video/ogg", "video/mp4", "video/webm", "video/quicktime", "video":
		return "video"
	}
	if strings.Contains(contentType, "audio/") {
		return "audio"
	}
	return "file"
}

// serveStorage answers Active Storage URLs: the blob and representation redirect URLs 302 to
// the "disk" URL, which serves the bytes.
func (s *Server) serveStorage(w http.ResponseWriter, r *http.Request) {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, storagePrefix), "/", 4)
	s.mu.Lock()
	var a *attachmentRec
	var redirect bool
	switch {
	case len(parts) == 4 && (parts[0] == "blobs" || parts[0] == "representations") && parts[1] == "redirect":
		a, redirect = s.st.attachments[parts[2]], true
	case len(parts) == 3 && parts[0] == "disk":
		a = s.st.attachments[parts[1]]
	}
	var location string
	var data []byte
	if a != nil {
		location = s.baseURL + storagePrefix + "disk/" + a.key + "/" + escapeFilename(a.filename)
		if a.redirectTo != "" {
			location = a.redirectTo
		}
		data = a.data
	}
	s.mu.Unlock()
	if a == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		writeJSON(w, http.StatusNotFound, errNotFound)
		return
	}
	if redirect {
		http.Redirect(w, r, location, http.StatusFound)
		return
	}
	ct := a.contentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(data)
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"status":500,"error":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ---- parameters ----

func parseParams(r *http.Request) (params, error) {
	p := params{}
	for k, vs := range r.URL.Query() {
		for _, v := range vs {
			setParam(p, k, v)
		}
	}
	body := params{}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		data, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		if len(bytes.TrimSpace(data)) > 0 {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				return nil, fmt.Errorf("decode json body: %w", err)
			}
			v = normalizeNumbers(v)
			if m, isMap := v.(map[string]any); isMap {
				body = m
			} else {
				body["_json"] = v
			}
		}
	case mt == "application/x-www-form-urlencoded":
		data, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		vals, err := url.ParseQuery(string(data))
		if err != nil {
			return nil, fmt.Errorf("decode form body: %w", err)
		}
		for k, vs := range vals {
			for _, v := range vs {
				setParam(body, k, v)
			}
		}
	case mt == "multipart/form-data":
		r.Body = http.MaxBytesReader(nil, r.Body, maxBodyBytes)
		if err := r.ParseMultipartForm(32 << 20); err != nil {
			return nil, fmt.Errorf("decode multipart body: %w", err)
		}
		defer func() { _ = r.MultipartForm.RemoveAll() }()
		for k, vs := range r.MultipartForm.Value {
			for _, v := range vs {
				setParam(body, k, v)
			}
		}
		for k, fhs := range r.MultipartForm.File {
			for _, fh := range fhs {
				up, err := readUpload(fh)
				if err != nil {
					return nil, err
				}
				setParam(body, k, up)
			}
		}
	}
	for k, v := range body {
		p[k] = v
	}
	return p, nil
}

func readUpload(fh *multipart.FileHeader) (*upload, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, fmt.Errorf("open multipart file: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read multipart file: %w", err)
	}
	return &upload{filename: fh.Filename, contentType: fh.Header.Get("Content-Type"), data: data}, nil
}

// setParam stores a form value under a Rack-style key: "a", "a[]", "a[b]", "a[b][c]", "a[b][]".
func setParam(m map[string]any, key string, v any) {
	segs := splitKey(key)
	for len(segs) > 1 {
		if segs[1] == "" { // "a[]" (and, loosely, "a[][x]"): append
			list, _ := m[segs[0]].([]any)
			m[segs[0]] = append(list, v)
			return
		}
		child, isMap := m[segs[0]].(map[string]any)
		if !isMap {
			child = map[string]any{}
			m[segs[0]] = child
		}
		m, segs = child, segs[1:]
	}
	m[segs[0]] = v
}

func splitKey(k string) []string {
	i := strings.IndexByte(k, '[')
	if i <= 0 {
		return []string{k}
	}
	segs := []string{k[:i]}
	rest := k[i:]
	for rest != "" {
		j := strings.IndexByte(rest, ']')
		if rest[0] != '[' || j < 0 {
			return []string{k}
		}
		segs = append(segs, rest[1:j])
		rest = rest[j+1:]
	}
	return segs
}

// scalar returns a permitted scalar parameter as text (Rails stores numbers and booleans sent
// for string columns as their text).
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// normalizeNumbers turns decoded JSON numbers into int64 or float64, so stored attributes
// compare naturally in tests; a number that fits neither stays a json.Number.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
	}
	return v
}

func nonBlank(p params, key string) string {
	v, _ := scalar(p[key])
	if strings.TrimSpace(v) == "" {
		return ""
	}
	return v
}

// isBlank is Ruby's blank?.
func isBlank(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(x) == ""
	case bool:
		return !x
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// sanitize keeps the JSON-like part of a permitted hash: uploads are dropped.
func sanitize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if _, isUpload := e.(*upload); !isUpload {
				out[k] = sanitize(e)
			}
		}
		return out
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			if _, isUpload := e.(*upload); !isUpload {
				out = append(out, sanitize(e))
			}
		}
		return out
	}
	return v
}
