#!/usr/bin/env bash
# Print the path of a headless-capable Chromium, installing Debian's `chromium` package with
# apt-get if none is on the PATH (CI machines are fresh; needs root there). The report test
# renders `streamml report`'s page with it.
set -euo pipefail
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null; then command -v "$name"; exit 0; fi
done
[[ "$(id -u)" == 0 ]] || { echo "chromium.sh: no chromium on PATH; install Debian's chromium package (needs root)" >&2; exit 1; }
echo "chromium.sh: installing Debian's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium >&2
command -v chromium
