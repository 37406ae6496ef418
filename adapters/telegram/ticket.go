package telegram

import (
	"context"

	"github.com/go-telegram/bot/models"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// TicketClosed implements bridge.TicketKeeper: a private chat gets a short notice with a Reopen
// button when the operator's setting says so (TicketEvent.ShowNotice: by default only when the
// user closed it with /close).
func (a *Adapter) TicketClosed(ctx context.Context, e bridge.TicketEvent) error {
	if !e.ShowNotice(false) {
		return nil
	}
	lang := a.host.UserLanguage(ctx, e.User)
	markup := &models.InlineKeyboardMarkup{InlineKeyboard: [][]models.InlineKeyboardButton{{
		{Text: a.host.Texts().Text(lang, texts.ReopenButton, nil), CallbackData: cbTicket + string(bridge.TicketReopen)},
	}}}
	return a.sendNotice(ctx, e.Chat, a.host.Texts().Text(lang, texts.TicketClosed, nil), markup)
}

// TicketReopened implements bridge.TicketKeeper: a user who pressed Reopen is told it worked;
// an agent's reopen needs no word (the agent writes next).
func (a *Adapter) TicketReopened(ctx context.Context, e bridge.TicketEvent) error {
	if !e.ByUser {
		return nil
	}
	return a.sendNotice(ctx, e.Chat, a.host.Texts().Text(a.host.UserLanguage(ctx, e.User), texts.TicketReopened, nil), nil)
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
