#!/usr/bin/env bash
# Delivery throughput: N transactional emails through deliver to the local provider sink.
# Prints `key=value` lines for bench/run.sh.
#
#   bench/deliver.sh PERSIST_DIR API_URL ENGINE_URL SINK_URL TOKEN [messages] [contacts]
#
# The outbox is filled straight in the local D1 (messages due for a retry), and engine's cron
# hands them to the `sends` queue 500 per tick, as it does with due retries in production — all
# of them at the start, so the measurement is deliver's (decide, claim, render, send, record),
# not the api's enqueueing nor the cron's pace.
# Rate: messages the sink received per second, from its first to its last request. Baseline in
# the same run: the same number of requests posted straight to the sink by Node, 50 in flight.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
PERSIST="$1" API="$2" ENGINE="$3" SINK="$4" TOKEN="$5"
N="${6:-2000}"
CONTACTS="${7:-100}"
AUTH="Authorization: Bearer $TOKEN"
RUN="$(date +%s)"
calc() { awk "BEGIN { x = ($1); print x }"; } # in an assignment, > compares (after print it would redirect)

# Contacts with an email, through the server-side ingest (one batch call).
batch="$(node -e '
  const [run, n] = process.argv.slice(1);
  const batch = Array.from({ length: Number(n) }, (_, i) => ({ type: "identify",
    messageId: `bench-deliver-${run}-${i}`, userId: `bench-deliver-${run}-${i}`,
    traits: { email: `reader.${i}.${run}@deliver.bench`, industry: ["manufacturing", "finance", "retail"][i % 3] } }));
  process.stdout.write(JSON.stringify({ batch }));' "$RUN" "$CONTACTS")"
curl -fsS -X POST -H "$AUTH" -H 'Content-Type: application/json' --data "$batch" "$API/v1/batch" >/dev/null
ids=()
for i in $(seq 0 $((CONTACTS - 1))); do
  for _ in $(seq 1 60); do
    id="$(curl -fsS -H "$AUTH" "$API/v1/contacts?email=reader.$i.$RUN@deliver.bench" \
      | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const c=JSON.parse(s).contacts[0];console.log(c?c.id:"")})')"
    [ -n "$id" ] && break
    sleep 0.5
  done
  [ -n "$id" ] || { echo "deliver bench: contact $i never arrived" >&2; exit 1; }
  ids+=("'$id'")
done
version="$(curl -fsS -H "$AUTH" "$API/v1/templates/whitepaper" \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).version))')"

# The outbox rows: due retries, round-robin over the contacts.
values="$(IFS=,; echo "${ids[*]}")"
wrangler d1 execute DB --local --persist-to "$PERSIST" -c wrangler.toml --yes --command "
  WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $N - 1),
  c(k, id) AS (SELECT row_number() OVER () - 1, value FROM json_each(json_array($values)))
  INSERT INTO messages (workspace, id, idempotency_key, contact_id, channel, kind, template_id,
    template_version, state, next_attempt_at, created_at, updated_at)
  SELECT 'default', printf('m_bench_%s_%06d', '$RUN', i), printf('bench:%s:%d', '$RUN', i), c.id,
    'email', 'transactional', 'whitepaper', $version, 'retry', 0, $RUN * 1000, $RUN * 1000
  FROM n JOIN c ON c.k = n.i % $CONTACTS;" >/dev/null

sent() { curl -fsS "$SINK/_sink/requests?path_prefix=/v3/mail/send" | node -e '
  let s=""; process.stdin.on("data",d=>s+=d).on("end",()=>{
    const r = JSON.parse(s).filter(x => x.body.includes("@deliver.bench") && x.body.includes("'"$RUN"'"));
    const t = r.map(x => x.time_ms).sort((a, b) => a - b);
    console.log(r.length, t[0] || 0, t[t.length - 1] || 0); })'; }

tick() { curl -fsS -o /dev/null "$ENGINE/cdn-cgi/handler/scheduled?cron=*/5+*+*+*+*&time=$1"; }
t0=$(date +%s.%N)
at=$(($(date +%s) * 1000))
# The whole backlog on the queue at once: enough ticks, all started together, each at its own
# second (each hands out the next 500; the ones before are leased). One after another they
# would pace the measurement: a tick takes about 2 s here, 500 messages per tick.
for k in $(seq 0 $(((N - 1) / 500))); do tick $((at + k * 1000)) & done
wait
at=$((at + 1000 * ((N - 1) / 500 + 1)))
while :; do
  read -r count first last <<<"$(sent)"
  [ "$count" -ge "$N" ] && break
  [ "$(calc "$(date +%s.%N) - $t0 > 600")" = 1 ] && { echo "deliver bench: only $count of $N after 600 s" >&2; break; }
  sleep 2
  # A safety net, as in production: a tick that failed hands its messages out later.
  tick "$at"
  at=$((at + 1000))
done
wall=$(calc "$(date +%s.%N) - $t0")
span=$(calc "($last - $first) / 1000")
rate=$(calc "($span > 0) ? ($count - 1) / $span : 0")

# Baseline: Node posting the same number of requests straight to the sink, 50 in flight.
base="$(node -e '
  const [sink, n] = [process.argv[1], Number(process.argv[2])];
  let next = 0; const t0 = performance.now();
  const worker = async () => { while (next < n) { next++;
    await (await fetch(sink + "/v3/mail/send", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ personalizations: [{ to: [{ email: "baseline@sink.bench" }] }] }) })).text(); } };
  Promise.all(Array.from({ length: 50 }, worker)).then(() => console.log((n / ((performance.now() - t0) / 1000)).toFixed(1)));
' "$SINK" "$N")"

echo "DELIVER_N=$N"
echo "DELIVER_CONTACTS=$CONTACTS"
echo "DELIVER_SENT=$count"
echo "DELIVER_RATE=$(printf '%.1f' "$rate")"
echo "DELIVER_WALL_S=$(printf '%.1f' "$wall")"
echo "DELIVER_SINK_BASELINE=$base"
