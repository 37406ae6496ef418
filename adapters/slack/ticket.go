package slack

import (
	"context"

	slackgo "github.com/slack-go/slack"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// ticketActionPrefix starts the action_id of the Close ticket and Reopen buttons.
const ticketActionPrefix = "onechat.ticket."

// ticketAction reads the action_id of a Close ticket or Reopen button.
func ticketAction(actionID string) (bridge.TicketAction, bool) {
	return bridge.ParseTicketAction(actionID, ticketActionPrefix)
}

// ticketLineBlocks is a line of text with a Close ticket or Reopen button (labelled label)
// under it ("" for none).
func ticketLineBlocks(text string, button bridge.TicketAction, label string) []slackgo.Block {
	blocks := []slackgo.Block{slackgo.NewSectionBlock(slackgo.NewTextBlockObject(slackgo.PlainTextType, text, true, false), nil, nil)}
	if button == "" {
		return blocks
	}
	btn := slackgo.NewButtonBlockElement(ticketActionPrefix+string(button), string(button), slackgo.NewTextBlockObject(slackgo.PlainTextType, label, true, false))
	return append(blocks, slackgo.NewActionBlock("onechat.ticket", btn))
}

// TicketClosed implements bridge.TicketKeeper: a ticket thread gets a closing line (with a
// Reopen button when the notice is on); a DM gets the notice with Reopen when the setting says
// so. A new top-level message opens a new ticket.
func (a *Adapter) TicketClosed(ctx context.Context, e bridge.TicketEvent) error {
	_, thread, ok := parseChat(e.Chat)
	if !ok {
		return bridge.Permanent("not a slack chat: "+e.Chat.String(), nil)
	}
	inThread := thread != ""
	show := e.ShowNotice(inThread)
	say := a.voice(e.User)
	switch {
	case inThread && show:
		return a.postTicketLine(ctx, e.Chat, say(ctx, texts.ThreadClosedChannel, nil), bridge.TicketReopen, say(ctx, texts.ReopenButton, nil))
	case inThread:
		return a.postTicketLine(ctx, e.Chat, say(ctx, texts.ThreadClosedChannel, nil), "", "")
	case show:
		return a.postTicketLine(ctx, e.Chat, say(ctx, texts.TicketClosed, nil), bridge.TicketReopen, say(ctx, texts.ReopenButton, nil))
	}
	return nil
}

// TicketReopened implements bridge.TicketKeeper: a ticket thread says it is open again; in DMs
// only a person who pressed Reopen is answered.
func (a *Adapter) TicketReopened(ctx context.Context, e bridge.TicketEvent) error {
	_, thread, ok := parseChat(e.Chat)
	if !ok {
		return bridge.Permanent("not a slack chat: "+e.Chat.String(), nil)
	}
	if thread == "" && !e.ByUser {
		return nil
	}
	say := a.voice(e.User)
	return a.postTicketLine(ctx, e.Chat, say(ctx, texts.TicketReopened, nil), bridge.TicketClose, say(ctx, texts.CloseButton, nil))
}

// postTicketLine posts a line of the bridge's own in the chat.
func (a *Adapter) postTicketLine(ctx context.Context, chat bridge.ChatRef, text string, button bridge.TicketAction, label string) error {
	channel, thread, _ := parseChat(chat)
	if err := a.pacer.wait(ctx, channel); err != nil {
		return err
	}
	opts := []slackgo.MsgOption{slackgo.MsgOptionText(text, false), slackgo.MsgOptionBlocks(ticketLineBlocks(text, button, label)...),
		slackgo.MsgOptionDisableLinkUnfurl(), slackgo.MsgOptionDisableMediaUnfurl()}
	if thread != "" {
		opts = append(opts, slackgo.MsgOptionTS(thread))
	}
	_, _, err := a.api.PostMessageContext(ctx, channel, opts...)
	return classify(a.redact(err))
}
