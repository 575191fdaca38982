-- Read model of alarms and the notifications they caused. Runs with search_path set to the
-- projection's own schema (see notifications.sql).

CREATE TABLE IF NOT EXISTS alarms (
    id              uuid PRIMARY KEY,
    subject_id      uuid        NOT NULL,
    situation       text        NOT NULL,
    description     text        NOT NULL,
    -- `{"latitude": …, "longitude": …}`, as the event carries it.
    location        jsonb,
    status          text        NOT NULL,
    raised_by       text        NOT NULL,
    raised_at       timestamptz NOT NULL,
    acknowledged_by text,
    acknowledged_at timestamptz,
    resolved_by     text,
    resolved_at     timestamptz,
    resolution_note text,
    updated_at      timestamptz NOT NULL,
    -- The global position of the last event applied to this row.
    position        bigint      NOT NULL
);

-- Keyset pagination in a stable order, overall and per filter.
CREATE INDEX IF NOT EXISTS alarms_by_raising ON alarms (raised_at, id);
CREATE INDEX IF NOT EXISTS alarms_by_subject ON alarms (subject_id, raised_at, id);
CREATE INDEX IF NOT EXISTS alarms_by_status ON alarms (status, raised_at, id);

-- The notifications an alarm caused and their delivery state, folded from the notification
-- events themselves rather than read from the notifications read model, so that this read model
-- depends on the log alone. No foreign key to `alarms`: the log, not this table, orders events.
CREATE TABLE IF NOT EXISTS alarm_notifications (
    id                 uuid PRIMARY KEY,
    alarm_id           uuid        NOT NULL,
    -- NULL once the alarm's subject is erased.
    recipient          text,
    status             text        NOT NULL,
    attempt            integer     NOT NULL DEFAULT 0,
    total_attempts     integer     NOT NULL DEFAULT 0,
    max_attempts       integer     NOT NULL,
    last_error_message text,
    created_at         timestamptz NOT NULL,
    queued_at          timestamptz,
    sent_at            timestamptz,
    delivered_at       timestamptz,
    read_at            timestamptz,
    failed_at          timestamptz,
    cancelled_at       timestamptz,
    updated_at         timestamptz NOT NULL,
    position           bigint      NOT NULL
);

-- "What did this alarm cause?": the detail of an alarm and its counts by delivery state.
CREATE INDEX IF NOT EXISTS alarm_notifications_by_alarm
    ON alarm_notifications (alarm_id, created_at, id);

-- Read models created before erasure existed get the same shape; only then, as an ALTER locks
-- the table even when it changes nothing (see subjects.sql).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = 'alarm_notifications' AND column_name = 'recipient'
               AND is_nullable = 'NO') THEN
        ALTER TABLE alarm_notifications ALTER COLUMN recipient DROP NOT NULL;
    END IF;
END $$;
