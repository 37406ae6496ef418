package bridge

import (
	"context"
	"fmt"

	"github.com/onechat/onechat-bridge/texts"
)

// host is the Host of one adapter: the core's services, with the adapter's values kept apart
// from every other adapter's under its platform name.
type host struct {
	c        *Core
	platform Platform // set once the builder returned the adapter
}

var _ Host = (*host)(nil)

func (h *host) Deliver(ctx context.Context, cur Cursor, msgs ...Inbound) error {
	for _, m := range msgs {
		if m.User.Platform != h.platform || m.Chat.Platform != h.platform {
			return fmt.Errorf("deliver: a %s adapter delivered a message of %s", h.platform, m.User.Platform)
		}
	}
	return h.c.Deliver(ctx, cur, msgs...)
}

func (h *host) Cursor(ctx context.Context, name string) (string, error) {
	return h.c.store.Cursor(ctx, name)
}

func (h *host) Cursors(ctx context.Context, prefix string) ([]Cursor, error) {
	return h.c.store.Cursors(ctx, prefix)
}

func (h *host) MoveChat(ctx context.Context, u UserRef, chat ChatRef) error {
	return h.c.MoveChat(ctx, u, chat)
}

func (h *host) UserTyping(ctx context.Context, u UserRef, chat ChatRef) {
	h.c.UserTyping(ctx, u, chat)
}

func (h *host) Value(ctx context.Context, key string) (string, bool, error) {
	return h.c.store.Value(ctx, h.platform, key)
}

func (h *host) SetValue(ctx context.Context, key, value string) error {
	return h.c.store.SetValue(ctx, h.platform, key, value)
}

func (h *host) SetValueIfAbsent(ctx context.Context, key, value string) (string, error) {
	return h.c.store.SetValueIfAbsent(ctx, h.platform, key, value)
}

func (h *host) DeleteValue(ctx context.Context, key string) error {
	return h.c.store.DeleteValue(ctx, h.platform, key)
}

func (h *host) Values(ctx context.Context, prefix string) (map[string]string, error) {
	return h.c.store.Values(ctx, h.platform, prefix)
}

func (h *host) Texts() *texts.Catalogue { return h.c.texts }

func (h *host) UserLanguage(ctx context.Context, u UserRef) string {
	return h.c.UserLanguage(ctx, u)
}
