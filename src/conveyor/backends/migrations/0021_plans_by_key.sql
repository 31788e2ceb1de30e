-- conveyor PostgreSQL schema, version 21. Runs inside one transaction with search_path set to
-- the namespace's schema.
--
-- Statements whose plan followed statistics that no longer said what the table held (session
-- 17, after migration 19's acknowledgements): each read the whole table, or a whole index,
-- where a lookup of the ids it was given or had just found was there to make.
--
-- - The promotion of due jobs (promote_due(), and the same UPDATE in claim_limited()) found
--   them in jobs_due and joined them with jobs by a hash join over a scan of the whole table
--   whenever the planner expected many (p_batch a queue): 2,000 due jobs among 200,000 took
--   55 ms instead of 34. Their ids now go to the UPDATE as an array looked up by primary
--   key, as the claim's do, in one function both call (promote_queues()).
-- - The cancellation of a failed parent's children (cancel_dependents()) joined deps with jobs
--   by a merge join that walked all of jobs_pkey (20,502 rows for 500 children). The
--   children's ids now go as an array, looked up by primary key, as the release of a
--   completed parent's children (dependents_moved(), migration 20) looks them up.
-- - The marking of an enqueue's dependent jobs (workflows) and the settling of jobs taken
--   ahead joined their batch, unnest() of the ids, with jobs by a hash join over a scan of the
--   whole table when the table was small against the batch (500 ids among 20,000 jobs).
--   marked() and settled() hand those batches over with an estimate of one row, as acked()
--   does (migration 19): the plan is the batch first and one lookup of jobs_pkey per id.
CREATE FUNCTION marked(p_ids text[], p_n int4[], p_e text[], p_f float8[])
RETURNS TABLE (id text, n int4, e text, f float8)
LANGUAGE sql VOLATILE ROWS 1 AS $$ SELECT * FROM unnest(p_ids, p_n, p_e, p_f) $$;

CREATE FUNCTION settled(p_buckets text[], p_ids text[], p_starts float8[], p_claims float8[])
RETURNS TABLE (bucket text, id text, start float8, claimed float8)
LANGUAGE sql VOLATILE ROWS 1 AS $$ SELECT * FROM unnest(p_buckets, p_ids, p_starts, p_claims) $$;

-- The promotion of the due jobs of the stored queues named, at most p_batch a queue, the
-- earliest first: promote_due() and claim_limited() both call it.
CREATE FUNCTION promote_queues(p_due text[], p_now float8, p_batch int4) RETURNS int4
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    moved int4;
BEGIN
    UPDATE jobs SET state = 'pending' WHERE id = ANY(ARRAY(
        SELECT d.id FROM unnest(p_due) AS l(name) CROSS JOIN LATERAL (
            SELECT id FROM jobs WHERE queue = l.name AND state IN ('scheduled', 'retry')
               AND run_at <= p_now ORDER BY run_at LIMIT p_batch FOR UPDATE SKIP LOCKED) d));
    GET DIAGNOSTICS moved = ROW_COUNT;
    RETURN moved;
END $$;

CREATE OR REPLACE FUNCTION promote_due(p_now float8, p_batch int4) RETURNS int4
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    due text[];
BEGIN
    SELECT array_agg(q.name) INTO due FROM queues q
     WHERE EXISTS (SELECT 1 FROM jobs WHERE queue = q.name AND state IN ('scheduled', 'retry')
                      AND run_at <= p_now);
    IF due IS NULL THEN
        RETURN 0;
    END IF;
    RETURN promote_queues(due, p_now, p_batch);
END $$;

CREATE OR REPLACE FUNCTION cancel_dependents(parent_id text, note text, at double precision) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    changed integer;
BEGIN
    UPDATE jobs c SET state = 'cancelled', finished_at = at, last_error = note
     WHERE c.id = ANY(ARRAY(SELECT child FROM deps WHERE parent = parent_id)) AND c.state = 'waiting';
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;

-- claim_limited() as migration 18 left it, but for its promotion: promote_queues() (above).
CREATE OR REPLACE FUNCTION claim_limited(
    p_queue text, p_lock int8, p_worker text, p_until float8, p_now float8, p_want int4, p_turn int8,
    p_names text[], p_conc int4[], p_rate int4[], p_per float8[],
    a_buckets text[], a_ids text[], a_attempts int4[]
) RETURNS TABLE (claimed_job jobs, ahead_of text)
LANGUAGE plpgsql SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    low text := p_queue || E'\x1f';
    high text := p_queue || E'\x20';
    whole int4 := array_position(p_names, '');
    rated boolean := EXISTS (SELECT 1 FROM unnest(p_rate) r WHERE r IS NOT NULL);
    cap int8 := p_want;
    most int8 := 8 + 2 * p_want;
    due text[];          -- the stored queues (the queue, its buckets) with jobs due
    ready text[];        -- the stored queues with ready jobs
    aheads boolean;      -- whether jobs taken ahead wait in the queue's buckets
    names text[] := '{}';  -- stored queues with running jobs, and how many hold a slot
    running int8[] := '{}';
    t_names text[] := '{}';
    t_tokens float8[] := '{}';
    t_stamps float8[] := '{}';
    t int4;
    -- The claim made before the lock: how many jobs of which stored queue to take, the jobs
    -- taken (rows as written), what each held before (to give it back as it was), and the
    -- ones given back under the lock.
    f_names text[] := '{}';
    f_take int8[] := '{}';
    e_ids text[] := '{}';
    e_progress bytea[];
    e_locked text[];
    e_lease float8[];
    e_started float8[];
    e_finished float8[];
    early jobs[] := '{}';
    given text[] := '{}';
BEGIN
    IF EXISTS (SELECT 1 FROM queues WHERE name = p_queue AND paused) THEN
        RETURN;
    END IF;
    -- Before the lock, what needs none. Due jobs of the queue and its buckets become pending
    -- (buckets are not in the queues table, so the plain claim's promotion does not reach
    -- them): a walk of the due index, one step per stored queue with jobs waiting for a time,
    -- then, only if one has a job due, the update. (An UPDATE costs its statement triggers,
    -- counts, batches, dependencies, even when it changes no row: about 0.15 ms a claim.)
    WITH RECURSIVE later(name, first) AS (
        (SELECT queue, run_at FROM jobs WHERE state IN ('scheduled', 'retry')
            AND queue >= p_queue AND queue < high ORDER BY queue, run_at LIMIT 1)
        UNION ALL
        SELECT n.queue, n.run_at FROM later l CROSS JOIN LATERAL (
            SELECT queue, run_at FROM jobs WHERE state IN ('scheduled', 'retry')
               AND queue > l.name AND queue < high ORDER BY queue, run_at LIMIT 1) n)
    SELECT coalesce(array_agg(name), '{}') INTO due FROM later
     WHERE first <= p_now AND (name = p_queue OR name > low);
    IF cardinality(due) > 0 THEN
        PERFORM promote_queues(due, p_now, 2000);
    END IF;
    -- The stored queues with ready jobs: a walk of the ready index, one step each. Read
    -- before the lock, it only says where to look: the claim below skips what another
    -- claim took meanwhile, and a job enqueued meanwhile waits for the next claim.
    WITH RECURSIVE r(name) AS (
        (SELECT queue FROM jobs WHERE state = 'pending' AND queue >= p_queue AND queue < high
          ORDER BY queue LIMIT 1)
        UNION ALL
        SELECT (SELECT queue FROM jobs WHERE state = 'pending' AND queue > r.name AND queue < high
                 ORDER BY queue LIMIT 1) FROM r WHERE r.name IS NOT NULL)
    SELECT coalesce(array_agg(name), '{}') INTO ready FROM r
     WHERE name IS NOT NULL AND (name = p_queue OR name > low);
    IF cardinality(ready) = 0 THEN
        RETURN;
    END IF;
    -- Jobs taken ahead that hold a slot now (their run ended), or no longer wait for one
    -- (they ended, were handed back, or another claim took them since) lose their rows, and
    -- one that ran gets the end of its run as started_at. Before the lock: a job ahead whose
    -- run ended holds that run's slot with its row or without (limit_less_ahead subtracts
    -- only jobs whose run is still on), so this is tidying, not counting. A job still active
    -- is tidied only by a claim that will not take the lock (nothing to start now, no rate,
    -- no whole-queue limit): its worker's acknowledgement writes it soon, and would wait for
    -- the row lock of a claim waiting for the queue's lock. None without jobs ahead (and then
    -- no update either: see the promotion). A row another claim is tidying, or a job's row
    -- another transaction holds, is passed over, not waited for.
    IF EXISTS (SELECT 1 FROM limit_ahead WHERE bucket > low AND bucket < high) THEN
        WITH d AS MATERIALIZED (
            SELECT a.bucket, a.id, a.claimed,
                   CASE WHEN y.started_at = a.claimed AND y.state <> 'pending'
                        THEN coalesce(x.finished_at, p_now) END AS start
              FROM limit_ahead a LEFT JOIN jobs y ON y.id = a.id LEFT JOIN jobs x ON x.id = a.after
             WHERE a.bucket > low AND a.bucket < high
               AND NOT coalesce(y.started_at = a.claimed AND y.state = 'active' AND y.locked_by = a.worker
                                AND (cap > 0 OR whole IS NOT NULL OR rated
                                     OR (x.state = 'active' AND x.locked_by = a.worker AND x.attempts = a.attempt)),
                                false)
               FOR UPDATE OF a SKIP LOCKED),
        gone AS (DELETE FROM limit_ahead a USING d WHERE a.bucket = d.bucket AND a.id = d.id)
        UPDATE jobs AS j SET started_at = d.start FROM d
         WHERE j.id = d.id AND j.started_at = d.claimed AND d.start IS NOT NULL
           AND j.id = ANY(ARRAY(SELECT y.id FROM jobs y WHERE y.id IN (SELECT id FROM d WHERE start IS NOT NULL)
                                 FOR UPDATE OF y SKIP LOCKED));
    END IF;
    IF whole IS NULL AND cap > 0 THEN
        -- The claim before the lock. The running jobs and tokens read here miss what claims
        -- still out have taken: they only say how many to try for (at most what the limit
        -- leaves, as far as can be seen), the count under the lock decides.
        SELECT coalesce(array_agg(c.queue), '{}'), coalesce(array_agg(c.n), '{}') INTO names, running
          FROM (SELECT queue, count(*)::int8 AS n FROM jobs
                 WHERE queue = ANY(ready) AND state = 'active' AND strpos(queue, E'\x1f') > 0
                 GROUP BY queue) c;
        IF EXISTS (SELECT 1 FROM limit_ahead WHERE bucket > low AND bucket < high) THEN
            SELECT l.names, l.running INTO names, running FROM limit_less_ahead(low, high, names, running) l;
        END IF;
        IF rated THEN
            SELECT coalesce(array_agg(bucket), '{}'), coalesce(array_agg(tokens), '{}'),
                   coalesce(array_agg(stamp), '{}')
              INTO t_names, t_tokens, t_stamps
              FROM limit_tokens WHERE bucket > low AND bucket < high;
        END IF;
        -- Which jobs this claim would take, in claim order across the queue and its buckets
        -- (priority, then age), read without locking; how many of each stored queue's. The
        -- rated buckets' share is left to the claim under the lock. Then, per stored queue
        -- without a rate, that many of its best ready jobs not being claimed by another
        -- (SKIP LOCKED: a first read that locked would hold jobs it does not take while
        -- this claim waits for the lock; one that does not lock cannot tell which of the
        -- jobs it saw another claim has taken).
        WITH defs AS (SELECT * FROM unnest(p_names, p_conc, p_rate, p_per) AS d(name, conc, rate, per)),
        tok AS (SELECT * FROM unnest(t_names, t_tokens, t_stamps) AS k(name, tokens, stamp)),
        cnt AS (SELECT * FROM unnest(names, running) AS c(name, n)),
        room AS (
            SELECT r.name, (r.name = p_queue OR d.rate IS NULL) AS free,
                   CASE WHEN r.name = p_queue THEN cap ELSE least(cap,
                       limit_allows(d.conc, d.rate, d.per, coalesce(c.n, 0), k.tokens, k.stamp, p_now)) END AS n
              FROM unnest(ready) AS r(name)
              LEFT JOIN cnt c ON c.name = r.name
              LEFT JOIN defs d ON r.name <> p_queue AND d.name = split_part(r.name, E'\x1f', 2)
              LEFT JOIN tok k ON k.name = r.name),
        ranked AS (
            SELECT name, free, n, row_number() OVER (ORDER BY name COLLATE "C") - 1 AS i, count(*) OVER () AS total
              FROM room WHERE n > 0 AND name <> p_queue),
        chosen AS (
            SELECT name, free, n FROM ranked
             WHERE total <= most OR (i - (p_turn * most) % total + total) % total < most
            UNION ALL
            SELECT name, free, n FROM room WHERE name = p_queue AND n > 0),
        seen AS MATERIALIZED (
            SELECT c.name, c.free FROM chosen c CROSS JOIN LATERAL (
                SELECT priority, run_at, id FROM jobs WHERE queue = c.name AND state = 'pending'
                 ORDER BY priority DESC, run_at, id LIMIT c.n) b
             ORDER BY b.priority DESC, b.run_at, b.id LIMIT cap)
        SELECT coalesce(array_agg(name), '{}'), coalesce(array_agg(k), '{}') INTO f_names, f_take
          FROM (SELECT name, count(*) AS k FROM seen WHERE free GROUP BY name) s;
        IF cardinality(f_names) > 0 THEN
            SELECT coalesce(array_agg(b.id), '{}'), array_agg(b.progress), array_agg(b.locked_by),
                   array_agg(b.lease_until), array_agg(b.started_at), array_agg(b.finished_at)
              INTO e_ids, e_progress, e_locked, e_lease, e_started, e_finished
              FROM unnest(f_names, f_take) AS f(name, k) CROSS JOIN LATERAL (
                SELECT id, progress, locked_by, lease_until, started_at, finished_at FROM jobs
                 WHERE queue = f.name AND state = 'pending'
                 ORDER BY priority DESC, run_at, id LIMIT f.k FOR UPDATE SKIP LOCKED) b;
            IF cardinality(e_ids) > 0 THEN
                WITH claimed AS (
                    UPDATE jobs AS j SET state = 'active', attempts = j.attempts + 1, progress = NULL,
                        locked_by = p_worker, lease_until = p_until, started_at = p_now, finished_at = NULL
                     WHERE j.id = ANY(e_ids)
                    RETURNING j)
                SELECT coalesce(array_agg(c.j), '{}') INTO early FROM claimed c;
            END IF;
        END IF;
    END IF;
    IF cardinality(a_ids) > 0 THEN
        -- Jobs taken ahead (fetch_ahead), before the lock: one holds no slot while the job it
        -- follows is active and held by this worker at that attempt, so no count decides it
        -- (the count under the lock subtracts such jobs from their bucket's running ones,
        -- this claim's own too: limit_less_ahead). The runs named that the worker still holds
        -- at their attempt (each looked up by its id: a walk of jobs_active by worker passes
        -- over every entry that worker's past claims left dead), numbered per bucket; as many
        -- of each bucket's best waiting jobs; claimed (started_at: the claim's time until
        -- settled) and noted with the job each follows. A run named k times in a row gets a
        -- chain of up to k jobs (chains_jobs_ahead): the first follows the run, each other
        -- the job taken before it for that run.
        RETURN QUERY
        WITH runs AS MATERIALIZED (
            SELECT r.bucket, r.id, r.attempt, row_number() OVER (PARTITION BY r.bucket ORDER BY r.ord) AS k,
                   coalesce(lag(r.id) OVER (PARTITION BY r.bucket ORDER BY r.ord) = r.id, false) AS chained
              FROM unnest(a_buckets, a_ids, a_attempts) WITH ORDINALITY AS r(bucket, id, attempt, ord)
              CROSS JOIN LATERAL (SELECT state, locked_by, attempts FROM jobs WHERE id = r.id OFFSET 0) x
             WHERE x.state = 'active' AND x.locked_by = p_worker AND x.attempts = r.attempt),
        pick AS MATERIALIZED (
            SELECT b.id, w.bucket, row_number() OVER (PARTITION BY w.bucket
                   ORDER BY b.priority DESC, b.run_at, b.id) AS k
              FROM (SELECT bucket, count(*) AS n FROM runs GROUP BY bucket) w CROSS JOIN LATERAL (
                SELECT id, priority, run_at FROM jobs WHERE queue = w.bucket AND state = 'pending'
                 ORDER BY priority DESC, run_at, id LIMIT w.n FOR UPDATE SKIP LOCKED) b),
        claimed AS (
            UPDATE jobs AS j SET state = 'active', attempts = j.attempts + 1, progress = NULL,
                locked_by = p_worker, lease_until = p_until, started_at = p_now, finished_at = NULL
              FROM pick WHERE j.id = pick.id
            RETURNING j, pick.bucket, pick.k),
        noted AS (
            INSERT INTO limit_ahead AS a (bucket, id, worker, after, attempt, claimed)
            SELECT c.bucket, (c.j).id, p_worker, CASE WHEN r.chained THEN (p.j).id ELSE r.id END,
                   CASE WHEN r.chained THEN (p.j).attempts ELSE r.attempt END, p_now FROM claimed c
              JOIN runs r ON r.bucket = c.bucket AND r.k = c.k
              LEFT JOIN claimed p ON r.chained AND p.bucket = c.bucket AND p.k = c.k - 1
            ON CONFLICT (bucket, id) DO UPDATE SET worker = excluded.worker, after = excluded.after,
                attempt = excluded.attempt, claimed = excluded.claimed
            RETURNING a.id, a.after)
        SELECT c.j, n.after FROM claimed c JOIN noted n ON n.id = (c.j).id;
    END IF;
    -- The lock, only when something needs it: this claim took jobs that start now (the count
    -- below decides whether it keeps them), or a rate or a whole queue's limit meters what it
    -- takes. A claim of jobs ahead alone, or one that found nothing to start, takes none.
    IF cardinality(early) = 0 AND whole IS NULL AND NOT rated THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(p_lock);
    -- Each statement from here reads a snapshot taken after the lock: the claims of the
    -- previous holder, committed before it let go, are counted.
    aheads := EXISTS (SELECT 1 FROM limit_ahead WHERE bucket > low AND bucket < high);
    -- Running jobs per stored queue. A limit of the whole queue counts every running job of
    -- the queue and its buckets (from counts, whose deltas are read whole); otherwise the
    -- buckets where this claim took jobs before the lock (its own among their running jobs)
    -- and the rated ones with ready jobs count their own, from jobs_bucket_active.
    IF whole IS NOT NULL THEN
        SELECT coalesce(array_agg(c.queue), '{}'), coalesce(array_agg(c.n), '{}') INTO names, running
          FROM (SELECT queue, sum(n)::int8 AS n FROM (
                    SELECT queue, n FROM counts
                     WHERE (queue = p_queue OR (queue > low AND queue < high)) AND state = 'active'
                    UNION ALL
                    SELECT queue, n FROM count_deltas
                     WHERE (queue = p_queue OR (queue > low AND queue < high)) AND state = 'active') a
                 GROUP BY queue) c;
    ELSE
        SELECT coalesce(array_agg(c.queue), '{}'), coalesce(array_agg(c.n), '{}') INTO names, running
          FROM (SELECT queue, count(*)::int8 AS n FROM jobs
                 WHERE queue = ANY(ARRAY(
                        SELECT (x).queue FROM unnest(early) AS x
                        UNION
                        SELECT r.name FROM unnest(ready) AS r(name) JOIN unnest(p_names, p_rate) AS d(name, rate)
                            ON r.name <> p_queue AND d.name = split_part(r.name, E'\x1f', 2) AND d.rate IS NOT NULL))
                   AND state = 'active' AND strpos(queue, E'\x1f') > 0
                 GROUP BY queue) c;
    END IF;
    IF aheads THEN
        SELECT l.names, l.running INTO names, running FROM limit_less_ahead(low, high, names, running) l;
    END IF;
    IF cardinality(early) > 0 THEN
        -- A bucket over its limit now that everything committed is counted: this claim's
        -- jobs in it past the limit (its last ones in claim order) go back as they were.
        SELECT coalesce(array_agg(v.id), '{}') INTO given FROM (
            SELECT e.id, row_number() OVER (PARTITION BY e.queue ORDER BY e.priority, e.run_at DESC, e.id DESC) AS k,
                   c.n - d.conc AS excess
              FROM (SELECT (x).id, (x).queue, (x).priority, (x).run_at FROM unnest(early) AS x) e
              JOIN unnest(names, running) AS c(name, n) ON c.name = e.queue
              JOIN unnest(p_names, p_conc) AS d(name, conc) ON d.name = split_part(e.queue, E'\x1f', 2)
             WHERE e.queue <> p_queue AND c.n > d.conc) v
         WHERE v.k <= v.excess;
        IF cardinality(given) > 0 THEN
            UPDATE jobs AS j SET state = 'pending', attempts = j.attempts - 1, progress = o.progress,
                locked_by = o.locked_by, lease_until = o.lease_until, started_at = o.started_at,
                finished_at = o.finished_at
              FROM unnest(e_ids, e_progress, e_locked, e_lease, e_started, e_finished)
                   AS o(id, progress, locked_by, lease_until, started_at, finished_at)
             WHERE j.id = ANY(given) AND o.id = j.id;
        END IF;
        RETURN QUERY SELECT x, NULL::text FROM unnest(early) AS x WHERE NOT ((x).id = ANY(given));
        cap := cap - (cardinality(early) - cardinality(given));
    END IF;
    IF rated THEN
        SELECT coalesce(array_agg(bucket), '{}'), coalesce(array_agg(tokens), '{}'),
               coalesce(array_agg(stamp), '{}')
          INTO t_names, t_tokens, t_stamps
          FROM limit_tokens WHERE bucket = p_queue OR (bucket > low AND bucket < high);
    END IF;
    IF whole IS NOT NULL THEN
        t := array_position(t_names, p_queue);
        cap := least(cap, limit_allows(p_conc[whole], p_rate[whole], p_per[whole],
            (SELECT coalesce(sum(r), 0) FROM unnest(running) r)::int8,
            t_tokens[t], t_stamps[t], p_now));
    END IF;
    -- The claim under the lock: every stored queue when the whole queue has a limit, else
    -- the rated buckets (what the claim before the lock left to it).
    IF cap > 0 AND (whole IS NOT NULL OR rated) THEN
        RETURN QUERY
        WITH defs AS (SELECT * FROM unnest(p_names, p_conc, p_rate, p_per) AS d(name, conc, rate, per)),
        tok AS (SELECT * FROM unnest(t_names, t_tokens, t_stamps) AS k(name, tokens, stamp)),
        cnt AS (SELECT * FROM unnest(names, running) AS c(name, n)),
        room AS (
            SELECT r.name, CASE WHEN r.name = p_queue THEN cap ELSE least(cap,
                limit_allows(d.conc, d.rate, d.per, coalesce(c.n, 0), k.tokens, k.stamp, p_now)) END AS n
              FROM unnest(ready) AS r(name)
              LEFT JOIN cnt c ON c.name = r.name
              LEFT JOIN defs d ON r.name <> p_queue AND d.name = split_part(r.name, E'\x1f', 2)
              LEFT JOIN tok k ON k.name = r.name
             WHERE whole IS NOT NULL OR (r.name <> p_queue AND d.rate IS NOT NULL)),
        ranked AS (
            SELECT name, n, row_number() OVER (ORDER BY name COLLATE "C") - 1 AS i, count(*) OVER () AS total
              FROM room WHERE n > 0 AND name <> p_queue),
        chosen AS (
            SELECT name, n FROM ranked
             WHERE total <= most OR (i - (p_turn * most) % total + total) % total < most
            UNION ALL
            SELECT name, n FROM room WHERE name = p_queue AND n > 0),
        claimed AS (
            UPDATE jobs AS j SET state = 'active', attempts = j.attempts + 1, progress = NULL,
                locked_by = p_worker, lease_until = p_until, started_at = p_now, finished_at = NULL
             WHERE j.id = ANY(ARRAY(
                SELECT b.id FROM chosen c CROSS JOIN LATERAL (
                    SELECT id, priority, run_at FROM jobs WHERE queue = c.name AND state = 'pending'
                     ORDER BY priority DESC, run_at, id LIMIT c.n FOR UPDATE SKIP LOCKED) b
                 ORDER BY b.priority DESC, b.run_at, b.id LIMIT cap))
            RETURNING j),
        started AS (SELECT (c.j).queue AS name, count(*) AS n FROM claimed c GROUP BY 1),
        spent AS (
            INSERT INTO limit_tokens AS l (bucket, tokens, stamp)
            SELECT s.name, limit_tokens_at(d.rate, d.per, k.tokens, k.stamp, p_now) - s.n,
                   greatest(p_now, coalesce(k.stamp, p_now))
              FROM started s JOIN defs d ON s.name <> p_queue AND d.name = split_part(s.name, E'\x1f', 2)
              LEFT JOIN tok k ON k.name = s.name
             WHERE d.rate IS NOT NULL
            UNION ALL
            SELECT p_queue, limit_tokens_at(d.rate, d.per, k.tokens, k.stamp, p_now) - x.n,
                   greatest(p_now, coalesce(k.stamp, p_now))
              FROM defs d CROSS JOIN (SELECT sum(n) AS n FROM started) x
              LEFT JOIN tok k ON k.name = p_queue
             WHERE d.name = '' AND d.rate IS NOT NULL AND x.n > 0
            ON CONFLICT (bucket) DO UPDATE SET tokens = excluded.tokens, stamp = excluded.stamp)
        SELECT c.j, NULL::text FROM claimed c;
    END IF;
END
$$;
