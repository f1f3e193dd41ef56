//! Schema Registry serdes on a real broker and a real Schema Registry
//! (Apicurio Registry's Confluent API, started by the harness), with the
//! bytes cross-checked against Confluent's own Python serializers: records
//! they write rivulet reads, and records rivulet writes they read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;
// The example's `main` is not used here.
#[allow(dead_code)]
#[path = "../examples/avro_orders.rs"]
mod avro_orders;

use std::time::Duration;

use harness::registry::{confluent_consume, confluent_produce};
use harness::TestRecord;
use rivulet::prelude::*;
use rivulet::serde::registry::{RegistryError, SchemaRegistry, SubjectNameStrategy};
use rivulet::RunningApp;
use serde::{Deserialize, Serialize};
use serde_json::json;

// ORDER_V2: what rivulet reads Confluent's records as, a later version with
// a field added with a default (Avro schema resolution).
use avro_orders::{Order, OrderTotal, ORDER as ORDER_V2, ORDER_TOTAL};

/// What Confluent's serializer writes.
const ORDER_V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"long"},{"name":"sku","type":"string"},{"name":"quantity","type":"int"}]}"#;

fn config(app_id: &str, state: &std::path::Path, extra: &[(&str, &str)]) -> Config {
    let mut env = vec![("RIVULET__SCHEMA_REGISTRY__URL", harness::registry::url())];
    env.extend_from_slice(extra);
    harness::app_config(app_id, state, &env)
}

fn wait_for_records(topic: &str, n: usize) -> Vec<TestRecord> {
    let mut records = Vec::new();
    harness::eventually(&format!("{n} records in {topic}"), Duration::from_secs(60), || {
        records = harness::read_committed(topic);
        if records.len() >= n {
            Ok(())
        } else {
            Err(format!("{} records", records.len()))
        }
    });
    records
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topology_reads_avro_confluent_wrote_and_writes_avro_confluent_reads() {
    let input = harness::new_topic("sr-avro-in", 1).await;
    let output = harness::new_topic("sr-avro-out", 1).await;
    confluent_produce(
        "avro",
        &input,
        ORDER_V1,
        &[
            ("a", json!({"id": 1, "sku": "apple", "quantity": 1})),
            ("b", json!({"id": 2, "sku": "pear", "quantity": 3})),
            ("c", json!({"id": 3, "sku": "plum", "quantity": 2})),
        ],
    );

    let state = tempfile::tempdir().unwrap();
    let app_id = harness::unique("sr-avro");
    // Auto-registration on for the output's schema, as the demo does.
    let config = config(&app_id, state.path(), &[("RIVULET__SCHEMA_REGISTRY__AUTO_REGISTER_SCHEMAS", "true")]);
    let registry = SchemaRegistry::connect(&config.schema_registry).unwrap();
    // The example's topology (examples/avro_orders.rs).
    let settings = avro_orders::Settings { input_topic: input.clone(), output_topic: output.clone() };
    let topology = avro_orders::topology(&registry, &settings).unwrap();
    let output_id = registry.avro::<OrderTotal>(ORDER_TOTAL).unwrap().value_of(&output).writer_id().unwrap();
    let app = App::new(config).unwrap().start(topology).unwrap();
    wait_for_records(&output, 3);
    app.shutdown().unwrap();

    // The schema rivulet registered is the latest under <output>-value.
    let (latest_id, _) = registry.latest(&format!("{output}-value")).unwrap();
    assert_eq!(latest_id, output_id);
    let read = confluent_consume("avro", &output, 3, None);
    let expected = [
        ("a", json!({"id": 1, "channel": "web", "units": 10, "note": null})),
        ("b", json!({"id": 2, "channel": "web", "units": 30, "note": "3 x pear"})),
        ("c", json!({"id": 3, "channel": "web", "units": 20, "note": "2 x plum"})),
    ];
    for ((key, value, id), (want_key, want)) in read.iter().zip(expected) {
        assert_eq!((key.as_str(), value), (want_key, &want));
        assert_eq!(*id, output_id, "the header carries the registered id");
    }
}

const ITEM_SCHEMA: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#","title":"Item","type":"object",
  "properties":{"id":{"type":"integer"},"name":{"type":"string"}},"required":["id","name"]}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    id: i64,
    name: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn json_schema_records_cross_check_with_confluent() {
    let input = harness::new_topic("sr-json-in", 1).await;
    let output = harness::new_topic("sr-json-out", 1).await;
    confluent_produce(
        "json",
        &input,
        ITEM_SCHEMA,
        &[("k1", json!({"id": 1, "name": "one"})), ("k2", json!({"id": 2, "name": "two"}))],
    );

    let state = tempfile::tempdir().unwrap();
    let app_id = harness::unique("sr-json");
    let config = config(&app_id, state.path(), &[("RIVULET__SCHEMA_REGISTRY__AUTO_REGISTER_SCHEMAS", "true")]);
    let registry = SchemaRegistry::connect(&config.schema_registry).unwrap();
    let mut b = Topology::builder();
    b.stream(&input, Serdes::string(), registry.json_schema::<Item>(ITEM_SCHEMA).unwrap())
        .map_values(|i: Item| Item { id: i.id * 100, name: i.name.to_uppercase() })
        .to(&output, Serdes::string(), registry.json_schema::<Item>(ITEM_SCHEMA).unwrap().value_of(&output));
    let app = App::new(config).unwrap().start(b.build().unwrap()).unwrap();
    wait_for_records(&output, 2);
    app.shutdown().unwrap();

    let read = confluent_consume("json", &output, 2, None);
    let values: Vec<_> = read.iter().map(|(k, v, _)| (k.as_str(), v.clone())).collect();
    assert_eq!(values, [("k1", json!({"id": 100, "name": "ONE"})), ("k2", json!({"id": 200, "name": "TWO"}))]);
}

#[derive(Clone, PartialEq, prost::Message)]
struct Reading {
    #[prost(string, tag = "1")]
    sensor: String,
    #[prost(double, tag = "2")]
    celsius: f64,
}

const READING_PROTO: &str =
    "syntax = \"proto3\";\npackage plant;\n\nmessage Reading {\n  string sensor = 1;\n  double celsius = 2;\n}\n";

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_records_cross_check_with_confluent() {
    let input = harness::new_topic("sr-proto-in", 1).await;
    let output = harness::new_topic("sr-proto-out", 1).await;
    // Confluent registers the schema as its serialized descriptor (base64);
    // rivulet reads by id whatever form the registry holds.
    confluent_produce(
        "protobuf",
        &input,
        READING_PROTO,
        &[("s1", json!({"sensor": "t1", "celsius": 21.5})), ("s2", json!({"sensor": "t2", "celsius": -3.25}))],
    );

    let state = tempfile::tempdir().unwrap();
    let app_id = harness::unique("sr-proto");
    let config = config(&app_id, state.path(), &[("RIVULET__SCHEMA_REGISTRY__AUTO_REGISTER_SCHEMAS", "true")]);
    let registry = SchemaRegistry::connect(&config.schema_registry).unwrap();
    let readings = registry.protobuf::<Reading>(READING_PROTO).value_of(&output);
    let output_id = readings.writer_id().unwrap();
    let mut b = Topology::builder();
    b.stream(&input, Serdes::string(), registry.protobuf::<Reading>(READING_PROTO))
        .map_values(|r: Reading| Reading { sensor: r.sensor.to_uppercase(), celsius: r.celsius * 2.0 })
        .to(&output, Serdes::string(), readings);
    let app = App::new(config).unwrap().start(b.build().unwrap()).unwrap();
    let written = wait_for_records(&output, 2);
    app.shutdown().unwrap();

    // The header, then the message indexes [0] as the single byte 0.
    let value = written[0].value.as_deref().unwrap();
    assert_eq!(
        value[..6],
        [0, (output_id >> 24) as u8, (output_id >> 16) as u8, (output_id >> 8) as u8, output_id as u8, 0]
    );
    let read = confluent_consume("protobuf", &output, 2, Some(READING_PROTO));
    let values: Vec<_> = read.iter().map(|(k, v, id)| (k.as_str(), v.clone(), *id)).collect();
    assert_eq!(
        values,
        [
            ("s1", json!({"sensor": "T1", "celsius": 43.0}), output_id),
            ("s2", json!({"sensor": "T2", "celsius": -6.5}), output_id)
        ]
    );
}

#[test]
fn protobuf_messages_round_trip_through_the_registry_by_id() {
    let state = tempfile::tempdir().unwrap();
    let topic = harness::unique("sr-proto-id");
    let config = config(&topic, state.path(), &[("RIVULET__SCHEMA_REGISTRY__AUTO_REGISTER_SCHEMAS", "true")]);
    let writer =
        SchemaRegistry::connect(&config.schema_registry).unwrap().protobuf::<Reading>(READING_PROTO).value_of(&topic);
    let reading = Reading { sensor: "t1".into(), celsius: 21.5 };
    let mut bytes = Vec::new();
    writer.serialize(&reading, &mut bytes).unwrap();
    // A fresh client knows nothing: it asks the registry for the id.
    let reader = SchemaRegistry::connect(&config.schema_registry).unwrap().protobuf::<Reading>(READING_PROTO);
    assert_eq!(reader.deserialize(Some(&bytes)).unwrap(), reading);
    // Under the record strategy the subject is the message's full name.
    let by_record = SchemaRegistry::connect(&config.schema_registry)
        .unwrap()
        .protobuf::<Reading>(READING_PROTO)
        .subject_name_strategy(SubjectNameStrategy::Record);
    let id = by_record.writer_id().unwrap();
    assert_eq!(SchemaRegistry::connect(&config.schema_registry).unwrap().latest("plant.Reading").unwrap().0, id);
}

/// good, a record whose schema id the registry does not know, good.
async fn input_with_an_unknown_schema_id(prefix: &str, registry: &SchemaRegistry) -> String {
    let input = harness::new_topic(prefix, 1).await;
    let serde = registry.avro::<Order>(ORDER_V2).unwrap().value_of(&input);
    let encode = |o: &Order| {
        let mut v = Vec::new();
        serde.serialize(o, &mut v).unwrap();
        v
    };
    let order = |id| Order { id, sku: "x".into(), quantity: 1, channel: "shop".into() };
    let unknown = vec![0, 0x7f, 0xff, 0xff, 0x01, 0x02];
    let record = |key: &str, value: Vec<u8>| TestRecord { value: Some(value), ..TestRecord::kv(key, "") };
    harness::produce(&input, &[record("a", encode(&order(1))), record("b", unknown), record("c", encode(&order(3)))])
        .await;
    input
}

async fn run_with_policy(policy: &str) -> (RunningApp, String, String, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let app_id = harness::unique(&format!("sr-{policy}"));
    let config = config(
        &app_id,
        state.path(),
        &[("RIVULET__ERRORS__DESERIALIZATION", policy), ("RIVULET__SCHEMA_REGISTRY__AUTO_REGISTER_SCHEMAS", "true")],
    );
    let registry = SchemaRegistry::connect(&config.schema_registry).unwrap();
    let input = input_with_an_unknown_schema_id(&format!("sr-{policy}-in"), &registry).await;
    let output = harness::new_topic(&format!("sr-{policy}-out"), 1).await;
    let mut b = Topology::builder();
    b.stream(&input, Serdes::string(), registry.avro::<Order>(ORDER_V2).unwrap())
        .map_values(|o: Order| o.id.to_string())
        .to(&output, Serdes::string(), Serdes::string());
    let app = App::new(config).unwrap().start(b.build().unwrap()).unwrap();
    let written = wait_for_records(&output, 2);
    let keys: Vec<_> = written.iter().map(|r| r.key_str().to_string()).collect();
    assert_eq!(keys, ["a", "c"], "the good records around the bad one are processed");
    (app, input, app_id, state)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_schema_id_is_skipped_under_skip() {
    let (app, _, _, _state) = run_with_policy("skip").await;
    harness::eventually("the bad record is counted", Duration::from_secs(10), || {
        let s = app.stats();
        if s.records_skipped == 1 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_schema_id_is_dead_lettered_under_dead_letter() {
    let (app, input, app_id, _state) = run_with_policy("dead_letter").await;
    let dlq = format!("{app_id}-dlq");
    let dead = wait_for_records(&dlq, 1);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(&[0, 0x7f, 0xff, 0xff, 0x01, 0x02][..]), "the original bytes");
    let header = |name: &str| {
        let v = dead[0].headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.clone()).unwrap_or_default();
        String::from_utf8(v).unwrap()
    };
    assert_eq!(header("rivulet.source.topic"), input);
    assert_eq!(header("rivulet.error.kind"), "deserialization");
    let message = header("rivulet.error.message");
    assert!(message.contains("2147483393") || message.contains("schema"), "{message}");
    app.shutdown().unwrap();
}

#[test]
fn a_registry_that_cannot_be_reached_at_start_is_one_clear_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let config = Config::loader()
        .env([("RIVULET__APPLICATION_ID", "sr-down"), ("RIVULET__SCHEMA_REGISTRY__URL", url.as_str())])
        .load()
        .unwrap();
    let err = SchemaRegistry::connect(&config.schema_registry).unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with(&format!("the Schema Registry at {url} cannot be reached")), "{text}");
    assert!(text.contains("check schema_registry.url"), "{text}");
}

#[test]
fn without_auto_registration_an_unregistered_output_schema_fails_at_start_naming_the_subject() {
    let state = tempfile::tempdir().unwrap();
    let topic = harness::unique("sr-unregistered");
    let config = config(&topic, state.path(), &[]);
    assert!(!config.schema_registry.auto_register_schemas, "off by default");
    let registry = SchemaRegistry::connect(&config.schema_registry).unwrap();
    let serde = registry.avro::<OrderTotal>(ORDER_TOTAL).unwrap().value_of(&topic);
    let err = serde.writer_id().unwrap_err().to_string();
    assert!(err.contains(&format!("no such schema under subject {topic}-value")), "{err}");
    assert!(err.contains("auto_register_schemas"), "{err}");
    // The first record written fails the same way.
    let order = OrderTotal { id: 1, channel: "web".into(), units: 1, note: None };
    let err = serde.serialize(&order, &mut Vec::new()).unwrap_err();
    assert!(err.reason.contains(&format!("{topic}-value")), "{err}");
}

#[test]
fn tls_to_the_registry_needs_its_ca() {
    if std::env::var_os("RIVULET_TEST_SCHEMA_REGISTRY").is_some() {
        eprintln!("skipped: RIVULET_TEST_SCHEMA_REGISTRY names another registry, without registry.sh's TLS listener");
        return;
    }
    harness::registry::url();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/integration-tests/schema-registry/registry.sh");
    let run = |what: &str| {
        let out = std::process::Command::new("bash").args([script, what]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (tls_url, ca) = (run("tls-url"), run("ca"));
    let load = |extra: &[(&str, &str)]| {
        let mut env = vec![("RIVULET__APPLICATION_ID", "sr-tls"), ("RIVULET__SCHEMA_REGISTRY__URL", tls_url.as_str())];
        env.extend_from_slice(extra);
        Config::loader().env(env).load().unwrap()
    };
    let with_ca = load(&[("RIVULET__SCHEMA_REGISTRY__SSL_CA_LOCATION", ca.as_str())]);
    let registry = SchemaRegistry::connect(&with_ca.schema_registry).unwrap();
    let serde = registry.avro::<OrderTotal>(ORDER_TOTAL).unwrap().subject(&harness::unique("sr-tls"));
    // Over TLS too, the lookup answers (not registered: auto-registration is off).
    assert!(matches!(serde.writer_id(), Err(RegistryError::NotFound { .. })));
    let err = SchemaRegistry::connect(&load(&[]).schema_registry).unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "without the CA the certificate is refused: {err}");
}

/// Kills the child when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Basic auth against the real registry behind a gate that demands it
/// (`auth_proxy.py`: Apicurio 2.4 does basic auth only with an OIDC
/// server): the right user info registers a schema and a second client,
/// with an empty cache, reads it back by id through the gate; a wrong
/// password, or none, is refused at connect with an error that does not
/// show the password.
#[test]
fn basic_auth_reaches_the_registry_and_wrong_credentials_are_refused_at_connect() {
    use std::io::BufRead;
    let upstream = harness::registry::url();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/integration-tests/schema-registry/auth_proxy.py");
    let password = format!("pw-{}", harness::unique("secret"));
    let user_info = format!("rivulet:{password}");
    let mut child = std::process::Command::new("python3")
        .args([script, &port.to_string(), upstream, &user_info])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first_line).unwrap();
    let _gate = KillOnDrop(child);
    assert_eq!(first_line.trim(), "listening");
    let url = format!("http://127.0.0.1:{port}");

    let load = |user_info: &str| {
        Config::loader()
            .env([
                ("RIVULET__APPLICATION_ID", "sr-auth"),
                ("RIVULET__SCHEMA_REGISTRY__URL", url.as_str()),
                ("RIVULET__SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO", user_info),
                ("RIVULET__SCHEMA_REGISTRY__AUTO_REGISTER_SCHEMAS", "true"),
            ])
            .load()
            .unwrap()
    };
    let config = load(&user_info);
    let subject = harness::unique("sr-auth");
    let writer = SchemaRegistry::connect(&config.schema_registry).unwrap();
    let serde = writer.avro::<OrderTotal>(ORDER_TOTAL).unwrap().subject(&subject);
    let order = OrderTotal { id: 7, channel: "web".into(), units: 3, note: None };
    let mut bytes = Vec::new();
    serde.serialize(&order, &mut bytes).unwrap();
    assert_eq!(bytes[0], 0, "Confluent's magic byte");
    let reader = SchemaRegistry::connect(&config.schema_registry).unwrap();
    let read = reader.avro::<OrderTotal>(ORDER_TOTAL).unwrap().subject(&subject).deserialize(Some(&bytes)).unwrap();
    assert_eq!(read, order, "read back by id through the gate");

    for wrong in ["rivulet:wrong-password", ""] {
        let err = SchemaRegistry::connect(&load(wrong).schema_registry).unwrap_err();
        assert!(matches!(err, RegistryError::Unauthorized { status: 401, .. }), "{wrong:?}: {err:?}");
        let text = format!("{err} {err:?}");
        assert!(text.contains("basic_auth_user_info"), "{text}");
        assert!(!text.contains("wrong-password") && !text.contains(&password), "{text}");
    }
}
