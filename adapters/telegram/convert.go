package telegram

import (
	"html"
	"strconv"
	"strings"
	"unicode"

	"github.com/go-telegram/bot/models"

	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/markdown"
	"github.com/onechat/onechat-bridge/texts"
)

// maxMessageLen is Telegram's limit for the text of one message, in UTF-16 code units after
// entity parsing, that is of the text without its HTML tags.
const maxMessageLen = 4096

// maxCaptionLen is Telegram's limit for a media caption, counted the same way.
const maxCaptionLen = 1024

// style is a set of inline formats a piece of text carries.
type style uint8

const (
	stBold style = 1 << iota
	stItalic
	stStrike
	stCode
	stPre
	stQuote
)

// span is a run of plain text with one style. A message is rendered into spans once, then
// split and written as HTML, so that every part of a long message has balanced tags and the
// length limit is checked on the text Telegram counts rather than on the markup.
type span struct {
	text string
	st   style
	href string // link target; only for safe schemes
	lang string // language of a code block
}

// parseMarkdown renders the Markdown OneChat stores, as package markdown reads it, into
// spans: emphasis, strikethrough, code and links keep their format, headings become bold
// lines, quotes Telegram quotes, list items "• " or "1. " lines, and a link with an unsafe
// target its text. Raw HTML shows as text. It never fails, so an agent's message always
// arrives.
func parseMarkdown(s string) []span {
	var w spanWriter
	w.blocks(markdown.Parse(s).Root(), 0, "")
	return mergeSpans(w.out)
}

// spanWriter collects the spans of a message while walking its tree.
type spanWriter struct{ out []span }

func (w *spanWriter) add(text string, st style, href string) {
	w.out = append(w.out, span{text: text, st: st, href: href})
}

// blocks writes the blocks inside container n, separated by a blank line where the source had
// one and by a line break elsewhere. indent prefixes the list items of nested lists.
func (w *spanWriter) blocks(n markdown.Node, st style, indent string) {
	first := true
	for c := range n.Children() {
		if !first {
			w.separate(c, st)
		}
		first = false
		w.block(c, st, indent)
	}
}

func (w *spanWriter) separate(next markdown.Node, st style) {
	if next.BlankBefore() {
		w.add("\n\n", st, "")
	} else {
		w.add("\n", st, "")
	}
}

func (w *spanWriter) block(n markdown.Node, st style, indent string) {
	switch n.Kind() {
	case markdown.Heading:
		w.inlines(n, st|stBold, "")
	case markdown.ThematicBreak:
		w.add("———", st, "")
	case markdown.CodeBlock:
		w.out = append(w.out, span{text: n.Text(), st: st | stPre, lang: cleanLang(n.Language())})
	case markdown.HTMLBlock:
		w.add(n.Text(), st, "")
	case markdown.Quote:
		w.blocks(n, st|stQuote, indent)
	case markdown.List:
		num := n.Start()
		first := true
		for item := range n.Children() {
			if !first {
				w.separate(item, st)
			}
			first = false
			marker := "• "
			if n.Ordered() {
				marker = strconv.Itoa(num) + ". "
				num++
			}
			w.add(indent+marker, st, "")
			w.blocks(item, st, indent+"  ")
		}
	default: // a paragraph
		w.inlines(n, st, "")
	}
}

// inlines writes the inline content of n. href is the link n is inside of, if any: a link
// inside a link (possible with autolinks) keeps the outer one.
func (w *spanWriter) inlines(n markdown.Node, st style, href string) {
	for c := range n.Children() {
		switch c.Kind() {
		case markdown.CodeSpan:
			w.add(c.Text(), st|stCode, href)
		case markdown.Emphasis:
			w.inlines(c, st|stItalic, href)
		case markdown.Strong:
			w.inlines(c, st|stBold, href)
		case markdown.Strikethrough:
			w.inlines(c, st|stStrike, href)
		case markdown.Link, markdown.Image:
			target := href
			if dest := c.Destination(); href == "" && markdown.SafeLinkURL(dest) {
				target = dest
			}
			if c.Kind() == markdown.Image && strings.TrimSpace(c.Text()) == "" {
				w.add(c.Destination(), st, target) // an image without alt text shows its address
				continue
			}
			w.inlines(c, st, target)
		case markdown.AutoLink:
			target := href
			if dest := c.Destination(); href == "" && markdown.SafeLinkURL(dest) {
				target = dest
			}
			w.add(c.Text(), st, target)
		default: // text and raw HTML, which Telegram shows as text
			w.add(c.Text(), st, href)
			if c.LineBreak() {
				w.add("\n", st, href)
			}
		}
	}
}

func cleanLang(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '+' || r == '-' || r == '#' || r == '_' {
			return r
		}
		return -1
	}, s)
}

// mergeSpans joins neighbours with the same style and drops empty spans.
func mergeSpans(in []span) []span {
	var out []span
	for i := 0; i < len(in); {
		s, j := in[i], i+1
		if s.st&stPre == 0 { // two code blocks stay two
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

// plainText is the text of spans without formatting: what Telegram counts against its limits.
func plainText(spans []span) string {
	var b strings.Builder
	for _, s := range spans {
		b.WriteString(s.text)
	}
	return b.String()
}

// renderHTML writes spans as Telegram HTML. Text is escaped (&, <, >), and tags nest: a span
// closes only the tags its neighbour does not share, so "**bold _and italic_**" becomes
// <b>bold <i>and italic</i></b>. Every tag opened is closed at the end, so a part cut from a
// longer message is always well-formed.
func renderHTML(spans []span) string {
	var b strings.Builder
	var open []string // the open tags, outermost first, as written ("<a href=…>")
	for _, s := range spans {
		want := spanTags(s)
		same := 0
		for same < len(open) && same < len(want) && open[same] == want[same] {
			same++
		}
		for i := len(open) - 1; i >= same; i-- {
			b.WriteString(closeTag(open[i]))
		}
		open = append(open[:same], want[same:]...)
		for _, t := range want[same:] {
			b.WriteString(t)
		}
		text := html.EscapeString(s.text)
		text = strings.ReplaceAll(text, "&#39;", "'")
		text = strings.ReplaceAll(text, "&#34;", "\"")
		if s.st&stPre != 0 {
			if s.lang != "" {
				b.WriteString(`<pre><code class="language-` + s.lang + `">` + text + "</code></pre>")
			} else {
				b.WriteString("<pre>" + text + "</pre>")
			}
			continue
		}
		b.WriteString(text)
	}
	for i := len(open) - 1; i >= 0; i-- {
		b.WriteString(closeTag(open[i]))
	}
	return b.String()
}

// spanTags are the start tags a span is written inside, outermost first. A code block takes
// only the quote around it: Telegram allows no formatting inside pre.
func spanTags(s span) []string {
	var tags []string
	if s.st&stQuote != 0 {
		tags = append(tags, "<blockquote>")
	}
	if s.st&stPre != 0 {
		return tags
	}
	if s.href != "" {
		tags = append(tags, `<a href="`+html.EscapeString(s.href)+`">`)
	}
	for _, t := range []struct {
		st  style
		tag string
	}{{stBold, "<b>"}, {stItalic, "<i>"}, {stStrike, "<s>"}, {stCode, "<code>"}} {
		if s.st&t.st != 0 {
			tags = append(tags, t.tag)
		}
	}
	return tags
}

// closeTag is the end tag of a start tag written by spanTags.
func closeTag(start string) string {
	name, _, _ := strings.Cut(strings.Trim(start, "<>"), " ")
	return "</" + name + ">"
}

// formatted is a message ready to send: parts of Telegram HTML within the limit, each with its
// plain length.
type formatted struct {
	html  string
	plain string
}

// formatMarkdown converts OneChat Markdown to Telegram HTML parts of at most limit UTF-16
// code units of visible text each, split on paragraph, line or word boundaries.
func formatMarkdown(s string, limit int) []formatted {
	spans := parseMarkdown(s)
	plain := plainText(spans)
	if strings.TrimSpace(plain) == "" && strings.TrimSpace(s) != "" {
		// Markup that shows nothing (an empty code block, a lone fence): send it as written
		// rather than nothing, so the agent's message arrives.
		spans = []span{{text: strings.ToValidUTF8(s, "\uFFFD")}}
		plain = spans[0].text
	}
	var out []formatted
	for _, r := range (textsplit.Splitter{Unit: textsplit.UTF16}).Ranges(plain, limit) {
		part := sliceSpans(spans, r[0], r[1])
		out = append(out, formatted{html: renderHTML(part), plain: plain[r[0]:r[1]]})
	}
	return out
}

// sliceSpans returns the spans covering plain-text bytes [start, end).
func sliceSpans(spans []span, start, end int) []span {
	var out []span
	pos := 0
	for _, s := range spans {
		a, b := pos, pos+len(s.text)
		pos = b
		if b <= start || a >= end {
			continue
		}
		lo, hi := max(a, start)-a, min(b, end)-a
		s.text = s.text[lo:hi]
		out = append(out, s)
	}
	return out
}

// keyboard builds the inline keyboard of an interactive message: one button per row for an
// input_select option, a row of five ratings for input_csat. It returns nil for other kinds.
func keyboard(m bridge.Outbound) *models.InlineKeyboardMarkup {
	var rows [][]models.InlineKeyboardButton
	switch m.ContentType {
	case "input_select":
		for i, it := range m.Items {
			title := strings.TrimSpace(it.Title)
			if title == "" {
				title = it.Value
			}
			if title == "" {
				continue
			}
			data := cbValue + it.Value
			if it.Value == "" || len(data) > maxCallbackData {
				data = cbIndex + strconv.Itoa(i)
			}
			rows = append(rows, []models.InlineKeyboardButton{{Text: title, CallbackData: data}})
		}
	case "input_csat":
		var row []models.InlineKeyboardButton
		for i, face := range csatFaces {
			n := strconv.Itoa(i + 1)
			row = append(row, models.InlineKeyboardButton{Text: face + " " + n, CallbackData: cbCSAT + n})
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil
	}
	return &models.InlineKeyboardMarkup{InlineKeyboard: rows}
}

// csatFaces are the rating buttons, worst to best, as OneChat's own survey shows them.
var csatFaces = []string{"😞", "😑", "😐", "😀", "😍"}

// defaultCSATText asks for the rating when the agent's survey message has no text of its own.
// Send and Edit put the catalogue's texts.CSATPrompt in the user's language first
// (localize); its English text stays for a pure conversion without a host.
var defaultCSATText = texts.Builtin().Text(texts.Reference, texts.CSATPrompt, nil)

// outboundMarkdown is the Markdown to send for m: its text, plus the cards or articles of an
// interactive message written out as text with links, since Telegram has no cards.
func outboundMarkdown(m bridge.Outbound) string {
	text := m.Text
	if m.ContentType == "input_csat" && strings.TrimSpace(text) == "" {
		text = defaultCSATText
	}
	var blocks []string
	if strings.TrimSpace(text) != "" {
		blocks = append(blocks, text)
	}
	switch m.ContentType {
	case "cards", "article":
		for _, it := range m.Items {
			var lines []string
			title := escapeMarkdown(strings.TrimSpace(it.Title))
			switch {
			case title != "" && markdown.SafeLinkURL(it.Link):
				lines = append(lines, "**["+title+"]("+it.Link+")**")
			case title != "":
				lines = append(lines, "**"+title+"**")
			}
			if d := strings.TrimSpace(it.Description); d != "" {
				lines = append(lines, escapeMarkdown(d))
			}
			if title == "" && markdown.SafeLinkURL(it.Link) {
				lines = append(lines, it.Link)
			}
			if markdown.SafeLinkURL(it.MediaURL) {
				lines = append(lines, "[Image]("+it.MediaURL+")")
			}
			if len(lines) > 0 {
				blocks = append(blocks, strings.Join(lines, "\n"))
			}
		}
	}
	return strings.Join(blocks, "\n\n")
}
