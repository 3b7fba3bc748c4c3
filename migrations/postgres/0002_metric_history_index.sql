-- ferroflow's own index (MLflow's tables are unchanged): metric history is
-- read per (run, key) in MLflow's order (timestamp, step, value); MLflow's
-- index on (run_uuid, key, step) cannot serve that order, so every read
-- sorted the whole series.
CREATE INDEX IF NOT EXISTS ff_metrics_history ON metrics (run_uuid, key, timestamp, step, value);
