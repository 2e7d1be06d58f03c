#!/usr/bin/env bash
# A standalone Apache Flink session cluster (one job manager and one task manager, each its own
# JVM) and a SQL gateway in front of it, on loopback, from the Flink jars that Maven resolves
# (scripts/flink/pom.xml) — for machines without Docker. The Maven mirror serves no flink-dist, so
# the distribution's lib/ is assembled from the individual artifacts (runtime, clients, table
# planner and runtime, JSON, Kafka SQL connector, SQL gateway and client, log4j) and the entry
# points are started with java directly.
#
#   scripts/flink.sh start         resolve the jars (once), write config.yaml, start the job manager,
#                                  the task manager and the SQL gateway, wait until the REST
#                                  endpoint reports a task manager and the gateway answers, print
#                                  the REST address (idempotent)
#   scripts/flink.sh stop          stop all three (SIGTERM, then SIGKILL after 30 s)
#   scripts/flink.sh restart       stop, then start
#   scripts/flink.sh status        print the REST address if all three run, else exit 1
#   scripts/flink.sh sql FILE      run a SQL script with Flink's SQL client (`sql-client.sh gateway
#                                  -f FILE` against the gateway), then wait for every job it
#                                  submitted: "submitted job ID" and "job ID finished" lines; exit
#                                  1 if a statement fails or a job does not finish
#
# Environment: STREAMML_FLINK_DIR (state: jars, config, logs; default ~/.cache/streamml/flink),
# STREAMML_FLINK_PORT (REST port, default 18081; the job manager's RPC, blob, the task manager's
# RPC and data ports and the SQL gateway's REST port use the next five), STREAMML_FLINK_SLOTS
# (task slots, default 2). Needs java (17+), mvn and curl on PATH.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/flink/pom.xml"
STATE="${STREAMML_FLINK_DIR:-$HOME/.cache/streamml/flink}"
PORT="${STREAMML_FLINK_PORT:-18081}"
SLOTS="${STREAMML_FLINK_SLOTS:-2}"
VERSION="$(sed -n 's:.*<flink.version>\(.*\)</flink.version>.*:\1:p' "$POM")"
LIBS="$STATE/libs-$VERSION-$(sha256sum "$POM" | cut -c1-12)"  # new jars when the pom changes
CONF="$STATE/conf-$PORT"
JM_PID="$STATE/jobmanager-$PORT.pid"
TM_PID="$STATE/taskmanager-$PORT.pid"
GW_PID="$STATE/sql-gateway-$PORT.pid"
GATEWAY="127.0.0.1:$((PORT + 5))"
REST="127.0.0.1:$PORT"
READY_TIMEOUT="${STREAMML_FLINK_READY_TIMEOUT:-120}"
# What Flink's own scripts add (env.java.opts.all defaults): Arrow, Kryo and the planner need them.
OPENS=(--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.lang.invoke=ALL-UNNAMED
  --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.text=ALL-UNNAMED
  --add-opens=java.base/java.time=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED)

die() { echo "flink.sh: $*" >&2; exit 1; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

running() { alive "$JM_PID" && alive "$TM_PID" && alive "$GW_PID"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

resolve_jars() {
  [[ -f "$LIBS/.complete" ]] && return
  command -v mvn >/dev/null || die "mvn not found; Maven resolves the Flink $VERSION jars"
  echo "flink.sh: resolving Apache Flink $VERSION jars with Maven into $LIBS" >&2
  rm -rf "$LIBS"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$LIBS" >&2 || die "maven could not resolve the Flink $VERSION jars of $POM"
  touch "$LIBS/.complete"
}

write_config() {
  mkdir -p "$CONF" "$STATE/tmp-$PORT"
  cat >"$CONF/config.yaml" <<YAML
jobmanager.rpc.address: 127.0.0.1
jobmanager.rpc.port: $((PORT + 1))
jobmanager.bind-host: 127.0.0.1
blob.server.port: $((PORT + 2))
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: $PORT
taskmanager.host: 127.0.0.1
taskmanager.bind-host: 127.0.0.1
taskmanager.rpc.port: $((PORT + 3))
taskmanager.data.port: $((PORT + 4))
taskmanager.numberOfTaskSlots: $SLOTS
parallelism.default: 1
jobmanager.memory.process.size: 1g
taskmanager.memory.process.size: 1g
io.tmp.dirs: $STATE/tmp-$PORT
execution.checkpointing.interval: 10 s
execution.target: remote
sql-gateway.endpoint.rest.address: 127.0.0.1
sql-gateway.endpoint.rest.bind-address: 127.0.0.1
sql-gateway.endpoint.rest.port: $((PORT + 5))
YAML
  cat >"$CONF/log4j.properties" <<'PROPS'
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:log.file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
PROPS
}

# The JVM options and dynamic properties Flink's own scripts derive from the memory settings.
resource_params() {
  java -cp "$LIBS/*" -Dlog4j2.configurationFile="$CONF/log4j.properties" -Dlog.file=/dev/null \
    org.apache.flink.runtime.util.bash.BashJavaUtils "$1" --configDir "$CONF" 2>/dev/null |
    sed -n 's/^BASH_JAVA_UTILS_EXEC_RESULT://p'
}

launch() { # name pidfile class params...
  local name="$1" pidfile="$2" class="$3" jvm dyn
  local params
  params="$(resource_params "$4")"
  jvm="$(sed -n 1p <<<"$params")"
  dyn="$(sed -n 2p <<<"$params")"
  [[ -n "$jvm" ]] || die "could not derive the $name's memory settings from $CONF/config.yaml"
  # shellcheck disable=SC2086  # $jvm and $dyn are word lists, as in Flink's own scripts
  nohup java $jvm "${OPENS[@]}" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog.file="$STATE/$name-$PORT.log" -Dlog4j2.configurationFile="$CONF/log4j.properties" \
    -cp "$LIBS/*" "$class" --configDir "$CONF" $dyn >"$STATE/$name-$PORT.out" 2>&1 &
  echo $! >"$pidfile"
}

ready() { curl -fsS "http://$REST/overview" 2>/dev/null | grep -q '"taskmanagers":[1-9]'; }

start() {
  if running; then echo "$REST"; return; fi
  stop
  command -v java >/dev/null || die "java not found; the cluster needs Java 17+"
  command -v curl >/dev/null || die "curl not found; it checks the REST endpoint"
  local p
  for p in "$PORT" $((PORT + 1)) $((PORT + 2)) $((PORT + 3)) $((PORT + 4)) $((PORT + 5)); do
    if port_open "$p"; then die "port $p is taken by another process; set STREAMML_FLINK_PORT"; fi
  done
  mkdir -p "$STATE"
  resolve_jars
  write_config
  rm -f "$STATE"/jobmanager-"$PORT".log "$STATE"/taskmanager-"$PORT".log
  launch jobmanager "$JM_PID" org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint \
    GET_JM_RESOURCE_PARAMS
  launch taskmanager "$TM_PID" org.apache.flink.runtime.taskexecutor.TaskManagerRunner \
    GET_TM_RESOURCE_PARAMS
  local waited=0
  until ready; do
    local name
    for name in jobmanager taskmanager; do
      if ! alive "$STATE/$name-$PORT.pid"; then
        tail -n 30 "$STATE/$name-$PORT.out" "$STATE/$name-$PORT.log" >&2 || true
        stop
        die "the $name exited during start-up; logs: $STATE/$name-$PORT.log"
      fi
    done
    if ((waited >= READY_TIMEOUT * 5)); then
      stop
      die "the cluster was not ready after ${READY_TIMEOUT}s; logs: $STATE/{jobmanager,taskmanager}-$PORT.log"
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  # The SQL gateway submits the jobs of SQL sessions to the cluster (execution.target: remote).
  FLINK_CONF_DIR="$CONF" nohup java -Xmx512m "${OPENS[@]}" -Djava.awt.headless=true \
    -Dlog.file="$STATE/sql-gateway-$PORT.log" -Dlog4j2.configurationFile="$CONF/log4j.properties" \
    -cp "$LIBS/*" org.apache.flink.table.gateway.SqlGateway >"$STATE/sql-gateway-$PORT.out" 2>&1 &
  echo $! >"$GW_PID"
  until curl -fsS "http://$GATEWAY/v1/info" >/dev/null 2>&1; do
    if ! alive "$GW_PID"; then
      tail -n 30 "$STATE/sql-gateway-$PORT.out" >&2 || true
      stop
      die "the SQL gateway exited during start-up; logs: $STATE/sql-gateway-$PORT.log"
    fi
    if ((waited >= READY_TIMEOUT * 5)); then
      stop
      die "the SQL gateway was not ready after ${READY_TIMEOUT}s; logs: $STATE/sql-gateway-$PORT.log"
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  echo "$REST"
}

stop_one() {
  local pidfile="$1" pid
  if ! alive "$pidfile"; then rm -f "$pidfile"; return; fi
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
  rm -f "$pidfile"
}

stop() { stop_one "$GW_PID"; stop_one "$TM_PID"; stop_one "$JM_PID"; }

job_state() { curl -fsS "http://$REST/jobs/$1" | sed -n 's/.*"state":"\([A-Z]*\)".*/\1/p'; }

sql() {
  [[ -n "${1:-}" && -f "$1" ]] || die "usage: scripts/flink.sh sql FILE (got '${1:-}', which is not a file)"
  running || die "no cluster on $REST; run scripts/flink.sh start first"
  local out jobs job state waited
  out="$(mktemp)"
  # The SQL client exits 0 even when a statement fails; its "[ERROR]" says so.
  FLINK_CONF_DIR="$CONF" java "${OPENS[@]}" -Dlog4j2.configurationFile="$CONF/log4j.properties" \
    -Dlog.file="$STATE/sql-client-$PORT.log" -cp "$LIBS/*" org.apache.flink.table.client.SqlClient \
    gateway --endpoint "$GATEWAY" -f "$1" </dev/null 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | tee "$out" >&2
  if grep -q '\[ERROR\]' "$out"; then rm -f "$out"; die "a statement of $1 failed (the SQL client's output above)"; fi
  jobs="$(sed -n 's/^Job ID: \([0-9a-f]\{32\}\)$/\1/p' "$out")"
  rm -f "$out"
  for job in $jobs; do
    echo "submitted job $job"
    waited=0
    while :; do
      state="$(job_state "$job")"
      case "$state" in
        FINISHED) echo "job $job finished"; break ;;
        FAILED | CANCELED) die "job $job $(tr 'A-Z' 'a-z' <<<"$state"); see http://$REST/#/job/$job/exceptions" ;;
      esac
      ((waited < 3000)) || die "job $job was still $state after 600 s"
      sleep 0.2
      waited=$((waited + 1))
    done
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) running && echo "$REST" ;;
  sql) sql "${2:-}" ;;
  *) die "usage: scripts/flink.sh start|stop|restart|status|sql FILE" ;;
esac
