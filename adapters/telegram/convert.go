package telegram

import (
	"html"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-telegram/bot/models"

	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
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

// span is a run of plain text with one style. A message is parsed into spans once, then split
// and rendered, so that every part of a long message has balanced tags and the length limit is
// checked on the text Telegram counts rather than on the markup.
type span struct {
	text string
	st   style
	href string // link target; only for safe schemes
	lang string // language of a code block
}

// maxInlineDepth bounds how deeply emphasis may nest, so hostile input ("*_~~*_~~…") costs
// linear time; deeper markers stay literal.
const maxInlineDepth = 6

// parseMarkdown reads the Markdown OneChat stores (what its editor writes: **bold**, *italic*
// or _italic_, ~~strike~~, `code`, ``` blocks, [links](url), # headings, > quotes, lists) into
// spans. It never fails: whatever does not parse as formatting is kept as literal text, and
// invalid UTF-8 becomes U+FFFD, so an agent's message always arrives.
func parseMarkdown(s string) []span {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var out []span
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); i++ {
		if i > 0 {
			out = append(out, span{text: "\n"})
		}
		line := lines[i]
		trimmed := strings.TrimLeft(line, " ")
		if fence, ok := strings.CutPrefix(trimmed, "```"); ok {
			lang := strings.TrimSpace(fence)
			var code []string
			j := i + 1
			for ; j < len(lines); j++ {
				if strings.HasPrefix(strings.TrimLeft(lines[j], " "), "```") {
					break
				}
				code = append(code, lines[j])
			}
			if strings.Contains(lang, "```") { // ```inline``` on one line
				out = append(out, span{text: strings.TrimSuffix(lang, "```"), st: stCode})
				continue
			}
			if text := strings.Join(code, "\n"); text != "" {
				out = append(out, span{text: text, st: stPre, lang: cleanLang(lang)})
			}
			i = j // the closing fence (or the end of an unclosed block)
			continue
		}
		var st style
		switch {
		case strings.HasPrefix(trimmed, "> ") || trimmed == ">":
			st = stQuote
			line = strings.TrimPrefix(strings.TrimPrefix(trimmed, ">"), " ")
		case headingLevel(trimmed) > 0:
			st = stBold
			line = strings.TrimSpace(trimmed[headingLevel(trimmed):])
		case strings.HasPrefix(trimmed, "- ") || strings.HasPrefix(trimmed, "* ") || strings.HasPrefix(trimmed, "+ "):
			indent := len(line) - len(trimmed)
			out = append(out, span{text: strings.Repeat(" ", indent) + "• "})
			line = trimmed[2:]
		}
		parseInline(line, st, "", 0, &out)
	}
	return mergeSpans(out)
}

func headingLevel(s string) int {
	n := 0
	for n < len(s) && n < 6 && s[n] == '#' {
		n++
	}
	if n == 0 || n >= len(s) || s[n] != ' ' {
		return 0
	}
	return n + 1
}

func cleanLang(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '+' || r == '-' || r == '#' || r == '_' {
			return r
		}
		return -1
	}, s)
}

// parseInline appends the spans of one line of inline Markdown.
func parseInline(s string, st style, href string, depth int, out *[]span) {
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			*out = append(*out, span{text: lit.String(), st: st, href: href})
			lit.Reset()
		}
	}
	// noClose remembers delimiters that have no closing match further on: looking again from
	// a later position cannot find one, which keeps "******…" linear.
	noClose := map[string]bool{}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && isASCIIPunct(s[i+1]):
			lit.WriteByte(s[i+1])
			i += 2
			continue
		case c == '`':
			n := 0
			for i+n < len(s) && s[i+n] == '`' {
				n++
			}
			delim := s[i : i+n]
			if j := strings.Index(s[i+n:], delim); j > 0 && !noClose[delim] {
				flush()
				code := s[i+n : i+n+j]
				if strings.TrimSpace(code) != "" && len(code) > 2 && code[0] == ' ' && code[len(code)-1] == ' ' {
					code = code[1 : len(code)-1]
				}
				*out = append(*out, span{text: code, st: st | stCode, href: href})
				i += 2*n + j
				continue
			}
			noClose[delim] = true
			lit.WriteString(delim)
			i += n
			continue
		case c == '[' && href == "":
			if text, target, n, ok := parseLink(s[i:]); ok {
				flush()
				if safeURL(target) {
					parseInline(text, st, target, depth+1, out)
				} else {
					parseInline(text, st, "", depth+1, out)
				}
				i += n
				continue
			}
		case (c == '*' || c == '_' || c == '~') && depth < maxInlineDepth && st&stCode == 0:
			delim, add := emphasis(s[i:])
			if delim == "" || noClose[delim] || (c == '_' && i > 0 && isWordByte(s[i-1])) {
				break
			}
			if j := findClose(s, i+len(delim), delim); j > 0 {
				flush()
				parseInline(s[i+len(delim):j], st|add, href, depth+1, out)
				i = j + len(delim)
				continue
			}
			noClose[delim] = true
			lit.WriteString(delim)
			i += len(delim)
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		lit.WriteString(s[i : i+size])
		i += size
	}
	flush()
}

// emphasis says which delimiter s starts with and the style it stands for.
func emphasis(s string) (string, style) {
	switch {
	case strings.HasPrefix(s, "**"), strings.HasPrefix(s, "__"):
		return s[:2], stBold
	case strings.HasPrefix(s, "~~"):
		return "~~", stStrike
	case s[0] == '*' || s[0] == '_':
		return s[:1], stItalic
	default:
		return "", 0
	}
}

// findClose returns the index of the delimiter that closes one opened just before from, or -1.
// The emphasised text must not be empty, start or end with a space; a single '*' or '_' is
// not taken from a double one; '_' must not be followed by a word character.
func findClose(s string, from int, delim string) int {
	if from < len(s) && (s[from] == ' ' || s[from] == '\n') {
		return -1
	}
	for j := from + 1; j+len(delim) <= len(s); j++ {
		if s[j:j+len(delim)] != delim || s[j-1] == ' ' || s[j-1] == '\\' {
			continue
		}
		if len(delim) == 1 {
			if j+1 < len(s) && s[j+1] == delim[0] {
				j++ // part of a double delimiter
				continue
			}
			if s[j-1] == delim[0] {
				continue
			}
		}
		if delim[0] == '_' && j+len(delim) < len(s) && isWordByte(s[j+len(delim)]) {
			continue
		}
		return j
	}
	return -1
}

// parseLink reads "[text](target)" at the start of s and returns its parts and length.
func parseLink(s string) (text, target string, n int, ok bool) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				if i+1 >= len(s) || s[i+1] != '(' {
					return "", "", 0, false
				}
				end, paren := -1, 0
				for j := i + 2; j < len(s) && end < 0; j++ {
					switch s[j] {
					case '(':
						paren++
					case ')':
						if paren == 0 {
							end = j - (i + 2)
						}
						paren--
					}
				}
				if end < 0 {
					return "", "", 0, false
				}
				target = strings.TrimSpace(s[i+2 : i+2+end])
				if t, _, found := strings.Cut(target, " "); found { // [x](url "title")
					target = t
				}
				return s[1:i], target, i + 3 + end, s[1:i] != "" && target != ""
			}
		}
	}
	return "", "", 0, false
}

// safeURL reports whether u may become a link: http, https, mailto and tg only, so that an
// agent's message cannot carry a javascript: or data: link.
func safeURL(u string) bool {
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

func isASCIIPunct(c byte) bool {
	return c < 0x80 && unicode.IsPunct(rune(c)) || strings.IndexByte("`*_~[]()#+-.!>|<=${}^", c) >= 0
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// mergeSpans joins neighbours with the same style and drops empty spans.
func mergeSpans(in []span) []span {
	out := in[:0]
	for _, s := range in {
		if s.text == "" {
			continue
		}
		if n := len(out); n > 0 && out[n-1].st == s.st && out[n-1].href == s.href && out[n-1].lang == s.lang && s.st&stPre == 0 {
			out[n-1].text += s.text
			continue
		}
		out = append(out, s)
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

// renderHTML writes spans as Telegram HTML. Text is escaped (&, <, >) and every span opens and
// closes its own tags, so a part cut from a longer message is always well-formed.
func renderHTML(spans []span) string {
	var b strings.Builder
	inQuote := false
	for _, s := range spans {
		if q := s.st&stQuote != 0; q != inQuote {
			if q {
				b.WriteString("<blockquote>")
			} else {
				b.WriteString("</blockquote>")
			}
			inQuote = q
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
		var open, closing string
		for _, t := range []struct {
			st  style
			tag string
		}{{stBold, "b"}, {stItalic, "i"}, {stStrike, "s"}, {stCode, "code"}} {
			if s.st&t.st != 0 {
				open += "<" + t.tag + ">"
				closing = "</" + t.tag + ">" + closing
			}
		}
		if s.href != "" {
			open = `<a href="` + html.EscapeString(s.href) + `">` + open
			closing += "</a>"
		}
		b.WriteString(open + text + closing)
	}
	if inQuote {
		b.WriteString("</blockquote>")
	}
	return b.String()
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
const defaultCSATText = "Please rate this conversation"

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
			case title != "" && safeURL(it.Link):
				lines = append(lines, "**["+title+"]("+it.Link+")**")
			case title != "":
				lines = append(lines, "**"+title+"**")
			}
			if d := strings.TrimSpace(it.Description); d != "" {
				lines = append(lines, escapeMarkdown(d))
			}
			if title == "" && safeURL(it.Link) {
				lines = append(lines, it.Link)
			}
			if safeURL(it.MediaURL) {
				lines = append(lines, "[Image]("+it.MediaURL+")")
			}
			if len(lines) > 0 {
				blocks = append(blocks, strings.Join(lines, "\n"))
			}
		}
	}
	return strings.Join(blocks, "\n\n")
}
