#!/usr/bin/env bash
# Runs the whole function set on workerd (one `wrangler dev` per function) sharing one local
# state folder, so D1, KV and Queues flow between them. Used by `make dev` and by the
# integration tests, which start it on other ports with a fresh folder.
#
#   scripts/stack.sh STATE_DIR PORT_BASE
#
# Ports: track PORT_BASE, forms +1, engine +2, deliver +3, api +4, provider sink +5; the demo landing page
# PORT_BASE - 707 (8080 beside make dev). Stops everything it
# started on Ctrl-C or TERM. Expects the functions to be built (scripts/build.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
STATE="$(mkdir -p "$1" && cd "$1" && pwd)"
BASE="$2"
TOKEN="${KINDLING_ADMIN_TOKEN:-dev-admin-token}"
# Development keys, accepted only with KINDLING_ENV=development.
PII_KEY="${KINDLING_PII_KEY:-ZGV2LW9ubHktcGlpLWtleS1ub3QtZm9yLXByb2R1Y3Q=}"
LINK_KEY="${KINDLING_LINK_KEY:-dev-link-key}"
cd "$ROOT"

# wrangler finds other local workers (queue consumers, service bindings) through a registry
# keyed by worker name and shared machine-wide by default: a second stack (make dev beside
# make test, or a benchmark) would receive this one's queue messages. Each stack gets its own.
export WRANGLER_REGISTRY_PATH="$STATE/registry" CLOUDFLARE_DEV_REGISTRY_PATH="$STATE/registry"
mkdir -p "$STATE/registry"

declare -A OFFSET=([track]=0 [forms]=1 [engine]=2 [deliver]=3 [api]=4)
SINK=$((BASE + 5))
# deliver talks to a local sink that records every provider request (tests/sink/sink.mjs), with
# development credentials; a deployment sets real endpoints in wrangler.toml and secrets.
DELIVER_VARS=(
  --var "KINDLING_TRACK_URL:http://127.0.0.1:$BASE" --var "KINDLING_FORMS_URL:http://127.0.0.1:$((BASE + 1))"
  --var "KINDLING_DELIVER_URL:http://127.0.0.1:$((BASE + 3))"
  --var "KINDLING_EMAIL_ENDPOINT:http://127.0.0.1:$SINK" --var "KINDLING_EMAIL_API_KEY:dev-email-key"
  --var "KINDLING_EMAIL_FROM:hello@kindling.test" --var "KINDLING_EMAIL_FROM_NAME:Kindling"
  --var "KINDLING_SMS_ENDPOINT:http://127.0.0.1:$SINK" --var "KINDLING_SMS_ACCOUNT_SID:ACdev"
  --var "KINDLING_SMS_AUTH_TOKEN:dev-sms-token" --var "KINDLING_SMS_FROM:+15550000000"
  --var "KINDLING_WECOM_ENDPOINT:http://127.0.0.1:$SINK" --var "KINDLING_WECOM_CORP_ID:devcorp"
  --var "KINDLING_WECOM_SECRET:dev-wecom-secret" --var "KINDLING_WECOM_AGENT_ID:1000002"
  --var "KINDLING_WEBHOOK_URL:http://127.0.0.1:$SINK/hooks/crm" --var "KINDLING_WEBHOOK_SECRET:dev-webhook-secret"
  --var "KINDLING_RECEIPT_KEY:dev-receipt-key-0123456789"
)
PIDS=()

stop() {
  trap - INT TERM EXIT
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

echo "stack: applying migrations to $STATE"
wrangler d1 migrations apply DB --local --persist-to "$STATE" -c wrangler.toml >"$STATE/migrations.log" 2>&1 \
  || { cat "$STATE/migrations.log"; exit 1; }

# One at a time: workerd opens the shared local D1 file at start, and two opening it at the
# same moment can fail with SQLITE_BUSY. The queue's consumer (engine) first: producers that
# start before it registers had their messages held back for a minute or more.
set -m
node tests/sink/sink.mjs "$SINK" >"$STATE/sink.log" 2>&1 </dev/null &
PIDS+=($!)
set +m

for f in engine deliver api track forms; do
  port=$((BASE + OFFSET[$f]))
  extra=()
  [ "$f" = deliver ] && extra=("${DELIVER_VARS[@]}")
  set -m # each function in its own process group, so stopping it stops workerd too
  (cd "functions/$f" && exec wrangler dev --local --ip 127.0.0.1 --port "$port" \
      --inspector-port $((port + 1000)) --persist-to "$STATE" \
      --var KINDLING_ENV:development --var "KINDLING_ADMIN_TOKEN:$TOKEN" \
      --var "KINDLING_PII_KEY:$PII_KEY" --var "KINDLING_LINK_KEY:$LINK_KEY" "${extra[@]}" \
      --show-interactive-dev-session=false) >"$STATE/$f.log" 2>&1 </dev/null &
  PIDS+=($!)
  set +m
  for _ in $(seq 1 240); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null || { echo "stack: $f did not start"; tail -n 40 "$STATE/$f.log"; exit 1; }
done

# Seed the default configuration through the api, the same path an operator uses.
API="http://127.0.0.1:$((BASE + 4))"
for site in config/sites/*.json; do
  key="$(basename "$site" .json)"
  curl -fsS -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data @"$site" "$API/v1/sites/$key" >/dev/null || { echo "stack: seeding site $key failed"; exit 1; }
done

curl -fsS -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  --data @config/scoring.json "$API/v1/scoring" >/dev/null || { echo "stack: seeding the scoring model failed"; exit 1; }
for template in config/templates/*.json; do
  id="$(basename "$template" .json)"
  curl -fsS -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data @"$template" "$API/v1/templates/$id" >/dev/null || { echo "stack: seeding template $id failed"; exit 1; }
done
# The journeys of REQUIREMENTS.md. The integration tests start without them
# (KINDLING_SEED_JOURNEYS=0) so that the other trials' contacts receive only what the trials
# themselves send; the journey trials publish them through the api.
if [[ "${KINDLING_SEED_JOURNEYS:-1}" == 1 ]]; then
  for journey in config/journeys/*.json; do
    id="$(basename "$journey" .json)"
    curl -fsS -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
      --data @"$journey" "$API/v1/journeys/$id" >/dev/null || { echo "stack: seeding journey $id failed"; exit 1; }
  done
fi
for form in config/forms/*.json; do
  id="$(basename "$form" .json)"
  curl -fsS -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data @"$form" "$API/v1/forms/$id" >/dev/null || { echo "stack: seeding form $id failed"; exit 1; }
done

# The demo landing page, served as a customer's own web server would (8080 beside make dev).
LANDING=$((BASE - 707))
set -m
node scripts/landing.mjs "$LANDING" "http://127.0.0.1:$BASE" "http://127.0.0.1:$((BASE + 1))" \
  >"$STATE/landing.log" 2>&1 </dev/null &
PIDS+=($!)
set +m

cat <<INFO
stack: ready
  track   http://127.0.0.1:$((BASE + 0))
  forms   http://127.0.0.1:$((BASE + 1))
  engine  http://127.0.0.1:$((BASE + 2))   (cron: /cdn-cgi/handler/scheduled?time=<epoch ms>)
  deliver http://127.0.0.1:$((BASE + 3))   (receipts: POST /r/{sendgrid|twilio|generic})
  sink    http://127.0.0.1:$SINK   (records provider requests: GET /_sink/requests)
  api     http://127.0.0.1:$((BASE + 4))   (Authorization: Bearer $TOKEN)
  landing http://127.0.0.1:$LANDING/     (demo landing page posting to forms)
  logs    $STATE/<function>.log
INFO
wait
