//! What a `KeySpec` (keys.rs) states about a key, as data rather than
//! prose: its default and what it accepts. The reference table in
//! `docs/configuration.md`, error messages, validation and its bounds, the
//! value taken when no layer holds the key, and the check of
//! `config/default.toml` are all read from it.

use std::fmt;

use config::{Map, Value, ValueKind};

use super::ProcessingGuarantee;

/// What a key accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepts {
    /// A name usable in topic names, group ids and file names: 1 to
    /// `max_chars` characters from [A-Za-z0-9._-].
    Name { max_chars: usize },
    /// An integer from `min` to `max`, both included.
    Integer { min: u64, max: u64, unit: Unit },
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A path that is not empty.
    Path,
    /// An IP address and port.
    SocketAddr,
    /// A `tracing` filter.
    LogFilter,
    /// Kafka brokers, as librdkafka's `bootstrap.servers` takes them.
    Servers,
    /// A table of librdkafka properties.
    KafkaProperties,
    /// Any table.
    AnyTable,
    /// `true` or `false`.
    Bool,
    /// Empty, or an `http://` or `https://` URL.
    Url,
    /// Empty, or `user:password`.
    UserInfo,
    /// Empty, or a path.
    OptionalPath,
    /// `host:port` (empty when the default is derived).
    HostPort,
}

/// What an integer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Things, such as threads.
    Count,
    Milliseconds,
    Bytes,
}

/// Whether `c` may stand in an [`Accepts::Name`].
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The names of a table of choices, for [`Accepts::OneOf`]: the table the
/// loader maps names to values with is the one the reference lists.
pub(crate) const fn names<T, const N: usize>(choices: &[(&'static str, T); N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = choices[i].0;
        i += 1;
    }
    out
}

/// What a key accepts as the reference table and error messages say it.
impl fmt::Display for Accepts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name { max_chars } => write!(f, "1 to {max_chars} characters from [A-Za-z0-9._-]"),
            Self::Integer { min, max, unit } => {
                write!(f, "an integer from {min} to {max}")?;
                match unit {
                    Unit::Count => Ok(()),
                    Unit::Milliseconds => f.write_str(" (milliseconds)"),
                    Unit::Bytes => f.write_str(" (bytes)"),
                }
            }
            Self::OneOf(choices) => {
                let quoted: Vec<String> = choices.iter().map(|c| format!("{c:?}")).collect();
                match quoted.split_last() {
                    Some((last, [])) => f.write_str(last),
                    Some((last, rest)) => write!(f, "{} or {last}", rest.join(", ")),
                    None => f.write_str("nothing"),
                }
            }
            Self::Path => f.write_str("a non-empty path"),
            Self::SocketAddr => f.write_str("an IP address and port (port 0: any free port)"),
            Self::LogFilter => f.write_str(
                "a tracing filter: a level (error, warn, info, debug, trace) or directives such as \
                 \"warn,rivulet=debug\"",
            ),
            Self::Servers => f.write_str("a comma-separated list of host:port"),
            Self::KafkaProperties => {
                f.write_str("a table of librdkafka properties (string, integer or boolean values)")
            }
            Self::AnyTable => f.write_str("any table"),
            Self::Bool => f.write_str("true or false"),
            Self::Url => f.write_str("empty, or an http:// or https:// URL"),
            Self::UserInfo => f.write_str("empty, or user:password"),
            Self::OptionalPath => f.write_str("empty, or a path"),
            Self::HostPort => f.write_str("host:port"),
        }
    }
}

/// A key's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefaultValue {
    /// None: the key must be set. `config/default.toml` lists it empty.
    Required,
    /// This integer.
    Integer(u64),
    /// This text.
    Text(&'static str),
    /// This boolean.
    Bool(bool),
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
            Self::Bool(b) => ValueKind::Boolean(b),
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
            Self::Bool(b) => write!(f, "{b}"),
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
