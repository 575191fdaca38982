-- A group commit's write that checks the state its decisions assumed, instead of that nothing
-- moved since a lookup (infra/src/postgres/group_commit.rs).
--
-- With 0010 the log writer made two round trips per group: the lookup of the versions and ids
-- its decisions rest on, then the write with the log's head as that lookup saw it. But nearly
-- every append already says what it believes: it expects a version of its stream (the one its
-- caller loaded, or no stream at all for a creation) and of the streams its preconditions
-- name, and its event ids are new. The writer now decides a group on those beliefs alone and
-- sends the rows here with them: the streams' versions assumed (-1 for a stream without
-- events), and the new ids, assumed stored nowhere. Under the lock, if every stream is at its
-- assumed version and no new id is stored, the decisions are exactly those a lookup under the
-- lock would have given, and the rows go in: one round trip for the whole group. If not,
-- nothing is written and no row comes back, and the writer looks the group up (and, when
-- another process moved a stream again, takes the lock first), sending the versions its
-- lookup found as the assumptions.
--
-- Called on its own, this is one implicit transaction: lock, check, insert and commit (with its
-- WAL flush) in one round trip. Each statement of a PL/pgSQL function takes a fresh snapshot
-- (read committed), so the check runs after the lock is granted and sees every append
-- committed before it. Both checks are index look-ups: the last version of each stream through
-- the (stream_name, stream_version) index, the ids through the event_id index.
--
-- keryu_append_if_unchanged (0010) stays as it was, unused by this release, for processes of
-- the previous one still running during a rolling update (migrations stay additive); a later
-- migration can drop it.
CREATE FUNCTION keryu_append_as_assumed(
    assumed_streams text[],
    assumed_versions bigint[],
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
    IF EXISTS (SELECT FROM events WHERE event_id = ANY(new_ids))
       OR EXISTS (SELECT FROM unnest(assumed_streams, assumed_versions)
                              AS assumed(stream_name, version)
                  WHERE coalesce((SELECT max(e.stream_version) FROM events e
                                  WHERE e.stream_name = assumed.stream_name), -1)
                        <> assumed.version) THEN
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
