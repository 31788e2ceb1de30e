-- conveyor PostgreSQL schema: batches (conveyor.batch): many jobs followed as one, with
-- callbacks enqueued exactly once.
-- Runs inside one transaction with search_path set to the namespace's schema.

-- The batch a job belongs to; NULL (no rewrite, no index entry) for every other job.
ALTER TABLE jobs ADD COLUMN batch_id text COLLATE "C";
-- A batch's jobs by id: its pages (keyset), whatever its size.
CREATE INDEX jobs_batch ON jobs (batch_id, id) WHERE batch_id IS NOT NULL;

-- Per batch: the jobs it counts and how many of them ended in each final state; cb_*: that
-- callback exists and has not fired; due: one of them is due now (set by the same UPDATE that
-- moves the counters); at: when the last move happened (a callback due then runs from then).
CREATE TABLE batches (
    id text COLLATE "C" PRIMARY KEY,
    parent text COLLATE "C",
    total bigint NOT NULL,
    completed bigint NOT NULL DEFAULT 0,
    dead bigint NOT NULL DEFAULT 0,
    cancelled bigint NOT NULL DEFAULT 0,
    created_at double precision NOT NULL,
    cb_success boolean NOT NULL DEFAULT false,
    cb_complete boolean NOT NULL DEFAULT false,
    cb_death boolean NOT NULL DEFAULT false,
    due boolean NOT NULL DEFAULT false,
    at double precision
);
-- Each callback's job, built and signed by the app, kept here until it is due; fired says
-- when it was inserted into jobs (never twice: it is marked in the step that inserts it).
CREATE TABLE batch_callbacks (
    batch_id text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    job_id text COLLATE "C" NOT NULL,
    queue text COLLATE "C" NOT NULL,
    payload bytea NOT NULL,
    priority integer NOT NULL,
    max_attempts integer NOT NULL,
    timeout double precision,
    fired double precision,
    PRIMARY KEY (batch_id, kind)
);

-- Batch jobs moved into or out of an end: their batches' counters move, and due says, from
-- the same values, whether a callback not fired yet is due now. Once per statement (an
-- acknowledgement of a hundred jobs of one batch moves its row once), over the rows the
-- statement changed, which PostgreSQL already keeps for the count triggers (0002): a
-- statement that changed no batch job reads them and stops. The UPDATE locks each batch's
-- row until the transaction ends (in id order: two statements never wait on each other in a
-- cycle), so of two transactions ending a batch's last jobs the second waits for the first,
-- then counts on from its result: exactly one of them finds a callback due.
CREATE FUNCTION batch_moved_rows() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM 1 FROM new_rows WHERE batch_id IS NOT NULL LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    WITH moves AS (
        SELECT batch_id, sum(c) AS c, sum(d) AS d, sum(x) AS x, max(t) AS t FROM (
            SELECT batch_id, (state = 'completed')::int AS c, (state = 'dead')::int AS d,
                   (state = 'cancelled')::int AS x, finished_at AS t
            FROM new_rows WHERE batch_id IS NOT NULL
            UNION ALL
            SELECT batch_id, -(state = 'completed')::int, -(state = 'dead')::int,
                   -(state = 'cancelled')::int, NULL
            FROM old_rows WHERE batch_id IS NOT NULL
        ) AS m
        GROUP BY batch_id
        HAVING sum(c) <> 0 OR sum(d) <> 0 OR sum(x) <> 0
    ), locked AS (
        SELECT b.id FROM batches b JOIN moves m ON m.batch_id = b.id ORDER BY b.id FOR UPDATE OF b
    )
    UPDATE batches b SET completed = completed + m.c, dead = dead + m.d, cancelled = cancelled + m.x,
        at = coalesce(m.t, extract(epoch FROM clock_timestamp())),
        due = (cb_death AND dead + m.d > 0)
           OR (cb_complete AND completed + dead + cancelled + m.c + m.d + m.x >= total)
           OR (cb_success AND completed + m.c >= total)
    FROM moves m, locked l WHERE b.id = m.batch_id AND l.id = b.id;
    RETURN NULL;
END $$;

-- A job deleted before it ended counts as cancelled: its batch must still finish (rare: an
-- admin's delete; a row trigger whose WHEN, checked in C, passes over every other job).
CREATE FUNCTION batch_deleted() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE batches SET cancelled = cancelled + 1, at = extract(epoch FROM clock_timestamp()),
        due = (cb_complete AND completed + dead + cancelled + 1 >= total)
    WHERE id = OLD.batch_id;
    RETURN NULL;
END $$;

-- A callback became due: each due one's job is inserted (a nested batch's into its parent,
-- whose count its on_success and on_death join now) and marked fired, and its idle workers
-- are woken. Then due goes back to false, which does not call this again (WHEN NEW.due).
CREATE FUNCTION batch_due() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    joined bigint;
    woken text[];
BEGIN
    WITH fired AS (
        UPDATE batch_callbacks c SET fired = NEW.at
        WHERE c.batch_id = NEW.id AND c.fired IS NULL
          AND ((c.kind = 'death' AND NEW.dead > 0)
               OR (c.kind = 'complete' AND NEW.completed + NEW.dead + NEW.cancelled >= NEW.total)
               OR (c.kind = 'success' AND NEW.completed >= NEW.total))
        RETURNING c.*
    ), inserted AS (
        INSERT INTO jobs (id, queue, payload, priority, state, run_at, max_attempts, timeout,
                          created_at, batch_id)
        SELECT job_id, queue, payload, priority, 'pending', NEW.at, max_attempts, timeout, NEW.at,
               NEW.parent
        FROM fired
        ON CONFLICT (id) DO NOTHING
    )
    SELECT count(*) FILTER (WHERE kind <> 'complete'), array_agg(DISTINCT split_part(queue, chr(31), 1))
    INTO joined, woken FROM fired;
    PERFORM pg_notify('conveyor_' || current_schema(), q) FROM unnest(woken) AS q;
    IF joined > 0 AND NEW.parent IS NOT NULL THEN
        UPDATE batches SET total = total + joined WHERE id = NEW.parent;
    END IF;
    UPDATE batches SET due = false,
        cb_death = cb_death AND NOT dead > 0,
        cb_complete = cb_complete AND NOT completed + dead + cancelled >= total,
        cb_success = cb_success AND NOT completed >= total
    WHERE id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_batch_moved AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION batch_moved_rows();
CREATE TRIGGER jobs_batch_deleted AFTER DELETE ON jobs FOR EACH ROW
    WHEN (OLD.batch_id IS NOT NULL AND OLD.state NOT IN ('completed', 'dead', 'cancelled'))
    EXECUTE FUNCTION batch_deleted();
CREATE TRIGGER batches_due AFTER UPDATE ON batches FOR EACH ROW
    WHEN (NEW.due)
    EXECUTE FUNCTION batch_due();
