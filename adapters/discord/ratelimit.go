package discord

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/onechat/onechat-bridge/adapters/retry"
)

// Discord's published limits, and the pace the adapter keeps below them: 50 requests per second
// for the bot in all (45 here), and about 5 messages per 5 seconds in one channel (5 per 5.5 s
// here). Other routes are paced by what Discord's headers say.
const (
	globalLimit      = 45
	globalWindow     = time.Second
	channelMsgLimit  = 5
	channelMsgWindow = 5500 * time.Millisecond
	// maxPaceWait is the longest a request waits for its turn inside a call. A longer wait (a
	// bucket Discord reset far ahead) is returned as a 429 without sending, so the queue
	// waits instead of a worker.
	maxPaceWait = 15 * time.Second
	// maxTrackedBuckets bounds the per-channel state; expired entries are dropped first.
	maxTrackedBuckets = 10000
)

// window is a sliding window of n requests per period: the times of the last n slots handed out.
type window struct {
	n      int
	period time.Duration
	slots  []time.Time
}

// reserve hands out the earliest slot at or after now that keeps at most n slots in any
// period, and records it.
func (w *window) reserve(now time.Time) time.Time {
	at := now
	if len(w.slots) >= w.n {
		if t := w.slots[len(w.slots)-w.n].Add(w.period); t.After(at) {
			at = t
		}
	}
	w.slots = append(w.slots, at)
	if len(w.slots) > w.n {
		w.slots = append(w.slots[:0], w.slots[len(w.slots)-w.n:]...)
	}
	return at
}

// idle reports whether every slot of w is older than a period, so w can be forgotten.
func (w *window) idle(now time.Time) bool {
	return len(w.slots) == 0 || !w.slots[len(w.slots)-1].Add(w.period).After(now)
}

// bucketState is what Discord last said about one rate-limit bucket (and major parameter).
type bucketState struct {
	remaining int
	reset     time.Time
}

// pacer paces REST requests proactively, so the bot stays under Discord's limits instead of
// collecting 429s: a global window for every request but interaction callbacks (which Discord
// does not count), a window per channel for message creates, and for every route what
// Discord's X-RateLimit-Bucket, -Remaining and -Reset-After headers said last (routes that
// share a bucket share its state). A 429 parks its bucket, or every request when it was global.
type pacer struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu          sync.Mutex
	global      window
	channels    map[string]*window      // channel id → message creates
	routeBucket map[string]string       // method + route → Discord's bucket hash
	buckets     map[string]*bucketState // bucket hash (or route) + major parameter → state
	globalUntil time.Time               // a global 429 parks everything until then
}

func newPacer() *pacer {
	return &pacer{
		now: time.Now, sleep: retry.Sleep,
		global:      window{n: globalLimit, period: globalWindow},
		channels:    map[string]*window{},
		routeBucket: map[string]string{},
		buckets:     map[string]*bucketState{},
	}
}

// routeKey splits path into Discord's rate-limit route (method and path with the ids after the
// major parameter replaced, the major parameter kept, as Discord buckets routes) and the major
// parameter (a channel, guild or webhook id).
func routeKey(method, path string) (route, major string) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(parts) >= 2 && (parts[0] == "channels" || parts[0] == "guilds" || parts[0] == "webhooks") {
		major = parts[1]
	}
	for i := 2; i < len(parts); i++ {
		if isSnowflake(parts[i]) {
			parts[i] = ":id"
		}
	}
	if len(parts) >= 3 && parts[0] == "webhooks" {
		parts[2] = ":token" // never keep a webhook token in the pacer's keys
	}
	return method + " /" + strings.Join(parts, "/"), major
}

// bucketKeyLocked is the state key of a request: Discord's bucket when a response named it.
func (p *pacer) bucketKeyLocked(route, major string) string {
	if b, ok := p.routeBucket[route]; ok {
		return b + ":" + major
	}
	return route + ":" + major
}

// reserve takes the request's turn and returns how long to wait for it.
func (p *pacer) reserve(method, path string) time.Duration {
	if strings.HasPrefix(path, "/interactions/") {
		return 0
	}
	route, major := routeKey(method, path)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.pruneLocked(now)
	at := p.global.reserve(now)
	if p.globalUntil.After(at) {
		at = p.globalUntil
	}
	if method == http.MethodPost && major != "" && route == "POST /channels/"+major+"/messages" {
		w := p.channels[major]
		if w == nil {
			w = &window{n: channelMsgLimit, period: channelMsgWindow}
			p.channels[major] = w
		}
		if t := w.reserve(now); t.After(at) {
			at = t
		}
	}
	if st := p.buckets[p.bucketKeyLocked(route, major)]; st != nil && st.reset.After(now) {
		if st.remaining <= 0 && st.reset.After(at) {
			at = st.reset
		}
		st.remaining--
	}
	return at.Sub(now)
}

// pruneLocked forgets windows and buckets that no longer hold anything back once there are
// many, so a bot in many channels keeps bounded state.
func (p *pacer) pruneLocked(now time.Time) {
	if len(p.channels) >= maxTrackedBuckets {
		for k, w := range p.channels {
			if w.idle(now) {
				delete(p.channels, k)
			}
		}
	}
	if len(p.buckets) >= maxTrackedBuckets {
		for k, st := range p.buckets {
			if !st.reset.After(now) {
				delete(p.buckets, k)
			}
		}
	}
	if len(p.routeBucket) >= maxTrackedBuckets {
		clear(p.routeBucket)
	}
}

// wait waits for the request's turn, bounded by ctx. A turn further away than maxPaceWait is
// not waited for: the request is refused as rate limited without being sent.
func (p *pacer) wait(ctx context.Context, method, path string) error {
	d := p.reserve(method, path)
	if d <= 0 {
		return ctx.Err()
	}
	if d > maxPaceWait {
		return &APIError{Method: method, Path: path, Status: http.StatusTooManyRequests,
			Message: "rate limit reached; not sent", RetryAfter: d}
	}
	return p.sleep(ctx, d)
}

// observe records what a response's headers say about its bucket: X-RateLimit-Bucket names it
// (so routes sharing it share its state), -Remaining and -Reset-After say how many requests
// are left until when. A global 429 parks every request for its retry_after.
func (p *pacer) observe(method, path string, h http.Header, apiErr *APIError) {
	if strings.HasPrefix(path, "/interactions/") {
		return
	}
	route, major := routeKey(method, path)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if apiErr != nil && apiErr.Status == http.StatusTooManyRequests && (apiErr.Global || h.Get("X-RateLimit-Global") == "true") {
		if t := now.Add(apiErr.RetryAfter); t.After(p.globalUntil) {
			p.globalUntil = t
		}
		return
	}
	if b := h.Get("X-RateLimit-Bucket"); b != "" {
		p.routeBucket[route] = b
	}
	remaining, err1 := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	after, err2 := strconv.ParseFloat(h.Get("X-RateLimit-Reset-After"), 64)
	if err1 != nil || err2 != nil || after < 0 {
		return
	}
	reset := now.Add(time.Duration(after * float64(time.Second)))
	if apiErr != nil && apiErr.Status == http.StatusTooManyRequests {
		remaining = 0
		if t := now.Add(apiErr.RetryAfter); t.After(reset) {
			reset = t
		}
	}
	key := p.bucketKeyLocked(route, major)
	st := p.buckets[key]
	if st == nil {
		st = &bucketState{}
		p.buckets[key] = st
	}
	// Answers to requests sent at once arrive in any order: the lowest remaining of a window
	// is the truth, and a later reset starts a new window.
	if reset.Sub(st.reset) > 500*time.Millisecond || remaining < st.remaining || !st.reset.After(now) {
		st.remaining = remaining
	}
	if reset.After(st.reset) {
		st.reset = reset
	}
}
