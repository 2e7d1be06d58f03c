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
  # The model binary names the rows (fraud 1); the flags are score's where the idea is the same.
  "$STREAMML" feedback --bootstrap-servers "$BOOTSTRAP" --predictions-topic "$PREDICTIONS_TOPIC" \
    --labels-topic "$LABELS_TOPIC" --store "$STORE" --ttl-s 120 --window-s 60 --model "$OUT/fraud.so" \
    --group-id "$FEEDBACK_GROUP" --idle-exit-s "${IDLE_EXIT:-10}"
}
# Run the feedback service until it has read all of topic $1. It stops when idle; should that be
# before it read everything (a slow group join, say), it is run again: it resumes from its checkpoint.
feedback_through() {
  for attempt in 1 2 3; do
    feedback
    if "$PY" "$HERE/topics.py" wait --bootstrap "$BOOTSTRAP" --group "$FEEDBACK_GROUP" --timeout 0 "$1"; then
      return 0
    fi
  done
  return 1
}
generate events

# Score the events; carry each event's time into its prediction (the feedback join needs it).
"$STREAMML" score --model "$OUT/fraud.so" --bootstrap-servers "$BOOTSTRAP" \
  --input-topic "$EVENTS_TOPIC" --output-topic "$PREDICTIONS_TOPIC" --group-id "$SCORE_GROUP" \
  --id-field event_id --carry-field event_time --store "$STORE" --window-s 60 \
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
feedback_through "$PREDICTIONS_TOPIC"
# Later, the labels arrive: joined onto the restored pending predictions.
generate labels
feedback_through "$LABELS_TOPIC"
"$STREAMML" report --store "$STORE" --model fraud -o "$OUT/report.html"
