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
#   broker.sh secured  print the secured listener's settings as NAME=value
#                      lines (address, CA file, admin user and password)
#   broker.sh admin    run integration-tests/kafka/SecurityAdmin.java with
#                      the given commands (SCRAM users, ACLs) on the broker
#
# Two client listeners:
#   PLAINTEXT  127.0.0.1:$RIVULET_KAFKA_PORT, no authentication: what most
#              tests use. Its principal (User:ANONYMOUS) is a super user, so
#              these tests run as before although the broker has an
#              authorizer (see SUPER_USERS below).
#   SASL_SSL   127.0.0.1:$RIVULET_KAFKA_SECURE_PORT: TLS (a broker
#              certificate signed by a test CA made with the JDK's keytool,
#              SAN IP:127.0.0.1; the CA is $RUN_DIR/tls/ca.pem for
#              librdkafka's ssl.ca.location) and SASL/SCRAM-SHA-512. The user
#              "admin" (a super user) is created when the log dir is
#              formatted; tests create their own users and ACLs at run time
#              (broker.sh admin) and get exactly the permissions they grant.
# Authorization: KRaft's StandardAuthorizer, with
# allow.everyone.if.no.acl.found=false (the default): a principal that is
# not a super user can do only what an ACL allows.
#
# Environment:
#   RIVULET_KAFKA_PORT             client port on 127.0.0.1 (default 9092)
#   RIVULET_KAFKA_CONTROLLER_PORT  KRaft controller port (default client port + 1)
#   RIVULET_KAFKA_SECURE_PORT      SASL_SSL client port (default client port + 2)
#   RIVULET_CACHE_DIR              where jars and broker data live
#                                  (default ~/.cache/rivulet)
#   RIVULET_KAFKA_HEAP             broker heap (default 1G)
#   RIVULET_KAFKA_START_TIMEOUT    seconds to wait for the broker (default 120)
set -euo pipefail

KAFKA_VERSION=4.3.1
LOG4J_VERSION=2.25.3
PORT=${RIVULET_KAFKA_PORT:-9092}
CONTROLLER_PORT=${RIVULET_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
SECURE_PORT=${RIVULET_KAFKA_SECURE_PORT:-$((PORT + 2))}
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
TLS_DIR="$RUN_DIR/tls"
CA_PEM="$TLS_DIR/ca.pem"
# Test-only secrets: the broker listens on 127.0.0.1 only and its data is
# thrown away at every start.
STORE_PASSWORD=rivulet-test-store
ADMIN_USER=admin
ADMIN_PASSWORD=rivulet-test-admin
# The PLAINTEXT and CONTROLLER listeners authenticate nobody: their principal
# is User:ANONYMOUS. Making it a super user keeps every existing test (and
# the broker's own controller and inter-broker traffic, which use those
# listeners) working without ACLs, while principals on the SASL_SSL listener
# get only what ACLs grant. Granting ACLs to User:ANONYMOUS instead would
# need one for every topic and group the tests make up at random.
SUPER_USERS="User:ANONYMOUS;User:$ADMIN_USER"
# Bumped when the broker's listeners or security settings change: start
# refuses to reuse a running broker of an older configuration.
CONFIG_VERSION=4

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

# Succeeds when 127.0.0.1:$SECURE_PORT completes a TLS handshake whose
# certificate the test CA signed for 127.0.0.1 (SASL is not tried: the TLS
# layer answering is what tells a current broker from an older one).
answers_tls() {
  [ -f "$CA_PEM" ] || return 1
  python3 - "$SECURE_PORT" "$CA_PEM" <<'PY' 2>/dev/null
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
try:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
            pass
except Exception:
    sys.exit(1)
PY
}

# Whether the broker on $PORT was started by this script's current
# configuration (its server.properties carries the version marker).
current_config() {
  grep -qx "# rivulet-broker-config $CONFIG_VERSION" "$CONFIG_FILE" 2>/dev/null
}

# The keytool of the java that runs the broker.
keytool_bin() {
  local java
  java=$(java_bin)
  local dir
  dir=$(dirname "$(readlink -f "$java")")
  if [ -x "$dir/keytool" ]; then echo "$dir/keytool"
  elif command -v keytool >/dev/null 2>&1; then command -v keytool
  else die "keytool (part of the JDK) is needed to make the test broker's TLS certificates; install a JDK 17+"; fi
}

# A test CA and a broker certificate it signs (SAN IP:127.0.0.1 and
# localhost), made with keytool into $TLS_DIR; the CA also as PEM for
# librdkafka's ssl.ca.location. Made anew at every start, as the data is.
make_tls() {
  local kt
  kt=$(keytool_bin)
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  (
    cd "$TLS_DIR"
    local common=(-storetype PKCS12 -storepass "$STORE_PASSWORD" -keypass "$STORE_PASSWORD")
    "$kt" -genkeypair -alias ca -keyalg RSA -keysize 2048 -validity 3650 -dname "CN=rivulet test CA" \
      -ext bc:c -ext "KU:c=keyCertSign,cRLSign" -keystore ca.p12 "${common[@]}"
    "$kt" -exportcert -rfc -alias ca -keystore ca.p12 -storepass "$STORE_PASSWORD" -file ca.pem
    "$kt" -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity 3650 -dname "CN=127.0.0.1" \
      -keystore broker.p12 "${common[@]}"
    "$kt" -certreq -alias broker -keystore broker.p12 -storepass "$STORE_PASSWORD" -file broker.csr
    "$kt" -gencert -alias ca -keystore ca.p12 -storepass "$STORE_PASSWORD" -infile broker.csr -outfile broker.crt \
      -rfc -validity 3650 -ext "SAN=IP:127.0.0.1,DNS:localhost" -ext "EKU=serverAuth" \
      -ext "KU=digitalSignature,keyEncipherment"
    "$kt" -importcert -noprompt -alias ca -file ca.pem -keystore broker.p12 -storepass "$STORE_PASSWORD"
    "$kt" -importcert -noprompt -alias broker -file broker.crt -keystore broker.p12 -storepass "$STORE_PASSWORD"
  ) >"$RUN_DIR/tls.log" 2>&1 || { cat "$RUN_DIR/tls.log" >&2; die "making the test TLS certificates with keytool failed"; }
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
# rivulet-broker-config $CONFIG_VERSION
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT,SASL_SSL://127.0.0.1:$SECURE_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_SSL://127.0.0.1:$SECURE_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/broker.p12
ssl.keystore.password=$STORE_PASSWORD
ssl.key.password=$STORE_PASSWORD
ssl.client.auth=none
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=$SUPER_USERS
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
group.consumer.min.session.timeout.ms=6000
group.consumer.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=500
group.consumer.heartbeat.interval.ms=500
group.streams.min.session.timeout.ms=6000
group.streams.session.timeout.ms=6000
group.streams.min.heartbeat.interval.ms=500
group.streams.heartbeat.interval.ms=500
group.streams.initial.rebalance.delay.ms=0
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

# The settings that name this broker, for commands in messages.
env_prefix() {
  echo "RIVULET_KAFKA_PORT=$PORT${RIVULET_CACHE_DIR:+ RIVULET_CACHE_DIR=$RIVULET_CACHE_DIR}${RIVULET_KAFKA_SECURE_PORT:+ RIVULET_KAFKA_SECURE_PORT=$RIVULET_KAFKA_SECURE_PORT}"
}

# A broker answers on $PORT: fine when it is this configuration's and its
# SASL_SSL listener answers; otherwise it was started by an older broker.sh
# (or by something else) and lacks what the security tests need.
check_running() {
  if current_config && answers_tls; then
    say "a broker already answers on 127.0.0.1:$PORT (SASL_SSL on $SECURE_PORT); nothing to do (log: $LOG_FILE)"
    return 0
  fi
  die "a broker answers on 127.0.0.1:$PORT but not as this script configures it now: its SASL_SSL listener \
(127.0.0.1:$SECURE_PORT, TLS + SCRAM, with the StandardAuthorizer) does not answer, or its $CONFIG_FILE \
predates config version $CONFIG_VERSION; it was started by an older broker.sh (or by something else). \
Restart it with: $(env_prefix) bash $0 stop && $(env_prefix) bash $0 start \
(its topics are lost; tests make their own)"
}

start() {
  if answers_metadata; then
    check_running
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
    make_tls
    rm -rf "$DATA_DIR"
    cluster_id=$("$java" -cp "$LIB_DIR/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    [ -n "$cluster_id" ] || die "could not generate a KRaft cluster id with kafka.tools.StorageTool (libs in $LIB_DIR)"
    if ! "$java" -cp "$LIB_DIR/*" -Dlog4j2.configurationFile="$RUN_DIR/log4j2.properties" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG_FILE" \
        --add-scram "SCRAM-SHA-512=[name=$ADMIN_USER,password=$ADMIN_PASSWORD]" >"$RUN_DIR/format.log" 2>&1; then
      cat "$RUN_DIR/format.log" >&2
      die "formatting the KRaft log dir $DATA_DIR failed"
    fi
    say "starting Kafka $KAFKA_VERSION on 127.0.0.1:$PORT and SASL_SSL 127.0.0.1:$SECURE_PORT (cluster $cluster_id, log: $LOG_FILE)"
    nohup "$java" -Xms256m -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$RUN_DIR/log4j2.properties" \
      -cp "$LIB_DIR/*" kafka.Kafka "$CONFIG_FILE" >"$LOG_FILE" 2>&1 </dev/null &
    echo $! > "$PID_FILE"
  fi
  local waited=0
  until answers_metadata && answers_tls; do
    if ! running_pid >/dev/null; then
      tail -40 "$LOG_FILE" >&2 || true
      die "the broker exited during start-up; its log is $LOG_FILE"
    fi
    if [ "$waited" -ge "$START_TIMEOUT" ]; then
      tail -40 "$LOG_FILE" >&2 || true
      die "the broker did not answer a metadata request on 127.0.0.1:$PORT and TLS on 127.0.0.1:$SECURE_PORT within ${START_TIMEOUT}s; its log is $LOG_FILE"
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

secured() {
  current_config && answers_tls || die "no broker of this configuration answers TLS on 127.0.0.1:$SECURE_PORT; run: $(env_prefix) bash $0 start (or stop, then start, an older one)"
  echo "RIVULET_KAFKA_SECURE_BOOTSTRAP=127.0.0.1:$SECURE_PORT"
  echo "RIVULET_KAFKA_CA_PEM=$CA_PEM"
  echo "RIVULET_KAFKA_ADMIN_USER=$ADMIN_USER"
  echo "RIVULET_KAFKA_ADMIN_PASSWORD=$ADMIN_PASSWORD"
}

# Runs SecurityAdmin.java (single-file source launch: needs a JDK, not only
# a JRE) on the PLAINTEXT listener, whose principal is a super user.
admin() {
  local java
  java=$(java_bin)
  [ -f "$DIST_DIR/.complete" ] || die "Kafka's jars are not fetched yet; run: bash $0 start"
  "$java" --list-modules 2>/dev/null | grep -q '^jdk.compiler@' \
    || die "'$java' is a JRE without the compiler that runs SecurityAdmin.java; install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)"
  "$java" -cp "$LIB_DIR/*" -Dlog4j2.configurationFile="$RUN_DIR/log4j2.properties" \
    "$(dirname "$0")/SecurityAdmin.java" "127.0.0.1:$PORT" "$@"
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
  secured) secured ;;
  admin) shift; admin "$@" ;;
  *) echo "usage: $0 start|stop|status|logs|secured|admin <commands>" >&2; exit 2 ;;
esac
