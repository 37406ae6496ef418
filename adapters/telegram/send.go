package telegram

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-telegram/bot/models"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/retry"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// maxContinuationAttempts bounds how often Send retries the second and later messages of one
// agent message itself (see Send).
const maxContinuationAttempts = 5

// textParams is sendMessage / editMessageText.
type textParams struct {
	ChatID             int64                        `json:"chat_id"`
	MessageID          int                          `json:"message_id,omitempty"`
	Text               string                       `json:"text"`
	ParseMode          string                       `json:"parse_mode"`
	ReplyParameters    *models.ReplyParameters      `json:"reply_parameters,omitempty"`
	ReplyMarkup        *models.InlineKeyboardMarkup `json:"reply_markup,omitempty"`
	LinkPreviewOptions *models.LinkPreviewOptions   `json:"link_preview_options,omitempty"`
}

// maxAlbum is the most items Telegram takes in one sendMediaGroup; an album needs at least two.
const maxAlbum = 10

// step is one send of an agent message: a text, a file with an optional caption, or an album
// of 2–10 photos and videos (sendMediaGroup), the caption on its first item. An album creates
// one Telegram message per item.
type step struct {
	text   *formatted
	files  []*bridge.Attachment
	markup *models.InlineKeyboardMarkup
}

// size is how many Telegram messages the step creates, so how many ids it adds to the parts.
func (st step) size() int { return max(1, len(st.files)) }

// album reports whether the step goes out with sendMediaGroup.
func (st step) album() bool { return len(st.files) > 1 }

// rest is what remains of an album whose first n items are out (n < size): the caption went
// with the first item, so the rest has none.
func (st step) rest(n int) step { return step{files: st.files[n:]} }

// singles is an album as one step per file, the caption on the first: how it goes out when
// Telegram refuses the album.
func (st step) singles() []step {
	out := make([]step, len(st.files))
	for i, f := range st.files {
		out[i] = step{files: []*bridge.Attachment{f}}
	}
	out[0].text = st.text
	return out
}

// isAlbumMedia reports whether f goes into an album: photos and videos, which Telegram shows
// together as a grid. Other files (documents, voice, audio, GIFs) keep their own messages.
func isAlbumMedia(f bridge.Attachment) bool {
	method, _ := fileMethod(f)
	return method == "sendPhoto" || method == "sendVideo"
}

// fileSteps lays out the files: with two or more photos and videos, those go first as albums
// (several when there are more than ten, of even sizes so none is left with a single item),
// then the other files one message each; otherwise every file is one message, in order.
func fileSteps(atts []bridge.Attachment) []step {
	var media, other []*bridge.Attachment
	for i := range atts {
		if isAlbumMedia(atts[i]) {
			media = append(media, &atts[i])
		} else {
			other = append(other, &atts[i])
		}
	}
	var steps []step
	if len(media) < 2 {
		for i := range atts {
			steps = append(steps, step{files: []*bridge.Attachment{&atts[i]}})
		}
		return steps
	}
	albums := (len(media) + maxAlbum - 1) / maxAlbum
	for i := 0; i < albums; i++ {
		from, to := i*len(media)/albums, (i+1)*len(media)/albums
		steps = append(steps, step{files: media[from:to]})
	}
	for _, f := range other {
		steps = append(steps, step{files: []*bridge.Attachment{f}})
	}
	return steps
}

// plan lays out how m goes out: text parts first (the keyboard on the last), then the files
// (see fileSteps). Text that fits a caption rides on the first file instead, as users expect of
// a photo with a comment. A file larger than Telegram lets a bot send is left out: it is named
// in left (the core tells the user after the message) and in notes for agents. A message that
// was only such files has no steps: nothing goes out but the core's line.
func (a *Adapter) plan(m bridge.Outbound) (steps []step, left []bridge.LeftOutFile, notes []string, err error) {
	md := outboundMarkdown(m)
	kb := keyboard(m)
	atts := make([]bridge.Attachment, 0, len(m.Attachments))
	for _, f := range m.Attachments {
		if f.Size > a.maxUpload {
			name := orDefault(f.Name, "file")
			left = append(left, bridge.LeftOutFile{Name: name, Size: f.Size})
			notes = append(notes, a.host.Texts().Agent(texts.AgentFileTooLargeToSend, texts.Vars{"name": name,
				"size": bridge.FormatSize(f.Size), "limit": bridge.FormatSize(a.maxUpload), "platform": "Telegram"}))
			continue
		}
		if f.Open == nil {
			return nil, nil, nil, bridge.Permanent(fmt.Sprintf("attachment %s cannot be read", f.Name), nil)
		}
		atts = append(atts, f)
	}
	files := fileSteps(atts)
	caption := formatMarkdown(md, maxCaptionLen)
	if len(files) > 0 && kb == nil && len(caption) <= 1 {
		if len(caption) == 1 {
			files[0].text = &caption[0]
		}
		return files, left, notes, nil
	}
	parts := formatMarkdown(md, maxMessageLen)
	for i := range parts {
		steps = append(steps, step{text: &parts[i]})
	}
	if kb != nil && len(steps) > 0 {
		steps[len(steps)-1].markup = kb
	}
	steps = append(steps, files...)
	if len(steps) == 0 && len(left) == 0 {
		return nil, nil, nil, bridge.Permanent("message has no text", nil)
	}
	return steps, left, notes, nil
}

// errAlbumRefused is sendStep's answer when Telegram refused an album for its content (an
// image it cannot process, say): Send then sends its files one by one, where each can fall
// back to a document.
var errAlbumRefused = errors.New("telegram refused the album")

// Send delivers m to the private chat m.Chat: its Markdown as Telegram HTML split at 4096
// characters, its files uploaded by type (several photos and videos as albums), an inline
// keyboard for input_select and input_csat. It returns the ids of the messages it created, in
// order, every item of an album included. The first message replies to m.ReplyTo when it is
// set; if that message is gone the message is still sent.
//
// Every send is paced first (about one message per second per chat, 30 per second overall; an
// album counts as its items). Failures are classified: 403 (blocked, deactivated) is
// bridge.Unreachable, 429 is bridge.RateLimited with Telegram's retry_after, 400 is
// bridge.Permanent with Telegram's description; anything else is returned as is and worth
// retrying. A file larger than Telegram lets a bot send is left out and named with
// bridge.LeftOut: agents get a note, and the core tells the user in a line after the message.
//
// Once the first message is out, a retry of the whole message would duplicate it, so Send
// retries later ones itself (waiting out 429s, backing off on transient errors, a few times
// at most). If it still fails, it returns the ids sent so far together with the error, and a
// retry carrying them as m.Parts sends only the rest: an album is sent whole or not at all, so
// the parts never end inside one, unless it went out file by file.
func (a *Adapter) Send(ctx context.Context, m bridge.Outbound) ([]string, error) {
	chatID, err := chatIDOf(m.Chat)
	if err != nil {
		return nil, err
	}
	steps, left, notes, err := a.plan(a.localize(ctx, m))
	if err != nil {
		return nil, err
	}
	var reply *models.ReplyParameters
	if m.ReplyTo != "" {
		if id, err := strconv.Atoi(m.ReplyTo); err == nil && id > 0 {
			reply = &models.ReplyParameters{MessageID: id, AllowSendingWithoutReply: true}
		} else {
			a.log.Warn("ignoring invalid telegram reply-to message id",
				zap.String("chat_id", m.Chat.ID), zap.String("reply_to", m.ReplyTo))
		}
	}
	log := a.log.With(zap.String("chat_id", m.Chat.ID), zap.Int64("onechat_message_id", m.MessageID))
	total := 0
	for _, st := range steps {
		total += st.size()
	}
	// A retry of a message an earlier attempt delivered in part sends only the rest.
	for skip := len(m.Parts); skip > 0 && len(steps) > 0; steps = steps[1:] {
		n := steps[0].size()
		if skip < n {
			steps[0] = steps[0].rest(skip)
			break
		}
		skip -= n
	}
	ids := make([]string, 0, total)
	for len(steps) > 0 {
		st := steps[0]
		var r *models.ReplyParameters
		if len(m.Parts) == 0 && len(ids) == 0 {
			r = reply
		}
		var got []int
		send := func(ctx context.Context) (err error) {
			got, err = a.sendStep(ctx, log, chatID, st, r)
			return err
		}
		if len(ids) == 0 {
			err = a.paced(ctx, chatID, st.size(), send)
		} else {
			err = a.continuation(ctx, log, chatID, st.size(), send)
		}
		if errors.Is(err, errAlbumRefused) {
			steps = append(st.singles(), steps[1:]...)
			continue
		}
		if err != nil {
			return ids, fmt.Errorf("send part %d of %d to telegram chat %s: %w", len(m.Parts)+len(ids)+1, total, m.Chat.ID, err)
		}
		for _, id := range got {
			ids = append(ids, strconv.Itoa(id))
		}
		steps = steps[1:]
	}
	if total > 1 {
		log.Debug("sent telegram message in parts", zap.Int("parts", total))
	}
	return ids, bridge.LeftOut(left, notes...)
}

func chatIDOf(c bridge.ChatRef) (int64, error) {
	if c.Platform != Platform {
		return 0, bridge.Permanent(fmt.Sprintf("not a telegram chat: %s", c), nil)
	}
	id, err := strconv.ParseInt(c.ID, 10, 64)
	if err != nil {
		return 0, bridge.Permanent(fmt.Sprintf("invalid telegram chat id %q", c.ID), err)
	}
	return id, nil
}

// paced waits for the chat's and the bot's turn for n messages, then calls send once.
func (a *Adapter) paced(ctx context.Context, chatID int64, n int, send func(context.Context) error) error {
	if err := a.pacer.wait(ctx, chatID, n); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return send(ctx)
}

// continuation sends a later step of an agent message, retrying what is worth retrying.
func (a *Adapter) continuation(ctx context.Context, log *zap.Logger, chatID int64, n int, send func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := a.paced(ctx, chatID, n, send)
		var perm *bridge.PermanentError
		if err == nil || errors.As(err, &perm) || errors.Is(err, errAlbumRefused) || ctx.Err() != nil || attempt+1 >= maxContinuationAttempts {
			return err
		}
		d := a.backoff.Delay(attempt)
		var limited *bridge.RateLimitedError
		if errors.As(err, &limited) {
			d = limited.RetryAfter
		}
		log.Warn("retrying part of telegram message", zap.Error(err),
			zap.Int("attempt", attempt+1), zap.Duration("sleep", d))
		if err := a.wait(ctx, d); err != nil {
			return err
		}
	}
}

// sendStep sends one step and returns the ids of the messages it created; errors are
// classified.
func (a *Adapter) sendStep(ctx context.Context, log *zap.Logger, chatID int64, st step, reply *models.ReplyParameters) ([]int, error) {
	if st.album() {
		return a.sendAlbum(ctx, log, chatID, st, reply)
	}
	var msg models.Message
	if len(st.files) == 0 {
		p := textParams{ChatID: chatID, Text: st.text.html, ParseMode: "HTML", ReplyParameters: reply, ReplyMarkup: st.markup}
		err := classify(a.call(ctx, "sendMessage", &p, &msg))
		return []int{msg.ID}, err
	}
	file := st.files[0]
	method, field := fileMethod(*file)
	fields := map[string]string{"chat_id": strconv.FormatInt(chatID, 10)}
	if st.text != nil {
		fields["caption"] = st.text.html
		fields["parse_mode"] = "HTML"
	}
	if reply != nil {
		b, _ := json.Marshal(reply)
		fields["reply_parameters"] = string(b)
	}
	up := upload{field: field, name: orDefault(file.Name, "file"), mime: file.MIME, open: file.Open}
	err := classify(a.callMultipart(ctx, method, fields, &msg, up))
	var perm *bridge.PermanentError
	if err != nil && method != "sendDocument" && errors.As(err, &perm) && !perm.Unreachable {
		// Telegram refuses some images and media it cannot process (dimensions, codecs, an
		// ogg that is not opus); as a document the user still gets the file.
		log.Info("telegram refused the file as "+field+", sending it as a document",
			zap.String("file", up.name), zap.String("reason", perm.Reason))
		up.field = "document"
		msg = models.Message{}
		err = classify(a.callMultipart(ctx, "sendDocument", fields, &msg, up))
	}
	return []int{msg.ID}, err
}

// albumItem is an InputMediaPhoto or InputMediaVideo of sendMediaGroup's media parameter; its
// file is the multipart part that Media names as attach://<part>.
type albumItem struct {
	Type      string `json:"type"`
	Media     string `json:"media"`
	Caption   string `json:"caption,omitempty"`
	ParseMode string `json:"parse_mode,omitempty"`
}

// sendAlbum sends st's files as one album with sendMediaGroup, the caption (HTML) on the first
// item, and returns the ids of the messages Telegram created, one per item. A refusal for the
// content (400) is errAlbumRefused, so the files go out one by one instead.
func (a *Adapter) sendAlbum(ctx context.Context, log *zap.Logger, chatID int64, st step, reply *models.ReplyParameters) ([]int, error) {
	items := make([]albumItem, len(st.files))
	ups := make([]upload, len(st.files))
	for i, f := range st.files {
		_, field := fileMethod(*f)
		part := "file" + strconv.Itoa(i)
		items[i] = albumItem{Type: field, Media: "attach://" + part}
		ups[i] = upload{field: part, name: orDefault(f.Name, "file"), mime: f.MIME, open: f.Open}
	}
	if st.text != nil {
		items[0].Caption, items[0].ParseMode = st.text.html, "HTML"
	}
	media, err := json.Marshal(items)
	if err != nil {
		return nil, fmt.Errorf("telegram sendMediaGroup: encode media: %w", err)
	}
	fields := map[string]string{"chat_id": strconv.FormatInt(chatID, 10), "media": string(media)}
	if reply != nil {
		b, _ := json.Marshal(reply)
		fields["reply_parameters"] = string(b)
	}
	var msgs []models.Message
	err = classify(a.callMultipart(ctx, "sendMediaGroup", fields, &msgs, ups...))
	var perm *bridge.PermanentError
	if err != nil && errors.As(err, &perm) && !perm.Unreachable {
		log.Info("telegram refused the album, sending its files one by one",
			zap.Int("files", len(st.files)), zap.String("reason", perm.Reason))
		return nil, fmt.Errorf("%w: %w", errAlbumRefused, err)
	}
	if err != nil {
		return nil, err
	}
	if len(msgs) != len(st.files) {
		// Telegram creates every item or none; an answer that says otherwise cannot be mapped
		// to the files, and resending could double them, so this message stops here.
		return nil, bridge.Permanent(fmt.Sprintf("telegram answered an album of %d with %d messages", len(st.files), len(msgs)), nil)
	}
	ids := make([]int, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids, nil
}

// fileMethod picks the Bot API method and its file field for an attachment by its type, so a
// photo shows as a photo and a voice note plays as one.
func fileMethod(f bridge.Attachment) (method, field string) {
	mime := strings.ToLower(f.MIME)
	switch {
	case f.Kind == bridge.KindVoice || mime == "audio/ogg" || mime == "audio/opus":
		return "sendVoice", "voice"
	case mime == "image/gif" || f.Kind == bridge.KindAnimation:
		return "sendAnimation", "animation"
	case strings.HasPrefix(mime, "image/") && mime != "image/svg+xml" && (f.Size == 0 || f.Size <= 10<<20):
		return "sendPhoto", "photo" // Telegram takes photos up to 10 MB
	case mime == "video/mp4" || (f.Kind == bridge.KindVideo && mime == ""):
		return "sendVideo", "video"
	case mime == "audio/mpeg" || mime == "audio/mp3" || mime == "audio/mp4" || mime == "audio/m4a" || mime == "audio/x-m4a":
		return "sendAudio", "audio"
	default:
		return "sendDocument", "document"
	}
}

// Edit changes a message Send delivered: m.Parts are the ids Send returned, m carries the new
// content. Text parts are edited with editMessageText, a file's caption with
// editMessageCaption; the keyboard of an interactive message is kept. Text that now needs
// fewer parts deletes the rest; text that needs more is cut to fit, with a log line, since an
// edit cannot add messages.
func (a *Adapter) Edit(ctx context.Context, m bridge.Outbound) error {
	chatID, err := chatIDOf(m.Chat)
	if err != nil {
		return err
	}
	ids, err := partIDs(m.Parts)
	if err != nil {
		return err
	}
	log := a.log.With(zap.String("chat_id", m.Chat.ID), zap.Int64("onechat_message_id", m.MessageID))
	md := outboundMarkdown(a.localize(ctx, m))
	textIDs := ids
	if n := len(m.Attachments); n > 0 && n <= len(ids) {
		textIDs = ids[:len(ids)-n]
	}
	if len(textIDs) == 0 {
		// The text rode as the caption of the first file.
		caption := formatMarkdown(md, maxCaptionLen)
		if len(caption) > 1 {
			log.Warn("edited telegram caption is longer than 1024 characters; cut to fit")
		}
		html := ""
		if len(caption) > 0 {
			html = caption[0].html
		}
		p := map[string]any{"chat_id": chatID, "message_id": ids[0], "caption": html, "parse_mode": "HTML"}
		return a.editCall(ctx, chatID, "editMessageCaption", p)
	}
	parts := formatMarkdown(md, maxMessageLen)
	if len(parts) == 0 {
		return bridge.Permanent("edited message has no text", nil)
	}
	if len(parts) > len(textIDs) {
		log.Warn("edited telegram message needs more parts than were sent; the last part is cut",
			zap.Int("parts", len(parts)), zap.Int("sent", len(textIDs)))
		tail := formatMarkdown(plainTail(parts[len(textIDs)-1:]), maxMessageLen-1)
		parts = append(parts[:len(textIDs)-1], formatted{html: tail[0].html + "…", plain: tail[0].plain + "…"})
	}
	kb := keyboard(m)
	for i, id := range textIDs {
		if i >= len(parts) {
			if err := a.deleteOne(ctx, log, chatID, id); err != nil {
				return err
			}
			continue
		}
		p := textParams{ChatID: chatID, MessageID: id, Text: parts[i].html, ParseMode: "HTML"}
		if i == len(parts)-1 {
			p.ReplyMarkup = kb
		}
		if err := a.editCall(ctx, chatID, "editMessageText", &p); err != nil {
			return err
		}
	}
	return nil
}

// plainTail joins the visible text of parts, for cutting an edit that no longer fits.
func plainTail(parts []formatted) string {
	var b []string
	for _, p := range parts {
		b = append(b, escapeMarkdown(p.plain))
	}
	return strings.Join(b, "\n\n")
}

// editCall sends one edit, paced; "message is not modified" is success, since the message
// already shows what the agent wants.
func (a *Adapter) editCall(ctx context.Context, chatID int64, method string, params any) error {
	err := a.paced(ctx, chatID, 1, func(ctx context.Context) error {
		return a.call(ctx, method, params, nil)
	})
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Code == 400 && strings.Contains(apiErr.Description, "message is not modified") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("edit telegram message in chat %d: %w", chatID, classify(err))
	}
	return nil
}

// Delete deletes the messages Send delivered for m (m.Parts). Telegram lets a bot delete its
// messages in a private chat for 48 hours; past that, or when the user already deleted the
// chat, the reason is logged and returned as a permanent error, since no retry can help. A
// message that is already gone counts as deleted.
func (a *Adapter) Delete(ctx context.Context, m bridge.Outbound) error {
	chatID, err := chatIDOf(m.Chat)
	if err != nil {
		return err
	}
	ids, err := partIDs(m.Parts)
	if err != nil {
		return err
	}
	log := a.log.With(zap.String("chat_id", m.Chat.ID), zap.Int64("onechat_message_id", m.MessageID))
	for _, id := range ids {
		if err := a.deleteOne(ctx, log, chatID, id); err != nil {
			return err
		}
	}
	return nil
}

func (a *Adapter) deleteOne(ctx context.Context, log *zap.Logger, chatID int64, id int) error {
	p := map[string]any{"chat_id": chatID, "message_id": id}
	err := a.paced(ctx, chatID, 1, func(ctx context.Context) error {
		return a.call(ctx, "deleteMessage", p, nil)
	})
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Code == 400 {
		if strings.Contains(apiErr.Description, "message to delete not found") {
			return nil
		}
		log.Warn("telegram refused to delete the message; a bot may delete its messages only within 48 hours",
			zap.Int("message_id", id), zap.String("description", apiErr.Description))
		return bridge.Permanent("telegram refused to delete the message (a bot may delete its messages only within 48 hours): "+apiErr.Description, err)
	}
	if err != nil {
		return fmt.Errorf("delete telegram message %d in chat %d: %w", id, chatID, classify(err))
	}
	return nil
}

func partIDs(parts []string) ([]int, error) {
	if len(parts) == 0 {
		return nil, bridge.Permanent("no telegram message ids to change", nil)
	}
	ids := make([]int, 0, len(parts))
	for _, p := range parts {
		id, err := strconv.Atoi(p)
		if err != nil || id <= 0 {
			return nil, bridge.Permanent(fmt.Sprintf("invalid telegram message id %q", p), err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// OpenAttachment streams an inbound file from Telegram: getFile for its path, then a download
// from the Bot API server's file endpoint. The download URL holds the token and never leaves
// the adapter. A file the server will not hand out (too big, gone) is a permanent error.
func (a *Adapter) OpenAttachment(ctx context.Context, att bridge.Attachment) (io.ReadCloser, error) {
	if att.Ref == "" {
		return nil, bridge.Permanent("attachment has no telegram file id", nil)
	}
	var f models.File
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	err := a.call(callCtx, "getFile", map[string]string{"file_id": att.Ref}, &f)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("open telegram file %s: %w", att.Name, classify(err))
	}
	if f.FilePath == "" {
		return nil, bridge.Permanent(fmt.Sprintf("telegram has no download path for %s", att.Name), nil)
	}
	return a.download(ctx, f.FilePath)
}

// pacer spaces sends so the bot stays under Telegram's limits (about one message per second
// to a chat, 30 per second in all) instead of collecting 429s: each send reserves the next free
// slot of its chat and of the bot and waits until both have come.
type pacer struct {
	perChat, global time.Duration
	now             func() time.Time
	sleep           func(ctx context.Context, d time.Duration) error

	mu         sync.Mutex
	chatNext   map[int64]time.Time
	globalNext time.Time
}

// maxPacedChats bounds the per-chat map; entries whose slot has passed are dropped.
const maxPacedChats = 10000

func newPacer(perChat, global time.Duration) *pacer {
	return &pacer{perChat: perChat, global: global, now: time.Now, sleep: retry.Sleep, chatNext: map[int64]time.Time{}}
}

// reserve takes the next n slots for chat (an album is n messages to Telegram) and returns how
// long to wait for the first.
func (p *pacer) reserve(chat int64, n int) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if len(p.chatNext) >= maxPacedChats {
		for id, t := range p.chatNext {
			if !t.After(now) {
				delete(p.chatNext, id)
			}
		}
	}
	chatAt := now
	if t := p.chatNext[chat]; t.After(chatAt) {
		chatAt = t
	}
	globalAt := now
	if p.globalNext.After(globalAt) {
		globalAt = p.globalNext
	}
	// The two limits are kept apart: a chat waiting for its own slot does not hold up the
	// bot's slots for other chats.
	p.chatNext[chat] = chatAt.Add(time.Duration(n) * p.perChat)
	p.globalNext = globalAt.Add(time.Duration(n) * p.global)
	if globalAt.After(chatAt) {
		return globalAt.Sub(now)
	}
	return chatAt.Sub(now)
}

func (p *pacer) wait(ctx context.Context, chat int64, n int) error {
	if d := p.reserve(chat, n); d > 0 {
		return p.sleep(ctx, d)
	}
	return ctx.Err()
}

// typingInterval is how often the core shows the typing action again while the agent types:
// Telegram shows it for about five seconds.
const typingInterval = 4 * time.Second

// TypingRefresh implements bridge.Typer.
func (a *Adapter) TypingRefresh() time.Duration { return typingInterval }

// ShowTyping implements bridge.Typer: it shows the typing action in chat once. Telegram has no
// "stop typing": the indicator ends by itself within five seconds or when a message arrives.
func (a *Adapter) ShowTyping(ctx context.Context, chat bridge.ChatRef) error {
	chatID, err := chatIDOf(chat)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	p := map[string]any{"chat_id": chatID, "action": "typing"}
	if err := a.call(ctx, "sendChatAction", p, nil); err != nil {
		return fmt.Errorf("telegram typing in chat %d: %w", chatID, classify(err))
	}
	return nil
}

// healthState is the adapter's last known connection state.
type healthState struct {
	mu  sync.Mutex
	err error
	// changed is closed and replaced at every set, for tests to await a change.
	changed chan struct{}
}

func (h *healthState) set(err error) {
	h.mu.Lock()
	h.err = err
	if h.changed != nil {
		close(h.changed)
	}
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

// watch returns a channel closed at the next change and the current state.
func (h *healthState) watch() (<-chan struct{}, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed, h.err
}

// Health reports whether the adapter is receiving from Telegram: nil once a long poll was
// accepted (see getUpdates) or the webhook registered, otherwise what failed last (without
// secrets).
func (a *Adapter) Health() error {
	a.health.mu.Lock()
	defer a.health.mu.Unlock()
	return a.health.err
}

// localize fills in the texts the bridge adds to an agent's message in the user's language:
// the prompt of a CSAT survey the agent sent without text.
func (a *Adapter) localize(ctx context.Context, m bridge.Outbound) bridge.Outbound {
	if m.ContentType == "input_csat" && strings.TrimSpace(m.Text) == "" {
		m.Text = a.host.Texts().Text(a.host.UserLanguage(ctx, m.User), texts.CSATPrompt, nil)
	}
	return m
}
