-- Delivery: message templates (versioned documents), the outbox with its state machine and
-- history, and A/B winners.

CREATE TABLE templates (
  workspace  TEXT NOT NULL,
  id         TEXT NOT NULL,
  version    INTEGER NOT NULL,
  definition TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (workspace, id)
);
CREATE TABLE template_versions (
  workspace  TEXT NOT NULL,
  id         TEXT NOT NULL,
  version    INTEGER NOT NULL,
  definition TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (workspace, id, version)
);

-- The outbox. A message moves queued → (suppressed | deferred | sending) → sent → delivered …;
-- sending → retry → sending … → dead after the last try; every move is a compare-and-set on
-- `state`, so a redelivered queue message or an overlapping run never sends twice. The
-- idempotency key (a journey step's, or the caller's) makes enqueueing idempotent too.
CREATE TABLE messages (
  workspace        TEXT NOT NULL,
  id               TEXT NOT NULL PRIMARY KEY,
  idempotency_key  TEXT NOT NULL,
  contact_id       TEXT NOT NULL,
  channel          TEXT NOT NULL,
  kind             TEXT NOT NULL,
  template_id      TEXT,
  template_version INTEGER,
  variant          TEXT,
  journey_id       TEXT,
  -- Sender-supplied template variables (never personal data: refused at enqueue).
  variables        TEXT NOT NULL DEFAULT '{}',
  state            TEXT NOT NULL,
  reason           TEXT,
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  INTEGER,
  provider_id      TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  -- When the send was claimed: what frequency caps count.
  sent_at          INTEGER,
  UNIQUE (workspace, idempotency_key)
);
CREATE INDEX messages_due ON messages (state, next_attempt_at);
CREATE INDEX messages_contact_sent ON messages (workspace, contact_id, channel, sent_at);
CREATE INDEX messages_template ON messages (workspace, template_id, variant);

CREATE TABLE message_history (
  workspace  TEXT NOT NULL,
  message_id TEXT NOT NULL,
  at         INTEGER NOT NULL,
  state      TEXT NOT NULL,
  reason     TEXT,
  attempt    INTEGER NOT NULL
);
CREATE INDEX message_history_message ON message_history (message_id, at);
-- Every state change is recorded by the database itself, in the same statement as the change.
CREATE TRIGGER messages_history AFTER UPDATE OF state ON messages
BEGIN
  INSERT INTO message_history (workspace, message_id, at, state, reason, attempt)
  VALUES (NEW.workspace, NEW.id, NEW.updated_at, NEW.state, NEW.reason, NEW.attempts);
END;

-- An A/B test's winner, once declared: later sends of that template version use it.
CREATE TABLE ab_winners (
  workspace        TEXT NOT NULL,
  template_id      TEXT NOT NULL,
  template_version INTEGER NOT NULL,
  variant          TEXT NOT NULL,
  decided_at       INTEGER NOT NULL,
  PRIMARY KEY (workspace, template_id, template_version)
);
