-- Tamper evidence: every event is chained to the one before it in the global log.
--
--   previous_hash(e) = hash of the event at the next lower position (32 zero bytes for the first)
--   hash(e)          = SHA-256(previous_hash(e) || canonical(e))
--   canonical(e)     = position, stream, version, event id, type, schema version, data, metadata
--                      (jsonb text, which PostgreSQL normalises), recorded-at (µs since epoch),
--                      joined by the unit separator U+001F
--
-- Why one global chain rather than one per stream: the global order is what every reader
-- (projections, relay, auditors) consumes, and one chain also detects a deleted or reordered
-- stream as a whole, which per-stream chains cannot. Appends are already serialised on the log's
-- write lock (0002), so computing the link costs one index probe per row and takes nothing away
-- from concurrency: group commit still writes many appends per transaction.
--
-- Storing previous_hash beside hash tells the two kinds of tampering apart when verifying
-- (`keryu events verify`): an edited row no longer matches its own hash; a deleted or moved row
-- breaks the link from the row after it. A rewriter who recomputes every later hash defeats any
-- chain kept in the same database: export the head hash regularly (verify prints it) to make
-- that detectable too.
ALTER TABLE events ADD COLUMN previous_hash bytea, ADD COLUMN hash bytea;

CREATE FUNCTION keryu_event_digest(previous bytea, e events) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT sha256(previous || convert_to(concat_ws(chr(31),
        e.global_position::text, e.stream_name, e.stream_version::text, e.event_id::text,
        e.event_type, e.schema_version::text, e.data::text, e.metadata::text,
        (extract(epoch FROM e.recorded_at) * 1000000)::bigint::text), 'UTF8'))
$$;

-- Rows inserted earlier by the same statement are visible here, so a multi-row insert chains
-- its rows in position order.
CREATE FUNCTION keryu_chain_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT hash INTO NEW.previous_hash FROM events ORDER BY global_position DESC LIMIT 1;
    NEW.previous_hash := coalesce(NEW.previous_hash, decode(repeat('00', 32), 'hex'));
    NEW.hash := keryu_event_digest(NEW.previous_hash, NEW);
    RETURN NEW;
END
$$;

-- Chain the events stored before this migration, in order.
ALTER TABLE events DISABLE TRIGGER events_append_only;
DO $$
DECLARE
    row events;
    previous bytea := decode(repeat('00', 32), 'hex');
BEGIN
    FOR row IN SELECT * FROM events ORDER BY global_position LOOP
        UPDATE events
           SET previous_hash = previous, hash = keryu_event_digest(previous, row)
         WHERE global_position = row.global_position
        RETURNING hash INTO previous;
    END LOOP;
END
$$;
ALTER TABLE events ENABLE TRIGGER events_append_only;

ALTER TABLE events ALTER COLUMN previous_hash SET NOT NULL, ALTER COLUMN hash SET NOT NULL;

CREATE TRIGGER events_chain
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION keryu_chain_event();
