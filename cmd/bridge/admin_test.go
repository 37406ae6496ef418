package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestReadinessSpendsOneChatsBudgetOncePerInterval: probes within the interval reuse the last
// answer, and a probe that finds the request budget busy keeps the last answer instead of
// reporting OneChat down.
func TestReadinessSpendsOneChatsBudgetOncePerInterval(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	calls := 0
	var answer error
	check := cachedCheck(5*time.Second, func() time.Time { return now }, func(context.Context) error {
		calls++
		return answer
	})
	ctx := context.Background()
	for range 10 {
		if err := check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("%d checks within the interval, want 1", calls)
	}
	now = now.Add(5 * time.Second)
	answer = errors.New("503")
	if err := check(ctx); err == nil || calls != 2 {
		t.Fatalf("after the interval: %v, %d checks", err, calls)
	}
	now = now.Add(5 * time.Second)
	answer = nil
	if err := check(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(5 * time.Second)
	answer = errNoBudget
	if err := check(ctx); err != nil {
		t.Fatalf("a busy budget took the last answer's place: %v", err)
	}
	if calls != 4 {
		t.Fatalf("%d checks, want 4", calls)
	}
}

// TestPprofOnlyWhenAskedFor: the admin listener serves Go's profiles only with BRIDGE_PPROF.
func TestPprofOnlyWhenAskedFor(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, on := range []bool{false, true} {
		h := adminHandler(nil, reg, nil, on)
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=1"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; rec.Code != want {
				t.Errorf("BRIDGE_PPROF=%v: %s answered %d, want %d", on, path, rec.Code, want)
			}
		}
	}
}
