//! rivulet against the test broker's SASL_SSL listener (TLS, SCRAM-SHA-512,
//! KRaft's StandardAuthorizer): a principal holding exactly the ACLs that
//! docs/configuration.md lists runs a stateful exactly-once topology; with
//! one ACL missing the application fails with an error naming it; and the
//! password, from a file or from the environment, never shows in the logs,
//! the config's printout or the HTTP endpoints.
//!
//! Each test makes its own SCRAM user (random name and password), topics and
//! application id. Topics are created and read by the harness on the
//! PLAINTEXT listener, whose principal is a super user.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use harness::secure::{self, Acl, Principal};
use harness::TestRecord;
use rivulet::prelude::*;
use rivulet::RunningApp;

const COLOURS: [&str; 3] = ["red", "green", "blue"];

/// Counts the records per value after a repartition by value (a
/// repartition topic, a changelog) and writes every new count.
fn counts_by_value(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::string())
        .group_by(|_, v: &String| v.clone(), Serdes::string())
        .count("counts")
        .to_stream()
        .to(output, Serdes::string(), Serdes::i64());
    b.build().unwrap()
}

/// The ACLs the "ACLs" section of docs/configuration.md lists for an
/// application reading `inputs` and writing `outputs`.
fn documented_acls(app: &str, inputs: &[&str], outputs: &[&str], exactly_once: bool) -> Vec<Acl> {
    let prefix = format!("{app}-");
    let mut acls = Vec::new();
    for t in inputs {
        acls.push(Acl::new("TOPIC", "LITERAL", t, "READ"));
    }
    for t in outputs {
        acls.push(Acl::new("TOPIC", "LITERAL", t, "WRITE"));
    }
    for op in ["CREATE", "READ", "WRITE", "DESCRIBE_CONFIGS", "DELETE"] {
        acls.push(Acl::new("TOPIC", "PREFIXED", &prefix, op));
    }
    acls.push(Acl::new("GROUP", "LITERAL", app, "READ"));
    acls.push(Acl::new("GROUP", "LITERAL", &format!("{app}-restore"), "DESCRIBE"));
    if exactly_once {
        acls.push(Acl::new("TRANSACTIONAL_ID", "PREFIXED", &prefix, "WRITE"));
    }
    acls
}

/// A shared buffer every log line of this test binary goes to (rivulet's
/// and, through the `log` crate, librdkafka's).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once), at debug level.
fn captured_logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .unwrap();
        logs
    })
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The last error and warning lines, for a failure's message.
    fn errors(&self) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("ERROR") || l.contains(" WARN ")).collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

fn colour_records(n: usize) -> Vec<TestRecord> {
    (0..n).map(|i| TestRecord::kv(&format!("k{i}"), COLOURS[i % COLOURS.len()])).collect()
}

/// The last count written per colour (read_committed).
fn last_counts(output: &str) -> BTreeMap<String, i64> {
    harness::read_committed(output)
        .iter()
        .map(|r| (r.key_str().to_string(), i64::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap())))
        .collect()
}

fn wait_for_counts(app: &RunningApp, output: &str, each: i64) {
    let want: BTreeMap<String, i64> = COLOURS.iter().map(|c| (c.to_string(), each)).collect();
    harness::eventually("the counts are written", Duration::from_secs(120), || {
        assert!(!app.has_stopped(), "the application stopped; logged errors:\n{}", captured_logs().errors());
        let got = last_counts(output);
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
}

/// The body of every HTTP endpoint of `app`.
fn http_bodies(app: &RunningApp) -> String {
    let addr = app.http_addr().unwrap();
    let mut all = String::new();
    for path in ["/metrics", "/topology", "/health/ready", "/health/live"] {
        let mut http = std::net::TcpStream::connect(addr).unwrap();
        http.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).unwrap();
        http.read_to_string(&mut all).unwrap();
    }
    all
}

fn assert_secret_absent(password: &str, config: &Config, app: &RunningApp) {
    let logs = captured_logs().text();
    assert!(logs.contains("rivulet"), "the logs were not captured");
    assert!(!logs.contains(password), "the password is in the logs");
    assert!(!format!("{config}").contains(password) && !format!("{config:?}").contains(password));
    let http = http_bodies(app);
    assert!(http.contains("rivulet_"), "no metrics: {http}");
    assert!(!http.contains(password), "the password is served over HTTP");
}

/// Runs `f` on a thread of its own and fails the test when it takes over
/// `timeout`: a missing ACL must fail, not hang.
fn within<T: Send + 'static>(timeout: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(timeout) {
        Ok(answer) => answer,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("no answer within {timeout:?}: it hangs"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("it panicked (see above)"),
    }
}

/// One test's topics, application id, instance id, principal and folders.
struct Case {
    input: String,
    output: String,
    app_id: String,
    instance: String,
    principal: Principal,
    /// Holds the file `password`, as a mounted Kubernetes Secret.
    secret: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Case {
    /// New topics of `partitions` partitions, and a new application whose
    /// new principal holds the documented ACLs as `change` leaves them.
    async fn new(partitions: i32, change: impl FnOnce(&mut Vec<Acl>, &str)) -> Case {
        let input = harness::new_topic("sec-in", partitions).await;
        let output = harness::new_topic("sec-out", partitions).await;
        let app_id = harness::unique("sec");
        let principal = Principal::random();
        let mut acls = documented_acls(&app_id, &[input.as_str()], &[output.as_str()], true);
        change(&mut acls, &output);
        secure::setup(&principal, &acls);
        Case {
            input,
            output,
            app_id,
            instance: harness::unique("pod"),
            principal,
            secret: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// The variables that connect as the principal, its password from the
    /// file.
    fn env(&self) -> Vec<(String, String)> {
        secure::app_env(&self.principal, self.secret.path())
    }

    /// An exactly-once config with `env` on top.
    fn config(&self, env: &[(String, String)]) -> Config {
        let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        harness::eos_config(&self.app_id, self.state.path(), &self.instance, &extra)
    }

    fn topology(&self) -> Topology {
        counts_by_value(&self.input, &self.output)
    }

    /// Runs the application and returns the error it stops with, at start
    /// or later; fails the test when it has not stopped within two minutes
    /// (a missing ACL must fail, not hang).
    fn failure(&self) -> String {
        self.failure_with(&self.env())
    }

    /// [`Case::failure`] with the variables `env`.
    fn failure_with(&self, env: &[(String, String)]) -> String {
        let (config, topology) = (self.config(env), self.topology());
        let message = within(Duration::from_secs(120), move || match App::new(config).unwrap().start(topology) {
            Err(e) => e.to_string(),
            Ok(app) => {
                while !app.has_stopped() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                app.shutdown().expect_err("the application stops with an error").to_string()
            }
        });
        eprintln!("the error: {message}");
        message
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_acls_run_a_stateful_exactly_once_topology_with_the_password_from_a_file() {
    captured_logs();
    let case = Case::new(2, |_, _| {}).await;
    let mut env = case.env();
    env.push(("RIVULET__REPARTITION_PURGE_INTERVAL_MS".into(), "100".into()));
    let config = case.config(&env);

    harness::produce(&case.input, &colour_records(30)).await;
    let app = App::new(config.clone()).unwrap().start(case.topology()).unwrap();
    wait_for_counts(&app, &case.output, 10);
    assert_secret_absent(&case.principal.password, &config, &app);
    app.shutdown().unwrap();

    // Started again, the internal topics exist: they are checked
    // (DescribeConfigs), and the consumed repartition records are deleted
    // (DeleteRecords) after commits.
    let app = App::new(config.clone()).unwrap().start(case.topology()).unwrap();
    harness::produce(&case.input, &colour_records(30)).await;
    wait_for_counts(&app, &case.output, 20);
    let repartition = internal_topic(&case.app_id, "-repartition");
    harness::eventually("consumed repartition records are deleted", Duration::from_secs(60), || {
        let low: Vec<i64> = harness::watermarks(&repartition).iter().map(|(low, _)| *low).collect();
        if low.iter().any(|l| *l > 0) {
            Ok(())
        } else {
            Err(format!("low watermarks {low:?}"))
        }
    });
    app.shutdown().unwrap();
}

/// Under `group_protocol = "streams"` (KIP-1071) the heartbeats, offset
/// commits and the group's standby setting go through rivulet's own client,
/// which speaks TLS and SCRAM as the librdkafka clients do: with the
/// documented ACLs (ALTER_CONFIGS on the group among them), a stateful
/// exactly-once topology with a standby replica counts per key.
#[tokio::test(flavor = "multi_thread")]
async fn the_streams_protocol_with_a_standby_runs_over_sasl_ssl_with_the_documented_acls() {
    captured_logs();
    let case = Case::new(2, |acls, _| acls.push(streams_group_acl(acls))).await;
    let config = case.config(&streams_env(&case));
    harness::produce(&case.input, &colour_records(30)).await;
    let app = App::new(config.clone()).unwrap().start(case.topology()).unwrap();
    wait_for_counts(&app, &case.output, 10);
    harness::produce(&case.input, &colour_records(30)).await;
    wait_for_counts(&app, &case.output, 20);
    assert_secret_absent(&case.principal.password, &config, &app);
    app.shutdown().unwrap();
}

/// Without ALTER_CONFIGS on the group, the streams protocol cannot set the
/// group's standby replicas: the start fails naming the group.
#[tokio::test(flavor = "multi_thread")]
async fn without_alter_configs_on_the_group_the_streams_protocol_start_fails_naming_it() {
    let case = Case::new(1, |_, _| {}).await;
    let message = case.failure_with(&streams_env(&case));
    assert!(message.contains("GROUP_AUTHORIZATION_FAILED") && message.contains(&case.app_id), "{message}");
}

/// ALTER_CONFIGS on the application's group, which the streams protocol
/// needs besides the documented ACLs.
fn streams_group_acl(acls: &[Acl]) -> Acl {
    let app = &acls.iter().find(|a| a.resource_type == "GROUP").unwrap().name;
    Acl::new("GROUP", "LITERAL", app, "ALTER_CONFIGS")
}

/// `case`'s variables with the streams protocol and a standby replica.
fn streams_env(case: &Case) -> Vec<(String, String)> {
    let mut env = case.env();
    env.push(("RIVULET__GROUP_PROTOCOL".into(), "streams".into()));
    env.push(("RIVULET__NUM_STANDBY_REPLICAS".into(), "1".into()));
    env
}

/// The one topic of the application `app_id` whose name ends in `suffix`.
fn internal_topic(app_id: &str, suffix: &str) -> String {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = harness::client_config().create().unwrap();
    let md = consumer.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    let names: Vec<String> = md
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|n| n.starts_with(&format!("{app_id}-")) && n.ends_with(suffix))
        .collect();
    assert_eq!(names.len(), 1, "topics of {app_id} ending in {suffix}: {names:?}");
    names[0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_from_the_environment_is_in_no_log_line_even_with_librdkafka_debug_logs() {
    captured_logs();
    let case = Case::new(1, |_, _| {}).await;
    let password = case.principal.password.clone();
    let mut env = case.env();
    for (k, v) in &mut env {
        if k.as_str() == "RIVULET__KAFKA__COMMON__SASL_PASSWORD" {
            *v = password.clone();
        }
    }
    // librdkafka prints its config and the SASL exchange at debug level.
    env.push(("RIVULET__KAFKA__COMMON__DEBUG".into(), "conf,security,broker".into()));
    let config = case.config(&env);
    assert_eq!(config.kafka.common.get("sasl.password"), Some(password.as_str()));

    harness::produce(&case.input, &colour_records(6)).await;
    let app = App::new(config.clone()).unwrap().start(case.topology()).unwrap();
    wait_for_counts(&app, &case.output, 2);
    let logs = captured_logs().text();
    assert!(logs.contains("librdkafka") && logs.contains("SCRAM"), "librdkafka's debug lines were not captured");
    assert_secret_absent(&password, &config, &app);
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_transactional_id_acl_the_application_fails_naming_it() {
    let case = Case::new(1, |acls, _| acls.retain(|a| a.resource_type != "TRANSACTIONAL_ID")).await;
    harness::produce(&case.input, &colour_records(3)).await;
    let message = case.failure();
    let (app_id, instance) = (&case.app_id, &case.instance);
    let txn = format!("not authorized to WRITE transactional id '{app_id}-{instance}-0'");
    assert!(message.contains(&txn), "{message}");
    assert!(message.contains(&format!("transactional ids prefixed '{app_id}-'")), "{message}");
    assert!(message.contains("docs/configuration.md"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_create_acl_on_internal_topics_the_start_fails_naming_it() {
    let case = Case::new(1, |acls, _| acls.retain(|a| !(a.pattern == "PREFIXED" && a.operation == "CREATE"))).await;
    let message = case.failure();
    let app_id = &case.app_id;
    assert!(message.contains(&format!("not authorized to CREATE topic '{app_id}-")), "{message}");
    assert!(message.contains(&format!("CREATE on topics prefixed '{app_id}-'")), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_write_on_the_output_topic_the_start_fails_naming_it() {
    let case = Case::new(1, |acls, output| acls.retain(|a| a.name != output)).await;
    let message = case.failure();
    let output = &case.output;
    assert!(message.contains(&format!("not authorized to DESCRIBE topic '{output}'")), "{message}");
    assert!(message.contains(&format!("grant it WRITE on topic '{output}'")), "{message}");
}

/// The principal may see the output topic (DESCRIBE) but not write it: the
/// transaction fails at the first output, and the application stops
/// naming WRITE instead of aborting and processing again forever.
#[tokio::test(flavor = "multi_thread")]
async fn with_describe_but_not_write_on_the_output_topic_the_first_transaction_fails_naming_it() {
    let case = Case::new(1, |acls, output| {
        acls.retain(|a| a.name != output);
        acls.push(Acl::new("TOPIC", "LITERAL", output, "DESCRIBE"));
    })
    .await;
    harness::produce(&case.input, &colour_records(3)).await;
    let message = case.failure();
    assert!(message.contains("not authorized to WRITE"), "{message}");
    assert!(message.contains(&case.output), "{message}");
    assert!(harness::read_committed(&case.output).is_empty(), "nothing was committed to the output");
}

/// The restore consumer never joins its group, but librdkafka looks up the
/// group's coordinator: without DESCRIBE on it, restoring fails. A first
/// principal with every ACL fills the changelog; a second one, without that
/// ACL, starts the same application on an empty state dir and must restore.
#[tokio::test(flavor = "multi_thread")]
async fn without_describe_on_the_restore_group_restoring_fails_naming_it() {
    let mut case = Case::new(1, |_, _| {}).await;
    harness::produce(&case.input, &colour_records(3)).await;
    let app = App::new(case.config(&case.env())).unwrap().start(case.topology()).unwrap();
    wait_for_counts(&app, &case.output, 1);
    app.shutdown().unwrap();

    case.principal = Principal::random();
    let mut acls = documented_acls(&case.app_id, &[case.input.as_str()], &[case.output.as_str()], true);
    acls.retain(|a| !a.name.ends_with("-restore"));
    secure::setup(&case.principal, &acls);
    case.state = tempfile::tempdir().unwrap();
    let message = case.failure();
    let group = format!("{}-restore", case.app_id);
    assert!(message.contains(&format!("not authorized to DESCRIBE group '{group}'")), "{message}");
    assert!(message.contains(&format!("grant it DESCRIBE on the group '{group}'")), "{message}");
}

/// The broker's SASL_SSL listener itself: the admin user made when the log
/// dir was formatted (kafka-storage format --add-scram) connects over TLS,
/// checking the broker's certificate against the test CA, and SCRAM; a
/// wrong password does not.
#[test]
fn the_admin_user_made_at_format_time_connects_with_tls_and_scram_and_a_wrong_password_does_not() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let s = secure::secured();
    let connect = |password: &str| {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &s.bootstrap)
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanisms", "SCRAM-SHA-512")
            .set("sasl.username", &s.admin_user)
            .set("sasl.password", password)
            .set("ssl.ca.location", &s.ca_pem)
            .set("log_level", "0")
            .create()
            .unwrap();
        consumer.fetch_metadata(None, Duration::from_secs(10)).map(|m| m.brokers().len())
    };
    assert_eq!(connect(&s.admin_password).unwrap(), 1);
    assert!(connect("not-the-password").is_err());
}
