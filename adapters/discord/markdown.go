package discord

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/markdown"
)

// dstyle is a set of formats a piece of text carries on Discord.
type dstyle uint8

const (
	dBold dstyle = 1 << iota
	dItalic
	dStrike
	dCode
	dPre
	dQuote
	dRaw // markup the renderer wrote itself (a list marker): not escaped
)

// dspan is a run of text with one style. A message is rendered into spans once and then
// split, so every part is written with its own balanced markers: a bold sentence or a code
// block cut in two is bold, or a code block, in both parts.
type dspan struct {
	text string
	st   dstyle
	href string // masked link target (http or https)
	lang string // language of a code block
}

// discordContent renders an agent's Markdown (as package markdown reads it) as Discord
// Markdown in parts of at most limit UTF-16 units of content, markup included. Discord reads
// most of CommonMark, but not all of it alike (__x__ underlines, images and reference links do
// not show, <…> can be a mention or a timestamp), so the text is written again: the agent's
// characters escaped, bold, italic, strikethrough, code, code blocks, quotes and lists in the
// syntax Discord reads, headings as bold lines, links with an http(s) target as masked links
// and others as text. It returns nil when there is nothing to send.
func discordContent(src string, limit int) []string {
	var w dspanWriter
	w.blocks(markdown.Parse(src).Root(), 0, "")
	spans := mergeDspans(w.out)
	var plain strings.Builder
	for _, s := range spans {
		plain.WriteString(s.text)
	}
	text := plain.String()
	if strings.TrimSpace(text) == "" && strings.TrimSpace(src) != "" {
		// Markup that shows nothing (an empty code block): send it as written, as text.
		text = strings.ToValidUTF8(src, "\uFFFD")
		spans = []dspan{{text: text}}
	}
	// Markup and escapes make a part longer than its text: split the text at a limit that
	// leaves room for them, lowering it until every part fits.
	room := limit
	for range 8 {
		var parts []string
		longest := 0
		cur := dspanCursor{spans: spans}
		for _, r := range (textsplit.Splitter{Unit: textsplit.UTF16}).Ranges(text, room) {
			p := renderDiscord(cur.slice(r[0], r[1]))
			longest = max(longest, textsplit.UTF16.Len(p))
			parts = append(parts, p)
		}
		if longest <= limit {
			return parts
		}
		room = max(1, min(room-1, room*limit/longest-8))
	}
	// Unreachable in practice (escapes at most double the text); cut the whole rendering.
	return textsplit.Split(renderDiscord(spans), limit, textsplit.UTF16)
}

// dspanWriter collects the spans of a message while walking its tree.
type dspanWriter struct{ out []dspan }

func (w *dspanWriter) add(text string, st dstyle, href string) {
	w.out = append(w.out, dspan{text: text, st: st, href: href})
}

// blocks writes the blocks inside container n, separated by a blank line where the source had
// one and by a line break elsewhere. indent prefixes the items of nested lists.
func (w *dspanWriter) blocks(n markdown.Node, st dstyle, indent string) {
	first := true
	for c := range n.Children() {
		if !first {
			w.separate(c, st)
		}
		first = false
		w.block(c, st, indent)
	}
}

func (w *dspanWriter) separate(next markdown.Node, st dstyle) {
	if next.BlankBefore() {
		w.add("\n\n", st, "")
	} else {
		w.add("\n", st, "")
	}
}

func (w *dspanWriter) block(n markdown.Node, st dstyle, indent string) {
	switch n.Kind() {
	case markdown.Heading:
		w.inlines(n, st|dBold, "")
	case markdown.ThematicBreak:
		w.add("———", st, "")
	case markdown.CodeBlock:
		w.out = append(w.out, dspan{text: n.Text(), st: st | dPre, lang: discordLang(n.Language())})
	case markdown.HTMLBlock:
		w.add(n.Text(), st, "")
	case markdown.Quote:
		w.blocks(n, st|dQuote, indent)
	case markdown.List:
		num := n.Start()
		first := true
		for item := range n.Children() {
			if !first {
				w.separate(item, st)
			}
			first = false
			marker := "- "
			if n.Ordered() {
				marker = strconv.Itoa(num) + ". "
				num++
			}
			w.add(indent+marker, st|dRaw, "")
			w.blocks(item, st, indent+"  ")
		}
	default: // a paragraph
		w.inlines(n, st, "")
	}
}

// inlines writes the inline content of n; href is the masked link n is inside of, if any.
func (w *dspanWriter) inlines(n markdown.Node, st dstyle, href string) {
	for c := range n.Children() {
		switch c.Kind() {
		case markdown.CodeSpan:
			w.add(c.Text(), st|dCode, href)
		case markdown.Emphasis:
			w.inlines(c, st|dItalic, href)
		case markdown.Strong:
			w.inlines(c, st|dBold, href)
		case markdown.Strikethrough:
			w.inlines(c, st|dStrike, href)
		case markdown.Link, markdown.Image:
			dest := c.Destination()
			label := strings.TrimSpace(c.Text())
			switch {
			case href == "" && isWebURL(dest) && label != "":
				w.inlines(c, st, dest)
			case href == "" && isWebURL(dest):
				w.add(dest, st|dRaw, "") // an image without alt text: its address, which Discord links
			case markdown.SafeLinkURL(dest) && label != dest:
				w.inlines(c, st, href)
				w.add(" ("+dest+")", st, href)
			default: // an unsafe target: the text only
				w.inlines(c, st, href)
			}
		case markdown.AutoLink:
			if href == "" && isWebURL(c.Destination()) {
				w.add(c.Text(), st|dRaw, "") // Discord links a bare URL itself; escapes would break it
			} else {
				w.add(c.Text(), st, href)
			}
		default: // text and raw HTML, which Discord shows as text
			w.add(c.Text(), st, href)
			if c.LineBreak() {
				w.add("\n", st, href)
			}
		}
	}
}

// discordLang keeps the characters a code block's language may have.
func discordLang(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '+' || r == '-' || r == '#' || r == '_' {
			return r
		}
		return -1
	}, s)
}

// mergeDspans joins neighbours with the same style and drops empty spans.
func mergeDspans(in []dspan) []dspan {
	var out []dspan
	for i := 0; i < len(in); {
		s, j := in[i], i+1
		if s.st&dPre == 0 { // two code blocks stay two
			for j < len(in) && (in[j].text == "" || in[j].st == s.st && in[j].href == s.href && in[j].lang == s.lang) {
				j++
			}
		}
		if j > i+1 { // one copy for the whole run: appending span by span would be quadratic
			var b strings.Builder
			for _, t := range in[i:j] {
				b.WriteString(t.text)
			}
			s.text = b.String()
		}
		if s.text != "" {
			out = append(out, s)
		}
		i = j
	}
	return out
}

// dspanCursor slices spans by text offsets, for ranges asked in increasing order, in time
// linear in the spans and ranges together.
type dspanCursor struct {
	spans []dspan
	i     int // the first span that may still overlap a later range
	pos   int // the text offset where spans[i] starts
}

// slice returns the spans covering text bytes [start, end); start is at least the end of the
// previous range.
func (c *dspanCursor) slice(start, end int) []dspan {
	for c.i < len(c.spans) && c.pos+len(c.spans[c.i].text) <= start {
		c.pos += len(c.spans[c.i].text)
		c.i++
	}
	var out []dspan
	pos := c.pos
	for j := c.i; j < len(c.spans) && pos < end; j++ {
		s := c.spans[j]
		a, b := pos, pos+len(s.text)
		pos = b
		s.text = s.text[max(a, start)-a : min(b, end)-a]
		out = append(out, s)
	}
	return out
}

// dRenderer writes spans as Discord Markdown. Inline markers nest: a span closes only the
// markers its neighbour does not share, and every line closes them all, because Discord does
// not carry a format across a quoted line.
type dRenderer struct {
	b         strings.Builder
	open      []string // open markers, outermost first: "[" + target, "**", "*", "~~"
	lineStart bool     // nothing but a quote prefix written on this line yet
}

func renderDiscord(spans []dspan) string {
	r := &dRenderer{lineStart: true}
	for _, s := range spans {
		if s.st&dPre != 0 {
			r.codeBlock(s)
			continue
		}
		for k, line := range strings.Split(s.text, "\n") {
			if k > 0 {
				r.closeFrom(0)
				r.b.WriteByte('\n')
				r.lineStart = true
			}
			if line == "" {
				continue
			}
			if r.lineStart && s.st&dQuote != 0 {
				r.b.WriteString("> ")
			}
			r.openFor(s)
			switch {
			case s.st&dRaw != 0:
				r.b.WriteString(line)
			case s.st&dCode != 0:
				r.b.WriteString(discordCodeSpan(line))
			default:
				r.b.WriteString(discordEscape(line, r.lineStart))
			}
			r.lineStart = false
		}
	}
	r.closeFrom(0)
	return r.b.String()
}

// markersFor lists the inline markers span s is written inside, outermost first.
func markersFor(s dspan) []string {
	var m []string
	if s.href != "" {
		m = append(m, "["+s.href)
	}
	if s.st&dBold != 0 {
		m = append(m, "**")
	}
	if s.st&dItalic != 0 {
		m = append(m, "*")
	}
	if s.st&dStrike != 0 {
		m = append(m, "~~")
	}
	return m
}

func (r *dRenderer) openFor(s dspan) {
	want := markersFor(s)
	same := 0
	for same < len(r.open) && same < len(want) && r.open[same] == want[same] {
		same++
	}
	r.closeFrom(same)
	for _, m := range want[same:] {
		r.b.WriteString(m[:markerLen(m)])
		r.open = append(r.open, m)
		r.lineStart = false
	}
}

// markerLen is how much of an open-marker entry is written to open it: "[" for a link.
func markerLen(m string) int {
	if m[0] == '[' {
		return 1
	}
	return len(m)
}

// closeFrom closes the open markers from index i on, innermost first.
func (r *dRenderer) closeFrom(i int) {
	for j := len(r.open) - 1; j >= i; j-- {
		m := r.open[j]
		if m[0] == '[' {
			r.b.WriteString("](" + discordURL(m[1:]) + ")")
		} else {
			r.b.WriteString(m)
		}
	}
	r.open = r.open[:min(i, len(r.open))]
}

// codeBlock writes a fenced code block on lines of its own, quoted when s is.
func (r *dRenderer) codeBlock(s dspan) {
	r.closeFrom(0)
	if !r.lineStart {
		r.b.WriteByte('\n')
	}
	prefix := ""
	if s.st&dQuote != 0 {
		prefix = "> "
	}
	// A fence inside the code would end the block: a zero-width space breaks it up.
	code := strings.ReplaceAll(strings.Trim(s.text, "\n"), "```", "``\u200b`")
	r.b.WriteString(prefix + "```" + s.lang + "\n")
	for _, line := range strings.Split(code, "\n") {
		r.b.WriteString(prefix + line + "\n")
	}
	r.b.WriteString(prefix + "```")
	r.lineStart = false
}

// discordCodeSpan writes code inline, with enough backticks around it for the ones inside.
func discordCodeSpan(code string) string {
	if !strings.Contains(code, "`") {
		return "`" + code + "`"
	}
	code = strings.ReplaceAll(code, "``", "`\u200b`")
	return "`` " + code + " ``"
}

// discordEscape backslash-escapes what Discord would read as markup in text: format
// characters, link brackets, < (mentions, channels, timestamps, custom emoji) and, at the
// start of a line, what starts a heading, a list or a quote. Discord hides a backslash before
// any punctuation, so an escape never shows.
func discordEscape(s string, lineStart bool) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	if lineStart {
		t := strings.TrimLeft(s, " ")
		b.WriteString(s[:len(s)-len(t)])
		s = t
		if s != "" && strings.IndexByte("#-+", s[0]) >= 0 {
			b.WriteByte('\\')
		} else if d := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }); d > 0 && (s[d] == '.' || s[d] == ')') {
			b.WriteString(s[:d] + "\\")
			s = s[d:]
		}
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte("\\*_~`|[]<>", s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// discordURL makes u safe as a masked link's target.
func discordURL(u string) string {
	return strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29", "<", "%3C", ">", "%3E").Replace(u)
}
