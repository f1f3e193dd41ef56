#!/usr/bin/env bash
# Smoke test of the Kafka Streams bench app against a running broker: for
# each workload and guarantee, fresh topics, N input records, run the app
# until it has committed the whole input, check the output, SIGTERM it and
# check it exits 0.
#
#   benches/kstreams/smoke.sh [bootstrap] [records] [workloads] [guarantees]
#   e.g. benches/kstreams/smoke.sh 127.0.0.1:9092 50000 "W1 W2 W3" "at_least_once exactly_once"
#
# Needs the jar (mvn -q -f benches/kstreams/pom.xml package -DskipTests).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
JAR=$HERE/target/rivulet-kstreams-bench.jar
BOOTSTRAP=${1:-127.0.0.1:9092}
N=${2:-50000}
WORKLOADS=${3:-W1 W2 W3}
GUARANTEES=${4:-at_least_once exactly_once}
COMMIT_MS=${COMMIT_MS:-1000}
[ -f "$JAR" ] || { echo "smoke.sh: no $JAR; build it first" >&2; exit 1; }
WORK=$(mktemp -d /tmp/kstreams-smoke.XXXXXX)
load() { java -cp "$JAR" rivulet.bench.Load "$@"; }
fails=0
for w in $WORKLOADS; do
  for g in $GUARANTEES; do
    id="ksbench-$w-$g-$(date +%s)-$RANDOM"
    echo "== $w $g ($id)"
    # The records' timestamps are from 2023: without retention.ms=-1 the
    # broker's default 7-day retention deletes them while the app runs.
    load create "$BOOTSTRAP" "$id-in" 4 retention.ms=-1 >/dev/null
    load create "$BOOTSTRAP" "$id-out" 4 retention.ms=-1 >/dev/null
    load produce "$BOOTSTRAP" "$id-in" "$N"
    start=$(date +%s.%N)
    java -jar "$JAR" "$w" "$g" "$BOOTSTRAP" "$id-in" "$id-out" "$id" "$WORK/state-$id" "$COMMIT_MS" \
      >"$WORK/$id.out" 2>"$WORK/$id.err" &
    pid=$!
    for _ in $(seq 1 600); do grep -q '^RUNNING$' "$WORK/$id.out" && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    if grep -q '^RUNNING$' "$WORK/$id.out"; then
      echo "OK   RUNNING after $(echo "$(date +%s.%N) - $start" | bc) s"
    else
      echo "BAD  never printed RUNNING"; fails=$((fails + 1))
    fi
    load check "$BOOTSTRAP" "$w" "$id-in" "$id-out" "$id" "$N" 300 || fails=$((fails + 1))
    kill -TERM $pid
    rc=0; wait $pid || rc=$?
    if [ $rc -eq 0 ]; then echo "OK   exit 0 after SIGTERM"; else echo "BAD  exit $rc after SIGTERM"; fails=$((fails + 1)); fi
    if [ -s "$WORK/$id.err" ]; then echo "     stderr ($(wc -l <"$WORK/$id.err") lines):"; sed 's/^/       /' "$WORK/$id.err" | head -20; fi
  done
done
echo "smoke.sh: $fails failure(s); logs in $WORK"
[ $fails -eq 0 ]
