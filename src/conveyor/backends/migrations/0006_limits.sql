-- conveyor PostgreSQL schema, version 6: concurrency and rate limits (conveyor.limits).
-- Runs inside one transaction with search_path set to the namespace's schema.

-- Each limit's definition, "concurrency|rate|per", per queue and limit name (a task's name,
-- or '' for the whole queue). Written by the app before its first limited job of a queue,
-- and by every worker as it starts.
CREATE TABLE limits (
    queue text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (queue, name)
);

-- The token bucket of each rate-limited bucket (or queue) that started a job lately: tokens
-- held at stamp. A missing row is a full bucket; housekeeping drops rows an hour old.
CREATE TABLE limit_tokens (
    bucket text COLLATE "C" PRIMARY KEY,
    tokens float8 NOT NULL,
    stamp float8 NOT NULL
);
