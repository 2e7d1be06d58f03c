#!/usr/bin/env bash
# The aarch64 wheel used as a user on an aarch64 machine uses it (called by scripts/check_wheel.sh):
# installed with the aarch64 wheels of its pinned dependencies for Debian's aarch64 CPython 3.11,
# which runs under qemu-aarch64, it imports, `streamml inspect` reads the binary compiled with
# `--target linux-aarch64`, and `Model.predict` (a pyarrow batch, dicts) and `predict_numpy` (one row)
# give the x86_64 binary's scores digit for digit.
#
#   scripts/check_wheel_aarch64.sh WHEEL RUN_DIR
#
# RUN_DIR holds forest-aarch64.so, rows.f64 (200 rows of f0..f5, little-endian float64) and
# expected.txt (the x86_64 scores, %.17g), as check_wheel.sh leaves them. The aarch64 CPython is
# taken from Debian's arm64 packages (dpkg --add-architecture arm64; apt-get download; dpkg -x)
# into ~/.cache/streamml/aarch64-python (STREAMML_AARCH64_PYTHON) once; no aarch64 package is
# installed into the system.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEEL="${1:?usage: check_wheel_aarch64.sh WHEEL RUN_DIR}"
RUN="${2:?usage: check_wheel_aarch64.sh WHEEL RUN_DIR}"
PYTHON="${PYTHON:-python3}"
SYSROOT="${STREAMML_AARCH64_PYTHON:-$HOME/.cache/streamml/aarch64-python}"
# Debian bookworm's python3.11 and what it links (apt-cache depends, resolved once by hand).
PACKAGES=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libgcc-s1 libstdc++6
  libbz2-1.0 libcrypt1 libexpat1 libffi8 liblzma5 libncursesw6 libreadline8 libsqlite3-0 libtinfo6
  libuuid1 zlib1g libssl3 libnsl2 libtirpc3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2
  libkrb5support0 libkeyutils1 libdb5.3)

if [[ ! -f "$SYSROOT/.complete" ]]; then
  echo "check_wheel_aarch64: unpacking Debian's aarch64 CPython 3.11 into $SYSROOT" >&2
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-get update -qq >&2
  debs="$(mktemp -d)"
  (cd "$debs" && apt-get download -qq "${PACKAGES[@]/%/:arm64}" >&2 2>/dev/null) \
    || { echo "check_wheel_aarch64: apt-get could not download ${PACKAGES[*]} for arm64" >&2; exit 1; }
  rm -rf "$SYSROOT" && mkdir -p "$SYSROOT"
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$SYSROOT"; done
  rm -rf "$debs"
  touch "$SYSROOT/.complete"
fi

# The wheel and its dependencies as pip resolves them for an aarch64 CPython 3.11 (pinned).
SITE="$(mktemp -d "${TMPDIR:-/tmp}/streamml-aarch64.XXXXXX")"
trap 'rm -rf "$SITE"' EXIT
"$PYTHON" -m pip install --quiet --target "$SITE" --platform manylinux_2_28_aarch64 --python-version 3.11 \
  --implementation cp --only-binary=:all: -c "$ROOT/constraints.txt" "$WHEEL"

py_aarch64() {  # run Debian's aarch64 CPython under qemu, with only the wheel's site on its path
  (cd "$RUN" && env -u VIRTUAL_ENV PYTHONPATH="$SITE" PYTHONNOUSERSITE=1 \
    qemu-aarch64-static -L "$SYSROOT" "$SYSROOT/usr/bin/python3.11" "$@")
}

py_aarch64 -c 'import platform, streamml; assert platform.machine() == "aarch64", platform.machine()'
py_aarch64 -c 'import sys; from streamml.cli import main; sys.exit(main())' inspect forest-aarch64.so >/dev/null \
  || { echo "check_wheel_aarch64: streamml inspect forest-aarch64.so failed under qemu" >&2; exit 1; }
py_aarch64 - <<'PY'
import numpy as np
import pyarrow as pa

from streamml import Model

names = [f"f{i}" for i in range(6)]
x = np.fromfile("rows.f64", dtype="<f8").reshape(-1, len(names))
expected = [line for line in open("expected.txt").read().splitlines()]
model = Model.load("forest-aarch64.so")
batch = pa.record_batch([pa.array(x[:, j]) for j in range(len(names))], names=names)
scores = model.predict(batch).column("probability").to_pylist()
got = [f"{v:.17g}" for v in scores]
assert got == expected, f"Model.predict on aarch64 differs from x86_64: {got[:3]} vs {expected[:3]}"
dicts = [dict(zip(names, row)) for row in x[:20].tolist()]
from_dicts = model.predict(dicts).column("probability").to_pylist()
assert [f"{v:.17g}" for v in from_dicts] == expected[:20], "predict on dicts differs on aarch64"
one = model.predict_numpy(x[0])["probability"]
assert f"{float(one[0]):.17g}" == expected[0], (one, expected[0])
print(f"ok  aarch64 wheel under qemu: import, inspect, predict on {len(got)} rows, dicts and predict_numpy equal x86_64")
PY
