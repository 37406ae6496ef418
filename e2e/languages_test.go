package e2e_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/texts"
)

// Each Telegram user is greeted in the language of their app, with the operator's own texts
// from BRIDGE_MESSAGES_FILE where it has one, and the default language where the catalogue has
// none; the user's language reaches the OneChat contact as the attribute "language".
func TestTelegramUsersAreGreetedInTheirLanguage(t *testing.T) {
	messages := filepath.Join(t.TempDir(), "messages.json")
	const german = "Hallo! Wie können wir helfen?"
	if err := os.WriteFile(messages, []byte(`{"de": {"greeting": "`+german+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, withEnv("BRIDGE_MESSAGES_FILE="+messages, "BRIDGE_DEFAULT_LANGUAGE=fr"))
	r.start()
	ctx := testCtx(t)
	cat := texts.Builtin()

	carmen := telegramtest.User{ID: 5550101, FirstName: "Carmen", LanguageCode: "es"}
	hans := telegramtest.User{ID: 5550102, FirstName: "Hans", LanguageCode: "de"}
	kenji := telegramtest.User{ID: 5550103, FirstName: "Kenji", LanguageCode: "ja"}
	for _, u := range []telegramtest.User{carmen, hans, kenji} {
		r.w.TG.SendText(u, "/start")
	}
	for _, tc := range []struct {
		user telegramtest.User
		want string
	}{
		{carmen, cat.Text("es", texts.Greeting, nil)},
		{hans, german},
		{kenji, cat.Text("fr", texts.Greeting, nil)},
	} {
		if got := r.waitSentTexts(ctx, tc.user.ID, 1); got[0] != tc.want {
			t.Errorf("%s (%s) was greeted %q, want %q", tc.user.FirstName, tc.user.LanguageCode, got[0], tc.want)
		}
	}

	r.w.TG.SendText(carmen, "hola, mi pedido no llega")
	contact, conv := r.conversation(ctx, tgIdentifier(carmen))
	r.waitIncoming(ctx, conv.ID, "hola, mi pedido no llega")
	if got := contact.CustomAttributes["language"]; got != "es" {
		t.Errorf("contact attribute language = %v, want es", got)
	}
}
