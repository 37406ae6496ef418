package slack

import (
	"context"
	"strings"

	slackgo "github.com/slack-go/slack"

	"github.com/onechat/onechat-bridge/bridge"
)

// What the adapter says to people about their ticket, in one place so that a message catalogue
// can take it over.
const (
	// textThreadClosed is posted in a ticket thread when the ticket is resolved.
	textThreadClosed = "🔒 This ticket is closed. Write a new message in the channel to open a new one."
	// textTicketClosed tells a person in direct messages that their ticket was closed.
	textTicketClosed = "✅ Your ticket is closed. Write again any time, or reopen it."
	// textTicketReopened is posted when a ticket is reopened.
	textTicketReopened = "🔓 This ticket is open again."
	// textCloseButton and textReopenButton are the buttons' labels.
	textCloseButton  = "Close ticket"
	textReopenButton = "Reopen"
)

// ticketActionPrefix starts the action_id of the Close ticket and Reopen buttons.
const ticketActionPrefix = "onechat.ticket."

// ticketAction reads the action_id of a Close ticket or Reopen button.
func ticketAction(actionID string) (bridge.TicketAction, bool) {
	a, ok := strings.CutPrefix(actionID, ticketActionPrefix)
	switch action := bridge.TicketAction(a); {
	case !ok:
		return "", false
	case action == bridge.TicketClose, action == bridge.TicketReopen:
		return action, true
	}
	return "", false
}

// ticketLineBlocks is a line of text with a Close ticket or Reopen button under it ("" for
// none).
func ticketLineBlocks(text string, button bridge.TicketAction) []slackgo.Block {
	blocks := []slackgo.Block{slackgo.NewSectionBlock(slackgo.NewTextBlockObject(slackgo.PlainTextType, text, true, false), nil, nil)}
	if button == "" {
		return blocks
	}
	label := textCloseButton
	if button == bridge.TicketReopen {
		label = textReopenButton
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
	switch {
	case inThread && show:
		return a.postTicketLine(ctx, e.Chat, textThreadClosed, bridge.TicketReopen)
	case inThread:
		return a.postTicketLine(ctx, e.Chat, textThreadClosed, "")
	case show:
		return a.postTicketLine(ctx, e.Chat, textTicketClosed, bridge.TicketReopen)
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
	return a.postTicketLine(ctx, e.Chat, textTicketReopened, bridge.TicketClose)
}

// postTicketLine posts a line of the bridge's own in the chat.
func (a *Adapter) postTicketLine(ctx context.Context, chat bridge.ChatRef, text string, button bridge.TicketAction) error {
	channel, thread, _ := parseChat(chat)
	if err := a.pacer.wait(ctx, channel); err != nil {
		return err
	}
	opts := []slackgo.MsgOption{slackgo.MsgOptionText(text, false), slackgo.MsgOptionBlocks(ticketLineBlocks(text, button)...),
		slackgo.MsgOptionDisableLinkUnfurl(), slackgo.MsgOptionDisableMediaUnfurl()}
	if thread != "" {
		opts = append(opts, slackgo.MsgOptionTS(thread))
	}
	_, _, err := a.api.PostMessageContext(ctx, channel, opts...)
	return classify(a.redact(err))
}
