-- Wake up subscribers when events commit. The notification carries nothing: it is only a hint
-- to read the table, which stays the truth (subscribers also poll after a timeout or reconnect).
-- PostgreSQL delivers it at commit and folds duplicates within a transaction.
CREATE FUNCTION keryu_events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keryu_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION keryu_events_notify();
