package slack

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
)

// Catch-up reads what was written while the bridge was away. Slack redelivers events only
// while its retries last (about five minutes) and only for a socket that comes back, so on
// every (re)connect the adapter reads, for each served channel with a stored cursor, the
// top-level messages after it (conversations.history), and for each recent ticket thread the
// replies after its cursor (conversations.replies). Until a unit (a channel or a thread) is
// read up to date, its live messages are left unacknowledged (Slack sends them again, and by
// then the catch-up has stored them, so the redelivery is a no-op): a live message can never
// move a cursor past older messages the catch-up has not read, and messages arrive once and
// in order.
//
// Reads are Slack's scarcest budget (Tier 1 for apps outside the Marketplace: one call a
// minute, 15 messages a page), so the catch-up pages with the stored cursors, waits out every
// 429 as told, and reads only threads active within ticketWindow.

// catchUpPage is the page size of history and replies reads (Tier 1's maximum).
const catchUpPage = 15

// ticketWindow is how long after its last message a ticket thread is still read on catch-up.
const ticketWindow = 14 * 24 * time.Hour

// catchUpAttempts bounds the retries of one unit's read on transient failures; after them
// the unit's live messages flow again and the next reconnect tries again.
const catchUpAttempts = 6

// catchUpUnit is one channel or thread to read.
type catchUpUnit struct {
	key             string
	channel, thread string
	// from is the ts of a message whose live delivery failed: a channel without a cursor
	// is read from it (inclusive).
	from string
}

// retryLater hands the unit of a message whose Deliver failed to the catch-up goroutine: the
// unit's live messages wait (unacknowledged) until the catch-up has read and stored the failed
// one and those after it, so a failed store never lets a later message overtake it.
func (a *Adapter) retryLater(r route, channel, thread, ts string) {
	u := catchUpUnit{key: r.unit, channel: channel, thread: thread, from: ts}
	a.unitsMu.Lock()
	if st, ok := a.pending[u.key]; ok {
		st.dirty = true
	} else {
		a.pending[u.key] = &unitState{dirty: true}
	}
	a.extra = append(a.extra, u)
	a.unitsMu.Unlock()
	select {
	case a.retryKick <- struct{}{}:
	default:
	}
}

// startCatchUp is called by the events loop on every hello. It lists what to read (a few
// quick reads of the store) before the loop handles the next envelope, so live messages of
// those units wait from now on; when the store cannot answer, every live message waits until
// the catch-up goroutine could list them.
func (a *Adapter) startCatchUp(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, deliverTimeout)
	units, err := a.listUnits(lctx)
	cancel()
	if err != nil {
		a.log.Warn("cannot list the slack chats to catch up", zap.Error(err))
		units = nil
	}
	a.markPending(units, err != nil)
	select {
	case <-a.catchUpKick: // a pass not started yet: this one replaces it
	default:
	}
	a.catchUpKick <- catchUpPass{units: units, list: err != nil}
}

// catchUpPass is the work of one catch-up: the units to read, or list set when they still
// have to be listed.
type catchUpPass struct {
	units []catchUpUnit
	list  bool
}

// markPending makes units the pending ones; all holds every live message instead.
func (a *Adapter) markPending(units []catchUpUnit, all bool) {
	a.unitsMu.Lock()
	defer a.unitsMu.Unlock()
	a.catchAll = all
	a.pending = map[string]*unitState{}
	for _, u := range append(units, a.extra...) {
		a.pending[u.key] = &unitState{dirty: true}
	}
}

func (a *Adapter) catchUpLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-a.catchUpKick:
			for restart := true; restart; {
				p, restart = a.catchUp(ctx, p)
			}
		case <-a.retryKick:
			a.unitsMu.Lock()
			units := a.extra
			a.extra = nil
			a.unitsMu.Unlock()
			for i := 0; i < len(units) && ctx.Err() == nil; i++ {
				_, more := a.catchUpOne(ctx, units[i])
				units = append(units, more...)
			}
		}
	}
}

// catchUp runs one pass. When the socket reconnects meanwhile it stops and returns the new
// pass to run instead.
func (a *Adapter) catchUp(ctx context.Context, p catchUpPass) (catchUpPass, bool) {
	units := p.units
	for attempt := 0; p.list; attempt++ {
		var err error
		if units, err = a.listUnits(ctx); err == nil {
			a.markPending(units, false)
			break
		}
		if ctx.Err() != nil {
			return p, false
		}
		d := a.backoff.Delay(attempt)
		a.log.Warn("cannot list the slack chats to catch up, retrying", zap.Error(err), zap.Duration("sleep", d))
		if a.wait(ctx, d) != nil {
			return p, false
		}
	}
	total := 0
	for i := 0; i < len(units); i++ {
		select {
		case next := <-a.catchUpKick:
			return next, true
		default:
		}
		n, more := a.catchUpOne(ctx, units[i])
		total += n
		units = append(units, more...)
		if ctx.Err() != nil {
			return p, false
		}
	}
	if len(units) > 0 {
		a.log.Info("slack catch-up done", zap.Int("chats", len(units)), zap.Int("messages", total))
	}
	return p, false
}

// listUnits lists the channels with a cursor and the ticket threads active within
// ticketWindow.
func (a *Adapter) listUnits(ctx context.Context) ([]catchUpUnit, error) {
	chans, err := a.host.Cursors(ctx, cursorChannel)
	if err != nil {
		return nil, err
	}
	var units []catchUpUnit
	for _, c := range chans {
		ch := strings.TrimPrefix(c.Name, cursorChannel)
		if c.Position != "" && (strings.HasPrefix(ch, "D") || a.support[ch]) {
			units = append(units, catchUpUnit{key: channelUnit(ch), channel: ch})
		}
	}
	curs, err := a.host.Cursors(ctx, cursorThread)
	if err != nil {
		return nil, err
	}
	horizon := time.Now().Add(-ticketWindow)
	last := map[string]string{}
	for _, c := range curs {
		k := strings.TrimPrefix(c.Name, cursorThread)
		last[k] = c.Position
		// Threads in DMs have no owner record: their cursor, moved by a reply delivered,
		// is what lists them.
		if ch, thread, ok := strings.Cut(k, "."); ok && strings.HasPrefix(ch, "D") && isTS(thread) &&
			c.Position != "" && !tsTime(c.Position).Before(horizon) {
			units = append(units, catchUpUnit{key: threadUnit(ch, thread), channel: ch, thread: thread})
		}
	}
	if len(a.support) == 0 {
		return units, nil
	}
	threads, err := a.host.Values(ctx, valueThread)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range threads {
		keys = append(keys, strings.TrimPrefix(k, valueThread))
	}
	slices.Sort(keys)
	for _, k := range keys {
		ch, thread, ok := strings.Cut(k, ".")
		if !ok || !a.support[ch] {
			continue
		}
		// k is "<channel>.<seconds>.<micro>": the thread ts keeps its dot.
		pos := last[k]
		if pos == "" {
			pos = thread
		}
		if !isTS(thread) || tsTime(pos).Before(horizon) {
			continue
		}
		units = append(units, catchUpUnit{key: threadUnit(ch, thread), channel: ch, thread: thread})
	}
	return units, nil
}

// catchUpOne reads one unit until it is up to date and no live message arrived for it
// meanwhile, then lets its live messages through. It returns how many messages it stored and
// the ticket threads it found that need reading too (already marked pending).
func (a *Adapter) catchUpOne(ctx context.Context, u catchUpUnit) (int, []catchUpUnit) {
	a.unitsMu.Lock()
	st := a.pending[u.key]
	a.unitsMu.Unlock()
	if st == nil {
		return 0, nil
	}
	defer a.release(u.key, st)
	total := 0
	var found []catchUpUnit
	for attempt := 0; attempt < catchUpAttempts; {
		a.unitsMu.Lock()
		st.dirty = false
		a.unitsMu.Unlock()
		var n int
		var more []catchUpUnit
		var err error
		if u.thread == "" {
			n, more, err = a.readChannel(ctx, u.channel, u.from)
		} else {
			n, err = a.readThread(ctx, u.channel, u.thread)
		}
		total += n
		found = append(found, more...)
		if err == nil {
			a.unitsMu.Lock()
			dirty := st.dirty
			a.unitsMu.Unlock()
			if !dirty {
				return total, found
			}
			continue
		}
		if ctx.Err() != nil {
			return total, found
		}
		var rl *slackgo.RateLimitedError
		if errors.As(err, &rl) {
			a.log.Info("slack catch-up rate limited", zap.String("unit", u.key), zap.Duration("sleep", rl.RetryAfter))
			if a.wait(ctx, max(rl.RetryAfter, time.Second)) != nil {
				return total, found
			}
			continue
		}
		if gone(err) {
			a.log.Warn("slack chat cannot be read any more, not catching it up", zap.String("unit", u.key), zap.Error(a.redact(err)))
			return total, found
		}
		d := a.backoff.Delay(attempt)
		attempt++
		a.log.Warn("cannot catch up a slack chat, retrying", zap.String("unit", u.key), zap.Error(a.redact(err)), zap.Duration("sleep", d))
		if a.wait(ctx, d) != nil {
			return total, found
		}
	}
	return total, found
}

// release lets the live messages of a unit through, unless a newer pass marked it again.
func (a *Adapter) release(key string, st *unitState) {
	a.unitsMu.Lock()
	defer a.unitsMu.Unlock()
	if a.pending[key] == st {
		delete(a.pending, key)
	}
}

// gone says whether err means the chat cannot be read at all.
func gone(err error) bool {
	var se slackgo.SlackErrorResponse
	if !errors.As(err, &se) {
		return false
	}
	switch se.Err {
	case "channel_not_found", "not_in_channel", "is_archived", "thread_not_found", "missing_scope", "account_inactive", "invalid_auth", "token_revoked":
		return true
	}
	return false
}

// readChannel reads a channel's top-level messages after its cursor and stores them oldest
// first. conversations.history pages from the newest back, so the pages are gathered first.
func (a *Adapter) readChannel(ctx context.Context, ch, from string) (int, []catchUpUnit, error) {
	name := cursorChannel + ch
	after, err := a.host.Cursor(ctx, name)
	if err != nil {
		return 0, nil, err
	}
	inclusive := false
	if after == "" {
		if from == "" {
			return 0, nil, nil
		}
		after, inclusive = from, true
	}
	var msgs []slackgo.Message
	cursor := ""
	for {
		resp, err := a.api.GetConversationHistoryContext(ctx, &slackgo.GetConversationHistoryParameters{
			ChannelID: ch, Oldest: after, Inclusive: inclusive, Limit: catchUpPage, Cursor: cursor,
		})
		if err != nil {
			return 0, nil, err
		}
		msgs = append(msgs, resp.Messages...)
		cursor = resp.ResponseMetaData.NextCursor
		if !resp.HasMore || cursor == "" {
			break
		}
	}
	slices.SortFunc(msgs, func(x, y slackgo.Message) int {
		switch {
		case x.Timestamp == y.Timestamp:
			return 0
		case bridge.CursorAfter(y.Timestamp, x.Timestamp):
			return -1
		}
		return 1
	})
	n := 0
	var found []catchUpUnit
	last := after
	for i := range msgs {
		m := &msgs[i].Msg
		if !isTS(m.Timestamp) || !(bridge.CursorAfter(m.Timestamp, after) || inclusive && m.Timestamp == after) {
			continue
		}
		last = m.Timestamp
		isReply := m.ThreadTimestamp != "" && m.ThreadTimestamp != m.Timestamp
		dm := strings.HasPrefix(ch, "D")
		if dm && !isReply && (m.ReplyCount > 0 || m.LatestReply != "") {
			// A thread in a DM, under the person's message or the bot's: read it too.
			found = a.foundThread(found, ch, m.Timestamp)
		}
		if a.fromBot(m) || !bridged(m.SubType) {
			continue
		}
		if isReply {
			// A broadcast reply: its thread's catch-up has it (a DM's thread, found here).
			if dm {
				found = a.foundThread(found, ch, m.ThreadTimestamp)
			}
			continue
		}
		m.Channel = ch
		r, ok, err := a.routeOf(ctx, ch, m, true)
		if err != nil {
			return n, found, err
		}
		if !ok {
			continue
		}
		if err := a.deliverRetrying(ctx, ch, r, m); err != nil {
			return n, found, err
		}
		n++
		if r.opens && (m.ReplyCount > 0 || m.LatestReply != "") {
			found = a.foundThread(found, ch, m.Timestamp)
		}
	}
	if last != after || inclusive {
		if err := a.host.Deliver(ctx, bridge.Cursor{Name: name, Position: last}); err != nil {
			return n, found, err
		}
	}
	return n, found, nil
}

// foundThread marks the thread of channel ch at ts pending, so its live replies wait for its
// catch-up, and adds it to found unless it is pending already.
func (a *Adapter) foundThread(found []catchUpUnit, ch, ts string) []catchUpUnit {
	u := catchUpUnit{key: threadUnit(ch, ts), channel: ch, thread: ts}
	a.unitsMu.Lock()
	defer a.unitsMu.Unlock()
	if _, ok := a.pending[u.key]; !ok {
		a.pending[u.key] = &unitState{dirty: true}
		found = append(found, u)
	}
	return found
}

// readThread reads a ticket thread's replies after its cursor, oldest first, page by page.
func (a *Adapter) readThread(ctx context.Context, ch, thread string) (int, error) {
	name := threadCursor(ch, thread)
	after, err := a.host.Cursor(ctx, name)
	if err != nil {
		return 0, err
	}
	if after == "" {
		after = thread
	}
	n := 0
	cursor := ""
	for {
		msgs, hasMore, next, err := a.api.GetConversationRepliesContext(ctx, &slackgo.GetConversationRepliesParameters{
			ChannelID: ch, Timestamp: thread, Oldest: after, Limit: catchUpPage, Cursor: cursor,
		})
		if err != nil {
			return n, err
		}
		last := ""
		for i := range msgs {
			m := &msgs[i].Msg
			if !isTS(m.Timestamp) || !bridge.CursorAfter(m.Timestamp, after) || m.Timestamp == thread {
				continue
			}
			last = m.Timestamp
			if a.fromBot(m) || !bridged(m.SubType) {
				continue
			}
			m.Channel = ch
			if m.ThreadTimestamp == "" {
				m.ThreadTimestamp = thread
			}
			r, ok, err := a.routeOf(ctx, ch, m, true)
			if err != nil {
				return n, err
			}
			if !ok {
				continue
			}
			if err := a.deliverRetrying(ctx, ch, r, m); err != nil {
				return n, err
			}
			n++
		}
		if last != "" {
			if err := a.host.Deliver(ctx, bridge.Cursor{Name: name, Position: last}); err != nil {
				return n, err
			}
		}
		if !hasMore || next == "" {
			return n, nil
		}
		cursor = next
	}
}

// deliverRetrying stores one caught-up message, retrying a store that is down: the next
// message must not overtake it.
func (a *Adapter) deliverRetrying(ctx context.Context, ch string, r route, m *slackgo.Msg) error {
	for attempt := 0; ; attempt++ {
		err := a.deliverMessage(ctx, ch, r, m)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if a.wait(ctx, a.backoff.Delay(attempt)) != nil {
			return ctx.Err()
		}
	}
}
