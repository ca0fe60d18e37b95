-- Life-cycle stages: when each contact's stage is next due for a look, and the stage history.
ALTER TABLE contacts ADD COLUMN stage_due_at INTEGER;
CREATE INDEX contacts_stage_due ON contacts (workspace, stage_due_at);

CREATE TABLE lifecycle_transitions (
  workspace  TEXT NOT NULL,
  contact_id TEXT NOT NULL,
  to_stage   TEXT NOT NULL,
  from_stage TEXT,
  at         INTEGER NOT NULL,
  PRIMARY KEY (workspace, contact_id, at, to_stage)
);
