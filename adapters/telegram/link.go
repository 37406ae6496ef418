package telegram

import "github.com/onechat/onechat-bridge/bridge"

// ChatLink implements bridge.ChatLinker: a user with a username has the public link
// https://t.me/<username>, which opens their chat in Telegram; a user without one has no link.
func (a *Adapter) ChatLink(u bridge.UserRef, username string, chat bridge.ChatRef) string {
	if username == "" || !isUsername(username) {
		return ""
	}
	return "https://t.me/" + username
}

// isUsername reports whether s is a Telegram username: letters, digits and underscores.
func isUsername(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
