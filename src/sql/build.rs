//! A [`Plan`] as DSL operators: `stream_with_time` (event time from the
//! WATERMARK column), `filter`, then either `map` and `to`, or `map` (keys
//! and aggregate arguments), `group_by_key`, `windowed_by(..).emit_final()`,
//! `aggregate`, `flat_map` (HAVING, SELECT) and `to`: what a hand-written
//! topology would use.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use sqlparser::tokenizer::Span;

use super::agg::{Acc, SqlAgg};
use super::avro;
use super::expr::CExpr;
use super::plan::{Plan, Shape, Sink, Source, WindowSpec};
use super::SqlError;
use crate::serde::registry::{RegistryError, SchemaRegistry};
use crate::serde::{Serde, Serdes};
use crate::topology::{Data, KStream, Timestamps, TopologyBuilder, Windows};

/// A source table's rows, built once per table and shared by the queries
/// that read it.
pub(crate) type Sources = BTreeMap<String, KStream<(), Vec<Value>>>;

fn rows(
    b: &mut TopologyBuilder,
    sources: &mut Sources,
    src: Source,
    registry: Option<&SchemaRegistry>,
) -> Result<KStream<(), Vec<Value>>, SqlError> {
    if let Some(stream) = sources.get(&src.name) {
        return Ok(stream.clone());
    }
    let name = src.name.clone();
    let stream = match &src.avro_schema {
        None => source_rows(b, src, Serdes::json::<Value>(), |v: &Value| Ok(v.clone())),
        Some(schema) => {
            let serde =
                registry_of(registry, &src.name)?.avro_value(schema).map_err(|e| registry_error(&src.name, e))?;
            source_rows(b, src, serde, avro::to_json)
        }
    };
    sources.insert(name, stream.clone());
    Ok(stream)
}

fn registry_of<'r>(registry: Option<&'r SchemaRegistry>, table: &str) -> Result<&'r SchemaRegistry, SqlError> {
    registry.ok_or_else(|| {
        SqlError::at(
            format!(
                "table {table} is 'avro-confluent', which needs a Schema Registry: compile the script with \
                 rivulet::sql::topology_with_registry"
            ),
            Span::empty(),
            table,
        )
    })
}

fn registry_error(table: &str, e: RegistryError) -> SqlError {
    SqlError::at(format!("table {table}: {e}"), Span::empty(), table)
}

/// The rows of a source whose values `serde` reads and `to_json` makes
/// JSON values.
fn source_rows<V: Data>(
    b: &mut TopologyBuilder,
    src: Source,
    serde: impl Serde<V> + Clone,
    to_json: fn(&V) -> Result<Value, String>,
) -> KStream<(), Vec<Value>> {
    let src = Arc::new(src);
    let raw = match src.time {
        Some((_, delay)) => {
            let s = src.clone();
            let time = Timestamps::from_value(move |v: &V| to_json(v).ok().and_then(|v| s.time_of(&v)))
                .out_of_orderness(Duration::from_millis(delay.unsigned_abs()));
            b.stream_with_time(&src.topic, Serdes::unit(), serde, time)
        }
        None => b.stream(&src.topic, Serdes::unit(), serde),
    };
    let s = src.clone();
    raw.try_map_values(move |v: V| s.row(&to_json(&v)?)).with_serdes(Serdes::unit(), Serdes::json::<Vec<Value>>())
}

/// Writes the result records to the sink's topic, in its format.
fn write(
    results: KStream<Option<String>, String>,
    sink: &Sink,
    registry: Option<&SchemaRegistry>,
) -> Result<(), SqlError> {
    let out_key = Serdes::optional(Serdes::string());
    match &sink.avro_schema {
        None => results.to(&sink.topic, out_key, Serdes::string()),
        Some(schema) => {
            let serde =
                registry_of(registry, &sink.topic)?.avro_value(schema).map_err(|e| registry_error(&sink.topic, e))?;
            let columns = sink.columns.clone();
            results
                .try_map_values(move |json: String| {
                    let row: Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
                    avro::record(&columns, &row)
                })
                .to(&sink.topic, out_key, serde.value_of(&sink.topic));
        }
    }
    Ok(())
}

/// The output record of a result row: the key (JSON of `'key.fields'`,
/// or null) and the value (a JSON object of the sink's columns, in order).
fn output(sink: &Sink, values: Vec<Value>) -> Result<(Option<String>, String), String> {
    let mut value = String::from("{");
    let mut fields = Vec::with_capacity(values.len());
    for (i, ((name, ty), from)) in sink.columns.iter().zip(&sink.from).enumerate() {
        let v = from.and_then(|f| values.get(f).cloned()).unwrap_or(Value::Null);
        let v = match ty {
            Some(ty) => ty.coerce(v).map_err(|e| format!("sink column {name}: {e}"))?,
            None => v,
        };
        if i > 0 {
            value.push(',');
        }
        value.push_str(&Value::String(name.clone()).to_string());
        value.push(':');
        value.push_str(&v.to_string());
        fields.push((name, v));
    }
    value.push('}');
    let key = (!sink.key.is_empty()).then(|| {
        let object: serde_json::Map<String, Value> =
            sink.key.iter().filter_map(|i| fields.get(*i)).map(|(n, v)| ((*n).clone(), v.clone())).collect();
        Value::Object(object).to_string()
    });
    Ok((key, value))
}

fn eval_all(exprs: &[CExpr], slots: &[Value]) -> Result<Vec<Value>, String> {
    exprs.iter().map(|e| e.eval(slots)).collect()
}

/// Adds `plan` (the script's `n`th `INSERT INTO`) to `b`.
pub(crate) fn build(
    b: &mut TopologyBuilder,
    sources: &mut Sources,
    (source, plan): (Source, Plan),
    n: usize,
    registry: Option<&SchemaRegistry>,
) -> Result<(), SqlError> {
    let Plan { filter, shape, sink, .. } = plan;
    let mut stream = rows(b, sources, source, registry)?;
    if let Some(filter) = filter {
        stream = stream.try_filter(move |_, row| Ok::<_, String>(filter.eval(row)? == Value::Bool(true)));
    }
    let sink = Arc::new(sink);
    let results = match shape {
        Shape::Project(outputs) => {
            let s = sink.clone();
            stream.try_map(move |_, row: Vec<Value>| output(&s, eval_all(&outputs, &row)?))
        }
        Shape::Window { keys, aggs, window, having, outputs } => {
            let (funcs, args): (Vec<_>, Vec<_>) = aggs.into_iter().unzip();
            let checks = funcs.clone();
            let grouped = stream
                .try_map(move |_, row: Vec<Value>| {
                    let args = eval_all(&args, &row)?;
                    for (f, a) in checks.iter().zip(&args) {
                        f.check(a)?;
                    }
                    Ok::<_, String>((eval_all(&keys, &row)?, args))
                })
                .with_serdes(Serdes::json::<Vec<Value>>(), Serdes::json::<Vec<Value>>())
                .group_by_key();
            let (windows, session_gap) = match window {
                WindowSpec::Tumble { size } => (Windows::tumbling(ms(size)), 0),
                WindowSpec::Hop { slide, size } => (Windows::hopping(ms(size), ms(slide)), 0),
                WindowSpec::Session { gap } => (Windows::session(ms(gap)), gap),
            };
            let s = sink.clone();
            grouped
                .windowed_by(windows)
                .emit_final()
                .aggregate(&format!("sql-{n}-{}", sink.topic), SqlAgg { funcs })
                .try_flat_map(move |w, accs: Vec<Acc>| {
                    // Flink's SESSION_END is the last row's time plus the gap.
                    let mut slots = vec![Value::from(w.start), Value::from(w.end.saturating_add(session_gap))];
                    slots.extend(w.key);
                    slots.extend(accs.iter().map(Acc::result));
                    if let Some(h) = &having {
                        if h.eval(&slots)? != Value::Bool(true) {
                            return Ok(Vec::new());
                        }
                    }
                    Ok::<_, String>(vec![output(&s, eval_all(&outputs, &slots)?)?])
                })
        }
    };
    write(results, &sink, registry)
}

fn ms(ms: i64) -> Duration {
    Duration::from_millis(ms.unsigned_abs())
}
