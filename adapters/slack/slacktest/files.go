package slacktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// upload is a file announced by files.getUploadURLExternal.
type upload struct {
	fileID, name, altText string
	length                int
	data                  []byte
	size                  int64 // bytes received
	done                  bool
	completed             bool
}

// maxUpload bounds what the fake keeps in memory; Slack's own limit is 1 GB.
const maxUpload = 64 << 20

func (s *Server) getUploadURL(p url.Values) (result, apiError) {
	name := p.Get("filename")
	length, err := strconv.Atoi(p.Get("length"))
	if name == "" || err != nil || length <= 0 {
		return nil, "invalid_arguments"
	}
	if length > maxUpload {
		return nil, "file_upload_size_restricted"
	}
	up := &upload{fileID: s.nextID("F"), name: name, length: length, altText: p.Get("alt_txt")}
	key := randomHex(16)
	s.uploads[key] = up
	return result{"upload_url": s.URL + "/upload/v1/" + key, "file_id": up.fileID}, ""
}

// serveUpload takes a file's bytes, raw or as the multipart field "file", and checks them
// against the announced length. Slack answers "OK - <length>" as text.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/upload/v1/")
	s.mu.Lock()
	up, ok := s.uploads[key]
	s.mu.Unlock()
	if !ok {
		http.Error(w, "unknown upload", http.StatusNotFound)
		return
	}
	s.mu.Lock()
	discard := s.discard
	s.mu.Unlock()
	var body io.Reader = r.Body
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		part, err := multipartFile(r.Body, params["boundary"])
		if err != nil {
			http.Error(w, "bad upload", http.StatusBadRequest)
			return
		}
		body = part
	}
	var buf bytes.Buffer
	sink := io.Writer(&buf)
	if discard {
		sink = io.Discard
	}
	n, err := io.Copy(sink, io.LimitReader(body, maxUpload+1))
	if err != nil {
		http.Error(w, "bad upload", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	if n != int64(up.length) {
		// Slack's answer to a length mismatch is not documented; the fake refuses the upload,
		// so completeUploadExternal later fails for this file.
		http.Error(w, fmt.Sprintf("length mismatch: announced %d, got %d", up.length, n), http.StatusBadRequest)
		return
	}
	up.size, up.done = n, true
	if !discard {
		up.data = buf.Bytes()
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintf(w, "OK - %d", n)
}

// multipartFile returns the "file" part of a multipart body, to be read as it arrives.
func multipartFile(body io.Reader, boundary string) (io.Reader, error) {
	mr := multipart.NewReader(body, boundary)
	for {
		part, err := mr.NextPart()
		if err != nil {
			return nil, fmt.Errorf("no file part: %w", err)
		}
		if part.FormName() == "file" {
			return part, nil
		}
	}
}

// DiscardUploads makes the fake count the bytes of uploaded files instead of keeping them, so
// a test can upload a file much larger than it wants to hold (File.Data stays empty, File.Size
// says how much arrived).
func (s *Server) DiscardUploads() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discard = true
}

func (s *Server) newFileLocked(id, name, title, mimetype, user string, data []byte, size int64) File {
	if mimetype == "" {
		mimetype = mime.TypeByExtension(path.Ext(name))
		if mimetype == "" {
			mimetype = "application/octet-stream"
		}
	}
	if title == "" {
		title = name
	}
	base := fmt.Sprintf("%s/files-pri/%s-%s/", s.URL, TeamID, id)
	f := File{ID: id, Name: name, Title: title, Mimetype: mimetype, User: user, Data: data, Size: size,
		URLPrivate: base + url.PathEscape(name), URLPrivateDownload: base + "download/" + url.PathEscape(name),
		Created: time.Now().Unix()}
	s.files[id] = &f
	return f
}

func (s *Server) completeUpload(p url.Values) (result, apiError) {
	var reqFiles []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(p.Get("files")), &reqFiles); err != nil || len(reqFiles) == 0 {
		return nil, "invalid_arguments"
	}
	var ups []*upload
	for _, rf := range reqFiles {
		var found *upload
		for _, up := range s.uploads {
			if up.fileID == rf.ID && up.done && !up.completed {
				found = up
			}
		}
		if found == nil {
			return nil, "file_not_found"
		}
		ups = append(ups, found)
	}
	channel := p.Get("channel_id")
	if channel == "" && p.Get("channels") != "" {
		channel = strings.Split(p.Get("channels"), ",")[0]
	}
	var c *Channel
	if channel != "" {
		var code apiError
		if c, code = s.writableLocked(channel); code != "" {
			return nil, code
		}
	}
	var root string
	if c != nil {
		var code apiError
		if root, code = s.threadRootLocked(c, p.Get("thread_ts")); code != "" {
			return nil, code
		}
	}
	out := []result{}
	var files []File
	for i, up := range ups {
		up.completed = true
		f := s.newFileLocked(up.fileID, up.name, reqFiles[i].Title, "", BotUserID, up.data, up.size)
		files = append(files, f)
		out = append(out, result{"id": f.ID, "title": f.Title})
	}
	if c != nil {
		// The share is a file_share message from the bot user. Whether Slack also sets bot_id
		// on it is not documented; the fake leaves it out, so echo filters must match the
		// user (or the file ID) too.
		m := &Message{Channel: c.ID, TS: s.newTS(), ThreadTS: root, User: BotUserID, Team: TeamID,
			Subtype: "file_share", Text: p.Get("initial_comment"), Files: files, Params: cloneValues(p)}
		if b := p.Get("blocks"); b != "" && m.Text == "" {
			m.Blocks = json.RawMessage(b)
		}
		s.storeLocked(m)
		s.emitMessageLocked(c, m)
	}
	return result{"files": out}, ""
}

// serveFile serves url_private and url_private_download. Without the bot token as a Bearer
// header it redirects to the workspace sign-in page, as files.slack.com does.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/files-pri/")
	dir, _, _ := strings.Cut(rest, "/")
	_, id, _ := strings.Cut(dir, "-")
	s.mu.Lock()
	f, ok := s.files[id]
	authorized := r.Header.Get("Authorization") == "Bearer "+s.BotToken
	s.mu.Unlock()
	if !authorized {
		http.Redirect(w, r, "/?redir="+url.QueryEscape(r.URL.Path), http.StatusFound)
		return
	}
	if !ok {
		http.Error(w, "file not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", f.Mimetype)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.Data)))
	if strings.Contains(rest, "/download/") {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Name}))
	}
	// Stream in chunks, flushing, as a large file arrives.
	rd := bytes.NewReader(f.Data)
	buf := make([]byte, 32<<10)
	fl, _ := w.(http.Flusher)
	for {
		n, err := rd.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// serveSignIn is the workspace sign-in page unauthenticated file links redirect to.
func (s *Server) serveSignIn(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, "<!DOCTYPE html><html><head><title>Sign in | Slack</title></head><body>Sign in to "+TeamName+"</body></html>")
}

// serveResponseURL takes the bot's POSTs to a block_actions response_url: replace_original
// updates the message, delete_original deletes it, anything else is an ephemeral answer.
func (s *Server) serveResponseURL(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/actions/")
	p, err := readParams(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	ref, ok := s.actions[key]
	if err != nil || !ok {
		writeJSON(w, http.StatusNotFound, result{"ok": false, "error": "expired_url"})
		return
	}
	c := s.channels[ref[0]]
	m := s.findLocked(ref[0], ref[1])
	switch {
	case c == nil || m == nil || m.Deleted:
		writeJSON(w, http.StatusOK, result{"ok": false, "error": "message_not_found"})
		return
	case p.Get("delete_original") == "true":
		s.deleteLocked(c, m)
	case p.Get("replace_original") == "true":
		prev := s.renderMessageLocked(m)
		m.Text = p.Get("text")
		m.Blocks = nil
		if b := p.Get("blocks"); b != "" {
			m.Blocks = json.RawMessage(b)
		}
		m.Updates++
		s.emitChangedLocked(c, m, prev)
	default:
		s.ephemerals = append(s.ephemerals, Call{Method: "response_url", Params: cloneValues(p)})
	}
	writeJSON(w, http.StatusOK, result{"ok": true})
}
