package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"
)

// Faults sits in front of a fake server and breaks a share of the requests it is told to,
// chosen at random: an error status before the fake sees the request (nothing changed), an
// error status after the fake handled it (the change happened, the answer was lost, as behind
// a proxy timing out), or a delay. Down answers 503 to every eligible request. It is safe for
// concurrent use; the zero rates let everything through.
type Faults struct {
	// Eligible selects the requests faults may hit; nil means all. Set it before the server
	// serves, or with SetEligible.
	Eligible func(*http.Request) bool
	// Body writes the error answer for a status; nil means a plain-text status line.
	Body func(w http.ResponseWriter, status int)

	mu        sync.Mutex
	rnd       *rand.Rand
	failRate  float64
	statuses  []int
	lostRate  float64
	slowRate  float64
	slowDelay time.Duration
	down      bool
	served    func(r *http.Request, body []byte, at time.Time)

	failed, lost, slowed atomic.Int64
}

// NewFaults returns an injector seeded with seed, so a run's choices can be repeated.
func NewFaults(seed uint64) *Faults {
	return &Faults{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// SetFail makes a share rate of eligible requests fail with one of statuses before the fake
// sees them.
func (f *Faults) SetFail(rate float64, statuses ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failRate, f.statuses = rate, statuses
}

// SetLost makes a share rate of eligible requests reach the fake and then answer 502 instead
// of the fake's answer.
func (f *Faults) SetLost(rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lostRate = rate
}

// SetSlow delays a share rate of eligible requests by d before the fake sees them.
func (f *Faults) SetSlow(rate float64, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slowRate, f.slowDelay = rate, d
}

// SetDown makes every eligible request answer 503 (true) until called with false.
func (f *Faults) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// SetServed makes the injector call fn after the fake answered a request no fault touched,
// with the request's body and the time the answer was written (the benchmark times deliveries
// with it). nil stops it.
func (f *Faults) SetServed(fn func(r *http.Request, body []byte, at time.Time)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served = fn
}

// SetEligible replaces Eligible while the server serves.
func (f *Faults) SetEligible(fn func(*http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Eligible = fn
}

// Clear turns every fault off.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failRate, f.lostRate, f.slowRate, f.down = 0, 0, 0, false
}

// Counts returns how many requests failed before the fake, lost their answer, and were slowed.
func (f *Faults) Counts() (failed, lost, slowed int64) {
	return f.failed.Load(), f.lost.Load(), f.slowed.Load()
}

type verdict struct {
	status int           // fail before the fake with this status
	lost   bool          // let through, then answer 502
	delay  time.Duration // wait first
	served func(r *http.Request, body []byte, at time.Time)
}

func (f *Faults) decide(r *http.Request) verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := verdict{served: f.served}
	if f.Eligible != nil && !f.Eligible(r) {
		return v
	}
	if f.down {
		v.status = http.StatusServiceUnavailable
		return v
	}
	if f.slowRate > 0 && f.rnd.Float64() < f.slowRate {
		v.delay = f.slowDelay
	}
	switch x := f.rnd.Float64(); {
	case x < f.failRate && len(f.statuses) > 0:
		v.status = f.statuses[f.rnd.IntN(len(f.statuses))]
	case x < f.failRate+f.lostRate:
		v.lost = true
	}
	return v
}

// Wrap returns h behind the injector.
func (f *Faults) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := f.decide(r)
		if v.delay > 0 {
			f.slowed.Add(1)
			t := time.NewTimer(v.delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		switch {
		case v.status != 0:
			f.failed.Add(1)
			f.writeError(w, v.status)
		case v.lost:
			f.lost.Add(1)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			f.writeError(w, http.StatusBadGateway)
		case v.served != nil:
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			h.ServeHTTP(w, r)
			v.served(r, body, time.Now())
		default:
			h.ServeHTTP(w, r)
		}
	})
}

func (f *Faults) writeError(w http.ResponseWriter, status int) {
	if f.Body != nil {
		f.Body(w, status)
		return
	}
	http.Error(w, http.StatusText(status), status)
}

// OneChatError writes errors as OneChat and the proxy in front of it do: Rails' JSON for 500,
// Rack::Attack's "Retry later" for 429, a proxy's plain text otherwise.
func OneChatError(w http.ResponseWriter, status int) {
	switch status {
	case http.StatusInternalServerError:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"status":500,"error":"Internal Server Error"}`))
	case http.StatusTooManyRequests:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		_, _ = w.Write([]byte("Retry later\n"))
	default:
		http.Error(w, http.StatusText(status), status)
	}
}

// TelegramError writes a Bot API error: {"ok":false,...}, with retry_after 1 s for 429.
func TelegramError(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var b bytes.Buffer
	if status == http.StatusTooManyRequests {
		fmt.Fprintf(&b, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}`)
	} else {
		fmt.Fprintf(&b, `{"ok":false,"error_code":%d,"description":%q}`, status, http.StatusText(status))
	}
	_, _ = w.Write(b.Bytes())
}
