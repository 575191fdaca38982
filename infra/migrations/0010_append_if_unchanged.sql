-- A group commit's write in one round trip (infra/src/postgres/group_commit.rs).
--
-- The log writer used to hold the write lock (0002) over four round trips in a row: BEGIN with
-- the lock, the lookup of the versions and ids its decisions rest on, the INSERT, and COMMIT.
-- Now it looks up without the lock, decides, and sends the rows here together with the log's
-- head as its lookup saw it and the streams the lookup read (those appended to and those a
-- precondition names). Under the lock, if no event appended since that head is in one of
-- those streams or has one of the new ids, every decision still holds and the rows go in:
-- another process appending to other streams meanwhile (the usual case) costs nothing. If one
-- is, nothing is written and no row comes back: the writer then decides again with the lock
-- held from before its lookup.
--
-- Called on its own, this is one implicit transaction: lock, check, insert and commit (with its
-- WAL flush) in one round trip, and the lock is held for that one call only. Each statement of
-- a PL/pgSQL function takes a fresh snapshot (read committed), so the check runs after the lock
-- is granted and sees every append committed before it; it reads only the events after the
-- seen head, through the primary key.
CREATE FUNCTION keryu_append_if_unchanged(
    seen_head bigint,
    read_streams text[],
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
    IF EXISTS (SELECT FROM events
               WHERE global_position > seen_head
                 AND (stream_name = ANY(read_streams) OR event_id = ANY(new_ids))) THEN
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
