-- conveyor PostgreSQL schema, version 10: jobs taken ahead by limited workers (conveyor.limits,
-- Backend fetch_ahead). Runs inside one transaction with search_path set to the namespace's
-- schema.

-- A job claimed (at ``claimed``, its started_at until settled) to start in the slot of one
-- job of its bucket (``after``, at its ``attempt``) that the same worker holds: it holds no
-- slot while that one is active. Rows whose job ended are settled (and deleted) by the next
-- limited claim of the queue, or by housekeeping. A few rows per worker at most.
CREATE TABLE limit_ahead (
    bucket text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    worker text NOT NULL,
    after text COLLATE "C" NOT NULL,
    attempt int4 NOT NULL,
    claimed float8 NOT NULL,
    PRIMARY KEY (bucket, id)
);
