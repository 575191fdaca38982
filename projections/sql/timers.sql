-- Durable timers derived from the log: at most one per notification, since a notification
-- waits for one thing at a time.
--   scheduled: due at scheduled_for, then queued;
--   retry:     due at the retry's not_before, then queued;
--   lease:     an attempt claimed at due_at; due once the dispatch lease has passed without an
--              outcome, then recorded as outcome-unknown (the lease length is configuration,
--              not history, so it is added when the timer is read).
CREATE TABLE IF NOT EXISTS timers (
    notification_id uuid        PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('scheduled', 'retry', 'lease')),
    due_at          timestamptz NOT NULL,
    -- When a scheduler last fired it: the timer stays until the projection sees its effect,
    -- and meanwhile is not fired again for a grace period.
    fired_at        timestamptz
);
CREATE INDEX IF NOT EXISTS timers_due_at ON timers (due_at);
