package adaptertest_test

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/onechat/onechat-bridge/adapters/adaptertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a T that records failures instead of failing the test, so a check can be seen
// failing. Fatalf ends the check's goroutine as testing.T's does.
type recorder struct {
	mu       sync.Mutex
	failed   bool
	lines    []string
	cleanups []func()
}

func (r *recorder) Helper() {}

func (r *recorder) Logf(format string, args ...any) { r.add(false, format, args) }

func (r *recorder) Errorf(format string, args ...any) { r.add(true, format, args) }

func (r *recorder) Fatalf(format string, args ...any) {
	r.add(true, format, args)
	runtime.Goexit()
}

func (r *recorder) add(fail bool, format string, args []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = r.failed || fail
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *recorder) cleanup() {
	for {
		r.mu.Lock()
		if len(r.cleanups) == 0 {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[len(r.cleanups)-1]
		r.cleanups = r.cleanups[:len(r.cleanups)-1]
		r.mu.Unlock()
		f()
	}
}

// runCheck runs the named check against p with a recorder, on its own goroutine like a subtest.
func runCheck(t *testing.T, name string, p adaptertest.Platform) *recorder {
	t.Helper()
	for _, c := range adaptertest.Checks() {
		if c.Name != name {
			continue
		}
		r := &recorder{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer r.cleanup()
			c.Func(r, p)
		}()
		<-done
		return r
	}
	t.Fatalf("no check %s", name)
	return nil
}

// TestToyPasses runs the suite against the toy adapter with no knob set: it must pass, or the
// failures below would prove nothing.
func TestToyPasses(t *testing.T) {
	adaptertest.Run(t, toy(knobs{}, nil))
}

// TestEachCheckCatchesItsBreakage breaks the toy adapter one property at a time and expects the
// check of that property to fail.
func TestEachCheckCatchesItsBreakage(t *testing.T) {
	cases := []struct {
		check, knob string
		k           knobs
	}{
		{"RunStopsCleanly", "leakGoroutine", knobs{leakGoroutine: true}},
		{"RunStopsCleanly", "errOnCancel", knobs{errOnCancel: true}},
		{"RedeliversFailedDeliver", "swallowFailed", knobs{swallowFailed: true}},
		{"NoDoubleDeliveryAfterRestart", "ignoreCursor", knobs{ignoreCursor: true}},
		{"SplitsLongText", "noSplit", knobs{noSplit: true}},
		{"SplitsLongText", "wrongUnit", knobs{wrongUnit: true}},
		{"RetryWithPartsSendsRest", "ignoreParts", knobs{ignoreParts: true}},
		{"ClassifiesErrors", "misclassify429", knobs{misclassify429: true}},
		{"ClassifiesErrors", "blockedAs4xx", knobs{blockedAs4xx: true}},
		{"ClassifiesErrors", "serverPermanent", knobs{serverPermanent: true}},
		{"EditDeleteEveryPart", "editFirstOnly", knobs{editFirstOnly: true}},
		{"EditDeleteEveryPart", "deleteFirstOnly", knobs{deleteFirstOnly: true}},
		{"TokenNeverLeaks", "tokenInErrors", knobs{tokenInErrors: true}},
		{"TokenNeverLeaks", "tokenInLogs", knobs{tokenInLogs: true}},
		{"AttachmentsStream", "bufferUploads", knobs{bufferUploads: true}},
		{"AttachmentsStream", "bufferDownloads", knobs{bufferDownloads: true}},
	}
	for _, tc := range cases {
		t.Run(tc.check+"/"+tc.knob, func(t *testing.T) {
			leak := make(chan struct{})
			defer close(leak)
			r := runCheck(t, tc.check, toy(tc.k, leak))
			if !r.Failed() {
				t.Errorf("%s passed against an adapter broken with %s", tc.check, tc.knob)
			}
			for _, l := range r.lines {
				t.Logf("check said: %s", l)
			}
		})
	}
}
