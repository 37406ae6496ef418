package postgres

// KeyLockID exposes keyLockID to the external tests, which hold a key's lock to prove that
// Enqueue waits for it.
var KeyLockID = keyLockID

// The queue's statements and the settings they run under, for the test that plans them as the
// store does with a backlog its statistics do not know of.
const (
	IndexPlans  = indexPlans
	ClaimJobs   = claimJobs
	InsertJobs  = insertJobs
	MoveCursors = moveCursors
)
