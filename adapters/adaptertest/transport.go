package adaptertest

import (
	"errors"
	"net"
	"net/http"
	"sync"
)

// FaultyTransport is an http.RoundTripper that fails chosen requests with a network error
// before they leave, and passes every other request to Base (http.DefaultTransport when nil).
// A driver gives its adapter an http.Client over one to implement the NetworkError fault.
type FaultyTransport struct {
	Base http.RoundTripper

	mu    sync.Mutex
	n     int
	match func(*http.Request) bool
}

// ErrNetwork is the cause of the errors FaultyTransport injects: what a dropped connection
// looks like to an HTTP client.
var ErrNetwork = &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer (injected)")}

// FailNext makes the next n requests for which match returns true (every request when match is
// nil) fail with ErrNetwork.
func (f *FaultyTransport) FailNext(n int, match func(*http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n, f.match = n, match
}

// RoundTrip implements http.RoundTripper.
func (f *FaultyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	fail := f.n > 0 && (f.match == nil || f.match(r))
	if fail {
		f.n--
	}
	f.mu.Unlock()
	if fail {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, ErrNetwork
	}
	base := f.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// CloseIdleConnections closes the idle connections of Base, if it can.
func (f *FaultyTransport) CloseIdleConnections() {
	type closer interface{ CloseIdleConnections() }
	if c, ok := f.Base.(closer); ok {
		c.CloseIdleConnections()
	}
}
