package telegram

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
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

// Run long-polls getUpdates until ctx is cancelled. Each batch goes to in.Deliver together with
// the cursor that moves past it, even when no update in it is for the core, and only after
// Deliver succeeded does Run poll with the new offset, which is what confirms the batch to
// Telegram. A failing Deliver is retried with backoff until it succeeds; nothing is skipped.
//
// Poll failures back off exponentially with jitter; a 429 waits retry_after; a 409 (another
// poller or a webhook on this token) is logged and backed off. Run returns an error only when
// Telegram rejects the token (401) or does not know the bot (404), which no retry can fix.
// It returns nil when ctx is cancelled; it starts no goroutines of its own.
func (a *Adapter) Run(ctx context.Context, in bridge.Inbox) error {
	offset, err := a.loadOffset(ctx, in)
	if err != nil {
		return nil // ctx cancelled
	}
	a.log.Info("telegram poller started", zap.Int64("offset", offset),
		zap.Duration("poll_timeout", a.pollTimeout))
	loggedChats := make(map[int64]struct{})
	failures := 0
	for {
		raw, err := a.getUpdates(ctx, offset)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			d, fatal := a.pollFailure(err, failures)
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
		if len(raw) == 0 {
			continue
		}
		msgs, next := a.convertBatch(raw, offset, loggedChats)
		if next == offset {
			// Not one update_id in a non-empty batch: polling again would return the same.
			a.log.Error("telegram getUpdates returned updates without update_id",
				zap.Int("count", len(raw)))
			if a.wait(ctx, a.backoff.duration(failures)) != nil {
				return nil
			}
			failures++
			continue
		}
		if err := a.deliver(ctx, in, bridge.Cursor{Name: OffsetCursor, Position: next}, msgs); err != nil {
			return nil // ctx cancelled; the batch is polled again after a restart
		}
		offset = next
	}
}

// loadOffset reads the stored offset, retrying while the store fails. It only fails when ctx
// is done.
func (a *Adapter) loadOffset(ctx context.Context, in bridge.Inbox) (int64, error) {
	for attempt := 0; ; attempt++ {
		offset, err := in.Cursor(ctx, OffsetCursor)
		if err == nil {
			return offset, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		d := a.backoff.duration(attempt)
		a.log.Warn("read telegram update offset failed, retrying", zap.Error(err),
			zap.Int("attempt", attempt+1), zap.Duration("sleep", d))
		if err := a.wait(ctx, d); err != nil {
			return 0, err
		}
	}
}

// getUpdates long-polls once and returns the updates undecoded, so that one update the models
// cannot decode does not block the whole batch forever.
func (a *Adapter) getUpdates(ctx context.Context, offset int64) ([]json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, a.pollTimeout+httpSlack)
	defer cancel()
	p := getUpdatesParams{
		Offset:         offset,
		Limit:          pollLimit,
		Timeout:        int(a.pollTimeout.Seconds()),
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
	d := a.backoff.duration(failures)
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

// convertBatch converts a batch of updates and returns the messages for the core together with
// the offset that confirms the whole batch: the highest update id plus one, and never less
// than offset, so the cursor only moves forward. Skipped updates are logged here, because
// conversion itself is pure.
func (a *Adapter) convertBatch(raw []json.RawMessage, offset int64, loggedChats map[int64]struct{}) ([]bridge.Inbound, int64) {
	next := offset
	var msgs []bridge.Inbound
	for _, r := range raw {
		var head struct {
			ID *int64 `json:"update_id"`
		}
		if err := json.Unmarshal(r, &head); err != nil || head.ID == nil {
			continue
		}
		next = max(next, *head.ID+1)
		log := a.log.With(zap.Int64("update_id", *head.ID))
		var u models.Update
		if err := json.Unmarshal(r, &u); err != nil {
			log.Warn("skipping telegram update that cannot be decoded", zap.Error(err))
			continue
		}
		in, skip := toInbound(&u)
		switch skip {
		case skipNone:
			msgs = append(msgs, in)
		case skipNotPrivate:
			chat := updateChat(&u)
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
	return msgs, next
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
func (a *Adapter) deliver(ctx context.Context, in bridge.Inbox, cur bridge.Cursor, msgs []bridge.Inbound) error {
	for attempt := 0; ; attempt++ {
		err := in.Deliver(ctx, cur, msgs...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := a.backoff.duration(attempt)
		a.log.Warn("deliver telegram updates failed, retrying", zap.Error(err),
			zap.Int("messages", len(msgs)), zap.Int64("offset", cur.Position),
			zap.Int("attempt", attempt+1), zap.Duration("sleep", d))
		if err := a.wait(ctx, d); err != nil {
			return err
		}
	}
}
