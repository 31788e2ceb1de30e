-- conveyor PostgreSQL schema: batches (conveyor.batch): many jobs followed as one, with
-- callbacks enqueued exactly once.
-- Runs inside one transaction with search_path set to the namespace's schema.

-- The batch a job belongs to; NULL (no rewrite, no index entry) for every other job.
ALTER TABLE jobs ADD COLUMN batch_id text COLLATE "C";
-- A batch's jobs by id: its pages (keyset), whatever its size.
CREATE INDEX jobs_batch ON jobs (batch_id, id) WHERE batch_id IS NOT NULL;

-- Per batch: the jobs it counts and how many of them ended in each final state.
CREATE TABLE batches (
    id text COLLATE "C" PRIMARY KEY,
    parent text COLLATE "C",
    total bigint NOT NULL,
    completed bigint NOT NULL DEFAULT 0,
    dead bigint NOT NULL DEFAULT 0,
    cancelled bigint NOT NULL DEFAULT 0,
    created_at double precision NOT NULL
);
-- Each callback's job, built and signed by the app, kept here until it is due; fired says
-- when it was inserted into jobs (never twice: the same statement inserts and marks it).
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

-- Fire the due callbacks of a batch whose counters just moved, at time ``at``: its row is
-- locked by the caller's UPDATE, so of two transactions ending its last jobs the second
-- waits for the first and then sees the callbacks fired. on_death: the first dead job;
-- on_complete: every job counted ended; on_success: every one completed. A nested batch's
-- on_success and on_death join its parent as they fire (its on_complete was counted there
-- from the start).
CREATE FUNCTION batch_decide(b_id text, at double precision) RETURNS void LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    b batches%ROWTYPE;
    joined bigint;
    woken text[];
BEGIN
    SELECT * INTO b FROM batches WHERE id = b_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    WITH due AS (
        UPDATE batch_callbacks c SET fired = at
        WHERE c.batch_id = b_id AND c.fired IS NULL
          AND ((c.kind = 'death' AND b.dead > 0)
               OR (c.kind = 'complete' AND b.completed + b.dead + b.cancelled >= b.total)
               OR (c.kind = 'success' AND b.completed >= b.total))
        RETURNING c.*
    ), inserted AS (
        INSERT INTO jobs (id, queue, payload, priority, state, run_at, max_attempts, timeout,
                          created_at, batch_id)
        SELECT job_id, queue, payload, priority, 'pending', at, max_attempts, timeout, at, b.parent
        FROM due
        ON CONFLICT (id) DO NOTHING
        RETURNING queue
    )
    SELECT count(*) FILTER (WHERE kind <> 'complete'), array_agg(DISTINCT split_part(queue, chr(31), 1))
    INTO joined, woken FROM due;
    -- Idle workers of the callbacks' queues (a limited job's bucket: its queue) wake now.
    PERFORM pg_notify('conveyor_' || current_schema(), q) FROM unnest(woken) AS q;
    IF joined > 0 AND b.parent IS NOT NULL THEN
        UPDATE batches SET total = total + joined WHERE id = b.parent;
    END IF;
END $$;

CREATE FUNCTION batch_moved() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- A job deleted before it ended counts as cancelled: its batch must still finish.
        UPDATE batches SET cancelled = cancelled + 1 WHERE id = OLD.batch_id;
        PERFORM batch_decide(OLD.batch_id, extract(epoch FROM clock_timestamp()));
        RETURN NULL;
    END IF;
    UPDATE batches SET
        completed = completed + (NEW.state = 'completed')::int - (OLD.state = 'completed')::int,
        dead = dead + (NEW.state = 'dead')::int - (OLD.state = 'dead')::int,
        cancelled = cancelled + (NEW.state = 'cancelled')::int - (OLD.state = 'cancelled')::int
    WHERE id = NEW.batch_id;
    PERFORM batch_decide(NEW.batch_id, coalesce(NEW.finished_at, extract(epoch FROM clock_timestamp())));
    RETURN NULL;
END $$;

-- The WHEN clauses are checked in C for each changed row, batch_id first: a job outside
-- batches never calls the function.
CREATE TRIGGER jobs_batch_moved AFTER UPDATE ON jobs FOR EACH ROW
    WHEN (NEW.batch_id IS NOT NULL AND OLD.state IS DISTINCT FROM NEW.state
          AND (OLD.state IN ('completed', 'dead', 'cancelled')
               OR NEW.state IN ('completed', 'dead', 'cancelled')))
    EXECUTE FUNCTION batch_moved();
CREATE TRIGGER jobs_batch_deleted AFTER DELETE ON jobs FOR EACH ROW
    WHEN (OLD.batch_id IS NOT NULL AND OLD.state NOT IN ('completed', 'dead', 'cancelled'))
    EXECUTE FUNCTION batch_moved();
