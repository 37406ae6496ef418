package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	mathrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Several instances of the bridge may share one store. Queue work is shared through the store
// (SKIP LOCKED claims). What must have one owner at a time is a role, held by a lease in the
// store that its holder renews every LeaseRenew and that expires LeaseTTL after the last
// renewal:
//
//   - "adapter/<platform>": running a singleton adapter's Run (the Telegram long poller, the
//     Discord gateway). An adapter that says it needs no singleton (SingletonRunner) runs on
//     every instance.
//   - "cable/NN": the cable subscriptions of the customers whose store id modulo
//     CablePartitions is NN. Each instance holds its fair share of the partitions, about 1/N
//     of them with N live instances (every instance heartbeats into the store), releases the
//     excess when an instance joins and takes free ones when an instance leaves or dies.
//     Taking a partition subscribes its customers' tokens, and every confirmation brings the
//     REST catch-up, exactly as after a reconnect.
//
// A role is given up the moment its lease is found taken, or when no renewal has succeeded for
// 4/5 of LeaseTTL (the database is unreachable): the adapter's context is cancelled or the
// partition's tokens unsubscribed before the lease can expire in the store, so two instances
// never hold a role at once. A dead instance's roles are taken over within LeaseTTL +
// LeaseRenew (13 s with the defaults).

// CablePartitions is how many partitions the customers' cable subscriptions are split into.
// It is a constant because every instance sharing a store must agree on it.
const CablePartitions = 64

// Lease timing defaults.
const (
	DefaultLeaseTTL   = 10 * time.Second
	DefaultLeaseRenew = 3 * time.Second
)

// rescanEvery is how many renewals pass between reloads of every held partition's customers,
// which finds tokens whose announcement was lost (e.g. while the listener reconnected).
const rescanEvery = 20

// AdapterRole names the role of running the adapter of platform p.
func AdapterRole(p Platform) string { return "adapter/" + string(p) }

// PartitionRole names the role of holding cable partition n.
func PartitionRole(n int) string { return fmt.Sprintf("cable/%02d", n) }

// partitionOf is the cable partition of a customer.
func partitionOf(customerID int64) int {
	return int((customerID%CablePartitions + CablePartitions) % CablePartitions)
}

// needsSingleton says whether a's Run must run on one instance at a time.
func needsSingleton(a Adapter) bool {
	if s, ok := a.(SingletonRunner); ok {
		return s.NeedsSingleton()
	}
	return true
}

// RolesStatus is what an instance holds, for /readyz, metrics and logs.
type RolesStatus struct {
	// Instance is Options.InstanceID; Holder is the id this run uses in the store (Instance
	// plus a random suffix, so two processes given the same id never share a lease).
	Instance, Holder string
	// Running are the singleton adapters this instance runs now; Standby those another
	// instance runs (this one takes over when that one dies); Shared those that run on every
	// instance.
	Running, Standby, Shared []Platform
	// Partitions are the cable partitions this instance holds, out of CablePartitions.
	Partitions []int
	// Instances is how many live instances the last heartbeat saw, this one included.
	Instances int
	// Coordinated is true while the last renewal is recent enough for the roles above to be
	// valid; false before the first renewal and while the store is unreachable.
	Coordinated bool
	// Taken counts roles this instance has taken since it started.
	Taken int64
}

// Roles returns the role names held, sorted.
func (s RolesStatus) Roles() []string {
	out := make([]string, 0, len(s.Running)+len(s.Partitions))
	for _, p := range s.Running {
		out = append(out, AdapterRole(p))
	}
	for _, n := range s.Partitions {
		out = append(out, PartitionRole(n))
	}
	slices.Sort(out)
	return out
}

// Roles returns what this instance holds now. It is safe to call at any time.
func (c *Core) Roles() RolesStatus { return c.roles.status() }

// RolesChanged returns a channel that is closed at the next change of Roles (and at every
// renewal), for status pages and tests that wait for a takeover.
func (c *Core) RolesChanged() <-chan struct{} { return c.roles.changed.wait() }

// roleManager takes, renews and gives up this instance's roles. Its run loop is the only
// writer of the leases; track is called by the core when a customer gets a token.
type roleManager struct {
	c          *Core
	instance   string
	holder     string
	ttl, renew time.Duration
	singletons []Adapter
	shared     []Adapter
	kick       *signal // wakes run for announcements
	changed    *signal
	errs       chan error // an adapter that failed for good

	mu         sync.Mutex
	adapters   map[string]*adapterRun      // held adapter roles
	exiting    map[string]<-chan struct{}  // lost adapter roles whose Run has not returned yet
	parts      map[int]map[string]struct{} // held partitions → tokens subscribed for them
	pending    map[int]struct{}            // held partitions whose customers must be loaded
	announced  map[int64]struct{}          // customers to subscribe if their partition is held
	instances  int
	validUntil time.Time
	taken      int64
}

type adapterRun struct {
	a      Adapter
	cancel context.CancelFunc
	done   chan struct{}
}

func newRoleManager(c *Core) *roleManager {
	instance, ttl, renew := c.opts.InstanceID, c.opts.LeaseTTL, c.opts.LeaseRenew
	if instance == "" {
		instance = defaultInstanceID()
	}
	setDefault(&ttl, DefaultLeaseTTL)
	setDefault(&renew, DefaultLeaseRenew)
	if renew > ttl/2 {
		renew = ttl / 3
	}
	m := &roleManager{
		c:         c,
		instance:  instance,
		holder:    instance + "/" + randomSuffix(),
		ttl:       ttl,
		renew:     renew,
		kick:      newSignal(),
		changed:   newSignal(),
		errs:      make(chan error, len(c.adapterList)),
		adapters:  map[string]*adapterRun{},
		exiting:   map[string]<-chan struct{}{},
		parts:     map[int]map[string]struct{}{},
		pending:   map[int]struct{}{},
		announced: map[int64]struct{}{},
	}
	for _, a := range c.adapterList {
		if needsSingleton(a) {
			m.singletons = append(m.singletons, a)
		} else {
			m.shared = append(m.shared, a)
		}
	}
	return m
}

// defaultInstanceID is the host name, which is the container id under Docker.
func defaultInstanceID() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "bridge"
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// run takes and renews roles every LeaseRenew until ctx is cancelled, then stops the adapters
// it runs, waits for them, and releases every lease so another instance takes over at once.
// It returns an error when a singleton adapter fails for good.
func (m *roleManager) run(ctx context.Context) error {
	var adapters sync.WaitGroup
	defer func() {
		m.dropAll("shutting down")
		adapters.Wait()
		leaveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := m.c.store.Leave(leaveCtx, m.holder); err != nil {
			m.c.log.Warn("release roles at shutdown; other instances take them when the leases expire", zap.Error(err))
		}
		m.changed.notify()
	}()
	m.c.log.Info("coordinating roles through the store", zap.String("instance", m.instance), zap.String("holder", m.holder),
		zap.Duration("lease_ttl", m.ttl), zap.Duration("lease_renew", m.renew))
	next := time.Now()
	for renewals := 0; ; {
		woken := m.kick.wait()
		if !time.Now().Before(next) {
			m.tick(ctx, &adapters, renewals%rescanEvery == 0)
			renewals++
			next = time.Now().Add(m.renew)
		} else {
			// Announcements: bounded like a renewal, so the watchdog below is never held up.
			actx, cancel := context.WithTimeout(ctx, m.renew)
			m.subscribePending(actx)
			cancel()
		}
		wait := time.Until(next)
		m.mu.Lock()
		holding := m.holdingLocked()
		if holding {
			wait = min(wait, time.Until(m.validUntil))
		}
		m.mu.Unlock()
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case err := <-m.errs:
			t.Stop()
			return err
		case <-woken:
		case <-t.C:
		}
		t.Stop()
		m.mu.Lock()
		expired := m.holdingLocked() && !time.Now().Before(m.validUntil)
		m.mu.Unlock()
		if expired {
			m.dropAll("leases not renewed in time")
		}
	}
}

func (m *roleManager) holdingLocked() bool { return len(m.adapters) > 0 || len(m.parts) > 0 }

// tick heartbeats, renews what this instance holds, takes free roles up to its share, gives
// up its excess, and loads the customers of partitions it took.
func (m *roleManager) tick(ctx context.Context, adapters *sync.WaitGroup, rescan bool) {
	start := time.Now()
	deadline := start.Add(m.renew)
	m.mu.Lock()
	if m.holdingLocked() && m.validUntil.Before(deadline) {
		deadline = m.validUntil
	}
	m.mu.Unlock()
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	live, err := m.c.store.Heartbeat(dctx, m.holder, m.ttl)
	if err != nil {
		m.renewFailed(ctx, "heartbeat", err)
		return
	}
	leases, err := m.c.store.Leases(dctx, "")
	if err != nil {
		m.renewFailed(ctx, "read leases", err)
		return
	}
	owner := make(map[string]string, len(leases))
	for _, l := range leases {
		owner[l.Name] = l.Holder
	}
	takeable := func(name string) bool { h, ok := owner[name]; return !ok || h == m.holder }

	var want, release []string
	claims := map[string]bool{}
	m.mu.Lock()
	for name, ex := range m.exiting {
		if closed(ex) {
			delete(m.exiting, name)
		}
	}
	for name, r := range m.adapters {
		if closed(r.done) {
			// Run returned by itself: let whoever is next (maybe this instance, next time) run it.
			delete(m.adapters, name)
			release = append(release, name)
			continue
		}
		want = append(want, name)
	}
	for _, a := range m.singletons {
		name := AdapterRole(a.Platform())
		_, held := m.adapters[name]
		_, ex := m.exiting[name]
		if !held && !ex && !slices.Contains(release, name) && takeable(name) {
			want = append(want, name)
			claims[name] = true
		}
	}
	quota := fairShare(live, m.holder, CablePartitions)
	held := slices.Sorted(maps.Keys(m.parts))
	if len(held) > quota {
		for _, p := range held[quota:] {
			m.stopPartitionLocked(p)
			release = append(release, PartitionRole(p))
		}
		held = held[:quota]
	}
	for _, p := range held {
		want = append(want, PartitionRole(p))
	}
	if len(held) < quota {
		var free []int
		for p := range CablePartitions {
			if _, mine := m.parts[p]; !mine && takeable(PartitionRole(p)) {
				free = append(free, p)
			}
		}
		// Instances joining together would all race for the lowest numbers.
		mathrand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
		for _, p := range free[:min(len(free), quota-len(held))] {
			want = append(want, PartitionRole(p))
			claims[PartitionRole(p)] = true
		}
	}
	m.mu.Unlock()

	if len(release) > 0 {
		if err := m.c.store.ReleaseLeases(dctx, m.holder, release); err != nil && ctx.Err() == nil {
			m.c.log.Warn("release roles; they expire instead", zap.Strings("roles", release), zap.Error(err))
		} else if ctx.Err() == nil {
			m.c.log.Info("released roles to other instances", zap.Strings("roles", release), zap.Int("instances", len(live)))
		}
	}
	got, err := m.c.store.AcquireLeases(dctx, m.holder, want, m.ttl)
	if err != nil {
		m.renewFailed(ctx, "renew leases", err)
		return
	}
	gotSet := make(map[string]bool, len(got))
	for _, name := range got {
		gotSet[name] = true
	}

	var lost, gained []string
	m.mu.Lock()
	m.validUntil = start.Add(m.ttl - m.ttl/5)
	m.instances = len(live)
	for name, r := range m.adapters {
		if !gotSet[name] {
			lost = append(lost, name)
			r.cancel()
			m.exiting[name] = r.done
			delete(m.adapters, name)
		}
	}
	for p := range m.parts {
		if !gotSet[PartitionRole(p)] {
			lost = append(lost, PartitionRole(p))
			m.stopPartitionLocked(p)
		}
	}
	for _, a := range m.singletons {
		name := AdapterRole(a.Platform())
		if claims[name] && gotSet[name] {
			gained = append(gained, name)
			m.startAdapterLocked(ctx, adapters, name, a)
		}
	}
	for p := range CablePartitions {
		if claims[PartitionRole(p)] && gotSet[PartitionRole(p)] {
			gained = append(gained, PartitionRole(p))
			// Held before its customers are loaded, so that a token announced meanwhile is
			// subscribed by track rather than missed.
			m.parts[p] = map[string]struct{}{}
			m.pending[p] = struct{}{}
		}
	}
	if rescan {
		for p := range m.parts {
			m.pending[p] = struct{}{}
		}
	}
	m.taken += int64(len(gained))
	m.mu.Unlock()

	if len(lost) > 0 {
		m.c.log.Warn("lost roles to another instance", zap.Strings("roles", compactRoles(lost)))
	}
	var stopped []int
	for _, name := range append(lost, release...) {
		var p int
		if _, err := fmt.Sscanf(name, "cable/%d", &p); err == nil {
			stopped = append(stopped, p)
		}
	}
	m.unsubscribeUntracked(dctx, stopped)
	if len(gained) > 0 {
		m.c.log.Info("took roles", zap.Strings("roles", compactRoles(gained)), zap.Int("instances", len(live)), zap.Int("partition_share", quota))
	}
	m.subscribePending(dctx)
	m.changed.notify()
}

// unsubscribeUntracked unsubscribes every token of the given partitions (no longer held here)
// that the store knows, in case one was subscribed without being tracked (a token refreshed
// after a silent subscription). Unsubscribing a token that is not subscribed is a no-op.
func (m *roleManager) unsubscribeUntracked(ctx context.Context, parts []int) {
	if len(parts) == 0 {
		return
	}
	for after := int64(0); ; {
		customers, err := m.c.store.PartitionCustomers(ctx, CablePartitions, parts, time.Time{}, after, customerPage)
		if err != nil {
			if ctx.Err() == nil {
				m.c.log.Debug("list the customers of given-up partitions", zap.Error(err))
			}
			return
		}
		m.mu.Lock()
		for _, cu := range customers {
			if _, held := m.parts[partitionOf(cu.ID)]; !held {
				m.c.cable.Unsubscribe(cu.PubsubToken)
			}
		}
		m.mu.Unlock()
		if len(customers) < customerPage {
			return
		}
		after = customers[len(customers)-1].ID
	}
}

// renewFailed gives up every role once the renewals have failed for too long.
func (m *roleManager) renewFailed(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	m.c.log.Warn("role coordination failed", zap.String("step", what), zap.Error(err))
	m.mu.Lock()
	expired := m.holdingLocked() && !time.Now().Before(m.validUntil)
	m.mu.Unlock()
	if expired {
		m.dropAll("leases not renewed in time")
	}
}

// startAdapterLocked runs a under a context that is cancelled when the role is lost.
func (m *roleManager) startAdapterLocked(ctx context.Context, wg *sync.WaitGroup, name string, a Adapter) {
	rctx, cancel := context.WithCancel(ctx)
	r := &adapterRun{a: a, cancel: cancel, done: make(chan struct{})}
	m.adapters[name] = r
	wg.Go(func() {
		defer close(r.done)
		defer cancel()
		err := a.Run(rctx)
		switch {
		case err != nil && rctx.Err() == nil:
			select {
			case m.errs <- fmt.Errorf("%s adapter: %w", a.Platform(), err):
			default:
			}
		case rctx.Err() == nil:
			m.c.log.Warn("adapter stopped by itself; giving its role up", zap.String("platform", string(a.Platform())))
		}
	})
}

// stopPartitionLocked unsubscribes the partition's tokens and forgets it.
func (m *roleManager) stopPartitionLocked(p int) {
	tokens := m.parts[p]
	for token := range tokens {
		m.c.cable.Unsubscribe(token)
	}
	delete(m.parts, p)
	delete(m.pending, p)
	// The next subscription of these tokens, here or elsewhere, starts with a catch-up when it
	// is confirmed (CableConfirmed).
}

// dropAll gives up every role at once, without waiting for the store.
func (m *roleManager) dropAll(reason string) {
	m.mu.Lock()
	var dropped []string
	for name, r := range m.adapters {
		r.cancel()
		m.exiting[name] = r.done
		delete(m.adapters, name)
		dropped = append(dropped, name)
	}
	for p := range m.parts {
		m.stopPartitionLocked(p)
		dropped = append(dropped, PartitionRole(p))
	}
	m.validUntil = time.Time{}
	m.mu.Unlock()
	if len(dropped) > 0 {
		log := m.c.log.Warn
		if reason == "shutting down" {
			log = m.c.log.Info
		}
		log("gave up roles", zap.String("reason", reason), zap.Strings("roles", compactRoles(dropped)))
		m.changed.notify()
	}
}

// subscribePending loads and subscribes the customers of partitions just taken (or due for a
// rescan) and the customers other instances announced, when their partition is held here.
func (m *roleManager) subscribePending(ctx context.Context) {
	m.mu.Lock()
	parts := slices.Sorted(maps.Keys(m.pending))
	clear(m.pending)
	var ids []int64
	for id := range m.announced {
		if _, held := m.parts[partitionOf(id)]; held {
			ids = append(ids, id)
		}
	}
	clear(m.announced)
	m.mu.Unlock()

	if len(parts) > 0 {
		if err := m.c.subscribeKnown(ctx, parts); err != nil {
			if ctx.Err() == nil {
				m.c.log.Warn("subscribe the customers of taken partitions; will retry", zap.Error(err))
			}
			m.mu.Lock()
			for _, p := range parts {
				if _, held := m.parts[p]; held {
					m.pending[p] = struct{}{}
				}
			}
			m.mu.Unlock()
		}
	}
	for _, id := range ids {
		cu, err := m.c.store.CustomerByID(ctx, id)
		switch {
		case err == nil:
			m.track(cu, true)
		case errors.Is(err, ErrNotFound):
		default:
			// The next rescan of the partition finds it.
			if ctx.Err() == nil {
				m.c.log.Warn("load announced customer", zap.Int64("customer_id", id), zap.Error(err))
			}
		}
	}
}

// track subscribes the customer's token when this instance holds its partition, and says
// whether it does. wanted says the user just wrote: the idle sweep then leaves the token
// alone for two sweeps, in case the listing still sees the resolved conversation. A
// partition's load subscribes the customers it found active without marking them.
func (m *roleManager) track(cu Customer, wanted bool) bool {
	p := partitionOf(cu.ID)
	m.mu.Lock()
	defer m.mu.Unlock()
	tokens, held := m.parts[p]
	if !held {
		return false
	}
	if cu.PubsubToken != "" {
		tokens[cu.PubsubToken] = struct{}{}
		if wanted {
			m.c.subscribe(cu.PubsubToken)
		} else {
			m.c.cable.Subscribe(cu.PubsubToken)
		}
	}
	return true
}

// announce is called by the store's listener with a customer another instance (or this one)
// wants subscribed.
func (m *roleManager) announce(id int64) {
	m.mu.Lock()
	m.announced[id] = struct{}{}
	m.mu.Unlock()
	m.kick.notify()
}

func (m *roleManager) status() RolesStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := RolesStatus{
		Instance:    m.instance,
		Holder:      m.holder,
		Partitions:  slices.Sorted(maps.Keys(m.parts)),
		Instances:   m.instances,
		Coordinated: !m.validUntil.IsZero() && time.Now().Before(m.validUntil),
		Taken:       m.taken,
	}
	for _, a := range m.singletons {
		if _, ok := m.adapters[AdapterRole(a.Platform())]; ok {
			s.Running = append(s.Running, a.Platform())
		} else {
			s.Standby = append(s.Standby, a.Platform())
		}
	}
	for _, a := range m.shared {
		s.Shared = append(s.Shared, a.Platform())
	}
	return s
}

// subscribeCustomer makes sure the customer's token is subscribed by whichever instance holds
// its cable partition: here when this instance holds it, otherwise by announcing it to the
// holder. It is idempotent and cheap either way.
func (c *Core) subscribeCustomer(ctx context.Context, cu Customer) {
	if cu.PubsubToken == "" || c.roles.track(cu, true) {
		return
	}
	if err := c.store.AnnounceCustomer(ctx, cu.ID); err != nil {
		// The holder's next rescan of the partition subscribes it.
		c.log.Warn("announce a customer to the instance holding its cable partition", zap.Int64("customer_id", cu.ID), zap.Error(err))
	}
}

// fairShare is how many of total partitions the holder should hold: total/N each, and one
// more for the first total%N instances in id order, so that the shares add up to total.
func fairShare(live []string, holder string, total int) int {
	n := len(live)
	rank, found := slices.BinarySearch(live, holder)
	if !found {
		n++
		rank = n - 1
	}
	q := total / n
	if rank < total%n {
		q++
	}
	return q
}

// compactRoles shortens a list of roles for a log line: partitions become a count.
func compactRoles(names []string) []string {
	var out []string
	parts := 0
	for _, n := range names {
		if len(n) > 6 && n[:6] == "cable/" {
			parts++
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	if parts > 0 {
		out = append(out, fmt.Sprintf("cable partitions: %d", parts))
	}
	return out
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
