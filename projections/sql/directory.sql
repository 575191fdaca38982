-- Read model of templates (latest version and approval state) and custodians (no secrets).
-- Runs with search_path set to the projection's own schema (see notifications.sql).

CREATE TABLE IF NOT EXISTS templates (
    id               uuid PRIMARY KEY,
    name             text        NOT NULL,
    version          integer     NOT NULL,
    status           text        NOT NULL,
    content          text        NOT NULL,
    variables        jsonb       NOT NULL,
    language         text        NOT NULL,
    content_sid      text,
    approved_version integer,
    rejection_reason text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    position         bigint      NOT NULL
);

CREATE INDEX IF NOT EXISTS templates_by_creation ON templates (created_at, id);

-- Custodians without their password hash: the read side never holds a secret.
CREATE TABLE IF NOT EXISTS custodians (
    id         uuid PRIMARY KEY,
    email      text        NOT NULL,
    name       text        NOT NULL,
    role       text        NOT NULL,
    active     boolean     NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    position   bigint      NOT NULL
);

CREATE INDEX IF NOT EXISTS custodians_by_creation ON custodians (created_at, id);
