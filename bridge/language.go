package bridge

import (
	"context"
	"maps"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/texts"
)

// LanguageAttribute is the contact attribute that holds the user's language (a BCP 47 tag), so
// OneChat's automation rules can route by it.
const LanguageAttribute = "language"

// languageKey is the adapter value under which the core remembers a user's language. It lives
// among the adapter's own values (one store, every instance), under a prefix no adapter uses.
func languageKey(userID string) string { return "bridge.language." + userID }

// withLanguage canonicalises m.Language ("pt_br" → "pt-BR"; a value that is no language tag is
// dropped) and adds it to the contact attributes the message sets.
func withLanguage(m Inbound) Inbound {
	if m.Language == "" {
		return m
	}
	tag, ok := texts.Canonical(m.Language)
	if !ok {
		m.Language = ""
		return m
	}
	m.Language = tag
	if m.ContactAttributes[LanguageAttribute] != tag {
		attrs := maps.Clone(m.ContactAttributes)
		if attrs == nil {
			attrs = make(map[string]string, 1)
		}
		attrs[LanguageAttribute] = tag
		m.ContactAttributes = attrs
	}
	return m
}

// rememberLanguages stores the language each delivered message carries, for UserLanguage,
// unless this process stored the same one for the user in the last languageFresh, all in one
// statement (a delivery of many new users would otherwise hold up the platform's next
// delivery by a commit each). The messages are stored already, so a failure is only logged:
// the language is a preference, and the user's next message stores it again.
func (c *Core) rememberLanguages(ctx context.Context, msgs []Inbound) {
	now := time.Now()
	var values []StoredValue
	var users []UserRef
	var langs []string
	c.languagesMu.Lock()
	for _, m := range msgs {
		m = withLanguage(m)
		if m.Language == "" {
			continue
		}
		if prev, known := c.languages[m.User]; known && prev.lang == m.Language && now.Sub(prev.at) < languageFresh {
			continue
		}
		values = append(values, StoredValue{Platform: m.User.Platform, Key: languageKey(m.User.ID), Value: m.Language})
		users, langs = append(users, m.User), append(langs, m.Language)
	}
	c.languagesMu.Unlock()
	if len(values) == 0 {
		return
	}
	if err := c.store.SetValues(ctx, values); err != nil {
		if ctx.Err() == nil {
			c.log.Warn("cannot remember users' languages", zap.Int("users", len(values)), zap.Error(err))
		}
		return
	}
	c.languagesMu.Lock()
	defer c.languagesMu.Unlock()
	if len(c.languages)+len(users) > 100000 {
		c.languages = make(map[UserRef]storedLanguage) // costs one write per user who writes again
	}
	for i, u := range users {
		c.languages[u] = storedLanguage{langs[i], now}
	}
}

// languageFresh is how long this process trusts that the language it stored for a user is
// still the stored one. Another instance may store a different one meanwhile (the user changed
// their app's language and Run moved), so the write is repeated after this long.
const languageFresh = 10 * time.Minute

// storedLanguage is a language this process stored for a user, and when.
type storedLanguage struct {
	lang string
	at   time.Time
}

// UserLanguage returns the language the user's latest message carried, or "" when it is
// unknown or cannot be read now (which is logged).
func (c *Core) UserLanguage(ctx context.Context, u UserRef) string {
	lang, _, err := c.store.Value(ctx, u.Platform, languageKey(u.ID))
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("cannot read a user's language", zap.String("platform", string(u.Platform)), zap.Error(err))
		}
		return ""
	}
	return lang
}

// Texts returns the core's message catalogue.
func (c *Core) Texts() *texts.Catalogue { return c.texts }
