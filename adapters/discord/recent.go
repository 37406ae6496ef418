package discord

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
)

// Edits and deletes a user made while the bridge was down reach no gateway, and reading the
// messages after the cursor does not show them. So the adapter remembers, per chat, the user's
// recently delivered messages with the edit each was delivered at (host values, so a restart
// keeps them), and the catch-up re-reads the newest messages up to the cursor: a newer
// edited_timestamp is an edit, a remembered message missing from the answer a delete. Both are
// delivered with the ids the gateway's events get (editID, "<id>.delete"), so a replay of
// either is a no-op.
const (
	// recentPrefix + channel id holds the chat's record: JSON {message id: edited ms, 0 if never}.
	recentPrefix = "discord.recent."
	// recentLimit is how many messages a record keeps and the catch-up re-reads per chat.
	recentLimit = 50
	// recentMaxAge skips chats whose newest remembered message is older: who edits a message
	// weeks later while the bridge happens to be down?
	recentMaxAge = 7 * 24 * time.Hour
	// recentMaxChats bounds the chats re-read at one catch-up, the most recently active first.
	recentMaxChats = 200
	// recentCacheChats bounds the records kept in memory; past it the cache starts over.
	recentCacheChats = 10000
)

// recentRecord is a chat's remembered messages: id → edited timestamp in ms (0: never edited).
type recentRecord map[string]int64

// editedMs is when m was last edited, in ms, or 0.
func editedMs(m *discordgo.Message) int64 {
	if m.EditedTimestamp == nil {
		return 0
	}
	return m.EditedTimestamp.UnixMilli()
}

// recentOf returns channel's record, from the cache or the host values. Only the instance that
// runs the gateway (the singleton) calls it, from its event loop.
func (a *Adapter) recentOf(ctx context.Context, in bridge.Host, channel string) recentRecord {
	a.recentMu.Lock()
	rec, ok := a.recent[channel]
	a.recentMu.Unlock()
	if ok {
		return rec
	}
	rec = recentRecord{}
	v, found, err := in.Value(ctx, recentPrefix+channel)
	if err != nil {
		a.log.Warn("cannot read the record of recent discord messages", zap.String("channel_id", channel), zap.Error(err))
		return rec // not cached: read again next time
	}
	if found && json.Unmarshal([]byte(v), &rec) != nil {
		rec = recentRecord{}
	}
	a.cacheRecent(channel, rec)
	return rec
}

func (a *Adapter) cacheRecent(channel string, rec recentRecord) {
	a.recentMu.Lock()
	defer a.recentMu.Unlock()
	if a.recent == nil || len(a.recent) >= recentCacheChats {
		a.recent = map[string]recentRecord{}
	}
	a.recent[channel] = rec
}

// remember changes channel's record with change, keeps its recentLimit newest messages and
// stores it. A failure is logged: the record only lets the catch-up find changes, and a chat
// without one loses nothing else.
func (a *Adapter) remember(ctx context.Context, in bridge.Host, channel string, change func(recentRecord)) {
	old := a.recentOf(ctx, in, channel)
	rec := make(recentRecord, len(old)+1)
	for k, v := range old {
		rec[k] = v
	}
	change(rec)
	if len(rec) > recentLimit {
		ids := recentIDs(rec)
		for _, id := range ids[:len(ids)-recentLimit] {
			delete(rec, id)
		}
	}
	b, _ := json.Marshal(rec)
	if err := in.SetValue(ctx, recentPrefix+channel, string(b)); err != nil {
		a.log.Warn("cannot store the record of recent discord messages", zap.String("channel_id", channel), zap.Error(err))
		return
	}
	a.cacheRecent(channel, rec)
}

// recentIDs returns the record's message ids, oldest first.
func recentIDs(rec recentRecord) []string {
	ids := make([]string, 0, len(rec))
	for id := range rec {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return snowflake(ids[i]) < snowflake(ids[j]) })
	return ids
}

// recentChats picks the chats whose recent messages the catch-up re-reads: at most
// recentMaxChats, with a message remembered from the last recentMaxAge, newest first. It loads
// every record into the cache on the way (one read of the host values).
func (a *Adapter) recentChats(ctx context.Context, in bridge.Host) map[string]bool {
	vals, err := in.Values(ctx, recentPrefix)
	if err != nil {
		a.log.Warn("cannot read the records of recent discord messages", zap.Error(err))
		return nil
	}
	type chat struct {
		id     string
		newest int64
	}
	var chats []chat
	cutoff := a.now().Add(-recentMaxAge)
	for k, v := range vals {
		ch := strings.TrimPrefix(k, recentPrefix)
		rec := recentRecord{}
		if json.Unmarshal([]byte(v), &rec) != nil || len(rec) == 0 {
			continue
		}
		a.cacheRecent(ch, rec)
		ids := recentIDs(rec)
		newest := ids[len(ids)-1]
		if t, ok := snowflakeTime(newest); ok && t.After(cutoff) {
			chats = append(chats, chat{ch, snowflake(newest)})
		}
	}
	slices.SortFunc(chats, func(x, y chat) int { return cmp.Compare(y.newest, x.newest) })
	out := map[string]bool{}
	for i, c := range chats {
		if i >= recentMaxChats {
			break
		}
		out[c.id] = true
	}
	return out
}

// catchUpChanges finds the edits and deletes of owner's remembered messages in channel up to
// the cursor position upTo (one read of the newest recentLimit messages) and delivers them in
// the order of the messages. A message older than everything the read returned is out of
// sight: it is forgotten, not taken for deleted.
func (a *Adapter) catchUpChanges(ctx context.Context, in bridge.Host, channel, owner string, upTo int64) (int, error) {
	rec := a.recentOf(ctx, in, channel)
	if len(rec) == 0 {
		return 0, nil
	}
	var page []*discordgo.Message
	path := fmt.Sprintf("/channels/%s/messages?before=%d&limit=%d", channel, upTo+1, recentLimit)
	if err := a.rest.do(ctx, "GET", path, nil, &page); err != nil {
		return 0, err
	}
	present := make(map[string]*discordgo.Message, len(page))
	oldest := int64(0)
	for _, m := range page {
		present[m.ID] = m
		if id := snowflake(m.ID); oldest == 0 || id < oldest {
			oldest = id
		}
	}
	var (
		msgs      []bridge.Inbound
		edited    = map[string]int64{}
		forgotten []string
	)
	for _, id := range recentIDs(rec) {
		m, ok := present[id]
		switch {
		case !ok && len(page) == recentLimit && snowflake(id) < oldest:
			forgotten = append(forgotten, id)
		case !ok:
			msgs = append(msgs, bridge.Inbound{
				User:      bridge.UserRef{Platform: Platform, ID: owner},
				Chat:      bridge.ChatRef{Platform: Platform, ID: channel},
				MessageID: id + ".delete",
				DeletedOf: id,
				SentAt:    a.now(),
			})
			forgotten = append(forgotten, id)
		case editedMs(m) > rec[id] && m.Author != nil && m.Author.ID == owner:
			m.ChannelID = channel
			msg, ok := a.inbound(m, channel)
			if !ok {
				continue
			}
			msg.EditOf, msg.MessageID, msg.ReplyTo, msg.ReplyToText = m.ID, editID(m), "", ""
			msg.SentAt = *m.EditedTimestamp
			msgs = append(msgs, msg)
			edited[id] = editedMs(m)
		}
	}
	if len(msgs) > 0 && !a.deliver(ctx, in, bridge.Cursor{}, msgs...) {
		return 0, ctx.Err()
	}
	if len(edited) > 0 || len(forgotten) > 0 {
		a.remember(ctx, in, channel, func(r recentRecord) {
			for id, ms := range edited {
				r[id] = ms
			}
			for _, id := range forgotten {
				delete(r, id)
			}
		})
	}
	return len(msgs), nil
}

// rememberDelivered records msgs (new messages of channel, just delivered) in its record.
func (a *Adapter) rememberDelivered(ctx context.Context, in bridge.Host, channel string, ms []*discordgo.Message) {
	if len(ms) == 0 {
		return
	}
	a.remember(ctx, in, channel, func(r recentRecord) {
		for _, m := range ms {
			r[m.ID] = editedMs(m)
		}
	})
}
