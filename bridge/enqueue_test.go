package bridge_test

import (
	"crypto/rand"
	"strconv"
	"sync"
	"testing"

	"github.com/onechat/onechat-bridge/bridge"
)

// TestConcurrentEnqueuesAreAllStoredAndABadOneFailsAlone runs many enqueues at once, as
// catch-ups of many conversations and the platform adapters do, so that they share commits.
// Every one must be stored with its cursor and get its own count back; one the database rejects
// must fail alone, not take the others in its transaction down with it.
func TestConcurrentEnqueuesAreAllStoredAndABadOneFailsAlone(t *testing.T) {
	h := newHarness(t, nil)
	opts := h.opts
	opts.Adapters = []bridge.AdapterBuilder{h.adapter.Build}
	core, err := bridge.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const calls = 200
	batch := func(i int) bridge.JobBatch {
		dedup := "m" + strconv.Itoa(i)
		if i == calls/2 {
			dedup = rand.Text() // larger than an index entry can be, even compressed
			for len(dedup) < 10000 {
				dedup += rand.Text()
			}
		}
		return bridge.JobBatch{
			Cursor: bridge.IntCursor("conversation:"+strconv.Itoa(i), int64(i+1)),
			Jobs:   []bridge.NewJob{{Direction: bridge.Out, Key: "chat" + strconv.Itoa(i%10), Dedup: dedup, Payload: []byte(`{}`)}},
		}
	}
	var wg sync.WaitGroup
	n := make([]int, calls)
	errs := make([]error, calls)
	for i := range calls {
		wg.Go(func() { n[i], errs[i] = core.Enqueue(ctx, batch(i)) })
	}
	wg.Wait()
	for i := range calls {
		stored, err := h.store.Cursor(ctx, "conversation:"+strconv.Itoa(i))
		pos := bridge.ParsePosition(stored)
		if err != nil {
			t.Fatal(err)
		}
		if i == calls/2 {
			if errs[i] == nil || pos != 0 {
				t.Errorf("enqueue of an impossible job: err %v, cursor %d; want an error and no cursor", errs[i], pos)
			}
			continue
		}
		if errs[i] != nil || n[i] != 1 || pos != int64(i+1) {
			t.Errorf("enqueue %d = %d, %v, cursor %d; want 1, nil, %d", i, n[i], errs[i], pos, i+1)
		}
		if st, _, err := h.store.JobState(ctx, bridge.Out, "m"+strconv.Itoa(i)); err != nil || st != bridge.JobPending {
			t.Errorf("job m%d: %q, %v; want pending", i, st, err)
		}
	}
	// The same again is stored already: nothing new.
	for i := range calls {
		wg.Go(func() { n[i], errs[i] = core.Enqueue(ctx, batch(i)) })
	}
	wg.Wait()
	for i := range calls {
		if i != calls/2 && (errs[i] != nil || n[i] != 0) {
			t.Errorf("enqueue %d again = %d, %v; want 0, nil", i, n[i], errs[i])
		}
	}
}
