-- Kindling's system of record. Applied by `wrangler d1 migrations apply` to D1 and by the
-- native SQLite adapter in tests: one schema for both. Times are epoch milliseconds (UTC).
-- Every table carries `workspace` so a tenant split stays a configuration change.

-- People, known or still anonymous. PII columns arrive with the forms issue, encrypted.
CREATE TABLE contacts (
  id              TEXT PRIMARY KEY,
  workspace       TEXT NOT NULL,
  lead_status     TEXT NOT NULL DEFAULT 'anonymous',
  lifecycle_stage TEXT,
  score           INTEGER NOT NULL DEFAULT 0,
  first_seen_at   INTEGER NOT NULL,
  last_seen_at    INTEGER NOT NULL,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
CREATE INDEX contacts_workspace_seen ON contacts (workspace, last_seen_at);

-- Identifiers that point at a contact: visitor ids today, user ids and blind indexes later.
-- Re-pointing an identity is how a merge moves future events; history is never deleted.
CREATE TABLE identities (
  workspace  TEXT NOT NULL,
  kind       TEXT NOT NULL,
  value      TEXT NOT NULL,
  contact_id TEXT NOT NULL REFERENCES contacts (id),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (workspace, kind, value)
);
CREATE INDEX identities_contact ON identities (contact_id);

-- Append-only behaviour. The id is assigned before the queue send, so redelivery is harmless.
CREATE TABLE events (
  workspace   TEXT NOT NULL,
  id          TEXT NOT NULL,
  site        TEXT,
  visitor_id  TEXT,
  contact_id  TEXT,
  name        TEXT NOT NULL,
  properties  TEXT NOT NULL DEFAULT '{}',
  occurred_at INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (workspace, id)
);
CREATE INDEX events_contact_time ON events (workspace, contact_id, occurred_at);
CREATE INDEX events_name_time ON events (workspace, name, occurred_at);

-- Registered sites; published to KV for the ingress path.
CREATE TABLE sites (
  workspace       TEXT NOT NULL,
  key             TEXT NOT NULL,
  name            TEXT NOT NULL,
  allowed_origins TEXT NOT NULL DEFAULT '[]',
  updated_at      INTEGER NOT NULL,
  PRIMARY KEY (workspace, key)
);

-- Events refused at ingress, counted per day, source and reason.
CREATE TABLE ingest_drops (
  day    TEXT NOT NULL,
  source TEXT NOT NULL,
  reason TEXT NOT NULL,
  count  INTEGER NOT NULL,
  PRIMARY KEY (day, source, reason)
);

-- One row per cron tick handled, keyed by its scheduled time.
CREATE TABLE cron_runs (
  cron         TEXT NOT NULL,
  scheduled_at INTEGER NOT NULL,
  PRIMARY KEY (cron, scheduled_at)
);
