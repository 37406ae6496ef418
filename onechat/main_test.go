package onechat

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger returns a debug logger that writes to t.Log and is also observed, so a test can
// assert that no secret reached any log line.
func testLogger(t *testing.T) (*zap.Logger, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	l := zap.New(zapcore.NewTee(zaptest.NewLogger(t, zaptest.Level(zapcore.DebugLevel)).Core(), core))
	return l, logs
}

// assertLogsFree fails when any observed log message or field contains one of secrets.
func assertLogsFree(t *testing.T, logs *observer.ObservedLogs, secrets ...string) {
	t.Helper()
	for _, e := range logs.All() {
		b, _ := json.Marshal(e.ContextMap())
		line := e.Message + " " + string(b)
		for _, s := range secrets {
			if s != "" && strings.Contains(line, s) {
				t.Errorf("log line leaks a secret %q: %s", s, line)
			}
		}
	}
}

// recv waits for a value on ch, failing the test after a generous deadline (which only a bug
// reaches: every wait in these tests is for a signal, not for time to pass).
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}
