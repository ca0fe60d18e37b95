-- Recomputing scores from history after a model change, a page of contacts per cron step.
CREATE TABLE scoring_recompute (
  workspace     TEXT PRIMARY KEY,
  model_version INTEGER NOT NULL,
  cursor        TEXT NOT NULL DEFAULT '',
  contacts_done INTEGER NOT NULL DEFAULT 0,
  started_at    INTEGER NOT NULL,
  finished_at   INTEGER
);
