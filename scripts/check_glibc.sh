#!/usr/bin/env bash
# The glibc floor of what streamml ships: every shared library in the given wheels, jars or files
# needs glibc <= STREAMML_GLIBC (default 2.28), i.e. `objdump -T` shows no GLIBC_x.y symbol
# version newer than it. Prints each library's newest version; exits 1 if one is too new.
#
#   scripts/check_glibc.sh dist/*.whl connectors/flink/target/streamml-flink-*.jar model.so
set -euo pipefail

FLOOR="${STREAMML_GLIBC:-2.28}"
[[ $# -gt 0 ]] || { echo "usage: scripts/check_glibc.sh WHEEL|JAR|SO..." >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
n=0
for file in "$@"; do
  [[ -f "$file" ]] || { echo "check_glibc: $file does not exist" >&2; exit 1; }
  case "$file" in
    *.whl | *.jar | *.zip)
      dir="$WORK/$((n++))"
      mkdir -p "$dir"
      python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); z.extractall(sys.argv[2], [m for m in z.namelist() if m.endswith(".so")])' "$file" "$dir"
      ;;
  esac
done
libs=()
for file in "$@"; do
  case "$file" in *.whl | *.jar | *.zip) ;; *) libs+=("$file") ;; esac
done
while IFS= read -r -d '' so; do libs+=("$so"); done < <(find "$WORK" -name '*.so' -print0)
[[ ${#libs[@]} -gt 0 ]] || { echo "check_glibc: no shared library in $*" >&2; exit 1; }
bad=0
for so in "${libs[@]}"; do
  newest="$(objdump -T "$so" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -1)"
  shown="${so#"$WORK"/*/}"
  if [[ -n "$newest" && "$(printf '%s\n%s\n' "$newest" "$FLOOR" | sort -V | tail -1)" != "$FLOOR" ]]; then
    echo "check_glibc: $shown needs GLIBC_$newest, newer than the floor $FLOOR:" >&2
    objdump -T "$so" | grep -E "GLIBC_($(printf '%s' "$newest" | sed 's/\./\\./g'))" | head -5 >&2
    bad=1
  else
    echo "ok  $shown: newest GLIBC_${newest:-none} <= $FLOOR ($(readelf -h "$so" | sed -n "s/^ *Machine: *//p"))"
  fi
done
exit "$bad"
