package slack

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/onechat/onechat-bridge/markdown"
)

// markdownToMrkdwn renders an agent's Markdown (as package markdown reads it) as Slack mrkdwn:
// **bold** → *bold*, *italic* → _italic_, ~~strike~~ → ~strike~, code and code blocks, quotes,
// list items as "• " or "1. " lines, headings as bold lines, [t](u) → <u|t> for a safe u (an
// unsafe one shows as "t (u)" in plain text), images as links.
//
// An agent's text can never ping anyone or make a link of its own: every character of it is
// escaped (& → &amp;, < → &lt;, > → &gt;, the only escapes Slack knows), so "<!channel>" or
// "<@U1>" arrive as text, and "@here", "@channel" and "@everyone" get a word joiner (U+2060)
// after the "@" in case Slack ever links them by name. Slack has no escape for * _ ~ `, so
// those characters in an agent's plain text can still format.
func markdownToMrkdwn(src string) string {
	var w mrkdwnWriter
	w.blocks(markdown.Parse(src).Root(), "")
	return strings.TrimRight(w.b.String(), "\n")
}

// mrkdwnWriter writes mrkdwn while walking the tree. Slack does not nest a format inside
// itself, so a style already open is not opened again.
type mrkdwnWriter struct {
	b                    strings.Builder
	bold, italic, strike bool
	inQuote              bool
}

// blocks writes the blocks inside container n, separated as in the source. indent prefixes
// the items of nested lists.
func (w *mrkdwnWriter) blocks(n markdown.Node, indent string) {
	first := true
	for c := range n.Children() {
		if !first {
			w.separate(c)
		}
		first = false
		w.block(c, indent)
	}
}

func (w *mrkdwnWriter) separate(next markdown.Node) {
	if next.BlankBefore() {
		w.b.WriteString("\n\n")
	} else {
		w.b.WriteString("\n")
	}
}

func (w *mrkdwnWriter) block(n markdown.Node, indent string) {
	switch n.Kind() {
	case markdown.Heading:
		w.styled(n, &w.bold, "*")
	case markdown.ThematicBreak:
		w.b.WriteString("———")
	case markdown.CodeBlock:
		w.b.WriteString("```\n" + mrkdwnEscape(n.Text()) + "\n```")
	case markdown.HTMLBlock:
		w.text(n.Text())
	case markdown.Quote:
		if w.inQuote { // Slack has one level of quote: a nested quote is part of it
			w.blocks(n, indent)
			return
		}
		var inner mrkdwnWriter
		inner.inQuote = true
		inner.blocks(n, indent)
		for i, line := range strings.Split(inner.b.String(), "\n") {
			if i > 0 {
				w.b.WriteByte('\n')
			}
			w.b.WriteString(strings.TrimRight("> "+line, " "))
		}
	case markdown.List:
		num := n.Start()
		first := true
		for item := range n.Children() {
			if !first {
				w.separate(item)
			}
			first = false
			marker := "• "
			if n.Ordered() {
				marker = strconv.Itoa(num) + ". "
				num++
			}
			w.b.WriteString(indent + marker)
			w.blocks(item, indent+"    ")
		}
	default: // a paragraph
		w.inlines(n)
	}
}

// styled writes n's inlines inside marker, unless that style is already open.
func (w *mrkdwnWriter) styled(n markdown.Node, open *bool, marker string) {
	if *open {
		w.inlines(n)
		return
	}
	*open = true
	w.b.WriteString(marker)
	w.inlines(n)
	w.b.WriteString(marker)
	*open = false
}

func (w *mrkdwnWriter) inlines(n markdown.Node) {
	for c := range n.Children() {
		switch c.Kind() {
		case markdown.CodeSpan:
			w.b.WriteString("`" + mrkdwnEscape(c.Text()) + "`")
		case markdown.Emphasis:
			w.styled(c, &w.italic, "_")
		case markdown.Strong:
			w.styled(c, &w.bold, "*")
		case markdown.Strikethrough:
			w.styled(c, &w.strike, "~")
		case markdown.Link, markdown.Image, markdown.AutoLink:
			w.link(c)
		default: // text and raw HTML, which Slack shows as text
			w.text(c.Text())
			if c.LineBreak() {
				w.b.WriteByte('\n')
			}
		}
	}
}

// link writes <url|label> for a safe target, and the label with the target in plain text
// otherwise. The label is plain text: Slack does not format inside it.
func (w *mrkdwnWriter) link(n markdown.Node) {
	dest := n.Destination()
	label := strings.Join(strings.Fields(n.Text()), " ")
	if !markdown.SafeLinkURL(dest) || (strings.HasPrefix(dest, "mailto:") && !mrkdwnPlainAddress(dest[len("mailto:"):])) {
		switch {
		case n.Kind() == markdown.AutoLink || dest == "":
			w.text(n.Text())
		case label == "":
			w.text(dest)
		default:
			w.text(label + " (" + dest + ")")
		}
		return
	}
	w.b.WriteString("<" + mrkdwnURL(dest))
	if label != "" && label != dest && "mailto:"+label != dest {
		w.b.WriteString("|" + mrkdwnEscape(label))
	}
	w.b.WriteString(">")
}

// mrkdwnPlainAddress reports whether addr is an everyday e-mail address. CommonMark reads
// "<!subteam^S1|@team>" as one, and as a link it would show Slack's syntax, so an odd address
// stays text.
func mrkdwnPlainAddress(addr string) bool {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" {
		return false
	}
	for _, r := range local + domain {
		if !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) || strings.ContainsRune(".-_+%", r)) {
			return false
		}
	}
	return true
}

func (w *mrkdwnWriter) text(s string) { w.b.WriteString(mrkdwnEscape(s)) }

// mrkdwnEscape escapes text for Slack: &, < and > become entities, and a word joiner follows
// the "@" of @here, @channel and @everyone.
func mrkdwnEscape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '@':
			b.WriteByte('@')
			for _, word := range []string{"here", "channel", "everyone"} {
				if len(s)-i-1 >= len(word) && strings.EqualFold(s[i+1:i+1+len(word)], word) {
					b.WriteString("\u2060")
					break
				}
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// mrkdwnURL makes u safe inside <…|…>: & is escaped as Slack expects, and the characters that
// would end the link or start its label are percent-encoded.
func mrkdwnURL(u string) string {
	return strings.NewReplacer("&", "&amp;", "<", "%3C", ">", "%3E", "|", "%7C", " ", "%20").Replace(u)
}

// mrkdwnToMarkdown turns the mrkdwn of a Slack message into the Markdown OneChat shows the
// agent: <https://x|label> → [label](https://x), <https://x> → https://x, mentions of users
// (<@U1>, <@U1|name>), channels (<#C1|general>), groups (<!subteam^S1|@team>) and <!here> →
// @name, #general, @team, @here; *bold* → **bold**, _italic_ → *italic*, ~strike~ → ~~strike~~;
// code spans and blocks keep their content. names resolves an id without a label ('@' for a
// user, '#' for a channel, '^' for a user group) and may be nil or return ""; the label, then
// the id, stand in. Slack's &amp;, &lt; and &gt; are unescaped after the markup is read, so an
// escaped "&lt;@U1&gt;" stays text.
func mrkdwnToMarkdown(s string, names func(kind byte, id string) string) string {
	resolve := func(kind byte, id, label string) string {
		if names != nil {
			if n := names(kind, id); n != "" {
				return n
			}
		}
		if label != "" {
			return label
		}
		return id
	}
	var pieces []mrkdwnPiece
	text := func(t string) {
		t = strings.ToValidUTF8(mrkdwnUnescape(t), "\uFFFD")
		for i, r := range t {
			pieces = append(pieces, mrkdwnPiece{text: t[i : i+utf8.RuneLen(r)]})
		}
	}
	atom := func(t string) { pieces = append(pieces, mrkdwnPiece{text: t, atomic: true}) }
	// angleEnd is the index of the first '>' or line break after the last '<' looked at; it is
	// found once for all the '<' before it, which keeps a line of unclosed '<' linear.
	angleEnd := -1
	for pos := 0; pos < len(s); {
		i := strings.IndexAny(s[pos:], "<`")
		if i < 0 {
			text(s[pos:])
			break
		}
		text(s[pos : pos+i])
		pos += i
		rest := s[pos:]
		switch {
		case strings.HasPrefix(rest, "```"):
			end := strings.Index(rest[3:], "```")
			if end < 0 {
				text(rest[:3])
				pos += 3
				continue
			}
			code := strings.Trim(mrkdwnUnescape(rest[3:3+end]), "\n")
			block := "```\n" + code + "\n```"
			if n := len(pieces); n > 0 && pieces[n-1].text != "\n" {
				block = "\n" + block // a fence must start its line
			}
			if after := rest[6+end:]; after != "" && after[0] != '\n' {
				block += "\n"
			}
			atom(block)
			pos += 6 + end
		case rest[0] == '`':
			end := strings.IndexAny(rest[1:], "`\n")
			if end <= 0 || rest[1+end] != '`' {
				text(rest[:1])
				pos++
				continue
			}
			atom(mrkdwnUnescape(rest[:end+2]))
			pos += end + 2
		default: // '<'
			if angleEnd <= pos {
				angleEnd = len(s)
				if j := strings.IndexAny(rest[1:], ">\n"); j >= 0 {
					angleEnd = pos + 1 + j
				}
			}
			if angleEnd == len(s) || angleEnd == pos+1 || s[angleEnd] != '>' {
				text(rest[:1])
				pos++
				continue
			}
			atom(mrkdwnToken(s[pos+1:angleEnd], resolve))
			pos = angleEnd + 1
		}
	}
	var b strings.Builder
	mrkdwnInline(pieces, 0, &b)
	return b.String()
}

// mrkdwnToken converts the inside of one <…> of Slack's text.
func mrkdwnToken(tok string, resolve func(kind byte, id, label string) string) string {
	body, label, _ := strings.Cut(tok, "|")
	label = mrkdwnUnescape(label)
	switch tok[0] {
	case '@':
		return "@" + strings.TrimPrefix(resolve('@', body[1:], label), "@")
	case '#':
		return "#" + strings.TrimPrefix(resolve('#', body[1:], label), "#")
	case '!':
		cmd, arg, _ := strings.Cut(body[1:], "^")
		switch cmd {
		case "here", "channel", "everyone":
			return "@" + cmd
		case "subteam":
			return "@" + strings.TrimPrefix(resolve('^', arg, label), "@")
		}
		if label != "" { // <!date^…|fallback> and the like
			return label
		}
		return "@" + cmd
	}
	url := mrkdwnUnescape(body)
	if label == "" || label == url || "mailto:"+label == url {
		return url
	}
	esc := strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`)
	dest := strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29", "<", "%3C", ">", "%3E")
	return "[" + esc.Replace(label) + "](" + dest.Replace(url) + ")"
}

// mrkdwnUnescape undoes Slack's three escapes in one pass, so "&amp;lt;" becomes "&lt;".
func mrkdwnUnescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(s)
}

// mrkdwnPiece is one character of Slack's text, or one atom (a converted link, mention or
// code) that formatting markers go around but never into.
type mrkdwnPiece struct {
	text   string
	atomic bool
}

// mrkdwnMarks are Slack's format markers and their Markdown; a marker's index is its bit in
// mrkdwnInline's sets.
var mrkdwnMarks = []struct {
	slack, md string
}{{"*", "**"}, {"_", "*"}, {"~", "~~"}}

// mrkdwnInline writes pieces with Slack's *bold*, _italic_ and ~strike~ turned into Markdown.
// A marker opens after the start, a blank or punctuation and before a non-blank; it closes on
// the same line, after a non-blank and before the end, a blank or punctuation. open holds the
// formats already open, which do not nest in themselves. Every opener looks for its closer at
// most once per line (noClose), so the cost stays linear.
func mrkdwnInline(ps []mrkdwnPiece, open uint8, b *strings.Builder) {
	var noClose uint8
	for i := 0; i < len(ps); i++ {
		p := ps[i]
		if p.text == "\n" {
			noClose = 0
		}
		m := -1
		for k, mk := range mrkdwnMarks {
			if !p.atomic && p.text == mk.slack {
				m = k
			}
		}
		bit := uint8(1) << max(m, 0)
		if m >= 0 && open&bit == 0 && noClose&bit == 0 &&
			(i == 0 || !mrkdwnWordPiece(ps[i-1])) && i+1 < len(ps) && !mrkdwnBlankPiece(ps[i+1]) {
			if j := mrkdwnCloser(ps, i, p.text); j > 0 {
				b.WriteString(mrkdwnMarks[m].md)
				mrkdwnInline(ps[i+1:j], open|bit, b)
				b.WriteString(mrkdwnMarks[m].md)
				i = j
				continue
			}
			noClose |= bit
		}
		b.WriteString(p.text)
	}
}

// mrkdwnCloser finds the marker that closes the one at ps[i], or -1.
func mrkdwnCloser(ps []mrkdwnPiece, i int, marker string) int {
	for j := i + 2; j < len(ps); j++ {
		p := ps[j]
		if p.text == "\n" && !p.atomic {
			return -1
		}
		if p.atomic || p.text != marker || mrkdwnBlankPiece(ps[j-1]) {
			continue
		}
		if j+1 == len(ps) || !mrkdwnWordPiece(ps[j+1]) {
			return j
		}
	}
	return -1
}

func mrkdwnWordPiece(p mrkdwnPiece) bool {
	if p.atomic {
		return false
	}
	r, _ := utf8.DecodeRuneInString(p.text)
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

func mrkdwnBlankPiece(p mrkdwnPiece) bool {
	if p.atomic {
		return false
	}
	r, _ := utf8.DecodeRuneInString(p.text)
	return unicode.IsSpace(r)
}
