//! Compiled expressions and their evaluation over JSON values, with SQL's
//! null rules: an operator with a null operand is null, `AND`/`OR` are
//! three-valued, a `WHERE` keeps a row only when its condition is true.

use std::cmp::Ordering;

use serde_json::{Number, Value};
use sqlparser::ast::DataType;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Concat,
}

/// A scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Upper,
    Lower,
    CharLength,
    Abs,
    Coalesce,
    Concat,
    /// `TO_TIMESTAMP_LTZ(epoch, precision)`: precision 0 is seconds, 3 ms.
    ToTimestampLtz,
    /// `TO_TIMESTAMP(string)`.
    ToTimestamp,
}

/// An expression over one input: a row's columns, or a group's keys,
/// aggregates and window bounds (`Slot` indexes either).
#[derive(Debug, Clone)]
pub(crate) enum CExpr {
    Slot(usize),
    Lit(Value),
    Bin(BinOp, Box<CExpr>, Box<CExpr>),
    Not(Box<CExpr>),
    Neg(Box<CExpr>),
    IsNull(Box<CExpr>, bool),
    Like(Box<CExpr>, Box<CExpr>, bool),
    Case { operand: Option<Box<CExpr>>, whens: Vec<(CExpr, CExpr)>, otherwise: Option<Box<CExpr>> },
    Func(Func, Vec<CExpr>),
    Cast(Box<CExpr>, Ty),
}

/// A declared column type: what JSON values are read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    Int,
    Double,
    Bool,
    /// Epoch milliseconds; read from a number or a `yyyy-MM-dd HH:mm:ss[.SSS]`
    /// (or ISO-8601) string.
    Timestamp,
}

impl Ty {
    pub(crate) fn of(data_type: &DataType) -> Option<Ty> {
        let text = data_type.to_string().to_uppercase();
        let word = text.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').next().unwrap_or_default();
        Some(match word {
            "STRING" | "VARCHAR" | "CHAR" | "TEXT" => Ty::Str,
            "BIGINT" | "INT" | "INTEGER" | "SMALLINT" | "TINYINT" => Ty::Int,
            "DOUBLE" | "FLOAT" | "REAL" | "DECIMAL" | "NUMERIC" => Ty::Double,
            "BOOLEAN" | "BOOL" => Ty::Bool,
            w if w.starts_with("TIMESTAMP") => Ty::Timestamp,
            _ => return None,
        })
    }

    /// `v` read as this type; a JSON null or a missing field is null.
    pub(crate) fn coerce(self, v: Value) -> Result<Value, String> {
        let bad = |v: &Value| format!("expected {self:?}, got {v}");
        Ok(match (self, v) {
            (_, Value::Null) => Value::Null,
            (Ty::Str, Value::String(s)) => Value::String(s),
            (Ty::Str, v @ (Value::Number(_) | Value::Bool(_))) => Value::String(v.to_string()),
            (Ty::Int | Ty::Timestamp, Value::Number(n)) => match n.as_i64() {
                Some(i) => Value::from(i),
                // A fraction is cut off, as CAST(2.5 AS BIGINT) is 2.
                None => n
                    .as_f64()
                    .filter(|f| f.abs() < 9.2e18)
                    .map(|f| Value::from(f.trunc() as i64))
                    .ok_or_else(|| bad(&Value::Number(n)))?,
            },
            (Ty::Int, Value::String(s)) => {
                s.trim().parse::<i64>().map(Value::from).map_err(|_| bad(&Value::String(s)))?
            }
            (Ty::Timestamp, Value::String(s)) => {
                parse_timestamp(&s).map(Value::from).ok_or_else(|| bad(&Value::String(s)))?
            }
            (Ty::Double, Value::Number(n)) => n.as_f64().map(float).unwrap_or(Value::Null),
            (Ty::Double, Value::String(s)) => s.trim().parse::<f64>().map(float).map_err(|_| bad(&Value::String(s)))?,
            (Ty::Bool, Value::Bool(b)) => Value::Bool(b),
            (_, v) => return Err(bad(&v)),
        })
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `yyyy-MM-dd[ |T]HH:mm:ss[.fraction][Z]` as epoch ms (UTC).
pub(crate) fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once([' ', 'T']).unwrap_or((s, "00:00:00"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next().unwrap_or(Some(0))?);
    let in_range = (0..=9999).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&day);
    if !in_range || !(0..=23).contains(&h) || !(0..=59).contains(&min) || !(0..=60).contains(&sec) {
        return None;
    }
    let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
    let ms = millis.parse::<i64>().ok()?;
    Some(((days_from_civil(y, m, day) * 24 + h) * 60 + min) * 60_000 + sec * 1000 + ms)
}

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Number(n) => n.as_i64().map(Num::I).or_else(|| n.as_f64().map(Num::F)),
        _ => None,
    }
}

fn as_f64(n: Num) -> f64 {
    match n {
        Num::I(i) => i as f64,
        Num::F(f) => f,
    }
}

/// `a` and `b` ordered: numbers by value, strings and booleans as such;
/// `None` if either is null.
pub(crate) fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>, String> {
    Ok(match (a, b) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => match (num(a), num(b)) {
            (Some(Num::I(x)), Some(Num::I(y))) => Some(x.cmp(&y)),
            (Some(x), Some(y)) => as_f64(x).partial_cmp(&as_f64(y)),
            _ => return Err(format!("cannot compare {a} with {b}")),
        },
    })
}

fn arithmetic(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    let (Some(x), Some(y)) = (num(a), num(b)) else {
        return Err(format!("{op:?} needs numbers, got {a} and {b}"));
    };
    if let (Num::I(x), Num::I(y)) = (x, y) {
        let r = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div | BinOp::Mod if y == 0 => return Err(format!("division by zero ({a} / {b})")),
            BinOp::Div => x.checked_div(y),
            _ => x.checked_rem(y),
        };
        return r.map(Value::from).ok_or_else(|| format!("integer overflow in {a} {op:?} {b}"));
    }
    let (x, y) = (as_f64(x), as_f64(y));
    Ok(float(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
        _ => x % y,
    }))
}

fn truth(v: &Value) -> Result<Option<bool>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(format!("expected a boolean, got {other}")),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// SQL `LIKE`: `%` any run, `_` any one character (dynamic programming,
/// so that a pattern from the data cannot make it exponential).
fn like(s: &[char], p: &[char]) -> bool {
    // matches[j]: the pattern's first j characters match the text so far.
    let mut matches = vec![false; p.len() + 1];
    matches[0] = true;
    for j in 1..=p.len() {
        matches[j] = matches[j - 1] && p[j - 1] == '%';
    }
    for c in s {
        let mut next = vec![false; p.len() + 1];
        for j in 1..=p.len() {
            next[j] = match p[j - 1] {
                '%' => next[j - 1] || matches[j],
                q => matches[j - 1] && (q == '_' || q == *c),
            };
        }
        matches = next;
    }
    matches[p.len()]
}

impl CExpr {
    /// The value of this expression on `slots`.
    pub(crate) fn eval(&self, slots: &[Value]) -> Result<Value, String> {
        Ok(match self {
            CExpr::Slot(i) => slots.get(*i).cloned().unwrap_or(Value::Null),
            CExpr::Lit(v) => v.clone(),
            CExpr::Bin(op @ (BinOp::And | BinOp::Or), a, b) => {
                let (x, y) = (truth(&a.eval(slots)?)?, truth(&b.eval(slots)?)?);
                let r = if *op == BinOp::And {
                    match (x, y) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    }
                } else {
                    match (x, y) {
                        (Some(true), _) | (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    }
                };
                r.map_or(Value::Null, Value::Bool)
            }
            CExpr::Bin(op, a, b) => {
                let (x, y) = (a.eval(slots)?, b.eval(slots)?);
                if x.is_null() || y.is_null() {
                    return Ok(Value::Null);
                }
                match op {
                    BinOp::Concat => Value::String(text(&x) + &text(&y)),
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => arithmetic(*op, &x, &y)?,
                    _ => {
                        let o = compare(&x, &y)?;
                        Value::Bool(o.is_some_and(|o| match op {
                            BinOp::Eq => o.is_eq(),
                            BinOp::Ne => o.is_ne(),
                            BinOp::Lt => o.is_lt(),
                            BinOp::Le => o.is_le(),
                            BinOp::Gt => o.is_gt(),
                            _ => o.is_ge(),
                        }))
                    }
                }
            }
            CExpr::Not(a) => truth(&a.eval(slots)?)?.map_or(Value::Null, |b| Value::Bool(!b)),
            CExpr::Neg(a) => match a.eval(slots)? {
                Value::Null => Value::Null,
                v => arithmetic(BinOp::Sub, &Value::from(0), &v)?,
            },
            CExpr::IsNull(a, negated) => Value::Bool(a.eval(slots)?.is_null() != *negated),
            CExpr::Like(a, p, negated) => match (a.eval(slots)?, p.eval(slots)?) {
                (Value::Null, _) | (_, Value::Null) => Value::Null,
                (s, p) => {
                    let (s, p): (Vec<char>, Vec<char>) = (text(&s).chars().collect(), text(&p).chars().collect());
                    Value::Bool(like(&s, &p) != *negated)
                }
            },
            CExpr::Case { operand, whens, otherwise } => {
                let operand = operand.as_ref().map(|o| o.eval(slots)).transpose()?;
                for (when, then) in whens {
                    let w = when.eval(slots)?;
                    let hit = match &operand {
                        Some(o) => compare(o, &w)?.is_some_and(Ordering::is_eq),
                        None => truth(&w)? == Some(true),
                    };
                    if hit {
                        return then.eval(slots);
                    }
                }
                otherwise.as_ref().map_or(Ok(Value::Null), |e| e.eval(slots))?
            }
            CExpr::Cast(a, ty) => ty.coerce(a.eval(slots)?)?,
            CExpr::Func(f, args) => {
                let args = args.iter().map(|a| a.eval(slots)).collect::<Result<Vec<_>, _>>()?;
                call(*f, args)?
            }
        })
    }
}

fn call(f: Func, args: Vec<Value>) -> Result<Value, String> {
    let first = args.first().cloned().unwrap_or(Value::Null);
    if f == Func::Coalesce {
        return Ok(args.into_iter().find(|v| !v.is_null()).unwrap_or(Value::Null));
    }
    if args.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    Ok(match f {
        Func::Upper => Value::String(text(&first).to_uppercase()),
        Func::Lower => Value::String(text(&first).to_lowercase()),
        Func::CharLength => Value::from(text(&first).chars().count() as i64),
        Func::Concat => Value::String(args.iter().map(text).collect()),
        Func::Abs => match num(&first) {
            Some(Num::I(i)) => Value::from(i.checked_abs().ok_or("integer overflow in ABS")?),
            Some(Num::F(x)) => float(x.abs()),
            None => return Err(format!("ABS needs a number, got {first}")),
        },
        Func::ToTimestampLtz => {
            let precision = args.get(1).and_then(Value::as_i64).unwrap_or(3);
            let scale = if precision == 0 { 1000 } else { 1 };
            Ty::Timestamp.coerce(arithmetic(BinOp::Mul, &first, &Value::from(scale))?)?
        }
        Func::ToTimestamp => Ty::Timestamp.coerce(first)?,
        Func::Coalesce => Value::Null,
    })
}
