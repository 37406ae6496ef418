package discord

import "github.com/onechat/onechat-bridge/bridge"

// ChatLink implements bridge.ChatLinker: in DM mode every chat is a DM channel, which opens at
// discord.com/channels/@me/<channel>. In support-channel mode a chat may be a ticket thread,
// whose link needs its server's id, which the adapter does not keep: no link then.
func (a *Adapter) ChatLink(u bridge.UserRef, username string, chat bridge.ChatRef) string {
	if a.support != "" || chat.Platform != Platform || !isSnowflake(chat.ID) {
		return ""
	}
	return "https://discord.com/channels/@me/" + chat.ID
}
