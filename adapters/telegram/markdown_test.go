package telegram

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-telegram/bot/models"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
)

func TestMarkdownToHTML(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "hello", "hello"},
		{"HTML escaped", "x < y && <script>alert(1)</script>", "x &lt; y &amp;&amp; &lt;script&gt;alert(1)&lt;/script&gt;"},
		{"quotes stay readable", `say "hi" it's`, `say "hi" it's`},
		{"bold", "**bold** text", "<b>bold</b> text"},
		{"bold underscores", "__bold__", "<b>bold</b>"},
		{"italic star", "*it*", "<i>it</i>"},
		{"italic underscore", "_it_", "<i>it</i>"},
		{"snake_case is not italic", "use snake_case_names here", "use snake_case_names here"},
		{"strike", "~~gone~~", "<s>gone</s>"},
		{"nested", "**bold _and italic_**", "<b>bold <i>and italic</i></b>"},
		{"overlapping styles reopen", "*it **both** it*", "<i>it </i><b><i>both</i></b><i> it</i>"},
		{"code escapes", "`a<b> **x**`", "<code>a&lt;b&gt; **x**</code>"},
		{"code block with language", "```go\nif a < b {}\n```", `<pre><code class="language-go">if a &lt; b {}</code></pre>`},
		{"unclosed code block runs to the end", "```\ncode", "<pre>code</pre>"},
		{"link", "[docs](https://example.com/a?b=1&c=2)", `<a href="https://example.com/a?b=1&amp;c=2">docs</a>`},
		{"link with bold text", "[**docs**](https://x.io)", `<a href="https://x.io"><b>docs</b></a>`},
		{"javascript link is text", "[click](javascript:alert(1))", "click"},
		{"attribute injection is escaped", `[x](https://a.io/"onmouseover="y)`, `<a href="https://a.io/&#34;onmouseover=&#34;y">x</a>`},
		{"unbalanced bold stays literal", "**bold without end", "**bold without end"},
		{"unbalanced italic stays literal", "2 * 3 = 6", "2 * 3 = 6"},
		{"lone backtick", "it`s", "it`s"},
		{"escaped markers", `\*not italic\*`, "*not italic*"},
		{"heading", "# Title\nbody", "<b>Title</b>\nbody"},
		{"quote", "> quoted\n\nafter", "<blockquote>quoted</blockquote>\n\nafter"},
		{"quote continues lazily", "> quoted\nafter", "<blockquote>quoted\nafter</blockquote>"},
		{"list", "- one\n- two", "• one\n• two"},
		{"ordered list", "3. one\n4. two", "3. one\n4. two"},
		{"nested list", "- one\n  - inner\n- two", "• one\n  • inner\n• two"},
		{"loose list", "- one\n\n- two", "• one\n\n• two"},
		{"paragraphs keep their blank line", "a\nb\n\nc", "a\nb\n\nc"},
		{"autolink", "<https://e.io/a_b_>", `<a href="https://e.io/a_b_">https://e.io/a_b_</a>`},
		{"bare URL keeps its underscores", "see https://e.io/_a_b", `see <a href="https://e.io/_a_b">https://e.io/_a_b</a>`},
		{"image becomes a link", "![logo](https://e.io/l.png)", `<a href="https://e.io/l.png">logo</a>`},
		{"unsafe image is its alt text", "![logo](data:image/png;base64,xx)", "logo"},
		{"entity", "a &amp; b &lt;", "a &amp; b &lt;"},
		{"thematic break", "a\n\n---\n\nb", "a\n\n———\n\nb"},
		{"setext heading", "Title\n=====\nbody", "<b>Title</b>\nbody"},
		{"HTML block stays text", "<div>\nhi\n</div>", "&lt;div&gt;\nhi\n&lt;/div&gt;"},
		{"code block in a quote", "> ```\n> x\n> ```", "<blockquote><pre>x</pre></blockquote>"},
		{"empty code block is sent as written", "```\n```", "```\n```"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"CRLF", "a\r\nb", "a\nb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := formatMarkdown(tc.in, maxMessageLen)
			if len(got) != 1 || got[0].html != tc.want {
				t.Fatalf("formatMarkdown(%q) = %+v, want %q", tc.in, got, tc.want)
			}
			// What Telegram would accept: the fake parses HTML exactly as strictly.
			if _, _, err := telegramtest.ParseHTML(got[0].html); err != nil {
				t.Fatalf("Telegram would reject %q: %v", got[0].html, err)
			}
		})
	}
}

func TestMarkdownHostileInputStaysValid(t *testing.T) {
	long := strings.Repeat("word ", 2000) // a 10,000-character line
	tests := map[string]string{
		"10k line":            long,
		"10k stars":           strings.Repeat("*", 10000),
		"10k underscores":     strings.Repeat("_", 10000),
		"10k tildes":          strings.Repeat("~", 10000),
		"10k backticks":       strings.Repeat("`", 10000),
		"10k brackets":        strings.Repeat("[", 5000) + strings.Repeat("]", 5000),
		"deep nesting":        strings.Repeat("**_~~", 2000) + "x" + strings.Repeat("~~_**", 2000),
		"bold across parts":   "**" + long + "**",
		"code across parts":   "```\n" + strings.Repeat("x < y\n", 1500) + "```",
		"html everywhere":     strings.Repeat("<b>&amp;</i>", 1500),
		"invalid utf8":        strings.Repeat("\xff\xfe", 3000),
		"emoji at the limit":  strings.Repeat("😀", 5000),
		"link spam":           strings.Repeat("[a](https://e.io) ", 1000),
		"unterminated link":   strings.Repeat("[a](https://e.io", 1000),
		"quote and list soup": strings.Repeat("> - # **x\n", 1000),
		"40k brackets":        strings.Repeat("[", 40000),
		"40k stars":           strings.Repeat("*", 40000),
		"nested lists":        strings.Repeat("- ", 20000) + "x",
		"surrogates and tags": strings.Repeat("**😀**", 3000),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			parts := formatMarkdown(in, maxMessageLen) // its cost: markdown.BenchmarkParsePathological
			if len(parts) == 0 {
				t.Fatal("nothing to send")
			}
			for i, p := range parts {
				text, _, err := telegramtest.ParseHTML(p.html)
				if err != nil {
					t.Fatalf("part %d rejected by Telegram's HTML rules: %v", i, err)
				}
				if n := textsplit.UTF16.Len(text); n > maxMessageLen || n == 0 {
					t.Fatalf("part %d has %d visible UTF-16 units", i, n)
				}
				if !utf8.ValidString(p.html) {
					t.Fatalf("part %d is not valid UTF-8", i)
				}
			}
		})
	}
}

func TestMarkdownSplitKeepsFormattingInEachPart(t *testing.T) {
	para := strings.Repeat("bold words ", 400) // 4400 characters
	parts := formatMarkdown("**"+strings.TrimSpace(para)+"**\n\nsecond paragraph", maxMessageLen)
	if len(parts) != 2 {
		t.Fatalf("%d parts", len(parts))
	}
	if !strings.HasPrefix(parts[0].html, "<b>") || !strings.HasSuffix(parts[0].html, "</b>") ||
		!strings.HasPrefix(parts[1].html, "<b>") || !strings.HasSuffix(parts[1].html, "</b>\n\nsecond paragraph") {
		t.Fatalf("parts %q…%q, %q…%q", parts[0].html[:10], parts[0].html[len(parts[0].html)-10:], parts[1].html[:10], parts[1].html[len(parts[1].html)-30:])
	}
	// A caption is split at 1024 visible characters, tags not counted.
	caption := formatMarkdown(strings.Repeat("**ab** ", 400), maxCaptionLen)
	if len(caption) != 2 || textsplit.UTF16.Len(caption[0].plain) > maxCaptionLen {
		t.Fatalf("caption parts %d, first %d long", len(caption), textsplit.UTF16.Len(caption[0].plain))
	}
}

func TestKeyboardAndInteractiveText(t *testing.T) {
	long := strings.Repeat("v", 70)
	m := bridge.Outbound{ContentType: "input_select", Text: "Pick one", Items: []bridge.Item{
		{Title: "Sales", Value: "sales"}, {Title: "Long", Value: long}, {Title: "", Value: ""},
	}}
	kb := keyboard(m)
	if kb == nil || len(kb.InlineKeyboard) != 2 ||
		kb.InlineKeyboard[0][0].Text != "Sales" || kb.InlineKeyboard[0][0].CallbackData != "v:sales" ||
		kb.InlineKeyboard[1][0].CallbackData != "i:1" {
		t.Fatalf("keyboard %+v", kb)
	}
	csat := keyboard(bridge.Outbound{ContentType: "input_csat"})
	if len(csat.InlineKeyboard) != 1 || len(csat.InlineKeyboard[0]) != 5 || csat.InlineKeyboard[0][4].CallbackData != "r:5" {
		t.Fatalf("csat %+v", csat)
	}
	if got := outboundMarkdown(bridge.Outbound{ContentType: "input_csat"}); got != defaultCSATText {
		t.Errorf("csat text %q", got)
	}
	cards := outboundMarkdown(bridge.Outbound{ContentType: "cards", Text: "Our plans", Items: []bridge.Item{
		{Title: "Pro", Description: "All *features*", Link: "https://e.io/pro", MediaURL: "https://e.io/pro.png"},
		{Title: "Bad", Link: "javascript:x"},
	}})
	want := "Our plans\n\n**[Pro](https://e.io/pro)**\nAll \\*features\\*\n[Image](https://e.io/pro.png)\n\n**Bad**"
	if cards != want {
		t.Errorf("cards\n%q\nwant\n%q", cards, want)
	}
	for data, want := range map[string]bridge.Choice{"v:sales": {Value: "sales"}, "r:4": {Value: "4"}, "i:1": {}} {
		if got, ok := decodeChoice(data); !ok || got != want {
			t.Errorf("decodeChoice(%q) = %+v, %v", data, got, ok)
		}
	}
	for _, bad := range []string{"r:6", "r:x", "other", ""} {
		if _, ok := decodeChoice(bad); ok {
			t.Errorf("decodeChoice(%q) accepted", bad)
		}
	}
}

func TestEntitiesToMarkdownHostile(t *testing.T) {
	text := "hello 😀 world"
	for _, es := range [][]entitySpec{
		{{"bold", -5, 3}}, {{"bold", 0, 1000}}, {{"italic", 3, 0}},
		{{"bold", 0, 8}, {"italic", 2, 10}}, // overlapping, not nested
		{{"code", 0, 13}, {"bold", 2, 3}},   // formatting inside code is dropped
		{{"bold", 6, 1}},                    // half a surrogate pair
	} {
		got := entitiesToMarkdown(text, toEntities(es))
		if !strings.Contains(stripMarks(got), "hello") || !utf8.ValidString(got) {
			t.Errorf("entities %+v: %q", es, got)
		}
	}
}

type entitySpec struct {
	typ            string
	offset, length int
}

func toEntities(es []entitySpec) []models.MessageEntity {
	var out []models.MessageEntity
	for _, e := range es {
		out = append(out, models.MessageEntity{Type: models.MessageEntityType(e.typ), Offset: e.offset, Length: e.length})
	}
	return out
}

func stripMarks(s string) string {
	return strings.NewReplacer("*", "", "_", "", "`", "", "~", "").Replace(s)
}
