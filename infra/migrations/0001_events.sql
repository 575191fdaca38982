-- The event log: one row per event, append-only. See infra/src/postgres/event_store.rs.
CREATE TABLE events (
    -- Place in the global log. Assigned while the append holds the log's write lock
    -- (0002_event_log_write_lock.sql), so positions grow in commit order.
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_name     text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version >= 0),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version BETWEEN 1 AND 65535),
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The optimistic lock: two appends can never both claim a version of one stream.
    CONSTRAINT events_stream_version_unique UNIQUE (stream_name, stream_version),
    -- Idempotent retries: an event id is stored once.
    CONSTRAINT events_event_id_unique UNIQUE (event_id)
);
