package textsplit_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/onechat/onechat-bridge/adapters/textsplit"
)

func TestUnitLen(t *testing.T) {
	for _, tc := range []struct {
		in                  string
		runes, utf16, bytes int
	}{
		{"", 0, 0, 0},
		{"abc", 3, 3, 3},
		{"é", 1, 1, 2},
		{"€", 1, 1, 3},
		{"😀", 1, 2, 4},
		{"👍🏽", 2, 4, 8},
		{"a😀b", 3, 4, 6},
		{"漢字", 2, 2, 6},
		{"a\xffb", 3, 3, 3}, // an invalid byte counts once
	} {
		for u, want := range map[textsplit.Unit]int{textsplit.Runes: tc.runes, textsplit.UTF16: tc.utf16, textsplit.Bytes: tc.bytes} {
			if got := u.Len(tc.in); got != want {
				t.Errorf("%s.Len(%q) = %d, want %d", u, tc.in, got, want)
			}
		}
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		limit int
		unit  textsplit.Unit
		want  []string
	}{
		{"short", "hello", 10, textsplit.UTF16, []string{"hello"}},
		{"limit exactly hit", "0123456789", 10, textsplit.UTF16, []string{"0123456789"}},
		{"limit exactly hit by the first part", "0123456789 abc", 10, textsplit.UTF16, []string{"0123456789", "abc"}},
		{"empty", "", 10, textsplit.UTF16, nil},
		{"whitespace only", " \n\n \t", 10, textsplit.UTF16, nil},
		{"paragraph break preferred", "aaaa bbb\n\ncc dd", 12, textsplit.UTF16, []string{"aaaa bbb", "cc dd"}},
		{"line break before space", "aaaa b\ncc dd ee", 12, textsplit.UTF16, []string{"aaaa b", "cc dd ee"}},
		{"at a line break", "aaaa bbb\ncc dd", 10, textsplit.UTF16, []string{"aaaa bbb", "cc dd"}},
		{"at a space", "aaaa bbbb cccc", 10, textsplit.UTF16, []string{"aaaa bbbb", "cccc"}},
		{"word boundary", "aaa bbb ccc ddd", 9, textsplit.UTF16, []string{"aaa bbb", "ccc ddd"}},
		{"separator right at the limit", "aaaaa bbbbb", 5, textsplit.UTF16, []string{"aaaaa", "bbbbb"}},
		{"early paragraph break loses to a late space", "a\n\nbbbbbbb cc", 10, textsplit.UTF16, []string{"a\n\nbbbbbbb", "cc"}},
		{"a break in the first half beats cutting a word", "ab cdefghijkl", 8, textsplit.Runes, []string{"ab", "cdefghij", "kl"}},
		{"no spaces at all: hard cut", "abcdefghij", 4, textsplit.UTF16, []string{"abcd", "efgh", "ij"}},
		{"word longer than the limit", "hi abcdefghijklmn yo", 6, textsplit.Runes, []string{"hi", "abcdef", "ghijkl", "mn yo"}},
		{"no empty parts from runs of blank lines", "aaaa\n\n\n\n\n\n\n\nbbbb", 5, textsplit.UTF16, []string{"aaaa", "bbbb"}},
		{"crlf", "aaaa\r\nbbbb", 6, textsplit.UTF16, []string{"aaaa", "bbbb"}},
		{"emoji count twice in UTF-16", "😀😀😀", 4, textsplit.UTF16, []string{"😀😀", "😀"}},
		{"emoji count once in runes", "😀😀😀", 2, textsplit.Runes, []string{"😀😀", "😀"}},
		{"surrogate pair never split", "a😀😀", 2, textsplit.UTF16, []string{"a", "😀", "😀"}},
		{"a pair over a limit of one still progresses", "😀😀", 1, textsplit.UTF16, []string{"😀", "😀"}},
		{"never splits a character", "ééééé😀😀", 4, textsplit.UTF16, []string{"éééé", "é😀", "😀"}},
		{"UTF-8 sequence never split", "ééé", 5, textsplit.Bytes, []string{"éé", "é"}},
		{"bytes with emoji", "😀😀 ab", 7, textsplit.Bytes, []string{"😀", "😀 ab"}},
		{"CJK without spaces", "漢字仮名交じり文", 3, textsplit.UTF16, []string{"漢字仮", "名交じ", "り文"}},
		{"CJK at an ideographic space is cut anywhere", "日本語のテキスト", 5, textsplit.Bytes, []string{"日", "本", "語", "の", "テ", "キ", "ス", "ト"}},
		{"leading indentation kept", "  aa bb", 10, textsplit.Runes, []string{"  aa bb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := textsplit.Split(tc.in, tc.limit, tc.unit)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Split(%q, %d, %s) = %q, want %q", tc.in, tc.limit, tc.unit, got, tc.want)
			}
			checkParts(t, got, tc.limit, tc.unit)
		})
	}
}

// checkParts asserts what holds for every split: each part fits, is valid UTF-8 and is not
// blank.
func checkParts(t *testing.T, parts []string, limit int, u textsplit.Unit) {
	t.Helper()
	for i, p := range parts {
		if n := u.Len(p); n > limit && utf8.RuneCountInString(p) > 1 {
			t.Errorf("part %d %q is %d %s, over %d", i, p, n, u, limit)
		}
		if !utf8.ValidString(p) {
			t.Errorf("part %d %q is not valid UTF-8: a character was cut", i, p)
		}
		if strings.TrimSpace(p) == "" {
			t.Errorf("part %d is blank", i)
		}
	}
}

// entities protects HTML tags and entities.
var entities = regexp.MustCompile(`<[^>]*>|&[a-z#0-9]+;`)

// slackTokens protects Slack's <url|text> links.
var slackTokens = regexp.MustCompile(`<[^>]*>`)

func matches(re *regexp.Regexp) func(string) [][2]int {
	return func(s string) [][2]int {
		var out [][2]int
		for _, m := range re.FindAllStringIndex(s, -1) {
			out = append(out, [2]int{m[0], m[1]})
		}
		return out
	}
}

func TestSplitterProtect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		limit   int
		protect func(string) [][2]int
		want    []string
	}{
		{"entity not cut", "abcd&amp;efgh", 6, matches(entities), []string{"abcd", "&amp;e", "fgh"}},
		{"tag not cut", "ab<b>cd</b>", 4, matches(entities), []string{"ab", "<b>c", "d", "</b>"}},
		{"space inside a Slack link is not a break", "see <https://x.io|the docs here> now", 30, matches(slackTokens), []string{"see", "<https://x.io|the docs here>", "now"}},
		{"a link too long for a part is cut at a space in it", "see <https://x.io|a b>", 15, matches(slackTokens), []string{"see", "<https://x.io|a", "b>"}},
		{"range longer than the limit is cut anyway", "<https://example.com/long>", 10, matches(slackTokens), []string{"<https://e", "xample.com", "/long>"}},
		{"overlapping ranges merge", "aaaa bb cc dd", 9, func(string) [][2]int { return [][2]int{{5, 9}, {3, 11}} }, []string{"aaa", "a bb cc d", "d"}},
		{"touching ranges may be cut between", "abcdefgh", 5, func(string) [][2]int { return [][2]int{{0, 2}, {2, 6}, {6, 8}} }, []string{"ab", "cdef", "gh"}},
		{"ranges out of bounds are clamped", "abc def", 5, func(string) [][2]int { return [][2]int{{-4, 1}, {5, 99}} }, []string{"abc", "def"}},
		{"protected line breaks are kept", "ab\n\ncd", 3, func(string) [][2]int { return [][2]int{{2, 5}} }, []string{"ab", "\n\nc", "d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := textsplit.Splitter{Unit: textsplit.Runes, Protect: tc.protect}.Split(tc.in, tc.limit)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Split(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
			}
		})
	}
}

// TestSplitterProtectProperty splits HTML-escaped text at many limits: no part ever starts or
// ends inside an entity, and nothing is lost.
func TestSplitterProtectProperty(t *testing.T) {
	in := strings.Repeat("x&lt;y&amp;&amp;z&gt;w &quot;q&quot;", 20)
	sp := textsplit.Splitter{Unit: textsplit.UTF16, Protect: matches(entities)}
	found := entities.FindAllStringIndex(in, -1)
	for limit := 6; limit < 60; limit++ {
		var joined strings.Builder
		for _, r := range sp.Ranges(in, limit) {
			part := in[r[0]:r[1]]
			joined.WriteString(part)
			if textsplit.UTF16.Len(part) > limit {
				t.Fatalf("limit %d: part %q too long", limit, part)
			}
			for _, m := range found {
				for _, edge := range r {
					if m[0] < edge && edge < m[1] {
						t.Fatalf("limit %d: part %q cuts entity %q", limit, part, in[m[0]:m[1]])
					}
				}
			}
		}
		// Only the spaces cut at may go.
		if got, want := strings.ReplaceAll(joined.String(), " ", ""), strings.ReplaceAll(in, " ", ""); got != want {
			t.Fatalf("limit %d: text lost: %q", limit, got)
		}
	}
}

// TestSplitLongText checks the properties that matter at a real platform limit: every part
// fits, no part is empty, characters survive and no word is lost.
func TestSplitLongText(t *testing.T) {
	const limit = 4096
	para := strings.Repeat("lorem ipsum dolor sit amet 😀, ", 40)
	for name, in := range map[string]string{
		"paragraphs":  strings.Repeat(para+"\n\n", 10),
		"one line":    strings.Repeat("word ", 3000),
		"emoji only":  strings.Repeat("👍🏽", 3000),
		"no spaces":   strings.Repeat("x", 9000),
		"CJK":         strings.Repeat("漢字仮名交じり文", 1200),
		"mixed lines": strings.Repeat("a line with é and 😀\n", 900),
	} {
		for _, u := range []textsplit.Unit{textsplit.Runes, textsplit.UTF16, textsplit.Bytes} {
			t.Run(name+"/"+u.String(), func(t *testing.T) {
				parts := textsplit.Split(in, limit, u)
				if len(parts) < 2 {
					t.Fatalf("got %d parts, want a split", len(parts))
				}
				checkParts(t, parts, limit, u)
				switch name {
				case "no spaces", "emoji only", "CJK":
					if strings.Join(parts, "") != in {
						t.Fatal("hard cut lost or changed text")
					}
				default:
					if !slices.Equal(strings.Fields(strings.Join(parts, " ")), strings.Fields(in)) {
						t.Fatal("words lost or cut")
					}
				}
			})
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		unit  textsplit.Unit
		want  string
	}{
		{"hello", 5, textsplit.Runes, "hello"},
		{"hello!", 5, textsplit.Runes, "hell…"},
		{"héllo!", 5, textsplit.Bytes, "h…"},
		{"ab😀cd", 4, textsplit.UTF16, "ab…"},
		{"ab😀cd", 4, textsplit.Runes, "ab😀…"},
		{"hello", 1, textsplit.Runes, "…"},
		{"hello", 2, textsplit.Bytes, "he"},
		{"hello", 0, textsplit.Runes, ""},
		{"", 0, textsplit.Runes, ""},
	} {
		if got := textsplit.Truncate(tc.in, tc.limit, tc.unit); got != tc.want {
			t.Errorf("Truncate(%q, %d, %s) = %q, want %q", tc.in, tc.limit, tc.unit, got, tc.want)
		}
	}
}

func ExampleSplit() {
	for _, part := range textsplit.Split("First paragraph.\n\nA second one, with 😀 in it.", 24, textsplit.UTF16) {
		fmt.Printf("%q\n", part)
	}
	// Output:
	// "First paragraph."
	// "A second one, with 😀 in"
	// "it."
}

func ExampleSplitter() {
	// A Slack link token must arrive whole, so the space inside it is not a place to cut.
	link := regexp.MustCompile(`<[^>]*>`)
	sp := textsplit.Splitter{Unit: textsplit.Runes, Protect: func(s string) [][2]int {
		var out [][2]int
		for _, m := range link.FindAllStringIndex(s, -1) {
			out = append(out, [2]int{m[0], m[1]})
		}
		return out
	}}
	for _, part := range sp.Split("Read <https://example.com|our guide> first.", 32) {
		fmt.Printf("%q\n", part)
	}
	// Output:
	// "Read"
	// "<https://example.com|our guide>"
	// "first."
}
