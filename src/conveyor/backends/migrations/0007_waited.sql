-- conveyor PostgreSQL schema, version 7: job.result() and job.aresult() are woken by the
-- store when the job ends, instead of reading it again and again.
-- Runs inside one transaction with search_path set to the namespace's schema.

-- Set by a waiter (LISTENing first) on a job that has not ended yet.
ALTER TABLE jobs ADD COLUMN waited boolean NOT NULL DEFAULT false;

-- The job's id on the channel conveyor_<schema>_ended when a waited-for job ends or is
-- deleted. The WHEN clause is checked in C for each changed row: jobs nobody waits for never
-- call the function, and PostgreSQL takes its commit-time NOTIFY lock only for those that
-- notify.
CREATE FUNCTION notify_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('conveyor_' || TG_TABLE_SCHEMA || '_ended', OLD.id);
    ELSE
        PERFORM pg_notify('conveyor_' || TG_TABLE_SCHEMA || '_ended', NEW.id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_ended AFTER UPDATE ON jobs FOR EACH ROW
    WHEN (NEW.waited AND NEW.state IN ('completed', 'dead', 'cancelled'))
    EXECUTE FUNCTION notify_ended();
CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs FOR EACH ROW
    WHEN (OLD.waited)
    EXECUTE FUNCTION notify_ended();
