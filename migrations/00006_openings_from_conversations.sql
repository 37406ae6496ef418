-- The bound on new conversations per user (BRIDGE_USER_NEW_CONVERSATIONS_PER_DAY) counts the
-- user's recorded conversations of the last 24 hours (the conversations table) instead of a list
-- of opening times kept in adapter_values under the core's "_bridge" namespace, which cost every
-- new conversation a read and a write. The lists go.
--
-- Safe to run while older instances run: one that finds no list counts no openings, so a user
-- may get up to a day's bound more conversations during the upgrade; the lists it writes
-- meanwhile stay unused.

-- +goose Up
DELETE FROM adapter_values WHERE platform = '_bridge' AND starts_with(key, 'new_conversations:');

-- +goose Down
-- The lists are not rebuilt: an older bridge starts counting afresh.
SELECT 1;
