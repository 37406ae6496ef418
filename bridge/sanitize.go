package bridge

import (
	"strings"
	"unicode"
)

// Text that reaches OneChat from a platform is either the user's or the bridge's own, and
// agents must be able to tell which. The scheme (docs/security.md):
//
//   - Every line the bridge adds starts with one of its marker symbols (bridgeMarkers): ✏️ for
//     an edit, 🗑 for a delete, ↩️ for the quote of the message replied to, ↪️ for a
//     forward, 📎 for a file note, ℹ️ for any other note.
//   - A line of the user's own text that starts with one of those symbols (after any spaces
//     and invisible characters) gets userTypedPrefix in front, so "✏️ The user edited a
//     message:" typed by a user reads "(typed by the user) ✏️ The user edited a message:".
//   - Names (display names, user names, file names) and notes are one line each and lose the
//     characters that reorder or hide text (bidi overrides and isolates, zero-width
//     characters), so a name cannot break out of its line or show other words than it has.

// bridgeMarkers are the symbols that start the bridge's own lines (variation selectors aside).
var bridgeMarkers = []rune{'✏', '🗑', '↩', '↪', '📎', 'ℹ'}

// userTypedPrefix marks a user's line that starts like one of the bridge's.
const userTypedPrefix = "(typed by the user) "

// invisible reports whether r reorders or hides text: the bidi embeddings, overrides and
// isolates (U+202A–U+202E, U+2066–U+2069) and marks (U+200E, U+200F, U+061C), and the
// zero-width characters (U+200B–U+200D, U+2060, U+FEFF).
func invisible(r rune) bool {
	switch {
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069,
		r == 0x200E, r == 0x200F, r == 0x061C,
		r >= 0x200B && r <= 0x200D, r == 0x2060, r == 0xFEFF:
		return true
	}
	return false
}

// cleanLine returns s without invisible characters, with every control character (line
// breaks, tabs) turned into a space, trimmed.
func cleanLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		switch {
		case invisible(r):
			return -1
		case unicode.IsControl(r), r == '\u2028', r == '\u2029':
			return ' '
		}
		return r
	}, s))
}

// cleanInbound is the one place where what a platform says about a user message is made safe
// to show in OneChat: names, contact attributes, file names and notes as single clean lines.
func cleanInbound(m *Inbound) {
	m.DisplayName = cleanLine(m.DisplayName)
	m.Username = cleanLine(m.Username)
	for k, v := range m.ContactAttributes {
		m.ContactAttributes[k] = cleanLine(v)
	}
	for i := range m.Attachments {
		m.Attachments[i].Name = cleanLine(m.Attachments[i].Name)
	}
	for i := range m.Notes {
		m.Notes[i] = noteLine(m.Notes[i])
	}
}

// escapeUserText prefixes every line of a user's text that starts like one of the bridge's own
// lines with userTypedPrefix.
func escapeUserText(s string) string {
	if !strings.ContainsFunc(s, isMarker) {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		first := strings.IndexFunc(l, func(r rune) bool {
			return !unicode.IsSpace(r) && !invisible(r) && !unicode.Is(unicode.Variation_Selector, r)
		})
		if first >= 0 && isMarker([]rune(l[first:])[0]) {
			lines[i] = userTypedPrefix + l
		}
	}
	return strings.Join(lines, "\n")
}

// noteLine returns a note as the bridge shows it: one clean line that starts with a marker
// ("ℹ️ " when the adapter's note has none).
func noteLine(note string) string {
	note = cleanLine(note)
	if note == "" || isMarker([]rune(note)[0]) {
		return note
	}
	return "ℹ️ " + note
}

func isMarker(r rune) bool {
	for _, m := range bridgeMarkers {
		if r == m {
			return true
		}
	}
	return false
}
