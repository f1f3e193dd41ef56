//! `page_views_per_minute`: the classic tumbling-window count,
//!
//! ```sql
//! SELECT TUMBLE_START(event_time, INTERVAL '1' MINUTE), COUNT(*)
//! FROM events GROUP BY TUMBLE(event_time, INTERVAL '1' MINUTE)
//! ```
//!
//! written with the DSL, plus the same count per page.
//!
//! Input values are JSON page views `{"user":..,"page":..,"ts":<epoch ms>}`
//! (the key is not used); event time is `ts`. Each one-minute window is
//! emitted once, when the watermark passes its end plus the grace period:
//!
//! - to `output_topic`: key `"all"`, value
//!   `{"window_start":..,"window_end":..,"count":..}`;
//! - to `per_page_topic`: key the page, value
//!   `{"key":<page>,"window_start":..,"window_end":..,"value":<count>}`.
//!
//! Records may arrive up to `out_of_orderness_ms` out of order (the
//! watermark trails the largest `ts` by that much) and a window takes
//! records until `grace_ms` after its end; a view later than that is
//! counted as late (`rivulet_late_records_total`) and written unchanged to
//! `late_topic`. Both counts regroup the views by a new key, so they go
//! through repartition topics; the shuffle reorders records a little, which
//! the grace period absorbs.
//!
//! # Running it
//!
//! Start a broker (`integration-tests/kafka/broker.sh start`), create the
//! input, output, per-page and late topics, then:
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 RIVULET__STATE_DIR=/tmp/rivulet \
//!     cargo run --example page_views_per_minute
//! ```
//!
//! # Settings
//!
//! ```toml
//! application_id = "page-views-per-minute"
//!
//! [app]
//! input_topic = "page-views"               # RIVULET__APP__INPUT_TOPIC
//! output_topic = "page-views-per-minute"   # RIVULET__APP__OUTPUT_TOPIC
//! per_page_topic = "page-views-per-page"   # RIVULET__APP__PER_PAGE_TOPIC
//! late_topic = "page-views-late"           # RIVULET__APP__LATE_TOPIC
//! out_of_orderness_ms = 5000
//! grace_ms = 10000
//! ```

use std::process::ExitCode;
use std::time::Duration;

use rivulet::prelude::*;
use rivulet::topology::{Timestamps, Windows};
use serde::{Deserialize, Serialize};

/// One page view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PageView {
    pub(crate) user: String,
    pub(crate) page: String,
    pub(crate) ts: i64,
}

/// One minute's count of all views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MinuteCount {
    pub(crate) window_start: i64,
    pub(crate) window_end: i64,
    pub(crate) count: i64,
}

/// The example's `[app]` settings.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Settings {
    pub(crate) input_topic: String,
    pub(crate) output_topic: String,
    pub(crate) per_page_topic: String,
    pub(crate) late_topic: String,
    pub(crate) out_of_orderness_ms: u64,
    pub(crate) grace_ms: u64,
}

pub(crate) fn topology(s: &Settings) -> Result<Topology> {
    let mut b = Topology::builder();
    let time = Timestamps::from_value(|v: &PageView| Some(v.ts))
        .out_of_orderness(Duration::from_millis(s.out_of_orderness_ms));
    let views = b.stream_with_time(&s.input_topic, Serdes::unit(), Serdes::json::<PageView>(), time);
    let minute = Windows::tumbling(Duration::from_secs(60)).grace(Duration::from_millis(s.grace_ms));

    views
        .group_by(|_, _| "all".to_string(), Serdes::string())
        .windowed_by(minute)
        .emit_final()
        .late_records_to(&s.late_topic)
        .count("views-per-minute")
        .map(|w, count| (w.key, MinuteCount { window_start: w.start, window_end: w.end, count }))
        .to(&s.output_topic, Serdes::string(), Serdes::json::<MinuteCount>());

    views
        .group_by(|_, v: &PageView| v.page.clone(), Serdes::string())
        .windowed_by(minute)
        .emit_final()
        .count("views-per-page-per-minute")
        .with_window_in_value()
        .to(&s.per_page_topic, Serdes::string(), Serdes::json());
    Ok(b.build()?)
}

fn main() -> ExitCode {
    let defaults = Config::loader()
        .default_value("application_id", "page-views-per-minute")
        .default_value("app.input_topic", "page-views")
        .default_value("app.output_topic", "page-views-per-minute")
        .default_value("app.per_page_topic", "page-views-per-page")
        .default_value("app.late_topic", "page-views-late")
        .default_value("app.out_of_orderness_ms", "5000")
        .default_value("app.grace_ms", "10000");
    // `run` (the default), `describe` or `reset`; see `--help`.
    rivulet::Main::new(defaults).main(|config| {
        let settings: Settings = config.app()?;
        topology(&settings)
    })
}
