package onechattest

import (
	"crypto/subtle"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// appPrefix starts every Application API route: /api/v1/accounts/{account_id}/….
const appPrefix = "/api/v1/accounts/"

// Application API error bodies, as OneChat renders them.
var (
	errUnauthorized  = map[string]any{"error": "You need to sign in or sign up before continuing."}
	errAppNotFound   = map[string]any{"error": "Resource could not be found"}
	errAppBadRequest = map[string]any{"error": "Bad Request"}
)

// AccessToken is the api_access_token the fake's Application API accepts (Options.AccessToken).
func (s *Server) AccessToken() string { return s.opts.AccessToken }

// AccountID is the id of the fake's one account, for /api/v1/accounts/{account_id}.
func (s *Server) AccountID() int64 { return accountID }

// PrivateNotes returns the private notes of a conversation, oldest first: what agents see and
// contacts never do.
func (s *Server) PrivateNotes(conversationID int64) []Message {
	var out []Message
	for _, m := range s.Messages(conversationID) {
		if m.Private {
			out = append(out, m)
		}
	}
	return out
}

// Labels returns a conversation's labels.
func (s *Server) Labels(conversationID int64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.st.convs[conversationID]; ok {
		return slices.Clone(c.labels)
	}
	return nil
}

// SetLabels sets a conversation's labels as an agent does in the dashboard.
func (s *Server) SetLabels(conversationID int64, labels ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.st.convs[conversationID]
	if !ok {
		s.errorf("SetLabels: no conversation %d", conversationID)
		return
	}
	s.setLabels(c, labels)
	s.notify()
}

// setLabels replaces the conversation's labels; a change fires conversation.updated to the
// contact, as OneChat does for label_list. The caller holds s.mu.
func (s *Server) setLabels(c *convRec, labels []string) {
	labels = normalLabels(labels)
	if slices.Equal(labels, c.labels) {
		return
	}
	c.labels = labels
	c.updatedAt = time.Now()
	s.broadcastConversation(c, "conversation.updated")
}

// setConversationAttributes replaces the conversation's custom attributes; a change fires
// conversation.updated to the contact, as OneChat does for custom_attributes. The caller holds
// s.mu.
func (s *Server) setConversationAttributes(c *convRec, attrs map[string]any) {
	if reflect.DeepEqual(attrs, c.customAttrs) {
		return
	}
	c.customAttrs = copyMap(attrs)
	c.updatedAt = time.Now()
	s.broadcastConversation(c, "conversation.updated")
}

// SetConversationAttributes sets a conversation's custom attributes as an agent or automation
// does.
func (s *Server) SetConversationAttributes(conversationID int64, attrs map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.st.convs[conversationID]
	if !ok {
		s.errorf("SetConversationAttributes: no conversation %d", conversationID)
		return
	}
	s.setConversationAttributes(c, attrs)
	s.notify()
}

// serveApplication answers the part of the Application API the bridge uses, authenticated by
// the api_access_token header: a conversation's show, messages create (private notes
// included), labels (list and set, which replaces the whole list), custom_attributes (which
// replaces the whole set), and the account's labels. A missing or wrong token is a 401, an
// unknown account or conversation a 404, an invalid body a 422. Injected faults (FailNext,
// Throttle) apply here as on the Client API.
func (s *Server) serveApplication(w http.ResponseWriter, r *http.Request) {
	if s.injectedFault(w) {
		return
	}
	token := r.Header.Get("api_access_token")
	if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.AccessToken)) != 1 {
		writeJSON(w, http.StatusUnauthorized, errUnauthorized)
		return
	}
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, appPrefix), "/"), "/")
	if len(segs) < 2 || segs[0] != strconv.Itoa(accountID) {
		writeJSON(w, http.StatusNotFound, errAppNotFound)
		return
	}
	p, err := parseParams(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errAppBadRequest)
		return
	}
	if len(segs) == 2 && segs[1] == "labels" && r.Method == http.MethodGet {
		s.mu.Lock()
		resp := s.accountLabels()
		s.mu.Unlock()
		writeJSON(w, resp.status, resp.body)
		return
	}
	if len(segs) < 3 || segs[1] != "conversations" {
		writeJSON(w, http.StatusNotFound, errAppNotFound)
		return
	}
	id, err := strconv.ParseInt(segs[2], 10, 64)
	s.mu.Lock()
	c, found := s.st.convs[id]
	s.mu.Unlock()
	if err != nil || !found {
		writeJSON(w, http.StatusNotFound, errAppNotFound)
		return
	}
	var resp response
	switch {
	case len(segs) == 3 && r.Method == http.MethodGet:
		s.mu.Lock()
		resp = ok(s.appConversation(c))
		s.mu.Unlock()
	case len(segs) == 4 && segs[3] == "messages" && r.Method == http.MethodPost:
		resp = s.appCreateMessage(id, p)
	case len(segs) == 4 && segs[3] == "labels" && r.Method == http.MethodGet:
		s.mu.Lock()
		resp = ok(map[string]any{"payload": slices.Clone(c.labels)})
		s.mu.Unlock()
	case len(segs) == 4 && segs[3] == "labels" && r.Method == http.MethodPost:
		raw, isList := p["labels"].([]any)
		if !isList && p["labels"] != nil {
			resp = unprocessable("labels must be a list", "labels")
			break
		}
		labels := make([]string, 0, len(raw))
		for _, l := range raw {
			t, isText := l.(string)
			if !isText {
				resp = unprocessable("labels must be text", "labels")
				break
			}
			labels = append(labels, t)
		}
		if resp.status != 0 {
			break
		}
		s.mu.Lock()
		s.setLabels(c, labels)
		resp = ok(map[string]any{"payload": slices.Clone(c.labels)})
		s.notify()
		s.mu.Unlock()
	case len(segs) == 4 && segs[3] == "custom_attributes" && r.Method == http.MethodPost:
		attrs, isMap := p["custom_attributes"].(map[string]any)
		if !isMap {
			resp = unprocessable("custom_attributes must be an object", "custom_attributes")
			break
		}
		s.mu.Lock()
		s.setConversationAttributes(c, attrs)
		resp = ok(map[string]any{"custom_attributes": copyMap(c.customAttrs)})
		s.notify()
		s.mu.Unlock()
	default:
		resp = response{status: http.StatusNotFound, body: errAppNotFound}
	}
	if resp.body == nil {
		w.WriteHeader(resp.status)
		return
	}
	writeJSON(w, resp.status, resp.body)
}

// appCreateMessage posts an agent's message or private note through the Application API. A
// private note is stored and never reaches the contact; an outgoing message reaches it like
// AgentReply. Empty content is a 422.
func (s *Server) appCreateMessage(conversationID int64, p params) response {
	content, _ := p["content"].(string)
	if strings.TrimSpace(content) == "" {
		return unprocessable("Content can't be blank", "content")
	}
	if utf8.RuneCountInString(content) > maxContentLength {
		return unprocessable("Content is too long (maximum is 150000 characters)", "content")
	}
	if mt, _ := p["message_type"].(string); mt != "" && mt != "outgoing" {
		return unprocessable("Message type is not supported", "message_type")
	}
	private := false
	switch v := p["private"].(type) {
	case bool:
		private = v
	case string:
		private = v == "true"
	}
	m := s.postMessage("Application API", conversationID, MessageOutgoing, AgentMessage{Content: content, Private: private})
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, found := s.st.msgs[m.ID]
	if !found {
		return response{status: http.StatusNotFound, body: errAppNotFound}
	}
	out := s.messageREST(rec)
	out["private"] = rec.private
	return ok(out)
}

// appConversation is the Application API's conversation show, in the fields the bridge reads.
// The caller holds s.mu.
func (s *Server) appConversation(c *convRec) map[string]any {
	return map[string]any{
		"id": c.id, "uuid": c.uuid, "account_id": accountID, "inbox_id": inboxID, "status": c.status,
		"labels": slices.Clone(c.labels), "custom_attributes": copyMap(c.customAttrs),
	}
}

// accountLabels lists the labels in use in the account. The caller holds s.mu.
func (s *Server) accountLabels() response {
	var titles []string
	for _, c := range s.st.convs {
		titles = append(titles, c.labels...)
	}
	titles = normalLabels(titles)
	payload := make([]map[string]any, 0, len(titles))
	for i, t := range titles {
		payload = append(payload, map[string]any{"id": i + 1, "title": t, "show_on_sidebar": true})
	}
	return ok(map[string]any{"payload": payload})
}

// normalLabels lowercases, sorts and deduplicates labels, as acts_as_taggable stores them.
func normalLabels(labels []string) []string {
	out := make([]string, 0, len(labels))
	for _, l := range labels {
		if l = strings.ToLower(strings.TrimSpace(l)); l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
