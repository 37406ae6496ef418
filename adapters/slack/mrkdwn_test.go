package slack

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMarkdownToMrkdwn(t *testing.T) {
	const wj = "\u2060"
	tests := []struct{ name, in, want string }{
		{"plain", "hello", "hello"},
		{"bold", "**bold** text", "*bold* text"},
		{"bold underscores", "__bold__", "*bold*"},
		{"italic star", "*it*", "_it_"},
		{"italic underscore", "_it_", "_it_"},
		{"strike", "~~gone~~", "~gone~"},
		{"nested", "**bold _and italic_**", "*bold _and italic_*"},
		{"bold inside bold is not doubled", "# Title **x**", "*Title x*"},
		{"code", "`a <b> **x**`", "`a &lt;b&gt; **x**`"},
		{"code block", "```go\nif a < b && c {}\n```", "```\nif a &lt; b &amp;&amp; c {}\n```"},
		{"quote", "> quoted\n> more\n\nafter", "> quoted\n> more\n\nafter"},
		{"quote with paragraphs", "> one\n>\n> two", "> one\n>\n> two"},
		{"nested quote is one quote", "> a\n> > b", "> a\n> b"},
		{"list", "- one\n- two", "• one\n• two"},
		{"ordered list", "1. one\n2. two", "1. one\n2. two"},
		{"nested list", "- one\n  - inner", "• one\n    • inner"},
		{"heading", "## Title\nbody", "*Title*\nbody"},
		{"link", "[docs](https://e.io/a?b=1&c=2)", "<https://e.io/a?b=1&amp;c=2|docs>"},
		{"link label is plain text", "[**docs** <x>](https://e.io)", "<https://e.io|docs &lt;x&gt;>"},
		{"autolink with a pipe", "[a](<https://e.io/x|y>z>)", "[a](<https://e.io/x%7Cy>z&gt;)"},
		{"pipe in a URL", "[a](https://e.io/x|y)", "<https://e.io/x%7Cy|a>"},
		{"unsafe link is text", "[click](javascript:alert(1))", "click (javascript:alert(1))"},
		{"mailto", "[write](mailto:a@b.io)", "<mailto:a@b.io|write>"},
		{"autolink", "<https://e.io>", "<https://e.io>"},
		{"bare URL", "see https://e.io/a_b_c now", "see <https://e.io/a_b_c> now"},
		{"email", "a@b.io", "<mailto:a@b.io>"},
		{"image", "![logo](https://e.io/l.png)", "<https://e.io/l.png|logo>"},
		{"image without alt", "![](https://e.io/l.png)", "<https://e.io/l.png>"},
		{"unsafe image", "![x](data:image/png;base64,AA)", "x (data:image/png;base64,AA)"},
		{"escapes only three characters", `x < y && "q" 'a' > z`, `x &lt; y &amp;&amp; "q" 'a' &gt; z`},
		{"markdown escapes resolved", `\*not italic\*`, "*not italic*"},
		{"entities resolved then escaped", "&amp; &lt;", "&amp; &lt;"},
		{"raw HTML is text", "a <b>x</b>", "a &lt;b&gt;x&lt;/b&gt;"},
		{"thematic break", "a\n\n***\n\nb", "a\n\n———\n\nb"},
		{"line breaks kept", "a\nb", "a\nb"},
		// Hostile agent text: nothing in it may become a mention or a link of Slack's.
		{"channel ping", "<!channel> hi @here", "&lt;!channel&gt; hi @" + wj + "here"},
		{"user mention", "<@U1>", "&lt;@U1&gt;"},
		{"group mention (CommonMark: an e-mail autolink)", "<!subteam^S1|@team>", "!subteam^S1|@team"},
		{"group mention in text", "hi <!subteam^S1|@team>!", "hi !subteam^S1|@team!"},
		{"group mention escaped", `\<!subteam^S1|@team>`, "&lt;!subteam^S1|@team&gt;"},
		{"escaped entity stays text", "&lt;", "&lt;"},
		{"escaped entity spelled out", `\&lt;!here\&gt;`, "&amp;lt;!here&amp;gt;"},
		{"at-words any case", "@Here @CHANNEL @everyone @hereafter", "@" + wj + "Here @" + wj + "CHANNEL @" + wj + "everyone @" + wj + "hereafter"},
		{"at-word inside code", "`@here`", "`@" + wj + "here`"},
		{"at-word in a link label", "[@everyone](https://e.io)", "<https://e.io|@" + wj + "everyone>"},
		{"mention in a link target", "[x](https://e.io/<!here>)", "<https://e.io/%3C!here%3E|x>"},
		{"everyday e-mail autolink", "<ann@e.io>", "<mailto:ann@e.io>"},
		{"pipe and bracket in a label", "[a|<!here>](https://e.io)", "<https://e.io|a|&lt;!here&gt;>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := markdownToMrkdwn(tc.in)
			if got != tc.want {
				t.Fatalf("markdownToMrkdwn(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
			assertNoSlackMarkup(t, got)
		})
	}
}

// assertNoSlackMarkup fails when s holds a <…> that Slack would read as a mention or special
// command, or an unescaped @here: the renderer writes only links.
func assertNoSlackMarkup(t *testing.T, s string) {
	t.Helper()
	for rest := s; ; {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		if rest == "" || strings.IndexByte("@#!", rest[0]) >= 0 {
			t.Fatalf("%q holds Slack markup", s)
		}
	}
	for _, w := range []string{"@here", "@channel", "@everyone"} {
		if strings.Contains(strings.ToLower(s), w) {
			t.Fatalf("%q holds %s without a word joiner", s, w)
		}
	}
}

func TestMarkdownToMrkdwnHostile(t *testing.T) {
	for name, in := range map[string]string{
		"40k brackets":   strings.Repeat("[", 40000),
		"40k stars":      strings.Repeat("*", 40000),
		"angle soup":     strings.Repeat("<!here><@U1>&amp;<#C1|x>", 2000),
		"nested lists":   strings.Repeat("- ", 20000) + "<!channel>",
		"invalid utf8":   strings.Repeat("\xff<", 3000),
		"links in links": strings.Repeat("[<https://e.io>](https://f.io)", 1000),
		"group mentions": strings.Repeat("<!subteam^S1|@team>", 1000),
	} {
		t.Run(name, func(t *testing.T) {
			got := markdownToMrkdwn(in)
			if !utf8.ValidString(got) || strings.TrimSpace(got) == "" {
				t.Fatalf("output invalid or empty: %.80q", got)
			}
			assertNoSlackMarkup(t, got)
		})
	}
}

func TestMrkdwnToMarkdown(t *testing.T) {
	names := func(kind byte, id string) string {
		switch string(kind) + id {
		case "@U123":
			return "ann"
		case "#C9":
			return "support"
		case "^S2":
			return "oncall"
		}
		return ""
	}
	tests := []struct{ name, in, want string }{
		{"plain", "hello", "hello"},
		{"labelled link", "<https://x.io/a?b=1&amp;c=2|the docs>", "[the docs](https://x.io/a?b=1&c=2)"},
		{"bare link", "<https://x.io/a_b_c>", "https://x.io/a_b_c"},
		{"link whose label is its URL", "<https://x.io|https://x.io>", "https://x.io"},
		{"mailto", "<mailto:a@b.io|a@b.io>", "mailto:a@b.io"},
		{"label with brackets", "<https://x.io|a [b]>", `[a \[b\]](https://x.io)`},
		{"URL with parentheses", "<https://x.io/a_(b)|w>", "[w](https://x.io/a_%28b%29)"},
		{"user resolved", "hi <@U123>", "hi @ann"},
		{"user with label resolved by names", "<@U123|old>", "@ann"},
		{"user falls back to label", "<@U7|bob>", "@bob"},
		{"user falls back to id", "<@U7>", "@U7"},
		{"channel with label", "<#C123|general>", "#general"},
		{"channel resolved", "<#C9>", "#support"},
		{"here", "<!here> and <!channel> and <!everyone>", "@here and @channel and @everyone"},
		{"here with label", "<!here|here>", "@here"},
		{"subteam with label", "<!subteam^S1|@team>", "@team"},
		{"subteam resolved", "<!subteam^S2>", "@oncall"},
		{"date falls back to its text", "<!date^1392734382^{date}|Feb 18>", "Feb 18"},
		{"bold", "*bold* text", "**bold** text"},
		{"italic", "_it_", "*it*"},
		{"strike", "~s~", "~~s~~"},
		{"nested", "*bold _both_*", "**bold *both***"},
		{"format around a link", "*see <https://x.io|docs>*", "**see [docs](https://x.io)**"},
		{"snake_case stays", "use snake_case_names", "use snake_case_names"},
		{"arithmetic stays", "2 * 3 * 4", "2 * 3 * 4"},
		{"unclosed stays", "*half", "*half"},
		{"no format across lines", "*a\nb*", "*a\nb*"},
		{"code unchanged", "`*x* <y> &amp;`", "`*x* <y> &`"},
		{"code block unchanged", "```*x*\n_y_ &lt;z&gt;```", "```\n*x*\n_y_ <z>\n```"},
		{"code block after text", "see ```x``` ok", "see \n```\nx\n```\n ok"},
		{"unescaped last", "&lt;@U123&gt; &amp;lt; a &gt; b", "<@U123> &lt; a > b"},
		{"quote", "&gt; quoted\nafter", "> quoted\nafter"},
		{"lone angle", "a < b", "a < b"},
		{"unclosed angle", "<https://x.io", "<https://x.io"},
		{"names nil", "<@U1|zed>", "@zed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fn := names
			if tc.name == "names nil" {
				fn = nil
			}
			if got := mrkdwnToMarkdown(tc.in, fn); got != tc.want {
				t.Fatalf("mrkdwnToMarkdown(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestMrkdwnRoundTrip checks that what the bridge sends reads back as what the agent wrote, for
// the formats both sides have.
func TestMrkdwnRoundTrip(t *testing.T) {
	for _, md := range []string{
		"**bold** and *it* and ~~gone~~",
		"see [docs](https://x.io/a?b=1&c=2) now",
		"`code <x>` & more",
		"x < y > z & w",
	} {
		if got := mrkdwnToMarkdown(markdownToMrkdwn(md), nil); got != md {
			t.Errorf("round trip of %q gave %q", md, got)
		}
	}
}

func TestMrkdwnToMarkdownHostile(t *testing.T) {
	for name, in := range map[string]string{
		"40k stars":       strings.Repeat("*", 40000),
		"40k openers":     strings.Repeat("*a _b ~c ", 5000),
		"40k angles":      strings.Repeat("<", 40000),
		"unclosed tokens": strings.Repeat("<@U1|", 10000),
		"backticks":       strings.Repeat("`", 40001),
		"fences":          strings.Repeat("```a", 10000),
		"invalid utf8":    strings.Repeat("\xff*", 5000),
	} {
		t.Run(name, func(t *testing.T) {
			got := mrkdwnToMarkdown(in, func(byte, string) string { return "" })
			if got == "" {
				t.Fatal("empty output")
			}
		})
	}
}

// BenchmarkMrkdwnToMarkdown shows the inbound conversion is linear on hostile input: compare
// ns/op between the sizes (each 4× the previous).
func BenchmarkMrkdwnToMarkdown(b *testing.B) {
	inputs := map[string]func(n int) string{
		"openers":         func(n int) string { return strings.Repeat("*a _b ~c ", n/9) },
		"angles":          func(n int) string { return strings.Repeat("<", n) },
		"unclosed tokens": func(n int) string { return strings.Repeat("<@U1|", n/5) },
		"backticks":       func(n int) string { return strings.Repeat("`a", n/2) },
	}
	for name, gen := range inputs {
		for _, n := range []int{10000, 40000} {
			in := gen(n)
			b.Run(name+"/"+strconv.Itoa(n), func(b *testing.B) {
				for b.Loop() {
					mrkdwnToMarkdown(in, nil)
				}
			})
		}
	}
}

// BenchmarkMarkdownToMrkdwn is the outbound rendering of the same kind of input.
func BenchmarkMarkdownToMrkdwn(b *testing.B) {
	for _, n := range []int{10000, 40000} {
		in := strings.Repeat("[", n/2) + strings.Repeat("*", n/2)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				markdownToMrkdwn(in)
			}
		})
	}
}
