//! The wire format, byte for byte, and the client's caches, without a
//! registry: the registry's answers are put in the cache beforehand, and
//! the URL points where nothing listens. integration-tests/schema_registry.rs
//! runs the serdes against a real registry and Confluent's Python
//! serializers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use apache_avro::types::Value;

use super::*;
use crate::serde::Serde;

const ORDER_V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
    {"name":"id","type":"long"},{"name":"sku","type":"string"}]}"#;
const ORDER_V2: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
    {"name":"id","type":"long"},{"name":"sku","type":"string"},
    {"name":"note","type":["null","string"],"default":null}]}"#;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct OrderV1 {
    id: i64,
    sku: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct OrderV2 {
    id: i64,
    sku: String,
    note: Option<String>,
}

fn config(extra: &[(&str, &str)]) -> SchemaRegistryConfig {
    let mut env = vec![
        ("RIVULET__APPLICATION_ID", "t"),
        // Nothing listens there: a test that reaches the network fails.
        ("RIVULET__SCHEMA_REGISTRY__URL", "http://127.0.0.1:1"),
        ("RIVULET__SCHEMA_REGISTRY__REQUEST_TIMEOUT_MS", "2000"),
    ];
    env.extend_from_slice(extra);
    crate::Config::loader().env(env).load().unwrap().schema_registry
}

/// A client whose cache holds `subject`'s schema under `id`, as after a
/// lookup.
fn registry_with(entries: &[(&str, SchemaType, &str, u32)]) -> SchemaRegistry {
    let registry = SchemaRegistry::new(&config(&[])).unwrap();
    for (subject, schema_type, text, id) in entries {
        write(&registry.inner.ids).insert((subject.to_string(), text.to_string()), *id);
        write(&registry.inner.by_id)
            .insert(*id, Arc::new(RegisteredSchema { schema_type: *schema_type, text: text.to_string() }));
    }
    registry
}

#[test]
fn avro_records_are_the_header_then_avro_binary() {
    let registry = registry_with(&[("orders-value", SchemaType::Avro, ORDER_V1, 42)]);
    let serde = registry.avro::<OrderV1>(ORDER_V1).unwrap().value_of("orders");
    let mut out = Vec::new();
    serde.serialize(&OrderV1 { id: 1, sku: "ab".into() }, &mut out).unwrap();
    // magic 0, id 42 big-endian, long 1 (zig-zag 2), string length 2 (zig-zag 4), "ab".
    assert_eq!(out, [0, 0, 0, 0, 42, 0x02, 0x04, b'a', b'b']);
    assert_eq!(serde.deserialize(Some(&out)).unwrap(), OrderV1 { id: 1, sku: "ab".into() });
    assert_eq!(serde.writer_id().unwrap(), 42);
}

#[test]
fn generic_avro_values_round_trip() {
    let registry = registry_with(&[("orders-value", SchemaType::Avro, ORDER_V1, 42)]);
    let serde = registry.avro_value(ORDER_V1).unwrap().value_of("orders");
    let value = Value::Record(vec![("id".into(), Value::Long(1)), ("sku".into(), Value::String("ab".into()))]);
    let mut out = Vec::new();
    serde.serialize(&value, &mut out).unwrap();
    assert_eq!(out, [0, 0, 0, 0, 42, 0x02, 0x04, b'a', b'b']);
    assert_eq!(serde.deserialize(Some(&out)).unwrap(), value);
    assert_eq!(serde.name(), "avro<shop.Order>");
}

#[test]
fn avro_reads_an_older_writer_schema_by_resolution() {
    let registry = registry_with(&[("orders-value", SchemaType::Avro, ORDER_V1, 1)]);
    let reader = registry.avro::<OrderV2>(ORDER_V2).unwrap();
    let written = [0, 0, 0, 0, 1, 0x02, 0x04, b'a', b'b'];
    assert_eq!(reader.deserialize(Some(&written)).unwrap(), OrderV2 { id: 1, sku: "ab".into(), note: None });
}

#[test]
fn an_unknown_schema_id_is_a_deserialization_error_naming_the_registry() {
    let registry = registry_with(&[]);
    let serde = registry.avro::<OrderV1>(ORDER_V1).unwrap();
    let err = serde.deserialize(Some(&[0, 0, 0, 0, 9, 0x02, 0x04, b'a', b'b'])).unwrap_err();
    assert!(err.serde.starts_with("avro<"), "{err}");
    assert!(err.reason.contains("http://127.0.0.1:1 cannot be reached"), "{err}");
    let err = serde.deserialize(Some(b"plain text")).unwrap_err();
    assert!(err.reason.contains("unknown magic byte"), "{err}");
    assert!(serde.deserialize(None).is_err());
}

#[test]
fn a_value_that_does_not_fit_the_schema_is_a_serialization_error() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Wrong {
        id: String,
    }
    let registry = registry_with(&[("orders-value", SchemaType::Avro, ORDER_V1, 42)]);
    let serde = registry.avro::<Wrong>(ORDER_V1).unwrap().value_of("orders");
    assert!(serde.serialize(&Wrong { id: "x".into() }, &mut Vec::new()).is_err());
}

#[derive(Clone, PartialEq, prost::Message)]
struct Line {
    #[prost(string, tag = "1")]
    sku: String,
    #[prost(int64, tag = "2")]
    quantity: i64,
}

const LINE_PROTO: &str =
    "syntax = \"proto3\";\npackage shop;\nmessage Line {\n  string sku = 1;\n  int64 quantity = 2;\n}\n";

#[test]
fn protobuf_records_carry_the_message_indexes() {
    let registry = registry_with(&[("lines-value", SchemaType::Protobuf, LINE_PROTO, 7)]);
    let serde = registry.protobuf::<Line>(LINE_PROTO).value_of("lines");
    let line = Line { sku: "a".into(), quantity: 1 };
    let mut out = Vec::new();
    serde.serialize(&line, &mut out).unwrap();
    // header, indexes [0] as the single byte 0, then field 1 (string "a") and field 2 (varint 1).
    assert_eq!(out, [0, 0, 0, 0, 7, 0, 0x0a, 0x01, b'a', 0x10, 0x01]);
    assert_eq!(serde.deserialize(Some(&out)).unwrap(), line);
    // Another message of the file is refused rather than misread.
    let other = [0, 0, 0, 0, 7, 2, 2, 0x0a, 0x01, b'a'];
    assert!(serde.deserialize(Some(&other)).unwrap_err().reason.contains("message indexes [1]"));
}

#[test]
fn json_schema_records_are_the_header_then_json() {
    let schema = r#"{"title":"Order","type":"object","properties":{"id":{"type":"integer"},"sku":{"type":"string"}}}"#;
    let registry = registry_with(&[("Order", SchemaType::Json, schema, 3)]);
    let serde = registry.json_schema::<OrderV1>(schema).unwrap().subject_name_strategy(SubjectNameStrategy::Record);
    let mut out = Vec::new();
    serde.serialize(&OrderV1 { id: 1, sku: "ab".into() }, &mut out).unwrap();
    assert_eq!(out, b"\0\0\0\0\x03{\"id\":1,\"sku\":\"ab\"}");
    assert_eq!(serde.deserialize(Some(&out)).unwrap(), OrderV1 { id: 1, sku: "ab".into() });
    // An Avro id read by the JSON Schema serde is refused.
    let registry = registry_with(&[("x", SchemaType::Avro, ORDER_V1, 4)]);
    let serde = registry.json_schema::<OrderV1>(schema).unwrap();
    let err = serde.deserialize(Some(b"\0\0\0\0\x04{}")).unwrap_err();
    assert!(err.reason.contains("is a AVRO schema, not JSON"), "{err}");
}

#[test]
fn subject_name_strategies_follow_confluent() {
    let spec = |topic: Option<&str>, is_key, strategy| SubjectSpec {
        topic: topic.map(str::to_string),
        is_key,
        strategy: Some(strategy),
        explicit: None,
    };
    let record = Some("shop.Order");
    let default = SubjectNameStrategy::Topic;
    assert_eq!(
        spec(Some("orders"), false, SubjectNameStrategy::Topic).subject(default, record).unwrap(),
        "orders-value"
    );
    assert_eq!(spec(Some("orders"), true, SubjectNameStrategy::Topic).subject(default, record).unwrap(), "orders-key");
    assert_eq!(spec(None, false, SubjectNameStrategy::Record).subject(default, record).unwrap(), "shop.Order");
    assert_eq!(
        spec(Some("orders"), false, SubjectNameStrategy::TopicRecord).subject(default, record).unwrap(),
        "orders-shop.Order"
    );
    let err = spec(None, false, SubjectNameStrategy::Topic).subject(default, record).unwrap_err();
    assert!(err.contains(".value_of(topic)"), "{err}");
    let explicit = SubjectSpec { explicit: Some("custom".into()), ..SubjectSpec::default() };
    assert_eq!(explicit.subject(default, None).unwrap(), "custom");
}

#[test]
fn the_configured_strategy_is_the_default_and_a_serde_can_override_it() {
    let registry =
        SchemaRegistry::new(&config(&[("RIVULET__SCHEMA_REGISTRY__SUBJECT_NAME_STRATEGY", "record")])).unwrap();
    let serde = registry.avro::<OrderV1>(ORDER_V1).unwrap().value_of("orders");
    assert_eq!(serde.subject_name().unwrap(), "shop.Order");
    let serde = serde.subject_name_strategy(SubjectNameStrategy::Topic);
    assert_eq!(serde.subject_name().unwrap(), "orders-value");
}

#[test]
fn basic_auth_is_base64_and_never_shown() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    let registry =
        SchemaRegistry::new(&config(&[("RIVULET__SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO", "svc:hunter2")])).unwrap();
    assert_eq!(registry.inner.authorization.as_deref(), Some("Basic c3ZjOmh1bnRlcjI="));
    let shown = format!("{registry:?}");
    assert!(!shown.contains("hunter2") && !shown.contains("c3ZjOmh1bnRlcjI="), "{shown}");
}

#[test]
fn subjects_are_percent_encoded_in_paths() {
    assert_eq!(encode_path("orders-value"), "orders-value");
    assert_eq!(encode_path("a/b c"), "a%2Fb%20c");
}

#[test]
fn an_unreachable_registry_at_connect_is_one_clear_error() {
    let err = SchemaRegistry::connect(&config(&[])).unwrap_err().to_string();
    assert!(err.starts_with("the Schema Registry at http://127.0.0.1:1 cannot be reached ("), "{err}");
    assert!(err.contains("check schema_registry.url"), "{err}");
    let mut empty = config(&[]);
    empty.url.clear();
    let err = SchemaRegistry::connect(&empty).unwrap_err().to_string();
    assert!(err.contains("schema_registry.url is empty"), "{err}");
}

#[test]
fn a_missing_ca_file_is_named() {
    let err = SchemaRegistry::new(&config(&[("RIVULET__SCHEMA_REGISTRY__SSL_CA_LOCATION", "/nonexistent/ca.pem")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/ca.pem cannot be read"), "{err}");
}
