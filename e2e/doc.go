// Package e2e runs the real bridge binary against the in-repo fakes (OneChat, the Telegram Bot
// API, Discord) and a real Postgres, and drives it only through those fakes, its admin
// endpoints (/livez, /readyz, /metrics) and signals.
//
// The non-test files are the rig, shared by the end-to-end tests, the fault soak
// (TestSoak, 60 s by default, -soak.duration for longer) and the benchmark command
// (cmd/bridge-bench):
//
//   - Build compiles ./cmd/bridge once;
//   - NewWorld starts the fakes on loopback httptest servers, each behind a Faults injector,
//     and a fresh database reached through a PGProxy that can cut every connection;
//   - Start runs the binary with a World's environment, captures its stderr (JSON logs) and
//     finds its admin address in the "admin listener up" line.
//
// Nothing here reaches beyond 127.0.0.1.
package e2e
