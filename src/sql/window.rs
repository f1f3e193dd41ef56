//! `GROUP BY TUMBLE/HOP/SESSION(time, ..), keys`: Flink SQL's group
//! windows, with `TUMBLE_START/_END/_ROWTIME` (and the `HOP_`, `SESSION_`
//! forms) naming the window's bounds in `SELECT` and `HAVING`.

use serde_json::Value;
use sqlparser::ast::{Expr, Function};

use super::agg::AggFunc;
use super::expr::{BinOp, CExpr};
use super::plan::{Shape, Source, WindowSpec};
use super::scope::{compile, function_args, function_name, interval_ms, window_function, Cx, RowScope, Scope};
use super::SqlError;

/// Slot 0 is the window start, 1 its end, then the keys, then the
/// aggregates (`build` lays them out so).
const START: usize = 0;
const END: usize = 1;
const KEYS: usize = 2;

/// The window of `GROUP BY`: its kind's name and arguments as written.
struct GroupWindow {
    kind: String,
    args: Vec<String>,
}

/// A group's scope: keys, aggregates (collected as they are met) and the
/// window's bounds.
struct GroupScope<'a> {
    keys: Vec<Expr>,
    window: GroupWindow,
    aggs: Vec<(AggFunc, CExpr)>,
    rows: RowScope<'a>,
}

fn args_text(cx: &Cx<'_>, f: &Function) -> Result<Vec<String>, SqlError> {
    Ok(function_args(cx, f)?.into_iter().map(|a| a.map_or("*".to_string(), ToString::to_string)).collect())
}

impl Scope for GroupScope<'_> {
    fn special(&mut self, cx: &Cx<'_>, e: &Expr) -> Result<Option<CExpr>, SqlError> {
        if let Some(i) = self.keys.iter().position(|k| k == e) {
            return Ok(Some(CExpr::Slot(KEYS + i)));
        }
        let Expr::Function(f) = e else {
            return Ok(None);
        };
        let name = function_name(f);
        if let Some(func) = AggFunc::of(&name) {
            let args = function_args(cx, f)?;
            let arg_cx = Cx { sql: cx.sql, clause: &format!("the argument of {name}") };
            let (func, arg) = match (func, args.as_slice()) {
                (AggFunc::Count, [None]) => (AggFunc::CountAll, CExpr::Lit(Value::Null)),
                (func, [Some(arg)]) => (func, compile(&arg_cx, arg, &mut self.rows)?),
                _ => return Err(cx.error(format!("{name} takes one argument"), e)),
            };
            self.aggs.push((func, arg));
            return Ok(Some(CExpr::Slot(KEYS + self.keys.len() + self.aggs.len() - 1)));
        }
        if !window_function(&name) {
            return Ok(None);
        }
        let (kind, bound) = name.split_once('_').unwrap_or((&name, ""));
        if bound.is_empty() {
            return Err(
                cx.error(format!("{name}(..) belongs in GROUP BY; select {name}_START(..) or {name}_END(..)"), e)
            );
        }
        if kind != self.window.kind || args_text(cx, f)? != self.window.args {
            return Err(cx.error(
                format!(
                    "{name} must name the window of GROUP BY: {}_{bound}({})",
                    self.window.kind,
                    self.window.args.join(", ")
                ),
                e,
            ));
        }
        Ok(Some(match bound {
            "START" => CExpr::Slot(START),
            "END" => CExpr::Slot(END),
            "ROWTIME" => minus_one(CExpr::Slot(END)),
            _ => return Err(cx.unsupported(name, e)),
        }))
    }

    fn column(&mut self, cx: &Cx<'_>, name: &str, e: &Expr) -> Result<CExpr, SqlError> {
        let by_name = |k: &Expr| match k {
            Expr::Identifier(id) => id.value == name,
            Expr::CompoundIdentifier(parts) => parts.last().is_some_and(|p| p.value == name),
            _ => false,
        };
        match self.keys.iter().position(by_name) {
            Some(i) => Ok(CExpr::Slot(KEYS + i)),
            None => Err(cx.error(format!("column `{name}` is neither in GROUP BY nor in an aggregate"), e)),
        }
    }
}

/// The window of `GROUP BY TUMBLE/HOP/SESSION(..)`.
fn window_spec(
    cx: &Cx<'_>,
    src: &Source,
    columns: &[String],
    f: &Function,
) -> Result<(WindowSpec, GroupWindow), SqlError> {
    let name = function_name(f);
    let Some((time, _)) = src.time else {
        return Err(cx.error(
            format!(
                "{name} needs an event-time column: declare WATERMARK FOR <column> AS .. in CREATE TABLE {}",
                src.name
            ),
            f,
        ));
    };
    let args = function_args(cx, f)?;
    let time_name = &columns[time];
    match args.first() {
        Some(Some(Expr::Identifier(id))) if id.value == *time_name => {}
        _ => {
            return Err(cx.error(
                format!("{name}'s first argument must be the time attribute `{time_name}` (the WATERMARK column)"),
                f,
            ))
        }
    }
    let mut intervals = Vec::new();
    for a in &args[1..] {
        match a {
            Some(Expr::Interval(iv)) => match interval_ms(iv) {
                Some(ms) if ms > 0 => intervals.push(ms),
                _ => {
                    return Err(
                        cx.error("a window's interval must be positive, as INTERVAL 'n' SECOND/MINUTE/HOUR/DAY", f)
                    )
                }
            },
            _ => return Err(cx.error(format!("{name}'s arguments after the time column are INTERVAL literals"), f)),
        }
    }
    let spec = match (name.as_str(), intervals.as_slice()) {
        ("TUMBLE", [size]) => WindowSpec::Tumble { size: *size },
        // Flink: HOP(time, slide, size).
        ("HOP", [slide, size]) if slide > size => {
            return Err(cx.unsupported("a HOP window whose slide is longer than its size", f))
        }
        ("HOP", [slide, size]) => WindowSpec::Hop { slide: *slide, size: *size },
        ("SESSION", [gap]) => WindowSpec::Session { gap: *gap },
        _ => {
            return Err(cx.error(
                format!(
                    "{name} takes (time, INTERVAL ..) (TUMBLE(time, size), HOP(time, slide, size), SESSION(time, gap))"
                ),
                f,
            ))
        }
    };
    Ok((spec, GroupWindow { kind: name, args: args_text(cx, f)? }))
}

/// The windowed aggregation of `GROUP BY group` selecting `items`.
pub(crate) fn shape(
    sql: &str,
    src: &Source,
    columns: &[String],
    group: &[Expr],
    items: &[(Expr, String)],
    having: Option<&Expr>,
) -> Result<Shape, SqlError> {
    let gcx = Cx { sql, clause: "GROUP BY" };
    let mut rows = RowScope { table: &src.name, columns: columns.to_vec() };
    let mut window = None;
    let mut keys = Vec::new();
    let mut key_exprs = Vec::new();
    for g in group {
        if let Expr::Function(f) = g {
            if matches!(function_name(f).as_str(), "TUMBLE" | "HOP" | "SESSION") {
                if window.is_some() {
                    return Err(gcx.unsupported("more than one window", g));
                }
                window = Some(window_spec(&gcx, src, columns, f)?);
                continue;
            }
        }
        keys.push(compile(&gcx, g, &mut rows)?);
        key_exprs.push(g.clone());
    }
    let Some((spec, window)) = window else {
        return Err(gcx.error(
            "GROUP BY without a TUMBLE/HOP/SESSION window is not supported: it produces updates, which need an upsert sink",
            &group[0],
        ));
    };
    let mut scope = GroupScope { keys: key_exprs, window, aggs: Vec::new(), rows };
    let scx = Cx { sql, clause: "SELECT" };
    let outputs = items.iter().map(|(e, _)| compile(&scx, e, &mut scope)).collect::<Result<Vec<_>, _>>()?;
    let having = having.map(|h| compile(&Cx { sql, clause: "HAVING" }, h, &mut scope)).transpose()?;
    Ok(Shape::Window { keys, aggs: scope.aggs, window: spec, having, outputs })
}

/// `e - 1`: a window's rowtime from its end.
pub(crate) fn minus_one(e: CExpr) -> CExpr {
    CExpr::Bin(BinOp::Sub, Box::new(e), Box::new(CExpr::Lit(Value::from(1))))
}
