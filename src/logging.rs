//! Logging: `tracing` events to standard output, as text or JSON lines.
//!
//! rivulet logs through `tracing`; librdkafka's own log lines arrive
//! through the `log` crate and are forwarded (target `librdkafka`). Secrets
//! never reach a log line: the config is only ever printed through its
//! redacting `Display`, and librdkafka redacts sensitive properties itself.

use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};
use crate::error::{Error, Result};

/// Installs the process's log subscriber: `log.format` (`text` or `json`)
/// to standard output, keeping what `log.level` lets through; the
/// `RUST_LOG` environment variable, when set, takes precedence over
/// `log.level`. Call it once, first thing in `main`:
///
/// ```no_run
/// # fn main() -> rivulet::Result<()> {
/// let config = rivulet::Config::load()?;
/// rivulet::init_logging(&config)?;
/// # Ok(()) }
/// ```
///
/// Fails when `RUST_LOG` is not a valid filter, or when a subscriber is
/// already installed.
pub fn init_logging(config: &Config) -> Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives).map_err(|e| {
            Error::Logging(format!("RUST_LOG={directives:?} is not a log filter ({e}); unset it or fix it"))
        })?,
        // log.level was checked when the config was loaded.
        _ => EnvFilter::try_new(&config.log.level)
            .map_err(|e| Error::Logging(format!("log.level {:?} is not a log filter: {e}", config.log.level)))?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match config.log.format {
        LogFormat::Text => builder.finish().try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).finish().try_init(),
    };
    installed.map_err(|e| {
        Error::Logging(format!(
            "installing the log subscriber: {e}; call rivulet::init_logging once, instead of another subscriber"
        ))
    })
}
