package e2e_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

var (
	soakDuration = flag.Duration("soak.duration", 60*time.Second, "how long TestSoak drives traffic and faults")
	soakUsers    = flag.Int("soak.users", 30, "Telegram users in TestSoak")
	soakSeed     = flag.Uint64("soak.seed", 0, "seed of TestSoak's random choices (0: from the clock)")
	soakDrain    = flag.Duration("soak.drain", 4*time.Minute, "how long TestSoak waits, faults off, for every message to arrive")
)

// soakTally is what the soak's users and agents sent, per user, in order.
type soakTally struct {
	mu  sync.Mutex
	in  map[int64][]string // user → texts the user sent
	out map[int64][]string // user → texts the agent sent
}

func (s *soakTally) add(m map[int64][]string, u int64, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m[u] = append(m[u], text)
}

func (s *soakTally) snapshot(m map[int64][]string) map[int64][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(map[int64][]string, len(m))
	for k, v := range m {
		c[k] = append([]string(nil), v...)
	}
	return c
}

// TestSoak drives steady traffic both ways for many users while injecting faults at random:
// OneChat 500/502/429, slow answers and answers lost after the change was made; cable restarts
// and dropped events; Telegram 429/500 on sends and 502 on polls; Postgres connections cut; and
// the bridge killed with SIGKILL and restarted. Then, faults off, it waits for everything to
// arrive and checks every message: lost (must be 0), out of order within a user (must be 0),
// duplicated (inbound must be 0, outbound at most one per SIGKILL). -soak.duration makes it
// longer (go test ./e2e -run TestSoak -soak.duration=10m -timeout 30m -v).
func TestSoak(t *testing.T) {
	seed := *soakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("soak: seed %d (repeat the choices with -soak.seed=%d)", seed, seed)
	rnd := rand.New(rand.NewPCG(seed, 7))

	r := newRig(t, withOneChat(onechattest.Options{PingInterval: 300 * time.Millisecond, MessageFloodLimit: -1}))
	r.w.TGFaults.SetEligible(func(req *http.Request) bool {
		// Sends and polls; never getFile/getMe, whose failures only slow things down.
		return strings.Contains(req.URL.Path, "/send") || strings.HasSuffix(req.URL.Path, "/getUpdates")
	})
	r.start()

	users := make([]int64, *soakUsers)
	for i := range users {
		users[i] = 7700000 + int64(i)
	}
	tally := &soakTally{in: map[int64][]string{}, out: map[int64][]string{}}

	trafficCtx, stopTraffic := context.WithTimeout(context.Background(), *soakDuration)
	defer stopTraffic()
	var g errgroup.Group
	// Users: about 10 messages/s in all, each user's numbered from 1.
	g.Go(func() error {
		rnd := rand.New(rand.NewPCG(seed, 11))
		seq := map[int64]int{}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-trafficCtx.Done():
				return nil
			case <-tick.C:
			}
			u := users[rnd.IntN(len(users))]
			seq[u]++
			text := fmt.Sprintf("in %d %d", u, seq[u])
			r.w.TG.SendText(user(u), text)
			tally.add(tally.in, u, text)
		}
	})
	// Agents: about 6 replies/s in all, to users whose conversation exists.
	g.Go(func() error {
		rnd := rand.New(rand.NewPCG(seed, 13))
		seq := map[int64]int{}
		conv := map[int64]int64{}
		tick := time.NewTicker(166 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-trafficCtx.Done():
				return nil
			case <-tick.C:
			}
			u := users[rnd.IntN(len(users))]
			// The agent answers where the user's messages are, as an agent in the inbox does
			// (a retried create after a lost answer can leave an empty conversation too).
			if conv[u] = soakActiveConversation(r, u); conv[u] == 0 {
				continue
			}
			seq[u]++
			text := fmt.Sprintf("out %d %d", u, seq[u])
			r.w.OC.AgentReply(conv[u], text)
			tally.add(tally.out, u, text)
		}
	})

	// Faults: one every 1-3 s, each over by the next; a SIGKILL about every 12 s.
	type counts struct{ restarts, drops, throttles, pgCuts, kills, sigterms int }
	var c counts
	lastKill := time.Now()
	ctx := context.Background()
	for trafficCtx.Err() == nil {
		sleep(trafficCtx, time.Second+time.Duration(rnd.Int64N(int64(2*time.Second))))
		r.w.OCFaults.Clear()
		r.w.TGFaults.Clear()
		if trafficCtx.Err() != nil {
			break
		}
		if time.Since(lastKill) > 12*time.Second {
			lastKill = time.Now()
			if rnd.IntN(4) == 0 {
				c.sigterms++
				r.stop()
			} else {
				c.kills++
				r.kill()
			}
			r.start()
			continue
		}
		switch rnd.IntN(9) {
		case 0:
			r.w.OCFaults.SetFail(0.3, 500, 502, 503)
		case 1:
			r.w.OCFaults.SetFail(0.1, 429)
			c.throttles++
		case 2:
			r.w.OCFaults.SetSlow(0.3, 800*time.Millisecond)
		case 3:
			r.w.OCFaults.SetLost(0.2)
		case 4:
			r.w.OC.RestartCable()
			c.restarts++
		case 5:
			r.w.OC.DropEvents(2)
			c.drops += 2
		case 6:
			r.w.TGFaults.SetFail(0.3, 429, 500, 502)
		case 7:
			r.w.PG.Cut()
			c.pgCuts++
		case 8:
			r.w.OCFaults.SetFail(0.1, 500)
			r.w.TGFaults.SetFail(0.1, 429)
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	r.w.OCFaults.Clear()
	r.w.TGFaults.Clear()
	// The cable has no replay: an event dropped after the last reconnect is found by the
	// catch-up of the next one (docs/architecture.md), so the drain starts with one.
	if c.drops > 0 {
		r.w.OC.RestartCable()
		c.restarts++
	}

	in, out := tally.snapshot(tally.in), tally.snapshot(tally.out)
	drainCtx, cancel := context.WithTimeout(ctx, *soakDrain)
	defer cancel()
	drainStart := time.Now()
	_ = r.w.OC.Wait(drainCtx, func() bool { return soakInboundArrived(r, in) })
	for u, want := range out {
		_, _ = r.w.TG.WaitSentMatch(drainCtx, u, func(s []telegramSent) bool { return hasAll(sentTexts(s), want) })
	}
	drained := time.Since(drainStart)

	var inRep, outRep soakReport
	for _, u := range users {
		var got []string
		if contact, ok := r.w.OC.ContactByIdentifier(tgIdentifier(user(u))); ok {
			for _, cv := range r.w.OC.Conversations(contact.ID) {
				got = append(got, contents(r.incoming(cv.ID))...)
			}
		}
		inRep.add(in[u], got)
		outRep.add(out[u], sentTexts(r.w.TG.Sent(u)))
	}
	ocFailed, ocLost, ocSlowed := r.w.OCFaults.Counts()
	tgFailed, _, _ := r.w.TGFaults.Counts()
	summary := fmt.Sprintf("soak: %s, %d users, seed %d; drained in %s\n"+
		"faults: onechat failed %d (429 windows %d), answers lost %d, slowed %d; cable restarts %d, events dropped %d; "+
		"telegram failed %d; postgres cuts %d; SIGKILL %d, SIGTERM %d\n"+
		"inbound:  sent %d, lost %d, out of order %d, duplicated %d\n"+
		"outbound: sent %d, lost %d, out of order %d, duplicated %d (allowed: one per send in flight at a SIGKILL, at most %d)\n"+
		"conversations without a user message (a create retried after its answer was lost): %d",
		*soakDuration, len(users), seed, drained.Round(100*time.Millisecond),
		ocFailed, c.throttles, ocLost, ocSlowed, c.restarts, c.drops, tgFailed, c.pgCuts, c.kills, c.sigterms,
		inRep.sent, inRep.lost, inRep.reordered, inRep.dup,
		outRep.sent, outRep.lost, outRep.reordered, outRep.dup, c.kills*outboundWorkers, soakStrayConversations(r, users))
	t.Log(summary)
	fmt.Println(summary)
	if inRep.lost+outRep.lost > 0 {
		t.Errorf("lost messages: %d inbound (e.g. %v), %d outbound (e.g. %v)", inRep.lost, inRep.lostEx, outRep.lost, outRep.lostEx)
	}
	if inRep.reordered+outRep.reordered > 0 {
		t.Errorf("messages out of order within a user: %d inbound (e.g. %v), %d outbound (e.g. %v)", inRep.reordered, inRep.orderEx, outRep.reordered, outRep.orderEx)
	}
	if inRep.dup > 0 {
		t.Errorf("%d inbound messages reached OneChat twice (e.g. %v)", inRep.dup, inRep.dupEx)
	}
	// A platform has no idempotency key: a message a worker had handed over when SIGKILL landed,
	// but not yet recorded as sent, goes out again. Each of the 8 outbound workers may be in
	// such a send when the kill lands, so that is the bound.
	if allowed := c.kills * outboundWorkers; outRep.dup > allowed {
		t.Errorf("%d outbound duplicates for %d SIGKILLs, more than one per send in flight (%d) (e.g. %v)", outRep.dup, c.kills, allowed, outRep.dupEx)
	}
	if inRep.sent == 0 || outRep.sent == 0 {
		t.Errorf("the soak sent %d in and %d out: no traffic, nothing proven", inRep.sent, outRep.sent)
	}
}

// soakActiveConversation is the newest conversation of the user's contact that has a message
// from the user, or 0.
func soakActiveConversation(r *rig, u int64) int64 {
	c, ok := r.w.OC.ContactByIdentifier(tgIdentifier(user(u)))
	if !ok {
		return 0
	}
	convs := r.w.OC.Conversations(c.ID)
	for i := len(convs) - 1; i >= 0; i-- {
		if len(r.incoming(convs[i].ID)) > 0 {
			return convs[i].ID
		}
	}
	return 0
}

// soakStrayConversations counts conversations without a single message from their contact.
func soakStrayConversations(r *rig, users []int64) int {
	n := 0
	for _, u := range users {
		if c, ok := r.w.OC.ContactByIdentifier(tgIdentifier(user(u))); ok {
			for _, cv := range r.w.OC.Conversations(c.ID) {
				if len(r.incoming(cv.ID)) == 0 {
					n++
				}
			}
		}
	}
	return n
}

func soakInboundArrived(r *rig, in map[int64][]string) bool {
	for u, want := range in {
		contact, ok := r.w.OC.ContactByIdentifier(tgIdentifier(user(u)))
		if !ok {
			return false
		}
		var got []string
		for _, cv := range r.w.OC.Conversations(contact.ID) {
			got = append(got, contents(r.incoming(cv.ID))...)
		}
		if !hasAll(got, want) {
			return false
		}
	}
	return true
}

// soakReport counts, over users, how the received sequence compares with the sent one.
type soakReport struct {
	sent, lost, reordered, dup int
	lostEx, orderEx, dupEx     []string
}

func (s *soakReport) add(sent, got []string) {
	s.sent += len(sent)
	index := make(map[string]int, len(sent))
	for i, m := range sent {
		index[m] = i
	}
	seen := map[string]bool{}
	last := -1
	for _, m := range got {
		i, ok := index[m]
		if !ok {
			continue // not from the soak (e.g. a greeting)
		}
		if seen[m] {
			s.dup++
			s.dupEx = appendEx(s.dupEx, m)
			continue
		}
		seen[m] = true
		if i < last {
			s.reordered++
			s.orderEx = appendEx(s.orderEx, m+" after "+sent[last])
		}
		last = max(last, i)
	}
	for _, m := range sent {
		if !seen[m] {
			s.lost++
			s.lostEx = appendEx(s.lostEx, m)
		}
	}
}

func appendEx(ex []string, s string) []string {
	if len(ex) < 5 {
		ex = append(ex, s)
	}
	return ex
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// outboundWorkers is the bridge's default BRIDGE_OUTBOUND_WORKERS: how many sends can be in
// flight when a SIGKILL lands.
const outboundWorkers = 8
