#!/usr/bin/env bash
# One version for Python, Rust and Maven. Its source is the Rust workspace's version
# (operators/Cargo.toml, [workspace.package]); the Python package takes it from there at build
# time (pyproject: dynamic = ["version"]); the Maven poms repeat it, and this script keeps them equal.
#
#   scripts/version.sh            print the version
#   scripts/version.sh check      exit 1 unless every pom says the same version (make lint runs it)
#   scripts/version.sh set X.Y.Z  write X.Y.Z into Cargo.toml, Cargo.lock and the poms
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO="$ROOT/operators/Cargo.toml"
POMS=("$ROOT/connectors/flink/pom.xml" "$ROOT/examples/flink-udf/pom.xml")

cargo_version() { sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$CARGO"; }
# The project's own version in a pom, and the streamml-flink dependency's where the pom has one.
pom_versions() {
  python3 - "$1" <<'PY'
import sys
import xml.etree.ElementTree as ET
ns = {"m": "http://maven.apache.org/POM/4.0.0"}
root = ET.parse(sys.argv[1]).getroot()
print(root.find("m:version", ns).text)
for dep in root.iterfind(".//m:dependency", ns):
    if dep.findtext("m:artifactId", namespaces=ns) == "streamml-flink":
        print(dep.findtext("m:version", namespaces=ns))
PY
}

version="$(cargo_version)"
case "${1:-}" in
  "") echo "$version" ;;
  check)
    bad=0
    for pom in "${POMS[@]}"; do
      while read -r v; do
        if [[ "$v" != "$version" ]]; then
          echo "version.sh: ${pom#"$ROOT"/} says $v; operators/Cargo.toml says $version (scripts/version.sh set $version)" >&2
          bad=1
        fi
      done < <(pom_versions "$pom")
    done
    exit "$bad"
    ;;
  set)
    new="${2:?usage: scripts/version.sh set X.Y.Z}"
    [[ "$new" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-.][0-9A-Za-z.]+)?$ ]] || { echo "version.sh: '$new' is not X.Y.Z" >&2; exit 1; }
    sed -i "/^\[workspace.package\]/,/^\[/s/^version = \".*\"/version = \"$new\"/" "$CARGO"
    for pom in "${POMS[@]}"; do
      # The project's version (the first <version> after <artifactId>streamml-...) and the dependency's.
      sed -i -E "0,/<version>$version<\/version>/s//<version>$new<\/version>/" "$pom"
      sed -i -E "/<artifactId>streamml-flink<\/artifactId>/{n;s/<version>$version<\/version>/<version>$new<\/version>/}" "$pom"
    done
    (cd "$ROOT/operators" && cargo update --workspace --offline --quiet)
    "$0" check
    echo "$new"
    ;;
  *) echo "usage: scripts/version.sh [check | set X.Y.Z]" >&2; exit 1 ;;
esac
