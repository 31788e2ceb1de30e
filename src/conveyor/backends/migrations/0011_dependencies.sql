-- conveyor PostgreSQL schema, version 11: jobs that wait for others (using(after=...),
-- app.chain; see docs/workflows.md). Runs inside one transaction with search_path set to the
-- namespace's schema.

-- dependents: some job waits for this one (set at the dependent's enqueue, under the
-- parent's row lock). waiting_on: on a job enqueued with after=, how many of its
-- dependencies have not completed yet (NULL on every other job). The triggers below fire
-- only where their WHEN clause, checked in C, holds: jobs outside workflows never call them.
ALTER TABLE jobs ADD COLUMN dependents boolean NOT NULL DEFAULT false;
ALTER TABLE jobs ADD COLUMN waiting_on integer;

CREATE TABLE deps (
    parent text COLLATE "C" NOT NULL,
    child text COLLATE "C" NOT NULL,
    position integer NOT NULL,
    PRIMARY KEY (parent, child)
);
CREATE INDEX deps_child ON deps (child, position);
-- Parents whose children are still to be cancelled: a cascade deeper than a trigger may
-- recurse goes on from here (recover() runs cascade_dependents()).
CREATE TABLE deps_todo (
    parent text COLLATE "C" PRIMARY KEY,
    note text NOT NULL
);

-- A parent completed: each waiting child counts one dependency less, and the one whose count
-- reaches 0 becomes pending (scheduled if its run_at is still ahead). Two workers completing a
-- child's last two dependencies at once meet at the child's row lock: the second UPDATE
-- re-reads the row the first committed, so each edge counts once and the child is released
-- once. Idle workers are woken on the queue's channel, as an enqueue wakes them.
CREATE FUNCTION release_dependents(parent_id text, at double precision, channel text) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    released record;
BEGIN
    FOR released IN
        UPDATE jobs c SET waiting_on = c.waiting_on - 1,
            state = CASE WHEN c.waiting_on > 1 THEN 'waiting'
                WHEN c.run_at > at THEN 'scheduled' ELSE 'pending' END
        FROM deps d
        WHERE d.parent = parent_id AND c.id = d.child AND c.state = 'waiting'
        RETURNING c.queue, c.state
    LOOP
        IF released.state = 'pending' THEN
            PERFORM pg_notify(channel, released.queue);
        END IF;
    END LOOP;
END
$$;

-- Cancel the waiting children of ``parent`` with ``note``; their own children follow through
-- the trigger below, up to a depth, past which they wait in deps_todo.
CREATE FUNCTION cancel_dependents(parent_id text, note text, at double precision) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    changed integer;
BEGIN
    UPDATE jobs c SET state = 'cancelled', finished_at = at, last_error = note
    FROM deps d WHERE d.parent = parent_id AND c.id = d.child AND c.state = 'waiting';
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;

-- Jobs that ended, per statement: one trigger per UPDATE statement, reading the transition
-- tables the count triggers (0002) already make, so a claim or an acknowledgement of a batch
-- of jobs without dependents pays one look at its own rows for the flag (a row trigger would
-- make PostgreSQL keep every updated row's old version for it: 4% of a claim-and-complete
-- cycle when measured). A completed parent releases its children; one that ended dead or
-- cancelled cancels them, naming it: each level is one trigger deeper, and past 32 the rest
-- of the graph is left in deps_todo for cascade_dependents() (bounded work per statement).
CREATE FUNCTION dependents_moved() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    ended record;
    note text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE dependents) THEN
        RETURN NULL;
    END IF;
    FOR ended IN
        SELECT n.id, n.state, n.finished_at FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.dependents AND n.state IN ('completed', 'dead', 'cancelled') AND o.state <> n.state
            AND NOT (n.state <> 'completed' AND o.state IN ('dead', 'cancelled'))
        ORDER BY n.id
    LOOP
        IF ended.state = 'completed' THEN
            PERFORM release_dependents(ended.id, ended.finished_at, 'conveyor_' || TG_TABLE_SCHEMA);
        ELSE
            note := 'dependency ' || ended.id || ' ended ' || ended.state;
            IF pg_trigger_depth() > 32 THEN
                INSERT INTO deps_todo (parent, note) VALUES (ended.id, note) ON CONFLICT (parent) DO NOTHING;
            ELSE
                PERFORM cancel_dependents(ended.id, note, coalesce(ended.finished_at, extract(epoch FROM clock_timestamp())));
            END IF;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_dependents_moved AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dependents_moved();

-- A parent deleted before it completed: its children can never be released.
CREATE FUNCTION fail_dependents() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM cancel_dependents(OLD.id, 'dependency ' || OLD.id || ' ended deleted', extract(epoch FROM clock_timestamp()));
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_deps_deleted AFTER DELETE ON jobs FOR EACH ROW
    WHEN (OLD.dependents AND OLD.state NOT IN ('completed', 'dead', 'cancelled'))
    EXECUTE FUNCTION fail_dependents();

-- Edges of jobs that are gone: a parent that ended, a dependent.
CREATE FUNCTION forget_edges() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF OLD.waiting_on IS NOT NULL THEN
        DELETE FROM deps WHERE child = OLD.id;
    END IF;
    IF OLD.dependents AND OLD.state IN ('completed', 'dead', 'cancelled') THEN
        DELETE FROM deps WHERE parent = OLD.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_edges_deleted AFTER DELETE ON jobs FOR EACH ROW
    WHEN (OLD.dependents OR OLD.waiting_on IS NOT NULL)
    EXECUTE FUNCTION forget_edges();

-- Housekeeping: the parents left in deps_todo, at most ``budget`` of them; returns how many
-- jobs were cancelled.
CREATE FUNCTION cascade_dependents(budget integer, at double precision) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    todo record;
    total integer := 0;
BEGIN
    FOR todo IN
        DELETE FROM deps_todo WHERE parent IN (SELECT parent FROM deps_todo LIMIT budget
            FOR UPDATE SKIP LOCKED) RETURNING parent, note
    LOOP
        total := total + cancel_dependents(todo.parent, todo.note, at);
    END LOOP;
    RETURN total;
END
$$;
