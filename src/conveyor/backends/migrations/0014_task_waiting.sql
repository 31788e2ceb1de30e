-- conveyor PostgreSQL schema, version 14: the index of each task's jobs by state holds the
-- waiting and ended jobs a person searches for (pending, scheduled, retry, dead, cancelled),
-- not the completed ones. Runs inside one transaction with search_path set to the
-- namespace's schema.
--
-- With completed in its predicate every acknowledgement wrote an entry (a drain's cost a
-- job, measured +0.7% and +22% in two runs); with pending instead, the entry is written once
-- at enqueue, and neither a claim (pending -> active) nor an acknowledgement writes one.
-- Completed jobs of a task are found by the bounded search of the completed listing, as
-- active ones always were. (Building it reads the table once.)
DROP INDEX jobs_task;
CREATE INDEX jobs_task ON jobs (task, state, id)
    WHERE state IN ('pending', 'scheduled', 'retry', 'dead', 'cancelled') AND task IS NOT NULL;
