#!/usr/bin/env bash
# The monitoring loop on Kafka with a PostgreSQL store, on a machine without Docker:
# a broker from scripts/kafka.sh, PostgreSQL from scripts/postgres.sh, the generator,
# `streamml feedback` and `streamml report`. With Docker: `docker compose up -d kafka postgres`
# and set BOOTSTRAP=localhost:9092 STORE=postgresql://streamml@localhost:5432/streamml.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
PY="$ROOT/.venv/bin/python"
BOOTSTRAP="${BOOTSTRAP:-$(bash "$ROOT/scripts/kafka.sh" start)}"
STORE="${STORE:-$(bash "$ROOT/scripts/postgres.sh" start)}"
OUT="${OUT:-$ROOT/out/kafka-monitoring}"
"$PY" "$(dirname "$0")/generate.py" --bootstrap "$BOOTSTRAP" --events "${EVENTS:-30000}" --out "$OUT"
"$ROOT/.venv/bin/streamml" feedback --bootstrap "$BOOTSTRAP" --predictions streamml-predictions \
  --labels streamml-labels --store "$STORE" --ttl 120 --window 60 --model fraud --model-version 1 \
  --group "streamml-feedback-$$" --idle-exit 10
"$ROOT/.venv/bin/streamml" report --store "$STORE" --model fraud -o "$OUT/report.html"
