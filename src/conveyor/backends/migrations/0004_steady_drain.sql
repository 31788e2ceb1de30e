-- conveyor PostgreSQL schema, version 4: a long drain stays steady.
-- Runs inside one transaction with search_path set to the namespace's schema.

-- A heartbeat rewrites the lease of every active job. With lease_until in an index that
-- update could never be HOT (a new entry in every index of the table, each one a dead entry
-- for vacuum to clean); without it, the new row version stays on its page and no index is
-- touched. Recover still finds the expired leases here: it reads the active jobs, which are
-- only as many as the workers' capacity, and checks each lease.
DROP INDEX jobs_active;
CREATE INDEX jobs_active ON jobs (locked_by) WHERE state = 'active';

-- Room on every page for the new versions of its rows: a HOT update (heartbeat, progress,
-- a cancel request) needs it on the same page. Claims and acks can never be HOT: they change
-- state, which every partial index's predicate names (docs/scaling.md says why that stays).
-- Vacuum as soon as 10,000 rows died, whatever the table's size (the default waits for a
-- fifth of the table: two million dead rows at ten million jobs, each a dead entry that every
-- claim walks past at the start of its queue's range in jobs_ready), and without sleeping.
ALTER TABLE jobs SET (
    fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 100000,
    autovacuum_vacuum_cost_delay = 0
);
