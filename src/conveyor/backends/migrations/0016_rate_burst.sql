-- conveyor PostgreSQL schema (declared as version 17 in session 15; numbered after whatever
-- precedes it at merge): a rate limit's burst is never less than one second's allowance
-- (conveyor.limits.Limit.burst). Runs inside one transaction with search_path set to the
-- namespace's schema.
--
-- The burst was a tenth of a period's allowance: 0.1 s for a per-second rate, about the gap
-- between two claims of one idle worker (its 50 ms poll plus the claim). Tokens past the
-- burst are lost, so every longer gap (a loaded machine, a worker whose threads are busy)
-- cost the rate starts while jobs waited. Same signature: claim_limited() calls it as before.
CREATE OR REPLACE FUNCTION limit_tokens_at(rate int4, per float8, tokens float8, stamp float8, now float8)
RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN rate IS NULL OR per IS NULL OR per = 0 THEN NULL
        WHEN stamp IS NULL THEN greatest(1, ceil(rate / 10.0), ceil(rate / per))::float8
        ELSE least(greatest(1, ceil(rate / 10.0), ceil(rate / per))::float8,
                   tokens + greatest(0.0, now - stamp) * rate / per)
    END
$$;
