package discord

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/adapters/discord/discordtest"
	"github.com/onechat/onechat-bridge/bridge"
)

// virtualClock is real time plus an offset that the pacer's waits add to instead of sleeping,
// so the fake's rate limits and the adapter's pacing count the same time and a burst that
// takes seconds on Discord runs at once.
type virtualClock struct {
	mu     sync.Mutex
	offset time.Duration
	slept  time.Duration
}

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Sleep moves the clock to at least now+d; waits of concurrent callers overlap as real ones do.
func (c *virtualClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	real := time.Now()
	if target := real.Add(c.offset).Add(d); target.After(real.Add(c.offset)) {
		c.offset = target.Sub(real)
	}
	c.slept += d
	return nil
}

func (c *virtualClock) Slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept
}

// clocks holds the virtual clock of every fake the tests made an adapter for.
var clocks sync.Map // *discordtest.Server → *virtualClock

// useVirtualClock puts a and srv on srv's virtual clock (one per fake, shared by every
// adapter of the test), so pacing costs the tests no time.
func useVirtualClock(srv *discordtest.Server, a *Adapter) *virtualClock {
	v, loaded := clocks.LoadOrStore(srv, &virtualClock{})
	clock := v.(*virtualClock)
	if !loaded {
		srv.SetNow(clock.Now)
	}
	a.rest.pacer.now, a.rest.pacer.sleep = clock.Now, clock.Sleep
	return clock
}

// pacedSetup returns a fake and an adapter on one virtual clock, and the DM channels of n users.
func pacedSetup(t *testing.T, n int) (*discordtest.Server, *Adapter, *virtualClock, []string) {
	srv := discordtest.NewServer(t, testToken)
	a := newAdapter(t, srv, "dm")
	clock := useVirtualClock(srv, a)
	var dms []string
	for i := range n {
		id := fmt.Sprintf("7000000000000%05d", i+10)
		srv.AddUser(id, "user"+id, "")
		dms = append(dms, srv.DMChannel(id))
	}
	return srv, a, clock, dms
}

func TestBurstIntoOneChannelIsPacedWithoutA429(t *testing.T) {
	srv, a, clock, dms := pacedSetup(t, 1)
	ctx := context.Background()
	var ids []string
	for i := range 12 {
		got, err := a.Send(ctx, out(dms[0], fmt.Sprintf("message %d", i)))
		if err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		ids = append(ids, got...)
	}
	if n := srv.RateLimited(); n != 0 {
		t.Errorf("the fake refused %d requests with 429, want none", n)
	}
	if got := len(srv.Messages(dms[0])); got != 12 {
		t.Errorf("%d messages in the channel, want 12", got)
	}
	// 12 creates at 5 per 5 s need two full windows of waiting.
	if s := clock.Slept(); s < 2*5*time.Second {
		t.Errorf("the pacer waited %v in all, want at least 10s", s)
	}

	// Edits and deletes (5 a second on Discord) are paced by what the headers say.
	for i, id := range ids {
		m := out(dms[0], fmt.Sprintf("edited %d", i))
		m.Parts = []string{id}
		if err := a.Edit(ctx, m); err != nil {
			t.Fatalf("Edit %d: %v", i, err)
		}
	}
	if err := a.Delete(ctx, bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: dms[0]}, Parts: ids}); err != nil {
		t.Fatal(err)
	}
	if n := srv.RateLimited(); n != 0 {
		t.Errorf("the fake refused %d edits and deletes with 429, want none", n)
	}
}

func TestGlobalLimitIsKeptAcrossChannels(t *testing.T) {
	srv, a, clock, dms := pacedSetup(t, 120)
	// One after another: the virtual clock jumps at every wait, so requests sent at once
	// would reach the fake in an order real time would not allow.
	for _, dm := range dms {
		if err := a.ShowTyping(context.Background(), bridge.ChatRef{Platform: Platform, ID: dm}); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.RateLimited(); n != 0 {
		t.Errorf("the fake refused %d of 120 requests in a burst with 429, want none", n)
	}
	if s := clock.Slept(); s < 1500*time.Millisecond {
		t.Errorf("120 requests were paced over %v, want about two seconds at 45 a second", s)
	}
}

func TestA429ParksItsBucketAndSendStillReportsIt(t *testing.T) {
	srv, a, clock, dms := pacedSetup(t, 1)
	ctx := context.Background()
	srv.RateLimit("POST", "/messages", 3)
	_, err := a.Send(ctx, out(dms[0], "one"))
	var limited *bridge.RateLimitedError
	if !errors.As(err, &limited) || limited.RetryAfter != 3*time.Second {
		t.Fatalf("Send = %v, want RateLimited after 3s", err)
	}
	if _, err := a.Send(ctx, out(dms[0], "two")); err != nil {
		t.Fatal(err)
	}
	if s := clock.Slept(); s < 2500*time.Millisecond {
		t.Errorf("the second send waited %v, want the bucket's 3s", s)
	}

	// A wait bounded by ctx: nothing is sent once ctx is done.
	srv.RateLimit("POST", "/messages", 5)
	if _, err := a.Send(ctx, out(dms[0], "three")); !errors.As(err, &limited) {
		t.Fatalf("Send = %v, want RateLimited", err)
	}
	before := len(srv.Requests())
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.Send(cctx, out(dms[0], "four")); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a done ctx while paced = %v, want context.Canceled", err)
	}
	// A turn further away than maxPaceWait is not waited for inside the call.
	srv.RateLimit("POST", "/messages", 60)
	if _, err := a.Send(ctx, out(dms[0], "five")); !errors.As(err, &limited) {
		t.Fatalf("Send = %v, want RateLimited", err)
	}
	sent := len(srv.Requests())
	if _, err := a.Send(ctx, out(dms[0], "six")); !errors.As(err, &limited) || limited.RetryAfter < 50*time.Second {
		t.Errorf("Send while the bucket is parked for a minute = %v, want RateLimited without a request", err)
	}
	if got := len(srv.Requests()); got != sent || sent != before+1 {
		t.Errorf("requests: %d before the cancelled send, %d after five, %d after six; want only five's", before, sent, got)
	}
}

func TestGlobal429ParksEveryRoute(t *testing.T) {
	p := newPacer()
	clock := &virtualClock{}
	p.now = clock.Now
	h := http.Header{}
	h.Set("X-RateLimit-Global", "true")
	p.observe("POST", "/channels/1/messages", h, &APIError{Status: 429, RetryAfter: 2 * time.Second, Global: true})
	if d := p.reserve("DELETE", "/channels/2/messages/3"); d < 1900*time.Millisecond {
		t.Errorf("after a global 429 another route waits %v, want about 2s", d)
	}
	if d := p.reserve("POST", "/interactions/4/tok/callback"); d != 0 {
		t.Errorf("an interaction callback waits %v; Discord does not limit them globally", d)
	}
}

func TestRouteKey(t *testing.T) {
	cases := []struct{ method, path, route, major string }{
		{"POST", "/channels/111111111111111111/messages", "POST /channels/111111111111111111/messages", "111111111111111111"},
		{"PATCH", "/channels/111111111111111111/messages/222222222222222222", "PATCH /channels/111111111111111111/messages/:id", "111111111111111111"},
		{"GET", "/users/@me", "GET /users/@me", ""},
		{"POST", "/webhooks/333333333333333333/<token>", "POST /webhooks/333333333333333333/:token", "333333333333333333"},
	}
	for _, c := range cases {
		if route, major := routeKey(c.method, c.path); route != c.route || major != c.major {
			t.Errorf("routeKey(%s %s) = %q, %q", c.method, c.path, route, major)
		}
	}
}

func TestFakeRefusesTheSixthCreateInFiveSeconds(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	clock := &virtualClock{}
	srv.SetNow(clock.Now)
	srv.AddUser(alice, "alice", "")
	dm := srv.DMChannel(alice)
	post := func() *http.Response {
		req, _ := http.NewRequest("POST", srv.APIURL+"/channels/"+dm+"/messages", strings.NewReader(`{"content":"x"}`))
		req.Header.Set("Authorization", "Bot "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range 5 {
		resp := post()
		if resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(4-i) || resp.Header.Get("X-RateLimit-Bucket") == "" {
			t.Fatalf("create %d: %d, remaining %q", i, resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"))
		}
	}
	if resp := post(); resp.StatusCode != 429 || resp.Header.Get("X-RateLimit-Scope") != "user" || srv.RateLimited() != 1 {
		t.Fatalf("sixth create: %d, scope %q", resp.StatusCode, resp.Header.Get("X-RateLimit-Scope"))
	}
	_ = clock.Sleep(context.Background(), 5*time.Second)
	if resp := post(); resp.StatusCode != 200 {
		t.Fatalf("after the window: %d", resp.StatusCode)
	}
}
