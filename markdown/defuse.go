package markdown

import "strings"

// Limits on structures no real message needs, which would otherwise make the parse quadratic.
// goldmark checks every open container on every line and, for each "](", scans the rest of
// the line for the link's destination and title, so 20,000 nested "- " or 10,000 "[a](" on
// one line cost seconds. defuse escapes the marker that goes past a limit, which turns it
// into the same character as text.
const (
	// maxNesting is the number of block quote and list markers a line may open at its start.
	maxNesting = 32
	// maxLinkTail is how far past "](" the destination and title of an inline link may reach.
	maxLinkTail = 1024
)

// defuse returns src with a backslash before every container marker past maxNesting on a
// line and before the "(" of every "](" whose link tail does not end within maxLinkTail bytes.
// Both are CommonMark escapes of punctuation, so the text shown is unchanged; only a code span
// or block holding such a run would show the backslash. Its cost is linear: each "](" is
// scanned at most maxLinkTail bytes.
func defuse(src string) string {
	var b strings.Builder
	last := 0 // src[:last] is in b
	escape := func(i int) {
		if b.Len() == 0 {
			b.Grow(len(src) + 16)
		}
		b.WriteString(src[last:i])
		b.WriteByte('\\')
		last = i
	}
	for start := 0; start < len(src); {
		end := strings.IndexByte(src[start:], '\n')
		if end < 0 {
			end = len(src)
		} else {
			end += start
		}
		if i := deepMarker(src[start:end]); i >= 0 {
			escape(start + i)
		}
		start = end + 1
	}
	for i := strings.Index(src, "]("); i >= 0; {
		if !linkTailEnds(src[i+2:]) {
			escape(i + 1)
		}
		j := strings.Index(src[i+2:], "](")
		if j < 0 {
			break
		}
		i += 2 + j
	}
	if last == 0 {
		return src
	}
	b.WriteString(src[last:])
	return b.String()
}

// deepMarker returns the index in line of the first block quote or list marker past
// maxNesting at the line's start, or -1. A thematic break ("- - -") is never touched.
func deepMarker(line string) int {
	n, i := 0, 0
	for {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i >= len(line) {
			return -1
		}
		width := 0
		switch c := line[i]; {
		case c == '>':
			width = 1
		case c == '-' || c == '*' || c == '+':
			if i+1 < len(line) && (line[i+1] == ' ' || line[i+1] == '\t') {
				width = 1
			}
		case c >= '0' && c <= '9':
			j := i
			for j < len(line) && j-i < 9 && line[j] >= '0' && line[j] <= '9' {
				j++
			}
			if j+1 < len(line) && (line[j] == '.' || line[j] == ')') && (line[j+1] == ' ' || line[j+1] == '\t') {
				width = j + 1 - i
			}
		}
		if width == 0 {
			return -1
		}
		if n == maxNesting {
			if isThematicBreak(line) {
				return -1
			}
			return i
		}
		n++
		i += width
	}
}

// isThematicBreak reports whether line is only one of - * _ and blanks, which CommonMark reads
// as a horizontal rule (or a setext underline), not as list markers.
func isThematicBreak(line string) bool {
	t := strings.TrimLeft(line, " \t")
	if t == "" {
		return false
	}
	c := t[0]
	if c != '-' && c != '*' && c != '_' {
		return false
	}
	return strings.Trim(t, string(c)+" \t") == ""
}

// linkTailEnds reports whether the destination and title of an inline link starting at s
// (just after "](") end, well-formed or not, within maxLinkTail bytes, following the scan
// CommonMark (and goldmark) make: blanks, a <destination> or a destination that ends at a
// blank or an unbalanced ")", blanks, then an optional "title", 'title' or (title).
func linkTailEnds(s string) bool {
	s = s[:min(len(s), maxLinkTail)]
	ended := len(s) < maxLinkTail // the input itself ends within reach
	i := skipBlanks(s, 0)
	if i < len(s) && s[i] == '<' {
		for i++; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '>', '<', '\n':
				return true // ends here, well-formed or not
			}
		}
		return ended
	}
	depth := 0
scan:
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '(':
			depth++
		case c == ')':
			if depth == 0 {
				return true
			}
			depth--
		case c <= ' ':
			break scan
		}
	}
	i = skipBlanks(s, i)
	if i >= len(s) {
		return ended
	}
	closer := byte(0)
	switch s[i] {
	case '"', '\'':
		closer = s[i]
	case '(':
		closer = ')'
	default:
		return true // no title: the link ends or fails here
	}
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case closer:
			return true
		}
	}
	return ended
}

func skipBlanks(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
		i++
	}
	return i
}
