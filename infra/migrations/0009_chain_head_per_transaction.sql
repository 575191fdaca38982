-- The chain of 0007, linked without looking the previous event up for every row.
--
-- Every row used to find its predecessor's hash with an index probe (`ORDER BY global_position
-- DESC LIMIT 1`), under the log's write lock: a group commit of a hundred events probed a
-- hundred times while every other writer waited. A transaction's rows are always consecutive
-- in the log (no one else can insert while it holds the write lock, 0002), so the hash of the
-- row it inserted last *is* the head of the chain: it is kept in a transaction-local setting
-- and only the transaction's first row probes.
--
-- A transaction-local setting is rolled back with the (sub)transaction that set it, so the
-- setting never outlives the row it describes. What is hashed is unchanged: rows chained
-- before and after this migration verify alike.
CREATE OR REPLACE FUNCTION keryu_chain_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head text := current_setting('keryu.chain_head', true);
BEGIN
    IF head IS NULL OR head = '' THEN
        SELECT hash INTO NEW.previous_hash FROM events ORDER BY global_position DESC LIMIT 1;
        NEW.previous_hash := coalesce(NEW.previous_hash, decode(repeat('00', 32), 'hex'));
    ELSE
        NEW.previous_hash := decode(head, 'hex');
    END IF;
    NEW.hash := keryu_event_digest(NEW.previous_hash, NEW);
    PERFORM set_config('keryu.chain_head', encode(NEW.hash, 'hex'), true);
    RETURN NEW;
END
$$;
