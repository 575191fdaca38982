-- A group commit's write in one round trip (infra/src/postgres/group_commit.rs).
--
-- The log writer used to hold the write lock (0002) over four round trips in a row: BEGIN with
-- the lock, the lookup of the versions and ids its decisions rest on, the INSERT, and COMMIT.
-- Now it looks up without the lock, decides, and sends the rows here together with the log's
-- head as its lookup saw it. Under the lock, a head that is still the same means that nothing
-- was appended since the lookup, so every decision still holds and the rows go in. A head that
-- moved (another process appended) writes nothing and returns no row: the writer then decides
-- again with the lock held from before its lookup.
--
-- Called on its own, this is one implicit transaction: lock, check, insert and commit (with its
-- WAL flush) in one round trip, and the lock is held for that one call only. Each statement of
-- a PL/pgSQL function takes a fresh snapshot (read committed), so the head is read after the
-- lock is granted and sees every append committed before it.
CREATE FUNCTION keryu_append_at_head(
    seen_head bigint,
    new_streams text[],
    new_versions bigint[],
    new_ids uuid[],
    new_types text[],
    new_schema_versions integer[],
    new_data text[],
    new_metadata text[]
)
RETURNS TABLE (appended_id uuid, appended_at bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM keryu_lock_event_log();
    IF (SELECT coalesce(max(global_position), 0) FROM events) <> seen_head THEN
        RETURN;
    END IF;
    RETURN QUERY
    INSERT INTO events
        (stream_name, stream_version, event_id, event_type, schema_version, data, metadata)
    SELECT row.stream_name, row.stream_version, row.event_id, row.event_type,
           row.schema_version, row.data::jsonb, row.metadata::jsonb
    FROM unnest(new_streams, new_versions, new_ids, new_types, new_schema_versions, new_data,
                new_metadata)
         WITH ORDINALITY AS row(stream_name, stream_version, event_id, event_type,
                                schema_version, data, metadata, ordinality)
    ORDER BY row.ordinality
    RETURNING events.event_id, events.global_position;
END
$$;
