package discord

import (
	"testing"

	"github.com/onechat/onechat-bridge/bridge"
)

func TestChatLink(t *testing.T) {
	u := bridge.UserRef{Platform: Platform, ID: "1"}
	dm := bridge.ChatRef{Platform: Platform, ID: "123456789012345678"}
	if got := (&Adapter{}).ChatLink(u, "alice", dm); got != "https://discord.com/channels/@me/123456789012345678" {
		t.Errorf("DM mode: %q", got)
	}
	if got := (&Adapter{support: "987654321098765432"}).ChatLink(u, "alice", dm); got != "" {
		t.Errorf("support mode: %q, want no link", got)
	}
}
