//! JSON Schema in the Confluent wire format: serde types as JSON.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{serde_error, split, subject_builders, wire, RegistryError, SchemaRegistry, SchemaType, Writer};
use crate::serde::{Encoded, Serde, SerdeError};

/// Values of a serde type `T` as JSON in the Confluent wire format, with a
/// Schema Registry: built by [`SchemaRegistry::json_schema`] from a JSON
/// Schema document (its text, as registered).
///
/// A record is the header (magic byte, schema id) and the JSON text.
/// Reading checks that the registry knows the id as a JSON schema. Records
/// are not validated against the schema, neither written nor read (as
/// Confluent's serializers without `json.fail.invalid.schema`): the serde
/// type is the contract, and the registry checks that schema versions are
/// compatible.
/// The record subject name strategies take the schema's `title` as the
/// record's name, as Confluent's do.
pub struct JsonSchemaSerde<T> {
    writer: Writer,
    schema: Arc<str>,
    title: Option<String>,
    name: Arc<str>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for JsonSchemaSerde<T> {
    fn clone(&self) -> Self {
        JsonSchemaSerde {
            writer: self.writer.clone(),
            schema: self.schema.clone(),
            title: self.title.clone(),
            name: self.name.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for JsonSchemaSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonSchemaSerde<{}>({:?})", std::any::type_name::<T>(), self.title)
    }
}

impl<T> JsonSchemaSerde<T> {
    pub(super) fn new(registry: SchemaRegistry, schema: &str) -> Result<Self, RegistryError> {
        let parsed: serde_json::Value = serde_json::from_str(schema)
            .map_err(|e| RegistryError::Config(format!("the JSON schema is not JSON: {e}")))?;
        let title = parsed.get("title").and_then(|t| t.as_str()).map(str::to_string);
        Ok(JsonSchemaSerde {
            writer: Writer::new(registry),
            schema: schema.into(),
            title,
            name: format!("json_schema<{}>", std::any::type_name::<T>()).into(),
            _t: PhantomData,
        })
    }

    /// See [`AvroSerde::writer_id`](super::AvroSerde::writer_id).
    pub fn writer_id(&self) -> Result<u32, RegistryError> {
        self.writer.id(SchemaType::Json, &self.schema, self.title.as_deref())
    }

    subject_builders!(writer);
}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for JsonSchemaSerde<T> {
    fn serialize(&self, value: &T, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        let id = self.writer_id().map_err(|e| serde_error(&self.name, e))?;
        wire::write_header(id, out);
        serde_json::to_writer(&mut *out, value).map_err(|e| serde_error(&self.name, e))?;
        Ok(Encoded::Bytes)
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        let name = &*self.name;
        let (id, body) = split(name, bytes)?;
        self.writer.check_id(name, id, SchemaType::Json)?;
        serde_json::from_slice(body).map_err(|e| serde_error(name, format!("schema id {id}: {e}")))
    }
    fn name(&self) -> String {
        self.name.to_string()
    }
}
