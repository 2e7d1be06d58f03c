#!/usr/bin/env bash
# A standalone Apache Flink session cluster (one job manager and one task manager, each its own
# JVM) on loopback, from the Flink jars that Maven resolves (scripts/flink/pom.xml) — for machines
# without Docker. The Maven mirror serves no flink-dist, so the distribution's lib/ is assembled
# from the individual artifacts (runtime, clients, table planner and runtime, JSON, Kafka SQL
# connector, log4j) and the entry points are started with java directly.
#
#   scripts/flink.sh start         resolve the jars (once), write config.yaml, start both JVMs, wait
#                                  until the REST endpoint reports a task manager, print the REST
#                                  address (idempotent)
#   scripts/flink.sh stop          stop both (SIGTERM, then SIGKILL after 30 s)
#   scripts/flink.sh restart       stop, then start
#   scripts/flink.sh status        print the REST address if both run, else exit 1
#   scripts/flink.sh sql FILE      run a SQL script against the cluster (SET, CREATE, INSERT; the
#                                  INSERT jobs are submitted to the cluster and awaited) with
#                                  scripts/flink/SqlScript.java — the SQL client (flink-sql-client,
#                                  flink-sql-gateway) is not served by the Maven mirror either
#
# Environment: STREAMML_FLINK_DIR (state: jars, config, logs; default ~/.cache/streamml/flink),
# STREAMML_FLINK_PORT (REST port, default 18081; the job manager's RPC, blob and the task
# manager's RPC and data ports use the next four), STREAMML_FLINK_SLOTS (task slots, default 2).
# Needs java (17+) and mvn on PATH.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/flink/pom.xml"
STATE="${STREAMML_FLINK_DIR:-$HOME/.cache/streamml/flink}"
PORT="${STREAMML_FLINK_PORT:-18081}"
SLOTS="${STREAMML_FLINK_SLOTS:-2}"
VERSION="$(sed -n 's:.*<flink.version>\(.*\)</flink.version>.*:\1:p' "$POM")"
LIBS="$STATE/libs-$VERSION"
CONF="$STATE/conf-$PORT"
JM_PID="$STATE/jobmanager-$PORT.pid"
TM_PID="$STATE/taskmanager-$PORT.pid"
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

running() { alive "$JM_PID" && alive "$TM_PID"; }

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
  for p in "$PORT" $((PORT + 1)) $((PORT + 2)) $((PORT + 3)) $((PORT + 4)); do
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

stop() { stop_one "$TM_PID"; stop_one "$JM_PID"; }

sql() {
  [[ -n "${1:-}" && -f "$1" ]] || die "usage: scripts/flink.sh sql FILE (got '${1:-}', which is not a file)"
  running || die "no cluster on $REST; run scripts/flink.sh start first"
  java "${OPENS[@]}" -Dlog4j2.configurationFile="$CONF/log4j.properties" \
    -Dlog.file="$STATE/sql-client-$PORT.log" -cp "$LIBS/*" "$HERE/flink/SqlScript.java" "$REST" "$1"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) running && echo "$REST" ;;
  sql) sql "${2:-}" ;;
  *) die "usage: scripts/flink.sh start|stop|restart|status|sql FILE" ;;
esac
