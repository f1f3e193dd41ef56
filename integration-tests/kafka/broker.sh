#!/usr/bin/env bash
# A real, single-node Apache Kafka broker (KRaft, combined broker+controller)
# for rivulet's integration tests and benchmarks. No Docker: Kafka's jars are
# fetched from Maven Central with Maven and run on Java 17+.
#
#   broker.sh start    fetch Kafka if needed, format a fresh log dir, start,
#                      wait until the broker answers a metadata request
#                      (does nothing when a broker already answers)
#   broker.sh stop     stop the broker started by this script
#   broker.sh status   exit 0 and say so when the broker answers, 1 otherwise
#   broker.sh logs     print the broker's log
#
# Environment:
#   RIVULET_KAFKA_PORT             client port on 127.0.0.1 (default 9092)
#   RIVULET_KAFKA_CONTROLLER_PORT  KRaft controller port (default client port + 1)
#   RIVULET_CACHE_DIR              where jars and broker data live
#                                  (default ~/.cache/rivulet)
#   RIVULET_KAFKA_HEAP             broker heap (default 1G)
#   RIVULET_KAFKA_START_TIMEOUT    seconds to wait for the broker (default 120)
set -euo pipefail

KAFKA_VERSION=4.3.1
LOG4J_VERSION=2.25.3
PORT=${RIVULET_KAFKA_PORT:-9092}
CONTROLLER_PORT=${RIVULET_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
CACHE_DIR=${RIVULET_CACHE_DIR:-$HOME/.cache/rivulet}
HEAP=${RIVULET_KAFKA_HEAP:-1G}
START_TIMEOUT=${RIVULET_KAFKA_START_TIMEOUT:-120}

DIST_DIR="$CACHE_DIR/kafka-$KAFKA_VERSION"
LIB_DIR="$DIST_DIR/libs"
RUN_DIR="$CACHE_DIR/broker-$PORT"
DATA_DIR="$RUN_DIR/data"
PID_FILE="$RUN_DIR/broker.pid"
LOG_FILE="$RUN_DIR/broker.log"
CONFIG_FILE="$RUN_DIR/server.properties"

die() { echo "broker.sh: $*" >&2; exit 1; }
say() { echo "broker.sh: $*" >&2; }

java_bin() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    echo "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    die "Java 17 or newer is needed to run the test broker, and no 'java' is on PATH (nor JAVA_HOME set). Install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)."
  fi
}

check_java() {
  local java version major
  java=$(java_bin)
  version=$("$java" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  major=${version%%.*}
  [ "$major" = "1" ] && major=$(echo "$version" | cut -d. -f2)
  if ! [ "$major" -ge 17 ] 2>/dev/null; then
    die "Kafka $KAFKA_VERSION needs Java 17 or newer; '$java' is version '${version:-unknown}'. Install a JDK 17+ or point JAVA_HOME at one."
  fi
}

# Sends a Kafka Metadata request (v4) to 127.0.0.1:$PORT and succeeds only
# when the answer lists at least one broker.
answers_metadata() {
  python3 - "$PORT" <<'PY' 2>/dev/null
import socket, struct, sys
port = int(sys.argv[1])
client = b"rivulet-broker-sh"
# header: api_key=3 (Metadata), api_version=4, correlation_id, client_id
# body: topics=null (-1: all), allow_auto_topic_creation=false
body = struct.pack(">hhih", 3, 4, 42, len(client)) + client + struct.pack(">ib", -1, 0)
try:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        def read(n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise EOFError
                buf += chunk
            return buf
        (size,) = struct.unpack(">i", read(4))
        resp = read(size)
except Exception:
    sys.exit(1)
corr, _throttle, brokers = struct.unpack(">iii", resp[:12])
sys.exit(0 if corr == 42 and brokers >= 1 else 1)
PY
}

fetch() {
  if [ -f "$DIST_DIR/.complete" ]; then return 0; fi
  command -v mvn >/dev/null 2>&1 || die "Maven ('mvn') is needed to fetch Kafka $KAFKA_VERSION from Maven Central and is not on PATH. Install it (Debian: apt-get install maven)."
  say "fetching Apache Kafka $KAFKA_VERSION and its runtime dependencies into $DIST_DIR"
  mkdir -p "$DIST_DIR"
  cat > "$DIST_DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.rivulet</groupId>
  <artifactId>test-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
  rm -rf "$LIB_DIR"
  if ! mvn -q -B -f "$DIST_DIR/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIB_DIR" >"$DIST_DIR/fetch.log" 2>&1; then
    tail -30 "$DIST_DIR/fetch.log" >&2
    die "Maven could not fetch Kafka $KAFKA_VERSION (full log: $DIST_DIR/fetch.log). Check that Maven Central is reachable."
  fi
  touch "$DIST_DIR/.complete"
}

# log.retention.check.interval.ms=5000 (Kafka's default: 5 minutes): tests
# replay records with timestamps from years ago, which a 7-day time retention
# deletes at the next check. Checking every 5 s makes a topic that lacks
# retention.ms=-1 lose them within the test, every run, instead of only when
# the check happens to fall inside it (never on a broker younger than 5
# minutes, as CI's fresh one often is). A running broker keeps the settings
# it started with: stop and start it to apply a change here.
write_config() {
  mkdir -p "$RUN_DIR"
  cat > "$CONFIG_FILE" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.enable=true
log.cleaner.backoff.ms=1000
log.retention.check.interval.ms=5000
PROPS
  cat > "$RUN_DIR/log4j2.properties" <<'L4J'
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
L4J
}

running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid=$(cat "$PID_FILE")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

start() {
  if answers_metadata; then
    say "a broker already answers on 127.0.0.1:$PORT; nothing to do (log: $LOG_FILE)"
    return 0
  fi
  if pid=$(running_pid); then
    say "broker process $pid is alive but not answering yet; waiting for it"
  else
    check_java
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to check that the broker answers; install it (Debian: apt-get install python3)."
    fetch
    local java cluster_id
    java=$(java_bin)
    write_config
    rm -rf "$DATA_DIR"
    cluster_id=$("$java" -cp "$LIB_DIR/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    [ -n "$cluster_id" ] || die "could not generate a KRaft cluster id with kafka.tools.StorageTool (libs in $LIB_DIR)"
    if ! "$java" -cp "$LIB_DIR/*" -Dlog4j2.configurationFile="$RUN_DIR/log4j2.properties" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG_FILE" >"$RUN_DIR/format.log" 2>&1; then
      cat "$RUN_DIR/format.log" >&2
      die "formatting the KRaft log dir $DATA_DIR failed"
    fi
    say "starting Kafka $KAFKA_VERSION on 127.0.0.1:$PORT (cluster $cluster_id, log: $LOG_FILE)"
    nohup "$java" -Xms256m -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$RUN_DIR/log4j2.properties" \
      -cp "$LIB_DIR/*" kafka.Kafka "$CONFIG_FILE" >"$LOG_FILE" 2>&1 </dev/null &
    echo $! > "$PID_FILE"
  fi
  local waited=0
  until answers_metadata; do
    if ! running_pid >/dev/null; then
      tail -40 "$LOG_FILE" >&2 || true
      die "the broker exited during start-up; its log is $LOG_FILE"
    fi
    if [ "$waited" -ge "$START_TIMEOUT" ]; then
      tail -40 "$LOG_FILE" >&2 || true
      die "the broker did not answer a metadata request on 127.0.0.1:$PORT within ${START_TIMEOUT}s; its log is $LOG_FILE"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "broker is up on 127.0.0.1:$PORT after ${waited}s (log: $LOG_FILE)"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    say "no broker started by this script is running on port $PORT"
    rm -f "$PID_FILE"
    return 0
  fi
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "broker $pid did not stop within 30s; killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  say "broker stopped"
}

status() {
  if answers_metadata; then
    echo "broker answers on 127.0.0.1:$PORT (log: $LOG_FILE)"
  else
    echo "no broker answers on 127.0.0.1:$PORT"
    return 1
  fi
}

logs() {
  [ -f "$LOG_FILE" ] || die "no broker log at $LOG_FILE"
  cat "$LOG_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  logs) logs ;;
  *) echo "usage: $0 start|stop|status|logs" >&2; exit 2 ;;
esac
