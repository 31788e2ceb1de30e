-- conveyor PostgreSQL schema, version 3: periodic schedules.
-- Runs inside one transaction with search_path set to the namespace's schema.

-- The last tick enqueued of each schedule. A tick's job is inserted by the same statement
-- that moves last_at forward (ON CONFLICT ... WHERE last_at < the tick), so however many
-- schedulers offer one tick, one of them stores its job.
CREATE TABLE periodic (
    name text COLLATE "C" PRIMARY KEY,
    queue text COLLATE "C" NOT NULL,
    last_at float8 NOT NULL,
    next_at float8 NOT NULL,
    job_id text NOT NULL,
    enqueued_at float8 NOT NULL
);
