package slacktest

import "time"

// Fault is a failure injected into a Web API method.
type Fault struct {
	// Error makes the call answer {"ok":false,"error":Error} (HTTP 200), as Slack reports
	// not_in_channel, account_inactive, internal_error….
	Error string
	// Status makes the call answer this HTTP status with an HTML body (e.g. 500, 503), as
	// Slack's front end does. slack-go returns a slack.StatusCodeError.
	Status int
	// RetryAfter makes the call answer HTTP 429 with Retry-After set to this many seconds and
	// {"ok":false,"error":"ratelimited"}. slack-go returns a *slack.RateLimitedError.
	RetryAfter int
	// Times is how many calls fail; 0 means every call until ClearFaults.
	Times int
	// AfterEffect lets the call take effect (the message is posted…) before the error is
	// answered: Slack's internal_error, fatal_error and 5xx are ambiguous this way.
	AfterEffect bool
	// Channel, when set, limits the fault to calls whose channel (or channel_id) is this one.
	Channel string
}

type fault struct {
	method string
	Fault
	left int // calls left to fail; -1 for until cleared
}

// Inject makes calls of a Web API method (e.g. "chat.postMessage") fail as f says. Faults are
// matched in the order injected.
func (s *Server) Inject(method string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	left := f.Times
	if left <= 0 {
		left = -1
	}
	s.faults = append(s.faults, &fault{method: method, Fault: f, left: left})
}

// FailWith makes the next times calls of a method answer the Slack error code (0 times: until
// ClearFaults).
func (s *Server) FailWith(method, code string, times int) {
	s.Inject(method, Fault{Error: code, Times: times})
}

// RateLimit makes the next times calls of a method answer HTTP 429 with Retry-After (0 times:
// until ClearFaults).
func (s *Server) RateLimit(method string, retryAfter time.Duration, times int) {
	s.Inject(method, Fault{RetryAfter: int(retryAfter / time.Second), Times: times})
}

// ClearFaults removes the faults of a method, or every fault for "".
func (s *Server) ClearFaults(method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.faults[:0]
	for _, f := range s.faults {
		if method != "" && f.method != method {
			kept = append(kept, f)
		}
	}
	s.faults = kept
}

// takeFaultLocked returns the first fault matching the call and uses it up.
func (s *Server) takeFaultLocked(method, channel string) *fault {
	for i, f := range s.faults {
		if f.method != method || (f.Channel != "" && f.Channel != channel) {
			continue
		}
		if f.left > 0 {
			f.left--
			if f.left == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return f
	}
	return nil
}

// SetPostRateLimit sets chat.postMessage's per-channel rate limit (rate ≤ 0 turns it off): a
// token bucket of burst messages refilled at rate per second; a post over it answers 429 with
// Retry-After, as Slack's "1 message per second per channel, short bursts allowed" does.
func (s *Server) SetPostRateLimit(rate float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.postRate, s.postBurst = rate, burst
	s.buckets = map[string]*bucket{}
}

type bucket struct {
	tokens float64
	at     time.Time
}

// allowPostLocked takes a token from the channel's bucket; when empty it returns the seconds
// until the next token.
func (s *Server) allowPostLocked(channel string) (ok bool, retryAfter int) {
	if s.postRate <= 0 {
		return true, 0
	}
	burst := float64(max(s.postBurst, 1))
	now := time.Now()
	b, found := s.buckets[channel]
	if !found {
		b = &bucket{tokens: burst, at: now}
		s.buckets[channel] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*s.postRate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := (1 - b.tokens) / s.postRate
	return false, max(1, int(wait+0.999))
}
