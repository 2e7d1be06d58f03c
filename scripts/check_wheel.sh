#!/usr/bin/env bash
# Install the built wheel as a user would and use it outside the checkout (make test-wheel).
#
#   scripts/check_wheel.sh [WHEEL]    default: dist/streamml-*-cp311-cp311-*_x86_64.whl (make wheels)
#
# 1. A clean virtualenv in a temporary directory gets the wheel with [all] (and scikit-learn, to
#    train a model) from PyPI, pinned by constraints.txt; from an empty directory there,
#    scripts/check_wheel.py compiles a RandomForest saved with joblib.dump and scores it (equal to
#    predict_proba), imports streamml.bytewax, runs `streamml score` against the broker
#    (STREAMML_KAFKA_BOOTSTRAP, else scripts/kafka.sh start) and `streamml demo`.
#    The abi3 wheel beside a cp311 one passes the same checks in that venv. The aarch64 wheels
#    beside them are installed for an aarch64 CPython run under qemu and score the
#    binary compiled with --target linux-aarch64 (scripts/check_wheel_aarch64.sh).
# 2. A virtualenv with the wheel alone (no extras): the core works, and each feature whose extra
#    is missing says which extra to install and exits 2.
# Environment: PYTHON (default python3), STREAMML_KAFKA_BOOTSTRAP, STREAMML_KAFKA_PORT.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WHEEL="${1:-$(ls "$ROOT"/dist/streamml-*-cp311-cp311-*_x86_64.whl 2>/dev/null | head -1)}"
[[ -f "$WHEEL" ]] || { echo "check_wheel: no wheel given and none in dist/; run make wheels" >&2; exit 1; }
WHEEL="$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/streamml-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
case "$WORK" in "$ROOT"/*) echo "check_wheel: $WORK is inside the checkout" >&2; exit 1 ;; esac
BOOTSTRAP="${STREAMML_KAFKA_BOOTSTRAP:-$("$ROOT/scripts/kafka.sh" start | tail -1)}"
echo "check_wheel: $(basename "$WHEEL") in $WORK, broker $BOOTSTRAP"

# Every check runs with the venv's tools first on PATH, from an empty directory, with nothing of
# the checkout on the path.
in_venv() {  # VENV DIR COMMAND...
  local venv="$1" dir="$2"; shift 2
  (cd "$dir" && env -u PYTHONPATH -u VIRTUAL_ENV PATH="$venv/bin:$PATH" "$@")
}

"$PYTHON" -m venv "$WORK/all"
"$WORK/all/bin/python" -m pip install --quiet --upgrade pip
"$WORK/all/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" "$WHEEL[all]" scikit-learn
mkdir "$WORK/run"
cp "$ROOT/scripts/check_wheel.py" "$WORK/check_wheel.py"
in_venv "$WORK/all" "$WORK/run" python "$WORK/check_wheel.py" "$BOOTSTRAP"

# The aarch64 binary runs: compiled here with --target linux-aarch64, loaded and scored by the C
# host (operators/sdk/examples/c/score_host.c, built with zig for aarch64) under qemu-aarch64,
# it gives the x86_64 binary's scores (written by check_wheel.py) digit for digit.
if ! command -v qemu-aarch64-static >/dev/null || [[ ! -e /usr/aarch64-linux-gnu/lib/libgcc_s.so.1 ]]; then
  echo "check_wheel: installing qemu-user-static and the aarch64 C runtime (apt-get)" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    qemu-user-static libc6-arm64-cross libgcc-s1-arm64-cross >&2
fi
ZIG="${ZIG:-$ROOT/.venv/bin/python -m ziglang}"
$ZIG cc -target aarch64-linux-gnu.2.28 -std=c99 -O2 -I "$ROOT/operators/abi/include" \
  "$ROOT/operators/sdk/examples/c/score_host.c" -o "$WORK/score_host-aarch64" -ldl
in_venv "$WORK/all" "$WORK/run" streamml compile forest.joblib -o forest-aarch64.so --target linux-aarch64 \
  --features f0,f1,f2,f3,f4,f5 >/dev/null
"$ROOT/scripts/check_glibc.sh" "$WORK/run/forest-aarch64.so" >/dev/null
(cd "$WORK/run" && qemu-aarch64-static -L /usr/aarch64-linux-gnu "$WORK/score_host-aarch64" \
  ./forest-aarch64.so f0,f1,f2,f3,f4,f5 rows.f64 2>host.log >scores-aarch64.txt) \
  || { echo "check_wheel: the aarch64 host failed under qemu:" >&2; cat "$WORK/run/host.log" >&2; exit 1; }
cmp -s "$WORK/run/scores-aarch64.txt" "$WORK/run/expected.txt" || {
  echo "check_wheel: the aarch64 binary's scores differ from the x86_64 binary's:" >&2
  diff "$WORK/run/scores-aarch64.txt" "$WORK/run/expected.txt" | head >&2; exit 1; }
echo "ok  streamml compile --target linux-aarch64: $(wc -l <"$WORK/run/expected.txt") rows under qemu-aarch64 equal to x86_64"
# The abi3 wheel beside a cp311 one (what CPython 3.12+ gets) passes the same checks, in the same
# venv with the wheel swapped, from another empty directory.
WHEELS=("$WHEEL")
ABI3_WHEEL="${WHEEL/-cp311-cp311-/-cp311-abi3-}"
if [[ "$ABI3_WHEEL" != "$WHEEL" ]]; then
  [[ -f "$ABI3_WHEEL" ]] || { echo "check_wheel: no $ABI3_WHEEL beside $WHEEL; run make wheels" >&2; exit 1; }
  "$WORK/all/bin/python" -m pip install --quiet --force-reinstall --no-deps "$ABI3_WHEEL"
  mkdir "$WORK/run-abi3"
  echo "check_wheel: $(basename "$ABI3_WHEEL")"
  in_venv "$WORK/all" "$WORK/run-abi3" python "$WORK/check_wheel.py" "$BOOTSTRAP"
  WHEELS+=("$ABI3_WHEEL")
fi
# The aarch64 wheels themselves: their extension imported and scoring under qemu (an aarch64 CPython).
for wheel in "${WHEELS[@]}"; do
  aarch64_wheel="${wheel%_x86_64.whl}_aarch64.whl"
  [[ -f "$aarch64_wheel" ]] || { echo "check_wheel: no $aarch64_wheel beside $wheel; run make wheels" >&2; exit 1; }
  echo "check_wheel: $(basename "$aarch64_wheel")"
  PYTHON="$WORK/all/bin/python" "$ROOT/scripts/check_wheel_aarch64.sh" "$aarch64_wheel" "$WORK/run"
done

"$PYTHON" -m venv "$WORK/bare"
"$WORK/bare/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" "$WHEEL"
mkdir "$WORK/bare-run"
cp "$WORK/run/forest.so" "$WORK/bare-run/"
# expect_missing EXIT-CODE EXPECTED-STDERR COMMAND...: the command fails with exactly that line.
expect_missing() {
  local want="$1"; shift
  local err rc=0
  err="$(in_venv "$WORK/bare" "$WORK/bare-run" "$@" 2>&1 >/dev/null)" || rc=$?
  if [[ $rc -ne 2 || "$err" != "$want" ]]; then
    echo "check_wheel: '$*' exited $rc with:" >&2; echo "$err" >&2; echo "expected exit 2 with: $want" >&2
    exit 1
  fi
  echo "ok  no extras: $1 $2 -> $want"
}
in_venv "$WORK/bare" "$WORK/bare-run" streamml inspect forest.so >/dev/null
echo "ok  no extras: streamml inspect forest.so"
expect_missing "streamml score needs confluent-kafka: pip install 'streamml[kafka]'" \
  streamml score --model forest.so --bootstrap-servers "$BOOTSTRAP" --input-topic in --output-topic out
expect_missing "streamml demo needs bytewax: pip install 'streamml[bytewax]'" streamml demo
expect_missing "streamml report: error: store URI 'm.db' needs adbc-driver-sqlite: pip install 'streamml[store]'" \
  streamml report --store m.db
expect_missing "streamml report: error: store URI 'duckdb:///m.duckdb' needs duckdb: pip install 'streamml[duckdb]'" \
  streamml report --store duckdb:///m.duckdb
out="$(in_venv "$WORK/bare" "$WORK/bare-run" python -c 'import streamml.bytewax' 2>&1)" && { echo "import streamml.bytewax worked without bytewax" >&2; exit 1; }
[[ "$(tail -1 <<<"$out")" == "streamml._extras.MissingExtraError: streamml.bytewax needs bytewax: pip install 'streamml[bytewax]'" ]] \
  || { echo "check_wheel: import streamml.bytewax without bytewax said:" >&2; echo "$out" >&2; exit 1; }
echo "ok  no extras: import streamml.bytewax -> streamml.bytewax needs bytewax: pip install 'streamml[bytewax]'"
echo "check_wheel: all checks passed"
