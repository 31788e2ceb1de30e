-- conveyor PostgreSQL schema, version 19. Runs inside one transaction with search_path set to
-- the namespace's schema.
--
-- An acknowledgement (complete, fail, snooze) joins the batch it is given, unnest(ids,
-- outcomes), with jobs, and checks that each job is still the worker's active one. The planner
-- estimated that check from the last ANALYZE: when it had sampled no active job (a table of
-- 20,000-100,000 jobs analyzed while they waited, the common case), it expected one row, read
-- the whole table for it, and joined the batch to it by a nested loop that compared every job
-- with every id: 500 ids against 20,000 jobs took 63 ms instead of 5 (session 17). These
-- functions hand the batch to the statement with an estimate of one row, so the plan is
-- always the batch first and one lookup of jobs_pkey per id, whatever the table's size and
-- statistics. VOLATILE keeps the planner from inlining them (an inlined unnest is estimated
-- at the array's length again).
CREATE FUNCTION acked(p_ids text[], p_results bytea[])
RETURNS TABLE (id text, result bytea)
LANGUAGE sql VOLATILE ROWS 1 AS $$ SELECT * FROM unnest(p_ids, p_results) $$;

CREATE FUNCTION failed_runs(p_ids text[], p_states text[], p_retry_at float8[], p_errors text[],
                            p_tracebacks text[])
RETURNS TABLE (id text, state text, retry_at float8, error text, traceback text)
LANGUAGE sql VOLATILE ROWS 1 AS $$
    SELECT * FROM unnest(p_ids, p_states, p_retry_at, p_errors, p_tracebacks)
$$;

CREATE FUNCTION snoozed_runs(p_ids text[], p_run_at float8[])
RETURNS TABLE (id text, run_at float8)
LANGUAGE sql VOLATILE ROWS 1 AS $$ SELECT * FROM unnest(p_ids, p_run_at) $$;
