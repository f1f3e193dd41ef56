//! A [`Plan`] as DSL operators: `stream_with_time` (event time from the
//! WATERMARK column), `filter`, then either `map` and `to`, or `map` (keys
//! and aggregate arguments), `group_by_key`, `windowed_by(..).emit_final()`,
//! `aggregate`, `flat_map` (HAVING, SELECT) and `to`: what a hand-written
//! topology would use.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::agg::{Acc, SqlAgg};
use super::expr::CExpr;
use super::plan::{Plan, Shape, Sink, Source, WindowSpec};
use crate::serde::Serdes;
use crate::topology::{KStream, Timestamps, TopologyBuilder, Windows};

/// A source table's rows, built once per table and shared by the queries
/// that read it.
pub(crate) type Sources = BTreeMap<String, KStream<(), Vec<Value>>>;

fn rows(b: &mut TopologyBuilder, sources: &mut Sources, src: Source) -> KStream<(), Vec<Value>> {
    if let Some(stream) = sources.get(&src.name) {
        return stream.clone();
    }
    let src = Arc::new(src);
    let json = Serdes::json::<Value>();
    let raw = match src.time {
        Some((_, delay)) => {
            let s = src.clone();
            let time = Timestamps::from_value(move |v: &Value| s.time_of(v))
                .out_of_orderness(Duration::from_millis(delay.unsigned_abs()));
            b.stream_with_time(&src.topic, Serdes::unit(), json, time)
        }
        None => b.stream(&src.topic, Serdes::unit(), json),
    };
    let s = src.clone();
    let stream =
        raw.try_map_values(move |v: Value| s.row(&v)).with_serdes(Serdes::unit(), Serdes::json::<Vec<Value>>());
    sources.insert(src.name.clone(), stream.clone());
    stream
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
pub(crate) fn build(b: &mut TopologyBuilder, sources: &mut Sources, source: Source, plan: Plan, n: usize) {
    let Plan { filter, shape, sink, .. } = plan;
    let mut stream = rows(b, sources, source);
    if let Some(filter) = filter {
        stream = stream.try_filter(move |_, row| Ok::<_, String>(filter.eval(row)? == Value::Bool(true)));
    }
    let sink = Arc::new(sink);
    let topic = sink.topic.clone();
    let out_key = Serdes::optional(Serdes::string());
    match shape {
        Shape::Project(outputs) => {
            let s = sink.clone();
            stream.try_map(move |_, row: Vec<Value>| output(&s, eval_all(&outputs, &row)?)).to(
                &topic,
                out_key,
                Serdes::string(),
            );
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
                .to(&topic, out_key, Serdes::string());
        }
    }
}

fn ms(ms: i64) -> Duration {
    Duration::from_millis(ms.unsigned_abs())
}
