-- Read model of notifications. Runs with search_path set to the projection's own schema, so the
-- same DDL creates the live tables and, during a rebuild, their shadow copies.

CREATE TABLE IF NOT EXISTS notifications (
    id                  uuid PRIMARY KEY,
    subject_id          uuid        NOT NULL,
    alarm_id            uuid,
    -- NULL once the subject is erased.
    recipient           text,
    template_id         uuid,
    template_version    integer,
    status              text        NOT NULL,
    attempt             integer     NOT NULL DEFAULT 0,
    total_attempts      integer     NOT NULL DEFAULT 0,
    max_attempts        integer     NOT NULL,
    last_error_code     bigint,
    last_error_message  text,
    failure_reason      text,
    provider_message_id text,
    scheduled_for       timestamptz,
    not_before          timestamptz,
    created_at          timestamptz NOT NULL,
    queued_at           timestamptz,
    sent_at             timestamptz,
    delivered_at        timestamptz,
    read_at             timestamptz,
    failed_at           timestamptz,
    cancelled_at        timestamptz,
    -- The global position of the last event applied to this row.
    position            bigint      NOT NULL
);

-- Keyset pagination in a stable order, overall and per filter.
CREATE INDEX IF NOT EXISTS notifications_by_creation ON notifications (created_at, id);
CREATE INDEX IF NOT EXISTS notifications_by_subject ON notifications (subject_id, created_at, id);
CREATE INDEX IF NOT EXISTS notifications_by_status ON notifications (status, created_at, id);
CREATE INDEX IF NOT EXISTS notifications_by_alarm ON notifications (alarm_id, created_at, id)
    WHERE alarm_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS notifications_by_provider_id ON notifications (provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Per-status counters for dashboards, kept in step with the rows.
CREATE TABLE IF NOT EXISTS notification_status_counts (
    status text PRIMARY KEY,
    count  bigint NOT NULL CHECK (count >= 0)
);

-- Read models created before erasure existed get the same shape; only then, as an ALTER locks
-- the table even when it changes nothing (see subjects.sql).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = 'notifications' AND column_name = 'recipient'
               AND is_nullable = 'NO') THEN
        ALTER TABLE notifications ALTER COLUMN recipient DROP NOT NULL;
    END IF;
END $$;
