package bridge

import "time"

// What the core keeps in memory per user is kept for active users only: the idle sweep
// (sweepIdle) drops the subscriptions of idle customers, with the role manager's record of
// them, and forgets what the core remembered of users it has not heard of for IdleAfter. The
// maps that held them are then copied into right-sized ones, because a Go map never gives
// back the table of its busiest moment.

// resized returns a copy of m sized for the entries it holds now. The sweep calls it for the
// maps it prunes: a copy costs what the pruning pass over the map cost already.
func resized[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// forgetIdleUsers drops what the core remembers per user that is older than it is worth:
// languages stored longer ago than languageFresh (they are written again then anyway) or
// IdleAfter, and the
// contact attributes and blocked flags of contacts not heard of for IdleAfter (the user's next
// message costs one contact update, or one read of the flag). It also sizes the maps that only
// hold work in flight (catch-ups, statuses, session refreshes) for what they hold now, after
// bursts such as thousands of resolves.
func (c *Core) forgetIdleUsers(now time.Time) {
	c.languagesMu.Lock()
	for u, l := range c.languages {
		if now.Sub(l.at) >= min(languageFresh, c.opts.IdleAfter) {
			delete(c.languages, u)
		}
	}
	c.languages = resized(c.languages)
	c.languagesMu.Unlock()

	idleSince := now.Add(-c.opts.IdleAfter)
	c.contactAttrsMu.Lock()
	for id, a := range c.contactAttrs {
		if a.at.Before(idleSince) {
			delete(c.contactAttrs, id)
		}
	}
	c.contactAttrs = resized(c.contactAttrs)
	c.contactAttrsMu.Unlock()

	c.blocks.forgetBefore(idleSince)

	c.catchupMu.Lock()
	c.catchupPending = resized(c.catchupPending)
	c.catchupBusy = resized(c.catchupBusy)
	c.statusPending = resized(c.statusPending)
	c.refresh = resized(c.refresh)
	c.catchupMu.Unlock()

	c.toldMu.Lock()
	c.told = resized(c.told)
	c.toldMu.Unlock()
}

// maxBlockStates bounds the blocked flags kept between sweeps: a flood of distinct contacts
// within one IdleAfter must not grow memory without end. Reaching it forgets them all (each
// costs one read of the flag when its user writes again).
const maxBlockStates = 100000

// forgetBefore drops the flags learnt before t.
func (b *blocks) forgetBefore(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, s := range b.contact {
		if s.at.Before(t) {
			delete(b.contact, id)
		}
	}
	b.contact = resized(b.contact)
}

// dropIdle unsubscribes the idle customers' tokens, unless their users wrote since the last
// sweep (Core.subscribe marked them wanted), and forgets them in the partitions this instance
// holds. It returns how many it unsubscribed. Holding m.mu orders it with track, so a token a
// user's message subscribes meanwhile is either found wanted or subscribed after this.
func (m *roleManager) dropIdle(idle []Customer) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, cu := range idle {
		if cu.PubsubToken == "" || m.c.wantedNow(cu.PubsubToken) {
			continue
		}
		if tokens, held := m.parts[partitionOf(cu.ID)]; held {
			delete(tokens, cu.PubsubToken)
		}
		m.c.cable.Unsubscribe(cu.PubsubToken)
		n++
	}
	return n
}

// untrack unsubscribes a customer's token that is no longer theirs (a forgotten or replaced
// contact session) and forgets it in its partition.
func (m *roleManager) untrack(customerID int64, token string) {
	if token == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if tokens, held := m.parts[partitionOf(customerID)]; held {
		delete(tokens, token)
	}
	m.c.cable.Unsubscribe(token)
}

// resize sizes the partitions' token sets for what they hold now, after a sweep.
func (m *roleManager) resize() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, tokens := range m.parts {
		m.parts[p] = resized(tokens)
	}
	m.announced = resized(m.announced)
}
