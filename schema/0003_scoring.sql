-- Lead scoring: versioned models, the points ledger, scoring signals and lead-status history.

CREATE TABLE scoring_models (
  workspace  TEXT NOT NULL,
  version    INTEGER NOT NULL,
  document   TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (workspace, version)
);

-- Every point a contact holds, with the rule and model version that awarded it. `award_key`
-- makes awards idempotent: the event id for event rules, 'once' for attribute rules, the
-- inactivity period for decay. The score is the sum of the ledger.
CREATE TABLE points (
  workspace     TEXT NOT NULL,
  contact_id    TEXT NOT NULL,
  rule_id       TEXT NOT NULL,
  award_key     TEXT NOT NULL,
  event_id      TEXT,
  model_version INTEGER NOT NULL,
  dimension     TEXT NOT NULL,
  delta         INTEGER NOT NULL,
  day           TEXT NOT NULL,
  awarded_at    INTEGER NOT NULL,
  PRIMARY KEY (workspace, contact_id, rule_id, award_key)
);
CREATE INDEX points_rule_day ON points (workspace, contact_id, rule_id, day);
CREATE INDEX points_contact_time ON points (workspace, contact_id, awarded_at);

-- Events that satisfy a requirement of a composite rule (e.g. sales_ready.0 = a case-page view),
-- recorded at ingest so the composite is a count, not a re-evaluation of history.
CREATE TABLE signals (
  workspace  TEXT NOT NULL,
  contact_id TEXT NOT NULL,
  signal     TEXT NOT NULL,
  event_id   TEXT NOT NULL,
  at         INTEGER NOT NULL,
  PRIMARY KEY (workspace, contact_id, signal, event_id)
);
CREATE INDEX signals_time ON signals (workspace, contact_id, signal, at);

-- Lead-status history: one row per status a contact reached, with time and cause.
CREATE TABLE lead_transitions (
  workspace   TEXT NOT NULL,
  contact_id  TEXT NOT NULL,
  to_status   TEXT NOT NULL,
  from_status TEXT NOT NULL,
  cause       TEXT NOT NULL,
  score       INTEGER NOT NULL,
  at          INTEGER NOT NULL,
  PRIMARY KEY (workspace, contact_id, to_status)
);

-- Decay bookkeeping: how many inactivity periods have been applied since the last activity.
ALTER TABLE contacts ADD COLUMN decay_level INTEGER NOT NULL DEFAULT 0;
ALTER TABLE contacts ADD COLUMN sales_ready_at INTEGER;
