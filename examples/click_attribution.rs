//! `click_attribution`: each ad click joined with the impression it came
//! from, if that impression was shown at most 10 minutes before the click;
//! clicks with no such impression are emitted too, unattributed. A
//! windowed stream-stream left join,
//!
//! ```sql
//! SELECT c.*, i.*
//! FROM clicks c LEFT JOIN impressions i
//!   ON c.impression_id = i.impression_id
//!  AND i.ts BETWEEN c.ts - INTERVAL '10' MINUTE AND c.ts
//! ```
//!
//! written with the DSL (`KStream::left_join_stream`, Kafka Streams'
//! `KStream#leftJoin(KStream, ValueJoiner, JoinWindows)`).
//!
//! Both input topics are keyed by the impression id (the ad server puts it
//! in the ad's click URL, and both it and the click tracker key their
//! records by it), so they are co-partitioned: they must have the same
//! number of partitions. Values are JSON:
//!
//! - `impressions_topic`: `{"impression_id":..,"user":..,"campaign":..,"ts":<epoch ms>}`;
//! - `clicks_topic`: `{"click_id":..,"impression_id":..,"user":..,"ts":<epoch ms>}`.
//!
//! Event time is `ts`. To `output_topic` goes one record per click, keyed by
//! the impression id, `{"click":{..},"impression":{..}}` with the
//! impression, or `"impression":null` for an unattributed click:
//!
//! - an attributed click is emitted as soon as both it and its impression
//!   have arrived, stamped with the click's time;
//! - an unattributed click is emitted once no impression can attribute it
//!   any more: when the impressions' time (their largest `ts` so far, held
//!   back by the watermark) has passed the click's time plus `grace_ms`,
//!   stamped with the click's time. Never earlier, so a click is never
//!   emitted unattributed and then attributed (Kafka Streams 3.1+
//!   behaviour). The watermark is the minimum over the task's partitions,
//!   so while clicks stop coming the last ones wait for the next; give
//!   the sources `Timestamps::idle_after` to let a quiet partition go.
//!
//! A click (impression) more than `grace_ms` behind the largest `ts` of the
//! clicks (impressions) so far is late: counted
//! (`rivulet_late_records_total`) and dropped. Clicks and
//! impressions wait in the stores `click-attribution-this` and
//! `click-attribution-other` (changelogged), so a restart resumes the join;
//! under `exactly_once` each click is emitted exactly once. An impression
//! id that appears twice within 10 minutes attributes its clicks twice,
//! as any join does.
//!
//! # Running it
//!
//! Start a broker (`integration-tests/kafka/broker.sh start`), create the
//! two input topics (same partition count) and the output topic, then:
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 RIVULET__STATE_DIR=/tmp/rivulet \
//!     cargo run --example click_attribution
//! ```
//!
//! # Settings
//!
//! ```toml
//! application_id = "click-attribution"
//!
//! [app]
//! clicks_topic = "clicks"                  # RIVULET__APP__CLICKS_TOPIC
//! impressions_topic = "impressions"        # RIVULET__APP__IMPRESSIONS_TOPIC
//! output_topic = "attributed-clicks"       # RIVULET__APP__OUTPUT_TOPIC
//! grace_ms = 60000
//! ```

use std::process::ExitCode;
use std::time::Duration;

use rivulet::prelude::*;
use rivulet::topology::{JoinWindows, Timestamps};
use serde::{Deserialize, Serialize};

/// How long before a click its impression may have been shown.
pub(crate) const ATTRIBUTION_WINDOW: Duration = Duration::from_secs(10 * 60);

/// An ad shown to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Impression {
    pub(crate) impression_id: String,
    pub(crate) user: String,
    pub(crate) campaign: String,
    pub(crate) ts: i64,
}

/// A click on an ad.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Click {
    pub(crate) click_id: String,
    pub(crate) impression_id: String,
    pub(crate) user: String,
    pub(crate) ts: i64,
}

/// A click and the impression it is attributed to, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Attribution {
    pub(crate) click: Click,
    pub(crate) impression: Option<Impression>,
}

/// The example's `[app]` settings.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Settings {
    pub(crate) clicks_topic: String,
    pub(crate) impressions_topic: String,
    pub(crate) output_topic: String,
    pub(crate) grace_ms: u64,
}

pub(crate) fn topology(s: &Settings) -> Result<Topology> {
    let mut b = Topology::builder();
    let clicks = b.stream_with_time(
        &s.clicks_topic,
        Serdes::string(),
        Serdes::json::<Click>(),
        Timestamps::from_value(|c: &Click| Some(c.ts)),
    );
    let impressions = b.stream_with_time(
        &s.impressions_topic,
        Serdes::string(),
        Serdes::json::<Impression>(),
        Timestamps::from_value(|i: &Impression| Some(i.ts)),
    );
    // A click at t joins the impressions of its key in [t - 10 min, t].
    let window = JoinWindows::of(ATTRIBUTION_WINDOW, Duration::ZERO).grace(Duration::from_millis(s.grace_ms));
    clicks
        .left_join_stream(&impressions, "click-attribution", window, |_, click, impression| Attribution {
            click: click.clone(),
            impression: impression.cloned(),
        })
        .to(&s.output_topic, Serdes::string(), Serdes::json::<Attribution>());
    Ok(b.build()?)
}

fn main() -> ExitCode {
    let defaults = Config::loader()
        .default_value("application_id", "click-attribution")
        .default_value("app.clicks_topic", "clicks")
        .default_value("app.impressions_topic", "impressions")
        .default_value("app.output_topic", "attributed-clicks")
        .default_value("app.grace_ms", "60000");
    // `run` (the default), `describe` or `reset`; see `--help`.
    rivulet::Main::new(defaults).main(|config| {
        let settings: Settings = config.app()?;
        topology(&settings)
    })
}
