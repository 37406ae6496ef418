package telegramtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// CloudDownloadLimit is the largest file getFile hands out on the cloud Bot API (20 MB).
const CloudDownloadLimit = 20 << 20

// maxCaptionLen is Telegram's caption limit, in UTF-16 code units after entity parsing.
const maxCaptionLen = 1024

// deleteWindow is how long a bot may delete its messages in a private chat.
const deleteWindow = 48 * time.Hour

type storedFile struct {
	id, uniqueID, path string
	data               []byte
	size               int64
}

// File is a file a test user sends.
type File struct {
	Name string
	MIME string
	Data []byte
	// Size is the file_size Telegram reports; len(Data) when zero. A test may claim a size
	// larger than Data to exercise size limits without allocating it.
	Size int64
	// Emoji, Animated and Video describe a sticker.
	Emoji           string
	Animated, Video bool
}

// CallbackAnswer is an answerCallbackQuery the bot made.
type CallbackAnswer struct {
	QueryID string
	Text    string
}

// SetDownloadLimit sets the largest file getFile hands out: CloudDownloadLimit by default, 0
// for no limit (a self-hosted Bot API server).
func (s *Server) SetDownloadLimit(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.downloadLimit = n
}

// RejectPhotos makes sendPhoto fail with 400 IMAGE_PROCESS_FAILED, as Telegram does for images
// it cannot process.
func (s *Server) RejectPhotos() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectPhotos = true
}

// SetNow replaces the fake's clock (message dates, the 48-hour delete window).
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Answers returns the callback queries the bot answered.
func (s *Server) Answers() []CallbackAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.answers)
}

// WaitAnswers waits until the bot answered at least n callback queries.
func (s *Server) WaitAnswers(ctx context.Context, n int) ([]CallbackAnswer, error) {
	var out []CallbackAnswer
	err := s.waitFor(ctx, func() bool {
		out = slices.Clone(s.answers)
		return len(out) >= n
	})
	return out, err
}

// Actions returns how many chat actions (typing, …) the bot sent to chatID.
func (s *Server) Actions(chatID int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.actions[chatID]
}

// WaitSentMatch waits until the messages the bot sent to chatID satisfy cond, e.g. an edit
// or a deletion has happened, and returns them.
func (s *Server) WaitSentMatch(ctx context.Context, chatID int64, cond func([]SentMessage) bool) ([]SentMessage, error) {
	var out []SentMessage
	err := s.waitFor(ctx, func() bool {
		out = slices.Clone(s.sent[chatID])
		return cond(out)
	})
	return out, err
}

// WaitActions waits until the bot sent at least n chat actions to chatID.
func (s *Server) WaitActions(ctx context.Context, chatID int64, n int) error {
	return s.waitFor(ctx, func() bool { return s.actions[chatID] >= n })
}

// Webhook returns the webhook URL and secret the bot registered ("" when none).
func (s *Server) Webhook() (url, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhookURL, s.webhookSecret
}

// WaitWebhook waits until a webhook is set (want true) or removed (want false).
func (s *Server) WaitWebhook(ctx context.Context, want bool) error {
	return s.waitFor(ctx, func() bool { return (s.webhookURL != "") == want })
}

// SetWebhookDirect sets a webhook as a previous deployment would have left it.
func (s *Server) SetWebhookDirect(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhookURL = url
	s.broadcastLocked()
}

// SendFile makes from send a file of kind (photo, document, voice, audio, video, video_note,
// animation, sticker) with caption in their private chat and returns the message id. The
// file can then be fetched with getFile and downloaded.
func (s *Server) SendFile(from User, kind string, f File, caption string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.privateChatLocked(from)
	m := s.fileMessageLocked(c, from, kind, f, caption, "")
	s.enqueueLocked("message", m)
	return m.MessageID
}

// SendAlbum makes from send files as one album (a media group): one update per file, as
// Telegram delivers them, the caption on the first. It returns the message ids.
func (s *Server) SendAlbum(from User, kind string, files []File, caption string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.privateChatLocked(from)
	group := "album" + strconv.Itoa(s.nextFile)
	var ids []int
	for i, f := range files {
		cap := ""
		if i == 0 {
			cap = caption
		}
		m := s.fileMessageLocked(c, from, kind, f, cap, group)
		s.enqueueLocked("message", m)
		ids = append(ids, m.MessageID)
	}
	return ids
}

// SendAlbumPart is one more part of the album that message albumFirst started, arriving
// later (for testing the album window).
func (s *Server) SendAlbumPart(from User, kind string, f File, albumFirst int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.privateChatLocked(from)
	m := s.fileMessageLocked(c, from, kind, f, "", c.msgs[albumFirst].MediaGroupID)
	s.enqueueLocked("message", m)
	return m.MessageID
}

// EditText makes from edit their message id to text and returns the edited_message update id.
func (s *Server) EditText(from User, id int, text string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.privateChatLocked(from)
	m := c.msgs[id]
	m.Text, m.EditDate = text, s.now().Unix()
	c.msgs[id] = m
	return s.enqueueLocked("edited_message", m)
}

// PressButton makes from press the inline button with callbackData on the bot's message id
// and returns the callback query id. Telegram includes the message, keyboard and all.
func (s *Server) PressButton(from User, id int, callbackData string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.privateChatLocked(from)
	s.nextFile++
	qid := "cbq" + strconv.Itoa(s.nextFile)
	s.enqueueLocked("callback_query", map[string]any{
		"id":            qid,
		"from":          wireUser{ID: from.ID, FirstName: from.FirstName, LastName: from.LastName, Username: from.Username, Language: from.LanguageCode},
		"message":       c.msgs[id],
		"chat_instance": "ci" + strconv.FormatInt(from.ID, 10),
		"data":          callbackData,
	})
	return qid
}

func (s *Server) privateChatLocked(from User) *chat {
	return s.chatLocked(wireChat{ID: from.ID, Type: "private", Username: from.Username,
		FirstName: from.FirstName, LastName: from.LastName})
}

func (s *Server) addFileLocked(f File, dir string) *storedFile {
	s.nextFile++
	n := strconv.Itoa(s.nextFile)
	sf := &storedFile{id: "file-" + n, uniqueID: "uniq-" + n, path: dir + "/file_" + n, data: f.Data, size: f.Size}
	if sf.size == 0 {
		sf.size = int64(len(f.Data))
	}
	s.files[sf.id] = sf
	return sf
}

func (s *Server) fileMessageLocked(c *chat, from User, kind string, f File, caption, group string) wireMessage {
	c.lastID++
	m := wireMessage{
		MessageID:    c.lastID,
		From:         &wireUser{ID: from.ID, FirstName: from.FirstName, LastName: from.LastName, Username: from.Username, Language: from.LanguageCode},
		Chat:         c.info,
		Date:         s.now().Unix(),
		Caption:      caption,
		MediaGroupID: group,
	}
	sf := s.addFileLocked(f, kind+"s")
	base := map[string]any{"file_id": sf.id, "file_unique_id": sf.uniqueID, "file_size": sf.size}
	if f.Name != "" && kind != "photo" && kind != "voice" && kind != "video_note" && kind != "sticker" {
		base["file_name"] = f.Name
	}
	if f.MIME != "" && kind != "photo" && kind != "video_note" && kind != "sticker" {
		base["mime_type"] = f.MIME
	}
	raw := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	switch kind {
	case "photo":
		// Telegram sends several sizes, smallest first; the thumbnail is a different file.
		thumb := s.addFileLocked(File{Data: []byte("thumbnail")}, "photos")
		base["width"], base["height"] = 1280, 960
		m.Photo = raw([]any{
			map[string]any{"file_id": thumb.id, "file_unique_id": thumb.uniqueID, "file_size": thumb.size, "width": 90, "height": 67},
			base,
		})
	case "document":
		m.Document = raw(base)
	case "voice":
		base["duration"] = 3
		m.Voice = raw(base)
	case "audio":
		base["duration"] = 180
		m.Audio = raw(base)
	case "video":
		base["duration"], base["width"], base["height"] = 10, 640, 480
		m.Video = raw(base)
	case "video_note":
		base["duration"], base["length"] = 5, 240
		m.VideoNote = raw(base)
	case "animation":
		base["duration"], base["width"], base["height"] = 2, 320, 240
		m.Animation = raw(base)
		m.Document = raw(base) // Telegram sends an animation as a document too
	case "sticker":
		thumb := s.addFileLocked(File{Data: []byte("sticker thumbnail")}, "thumbnails")
		typ := "regular"
		base["type"], base["width"], base["height"] = typ, 512, 512
		base["is_animated"], base["is_video"], base["emoji"] = f.Animated, f.Video, f.Emoji
		base["thumbnail"] = map[string]any{"file_id": thumb.id, "file_unique_id": thumb.uniqueID, "width": 128, "height": 128}
		m.Sticker = raw(base)
	default:
		panic("telegramtest: unknown file kind " + kind)
	}
	c.msgs[m.MessageID] = m
	return m
}

// serveFile serves GET /file/bot<token>/<file_path>, where getFile's paths lead.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, rest string) {
	token, path, _ := strings.Cut(rest, "/")
	if token != s.token {
		writeError(w, describe(http.StatusUnauthorized))
		return
	}
	s.mu.Lock()
	s.calls["download"]++
	var data []byte
	found := false
	for _, f := range s.files {
		if f.path == path {
			data, found = f.data, true
		}
	}
	s.mu.Unlock()
	if !found {
		writeError(w, describe(http.StatusNotFound))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

func (s *Server) setWebhook(p params) (any, *apiError) {
	u := p["url"]
	if u != "" && !strings.HasPrefix(u, "https://") {
		e := badRequest("bad webhook: An HTTPS URL must be provided for webhook")
		return nil, &e
	}
	secret := p["secret_token"]
	if len(secret) > 256 || strings.IndexFunc(secret, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-')
	}) >= 0 {
		e := badRequest("secret token contains unallowed characters")
		return nil, &e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhookURL, s.webhookSecret = u, secret
	s.broadcastLocked()
	return true, nil
}

// moreMethods serves the media, edit, delete, callback and file methods.
func (s *Server) moreMethods(method string, p params, files map[string]*Upload) (any, *apiError, bool) {
	switch method {
	case "sendphoto", "senddocument", "sendvideo", "sendaudio", "sendvoice", "sendanimation", "sendvideonote", "sendsticker":
		r, e := s.sendMedia(method, strings.TrimPrefix(method, "send"), p, files)
		return r, e, true
	case "sendmediagroup":
		r, e := s.sendMediaGroup(p, files)
		return r, e, true
	case "editmessagetext":
		r, e := s.editMessage(p, "text")
		return r, e, true
	case "editmessagecaption":
		r, e := s.editMessage(p, "caption")
		return r, e, true
	case "editmessagereplymarkup":
		r, e := s.editMessage(p, "markup")
		return r, e, true
	case "deletemessage":
		r, e := s.deleteMessage(p)
		return r, e, true
	case "answercallbackquery":
		if p["callback_query_id"] == "" {
			e := badRequest("query is too old and response timeout expired or query ID is invalid")
			return nil, &e, true
		}
		s.mu.Lock()
		s.answers = append(s.answers, CallbackAnswer{QueryID: p["callback_query_id"], Text: p["text"]})
		s.broadcastLocked()
		s.mu.Unlock()
		return true, nil, true
	case "getfile":
		r, e := s.getFile(p)
		return r, e, true
	}
	return nil, nil, false
}

var mediaField = map[string]string{
	"photo": "photo", "document": "document", "video": "video", "audio": "audio", "voice": "voice",
	"animation": "animation", "videonote": "video_note", "sticker": "sticker",
}

func (s *Server) sendMedia(method, kind string, p params, files map[string]*Upload) (any, *apiError) {
	field := mediaField[kind]
	s.mu.Lock()
	defer s.mu.Unlock()
	c, apiErr := s.sendTargetLocked(p)
	if apiErr != nil {
		return nil, apiErr
	}
	up := files[field]
	if up == nil {
		// A file_id or URL in a plain field: the fake records it but a test can see there
		// was no upload. Telegram would fetch a URL itself.
		if v := p[field]; v != "" {
			up = &Upload{Field: field, Name: v}
		} else {
			e := badRequest("there is no " + field + " in the request")
			return nil, &e
		}
	}
	if up.Size == 0 && files[field] != nil {
		e := badRequest("file must be non-empty")
		return nil, &e
	}
	if kind == "photo" && s.rejectPhotos {
		e := badRequest("IMAGE_PROCESS_FAILED")
		return nil, &e
	}
	caption, entities, apiErr := parseText(p["caption"], p["parse_mode"], maxCaptionLen, "message caption is too long")
	if apiErr != nil {
		return nil, apiErr
	}
	m, sm, apiErr := s.newBotMessageLocked(c, p)
	if apiErr != nil {
		return nil, apiErr
	}
	sf := s.addFileLocked(File{Data: up.Data, Size: up.Size}, field+"s")
	fj, _ := json.Marshal(map[string]any{"file_id": sf.id, "file_unique_id": sf.uniqueID, "file_size": sf.size})
	switch field {
	case "photo":
		m.Photo = json.RawMessage("[" + string(fj) + "]")
	case "document":
		m.Document = fj
	case "video":
		m.Video = fj
	case "audio":
		m.Audio = fj
	case "voice":
		m.Voice = fj
	case "animation":
		m.Animation = fj
	case "video_note":
		m.VideoNote = fj
	case "sticker":
		m.Sticker = fj
	}
	m.Caption, m.CaptionEntities = caption, toWire(entities)
	sm.Method = "send" + strings.ToUpper(kind[:1]) + kind[1:]
	if kind == "videonote" {
		sm.Method = "sendVideoNote"
	}
	sm.Text, sm.Raw, sm.Entities, sm.File = caption, p["caption"], entities, up
	return s.recordLocked(c, m, sm), nil
}

// findSentLocked returns the bot's message id in chat c.
func (s *Server) findSentLocked(c *chat, id int) (*SentMessage, *apiError) {
	for i := range s.sent[c.info.ID] {
		sm := &s.sent[c.info.ID][i]
		if sm.MessageID == id && !sm.Deleted {
			return sm, nil
		}
	}
	e := badRequest("message to edit not found")
	return nil, &e
}

func (s *Server) editMessage(p params, what string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, apiErr := s.sendTargetLocked(p)
	if apiErr != nil {
		return nil, apiErr
	}
	id, _ := strconv.Atoi(p["message_id"])
	sm, apiErr := s.findSentLocked(c, id)
	if apiErr != nil {
		return nil, apiErr
	}
	m := c.msgs[id]
	kb, apiErr := parseKeyboard(p["reply_markup"])
	if apiErr != nil {
		return nil, apiErr
	}
	switch what {
	case "text":
		if sm.File != nil {
			e := badRequest("there is no text in the message to edit")
			return nil, &e
		}
		text, entities, apiErr := parseText(p["text"], p["parse_mode"], maxTextLen, "message is too long")
		if apiErr != nil {
			return nil, apiErr
		}
		if strings.TrimSpace(text) == "" {
			e := badRequest("message text is empty")
			return nil, &e
		}
		if text == sm.Text && slices.Equal(entities, sm.Entities) && keyboardsEqual(kb, sm.Keyboard) {
			e := badRequest("message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message")
			return nil, &e
		}
		sm.Text, sm.Raw, sm.Entities, sm.ParseMode = text, p["text"], entities, p["parse_mode"]
		m.Text, m.Entities = text, toWire(entities)
	case "caption":
		if sm.File == nil {
			e := badRequest("there is no caption in the message to edit")
			return nil, &e
		}
		text, entities, apiErr := parseText(p["caption"], p["parse_mode"], maxCaptionLen, "message caption is too long")
		if apiErr != nil {
			return nil, apiErr
		}
		sm.Text, sm.Raw, sm.Entities, sm.ParseMode = text, p["caption"], entities, p["parse_mode"]
		m.Caption, m.CaptionEntities = text, toWire(entities)
	}
	// Like Telegram, an edit without reply_markup removes the keyboard.
	sm.Keyboard = kb
	m.ReplyMarkup = nil
	if kb != nil {
		m.ReplyMarkup = &wireMarkup{InlineKeyboard: kb}
	}
	sm.Edits++
	m.EditDate = s.now().Unix()
	c.msgs[id] = m
	s.broadcastLocked()
	return m, nil
}

func keyboardsEqual(a, b [][]Button) bool {
	return slices.EqualFunc(a, b, func(x, y []Button) bool { return slices.Equal(x, y) })
}

func (s *Server) deleteMessage(p params) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, apiErr := s.sendTargetLocked(p)
	if apiErr != nil {
		return nil, apiErr
	}
	id, _ := strconv.Atoi(p["message_id"])
	m, ok := c.msgs[id]
	if !ok {
		e := badRequest("message to delete not found")
		return nil, &e
	}
	if s.now().Sub(time.Unix(m.Date, 0)) > deleteWindow {
		e := badRequest("message can't be deleted for everyone")
		return nil, &e
	}
	delete(c.msgs, id)
	for i := range s.sent[c.info.ID] {
		if s.sent[c.info.ID][i].MessageID == id {
			s.sent[c.info.ID][i].Deleted = true
		}
	}
	s.broadcastLocked()
	return true, nil
}

func (s *Server) getFile(p params) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[p["file_id"]]
	if !ok {
		e := badRequest("invalid file_id")
		return nil, &e
	}
	if s.downloadLimit > 0 && f.size > s.downloadLimit {
		e := badRequest("file is too big")
		return nil, &e
	}
	return map[string]any{"file_id": f.id, "file_unique_id": f.uniqueID, "file_size": f.size, "file_path": f.path}, nil
}

// parseKeyboard reads reply_markup; only inline keyboards are understood. Telegram ignores the
// empty copy_text go-telegram/bot sends with every button, and so does the fake.
func parseKeyboard(v string) ([][]Button, *apiError) {
	if v == "" {
		return nil, nil
	}
	var m struct {
		InlineKeyboard [][]Button `json:"inline_keyboard"`
	}
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		e := badRequest("can't parse reply keyboard markup JSON object")
		return nil, &e
	}
	for _, row := range m.InlineKeyboard {
		for _, b := range row {
			if b.Text == "" {
				e := badRequest("text buttons are unallowed in the inline keyboard")
				return nil, &e
			}
			if len(b.CallbackData) > 64 {
				e := badRequest("BUTTON_DATA_INVALID")
				return nil, &e
			}
			if b.CallbackData == "" && b.URL == "" {
				e := badRequest("can't find field \"callback_data\"")
				return nil, &e
			}
		}
	}
	if len(m.InlineKeyboard) == 0 {
		return nil, nil
	}
	return m.InlineKeyboard, nil
}

func toWire(es []Entity) []wireEntity {
	var out []wireEntity
	for _, e := range es {
		out = append(out, wireEntity(e))
	}
	return out
}

// parseText applies parse_mode to a text or caption and checks the length of the result, as
// Telegram does: the limit counts the visible text, not the markup.
func parseText(raw, parseMode string, limit int, tooLong string) (string, []Entity, *apiError) {
	var (
		text     string
		entities []Entity
	)
	switch parseMode {
	case "":
		text = raw
	case "HTML":
		var err error
		text, entities, err = ParseHTML(raw)
		if err != nil {
			e := badRequest("can't parse entities: " + err.Error())
			return "", nil, &e
		}
	case "Markdown", "MarkdownV2":
		text = raw // not interpreted by the fake
	default:
		e := badRequest("unsupported parse_mode")
		return "", nil, &e
	}
	if !utf8.ValidString(text) {
		e := badRequest("text must be encoded in UTF-8")
		return "", nil, &e
	}
	text = strings.TrimSpace(text) // Telegram trims what it shows
	if utf16Len(text) > limit {
		e := badRequest(tooLong)
		return "", nil, &e
	}
	return text, entities, nil
}

// htmlTags maps the tags Telegram's HTML parse mode supports to entity types.
var htmlTags = map[string]string{
	"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
	"s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "code": "code", "pre": "pre",
	"a": "text_link", "blockquote": "blockquote", "tg-spoiler": "spoiler", "span": "spoiler",
	"tg-emoji": "custom_emoji",
}

// ParseHTML is Telegram's HTML parse mode, exported so tests can check that converted text is
// valid: supported tags only, properly nested, the entities
// &lt; &gt; &amp; &quot; and numeric ones; anything else is an error, as it is for Telegram.
func ParseHTML(s string) (string, []Entity, error) {
	type open struct {
		tag   string
		start int
		url   string
	}
	var (
		out      strings.Builder
		units    int
		stack    []open
		entities []Entity
	)
	for i := 0; i < len(s); {
		switch s[i] {
		case '<':
			end := strings.IndexByte(s[i:], '>')
			if end < 0 {
				return "", nil, fmt.Errorf("unclosed start tag at byte offset %d", i)
			}
			tag := s[i+1 : i+end]
			i += end + 1
			if closing, ok := strings.CutPrefix(tag, "/"); ok {
				name := strings.ToLower(strings.TrimSpace(closing))
				if len(stack) == 0 || stack[len(stack)-1].tag != name {
					return "", nil, fmt.Errorf("unexpected end tag \"%s\"", name)
				}
				o := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if units > o.start {
					typ := htmlTags[o.tag]
					if o.tag == "code" && len(stack) > 0 && stack[len(stack)-1].tag == "pre" {
						continue // <pre><code class=…> is one pre entity
					}
					entities = append(entities, Entity{Type: typ, Offset: o.start, Length: units - o.start, URL: o.url})
				}
				continue
			}
			name, attrs, _ := strings.Cut(tag, " ")
			name = strings.ToLower(name)
			if _, ok := htmlTags[name]; !ok {
				return "", nil, fmt.Errorf("unsupported start tag \"%s\"", name)
			}
			o := open{tag: name, start: units}
			if name == "a" {
				href, ok := attrValue(attrs, "href")
				if !ok {
					return "", nil, fmt.Errorf("a tag without href")
				}
				o.url = href
			}
			stack = append(stack, o)
		case '&':
			end := strings.IndexByte(s[i:], ';')
			r, ok := rune(0), false
			if end > 0 && end < 12 {
				r, ok = htmlEntity(s[i+1 : i+end])
			}
			if !ok {
				out.WriteByte('&') // Telegram keeps an unknown entity as text
				units++
				i++
				continue
			}
			out.WriteRune(r)
			units += len(utf16.Encode([]rune{r}))
			i += end + 1
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			out.WriteString(s[i : i+size])
			units += len(utf16.Encode([]rune{r}))
			i += size
		}
	}
	if len(stack) > 0 {
		return "", nil, fmt.Errorf("can't find end tag corresponding to start tag \"%s\"", stack[len(stack)-1].tag)
	}
	return out.String(), entities, nil
}

func attrValue(attrs, name string) (string, bool) {
	i := strings.Index(attrs, name+"=\"")
	if i < 0 {
		return "", false
	}
	rest := attrs[i+len(name)+2:]
	end := strings.IndexByte(rest, '"')
	if end < 0 {
		return "", false
	}
	v := rest[:end]
	for _, kv := range [][2]string{{"&quot;", "\""}, {"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}} {
		v = strings.ReplaceAll(v, kv[0], kv[1])
	}
	return v, true
}

func htmlEntity(name string) (rune, bool) {
	switch name {
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "amp":
		return '&', true
	case "quot":
		return '"', true
	}
	if n, ok := strings.CutPrefix(name, "#x"); ok {
		v, err := strconv.ParseInt(n, 16, 32)
		return rune(v), err == nil
	}
	if n, ok := strings.CutPrefix(name, "#"); ok {
		v, err := strconv.ParseInt(n, 10, 32)
		return rune(v), err == nil
	}
	return 0, false
}
