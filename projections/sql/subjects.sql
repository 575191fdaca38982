-- Read model of subjects and who looks after them. Runs with search_path set to the
-- projection's own schema (see notifications.sql).

-- Name, phone and preferences are NULL once the subject is erased (they read back as null from
-- the log too); `phone_fingerprint` is the keyed HMAC of the number that lookups by number use
-- (KERYU_PHONE_PEPPER), so the index holds no number.
CREATE TABLE IF NOT EXISTS subjects (
    id                uuid PRIMARY KEY,
    name              text,
    phone             text,
    phone_fingerprint text,
    preferences       jsonb,
    active            boolean     NOT NULL,
    erased            boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    position          bigint      NOT NULL
);

-- Read models created before erasure existed get the same shape (rebuild to fill fingerprints).
-- Only then: an ALTER locks the table against queries even when it changes nothing, and this
-- file runs whenever a projector starts.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                   AND table_name = 'subjects' AND column_name = 'erased') THEN
        ALTER TABLE subjects ALTER COLUMN name DROP NOT NULL,
                             ALTER COLUMN phone DROP NOT NULL,
                             ALTER COLUMN preferences DROP NOT NULL,
                             ADD COLUMN phone_fingerprint text,
                             ADD COLUMN erased boolean NOT NULL DEFAULT false;
    END IF;
END $$;

CREATE INDEX IF NOT EXISTS subjects_by_creation ON subjects (created_at, id);
CREATE INDEX IF NOT EXISTS subjects_by_phone_fingerprint ON subjects (phone_fingerprint);

CREATE TABLE IF NOT EXISTS subject_custodians (
    subject_id   uuid NOT NULL,
    custodian_id uuid NOT NULL,
    PRIMARY KEY (subject_id, custodian_id)
);

-- "Which subjects does this custodian look after?": the scope of every custodian query.
CREATE INDEX IF NOT EXISTS subject_custodians_by_custodian
    ON subject_custodians (custodian_id, subject_id);
