// Package markdown reads the CommonMark that OneChat stores (what its editor and agents write)
// once, with goldmark, and offers the platform renderers of the adapters a small read-only view
// of the tree: what each node is, its literal text and its link target. Every adapter renders
// the same reading of a message, so **bold** or a link means the same on every platform, and no
// adapter keeps a parser of its own.
//
// Parsing never fails: what is not formatting is text. The parser's cost is linear in the size
// of the input, hostile input included (BenchmarkParsePathological).
package markdown

import (
	"bufio"
	"bytes"
	"html"
	"iter"
	"net/url"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	gmhtml "github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/text"
)

// Kind is what a node of the tree is.
type Kind uint8

// The kinds of nodes. Blocks contain blocks or inlines; inlines contain inlines; Text, CodeSpan,
// CodeBlock, HTMLBlock, RawHTML and ThematicBreak have no children a renderer needs.
const (
	// Document is the root.
	Document Kind = iota
	// Paragraph is a paragraph, or the text of a tight list item.
	Paragraph
	// Heading is an ATX (# Title) or setext heading; Level says which.
	Heading
	// ThematicBreak is a horizontal rule (---).
	ThematicBreak
	// CodeBlock is a fenced or indented code block; Text is the code, Language the info string's
	// first word.
	CodeBlock
	// HTMLBlock is a block of raw HTML; Text is its source, to be shown as text.
	HTMLBlock
	// Quote is a block quote (> …).
	Quote
	// List is a bullet or ordered list of ListItems; see Ordered, Start and Tight.
	List
	// ListItem is one item of a List.
	ListItem
	// Text is literal text with escapes and entities resolved; LineBreak says whether a line
	// break follows it.
	Text
	// Emphasis is *x* or _x_.
	Emphasis
	// Strong is **x** or __x__.
	Strong
	// Strikethrough is ~~x~~ (or ~x~).
	Strikethrough
	// CodeSpan is `x`; Text is the code.
	CodeSpan
	// Link is [text](destination); its children are the text.
	Link
	// Image is ![alt](destination); its children are the alt text.
	Image
	// AutoLink is <https://…>, <a@b.c> or a bare URL in text; Text is what was written,
	// Destination the URL (mailto: added for an e-mail address).
	AutoLink
	// RawHTML is an inline HTML tag; Text is its source, to be shown as text.
	RawHTML
)

var kindNames = [...]string{"Document", "Paragraph", "Heading", "ThematicBreak", "CodeBlock",
	"HTMLBlock", "Quote", "List", "ListItem", "Text", "Emphasis", "Strong", "Strikethrough",
	"CodeSpan", "Link", "Image", "AutoLink", "RawHTML"}

// String names the kind, for tests and debugging.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(?)"
}

// IsBlock reports whether nodes of kind k are blocks, which renderers separate by line breaks.
func (k Kind) IsBlock() bool { return k <= ListItem }

// md is the one parser configuration: CommonMark, ~~strikethrough~~, and bare http(s) and
// www. URLs and e-mail addresses read as links, so that a URL's _ and * are never emphasis.
// Raw HTML is parsed (CommonMark requires it) but renderers show it as text.
var md = goldmark.New(goldmark.WithExtensions(
	extension.Strikethrough,
	extension.NewLinkify(extension.WithLinkifyAllowedProtocols([]string{"http:", "https:"})),
))

// Doc is a parsed message.
type Doc struct {
	src  []byte
	root ast.Node
}

// Parse reads src as CommonMark. Invalid UTF-8 becomes U+FFFD and CRLF line ends become LF
// first, so every string the tree gives back is valid UTF-8 and renderers see one kind of line
// break. Structures no message needs (more than 32 nested quotes or lists on a line, a link
// whose destination runs on for a kilobyte) are read as text, which keeps the cost linear; see
// defuse.
func Parse(src string) *Doc {
	src = strings.ToValidUTF8(src, "\uFFFD")
	src = strings.ReplaceAll(src, "\r\n", "\n")
	b := []byte(defuse(src))
	return &Doc{src: b, root: md.Parser().Parse(text.NewReader(b))}
}

// Root is the Document node.
func (d *Doc) Root() Node { return Node{n: d.root, src: d.src} }

// Node is one node of a Doc. The zero Node stands for "none" (IsZero).
type Node struct {
	n   ast.Node
	src []byte
}

// IsZero reports whether n is no node, as returned past the last child.
func (n Node) IsZero() bool { return n.n == nil }

func (n Node) wrap(a ast.Node) Node {
	if a == nil {
		return Node{}
	}
	return Node{n: a, src: n.src}
}

// Kind is what n is.
func (n Node) Kind() Kind {
	switch v := n.n.(type) {
	case *ast.Document:
		return Document
	case *ast.Paragraph, *ast.TextBlock:
		return Paragraph
	case *ast.Heading:
		return Heading
	case *ast.ThematicBreak:
		return ThematicBreak
	case *ast.CodeBlock, *ast.FencedCodeBlock:
		return CodeBlock
	case *ast.HTMLBlock:
		return HTMLBlock
	case *ast.Blockquote:
		return Quote
	case *ast.List:
		return List
	case *ast.ListItem:
		return ListItem
	case *ast.Emphasis:
		if v.Level >= 2 {
			return Strong
		}
		return Emphasis
	case *east.Strikethrough:
		return Strikethrough
	case *ast.CodeSpan:
		return CodeSpan
	case *ast.Link:
		return Link
	case *ast.Image:
		return Image
	case *ast.AutoLink:
		return AutoLink
	case *ast.RawHTML:
		return RawHTML
	default: // *ast.Text, *ast.String and anything an extension might add: text
		if n.n.Type() == ast.TypeBlock {
			return Paragraph
		}
		return Text
	}
}

// Children iterates over n's children in order. It yields nothing for the kinds whose content
// is Text (CodeSpan, CodeBlock, HTMLBlock, RawHTML, AutoLink).
func (n Node) Children() iter.Seq[Node] {
	return func(yield func(Node) bool) {
		switch n.Kind() {
		case CodeSpan, CodeBlock, HTMLBlock, RawHTML, AutoLink, Text:
			return
		}
		for c := n.n.FirstChild(); c != nil; c = c.NextSibling() {
			if !yield(n.wrap(c)) {
				return
			}
		}
	}
}

// BlankBefore reports whether the source has a blank line between block n and the block before
// it (false for a first child), so that renderers can keep the author's paragraph breaks
// ("\n\n") apart from plain line breaks ("\n").
func (n Node) BlankBefore() bool {
	return n.n.Type() == ast.TypeBlock && n.n.PreviousSibling() != nil && n.n.HasBlankPreviousLines()
}

// LineBreak reports whether a line break follows Text n: a soft or hard break in the source.
// Chat platforms show both as a new line.
func (n Node) LineBreak() bool {
	t, ok := n.n.(*ast.Text)
	return ok && (t.SoftLineBreak() || t.HardLineBreak())
}

// Level is a Heading's level, 1 to 6; 0 for other kinds.
func (n Node) Level() int {
	if h, ok := n.n.(*ast.Heading); ok {
		return h.Level
	}
	return 0
}

// Ordered reports whether List n is numbered.
func (n Node) Ordered() bool {
	l, ok := n.n.(*ast.List)
	return ok && l.IsOrdered()
}

// Start is the first number of an ordered List.
func (n Node) Start() int {
	if l, ok := n.n.(*ast.List); ok {
		return l.Start
	}
	return 0
}

// Tight reports whether List n is tight: its items are not separated by blank lines.
func (n Node) Tight() bool {
	l, ok := n.n.(*ast.List)
	return ok && l.IsTight
}

// Language is the first word of a fenced CodeBlock's info string ("go" in ```go), "" otherwise.
func (n Node) Language() string {
	if f, ok := n.n.(*ast.FencedCodeBlock); ok {
		return decode(f.Language(n.src))
	}
	return ""
}

// Destination is the target of a Link, Image or AutoLink as the author wrote it, with escapes
// and entities resolved; "" for other kinds. Check it with SafeLinkURL before making a link.
func (n Node) Destination() string {
	switch v := n.n.(type) {
	case *ast.Link:
		return decode(v.Destination)
	case *ast.Image:
		return decode(v.Destination)
	case *ast.AutoLink:
		u := string(v.URL(n.src))
		if v.AutoLinkType == ast.AutoLinkEmail && !strings.HasPrefix(strings.ToLower(u), "mailto:") {
			u = "mailto:" + u
		}
		return u
	}
	return ""
}

// Text is the literal text of n, to be escaped by the renderer for its platform:
//   - Text: the text, backslash escapes and entities (&amp;) resolved;
//   - CodeSpan: the code, a line break inside read as a space, as CommonMark says;
//   - CodeBlock: the code, without the final line break;
//   - HTMLBlock, RawHTML: the HTML as written, which platforms show as text;
//   - AutoLink: the link as written;
//   - other kinds: the concatenated text of the descendants (the plain text of a heading, a
//     link's text, an image's alt text), line breaks included.
func (n Node) Text() string {
	switch v := n.n.(type) {
	case *ast.Text:
		if v.IsRaw() {
			return string(v.Segment.Value(n.src))
		}
		return decode(v.Segment.Value(n.src))
	case *ast.String:
		if v.IsCode() || v.IsRaw() {
			return string(v.Value)
		}
		return decode(v.Value)
	case *ast.CodeSpan:
		var b strings.Builder
		for c := v.FirstChild(); c != nil; c = c.NextSibling() {
			var s []byte
			switch t := c.(type) {
			case *ast.Text:
				s = t.Segment.Value(n.src)
			case *ast.String:
				s = t.Value
			}
			if bytes.HasSuffix(s, []byte("\n")) {
				s = append(s[:len(s)-1:len(s)-1], ' ')
			}
			b.Write(s)
		}
		return b.String()
	case *ast.CodeBlock, *ast.FencedCodeBlock, *ast.HTMLBlock:
		var b strings.Builder
		lines := v.Lines()
		for i := 0; i < lines.Len(); i++ {
			seg := lines.At(i)
			b.Write(seg.Value(n.src))
		}
		if h, ok := v.(*ast.HTMLBlock); ok && h.HasClosure() {
			b.Write(h.ClosureLine.Value(n.src))
		}
		return strings.TrimSuffix(b.String(), "\n")
	case *ast.RawHTML:
		var b strings.Builder
		for i := 0; i < v.Segments.Len(); i++ {
			seg := v.Segments.At(i)
			b.Write(seg.Value(n.src))
		}
		return b.String()
	case *ast.AutoLink:
		return string(v.Label(n.src))
	}
	var b strings.Builder
	n.plainText(&b)
	return b.String()
}

func (n Node) plainText(b *strings.Builder) {
	first := true
	for c := range n.Children() {
		if c.Kind().IsBlock() && !first {
			b.WriteByte('\n')
		}
		first = false
		switch c.Kind() {
		case Text, CodeSpan, AutoLink, RawHTML, CodeBlock, HTMLBlock:
			b.WriteString(c.Text())
			if c.LineBreak() {
				b.WriteByte('\n')
			}
		default:
			c.plainText(b)
		}
	}
}

// decode resolves backslash escapes, entity and numeric character references and NUL in
// source text, exactly as goldmark's HTML renderer does, by letting that renderer write HTML
// and unescaping its output.
func decode(src []byte) string {
	if !bytes.ContainsAny(src, "\\&\x00") {
		return string(src)
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	gmhtml.DefaultWriter.Write(w, src)
	_ = w.Flush() // a bytes.Buffer does not fail
	return html.UnescapeString(buf.String())
}

// SafeLinkURL reports whether u may become a clickable link on a platform: http and https with
// a host, mailto and tg only, so that an agent's message cannot carry a javascript: or data:
// link. Renderers show the text of a link with any other target.
func SafeLinkURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	switch strings.ToLower(p.Scheme) {
	case "http", "https":
		return p.Host != ""
	case "mailto", "tg":
		return true
	}
	return false
}
