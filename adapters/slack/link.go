package slack

import (
	"net/url"

	"github.com/onechat/onechat-bridge/bridge"
)

// ChatLink implements bridge.ChatLinker: Slack's app_redirect link opens the user's DM or the
// ticket's channel in the agent's Slack (threads need the workspace's domain, which the adapter
// does not keep, so a ticket links to its channel).
func (a *Adapter) ChatLink(u bridge.UserRef, username string, chat bridge.ChatRef) string {
	ch, _, ok := parseChat(chat)
	if !ok {
		return ""
	}
	return "https://slack.com/app_redirect?channel=" + url.QueryEscape(ch)
}
