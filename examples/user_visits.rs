//! `user_visits`: counts visits per user with the Processor API and a
//! key-value store.
//!
//! Each input record is one visit: the key is the user id (a UTF-8 string),
//! the value the page visited (a UTF-8 string, not used for counting). The
//! custom processor `VisitCounter` keeps each user's count in the RocksDB
//! store `visits-per-user`, adds one per visit and forwards the new count:
//! the output topic receives `(user, count)` for every visit, the key as a
//! string and the count as a big-endian `i64` (`Serdes::i64()`), so the
//! latest record per user is that user's total.
//!
//! The store is backed by the compacted changelog topic
//! `<application_id>-visits-per-user-changelog` (created by rivulet) and
//! lives under `<state_dir>/<application_id>/`: a restart with the same
//! state dir continues from the local store, and a new instance rebuilds it
//! from the changelog. Counts are per input partition, so visits must be
//! keyed by user (Kafka's default partitioner then puts a user's visits in
//! one partition). A record without a key, or with a key or value that is
//! not UTF-8, fails to deserialize and follows `errors.deserialization`
//! (default `fail`).
//!
//! # Running it
//!
//! Start a broker (`integration-tests/kafka/broker.sh start` starts one on
//! `127.0.0.1:9092`), create the input and output topics (rivulet creates
//! only its internal topics), then:
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 RIVULET__STATE_DIR=/tmp/rivulet \
//!     cargo run --example user_visits
//! # or with a config file:
//! cargo run --example user_visits -- --config user_visits.toml
//! ```
//!
//! It runs until SIGINT or SIGTERM, then commits and exits. The state dir
//! defaults to `/var/lib/rivulet`, which must be writable.
//!
//! # Settings
//!
//! Besides rivulet's own keys (`docs/configuration.md`), set in a config
//! file or as `RIVULET__SECTION__KEY` environment variables, the example
//! changes these defaults:
//!
//! ```toml
//! application_id = "user-visits"
//!
//! [app]
//! input_topic = "visits"            # RIVULET__APP__INPUT_TOPIC
//! output_topic = "visits-per-user"  # RIVULET__APP__OUTPUT_TOPIC
//! ```

use std::process::ExitCode;

use rivulet::prelude::*;
use rivulet::topology::ProcessError;
use serde::Deserialize;

/// The name of the store of counts, also naming its changelog topic.
const STORE: &str = "visits-per-user";

/// The example's `[app]` settings.
#[derive(Debug, Deserialize)]
struct Settings {
    /// Topic of the visits: user id -> page.
    input_topic: String,
    /// Topic of the counts: user id -> visits so far.
    output_topic: String,
}

/// Counts the visits of each user in the store [`STORE`] and forwards
/// `(user, count)` after each visit.
struct VisitCounter;

impl Processor<String, String, String, i64> for VisitCounter {
    fn process(
        &mut self,
        visit: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), ProcessError> {
        let mut counts = ctx.store::<String, i64>(STORE)?;
        let count = counts.get(&visit.key)?.unwrap_or(0) + 1;
        counts.put(&visit.key, &count)?;
        let user = visit.key.clone();
        ctx.forward(visit.with(user, count))
    }
}

/// The topology: visits from `input`, counted per user by [`VisitCounter`],
/// counts to `output`.
pub(crate) fn topology(input: &str, output: &str) -> Result<Topology> {
    let mut b = Topology::builder();
    b.add_store(StoreSpec::key_value(STORE, Serdes::string(), Serdes::i64()));
    b.stream(input, Serdes::string(), Serdes::string()).process(&[STORE], || VisitCounter).to(
        output,
        Serdes::string(),
        Serdes::i64(),
    );
    Ok(b.build()?)
}

fn main() -> ExitCode {
    let defaults = Config::loader()
        .default_value("application_id", "user-visits")
        .default_value("app.input_topic", "visits")
        .default_value("app.output_topic", "visits-per-user");
    // `run` (the default), `describe` or `reset`; see `--help`.
    rivulet::Main::new(defaults).main(|config| {
        let settings: Settings = config.app()?;
        topology(&settings.input_topic, &settings.output_topic)
    })
}
