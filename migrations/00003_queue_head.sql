-- The queue marks the head of every key (the unfinished row with the lowest id of its direction
-- and key), so that a claim reads only the heads through a small partial index instead of every
-- unfinished row of the direction. bridge/postgres keeps the flag under the key's advisory lock:
-- Enqueue sets it on a new row of a key with no unfinished row; Complete and Fail move it to the
-- key's next unfinished row in the transaction that finishes the head; Retry keeps it.
--
-- Instances older than this migration do not maintain the flag: stop them before it runs
-- (docker compose up -d does), rather than letting them share the database with newer ones.

-- +goose Up
ALTER TABLE queue ADD COLUMN head boolean NOT NULL DEFAULT false;

-- Backfill: the head of every key that has unfinished rows. Finished rows stay false.
UPDATE queue q SET head = true
FROM (
    SELECT DISTINCT ON (direction, key) id
    FROM queue
    WHERE state IN ('pending', 'running')
    ORDER BY direction, key, id
) h
WHERE q.id = h.id;

-- queue_head_idx is what Claim scans, oldest head first: one entry per key with unfinished rows.
CREATE INDEX queue_head_idx ON queue (direction, id) WHERE head AND state IN ('pending', 'running');

-- queue_head_due_idx gives NextDue the earliest moment a head becomes eligible (a pending head's
-- run_at, a running head's lease end) without reading every head. The expression must stay the
-- same as NextDue's.
CREATE INDEX queue_head_due_idx ON queue (direction, (CASE WHEN state = 'pending' THEN run_at ELSE locked_until END))
    WHERE head AND state IN ('pending', 'running');

-- +goose Down
DROP INDEX queue_head_due_idx;
DROP INDEX queue_head_idx;
ALTER TABLE queue DROP COLUMN head;
