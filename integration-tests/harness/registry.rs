//! The test Schema Registry and Confluent's Python serializers.
//!
//! [`url`] makes sure a Schema Registry answers, starting one with
//! `integration-tests/schema-registry/registry.sh start` (Apicurio
//! Registry, Confluent's API under `/apis/ccompat/v7`) when none does.
//! [`confluent_produce`] and [`confluent_consume`] run
//! `confluent_serde.py` in the venv `registry.sh python` makes, so the
//! bytes rivulet writes and reads are checked against Confluent's own
//! serializers.
//!
//! Environment: `RIVULET_TEST_SCHEMA_REGISTRY` points the tests at another
//! registry (its Confluent API's base URL).

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/integration-tests/schema-registry/registry.sh");
const PYTHON_SCRIPT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/integration-tests/schema-registry/confluent_serde.py");

/// The base URL of a Schema Registry that answers, started if need be.
pub fn url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var("RIVULET_TEST_SCHEMA_REGISTRY").unwrap_or_else(|_| {
            let out = Command::new("bash").arg(SCRIPT).arg("url").output().expect("run registry.sh url");
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        });
        if answers(&url, Duration::from_secs(2)) {
            return url;
        }
        eprintln!("no Schema Registry answers at {url}; starting one with {SCRIPT}");
        let status = Command::new("bash").arg(SCRIPT).arg("start").status().expect("run registry.sh");
        assert!(status.success(), "{SCRIPT} start failed; see its output above");
        assert!(answers(&url, Duration::from_secs(30)), "the registry started by {SCRIPT} does not answer at {url}");
        url
    })
}

fn answers(url: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(2))).build().into();
    loop {
        if let Ok(mut r) = agent.get(format!("{url}/subjects")).call() {
            if r.status() == 200 && r.body_mut().read_to_string().is_ok_and(|b| b.starts_with('[')) {
                return true;
            }
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The python of the venv with confluent-kafka.
fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("bash").arg(SCRIPT).arg("python").stderr(Stdio::inherit()).output().unwrap();
        assert!(out.status.success(), "{SCRIPT} python failed; see its output above");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

/// `schema` in a file of a fresh folder, named as `format` wants it
/// (protoc takes the Python module's name from a `.proto` file's).
fn schema_file(format: &str, schema: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(if format == "protobuf" { "schema.proto" } else { "schema.txt" });
    std::fs::write(&path, schema).unwrap();
    (dir, path)
}

/// Writes `records` (key, value as JSON) to partition 0 of `topic` with
/// Confluent's serializer of `format` (`avro`, `json` or `protobuf`) and
/// `schema` (for protobuf a .proto file, the value its first message),
/// which it registers under `<topic>-value`.
pub fn confluent_produce(format: &str, topic: &str, schema: &str, records: &[(&str, serde_json::Value)]) {
    let (_dir, schema_file) = schema_file(format, schema);
    let mut child = Command::new(python())
        .args([PYTHON_SCRIPT, "produce", format, super::bootstrap(), url(), topic])
        .arg(&schema_file)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for (key, value) in records {
            writeln!(stdin, "{}", serde_json::json!({ "key": key, "value": value })).unwrap();
        }
    }
    assert!(child.wait().unwrap().success(), "confluent_serde.py produce failed; see its output above");
}

/// Reads `count` records from partition 0 of `topic` with Confluent's
/// deserializer of `format`: (key, value as JSON, schema id) each. Avro
/// and JSON Schema records are read with their writer's schema; Protobuf
/// ones as the first message of the .proto `schema`.
pub fn confluent_consume(
    format: &str,
    topic: &str,
    count: usize,
    schema: Option<&str>,
) -> Vec<(String, serde_json::Value, u32)> {
    let schema = schema.map(|s| schema_file(format, s));
    let mut command = Command::new(python());
    command.args([PYTHON_SCRIPT, "consume", format, super::bootstrap(), url(), topic, &count.to_string()]);
    if let Some((_, path)) = &schema {
        command.arg(path);
    }
    let out = command.stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "confluent_serde.py consume failed; see its output above");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (v["key"].as_str().unwrap().to_string(), v["value"].clone(), v["schema_id"].as_u64().unwrap() as u32)
        })
        .collect()
}
