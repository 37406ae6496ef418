package discord

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/bwmarrin/discordgo"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// discordEpoch is the time Discord ids count from (2015-01-01), in Unix milliseconds.
const discordEpoch = 1420070400000

// snowflakeTime is when the Discord object with this id was created: the id's top 42 bits
// are milliseconds since discordEpoch. For a user, it is when the account was made.
func snowflakeTime(id string) (time.Time, bool) {
	n := snowflake(id)
	if n <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(n>>22 + discordEpoch), true
}

// tooYoung reports whether the account with this id is younger than the minimum account age.
// An id that is not one is not refused here: it belongs to nobody the bridge serves.
func (a *Adapter) tooYoung(userID string) bool {
	if a.minAge <= 0 {
		return false
	}
	created, ok := snowflakeTime(userID)
	return ok && a.now().Sub(created) < a.minAge
}

// youngNotice is what a user whose account is too young is told, in their language: when
// they may write again, as a date every language reads alike.
func (a *Adapter) youngNotice(ctx context.Context, userID string, v *voice) string {
	created, _ := snowflakeTime(userID)
	return v.say(ctx, texts.YoungAccount, texts.Vars{"date": created.Add(a.minAge).UTC().Format("2006-01-02 15:04 UTC")})
}

// youngNoticeKey is the host value that says the user was told their account is too young.
func youngNoticeKey(userID string) string { return "young_notice." + userID }

// refuseYoung drops a message from an account younger than the minimum age, telling the user
// why the first time only (remembered in the host's store, on every instance): a flood of
// messages from a fresh account gets one answer, and nothing of it is stored for OneChat.
func (a *Adapter) refuseYoung(ctx context.Context, in bridge.Host, userID, channelID string) {
	log := a.log.With(zap.String("user_id", userID))
	// The value is unique to this call, so that only the call that stored it sends the notice.
	now := strconv.FormatInt(a.now().Unix(), 10) + "." + strconv.FormatUint(rand.Uint64(), 36)
	stored, err := in.SetValueIfAbsent(ctx, youngNoticeKey(userID), now)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("cannot remember the notice to a young discord account; not sending it", zap.Error(err))
		}
		return
	}
	if stored != now {
		log.Debug("dropped a message from a discord account younger than the minimum age")
		return
	}
	log.Info("refused a discord conversation from an account younger than the minimum age",
		zap.Duration("min_account_age", a.minAge))
	payload := messagePayload{Content: a.youngNotice(ctx, userID, a.voiceFor(bridge.UserRef{Platform: Platform, ID: userID}, "")), AllowedMentions: noMentions()}
	if err := a.rest.do(ctx, "POST", "/channels/"+channelID+"/messages", payload, nil); err != nil {
		if ctx.Err() != nil {
			return
		}
		log.Warn("cannot send the notice to a young discord account", zap.Error(err))
		if err := in.DeleteValue(ctx, youngNoticeKey(userID)); err != nil && ctx.Err() == nil {
			log.Warn("cannot forget the unsent notice to a young discord account", zap.Error(err))
		}
	}
}

// inbound converts a user's message (see inboundMessage) and refuses its files that are larger
// than the adapter passes on, by the size Discord declares, before anything downloads them:
// each becomes a note naming the file and its size.
func (a *Adapter) inbound(m *discordgo.Message, chat string) (bridge.Inbound, bool) {
	in, ok := inboundMessage(m, chat, a.host.Texts())
	if !ok {
		return in, false
	}
	kept := in.Attachments[:0]
	for _, att := range in.Attachments {
		if att.Size > a.maxDownload {
			in.Notes = append(in.Notes, a.host.Texts().Agent(texts.AgentFileOverBridgeLimit, texts.Vars{"name": att.Name,
				"size": bridge.FormatSize(att.Size), "limit": bridge.FormatSize(a.maxDownload)}))
			continue
		}
		kept = append(kept, att)
	}
	in.Attachments = kept
	return in, true
}
