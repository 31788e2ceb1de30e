-- conveyor PostgreSQL schema, version 13: the claim of a limited queue in one statement
-- (conveyor.limits). Runs inside one transaction with search_path set to the namespace's schema.
--
-- Limited claims of a queue take turns under the queue's advisory lock: counting its running
-- jobs, reading its tokens and claiming must be one step. Sent from the worker as three
-- pipelined round-trips, that lock was held across two of them (and across the worker's
-- Python between them, which waits for the GIL behind its task threads), so the four workers
-- of a concurrency=50 drain spent most of their time waiting for each other. Here the whole
-- claim is one call: the lock is held only while the server runs it, and released at the
-- commit of the call's own transaction.

-- Tokens in a rate limit's bucket at ``now`` (NULL: no rate, never short of tokens); ``tokens``
-- and ``stamp`` NULL for a bucket with no row (full). limits.available, in SQL.
CREATE FUNCTION limit_tokens_at(rate int4, per float8, tokens float8, stamp float8, now float8)
RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN rate IS NULL OR per IS NULL OR per = 0 THEN NULL
        WHEN stamp IS NULL THEN greatest(1, ceil(rate / 10.0))::float8
        ELSE least(greatest(1, ceil(rate / 10.0))::float8,
                   tokens + greatest(0.0, now - stamp) * rate / per)
    END
$$;

-- How many more jobs a limit lets start now (2^30: no bound). limits.allowed, in SQL.
CREATE FUNCTION limit_allows(conc int4, rate int4, per float8, active int8, tokens float8, stamp float8,
                             now float8)
RETURNS int8 LANGUAGE sql IMMUTABLE AS $$
    SELECT least(
        CASE WHEN conc IS NULL THEN 1073741824 ELSE greatest(0, conc - active) END,
        -- A hair over the float: 0.05 s at 20/s must make one whole token, not 0.999...
        coalesce(floor(limit_tokens_at(rate, per, tokens, stamp, now) + 1e-9)::int8, 1073741824)
    )
$$;

-- The running jobs of each bucket, for the claim to count under its lock: counts plus
-- count_deltas (every queue's changes since the last fold, read whole: thousands of rows in a
-- busy store) made each claim hold the lock for milliseconds. Only jobs of buckets enter this
-- index (a plain job pays the test of its predicate when it starts), and it holds the running
-- ones only: a claim reads as many entries as the limit allows runs, not the jobs stored.
CREATE INDEX jobs_bucket_active ON jobs (queue) WHERE state = 'active' AND strpos(queue, E'\x1f') > 0;

-- The claim of limited queue ``p_queue`` (Backend.fetch / fetch_ahead on a queue with limits),
-- as limits.rooms and limits.spent describe it: at most ``p_want`` jobs to start, from the
-- queue's own jobs and its buckets', each bucket's running jobs and tokens counted, the whole
-- queue's limit too; at most 8 + 2 * p_want buckets take part, the ``p_turn``-th group of that
-- many in name order when more have room (round robin across keys). Then, for each run named
-- in a_* that this worker still holds, the next job of its bucket, taken ahead (limit_ahead).
-- The queue's limits come from the caller (its copy, read again at most once a second), as
-- arrays: the limit's name ('' for the whole queue), concurrency, rate, period.
-- Returns each job claimed, and for a job taken ahead the run it follows.
CREATE FUNCTION claim_limited(
    p_queue text, p_lock int8, p_worker text, p_until float8, p_now float8, p_want int4, p_turn int8,
    p_names text[], p_conc int4[], p_rate int4[], p_per float8[],
    a_buckets text[], a_ids text[], a_attempts int4[]
) RETURNS TABLE (claimed_job jobs, ahead_of text)
LANGUAGE plpgsql SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    low text := p_queue || E'\x1f';
    high text := p_queue || E'\x20';
    whole int4 := array_position(p_names, '');
    cap int8 := p_want;
    most int8 := 8 + 2 * p_want;
    ready text[];        -- the stored queues (the queue, its buckets) with ready jobs
    names text[] := '{}';  -- stored queues with running jobs, and how many hold a slot
    running int8[] := '{}';
    t_names text[] := '{}';
    t_tokens float8[] := '{}';
    t_stamps float8[] := '{}';
    t int4;
BEGIN
    IF EXISTS (SELECT 1 FROM queues WHERE name = p_queue AND paused) THEN
        RETURN;
    END IF;
    -- Before the lock, what needs none. Due jobs of the queue and its buckets become pending
    -- (buckets are not in the queues table, so the plain claim's promotion does not reach
    -- them): a walk of the due index, one step per stored queue with jobs waiting for a time.
    WITH RECURSIVE later(name, first) AS (
        (SELECT queue, run_at FROM jobs WHERE state IN ('scheduled', 'retry')
            AND queue >= p_queue AND queue < high ORDER BY queue, run_at LIMIT 1)
        UNION ALL
        SELECT n.queue, n.run_at FROM later l CROSS JOIN LATERAL (
            SELECT queue, run_at FROM jobs WHERE state IN ('scheduled', 'retry')
               AND queue > l.name AND queue < high ORDER BY queue, run_at LIMIT 1) n)
    UPDATE jobs SET state = 'pending' WHERE id IN (
        SELECT d.id FROM later l CROSS JOIN LATERAL (
            SELECT id FROM jobs WHERE queue = l.name AND state IN ('scheduled', 'retry')
               AND run_at <= p_now ORDER BY run_at LIMIT 2000 FOR UPDATE SKIP LOCKED) d
         WHERE l.first <= p_now AND (l.name = p_queue OR l.name > low));
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
    PERFORM pg_advisory_xact_lock(p_lock);
    -- Each statement from here reads a snapshot taken after the lock: the claims of the
    -- previous holder, committed before it let go, are counted.
    -- Jobs taken ahead whose run ended (or that ended themselves) hold a slot like any
    -- started job from then on: their rows go, and a job that ran gets the end of its run as
    -- started_at. A few rows per worker at most; none without jobs ahead.
    WITH d AS (
        SELECT a.bucket, a.id, a.claimed,
               CASE WHEN y.started_at = a.claimed AND y.state <> 'pending'
                    THEN coalesce(x.finished_at, p_now) END AS start
          FROM limit_ahead a LEFT JOIN jobs y ON y.id = a.id LEFT JOIN jobs x ON x.id = a.after
         WHERE a.bucket > low AND a.bucket < high
           AND NOT coalesce(y.started_at = a.claimed AND y.state = 'active' AND y.locked_by = a.worker
                            AND x.state = 'active' AND x.locked_by = a.worker AND x.attempts = a.attempt,
                            false)),
    gone AS (DELETE FROM limit_ahead a USING d WHERE a.bucket = d.bucket AND a.id = d.id)
    UPDATE jobs AS j SET started_at = d.start FROM d
     WHERE j.id = d.id AND j.started_at = d.claimed AND d.start IS NOT NULL;
    -- Running jobs per stored queue. A limit of the whole queue counts every running job of
    -- the queue and its buckets (from counts, whose deltas are read whole); otherwise each
    -- bucket with ready jobs counts its own, from jobs_bucket_active.
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
                 WHERE queue = ANY(ready) AND state = 'active' AND strpos(queue, E'\x1f') > 0
                 GROUP BY queue) c;
    END IF;
    -- Jobs taken ahead are active but hold no slot while the run they follow is active.
    IF EXISTS (SELECT 1 FROM limit_ahead WHERE bucket > low AND bucket < high) THEN
        SELECT coalesce(array_agg(c.name), '{}'), coalesce(array_agg(c.n - coalesce(w.n, 0)), '{}')
          INTO names, running
          FROM unnest(names, running) AS c(name, n)
          LEFT JOIN (SELECT a.bucket, count(*) AS n FROM limit_ahead a
                       JOIN jobs y ON y.id = a.id JOIN jobs x ON x.id = a.after
                      WHERE a.bucket > low AND a.bucket < high
                        AND y.started_at = a.claimed AND y.state = 'active' AND y.locked_by = a.worker
                        AND x.state = 'active' AND x.locked_by = a.worker AND x.attempts = a.attempt
                      GROUP BY a.bucket) w ON w.bucket = c.name;
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_rate) r WHERE r IS NOT NULL) THEN
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
    IF cap > 0 THEN
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
              LEFT JOIN tok k ON k.name = r.name),
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
    IF cardinality(a_ids) > 0 THEN
        -- Jobs taken ahead (fetch_ahead): the runs named that the worker still holds at their
        -- attempt, numbered per bucket; as many of each bucket's best waiting jobs; claimed
        -- (started_at: the claim's time until settled) and noted with the run each follows.
        RETURN QUERY
        WITH runs AS MATERIALIZED (
            SELECT r.bucket, r.id, r.attempt, row_number() OVER (PARTITION BY r.bucket ORDER BY r.ord) AS k
              FROM unnest(a_buckets, a_ids, a_attempts) WITH ORDINALITY AS r(bucket, id, attempt, ord)
              JOIN jobs x ON x.id = r.id AND x.state = 'active' AND x.locked_by = p_worker
                         AND x.attempts = r.attempt),
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
            SELECT c.bucket, (c.j).id, p_worker, r.id, r.attempt, p_now FROM claimed c
              JOIN runs r ON r.bucket = c.bucket AND r.k = c.k
            ON CONFLICT (bucket, id) DO UPDATE SET worker = excluded.worker, after = excluded.after,
                attempt = excluded.attempt, claimed = excluded.claimed
            RETURNING a.id, a.after)
        SELECT c.j, n.after FROM claimed c JOIN noted n ON n.id = (c.j).id;
    END IF;
END
$$;
