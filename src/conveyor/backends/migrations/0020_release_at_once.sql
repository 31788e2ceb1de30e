-- conveyor PostgreSQL schema, version 20. Runs inside one transaction with search_path set to
-- the namespace's schema.
--
-- A statement that completes parents releases their waiting children in one UPDATE, each
-- child counting the edges from those parents at once. It was one UPDATE per completed parent
-- (release_dependents(), 0011), each firing the table's three statement triggers, and a child
-- waiting for many parents was rewritten once per parent in the same transaction, every
-- rewrite walking the row versions the earlier ones left: an acknowledgement of 1,000 parents
-- of one child took 0.17 s, 174 µs a job against about 10 for a job without dependents
-- (session 17). The children are locked first, in id order, as every statement that waits for
-- job rows takes them; two acknowledgements completing a child's last two parents at once
-- meet at that lock, and the second counts on from the first's committed row, so the child
-- is released once. Dead and cancelled parents still cancel down the graph one by one, after
-- the releases (a child one of whose parents ended dead stays waiting for it until then,
-- whatever order its parents' ids are in). The children's ids go to the lookups as arrays, by
-- primary key: as "id IN (...)" the planner read them through jobs_state, every waiting job,
-- whenever the last ANALYZE had seen few waiting (41,940 rows for 500 children once another
-- graph's 20,000 jobs waited; tests/postgres/test_plans.py).
CREATE OR REPLACE FUNCTION dependents_moved() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    ended record;
    note text;
    woken text[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE dependents) THEN
        RETURN NULL;
    END IF;
    WITH done AS MATERIALIZED (
        SELECT n.id, n.finished_at FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.dependents AND n.state = 'completed' AND o.state <> 'completed'
    ), edges AS MATERIALIZED (
        SELECT d.child, count(*)::int AS k, max(done.finished_at) AS at
        FROM done JOIN deps d ON d.parent = done.id GROUP BY d.child
    ), locked AS MATERIALIZED (
        SELECT c.id FROM jobs c WHERE c.id = ANY(ARRAY(SELECT child FROM edges)) AND c.state = 'waiting'
        ORDER BY c.id FOR UPDATE OF c
    ), released AS (
        UPDATE jobs c SET waiting_on = c.waiting_on - e.k,
            state = CASE WHEN c.waiting_on > e.k THEN 'waiting'
                WHEN c.run_at > e.at THEN 'scheduled' ELSE 'pending' END
        FROM edges e WHERE c.id = ANY(ARRAY(SELECT id FROM locked)) AND c.id = e.child AND c.state = 'waiting'
        RETURNING c.queue, c.state
    )
    SELECT array_agg(DISTINCT queue) FILTER (WHERE state = 'pending') INTO woken FROM released;
    PERFORM pg_notify('conveyor_' || TG_TABLE_SCHEMA, q) FROM unnest(woken) AS q;
    FOR ended IN
        SELECT n.id, n.state, n.finished_at FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.dependents AND n.state IN ('dead', 'cancelled') AND o.state <> n.state
            AND o.state NOT IN ('dead', 'cancelled')
        ORDER BY n.id
    LOOP
        note := 'dependency ' || ended.id || ' ended ' || ended.state;
        IF pg_trigger_depth() > 32 THEN
            INSERT INTO deps_todo (parent, note) VALUES (ended.id, note) ON CONFLICT (parent) DO NOTHING;
        ELSE
            PERFORM cancel_dependents(ended.id, note, coalesce(ended.finished_at, extract(epoch FROM clock_timestamp())));
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
