-- Read model of subjects and who looks after them. Runs with search_path set to the
-- projection's own schema (see notifications.sql).

CREATE TABLE IF NOT EXISTS subjects (
    id          uuid PRIMARY KEY,
    name        text        NOT NULL,
    phone       text        NOT NULL,
    preferences jsonb       NOT NULL,
    active      boolean     NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    position    bigint      NOT NULL
);

CREATE INDEX IF NOT EXISTS subjects_by_creation ON subjects (created_at, id);

CREATE TABLE IF NOT EXISTS subject_custodians (
    subject_id   uuid NOT NULL,
    custodian_id uuid NOT NULL,
    PRIMARY KEY (subject_id, custodian_id)
);

-- "Which subjects does this custodian look after?": the scope of every custodian query.
CREATE INDEX IF NOT EXISTS subject_custodians_by_custodian
    ON subject_custodians (custodian_id, subject_id);
