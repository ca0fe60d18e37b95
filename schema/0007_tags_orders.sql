-- Tags (static, behavioural, value/RFM) kept current by the engine's cron, and orders.

-- One row per tag a contact carries now; every change is also an event (tag.added, tag.changed,
-- tag.removed), so history lives in `events`.
CREATE TABLE tags (
  workspace  TEXT NOT NULL,
  contact_id TEXT NOT NULL,
  tag        TEXT NOT NULL,
  kind       TEXT NOT NULL,
  value      TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (workspace, contact_id, tag)
);
CREATE INDEX tags_value ON tags (workspace, tag, value);

-- When a contact's tags are next due for a look: set by events that change its facts, and by
-- the pass itself for the next time a time-based tag (recency, RFM) would change.
ALTER TABLE contacts ADD COLUMN tags_due_at INTEGER;
CREATE INDEX contacts_tags_due ON contacts (workspace, tags_due_at);

-- Orders, from `order_completed` events (posted at /v1/orders or sent as server-side events).
-- Keyed by the order id, so an order reported twice counts once.
CREATE TABLE orders (
  workspace  TEXT NOT NULL,
  id         TEXT NOT NULL,
  contact_id TEXT NOT NULL,
  amount     REAL NOT NULL,
  currency   TEXT NOT NULL,
  ordered_at INTEGER NOT NULL,
  event_id   TEXT NOT NULL,
  PRIMARY KEY (workspace, id)
);
CREATE INDEX orders_contact_time ON orders (workspace, contact_id, ordered_at);
