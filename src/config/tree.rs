//! Taking each known key out of the merged layers and validating it against
//! its entry in `keys.rs`; whatever is left over is an unknown key.

use super::*;

/// The merged layers, from which keys are taken one by one; whatever is
/// left over at the end is unknown.
pub(super) struct Tree {
    pub(super) root: Map<String, Value>,
}

impl Tree {
    pub(super) fn take(&mut self, spec: &KeySpec) -> Option<Value> {
        let mut parts: Vec<&str> = spec.name.split('.').collect();
        let last = parts.pop()?;
        let mut table = &mut self.root;
        for part in parts {
            table = match table.get_mut(part).map(|v| &mut v.kind) {
                Some(ValueKind::Table(inner)) => inner,
                _ => return None,
            };
        }
        table.remove(last)
    }

    /// The key's value from the layers, or its default when no layer holds
    /// it.
    fn take_or_default(&mut self, spec: &KeySpec) -> Value {
        self.take(spec).unwrap_or_else(|| spec.default.value())
    }

    /// The key's value, or `None` when it is not set: empty text for a key
    /// whose default is required or found at load.
    fn take_set(&mut self, spec: &KeySpec) -> Option<Value> {
        let value = self.take_or_default(spec);
        let empty = matches!(&value.kind, ValueKind::String(s) if s.is_empty());
        (!(empty && spec.default.is_empty_text())).then_some(value)
    }

    /// The key's value (or default), checked by `check` against what the
    /// spec accepts.
    fn get<T>(
        &mut self,
        spec: &KeySpec,
        check: impl FnOnce(&KeySpec, &Value) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        check(spec, &self.take_or_default(spec))
    }

    /// As [`Tree::get`], or `None` when the key is not set (see
    /// [`Tree::take_set`]).
    fn get_set<T>(
        &mut self,
        spec: &KeySpec,
        check: impl FnOnce(&KeySpec, &Value) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        self.take_set(spec).map(|v| check(spec, &v)).transpose()
    }

    fn take_table(&mut self, spec: &KeySpec) -> Result<Map<String, Value>, ConfigError> {
        keys::table(spec, self.take_or_default(spec))
    }

    pub(super) fn into_config(mut self, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        use keys::*;
        let Some(application_id) = self.get_set(&APPLICATION_ID, name)? else {
            return Err(ConfigError::Missing {
                key: APPLICATION_ID.name.into(),
                hint: format!(
                    "give every application a name, in the config file (application_id = \"my-app\") \
                     or as {}",
                    env_var_name(APPLICATION_ID.name)
                ),
            });
        };
        let explicit_instance_id = self.get_set(&INSTANCE_ID, name)?;
        let instance_id_explicit = explicit_instance_id.is_some();
        let instance_id = match explicit_instance_id {
            Some(id) => id,
            None => host_name(env).ok_or_else(|| ConfigError::Missing {
                key: INSTANCE_ID.name.into(),
                hint: format!(
                    "no HOSTNAME to take it from; set a stable name per instance as {}",
                    env_var_name(INSTANCE_ID.name)
                ),
            })?,
        };
        let processing_guarantee = self.get(&PROCESSING_GUARANTEE, |s, v| one_of(s, v, &GUARANTEES))?;
        let commit_interval_ms = match self.get_set(&COMMIT_INTERVAL_MS, integer)? {
            Some(ms) => ms,
            None => COMMIT_INTERVAL_MS_DEFAULT.under(processing_guarantee),
        };
        let repartition_purge_interval_ms = self.get(&REPARTITION_PURGE_INTERVAL_MS, integer)?;
        let num_threads = self.get(&NUM_THREADS, integer)? as usize;
        let group_protocol = self.get(&GROUP_PROTOCOL, |s, v| one_of(s, v, &GROUP_PROTOCOLS))?;
        let num_standby_replicas = self.get(&NUM_STANDBY_REPLICAS, integer)? as u32;
        if num_standby_replicas > 0 && group_protocol != GroupProtocol::Streams {
            return Err(ConfigError::InvalidValue {
                key: NUM_STANDBY_REPLICAS.name.into(),
                value: num_standby_replicas.to_string(),
                origin: "the config".into(),
                accepted: format!(
                    "0 under group_protocol = \"{group_protocol}\": standby replicas need the broker to place \
                     them, so set group_protocol = \"streams\" (KIP-1071, Kafka 4.1+)"
                ),
            });
        }
        let shutdown_timeout_ms = self.get(&SHUTDOWN_TIMEOUT_MS, integer)?;
        let state_dir = self.get(&STATE_DIR, path)?;
        let block_cache_bytes = self.get(&STATE_BLOCK_CACHE_BYTES, integer)? as usize;
        let write_buffer_bytes = self.get(&STATE_WRITE_BUFFER_BYTES, integer)? as usize;
        let cache_bytes = self.get(&STATE_CACHE_BYTES, integer)? as usize;
        let window_changelog_additional_retention_ms =
            self.get(&STATE_WINDOW_CHANGELOG_ADDITIONAL_RETENTION_MS, integer)? as i64;
        let deserialization = self.get(&ERRORS_DESERIALIZATION, |s, v| one_of(s, v, &POLICIES))?;
        let processing = self.get(&ERRORS_PROCESSING, |s, v| one_of(s, v, &POLICIES))?;
        let production = self.get(&ERRORS_PRODUCTION, |s, v| one_of(s, v, &POLICIES))?;
        let dead_letter_topic = self.get_set(&ERRORS_DEAD_LETTER_TOPIC, name)?.unwrap_or_default();
        let offset_out_of_range = self.get(&ERRORS_OFFSET_OUT_OF_RANGE, |s, v| one_of(s, v, &OFFSET_RESET_POLICIES))?;
        let bounded = super::BoundedConfig {
            enabled: self.get(&BOUNDED_ENABLED, boolean)?,
            close_windows_at_end: self.get(&BOUNDED_CLOSE_WINDOWS_AT_END, boolean)?,
        };
        let listen = self.get(&HTTP_LISTEN, socket_addr)?;
        let advertised_address = self.get_set(&HTTP_ADVERTISED_ADDRESS, host_port)?.unwrap_or_default();
        let format = self.get(&LOG_FORMAT, |s, v| one_of(s, v, &LOG_FORMATS))?;
        let level = self.get(&LOG_LEVEL, log_filter)?;
        let bootstrap_servers = self.get(&BOOTSTRAP_SERVERS, text)?.trim().to_string();
        let common = passthrough(&KAFKA_COMMON, self.take_table(&KAFKA_COMMON)?)?;
        let consumer = passthrough(&KAFKA_CONSUMER, self.take_table(&KAFKA_CONSUMER)?)?;
        let producer = passthrough(&KAFKA_PRODUCER, self.take_table(&KAFKA_PRODUCER)?)?;
        if group_protocol != GroupProtocol::Classic {
            broker_side_group_settings(group_protocol, &[("common", &common), ("consumer", &consumer)])?;
        }
        if group_protocol == GroupProtocol::Streams {
            streams_protocol_security(&[("common", &common), ("consumer", &consumer)])?;
        }
        let schema_registry = SchemaRegistryConfig {
            url: self.get(&SCHEMA_REGISTRY_URL, url)?,
            basic_auth_user_info: self.get(&SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO, user_info)?,
            ssl_ca_location: Some(self.get(&SCHEMA_REGISTRY_SSL_CA_LOCATION, text)?.trim().to_string())
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            auto_register_schemas: self.get(&SCHEMA_REGISTRY_AUTO_REGISTER_SCHEMAS, boolean)?,
            subject_name_strategy: self
                .get(&SCHEMA_REGISTRY_SUBJECT_NAME_STRATEGY, |s, v| one_of(s, v, &SUBJECT_NAME_STRATEGIES))?,
            request_timeout: Duration::from_millis(self.get(&SCHEMA_REGISTRY_REQUEST_TIMEOUT_MS, integer)?),
        };
        let app = self.take_table(&APP)?;
        resolve_table(APP.name, &app)?;

        self.reject_leftovers()?;
        Ok(Config {
            application_id,
            instance_id,
            instance_id_explicit,
            processing_guarantee,
            commit_interval: Duration::from_millis(commit_interval_ms),
            repartition_purge_interval: Duration::from_millis(repartition_purge_interval_ms),
            num_threads,
            group_protocol,
            num_standby_replicas,
            shutdown_timeout: Duration::from_millis(shutdown_timeout_ms),
            state_dir,
            state: StateConfig {
                block_cache_bytes,
                write_buffer_bytes,
                cache_bytes,
                window_changelog_additional_retention_ms,
            },
            errors: ErrorsConfig { deserialization, processing, production, dead_letter_topic, offset_out_of_range },
            bounded,
            http: HttpConfig { listen, advertised_address },
            log: LogConfig { format, level },
            kafka: KafkaConfig { bootstrap_servers, common, consumer, producer },
            schema_registry,
            app,
        })
    }

    pub(super) fn reject_leftovers(&self) -> Result<(), ConfigError> {
        let mut leftovers = Vec::new();
        collect_leaves("", &self.root, &mut leftovers);
        let Some((key, value)) = leftovers.into_iter().next() else {
            return Ok(());
        };
        let known = keys::KEYS.iter().map(|k| k.name);
        let hint = match keys::closest(&key, known) {
            Some(near) => format!("; did you mean `{near}`?"),
            // `kafka.linger.ms`: a librdkafka property outside its section.
            None if key.starts_with("kafka.") => {
                let property = key.trim_start_matches("kafka.").replace('_', ".");
                format!(
                    "; librdkafka properties go under [kafka.common], [kafka.consumer] or [kafka.producer], for \
                     example \"{property}\" in [kafka.producer] or RIVULET__KAFKA__PRODUCER__{}",
                    property.to_uppercase().replace('.', "_")
                )
            }
            None => format!(
                "; rivulet's keys are {} (see docs/configuration.md), and the application's own \
                 settings go under [app]",
                keys::KEYS.iter().map(|k| format!("`{}`", k.name)).collect::<Vec<_>>().join(", ")
            ),
        };
        Err(ConfigError::UnknownKey { origin: keys::origin_of(&key, &value), key, hint })
    }
}

pub(super) fn collect_leaves(prefix: &str, table: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (k, v) in table {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match &v.kind {
            ValueKind::Table(inner) => collect_leaves(&path, inner, out),
            _ => out.push((path, v.clone())),
        }
    }
}

pub(super) fn host_name(env: &BTreeMap<String, String>) -> Option<String> {
    let from_env = env.get("HOSTNAME").map(|h| h.trim().to_string()).filter(|h| !h.is_empty());
    let name = from_env.or_else(|| {
        std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty())
    })?;
    Some(name.chars().map(|c| if spec::is_name_char(c) { c } else { '-' }).collect())
}

/// Under KIP-848 the broker owns the session timeout and heartbeat
/// interval: librdkafka refuses them when its consumer is created; say so at
/// load, with what to do instead.
fn broker_side_group_settings(
    protocol: GroupProtocol,
    sections: &[(&str, &KafkaProperties)],
) -> Result<(), ConfigError> {
    for (section, props) in sections {
        for key in ["session.timeout.ms", "heartbeat.interval.ms"] {
            if let Some(value) = props.get(key) {
                return Err(ConfigError::KafkaProperty {
                    section: section.to_string(),
                    key: key.into(),
                    value: format!("{value:?}"),
                    origin: "the config".into(),
                    reason: format!(
                        "with group_protocol = \"{protocol}\" ({kip}) the broker sets it: remove it and set the \
                         group's `{protocol}.{key}` with kafka-configs.sh --entity-type groups (or the broker's \
                         `group.{protocol}.{key}`), or set group_protocol = \"classic\"",
                        kip = if protocol == GroupProtocol::Streams { "KIP-1071" } else { "KIP-848" },
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The streams protocol's heartbeats and offset commits go through
/// rivulet's own client (`kafka::streams_group`), which speaks PLAINTEXT,
/// SSL, SASL_PLAINTEXT and SASL_SSL with SASL PLAIN and SCRAM-SHA-256/512,
/// but not OAUTHBEARER or GSSAPI (Kerberos). `sections` are in the order
/// librdkafka applies them: a later one overrides an earlier one.
fn streams_protocol_security(sections: &[(&str, &KafkaProperties)]) -> Result<(), ConfigError> {
    let effective =
        |key: &str| sections.iter().rev().find_map(|(section, props)| props.get(key).map(|v| (section.to_string(), v)));
    let refuse = |section: String, key: &str, value: &str, what: &str| ConfigError::KafkaProperty {
        section,
        key: key.into(),
        value: format!("{value:?}"),
        origin: "the config".into(),
        reason: format!(
            "group_protocol = \"streams\" speaks to the group coordinator through rivulet's own client, which \
             supports security.protocol PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL with sasl.mechanisms PLAIN, \
             SCRAM-SHA-256 and SCRAM-SHA-512, not {what}: use one of those, or group_protocol = \"consumer\" \
             (without standby replicas)"
        ),
    };
    let Some((section, protocol)) = effective("security.protocol") else { return Ok(()) };
    let protocol = protocol.to_ascii_lowercase();
    if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&protocol.as_str()) {
        return Err(refuse(section, "security.protocol", &protocol, "this one"));
    }
    if protocol.starts_with("sasl") {
        // librdkafka's default mechanism is GSSAPI.
        let (section, mechanism) =
            effective("sasl.mechanisms").or_else(|| effective("sasl.mechanism")).unwrap_or((section, "GSSAPI"));
        if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.trim().to_ascii_uppercase().as_str()) {
            return Err(refuse(section, "sasl.mechanisms", mechanism, "OAUTHBEARER or GSSAPI"));
        }
    }
    Ok(())
}

/// Turns a `[kafka.*]` table into librdkafka properties and lets librdkafka
/// check every name and value now rather than when the first client starts.
pub(super) fn passthrough(spec: &KeySpec, table: Map<String, Value>) -> Result<KafkaProperties, ConfigError> {
    let section = spec.name.trim_start_matches("kafka.");
    let mut props = BTreeMap::new();
    for (raw_key, value) in table {
        let from_env = value.origin() == Some("the environment");
        // Environment variable names cannot hold dots: RIVULET__KAFKA__CONSUMER__SESSION_TIMEOUT_MS
        // sets session.timeout.ms.
        let key = if from_env { raw_key.replace('_', ".") } else { raw_key.clone() };
        let origin = keys::origin_of(&format!("{}.{raw_key}", spec.name), &value);
        let text = keys::scalar_text(&value).ok_or_else(|| ConfigError::KafkaProperty {
            section: section.into(),
            key: key.clone(),
            value: keys::shown(&value),
            origin: origin.clone(),
            reason: "librdkafka properties take a string, integer or boolean".into(),
        })?;
        let shown = format!("{:?}", redact(&key, &text));
        // A reference is read now, so that a missing file fails the load,
        // and librdkafka checks what it names; the config keeps the
        // reference (see `reference`).
        let resolved = if reference::has_reference(&text) {
            reference::resolve(&format!("{}.{key}", spec.name), &origin, &text)?
        } else {
            text.clone()
        };
        if let Some((_, why)) = keys::RESERVED_KAFKA_PROPERTIES.iter().find(|(name, _)| *name == key) {
            return Err(ConfigError::KafkaProperty {
                section: section.into(),
                key,
                value: shown,
                origin,
                reason: format!("rivulet sets this property itself: {why}"),
            });
        }
        let mut check = rdkafka::ClientConfig::new();
        check.set(key.as_str(), resolved.as_str());
        if let Err(e) = check.create_native_config() {
            return Err(ConfigError::KafkaProperty {
                section: section.into(),
                key,
                value: shown,
                origin,
                reason: e.to_string(),
            });
        }
        props.insert(key, text);
    }
    Ok(KafkaProperties(props))
}

/// `table` (the `[app]` table, or a part of it, at `prefix`) with the
/// references in its text values replaced by what they name.
pub(super) fn resolve_table(prefix: &str, table: &Map<String, Value>) -> Result<Map<String, Value>, ConfigError> {
    let mut out = Map::new();
    for (k, v) in table {
        let path = format!("{prefix}.{k}");
        let kind = match &v.kind {
            ValueKind::Table(inner) => ValueKind::Table(resolve_table(&path, inner)?),
            ValueKind::String(text) if reference::has_reference(text) => {
                ValueKind::String(reference::resolve(&path, &keys::origin_of(&path, v), text)?)
            }
            other => other.clone(),
        };
        out.insert(k.clone(), Value::new(v.origin().map(str::to_string).as_ref(), kind));
    }
    Ok(out)
}
