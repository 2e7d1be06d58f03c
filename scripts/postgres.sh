#!/usr/bin/env bash
# A local PostgreSQL server on loopback for the store tests and examples — for machines without
# Docker. Uses the PostgreSQL server binaries if present, else installs Debian's `postgresql`
# package with apt-get (CI machines are fresh; run as root there).
#
#   scripts/postgres.sh start    find or install the server, initdb (once), start, wait until it
#                                accepts connections, create the database, print the URI (idempotent)
#   scripts/postgres.sh stop     stop it (pg_ctl stop -m fast)
#   scripts/postgres.sh status   print the URI if running, else exit 1
#
# Environment: STREAMML_POSTGRES_DIR (state: data, socket, log; default ~/.cache/streamml/postgres),
# STREAMML_POSTGRES_PORT (default 15432). The server refuses to run as root: as root, initdb and the
# server run as the `postgres` user (created by the Debian package) and, when that user cannot reach
# the state directory (a home directory closed to others, as /root is), the data directory lives in
# /var/tmp/streamml-postgres-PORT instead (the state directory keeps a link to it).
set -euo pipefail

STATE="${STREAMML_POSTGRES_DIR:-$HOME/.cache/streamml/postgres}"
PORT="${STREAMML_POSTGRES_PORT:-15432}"
DB=streamml
USER_NAME=streamml
URI="postgresql://$USER_NAME@127.0.0.1:$PORT/$DB"
READY_TIMEOUT="${STREAMML_POSTGRES_READY_TIMEOUT:-60}"

die() { echo "postgres.sh: $*" >&2; exit 1; }

find_bindir() {
  local d
  if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/initdb" ]]; then pg_config --bindir; return; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return; }
  done
  return 1
}

install_server() {
  [[ "$(id -u)" == 0 ]] || die "no PostgreSQL server binaries found; install Debian's postgresql package (needs root)"
  echo "postgres.sh: installing Debian's postgresql package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2 || die "apt-get install postgresql failed"
}

BIN="$(find_bindir || true)"
if [[ -z "$BIN" && "${1:-}" == start ]]; then install_server; BIN="$(find_bindir)" || die "no initdb after installing"; fi

AS=()
if [[ "$(id -u)" == 0 ]]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  AS=(runuser -u postgres --)
fi

mkdir -p "$STATE"
DATA="$STATE/data-$PORT"
if [[ ${#AS[@]} -gt 0 && ! -e "$DATA" ]] && ! "${AS[@]}" test -x "$STATE"; then
  mkdir -p "/var/tmp/streamml-postgres-$PORT"
  ln -sfn "/var/tmp/streamml-postgres-$PORT" "$DATA"
fi
mkdir -p "$DATA"
DATA="$(readlink -f "$DATA")"
LOG="$DATA/server.log"

running() { [[ -n "$BIN" && -f "$DATA/pgdata/postmaster.pid" ]] && "${AS[@]}" "$BIN/pg_ctl" -D "$DATA/pgdata" status >/dev/null 2>&1; }
ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" 2>/dev/null; }

start() {
  if running && ready; then echo "$URI"; return; fi
  mkdir -p "$DATA/sock"
  [[ ${#AS[@]} -gt 0 ]] && chown -R postgres: "$DATA"
  if [[ ! -f "$DATA/pgdata/PG_VERSION" ]]; then
    "${AS[@]}" "$BIN/initdb" -D "$DATA/pgdata" -U "$USER_NAME" --auth=trust -E UTF8 >"$LOG.initdb" 2>&1 \
      || die "initdb failed; see $LOG.initdb"
  fi
  "${AS[@]}" "$BIN/pg_ctl" -D "$DATA/pgdata" -l "$LOG" -w -t "$READY_TIMEOUT" \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -k $DATA/sock -c fsync=off" start >&2 \
    || die "the server did not start; see $LOG"
  local waited=0
  until ready; do
    sleep 1; waited=$((waited + 1))
    [[ $waited -ge $READY_TIMEOUT ]] && die "the server did not accept connections in ${READY_TIMEOUT}s; see $LOG"
  done
  "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
    || "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" "$DB"
  echo "$URI"
}

case "${1:-}" in
  start) start ;;
  stop) if running; then "${AS[@]}" "$BIN/pg_ctl" -D "$DATA/pgdata" -m fast -w stop >&2; fi ;;
  status) if running && ready; then echo "$URI"; else exit 1; fi ;;
  *) die "usage: scripts/postgres.sh start|stop|status" ;;
esac
