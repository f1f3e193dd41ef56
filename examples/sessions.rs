//! `sessions`: per-user sessions with a 30-minute inactivity gap.
//!
//! Input values are JSON events `{"user":..,"ts":<epoch ms>}` (other fields
//! are ignored; the key is not used); event time is `ts`. A user's events
//! with at most `gap_ms` between neighbours form one session, and an event
//! that falls between two sessions merges them. When the watermark passes a
//! session's last event plus the gap plus the grace period, the session is
//! closed and emitted once to `output_topic`: key the user, value
//! `{"user":..,"start":<first ts>,"end":<last ts>,"events":<count>}`.
//!
//! # Running it
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 RIVULET__STATE_DIR=/tmp/rivulet \
//!     cargo run --example sessions
//! ```
//!
//! # Settings
//!
//! ```toml
//! application_id = "sessions"
//!
//! [app]
//! input_topic = "user-events"      # RIVULET__APP__INPUT_TOPIC
//! output_topic = "user-sessions"   # RIVULET__APP__OUTPUT_TOPIC
//! gap_ms = 1800000                 # 30 minutes
//! out_of_orderness_ms = 5000
//! grace_ms = 0
//! ```

use std::process::ExitCode;
use std::time::Duration;

use rivulet::prelude::*;
use rivulet::topology::{Timestamps, Windows};
use serde::{Deserialize, Serialize};

/// One user event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Event {
    pub(crate) user: String,
    pub(crate) ts: i64,
}

/// A closed session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) events: i64,
}

/// The example's `[app]` settings.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Settings {
    pub(crate) input_topic: String,
    pub(crate) output_topic: String,
    pub(crate) gap_ms: u64,
    pub(crate) out_of_orderness_ms: u64,
    pub(crate) grace_ms: u64,
}

pub(crate) fn topology(s: &Settings) -> Result<Topology> {
    let mut b = Topology::builder();
    let time =
        Timestamps::from_value(|e: &Event| Some(e.ts)).out_of_orderness(Duration::from_millis(s.out_of_orderness_ms));
    b.stream_with_time(&s.input_topic, Serdes::unit(), Serdes::json::<Event>(), time)
        .group_by(|_, e: &Event| e.user.clone(), Serdes::string())
        .windowed_by(Windows::session(Duration::from_millis(s.gap_ms)).grace(Duration::from_millis(s.grace_ms)))
        .emit_final()
        .count("sessions")
        .map(|w, events| {
            let session = Session { user: w.key.clone(), start: w.start, end: w.end, events };
            (w.key, session)
        })
        .to(&s.output_topic, Serdes::string(), Serdes::json::<Session>());
    Ok(b.build()?)
}

fn main() -> ExitCode {
    let defaults = Config::loader()
        .default_value("application_id", "sessions")
        .default_value("app.input_topic", "user-events")
        .default_value("app.output_topic", "user-sessions")
        .default_value("app.gap_ms", "1800000")
        .default_value("app.out_of_orderness_ms", "5000")
        .default_value("app.grace_ms", "0");
    // `run` (the default), `describe` or `reset`; see `--help`.
    rivulet::Main::new(defaults).main(|config| {
        let settings: Settings = config.app()?;
        topology(&settings)
    })
}
