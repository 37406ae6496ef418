package telegram

import (
	"testing"

	"github.com/onechat/onechat-bridge/bridge"
)

func TestChatLink(t *testing.T) {
	a := &Adapter{}
	chat := bridge.ChatRef{Platform: Platform, ID: "42"}
	for username, want := range map[string]string{"alice_1": "https://t.me/alice_1", "": "", "a/b": ""} {
		if got := a.ChatLink(bridge.UserRef{Platform: Platform, ID: "42"}, username, chat); got != want {
			t.Errorf("ChatLink(%q) = %q, want %q", username, got, want)
		}
	}
}
