-- Adapters keep string positions and their own values.
--
-- cursors.position becomes text: a platform whose positions are not integers (Slack's message
-- timestamps such as "1712345678.000200", a Matrix sync token) can keep a cursor. A cursor still
-- never moves backwards: positions are ordered by their length, then byte by byte, which orders
-- non-negative decimal integers (every position stored so far) and Slack timestamps alike.
--
-- adapter_values is each adapter's own key-value store (bridge.Host's Value, SetValue, …): what an
-- adapter must remember across restarts and instances, such as a user's support thread.
--
-- Older instances must not run against this schema: they move cursors with bigint arrays.

-- +goose Up
ALTER TABLE cursors ALTER COLUMN position TYPE text USING position::text;

CREATE TABLE adapter_values (
    platform   text        NOT NULL,
    key        text        NOT NULL,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, key)
);

-- +goose Down
DROP TABLE adapter_values;
ALTER TABLE cursors ALTER COLUMN position TYPE bigint USING position::bigint;
