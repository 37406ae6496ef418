package onechat

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestJSONStringAgreesWithTheDecoder: the shortcut for strings without escapes gives what
// encoding/json gives, and leaves everything else to it.
func TestJSONStringAgreesWithTheDecoder(t *testing.T) {
	for _, in := range []string{
		`""`, `"plain"`, `"héllo wörld ✓"`, `"with \"quotes\""`, `"tab\there"`, `"\u00e9\ud83d\ude00"`,
		"\"bad \xff utf8\"", "\"raw \x01 control\"", `"back\\slash"`, `"1712345678"`, `"2026-12-07T07:00:00Z"`,
	} {
		want := ""
		wantOK := json.Unmarshal([]byte(in), &want) == nil
		got, ok := jsonString([]byte(in))
		if ok != wantOK || got != want {
			t.Errorf("jsonString(%q) = %q, %v; encoding/json gives %q, %v", in, got, ok, want, wantOK)
		}
	}
	var f flexString
	if err := json.Unmarshal([]byte(`{"a":"x\"y"}`), &struct {
		A *flexString `json:"a"`
	}{&f}); err != nil || f != `x"y` {
		t.Errorf("flexString with an escape = %q, %v", f, err)
	}
}

// TestFlexListLeavesOutWhatItCannotDecode: a list whose elements all decode comes out whole;
// an element of another shape is left out, not turned into a zero element.
func TestFlexListLeavesOutWhatItCannotDecode(t *testing.T) {
	type item struct {
		ID flexInt `json:"id"`
	}
	for _, tc := range []struct {
		in   string
		want []int64
	}{
		{`[{"id":1},{"id":"2"}]`, []int64{1, 2}},
		{`[{"id":1},"junk",[3],{"id":4}]`, []int64{1, 4}},
		{`[]`, []int64{}},
		{`{"id":1}`, nil},
	} {
		var l flexList[item]
		if err := json.Unmarshal([]byte(tc.in), &l); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		var got []int64
		if l != nil {
			got = []int64{}
		}
		for _, it := range l {
			got = append(got, int64(it.ID))
		}
		if !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("flexList of %s = %v, want %v", tc.in, got, tc.want)
		}
	}
}
