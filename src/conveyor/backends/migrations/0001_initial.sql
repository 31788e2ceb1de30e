-- conveyor PostgreSQL schema, version 1.
-- Runs inside one transaction with search_path set to the namespace's schema, so the
-- names below land in that schema. Times are epoch seconds (double precision) from the
-- caller's clock, as in every conveyor store.

CREATE TABLE jobs (
    id text COLLATE "C" PRIMARY KEY,
    queue text COLLATE "C" NOT NULL,
    payload bytea NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    state text NOT NULL,
    run_at double precision NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 1,
    timeout double precision,
    created_at double precision NOT NULL,
    started_at double precision,
    finished_at double precision,
    result bytea,
    last_error text,
    traceback text,
    locked_by text,
    lease_until double precision
);

-- The claim walks this index per queue, in order, and stops at its LIMIT; being partial it
-- holds only waiting jobs, so a million completed ones do not slow it.
CREATE INDEX jobs_fetch ON jobs (queue, priority DESC, run_at, id)
    WHERE state IN ('scheduled', 'pending', 'retry');
-- Active jobs: every lease one worker holds (heartbeat), expired leases (recover), admin
-- listings of active jobs. One small index for all three, since the claim pays for each
-- index it touches; the active set is only as large as the workers' capacity.
CREATE INDEX jobs_active ON jobs (locked_by, lease_until) WHERE state = 'active';
-- recover(): pruning completed jobs past their TTL.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state = 'completed';
-- Admin listings: jobs in one state (and queue), newest first. Pending and active jobs are
-- left out: every index entry is paid for on the hot path (enqueue, claim), pending jobs are
-- the bulk of a deep queue (their listing walks the primary key backwards instead) and
-- active ones are few (jobs_active finds them).
CREATE INDEX jobs_state ON jobs (state, queue, id) WHERE state NOT IN ('pending', 'active');

CREATE TABLE queues (
    name text COLLATE "C" PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false
);

CREATE TABLE workers (
    id text PRIMARY KEY,
    host text,
    pid integer,
    queues text,
    concurrency integer,
    started_at double precision,
    last_seen double precision,
    running text
);

-- Processed and failed runs per minute, for stats().history.
CREATE TABLE counters (
    minute bigint PRIMARY KEY,
    processed bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0
);
