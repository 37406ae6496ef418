package discord

import (
	"context"
	"time"

	"github.com/bwmarrin/discordgo"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// ticketAction reads the custom id of a Close ticket or Reopen button.
func ticketAction(customID string) (bridge.TicketAction, bool) {
	return bridge.ParseTicketAction(customID, customTicket)
}

// ticketButton is a row with the Close ticket or Reopen button, labelled in the user's
// language.
func ticketButton(ctx context.Context, v *voice, action bridge.TicketAction) []discordgo.MessageComponent {
	label, style := v.say(ctx, texts.CloseButton, nil), discordgo.SecondaryButton
	if action == bridge.TicketReopen {
		label, style = v.say(ctx, texts.ReopenButton, nil), discordgo.PrimaryButton
	}
	return []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
		discordgo.Button{Label: label, Style: style, CustomID: customTicket + string(action)},
	}}}
}

// isTicketThread reports whether chat is the user's current ticket thread (not a DM channel).
func (a *Adapter) isTicketThread(ctx context.Context, userID, chatID string) (bool, error) {
	stored, err := a.host.Cursor(ctx, cursorTicket+userID)
	if err != nil {
		return false, err
	}
	return stored != "" && stored == chatID, nil
}

// TicketClosed implements bridge.TicketKeeper. A ticket thread gets a closing line (with a
// Reopen button when the notice is on) and is archived and locked, so the user's next ticket
// opens a new thread; a DM gets the notice with a Reopen button when the setting says so.
func (a *Adapter) TicketClosed(ctx context.Context, e bridge.TicketEvent) error {
	thread, err := a.isTicketThread(ctx, e.User.ID, e.Chat.ID)
	if err != nil {
		return err
	}
	show := e.ShowNotice(thread)
	v := a.voiceFor(e.User, "")
	if !thread {
		if !show {
			return nil
		}
		return a.postTicketLine(ctx, e.Chat.ID, v.say(ctx, texts.TicketClosed, nil), ticketButton(ctx, v, bridge.TicketReopen))
	}
	var buttons []discordgo.MessageComponent
	if show {
		buttons = ticketButton(ctx, v, bridge.TicketReopen)
	}
	// An archived thread takes no message, and a retry after the archive must not post twice:
	// the line goes first only while the thread is open.
	var ch discordgo.Channel
	if err := a.rest.do(ctx, "GET", "/channels/"+e.Chat.ID, nil, &ch); err != nil {
		if hasCode(err, codeUnknownChannel) {
			return nil // deleted by staff: nothing to close
		}
		return classify(err)
	}
	if ch.ThreadMetadata == nil || !ch.ThreadMetadata.Archived {
		// The panel speaks the default language: its button is named as the user sees it there.
		panel := a.host.Texts().Text(a.host.Texts().DefaultLanguage(), texts.PanelButton, nil)
		if err := a.postTicketLine(ctx, e.Chat.ID, v.say(ctx, texts.ThreadClosedPanel, texts.Vars{"button": panel}), buttons); err != nil {
			return err
		}
	}
	if err := a.rest.do(ctx, "PATCH", "/channels/"+e.Chat.ID, map[string]any{"archived": true, "locked": true}, nil); err != nil {
		return classify(err)
	}
	a.log.Info("closed a discord ticket thread", zap.String("thread_id", e.Chat.ID), zap.Bool("by_user", e.ByUser))
	return nil
}

// TicketReopened implements bridge.TicketKeeper: a ticket thread is unarchived and unlocked and
// says so; in DMs only a user who pressed Reopen is answered.
func (a *Adapter) TicketReopened(ctx context.Context, e bridge.TicketEvent) error {
	thread, err := a.isTicketThread(ctx, e.User.ID, e.Chat.ID)
	if err != nil {
		return err
	}
	v := a.voiceFor(e.User, "")
	if !thread {
		if !e.ByUser {
			return nil
		}
		return a.postTicketLine(ctx, e.Chat.ID, v.say(ctx, texts.TicketReopened, nil), nil)
	}
	if err := a.rest.do(ctx, "PATCH", "/channels/"+e.Chat.ID, map[string]any{"archived": false, "locked": false}, nil); err != nil {
		if hasCode(err, codeUnknownChannel) {
			return nil
		}
		return classify(err)
	}
	a.log.Info("reopened a discord ticket thread", zap.String("thread_id", e.Chat.ID), zap.Bool("by_user", e.ByUser))
	return a.postTicketLine(ctx, e.Chat.ID, v.say(ctx, texts.TicketReopened, nil), ticketButton(ctx, v, bridge.TicketClose))
}

// postTicketLine posts a line of the bridge's own in a channel.
func (a *Adapter) postTicketLine(ctx context.Context, channelID, text string, buttons []discordgo.MessageComponent) error {
	err := a.rest.do(ctx, "POST", "/channels/"+channelID+"/messages", messagePayload{
		Content: text, AllowedMentions: noMentions(), Components: buttons,
	}, nil)
	return classify(err)
}

// ticketPressed turns a press of Close ticket or Reopen into the user's ticket action. Only the
// ticket's user may press; the press is stored before it is acknowledged (Discord allows 3 s).
func (a *Adapter) ticketPressed(ctx context.Context, in bridge.Host, i *discordgo.Interaction, user *discordgo.User, action bridge.TicketAction) {
	v := a.voiceFor(bridge.UserRef{Platform: Platform, ID: user.ID}, string(i.Locale))
	owner, mine := a.chatOwner(ctx, in, i.ChannelID, i.GuildID, user.ID)
	if !mine || owner != user.ID {
		a.respond(ctx, i, callbackMessage, v.say(ctx, texts.NotYourTicket, nil), true)
		return
	}
	msgID := i.ID
	if i.Message != nil {
		msgID = i.Message.ID + "." + string(action) + "." + i.ID
	}
	msg := bridge.Inbound{
		User:        bridge.UserRef{Platform: Platform, ID: user.ID},
		Chat:        bridge.ChatRef{Platform: Platform, ID: i.ChannelID},
		MessageID:   msgID,
		DisplayName: displayName(user, i.Member),
		Username:    user.Username,
		Ticket:      action,
		SentAt:      time.Now(),
	}
	dctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	err := in.Deliver(dctx, bridge.Cursor{}, msg)
	cancel()
	if err != nil {
		a.log.Warn("cannot store a discord ticket button press", zap.Error(err))
		a.respond(ctx, i, callbackMessage, v.say(ctx, texts.TryAgain, nil), true)
		return
	}
	// The press is answered by the bridge's line when the ticket changes; the interaction only
	// needs acknowledging.
	if err := a.rest.do(ctx, "POST", interactionPath(i), map[string]any{"type": callbackDeferredUpdate}, nil); err != nil {
		a.log.Warn("cannot acknowledge a discord ticket button press", zap.Error(err), zap.String("user_id", user.ID))
	}
}
