//! A script's statements: `CREATE TABLE` (parsed here, on sqlparser's
//! tokens, for Flink's `WATERMARK FOR` and computed columns, which
//! sqlparser's dialects do not know) and `INSERT INTO .. SELECT` (parsed by
//! sqlparser).

use std::collections::BTreeMap;

use sqlparser::ast::{DataType, Expr, Ident, ObjectName, Query, Spanned, Statement, TableObject};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Span, Token, TokenWithSpan, Tokenizer};

use super::SqlError;

/// A declared column: a physical one read from the JSON value, or a
/// computed one (`name AS expr`, Flink's computed column).
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) data_type: Option<DataType>,
    pub(crate) computed: Option<Expr>,
}

/// `CREATE TABLE name (columns, WATERMARK FOR col AS expr) WITH (options)`.
#[derive(Debug, Clone)]
pub(crate) struct TableDef {
    pub(crate) name: String,
    pub(crate) columns: Vec<Column>,
    /// The event-time column and the watermark expression.
    pub(crate) watermark: Option<(String, Expr)>,
    pub(crate) options: BTreeMap<String, String>,
}

/// `INSERT INTO sink [(columns)] SELECT ..`.
#[derive(Debug, Clone)]
pub(crate) struct InsertDef {
    pub(crate) sink: String,
    pub(crate) columns: Vec<String>,
    pub(crate) query: Box<Query>,
}

/// A parsed script.
#[derive(Debug, Default)]
pub(crate) struct Script {
    pub(crate) tables: Vec<TableDef>,
    pub(crate) inserts: Vec<InsertDef>,
}

fn parser_error(sql: &str, e: ParserError) -> SqlError {
    SqlError::new(format!("syntax error: {e}"), sql, Span::empty())
}

/// Parses `sql`, statements separated by `;`.
pub(crate) fn parse(sql: &str) -> Result<Script, SqlError> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::new(format!("syntax error: {e}"), sql, Span::empty()))?;
    let mut p = Parser::new(&dialect).with_tokens_with_locations(without_local_time_zone(tokens));
    let mut script = Script::default();
    loop {
        while p.consume_token(&Token::SemiColon) {}
        if p.peek_token().token == Token::EOF {
            break;
        }
        let start = p.peek_token().span;
        if p.parse_keyword(Keyword::CREATE) {
            let _ = p.parse_keyword(Keyword::TEMPORARY);
            if !p.parse_keyword(Keyword::TABLE) {
                return Err(SqlError::new("only CREATE TABLE is supported among CREATE statements", sql, start));
            }
            script.tables.push(create_table(&mut p).map_err(|e| parser_error(sql, e))?);
            continue;
        }
        let statement = p.parse_statement().map_err(|e| parser_error(sql, e))?;
        match statement {
            Statement::Insert(insert) => {
                let TableObject::TableName(name) = &insert.table else {
                    return Err(SqlError::new("INSERT INTO needs a table name", sql, insert.table.span()));
                };
                let Some(query) = insert.source.clone() else {
                    return Err(SqlError::new("only INSERT INTO .. SELECT is supported", sql, insert.span()));
                };
                if insert.overwrite || insert.partitioned.is_some() || insert.on.is_some() {
                    return Err(SqlError::new("INSERT OVERWRITE/PARTITION/ON is not supported", sql, insert.span()));
                }
                let columns = insert.columns.iter().map(object_name).collect();
                script.inserts.push(InsertDef { sink: object_name(name), columns, query });
            }
            other => {
                let kind = other.to_string().split_whitespace().next().unwrap_or_default().to_uppercase();
                return Err(SqlError::new(
                    format!("{kind} statements are not supported (only CREATE TABLE and INSERT INTO .. SELECT)"),
                    sql,
                    other.span(),
                ));
            }
        }
    }
    Ok(script)
}

/// The tokens without Flink's `WITH LOCAL TIME ZONE` (of
/// `TIMESTAMP(3) WITH LOCAL TIME ZONE`, which sqlparser does not know):
/// rivulet's timestamps are instants either way (epoch milliseconds).
fn without_local_time_zone(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let words = ["WITH", "LOCAL", "TIME", "ZONE"];
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let mut j = i;
        let mut matched = 0;
        while j < tokens.len() && matched < words.len() {
            match &tokens[j].token {
                Token::Whitespace(_) => {}
                t if is_word(t, words[matched]) => matched += 1,
                _ => break,
            }
            j += 1;
        }
        if matched == words.len() {
            i = j;
        } else {
            out.push(tokens[i].clone());
            i += 1;
        }
    }
    out
}

/// A possibly qualified name as written, without quotes.
pub(crate) fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| part.as_ident().map(|i| i.value.clone()).unwrap_or_else(|| part.to_string()))
        .collect::<Vec<_>>()
        .join(".")
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.value.eq_ignore_ascii_case(word) && w.quote_style.is_none())
}

/// The rest of `CREATE TABLE`, after `TABLE`.
fn create_table(p: &mut Parser<'_>) -> Result<TableDef, ParserError> {
    let _ = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = object_name(&p.parse_object_name(false)?);
    let mut columns = Vec::new();
    let mut watermark = None;
    if p.consume_token(&Token::LParen) && !p.consume_token(&Token::RParen) {
        loop {
            if is_word(&p.peek_token().token, "WATERMARK") {
                p.next_token();
                p.expect_keyword(Keyword::FOR)?;
                let column = p.parse_identifier()?.value;
                p.expect_keyword(Keyword::AS)?;
                watermark = Some((column, p.parse_expr()?));
            } else if p.peek_keyword(Keyword::PRIMARY) || p.peek_keyword(Keyword::CONSTRAINT) {
                return p
                    .expected("a column or WATERMARK (PRIMARY KEY and constraints are not supported)", p.peek_token());
            } else {
                columns.push(column(p)?);
            }
            if p.consume_token(&Token::Comma) {
                continue;
            }
            p.expect_token(&Token::RParen)?;
            break;
        }
    }
    let mut options = BTreeMap::new();
    if p.parse_keyword(Keyword::WITH) {
        p.expect_token(&Token::LParen)?;
        loop {
            let key = p.parse_literal_string()?;
            p.expect_token(&Token::Eq)?;
            let value = p.parse_literal_string()?;
            options.insert(key, value);
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen)?;
    }
    Ok(TableDef { name, columns, watermark, options })
}

fn column(p: &mut Parser<'_>) -> Result<Column, ParserError> {
    let name: Ident = p.parse_identifier()?;
    if p.parse_keyword(Keyword::AS) {
        let computed = p.parse_expr()?;
        return Ok(Column { name: name.value, data_type: None, computed: Some(computed) });
    }
    let data_type = p.parse_data_type()?;
    if !p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
        let _ = p.parse_keyword(Keyword::NULL);
    }
    if is_word(&p.peek_token().token, "METADATA") || p.peek_keyword(Keyword::PRIMARY) {
        return p.expected("`,` or `)` (METADATA and PRIMARY KEY columns are not supported)", p.peek_token());
    }
    Ok(Column { name: name.value, data_type: Some(data_type), computed: None })
}
