// Package secret marks configuration values that must never print: bot tokens, webhook
// secrets, passwords. An adapter gives such a field of its Config the type String; fmt then
// shows it as <redacted> (%v, %+v, %s and %#v alike), and the bridge's startup line shows only
// whether it is set, so neither a log line nor an error built from a Config can leak it.
package secret

// String is a configuration value that never prints. Convert it with string(s) where the value
// itself is needed (an Authorization header, a URL path), and nowhere else.
type String string

// Redacted is what a set secret prints as.
const Redacted = "<redacted>"

// String implements fmt.Stringer so a String never appears in logs or errors.
func (String) String() string { return Redacted }

// GoString keeps %#v from printing the value either.
func (String) GoString() string { return Redacted }
