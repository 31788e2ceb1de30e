-- conveyor PostgreSQL schema, version 12: finished batches go away result_ttl after they
-- finished (docs/workflows.md). Runs inside one transaction with search_path set to the
-- namespace's schema.

-- Finished batches (every job counted has ended; their callbacks were inserted by the same
-- transaction) by when they finished: at is the last move, the one that finished them.
-- Open batches have no entry, so housekeeping reads only what it deletes, however many
-- batches and jobs are stored. The predicate is spelt as in the pruning query.
CREATE INDEX batches_finished ON batches (at) WHERE total > 0 AND completed + dead + cancelled - total >= 0;
