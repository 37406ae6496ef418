package telegram

import (
	"context"

	"github.com/go-telegram/bot/models"

	"github.com/onechat/onechat-bridge/bridge"
)

// What the adapter itself says to users about their ticket, in one place so that a message
// catalogue can take it over.
const (
	// TextTicketClosed tells a user an agent resolved their ticket.
	TextTicketClosed = "✅ Your ticket was closed. Write again any time, or reopen it."
	// TextTicketClosedByUser answers the user's own /close.
	TextTicketClosedByUser = "✅ Your ticket is closed. Write again any time, or reopen it."
	// TextTicketReopened answers the user's Reopen button.
	TextTicketReopened = "🔓 Your ticket is open again."
	// TextReopenButton is the title of the Reopen button.
	TextReopenButton = "Reopen"
)

// TicketClosed implements bridge.TicketKeeper: a private chat gets a short notice with a Reopen
// button when the operator's setting says so (TicketEvent.ShowNotice: by default only when the
// user closed it with /close).
func (a *Adapter) TicketClosed(ctx context.Context, e bridge.TicketEvent) error {
	if !e.ShowNotice(false) {
		return nil
	}
	text := TextTicketClosed
	if e.ByUser {
		text = TextTicketClosedByUser
	}
	markup := &models.InlineKeyboardMarkup{InlineKeyboard: [][]models.InlineKeyboardButton{{
		{Text: TextReopenButton, CallbackData: cbTicket + string(bridge.TicketReopen)},
	}}}
	return a.sendNotice(ctx, e.Chat, text, markup)
}

// TicketReopened implements bridge.TicketKeeper: a user who pressed Reopen is told it worked;
// an agent's reopen needs no word (the agent writes next).
func (a *Adapter) TicketReopened(ctx context.Context, e bridge.TicketEvent) error {
	if !e.ByUser {
		return nil
	}
	return a.sendNotice(ctx, e.Chat, TextTicketReopened, nil)
}

// sendNotice sends a line of the bridge's own, as plain text.
func (a *Adapter) sendNotice(ctx context.Context, chat bridge.ChatRef, text string, markup *models.InlineKeyboardMarkup) error {
	chatID, err := chatIDOf(chat)
	if err != nil {
		return err
	}
	var msg models.Message
	return classify(a.call(ctx, "sendMessage", &textParams{ChatID: chatID, Text: text, ReplyMarkup: markup}, &msg))
}
