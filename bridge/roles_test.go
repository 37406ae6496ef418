package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// Lease timing of these tests: a dead instance's roles must be taken over within
// testLeaseTTL + testLeaseRenew, which stands for the 10 s + 3 s (under 15 s) of production.
const (
	testLeaseTTL   = time.Second
	testLeaseRenew = 200 * time.Millisecond
	// takeoverBound is what the tests allow for a takeover: the lease's life plus one renewal,
	// plus slack for a loaded machine running the race detector.
	takeoverBound = testLeaseTTL + testLeaseRenew + 2*time.Second
)

// fakePlatform is one chat platform shared by all instances of a test, as Telegram is shared
// by every process polling one bot token. Users' messages wait in it at increasing offsets, as
// getUpdates keeps them until a poll confirms them, and it records what each chat received. It
// counts the instances running its adapter at the same time: Telegram would answer the second
// poller with 409 Conflict, and Discord would deliver every event to both gateways.
type fakePlatform struct {
	name bridge.Platform

	mu       sync.Mutex
	changed  chan struct{}
	updates  []bridge.Inbound
	running  map[string]bool // instance → its adapter is in Run
	overlaps []string        // "a+b" for every time two instances ran at once
	runs     []string        // instances in the order they started running
	sent     map[string][]string
}

func newFakePlatform(name bridge.Platform) *fakePlatform {
	return &fakePlatform{name: name, changed: make(chan struct{}), running: map[string]bool{}, sent: map[string][]string{}}
}

func (p *fakePlatform) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// write queues a user's message, as the user typing it on the platform.
func (p *fakePlatform) write(userID int, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	uid := strconv.Itoa(userID)
	p.updates = append(p.updates, bridge.Inbound{
		User:        bridge.UserRef{Platform: p.name, ID: uid},
		Chat:        bridge.ChatRef{Platform: p.name, ID: uid},
		MessageID:   strconv.Itoa(len(p.updates) + 1),
		DisplayName: "User " + uid,
		Text:        text,
		SentAt:      time.Now(),
	})
	p.notifyLocked()
}

func (p *fakePlatform) received(chat string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent[chat])
}

func (p *fakePlatform) overlapped() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.overlaps)
}

// wait evaluates cond after every change of the platform until it holds or ctx ends.
func (p *fakePlatform) wait(ctx context.Context, cond func() bool) error {
	for {
		p.mu.Lock()
		ok := cond()
		ch := p.changed
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// platformAdapter is one instance's adapter for a fakePlatform. Its Run polls the platform
// from the cursor stored in the shared database, so whichever instance runs it carries on
// where the last one stopped. Once its instance is killed, Send fails: a dead process sends
// nothing.
type platformAdapter struct {
	p        *fakePlatform
	instance string
	shared   bool // NeedsSingleton() == false, like Telegram's webhook mode
	dead     atomic.Bool
	host     bridge.Host
}

func (a *platformAdapter) Platform() bridge.Platform { return a.p.name }

func (a *platformAdapter) NeedsSingleton() bool { return !a.shared }

func (a *platformAdapter) Run(ctx context.Context) error {
	in := a.host
	a.p.mu.Lock()
	for other := range a.p.running {
		a.p.overlaps = append(a.p.overlaps, other+"+"+a.instance)
	}
	a.p.running[a.instance] = true
	a.p.runs = append(a.p.runs, a.instance)
	a.p.notifyLocked()
	a.p.mu.Unlock()
	defer func() {
		a.p.mu.Lock()
		delete(a.p.running, a.instance)
		a.p.notifyLocked()
		a.p.mu.Unlock()
	}()
	if a.shared {
		<-ctx.Done() // a webhook adapter is pushed to; it has nothing to poll
		return nil
	}
	cursor := string(a.p.name) + ".offset"
	for {
		pos, err := in.Cursor(ctx, cursor)
		off := bridge.ParsePosition(pos)
		if err == nil {
			a.p.mu.Lock()
			batch := slices.Clone(a.p.updates[min(int(off), len(a.p.updates)):min(int(off)+5, len(a.p.updates))])
			more := a.p.changed
			a.p.mu.Unlock()
			if len(batch) == 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-more:
					continue
				}
			}
			err = in.Deliver(ctx, bridge.IntCursor(cursor, off+int64(len(batch))), batch...)
			if err == nil {
				continue
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		t := time.NewTimer(10 * time.Millisecond) // the platform's retry backoff
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (a *platformAdapter) Send(ctx context.Context, m bridge.Outbound) ([]string, error) {
	if a.dead.Load() {
		return nil, errors.New("the process is dead")
	}
	a.p.mu.Lock()
	defer a.p.mu.Unlock()
	a.p.sent[m.Chat.ID] = append(a.p.sent[m.Chat.ID], m.Text)
	a.p.notifyLocked()
	return []string{fmt.Sprintf("%s-%d", m.Chat.ID, len(a.p.sent[m.Chat.ID]))}, nil
}

// coordinationStore is an instance's store whose coordination (heartbeats and leases) can be
// cut: a killed process stops renewing and never releases anything, and a process cut off
// from the database cannot renew either.
type coordinationStore struct {
	bridge.Store
	cut atomic.Bool
}

var errCut = errors.New("coordination cut off")

func (s *coordinationStore) AcquireLeases(ctx context.Context, holder string, names []string, ttl time.Duration) ([]string, error) {
	if s.cut.Load() {
		return nil, errCut
	}
	return s.Store.AcquireLeases(ctx, holder, names, ttl)
}

func (s *coordinationStore) ReleaseLeases(ctx context.Context, holder string, names []string) error {
	if s.cut.Load() {
		return errCut
	}
	return s.Store.ReleaseLeases(ctx, holder, names)
}

func (s *coordinationStore) Heartbeat(ctx context.Context, instance string, ttl time.Duration) ([]string, error) {
	if s.cut.Load() {
		return nil, errCut
	}
	return s.Store.Heartbeat(ctx, instance, ttl)
}

func (s *coordinationStore) Leave(ctx context.Context, instance string) error {
	if s.cut.Load() {
		return errCut
	}
	return s.Store.Leave(ctx, instance)
}

// cluster runs bridge instances (in-process Cores, each with its own connection pool) against
// one database, one fake OneChat and shared fake platforms.
type cluster struct {
	t         *testing.T
	dbURL     string
	oc        *onechattest.Server
	platforms []*fakePlatform
	leaseTTL  time.Duration
	nodes     map[string]*node
	order     []string
}

type node struct {
	name     string
	core     *bridge.Core
	store    *coordinationStore
	adapters []*platformAdapter
	cancel   context.CancelFunc
	done     chan error
	stopped  bool
}

func newCluster(t *testing.T, platforms ...*fakePlatform) *cluster {
	t.Helper()
	// Registered first, so it runs after every instance, pool and server has been stopped.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	c := &cluster{
		t:         t,
		dbURL:     pgtest.NewDatabaseURL(t),
		oc:        onechattest.NewServer(t, &onechattest.Options{PingInterval: 50 * time.Millisecond}),
		platforms: platforms,
		leaseTTL:  testLeaseTTL,
		nodes:     map[string]*node{},
	}
	return c
}

// start runs a new instance. sharedPlatforms run their adapter on every instance.
func (c *cluster) start(name string, sharedPlatforms ...bridge.Platform) *node {
	c.t.Helper()
	ctx, cancelOpen := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelOpen()
	pg, err := postgres.Open(ctx, c.dbURL, zaptest.NewLogger(c.t).Named(name))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(pg.Close)
	if err := pg.Migrate(ctx); err != nil {
		c.t.Fatal(err)
	}
	n := &node{name: name, store: &coordinationStore{Store: pg}, done: make(chan error, 1)}
	var adapters []bridge.AdapterBuilder
	for _, p := range c.platforms {
		a := &platformAdapter{p: p, instance: name, shared: slices.Contains(sharedPlatforms, p.name)}
		n.adapters = append(n.adapters, a)
		adapters = append(adapters, func(h bridge.Host) (bridge.Adapter, error) { a.host = h; return a, nil })
	}
	n.core, err = bridge.New(bridge.Options{
		Store:             n.store,
		OneChat:           onechat.NewClient(c.oc.URL(), c.oc.InboxIdentifier(), &onechat.Options{HMACToken: c.oc.HMACToken()}),
		CableURL:          c.oc.CableURL(),
		Cable:             &onechat.CableOptions{StaleAfter: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		Adapters:          adapters,
		Logger:            zaptest.NewLogger(c.t).Named(name),
		MinBackoff:        10 * time.Millisecond,
		MaxBackoff:        100 * time.Millisecond,
		IdlePoll:          200 * time.Millisecond,
		OneChatRetryAfter: 20 * time.Millisecond,
		// No drain: a killed instance's in-flight attempts are cut off at once.
		ShutdownGrace: time.Millisecond,
		InstanceID:    name,
		LeaseTTL:      c.leaseTTL,
		LeaseRenew:    testLeaseRenew,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- n.core.Run(runCtx) }()
	c.nodes[name] = n
	c.order = append(c.order, name)
	c.t.Cleanup(func() { c.stop(n) })
	return n
}

// stop shuts an instance down gracefully: it releases its roles on the way out.
func (c *cluster) stop(n *node) {
	if n.stopped {
		return
	}
	n.stopped = true
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			c.t.Errorf("instance %s stopped with %v", n.name, err)
		}
	case <-time.After(20 * time.Second):
		c.t.Errorf("instance %s did not stop within 20 s", n.name)
	}
}

// kill ends an instance as SIGKILL would, as far as the others can tell: its leases and
// heartbeat are neither renewed nor released, it sends nothing more, and its work stops
// without a drain. (Only the queue rows of attempts cut off are handed back, which a real
// crash leaves to the queue's own lease.)
func (c *cluster) kill(n *node) {
	c.t.Helper()
	c.t.Logf("killing %s, which holds %v", n.name, compact(n.core.Roles()))
	n.store.cut.Store(true)
	for _, a := range n.adapters {
		a.dead.Store(true)
	}
	c.stop(n)
}

func (c *cluster) live() []*node {
	var out []*node
	for _, name := range c.order {
		if n := c.nodes[name]; !n.stopped {
			out = append(out, n)
		}
	}
	return out
}

// holder returns the live instance running role, or nil.
func (c *cluster) holder(role string) *node {
	for _, n := range c.live() {
		if slices.Contains(n.core.Roles().Roles(), role) {
			return n
		}
	}
	return nil
}

// waitRoles waits until cond holds over the live instances' roles, re-checking at every
// change of any instance's roles.
func (c *cluster) waitRoles(ctx context.Context, what string, cond func(map[string]bridge.RolesStatus) bool) {
	c.t.Helper()
	for {
		live := c.live()
		cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
		status := map[string]bridge.RolesStatus{}
		for _, n := range live {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(n.core.RolesChanged())})
			status[n.name] = n.core.Roles()
		}
		if cond(status) {
			return
		}
		if i, _, _ := reflect.Select(cases); i == 0 {
			var b strings.Builder
			for name, s := range status {
				fmt.Fprintf(&b, " %s=%v", name, compact(s))
			}
			c.t.Fatalf("waiting for %s: %v;%s", what, ctx.Err(), b.String())
		}
	}
}

// settled holds when every role is held by exactly one live instance and the partitions are
// shared fairly (each holds 64/N, give or take one).
func settled(platforms []bridge.Platform) func(map[string]bridge.RolesStatus) bool {
	return func(status map[string]bridge.RolesStatus) bool {
		held := map[string]int{}
		share := bridge.CablePartitions / max(len(status), 1)
		for _, s := range status {
			if !s.Coordinated || s.Instances != len(status) {
				return false
			}
			if n := len(s.Partitions); n < share || n > share+1 {
				return false
			}
			for _, r := range s.Roles() {
				held[r]++
			}
		}
		for _, p := range platforms {
			if held[bridge.AdapterRole(p)] != 1 {
				return false
			}
		}
		for p := range bridge.CablePartitions {
			if held[bridge.PartitionRole(p)] != 1 {
				return false
			}
		}
		return true
	}
}

func compact(s bridge.RolesStatus) string {
	return fmt.Sprintf("{running:%v partitions:%d instances:%d coordinated:%v}", s.Running, len(s.Partitions), s.Instances, s.Coordinated)
}

// conversation waits for the OneChat conversation of a platform user.
func (c *cluster) conversation(ctx context.Context, p bridge.Platform, userID int) int64 {
	c.t.Helper()
	var id int64
	err := c.oc.Wait(ctx, func() bool {
		ct, ok := c.oc.ContactByIdentifier(bridge.ContactIdentifier(p, strconv.Itoa(userID)))
		if !ok {
			return false
		}
		convs := c.oc.Conversations(ct.ID)
		if len(convs) == 0 {
			return false
		}
		id = convs[0].ID
		return true
	})
	if err != nil {
		c.t.Fatalf("no conversation for %s user %d: %v", p, userID, err)
	}
	return id
}

func (c *cluster) incoming(convID int64) []string {
	var out []string
	for _, m := range c.oc.Messages(convID) {
		if m.MessageType == 0 {
			out = append(out, m.Content)
		}
	}
	return out
}

// traffic is users on the shared platforms writing and agents answering, round by round.
type traffic struct {
	c     *cluster
	users []user
	round int
}

type user struct {
	p    *fakePlatform
	id   int
	conv int64
}

func newTraffic(ctx context.Context, c *cluster, perPlatform int) *traffic {
	tr := &traffic{c: c}
	for pi, p := range c.platforms {
		for i := range perPlatform {
			u := user{p: p, id: 100*(pi+1) + i}
			p.write(u.id, "hello")
			tr.users = append(tr.users, u)
		}
	}
	for i := range tr.users {
		u := &tr.users[i]
		u.conv = c.conversation(ctx, u.p.name, u.id)
		// Once the greeting is in, the bridge has stored the conversation as the user's.
		if err := c.oc.Wait(ctx, func() bool { return len(c.incoming(u.conv)) > 0 }); err != nil {
			c.t.Fatalf("greeting of %s user %d never arrived: %v", u.p.name, u.id, err)
		}
	}
	return tr
}

// rounds has every user write a message and an agent answer every conversation, n times,
// without waiting for anything to be delivered.
func (tr *traffic) rounds(n int) {
	for range n {
		for _, u := range tr.users {
			u.p.write(u.id, fmt.Sprintf("u%d m%02d", u.id, tr.round))
			tr.c.oc.AgentReply(u.conv, fmt.Sprintf("a%d r%02d", u.id, tr.round))
		}
		tr.round++
	}
}

// verify waits until everything written and answered has arrived, and checks that each
// message arrived once and in order, both ways.
func (tr *traffic) verify(ctx context.Context) {
	t := tr.c.t
	t.Helper()
	for _, u := range tr.users {
		wantIn := []string{"hello"}
		var wantOut []string
		for r := range tr.round {
			wantIn = append(wantIn, fmt.Sprintf("u%d m%02d", u.id, r))
			wantOut = append(wantOut, fmt.Sprintf("a%d r%02d", u.id, r))
		}
		err := tr.c.oc.Wait(ctx, func() bool { return len(tr.c.incoming(u.conv)) >= len(wantIn) })
		if got := tr.c.incoming(u.conv); err != nil || !slices.Equal(got, wantIn) {
			t.Errorf("%s user %d: OneChat has %q, want %q (%v)", u.p.name, u.id, got, wantIn, err)
		}
		chat := strconv.Itoa(u.id)
		err = u.p.wait(ctx, func() bool { return len(u.p.sent[chat]) >= len(wantOut) })
		if got := u.p.received(chat); err != nil || !slices.Equal(got, wantOut) {
			t.Errorf("%s user %d received %q, want %q (%v)", u.p.name, u.id, got, wantOut, err)
		}
	}
	for _, p := range tr.c.platforms {
		if o := p.overlapped(); len(o) > 0 {
			t.Errorf("%s: two instances ran its adapter at once: %v", p.name, o)
		}
	}
}

// TestThreeInstancesSurviveKillingEachRoleHolder runs three instances, kills the one running
// the Telegram poller in the middle of traffic, then the one running the Discord gateway, then
// starts a fresh one; every role is taken over within the bound, the partitions are
// rebalanced each time, and every message arrives once, in order, both ways.
func TestThreeInstancesSurviveKillingEachRoleHolder(t *testing.T) {
	tg, dc := newFakePlatform(bridge.Platform("telegram")), newFakePlatform(bridge.Platform("discord"))
	c := newCluster(t, tg, dc)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	platforms := []bridge.Platform{bridge.Platform("telegram"), bridge.Platform("discord")}

	for _, name := range []string{"a", "b", "c"} {
		c.start(name)
	}
	c.waitRoles(ctx, "three instances sharing the roles", settled(platforms))
	tr := newTraffic(ctx, c, 3)
	tr.rounds(3)

	for _, role := range []string{bridge.AdapterRole(bridge.Platform("telegram")), bridge.AdapterRole(bridge.Platform("discord"))} {
		// A renewal slowed by a loaded machine can move a role during the traffic: pick the
		// victim once every role is held again.
		c.waitRoles(ctx, "every role held before the kill", settled(platforms))
		victim := c.holder(role)
		if victim == nil {
			t.Fatalf("nobody holds %s", role)
		}
		c.kill(victim)
		killed := time.Now()
		tr.rounds(3) // while nobody holds the victim's roles
		c.waitRoles(ctx, "the survivors taking over "+victim.name+"'s roles", settled(platforms))
		if took := time.Since(killed); took > takeoverBound {
			t.Errorf("%s's roles were taken over after %s, want at most %s", victim.name, took, takeoverBound)
		}
		t.Logf("roles of %s taken over after %s", victim.name, time.Since(killed).Round(time.Millisecond))
		tr.rounds(2)
	}
	if n := len(c.live()); n != 1 {
		t.Fatalf("%d instances left, want 1", n)
	}
	c.start("d")
	tr.rounds(2) // while the partitions move to the newcomer
	c.waitRoles(ctx, "the newcomer getting its share", settled(platforms))
	tr.rounds(2)
	tr.verify(ctx)
	for _, p := range []*fakePlatform{tg, dc} {
		p.mu.Lock()
		t.Logf("%s adapter ran on %v", p.name, p.runs)
		p.mu.Unlock()
	}
}

// TestInstanceCutOffFromTheDatabaseGivesUpItsRoles: an instance that cannot renew its leases
// (it lives, but its coordination is cut off) stops its adapter and drops its cable partitions
// by itself before the leases expire, so the other instance takes over without ever running
// the adapter at the same time; once it can renew again it gets its share back.
func TestInstanceCutOffFromTheDatabaseGivesUpItsRoles(t *testing.T) {
	tg := newFakePlatform(bridge.Platform("telegram"))
	c := newCluster(t, tg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	platforms := []bridge.Platform{bridge.Platform("telegram")}

	a := c.start("a")
	c.waitRoles(ctx, "a holding everything", settled(platforms))
	if got := a.core.Roles(); len(got.Running) != 1 || len(got.Partitions) != bridge.CablePartitions {
		t.Fatalf("a alone holds %v", compact(got))
	}
	b := c.start("b")
	c.waitRoles(ctx, "a and b sharing", settled(platforms))
	for _, n := range []*node{a, b} {
		running := 0
		if len(n.core.Roles().Running) == 1 {
			running = 1
		}
		got := gather(t, n.core.RolesCollector())
		want := map[string]float64{
			`bridge_cable_partitions_held`:              32,
			`bridge_cable_partitions`:                   bridge.CablePartitions,
			`bridge_instances_live`:                     2,
			`bridge_roles_coordinated`:                  1,
			`bridge_role_held{role="adapter/telegram"}`: float64(running),
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v (all: %v)", n.name, k, got[k], v, got)
			}
		}
	}
	tr := newTraffic(ctx, c, 4)
	tr.rounds(2)

	a.store.cut.Store(true)
	cut := time.Now()
	tr.rounds(2)
	c.waitRoles(ctx, "a giving up its roles", func(s map[string]bridge.RolesStatus) bool {
		return len(s["a"].Roles()) == 0 && !s["a"].Coordinated
	})
	if gaveUp := time.Since(cut); gaveUp >= testLeaseTTL+testLeaseRenew {
		t.Errorf("a gave up its roles after %s; its leases may have expired before", gaveUp)
	}
	c.waitRoles(ctx, "b holding everything", func(s map[string]bridge.RolesStatus) bool {
		return len(s["b"].Running) == 1 && len(s["b"].Partitions) == bridge.CablePartitions
	})
	tr.rounds(2)

	a.store.cut.Store(false)
	c.waitRoles(ctx, "a back with its share", settled(platforms))
	tr.rounds(2)
	tr.verify(ctx)
	if s := b.core.Roles(); s.Taken < 1+bridge.CablePartitions/2+bridge.CablePartitions/2 {
		t.Errorf("b took %d roles, want at least its share, a's share and the adapter", s.Taken)
	}
}

// TestGracefulStopHandsRolesOverAtOnce: an instance that shuts down releases its roles, so the
// other takes them at its next renewal instead of after the leases expire.
func TestGracefulStopHandsRolesOverAtOnce(t *testing.T) {
	tg := newFakePlatform(bridge.Platform("telegram"))
	c := newCluster(t, tg)
	c.leaseTTL = 30 * time.Second // far longer than the handover may take
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	a := c.start("a")
	c.waitRoles(ctx, "a holding everything", settled([]bridge.Platform{bridge.Platform("telegram")}))
	c.start("b")
	c.waitRoles(ctx, "a and b sharing", settled([]bridge.Platform{bridge.Platform("telegram")}))
	tr := newTraffic(ctx, c, 2)
	tr.rounds(2)
	stopped := time.Now()
	c.stop(a)
	c.waitRoles(ctx, "b holding everything", settled([]bridge.Platform{bridge.Platform("telegram")}))
	if took := time.Since(stopped); took > 10*time.Second {
		t.Errorf("handover took %s", took)
	}
	tr.rounds(2)
	tr.verify(ctx)
}

// TestSharedAdapterRunsOnEveryInstance: an adapter that needs no singleton (Telegram's webhook
// mode behind a load balancer) runs on every instance at once and holds no role.
func TestSharedAdapterRunsOnEveryInstance(t *testing.T) {
	tg := newFakePlatform(bridge.Platform("telegram"))
	c := newCluster(t, tg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := c.start("a", bridge.Platform("telegram"))
	b := c.start("b", bridge.Platform("telegram"))
	if err := tg.wait(ctx, func() bool { return tg.running["a"] && tg.running["b"] }); err != nil {
		t.Fatalf("the shared adapter did not run on both instances: %v", err)
	}
	c.waitRoles(ctx, "a and b sharing the partitions", settled(nil))
	for _, n := range []*node{a, b} {
		s := n.core.Roles()
		if len(s.Running) != 0 || len(s.Standby) != 0 || !slices.Equal(s.Shared, []bridge.Platform{bridge.Platform("telegram")}) {
			t.Errorf("%s: %+v, want telegram shared and no adapter role", n.name, s)
		}
	}
}

// gather collects c's series as "name{label="value"}" → value.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}
