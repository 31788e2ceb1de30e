-- conveyor PostgreSQL schema, version 4: a job's life under control (issue 15): unique jobs,
-- expiry, a snooze counter, and retention of dead and cancelled jobs.
-- Runs inside one transaction with search_path set to the namespace's schema. Each column is
-- NULL (or 0) for jobs that do not use its option, which PostgreSQL adds without a rewrite.

ALTER TABLE jobs
    ADD COLUMN expires_at double precision,
    ADD COLUMN unique_key text COLLATE "C",
    ADD COLUMN unique_until double precision,
    ADD COLUMN snoozes integer NOT NULL DEFAULT 0;

-- One job per unique key and queue, refused by the index itself (enqueue inserts with
-- ON CONFLICT DO NOTHING). A holder that ended, or whose unique_for is over, lets go of its key
-- when the next job of that key meets it, not when it ends; and neither this index nor the
-- next names the state in its predicate: no job's claim or acknowledgement evaluates them.
-- Jobs without a key have no entry.
CREATE UNIQUE INDEX jobs_unique ON jobs (queue, unique_key) WHERE unique_key IS NOT NULL;
-- Jobs with an expiry, by it: housekeeping cancels the expired ones still waiting and drops
-- the expiry of the others, so the index keeps no job it need not look at.
CREATE INDEX jobs_expires ON jobs (expires_at) WHERE expires_at IS NOT NULL;
-- Dead and cancelled jobs by when they ended: retention deletes the oldest first.
CREATE INDEX jobs_ended ON jobs (finished_at) WHERE state IN ('dead', 'cancelled');
