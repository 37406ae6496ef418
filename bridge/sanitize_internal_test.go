package bridge

import (
	"testing"

	"github.com/onechat/onechat-bridge/onechat"
)

func TestEscapeUserText(t *testing.T) {
	for in, want := range map[string]string{
		"hello":                               "hello",
		"✏️ The user edited a message:":       "(typed by the user) ✏️ The user edited a message:",
		"✏ The user edited a message:":        "(typed by the user) ✏ The user edited a message:", // without the variation selector
		"  🗑 The user deleted a message.":     "(typed by the user)   🗑 The user deleted a message.",
		"\u2066↩️ In reply to:":               "(typed by the user) \u2066↩️ In reply to:",
		"ok\n📎 a.pdf could not be sent":       "ok\n(typed by the user) 📎 a.pdf could not be sent",
		"> ✏️ quoted is fine":                 "> ✏️ quoted is fine",
		"I ✏️ edited it":                      "I ✏️ edited it",
		"ℹ️ The user sent a poll":             "(typed by the user) ℹ️ The user sent a poll",
		"(typed by the user) ✏️ already here": "(typed by the user) ✏️ already here",
	} {
		if got := escapeUserText(in); got != want {
			t.Errorf("escapeUserText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCleanLine(t *testing.T) {
	for in, want := range map[string]string{
		"Alice":            "Alice",
		"Eve\u202Egnp.exe": "Evegnp.exe",
		"a\u2066b\u2069c\u200Bd\uFEFFe\u2060f\u200Dg\u200Ch\u200Fi": "abcdefghi",
		"two\nlines\r\tand tab": "two lines  and tab",
		"\u2028sep\u2029":       "sep",
		"Ünïcødé 名前 😀":          "Ünïcødé 名前 😀",
	} {
		if got := cleanLine(in); got != want {
			t.Errorf("cleanLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsUploadFallback(t *testing.T) {
	fallback := withUploadNotes("my scans", []onechat.Upload{{Filename: "a.tiff"}, {Filename: "b.tiff"}}, "too large for OneChat (413)")
	for _, tc := range []struct {
		name        string
		m           onechat.Message
		attachments int
		want        bool
	}{
		{"the fallback post", onechat.Message{Content: fallback}, 2, true},
		{"with a file", onechat.Message{Content: fallback, Attachments: []onechat.Attachment{{}}}, 2, false},
		{"the message had no files", onechat.Message{Content: fallback}, 0, false},
		{"other text", onechat.Message{Content: "my scans\n\nthanks"}, 2, false},
		{"the text alone", onechat.Message{Content: "my scans"}, 2, false},
		{"more notes than files", onechat.Message{Content: fallback}, 1, false},
	} {
		if got := isUploadFallback(&tc.m, "my scans", tc.attachments); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
