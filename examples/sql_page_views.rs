//! `sql_page_views`: the `page_views_per_minute` example's count, written
//! in SQL (Flink SQL's group-window syntax) and compiled by
//! [`rivulet::sql`] into the same DSL operators:
//!
//! ```sql
//! SELECT TUMBLE_START(event_time, INTERVAL '1' MINUTE), COUNT(*)
//! FROM events GROUP BY TUMBLE(event_time, INTERVAL '1' MINUTE)
//! ```
//!
//! Input values are the same JSON page views `{"user":..,"page":..,"ts":<epoch ms>}`;
//! `event_time` is computed from `ts`. Each closed minute is written to
//! `output_topic` once, as `{"window_start":<epoch ms>,"count":..}` with a
//! null key (Flink's kafka sink without `'key.fields'`).
//!
//! Flink's group windows have no grace period: a window closes when the
//! watermark passes its end. `page_views_per_minute` lets records arrive
//! 5 s out of order and keeps each window open 10 s longer; a watermark
//! 15 s behind closes the same windows at the same point of the input
//! and drops the same late records, so the default delay is 15 s.
//!
//! # Running it
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 RIVULET__STATE_DIR=/tmp/rivulet \
//!     cargo run --example sql_page_views            # `describe` prints the topology
//! ```
//!
//! # Settings
//!
//! ```toml
//! application_id = "sql-page-views"
//!
//! [app]
//! input_topic = "page-views"                   # RIVULET__APP__INPUT_TOPIC
//! output_topic = "page-views-per-minute-sql"   # RIVULET__APP__OUTPUT_TOPIC
//! watermark_delay_s = 15
//! ```

use std::process::ExitCode;

use rivulet::prelude::*;
use serde::Deserialize;

/// The example's `[app]` settings.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Settings {
    pub(crate) input_topic: String,
    pub(crate) output_topic: String,
    pub(crate) watermark_delay_s: u64,
}

/// The script, for the settings' topics and delay.
pub(crate) fn sql(s: &Settings) -> String {
    format!(
        "CREATE TABLE events (
             `user` STRING, page STRING, ts BIGINT,
             event_time AS TO_TIMESTAMP_LTZ(ts, 3),
             WATERMARK FOR event_time AS event_time - INTERVAL '{delay}' SECOND
         ) WITH ('connector' = 'kafka', 'topic' = '{input}', 'format' = 'json');

         CREATE TABLE views_per_minute (window_start TIMESTAMP(3), `count` BIGINT)
         WITH ('connector' = 'kafka', 'topic' = '{output}', 'format' = 'json');

         INSERT INTO views_per_minute
         SELECT TUMBLE_START(event_time, INTERVAL '1' MINUTE), COUNT(*)
         FROM events GROUP BY TUMBLE(event_time, INTERVAL '1' MINUTE);",
        delay = s.watermark_delay_s,
        input = s.input_topic,
        output = s.output_topic,
    )
}

pub(crate) fn topology(s: &Settings) -> Result<Topology> {
    rivulet::sql::topology(&sql(s))
}

fn main() -> ExitCode {
    let defaults = Config::loader()
        .default_value("application_id", "sql-page-views")
        .default_value("app.input_topic", "page-views")
        .default_value("app.output_topic", "page-views-per-minute-sql")
        .default_value("app.watermark_delay_s", "15");
    // `run` (the default), `describe` or `reset`; see `--help`.
    rivulet::Main::new(defaults).main(|config| {
        let settings: Settings = config.app()?;
        topology(&settings)
    })
}
