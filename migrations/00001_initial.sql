-- The bridge's initial schema: customers and their OneChat sessions, the conversations they own,
-- the map between OneChat and platform messages, named cursors and the per-key FIFO queue.

-- +goose Up

-- customers holds one row per platform user. source_id and pubsub_token are credentials of the
-- user's OneChat contact session: they are stored because the Client API needs them, and must
-- never be logged.
CREATE TABLE customers (
    id                 bigserial   PRIMARY KEY,
    platform           text        NOT NULL,
    platform_user_id   text        NOT NULL,
    -- chat_id is where agent replies go, on the same platform as the user.
    chat_id            text        NOT NULL DEFAULT '',
    identifier         text        NOT NULL DEFAULT '',
    source_id          text        NOT NULL DEFAULT '',
    pubsub_token       text        NOT NULL DEFAULT '',
    contact_id         bigint      NOT NULL DEFAULT 0,
    display_name       text        NOT NULL DEFAULT '',
    username           text        NOT NULL DEFAULT '',
    unreachable_reason text        NOT NULL DEFAULT '',
    -- conversation_id is the current conversation; its FK is added below, once the table exists.
    conversation_id    bigint,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT customers_platform_user_key UNIQUE (platform, platform_user_id)
);

-- A cable token identifies exactly one contact session; empty means "not created yet".
CREATE UNIQUE INDEX customers_pubsub_token_key ON customers (pubsub_token) WHERE pubsub_token <> '';

-- conversations remembers every OneChat conversation (by display id) the bridge created or
-- adopted, so that events about past conversations still find their customer.
CREATE TABLE conversations (
    id          bigint      PRIMARY KEY,
    customer_id bigint      NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    status      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX conversations_customer_idx ON conversations (customer_id);

ALTER TABLE customers
    ADD CONSTRAINT customers_conversation_fkey
    FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE SET NULL;

-- message_map links OneChat messages to the platform messages they became (or came from), for
-- edits, deletes and replies. One OneChat message may span several platform messages.
CREATE TABLE message_map (
    id                  bigserial   PRIMARY KEY,
    onechat_message_id  bigint      NOT NULL,
    conversation_id     bigint      NOT NULL,
    platform            text        NOT NULL,
    chat_id             text        NOT NULL,
    platform_message_id text        NOT NULL,
    direction           text        NOT NULL CHECK (direction IN ('in', 'out')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_map_platform_key UNIQUE (platform, chat_id, platform_message_id)
);

CREATE INDEX message_map_onechat_idx ON message_map (onechat_message_id);

-- cursors holds named, monotonic positions, such as the Telegram update offset
-- ("telegram.update_offset").
CREATE TABLE cursors (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- queue holds both directions of messages. Within (direction, key) only the unfinished row with
-- the lowest id may run; dedup makes a replayed message a no-op for as long as its row exists.
CREATE TABLE queue (
    id           bigserial   PRIMARY KEY,
    direction    text        NOT NULL CHECK (direction IN ('in', 'out')),
    key          text        NOT NULL,
    dedup        text        NOT NULL,
    payload      jsonb       NOT NULL,
    state        text        NOT NULL DEFAULT 'pending'
                             CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    run_at       timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    last_error   text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    CONSTRAINT queue_direction_dedup_key UNIQUE (direction, dedup)
);

-- queue_active_idx finds the head of every key: it only holds unfinished rows, so finished
-- history does not slow claims down.
CREATE INDEX queue_active_idx ON queue (direction, key, id) WHERE state IN ('pending', 'running');

-- +goose Down
DROP TABLE queue;
DROP TABLE cursors;
DROP TABLE message_map;
ALTER TABLE customers DROP CONSTRAINT customers_conversation_fkey;
DROP TABLE conversations;
DROP TABLE customers;
