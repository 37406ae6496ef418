package onechat

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// The flex types decode the loosely typed values OneChat sends. Versions and routes disagree
// on types (REST timestamps are integers, cable timestamps integers, floats or ISO strings, and
// old versions send nulls where new ones send values), so a value of the wrong shape decodes to
// the zero value instead of failing the whole object: one odd key must never cost a message.

// flexInt decodes a JSON number (integer or float, truncated), a numeric string, or an
// ISO-8601 time (as Unix seconds). Anything else, null included, becomes 0.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	*f = 0
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] == 'n' || b[0] == '{' || b[0] == '[' || b[0] == 't' || b[0] == 'f' {
		return nil
	}
	if b[0] == '"' {
		s, ok := jsonString(b)
		if !ok {
			return nil
		}
		*f = flexInt(parseIntish(s))
		return nil
	}
	*f = flexInt(parseIntish(string(b)))
	return nil
}

// parseIntish turns an integer, a float or an RFC 3339 time into an int64, or returns 0.
func parseIntish(s string) int64 {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	if x, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(x) || math.IsInf(x, 0) || x > math.MaxInt64 || x < math.MinInt64 {
			return 0
		}
		return int64(x)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.Unix()
	}
	return 0
}

// flexString decodes a JSON string, or the text of a number; null and other shapes become "".
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	*f = ""
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch {
	case b[0] == '"':
		if s, ok := jsonString(b); ok {
			*f = flexString(s)
		}
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		*f = flexString(b)
	}
	return nil
}

// jsonString decodes the JSON string b (quotes included). One without escapes, the usual kind,
// is its bytes: no decoder, no second scan.
func jsonString(b []byte) (string, bool) {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		inner := b[1 : len(b)-1]
		if bytes.IndexByte(inner, '\\') < 0 && bytes.IndexByte(inner, '"') < 0 && utf8.Valid(inner) && !hasControl(inner) {
			return string(inner), true
		}
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", false
	}
	return s, true
}

// hasControl reports a byte below 0x20, which a JSON string may not hold unescaped.
func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// flexBool decodes true/false, and "true"/"false" strings; anything else is false.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	*f = s == "true" || s == `"true"`
	return nil
}

// flexObject decodes a JSON object; any other shape (null, a string, an array) becomes nil.
type flexObject map[string]any

func (f *flexObject) UnmarshalJSON(b []byte) error {
	*f = nil
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil
	}
	*f = m
	return nil
}

// flexList decodes a JSON array of T, skipping elements that fail to decode; any other shape
// becomes nil.
type flexList[T any] []T

func (f *flexList[T]) UnmarshalJSON(b []byte) error {
	*f = nil
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '[' {
		return nil
	}
	// Usually every element decodes: then one decode of the array does it all. An element of
	// the wrong shape fails that decode (encoding/json goes on past it, but leaves a zero
	// element there): then each element is decoded alone and the failing ones are left out.
	var all []T
	if err := json.Unmarshal(b, &all); err == nil {
		*f = all
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil
	}
	out := make([]T, 0, len(raw))
	for _, r := range raw {
		var v T
		if err := decodeJSON(r, &v); err != nil {
			continue
		}
		out = append(out, v)
	}
	*f = out
	return nil
}

// flexRef decodes a JSON object into *T; any other shape becomes nil.
type flexRef[T any] struct{ v *T }

func (f *flexRef[T]) UnmarshalJSON(b []byte) error {
	f.v = nil
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	var v T
	if err := decodeJSON(b, &v); err != nil {
		return nil
	}
	f.v = &v
	return nil
}
