//! Serdes backed by a Schema Registry, in Confluent's wire format: Avro
//! ([`AvroSerde`] for serde types, [`AvroValueSerde`] for
//! `apache_avro::types::Value`), Protobuf ([`ProtobufSerde`] for
//! `prost::Message` types) and JSON Schema ([`JsonSchemaSerde`]).
//!
//! Every record starts with a magic byte `0` and the 4-byte big-endian id
//! under which the registry knows the writer's schema. Reading, a serde
//! fetches the writer schema by that id (once: ids and schemas are cached
//! for the process's life) and, for Avro, resolves it against its own
//! reader schema, so records written with an older or newer compatible
//! schema are read. A record whose id the registry does not know, or that
//! the registry cannot be asked about, fails to deserialize, and so follows
//! `errors.deserialization` (fail, skip or dead_letter).
//!
//! Writing, a serde needs the id of its schema under its subject (see
//! [`SubjectNameStrategy`]): it looks it up, or registers the schema when
//! `schema_registry.auto_register_schemas` is on (it is off by default, as
//! in Confluent's serializers for production use). Call
//! [`AvroSerde::writer_id`] (or the other serdes' `writer_id`) at start to
//! fail then, rather than at the first record, when the schema is missing.
//!
//! ```no_run
//! use rivulet::prelude::*;
//! use rivulet::serde::registry::SchemaRegistry;
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct Order { id: i64, amount: f64 }
//! const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop",
//!   "fields":[{"name":"id","type":"long"},{"name":"amount","type":"double"}]}"#;
//!
//! fn main() -> Result<()> {
//!     let config = Config::load()?;
//!     // Fails here, naming the URL, when the registry cannot be reached.
//!     let registry = SchemaRegistry::connect(&config.schema_registry)?;
//!     let orders_in = registry.avro::<Order>(ORDER)?;
//!     let orders_out = registry.avro::<Order>(ORDER)?.value_of("big-orders");
//!     orders_out.writer_id()?; // registered (or registrable)?
//!     let mut b = Topology::builder();
//!     b.stream("orders", Serdes::string(), orders_in)
//!         .filter(|_, o: &Order| o.amount > 100.0)
//!         .to("big-orders", Serdes::string(), orders_out);
//!     App::new(config)?.run(b.build()?)
//! }
//! ```

mod avro;
mod json_schema;
mod protobuf;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

pub use self::avro::{AvroSerde, AvroValueSerde};
pub use self::json_schema::JsonSchemaSerde;
pub use self::protobuf::ProtobufSerde;
pub use crate::config::{SchemaRegistryConfig, SubjectNameStrategy};

use super::SerdeError;

/// What went wrong talking to the Schema Registry. It displays as one
/// sentence naming the registry's URL (never its credentials) and what to
/// do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// `schema_registry.url` is empty, or the settings cannot be used.
    #[error("the Schema Registry settings cannot be used: {0}")]
    Config(String),
    /// No HTTP answer: connection refused, name unknown, TLS failure,
    /// timeout.
    #[error(
        "the Schema Registry at {url} cannot be reached ({reason}); check schema_registry.url, that the \
         registry is running, and for https the CA in schema_registry.ssl_ca_location"
    )]
    Unreachable {
        /// The registry's base URL.
        url: String,
        /// The transport's error.
        reason: String,
    },
    /// The registry refused the credentials (HTTP 401 or 403).
    #[error(
        "the Schema Registry at {url} refused {what} with HTTP {status}: check \
         schema_registry.basic_auth_user_info"
    )]
    Unauthorized {
        /// The registry's base URL.
        url: String,
        /// The request.
        what: String,
        /// 401 or 403.
        status: u16,
    },
    /// The registry has no such schema, subject or version.
    #[error("the Schema Registry at {url} has {what}: {message}")]
    NotFound {
        /// The registry's base URL.
        url: String,
        /// What was asked for.
        what: String,
        /// The registry's message.
        message: String,
    },
    /// Any other answer the request cannot use.
    #[error("the Schema Registry at {url} answered {what} with HTTP {status}: {message}")]
    Status {
        /// The registry's base URL.
        url: String,
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The registry's message, or the body.
        message: String,
    },
}

/// The kind of a registered schema, as the registry's `schemaType` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SchemaType {
    Avro,
    Protobuf,
    Json,
}

impl SchemaType {
    fn name(self) -> &'static str {
        match self {
            Self::Avro => "AVRO",
            Self::Protobuf => "PROTOBUF",
            Self::Json => "JSON",
        }
    }
}

/// A schema the registry holds, as fetched by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegisteredSchema {
    pub(crate) schema_type: SchemaType,
    pub(crate) text: String,
}

/// A client of a Schema Registry (Confluent's REST API, as Confluent
/// Schema Registry, Apicurio Registry's `/apis/ccompat/v7` and Karapace
/// serve it), shared by the serdes built from it. Cheap to clone.
///
/// It caches every id it has seen (id -> schema, and subject and schema ->
/// id): after a serde's first record of a schema, the record path makes no
/// request.
#[derive(Clone)]
pub struct SchemaRegistry {
    inner: Arc<Client>,
}

struct Client {
    url: String,
    agent: ureq::Agent,
    /// `Basic <base64(user:password)>`; never printed.
    authorization: Option<String>,
    auto_register: bool,
    strategy: SubjectNameStrategy,
    by_id: RwLock<HashMap<u32, Arc<RegisteredSchema>>>,
    ids: RwLock<HashMap<(String, String), u32>>,
}

/// Shows the URL and settings, never the credentials.
impl fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("url", &self.inner.url)
            .field("basic_auth", &self.inner.authorization.as_ref().map(|_| "[redacted]"))
            .field("auto_register", &self.inner.auto_register)
            .field("subject_name_strategy", &self.inner.strategy)
            .finish()
    }
}

impl SchemaRegistry {
    /// A client for the registry `config` names, after checking that it
    /// answers: an unreachable registry, or one that refuses the
    /// credentials, is an error now rather than at the first record.
    ///
    /// ```
    /// use rivulet::serde::registry::SchemaRegistry;
    /// let config = rivulet::Config::loader()
    ///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__SCHEMA_REGISTRY__URL", "http://127.0.0.1:1")])
    ///     .load()
    ///     .unwrap();
    /// let err = SchemaRegistry::connect(&config.schema_registry).unwrap_err().to_string();
    /// assert!(err.starts_with("the Schema Registry at http://127.0.0.1:1 cannot be reached"), "{err}");
    /// ```
    pub fn connect(config: &SchemaRegistryConfig) -> Result<SchemaRegistry, RegistryError> {
        let registry = SchemaRegistry::new(config)?;
        // Any HTTP answer says the registry is there; GET /config is small
        // and every implementation of the API serves it.
        match registry.inner.get("/config", "its global config") {
            Ok(_) | Err(RegistryError::NotFound { .. } | RegistryError::Status { .. }) => Ok(registry),
            Err(e) => Err(e),
        }
    }

    /// A client for the registry `config` names, without checking that it
    /// answers (the first request will).
    pub fn new(config: &SchemaRegistryConfig) -> Result<SchemaRegistry, RegistryError> {
        if config.url.is_empty() {
            return Err(RegistryError::Config(
                "schema_registry.url is empty; set it (or RIVULET__SCHEMA_REGISTRY__URL) to the registry's \
                 base URL, for example http://registry:8081"
                    .into(),
            ));
        }
        let mut builder = ureq::Agent::config_builder()
            .timeout_global(Some(config.request_timeout))
            .http_status_as_error(false)
            .user_agent("rivulet");
        if let Some(path) = &config.ssl_ca_location {
            let pem = std::fs::read(path).map_err(|e| {
                RegistryError::Config(format!("schema_registry.ssl_ca_location {} cannot be read: {e}", path.display()))
            })?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    RegistryError::Config(format!("schema_registry.ssl_ca_location {} is not PEM: {e}", path.display()))
                })?;
            if certs.is_empty() {
                return Err(RegistryError::Config(format!(
                    "schema_registry.ssl_ca_location {} holds no certificate",
                    path.display()
                )));
            }
            builder = builder.tls_config(
                ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&certs)).build(),
            );
        }
        let authorization = (!config.basic_auth_user_info.is_empty())
            .then(|| format!("Basic {}", base64(config.basic_auth_user_info.as_bytes())));
        Ok(SchemaRegistry {
            inner: Arc::new(Client {
                url: config.url.trim_end_matches('/').to_string(),
                agent: builder.build().into(),
                authorization,
                auto_register: config.auto_register_schemas,
                strategy: config.subject_name_strategy,
                by_id: RwLock::default(),
                ids: RwLock::default(),
            }),
        })
    }

    /// The registry's base URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The schema registered under `id`: from the cache, or fetched once.
    pub(crate) fn schema_by_id(&self, id: u32) -> Result<Arc<RegisteredSchema>, RegistryError> {
        if let Some(s) = read(&self.inner.by_id).get(&id) {
            return Ok(s.clone());
        }
        let body = self.inner.get(&format!("/schemas/ids/{id}"), &format!("schema id {id}"))?;
        let schema_type = match body.get("schemaType").and_then(|t| t.as_str()) {
            None | Some("AVRO") => SchemaType::Avro,
            Some("PROTOBUF") => SchemaType::Protobuf,
            Some("JSON") => SchemaType::Json,
            Some(other) => {
                return Err(self.inner.status_error(
                    &format!("schema id {id}"),
                    200,
                    format!("unknown schemaType {other}"),
                ))
            }
        };
        let text = body
            .get("schema")
            .and_then(|s| s.as_str())
            .ok_or_else(|| {
                self.inner.status_error(&format!("schema id {id}"), 200, "no \"schema\" in the answer".into())
            })?
            .to_string();
        let schema = Arc::new(RegisteredSchema { schema_type, text });
        write(&self.inner.by_id).insert(id, schema.clone());
        Ok(schema)
    }

    /// The id of `schema` under `subject`: from the cache, looked up, or
    /// (with auto-registration) registered.
    pub(crate) fn id_of(&self, subject: &str, schema_type: SchemaType, schema: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_string(), schema.to_string());
        if let Some(id) = read(&self.inner.ids).get(&key) {
            return Ok(*id);
        }
        let mut body = serde_json::json!({ "schema": schema });
        if schema_type != SchemaType::Avro {
            body["schemaType"] = schema_type.name().into();
        }
        let path = format!("/subjects/{}", encode_path(subject));
        let looked_up = self.inner.post(&path, &format!("the lookup of a schema under subject {subject}"), &body);
        let answer = match looked_up {
            Ok(answer) => answer,
            Err(RegistryError::NotFound { .. }) if self.inner.auto_register => self.inner.post(
                &format!("{path}/versions"),
                &format!("the registration of a schema under subject {subject}"),
                &body,
            )?,
            Err(RegistryError::NotFound { message, .. }) => {
                return Err(RegistryError::NotFound {
                    url: self.inner.url.clone(),
                    what: format!("no such schema under subject {subject}"),
                    message: format!(
                        "{message}; register it first (or set schema_registry.auto_register_schemas = true)"
                    ),
                })
            }
            Err(e) => return Err(e),
        };
        let id = answer
            .get("id")
            .and_then(serde_json::Value::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| self.inner.status_error(&path, 200, format!("no schema id in the answer {answer}")))?;
        write(&self.inner.ids).insert(key, id);
        write(&self.inner.by_id)
            .entry(id)
            .or_insert_with(|| Arc::new(RegisteredSchema { schema_type, text: schema.to_string() }));
        Ok(id)
    }

    /// The latest schema registered under `subject` and its id.
    pub fn latest(&self, subject: &str) -> Result<(u32, String), RegistryError> {
        let path = format!("/subjects/{}/versions/latest", encode_path(subject));
        let answer = self.inner.get(&path, &format!("the latest version of subject {subject}"))?;
        let id = answer.get("id").and_then(serde_json::Value::as_u64).and_then(|id| u32::try_from(id).ok());
        let schema = answer.get("schema").and_then(|s| s.as_str());
        match (id, schema) {
            (Some(id), Some(schema)) => Ok((id, schema.to_string())),
            _ => Err(self.inner.status_error(&path, 200, format!("no id or schema in the answer {answer}"))),
        }
    }

    /// The registry's default subject name strategy.
    pub(crate) fn strategy(&self) -> SubjectNameStrategy {
        self.inner.strategy
    }

    /// An Avro serde of a serde type `T` whose reader and writer schema is
    /// `schema` (Avro's JSON form); see [`AvroSerde`].
    pub fn avro<T>(&self, schema: &str) -> Result<AvroSerde<T>, RegistryError> {
        AvroSerde::new(self.clone(), schema)
    }

    /// An Avro serde of generic values (`apache_avro::types::Value`) with
    /// `schema` as reader and writer schema; see [`AvroValueSerde`].
    pub fn avro_value(&self, schema: &str) -> Result<AvroValueSerde, RegistryError> {
        AvroValueSerde::new(self.clone(), schema)
    }

    /// A Protobuf serde of the `prost` message `M`, whose .proto file is
    /// `proto` (prost types do not carry it); see [`ProtobufSerde`].
    pub fn protobuf<M>(&self, proto: &str) -> ProtobufSerde<M> {
        ProtobufSerde::new(self.clone(), proto)
    }

    /// A JSON Schema serde of a serde type `T` described by `schema` (a
    /// JSON Schema document); see [`JsonSchemaSerde`].
    pub fn json_schema<T>(&self, schema: &str) -> Result<JsonSchemaSerde<T>, RegistryError> {
        JsonSchemaSerde::new(self.clone(), schema)
    }
}

impl Client {
    fn get(&self, path: &str, what: &str) -> Result<serde_json::Value, RegistryError> {
        let mut request = self.agent.get(format!("{}{path}", self.url));
        request = request.header("Accept", "application/vnd.schemaregistry.v1+json, application/json");
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        self.answer(what, request.call())
    }

    fn post(&self, path: &str, what: &str, body: &serde_json::Value) -> Result<serde_json::Value, RegistryError> {
        let mut request = self.agent.post(format!("{}{path}", self.url));
        request = request
            .header("Accept", "application/vnd.schemaregistry.v1+json, application/json")
            .header("Content-Type", "application/vnd.schemaregistry.v1+json");
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        self.answer(what, request.send(body.to_string()))
    }

    fn answer(
        &self,
        what: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<serde_json::Value, RegistryError> {
        let mut response =
            response.map_err(|e| RegistryError::Unreachable { url: self.url.clone(), reason: e.to_string() })?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            return json.ok_or_else(|| self.status_error(what, status, format!("not JSON: {}", shorten(&text))));
        }
        let message = json
            .as_ref()
            .and_then(|j| j.get("message"))
            .and_then(|m| m.as_str())
            .map_or_else(|| shorten(&text), str::to_string);
        Err(match status {
            401 | 403 => RegistryError::Unauthorized { url: self.url.clone(), what: what.to_string(), status },
            404 => RegistryError::NotFound { url: self.url.clone(), what: format!("no {what}"), message },
            _ => RegistryError::Status { url: self.url.clone(), what: what.to_string(), status, message },
        })
    }

    fn status_error(&self, what: &str, status: u16, message: String) -> RegistryError {
        RegistryError::Status { url: self.url.clone(), what: what.to_string(), status, message }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Percent-encodes a subject for a URL path (RFC 3986 unreserved
/// characters pass).
fn encode_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 with padding, for the basic-auth header.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Which subject a serde's writer schema goes under: its topic and role
/// (key or value), and the strategy.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubjectSpec {
    topic: Option<String>,
    is_key: bool,
    strategy: Option<SubjectNameStrategy>,
    explicit: Option<String>,
}

impl SubjectSpec {
    /// The subject under `default` strategy (the registry's), for a record
    /// named `record` (its full name, when the format has one).
    pub(crate) fn subject(&self, default: SubjectNameStrategy, record: Option<&str>) -> Result<String, String> {
        if let Some(s) = &self.explicit {
            return Ok(s.clone());
        }
        let strategy = self.strategy.unwrap_or(default);
        let topic = || {
            self.topic.as_deref().ok_or_else(|| {
                format!(
                    "the {strategy} subject name strategy needs the topic: build the serde with \
                     .value_of(topic) or .key_of(topic), or name the subject with .subject(..)"
                )
            })
        };
        let record = || {
            record.ok_or_else(|| {
                format!(
                    "the {strategy} subject name strategy needs the record's name, which this schema \
                     lacks; name it (or the subject, with .subject(..))"
                )
            })
        };
        Ok(match strategy {
            SubjectNameStrategy::Topic => format!("{}-{}", topic()?, if self.is_key { "key" } else { "value" }),
            SubjectNameStrategy::Record => record()?.to_string(),
            SubjectNameStrategy::TopicRecord => format!("{}-{}", topic()?, record()?),
        })
    }
}

/// What the serdes of this module share: the registry, the subject of the
/// writer schema, and the writer schema's id once known.
#[derive(Clone)]
pub(crate) struct Writer {
    pub(crate) registry: SchemaRegistry,
    pub(crate) subject: SubjectSpec,
    pub(crate) id: Arc<OnceLock<u32>>,
}

impl Writer {
    pub(crate) fn new(registry: SchemaRegistry) -> Self {
        Writer { registry, subject: SubjectSpec::default(), id: Arc::default() }
    }

    /// The subject the writer schema goes under.
    pub(crate) fn subject(&self, record: Option<&str>) -> Result<String, RegistryError> {
        self.subject.subject(self.registry.strategy(), record).map_err(RegistryError::Config)
    }

    /// The writer schema's id: cached, looked up or registered.
    pub(crate) fn id(&self, schema_type: SchemaType, schema: &str, record: Option<&str>) -> Result<u32, RegistryError> {
        if let Some(id) = self.id.get() {
            return Ok(*id);
        }
        let id = self.registry.id_of(&self.subject(record)?, schema_type, schema)?;
        // Two threads may race here; both found the same id.
        let _ = self.id.set(id);
        Ok(id)
    }

    /// Checks, for a record read, that the registry knows `id` as a schema
    /// of `expected` type (cached after the first time).
    pub(crate) fn check_id(&self, serde: &str, id: u32, expected: SchemaType) -> Result<(), SerdeError> {
        if self.id.get() == Some(&id) {
            return Ok(());
        }
        let registered = self.registry.schema_by_id(id).map_err(|e| serde_error(serde, e))?;
        if registered.schema_type != expected {
            return Err(SerdeError::new(
                serde,
                format!("schema id {id} is a {} schema, not {}", registered.schema_type.name(), expected.name()),
            ));
        }
        Ok(())
    }

    /// The builder methods' common part: a new subject, so a fresh id.
    pub(crate) fn set_subject(&mut self, f: impl FnOnce(&mut SubjectSpec)) {
        f(&mut self.subject);
        self.id = Arc::default();
    }
}

/// The builder methods every registry serde has, to say which subject its
/// writer schema goes under.
macro_rules! subject_builders {
    ($($writer:ident).+) => {
        /// The serde writes values of `topic`: its subject under the
        /// `topic` strategy is `<topic>-value`.
        pub fn value_of(mut self, topic: &str) -> Self {
            self.$($writer).+.set_subject(|s| {
                s.topic = Some(topic.to_string());
                s.is_key = false;
            });
            self
        }

        /// The serde writes keys of `topic`: its subject under the `topic`
        /// strategy is `<topic>-key`.
        pub fn key_of(mut self, topic: &str) -> Self {
            self.$($writer).+.set_subject(|s| {
                s.topic = Some(topic.to_string());
                s.is_key = true;
            });
            self
        }

        /// This serde's subject name strategy, over
        /// `schema_registry.subject_name_strategy`.
        pub fn subject_name_strategy(mut self, strategy: $crate::config::SubjectNameStrategy) -> Self {
            self.$($writer).+.set_subject(|s| s.strategy = Some(strategy));
            self
        }

        /// The subject itself, whatever the strategy.
        pub fn subject(mut self, subject: &str) -> Self {
            self.$($writer).+.set_subject(|s| s.explicit = Some(subject.to_string()));
            self
        }
    };
}
pub(crate) use subject_builders;

/// A registry error met on the record path, as the serde named `serde`
/// reports it.
pub(crate) fn serde_error(serde: &str, e: impl fmt::Display) -> SerdeError {
    SerdeError::new(serde, e.to_string())
}

/// The header of a record in the wire format, or the serde's error.
pub(crate) fn split<'a>(serde: &str, bytes: Option<&'a [u8]>) -> Result<(u32, &'a [u8]), SerdeError> {
    let bytes = bytes.ok_or_else(|| SerdeError::null(serde))?;
    wire::read_header(bytes).map_err(|e| SerdeError::new(serde, e))
}

#[cfg(test)]
mod tests;
