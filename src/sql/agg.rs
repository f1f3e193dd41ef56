//! `COUNT/SUM/MIN/MAX/AVG` over a window: one [`Aggregator`] holds every
//! aggregate of a query, so a query is one window store, as a
//! hand-written `aggregate` would be.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::expr::compare;
use crate::topology::Aggregator;

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggFunc {
    /// `COUNT(*)`: the argument is not evaluated.
    CountAll,
    /// `COUNT(x)`: the rows where `x` is not null.
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

impl AggFunc {
    /// The aggregate called `name` (upper case); `COUNT` is [`AggFunc::Count`].
    pub(crate) fn of(name: &str) -> Option<AggFunc> {
        Some(match name {
            "COUNT" => AggFunc::Count,
            "SUM" => AggFunc::Sum,
            "MIN" => AggFunc::Min,
            "MAX" => AggFunc::Max,
            "AVG" => AggFunc::Avg,
            _ => return None,
        })
    }

    /// Checks an argument before it reaches the aggregator (which cannot
    /// fail): `SUM` and `AVG` take numbers, `MIN` and `MAX` scalars.
    pub(crate) fn check(self, v: &Value) -> Result<(), String> {
        match (self, v) {
            (_, Value::Null) | (AggFunc::CountAll | AggFunc::Count, _) => Ok(()),
            (AggFunc::Sum | AggFunc::Avg, Value::Number(_)) => Ok(()),
            (AggFunc::Min | AggFunc::Max, Value::Number(_) | Value::String(_) | Value::Bool(_)) => Ok(()),
            (f, v) => Err(format!("{f:?} cannot take {v}")),
        }
    }
}

/// One aggregate's running state, stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Acc {
    Count(i64),
    /// An integer sum while every input was an integer (and it did not
    /// overflow), a float sum after; `None` before the first non-null.
    Sum(Option<Value>),
    Min(Option<Value>),
    Max(Option<Value>),
    Avg {
        sum: f64,
        n: i64,
    },
}

fn add_numbers(a: &Value, b: &Value) -> Value {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        if let Some(s) = x.checked_add(y) {
            return Value::from(s);
        }
    }
    let s = a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0);
    serde_json::Number::from_f64(s).map_or(Value::Null, Value::Number)
}

fn pick(a: Option<Value>, b: Option<Value>, keep: Ordering) -> Option<Value> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if compare(&b, &a).ok().flatten() == Some(keep) { b } else { a }),
        (a, b) => a.or(b),
    }
}

impl Acc {
    fn new(f: AggFunc) -> Acc {
        match f {
            AggFunc::CountAll | AggFunc::Count => Acc::Count(0),
            AggFunc::Sum => Acc::Sum(None),
            AggFunc::Min => Acc::Min(None),
            AggFunc::Max => Acc::Max(None),
            AggFunc::Avg => Acc::Avg { sum: 0.0, n: 0 },
        }
    }

    fn add(self, f: AggFunc, v: &Value) -> Acc {
        if v.is_null() && f != AggFunc::CountAll {
            return self;
        }
        let v = Some(v.clone());
        self.merge(match f {
            AggFunc::CountAll | AggFunc::Count => Acc::Count(1),
            AggFunc::Sum => Acc::Sum(v),
            AggFunc::Min => Acc::Min(v),
            AggFunc::Max => Acc::Max(v),
            AggFunc::Avg => Acc::Avg { sum: v.and_then(|v| v.as_f64()).unwrap_or(0.0), n: 1 },
        })
    }

    fn merge(self, other: Acc) -> Acc {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => Acc::Count(a.saturating_add(b)),
            (Acc::Sum(a), Acc::Sum(b)) => Acc::Sum(match (a, b) {
                (Some(a), Some(b)) => Some(add_numbers(&a, &b)),
                (a, b) => a.or(b),
            }),
            (Acc::Min(a), Acc::Min(b)) => Acc::Min(pick(a, b, Ordering::Less)),
            (Acc::Max(a), Acc::Max(b)) => Acc::Max(pick(a, b, Ordering::Greater)),
            (Acc::Avg { sum, n }, Acc::Avg { sum: s2, n: n2 }) => Acc::Avg { sum: sum + s2, n: n.saturating_add(n2) },
            // Both sides come from the same query's aggregates.
            (a, _) => a,
        }
    }

    /// The aggregate's SQL value: null for `SUM/MIN/MAX/AVG` of no
    /// non-null value.
    pub(crate) fn result(&self) -> Value {
        match self {
            Acc::Count(n) => Value::from(*n),
            Acc::Sum(v) | Acc::Min(v) | Acc::Max(v) => v.clone().unwrap_or(Value::Null),
            Acc::Avg { n: 0, .. } => Value::Null,
            Acc::Avg { sum, n } => serde_json::Number::from_f64(sum / *n as f64).map_or(Value::Null, Value::Number),
        }
    }
}

/// All of a query's aggregates; the values it adds are the aggregates'
/// arguments, evaluated (and checked) before the repartition.
pub(crate) struct SqlAgg {
    pub(crate) funcs: Vec<AggFunc>,
}

impl Aggregator<Vec<Value>> for SqlAgg {
    type Acc = Vec<Acc>;

    fn init(&self) -> Vec<Acc> {
        self.funcs.iter().map(|f| Acc::new(*f)).collect()
    }

    fn add(&self, acc: Vec<Acc>, args: &Vec<Value>) -> Vec<Acc> {
        acc.into_iter()
            .zip(&self.funcs)
            .enumerate()
            .map(|(i, (a, f))| a.add(*f, args.get(i).unwrap_or(&Value::Null)))
            .collect()
    }

    fn merge(&self, a: Vec<Acc>, b: Vec<Acc>) -> Vec<Acc> {
        a.into_iter().zip(b).map(|(a, b)| a.merge(b)).collect()
    }
}
