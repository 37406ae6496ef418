package discord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
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
	ids, err := a.sendTo(ctx, m.Chat.ID, m)
	if err == nil || len(ids) > 0 || !hasCode(err, codeCannotSendToUser) || a.support == "" || !isSnowflake(m.User.ID) {
		return ids, classify(err)
	}
	thread, terr := a.ensureTicket(ctx, a.host, m.User.ID, "")
	if terr != nil {
		return nil, fmt.Errorf("open a support thread for a user whose DMs are closed: %w", classify(terr))
	}
	a.log.Info("user's DMs are closed, answering in their support thread",
		zap.String("user_id", m.User.ID), zap.String("thread_id", thread))
	if err := a.host.MoveChat(ctx, m.User, bridge.ChatRef{Platform: Platform, ID: thread}); err != nil {
		return nil, fmt.Errorf("move chat to the support thread: %w", err)
	}
	m.Chat.ID, m.ReplyTo = thread, "" // the replied-to message is in the DM, not the thread
	ids, err = a.sendTo(ctx, thread, m)
	return ids, classify(err)
}

// sendTo posts the planned messages of m into channel.
func (a *Adapter) sendTo(ctx context.Context, channel string, m bridge.Outbound) ([]string, error) {
	plan := planOutbound(m)
	if len(plan) == 0 {
		return nil, bridge.Permanent("message has nothing to send", nil)
	}
	// A retry of a message an earlier attempt delivered in part sends only the rest.
	done := min(len(m.Parts), len(plan))
	var ids []string
	for i, p := range plan {
		if i < done {
			continue
		}
		files, notes, err := a.readFiles(ctx, p.files)
		if err != nil {
			return ids, err
		}
		if len(notes) > 0 {
			extra := strings.Join(notes, "\n")
			if p.payload.Content != "" {
				extra = "\n" + extra
			}
			p.payload.Content = textsplit.Truncate(p.payload.Content+extra, maxContentLen, textsplit.UTF16)
		}
		for j := range files {
			p.payload.Attachments = append(p.payload.Attachments, attachmentMeta{ID: j, Filename: files[j].Name})
		}
		if m.MessageID > 0 {
			// A retry of this message (after a crash or a lost answer, within Discord's few
			// minutes) gets the part already sent back instead of posting it twice.
			p.payload.Nonce, p.payload.EnforceNonce = partNonce(m.MessageID, i), true
		}
		var created discordgo.Message
		path := "/channels/" + channel + "/messages"
		for try := 0; ; try++ {
			if len(files) > 0 {
				err = a.rest.doFiles(ctx, "POST", path, p.payload, files, &created)
			} else {
				err = a.rest.do(ctx, "POST", path, p.payload, &created)
			}
			var apiErr *APIError
			if i == done || try >= 3 || !errors.As(err, &apiErr) || apiErr.Status != http.StatusTooManyRequests || apiErr.RetryAfter > maxContinuationWait {
				break
			}
			if werr := a.wait(ctx, apiErr.RetryAfter); werr != nil {
				return ids, werr
			}
		}
		if err != nil {
			return ids, err
		}
		ids = append(ids, created.ID)
	}
	return ids, nil
}

// partNonce is the nonce of part i of the OneChat message id: "oc", the id, "." and the part
// (at most 2+19+1+3 = 25 characters, Discord's limit, for any int64 id and up to 999 parts).
func partNonce(id int64, i int) string {
	return "oc" + strconv.FormatInt(id, 10) + "." + strconv.Itoa(i)
}

// readFiles reads the agent's files for an upload (Discord takes a multipart body). A file over
// the upload limit is not sent; a note naming it goes into the text instead, so the user knows
// something is missing.
func (a *Adapter) readFiles(ctx context.Context, atts []bridge.Attachment) ([]uploadFile, []string, error) {
	var files []uploadFile
	var notes []string
	for _, att := range atts {
		name := att.Name
		if name == "" {
			name = "file"
		}
		if att.Size > a.maxUpload {
			notes = append(notes, fmt.Sprintf("📎 %s is too large to send on Discord", name))
			continue
		}
		if att.Open == nil {
			return nil, nil, bridge.Permanent("attachment "+name+" cannot be opened", nil)
		}
		rc, err := att.Open(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("open attachment %s: %w", name, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, a.maxUpload+1))
		rc.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("read attachment %s: %w", name, err)
		}
		if int64(len(data)) > a.maxUpload {
			notes = append(notes, fmt.Sprintf("📎 %s is too large to send on Discord", name))
			continue
		}
		files = append(files, uploadFile{Name: name, MIME: att.MIME, Data: data})
	}
	return files, notes, nil
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
	return resp.Body, nil
}

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
