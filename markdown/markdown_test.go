package markdown

import (
	"fmt"
	"strings"
	"testing"
)

// outline writes the tree as one line per node: kind, then the details a renderer reads.
func outline(n Node, depth int, b *strings.Builder) {
	b.WriteString(strings.Repeat(" ", depth) + n.Kind().String())
	switch n.Kind() {
	case Text, CodeSpan, CodeBlock, HTMLBlock, RawHTML, AutoLink:
		fmt.Fprintf(b, " %q", n.Text())
	}
	if n.LineBreak() {
		b.WriteString(" +br")
	}
	if n.BlankBefore() {
		b.WriteString(" +blank")
	}
	if d := n.Destination(); d != "" {
		fmt.Fprintf(b, " ->%q", d)
	}
	if l := n.Language(); l != "" {
		b.WriteString(" lang=" + l)
	}
	if n.Kind() == Heading {
		fmt.Fprintf(b, " h%d", n.Level())
	}
	if n.Kind() == List {
		fmt.Fprintf(b, " ordered=%v start=%d tight=%v", n.Ordered(), n.Start(), n.Tight())
	}
	b.WriteString("\n")
	for c := range n.Children() {
		outline(c, depth+1, b)
	}
}

func TestParse(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"emphasis kinds", "**b** *i* _i_ __b__ ~~s~~", `
Paragraph
 Strong
  Text "b"
 Text " "
 Emphasis
  Text "i"
 Text " "
 Emphasis
  Text "i"
 Text " "
 Strong
  Text "b"
 Text " "
 Strikethrough
  Text "s"
`},
		{"escapes and entities are resolved", `\*x\* &amp; &#65; &lt;b&gt;`, `
Paragraph
 Text "*x* & A"
 Text " <b>"
`},
		{"HTML stays text for the renderer", "a <b>x</b>", `
Paragraph
 Text "a "
 RawHTML "<b>"
 Text "x"
 RawHTML "</b>"
`},
		{"code keeps its backslashes", "`a\\*b`", `
Paragraph
 CodeSpan "a\\*b"
`},
		{"line breaks", "a\nb\\\nc", `
Paragraph
 Text "a" +br
 Text "b" +br
 Text "c"
`},
		{"blocks and blank lines", "# T\nbody\n\n- x\n- y\n\n> q\n\n---", `
Document
 Heading h1
  Text "T"
 Paragraph
  Text "body"
 List +blank ordered=false start=0 tight=true
  ListItem
   Paragraph
    Text "x"
  ListItem
   Paragraph
    Text "y"
 Quote +blank
  Paragraph
   Text "q"
 ThematicBreak +blank
`},
		{"ordered list", "3. a\n4. b", `
Document
 List ordered=true start=3 tight=true
  ListItem
   Paragraph
    Text "a"
  ListItem
   Paragraph
    Text "b"
`},
		{"fenced code", "```go\nif a < b {}\n```", `
Document
 CodeBlock "if a < b {}" lang=go
`},
		{"links", `[t\_x](https://e.io/a?b=1&amp;c=2 "title") ![alt](https://e.io/i.png) <https://e.io> <a@b.io> see https://e.io/a_b_c`, `
Paragraph
 Link ->"https://e.io/a?b=1&c=2"
  Text "t_x"
 Text " "
 Image ->"https://e.io/i.png"
  Text "alt"
 Text " "
 AutoLink "https://e.io" ->"https://e.io"
 Text " "
 AutoLink "a@b.io" ->"mailto:a@b.io"
 Text " see "
 AutoLink "https://e.io/a_b_c" ->"https://e.io/a_b_c"
`},
		{"CRLF and invalid UTF-8", "a\r\nb\xff", `
Paragraph
 Text "a" +br
 Text "b�"
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := Parse(tc.in).Root()
			var b strings.Builder
			if strings.HasPrefix(tc.want, "\nDocument") {
				outline(root, 0, &b)
			} else {
				for c := range root.Children() { // one paragraph: leave out the Document
					outline(c, 0, &b)
				}
			}
			if got := "\n" + b.String(); got != tc.want {
				t.Errorf("Parse(%q):\n%s\nwant:%s", tc.in, got, tc.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	root := Parse("# Title *x*\n\npara [link **b**](https://e.io) `c`\n\n```\ncode\n```").Root()
	if got, want := root.Text(), "Title x\npara link b c\ncode"; got != want {
		t.Errorf("Text() = %q, want %q", got, want)
	}
}

func TestKindString(t *testing.T) {
	for k := Document; k <= RawHTML; k++ {
		if s := k.String(); s == "" || s == "Kind(?)" {
			t.Errorf("kind %d has no name", k)
		}
	}
	if !Quote.IsBlock() || Text.IsBlock() || Link.IsBlock() {
		t.Error("IsBlock")
	}
}

func TestSafeLinkURL(t *testing.T) {
	for u, want := range map[string]bool{
		"https://e.io/x": true, "HTTP://e.io": true, "mailto:a@b.io": true, "tg://resolve?domain=x": true,
		"javascript:alert(1)": false, "JavaScript:alert(1)": false, "data:text/html,x": false,
		"https:///nohost": false, "/relative": false, "": false, "ftp://e.io": false, "%zz": false,
	} {
		if got := SafeLinkURL(u); got != want {
			t.Errorf("SafeLinkURL(%q) = %v, want %v", u, got, want)
		}
	}
}

// TestParseHostile checks that input built to defeat a parser is still read completely: every
// character of it comes back as text.
func TestParseHostile(t *testing.T) {
	for name, in := range map[string]string{
		"brackets": strings.Repeat("[", 40000),
		"stars":    strings.Repeat("*", 40000) + "x",
		"mixed":    strings.Repeat("*_~`[<", 5000),
		"lists":    strings.Repeat("- ", 20000) + "x",
		"links":    strings.Repeat("[a](", 10000) + "x",
	} {
		t.Run(name, func(t *testing.T) {
			root := Parse(in).Root()
			got := root.Text()
			if strings.Count(got, "x") != strings.Count(in, "x") || len(got) == 0 {
				t.Errorf("text of %d bytes lost to %d", len(in), len(got))
			}
		})
	}
}

// BenchmarkParsePathological shows that the parse is linear in the size of input built to
// make parsers quadratic: compare ns/op between the sizes (each 4× the previous).
func BenchmarkParsePathological(b *testing.B) {
	inputs := map[string]func(n int) string{
		"brackets":       func(n int) string { return strings.Repeat("[", n) },
		"stars":          func(n int) string { return strings.Repeat("*", n) },
		"brackets+stars": func(n int) string { return strings.Repeat("[", n) + strings.Repeat("*", n) },
		"open links":     func(n int) string { return strings.Repeat("[a](", n/4) },
		"emphasis pairs": func(n int) string { return strings.Repeat("*a _b ", n/6) },
		"nested quotes":  func(n int) string { return strings.Repeat(">", n) + " x" },
		"nested lists":   func(n int) string { return strings.Repeat("- ", n/2) + "x" },
		"link titles":    func(n int) string { return strings.Repeat(`[a](b "`, n/7) },
		"backticks":      func(n int) string { return strings.Repeat("`a``", n/4) },
	}
	for name, gen := range inputs {
		for _, n := range []int{2500, 10000, 40000} {
			src := gen(n)
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				b.SetBytes(int64(len(src)))
				for b.Loop() {
					Parse(src).Root().Text()
				}
			})
		}
	}
}

func TestDefuse(t *testing.T) {
	long := strings.Repeat("x", maxLinkTail+10)
	tests := []struct{ name, in, want string }{
		{"ordinary text untouched", "a [b](https://e.io) > c\n- d\n> e", "a [b](https://e.io) > c\n- d\n> e"},
		{"nesting up to the limit untouched", strings.Repeat("> ", maxNesting) + "x", strings.Repeat("> ", maxNesting) + "x"},
		{"marker past the limit escaped", strings.Repeat("- ", maxNesting+2) + "x", strings.Repeat("- ", maxNesting) + `\- - x`},
		{"ordered markers count", strings.Repeat("1. ", maxNesting) + "2) x", strings.Repeat("1. ", maxNesting) + `\2) x`},
		{"thematic break untouched", strings.Repeat("- ", maxNesting+5), strings.Repeat("- ", maxNesting+5)},
		{"long link tail escaped", "[a](" + long, `[a]\(` + long},
		{"long title escaped", `[a](b "` + long, `[a]\(b "` + long},
		{"closed link tail untouched", "[a](" + long[:100] + ")" + long, "[a](" + long[:100] + ")" + long},
		{"link tail ending at a blank untouched", "[a](b c" + long, "[a](b c" + long},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := defuse(tc.in); got != tc.want {
				t.Errorf("defuse(%.60q…) = %.80q…", tc.in, got)
			}
		})
	}
	// What a reader sees is unchanged: the escaped marker is the same character as text.
	deep := Parse(strings.Repeat("> ", maxNesting+3) + "x").Root()
	if got, want := deep.Text(), strings.Repeat("> ", 3)+"x"; got != want {
		t.Errorf("deep quote text %q, want %q", got, want)
	}
}
