-- Journeys: versioned definitions, the triggers derived from them, enrollments (one contact's
-- way through one version of one journey), the step log that makes every step happen once,
-- and tasks for people.

CREATE TABLE journeys (
  workspace  TEXT NOT NULL,
  id         TEXT NOT NULL,
  version    INTEGER NOT NULL,
  definition TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (workspace, id)
);
CREATE TABLE journey_versions (
  workspace  TEXT NOT NULL,
  id         TEXT NOT NULL,
  version    INTEGER NOT NULL,
  definition TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (workspace, id, version)
);

-- What each current journey listens for, so enrolment, goals, exits and waits are joins on an
-- index rather than a reading of every definition: role is 'entry', 'goal' or 'exit'. `filter`
-- is a JSON object of property values the event must carry. Rewritten whenever a journey is
-- saved; `version` is the version new enrollments get.
CREATE TABLE journey_triggers (
  workspace  TEXT NOT NULL,
  journey_id TEXT NOT NULL,
  version    INTEGER NOT NULL,
  role       TEXT NOT NULL,
  event      TEXT NOT NULL,
  filter     TEXT NOT NULL DEFAULT '{}',
  -- Entry only: 'never', 'after_exit' or 'always' (each event enrols anew).
  re_entry   TEXT NOT NULL DEFAULT 'never',
  -- Entry only: the property of the event that holds the time to start at (date-relative
  -- entries), and the offset from it.
  at_property TEXT,
  at_offset   INTEGER NOT NULL DEFAULT 0,
  -- Entry only: the node an enrollment starts at, and the journey's maximum duration.
  start_node TEXT,
  max_ms     INTEGER,
  -- Entry only: the last event (rowid) before the journey was first published. A journey
  -- enrols from what happens after it exists, never from history.
  from_rowid INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (workspace, journey_id, role, event)
);
CREATE INDEX journey_triggers_event ON journey_triggers (workspace, event, role);

-- One contact in one journey version. `state`: active (due at next_run_at), completed, goal
-- (left because the goal was met), exited, expired (maximum duration reached), failed.
-- `step` counts the nodes run so far: the compare-and-set that makes each step happen once.
CREATE TABLE enrollments (
  workspace   TEXT NOT NULL,
  id          TEXT NOT NULL PRIMARY KEY,
  journey_id  TEXT NOT NULL,
  version     INTEGER NOT NULL,
  contact_id  TEXT NOT NULL,
  entry_key   TEXT NOT NULL,
  state       TEXT NOT NULL,
  node        TEXT NOT NULL,
  step        INTEGER NOT NULL DEFAULT 0,
  next_run_at INTEGER,
  -- A wait for an event: its name, and the node to go to when it comes.
  wait_event  TEXT,
  -- Properties of the entry event and of the event that ended a wait (never personal data).
  context     TEXT NOT NULL DEFAULT '{}',
  started_at  INTEGER NOT NULL,
  expires_at  INTEGER,
  lease_until INTEGER,
  error       TEXT,
  updated_at  INTEGER NOT NULL,
  UNIQUE (workspace, journey_id, contact_id, entry_key)
);
-- Only enrollments still under way are in the due index, so finding due work costs the same
-- however many enrollments have ended, and comes out in time order without a sort.
CREATE INDEX enrollments_due ON enrollments (next_run_at) WHERE state IN ('active', 'waiting');
CREATE INDEX enrollments_contact ON enrollments (workspace, contact_id, state);
CREATE INDEX enrollments_waiting ON enrollments (workspace, contact_id, wait_event) WHERE wait_event IS NOT NULL;

-- Every node an enrollment ran, once: (enrollment, step) is the idempotency key of its
-- effects, and the source of journey analytics.
CREATE TABLE journey_steps (
  workspace     TEXT NOT NULL,
  enrollment_id TEXT NOT NULL,
  step          INTEGER NOT NULL,
  journey_id    TEXT NOT NULL,
  version       INTEGER NOT NULL,
  node          TEXT NOT NULL,
  outcome       TEXT NOT NULL,
  at            INTEGER NOT NULL,
  PRIMARY KEY (enrollment_id, step)
);
CREATE INDEX journey_steps_journey ON journey_steps (workspace, journey_id, node);

-- Where the journey pass got to in the events table (rowid), so each event is looked at once
-- for entries, goals, exits and waits, whoever wrote it.
CREATE TABLE journey_cursor (
  workspace TEXT NOT NULL PRIMARY KEY,
  last_rowid INTEGER NOT NULL
);
-- Journeys begin with the events that arrive after them: history already recorded when this
-- migration runs enrols no one.
INSERT INTO journey_cursor (workspace, last_rowid)
  SELECT 'default', COALESCE(max(rowid), 0) FROM events;

-- A scheduled journey's runs: one per occurrence ("the 1st of the month at 10:00"), paging
-- through its audience by contact id.
CREATE TABLE journey_runs (
  workspace  TEXT NOT NULL,
  journey_id TEXT NOT NULL,
  occurrence INTEGER NOT NULL,
  cursor     TEXT NOT NULL DEFAULT '',
  done       INTEGER NOT NULL DEFAULT 0,
  enrolled   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (workspace, journey_id, occurrence)
);

-- Work for a person ("human intervention"): a sales call, a call-back, a service contact.
CREATE TABLE tasks (
  workspace     TEXT NOT NULL,
  id            TEXT NOT NULL PRIMARY KEY,
  contact_id    TEXT NOT NULL,
  kind          TEXT NOT NULL,
  title         TEXT NOT NULL,
  team          TEXT,
  assignee      TEXT,
  journey_id    TEXT,
  enrollment_id TEXT,
  state         TEXT NOT NULL DEFAULT 'open',
  due_at        INTEGER NOT NULL,
  created_at    INTEGER NOT NULL
);
CREATE INDEX tasks_open ON tasks (workspace, state, due_at);
CREATE INDEX tasks_contact ON tasks (workspace, contact_id);

ALTER TABLE contacts ADD COLUMN owner TEXT;
ALTER TABLE messages ADD COLUMN journey_node TEXT;
ALTER TABLE messages ADD COLUMN enrollment_id TEXT;

-- A contact becoming known (an identify or a form gave its email, phone or user id) is the
-- entry of the first nurture tier: announced as `lead.known`, once, at the time of the event
-- that made it known, like the other lead-status events.
CREATE TRIGGER contacts_known AFTER UPDATE OF lead_status ON contacts
WHEN OLD.lead_status = 'anonymous' AND NEW.lead_status = 'known'
BEGIN
  INSERT OR IGNORE INTO events (workspace, id, contact_id, name, properties, occurred_at, received_at)
  VALUES (NEW.workspace, 'lead.known:' || NEW.id, NEW.id, 'lead.known',
          json_object('score', NEW.score), NEW.updated_at, NEW.updated_at);
END;
CREATE TRIGGER contacts_known_at_creation AFTER INSERT ON contacts
WHEN NEW.lead_status = 'known'
BEGIN
  INSERT OR IGNORE INTO events (workspace, id, contact_id, name, properties, occurred_at, received_at)
  VALUES (NEW.workspace, 'lead.known:' || NEW.id, NEW.id, 'lead.known',
          json_object('score', NEW.score), NEW.updated_at, NEW.updated_at);
END;
