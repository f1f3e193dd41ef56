//! Store keys from text and store values as JSON, through a store's own
//! serdes, for the HTTP query endpoints (`/stores/{store}/keys/{key}`),
//! which know a store only by name.
//!
//! A key given as text becomes the store's key bytes this way: for `i64`,
//! `i32`, `u64` and `u32` keys the text is parsed as the number; for any
//! other key type the text is handed to the key serde as the serialized
//! key and encoded again (so a string key is the text itself, a
//! `Serdes::json` key its JSON text). A value is decoded with the value
//! serde and shown as JSON: strings, numbers and booleans as such,
//! `serde_json::Value` as itself; for any other type the stored bytes
//! themselves when they are JSON (a `Serdes::json` value), a JSON string
//! when they are other UTF-8 text, else `{"hex": ".."}`.

use std::any::Any;
use std::sync::Arc;

use serde_json::Value;

use super::{Encoded, Serde};

type KeyFromText = dyn Fn(&str) -> Result<Vec<u8>, String> + Send + Sync;
type ValueToJson = dyn Fn(&[u8]) -> Result<Value, String> + Send + Sync;

/// A store's key and value serdes with their types erased.
#[derive(Clone)]
pub(crate) struct TextCodec {
    key_from_text: Arc<KeyFromText>,
    value_to_json: Arc<ValueToJson>,
}

impl TextCodec {
    /// The codec of a store whose serdes are `key` and `value`.
    pub(crate) fn new<K: 'static, V: 'static>(key: Arc<dyn Serde<K>>, value: Arc<dyn Serde<V>>) -> TextCodec {
        let key_from_text = move |text: &str| -> Result<Vec<u8>, String> {
            let parsed = parse_number::<K>(text)?;
            let decoded;
            let k: &K = match parsed.as_ref().and_then(|p| p.downcast_ref::<K>()) {
                Some(k) => k,
                None => {
                    decoded = key.deserialize(Some(text.as_bytes())).map_err(|e| e.to_string())?;
                    &decoded
                }
            };
            let mut out = Vec::new();
            match key.serialize(k, &mut out).map_err(|e| e.to_string())? {
                Encoded::Bytes => Ok(out),
                Encoded::Null => Err("the key serde writes this key as null".into()),
            }
        };
        let value_to_json = move |bytes: &[u8]| -> Result<Value, String> {
            let v = value.deserialize(Some(bytes)).map_err(|e| e.to_string())?;
            Ok(known_json(&v).unwrap_or_else(|| raw_json(bytes)))
        };
        TextCodec { key_from_text: Arc::new(key_from_text), value_to_json: Arc::new(value_to_json) }
    }

    /// The store key bytes of `text` (see the module docs).
    pub(crate) fn key_from_text(&self, text: &str) -> Result<Vec<u8>, String> {
        (self.key_from_text)(text)
    }

    /// The stored `bytes` as JSON (see the module docs).
    pub(crate) fn value_to_json(&self, bytes: &[u8]) -> Result<Value, String> {
        (self.value_to_json)(bytes)
    }
}

/// `text` as a `K` when `K` is an integer type; `None` for other types.
fn parse_number<K: 'static>(text: &str) -> Result<Option<Box<dyn Any>>, String> {
    fn parse<T: std::str::FromStr + 'static>(text: &str) -> Result<Option<Box<dyn Any>>, String> {
        let n = text.trim().parse::<T>().map_err(|_| format!("{text:?} is not a {}", std::any::type_name::<T>()))?;
        Ok(Some(Box::new(n)))
    }
    let id = std::any::TypeId::of::<K>();
    if id == std::any::TypeId::of::<i64>() {
        parse::<i64>(text)
    } else if id == std::any::TypeId::of::<i32>() {
        parse::<i32>(text)
    } else if id == std::any::TypeId::of::<u64>() {
        parse::<u64>(text)
    } else if id == std::any::TypeId::of::<u32>() {
        parse::<u32>(text)
    } else {
        Ok(None)
    }
}

/// `v` as JSON when its type is one JSON shows directly.
fn known_json(v: &dyn Any) -> Option<Value> {
    if let Some(s) = v.downcast_ref::<String>() {
        return Some(Value::String(s.clone()));
    }
    if let Some(j) = v.downcast_ref::<Value>() {
        return Some(j.clone());
    }
    if let Some(b) = v.downcast_ref::<bool>() {
        return Some(Value::Bool(*b));
    }
    if let Some(f) = v.downcast_ref::<f64>() {
        return Some(serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number));
    }
    macro_rules! integers {
        ($($t:ty),*) => {$(
            if let Some(n) = v.downcast_ref::<$t>() {
                return Some(Value::from(*n));
            }
        )*};
    }
    integers!(i64, i32, u64, u32, i16, u16, i8, u8);
    None
}

/// Stored bytes of a type JSON cannot show directly.
fn raw_json(bytes: &[u8]) -> Value {
    if let Ok(json) = serde_json::from_slice::<Value>(bytes) {
        return json;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_string()),
        Err(_) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            serde_json::json!({ "hex": hex })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::serde::Serdes;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Order {
        id: u32,
        item: String,
    }

    #[test]
    fn keys_come_from_text_and_values_go_to_json_through_the_store_serdes() {
        let c = TextCodec::new::<String, i64>(Arc::new(Serdes::string()), Arc::new(Serdes::i64()));
        assert_eq!(c.key_from_text("alice").unwrap(), b"alice");
        assert_eq!(c.value_to_json(&7i64.to_be_bytes()).unwrap(), Value::from(7));
        assert!(c.value_to_json(b"abc").is_err(), "three bytes are no i64");

        let c = TextCodec::new::<u32, Order>(Arc::new(Serdes::u32()), Arc::new(Serdes::json::<Order>()));
        assert_eq!(c.key_from_text("258").unwrap(), [0, 0, 1, 2]);
        assert!(c.key_from_text("x").unwrap_err().contains("is not a u32"));
        let order = br#"{"id":1,"item":"tea"}"#;
        assert_eq!(c.value_to_json(order).unwrap(), serde_json::json!({"id": 1, "item": "tea"}));

        let c = TextCodec::new::<Order, Vec<u8>>(Arc::new(Serdes::json::<Order>()), Arc::new(Serdes::bytes()));
        assert_eq!(c.key_from_text(r#"{ "id": 2, "item": "cup" }"#).unwrap(), br#"{"id":2,"item":"cup"}"#);
        assert!(c.key_from_text("{").is_err());
        assert_eq!(c.value_to_json(b"plain").unwrap(), Value::from("plain"));
        assert_eq!(c.value_to_json(&[0xff, 0]).unwrap(), serde_json::json!({"hex": "ff00"}));
    }
}
