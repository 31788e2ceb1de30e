-- conveyor PostgreSQL schema, version 17. Runs inside one transaction with search_path set to
-- the namespace's schema.
--
-- A plain claim turns the scheduled and retry jobs that came due into pending ones first.
-- That was an UPDATE sent before every claim, and an UPDATE fires the table's three statement
-- triggers (counts, batches, dependencies) even when it changes no row: about 0.15 ms of
-- server time a claim, most claims, since most find nothing due. An idle worker claims four
-- times a second; a busy one that claims ten jobs at a time paid 15 µs a job for it. Now one
-- function looks first, one probe of jobs_due per queue (the start of the queue's range,
-- nothing read when nothing is due, however many wait for later), and runs the same UPDATE
-- only when some queue has a job due. What is promoted, and when, is unchanged: the claim
-- sent after it in the same round trip sees what it promoted.
CREATE FUNCTION promote_due(p_now float8, p_batch int4) RETURNS int4
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    due text[];
    moved int4;
BEGIN
    SELECT array_agg(q.name) INTO due FROM queues q
     WHERE EXISTS (SELECT 1 FROM jobs WHERE queue = q.name AND state IN ('scheduled', 'retry')
                      AND run_at <= p_now);
    IF due IS NULL THEN
        RETURN 0;
    END IF;
    UPDATE jobs SET state = 'pending' WHERE id IN (
        SELECT d.id FROM unnest(due) AS l(name) CROSS JOIN LATERAL (
            SELECT id FROM jobs WHERE queue = l.name AND state IN ('scheduled', 'retry')
               AND run_at <= p_now ORDER BY run_at LIMIT p_batch FOR UPDATE SKIP LOCKED) d);
    GET DIAGNOSTICS moved = ROW_COUNT;
    RETURN moved;
END $$;
