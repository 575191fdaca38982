-- Gap-free reading of the global log.
--
-- An identity value is taken at INSERT but becomes visible at COMMIT. If writer A takes position
-- 100 and writer B takes 101 and commits first, a reader that checkpoints 101 would never see 100.
-- Every writer of `events` therefore holds one transaction-scoped advisory lock from before it
-- takes a position until it has committed (PostgreSQL makes a commit visible before it releases
-- the transaction's locks). Positions are thus assigned, and become visible, in commit order, and
-- a reader may keep a single position as its checkpoint.
--
-- The cost is one writer at a time; appends amortise it by writing whole batches per transaction.

CREATE FUNCTION keryu_lock_event_log() RETURNS void
LANGUAGE sql AS $$
    -- 0x6b657279 is "kery": an arbitrary key that no other part of Keryu uses.
    SELECT pg_advisory_xact_lock(1801810553)
$$;

-- Belt and braces: whoever inserts into `events` (the store, a migration, an operator's script)
-- takes the lock before any row gets its position. Advisory locks are re-entrant, so the store,
-- which already took it to check expected versions, pays nothing more.
CREATE FUNCTION keryu_events_take_write_lock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM keryu_lock_event_log();
    RETURN NULL;
END
$$;

CREATE TRIGGER events_take_write_lock
    BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION keryu_events_take_write_lock();
