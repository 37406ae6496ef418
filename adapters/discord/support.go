package discord

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/bwmarrin/discordgo"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// Interaction callback types and flags.
const (
	callbackMessage          = 4 // CHANNEL_MESSAGE_WITH_SOURCE
	callbackDeferredMessage  = 5 // DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
	callbackDeferredUpdate   = 6 // DEFERRED_UPDATE_MESSAGE
	callbackUpdateMessage    = 7 // UPDATE_MESSAGE
	flagEphemeral            = 1 << 6
	channelTypePrivateThread = 12
	threadArchiveMinutes     = 10080 // a week
)

// ensurePanel keeps one panel message with the "Contact support" button in the support channel:
// the one posted before if it still exists, else a new one.
func (a *Adapter) ensurePanel(ctx context.Context, in bridge.Host) {
	name := cursorPanel + a.support
	stored, err := in.Cursor(ctx, name)
	pos := bridge.ParsePosition(stored)
	if err != nil {
		a.log.Warn("cannot read the discord panel message id", zap.Error(err))
		return
	}
	if pos > 0 {
		err := a.rest.do(ctx, "GET", fmt.Sprintf("/channels/%s/messages/%d", a.support, pos), nil, nil)
		if err == nil {
			return
		}
		if !hasCode(err, codeUnknownMessage) {
			a.log.Warn("cannot check the discord support panel", zap.Error(err))
			return
		}
	}
	// The panel is read by everyone in the channel: it speaks BRIDGE_DEFAULT_LANGUAGE.
	cat := in.Texts()
	var m discordgo.Message
	err = a.rest.do(ctx, "POST", "/channels/"+a.support+"/messages", messagePayload{
		Content:         textsplit.Truncate(cat.Text("", texts.PanelText, nil), maxContentLen, textsplit.UTF16),
		AllowedMentions: noMentions(),
		Components: []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
			discordgo.Button{Label: textsplit.Truncate(cat.Text("", texts.PanelButton, nil), maxButtonLabel, textsplit.Runes),
				Style: discordgo.PrimaryButton, CustomID: customOpenTicket},
		}}},
	}, &m)
	if err != nil {
		a.log.Error("cannot post the discord support panel", zap.String("channel_id", a.support), zap.Error(err))
		return
	}
	a.deliver(ctx, in, bridge.IntCursor(name, snowflake(m.ID)))
	a.log.Info("posted the discord support panel", zap.String("channel_id", a.support), zap.String("message_id", m.ID))
}

// onInteraction answers a button press or select: the panel's button opens the user's ticket
// thread; an answer to an agent's question or survey is acknowledged by disabling the buttons
// (the chosen one highlighted) and goes to the core as the user's message with a Choice.
func (a *Adapter) onInteraction(ctx context.Context, in bridge.Host, i *discordgo.Interaction) {
	if i.Type != discordgo.InteractionMessageComponent {
		return
	}
	user := i.User
	if i.Member != nil && i.Member.User != nil {
		user = i.Member.User
	}
	if user == nil {
		return
	}
	// Discord tells the language of the user's client with every interaction.
	v := a.voiceFor(bridge.UserRef{Platform: Platform, ID: user.ID}, string(i.Locale))
	data := i.MessageComponentData()
	if data.CustomID == customOpenTicket {
		a.openTicketFromPanel(ctx, in, i, user, v)
		return
	}
	if action, ok := ticketAction(data.CustomID); ok {
		a.ticketPressed(ctx, in, i, user, action)
		return
	}
	choice, ok := choiceFromPress(i.Message, data.CustomID, data.Values)
	guildID := i.GuildID
	owner, mine := a.chatOwner(ctx, in, i.ChannelID, guildID, user.ID)
	if !ok || !mine || owner != user.ID {
		a.respond(ctx, i, callbackMessage, v.say(ctx, texts.NotYourQuestion, nil), true)
		return
	}
	var member *discordgo.Member
	if i.Member != nil {
		member = i.Member
	}
	msg := bridge.Inbound{
		User:        bridge.UserRef{Platform: Platform, ID: user.ID},
		Chat:        bridge.ChatRef{Platform: Platform, ID: i.ChannelID},
		MessageID:   choice.MessageID + ".choice",
		DisplayName: displayName(user, member),
		Username:    user.Username,
		Language:    string(i.Locale),
		Text:        choice.Title,
		Choice:      &choice,
		SentAt:      time.Now(),
	}
	// Store first: the press is only acknowledged once the answer is safe. Discord allows 3 s.
	dctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	err := in.Deliver(dctx, bridge.Cursor{}, msg)
	cancel()
	if err != nil {
		a.log.Warn("cannot store a discord button press", zap.Error(err))
		a.respond(ctx, i, callbackMessage, v.say(ctx, texts.TryAgain, nil), true)
		return
	}
	err = a.rest.do(ctx, "POST", interactionPath(i), map[string]any{
		"type": callbackUpdateMessage,
		"data": map[string]any{"components": answeredComponents(i.Message, data.CustomID, data.Values)},
	}, nil)
	if err != nil {
		a.log.Warn("cannot acknowledge a discord button press", zap.Error(err))
	}
}

func interactionPath(i *discordgo.Interaction) string {
	return "/interactions/" + i.ID + "/" + i.Token + "/callback"
}

// respond answers an interaction with a message, visible only to the user when ephemeral.
func (a *Adapter) respond(ctx context.Context, i *discordgo.Interaction, typ int, text string, ephemeral bool) {
	data := map[string]any{"content": text, "allowed_mentions": noMentions()}
	if ephemeral {
		data["flags"] = flagEphemeral
	}
	if err := a.rest.do(ctx, "POST", interactionPath(i), map[string]any{"type": typ, "data": data}, nil); err != nil {
		a.log.Warn("cannot answer a discord interaction", zap.Error(err))
	}
}

// openTicketFromPanel defers the answer (opening a thread takes several requests, and Discord
// allows 3 s), opens or finds the user's ticket thread, moves the user's conversation there, and
// tells the user where it is.
func (a *Adapter) openTicketFromPanel(ctx context.Context, in bridge.Host, i *discordgo.Interaction, user *discordgo.User, v *voice) {
	if a.support == "" || i.ChannelID != a.support {
		a.respond(ctx, i, callbackMessage, v.say(ctx, texts.TicketsUnavailable, nil), true)
		return
	}
	if a.tooYoung(user.ID) {
		a.log.Info("refused a discord ticket from an account younger than the minimum age", zap.String("user_id", user.ID))
		a.respond(ctx, i, callbackMessage, a.youngNotice(ctx, user.ID, v), true)
		return
	}
	if err := a.rest.do(ctx, "POST", interactionPath(i), map[string]any{
		"type": callbackDeferredMessage, "data": map[string]any{"flags": flagEphemeral},
	}, nil); err != nil {
		a.log.Warn("cannot answer a discord interaction", zap.Error(err))
		return
	}
	var member *discordgo.Member
	if i.Member != nil {
		member = i.Member
	}
	text := ""
	thread, err := a.ensureTicket(ctx, in, user.ID, displayName(user, member), v)
	if err != nil {
		a.log.Error("cannot open a discord ticket thread", zap.String("user_id", user.ID), zap.Error(err))
		text = v.say(ctx, texts.TicketOpenFailed, nil)
	} else {
		text = v.say(ctx, texts.TicketOpened, texts.Vars{"thread": "<#" + thread + ">"})
		if err := in.MoveChat(ctx, bridge.UserRef{Platform: Platform, ID: user.ID}, bridge.ChatRef{Platform: Platform, ID: thread}); err != nil {
			a.log.Warn("cannot move a discord user's chat to their ticket thread", zap.Error(err))
		}
	}
	path := "/webhooks/" + i.AppID + "/" + i.Token + "/messages/@original"
	if err := a.rest.do(ctx, "PATCH", path, map[string]any{"content": text, "allowed_mentions": noMentions()}, nil); err != nil {
		a.log.Warn("cannot answer a discord interaction", zap.Error(err))
	}
}

// ensureTicket returns the user's ticket thread under the support channel: the one opened
// before if it still exists (unarchived if needed), else a new private thread with the user
// (and the staff role) in it. The welcome is in the user's language (v).
func (a *Adapter) ensureTicket(ctx context.Context, in bridge.Host, userID, name string, v *voice) (string, error) {
	if a.support == "" {
		return "", errors.New("support-channel mode is off")
	}
	a.ticketMu.Lock()
	defer a.ticketMu.Unlock()
	stored, err := in.Cursor(ctx, cursorTicket+userID)
	pos := bridge.ParsePosition(stored)
	if err != nil {
		return "", fmt.Errorf("read ticket thread: %w", err)
	}
	if pos > 0 {
		thread := strconv.FormatInt(pos, 10)
		var ch discordgo.Channel
		err := a.rest.do(ctx, "GET", "/channels/"+thread, nil, &ch)
		switch {
		case err == nil && ch.ThreadMetadata != nil && ch.ThreadMetadata.Locked:
			// Staff locked it: a new ticket starts a new thread.
		case err == nil:
			if ch.ThreadMetadata != nil && ch.ThreadMetadata.Archived {
				if err := a.rest.do(ctx, "PATCH", "/channels/"+thread, map[string]any{"archived": false}, nil); err != nil {
					return "", fmt.Errorf("unarchive ticket thread: %w", err)
				}
			}
			if err := a.rest.do(ctx, "PUT", "/channels/"+thread+"/thread-members/"+userID, nil, nil); err != nil {
				return "", fmt.Errorf("add user to ticket thread: %w", err)
			}
			a.setOwner(thread, userID)
			return thread, nil
		case hasCode(err, codeUnknownChannel):
		default:
			return "", fmt.Errorf("check ticket thread: %w", err)
		}
	}
	if name == "" {
		var u discordgo.User
		if err := a.rest.do(ctx, "GET", "/users/"+userID, nil, &u); err == nil {
			name = displayName(&u, nil)
		} else {
			name = userID
		}
	}
	var ch discordgo.Channel
	if err := a.rest.do(ctx, "POST", "/channels/"+a.support+"/threads", map[string]any{
		"name":                  textsplit.Truncate(v.say(ctx, texts.TicketThreadName, texts.Vars{"name": name}), 100, textsplit.Runes),
		"type":                  channelTypePrivateThread,
		"invitable":             false,
		"auto_archive_duration": threadArchiveMinutes,
	}, &ch); err != nil {
		return "", fmt.Errorf("create ticket thread: %w", err)
	}
	thread := ch.ID
	// Owner first: if anything below fails, the thread is already known as this user's.
	if !a.deliver(ctx, in, bridge.IntCursor(cursorOwner+thread, snowflake(userID))) ||
		!a.deliver(ctx, in, bridge.IntCursor(cursorTicket+userID, snowflake(thread))) {
		return "", ctx.Err()
	}
	a.setOwner(thread, userID)
	if err := a.rest.do(ctx, "PUT", "/channels/"+thread+"/thread-members/"+userID, nil, nil); err != nil {
		return "", fmt.Errorf("add user to ticket thread: %w", err)
	}
	welcome := messagePayload{
		Content:         textsplit.Truncate(v.say(ctx, texts.TicketWelcome, texts.Vars{"user": "<@" + userID + ">"}), maxContentLen-40, textsplit.UTF16),
		AllowedMentions: allowedMentions{Parse: []string{}, Users: []string{userID}},
		Components:      ticketButton(ctx, v, bridge.TicketClose),
	}
	if a.staffRole != "" {
		// Mentioning a role in a private thread is how its members are added to it.
		welcome.Content += "\n<@&" + a.staffRole + ">"
		welcome.AllowedMentions.Roles = []string{a.staffRole}
	}
	var m discordgo.Message
	if err := a.rest.do(ctx, "POST", "/channels/"+thread+"/messages", welcome, &m); err != nil {
		a.log.Warn("cannot post the welcome message in a ticket thread", zap.String("thread_id", thread), zap.Error(err))
		m.ID = thread
	}
	// Catch-up starts from here: the thread is known even before the user writes in it.
	a.deliver(ctx, in, bridge.IntCursor(cursorChannel+thread, snowflake(m.ID)))
	a.log.Info("opened a discord ticket thread", zap.String("user_id", userID), zap.String("thread_id", thread),
		zap.Bool("staff_role", a.staffRole != ""))
	return thread, nil
}
