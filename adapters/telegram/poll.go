package telegram

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-telegram/bot/models"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
)

// OffsetCursor is the name of the cursor that stores the next getUpdates offset: the highest
// update id the core has stored, plus one.
const OffsetCursor = "telegram.update_offset"

// allowedUpdates is sent with every getUpdates. It is explicit because Telegram otherwise keeps
// whatever the previous caller subscribed to.
var allowedUpdates = []string{"message", "edited_message", "callback_query"}

// pollLimit is the most updates one getUpdates returns (Telegram's maximum).
const pollLimit = 100

// maxLoggedChats bounds the set of group chats already reported as skipped.
const maxLoggedChats = 10000

type getUpdatesParams struct {
	Offset         int64    `json:"offset,omitempty"`
	Limit          int      `json:"limit"`
	Timeout        int      `json:"timeout"`
	AllowedUpdates []string `json:"allowed_updates"`
}

// Run receives updates until ctx is cancelled: by long polling (the default) or, in webhook
// mode, on the adapter's own HTTP server. It returns only after everything it started has
// stopped: nil when ctx was cancelled, an error when Telegram rejects the token or the webhook
// cannot listen.
func (a *Adapter) Run(ctx context.Context) error {
	return a.withFollowUps(ctx, func(ctx context.Context) error {
		if a.mode == ModeWebhook {
			return a.runWebhook(ctx, a.host)
		}
		return a.poll(ctx, a.host)
	})
}

// poll long-polls getUpdates until ctx is cancelled. Each batch goes to in.Deliver together
// with the cursor that moves past it, even when no update in it is for the core, and only
// after Deliver succeeded does poll ask with the new offset, which is what confirms the batch
// to Telegram. A failing Deliver is retried with backoff until it succeeds; nothing is skipped.
//
// Albums arrive as one update per file. When a batch holds one, the updates before it are
// delivered, then poll waits the album window and asks again without confirming the album:
// once a poll shows no new part of it, the album goes to the core as one message. So an album
// is never confirmed before it is stored, and a restart meanwhile just collects it again.
//
// Poll failures back off exponentially with jitter; a 429 waits retry_after; a 409 (another
// poller or a webhook on this token) is logged and backed off. poll returns an error only
// when Telegram rejects the token (401) or does not know the bot (404), which no retry can fix.
func (a *Adapter) poll(ctx context.Context, in bridge.Host) error {
	offset, err := a.loadOffset(ctx, in)
	if err != nil {
		return nil // ctx cancelled
	}
	a.log.Info("telegram poller started", zap.Int64("offset", offset),
		zap.Duration("poll_timeout", a.pollTimeout))
	loggedChats := make(map[int64]struct{})
	failures := 0
	var settling map[string][]int64 // album parts seen by the previous poll, after a window
	timeout := a.pollTimeout
	for {
		// A long poll that Telegram accepted means the bot is receiving, so the adapter is
		// ready without waiting up to the poll timeout for it to return. After failures it
		// becomes ready again only when a poll returns, so a failing Telegram does not flap.
		var accepted func()
		if failures == 0 {
			accepted = func() { a.health.set(nil) }
		}
		raw, err := a.getUpdates(ctx, offset, timeout, accepted)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && isWebhookConflict(err) && failures == 0 {
			// Switching back from webhook mode: the webhook is still set.
			failures++
			a.dropWebhook(ctx)
			continue
		}
		if err != nil {
			d, fatal := a.pollFailure(err, failures)
			a.health.set(fmt.Errorf("telegram: getUpdates failing: %w", err))
			if fatal != nil {
				return fatal
			}
			failures++
			if a.wait(ctx, d) != nil {
				return nil
			}
			continue
		}
		failures = 0
		a.health.set(nil)
		if len(raw) == 0 {
			settling, timeout = nil, a.pollTimeout
			continue
		}
		batch, next := a.decodeBatch(raw, offset)
		if next == offset {
			// Not one update_id in a non-empty batch: polling again would return the same.
			a.log.Error("telegram getUpdates returned updates without update_id",
				zap.Int("count", len(raw)))
			if a.wait(ctx, a.backoff.Delay(failures)) != nil {
				return nil
			}
			failures++
			continue
		}
		groups := albumParts(batch)
		cut := len(batch)
		for i, d := range batch {
			if g := albumOf(d.update); g != "" && !slices.Equal(groups[g], settling[g]) {
				cut = i
				break
			}
		}
		if cut > 0 || len(batch) == 0 {
			cur := next
			if cut < len(batch) {
				cur = batch[cut].id
			}
			msgs, follow := a.convertBatch(batch[:cut], loggedChats)
			if err := a.deliver(ctx, in, bridge.IntCursor(OffsetCursor, cur), msgs); err != nil {
				return nil // ctx cancelled; the batch is polled again after a restart
			}
			a.offerFollowUps(follow)
			offset = cur
		}
		if cut == len(batch) {
			settling, timeout = nil, a.pollTimeout
			continue
		}
		// An album is still arriving: wait for its other parts, then look again at once.
		settling, timeout = groups, 0
		if a.wait(ctx, a.albumWindow) != nil {
			return nil
		}
	}
}

// isWebhookConflict reports whether getUpdates failed because a webhook is set.
func isWebhookConflict(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Code == http.StatusConflict && strings.Contains(apiErr.Description, "webhook")
}

// dropWebhook removes a webhook left from webhook mode, since getUpdates fails while one is
// set. Pending updates are kept: the poller receives them next. A failure is only logged:
// getUpdates then reports the conflict again, with backoff.
func (a *Adapter) dropWebhook(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := a.call(ctx, "deleteWebhook", map[string]bool{"drop_pending_updates": false}, nil); err != nil {
		a.log.Warn("telegram deleteWebhook failed; polling cannot start while the webhook is set", zap.Error(err))
		return
	}
	a.log.Info("removed the telegram webhook to switch to polling")
}

// loadOffset reads the stored offset, retrying while the store fails. It only fails when ctx
// is done.
func (a *Adapter) loadOffset(ctx context.Context, in bridge.Host) (int64, error) {
	for attempt := 0; ; attempt++ {
		offset, err := in.Cursor(ctx, OffsetCursor)
		if err == nil {
			return bridge.ParsePosition(offset), nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		d := a.backoff.Delay(attempt)
		a.log.Warn("read telegram update offset failed, retrying", zap.Error(err),
			zap.Int("attempt", attempt+1), zap.Duration("sleep", d))
		if err := a.wait(ctx, d); err != nil {
			return 0, err
		}
	}
}

// getUpdates long-polls once and returns the updates undecoded, so that one update the models
// cannot decode does not block the whole batch forever. accepted, when not nil, is called once
// the request was written whole to the connection and before getUpdates returns: Telegram
// holds a long poll it accepted until an update arrives or the timeout passes, and answers a
// refused one at once, which the caller then sees as the error.
func (a *Adapter) getUpdates(ctx context.Context, offset int64, timeout time.Duration, accepted func()) ([]json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+httpSlack)
	defer cancel()
	if accepted != nil {
		var (
			mu       sync.Mutex
			returned bool
		)
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(info httptrace.WroteRequestInfo) {
				mu.Lock()
				defer mu.Unlock()
				if info.Err == nil && !returned {
					accepted()
				}
			},
		})
		defer func() {
			mu.Lock()
			returned = true
			mu.Unlock()
		}()
	}
	p := getUpdatesParams{
		Offset:         offset,
		Limit:          pollLimit,
		Timeout:        int(timeout.Seconds()),
		AllowedUpdates: allowedUpdates,
	}
	var raw []json.RawMessage
	if err := a.call(ctx, "getUpdates", &p, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// pollFailure decides what a failed getUpdates means: how long to wait, or the error Run
// returns because no retry can help.
func (a *Adapter) pollFailure(err error, failures int) (wait time.Duration, fatal error) {
	d := a.backoff.Delay(failures)
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		a.log.Warn("telegram getUpdates failed, retrying", zap.Error(err),
			zap.Int("attempt", failures+1), zap.Duration("sleep", d))
		return d, nil
	}
	switch apiErr.Code {
	case http.StatusUnauthorized:
		return 0, fmt.Errorf("telegram: TELEGRAM_BOT_TOKEN rejected: %w", err)
	case http.StatusNotFound:
		return 0, fmt.Errorf("telegram: bot not found, check TELEGRAM_BOT_TOKEN and the API URL: %w", err)
	case http.StatusTooManyRequests:
		if apiErr.RetryAfter > 0 {
			d = apiErr.RetryAfter
		}
		a.log.Warn("telegram getUpdates rate limited", zap.Duration("retry_after", d))
		return d, nil
	case http.StatusConflict:
		a.log.Error("telegram getUpdates conflict: another bridge instance is polling with this "+
			"bot token or a webhook is set; only one poller per token can run",
			zap.String("description", apiErr.Description),
			zap.Int("attempt", failures+1), zap.Duration("sleep", d))
		return d, nil
	default:
		a.log.Warn("telegram getUpdates failed, retrying", zap.Error(err),
			zap.Int("attempt", failures+1), zap.Duration("sleep", d))
		return d, nil
	}
}

// decoded is one update of a batch; update is nil when it could not be decoded.
type decoded struct {
	id     int64
	update *models.Update
}

// decodeBatch decodes a batch and returns the offset that confirms all of it: the highest
// update id plus one, and never less than offset, so the cursor only moves forward.
func (a *Adapter) decodeBatch(raw []json.RawMessage, offset int64) ([]decoded, int64) {
	next := offset
	var out []decoded
	for _, r := range raw {
		// One pass reads the update and tells whether it has an id at all (the outer field
		// shadows models.Update's). A decode that failed may have stopped before the id: only
		// then is the id read on its own, so that the bad update is still confirmed.
		var w struct {
			ID *int64 `json:"update_id"`
			models.Update
		}
		err := json.Unmarshal(r, &w)
		if err != nil && w.ID == nil {
			var head struct {
				ID *int64 `json:"update_id"`
			}
			if json.Unmarshal(r, &head) == nil {
				w.ID = head.ID
			}
		}
		if w.ID == nil {
			continue
		}
		next = max(next, *w.ID+1)
		d := decoded{id: *w.ID}
		if err != nil {
			a.log.Warn("skipping telegram update that cannot be decoded", zap.Int64("update_id", d.id), zap.Error(err))
		} else {
			u := w.Update
			u.ID = d.id
			d.update = &u
		}
		out = append(out, d)
	}
	return out, next
}

// albumOf is the key of the album a private message belongs to, or "": its chat and media
// group together, since the group id alone is not trusted to be unique across chats, and two
// users' files must never end up in one message.
func albumOf(u *models.Update) string {
	if u == nil || u.Message == nil || u.Message.Chat.Type != models.ChatTypePrivate || u.Message.MediaGroupID == "" {
		return ""
	}
	return strconv.FormatInt(u.Message.Chat.ID, 10) + "/" + u.Message.MediaGroupID
}

// albumParts lists the update ids of each album in the batch.
func albumParts(batch []decoded) map[string][]int64 {
	groups := map[string][]int64{}
	for _, d := range batch {
		if g := albumOf(d.update); g != "" {
			groups[g] = append(groups[g], d.id)
		}
	}
	return groups
}

// followUp is what the adapter does after a batch is stored: greet a user who sent /start,
// answer a button press.
type followUp struct {
	greetChat int64
	greetLang string // the language_code of the user who sent /start
	callback  *models.CallbackQuery
	choice    *bridge.Choice
}

// convertBatch converts decoded updates to the messages for the core, merging the parts of an
// album into its first message, and collects the follow-ups. Skipped updates are logged here,
// because conversion itself is pure.
func (a *Adapter) convertBatch(batch []decoded, loggedChats map[int64]struct{}) ([]bridge.Inbound, []followUp) {
	var (
		msgs   []bridge.Inbound
		follow []followUp
	)
	albums := map[string]int{}
	for _, d := range batch {
		if d.update == nil {
			continue
		}
		u := d.update
		log := a.log.With(zap.Int64("update_id", d.id))
		in, skip := a.conv.toInbound(u)
		if u.CallbackQuery != nil {
			follow = append(follow, followUp{callback: u.CallbackQuery, choice: in.Choice})
		}
		switch skip {
		case skipNone:
			if g := albumOf(u); g != "" {
				if i, ok := albums[g]; ok {
					mergeAlbum(&msgs[i], in)
					continue
				}
				albums[g] = len(msgs)
			}
			msgs = append(msgs, in)
		case skipStart:
			log.Debug("telegram user started the bot", zap.Int64("chat_id", u.Message.Chat.ID))
			f := followUp{greetChat: u.Message.Chat.ID}
			if u.Message.From != nil {
				f.greetLang = u.Message.From.LanguageCode
			}
			follow = append(follow, f)
		case skipNotPrivate:
			chat := updateChat(u)
			if chat == nil {
				log.Debug("skipping telegram update", zap.Stringer("reason", skip))
				break
			}
			if _, seen := loggedChats[chat.ID]; seen {
				break
			}
			if len(loggedChats) >= maxLoggedChats {
				clear(loggedChats)
			}
			loggedChats[chat.ID] = struct{}{}
			log.Info("ignoring telegram messages from a chat that is not private; the bridge serves private chats only",
				zap.Int64("chat_id", chat.ID), zap.String("chat_type", string(chat.Type)))
		default:
			log.Debug("skipping telegram update", zap.Stringer("reason", skip))
		}
	}
	return msgs, follow
}

// mergeAlbum adds a later part of an album to the message of its first part.
func mergeAlbum(first *bridge.Inbound, part bridge.Inbound) {
	first.Attachments = append(first.Attachments, part.Attachments...)
	first.Notes = append(first.Notes, part.Notes...)
	if part.Text != "" && part.Text != first.Text {
		if first.Text != "" {
			first.Text += "\n\n"
		}
		first.Text += part.Text
	}
}

// answerCallback stops the button's loading animation, which Telegram keeps spinning until
// the bot answers, and removes the keyboard once a choice is stored, so it is not sent twice.
func (a *Adapter) answerCallback(ctx context.Context, q *models.CallbackQuery, choice *bridge.Choice) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	p := map[string]any{"callback_query_id": q.ID}
	if choice != nil {
		p["text"] = "✓ " + choice.Title
	}
	if err := a.call(ctx, "answerCallbackQuery", p, nil); err != nil && ctx.Err() == nil {
		a.log.Warn("telegram answerCallbackQuery failed", zap.Error(err))
	}
	if choice == nil || q.Message.Message == nil {
		return
	}
	m := q.Message.Message
	rm := map[string]any{"chat_id": m.Chat.ID, "message_id": m.ID,
		"reply_markup": map[string]any{"inline_keyboard": [][]any{}}}
	if err := a.call(ctx, "editMessageReplyMarkup", rm, nil); err != nil && ctx.Err() == nil {
		a.log.Debug("removing the telegram keyboard failed", zap.Error(err))
	}
}

// updateChat is the chat an update happened in, if it has one.
func updateChat(u *models.Update) *models.Chat {
	for _, m := range []*models.Message{u.Message, u.EditedMessage, u.ChannelPost, u.EditedChannelPost} {
		if m != nil {
			return &m.Chat
		}
	}
	return nil
}

// deliver hands a batch to the core, retrying with backoff until it succeeds. It only fails
// when ctx is done.
func (a *Adapter) deliver(ctx context.Context, in bridge.Host, cur bridge.Cursor, msgs []bridge.Inbound) error {
	for attempt := 0; ; attempt++ {
		err := in.Deliver(ctx, cur, msgs...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := a.backoff.Delay(attempt)
		a.log.Warn("deliver telegram updates failed, retrying", zap.Error(err),
			zap.Int("messages", len(msgs)), zap.String("offset", cur.Position),
			zap.Int("attempt", attempt+1), zap.Duration("sleep", d))
		if err := a.wait(ctx, d); err != nil {
			return err
		}
	}
}
