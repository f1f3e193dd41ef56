"""Writes the chart's Grafana dashboard, rivulet.json, to standard output.

    python3 helm/rivulet/dashboards/generate.py > helm/rivulet/dashboards/rivulet.json

Edit the panels here, not in the JSON: .ci/helm-check fails when the two
differ. Every query selects the dashboard's namespace, job (the metrics
Service) and pods; docs/metrics.md describes the metrics.
"""
import json

# Every query's selector: the dashboard's variables.
SEL = 'namespace="$namespace", job="$job", pod=~"$pod"'
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

panels = []
y = 0  # the grid row the next panels go to
next_id = 0


def new_id():
    global next_id
    next_id += 1
    return next_id


def row(title):
    """A row header, then the panels below it."""
    global y
    panels.append({"type": "row", "title": title, "id": new_id(), "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1


def ts(title, desc, targets, unit="short", x=0, w=12, h=8, stack=False):
    """A time series panel; targets are (PromQL, legend) pairs."""
    panels.append({
        "type": "timeseries", "title": title, "description": desc, "id": new_id(),
        "datasource": DATASOURCE,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": unit, "min": 0,
                "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0,
                           "showPoints": "never",
                           "stacking": {"mode": "normal" if stack else "none", "group": "A"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
                    for i, (expr, legend) in enumerate(targets)],
    })


def stat(title, desc, expr, unit="short", x=0, w=6, h=4, thresholds=None):
    """A single-number panel."""
    panels.append({
        "type": "stat", "title": title, "description": desc, "id": new_id(),
        "datasource": DATASOURCE,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {"unit": unit,
                         "thresholds": {"mode": "absolute",
                                        "steps": thresholds or [{"color": "green", "value": None}]}},
            "overrides": [],
        },
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "textMode": "auto", "justifyMode": "auto",
                    "orientation": "auto"},
        "targets": [{"datasource": DATASOURCE, "expr": expr, "instant": False, "refId": "A"}],
    })


def q(metric):
    """A metric with the dashboard's selector."""
    return f'{metric}{{{SEL}}}'


def hq(metric, quantile, by="pod"):
    """A quantile of a histogram, per `by`."""
    return f'histogram_quantile({quantile}, sum by (le, {by}) (rate({metric}_bucket{{{SEL}}}[$__rate_interval])))'


def next_line():
    """Moves below a line of 8-high panels."""
    global y
    y += 8


row("Overview")
stat("Ready instances", "Pods reporting rivulet_ready 1 (all assigned tasks restored and processing).",
     f'sum({q("rivulet_ready")})', x=0)
stat("Not ready instances", "Pods reporting rivulet_ready 0.", f'count({q("rivulet_ready")} == 0) or vector(0)', x=6,
     thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}])
stat("Consumer lag", "Records behind the input partitions, all pods.", f'sum({q("rivulet_consumer_lag")})', x=12)
stat("Records processed / s", "All pods and sub-topologies.",
     f'sum(rate({q("rivulet_records_processed_total")}[$__rate_interval]))', unit="ops", x=18)
y += 4
ts("Assigned tasks", "Tasks per pod and state: restoring (replaying the changelog) or running.",
   [(f'sum by (pod, state) ({q("rivulet_assigned_tasks")})', "{{pod}} {{state}}")], x=0, stack=True)
ts("Ready", "rivulet_ready per pod (1 ready, 0 not).", [(q("rivulet_ready"), "{{pod}}")], x=12)
next_line()

row("Throughput")
ts("Records consumed / s by topic", "", [(f'sum by (topic) (rate({q("rivulet_records_consumed_total")}[$__rate_interval]))', "{{topic}}")], unit="ops", x=0, w=8)
ts("Records produced / s by topic", "Acknowledged records: outputs, repartition, changelog and dead-letter topics.", [(f'sum by (topic) (rate({q("rivulet_records_produced_total")}[$__rate_interval]))', "{{topic}}")], unit="ops", x=8, w=8)
ts("Records processed / s by sub-topology", "", [(f'sum by (subtopology) (rate({q("rivulet_records_processed_total")}[$__rate_interval]))', "{{subtopology}}")], unit="ops", x=16, w=8)
next_line()

row("Lag")
ts("Consumer lag by pod", "Records behind, summed over each pod's partitions.", [(f'sum by (pod) ({q("rivulet_consumer_lag")})', "{{pod}}")], x=0)
ts("Consumer lag by partition", "", [(f'sum by (topic, partition) ({q("rivulet_consumer_lag")})', "{{topic}}-{{partition}}")], x=12)
next_line()

row("Latency")
ts("Processing latency", "Time to run one source record through its task.",
   [(hq("rivulet_processing_latency_seconds", 0.5), "p50 {{pod}}"), (hq("rivulet_processing_latency_seconds", 0.99), "p99 {{pod}}")], unit="s", x=0, w=8)
ts("End-to-end latency", "For each output record: the wall-clock time when it is produced minus its timestamp.",
   [(hq("rivulet_end_to_end_latency_seconds", 0.5), "p50 {{pod}}"), (hq("rivulet_end_to_end_latency_seconds", 0.99), "p99 {{pod}}")], unit="s", x=8, w=8)
ts("Commit duration", "One commit cycle: changelogs, flush, offsets (in the transaction under exactly_once), local stores.",
   [(hq("rivulet_commit_duration_seconds", 0.5), "p50 {{pod}}"), (hq("rivulet_commit_duration_seconds", 0.99), "p99 {{pod}}")], unit="s", x=16, w=8)
next_line()

row("Commits and rebalances")
ts("Commits / s by result", "committed, aborted or failed.", [(f'sum by (result) (rate({q("rivulet_commits_total")}[$__rate_interval]))', "{{result}}")], unit="ops", x=0, w=6)
ts("Transaction aborts", "Aborted transactions per pod in each interval.", [(f'sum by (pod) (increase({q("rivulet_transaction_aborts_total")}[$__rate_interval]))', "{{pod}}")], x=6, w=6)
ts("Rebalances", "Rebalances per pod in each interval.", [(f'sum by (pod) (increase({q("rivulet_rebalances_total")}[$__rate_interval]))', "{{pod}}")], x=12, w=6)
ts("Rebalance duration", "p99 time spent in one revocation or assignment callback.", [(hq("rivulet_rebalance_duration_seconds", 0.99), "p99 {{pod}}")], unit="s", x=18, w=6)
next_line()

row("State")
ts("Restore: remaining records", "Changelog records still to restore, per store partition.", [(f'sum by (pod, store, partition) ({q("rivulet_restore_remaining_records")}) > 0', "{{pod}} {{store}}-{{partition}}")], x=0, w=8)
ts("Restore: restored records", "Changelog records restored so far, per store partition.", [(f'sum by (pod, store, partition) ({q("rivulet_restore_restored_records")})', "{{pod}} {{store}}-{{partition}}")], x=8, w=8)
ts("Store size", "Estimated size of each store (RocksDB: live data in its files plus memtables), summed over pods.", [(f'sum by (store) ({q("rivulet_store_size_bytes")})', "{{store}}")], unit="bytes", x=16, w=8)
next_line()

row("Bad records")
ts("Bad records / s", "By kind (deserialization, processing, production) and policy.", [(f'sum by (kind, policy) (rate({q("rivulet_bad_records_total")}[$__rate_interval]))', "{{kind}} {{policy}}")], unit="ops", x=0, w=8)
ts("Dead-letter records / s", "", [(f'sum by (pod) (rate({q("rivulet_dead_letter_records_total")}[$__rate_interval]))', "{{pod}}")], unit="ops", x=8, w=8)
ts("Late records / s", "Records that arrived for a window or timer already closed, per sub-topology.", [(f'sum by (subtopology) (rate({q("rivulet_late_records_total")}[$__rate_interval]))', "{{subtopology}}")], unit="ops", x=16, w=8)
next_line()

row("Kafka clients")
ts("Broker round-trip time", "Average request round trip per broker over the last librdkafka statistics window.", [(f'max by (broker) ({q("rivulet_kafka_broker_rtt_seconds")})', "{{broker}}")], unit="s", x=0)
ts("Producer queue", "Messages waiting in librdkafka's producer queue.", [(f'sum by (pod) ({q("rivulet_kafka_producer_queue_messages")})', "{{pod}}")], x=12)
next_line()

def var(name, label, query, multi=False):
    """A template variable from label values; multi adds an All option."""
    return {"name": name, "label": label, "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "definition": query, "refresh": 2, "sort": 1, "multi": multi, "includeAll": multi,
            **({"allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]}} if multi else {}),
            "hide": 0}

dash = {
    "title": "rivulet",
    "uid": "rivulet-overview",
    "description": "A rivulet stream-processing application: readiness, throughput, lag, latency, commits, state and Kafka clients.",
    "tags": ["rivulet", "kafka"],
    "timezone": "browser",
    "editable": True,
    "graphTooltip": 1,
    "refresh": "30s",
    "schemaVersion": 39,
    "time": {"from": "now-3h", "to": "now"},
    "annotations": {"list": []},
    "links": [],
    "templating": {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1, "regex": ""},
        var("namespace", "Namespace", "label_values(rivulet_ready, namespace)"),
        var("job", "Application (metrics service)", 'label_values(rivulet_ready{namespace="$namespace"}, job)'),
        var("pod", "Pod", 'label_values(rivulet_ready{namespace="$namespace", job="$job"}, pod)', multi=True),
    ]},
    "panels": panels,
}
print(json.dumps(dash, indent=2))
