//! A compiled `INSERT INTO`: what `build` turns into operators.

use serde_json::Value;

use super::agg::AggFunc;
use super::expr::{CExpr, Ty};

/// A source table: how a JSON value becomes a row.
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) topic: String,
    /// The Avro schema of `'format' = 'avro-confluent'`; `None`: JSON.
    pub(crate) avro_schema: Option<String>,
    /// Physical columns (read from the JSON object, as their type) and
    /// computed ones (evaluated on the physical ones).
    pub(crate) columns: Vec<(String, Option<Ty>, Option<CExpr>)>,
    /// The event-time column's position and the watermark delay (ms).
    pub(crate) time: Option<(usize, i64)>,
}

impl Source {
    /// The row of a JSON value: the declared columns in order; a missing
    /// field is null (Flink's `json.fail-on-missing-field` = false).
    pub(crate) fn row(&self, value: &Value) -> Result<Vec<Value>, String> {
        self.read(value, false)
    }

    /// The event time of a JSON value: its row's time column, with the
    /// other columns read leniently (a value of the wrong type is null),
    /// so that such a record fails in the row's own step, which names
    /// the column, rather than in the timestamp extractor.
    pub(crate) fn time_of(&self, value: &Value) -> Option<i64> {
        let (column, _) = self.time?;
        self.read(value, true).ok()?.get(column)?.as_i64()
    }

    fn read(&self, value: &Value, lenient: bool) -> Result<Vec<Value>, String> {
        let Value::Object(fields) = value else {
            return Err(format!("table {}: expected a JSON object, got {value}", self.name));
        };
        let mut row = Vec::with_capacity(self.columns.len());
        for (name, ty, _) in &self.columns {
            let v = fields.get(name).cloned().unwrap_or(Value::Null);
            row.push(match ty {
                Some(ty) => match ty.coerce(v) {
                    Ok(v) => v,
                    Err(_) if lenient => Value::Null,
                    Err(e) => return Err(format!("column {name} of table {}: {e}", self.name)),
                },
                None => Value::Null,
            });
        }
        for (i, (_, _, computed)) in self.columns.iter().enumerate() {
            if let Some(e) = computed {
                row[i] = e.eval(&row)?;
            }
        }
        Ok(row)
    }
}

/// A window of `GROUP BY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowSpec {
    Tumble { size: i64 },
    Hop { slide: i64, size: i64 },
    Session { gap: i64 },
}

/// What the query does to each (filtered) row.
pub(crate) enum Shape {
    /// `SELECT exprs`: one output per row.
    Project(Vec<CExpr>),
    /// `GROUP BY window, keys`: one output per key and window when it
    /// closes. The outputs and `having` read the slots: the keys, the
    /// aggregates, then the window start and end.
    Window {
        keys: Vec<CExpr>,
        aggs: Vec<(AggFunc, CExpr)>,
        window: WindowSpec,
        having: Option<CExpr>,
        outputs: Vec<CExpr>,
    },
}

/// Where the results go.
pub(crate) struct Sink {
    pub(crate) topic: String,
    /// The Avro schema of `'format' = 'avro-confluent'`; `None`: JSON.
    pub(crate) avro_schema: Option<String>,
    /// The output columns' names and declared types.
    pub(crate) columns: Vec<(String, Option<Ty>)>,
    /// The query column each output column takes (`None`: null).
    pub(crate) from: Vec<Option<usize>>,
    /// The positions of `'key.fields'`.
    pub(crate) key: Vec<usize>,
}

/// A table's value format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    /// Flink's `avro-confluent`: Avro in Confluent's wire format through
    /// the application's Schema Registry.
    Avro,
}

/// A compiled `INSERT INTO`.
pub(crate) struct Plan {
    pub(crate) filter: Option<CExpr>,
    pub(crate) shape: Shape,
    pub(crate) sink: Sink,
}
