-- Forms, the consent ledger, scoped api tokens, the audit log, erasure and monthly cleaning.

-- Form definitions: the current document per form, every version kept beside it.
CREATE TABLE forms (
  workspace  TEXT NOT NULL,
  id         TEXT NOT NULL,
  version    INTEGER NOT NULL,
  definition TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (workspace, id)
);
CREATE TABLE form_versions (
  workspace  TEXT NOT NULL,
  id         TEXT NOT NULL,
  version    INTEGER NOT NULL,
  definition TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (workspace, id, version)
);

-- The consent ledger: one row per grant or withdrawal, never changed, never deleted. The id is
-- derived from the event that carried it, so a redelivered submission records nothing twice.
-- Only `contact_id` may change (a merge moves the rows to the surviving contact) and the
-- hashed IP / user agent may be cleared (erasure).
CREATE TABLE consents (
  workspace       TEXT NOT NULL,
  id              TEXT NOT NULL,
  contact_id      TEXT NOT NULL,
  channel         TEXT NOT NULL,
  purpose         TEXT NOT NULL,
  granted         INTEGER NOT NULL,
  wording_version TEXT,
  source          TEXT NOT NULL,
  form_id         TEXT,
  event_id        TEXT,
  ip_hash         TEXT,
  user_agent      TEXT,
  recorded_at     INTEGER NOT NULL,
  PRIMARY KEY (workspace, id)
);
CREATE INDEX consents_contact ON consents (workspace, contact_id, channel, recorded_at);
CREATE TRIGGER consents_append_only BEFORE UPDATE OF
  workspace, id, channel, purpose, granted, wording_version, source, form_id, event_id, recorded_at
  ON consents
BEGIN
  SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;
CREATE TRIGGER consents_never_deleted BEFORE DELETE ON consents
BEGIN
  SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;

-- Contact points found invalid (by monthly cleaning) or bounced (by provider receipts).
ALTER TABLE contacts ADD COLUMN email_status TEXT;
ALTER TABLE contacts ADD COLUMN phone_status TEXT;
-- Set when the person's data was erased on request: PII destroyed, counts kept.
ALTER TABLE contacts ADD COLUMN erased_at INTEGER;

-- Scoped api tokens. Only a SHA-256 of the secret is kept; the secret is shown once.
CREATE TABLE api_tokens (
  workspace   TEXT NOT NULL,
  id          TEXT NOT NULL PRIMARY KEY,
  name        TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  scopes      TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);

-- Who saw or changed personal data, and when: unmasked reads, exports, erasures, token grants.
CREATE TABLE audit_log (
  workspace  TEXT NOT NULL,
  id         TEXT NOT NULL PRIMARY KEY,
  at         INTEGER NOT NULL,
  actor      TEXT NOT NULL,
  action     TEXT NOT NULL,
  contact_id TEXT,
  detail     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_time ON audit_log (workspace, at);
CREATE INDEX audit_log_contact ON audit_log (workspace, contact_id, at);

-- Monthly data cleaning: one row per workspace and month, claimed by the first cron tick of
-- the month, with what it did.
CREATE TABLE cleaning_runs (
  workspace       TEXT NOT NULL,
  month           TEXT NOT NULL,
  started_at      INTEGER NOT NULL,
  finished_at     INTEGER,
  merged          INTEGER NOT NULL DEFAULT 0,
  invalid_flagged INTEGER NOT NULL DEFAULT 0,
  bounced         INTEGER NOT NULL DEFAULT 0,
  -- '' before the duplicate merge; then the last contact id whose contact points were checked.
  cursor          TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (workspace, month)
);
