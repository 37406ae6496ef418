package bridge

import (
	"testing"
	"time"
)

// TestBlockedFlagsAreBounded: a flood of distinct contacts within one IdleAfter does not grow
// the blocked flags the core remembers past maxBlockStates, and the idle sweep forgets the
// flags learnt before its cut-off.
func TestBlockedFlagsAreBounded(t *testing.T) {
	b := blocks{contact: make(map[int64]blockState)}
	now := time.Now()
	for id := range int64(maxBlockStates + 500) {
		b.setContact(id+1, false, now)
	}
	if n := len(b.contact); n == 0 || n > maxBlockStates {
		t.Fatalf("%d flags after %d contacts, want between 1 and %d", n, maxBlockStates+500, maxBlockStates)
	}
	b.setContact(1, true, now.Add(time.Hour))
	b.forgetBefore(now.Add(time.Minute))
	if st, ok := b.contactState(1); len(b.contact) != 1 || !ok || !st.blocked {
		t.Errorf("after forgetting flags learnt before the cut-off: %d flags, contact 1 %+v %v; want only contact 1, blocked", len(b.contact), st, ok)
	}
}
