-- The task's name, written at enqueue from what the app knows (the store never reads a
-- payload), and an index of each task's jobs by state, newest first, for search by task.
-- Pending and active jobs are not in it: a claim (pending -> active) writes no entry into
-- it; an acknowledgement writes one. Jobs stored before this migration have no task (NULL,
-- so not in the index either, and building it reads the table once without writing):
-- a search by task finds those only through the payload's text ('"t":"name"').
ALTER TABLE jobs ADD COLUMN task text COLLATE "C";
CREATE INDEX jobs_task ON jobs (task, state, id)
    WHERE state IN ('completed', 'scheduled', 'retry', 'dead', 'cancelled') AND task IS NOT NULL;
