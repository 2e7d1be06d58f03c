#!/usr/bin/env bash
# The monitoring loop on Kafka with a PostgreSQL store, on a machine without Docker:
#   generate.py ─► events topic ─► streamml score ─► predictions topic ─┐
#      (later) └► labels topic ───────────────────────────────────────┴► streamml feedback ─► store ─► streamml report
# (the scorer also writes its drift windows to the store). The labels arrive after the
# predictions were read, as they do in life (hours later): `streamml feedback` reads the
# predictions and stops when idle, the labels are produced, and it is started again: it resumes
# from its checkpoint in the store. A broker from scripts/kafka.sh and
# PostgreSQL from scripts/postgres.sh, unless BOOTSTRAP / STORE say where they are. With Docker:
# `docker compose up -d kafka postgres` and BOOTSTRAP=localhost:9092 STORE=postgresql://streamml@localhost:5432/streamml.
# Other settings: EVENTS (30000), OUT (out/kafka-monitoring), RUN (names this run's topics and
# groups), IDLE_EXIT (seconds the feedback service waits for more, 10), KEEP_TOPICS=1 keeps the topics.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
HERE="$ROOT/examples/kafka/monitoring"
PY="$ROOT/.venv/bin/python"
STREAMML="$ROOT/.venv/bin/streamml"
BOOTSTRAP="${BOOTSTRAP:-$(bash "$ROOT/scripts/kafka.sh" start)}"
STORE="${STORE:-$(bash "$ROOT/scripts/postgres.sh" start)}"
OUT="${OUT:-$ROOT/out/kafka-monitoring}"
RUN="${RUN:-$(date +%s)-$$}"
EVENTS_TOPIC="streamml-events-$RUN"
LABELS_TOPIC="streamml-labels-$RUN"
PREDICTIONS_TOPIC="streamml-predictions-$RUN"
SCORE_GROUP="streamml-score-$RUN"
mkdir -p "$OUT"

SCORER=""
cleanup() {
  if [ -n "$SCORER" ] && kill -0 "$SCORER" 2>/dev/null; then kill -TERM "$SCORER"; wait "$SCORER" || true; fi
  if [ "${KEEP_TOPICS:-0}" != 1 ]; then
    "$PY" "$HERE/topics.py" delete --bootstrap "$BOOTSTRAP" \
      "$EVENTS_TOPIC" "$LABELS_TOPIC" "$PREDICTIONS_TOPIC" "$EVENTS_TOPIC.dlq" || true
  fi
}
trap cleanup EXIT

"$PY" "$HERE/topics.py" create --bootstrap "$BOOTSTRAP" "$EVENTS_TOPIC" "$LABELS_TOPIC" "$PREDICTIONS_TOPIC"
generate() {
  "$PY" "$HERE/generate.py" --bootstrap "$BOOTSTRAP" --events-topic "$EVENTS_TOPIC" --labels-topic "$LABELS_TOPIC" \
    --events "${EVENTS:-30000}" --out "$OUT" --part "$1"
}
FEEDBACK_GROUP="streamml-feedback-$RUN"
feedback() {
  "$STREAMML" feedback --bootstrap "$BOOTSTRAP" --predictions "$PREDICTIONS_TOPIC" \
    --labels "$LABELS_TOPIC" --store "$STORE" --ttl 120 --window 60 --model fraud --model-version 1 \
    --group "$FEEDBACK_GROUP" --idle-exit "${IDLE_EXIT:-10}"
}
generate events

# Score the events; carry each event's time into its prediction (the feedback join needs it).
"$STREAMML" score --model "$OUT/fraud.so" --bootstrap-servers "$BOOTSTRAP" \
  --input-topic "$EVENTS_TOPIC" --output-topic "$PREDICTIONS_TOPIC" --group-id "$SCORE_GROUP" \
  --id-field event_id --carry-field event_time --store "$STORE" --drift-window-s 60 \
  >"$OUT/score.log" 2>&1 &
SCORER=$!
# A stream has no end: once the scorer has committed every event, SIGTERM drains it and it exits 0.
if ! "$PY" "$HERE/topics.py" wait --bootstrap "$BOOTSTRAP" --group "$SCORE_GROUP" --pid "$SCORER" "$EVENTS_TOPIC"; then
  cat "$OUT/score.log" >&2
  exit 1
fi
kill -TERM "$SCORER"
if ! wait "$SCORER"; then
  echo "run.sh: streamml score failed; its log:" >&2
  cat "$OUT/score.log" >&2
  exit 1
fi
SCORER=""
tail -n 1 "$OUT/score.log"

# The predictions: pending in the join, checkpointed to the store with the offsets they cover.
# (Should it go idle before it read them all, e.g. a slow group join, it is run again: it resumes.)
for attempt in 1 2 3; do
  feedback
  if "$PY" "$HERE/topics.py" wait --bootstrap "$BOOTSTRAP" --group "$FEEDBACK_GROUP" --timeout 0 "$PREDICTIONS_TOPIC"; then
    break
  fi
  if [ "$attempt" = 3 ]; then exit 1; fi
done
# Later, the labels arrive.
generate labels
feedback   # the labels: joined onto the restored pending predictions
"$STREAMML" report --store "$STORE" --model fraud -o "$OUT/report.html"
