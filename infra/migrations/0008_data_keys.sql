-- One data key per person whose personal data the log holds (a subject, a custodian). Personal
-- fields of events are encrypted with their owner's key (AES-256-GCM); the key itself is stored
-- wrapped (encrypted) by the master key, which lives only in the processes' configuration, so a
-- dump of this database alone reads no personal data.
--
-- Erasing a person destroys their key (crypto-shredding): `wrapped_key` becomes NULL and the
-- log, untouched and still verifiable, can no longer be read where it concerns them. The row
-- stays, so a later write about them is sealed with a throwaway key instead of a new one.
-- Old row versions linger until VACUUM and in backups: see docs/operations.md, "Erasure".
CREATE TABLE data_keys (
    owner_id    uuid        PRIMARY KEY,
    wrapped_key bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    shredded_at timestamptz,
    CONSTRAINT data_keys_shredded_has_no_key CHECK ((wrapped_key IS NULL) = (shredded_at IS NOT NULL))
);
