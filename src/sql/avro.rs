//! `'format' = 'avro-confluent'`: a table's Avro schema derived from its
//! columns, as Flink's `avro-confluent` format derives it (a record
//! `org.apache.flink.avro.generated.record` whose fields are the columns,
//! each nullable with default null), and Avro values to and from the JSON
//! values the rest of the front end works on.

use apache_avro::types::Value as Avro;
use serde_json::Value;

use super::expr::Ty;

/// The Avro schema of `columns`; `None` names a column without a type.
pub(crate) fn schema(columns: &[(String, Option<Ty>)]) -> Result<String, String> {
    let mut fields = Vec::with_capacity(columns.len());
    for (name, ty) in columns {
        let avro = match ty {
            Some(Ty::Str) => r#""string""#,
            Some(Ty::Int) => r#""long""#,
            Some(Ty::Double) => r#""double""#,
            Some(Ty::Bool) => r#""boolean""#,
            Some(Ty::Timestamp) => r#"{"type":"long","logicalType":"timestamp-millis"}"#,
            None => return Err(format!("column {name} has no declared type, which an Avro schema needs")),
        };
        fields.push(format!(r#"{{"name":{},"type":["null",{avro}],"default":null}}"#, Value::String(name.clone())));
    }
    // Written by hand, in Flink's key order: the registry keeps the text.
    Ok(format!(
        r#"{{"type":"record","name":"record","namespace":"org.apache.flink.avro.generated","fields":[{}]}}"#,
        fields.join(",")
    ))
}

/// An Avro value as JSON: records as objects, unions as their branch,
/// timestamps as epoch milliseconds.
pub(crate) fn to_json(v: &Avro) -> Result<Value, String> {
    let float = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    Ok(match v {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(*b),
        Avro::Int(i) => Value::from(*i),
        Avro::Long(i) | Avro::TimestampMillis(i) | Avro::LocalTimestampMillis(i) => Value::from(*i),
        Avro::TimestampMicros(i) | Avro::LocalTimestampMicros(i) => Value::from(i.div_euclid(1000)),
        Avro::Date(days) => Value::from(i64::from(*days) * 86_400_000),
        Avro::Float(f) => float(f64::from(*f)),
        Avro::Double(f) => float(*f),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s.clone()),
        Avro::Union(_, inner) => to_json(inner)?,
        Avro::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Avro::Map(m) => {
            Value::Object(m.iter().map(|(k, v)| Ok((k.clone(), to_json(v)?))).collect::<Result<_, String>>()?)
        }
        Avro::Record(fields) => {
            Value::Object(fields.iter().map(|(k, v)| Ok((k.clone(), to_json(v)?))).collect::<Result<_, String>>()?)
        }
        other => return Err(format!("the Avro value {other:?} has no SQL type here")),
    })
}

/// A result row (the JSON object the JSON format would write) as a
/// record of `columns`' schema.
pub(crate) fn record(columns: &[(String, Option<Ty>)], row: &Value) -> Result<Avro, String> {
    let mut fields = Vec::with_capacity(columns.len());
    for (name, ty) in columns {
        let v = row.get(name).cloned().unwrap_or(Value::Null);
        let avro = match (ty, v) {
            (_, Value::Null) => Avro::Union(0, Box::new(Avro::Null)),
            (Some(Ty::Str), Value::String(s)) => Avro::Union(1, Box::new(Avro::String(s))),
            (Some(Ty::Int), Value::Number(n)) if n.is_i64() => {
                Avro::Union(1, Box::new(Avro::Long(n.as_i64().unwrap_or(0))))
            }
            (Some(Ty::Timestamp), Value::Number(n)) if n.is_i64() => {
                Avro::Union(1, Box::new(Avro::TimestampMillis(n.as_i64().unwrap_or(0))))
            }
            (Some(Ty::Double), Value::Number(n)) => {
                Avro::Union(1, Box::new(Avro::Double(n.as_f64().unwrap_or(f64::NAN))))
            }
            (Some(Ty::Bool), Value::Bool(b)) => Avro::Union(1, Box::new(Avro::Boolean(b))),
            (ty, v) => return Err(format!("column {name}: {v} is not a {ty:?}")),
        };
        fields.push((name.clone(), avro));
    }
    Ok(Avro::Record(fields))
}
