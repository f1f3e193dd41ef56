//! An `INSERT INTO .. SELECT` checked against the declared tables and
//! turned into a [`Plan`]: the source, the filter, and either a
//! projection or a windowed aggregation.

use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Query, Select, SelectItem, SetExpr, Spanned, TableFactor, TableWithJoins,
};
use sqlparser::tokenizer::Span;

use super::avro;
use super::expr::Ty;
use super::parse::{object_name, InsertDef, TableDef};
use super::plan::{Format, Plan, Shape, Sink, Source};
use super::scope::{compile, interval_ms, Cx, RowScope};
use super::SqlError;

fn table<'t>(sql: &str, tables: &'t [TableDef], name: &str, at: Span, role: &str) -> Result<&'t TableDef, SqlError> {
    let known = tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
    tables.iter().rev().find(|t| t.name == name).ok_or_else(|| {
        SqlError::new(format!("{role} table {name} is not declared (CREATE TABLE ..; declared: {known})"), sql, at)
    })
}

/// The table's topic and format, after checking its options.
fn topic(sql: &str, t: &TableDef) -> Result<(String, Format), SqlError> {
    let err = |m: String| SqlError::new(format!("table {}: {m}", t.name), sql, Span::empty());
    let mut format = Format::Json;
    for (k, v) in &t.options {
        match (k.as_str(), v.as_str()) {
            ("connector", "kafka") | ("key.format", "json") => {}
            ("format" | "value.format", "json") => format = Format::Json,
            ("format" | "value.format", "avro-confluent") => format = Format::Avro,
            ("format" | "value.format" | "key.format", _) => {
                return Err(err(format!(
                    "'{k}' = '{v}' is not supported: the SQL front end reads and writes 'json' and \
                     'avro-confluent' values, and 'json' keys"
                )))
            }
            ("topic" | "key.fields" | "scan.startup.mode", _) => {}
            (k, _) if k.starts_with("properties.") || k.starts_with("avro-confluent.") => {}
            _ => {
                return Err(err(format!(
                    "option '{k}' = '{v}' is not supported (known: 'connector' = 'kafka', 'topic', 'format' = \
                     'json' or 'avro-confluent', 'key.format', 'key.fields', 'scan.startup.mode', 'properties.*', \
                     'avro-confluent.*')"
                )))
            }
        }
    }
    let topic =
        t.options.get("topic").cloned().ok_or_else(|| err("needs a 'topic' option (WITH ('topic' = '..'))".into()))?;
    Ok((topic, format))
}

/// The source of table `t`.
pub(crate) fn source(sql: &str, t: &TableDef) -> Result<Source, SqlError> {
    let names: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
    let clause = format!("CREATE TABLE {}", t.name);
    let cx = Cx { sql, clause: &clause };
    let mut scope = RowScope { table: &t.name, columns: names.clone() };
    let mut columns = Vec::new();
    for c in &t.columns {
        let ty = match &c.data_type {
            Some(dt) => Some(Ty::of(dt).ok_or_else(|| {
                SqlError::new(
                    format!("table {}: column {} has type {dt}, which is not supported", t.name, c.name),
                    sql,
                    Span::empty(),
                )
            })?),
            None => None,
        };
        let computed = c.computed.as_ref().map(|e| compile(&cx, e, &mut scope)).transpose()?;
        columns.push((c.name.clone(), ty, computed));
    }
    let time = match &t.watermark {
        None => None,
        Some((col, e)) => {
            let at = names.iter().position(|n| n == col);
            let delay = match e {
                Expr::Identifier(id) if id.value == *col => Some(0),
                Expr::BinaryOp { left, op: BinaryOperator::Minus, right } => match (left.as_ref(), right.as_ref()) {
                    (Expr::Identifier(id), Expr::Interval(iv)) if id.value == *col => interval_ms(iv),
                    _ => None,
                },
                _ => None,
            };
            match (at, delay) {
                (Some(at), Some(delay)) => Some((at, delay)),
                (None, _) => return Err(cx.error(format!("WATERMARK FOR {col}: no such column"), e)),
                (_, None) => {
                    return Err(
                        cx.unsupported(format!("this WATERMARK (write `{col} - INTERVAL 'n' SECOND` or `{col}`)"), e)
                    )
                }
            }
        }
    };
    if t.options.contains_key("key.fields") {
        let what = format!("table {}: reading columns from the record key ('key.fields' on a source)", t.name);
        return Err(SqlError::new(
            format!("{what} is not supported: the source reads its value only"),
            sql,
            Span::empty(),
        ));
    }
    let (topic, format) = topic(sql, t)?;
    let physical: Vec<Column> = columns.iter().filter(|c| c.2.is_none()).map(|c| (c.0.clone(), c.1)).collect();
    let avro_schema = match format {
        Format::Json => None,
        Format::Avro => Some(
            avro::schema(&physical).map_err(|e| SqlError::new(format!("table {}: {e}", t.name), sql, Span::empty()))?,
        ),
    };
    Ok(Source { name: t.name.clone(), topic, avro_schema, columns, time })
}

fn check_select(cx: &Cx<'_>, q: &Query) -> Result<(), SqlError> {
    if q.with.is_some() {
        return Err(cx.unsupported("WITH", q));
    }
    if q.order_by.is_some() {
        return Err(cx.unsupported("ORDER BY", q));
    }
    if q.limit_clause.is_some() || q.fetch.is_some() {
        return Err(cx.unsupported("LIMIT/FETCH", q));
    }
    Ok(())
}

fn from_table<'q>(sql: &str, s: &'q Select) -> Result<(&'q TableWithJoins, String), SqlError> {
    let cx = Cx { sql, clause: "FROM" };
    let [from] = s.from.as_slice() else {
        return Err(SqlError::new(
            "the query needs exactly one table in FROM (joins and lists are not supported)",
            sql,
            s.span(),
        ));
    };
    if let Some(join) = from.joins.first() {
        return Err(cx.unsupported("JOIN", join));
    }
    match &from.relation {
        TableFactor::Table { name, args: None, .. } => Ok((from, object_name(name))),
        TableFactor::Table { .. } | TableFactor::TableFunction { .. } | TableFactor::Function { .. } => Err(cx
            .unsupported(
                "a table function (window TVFs included; write GROUP BY TUMBLE(time_col, INTERVAL ..))",
                &from.relation,
            )),
        TableFactor::Derived { .. } => Err(cx.unsupported("a subquery", &from.relation)),
        other => Err(cx.unsupported(format!("`{other}`"), other)),
    }
}

/// Compiles one `INSERT INTO`.
pub(crate) fn plan(sql: &str, tables: &[TableDef], insert: &InsertDef) -> Result<(Source, Plan), SqlError> {
    let cx = Cx { sql, clause: "SELECT" };
    check_select(&cx, &insert.query)?;
    let select = match insert.query.body.as_ref() {
        SetExpr::Select(s) => s,
        other => return Err(Cx { sql, clause: "INSERT INTO" }.unsupported("a set operation or VALUES", other)),
    };
    if select.distinct.is_some() {
        return Err(cx.unsupported("DISTINCT", select.as_ref()));
    }
    if select.qualify.is_some() || !select.named_window.is_empty() || !select.sort_by.is_empty() {
        return Err(cx.unsupported("QUALIFY/WINDOW/SORT BY", select.as_ref()));
    }
    let (from, name) = from_table(sql, select)?;
    let t = table(sql, tables, &name, from.relation.span(), "source")?;
    let src = source(sql, t)?;
    let columns: Vec<String> = src.columns.iter().map(|c| c.0.clone()).collect();
    let mut rows = RowScope { table: &t.name, columns: columns.clone() };
    let filter = match &select.selection {
        Some(e) => Some(compile(&Cx { sql, clause: "WHERE" }, e, &mut rows)?),
        None => None,
    };
    let mut items = Vec::new();
    for (i, item) in select.projection.iter().enumerate() {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let name = match e {
                    Expr::Identifier(id) => id.value.clone(),
                    Expr::CompoundIdentifier(parts) => parts.last().map_or(format!("EXPR${i}"), |p| p.value.clone()),
                    _ => format!("EXPR${i}"),
                };
                items.push((e.clone(), name));
            }
            SelectItem::ExprWithAlias { expr, alias } => items.push((expr.clone(), alias.value.clone())),
            SelectItem::Wildcard(_) if matches!(select.group_by, GroupByExpr::Expressions(ref g, _) if g.is_empty()) => {
                // Every column, computed ones included (as Flink's `*`).
                for c in &columns {
                    items.push((Expr::Identifier(c.as_str().into()), c.clone()));
                }
            }
            other => return Err(cx.unsupported(format!("`{other}`"), other)),
        }
    }
    let group = match &select.group_by {
        GroupByExpr::Expressions(exprs, mods) if mods.is_empty() => exprs.clone(),
        other => return Err(Cx { sql, clause: "GROUP BY" }.unsupported(format!("`{other}`"), select.as_ref())),
    };
    let sink_table = table(sql, tables, &insert.sink, Span::empty(), "sink")?;
    let sink = sink(sql, sink_table, insert, &items)?;
    let shape = if group.is_empty() {
        if select.having.is_some() {
            return Err(Cx { sql, clause: "HAVING" }.unsupported("HAVING without GROUP BY", select.as_ref()));
        }
        let outputs =
            items.iter().map(|(e, _)| compile(&cx, e, &mut rows)).collect::<Result<Vec<_>, _>>().map_err(|e| {
                if items.iter().any(|(e, _)| contains_aggregate(e)) {
                    SqlError::new(
                        "an aggregate without GROUP BY a TUMBLE/HOP/SESSION window is not supported: it produces \
                     updates, which need an upsert sink",
                        sql,
                        select.span(),
                    )
                } else {
                    e
                }
            })?;
        Shape::Project(outputs)
    } else {
        super::window::shape(sql, &src, &columns, &group, &items, select.having.as_ref())?
    };
    Ok((src, Plan { filter, shape, sink }))
}

fn contains_aggregate(e: &Expr) -> bool {
    let text = e.to_string().to_uppercase();
    ["COUNT(", "SUM(", "MIN(", "MAX(", "AVG("].iter().any(|f| text.contains(f))
}

/// A sink column: its name and declared type.
type Column = (String, Option<Ty>);

fn sink(sql: &str, t: &TableDef, insert: &InsertDef, items: &[(Expr, String)]) -> Result<Sink, SqlError> {
    let (topic, format) = topic(sql, t)?;
    let declared: Vec<Column> = t
        .columns
        .iter()
        .filter(|c| c.computed.is_none())
        .map(|c| (c.name.clone(), c.data_type.as_ref().and_then(Ty::of)))
        .collect();
    let count_error = |query: usize, sink: &[String]| {
        let what = format!("INSERT INTO {}: the query has {query} columns, the sink {}", t.name, sink.len());
        SqlError::new(format!("{what} ({})", sink.join(", ")), sql, insert.query.span())
    };
    let (columns, from): (Vec<Column>, Vec<Option<usize>>) = if declared.is_empty() {
        // No declared columns: the query's names (a column list renames).
        let names: Vec<String> = if insert.columns.is_empty() {
            items.iter().map(|(_, name)| name.clone()).collect()
        } else {
            insert.columns.clone()
        };
        if names.len() != items.len() {
            return Err(count_error(items.len(), &names));
        }
        (names.into_iter().map(|n| (n, None)).collect(), (0..items.len()).map(Some).collect())
    } else if insert.columns.is_empty() {
        if declared.len() != items.len() {
            return Err(count_error(items.len(), &declared.iter().map(|c| c.0.clone()).collect::<Vec<_>>()));
        }
        (declared, (0..items.len()).map(Some).collect())
    } else {
        // INSERT INTO sink (b, a): those columns from the query, by
        // position; the sink's other columns are null (Flink's).
        if insert.columns.len() != items.len() {
            return Err(count_error(items.len(), &insert.columns));
        }
        if let Some(unknown) = insert.columns.iter().find(|c| !declared.iter().any(|d| d.0 == **c)) {
            let msg = format!("INSERT INTO {}: the sink has no column {unknown}", t.name);
            return Err(SqlError::new(msg, sql, insert.query.span()));
        }
        let from = declared.iter().map(|(name, _)| insert.columns.iter().position(|c| c == name)).collect();
        (declared, from)
    };
    let mut key = Vec::new();
    let fields: Vec<&str> =
        t.options.get("key.fields").map(|f| f.split(';').map(str::trim).collect()).unwrap_or_default();
    for field in fields {
        match columns.iter().position(|c| c.0 == field) {
            Some(i) => key.push(i),
            None => {
                return Err(SqlError::new(
                    format!("table {}: 'key.fields' names {field}, not a column", t.name),
                    sql,
                    Span::empty(),
                ))
            }
        }
    }
    let avro_schema = match format {
        Format::Json => None,
        Format::Avro => Some(avro::schema(&columns).map_err(|e| {
            SqlError::new(format!("sink table {}: {e} (declare the sink's columns)", t.name), sql, Span::empty())
        })?),
    };
    Ok(Sink { topic, avro_schema, columns, from, key })
}
