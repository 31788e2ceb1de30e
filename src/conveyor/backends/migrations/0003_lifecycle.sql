-- conveyor PostgreSQL schema, version 3: a job's life under control (issue 15): unique jobs,
-- expiry, a snooze counter, and retention of dead and cancelled jobs.
-- Runs inside one transaction with search_path set to the namespace's schema. Each column is
-- NULL (or 0) for jobs that do not use its option, which PostgreSQL adds without a rewrite.

ALTER TABLE jobs
    ADD COLUMN expires_at double precision,
    ADD COLUMN unique_key text COLLATE "C",
    ADD COLUMN unique_until double precision,
    ADD COLUMN snoozes integer NOT NULL DEFAULT 0;

-- One live job per unique key and queue, refused by the index itself (enqueue inserts with
-- ON CONFLICT DO NOTHING); a job leaves the index as it ends, since the state is in the
-- predicate, so completing, failing or cancelling a job frees its key with no extra write.
-- Jobs without a key have no entry.
CREATE UNIQUE INDEX jobs_unique ON jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'pending', 'retry', 'active');
-- Waiting jobs with an expiry, by it: housekeeping cancels the expired ones, the earliest first.
CREATE INDEX jobs_expires ON jobs (expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('scheduled', 'pending', 'retry');
-- Dead and cancelled jobs by when they ended: retention deletes the oldest first.
CREATE INDEX jobs_ended ON jobs (finished_at) WHERE state IN ('dead', 'cancelled');
