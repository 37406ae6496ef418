package onechat

import (
	"encoding/json"
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
