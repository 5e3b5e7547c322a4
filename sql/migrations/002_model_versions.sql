-- Schema version 2: model versions, and statistics per model version.
--
-- - model_versions gets a kind ('trained', 'fine-tuned', 'shipped') and an optional name;
--   a parent that is deleted leaves its children without a parent (ON DELETE SET NULL).
-- - predictions.model_version_id (in the schema since version 1, unused so far) is
--   written by the app; deleting a model version leaves its predictions, with NULL.
-- - The running totals (prediction_counts, prediction_counts_hourly) are kept per model
--   version: a column model_version_id, 0 for predictions without one (identity ids
--   start at 1).  The views of version 1 still give the totals over all versions; the
--   functions *_of(version_id) give them for one version (NULL: all versions).
--
-- Idempotent like init.sql: running init.sql and then this file again changes nothing.
-- (init.sql alone on a version-2 database would put back the version-1 trigger
-- functions; the app never does that, it runs init.sql only on an empty database.)

-- ---- model_versions -------------------------------------------------------------------
ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'trained';
ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS name text;
ALTER TABLE model_versions
    DROP CONSTRAINT IF EXISTS model_versions_kind_check,
    ADD CONSTRAINT model_versions_kind_check CHECK (kind IN ('trained', 'fine-tuned', 'shipped')),
    DROP CONSTRAINT IF EXISTS model_versions_name_check,
    ADD CONSTRAINT model_versions_name_check CHECK (char_length(name) BETWEEN 1 AND 200),
    DROP CONSTRAINT IF EXISTS model_versions_arch_check,
    ADD CONSTRAINT model_versions_arch_check CHECK (char_length(arch) BETWEEN 1 AND 200),
    DROP CONSTRAINT IF EXISTS model_versions_metrics_check,
    ADD CONSTRAINT model_versions_metrics_check CHECK (jsonb_typeof(metrics) = 'object'),
    DROP CONSTRAINT IF EXISTS model_versions_parent_id_fkey,
    ADD CONSTRAINT model_versions_parent_id_fkey FOREIGN KEY (parent_id)
        REFERENCES model_versions (id) ON DELETE SET NULL;

-- ---- predictions.model_version_id -------------------------------------------------------
-- Re-adding the foreign key checks every prediction, so only when it is not yet SET NULL.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'predictions_model_version_id_fkey'
                     AND conrelid = 'predictions'::regclass AND confdeltype = 'n') THEN
        ALTER TABLE predictions
            DROP CONSTRAINT IF EXISTS predictions_model_version_id_fkey,
            ADD CONSTRAINT predictions_model_version_id_fkey FOREIGN KEY (model_version_id)
                REFERENCES model_versions (id) ON DELETE SET NULL;
    END IF;
END
$do$;

-- History and learning data of one version (recent(model_version_id=...),
-- labelled_samples(model_version_id=...)); also serves ON DELETE SET NULL.
CREATE INDEX IF NOT EXISTS predictions_model_version_idx
    ON predictions (model_version_id, created_at, id);

-- ---- running totals per model version -----------------------------------------------------
-- model_version_id 0: predictions without a model version.  Filled by the rebuild below.
ALTER TABLE prediction_counts ADD COLUMN IF NOT EXISTS model_version_id bigint NOT NULL DEFAULT 0;
ALTER TABLE prediction_counts
    DROP CONSTRAINT IF EXISTS prediction_counts_pkey,
    ADD CONSTRAINT prediction_counts_pkey PRIMARY KEY (model_version_id, predicted_digit, true_label);
ALTER TABLE prediction_counts_hourly
    ADD COLUMN IF NOT EXISTS model_version_id bigint NOT NULL DEFAULT 0;
ALTER TABLE prediction_counts_hourly
    DROP CONSTRAINT IF EXISTS prediction_counts_hourly_pkey,
    ADD CONSTRAINT prediction_counts_hourly_pkey PRIMARY KEY (model_version_id, hour);

-- The trigger functions, as in init.sql with the model version added to every key.
-- INSERT: add the new rows.
CREATE OR REPLACE FUNCTION predictions_counts_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    WITH delta AS (
        SELECT coalesce(model_version_id, 0) AS version, predicted_digit,
               coalesce(true_label, -1) AS label, confidence, 1 AS s FROM new_rows
    )
    INSERT INTO prediction_counts AS c (model_version_id, predicted_digit, true_label, n,
                                        confidence_sum)
    SELECT version, predicted_digit, label, sum(s), sum(s * confidence::numeric)
    FROM delta
    GROUP BY 1, 2, 3
    HAVING sum(s) <> 0 OR sum(s * confidence::numeric) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (model_version_id, predicted_digit, true_label) DO UPDATE
        SET n = c.n + EXCLUDED.n, confidence_sum = c.confidence_sum + EXCLUDED.confidence_sum;

    WITH delta AS (
        SELECT coalesce(model_version_id, 0) AS version, predicted_digit,
               coalesce(true_label, -1) AS label,
               date_trunc('hour', created_at, 'UTC') AS hour, 1 AS s FROM new_rows
    ), per_hour AS (
        SELECT version, hour, sum(s) AS predictions,
               coalesce(sum(s) FILTER (WHERE label >= 0), 0) AS labelled,
               coalesce(sum(s) FILTER (WHERE label = predicted_digit), 0) AS correct
        FROM delta
        GROUP BY version, hour
    )
    INSERT INTO prediction_counts_hourly AS h (model_version_id, hour, predictions, labelled,
                                               correct)
    SELECT version, hour, predictions, labelled, correct
    FROM per_hour
    WHERE predictions <> 0 OR labelled <> 0 OR correct <> 0
    ORDER BY version, hour
    ON CONFLICT (model_version_id, hour) DO UPDATE
        SET predictions = h.predictions + EXCLUDED.predictions,
            labelled = h.labelled + EXCLUDED.labelled,
            correct = h.correct + EXCLUDED.correct;
    RETURN NULL;
END
$fn$;

-- UPDATE: add the new versions, remove the old (nets out when nothing counted changed).
CREATE OR REPLACE FUNCTION predictions_counts_after_update() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    WITH delta AS (
        SELECT coalesce(model_version_id, 0) AS version, predicted_digit,
               coalesce(true_label, -1) AS label, confidence, 1 AS s FROM new_rows
        UNION ALL
        SELECT coalesce(model_version_id, 0) AS version, predicted_digit,
               coalesce(true_label, -1) AS label, confidence, -1 AS s FROM old_rows
    )
    INSERT INTO prediction_counts AS c (model_version_id, predicted_digit, true_label, n,
                                        confidence_sum)
    SELECT version, predicted_digit, label, sum(s), sum(s * confidence::numeric)
    FROM delta
    GROUP BY 1, 2, 3
    HAVING sum(s) <> 0 OR sum(s * confidence::numeric) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (model_version_id, predicted_digit, true_label) DO UPDATE
        SET n = c.n + EXCLUDED.n, confidence_sum = c.confidence_sum + EXCLUDED.confidence_sum;

    WITH delta AS (
        SELECT coalesce(model_version_id, 0) AS version, predicted_digit,
               coalesce(true_label, -1) AS label,
               date_trunc('hour', created_at, 'UTC') AS hour, 1 AS s FROM new_rows
        UNION ALL
        SELECT coalesce(model_version_id, 0) AS version, predicted_digit,
               coalesce(true_label, -1) AS label,
               date_trunc('hour', created_at, 'UTC') AS hour, -1 AS s FROM old_rows
    ), per_hour AS (
        SELECT version, hour, sum(s) AS predictions,
               coalesce(sum(s) FILTER (WHERE label >= 0), 0) AS labelled,
               coalesce(sum(s) FILTER (WHERE label = predicted_digit), 0) AS correct
        FROM delta
        GROUP BY version, hour
    )
    INSERT INTO prediction_counts_hourly AS h (model_version_id, hour, predictions, labelled,
                                               correct)
    SELECT version, hour, predictions, labelled, correct
    FROM per_hour
    WHERE predictions <> 0 OR labelled <> 0 OR correct <> 0
    ORDER BY version, hour
    ON CONFLICT (model_version_id, hour) DO UPDATE
        SET predictions = h.predictions + EXCLUDED.predictions,
            labelled = h.labelled + EXCLUDED.labelled,
            correct = h.correct + EXCLUDED.correct;
    RETURN NULL;
END
$fn$;

-- DELETE: remove the old rows.
CREATE OR REPLACE FUNCTION predictions_counts_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    WITH delta AS (
        SELECT coalesce(model_version_id, 0) AS version, predicted_digit,
               coalesce(true_label, -1) AS label, confidence, -1 AS s FROM old_rows
    )
    INSERT INTO prediction_counts AS c (model_version_id, predicted_digit, true_label, n,
                                        confidence_sum)
    SELECT version, predicted_digit, label, sum(s), sum(s * confidence::numeric)
    FROM delta
    GROUP BY 1, 2, 3
    HAVING sum(s) <> 0 OR sum(s * confidence::numeric) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (model_version_id, predicted_digit, true_label) DO UPDATE
        SET n = c.n + EXCLUDED.n, confidence_sum = c.confidence_sum + EXCLUDED.confidence_sum;

    WITH delta AS (
        SELECT coalesce(model_version_id, 0) AS version, predicted_digit,
               coalesce(true_label, -1) AS label,
               date_trunc('hour', created_at, 'UTC') AS hour, -1 AS s FROM old_rows
    ), per_hour AS (
        SELECT version, hour, sum(s) AS predictions,
               coalesce(sum(s) FILTER (WHERE label >= 0), 0) AS labelled,
               coalesce(sum(s) FILTER (WHERE label = predicted_digit), 0) AS correct
        FROM delta
        GROUP BY version, hour
    )
    INSERT INTO prediction_counts_hourly AS h (model_version_id, hour, predictions, labelled,
                                               correct)
    SELECT version, hour, predictions, labelled, correct
    FROM per_hour
    WHERE predictions <> 0 OR labelled <> 0 OR correct <> 0
    ORDER BY version, hour
    ON CONFLICT (model_version_id, hour) DO UPDATE
        SET predictions = h.predictions + EXCLUDED.predictions,
            labelled = h.labelled + EXCLUDED.labelled,
            correct = h.correct + EXCLUDED.correct;
    RETURN NULL;
END
$fn$;
-- (TRUNCATE and the triggers themselves are unchanged from init.sql.)

-- Recompute the totals from the predictions (a check, or a repair after manual surgery).
CREATE OR REPLACE FUNCTION rebuild_prediction_counts() RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    LOCK TABLE predictions IN SHARE MODE;
    DELETE FROM prediction_counts;
    DELETE FROM prediction_counts_hourly;
    INSERT INTO prediction_counts (model_version_id, predicted_digit, true_label, n,
                                   confidence_sum)
    SELECT coalesce(model_version_id, 0), predicted_digit, coalesce(true_label, -1), count(*),
           sum(confidence::numeric)
    FROM predictions GROUP BY 1, 2, 3;
    INSERT INTO prediction_counts_hourly (model_version_id, hour, predictions, labelled, correct)
    SELECT coalesce(model_version_id, 0), date_trunc('hour', created_at, 'UTC'), count(*),
           count(true_label), count(*) FILTER (WHERE true_label = predicted_digit)
    FROM predictions GROUP BY 1, 2;
END
$fn$;

-- ---------------------------------------------------------------------------------------
-- The statistics of one model version: version_id NULL means all versions.  Same columns
-- and meaning as the views of init.sql (see there), which now read these with NULL.
-- LANGUAGE sql and STABLE, so the planner inlines them: a version is an index range of the
-- running totals (its ~100 rows), all versions a scan of them.

CREATE OR REPLACE FUNCTION prediction_accuracy_of(version_id bigint)
RETURNS TABLE (total bigint, labelled bigint, correct bigint, accuracy double precision)
LANGUAGE sql STABLE AS $fn$
SELECT coalesce(sum(c.n), 0)::bigint,
       coalesce(sum(c.n) FILTER (WHERE c.true_label >= 0), 0)::bigint,
       coalesce(sum(c.n) FILTER (WHERE c.true_label = c.predicted_digit), 0)::bigint,
       coalesce(sum(c.n) FILTER (WHERE c.true_label = c.predicted_digit), 0)::double precision
           / NULLIF(sum(c.n) FILTER (WHERE c.true_label >= 0), 0)
FROM prediction_counts c
WHERE $1 IS NULL OR c.model_version_id = $1
$fn$;

CREATE OR REPLACE FUNCTION digit_statistics_of(version_id bigint)
RETURNS TABLE (digit smallint, predictions bigint, labelled bigint, correct bigint,
               actual bigint, accuracy double precision, mean_confidence double precision,
               "precision" double precision, recall double precision)
LANGUAGE sql STABLE AS $fn$
WITH counts AS (
    SELECT c.predicted_digit, c.true_label, c.n, c.confidence_sum
    FROM prediction_counts c
    WHERE $1 IS NULL OR c.model_version_id = $1
), by_prediction AS (
    SELECT predicted_digit                                        AS digit,
           sum(n)                                                 AS predictions,
           sum(n) FILTER (WHERE true_label >= 0)                  AS labelled,
           sum(n) FILTER (WHERE true_label = predicted_digit)     AS correct,
           sum(confidence_sum) / NULLIF(sum(n), 0)                AS mean_confidence
    FROM counts
    GROUP BY predicted_digit
), by_label AS (
    SELECT true_label AS digit, sum(n) AS actual
    FROM counts
    WHERE true_label >= 0
    GROUP BY true_label
)
SELECT d.digit::smallint,
       coalesce(p.predictions, 0)::bigint,
       coalesce(p.labelled, 0)::bigint,
       coalesce(p.correct, 0)::bigint,
       coalesce(l.actual, 0)::bigint,
       coalesce(p.correct, 0)::double precision / NULLIF(p.labelled, 0),
       p.mean_confidence::double precision,
       coalesce(p.correct, 0)::double precision / NULLIF(p.labelled, 0),
       coalesce(p.correct, 0)::double precision / NULLIF(l.actual, 0)
FROM generate_series(0, 9) AS d(digit)
LEFT JOIN by_prediction p ON p.digit = d.digit
LEFT JOIN by_label l ON l.digit = d.digit
ORDER BY d.digit
$fn$;

CREATE OR REPLACE FUNCTION confusion_matrix_of(version_id bigint)
RETURNS TABLE (true_label smallint, predicted_digit smallint, n bigint)
LANGUAGE sql STABLE AS $fn$
SELECT t.d::smallint, p.d::smallint, coalesce(sum(c.n), 0)::bigint
FROM generate_series(0, 9) AS t(d)
CROSS JOIN generate_series(0, 9) AS p(d)
LEFT JOIN prediction_counts c
       ON c.true_label = t.d AND c.predicted_digit = p.d
      AND ($1 IS NULL OR c.model_version_id = $1)
GROUP BY t.d, p.d
ORDER BY t.d, p.d
$fn$;

CREATE OR REPLACE FUNCTION accuracy_per_day_of(version_id bigint)
RETURNS TABLE (day date, predictions bigint, labelled bigint, correct bigint,
               accuracy double precision)
LANGUAGE sql STABLE AS $fn$
SELECT h.hour::date,
       sum(h.predictions)::bigint,
       sum(h.labelled)::bigint,
       sum(h.correct)::bigint,
       sum(h.correct)::double precision / NULLIF(sum(h.labelled), 0)
FROM prediction_counts_hourly h
WHERE $1 IS NULL OR h.model_version_id = $1
GROUP BY 1
HAVING sum(h.predictions) > 0
ORDER BY 1
$fn$;

-- The views of version 1, same columns, now one definition with the functions above.
CREATE OR REPLACE VIEW prediction_accuracy AS SELECT * FROM prediction_accuracy_of(NULL);
CREATE OR REPLACE VIEW digit_statistics AS SELECT * FROM digit_statistics_of(NULL);
CREATE OR REPLACE VIEW confusion_matrix AS SELECT * FROM confusion_matrix_of(NULL);
CREATE OR REPLACE VIEW accuracy_per_day AS SELECT * FROM accuracy_per_day_of(NULL);

-- Per model version: predictions, labelled, correct (what model_versions() shows).
CREATE OR REPLACE VIEW model_version_accuracy AS
SELECT v.id                                                              AS model_version_id,
       coalesce(sum(c.n), 0)::bigint                                     AS predictions,
       coalesce(sum(c.n) FILTER (WHERE c.true_label >= 0), 0)::bigint    AS labelled,
       coalesce(sum(c.n) FILTER (WHERE c.true_label = c.predicted_digit), 0)::bigint AS correct,
       coalesce(sum(c.n) FILTER (WHERE c.true_label = c.predicted_digit), 0)::double precision
           / NULLIF(sum(c.n) FILTER (WHERE c.true_label >= 0), 0)        AS accuracy
FROM model_versions v
LEFT JOIN prediction_counts c ON c.model_version_id = v.id
GROUP BY v.id;

-- The totals were per (digit, label); now per (version, digit, label): recount.
SELECT rebuild_prediction_counts();
