-- Schema version 4: numbers read digit by digit.
--
-- A number read from one drawing ("2025") is logged as one prediction row per digit,
-- linked by a reading id and the digit's position in the number (0 = leftmost).  A
-- single digit drawn on its own keeps both NULL.
--
-- - predictions.reading_id, predictions.reading_position: both NULL or both set; one row
--   per position of a reading.
-- - The view ``readings``: one row per reading, with the text read, the true text (when
--   every digit has a label) and whether it was read right.
-- - The view ``reading_accuracy``: how many numbers were read, labelled and read right.
--
-- Idempotent like init.sql: running init.sql and the migrations again changes nothing.

ALTER TABLE predictions ADD COLUMN IF NOT EXISTS reading_id uuid;
ALTER TABLE predictions ADD COLUMN IF NOT EXISTS reading_position smallint;
ALTER TABLE predictions
    DROP CONSTRAINT IF EXISTS predictions_reading_check,
    ADD CONSTRAINT predictions_reading_check CHECK (
        (reading_id IS NULL) = (reading_position IS NULL)
        AND (reading_position IS NULL OR reading_position BETWEEN 0 AND 99));

CREATE UNIQUE INDEX IF NOT EXISTS predictions_reading_idx
    ON predictions (reading_id, reading_position) WHERE reading_id IS NOT NULL;

-- (DROP + CREATE: a view whose columns change cannot be replaced.)
DROP VIEW IF EXISTS reading_accuracy;
DROP VIEW IF EXISTS readings;

CREATE VIEW readings AS
SELECT reading_id,
       min(created_at)                                                    AS created_at,
       count(*)::integer                                                  AS digits,
       string_agg(predicted_digit::text, '' ORDER BY reading_position)     AS text,
       CASE WHEN count(true_label) = count(*)
            THEN string_agg(true_label::text, '' ORDER BY reading_position) END AS true_text,
       CASE WHEN count(true_label) = count(*)
            THEN bool_and(true_label = predicted_digit) END               AS correct,
       exp(sum(ln(greatest(confidence::double precision, 1e-300))))       AS confidence,
       min(model_version_id)                                              AS model_version_id
FROM predictions
WHERE reading_id IS NOT NULL
GROUP BY reading_id;

CREATE VIEW reading_accuracy AS
SELECT count(*)::bigint                                   AS total,
       count(correct)::bigint                             AS labelled,
       count(*) FILTER (WHERE correct)::bigint            AS correct,
       (count(*) FILTER (WHERE correct))::double precision
           / NULLIF(count(correct), 0)                    AS accuracy
FROM readings;
