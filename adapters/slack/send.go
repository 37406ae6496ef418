package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/onechat/onechat-bridge/adapters/retry"
	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// maxPartLen is the longest text of one posted message. chat.postMessage takes up to 40,000
// characters but recommends 4,000, and a section block holds 3,000: every part fits one.
const maxPartLen = 3000

// maxSpool is the largest agent file of unknown size the adapter spools to a temporary file
// to learn its size (files.getUploadURLExternal wants the exact length up front).
const maxSpool = 1 << 30

// choiceActionPrefix starts the action_id of the bridge's buttons.
const choiceActionPrefix = "onechat.choice."

// part is one Slack message an agent message becomes: a text (with buttons on the last one)
// or a file.
type part struct {
	text   string
	blocks []slackgo.Block
	file   *bridge.Attachment
}

// splitter cuts rendered mrkdwn at maxPartLen without breaking a <…> token (a link, a
// mention) or an entity.
var splitter = textsplit.Splitter{Unit: textsplit.Runes, Protect: protectTokens}

// protectTokens returns the byte ranges of <…> tokens and &…; entities in mrkdwn.
func protectTokens(s string) [][2]int {
	var out [][2]int
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '<':
			if j := strings.IndexByte(s[i:], '>'); j > 0 && !strings.ContainsAny(s[i+1:i+j], "<\n") {
				out = append(out, [2]int{i, i + j + 1})
				i += j
			}
		case '&':
			if j := strings.IndexByte(s[i:], ';'); j > 0 && j <= 6 {
				out = append(out, [2]int{i, i + j + 1})
				i += j
			}
		}
	}
	return out
}

// render turns an agent's Markdown into mrkdwn that pings nobody: the renderer escapes <!here>
// and friends and puts a word joiner into a plain @here.
func render(md string) string { return markdownToMrkdwn(md) }

// English stand-ins, the catalogue's, for the prompts Send takes from it in the user's language.
var (
	defaultCSATPrompt = texts.Builtin().Text(texts.Reference, texts.CSATPrompt, nil)
	defaultChoose     = texts.Builtin().Text(texts.Reference, texts.ChooseOption, nil)
)

// plan lays out the Slack messages of m: its text in parts, buttons on the last text part,
// then one message per file. The plan is the same on every attempt, so Parts can say how far
// an earlier attempt got.
func plan(m bridge.Outbound) []part {
	text := m.Text
	if len(m.Items) > 0 && m.ContentType != "input_select" && m.ContentType != "input_csat" {
		text = strings.TrimSpace(text + "\n\n" + itemsMarkdown(m.Items))
	}
	var parts []part
	for _, s := range splitter.Split(render(text), maxPartLen) {
		parts = append(parts, part{text: s})
	}
	if buttons := buttonsOf(m); len(buttons) > 0 {
		if len(parts) == 0 {
			// Send puts the prompt in the user's language first (localize); the catalogue's
			// English stands in for a message planned without it.
			fallback := defaultChoose
			if m.ContentType == "input_csat" {
				fallback = defaultCSATPrompt
			}
			parts = append(parts, part{text: fallback})
		}
		last := &parts[len(parts)-1]
		last.blocks = append([]slackgo.Block{slackgo.NewSectionBlock(slackgo.NewTextBlockObject(slackgo.MarkdownType, last.text, false, true), nil, nil)}, buttons...)
	}
	for i := range m.Attachments {
		parts = append(parts, part{file: &m.Attachments[i]})
	}
	return parts
}

// itemsMarkdown lists cards and articles as Markdown lines.
func itemsMarkdown(items []bridge.Item) string {
	var lines []string
	for _, it := range items {
		line := it.Title
		if it.Link != "" {
			line = "[" + it.Title + "](" + it.Link + ")"
		}
		if it.Description != "" {
			line += " — " + it.Description
		}
		lines = append(lines, "• "+line)
	}
	return strings.Join(lines, "\n")
}

// csatLabels are the buttons of a CSAT survey, 1 to 5.
var csatLabels = []string{"😞 1", "🙁 2", "😐 3", "🙂 4", "😀 5"}

// buttonsOf returns the actions blocks of an input_select (one button per option, at most 25
// per block and 5 blocks) or a CSAT survey.
func buttonsOf(m bridge.Outbound) []slackgo.Block {
	var els []slackgo.BlockElement
	switch m.ContentType {
	case "input_csat":
		for i, l := range csatLabels {
			v := strconv.Itoa(i + 1)
			els = append(els, slackgo.NewButtonBlockElement(choiceActionPrefix+v, v, slackgo.NewTextBlockObject(slackgo.PlainTextType, l, true, false)))
		}
	case "input_select":
		for i, it := range m.Items {
			title := it.Title
			if title == "" {
				title = it.Value
			}
			value := it.Value
			if value == "" {
				value = title
			}
			els = append(els, slackgo.NewButtonBlockElement(choiceActionPrefix+strconv.Itoa(i),
				textsplit.Truncate(value, 2000, textsplit.Runes),
				slackgo.NewTextBlockObject(slackgo.PlainTextType, textsplit.Truncate(title, 75, textsplit.Runes), true, false)))
		}
	}
	var blocks []slackgo.Block
	for i := 0; i < len(els) && len(blocks) < 5; i += 25 {
		blocks = append(blocks, slackgo.NewActionBlock(fmt.Sprintf("onechat.choices.%d", len(blocks)), els[i:min(i+25, len(els))]...))
	}
	return blocks
}

// choiceMade is the chat.update of a message whose button was pressed: the buttons give way
// to the choice.
func choiceMade(text, choice string) []slackgo.MsgOption {
	line := "✅ " + escapeMrkdwn(choice)
	return []slackgo.MsgOption{
		slackgo.MsgOptionText(strings.TrimSpace(text+"\n"+line), false),
		slackgo.MsgOptionBlocks(
			slackgo.NewSectionBlock(slackgo.NewTextBlockObject(slackgo.MarkdownType, textsplit.Truncate(text, maxPartLen, textsplit.Runes), false, true), nil, nil),
			slackgo.NewContextBlock("onechat.choice", slackgo.NewTextBlockObject(slackgo.MarkdownType, line, false, true)),
		),
	}
}

// escapeMrkdwn escapes plain text for mrkdwn, broadcast mentions defused.
func escapeMrkdwn(s string) string { return mrkdwnEscape(s) }

// Send delivers an agent message into its DM or ticket thread and returns the ts of every
// Slack message it created ("file:<id>" for a file, whose message ts Slack does not return).
// Text is rendered to mrkdwn and split at maxPartLen; nobody is ever pinged. A retry carrying
// m.Parts sends only the parts after those. A file Slack will not take is posted as a note
// instead and named to agents with bridge.Partial.
//
// Errors: 429 is bridge.RateLimited with Slack's Retry-After; not_in_channel,
// channel_not_found, is_archived, account_inactive and user_not_found are bridge.Unreachable;
// other refusals are bridge.Permanent; 5xx and network errors are retried.
func (a *Adapter) Send(ctx context.Context, m bridge.Outbound) ([]string, error) {
	ch, thread, ok := parseChat(m.Chat)
	if !ok {
		return nil, bridge.Permanent(fmt.Sprintf("not a slack chat: %s", m.Chat), nil)
	}
	say := a.voice(m.User)
	parts := plan(localize(ctx, m, say))
	if len(parts) == 0 {
		return nil, bridge.Permanent("message has nothing to send", nil)
	}
	var ids, leftOut []string
	for i := min(len(m.Parts), len(parts)); i < len(parts); i++ {
		id, note, err := a.sendPart(ctx, ch, thread, parts[i], say)
		if err != nil {
			return ids, classify(a.redact(err))
		}
		ids = append(ids, id)
		if note != "" {
			leftOut = append(leftOut, note)
		}
	}
	return ids, bridge.Partial(leftOut...)
}

// sendPart posts one part. A file that cannot go is posted as a note instead, returned in
// leftOut for agents too.
func (a *Adapter) sendPart(ctx context.Context, ch, thread string, p part, say sayFunc) (id, leftOut string, err error) {
	if p.file != nil {
		// The note is said to the user in their language, and to agents in theirs.
		var key texts.Key
		var vars texts.Vars
		id, note, err := a.upload(ctx, ch, thread, *p.file, func(ctx context.Context, k texts.Key, v texts.Vars) string {
			key, vars = k, v
			return say(ctx, k, v)
		})
		if err != nil || note == "" {
			return id, "", err
		}
		p, leftOut = part{text: escapeMrkdwn(note)}, a.host.Texts().Agent(key, vars)
	}
	if err := a.pacer.wait(ctx, ch); err != nil {
		return "", "", err
	}
	opts := []slackgo.MsgOption{slackgo.MsgOptionText(p.text, false),
		slackgo.MsgOptionDisableLinkUnfurl(), slackgo.MsgOptionDisableMediaUnfurl()}
	if thread != "" {
		opts = append(opts, slackgo.MsgOptionTS(thread))
	}
	if len(p.blocks) > 0 {
		opts = append(opts, slackgo.MsgOptionBlocks(p.blocks...))
	}
	_, ts, err := a.api.PostMessageContext(ctx, ch, opts...)
	if err != nil {
		return "", "", fmt.Errorf("chat.postMessage: %w", err)
	}
	return ts, leftOut, nil
}

// upload streams an agent's file into the chat. A file that cannot go (too large, refused by
// the workspace's settings) comes back as a note to post instead.
func (a *Adapter) upload(ctx context.Context, ch, thread string, att bridge.Attachment, say sayFunc) (id, note string, err error) {
	name := att.Name
	if name == "" {
		name = "file"
	}
	if att.Open == nil {
		return "", "", bridge.Permanent("attachment "+name+" cannot be opened", nil)
	}
	rc, err := att.Open(ctx)
	if err != nil {
		return "", "", fmt.Errorf("open attachment %s: %w", name, err)
	}
	defer rc.Close()
	var body io.Reader = rc
	size := att.Size
	if size <= 0 {
		// Slack wants the exact length before the bytes: spool to learn it.
		f, err := os.CreateTemp("", "onechat-slack-*")
		if err != nil {
			return "", "", fmt.Errorf("spool attachment: %w", err)
		}
		defer func() { f.Close(); os.Remove(f.Name()) }()
		n, err := io.Copy(f, io.LimitReader(rc, maxSpool+1))
		if err != nil {
			return "", "", fmt.Errorf("spool attachment %s: %w", name, err)
		}
		if n > maxSpool {
			return "", say(ctx, texts.FileTooLarge, texts.Vars{"name": name, "platform": "Slack"}), nil
		}
		if n == 0 {
			return "", say(ctx, texts.FileEmpty, texts.Vars{"name": name}), nil
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", "", fmt.Errorf("spool attachment: %w", err)
		}
		body, size = f, n
	}
	up, err := a.api.GetUploadURLExternalContext(ctx, slackgo.GetUploadURLExternalParameters{FileName: name, FileSize: int(size)})
	if err != nil {
		if hasCode(err, "file_upload_size_restricted") || hasCode(err, "file_uploads_disabled") ||
			hasCode(err, "file_type_not_allowed") || hasCode(err, "file_uploads_except_images_disabled") {
			return "", say(ctx, texts.FileRefused, texts.Vars{"name": name, "platform": "Slack"}), nil
		}
		return "", "", fmt.Errorf("files.getUploadURLExternal: %w", err)
	}
	a.uploaded.add(up.FileID) // before the share: its echo may come first
	if err := a.api.UploadToURL(ctx, slackgo.UploadToURLParameters{UploadURL: up.UploadURL, Reader: body, Filename: name}); err != nil {
		return "", "", fmt.Errorf("upload file: %w", err)
	}
	if err := a.pacer.wait(ctx, ch); err != nil {
		return "", "", err
	}
	if _, err := a.api.CompleteUploadExternalContext(ctx, slackgo.CompleteUploadExternalParameters{
		Files: []slackgo.FileSummary{{ID: up.FileID, Title: name}}, Channel: ch, ThreadTimestamp: thread,
	}); err != nil {
		return "", "", fmt.Errorf("files.completeUploadExternal: %w", err)
	}
	return "file:" + up.FileID, "", nil
}

// Edit implements bridge.Editor: the text parts of an agent message (m.Parts) get the new
// text; leftover parts of a shorter text are deleted, a longer text is cut to fit. Files and
// parts deleted on Slack meanwhile are left alone.
func (a *Adapter) Edit(ctx context.Context, m bridge.Outbound) error {
	ch, _, ok := parseChat(m.Chat)
	if !ok || len(m.Parts) == 0 {
		return bridge.Permanent("nothing to edit", nil)
	}
	var textIDs []string
	for _, id := range m.Parts {
		if isTS(id) {
			textIDs = append(textIDs, id)
		}
	}
	chunks := splitter.Split(render(m.Text), maxPartLen)
	for i, ts := range textIDs {
		var err error
		switch {
		case i >= len(chunks) && i > 0:
			_, _, err = a.api.DeleteMessageContext(ctx, ch, ts)
		case i >= len(chunks):
			continue
		default:
			text := chunks[i]
			if i == len(textIDs)-1 && len(chunks) > len(textIDs) {
				text = textsplit.Truncate(strings.Join(chunks[i:], "\n"), maxPartLen, textsplit.Runes)
			}
			_, _, _, err = a.api.UpdateMessageContext(ctx, ch, ts, slackgo.MsgOptionText(text, false))
		}
		if err != nil && !hasCode(err, "message_not_found") {
			return classify(a.redact(err))
		}
	}
	return nil
}

// Delete implements bridge.Deleter: every part of the agent message is deleted; parts already
// gone are fine.
func (a *Adapter) Delete(ctx context.Context, m bridge.Outbound) error {
	ch, _, ok := parseChat(m.Chat)
	if !ok {
		return bridge.Permanent("not a slack chat", nil)
	}
	for _, id := range m.Parts {
		var err error
		switch {
		case strings.HasPrefix(id, "file:"):
			err = a.api.DeleteFileContext(ctx, strings.TrimPrefix(id, "file:"))
			if hasCode(err, "file_not_found") || hasCode(err, "file_deleted") {
				err = nil
			}
		case isTS(id):
			_, _, err = a.api.DeleteMessageContext(ctx, ch, id)
		}
		if err != nil && !hasCode(err, "message_not_found") {
			return classify(a.redact(err))
		}
	}
	return nil
}

// hasCode says whether err is Slack's ok:false answer with this error code.
func hasCode(err error, code string) bool {
	var se slackgo.SlackErrorResponse
	return err != nil && errors.As(err, &se) && se.Err == code
}

// unreachable are the errors that mean the person cannot be reached in this chat any more,
// with what the agent is told.
var unreachable = map[string]string{
	"not_in_channel":    "the bot is not in the Slack channel any more (invite it back with /invite)",
	"channel_not_found": "the Slack conversation no longer exists or the bot cannot see it",
	"is_archived":       "the Slack channel is archived",
	"account_inactive":  "the Slack account or workspace is deactivated",
	"user_not_found":    "the Slack user no longer exists",
	"user_disabled":     "the Slack user is deactivated",
}

// classify sorts a Slack error for the queue: rate limits, unreachable users, permanent
// refusals, and the rest (5xx, network, Slack's internal_error), which is retried.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var perm *bridge.PermanentError
	var limited *bridge.RateLimitedError
	if errors.As(err, &perm) || errors.As(err, &limited) {
		return err
	}
	var rl *slackgo.RateLimitedError
	if errors.As(err, &rl) {
		return bridge.RateLimited(max(rl.RetryAfter, time.Second), err)
	}
	var sc slackgo.StatusCodeError
	if errors.As(err, &sc) {
		if sc.Code == http.StatusTooManyRequests {
			return bridge.RateLimited(30*time.Second, err)
		}
		if sc.Code >= 500 {
			return err
		}
		return bridge.Permanent(fmt.Sprintf("slack answered HTTP %d", sc.Code), err)
	}
	var se slackgo.SlackErrorResponse
	if errors.As(err, &se) {
		if reason, ok := unreachable[se.Err]; ok {
			return bridge.Unreachable(reason, err)
		}
		switch se.Err {
		case "ratelimited", "rate_limited":
			return bridge.RateLimited(time.Minute, err)
		case "internal_error", "fatal_error", "request_timeout", "service_unavailable":
			return err
		}
		return bridge.Permanent("slack refused: "+se.Err, err)
	}
	return err
}

// postInterval is the pacer's spacing of posts per channel: Slack allows about one message
// per second per channel, and a tenth more keeps clear of its edge despite network jitter.
const postInterval = 1100 * time.Millisecond

// pacer keeps chat.postMessage to about one message per interval per channel, with short
// bursts, so Slack rarely has to refuse one: Send waits its turn instead.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration
	burst    int
	next     map[string]time.Time
}

func newPacer(interval time.Duration, burst int) *pacer {
	return &pacer{interval: interval, burst: max(burst, 1), next: map[string]time.Time{}}
}

// wait blocks until ch may take another message, or ctx ends.
func (p *pacer) wait(ctx context.Context, ch string) error {
	p.mu.Lock()
	now := time.Now()
	slot := p.next[ch]
	if floor := now.Add(-time.Duration(p.burst-1) * p.interval); slot.Before(floor) {
		slot = floor
	}
	p.next[ch] = slot.Add(p.interval)
	if len(p.next) > 10000 {
		for k, t := range p.next {
			if t.Before(now) {
				delete(p.next, k)
			}
		}
	}
	p.mu.Unlock()
	return retry.Sleep(ctx, time.Until(slot))
}

// sayFunc returns one of the bridge's own texts for the user a message goes to, in their
// language.
type sayFunc func(ctx context.Context, k texts.Key, vars texts.Vars) string

// voice returns the sayFunc for u: the language the core remembers for u is read the first
// time a text is needed (most agent messages need none). It serves one goroutine.
func (a *Adapter) voice(u bridge.UserRef) sayFunc {
	var lang string
	known := false
	return func(ctx context.Context, k texts.Key, vars texts.Vars) string {
		if !known {
			lang, known = a.host.UserLanguage(ctx, u), true
		}
		return a.host.Texts().Text(lang, k, vars)
	}
}

// localize gives a survey or a choice the agent sent without a text the catalogue's prompt in
// the user's language, to stand above its buttons.
func localize(ctx context.Context, m bridge.Outbound, say sayFunc) bridge.Outbound {
	if strings.TrimSpace(m.Text) != "" || len(buttonsOf(m)) == 0 {
		return m
	}
	if m.ContentType == "input_csat" {
		m.Text = say(ctx, texts.CSATPrompt, nil)
	} else {
		m.Text = say(ctx, texts.ChooseOption, nil)
	}
	return m
}
