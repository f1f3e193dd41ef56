//! sqlparser expressions compiled into [`CExpr`]s: the operators and
//! functions every clause shares; a [`Scope`] says what names and calls
//! mean where the expression stands (a row's columns, or a group's keys,
//! aggregates and window bounds).

use serde_json::Value;
use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, InTarget, Interval, Spanned,
    UnaryOperator, Value as SqlValue,
};

use super::expr::{BinOp, CExpr, Func, Ty};
use super::parse::object_name;
use super::SqlError;

/// What names and special calls mean in one clause.
pub(crate) trait Scope {
    /// `e` compiled by the scope itself (a group key, an aggregate, a
    /// window bound), or `None` to compile it as an ordinary expression.
    fn special(&mut self, cx: &Cx<'_>, e: &Expr) -> Result<Option<CExpr>, SqlError>;
    /// The column `name` (`e` is the reference, for errors).
    fn column(&mut self, cx: &Cx<'_>, name: &str, e: &Expr) -> Result<CExpr, SqlError>;
}

/// The script and the clause being compiled, for errors.
#[derive(Clone, Copy)]
pub(crate) struct Cx<'a> {
    pub(crate) sql: &'a str,
    pub(crate) clause: &'a str,
}

impl Cx<'_> {
    /// "`what` (in CLAUSE) at line .., column ..: `text`".
    pub(crate) fn error(&self, what: impl std::fmt::Display, at: &(impl Spanned + std::fmt::Display)) -> SqlError {
        SqlError::at(format!("{what} (in {})", self.clause), at.span(), &at.to_string())
    }

    pub(crate) fn unsupported(
        &self,
        what: impl std::fmt::Display,
        at: &(impl Spanned + std::fmt::Display),
    ) -> SqlError {
        self.error(format!("{what} is not supported"), at)
    }
}

/// A function's name, upper case.
pub(crate) fn function_name(f: &Function) -> String {
    object_name(&f.name).to_uppercase()
}

/// A function's plain positional arguments; `*` is `None`.
pub(crate) fn function_args<'e>(cx: &Cx<'_>, f: &'e Function) -> Result<Vec<Option<&'e Expr>>, SqlError> {
    let list = match &f.args {
        FunctionArguments::None => return Ok(Vec::new()),
        FunctionArguments::List(list) => list,
        FunctionArguments::Subquery(_) => return Err(cx.unsupported("a subquery argument", f)),
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return Err(cx.unsupported(format!("{} with DISTINCT/ALL or clauses", function_name(f)), f));
    }
    if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
        return Err(cx.unsupported(format!("{} with FILTER/OVER/WITHIN GROUP", function_name(f)), f));
    }
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(Some(e)),
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => Ok(None),
            other => Err(cx.unsupported(format!("argument `{other}`"), f)),
        })
        .collect()
}

/// An interval literal in milliseconds: `INTERVAL '5' SECOND`,
/// `INTERVAL '1.5' MINUTE`, `INTERVAL '2 hours'`.
pub(crate) fn interval_ms(iv: &Interval) -> Option<i64> {
    let text = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) => s.clone(),
            SqlValue::Number(n, _) => n.to_string(),
            _ => return None,
        },
        _ => return None,
    };
    if iv.last_field.is_some() {
        return None;
    }
    let (amount, unit) = match &iv.leading_field {
        Some(field) => (text.trim().to_string(), field.to_string()),
        None => {
            let (a, u) = text.trim().split_once(char::is_whitespace)?;
            (a.to_string(), u.trim().to_string())
        }
    };
    let unit = unit.to_uppercase();
    let scale = match unit.trim_end_matches('S') {
        "MILLISECOND" => 1.0,
        "SECOND" => 1_000.0,
        "MINUTE" => 60_000.0,
        "HOUR" => 3_600_000.0,
        "DAY" => 86_400_000.0,
        _ => return None,
    };
    let ms = (amount.parse::<f64>().ok()? * scale).round();
    (ms.is_finite() && ms >= 0.0).then_some(ms as i64)
}

fn literal(cx: &Cx<'_>, e: &Expr, v: &SqlValue) -> Result<Value, SqlError> {
    Ok(match v {
        SqlValue::Number(n, _) => match n.parse::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => n
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| cx.error(format!("bad number {n}"), e))?,
        },
        SqlValue::SingleQuotedString(s) => Value::String(s.clone()),
        SqlValue::Boolean(b) => Value::Bool(*b),
        SqlValue::Null => Value::Null,
        other => return Err(cx.unsupported(format!("the literal {other}"), e)),
    })
}

fn bin_op(op: &BinaryOperator) -> Option<BinOp> {
    Some(match op {
        BinaryOperator::Plus => BinOp::Add,
        BinaryOperator::Minus => BinOp::Sub,
        BinaryOperator::Multiply => BinOp::Mul,
        BinaryOperator::Divide => BinOp::Div,
        BinaryOperator::Modulo => BinOp::Mod,
        BinaryOperator::Eq => BinOp::Eq,
        BinaryOperator::NotEq => BinOp::Ne,
        BinaryOperator::Lt => BinOp::Lt,
        BinaryOperator::LtEq => BinOp::Le,
        BinaryOperator::Gt => BinOp::Gt,
        BinaryOperator::GtEq => BinOp::Ge,
        BinaryOperator::And => BinOp::And,
        BinaryOperator::Or => BinOp::Or,
        BinaryOperator::StringConcat => BinOp::Concat,
        _ => return None,
    })
}

fn scalar(name: &str) -> Option<Func> {
    Some(match name {
        "UPPER" => Func::Upper,
        "LOWER" => Func::Lower,
        "CHAR_LENGTH" | "CHARACTER_LENGTH" => Func::CharLength,
        "ABS" => Func::Abs,
        "COALESCE" => Func::Coalesce,
        "CONCAT" => Func::Concat,
        "TO_TIMESTAMP_LTZ" => Func::ToTimestampLtz,
        "TO_TIMESTAMP" => Func::ToTimestamp,
        _ => return None,
    })
}

fn bin(op: BinOp, a: CExpr, b: CExpr) -> CExpr {
    CExpr::Bin(op, Box::new(a), Box::new(b))
}

/// `e` compiled in `scope`.
pub(crate) fn compile(cx: &Cx<'_>, e: &Expr, scope: &mut dyn Scope) -> Result<CExpr, SqlError> {
    if let Some(special) = scope.special(cx, e)? {
        return Ok(special);
    }
    let mut sub = |e: &Expr| compile(cx, e, scope);
    Ok(match e {
        Expr::Identifier(id) => return scope.column(cx, &id.value, e),
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(last) => return scope.column(cx, &last.value, e),
            None => return Err(cx.unsupported("an empty name", e)),
        },
        Expr::Value(v) => CExpr::Lit(literal(cx, e, &v.value)?),
        Expr::Interval(iv) => match interval_ms(iv) {
            Some(ms) => CExpr::Lit(Value::from(ms)),
            None => return Err(cx.unsupported("this interval (use INTERVAL 'n' SECOND/MINUTE/HOUR/DAY)", e)),
        },
        Expr::Nested(inner) => sub(inner)?,
        Expr::BinaryOp { left, op, right } => match bin_op(op) {
            Some(op) => bin(op, sub(left)?, sub(right)?),
            None => return Err(cx.unsupported(format!("the operator {op}"), e)),
        },
        Expr::UnaryOp { op: UnaryOperator::Not, expr } => CExpr::Not(Box::new(sub(expr)?)),
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => CExpr::Neg(Box::new(sub(expr)?)),
        Expr::UnaryOp { op: UnaryOperator::Plus, expr } => sub(expr)?,
        Expr::IsNull(inner) => CExpr::IsNull(Box::new(sub(inner)?), false),
        Expr::IsNotNull(inner) => CExpr::IsNull(Box::new(sub(inner)?), true),
        Expr::Like { negated, any: false, expr, pattern, escape_char: None } => {
            CExpr::Like(Box::new(sub(expr)?), Box::new(sub(pattern)?), *negated)
        }
        Expr::Between { expr, negated, low, high } => {
            let (x, lo, hi) = (sub(expr)?, sub(low)?, sub(high)?);
            let within = bin(BinOp::And, bin(BinOp::Ge, x.clone(), lo), bin(BinOp::Le, x, hi));
            if *negated {
                CExpr::Not(Box::new(within))
            } else {
                within
            }
        }
        Expr::In { expr, target: InTarget::List(list), negated, global: false } => {
            let x = sub(expr)?;
            let mut any = CExpr::Lit(Value::Bool(false));
            for item in list {
                any = bin(BinOp::Or, any, bin(BinOp::Eq, x.clone(), sub(item)?));
            }
            if *negated {
                CExpr::Not(Box::new(any))
            } else {
                any
            }
        }
        Expr::Case { operand, conditions, else_result, .. } => CExpr::Case {
            operand: operand.as_deref().map(&mut sub).transpose()?.map(Box::new),
            whens: conditions
                .iter()
                .map(|w| Ok((sub(&w.condition)?, sub(&w.result)?)))
                .collect::<Result<_, SqlError>>()?,
            otherwise: else_result.as_deref().map(&mut sub).transpose()?.map(Box::new),
        },
        Expr::Cast { expr, data_type, format: None, .. } => match Ty::of(data_type) {
            Some(ty) => CExpr::Cast(Box::new(sub(expr)?), ty),
            None => return Err(cx.unsupported(format!("the type {data_type}"), e)),
        },
        Expr::Function(f) => {
            let name = function_name(f);
            let Some(func) = scalar(&name) else {
                return Err(cx.unsupported(format!("the function {name}"), e));
            };
            let args = function_args(cx, f)?;
            let args = args
                .into_iter()
                .map(|a| match a {
                    Some(a) => sub(a),
                    None => Err(cx.unsupported(format!("{name}(*)"), e)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            CExpr::Func(func, args)
        }
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::In { .. } => return Err(cx.unsupported("a subquery", e)),
        other => return Err(cx.unsupported(format!("the expression `{other}`"), e)),
    })
}

/// Whether `name` is a group-window function (`TUMBLE`, `HOP_START`, ..).
pub(crate) fn window_function(name: &str) -> bool {
    let base = name.split('_').next().unwrap_or_default();
    matches!(base, "TUMBLE" | "HOP" | "SESSION")
}

/// A table's columns by position: the scope of a source row.
pub(crate) struct RowScope<'t> {
    pub(crate) table: &'t str,
    pub(crate) columns: Vec<String>,
}

impl Scope for RowScope<'_> {
    fn special(&mut self, cx: &Cx<'_>, e: &Expr) -> Result<Option<CExpr>, SqlError> {
        if let Expr::Function(f) = e {
            let name = function_name(f);
            if super::agg::AggFunc::of(&name).is_some() || window_function(&name) {
                return Err(cx.error(format!("{name} is not allowed here"), e));
            }
        }
        Ok(None)
    }

    fn column(&mut self, cx: &Cx<'_>, name: &str, e: &Expr) -> Result<CExpr, SqlError> {
        match self.columns.iter().position(|c| c == name) {
            Some(i) => Ok(CExpr::Slot(i)),
            None => Err(cx.error(
                format!("unknown column `{name}` of table {} (its columns: {})", self.table, self.columns.join(", ")),
                e,
            )),
        }
    }
}
