package discord

import (
	"context"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// voice says the bridge's own texts to one user, in their language: the locale of the
// interaction in hand when there is one, else the one the core remembers for the user, read
// the first time a text is needed (most agent messages need none). A voice serves one
// goroutine.
type voice struct {
	host  bridge.Host
	user  bridge.UserRef
	lang  string
	known bool
}

// voiceFor returns a voice for u; lang is the locale Discord gave with the event, "" if none.
func (a *Adapter) voiceFor(u bridge.UserRef, lang string) *voice {
	return &voice{host: a.host, user: u, lang: lang, known: lang != ""}
}

// say returns the text of k for the user, its placeholders filled from vars.
func (v *voice) say(ctx context.Context, k texts.Key, vars texts.Vars) string {
	if !v.known && v.user.ID != "" {
		v.lang, v.known = v.host.UserLanguage(ctx, v.user), true
	}
	return v.host.Texts().Text(v.lang, k, vars)
}
