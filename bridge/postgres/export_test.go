package postgres

import (
	"context"
	"time"
)

// KeyLockID exposes keyLockID to the external tests, which hold a key's lock to prove that
// Enqueue waits for it.
var KeyLockID = keyLockID

// The queue's statements and the settings they run under, for the test that plans them as the
// store does with a backlog its statistics do not know of.
const (
	IndexPlans  = indexPlans
	InsertJobs  = insertJobs
	MoveCursors = moveCursors
	NextDue     = nextDue
)

var (
	ClaimJobs    = claimJobs
	CompleteJobs = completeJobs
	PromoteHeads = promoteHeads
)

// PruneWindowed is Prune with a window of a few ids, so tests cross window bounds with few rows.
func (s *Store) PruneWindowed(ctx context.Context, before time.Time, window int64) (jobs, links int64, err error) {
	return s.prune(ctx, before, window)
}
