#!/usr/bin/env bash
# Deploys every function to a Cloudflare account with wrangler: creates the D1 database, the
# queues and the KV namespace when absent, applies the migrations remotely, sets the api's
# secret and deploys each function. Refuses without the secrets it needs.
#
#   scripts/deploy.sh            deploy for real (needs CLOUDFLARE_API_TOKEN, KINDLING_ADMIN_TOKEN,
#                                KINDLING_PII_KEY (32 random bytes, base64), KINDLING_LINK_KEY)
#   scripts/deploy.sh --dry-run  bundle each function as a deploy would, without an account
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

if [ "${1:-}" = "--dry-run" ]; then
  for f in $FUNCTIONS; do
    wrangler deploy --dry-run -c "functions/$f/wrangler.toml" --outdir "$ROOT/target/dry-run/$f" \
      >"$ROOT/target/dry-run-$f.log" 2>&1 || { cat "$ROOT/target/dry-run-$f.log"; exit 1; }
    echo "dry-run: $f bundles"
  done
  exit 0
fi

: "${CLOUDFLARE_API_TOKEN:?set CLOUDFLARE_API_TOKEN to a token that may edit Workers, D1, KV and Queues}"
: "${KINDLING_ADMIN_TOKEN:?set KINDLING_ADMIN_TOKEN to the admin api secret (16+ characters)}"
if [ "${#KINDLING_ADMIN_TOKEN}" -lt 16 ] || [ "$KINDLING_ADMIN_TOKEN" = "dev-admin-token" ]; then
  echo "deploy: KINDLING_ADMIN_TOKEN must be a real secret of 16+ characters"; exit 1
fi

: "${KINDLING_PII_KEY:?set KINDLING_PII_KEY to 32 random bytes, base64 (openssl rand -base64 32)}"
: "${KINDLING_LINK_KEY:?set KINDLING_LINK_KEY to a random secret of 32+ characters}"
if [ "$KINDLING_PII_KEY" = "ZGV2LW9ubHktcGlpLWtleS1ub3QtZm9yLXByb2R1Y3Q=" ] || [ "${#KINDLING_LINK_KEY}" -lt 32 ]; then
  echo "deploy: KINDLING_PII_KEY must not be the development key; KINDLING_LINK_KEY needs 32+ characters"; exit 1
fi

D1_PLACEHOLDER="00000000-0000-4000-8000-00000000d1db"
KV_PLACEHOLDER="00000000000000000000000000c0f1a6"

db_id() { wrangler d1 list --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const d=JSON.parse(s).find(x=>x.name==="kindling");console.log(d?d.uuid:"")})'; }
kv_id() { wrangler kv namespace list | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const n=JSON.parse(s).find(x=>x.title==="kindling-config");console.log(n?n.id:"")})'; }

[ -n "$(db_id)" ] || wrangler d1 create kindling
[ -n "$(kv_id)" ] || wrangler kv namespace create kindling-config
for q in kindling-events kindling-events-dlq kindling-sends kindling-sends-dlq; do
  wrangler queues info "$q" >/dev/null 2>&1 || wrangler queues create "$q"
done
DB_ID="$(db_id)"; KV_ID="$(kv_id)"
[ -n "$DB_ID" ] && [ -n "$KV_ID" ] || { echo "deploy: could not resolve the D1 or KV ids"; exit 1; }

# Deploy configs are the committed ones with the account's real ids.
for cfg in wrangler.toml functions/*/wrangler.toml; do
  sed -e "s/$D1_PLACEHOLDER/$DB_ID/" -e "s/$KV_PLACEHOLDER/$KV_ID/" "$cfg" >"${cfg%.toml}.deploy.toml"
done

wrangler d1 migrations apply DB --remote -c wrangler.deploy.toml
printf '%s' "$KINDLING_ADMIN_TOKEN" | wrangler secret put KINDLING_ADMIN_TOKEN -c functions/api/wrangler.deploy.toml
# Each function gets only the secrets it uses.
for f in track forms engine deliver api; do
  printf '%s' "$KINDLING_PII_KEY" | wrangler secret put KINDLING_PII_KEY -c "functions/$f/wrangler.deploy.toml"
done
for f in track forms deliver; do
  printf '%s' "$KINDLING_LINK_KEY" | wrangler secret put KINDLING_LINK_KEY -c "functions/$f/wrangler.deploy.toml"
done
for f in $FUNCTIONS; do
  wrangler deploy -c "functions/$f/wrangler.deploy.toml"
done
# deliver's provider credentials, when given (a channel without them fails its messages with a
# clear reason rather than sending half-configured requests).
for s in KINDLING_EMAIL_API_KEY KINDLING_SMS_AUTH_TOKEN KINDLING_WECOM_SECRET KINDLING_WEBHOOK_SECRET KINDLING_RECEIPT_KEY; do
  if [ -n "${!s:-}" ]; then
    printf '%s' "${!s}" | wrangler secret put "$s" -c functions/deliver/wrangler.deploy.toml
  fi
done
echo "deploy: done; routes are in README.md (Production routes)"
