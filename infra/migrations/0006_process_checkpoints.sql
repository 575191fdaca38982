-- Where each process manager (the outbox relay, the alarm fan-out) has got to in the log.
-- Their effects live outside this database (NATS messages, other streams' events) and are
-- idempotent, so the checkpoint is written after the effect: a crash in between repeats the
-- effect, which the receiver recognises (Nats-Msg-Id, deterministic event ids).
CREATE TABLE process_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One GCRA row per WhatsApp sender number, shared by every dispatcher process: a send reserves
-- the next free slot with one UPDATE, so N dispatchers together never exceed the sender's rate.
-- `theoretical_arrival` is when the sender's budget is next fully spent (GCRA's TAT).
CREATE TABLE sender_rate_limits (
    sender              text        PRIMARY KEY,
    theoretical_arrival timestamptz NOT NULL
);
