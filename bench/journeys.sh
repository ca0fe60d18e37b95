#!/usr/bin/env bash
# Journey benchmark on a running stack: how fast engine's cron steps due enrollments, what a
# step costs in D1 statements, and whether a tick's cost follows the work due or the size of the
# contact base. Prints `key=value` lines for bench/run.sh.
#
#   bench/journeys.sh STATE_DIR API_URL ENGINE_URL TOKEN [contacts] [drained enrollments]
#
# The journey (`bench-steps`) is four steps and a wait: a condition on the score, a tag, a
# field, then a week's wait, so every step is journey work and no message floods deliver.
# Contacts and due enrollments are written straight into the local D1 file: the benchmark
# measures stepping, not enrolment through the queue (which the integration tests cover).
#  1. same due work, two base sizes: 5,000 due enrollments among 10,000 contacts, then 5,000
#     more among 100,000 — one tick each;
#  2. the drain: 100,000 due enrollments, ticks until none is due; the steps per second of
#     tick time, the slowest tick, and the engine process's CPU per tick (workerd, which also
#     runs local D1: an over-estimate of the Worker's own CPU).
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
STATE="$1" API="$2" ENGINE="$3" TOKEN="$4"
CONTACTS="${5:-100000}"
DRAIN="${6:-100000}"
SAME_DUE=5000
SMALL=$((CONTACTS / 10))
AUTH="Authorization: Bearer $TOKEN"
NOW_MS=$(($(date +%s) * 1000))
DAY=86400000
ENGINE_PORT="${ENGINE##*:}"

calc() { awk "BEGIN { x = ($1); print x }"; } # in an assignment, > compares (after print it would redirect)
d1() { wrangler d1 execute DB --local --persist-to "$STATE" -c wrangler.toml --yes "$@"; }
count() { d1 --json --command "$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s)[0].results[0];console.log(Object.values(r)[0])})'; }

# The engine's workerd processes: the children of the wrangler dev serving ENGINE's port.
wrangler_pid="$(pgrep -f "wrangler-dist/cli.js dev.*--port $ENGINE_PORT" | head -1)"
cpu_s() { # user + system seconds of the engine's workerd processes so far
  local stats=()
  for p in $(pgrep -P "$wrangler_pid" workerd || true); do stats+=("/proc/$p/stat"); done
  [[ ${#stats[@]} -gt 0 ]] || { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{ t += $14 + $15 } END { print t / hz }' "${stats[@]}"
}

journey='{"name": "Benchmark: four steps and a wait", "entry": {"event": "bench_never"},
  "start": "check", "nodes": {
  "check": {"type": "condition", "if": {"score": {"gte": 0}}, "then": "tag", "else": "tag"},
  "tag": {"type": "tag", "add": "bench", "next": "field"},
  "field": {"type": "set_field", "field": "bench_seen", "value": true, "next": "week"},
  "week": {"type": "wait", "duration": "7d", "next": "check"}}}'
curl -fsS -o /dev/null -X PUT -H "$AUTH" -H 'Content-Type: application/json' --data "$journey" "$API/v1/journeys/bench-steps"
version="$(count "SELECT version FROM journeys WHERE id = 'bench-steps'")"

# Contacts `c_j…` (after every real id), known, so the facts query reads real rows.
contacts() { # from to
  d1 --command "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i < $2 - 1)
    INSERT OR IGNORE INTO contacts (id, workspace, lead_status, score, first_seen_at, last_seen_at, created_at, updated_at)
    SELECT printf('c_j%023x', i), 'default', 'known', i % 50, $NOW_MS, $NOW_MS, $NOW_MS, $NOW_MS FROM n;" >/dev/null
}
# `n` enrollments due at `at`, for contacts from `first` on (every `stride`-th), keyed `key`.
enrol() { # first n stride at key
  d1 --command "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $2 - 1)
    INSERT OR IGNORE INTO enrollments (workspace, id, journey_id, version, contact_id, entry_key, state, node,
      step, next_run_at, context, started_at, updated_at)
    SELECT 'default', printf('en_bench_%s_%08d', '$5', i), 'bench-steps', $version,
      printf('c_j%023x', $1 + i * $3), '$5', 'active', 'check', 0, $4, '{}', $4, $4 FROM n;" >/dev/null
}
steps_done() { count "SELECT count(*) FROM journey_steps WHERE journey_id = 'bench-steps'"; }
due_left() { count "SELECT count(*) FROM enrollments WHERE journey_id = 'bench-steps' AND state IN ('active', 'waiting') AND next_run_at <= $1"; }
tick() { curl -fsS -o /dev/null "$ENGINE/cdn-cgi/handler/scheduled?cron=*/5+*+*+*+*&time=$1"; }
journey_ms_of() { # the journey pass's milliseconds in the last tick engine logged
  sleep 0.5
  grep -o 'statements: [0-9]* } } in [0-9]* ms' "$STATE/engine.log" | tail -1 | awk '{ print $6 }'
}

# An empty tick first: what a tick costs with nothing due (the baseline of this run).
at=$((NOW_MS + DAY))
t0=$(date +%s.%N); tick "$at"; empty_s=$(calc "$(date +%s.%N) - $t0")

# 1. The same due work over 10,000 and over 100,000 contacts.
contacts 0 "$SMALL"
at=$((at + 300000))
enrol 0 "$SAME_DUE" 2 "$at" small
s0=$(steps_done); t0=$(date +%s.%N); tick "$at"; small_s=$(calc "$(date +%s.%N) - $t0")
small_steps=$(( $(steps_done) - s0 )); small_ms=$(journey_ms_of)
contacts "$SMALL" "$CONTACTS"
at=$((at + 300000))
enrol 1 "$SAME_DUE" 2 "$at" large
s0=$(steps_done); t0=$(date +%s.%N); tick "$at"; large_s=$(calc "$(date +%s.%N) - $t0")
large_steps=$(( $(steps_done) - s0 )); large_ms=$(journey_ms_of)

# 2. The drain.
at=$((at + 300000))
enrol 0 "$DRAIN" 1 "$at" drain
s0=$(steps_done)
log_lines=$(wc -l < "$STATE/engine.log" 2>/dev/null || echo 0)
ticks=0 max_tick=0 max_cpu=0 total=0
while [[ "$(due_left "$at")" -gt 0 ]]; do
  c0=$(cpu_s); t0=$(date +%s.%N)
  tick "$at"
  took=$(calc "$(date +%s.%N) - $t0"); cpu=$(calc "$(cpu_s) - $c0")
  ticks=$((ticks + 1)); total=$(calc "$total + $took")
  max_tick=$(calc "($took > $max_tick) ? $took : $max_tick")
  max_cpu=$(calc "($cpu > $max_cpu) ? $cpu : $max_cpu")
  at=$((at + 300000))
  [[ $ticks -lt 200 ]] || { echo "journeys: the drain did not finish" >&2; exit 1; }
done
drain_steps=$(( $(steps_done) - s0 ))
# Statements per step and the journey pass's own time, from the ticks' accounting in engine's
# log (a tick also runs scoring, stages, tags and cleaning, which the wall time above includes).
read -r log_steps log_statements journey_ms max_journey_ms < <(tail -n +"$((log_lines + 1))" "$STATE/engine.log" \
  | grep -o 'steps: [0-9]*, messages: [0-9]*, statements: [0-9]* } } in [0-9]* ms' \
  | awk '{ s += $2; st += $6; ms += $10; if ($10 > mx) mx = $10 } END { print s + 0, st + 0, ms + 0, mx + 0 }')

echo "JOURNEY_EMPTY_TICK_S=$empty_s"
echo "JOURNEY_SAME_DUE=$SAME_DUE"
echo "JOURNEY_SMALL_CONTACTS=$SMALL"
echo "JOURNEY_LARGE_CONTACTS=$CONTACTS"
echo "JOURNEY_SMALL_TICK_S=$small_s"
echo "JOURNEY_LARGE_TICK_S=$large_s"
echo "JOURNEY_SMALL_STEPS=$small_steps"
echo "JOURNEY_SMALL_PASS_MS=$small_ms"
echo "JOURNEY_LARGE_PASS_MS=$large_ms"
echo "JOURNEY_LARGE_STEPS=$large_steps"
echo "JOURNEY_DRAIN=$DRAIN"
echo "JOURNEY_DRAIN_STEPS=$drain_steps"
echo "JOURNEY_DRAIN_TICKS=$ticks"
echo "JOURNEY_DRAIN_S=$total"
echo "JOURNEY_MAX_TICK_S=$max_tick"
echo "JOURNEY_MAX_TICK_CPU_S=$max_cpu"
echo "JOURNEY_STEPS_PER_S=$(calc "$drain_steps / $total")"
echo "JOURNEY_LOG_STEPS=$log_steps"
echo "JOURNEY_PASS_S=$(calc "$journey_ms / 1000")"
echo "JOURNEY_MAX_PASS_S=$(calc "$max_journey_ms / 1000")"
echo "JOURNEY_PASS_STEPS_PER_S=$(calc "($journey_ms > 0) ? $log_steps / ($journey_ms / 1000) : 0")"
echo "JOURNEY_STATEMENTS_PER_STEP=$(calc "($log_steps > 0) ? $log_statements / $log_steps : 0")"
