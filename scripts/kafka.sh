#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft: broker and controller in one JVM) on loopback,
# from the Kafka jars that Maven resolves (scripts/kafka/pom.xml) — for machines without Docker.
#
#   scripts/kafka.sh start     resolve the jars (once), format storage (once), start, wait until
#                              the broker answers, print the bootstrap address (idempotent)
#   scripts/kafka.sh stop      stop it (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka.sh restart   stop, then start on the same data (topics and offsets survive)
#   scripts/kafka.sh status    print the bootstrap address if running, else exit 1
#   scripts/kafka.sh reset     stop and delete the data
#
# Environment: STREAMML_KAFKA_DIR (state: jars, data, log; default ~/.cache/streamml/kafka),
# STREAMML_KAFKA_PORT (client port, default 19092; the controller uses the next one),
# STREAMML_KAFKA_HEAP (default 1g). Needs java (17+) and mvn on PATH.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/kafka/pom.xml"
STATE="${STREAMML_KAFKA_DIR:-$HOME/.cache/streamml/kafka}"
PORT="${STREAMML_KAFKA_PORT:-19092}"
CONTROLLER_PORT="$((PORT + 1))"
HEAP="${STREAMML_KAFKA_HEAP:-1g}"
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
LIBS="$STATE/libs-$VERSION"
DATA="$STATE/data-$PORT"
PIDFILE="$STATE/broker-$PORT.pid"
LOG="$STATE/broker-$PORT.log"
BOOTSTRAP="127.0.0.1:$PORT"
READY_TIMEOUT="${STREAMML_KAFKA_READY_TIMEOUT:-120}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

resolve_jars() {
  [[ -f "$LIBS/.complete" ]] && return
  command -v mvn >/dev/null || die "mvn not found; Maven resolves the Kafka $VERSION jars"
  echo "kafka.sh: resolving Apache Kafka $VERSION jars with Maven into $LIBS" >&2
  rm -rf "$LIBS"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$LIBS" >&2 || die "maven could not resolve org.apache.kafka:kafka_2.13:$VERSION"
  touch "$LIBS/.complete"
}

write_config() {
  mkdir -p "$DATA"
  cat >"$STATE/server-$PORT.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA/logs
num.partitions=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
  cat >"$STATE/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $LOG
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
}

java_cmd() {
  java -Xmx"$HEAP" -Xms256m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$STATE/log4j2.properties" -cp "$LIBS/*" "$@"
}

format_storage() {
  [[ -f "$DATA/logs/meta.properties" ]] && return
  local cluster_id
  cluster_id="$(java_cmd kafka.tools.StorageTool random-uuid | tail -1)"
  java_cmd kafka.tools.StorageTool format -t "$cluster_id" \
    -c "$STATE/server-$PORT.properties" >&2 || die "formatting storage in $DATA failed"
}

start() {
  if running; then echo "$BOOTSTRAP"; return; fi
  command -v java >/dev/null || die "java not found; the broker needs Java 17+"
  if port_open "$PORT"; then die "port $PORT is taken by another process; set STREAMML_KAFKA_PORT"; fi
  mkdir -p "$STATE"
  resolve_jars
  write_config
  format_storage
  : >"$LOG"
  nohup java -Xmx"$HEAP" -Xms256m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$STATE/log4j2.properties" -cp "$LIBS/*" \
    kafka.Kafka "$STATE/server-$PORT.properties" >"$STATE/broker-$PORT.out" 2>&1 &
  echo $! >"$PIDFILE"
  local waited=0
  until grep -q "Kafka Server started" "$LOG" 2>/dev/null && port_open "$PORT"; do
    if ! running; then
      tail -n 30 "$STATE/broker-$PORT.out" "$LOG" >&2 || true
      die "the broker exited during start-up; logs: $LOG"
    fi
    if ((waited >= READY_TIMEOUT * 5)); then
      stop >/dev/null
      die "the broker was not ready after ${READY_TIMEOUT}s; logs: $LOG"
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  echo "$BOOTSTRAP"
}

stop() {
  if ! running; then rm -f "$PIDFILE"; return; fi
  local pid
  pid="$(cat "$PIDFILE")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) running && echo "$BOOTSTRAP" ;;
  reset) stop; rm -rf "$DATA" ;;
  *) die "usage: scripts/kafka.sh start|stop|restart|status|reset" ;;
esac
