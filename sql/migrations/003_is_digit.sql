-- Schema version 3: whether a drawing looked like a digit at all.
--
-- - predictions.is_digit: the model's verdict when the prediction was made (false: "this
--   doesn't look like a digit", a letter, a scribble, a shape).  NULL for rows made
--   before the app judged it (the rows that exist when this migration runs).
-- - not_a_digit_of(version_id) and the view not_a_digit: of the predictions that were
--   judged, how many were not a digit, and the share (NULL while none was judged); of one
--   model version, or of all with NULL.  A partial index on the judged rows keeps it an
--   index-only count.
--
-- No running total counts is_digit, so nothing needs rebuilding.  Idempotent like the
-- other files: running init.sql and every migration again changes nothing.

ALTER TABLE predictions ADD COLUMN IF NOT EXISTS is_digit boolean;

CREATE INDEX IF NOT EXISTS predictions_is_digit_idx
    ON predictions (model_version_id, is_digit) WHERE is_digit IS NOT NULL;

CREATE OR REPLACE FUNCTION not_a_digit_of(version_id bigint)
RETURNS TABLE (judged bigint, not_digit bigint, share double precision)
LANGUAGE sql STABLE AS $fn$
SELECT count(*)::bigint,
       count(*) FILTER (WHERE NOT p.is_digit)::bigint,
       (count(*) FILTER (WHERE NOT p.is_digit))::double precision / NULLIF(count(*), 0)
FROM predictions p
WHERE p.is_digit IS NOT NULL AND ($1 IS NULL OR p.model_version_id = $1)
$fn$;

CREATE OR REPLACE VIEW not_a_digit AS SELECT * FROM not_a_digit_of(NULL);
