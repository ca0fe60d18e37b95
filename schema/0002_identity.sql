-- Identity resolution: known contacts (sealed PII + blind indexes), merges, sessions and
-- first/last-touch attribution.

ALTER TABLE contacts ADD COLUMN email_cipher TEXT;
ALTER TABLE contacts ADD COLUMN email_index TEXT;
ALTER TABLE contacts ADD COLUMN phone_cipher TEXT;
ALTER TABLE contacts ADD COLUMN phone_index TEXT;
ALTER TABLE contacts ADD COLUMN name_cipher TEXT;
-- Non-personal traits (company, industry, company_size, job_title, ...) as a JSON object.
ALTER TABLE contacts ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
-- Set when this contact was merged into another; its history moved there.
ALTER TABLE contacts ADD COLUMN merged_into TEXT;
-- Attribution: {source, medium, campaign, term, content, referrer, landing_page}.
ALTER TABLE contacts ADD COLUMN first_touch TEXT;
ALTER TABLE contacts ADD COLUMN first_touch_at INTEGER;
ALTER TABLE contacts ADD COLUMN last_touch TEXT;
ALTER TABLE contacts ADD COLUMN last_touch_at INTEGER;
CREATE INDEX contacts_email_index ON contacts (workspace, email_index);
CREATE INDEX contacts_phone_index ON contacts (workspace, phone_index);

ALTER TABLE events ADD COLUMN session_id TEXT;

-- One row per merge: the anonymous contact `from_contact` became part of `into_contact`.
-- Recorded first, applied by the same batch (`applied` = 1), never undone by a redelivery.
CREATE TABLE merges (
  workspace     TEXT NOT NULL,
  from_contact  TEXT NOT NULL,
  into_contact  TEXT NOT NULL,
  cause         TEXT NOT NULL,
  event_id      TEXT,
  merged_at     INTEGER NOT NULL,
  applied       INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (workspace, from_contact)
);
CREATE INDEX merges_pending ON merges (applied);
CREATE INDEX merges_into ON merges (workspace, into_contact);

-- Per-site settings: honour Do-Not-Track / Global Privacy Control (default yes).
ALTER TABLE sites ADD COLUMN honor_dnt INTEGER NOT NULL DEFAULT 1;
