package slack

import (
	"testing"

	"github.com/onechat/onechat-bridge/bridge"
)

func TestChatLink(t *testing.T) {
	u := bridge.UserRef{Platform: Platform, ID: "T1:U1"}
	for id, want := range map[string]string{
		"D0123ABCD":                   "https://slack.com/app_redirect?channel=D0123ABCD",
		"C0123ABCD:1700000000.000100": "https://slack.com/app_redirect?channel=C0123ABCD",
		"nonsense":                    "",
	} {
		if got := (&Adapter{}).ChatLink(u, "", bridge.ChatRef{Platform: Platform, ID: id}); got != want {
			t.Errorf("ChatLink(%q) = %q, want %q", id, got, want)
		}
	}
}
