#!/usr/bin/env bash
# Rescoring benchmark: 100,000 contacts with 2,000,000 events in the local D1 of a running stack,
# a model change, then engine's cron ticks (virtual time, 5 minutes apart) until the walk has
# rescored everyone. Prints `key=value` lines for bench/run.sh.
#
#   bench/recompute.sh PERSIST_DIR API_URL ENGINE_URL TOKEN [contacts] [events per contact]
#
# The history is written straight into the local D1 file with one generated INSERT per table:
# pushing two million events through the queue would measure ingest, not rescoring. Contacts
# get ids that sort after every real one (`c_b…`); each has 20 events over 20 days: page views
# (half on /cases/ pages), whitepaper downloads and email opens, so every rule of the seeded
# model and its daily cap are exercised.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
PERSIST="$1" API="$2" ENGINE="$3" TOKEN="$4"
CONTACTS="${5:-100000}"
PER="${6:-20}"
EVENTS=$((CONTACTS * PER))
AUTH="Authorization: Bearer $TOKEN"
NOW_MS=$(($(date +%s) * 1000))
DAY=86400000

calc() { awk "BEGIN { x = ($1); print x }"; } # in an assignment, > compares (after print it would redirect)
d1() { wrangler d1 execute DB --local --persist-to "$PERSIST" -c wrangler.toml --yes "$@" >/dev/null; }

t0=$(date +%s.%N)
d1 --command "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $CONTACTS - 1)
  INSERT OR IGNORE INTO contacts (id, workspace, lead_status, first_seen_at, last_seen_at, created_at, updated_at)
  SELECT printf('c_b%023x', i), 'default', 'anonymous', $NOW_MS - 30 * $DAY, $NOW_MS, $NOW_MS, $NOW_MS FROM n;
  WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $EVENTS - 1)
  INSERT OR IGNORE INTO events (workspace, id, contact_id, name, properties, occurred_at, received_at)
  SELECT 'default', printf('bench_rescore_%08d', i), printf('c_b%023x', i / $PER),
    CASE i % 10 WHEN 0 THEN 'whitepaper_downloaded' WHEN 1 THEN 'email_opened' ELSE 'page' END,
    json_object('url', CASE i % 2 WHEN 0 THEN 'https://shop.example/cases/' ELSE 'https://shop.example/p/' END || (i % 7)),
    $NOW_MS - (i % $PER) * $DAY - (i % 997) * 1000, $NOW_MS FROM n;"
load_s=$(calc "$(date +%s.%N) - $t0")

# The model change: the seeded model with page views worth 3 instead of 2.
model="$(node -e '
  const m = JSON.parse(require("fs").readFileSync("config/scoring.json", "utf8"));
  for (const r of m.rules) if (r.id === "website_visit") r.points = 3;
  process.stdout.write(JSON.stringify(m));')"
version="$(curl -fsS -X PUT -H "$AUTH" -H 'Content-Type: application/json' --data "$model" "$API/v1/scoring" \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).version))')"

status() { curl -fsS -H "$AUTH" "$API/v1/system/status"; }
field() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const r=JSON.parse(s).rescoring||{};console.log(r.$1 ?? '')})"; }

# engine caches the active model for 10 s; the walk starts once it holds the new version.
sleep 11
ticks=0 max_tick=0 at=$NOW_MS
walk0=$(date +%s.%N)
while :; do
  at=$((at + 300000))
  s0=$(date +%s.%N)
  curl -fsS -o /dev/null "$ENGINE/cdn-cgi/handler/scheduled?cron=*/5+*+*+*+*&time=$at"
  tick=$(calc "$(date +%s.%N) - $s0")
  ticks=$((ticks + 1))
  max_tick=$(calc "($tick > $max_tick) ? $tick : $max_tick")
  st="$(status)"
  [ "$(echo "$st" | field model_version)" = "$version" ] && [ -n "$(echo "$st" | field finished_at)" ] && break
  [ "$ticks" -lt 2000 ] || { echo "recompute: not finished after 2000 ticks" >&2; exit 1; }
done
walk_s=$(calc "$(date +%s.%N) - $walk0")
done_n="$(status | field contacts_done)"

echo "RESCORE_CONTACTS=$CONTACTS"
echo "RESCORE_EVENTS=$EVENTS"
echo "RESCORE_LOAD_S=$(printf '%.1f' "$load_s")"
echo "RESCORE_TICKS=$ticks"
echo "RESCORE_DONE=$done_n"
echo "RESCORE_WALK_S=$(printf '%.1f' "$walk_s")"
echo "RESCORE_MAX_TICK_S=$(printf '%.2f' "$max_tick")"
echo "RESCORE_EVENTS_PER_S=$(printf '%.0f' "$(calc "$EVENTS / $walk_s")")"
