package bridge

import (
	"context"
	"encoding/json"
	"time"
)

// Customer is a platform user the bridge knows, and their OneChat contact session.
type Customer struct {
	// ID is the store's own id.
	ID   int64
	User UserRef
	// Chat is where agent replies to this user go.
	Chat ChatRef
	// Identifier is the OneChat contact identifier, e.g. "telegram:123".
	Identifier string
	// SourceID is the OneChat contact session id. It is a credential: it is random, never
	// derived from the user id, and never logged. Empty until the contact is created.
	SourceID string
	// PubsubToken is the session's cable token. Empty until the contact is created.
	PubsubToken string
	// ContactID is OneChat's contact id, 0 until the contact is created.
	ContactID   int64
	DisplayName string
	Username    string
	// ConversationID is the customer's current OneChat conversation (display id), 0 if none.
	ConversationID int64
	// ConversationStatus is the current conversation's last known status
	// (open, resolved, pending, snoozed).
	ConversationStatus string
	// UnreachableReason is set when the platform said the user cannot be reached.
	UnreachableReason string
}

// CustomerFields names columns of a customer that a writer changes (UpdateCustomer), so each
// writer changes only its own: marking a user unreachable must not undo the chat an adapter
// just moved, nor a contact session the inbound worker just created. The contact session and
// the conversation have writers of their own (SetContactSession, SetConversation).
type CustomerFields uint8

// The customer columns writers change.
const (
	// CustomerChat is Chat.
	CustomerChat CustomerFields = 1 << iota
	// CustomerProfile is Identifier, DisplayName and Username.
	CustomerProfile
	// CustomerReachability is UnreachableReason.
	CustomerReachability
)

// Direction is the direction of a queued message.
type Direction string

// Queue directions.
const (
	// In is user → OneChat; the queue key is the platform user.
	In Direction = "in"
	// Out is OneChat → user; the queue key is the platform chat.
	Out Direction = "out"
)

// NewJob is a message to put in the queue.
type NewJob struct {
	Direction Direction
	// Key orders jobs: only the oldest unfinished job of a key is eligible to run.
	Key string
	// Dedup makes the job unique within its direction: enqueueing a job whose Dedup exists is a
	// no-op, whatever state the existing job is in.
	Dedup   string
	Payload json.RawMessage
}

// Take asks an enqueue to lease some of its jobs to the enqueuer at once, in the same
// transaction, so that the enqueuer's idle workers run them without a claim. A job named in
// Dedups is taken when, once stored, it is its key's head, pending and due: exactly the jobs a
// claim could take. The zero Take takes nothing.
type Take struct {
	Lease  time.Duration
	Dedups map[Direction][]string
}

// StoredValue is a value of a platform's (Host's) store, for SetValues.
type StoredValue struct {
	Platform   Platform
	Key, Value string
}

// JobBatch is jobs to queue together with the cursor that moves when they are stored.
type JobBatch struct {
	// Cursor moves forward (never back) in the transaction that stores Jobs, unless its Name
	// is empty.
	Cursor Cursor
	Jobs   []NewJob
}

// Job is a claimed queue row.
type Job struct {
	ID        int64
	Direction Direction
	Key       string
	Dedup     string
	Payload   json.RawMessage
	// Attempts counts earlier attempts that failed (rate-limit waits are not counted). Taking
	// over a job whose lease expired counts one, so ID and Attempts together name the claim.
	Attempts int
	// Retried is true when an earlier attempt ran (failed, was rate limited, interrupted or
	// taken over), so this one may find part of its work done.
	Retried   bool
	CreatedAt time.Time
	// CustomerRead says the store read the customer of the job's user (its payload's "user")
	// with the claim, one round trip less per message: Customer, or nil when there is none.
	CustomerRead bool
	Customer     *Customer

	// leasedFrom is when the claim that leased the job was sent: the lease runs from no
	// earlier than that by the store's clock.
	leasedFrom time.Time
	// leftOut are the notes of a Send that delivered the message in part (PartialError), told
	// to agents once the delivery is recorded.
	leftOut []string
}

// JobLease names one claim of a job: the job and its Attempts when claimed. Every claim of a
// job whose earlier holder may still be running (its lease expired) counts an attempt, so two
// workers never hold the same JobLease, and the store refuses to let an earlier holder renew,
// finish or retry the job (ErrLeaseLost).
type JobLease struct {
	ID       int64
	Attempts int
}

// Lease returns the claim the job was handed out under.
func (j *Job) Lease() JobLease { return JobLease{ID: j.ID, Attempts: j.Attempts} }

// Job states as the store records them.
const (
	JobPending = "pending"
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// Completion is a job that was delivered under Lease and the message links to record with it.
// Direction and Key, when set, are the job's (as claimed): the store then need not read them.
type Completion struct {
	Lease     JobLease
	Links     []MessageLink
	Direction Direction
	Key       string
	// Next, when above zero, asks for the key's next job: if it is pending and due once this
	// job is done, the completion leases it for Next (as a claim would) and returns it.
	Next time.Duration
}

// MessageLink maps a OneChat message to one platform message.
type MessageLink struct {
	OneChatMessageID  int64
	ConversationID    int64
	Chat              ChatRef
	PlatformMessageID string
	Direction         Direction
}

// Store is the bridge's durable state. bridge/postgres implements it; every method is safe for
// concurrent use, and several bridge processes may share one store.
type Store interface {
	// Customer returns the customer for the platform user, or ErrNotFound.
	Customer(ctx context.Context, u UserRef) (Customer, error)
	// CustomerByConversation returns the customer whose current or past conversation has this
	// OneChat id, or ErrNotFound.
	CustomerByConversation(ctx context.Context, conversationID int64) (Customer, error)
	// CustomerByPubsubToken returns the customer with this cable token, or ErrNotFound, and the
	// position of the cursor named cursorPrefix and its current conversation's id ("" when
	// there is none).
	CustomerByPubsubToken(ctx context.Context, token, cursorPrefix string) (Customer, string, error)
	// SaveCustomer inserts the customer keyed by c.User with every column c carries (the
	// conversation fields aside) when there is none; when there is one, it changes only the
	// columns named by fields, as UpdateCustomer does. It returns the customer as stored.
	SaveCustomer(ctx context.Context, c Customer, fields CustomerFields) (Customer, error)
	// UpdateCustomer changes only the columns named by fields of the customer keyed by c.User,
	// so that writers of other columns (a new contact session, a moved chat) are never undone,
	// and returns the customer as stored; ErrNotFound when there is none.
	UpdateCustomer(ctx context.Context, c Customer, fields CustomerFields) (Customer, error)
	// SetContactSession replaces the contact session (SourceID, PubsubToken, ContactID) of the
	// customer with this id by c's, but only while the stored SourceID is still was: a writer
	// that read an older session cannot undo a newer one. It returns the customer as stored
	// and whether it changed it; ErrNotFound when there is no such customer.
	SetContactSession(ctx context.Context, id int64, was string, c Customer) (Customer, bool, error)
	// Customers returns every customer that has a contact session (SourceID set).
	Customers(ctx context.Context) ([]Customer, error)
	// ActiveCustomers returns the customers with a cable token that were not idle at since;
	// IdleCustomers those of the customers whose cable token is in tokens that went idle
	// before `before`. Idle means the current conversation was resolved (or vanished) before
	// that time, or there is none and the customer has not changed since.
	ActiveCustomers(ctx context.Context, since time.Time) ([]Customer, error)
	IdleCustomers(ctx context.Context, before time.Time, tokens []string) ([]Customer, error)
	// SetConversation makes conversationID the customer's current conversation with the given
	// status, remembering that the conversation belongs to the customer. It returns
	// ErrConversationTaken, changing nothing, when the conversation belongs to another
	// customer, and ErrNotFound when the customer does not exist.
	SetConversation(ctx context.Context, customerID, conversationID int64, status string) error
	// ConversationsSince counts the conversations recorded for the customer (SetConversation)
	// since the given time: the conversations opened (or adopted) for them.
	ConversationsSince(ctx context.Context, customerID int64, since time.Time) (int, error)
	// LatestCustomerWithConversation returns the most recently created customer that has a
	// contact session and a current conversation, or ErrNotFound.
	LatestCustomerWithConversation(ctx context.Context) (Customer, error)
	// SetConversationStatus records a new status for a known conversation. It returns
	// ErrNotFound when the bridge does not own the conversation.
	SetConversationStatus(ctx context.Context, conversationID int64, status string) error
	// ChangeConversationStatus records a new status for a known conversation like
	// SetConversationStatus and, when the status changed, queues the jobs onChange returns for
	// the previous status, in the same transaction: a status change and what it must cause are
	// stored together or not at all. It returns the previous status, or "" when the status
	// did not change; ErrNotFound when the bridge does not own the conversation.
	ChangeConversationStatus(ctx context.Context, conversationID int64, status string, onChange func(previous string) []NewJob) (previous string, err error)
	// ChangeConversationStatusFrom is ChangeConversationStatus that changes nothing (and
	// returns "") unless the recorded status is still from: a writer that read the status
	// before another one recorded a change does not undo it with what it knew.
	ChangeConversationStatusFrom(ctx context.Context, conversationID int64, from, status string, onChange func(previous string) []NewJob) (previous string, err error)

	// EnqueueBatch stores the jobs of every batch in order (skipping those whose Dedup exists)
	// and moves each batch's cursor forward (when its Name is not empty), all in one
	// transaction. It returns how many of each batch's jobs were new, and the jobs it took for
	// the enqueuer's idle workers (see Take), leased like claimed jobs with their customers read.
	EnqueueBatch(ctx context.Context, batches []JobBatch, take Take) ([]int, []Job, error)
	// ClaimBatch takes up to max of the eligible jobs of the direction that have been due
	// longest: heads of their keys (so never two of one key), pending and due, or running with
	// an expired lease (their worker died). The jobs are leased for lease and returned in id
	// order. It returns no jobs when none is eligible.
	ClaimBatch(ctx context.Context, dir Direction, lease time.Duration, max int) ([]Job, error)
	// ExtendLease keeps a running job leased for another lease from now, as long as the job
	// is still held under l; ErrLeaseLost when it is not (taken over, or finished), and
	// ErrNotFound when the job does not exist.
	ExtendLease(ctx context.Context, l JobLease, lease time.Duration) error
	// CompleteBatch marks the jobs done and records their message links, in one transaction;
	// each key moves on to its next job. A completion whose job is not held under its lease
	// any more (or does not exist) changes nothing, its links included: refused holds the
	// indexes of those in done. err is for the transaction as a whole, which then recorded
	// nothing. next are the keys' next jobs that completions with a Next lease took, each
	// leased like a claimed job, with its customer read (the completer must run them).
	CompleteBatch(ctx context.Context, done []Completion) (refused []int, next []Job, err error)
	// Retry makes the job pending again, due at `at`, and records links, the parts of the
	// message the attempt delivered before it failed, in one transaction. countAttempt is false
	// for rate-limit waits. reason is kept as the job's last error. ErrLeaseLost when the job is
	// not held under l (nothing is recorded then).
	Retry(ctx context.Context, l JobLease, at time.Time, countAttempt bool, reason string, links ...MessageLink) error
	// Fail marks the job failed with reason and records links, the parts of the message the
	// attempt delivered before it failed, in one transaction; the key moves on to its next job.
	// ErrLeaseLost when the job is not held under l (nothing is recorded then).
	Fail(ctx context.Context, l JobLease, reason string, links ...MessageLink) error
	// NextDue returns when the next pending job of the direction becomes due; ok is false when
	// there is none.
	NextDue(ctx context.Context, dir Direction) (at time.Time, ok bool, err error)
	// JobPayload returns the payload of the job with this dedup key (in any state), or
	// ErrNotFound.
	JobPayload(ctx context.Context, dir Direction, dedup string) (json.RawMessage, error)
	// Listen calls wake with the direction of new jobs that any process sharing the store
	// enqueues, until ctx is cancelled; it returns nil then. It reconnects by itself.
	Listen(ctx context.Context, wake func(Direction)) error
	// JobState returns the state and last error of the job with this dedup key, or ErrNotFound.
	JobState(ctx context.Context, dir Direction, dedup string) (state, lastError string, err error)
	// Prune deletes the finished jobs (done or failed) that finished before `before`, and the
	// message links recorded before it, a bounded number of rows per transaction. Unfinished
	// jobs are never deleted, however old. It returns how many of each it deleted.
	Prune(ctx context.Context, before time.Time) (jobs, links int64, err error)

	// Cursor returns the named cursor's position, "" if it was never stored.
	Cursor(ctx context.Context, name string) (string, error)
	// Cursors returns every cursor whose name starts with prefix, ordered by name.
	Cursors(ctx context.Context, prefix string) ([]Cursor, error)

	// Value, SetValue, SetValueIfAbsent, DeleteValue and Values keep each platform's adapter
	// values (Host), apart from every other platform's.
	Value(ctx context.Context, p Platform, key string) (string, bool, error)
	// PendingInbound counts each key's unfinished inbound messages, at most upTo[i] for
	// keys[i], in one read.
	PendingInbound(ctx context.Context, keys []string, upTo []int) ([]int, error)
	SetValue(ctx context.Context, p Platform, key, value string) error
	// SetValues stores several values, of any platforms, in one statement (the last one given
	// for a key counts).
	SetValues(ctx context.Context, values []StoredValue) error
	SetValueIfAbsent(ctx context.Context, p Platform, key, value string) (string, error)
	DeleteValue(ctx context.Context, p Platform, key string) error
	Values(ctx context.Context, p Platform, prefix string) (map[string]string, error)

	// LinkByOneChat returns the links of a OneChat message (empty when unknown).
	LinkByOneChat(ctx context.Context, oneChatMessageID int64) ([]MessageLink, error)
	// LinkByPlatform returns the link of a platform message, or ErrNotFound.
	LinkByPlatform(ctx context.Context, chat ChatRef, platformMessageID string) (MessageLink, error)

	// Coordination of instances sharing the store (see roles.go). Lease times are the store's
	// clock, so instances need not agree on the time.

	// AcquireLeases takes or renews, for holder and for ttl from now, each named lease that is
	// free, expired, released, or already holder's, and returns the names holder now holds (in
	// any order). A lease another holder has is left alone; that is not an error.
	AcquireLeases(ctx context.Context, holder string, names []string, ttl time.Duration) ([]string, error)
	// ReleaseLeases gives up holder's leases of these names, so another instance may take them
	// at once. Names holder does not hold are ignored.
	ReleaseLeases(ctx context.Context, holder string, names []string) error
	// Leases returns the leases that are held now (not expired) whose name starts with prefix,
	// ordered by name.
	Leases(ctx context.Context, prefix string) ([]Lease, error)
	// Heartbeat records that instance is alive for ttl from now and returns the ids of every
	// live instance, this one included, sorted.
	Heartbeat(ctx context.Context, instance string, ttl time.Duration) ([]string, error)
	// Leave removes instance from the live instances and releases every lease it holds.
	Leave(ctx context.Context, instance string) error
	// PartitionCustomers returns the customers with a cable token whose ID modulo partitions
	// is in which and that were not idle at activeSince (see ActiveCustomers), one page: those
	// with an ID above afterID, in ID order, at most limit of them (all when limit is 0).
	PartitionCustomers(ctx context.Context, partitions int, which []int, activeSince time.Time, afterID int64, limit int) ([]Customer, error)
	// CustomerByID returns the customer with this store id, or ErrNotFound.
	CustomerByID(ctx context.Context, id int64) (Customer, error)
	// AnnounceCustomer tells every instance sharing the store (through ListenCustomers) that
	// the customer's cable subscription is wanted, e.g. because it got a new token.
	AnnounceCustomer(ctx context.Context, id int64) error
	// ListenCustomers calls announced with the id of every customer any instance announces,
	// until ctx is cancelled; it returns nil then. It reconnects by itself; announcements made
	// while it reconnects are lost.
	ListenCustomers(ctx context.Context, announced func(id int64)) error
}

// Lease is a role held by an instance until Expires (the store's clock).
type Lease struct {
	Name       string
	Holder     string
	AcquiredAt time.Time
	Expires    time.Time
}
