//! Avro in the Confluent wire format: typed values through serde
//! ([`AvroSerde`]) and generic values ([`AvroValueSerde`]).

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use apache_avro::types::Value;
use apache_avro::Schema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    read, serde_error, split, subject_builders, wire, write, RegistryError, SchemaRegistry, SchemaType, Writer,
};
use crate::serde::{Encoded, Serde, SerdeError};

/// What the typed and the generic Avro serde share: the reader/writer
/// schema, its text as registered, the writer side, and the writer schemas
/// met while reading, parsed once per id.
#[derive(Clone)]
struct Core {
    schema: Arc<Schema>,
    text: Arc<str>,
    writer: Writer,
    /// Writer schemas by id; `None`: the same as `schema`.
    writers: Arc<RwLock<HashMap<u32, Option<Arc<Schema>>>>>,
    /// The record's full name (`namespace.Name`), for the record strategies.
    record: Option<Arc<str>>,
    /// The serde's name, made once: the record path does not format it.
    name: Arc<str>,
}

impl Core {
    fn new(registry: SchemaRegistry, text: &str, type_name: Option<&str>) -> Result<Core, RegistryError> {
        let schema = Schema::parse_str(text)
            .map_err(|e| RegistryError::Config(format!("the Avro schema does not parse: {e}")))?;
        let record = schema.name().map(|n| n.fullname(None));
        let name = format!("avro<{}>", type_name.or(record.as_deref()).unwrap_or("value"));
        Ok(Core {
            schema: Arc::new(schema),
            text: text.into(),
            writer: Writer::new(registry),
            writers: Arc::default(),
            record: record.map(Into::into),
            name: name.into(),
        })
    }

    fn writer_id(&self) -> Result<u32, RegistryError> {
        self.writer.id(SchemaType::Avro, &self.text, self.record.as_deref())
    }

    fn encode(&self, value: Value, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        let name = &*self.name;
        let id = self.writer_id().map_err(|e| serde_error(name, e))?;
        let value = value
            .resolve(&self.schema)
            .map_err(|e| serde_error(name, format!("the value does not fit the schema: {e}")))?;
        let body = apache_avro::to_avro_datum(&self.schema, value).map_err(|e| serde_error(name, e))?;
        wire::write_header(id, out);
        out.extend_from_slice(&body);
        Ok(Encoded::Bytes)
    }

    /// The writer schema of `id`, parsed: this serde's own, or fetched from
    /// the registry once.
    fn writer_schema(&self, id: u32) -> Result<Option<Arc<Schema>>, SerdeError> {
        let name = &*self.name;
        if self.writer.id.get() == Some(&id) {
            return Ok(None);
        }
        if let Some(s) = read(&*self.writers).get(&id) {
            return Ok(s.clone());
        }
        let registered = self.writer.registry.schema_by_id(id).map_err(|e| serde_error(name, e))?;
        if registered.schema_type != SchemaType::Avro {
            return Err(SerdeError::new(
                name,
                format!("schema id {id} is a {} schema, not AVRO", registered.schema_type.name()),
            ));
        }
        let parsed = Schema::parse_str(&registered.text)
            .map_err(|e| serde_error(name, format!("the writer schema of id {id} does not parse: {e}")))?;
        let entry = (parsed != *self.schema).then(|| Arc::new(parsed));
        write(&*self.writers).insert(id, entry.clone());
        Ok(entry)
    }

    fn decode(&self, bytes: Option<&[u8]>) -> Result<Value, SerdeError> {
        let name = &*self.name;
        let (id, mut body) = split(name, bytes)?;
        let value = match self.writer_schema(id)? {
            None => apache_avro::from_avro_datum(&self.schema, &mut body, None),
            Some(writer) => apache_avro::from_avro_datum(&writer, &mut body, Some(&*self.schema)),
        }
        .map_err(|e| serde_error(name, format!("schema id {id}: {e}")))?;
        if !body.is_empty() {
            return Err(SerdeError::new(name, format!("schema id {id}: {} bytes left after the record", body.len())));
        }
        Ok(value)
    }
}

/// Avro values of a serde type `T` in the Confluent wire format, with a
/// Schema Registry: built by [`SchemaRegistry::avro`].
///
/// Writing, `T` becomes an Avro value (`apache_avro::to_value`), is checked
/// against the schema and written after the header with the schema's id
/// under the serde's subject. Reading, the writer schema is fetched by the
/// id in the header (once) and resolved against the serde's schema (Avro's
/// schema resolution: added fields take their defaults, removed fields are
/// skipped), then becomes `T` (`apache_avro::from_value`).
pub struct AvroSerde<T> {
    core: Core,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for AvroSerde<T> {
    fn clone(&self) -> Self {
        AvroSerde { core: self.core.clone(), _t: PhantomData }
    }
}

impl<T> fmt::Debug for AvroSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AvroSerde<{}>({:?})", std::any::type_name::<T>(), self.core.record)
    }
}

impl<T> AvroSerde<T> {
    pub(super) fn new(registry: SchemaRegistry, schema: &str) -> Result<Self, RegistryError> {
        Ok(AvroSerde { core: Core::new(registry, schema, Some(std::any::type_name::<T>()))?, _t: PhantomData })
    }

    /// The id of the writer schema under the serde's subject: looked up,
    /// or registered when `schema_registry.auto_register_schemas` is on.
    /// Call it at start to fail there, naming the subject, when the schema
    /// is not registered; otherwise the first record written asks.
    pub fn writer_id(&self) -> Result<u32, RegistryError> {
        self.core.writer_id()
    }

    /// The subject the writer schema goes under.
    pub fn subject_name(&self) -> Result<String, RegistryError> {
        self.core.writer.subject(self.core.record.as_deref())
    }

    subject_builders!(core.writer);
}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for AvroSerde<T> {
    fn serialize(&self, value: &T, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        let value = apache_avro::to_value(value).map_err(|e| serde_error(&self.core.name, e))?;
        self.core.encode(value, out)
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        let value = self.core.decode(bytes)?;
        apache_avro::from_value(&value).map_err(|e| serde_error(&self.core.name, e))
    }
    fn name(&self) -> String {
        self.core.name.to_string()
    }
}

/// Generic Avro values (`apache_avro::types::Value`) in the Confluent wire
/// format: built by [`SchemaRegistry::avro_value`]. Values read are
/// resolved against the serde's schema, as [`AvroSerde`] does.
#[derive(Clone)]
pub struct AvroValueSerde {
    core: Core,
}

impl fmt::Debug for AvroValueSerde {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AvroValueSerde({:?})", self.core.record)
    }
}

impl AvroValueSerde {
    pub(super) fn new(registry: SchemaRegistry, schema: &str) -> Result<Self, RegistryError> {
        Ok(AvroValueSerde { core: Core::new(registry, schema, None)? })
    }

    /// See [`AvroSerde::writer_id`].
    pub fn writer_id(&self) -> Result<u32, RegistryError> {
        self.core.writer_id()
    }

    /// The serde's schema.
    pub fn schema(&self) -> &Schema {
        &self.core.schema
    }

    subject_builders!(core.writer);
}

impl Serde<Value> for AvroValueSerde {
    fn serialize(&self, value: &Value, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        self.core.encode(value.clone(), out)
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Value, SerdeError> {
        self.core.decode(bytes)
    }
    fn name(&self) -> String {
        self.core.name.to_string()
    }
}
