use std::io::Write;

use super::*;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vec![("HOSTNAME".to_string(), "pod-0".to_string())];
    all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    all
}

fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::loader().env(env(vars)).load()
}

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn defaults_are_those_documented() {
    let c = load_env(&[("RIVULET__APPLICATION_ID", "orders")]).unwrap();
    assert_eq!(c.application_id, "orders");
    assert_eq!(c.instance_id, "pod-0");
    assert_eq!(c.processing_guarantee, ProcessingGuarantee::AtLeastOnce);
    assert_eq!(c.commit_interval, Duration::from_millis(30_000));
    assert_eq!(c.num_threads, 1);
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/rivulet"));
    assert_eq!(c.http.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(c.shutdown_timeout, Duration::from_millis(30_000));
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.log.level, "info");
    assert_eq!(c.kafka.bootstrap_servers, "");
    assert!(c.kafka.common.is_empty() && c.kafka.consumer.is_empty() && c.kafka.producer.is_empty());
}

#[test]
fn exactly_once_defaults_to_a_100ms_commit_interval() {
    let c = load_env(&[("RIVULET__APPLICATION_ID", "a"), ("RIVULET__PROCESSING_GUARANTEE", "exactly_once")]).unwrap();
    assert_eq!(c.processing_guarantee, ProcessingGuarantee::ExactlyOnce);
    assert_eq!(c.commit_interval, Duration::from_millis(100));
}

#[test]
fn env_var_overrides_the_file_which_overrides_defaults() {
    let file = toml_file("application_id = \"from-file\"\nnum_threads = 2\ncommit_interval_ms = 500\n");
    let c = Config::loader().file(file.path()).env(env(&[("RIVULET__NUM_THREADS", "3")])).load().unwrap();
    assert_eq!(c.application_id, "from-file");
    assert_eq!(c.commit_interval, Duration::from_millis(500), "the file overrides the default");
    assert_eq!(c.num_threads, 3, "the environment overrides the file");
}

#[test]
fn nested_env_var_sets_a_section_key() {
    let c = load_env(&[
        ("RIVULET__APPLICATION_ID", "a"),
        ("RIVULET__KAFKA__BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9092"),
        ("RIVULET__HTTP__LISTEN", "127.0.0.1:9000"),
    ])
    .unwrap();
    assert_eq!(c.kafka.bootstrap_servers, "broker-1:9092,broker-2:9092");
    assert_eq!(c.http.listen, "127.0.0.1:9000".parse().unwrap());
}

#[test]
fn config_file_comes_from_the_command_line_or_rivulet_config() {
    let file = toml_file("application_id = \"cli\"\n");
    let path = file.path().to_str().unwrap();
    let c = Config::loader().env(env(&[])).args(["--config", path]).unwrap().load().unwrap();
    assert_eq!(c.application_id, "cli");
    let c = Config::loader().env(env(&[])).args([format!("--config={path}")]).unwrap().load().unwrap();
    assert_eq!(c.application_id, "cli");
    let c = Config::loader().env(env(&[("RIVULET_CONFIG", path)])).load().unwrap();
    assert_eq!(c.application_id, "cli");
}

#[test]
fn missing_config_file_is_an_error_naming_it() {
    let err = Config::loader().env(env(&[])).file("/no/such/rivulet.toml").load().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::File { .. }), "{msg}");
    assert!(msg.contains("/no/such/rivulet.toml") && msg.contains("--config"), "{msg}");
    let err = Config::loader().args(["--config"]).unwrap_err();
    assert!(err.to_string().contains("--config needs a path"), "{err}");
}

#[test]
fn invalid_toml_names_the_file() {
    let file = toml_file("application_id = \n");
    let err = Config::loader().file(file.path()).env(env(&[])).load().unwrap_err();
    assert!(matches!(err, ConfigError::File { .. }), "{err}");
    assert!(err.to_string().contains(file.path().to_str().unwrap()), "{err}");
}

#[test]
fn misspelled_key_in_file_fails_naming_the_key_and_suggesting_the_right_one() {
    let file = toml_file("application_id = \"a\"\ncomit_interval_ms = 100\n");
    let err = Config::loader().file(file.path()).env(env(&[])).load().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::UnknownKey { ref key, .. } if key == "comit_interval_ms"), "{msg}");
    assert!(msg.contains("did you mean `commit_interval_ms`"), "{msg}");
    assert!(msg.contains(file.path().to_str().unwrap()), "the file is named: {msg}");
}

#[test]
fn misspelled_key_in_a_section_is_named_with_its_path() {
    let file = toml_file("application_id = \"a\"\n[kafka]\nbootstrap_server = \"x:9092\"\n");
    let err = Config::loader().file(file.path()).env(env(&[])).load().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`kafka.bootstrap_server`") && msg.contains("did you mean `kafka.bootstrap_servers`"),
        "{msg}"
    );
}

#[test]
fn unknown_env_var_names_the_variable() {
    let err = load_env(&[("RIVULET__APPLICATION_ID", "a"), ("RIVULET__NUM_THREAD", "2")]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`num_thread`") && msg.contains("RIVULET__NUM_THREAD") && msg.contains("`num_threads`"),
        "{msg}"
    );
}

#[test]
fn unrelated_key_lists_the_known_keys() {
    let err = load_env(&[("RIVULET__APPLICATION_ID", "a"), ("RIVULET__ZZZZZZZZZZZZZ", "2")]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`zzzzzzzzzzzzz`") && msg.contains("`application_id`") && msg.contains("[app]"), "{msg}");
}

#[test]
fn bad_values_name_key_value_and_what_is_accepted() {
    let cases: &[(&str, &str, &str)] = &[
        ("RIVULET__NUM_THREADS", "0", "num_threads"),
        ("RIVULET__NUM_THREADS", "many", "num_threads"),
        ("RIVULET__COMMIT_INTERVAL_MS", "-5", "commit_interval_ms"),
        ("RIVULET__PROCESSING_GUARANTEE", "exactly-once", "processing_guarantee"),
        ("RIVULET__HTTP__LISTEN", "localhost", "http.listen"),
        ("RIVULET__INSTANCE_ID", "pod 0", "instance_id"),
        ("RIVULET__STATE_DIR", " ", "state_dir"),
    ];
    for (var, value, key) in cases {
        let err = load_env(&[("RIVULET__APPLICATION_ID", "a"), (var, value)]).unwrap_err();
        let msg = err.to_string();
        let spec = keys::KEYS.iter().find(|k| k.name == *key).unwrap();
        assert!(matches!(err, ConfigError::InvalidValue { .. }), "{var}={value}: {msg}");
        assert!(msg.contains(&format!("`{key}`")), "names the key: {msg}");
        assert!(msg.contains(value.trim()), "shows the value: {msg}");
        assert!(msg.contains(&spec.accepted()), "says what is accepted: {msg}");
        assert!(msg.contains(var), "names the variable: {msg}");
    }
}

#[test]
fn application_id_is_required_and_checked() {
    let err = load_env(&[]).unwrap_err();
    assert!(matches!(err, ConfigError::Missing { ref key, .. } if key == "application_id"), "{err}");
    assert!(err.to_string().contains("RIVULET__APPLICATION_ID"), "{err}");
    let err = load_env(&[("RIVULET__APPLICATION_ID", "my app")]).unwrap_err();
    assert!(err.to_string().contains("\"my app\""), "{err}");
}

#[test]
fn instance_id_defaults_to_hostname_and_can_be_set() {
    let c = load_env(&[("RIVULET__APPLICATION_ID", "a")]).unwrap();
    assert_eq!(c.instance_id, "pod-0");
    let c = load_env(&[("RIVULET__APPLICATION_ID", "a"), ("RIVULET__INSTANCE_ID", "worker-7")]).unwrap();
    assert_eq!(c.instance_id, "worker-7");
}

#[test]
fn only_an_explicit_instance_id_turns_on_static_membership() {
    let from_host = load_env(&[("RIVULET__APPLICATION_ID", "a")]).unwrap();
    assert_eq!(from_host.group_instance_id(0), None);
    let explicit = load_env(&[("RIVULET__APPLICATION_ID", "a"), ("RIVULET__INSTANCE_ID", "orders-2")]).unwrap();
    assert_eq!(explicit.group_instance_id(0).as_deref(), Some("orders-2-0"));
    assert_eq!(explicit.group_instance_id(3).as_deref(), Some("orders-2-3"));
    let file = toml_file("application_id = \"a\"\ninstance_id = \"from-file\"\n");
    let c = Config::loader().env(env(&[])).file(file.path()).load().unwrap();
    assert_eq!(c.group_instance_id(1).as_deref(), Some("from-file-1"));
}

#[test]
fn shutdown_timeout_and_log_settings_are_read_and_checked() {
    let c = load_env(&[
        ("RIVULET__APPLICATION_ID", "a"),
        ("RIVULET__SHUTDOWN_TIMEOUT_MS", "5000"),
        ("RIVULET__LOG__FORMAT", "json"),
        ("RIVULET__LOG__LEVEL", "warn,rivulet=debug"),
    ])
    .unwrap();
    assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.log.level, "warn,rivulet=debug");
    for (key, bad) in [
        ("RIVULET__SHUTDOWN_TIMEOUT_MS", "0"),
        ("RIVULET__LOG__FORMAT", "xml"),
        ("RIVULET__LOG__LEVEL", "rivulet=loud"),
    ] {
        let err = load_env(&[("RIVULET__APPLICATION_ID", "a"), (key, bad)]).unwrap_err().to_string();
        let name = key.trim_start_matches("RIVULET__").replace("__", ".").to_lowercase();
        assert!(err.contains(&format!("`{name}`")) && err.contains(bad), "{err}");
    }
}

#[test]
fn kafka_passthrough_from_file_and_env() {
    let file = toml_file(
        "application_id = \"a\"\ngroup_protocol = \"classic\"\n[kafka.common]\n\"security.protocol\" = \"plaintext\"\n\
         [kafka.consumer]\n\"session.timeout.ms\" = 6000\n[kafka.producer]\n\"linger.ms\" = 5\n",
    );
    let c = Config::loader()
        .file(file.path())
        .env(env(&[("RIVULET__KAFKA__CONSUMER__FETCH_MIN_BYTES", "1024")]))
        .load()
        .unwrap();
    assert_eq!(c.kafka.common.get("security.protocol"), Some("plaintext"));
    assert_eq!(c.kafka.consumer.get("session.timeout.ms"), Some("6000"));
    assert_eq!(c.kafka.consumer.get("fetch.min.bytes"), Some("1024"));
    assert_eq!(c.kafka.producer.get("linger.ms"), Some("5"));
}

#[test]
fn the_consumer_group_protocol_refuses_client_side_session_settings() {
    for key in ["SESSION_TIMEOUT_MS", "HEARTBEAT_INTERVAL_MS"] {
        let var = format!("RIVULET__KAFKA__CONSUMER__{key}");
        let err = Config::loader().env(env(&[("RIVULET__APPLICATION_ID", "a"), (&var, "6000")])).load().unwrap_err();
        let err = err.to_string();
        assert!(err.contains("the broker sets it") && err.contains("group_protocol = \"classic\""), "{err}");
        let classic = [("RIVULET__APPLICATION_ID", "a"), ("RIVULET__GROUP_PROTOCOL", "classic"), (&var, "6000")];
        assert!(Config::loader().env(env(&classic)).load().is_ok());
    }
}

#[test]
fn unknown_librdkafka_property_is_refused_with_its_name() {
    let file = toml_file("application_id = \"a\"\n[kafka.consumer]\n\"sesion.timeout.ms\" = 6000\n");
    let err = Config::loader().file(file.path()).env(env(&[])).load().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::KafkaProperty { .. }), "{msg}");
    assert!(msg.contains("sesion.timeout.ms") && msg.contains("[kafka.consumer]"), "{msg}");
}

#[test]
fn bad_librdkafka_value_is_refused() {
    let err =
        load_env(&[("RIVULET__APPLICATION_ID", "a"), ("RIVULET__KAFKA__COMMON__SECURITY_PROTOCOL", "carrier-pigeon")])
            .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("security.protocol") && msg.contains("carrier-pigeon"), "{msg}");
}

#[test]
fn properties_rivulet_controls_are_refused() {
    let file = toml_file("application_id = \"a\"\n[kafka.consumer]\n\"enable.auto.commit\" = true\n");
    let err = Config::loader().file(file.path()).env(env(&[])).load().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("enable.auto.commit") && msg.contains("rivulet sets this property itself"), "{msg}");
}

#[test]
fn secrets_are_redacted_when_printed() {
    let file = toml_file(
        "application_id = \"a\"\n[kafka.common]\n\"sasl.username\" = \"svc\"\n\"sasl.password\" = \"hunter2-kafka\"\n\
         \"ssl.key.password\" = \"keypass-42\"\n[app]\napi_token = \"tok-9\"\ninput = \"in\"\n",
    );
    let c = Config::loader().file(file.path()).env(env(&[])).load().unwrap();
    assert_eq!(c.kafka.common.get("sasl.password"), Some("hunter2-kafka"), "the client still gets the secret");
    for printed in [c.to_string(), format!("{c:?}"), format!("{:?}", c.kafka)] {
        for secret in ["hunter2-kafka", "keypass-42", "tok-9"] {
            assert!(!printed.contains(secret), "secret {secret} leaked: {printed}");
        }
        assert!(printed.contains("[redacted]"), "{printed}");
    }
    let shown = c.to_string();
    assert!(shown.contains("\"svc\"") && shown.contains("input = \"in\""), "non-secrets stay visible: {shown}");
}

#[test]
fn a_bad_secret_value_is_not_echoed_in_the_error() {
    let file = toml_file("application_id = \"a\"\n[kafka.common]\n\"sasl.password\" = [1]\n");
    let err = Config::loader().file(file.path()).env(env(&[])).load().unwrap_err();
    assert!(err.to_string().contains("sasl.password"), "{err}");
}

#[test]
fn app_settings_are_read_into_the_applications_type() {
    #[derive(serde::Deserialize)]
    struct Settings {
        input_topic: String,
        threshold: u32,
        #[serde(default)]
        verbose: bool,
    }
    let file = toml_file("application_id = \"a\"\n[app]\ninput_topic = \"lines\"\nthreshold = 10\n");
    let c = Config::loader()
        .file(file.path())
        .env(env(&[("RIVULET__APP__THRESHOLD", "25"), ("RIVULET__APP__VERBOSE", "true")]))
        .load()
        .unwrap();
    let s: Settings = c.app().unwrap();
    assert_eq!(s.input_topic, "lines");
    assert_eq!(s.threshold, 25);
    assert!(s.verbose);
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Strict {
        missing_key: String,
    }
    let err = c.app::<Strict>().unwrap_err();
    assert!(err.to_string().contains("missing_key"), "{err}");
}

#[test]
fn defaults_set_in_code_sit_under_file_and_env() {
    let c = Config::loader()
        .default_value("application_id", "wordcount")
        .default_value("app.input_topic", "lines")
        .env(env(&[("RIVULET__APP__INPUT_TOPIC", "text")]))
        .load()
        .unwrap();
    assert_eq!(c.application_id, "wordcount");
    #[derive(serde::Deserialize)]
    struct S {
        input_topic: String,
    }
    assert_eq!(c.app::<S>().unwrap().input_topic, "text");
}

#[test]
fn configuration_doc_holds_the_reference_of_every_key() {
    let doc = include_str!("../../docs/configuration.md");
    for row in Config::reference().lines() {
        assert!(doc.contains(row), "docs/configuration.md lacks this row of Config::reference():\n{row}");
    }
}

#[test]
fn default_toml_states_the_default_of_every_key_and_nothing_else() {
    let root = config::Source::collect(&File::from_str(DEFAULT_TOML, FileFormat::Toml)).unwrap();
    let mut tree = Tree { root };
    for spec in keys::KEYS {
        let value = tree.take(spec).unwrap_or_else(|| panic!("config/default.toml lacks `{}`", spec.name));
        assert_eq!(
            value.kind,
            spec.default.value().kind,
            "config/default.toml states another default for `{}`",
            spec.name
        );
    }
    if let Err(e) = tree.reject_leftovers() {
        panic!("config/default.toml holds a key no KeySpec in keys.rs describes: {e}");
    }
}

#[test]
fn a_key_no_layer_holds_takes_the_default_of_its_spec() {
    let mut root = Map::new();
    root.insert("application_id".to_string(), Value::new(None, ValueKind::String("orders".into())));
    let env = BTreeMap::from([("HOSTNAME".to_string(), "pod-0".to_string())]);
    let from_specs = Tree { root }.into_config(&env).unwrap();
    let from_file = load_env(&[("RIVULET__APPLICATION_ID", "orders")]).unwrap();
    assert_eq!(from_specs.to_string(), from_file.to_string());
}

#[test]
fn every_integer_key_accepts_exactly_the_bounds_its_spec_states() {
    for spec in keys::KEYS {
        let spec::Accepts::Integer { min, max, .. } = spec.accepts else { continue };
        let var = keys::env_var_name(spec.name);
        // Standby replicas need the streams protocol.
        let load = |n: u64| {
            load_env(&[
                ("RIVULET__APPLICATION_ID", "a"),
                ("RIVULET__GROUP_PROTOCOL", "streams"),
                (&var, &n.to_string()),
            ])
        };
        for n in [min, max] {
            assert!(load(n).is_ok(), "{var}={n} is within the bounds of `{}`", spec.name);
        }
        for n in min.checked_sub(1).into_iter().chain(max.checked_add(1)) {
            let err = load(n).unwrap_err();
            assert!(matches!(err, ConfigError::InvalidValue { ref key, .. } if key == spec.name), "{var}={n}: {err}");
        }
    }
}

#[test]
fn every_choice_a_key_lists_is_accepted() {
    for spec in keys::KEYS {
        let spec::Accepts::OneOf(choices) = spec.accepts else { continue };
        let var = keys::env_var_name(spec.name);
        for choice in choices {
            let loaded = load_env(&[("RIVULET__APPLICATION_ID", "a"), (&var, choice)]);
            assert!(loaded.is_ok(), "{var}={choice}: {loaded:?}", loaded = loaded.err());
        }
    }
}

#[test]
fn secrets_can_be_read_from_mounted_files_and_the_config_keeps_only_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), "from-a-file\n").unwrap();
    std::fs::write(dir.path().join("token"), "app-token").unwrap();
    let reference = format!("${{directory:{}:password}}", dir.path().display());
    let app_reference = format!("${{directory:{}:token}}", dir.path().display());
    let c = load_env(&[
        ("RIVULET__APPLICATION_ID", "a"),
        ("RIVULET__KAFKA__BOOTSTRAP_SERVERS", "k:9092"),
        ("RIVULET__KAFKA__COMMON__SASL_PASSWORD", &reference),
        ("RIVULET__APP__API_KEY", &app_reference),
    ])
    .unwrap();
    assert_eq!(c.kafka.common.get("sasl.password"), Some(reference.as_str()));
    for printed in [format!("{c}"), format!("{c:?}"), format!("{:?}", c.kafka.common)] {
        assert!(!printed.contains("from-a-file") && !printed.contains("app-token"), "{printed}");
    }
    let client = crate::kafka::client_config(&c, crate::kafka::ClientRole::Producer).unwrap();
    assert_eq!(client.get("sasl.password"), Some("from-a-file"), "the client gets the file's contents");
    #[derive(serde::Deserialize)]
    struct Settings {
        api_key: String,
    }
    assert_eq!(c.app::<Settings>().unwrap().api_key, "app-token");
}

#[test]
fn a_reference_to_a_missing_file_fails_the_load_naming_the_key_and_where_it_was_set() {
    let err = load_env(&[
        ("RIVULET__APPLICATION_ID", "a"),
        ("RIVULET__KAFKA__COMMON__SASL_PASSWORD", "${directory:/no/such/dir:password}"),
    ])
    .unwrap_err();
    assert!(matches!(err, ConfigError::Reference { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("kafka.common.sasl.password"), "{message}");
    assert!(message.contains("/no/such/dir/password"), "{message}");
    assert!(message.contains("RIVULET__KAFKA__COMMON__SASL_PASSWORD"), "{message}");
    let err =
        load_env(&[("RIVULET__APPLICATION_ID", "a"), ("RIVULET__APP__TOKEN", "${file:/no/such.properties:token}")])
            .unwrap_err();
    assert!(err.to_string().contains("app.token"), "{err}");
}

#[test]
fn standby_replicas_need_the_streams_protocol() {
    let err =
        load_env(&[("RIVULET__APPLICATION_ID", "a"), ("RIVULET__NUM_STANDBY_REPLICAS", "1")]).unwrap_err().to_string();
    assert!(err.contains("num_standby_replicas") && err.contains("group_protocol = \"streams\""), "{err}");
    let c = load_env(&[
        ("RIVULET__APPLICATION_ID", "a"),
        ("RIVULET__GROUP_PROTOCOL", "streams"),
        ("RIVULET__NUM_STANDBY_REPLICAS", "1"),
    ])
    .unwrap();
    assert_eq!((c.group_protocol, c.num_standby_replicas), (GroupProtocol::Streams, 1));
    let streams = |security: &[(&'static str, &'static str)]| {
        let mut env = vec![("RIVULET__APPLICATION_ID", "a"), ("RIVULET__GROUP_PROTOCOL", "streams")];
        env.extend_from_slice(security);
        load_env(&env)
    };
    // librdkafka's default mechanism, GSSAPI, and OAUTHBEARER are refused.
    let err = streams(&[("RIVULET__KAFKA__COMMON__SECURITY_PROTOCOL", "sasl_ssl")]).unwrap_err().to_string();
    assert!(err.contains("sasl.mechanisms") && err.contains("GSSAPI") && err.contains("SCRAM-SHA-512"), "{err}");
    let err = streams(&[
        ("RIVULET__KAFKA__COMMON__SECURITY_PROTOCOL", "SASL_SSL"),
        ("RIVULET__KAFKA__COMMON__SASL_MECHANISMS", "SCRAM-SHA-512"),
        ("RIVULET__KAFKA__CONSUMER__SASL_MECHANISMS", "OAUTHBEARER"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("kafka.consumer") || err.contains("consumer"), "{err}");
    assert!(err.contains("OAUTHBEARER"), "{err}");
    for (protocol, mechanism) in [("SASL_SSL", "SCRAM-SHA-512"), ("sasl_plaintext", "PLAIN"), ("SSL", "GSSAPI")] {
        streams(&[
            ("RIVULET__KAFKA__COMMON__SECURITY_PROTOCOL", protocol),
            ("RIVULET__KAFKA__COMMON__SASL_MECHANISMS", mechanism),
        ])
        .unwrap();
    }
}
