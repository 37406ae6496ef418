// Package textsplit cuts text that is over a platform's length limit into parts that fit, and
// shortens text that must fit in one. Platforms count their limits in different units
// (Telegram and Discord in UTF-16 code units, others in characters or bytes), so the unit is a
// parameter, and a cut never lands inside a character: not inside a UTF-8 sequence, not between
// the two halves of a surrogate pair.
package textsplit

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// Unit is what a length limit counts.
type Unit int

const (
	// Runes counts Unicode code points.
	Runes Unit = iota
	// UTF16 counts UTF-16 code units: a code point outside the Basic Multilingual Plane (most
	// emoji) counts twice. Telegram and Discord measure their limits this way.
	UTF16
	// Bytes counts the bytes of the UTF-8 encoding.
	Bytes
)

// String returns the unit's name.
func (u Unit) String() string {
	switch u {
	case Runes:
		return "runes"
	case UTF16:
		return "utf16"
	case Bytes:
		return "bytes"
	}
	return "unknown"
}

// RuneLen returns how many units r counts as.
func (u Unit) RuneLen(r rune) int {
	switch u {
	case UTF16:
		if r >= 0x10000 && r <= utf8.MaxRune {
			return 2
		}
		return 1
	case Bytes:
		if n := utf8.RuneLen(r); n > 0 {
			return n
		}
		return len(string(utf8.RuneError))
	}
	return 1
}

// width is the length in units of the rune r that takes size bytes of a string; an invalid
// byte (decoded as utf8.RuneError of size 1) counts as one unit in every unit, so that Bytes
// always agrees with len.
func (u Unit) width(r rune, size int) int {
	if u == Bytes || size == 1 {
		return size
	}
	return u.RuneLen(r)
}

// Len returns the length of s in units.
func (u Unit) Len(s string) int {
	if u == Bytes {
		return len(s)
	}
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		n += u.width(r, size)
		i += size
	}
	return n
}

// fit returns the byte length of the longest prefix of s of at most limit units, ending at a
// character boundary. When even the first character does not fit (a limit below 2 and an
// emoji in UTF-16), it returns that character's length, so that a split always progresses.
func (u Unit) fit(s string, limit int) int {
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		n += u.width(r, size)
		if n > limit {
			if i == 0 {
				return size
			}
			return i
		}
		i += size
	}
	return len(s)
}

// ellipsis marks where Truncate cut.
const ellipsis = "…"

// Truncate shortens s to at most limit units, replacing what it cut with "…", so that a
// title or label that a platform caps is shown cut rather than rejected. It returns s when it
// fits, and "" for a limit too small to hold anything.
func Truncate(s string, limit int, u Unit) string {
	if u.Len(s) <= limit {
		return s
	}
	room := limit - u.Len(ellipsis)
	if room < 0 {
		return s[:u.fitStrict(s, limit)]
	}
	return s[:u.fitStrict(s, room)] + ellipsis
}

// fitStrict is fit without the progress guarantee: it may return 0.
func (u Unit) fitStrict(s string, limit int) int {
	if limit <= 0 {
		return 0
	}
	n := u.fit(s, limit)
	if n > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if n == size && u.width(r, size) > limit {
			return 0
		}
	}
	return n
}

// Split cuts s into parts of at most limit units; see Splitter.Ranges.
func Split(s string, limit int, u Unit) []string {
	return Splitter{Unit: u}.Split(s, limit)
}

// Splitter cuts long text into parts that each fit a limit, so that a long answer arrives as
// several messages instead of being rejected. The zero Splitter counts runes and protects
// nothing.
type Splitter struct {
	// Unit is what the limit counts.
	Unit Unit
	// Protect, when set, returns the byte ranges [start, end) of s that a part must not start
	// or end inside: an HTML tag or entity, a Markdown link, a Slack <url|text> token. It is
	// called once per split with the whole text. Ranges may overlap and come in any order;
	// they must start and end at character boundaries. A range longer than the limit that a
	// part cannot end before is cut anyway, since the limit is the platform's and not ours.
	Protect func(s string) [][2]int
}

// Split returns the parts of s, each at most limit units; see Ranges.
func (sp Splitter) Split(s string, limit int) []string {
	var parts []string
	for _, r := range sp.Ranges(s, limit) {
		parts = append(parts, s[r[0]:r[1]])
	}
	return parts
}

// separators are where a cut goes, best first: a paragraph break, a line break, a space.
var separators = []string{"\n\n", "\n", " "}

// Ranges returns the byte ranges [start, end) of s that make parts of at most limit units
// each. A part ends, in this order of preference, at a paragraph break, a line break or a
// space in the second half of its room, then at any of them, then before a protected range
// the limit falls in, and only then between two characters inside a word (a word longer than
// the limit, text without spaces such as CJK). The separator a part ends at is dropped, line
// breaks at the start of a part and whitespace at its end are trimmed, and parts that are only
// whitespace are left out, because platforms reject empty messages: Ranges returns nil when s
// has nothing to send. The ranges are in order and do not overlap, so a caller that keeps
// markup beside the text (Telegram's spans) can slice it the same way.
func (sp Splitter) Ranges(s string, limit int) [][2]int {
	var prot protected
	if sp.Protect != nil {
		prot = newProtected(sp.Protect(s), len(s))
	}
	var parts [][2]int
	add := func(start, end int) {
		e := start + len(strings.TrimRight(s[start:end], " \t\r\n"))
		if prot.inside(e) {
			e = end // the whitespace belongs to a protected range: keep it whole
		}
		if strings.TrimSpace(s[start:e]) != "" {
			parts = append(parts, [2]int{start, e})
		}
	}
	base := prot.skipBreaks(s, 0)
	for base < len(s) {
		cut := base + sp.Unit.fit(s[base:], limit)
		if cut == len(s) {
			add(base, cut)
			break
		}
		head, next := prot.breakAt(s, base, cut)
		add(base, head)
		base = prot.skipBreaks(s, next)
	}
	return parts
}

// protected is a sorted list of disjoint byte ranges that no cut may fall strictly inside.
type protected [][2]int

// newProtected clamps ranges to [0, n), drops empty ones and merges overlapping ones. Ranges
// that only touch stay apart: cutting between two tags is fine.
func newProtected(ranges [][2]int, n int) protected {
	var p protected
	for _, r := range ranges {
		a, b := max(r[0], 0), min(r[1], n)
		if a < b {
			p = append(p, [2]int{a, b})
		}
	}
	sort.Slice(p, func(i, j int) bool { return p[i][0] < p[j][0] })
	merged := p[:0]
	for _, r := range p {
		if k := len(merged) - 1; k >= 0 && r[0] < merged[k][1] {
			merged[k][1] = max(merged[k][1], r[1])
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// at returns the first range that ends after pos.
func (p protected) at(pos int) ([2]int, bool) {
	i := sort.Search(len(p), func(i int) bool { return p[i][1] > pos })
	if i == len(p) {
		return [2]int{}, false
	}
	return p[i], true
}

// containing reports whether pos lies strictly inside a range, and returns that range's start.
func (p protected) containing(pos int) (start int, ok bool) {
	r, ok := p.at(pos)
	if !ok || r[0] >= pos {
		return 0, false
	}
	return r[0], true
}

// inside reports whether pos lies strictly inside a range.
func (p protected) inside(pos int) bool {
	_, ok := p.containing(pos)
	return ok
}

// overlaps reports whether [a, b) shares a byte with a range.
func (p protected) overlaps(a, b int) bool {
	r, ok := p.at(a)
	return ok && r[0] < b
}

// skipBreaks returns the position after the line breaks at pos that are not protected.
func (p protected) skipBreaks(s string, pos int) int {
	for pos < len(s) && (s[pos] == '\r' || s[pos] == '\n') && !p.overlaps(pos, pos+1) {
		pos++
	}
	return pos
}

// breakAt chooses where the part starting at base ends, given that s[base:cut] is the most
// that fits and s goes on after cut. It returns the end of the part and the start of the
// next one, which differ by the separator dropped.
func (p protected) breakAt(s string, base, cut int) (headEnd, nextStart int) {
	start, inRange := p.containing(cut)
	if inRange && start <= base {
		// The whole room lies inside one range too long for a part: it is cut anyway, and
		// better at a space than inside a word.
		p = nil
	}
	room := cut - base
	for _, minIdx := range []int{room / 2, 1} {
		for _, sep := range separators {
			// The separator may start at cut: it is dropped, so the part still fits.
			window := s[base:min(len(s), cut+len(sep))]
			for end := len(window); ; {
				i := strings.LastIndex(window[:end], sep)
				if i < minIdx {
					break
				}
				if !p.overlaps(base+i, base+i+len(sep)) {
					return base + i, base + i + len(sep)
				}
				end = i + len(sep) - 1
			}
		}
	}
	if inRange && p != nil {
		return start, start
	}
	return cut, cut
}
