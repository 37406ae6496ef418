package discord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// maxContinuationWait is the longest 429 Send waits out itself for the second and later parts
// of a message (see Send); a longer one returns the parts sent so far with the error.
const maxContinuationWait = 10 * time.Second

// Send delivers an agent message to its chat (a DM channel or a ticket thread) and returns the
// ids of the Discord messages it created: the text split at 2000 characters, the first part
// replying to m.ReplyTo, files uploaded with the first part, buttons or a select menu with the
// last, cards and articles as embeds. No mention in it pings anyone.
//
// Errors: a 429 is bridge.RateLimited with Discord's retry_after; 50007 (the user's DMs are
// closed) is bridge.Unreachable, except in support-channel mode, where the user's ticket thread
// is opened (or found), the core is told to answer there from now on (Host.MoveChat), and the
// message goes there. Other 4xx are bridge.Permanent; the rest is worth retrying.
//
// Once the first part is out, retrying the whole message would repeat it, so Send waits out
// short 429s of later parts itself; otherwise it returns the ids sent so far with the error.
func (a *Adapter) Send(ctx context.Context, m bridge.Outbound) ([]string, error) {
	if m.Chat.Platform != Platform || !isSnowflake(m.Chat.ID) {
		return nil, bridge.Permanent(fmt.Sprintf("not a discord chat: %s", m.Chat), nil)
	}
	v := a.voiceFor(m.User, "")
	ids, leftOut, err := a.sendTo(ctx, m.Chat.ID, m, v)
	if err == nil {
		return ids, bridge.Partial(leftOut...)
	}
	if len(ids) > 0 || !hasCode(err, codeCannotSendToUser) || a.support == "" || !isSnowflake(m.User.ID) {
		return ids, classify(err)
	}
	thread, terr := a.ensureTicket(ctx, a.host, m.User.ID, "", v)
	if terr != nil {
		return nil, fmt.Errorf("open a support thread for a user whose DMs are closed: %w", classify(terr))
	}
	a.log.Info("user's DMs are closed, answering in their support thread",
		zap.String("user_id", m.User.ID), zap.String("thread_id", thread))
	if err := a.host.MoveChat(ctx, m.User, bridge.ChatRef{Platform: Platform, ID: thread}); err != nil {
		return nil, fmt.Errorf("move chat to the support thread: %w", err)
	}
	m.Chat.ID, m.ReplyTo = thread, "" // the replied-to message is in the DM, not the thread
	ids, leftOut, err = a.sendTo(ctx, thread, m, v)
	if err == nil {
		return ids, bridge.Partial(leftOut...)
	}
	return ids, classify(err)
}

// sendTo posts the planned messages of m into channel. leftOut names, for agents, the files
// left out of the messages sent.
//
// What the bridge adds of its own for the user (a survey's prompt, a menu's placeholder, notes
// about files) is in the user's language (v).
func (a *Adapter) sendTo(ctx context.Context, channel string, m bridge.Outbound, v *voice) (ids, leftOut []string, err error) {
	var choose string
	switch m.ContentType {
	case "input_csat":
		if strings.TrimSpace(m.Text) == "" {
			m.Text = v.say(ctx, texts.CSATPrompt, nil)
		}
	case "input_select":
		choose = v.say(ctx, texts.ChooseOption, nil)
	}
	plan := planOutbound(m, choose)
	if len(plan) == 0 {
		return nil, nil, bridge.Permanent("message has nothing to send", nil)
	}
	// A retry of a message an earlier attempt delivered in part sends only the rest.
	done := min(len(m.Parts), len(plan))
	for i, p := range plan {
		if i < done {
			continue
		}
		id, left, err := a.sendPart(ctx, channel, m, i, i == done, p, v)
		if err != nil {
			return ids, leftOut, err
		}
		ids, leftOut = append(ids, id), append(leftOut, left...)
	}
	return ids, leftOut, nil
}

// sendPart posts part i of m's plan and returns the id of the Discord message. Files are
// streamed from their source into the upload. A file Discord will not take (larger than the
// upload limit, by its declared size, by what it turned out to be, or by Discord's 413), or
// whose download failed maxFileAttempts times, is left out with a note in the text, so the rest
// of the message still goes out; leftOut names those files for agents.
func (a *Adapter) sendPart(ctx context.Context, channel string, m bridge.Outbound, i int, first bool, p plannedMessage, v *voice) (_ string, leftOut []string, err error) {
	tooLargeNote := func(name string) string {
		return v.say(ctx, texts.FileTooLarge, texts.Vars{"name": name, "platform": "Discord"})
	}
	files, tooLarge, err := a.checkFiles(m, i, p.files)
	if err != nil {
		return "", nil, err
	}
	var notes []string
	for _, name := range tooLarge {
		notes = append(notes, tooLargeNote(name))
		leftOut = append(leftOut, a.tooLargeAgentNote(name))
	}
	base := p.payload
	if m.MessageID > 0 {
		// A retry of this message (after a crash or a lost answer, within Discord's few
		// minutes) gets the part already sent back instead of posting it twice.
		base.Nonce, base.EnforceNonce = partNonce(m.MessageID, i), true
	}
	path := "/channels/" + channel + "/messages"
	for try := 0; ; {
		payload := base
		if len(notes) > 0 {
			extra := strings.Join(notes, "\n")
			if payload.Content != "" {
				extra = "\n" + extra
			}
			payload.Content = textsplit.Truncate(payload.Content+extra, maxContentLen, textsplit.UTF16)
		}
		payload.Attachments = nil
		for j, f := range files {
			payload.Attachments = append(payload.Attachments, attachmentMeta{ID: j, Filename: f.name})
		}
		var created discordgo.Message
		if len(files) > 0 {
			var failed *pendingFile
			failed, err = a.upload(ctx, path, payload, files, &created)
			switch {
			case failed != nil && failed.tooLarge:
				notes = append(notes, tooLargeNote(failed.name))
				leftOut = append(leftOut, a.tooLargeAgentNote(failed.name))
				files = without(files, failed)
				continue
			case failed != nil:
				n := a.fileFailed(failed.key)
				a.log.Warn("cannot download an attachment for discord", zap.String("file", failed.name),
					zap.Int("attempt", n), zap.Error(err))
				if n < maxFileAttempts {
					return "", nil, fmt.Errorf("download attachment %s: %w", failed.name, err)
				}
				a.fileDone(failed.key)
				notes = append(notes, v.say(ctx, texts.FileDownloadFailed, texts.Vars{"name": failed.name, "count": strconv.Itoa(n)}))
				leftOut = append(leftOut, a.host.Texts().Agent(texts.AgentFileDownloadGivenUp, texts.Vars{"name": failed.name, "count": strconv.Itoa(n)}))
				files = without(files, failed)
				continue
			case isTooLarge(err):
				// Discord's limit for this channel is lower than ours: the files are left out.
				for _, f := range files {
					notes = append(notes, tooLargeNote(f.name))
					leftOut = append(leftOut, a.tooLargeAgentNote(f.name))
				}
				files = nil
				continue
			case err == nil:
				for _, f := range files {
					a.fileDone(f.key)
				}
			}
		} else {
			err = a.rest.do(ctx, "POST", path, payload, &created)
		}
		var apiErr *APIError
		if first || try >= 3 || !errors.As(err, &apiErr) || apiErr.Status != http.StatusTooManyRequests || apiErr.RetryAfter > maxContinuationWait {
			if err != nil {
				return "", nil, err
			}
			return created.ID, leftOut, nil
		}
		try++
		if werr := a.wait(ctx, apiErr.RetryAfter); werr != nil {
			return "", nil, werr
		}
	}
}

// partNonce is the nonce of part i of the OneChat message id: "oc", the id, "." and the part
// (at most 2+19+1+3 = 25 characters, Discord's limit, for any int64 id and up to 999 parts).
func partNonce(id int64, i int) string {
	return "oc" + strconv.FormatInt(id, 10) + "." + strconv.Itoa(i)
}

// maxFileAttempts is how many times an agent's file may fail to download before the message
// goes out without it, with a note: a source that is slow or broken must not hold the
// conversation for ever.
const maxFileAttempts = 3

// defaultFileTimeout bounds one attempt to send a message with files: the downloads from
// OneChat stream through it, so a download slower than this fails the attempt.
const defaultFileTimeout = 2 * time.Minute

// pendingFile is an agent's file on its way into an upload.
type pendingFile struct {
	name string
	att  bridge.Attachment
	// key identifies the file across retries of the message, for counting failed downloads.
	key string
	// tooLarge is set when the file turned out larger than the upload limit while it was read.
	tooLarge bool
}

// checkFiles picks the files of part i that can go: a file over the upload limit by its declared
// size is named in tooLarge, to become a note (a permanent outcome for that file; the rest
// still goes out).
func (a *Adapter) checkFiles(m bridge.Outbound, i int, atts []bridge.Attachment) (files []*pendingFile, tooLarge []string, err error) {
	for j, att := range atts {
		name := att.Name
		if name == "" {
			name = "file"
		}
		if att.Size > a.maxUpload {
			tooLarge = append(tooLarge, name)
			continue
		}
		if att.Open == nil {
			return nil, nil, bridge.Permanent("attachment "+name+" cannot be opened", nil)
		}
		key := fmt.Sprintf("%s/%d/%d/%d", m.Chat.ID, m.MessageID, i, j)
		files = append(files, &pendingFile{name: name, att: att, key: key})
	}
	return files, tooLarge, nil
}

// tooLargeAgentNote is tooLargeNote for agents (bridge.Partial), in their language, with what to
// do instead.
func (a *Adapter) tooLargeAgentNote(name string) string {
	return a.host.Texts().Agent(texts.AgentFileTooLargeHere, texts.Vars{"name": name, "platform": "Discord"})
}

func without(files []*pendingFile, f *pendingFile) []*pendingFile {
	out := make([]*pendingFile, 0, len(files))
	for _, g := range files {
		if g != f {
			out = append(out, g)
		}
	}
	return out
}

// isTooLarge reports whether Discord refused an upload for its size (413, code 40005).
func isTooLarge(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && (apiErr.Status == http.StatusRequestEntityTooLarge || apiErr.Code == codeEntityTooLarge)
}

// upload opens the files and streams them into one message create. When a file's source
// failed (or was still being read when the attempt ended, as a slow download is) or turned out
// larger than the upload limit, it is returned as failed, with the error.
func (a *Adapter) upload(parent context.Context, path string, payload messagePayload, files []*pendingFile, out any) (failed *pendingFile, err error) {
	ctx, cancel := context.WithTimeout(parent, a.fileTimeout)
	defer cancel()
	sources := make([]*sourceReader, 0, len(files))
	defer func() {
		cancel() // unblocks a source still being read by the transport
		for _, src := range sources {
			_ = src.rc.Close()
		}
	}()
	uploads := make([]uploadFile, 0, len(files))
	for _, f := range files {
		rc, oerr := f.att.Open(ctx)
		if oerr != nil {
			return f, oerr
		}
		src := &sourceReader{rc: rc, left: a.maxUpload}
		sources = append(sources, src)
		uploads = append(uploads, uploadFile{Name: f.name, MIME: f.att.MIME, Body: src})
	}
	err = a.rest.doFiles(ctx, "POST", path, payload, uploads, out)
	if err == nil {
		return nil, nil
	}
	// The attempt's own time ran out (not the caller's): the first file not read to its end is
	// the slow one, even if the transport had not begun to read it.
	timedOut := ctx.Err() != nil && parent.Err() == nil
	for k, src := range sources {
		if tooLarge, busy, serr := src.state(); tooLarge || serr != nil || busy || (timedOut && !src.finished()) {
			files[k].tooLarge = tooLarge
			if serr != nil {
				err = serr
			}
			return files[k], err
		}
	}
	return nil, err
}

// errFileTooLarge is what a sourceReader returns once its file exceeds the upload limit.
var errFileTooLarge = errors.New("file is larger than the upload limit")

// sourceReader reads an agent's file into an upload, stops it at the upload limit, and records
// whether the source failed or was still being read, so a failed upload can be told from a
// failed download.
type sourceReader struct {
	rc   io.ReadCloser
	left int64

	mu       sync.Mutex
	err      error
	tooLarge bool
	reading  bool
	eof      bool // read to its end
}

// finished reports whether the source was read to its end.
func (s *sourceReader) finished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eof
}

func (s *sourceReader) Read(p []byte) (int, error) {
	s.mu.Lock()
	left := s.left
	s.reading = true
	s.mu.Unlock()
	if int64(len(p)) > left+1 {
		p = p[:left+1]
	}
	n, err := s.rc.Read(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reading = false
	s.left -= int64(n)
	if s.left < 0 {
		s.tooLarge = true
		return 0, errFileTooLarge
	}
	if err == io.EOF {
		s.eof = true
	}
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func (s *sourceReader) state() (tooLarge, busy bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tooLarge, s.reading, s.err
}

// maxTrackedFiles bounds the failed-download counts kept in memory.
const maxTrackedFiles = 10000

// fileFailed counts a failed download of the file with key and returns the count.
func (a *Adapter) fileFailed(key string) int {
	a.filesMu.Lock()
	defer a.filesMu.Unlock()
	if len(a.fileFailures) >= maxTrackedFiles {
		clear(a.fileFailures)
	}
	a.fileFailures[key]++
	return a.fileFailures[key]
}

// fileDone forgets the failures of the file with key.
func (a *Adapter) fileDone(key string) {
	a.filesMu.Lock()
	delete(a.fileFailures, key)
	a.filesMu.Unlock()
}

// Edit implements bridge.Editor: the text parts of an agent message (m.Parts) get the new text.
// A longer text than before is cut to fit the parts; parts left over by a shorter text are
// deleted. Parts deleted on Discord meanwhile are skipped.
func (a *Adapter) Edit(ctx context.Context, m bridge.Outbound) error {
	if len(m.Parts) == 0 || !isSnowflake(m.Chat.ID) {
		return bridge.Permanent("nothing to edit", nil)
	}
	chunks := discordContent(m.Text, maxContentLen)
	for i, id := range m.Parts {
		if !isSnowflake(id) {
			continue
		}
		path := "/channels/" + m.Chat.ID + "/messages/" + id
		var err error
		switch {
		case i >= len(chunks) && i > 0:
			err = a.rest.do(ctx, "DELETE", path, nil, nil)
		case i >= len(chunks):
			continue // an empty text: keep the first part's files and buttons
		default:
			content := chunks[i]
			if i == len(m.Parts)-1 && len(chunks) > len(m.Parts) {
				content = textsplit.Truncate(strings.Join(chunks[i:], "\n"), maxContentLen, textsplit.UTF16)
			}
			err = a.rest.do(ctx, "PATCH", path, map[string]any{"content": content, "allowed_mentions": noMentions()}, nil)
		}
		if err != nil && !hasCode(err, codeUnknownMessage) {
			return classify(err)
		}
	}
	return nil
}

// Delete implements bridge.Deleter: every part of the agent message is deleted; parts already
// gone are fine.
func (a *Adapter) Delete(ctx context.Context, m bridge.Outbound) error {
	if !isSnowflake(m.Chat.ID) {
		return bridge.Permanent("not a discord chat", nil)
	}
	for _, id := range m.Parts {
		if !isSnowflake(id) {
			continue
		}
		err := a.rest.do(ctx, "DELETE", "/channels/"+m.Chat.ID+"/messages/"+id, nil, nil)
		if err != nil && !hasCode(err, codeUnknownMessage) {
			return classify(err)
		}
	}
	return nil
}

// OpenAttachment implements bridge.AttachmentOpener. For a user's file it re-reads the message
// for a fresh CDN link (Discord's links expire), then streams the file; stickers come from the
// CDN directly. The download carries no Authorization header: the CDN does not need the token.
func (a *Adapter) OpenAttachment(ctx context.Context, att bridge.Attachment) (io.ReadCloser, error) {
	kind, parts, ok := parseRef(att.Ref)
	if !ok {
		return nil, bridge.Permanent("not a discord attachment ref", nil)
	}
	var link string
	switch kind {
	case "attachment":
		var m discordgo.Message
		if err := a.rest.do(ctx, "GET", "/channels/"+parts[0]+"/messages/"+parts[1], nil, &m); err != nil {
			if hasCode(err, codeUnknownMessage) || hasCode(err, codeUnknownChannel) {
				return nil, bridge.Permanent("the user deleted the message with the file", err)
			}
			return nil, classify(err)
		}
		for _, f := range m.Attachments {
			if f != nil && f.ID == parts[2] {
				if int64(f.Size) > a.maxDownload {
					return nil, bridge.Permanent(fmt.Sprintf("%s (%s) is larger than the %s the bridge passes on",
						f.Filename, bridge.FormatSize(int64(f.Size)), bridge.FormatSize(a.maxDownload)), nil)
				}
				link = f.URL
			}
		}
		if link == "" {
			return nil, bridge.Permanent("the user removed the file from the message", nil)
		}
	case "sticker":
		link = a.cdnURL + "/stickers/" + parts[0] + "." + parts[1]
	}
	req, err := http.NewRequestWithContext(ctx, "GET", link, nil)
	if err != nil {
		return nil, bridge.Permanent("bad attachment link", err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download discord attachment: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		err := fmt.Errorf("download discord attachment: %s", resp.Status)
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden {
			return nil, bridge.Permanent("the file is gone from Discord", err)
		}
		return nil, err
	}
	if resp.ContentLength > a.maxDownload {
		resp.Body.Close()
		return nil, bridge.Permanent(fmt.Sprintf("the file (%s) is larger than the %s the bridge passes on",
			bridge.FormatSize(resp.ContentLength), bridge.FormatSize(a.maxDownload)), nil)
	}
	return &cappedBody{rc: resp.Body, left: a.maxDownload}, nil
}

// cappedBody fails a download that grows past the limit its declared size was checked against.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, bridge.Permanent("the file is larger than Discord declared it", nil)
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// typingRefresh is how often the core shows typing again while the agent types: Discord shows
// it for about 10 s per request.
const typingRefresh = 8 * time.Second

// TypingRefresh implements bridge.Typer.
func (a *Adapter) TypingRefresh() time.Duration { return typingRefresh }

// ShowTyping implements bridge.Typer: one typing request, which Discord shows for about 10 s.
func (a *Adapter) ShowTyping(ctx context.Context, chat bridge.ChatRef) error {
	if !isSnowflake(chat.ID) {
		return bridge.Permanent("not a discord chat", nil)
	}
	return classify(a.rest.do(ctx, "POST", "/channels/"+chat.ID+"/typing", nil, nil))
}

// GetMe returns the bot's username (GET /users/@me), which proves the token and the API URL;
// `bridge check` uses it.
// Check implements bridge.Checker: it asks Discord who the bot is.
func (a *Adapter) Check(ctx context.Context) (string, error) {
	me, err := a.GetMe(ctx)
	if err == nil {
		return "signed in as @" + me, nil
	}
	var apiErr *APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized:
		return "", bridge.Hint(err, "Discord rejected DISCORD_BOT_TOKEN: copy it again from the developer portal (your application → Bot → Reset Token)")
	case errors.As(err, &apiErr):
		return "", bridge.Hint(err, "Discord answered with an error: see the message")
	}
	return "", bridge.Hint(err, "cannot reach Discord's API (DISCORD_API_URL when set): check DNS, proxy and outbound HTTPS from the bridge")
}

// GetMe returns the bot's username.
func (a *Adapter) GetMe(ctx context.Context) (string, error) {
	var u struct {
		Username string `json:"username"`
	}
	if err := a.rest.do(ctx, "GET", "/users/@me", nil, &u); err != nil {
		return "", fmt.Errorf("get current user: %w", err)
	}
	return u.Username, nil
}
