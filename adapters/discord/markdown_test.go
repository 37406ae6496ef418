package discord

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/onechat/onechat-bridge/adapters/textsplit"
)

func TestDiscordContent(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "hello", "hello"},
		{"bold", "**bold** text", "**bold** text"},
		{"bold underscores are bold, not underline", "__bold__", "**bold**"},
		{"italic", "*it* and _it_", "*it* and *it*"},
		{"strike", "~~gone~~", "~~gone~~"},
		{"nested", "**bold _and italic_**", "**bold *and italic***"},
		{"code", "`a <b> **x**`", "`a <b> **x**`"},
		{"code with a backtick", "`` a`b ``", "`` a`b ``"},
		{"code block", "```go\nif a < b {}\n```", "```go\nif a < b {}\n```"},
		{"fence inside code is broken up", "````\n```\n````", "```\n``\u200b`\n```"},
		{"quote", "> quoted\n> more\n\nafter", "> quoted\n> more\n\nafter"},
		{"bold across quoted lines closes per line", "> **a\n> b**", "> **a**\n> **b**"},
		{"code block in a quote", "> ```\n> x\n> ```", "> ```\n> x\n> ```"},
		{"list", "- one\n- two", "- one\n- two"},
		{"ordered list", "3. one\n4. two", "3. one\n4. two"},
		{"nested list", "* one\n  * inner", "- one\n  - inner"},
		{"heading", "# Title\nbody", "**Title**\nbody"},
		{"link", "[docs](https://e.io/a?b=1)", "[docs](https://e.io/a?b=1)"},
		{"link target is encoded", "[docs](<https://e.io/a (b)>)", "[docs](https://e.io/a%20%28b%29)"},
		{"bold link: the link is outermost", "**[docs](https://e.io)**", "[**docs**](https://e.io)"},
		{"mailto link keeps its address", "[write](mailto:a@b.io)", "write (mailto:a@b.io)"},
		{"unsafe link is text", "[click](javascript:alert(1))", "click"},
		{"image becomes a link", "![logo](https://e.io/l.png)", "[logo](https://e.io/l.png)"},
		{"image without alt text", "![](https://e.io/l.png)", "https://e.io/l.png"},
		{"bare URL stays whole", "see https://e.io/a_b_c", "see https://e.io/a_b_c"},
		{"escaped markers stay literal", `\*not italic\* snake_case`, `\*not italic\* snake\_case`},
		{"mention syntax is text", "<@123> <#456> <t:1700000000>", `\<@123\> \<#456\> \<t:1700000000\>`},
		{"spoiler is text", "||secret||", `\|\|secret\|\|`},
		{"line-start markers are text", `\# not a heading` + "\n" + `\- not a list` + "\n" + `1\. not a list`, `\# not a heading` + "\n" + `\- not a list` + "\n" + `1\. not a list`},
		{"mid-line markers stay", "a - b # c 1. d", "a - b # c 1. d"},
		{"entities", "a &amp; b &lt;", `a & b \<`},
		{"raw HTML is text", "a <b>x</b>", `a \<b\>x\</b\>`},
		{"everyone is left to allowed_mentions", "hi @everyone", "hi @everyone"},
		{"empty code block is sent as written", "```\n```", "\\`\\`\\`\n\\`\\`\\`"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := discordContent(tc.in, maxContentLen)
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("discordContent(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if got := discordContent(" \n ", maxContentLen); got != nil {
		t.Errorf("blank text gave %q", got)
	}
}

func TestDiscordContentSplitsBalanced(t *testing.T) {
	words := strings.TrimSpace(strings.Repeat("bold words ", 300)) // 3,300 characters
	parts := discordContent("**"+words+"**\n\nafter", maxContentLen)
	if len(parts) != 2 {
		t.Fatalf("%d parts", len(parts))
	}
	for i, p := range parts {
		if !strings.HasPrefix(p, "**") || strings.Count(p, "**")%2 != 0 {
			t.Errorf("part %d is not bold throughout: %.20q…%.20q", i, p, p[len(p)-20:])
		}
	}
	if !strings.HasSuffix(parts[1], "**\n\nafter") {
		t.Errorf("second part ends %q", parts[1][len(parts[1])-20:])
	}
	code := discordContent("```\n"+strings.Repeat("x := 1\n", 600)+"```", maxContentLen)
	for i, p := range code {
		if !strings.HasPrefix(p, "```\n") || !strings.HasSuffix(p, "\n```") {
			t.Errorf("code part %d is not a whole code block", i)
		}
	}
}

// TestDiscordContentFits checks the properties that matter at Discord's limit on input that
// makes the rendering much longer than the text: every part fits with its markup, no part is
// empty and no character is cut.
func TestDiscordContentFits(t *testing.T) {
	for name, in := range map[string]string{
		"escapes double the text": strings.Repeat(`\*`, 5000),
		"short styled runs":       strings.Repeat("**a** _b_ ~~c~~ `d` ", 600),
		"links":                   strings.Repeat("[a](https://e.io/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa) ", 300),
		"quoted lines":            strings.Repeat("> *x*\n", 2000),
		"emoji":                   strings.Repeat("😀**😀**", 2000),
		"40k brackets":            strings.Repeat("[", 40000),
		"40k stars":               strings.Repeat("*", 40000),
		"nested lists":            strings.Repeat("- ", 20000) + "x",
		"invalid UTF-8":           strings.Repeat("\xff<", 3000),
	} {
		t.Run(name, func(t *testing.T) {
			parts := discordContent(in, maxContentLen)
			if len(parts) == 0 {
				t.Fatal("nothing to send")
			}
			for i, p := range parts {
				if n := textsplit.UTF16.Len(p); n > maxContentLen || strings.TrimSpace(p) == "" {
					t.Fatalf("part %d: %d UTF-16 units", i, n)
				}
				if !utf8.ValidString(p) {
					t.Fatalf("part %d is not valid UTF-8", i)
				}
			}
		})
	}
}

// BenchmarkDiscordContent is the rendering and splitting of a long message whose markup makes
// the first split too long.
func BenchmarkDiscordContent(b *testing.B) {
	in := strings.Repeat("**a** _b_ ~~c~~ `d` \\* ", 2000)
	for b.Loop() {
		discordContent(in, maxContentLen)
	}
}
