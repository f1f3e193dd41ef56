//! A SQL front end: Flink SQL's streaming window queries, compiled into the
//! same DSL operators a hand-written topology uses.
//!
//! A script declares its topics as tables and inserts a query's results
//! into one:
//!
//! ```
//! use rivulet::testing::TopologyTestDriver;
//! use rivulet::prelude::*;
//! let topology = rivulet::sql::topology(
//!     "CREATE TABLE events (page STRING, ts BIGINT, event_time AS TO_TIMESTAMP_LTZ(ts, 3),
//!          WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
//!      WITH ('connector' = 'kafka', 'topic' = 'page-views', 'format' = 'json');
//!      CREATE TABLE per_minute (window_start TIMESTAMP(3), views BIGINT)
//!      WITH ('topic' = 'views-per-minute', 'format' = 'json');
//!      INSERT INTO per_minute
//!      SELECT TUMBLE_START(event_time, INTERVAL '1' MINUTE), COUNT(*)
//!      FROM events GROUP BY TUMBLE(event_time, INTERVAL '1' MINUTE);",
//! )?;
//! let mut driver = TopologyTestDriver::new(topology)?;
//! let input = driver.input_topic("page-views", Serdes::unit(), Serdes::string());
//! let output = driver.output_topic("views-per-minute", Serdes::unit(), Serdes::string());
//! for ts in [1_000, 2_000, 66_000] {
//!     driver.pipe(&input, (), format!(r#"{{"page":"/","ts":{ts}}}"#), ts)?;
//! }
//! // [0, 1 min) closes when the watermark (66 s - 5 s) passes its end.
//! assert_eq!(driver.read_key_values(&output)?, vec![((), r#"{"window_start":0,"views":2}"#.to_string())]);
//! # Ok::<(), rivulet::Error>(())
//! ```
//!
//! What it takes (Flink's syntax and semantics, see `docs/architecture.md`):
//!
//! - `CREATE TABLE name (col TYPE, .., col AS expr, WATERMARK FOR col AS
//!   col - INTERVAL 'n' unit) WITH ('topic' = .., 'format' = 'json')`: a
//!   topic of JSON objects (or, with `'format' = 'avro-confluent'` and
//!   [`topology_with_registry`], Avro records through a Schema Registry);
//!   the watermark column is the event time;
//! - `INSERT INTO sink SELECT ..`: expressions over the columns (arithmetic,
//!   comparisons, `AND`/`OR`/`NOT`, `CASE`, `IS [NOT] NULL`, `||`, a few
//!   functions), `WHERE`, and `GROUP BY` keys with one `TUMBLE`, `HOP` or
//!   `SESSION` window, `COUNT/SUM/MIN/MAX/AVG`, `HAVING`, and the window's
//!   `TUMBLE_START/_END/_ROWTIME` (and `HOP_`, `SESSION_` forms).
//!
//! Output values are JSON objects whose fields are the sink's columns, in
//! order (the query's columns by position, as Flink's `INSERT INTO`); a
//! sink declared without columns takes the query's aliases. The key is
//! null unless the sink sets `'key.fields'`. `TIMESTAMP` values are epoch
//! milliseconds in JSON.

mod agg;
mod avro;
mod build;
mod expr;
mod parse;
mod plan;
mod query;
mod scope;
#[cfg(test)]
mod tests;
mod window;

use sqlparser::tokenizer::Span;

use crate::processor::TopologyError;
use crate::serde::registry::SchemaRegistry;
use crate::topology::{Topology, TopologyBuilder};

/// A script that rivulet does not take: what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    message: String,
}

impl SqlError {
    /// `message`, with the SQL text `span` covers in `sql` (and its line
    /// and column) when the span is known.
    pub(crate) fn new(message: impl Into<String>, sql: &str, span: Span) -> SqlError {
        let mut message = message.into();
        if let Some((line, column, text)) = snippet(sql, span) {
            message.push_str(&format!(" at line {line}, column {column}: `{text}`"));
        }
        SqlError { message }
    }

    /// `message`, at the line and column where `span` starts, with the
    /// node's own text (sqlparser's spans of calls and joins cover only
    /// their start).
    pub(crate) fn at(message: impl Into<String>, span: Span, text: &str) -> SqlError {
        let mut message = message.into();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let text =
            if text.chars().count() > 120 { format!("{}..", text.chars().take(120).collect::<String>()) } else { text };
        if span.start.line > 0 {
            message.push_str(&format!(" at line {}, column {}", span.start.line, span.start.column));
        }
        message.push_str(&format!(": `{text}`"));
        SqlError { message }
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SqlError {}

impl From<SqlError> for crate::Error {
    fn from(e: SqlError) -> Self {
        crate::Error::Topology(TopologyError::Invalid(format!("SQL: {e}")))
    }
}

/// The text `span` covers in `sql` (lines and columns count from 1, in
/// characters), collapsed to one line and cut at 120 characters.
fn snippet(sql: &str, span: Span) -> Option<(u64, u64, String)> {
    if span.start.line == 0 {
        return None;
    }
    let offset = |line: u64, column: u64| -> Option<usize> {
        let mut start = 0usize;
        for _ in 1..line {
            start += sql[start..].find('\n')? + 1;
        }
        let rest = &sql[start..];
        let chars = usize::try_from(column.saturating_sub(1)).ok()?;
        Some(start + rest.char_indices().nth(chars).map_or(rest.len(), |(i, _)| i))
    };
    let from = offset(span.start.line, span.start.column)?;
    let to = offset(span.end.line, span.end.column)?.max(from);
    let text: String = sql.get(from..to)?.split_whitespace().collect::<Vec<_>>().join(" ");
    let text =
        if text.chars().count() > 120 { format!("{}..", text.chars().take(120).collect::<String>()) } else { text };
    Some((span.start.line, span.start.column, text))
}

/// Adds the script's `INSERT INTO` queries to `builder`, as the DSL
/// operators they stand for.
///
/// ```
/// use rivulet::prelude::*;
/// let mut b = Topology::builder();
/// rivulet::sql::add_to(
///     &mut b,
///     "CREATE TABLE clicks (user_id STRING, amount DOUBLE) WITH ('topic' = 'clicks', 'format' = 'json');
///      CREATE TABLE big (user_id STRING, amount DOUBLE) WITH ('topic' = 'big-clicks', 'format' = 'json');
///      INSERT INTO big SELECT user_id, amount FROM clicks WHERE amount > 100;",
/// )?;
/// assert!(b.build()?.describe().contains("FILTER"));
/// # Ok::<(), rivulet::Error>(())
/// ```
pub fn add_to(builder: &mut TopologyBuilder, sql: &str) -> Result<(), SqlError> {
    compile(builder, sql, None)
}

/// [`add_to`] with a Schema Registry, for tables whose `'format'` is
/// `'avro-confluent'` (Flink's name): their values are Avro records in
/// Confluent's wire format, with the schema Flink derives from the
/// declared columns (`org.apache.flink.avro.generated.record`, every
/// field nullable). A source reads any writer schema that resolves to
/// it; a sink writes under `<topic>-value`, so the registry must hold
/// that schema or `schema_registry.auto_register_schemas` be on.
pub fn add_to_with_registry(
    builder: &mut TopologyBuilder,
    sql: &str,
    registry: &SchemaRegistry,
) -> Result<(), SqlError> {
    compile(builder, sql, Some(registry))
}

fn compile(builder: &mut TopologyBuilder, sql: &str, registry: Option<&SchemaRegistry>) -> Result<(), SqlError> {
    let script = parse::parse(sql)?;
    if script.inserts.is_empty() {
        return Err(SqlError::new(
            "the script has no INSERT INTO .. SELECT statement: nothing to run",
            sql,
            Span::empty(),
        ));
    }
    let mut plans = Vec::new();
    for insert in &script.inserts {
        plans.push(query::plan(sql, &script.tables, insert)?);
    }
    let mut sources = build::Sources::new();
    for (i, plan) in plans.into_iter().enumerate() {
        build::build(builder, &mut sources, plan, i, registry)?;
    }
    Ok(())
}

/// The topology of `sql`'s `INSERT INTO` queries.
pub fn topology(sql: &str) -> crate::Result<Topology> {
    let mut b = Topology::builder();
    add_to(&mut b, sql)?;
    Ok(b.build()?)
}

/// [`topology`] with a Schema Registry (see [`add_to_with_registry`]).
pub fn topology_with_registry(sql: &str, registry: &SchemaRegistry) -> crate::Result<Topology> {
    let mut b = Topology::builder();
    add_to_with_registry(&mut b, sql, registry)?;
    Ok(b.build()?)
}
