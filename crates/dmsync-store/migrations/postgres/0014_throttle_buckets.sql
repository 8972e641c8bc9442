-- Throttling's buckets (issue 19), shared by every replica on the database so that "N per
-- window" holds across them. SQLite keeps its buckets in the server's memory: one process owns
-- that database, so it has no table for them.
CREATE TABLE throttle_buckets (
    bucket_key   TEXT COLLATE "C" PRIMARY KEY,
    tokens_left  BIGINT NOT NULL,
    window_start BIGINT NOT NULL -- ticks on the Clock
);

-- Takes one token from every named bucket or from none, in one round trip: the rows are
-- locked in key order (so two requests sharing buckets never wait on each other in a cycle),
-- windows that ended start again full, and the answer is 0 when the tokens were taken or else
-- the ticks until every empty bucket starts its next window.
CREATE FUNCTION dmsync_take_throttle_tokens(keys TEXT[], capacities BIGINT[], window_ticks BIGINT, now_ticks BIGINT)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    wait_ticks BIGINT;
BEGIN
    INSERT INTO throttle_buckets (bucket_key, tokens_left, window_start)
    SELECT k, c, now_ticks FROM unnest(keys, capacities) AS u(k, c) ORDER BY k
    ON CONFLICT (bucket_key) DO NOTHING;
    PERFORM 1 FROM throttle_buckets WHERE bucket_key = ANY(keys) ORDER BY bucket_key FOR UPDATE;
    UPDATE throttle_buckets b SET tokens_left = u.c, window_start = now_ticks
    FROM unnest(keys, capacities) AS u(k, c)
    WHERE b.bucket_key = u.k AND now_ticks >= b.window_start + window_ticks;
    -- A limit lowered at run time applies to the window under way.
    UPDATE throttle_buckets b SET tokens_left = u.c
    FROM unnest(keys, capacities) AS u(k, c)
    WHERE b.bucket_key = u.k AND b.tokens_left > u.c;
    SELECT max(window_start + window_ticks - now_ticks) INTO wait_ticks
    FROM throttle_buckets WHERE bucket_key = ANY(keys) AND tokens_left < 1;
    IF wait_ticks IS NOT NULL THEN
        -- A request that read the Clock just before another started the window waits no
        -- longer than a window.
        RETURN least(greatest(wait_ticks, 1), window_ticks);
    END IF;
    UPDATE throttle_buckets SET tokens_left = tokens_left - 1 WHERE bucket_key = ANY(keys);
    RETURN 0;
END
$$;
