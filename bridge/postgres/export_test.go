package postgres

// KeyLockID exposes keyLockID to the external tests, which hold a key's lock to prove that
// Enqueue waits for it.
var KeyLockID = keyLockID
