//! Protobuf in the Confluent wire format: `prost` messages.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use super::{serde_error, split, subject_builders, wire, RegistryError, SchemaRegistry, SchemaType, Writer};
use crate::serde::{Encoded, Serde, SerdeError};

/// `prost` messages of type `M` in the Confluent wire format, with a
/// Schema Registry: built by [`SchemaRegistry::protobuf`] from the
/// message's .proto file (its text, as registered: prost types do not carry
/// it).
///
/// A record is the header (magic byte, schema id), the message indexes
/// (the path of `M` among the file's messages: `[0]` for the first
/// top-level message, written as the single byte `0`; set another with
/// [`ProtobufSerde::message_index`]) and the message. Reading checks that
/// the registry knows the id and that the indexes are `M`'s; Protobuf's own
/// rules make fields added or removed by a newer writer harmless.
pub struct ProtobufSerde<M> {
    writer: Writer,
    proto: Arc<str>,
    indexes: Vec<i32>,
    message_name: Option<String>,
    name: Arc<str>,
    _m: PhantomData<fn() -> M>,
}

impl<M> Clone for ProtobufSerde<M> {
    fn clone(&self) -> Self {
        ProtobufSerde {
            writer: self.writer.clone(),
            proto: self.proto.clone(),
            indexes: self.indexes.clone(),
            message_name: self.message_name.clone(),
            name: self.name.clone(),
            _m: PhantomData,
        }
    }
}

impl<M> fmt::Debug for ProtobufSerde<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProtobufSerde<{}>({:?}, {:?})", std::any::type_name::<M>(), self.message_name, self.indexes)
    }
}

impl<M> ProtobufSerde<M> {
    pub(super) fn new(registry: SchemaRegistry, proto: &str) -> Self {
        ProtobufSerde {
            writer: Writer::new(registry),
            proto: proto.into(),
            indexes: vec![0],
            message_name: first_message_name(proto),
            name: format!("protobuf<{}>", std::any::type_name::<M>()).into(),
            _m: PhantomData,
        }
    }

    /// Which message of the .proto file `M` is: its index among the
    /// top-level messages, then among the nested ones (`[1]`: the second
    /// top-level message; `[0, 2]`: the third message nested in the
    /// first). The default is `[0]`. `full_name` (`package.Outer.Inner`)
    /// names it for the record subject name strategies.
    pub fn message_index(mut self, indexes: &[i32], full_name: &str) -> Self {
        self.indexes = indexes.to_vec();
        self.message_name = Some(full_name.to_string());
        self.writer.set_subject(|_| {});
        self
    }

    /// See [`AvroSerde::writer_id`](super::AvroSerde::writer_id).
    pub fn writer_id(&self) -> Result<u32, RegistryError> {
        self.writer.id(SchemaType::Protobuf, &self.proto, self.message_name.as_deref())
    }

    subject_builders!(writer);
}

impl<M: prost::Message + Default + 'static> Serde<M> for ProtobufSerde<M> {
    fn serialize(&self, value: &M, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        let id = self.writer_id().map_err(|e| serde_error(&self.name, e))?;
        wire::write_header(id, out);
        wire::write_message_indexes(&self.indexes, out);
        value.encode(out).map_err(|e| serde_error(&self.name, e))?;
        Ok(Encoded::Bytes)
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<M, SerdeError> {
        let name = &*self.name;
        let (id, mut body) = split(name, bytes)?;
        self.writer.check_id(name, id, SchemaType::Protobuf)?;
        let indexes = wire::read_message_indexes(&mut body).map_err(|e| SerdeError::new(name, e))?;
        if indexes != self.indexes {
            return Err(SerdeError::new(
                name,
                format!("schema id {id}: message indexes {indexes:?}, but this serde reads {:?}", self.indexes),
            ));
        }
        M::decode(body).map_err(|e| serde_error(name, format!("schema id {id}: {e}")))
    }
    fn name(&self) -> String {
        self.name.to_string()
    }
}

/// `package.Name` of the first top-level message of a .proto file, or
/// `None` when it has none.
fn first_message_name(proto: &str) -> Option<String> {
    let mut text = String::with_capacity(proto.len());
    let mut rest = proto;
    // Comments out, strings kept whole.
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |i| &r[i..]);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |i| &r[i + 2..]);
            text.push(' ');
        } else {
            text.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c == '{' || c == '}' || c == ';' {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            tokens.push(c.to_string());
        } else if c.is_whitespace() {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
        } else {
            word.push(c);
        }
    }
    let mut depth = 0usize;
    let mut package = None;
    let mut iter = tokens.iter().peekable();
    while let Some(t) = iter.next() {
        match t.as_str() {
            "{" => depth += 1,
            "}" => depth = depth.saturating_sub(1),
            "package" if depth == 0 => package = iter.peek().map(|p| p.to_string()),
            "message" if depth == 0 => {
                let name = iter.peek()?;
                return Some(match &package {
                    Some(p) => format!("{p}.{name}"),
                    None => name.to_string(),
                });
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::first_message_name;

    #[test]
    fn the_first_top_level_message_names_the_record() {
        let proto = r#"
            syntax = "proto3";
            // message Commented {}
            package shop.v1;
            /* message AlsoCommented {} */
            message Order { message Line { string sku = 1; } repeated Line lines = 1; }
            message Other {}
        "#;
        assert_eq!(first_message_name(proto).as_deref(), Some("shop.v1.Order"));
        assert_eq!(first_message_name("syntax = \"proto3\"; message A {}").as_deref(), Some("A"));
        assert_eq!(first_message_name("syntax = \"proto3\";"), None);
    }
}
