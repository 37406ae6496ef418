-- Coordination of several bridge instances sharing one database: the roles that must have one
-- owner at a time (an adapter's connection to its platform, each partition of the cable
-- subscriptions) are leases, and every running instance heartbeats, so that each can work out
-- its fair share of the partitions. Expiry times are the database's clock, never an instance's.

-- +goose Up

-- leases holds one row per role ever taken. A lease is held while expires_at is in the future;
-- its holder renews it every few seconds, and anyone may take it once it has expired (its holder
-- died or lost the database) or was released (expires_at set to the past).
CREATE TABLE leases (
    name        text        PRIMARY KEY,
    -- holder is the instance id plus a random suffix per run, so that two processes configured
    -- with the same instance id never believe they both hold a role.
    holder      text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
);

-- instances holds one row per running instance (keyed like leases.holder); rows of instances
-- that stopped heartbeating are deleted an hour after they expired.
CREATE TABLE instances (
    id           text        PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

-- +goose Down
DROP TABLE instances;
DROP TABLE leases;
