// Package migrations holds the bridge's database schema as numbered, forward-only SQL files in
// goose format. They are embedded so that the binary migrates its own database at start-up and
// no file has to ship next to it; bridge/postgres applies them.
package migrations

import "embed"

// FS holds the SQL migrations, named NNNNN_description.sql, at its root.
//
//go:embed *.sql
var FS embed.FS
