//! Reading a config value of each kind the key table accepts, with the
//! error that names the key, the value, where it was set and what it
//! accepts.

use std::net::SocketAddr;
use std::path::PathBuf;

use config::{Map, Value, ValueKind};

use super::{origin_of, KeySpec};
use crate::config::spec::{is_name_char, Accepts};
use crate::config::ConfigError;

fn invalid(spec: &KeySpec, value: &Value, shown: String) -> ConfigError {
    ConfigError::InvalidValue {
        key: spec.name.to_string(),
        value: shown,
        origin: origin_of(spec.name, value),
        accepted: spec.accepted(),
    }
}

/// A scalar as text. Environment values that look like numbers arrive
/// parsed, so numbers and booleans are accepted where text is expected.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match &value.kind {
        ValueKind::String(s) => Some(s.clone()),
        ValueKind::Boolean(b) => Some(b.to_string()),
        ValueKind::I64(i) => Some(i.to_string()),
        ValueKind::I128(i) => Some(i.to_string()),
        ValueKind::U64(i) => Some(i.to_string()),
        ValueKind::U128(i) => Some(i.to_string()),
        ValueKind::Float(f) => Some(f.to_string()),
        ValueKind::Nil | ValueKind::Table(_) | ValueKind::Array(_) => None,
    }
}

/// How a value is shown in an error: text as written, tables and arrays
/// by their kind.
pub(crate) fn shown(value: &Value) -> String {
    match &value.kind {
        ValueKind::String(s) => format!("{s:?}"),
        ValueKind::Table(_) => "a table".to_string(),
        ValueKind::Array(_) => "an array".to_string(),
        ValueKind::Nil => "nothing".to_string(),
        _ => scalar_text(value).unwrap_or_default(),
    }
}

pub(crate) fn text(spec: &KeySpec, value: &Value) -> Result<String, ConfigError> {
    scalar_text(value).ok_or_else(|| invalid(spec, value, shown(value)))
}

/// An integer within the bounds of an [`Accepts::Integer`] key.
pub(crate) fn integer(spec: &KeySpec, value: &Value) -> Result<u64, ConfigError> {
    let parsed = match &value.kind {
        ValueKind::I64(i) => u64::try_from(*i).ok(),
        ValueKind::U64(i) => Some(*i),
        ValueKind::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match (parsed, spec.accepts) {
        (Some(n), Accepts::Integer { min, max, .. }) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(spec, value, shown(value))),
    }
}

/// An [`Accepts::Name`]: usable in topic names, group ids and file names.
pub(crate) fn name(spec: &KeySpec, value: &Value) -> Result<String, ConfigError> {
    let s = text(spec, value)?;
    match spec.accepts {
        Accepts::Name { max_chars } if !s.is_empty() && s.len() <= max_chars && s.chars().all(is_name_char) => Ok(s),
        _ => Err(invalid(spec, value, shown(value))),
    }
}

/// One of `choices`, the table whose names the key's [`Accepts::OneOf`]
/// lists.
pub(crate) fn one_of<T: Copy>(spec: &KeySpec, value: &Value, choices: &[(&str, T)]) -> Result<T, ConfigError> {
    let s = text(spec, value)?;
    choices.iter().find(|(name, _)| *name == s).map(|(_, v)| *v).ok_or_else(|| invalid(spec, value, shown(value)))
}

/// An [`Accepts::Path`].
pub(crate) fn path(spec: &KeySpec, value: &Value) -> Result<PathBuf, ConfigError> {
    let s = text(spec, value)?;
    if s.trim().is_empty() {
        return Err(invalid(spec, value, format!("{s:?}")));
    }
    Ok(PathBuf::from(s))
}

/// An [`Accepts::SocketAddr`].
pub(crate) fn socket_addr(spec: &KeySpec, value: &Value) -> Result<SocketAddr, ConfigError> {
    let s = text(spec, value)?;
    s.parse().map_err(|_| invalid(spec, value, format!("{s:?}")))
}

/// An [`Accepts::LogFilter`], trimmed.
pub(crate) fn log_filter(spec: &KeySpec, value: &Value) -> Result<String, ConfigError> {
    let s = text(spec, value)?.trim().to_string();
    if s.is_empty() || tracing_subscriber::EnvFilter::try_new(&s).is_err() {
        return Err(invalid(spec, value, format!("{s:?}")));
    }
    Ok(s)
}

/// An [`Accepts::Bool`]: a boolean, or its text (environment values).
pub(crate) fn boolean(spec: &KeySpec, value: &Value) -> Result<bool, ConfigError> {
    match &value.kind {
        ValueKind::Boolean(b) => Ok(*b),
        ValueKind::String(s) if s.trim() == "true" => Ok(true),
        ValueKind::String(s) if s.trim() == "false" => Ok(false),
        _ => Err(invalid(spec, value, shown(value))),
    }
}

/// An [`Accepts::Url`]: empty, or `http://` / `https://` and a host; a
/// trailing `/` is dropped.
pub(crate) fn url(spec: &KeySpec, value: &Value) -> Result<String, ConfigError> {
    let s = text(spec, value)?.trim().trim_end_matches('/').to_string();
    let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://"));
    // User info in the URL would be a secret in a key that is not one.
    let host_ok = rest.is_some_and(|r| !r.is_empty() && !r.split('/').next().unwrap_or_default().contains('@'));
    if s.is_empty() || host_ok {
        Ok(s)
    } else {
        Err(invalid(spec, value, "a URL that is not http(s)://host... or holds user info".to_string()))
    }
}

/// An [`Accepts::UserInfo`]: empty, or `user:password`. The value is never
/// shown in the error.
pub(crate) fn user_info(spec: &KeySpec, value: &Value) -> Result<String, ConfigError> {
    let s = text(spec, value)?;
    if s.is_empty() || s.split_once(':').is_some_and(|(user, _)| !user.is_empty()) {
        Ok(s)
    } else {
        Err(invalid(spec, value, "[redacted] (no `:` after a user name)".to_string()))
    }
}

/// An [`Accepts::HostPort`]: empty, or `host:port` with a port number.
pub(crate) fn host_port(spec: &KeySpec, value: &Value) -> Result<String, ConfigError> {
    let s = text(spec, value)?.trim().to_string();
    let ok = s.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if s.is_empty() || ok {
        Ok(s)
    } else {
        Err(invalid(spec, value, shown(value)))
    }
}

/// A table ([`Accepts::KafkaProperties`], [`Accepts::AnyTable`]).
pub(crate) fn table(spec: &KeySpec, value: Value) -> Result<Map<String, Value>, ConfigError> {
    match value.kind {
        ValueKind::Table(t) => Ok(t),
        _ => Err(invalid(spec, &value, shown(&value))),
    }
}
