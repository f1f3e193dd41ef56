#!/usr/bin/env bash
# A real Schema Registry for rivulet's Schema Registry serde tests: Apicurio
# Registry 2.4.2.Final (in-memory H2 storage), which serves the Confluent
# Schema Registry REST API under /apis/ccompat/v7. No Docker: Apicurio's
# application jar and its dependencies come from Maven Central, and Maven
# builds the runnable Quarkus jar from them once (pom.xml beside this file
# says why it is built rather than downloaded). Runs on Java 17+.
#
#   registry.sh start    build the registry if needed, start it, wait until
#                        its Confluent API answers (does nothing when a
#                        registry already answers on the port)
#   registry.sh stop     stop the registry started by this script
#   registry.sh status   exit 0 and say so when the registry answers, 1 otherwise
#   registry.sh url      print the Confluent API's base URL
#   registry.sh tls-url  the same over HTTPS (a certificate for 127.0.0.1
#                        signed by a test CA that start makes)
#   registry.sh ca       print the path of that CA's certificate (PEM)
#   registry.sh fetch    only build (download) the registry: for CI's set-up
#   registry.sh logs     print the registry's log
#   registry.sh python   make (once) a Python venv with Confluent's serializers
#                        (confluent-kafka, for confluent_serde.py) and print
#                        its python's path
#
# Environment:
#   RIVULET_SCHEMA_REGISTRY_PORT           HTTP port on 127.0.0.1 (default 8081)
#   RIVULET_SCHEMA_REGISTRY_TLS_PORT       HTTPS port (default HTTP port + 362)
#   RIVULET_CACHE_DIR                      where the build and the log live
#                                          (default ~/.cache/rivulet)
#   RIVULET_SCHEMA_REGISTRY_START_TIMEOUT  seconds to wait (default 120)
set -euo pipefail

APICURIO_VERSION=2.4.2.Final
CONFLUENT_KAFKA_VERSION=2.16.1
# grpcio-tools brings protoc, for the Python classes of the tests' .proto files.
PYTHON_PACKAGES="confluent-kafka[avro,json,protobuf,schemaregistry]==$CONFLUENT_KAFKA_VERSION grpcio-tools==1.85.1"
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${RIVULET_SCHEMA_REGISTRY_PORT:-8081}
TLS_PORT=${RIVULET_SCHEMA_REGISTRY_TLS_PORT:-$((PORT + 362))}
CACHE_DIR=${RIVULET_CACHE_DIR:-$HOME/.cache/rivulet}
START_TIMEOUT=${RIVULET_SCHEMA_REGISTRY_START_TIMEOUT:-120}

DIST_DIR="$CACHE_DIR/apicurio-registry-$APICURIO_VERSION"
RUN_DIR="$CACHE_DIR/schema-registry-$PORT"
PID_FILE="$RUN_DIR/registry.pid"
LOG_FILE="$RUN_DIR/registry.log"
URL="http://127.0.0.1:$PORT/apis/ccompat/v7"
TLS_URL="https://127.0.0.1:$TLS_PORT/apis/ccompat/v7"
TLS_DIR="$RUN_DIR/tls"

die() { echo "registry.sh: $*" >&2; exit 1; }
say() { echo "registry.sh: $*" >&2; }

java_bin() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    echo "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    die "Java 17 or newer is needed to run the test Schema Registry, and no 'java' is on PATH (nor JAVA_HOME set). Install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)."
  fi
}

# The registry answers when GET /subjects returns a JSON array.
answers() {
  python3 - "$URL/subjects" <<'PY' 2>/dev/null
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 and isinstance(json.load(r), list) else 1)
except Exception:
    sys.exit(1)
PY
}

# The runnable jar, rebuilt when pom.xml changes.
runner_jar() { echo "$DIST_DIR/target/test-schema-registry-1-runner.jar"; }

fetch() {
  local stamp
  stamp=$(cat "$HERE/pom.xml" $(find "$HERE/src" -type f | sort) | sha256sum | cut -c1-16)
  if [ -f "$DIST_DIR/.complete-$stamp" ] && [ -f "$(runner_jar)" ]; then return 0; fi
  command -v mvn >/dev/null 2>&1 || die "Maven ('mvn') is needed to build Apicurio Registry $APICURIO_VERSION from Maven Central and is not on PATH. Install it (Debian: apt-get install maven)."
  say "building Apicurio Registry $APICURIO_VERSION from Maven Central into $DIST_DIR (once; a few minutes)"
  rm -rf "$DIST_DIR"
  mkdir -p "$DIST_DIR"
  cp "$HERE/pom.xml" "$DIST_DIR/pom.xml"
  cp -r "$HERE/src" "$DIST_DIR/src"
  if ! mvn -B -f "$DIST_DIR/pom.xml" package -DskipTests >"$DIST_DIR/build.log" 2>&1; then
    tail -40 "$DIST_DIR/build.log" >&2
    die "Maven could not build Apicurio Registry $APICURIO_VERSION (full log: $DIST_DIR/build.log). Check that Maven Central is reachable."
  fi
  [ -f "$(runner_jar)" ] || die "the build left no $(runner_jar) (log: $DIST_DIR/build.log)"
  touch "$DIST_DIR/.complete-$stamp"
}

# A test CA and a server certificate for 127.0.0.1 and localhost signed by
# it (TLS clients refuse a CA certificate as the server's own).
make_certificates() {
  command -v openssl >/dev/null 2>&1 || die "openssl is needed to make the registry's test certificate; install it (Debian: apt-get install openssl)."
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  (
    cd "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rivulet test CA" \
      -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile ext.cnf -out server.pem
  ) >"$RUN_DIR/tls.log" 2>&1 || { cat "$RUN_DIR/tls.log" >&2; die "openssl could not make the test certificates"; }
}

running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid=$(cat "$PID_FILE")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

start() {
  if answers; then
    say "a Schema Registry already answers at $URL; nothing to do"
    return 0
  fi
  if pid=$(running_pid); then
    say "registry process $pid is alive but not answering yet; waiting for it"
  else
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to check that the registry answers; install it (Debian: apt-get install python3)."
    local java
    java=$(java_bin)
    fetch
    mkdir -p "$RUN_DIR"
    make_certificates
    say "starting Apicurio Registry $APICURIO_VERSION at $URL and $TLS_URL (log: $LOG_FILE)"
    # Small pools: a test registry on a 2-core machine beside a broker.
    nohup "$java" -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$PORT" \
      -Dquarkus.http.ssl-port="$TLS_PORT" \
      -Dquarkus.http.ssl.certificate.files="$TLS_DIR/server.pem" \
      -Dquarkus.http.ssl.certificate.key-files="$TLS_DIR/server.key" \
      -Dquarkus.datasource.jdbc.initial-size=2 -Dquarkus.datasource.jdbc.min-size=2 \
      -Dquarkus.datasource.jdbc.max-size=20 \
      -Dquarkus.datasource.jdbc.url="jdbc:h2:mem:registry_db;LOCK_TIMEOUT=20000" \
      -jar "$(runner_jar)" >"$LOG_FILE" 2>&1 </dev/null &
    echo $! > "$PID_FILE"
  fi
  local waited=0
  until answers; do
    if ! running_pid >/dev/null; then
      tail -40 "$LOG_FILE" >&2 || true
      die "the registry exited during start-up; its log is $LOG_FILE"
    fi
    if [ "$waited" -ge "$START_TIMEOUT" ]; then
      tail -40 "$LOG_FILE" >&2 || true
      die "the registry did not answer at $URL within ${START_TIMEOUT}s; its log is $LOG_FILE"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  warm_up || die "the registry answers but cannot register a schema; its log is $LOG_FILE"
  say "Schema Registry is up at $URL after ${waited}s (log: $LOG_FILE)"
}

# Registers one schema, so the id sequences exist before tests register
# schemas in parallel: on a fresh database, concurrent first registrations
# race to create them and one can fail with an H2 lock timeout.
warm_up() {
  python3 - "$URL/subjects/rivulet-registry-warm-up/versions" <<'PY' 2>/dev/null
import json, sys, urllib.request
body = json.dumps({"schema": json.dumps({"type": "string"})}).encode()
request = urllib.request.Request(sys.argv[1], data=body, method="POST",
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
try:
    with urllib.request.urlopen(request, timeout=10) as r:
        sys.exit(0 if "id" in json.load(r) else 1)
except Exception:
    sys.exit(1)
PY
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    say "no registry started by this script is running on port $PORT"
    rm -f "$PID_FILE"
    return 0
  fi
  kill "$pid"
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "registry $pid did not stop within 20s; killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  say "registry stopped"
}

status() {
  if answers; then
    echo "a Schema Registry answers at $URL (log: $LOG_FILE)"
  else
    echo "no Schema Registry answers at $URL"
    return 1
  fi
}

logs() {
  [ -f "$LOG_FILE" ] || die "no registry log at $LOG_FILE"
  cat "$LOG_FILE"
}

python_venv() {
  local venv="$CACHE_DIR/confluent-kafka-$CONFLUENT_KAFKA_VERSION-venv"
  if [ "$(cat "$venv/.complete" 2>/dev/null)" != "$PYTHON_PACKAGES" ]; then
    command -v python3 >/dev/null 2>&1 || die "python3 is needed for Confluent's Python serializers; install it (Debian: apt-get install python3 python3-venv)."
    say "installing confluent-kafka $CONFLUENT_KAFKA_VERSION (Confluent's serializers) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed; install the venv module (Debian: apt-get install python3-venv)."
    # shellcheck disable=SC2086 # a list of requirements
    if ! "$venv/bin/pip" install -q $PYTHON_PACKAGES >"$venv.log" 2>&1; then
      tail -20 "$venv.log" >&2
      die "pip could not install confluent-kafka $CONFLUENT_KAFKA_VERSION (log: $venv.log). Check that PyPI is reachable."
    fi
    echo "$PYTHON_PACKAGES" > "$venv/.complete"
  fi
  echo "$venv/bin/python"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) echo "$URL" ;;
  tls-url) echo "$TLS_URL" ;;
  ca) echo "$TLS_DIR/ca.pem" ;;
  fetch) fetch ;;
  logs) logs ;;
  python) python_venv ;;
  *) echo "usage: $0 start|stop|status|url|tls-url|ca|fetch|logs|python" >&2; exit 2 ;;
esac
