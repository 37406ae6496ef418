package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/onechat/onechat-bridge/bridge"
)

// The queue keeps one row per job. Within (direction, key) the unfinished row with the lowest id
// is the head, and only the head may run. The head carries head = true (migration 00003), so
// that Claim reads a partial index of heads (one entry per key with work) in the order they
// become due (migration 00004) instead of every unfinished row of the direction. With several
// processes this holds because:
//
//   - Every change of a key's head happens under a transaction-level advisory lock per
//     (direction, key) (keyLockID), taken before the statements that decide it, so each of them
//     sees the others' commits. Enqueue takes it before inserting, which also gives the jobs of
//     a key their ids in commit order, and inserts a key's first job as head when the key has
//     no unfinished job. Complete and Fail take it before finishing the job and, in the same
//     transaction, move head to the key's next unfinished job. Retry and lease takeovers leave
//     the head where it is. Without the lock in Complete and Fail, a job could be inserted as a
//     non-head while the head finished in a transaction that saw no next job: the key would
//     stall for ever.
//   - Claim locks a head with FOR UPDATE SKIP LOCKED and tests head and eligibility in that
//     locking query, so Postgres re-checks them against the newest row version: a job another
//     worker took or finished in between is skipped. A head promoted after Claim's snapshot is
//     only missed until the next claim.
//
// So a claim costs an index descent and the heads it takes, however many jobs wait behind them
// or wait for a retry: the index condition (due by now) leaves out heads that are not eligible.
// Statements that read the queue run after indexPlans, so that Postgres keeps to those indexes
// when its statistics are stale.

// Enqueue stores the jobs (skipping those whose Dedup exists, also within jobs) and moves cur
// forward when cur.Name is not empty, in one transaction; see EnqueueBatch. It returns how many
// jobs were new.
func (s *Store) Enqueue(ctx context.Context, cur bridge.Cursor, jobs ...bridge.NewJob) (int, error) {
	n, _, err := s.EnqueueBatch(ctx, []bridge.JobBatch{{Cursor: cur, Jobs: jobs}}, bridge.Take{})
	if err != nil {
		return 0, err
	}
	return n[0], nil
}

// EnqueueBatch stores the jobs of every batch, in order (skipping those whose Dedup exists,
// also within and across batches), and moves each batch's cursor forward when its Name is not
// empty, all in one transaction. It returns how many of each batch's jobs were new, and the jobs
// take named that became their keys' heads, inserted running under take's lease (insertJobs).
// Payloads are stored as jsonb, so Claim returns them re-encoded (same value, maybe other
// spacing); an empty payload is stored as JSON null, and escaped NUL characters, which jsonb
// cannot hold, become U+FFFD rather than making a user's message impossible to store.
func (s *Store) EnqueueBatch(ctx context.Context, batches []bridge.JobBatch, take bridge.Take) ([]int, []bridge.Job, error) {
	var n int
	cursors := make(map[string]string)
	for _, b := range batches {
		n += len(b.Jobs)
		if c := b.Cursor; c.Name != "" {
			if p, ok := cursors[c.Name]; !ok || bridge.CursorAfter(c.Position, p) {
				cursors[c.Name] = c.Position
			}
		}
	}
	// One row per name (an upsert may not touch a row twice), in name order (so that two
	// transactions moving the same cursors cannot deadlock).
	curNames := slices.Sorted(maps.Keys(cursors))
	curPos := make([]string, len(curNames))
	for i, name := range curNames {
		curPos[i] = cursors[name]
	}
	cols := newJobColumns(n)
	for _, b := range batches {
		for i, j := range b.Jobs {
			if err := cols.add(i, j); err != nil {
				return nil, nil, fmt.Errorf("enqueue: %w", err)
			}
		}
	}
	dirs, keys, dedups := cols.dirs, cols.keys, cols.dedups
	counts := make([]int, len(batches))
	if n == 0 && len(curNames) == 0 {
		return counts, nil, nil
	}
	inserted := make(map[[3]string]bool, n) // direction, key, dedup
	// One batch, so one round trip and one implicit transaction.
	b := &pgx.Batch{}
	var taken []bridge.Job
	if n > 0 {
		leases := cols.takeLeases(take)
		cols.queue(b, leases, func(j bridge.Job, took bool) {
			inserted[[3]string{string(j.Direction), j.Key, j.Dedup}] = true
			if took {
				taken = append(taken, j)
			}
		})
		// Delivered at commit, once per distinct payload: wakes every process's workers.
		// Postgres serialises the commits of notifying transactions (one global lock held
		// across the WAL flush), so a stream of small enqueues, one per conversation catch-up,
		// would commit one at a time: a direction notifies at most once per notifyEvery, and
		// only when a job of it may become a pending head here. Jobs behind their key's first
		// one wait for a completion, and a first job with a lease either becomes a running head
		// or waits too (or is a duplicate): nothing for other processes to claim. The jobs of a
		// skipped notify are not stranded: the enqueuing process wakes its own workers, which
		// claim them, and other processes see them at the next notify or idle poll.
		for _, d := range cols.claimable(leases) {
			if s.shouldNotify(d) {
				b.Queue(`SELECT pg_notify($1, $2)`, queueChannel, string(d)+" "+s.self)
			}
		}
	}
	if len(curNames) > 0 {
		if n == 0 {
			b.Queue(indexGenericPlans)
		}
		b.Queue(moveCursors, curNames, curPos)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("enqueue %d jobs: %w", n, err)
	}
	// A job inserted once counts for the first batch that has it.
	i := 0
	for bi, b := range batches {
		for range b.Jobs {
			if t := [3]string{dirs[i], keys[i], dedups[i]}; inserted[t] {
				counts[bi]++
				delete(inserted, t)
			}
			i++
		}
	}
	return counts, taken, nil
}

// jobColumns are new jobs as the arrays insertJobs unnests, with what queueing them needs:
// EnqueueBatch and a status change's jobs (changeConversationStatus) queue them the same way.
type jobColumns struct {
	dirs, keys, dedups, payloads []string
	// firsts marks the first job of each key, the only one that may become its head.
	firsts []bool
	seen   map[[2]string]bool
	multi  map[[2]string]bool // keys with more than one job here
	locks  []int64            // keyLockID of every job's key
}

func newJobColumns(n int) *jobColumns {
	return &jobColumns{
		dirs: make([]string, 0, n), keys: make([]string, 0, n), dedups: make([]string, 0, n),
		payloads: make([]string, 0, n), firsts: make([]bool, 0, n),
		seen: make(map[[2]string]bool, n), multi: make(map[[2]string]bool), locks: make([]int64, 0, n),
	}
}

// add appends job j, the i-th of its batch, or says why it cannot be queued. An empty payload
// becomes JSON null, escaped NULs U+FFFD (replaceNUL).
func (c *jobColumns) add(i int, j bridge.NewJob) error {
	if err := validDirection(j.Direction); err != nil {
		return err
	}
	if j.Key == "" || j.Dedup == "" {
		return fmt.Errorf("%s job %d has an empty key or dedup", j.Direction, i)
	}
	p := j.Payload
	if len(p) == 0 {
		p = json.RawMessage("null")
	}
	if !json.Valid(p) {
		return fmt.Errorf("%s job %q: payload is not valid JSON", j.Direction, j.Dedup)
	}
	k := [2]string{string(j.Direction), j.Key}
	c.dirs, c.keys, c.dedups = append(c.dirs, k[0]), append(c.keys, k[1]), append(c.dedups, j.Dedup)
	c.payloads, c.firsts = append(c.payloads, replaceNUL(p)), append(c.firsts, !c.seen[k])
	if c.seen[k] {
		c.multi[k] = true
	}
	c.seen[k] = true
	c.locks = append(c.locks, keyLockID(j.Direction, j.Key))
	return nil
}

// queue adds to b, which must run as one transaction, the statements that insert the jobs with
// leases (takeLeases; zeros for none): the settings and the keys' locks, the insert, and the
// head promotion a duplicate first job calls for. each is called with every inserted job and
// whether it was leased.
func (c *jobColumns) queue(b *pgx.Batch, leases []int64, each func(j bridge.Job, took bool)) {
	// Lock keys in one global order so that two enqueuers cannot deadlock.
	locks := slices.Compact(slices.Sorted(slices.Values(c.locks)))
	b.Queue(indexGenericPlansLocking, locks)
	b.Queue(insertJobs, c.dirs, c.keys, c.dedups, c.payloads, c.firsts, leases).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var j bridge.Job
			var took bool
			if err := scanLeased(rows, &j, &took); err != nil {
				return err
			}
			each(j, took)
		}
		return rows.Err()
	})
	// A key's first job became its head above if the key had no unfinished job. If that job
	// was a duplicate, and so not inserted, while a later one of the key was, that one must be
	// the head: promoteHeads sees the new rows and decides. Only keys with several jobs here can
	// be in that case; for the others it would be a lookup for nothing.
	if len(c.multi) > 0 {
		var pd, pk []string
		for k := range c.multi {
			pd, pk = append(pd, k[0]), append(pk, k[1])
		}
		b.Queue(promoteHeads, pd, pk, make([]int64, len(pd)), 0, 0, 0)
	}
}

// insertJobs inserts the jobs of the arrays $1..$5 (direction, key, dedup, payload, first of its
// key in the arrays) in array order, skipping duplicates. A key's first job becomes its head when
// the key has no unfinished job; that test is a scalar subquery, which Postgres runs as one index
// probe per job, where NOT EXISTS would let it hash every unfinished row instead. Its ORDER BY
// (with sorts ruled out by indexPlans) leaves queue_active_idx as its only index: without it, a
// plan made before the backlog came could read every job of the direction through the dedup key.
// A job that becomes its key's head and has a lease in $6 (microseconds, 0 for none) is inserted
// running under that lease, as claimJobs would lease a pending, due head: a job handed to a
// worker at once is written once, not inserted pending and then updated (Take). It returns every
// inserted job, as selectLeased does, after whether it was leased ("taken"); the payload and the
// customer only of those.
const insertJobs = `
	WITH j AS MATERIALIZED (
		SELECT d, k, u, p, t, n, CASE WHEN f THEN (
			SELECT true FROM queue q WHERE q.direction = d AND q.key = k AND q.state IN ('pending', 'running')
			ORDER BY q.id LIMIT 1) IS NULL
			ELSE false END AS h
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::bigint[]) WITH ORDINALITY AS j(d, k, u, p, f, t, n)),
	inserted AS (
		INSERT INTO queue (direction, key, dedup, payload, head, state, locked_until)
		SELECT d, k, u, p::jsonb, h, CASE WHEN h AND t > 0 THEN 'running' ELSE 'pending' END,
			CASE WHEN h AND t > 0 THEN now() + t * interval '1 microsecond' END
		FROM j
		ORDER BY n
		ON CONFLICT (direction, dedup) DO NOTHING
		RETURNING state = 'running' AS taken, id, direction, key, dedup,
			CASE WHEN state = 'running' THEN payload END AS payload, attempts, false AS retried, created_at,
			CASE WHEN state = 'running' THEN payload->'user'->>'platform' END AS user_platform,
			CASE WHEN state = 'running' THEN payload->'user'->>'id' END AS user_id)
	SELECT j.taken, ` + claimColumns + ` FROM inserted j
	LEFT JOIN customers c ON c.platform = j.user_platform AND c.platform_user_id = j.user_id
	LEFT JOIN conversations v ON v.id = c.conversation_id`

// claimable returns, in order, the directions of the jobs that may become pending heads when
// inserted with leases: a key's first job without a lease, or any job of a key with several
// (promoteHeads may make a later one head).
func (c *jobColumns) claimable(leases []int64) []bridge.Direction {
	var in, out bool
	for i, d := range c.dirs {
		if (c.firsts[i] && leases[i] == 0) || c.multi[[2]string{d, c.keys[i]}] {
			in, out = in || d == string(bridge.In), out || d == string(bridge.Out)
		}
	}
	var ds []bridge.Direction
	if in {
		ds = append(ds, bridge.In)
	}
	if out {
		ds = append(ds, bridge.Out)
	}
	return ds
}

// takeLeases are insertJobs' leases ($6) for the jobs: take's lease for each key's first job
// that take names, zero for the others.
func (c *jobColumns) takeLeases(take bridge.Take) []int64 {
	leases := make([]int64, len(c.dirs))
	if take.Lease < time.Microsecond {
		return leases
	}
	named := make(map[[2]string]bool)
	for d, ds := range take.Dedups {
		for _, u := range ds {
			named[[2]string{string(d), u}] = true
		}
	}
	for i := range c.dirs {
		if c.firsts[i] && named[[2]string{c.dirs[i], c.dedups[i]}] {
			leases[i] = take.Lease.Microseconds()
		}
	}
	return leases
}

// moveCursors moves the cursors named in $1 forward to the positions in $2, in array order.
// Positions are ordered by length, then byte by byte (bridge.Cursor), so a cursor never moves
// backwards.
const moveCursors = `
	INSERT INTO cursors (name, position)
	SELECT name, pos FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS c(name, pos, n)
	ORDER BY n
	ON CONFLICT (name) DO UPDATE SET
		position = CASE WHEN (length(EXCLUDED.position), EXCLUDED.position COLLATE "C") > (length(cursors.position), cursors.position COLLATE "C")
			THEN EXCLUDED.position ELSE cursors.position END,
		updated_at = now()`

// indexPlans, run first in a transaction, makes Postgres plan the queue statements that follow
// in it as index lookups, whatever its statistics say. Statistics of a queue table describe the
// queue when it was last analysed, which in production is nearly empty; when a burst arrives, a
// plan made for an empty table (read every unfinished row and hash them, or read every head and
// sort them) costs the whole backlog on every enqueue and claim, and a cached plan keeps doing
// so until the next analyse. Every queue statement has an index that answers it in the order
// it needs, so these settings only ever take away the plans that read the backlog. A plan that
// cannot avoid what they rule out is costed as if it were enormous, which would make Postgres
// compile it with JIT on every execution (a quarter of a second for an eight-row upsert): JIT
// goes off with them. They end with the transaction (a pgx batch without BEGIN is one implicit
// transaction).
const indexPlans = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
	set_config('enable_sort', 'off', true), set_config('jit', 'off', true)`

// indexGenericPlans is indexPlans for statements that take arrays (insertJobs, completeJobs):
// their plans do not depend on the arrays, but Postgres would plan them afresh for every call
// (the generic plan's row estimate for unnest looks costlier than the custom plans'), which
// costs about as much as running them. Their generic plans keep to the indexes, as
// TestBacklogUnknownToStatistics checks.
const indexGenericPlans = indexPlans + `, set_config('plan_cache_mode', 'force_generic_plan', true)`

// notifyEvery is the shortest time between two NOTIFYs of one direction from one Store.
const notifyEvery = 10 * time.Millisecond

// shouldNotify reports whether an enqueue of the direction should NOTIFY now, and if so takes
// the turn.
func (s *Store) shouldNotify(d bridge.Direction) bool {
	slot := &s.notified[0]
	if d == bridge.Out {
		slot = &s.notified[1]
	}
	now := time.Now().UnixNano()
	last := slot.Load()
	return now-last >= int64(notifyEvery) && slot.CompareAndSwap(last, now)
}

// promoted is promoteHeads' update, as common table expressions. The heads are found first and
// go to the update as an array, which it looks up in the primary key: planned as a join, a queue
// whose statistics describe a few rows had Postgres read all of the primary key instead
// (TestBacklogUnknownToStatistics).
const promoted = `heads AS MATERIALIZED (
		SELECT h.head_id, b.lease, b.lease > 0 AND h.state = 'pending' AND h.run_at <= now() AS take
		FROM (SELECT d, k, max(lease) AS lease FROM unnest($1::text[], $2::text[], $3::bigint[]) AS b(d, k, lease) GROUP BY d, k) b
		CROSS JOIN LATERAL (
			SELECT id AS head_id, state, run_at FROM queue
			WHERE direction = b.d AND key = b.k AND state IN ('pending', 'running')
			ORDER BY id
			LIMIT 1) h),
	promoted AS (
	UPDATE queue q SET head = true,
		state = CASE WHEN h.take THEN 'running' ELSE q.state END,
		locked_until = CASE WHEN h.take THEN now() + h.lease * interval '1 microsecond' ELSE q.locked_until END,
		updated_at = CASE WHEN h.take THEN now() ELSE q.updated_at END
	FROM heads h
	WHERE q.id = ANY(ARRAY(SELECT head_id FROM heads)) AND q.id = h.head_id AND NOT q.head
	RETURNING h.take, ` + claimedColumns + `)`

// promoteHeads marks, for each (direction, key) of the arrays $1 and $2, the key's lowest
// unfinished job as head unless it is already. Callers hold the keys' advisory locks, under which
// that job is the only one that may carry head: a finished head has lost the flag. Where $3 (a
// lease in microseconds per key) is above zero and that job is pending and due, the same update
// also leases it, as claimJobs would: a worker that finished a key's job goes on with the key's
// next one without a claim, and the job gets one row version, not two. Only a job this statement
// makes head is taken, so a next job comes only for a key whose head the same transaction
// finished. Where a key appears more than once, its longest lease counts. Besides, for each
// direction, it claims as claimJobs does (for $6 microseconds) as many eligible heads as $4
// (inbound) or $5 (outbound) exceeds the next jobs it took of that direction: completers that
// found no next job of their own get another key's. The claim reads the statement's snapshot,
// in which the heads promoted here are not heads yet, so no job is both taken and claimed. It
// returns every job it leased with its customer (selectLeased); callers that want none pass
// zero leases and counts.
var promoteHeads = `WITH ` + promoted + `,
	claimed_in AS (` + claimUpdate("'in'", "$6", "(SELECT greatest($4 - count(*), 0) FROM promoted WHERE take AND direction = 'in')") + `),
	claimed_out AS (` + claimUpdate("'out'", "$6", "(SELECT greatest($5 - count(*), 0) FROM promoted WHERE take AND direction = 'out')") + `),
	leased AS (
		SELECT id, direction, key, dedup, payload, attempts, retried, created_at, user_platform, user_id FROM promoted WHERE take
		UNION ALL SELECT * FROM claimed_in
		UNION ALL SELECT * FROM claimed_out)
	` + selectLeased("leased")

// keyLockID is the advisory lock id that serialises the changes of one queue key's head:
// Enqueue, Complete and Fail. Collisions only serialise unrelated keys a little.
func keyLockID(dir bridge.Direction, key string) int64 {
	h := fnv.New64a()
	h.Write([]byte("onechat-bridge queue\x00" + string(dir) + "\x00" + key))
	return int64(h.Sum64()) //nolint:gosec // wrapping is fine for a lock id
}

// replaceNUL returns the valid JSON text p with every \u0000 escape replaced by \ufffd. In valid
// JSON every backslash starts an escape, so skipping escapes pairwise finds exactly the NULs.
func replaceNUL(p []byte) string {
	if !bytes.Contains(p, []byte(`\u0000`)) {
		return string(p)
	}
	out := slices.Clone(p)
	for i := 0; i < len(out)-1; i++ {
		if out[i] != '\\' {
			continue
		}
		if out[i+1] == 'u' && i+6 <= len(out) && string(out[i+2:i+6]) == "0000" {
			copy(out[i+2:i+6], "fffd")
		}
		i++ // skip the escaped character
	}
	return string(out)
}

func validDirection(d bridge.Direction) error {
	if d != bridge.In && d != bridge.Out {
		return fmt.Errorf("unknown direction %q", d)
	}
	return nil
}

// dueAt is when a head becomes eligible: a pending head's run_at, a running head's lease end
// (when its worker may have died). It must stay the expression of queue_head_due_id_idx
// (migration 00004), through which claimJobs and NextDue read the heads in this order.
const dueAt = `(CASE WHEN state = 'pending' THEN run_at ELSE locked_until END)`

// nextDue reads the moment the earliest head of direction $1 becomes due, as the first entry
// of queue_head_due_id_idx.
const nextDue = `
	SELECT ` + dueAt + ` FROM queue
	WHERE direction = $1 AND head AND state IN ('pending', 'running')
	ORDER BY ` + dueAt + `
	LIMIT 1`

// lockKeys takes the advisory locks $1 (keyLockID), in array order (the lock function is
// volatile, so Postgres calls it after the sort).
const lockKeys = `SELECT pg_advisory_xact_lock(id) FROM unnest($1::bigint[]) WITH ORDINALITY AS l(id, n) ORDER BY n`

// indexGenericPlansLocking is indexGenericPlans and lockKeys in one statement, a statement fewer
// per enqueue and completion: the settings apply to the statements after it, the locks are taken
// before those touch a job.
const indexGenericPlansLocking = indexGenericPlans + `, (SELECT count(*) FROM (` + lockKeys + `) locks)`

// claimJobs leases ($2 microseconds) up to $3 eligible heads of direction $1, read in the order
// they became due through queue_head_due_id_idx: the scan meets only eligible heads and stops
// after $3. The ids go to the update as an array, which it looks up in the primary key; "id IN
// (subquery)" would let Postgres join instead, and a plan made for a small queue joins by
// reading all of it. Each job comes with the customer of the user its payload names ("user"),
// which its worker would otherwise read next (a round trip per message).
var claimJobs = `
	WITH claimed AS (` + claimUpdate("$1", "$2", "$3") + `)
	` + selectLeased("claimed")

// claimUpdate is the update of claimJobs for the direction, lease (microseconds) and limit given
// as SQL expressions.
func claimUpdate(dir, lease, limit string) string {
	return `
	UPDATE queue SET
		state = 'running',
		attempts = attempts + CASE WHEN state = 'running' THEN 1 ELSE 0 END,
		last_error = CASE WHEN state = 'running' THEN 'lease expired' ELSE last_error END,
		locked_until = now() + ` + lease + `::bigint * interval '1 microsecond',
		updated_at = now()
	WHERE id = ANY(ARRAY(
		SELECT id FROM queue
		WHERE direction = ` + dir + ` AND head AND state IN ('pending', 'running')
		  AND ` + dueAt + ` <= now()
		ORDER BY ` + dueAt + `, id
		LIMIT ` + limit + `
		FOR UPDATE SKIP LOCKED))
	RETURNING ` + claimedColumns
}

// claimedColumns are what a statement that leases jobs returns of each, as claimColumns reads them.
const claimedColumns = `id, direction, key, dedup, payload, attempts, last_error <> '' AS retried, created_at,
		payload->'user'->>'platform' AS user_platform, payload->'user'->>'id' AS user_id`

// claimColumns are a leased job j (claimedColumns) with the customer c of its user and that
// customer's conversation v, as scanClaimed reads them.
const claimColumns = `j.id, j.direction, j.key, j.dedup, j.payload, j.attempts, j.retried, j.created_at,
		c.id IS NOT NULL, ` + claimCustomerColumns

// selectLeased selects the jobs a statement leased (claimedColumns, in the common table
// expression from) with the customers of their users, as claimColumns.
func selectLeased(from string) string {
	return `SELECT ` + claimColumns + ` FROM ` + from + ` j
	LEFT JOIN customers c ON c.platform = j.user_platform AND c.platform_user_id = j.user_id
	LEFT JOIN conversations v ON v.id = c.conversation_id`
}

// claimCustomerColumns are customerColumns of a customer that may be missing (outer join).
const claimCustomerColumns = `
	COALESCE(c.id, 0), COALESCE(c.platform, ''), COALESCE(c.platform_user_id, ''),
	COALESCE(c.chat_id, ''), COALESCE(c.identifier, ''), COALESCE(c.source_id, ''),
	COALESCE(c.pubsub_token, ''), COALESCE(c.contact_id, 0), COALESCE(c.display_name, ''),
	COALESCE(c.username, ''), COALESCE(c.unreachable_reason, ''),
	COALESCE(c.conversation_id, 0), COALESCE(v.status, '')`

// Claim takes the eligible job of the direction that has been due longest and leases it for
// lease; see ClaimBatch. It returns (nil, nil) when no job is eligible.
func (s *Store) Claim(ctx context.Context, dir bridge.Direction, lease time.Duration) (*bridge.Job, error) {
	jobs, err := s.ClaimBatch(ctx, dir, lease, 1)
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	return &jobs[0], nil
}

// ClaimBatch takes up to max of the eligible jobs of the direction that have been due longest
// (ties in id order), leases them for lease and returns them in id order. Eligible are heads of
// their keys that are pending and due, or running with an expired lease (their worker died), so
// no two jobs of one key are ever in a batch.
// Taking over an expired lease counts as a failed attempt, so that a job that kills its worker
// every time is visible in Attempts. It returns no jobs when none is eligible.
func (s *Store) ClaimBatch(ctx context.Context, dir bridge.Direction, lease time.Duration, max int) ([]bridge.Job, error) {
	if err := validDirection(dir); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if lease < time.Microsecond {
		return nil, fmt.Errorf("claim %s job: lease %s is too short", dir, lease)
	}
	if max < 1 {
		return nil, fmt.Errorf("claim %s jobs: batch size %d", dir, max)
	}
	var jobs []bridge.Job
	b := &pgx.Batch{}
	b.Queue(indexPlans)
	b.Queue(claimJobs, string(dir), lease.Microseconds(), max).Query(func(rows pgx.Rows) error {
		var err error
		jobs, err = pgx.CollectRows(rows, scanClaimed)
		return err
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("claim %s jobs: %w", dir, err)
	}
	slices.SortFunc(jobs, func(a, b bridge.Job) int { return cmp.Compare(a.ID, b.ID) })
	return jobs, nil
}

// scanClaimed reads a leased job as claimColumns give it.
func scanClaimed(row pgx.CollectableRow) (bridge.Job, error) {
	var j bridge.Job
	err := scanLeased(row, &j)
	return j, err
}

// scanLeased reads into j a leased job as claimColumns give it, after the columns before.
func scanLeased(row pgx.Row, j *bridge.Job, before ...any) error {
	var d, platform, chatID string
	var payload []byte
	var found bool
	var c bridge.Customer
	err := row.Scan(append(before, &j.ID, &d, &j.Key, &j.Dedup, &payload, &j.Attempts, &j.Retried, &j.CreatedAt,
		&found, &c.ID, &platform, &c.User.ID, &chatID, &c.Identifier, &c.SourceID,
		&c.PubsubToken, &c.ContactID, &c.DisplayName, &c.Username, &c.UnreachableReason,
		&c.ConversationID, &c.ConversationStatus)...)
	j.Direction, j.Payload = bridge.Direction(d), json.RawMessage(payload)
	j.CustomerRead = true
	if found {
		c.User.Platform = bridge.Platform(platform)
		if chatID != "" {
			c.Chat = bridge.ChatRef{Platform: c.User.Platform, ID: chatID}
		}
		j.Customer = &c
	}
	return err
}

// Complete marks the job done, moves its key's head to the next unfinished job and records the
// message links, in one transaction; see CompleteBatch. It returns an error wrapping
// bridge.ErrLeaseLost when the job is not held under l.
func (s *Store) Complete(ctx context.Context, l bridge.JobLease, links ...bridge.MessageLink) error {
	refused, _, err := s.CompleteBatch(ctx, []bridge.Completion{{Lease: l, Links: links}})
	if err == nil && len(refused) > 0 {
		err = fmt.Errorf("complete job %d: %w", l.ID, bridge.ErrLeaseLost)
	}
	return err
}

// CompleteBatch marks the jobs done, moves each of their keys' head to the key's next unfinished
// job and records the message links, in one transaction, so that many workers' results cost one
// commit. Links that exist already are kept as they are. A job is completed only while it is
// running under the completion's lease: a worker whose lease expired and whose job another one
// took over records nothing, not even its links (the new holder checks what reached the other
// side and records that). refused are the indexes in done of the completions not recorded.
// Each completion with a Next lease asks for another job: its key's new head, when it is pending
// and due, leased in the same update that makes it head; for those whose key has none, other
// eligible heads of the direction, claimed as ClaimBatch does in the same statement. next holds
// them, at most one per such completion, in no particular order.
func (s *Store) CompleteBatch(ctx context.Context, done []bridge.Completion) (refused []int, next []bridge.Job, err error) {
	if len(done) == 0 {
		return nil, nil, nil
	}
	ids := make([]int64, 0, len(done))
	attempts := make([]int32, 0, len(done))
	var links linkColumns
	for _, d := range done {
		ids, attempts = append(ids, d.Lease.ID), append(attempts, int32(d.Lease.Attempts)) //nolint:gosec // attempts are small
		if err := links.add(d.Lease.ID, d.Links); err != nil {
			return nil, nil, fmt.Errorf("complete job %d: %w", d.Lease.ID, err)
		}
	}
	// The keys are needed for the locks, which must be held before the jobs are touched: a
	// transaction that waited for a lock while holding a job's row could deadlock with one that
	// holds it and promotes that row. The workers know their jobs' keys; only completions that
	// do not carry one are read (a round trip less for the usual case), and take no next job.
	var dirs, keys []string
	var leases, lockIDs []int64
	var unknown []int64
	var want [2]int // completions asking for a job, inbound and outbound
	var lease int64
	for _, d := range done {
		if d.Key == "" || validDirection(d.Direction) != nil {
			unknown = append(unknown, d.Lease.ID)
			continue
		}
		dirs, keys = append(dirs, string(d.Direction)), append(keys, d.Key)
		leases = append(leases, max(d.Next.Microseconds(), 0))
		lockIDs = append(lockIDs, keyLockID(d.Direction, d.Key))
		if d.Next >= time.Microsecond {
			if d.Direction == bridge.In {
				want[0]++
			} else {
				want[1]++
			}
			lease = max(lease, d.Next.Microseconds())
		}
	}
	if len(unknown) > 0 {
		rows, err := s.pool.Query(ctx, `SELECT direction, key FROM queue WHERE id = ANY($1)`, unknown)
		if err != nil {
			return nil, nil, fmt.Errorf("complete %d jobs: %w", len(ids), err)
		}
		var d, k string
		if _, err := pgx.ForEachRow(rows, []any{&d, &k}, func() error {
			dirs, keys, leases = append(dirs, d), append(keys, k), append(leases, 0)
			lockIDs = append(lockIDs, keyLockID(bridge.Direction(d), k))
			return nil
		}); err != nil {
			return nil, nil, fmt.Errorf("complete %d jobs: %w", len(ids), err)
		}
	}
	completed := make(map[int64]bool, len(ids))
	if len(lockIDs) > 0 {
		slices.Sort(lockIDs)
		lockIDs = slices.Compact(lockIDs)
		b := &pgx.Batch{}
		// The locks in one global order, so that two completers (or an enqueuer) cannot
		// deadlock.
		b.Queue(indexGenericPlansLocking, lockIDs)
		b.Queue(completeJobs, append([]any{ids, attempts}, links.args()...)...).Query(func(rows pgx.Rows) error {
			var id int64
			_, err := pgx.ForEachRow(rows, []any{&id}, func() error {
				completed[id] = true
				return nil
			})
			return err
		})
		b.Queue(promoteHeads, dirs, keys, leases, want[0], want[1], lease).Query(func(rows pgx.Rows) error {
			var err error
			next, err = pgx.CollectRows(rows, scanClaimed)
			return err
		})
		// A batch runs as one implicit transaction.
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			return nil, nil, fmt.Errorf("complete %d jobs: %w", len(ids), err)
		}
	}
	for i, d := range done {
		if !completed[d.Lease.ID] {
			refused = append(refused, i)
		}
	}
	return refused, next, nil
}

// linkColumns are message links, each with its job, as the arrays insertLinks unnests.
type linkColumns struct {
	job, oc, conv       []int64
	plat, chat, pm, dir []string
}

func (c *linkColumns) add(job int64, links []bridge.MessageLink) error {
	for i, l := range links {
		if err := validDirection(l.Direction); err != nil {
			return fmt.Errorf("link %d: %w", i, err)
		}
		c.job, c.oc, c.conv = append(c.job, job), append(c.oc, l.OneChatMessageID), append(c.conv, l.ConversationID)
		c.plat, c.chat = append(c.plat, string(l.Chat.Platform)), append(c.chat, l.Chat.ID)
		c.pm, c.dir = append(c.pm, l.PlatformMessageID), append(c.dir, string(l.Direction))
	}
	return nil
}

// args are the arrays in insertLinks' order.
func (c *linkColumns) args() []any {
	return []any{c.job, c.oc, c.conv, c.plat, c.chat, c.pm, c.dir}
}

// insertLinks records the links of the arrays $from..$from+6 (linkColumns.args) whose row l
// meets where (l.job is the link's job); links that exist are kept as they are.
func insertLinks(from int, where string) string {
	return fmt.Sprintf(`
		INSERT INTO message_map (onechat_message_id, conversation_id, platform, chat_id,
			platform_message_id, direction)
		SELECT l.oc, l.conv, l.plat, l.chat, l.pm, l.dir
		FROM unnest($%d::bigint[], $%d::bigint[], $%d::bigint[], $%d::text[], $%d::text[], $%d::text[], $%d::text[])
			AS l(job, oc, conv, plat, chat, pm, dir)
		WHERE %s
		ON CONFLICT (platform, chat_id, platform_message_id) DO NOTHING`,
		from, from+1, from+2, from+3, from+4, from+5, from+6, where)
}

// completeJobs marks done the jobs $1 that are running under the attempts $2, and records the
// links ($3..$9, linkColumns) of those it marked; it returns their ids. The jobs are looked up
// in the primary key (id = ANY): with "state = 'running'" as a plain condition Postgres could
// answer it from queue_active_idx, whose predicate that condition implies, and a plan made while
// the statistics knew few unfinished jobs does, reading every pending job of the backlog for
// each completion (TestBacklogUnknownToStatistics). Written as "IS TRUE", the same test is one
// the planner does not match to the predicate; it is still re-checked against the newest row
// version, as every condition of an UPDATE is.
var completeJobs = `
	WITH done AS (
		UPDATE queue q SET state = 'done', head = false, locked_until = NULL,
			done_at = now(), updated_at = now()
		FROM unnest($1::bigint[], $2::int[]) AS c(id, attempts)
		WHERE q.id = ANY($1::bigint[]) AND q.id = c.id AND q.attempts = c.attempts AND (q.state = 'running') IS TRUE
		RETURNING q.id),
	links AS (` + insertLinks(3, "l.job IN (SELECT id FROM done)") + `)
	SELECT id FROM done`

// Retry makes the job pending again, due at `at`, if it is running under l, and records links
// (the parts the attempt delivered) in the same transaction. countAttempt is false for
// rate-limit waits. reason is kept as the job's last error. The job stays its key's head.
// Otherwise it changes nothing and returns an error wrapping bridge.ErrLeaseLost, or
// bridge.ErrNotFound for unknown jobs.
func (s *Store) Retry(ctx context.Context, l bridge.JobLease, at time.Time, countAttempt bool, reason string, links ...bridge.MessageLink) error {
	inc := 0
	if countAttempt {
		inc = 1
	}
	var cols linkColumns
	if err := cols.add(l.ID, links); err != nil {
		return fmt.Errorf("retry job %d: %w", l.ID, err)
	}
	var changed int64
	err := s.pool.QueryRow(ctx, `
		WITH retried AS (
			UPDATE queue SET state = 'pending', run_at = $3, attempts = attempts + $4,
				last_error = $5, locked_until = NULL, updated_at = now()
			WHERE id = $1 AND attempts = $2 AND state = 'running'
			RETURNING id),
		links AS (`+insertLinks(6, "EXISTS (SELECT 1 FROM retried)")+`)
		SELECT count(*) FROM retried`,
		append([]any{l.ID, l.Attempts, at, inc, reason}, cols.args()...)...).Scan(&changed)
	if err == nil && changed == 0 {
		err = s.whyUnchanged(ctx, l.ID)
	}
	if err != nil {
		return fmt.Errorf("retry job %d: %w", l.ID, err)
	}
	return nil
}

// Fail marks the job failed with reason, if it is running under l, records links (the parts
// the attempt delivered) and moves its key's head to the next unfinished job, in one
// transaction. Otherwise it changes nothing and returns an error wrapping bridge.ErrLeaseLost,
// or bridge.ErrNotFound for unknown jobs.
func (s *Store) Fail(ctx context.Context, l bridge.JobLease, reason string, links ...bridge.MessageLink) error {
	var cols linkColumns
	if err := cols.add(l.ID, links); err != nil {
		return fmt.Errorf("fail job %d: %w", l.ID, err)
	}
	// After the update: the job is failed under l only if this transaction failed it (a lease
	// finishes its job once).
	record := recording{insertLinks(3, "EXISTS (SELECT 1 FROM queue WHERE id = $1 AND attempts = $2 AND state = 'failed')"),
		append([]any{l.ID, l.Attempts}, cols.args()...)}
	changed, err := s.finish(ctx, l.ID, `
		UPDATE queue SET state = 'failed', head = false, last_error = $3, locked_until = NULL,
			done_at = now(), updated_at = now()
		WHERE id = $1 AND attempts = $2 AND state = 'running'`, []any{l.ID, l.Attempts, reason}, record)
	if err == nil && !changed {
		err = s.whyUnchanged(ctx, l.ID)
	}
	if err != nil {
		return fmt.Errorf("fail job %d: %w", l.ID, err)
	}
	return nil
}

// recording is a statement finish runs after its update, in the same transaction.
type recording struct {
	sql  string
	args []any
}

// finish runs update (with args), which finishes the job, under the advisory lock of the job's
// key, then the statements after, then marks the key's next unfinished job as head, in one
// transaction (a batch runs as one implicit transaction). changed reports whether update
// changed a row; bridge.ErrNotFound means there is no such job.
func (s *Store) finish(ctx context.Context, jobID int64, update string, args []any, after ...recording) (changed bool, err error) {
	// The key is needed for the lock, which must be held before the job is touched: a
	// transaction that waited for it while holding the job's row could deadlock with one
	// that holds it and promotes that row.
	var d, key string
	if err := s.pool.QueryRow(ctx, `SELECT direction, key FROM queue WHERE id = $1`, jobID).Scan(&d, &key); err != nil {
		return false, notFound(err)
	}
	b := &pgx.Batch{}
	b.Queue(indexPlans)
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, keyLockID(bridge.Direction(d), key))
	b.Queue(update, args...).Exec(func(tag pgconn.CommandTag) error {
		changed = tag.RowsAffected() > 0
		return nil
	})
	for _, r := range after {
		b.Queue(r.sql, r.args...)
	}
	b.Queue(promoteHeads, []string{d}, []string{key}, []int64{0}, 0, 0, 0)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return false, err
	}
	return changed, nil
}

// whyUnchanged explains why an update of a job under a lease changed nothing: the job does not
// exist (bridge.ErrNotFound), or is not held under that lease (bridge.ErrLeaseLost).
func (s *Store) whyUnchanged(ctx context.Context, jobID int64) error {
	var state string
	if err := s.pool.QueryRow(ctx, `SELECT state FROM queue WHERE id = $1`, jobID).Scan(&state); err != nil {
		return notFound(err)
	}
	return fmt.Errorf("job is %s under a later claim or finished: %w", state, bridge.ErrLeaseLost)
}

// NextDue returns when the next job of the direction becomes eligible: the earliest run_at of a
// pending head, or the lease end of a running head (when its worker may have died). Jobs
// waiting behind their key's head are ignored, so a worker never wakes for a job it cannot
// claim. ok is false when no job is unfinished. queue_head_due_id_idx answers it from its first
// entry (dueAt).
func (s *Store) NextDue(ctx context.Context, dir bridge.Direction) (time.Time, bool, error) {
	if err := validDirection(dir); err != nil {
		return time.Time{}, false, fmt.Errorf("next due: %w", err)
	}
	var at *time.Time
	err := s.pool.QueryRow(ctx, nextDue, string(dir)).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due %s job: %w", dir, err)
	}
	if at == nil {
		return time.Time{}, false, nil
	}
	return *at, true, nil
}

// JobState returns the state and last error of the job with this dedup key, or
// bridge.ErrNotFound.
func (s *Store) JobState(ctx context.Context, dir bridge.Direction, dedup string) (string, string, error) {
	var state, lastError string
	err := s.pool.QueryRow(ctx, `SELECT state, last_error FROM queue WHERE direction = $1 AND dedup = $2`,
		string(dir), dedup).Scan(&state, &lastError)
	if err != nil {
		return "", "", fmt.Errorf("state of %s job %q: %w", dir, dedup, notFound(err))
	}
	return state, lastError, nil
}

// PendingInbound counts each key's unfinished inbound messages, at most upTo[i] for keys[i],
// along queue_active_idx, in one statement (one round trip for a whole delivery).
func (s *Store) PendingInbound(ctx context.Context, keys []string, upTo []int) ([]int, error) {
	if len(keys) != len(upTo) {
		return nil, fmt.Errorf("count pending messages: %d keys, %d bounds", len(keys), len(upTo))
	}
	if len(keys) == 0 {
		return nil, nil
	}
	bounds := make([]int64, len(upTo))
	for i, u := range upTo {
		bounds[i] = int64(u)
	}
	counts := make([]int, 0, len(keys))
	rows, err := s.pool.Query(ctx, `
		SELECT (SELECT count(*) FROM (
			SELECT 1 FROM queue WHERE direction = 'in' AND key = k.key AND state IN ('pending', 'running') LIMIT k.up_to
		) q)
		FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS k(key, up_to, n)
		ORDER BY k.n`, keys, bounds)
	if err != nil {
		return nil, fmt.Errorf("count pending messages: %w", err)
	}
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&n}, func() error {
		counts = append(counts, n)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("count pending messages: %w", err)
	}
	return counts, nil
}
