-- Idempotency-Key records of the HTTP API: the first answer to a request, replayed to retries.
-- They live beside the log (not in memory) so that a retry after a restart or on another
-- command-api instance still gets the first answer instead of a second execution.
CREATE TABLE idempotency_keys (
    -- Keys are scoped to the caller: two integrators may pick the same key.
    principal       text        NOT NULL,
    key             text        NOT NULL,
    -- SHA-256 of method, path and body: the same key with another request is refused.
    request_hash    bytea       NOT NULL,
    -- NULL while the first request is still running.
    response_status smallint,
    response_headers jsonb,
    response_body   bytea,
    -- An unfinished record whose lease has passed belongs to a crashed request and may be
    -- taken over by a retry.
    locked_until    timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);

-- Records are kept for a bounded time; expiry sweeps by age.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
