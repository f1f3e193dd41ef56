//! What a `KeySpec` (keys.rs) states about a key, as data rather than
//! prose: its default. The reference table in `docs/configuration.md`, the
//! value taken when no layer holds the key, and the check of
//! `config/default.toml` are all read from it.

use std::fmt;

use config::{Map, Value, ValueKind};

use super::ProcessingGuarantee;

/// A key's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefaultValue {
    /// None: the key must be set. `config/default.toml` lists it empty.
    Required,
    /// This integer.
    Integer(u64),
    /// This text.
    Text(&'static str),
    /// Empty text, which stands for a value found at load, as this says.
    Derived(&'static str),
    /// Empty text, which stands for a value that depends on
    /// `processing_guarantee`.
    PerGuarantee(PerGuarantee),
    /// An empty table.
    EmptyTable,
}

/// A value for each processing guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PerGuarantee {
    pub(crate) at_least_once: u64,
    pub(crate) exactly_once: u64,
}

impl PerGuarantee {
    /// The value under `guarantee`.
    pub(crate) fn under(self, guarantee: ProcessingGuarantee) -> u64 {
        match guarantee {
            ProcessingGuarantee::AtLeastOnce => self.at_least_once,
            ProcessingGuarantee::ExactlyOnce => self.exactly_once,
        }
    }
}

impl DefaultValue {
    /// Whether empty text means the key is not set: its default is
    /// required, or found at load.
    pub(crate) fn is_empty_text(self) -> bool {
        matches!(self, Self::Required | Self::Derived(_) | Self::PerGuarantee(_))
    }

    /// The default as `config/default.toml` states it; also what is taken
    /// when no layer holds the key.
    pub(crate) fn value(self) -> Value {
        let kind = match self {
            Self::Integer(n) => i64::try_from(n).map_or(ValueKind::U64(n), ValueKind::I64),
            Self::Text(s) => ValueKind::String(s.to_string()),
            Self::Required | Self::Derived(_) | Self::PerGuarantee(_) => ValueKind::String(String::new()),
            Self::EmptyTable => ValueKind::Table(Map::new()),
        };
        Value::new(None, kind)
    }
}

/// The default as the reference table shows it.
impl fmt::Display for DefaultValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Required => f.write_str("(none: required)"),
            Self::Integer(n) => write!(f, "{n}"),
            Self::Text(s) => write!(f, "{s:?}"),
            Self::Derived(how) => write!(f, "\"\" ({how})"),
            Self::PerGuarantee(p) => write!(
                f,
                "{} under {}, {} under {}",
                p.at_least_once,
                ProcessingGuarantee::AtLeastOnce,
                p.exactly_once,
                ProcessingGuarantee::ExactlyOnce
            ),
            Self::EmptyTable => f.write_str("{}"),
        }
    }
}
