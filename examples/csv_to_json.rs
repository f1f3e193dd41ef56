//! `csv_to_json`: turns CSV payment lines into JSON records, sending
//! malformed lines to the dead-letter topic.
//!
//! Each input record's value is one text line `user,amount`, for example
//! `alice,12.50` (the input key is ignored). For each line the example
//! writes the JSON value `{"user":"alice","amount":12.5}`, keyed by the user
//! (a UTF-8 string), to the output topic. `amount` is a JSON number (`f64`).
//!
//! A line is malformed when it does not have exactly two comma-separated
//! fields, when the user is empty, or when the amount is not a finite
//! number. The parsing function rejects such a line with an error, and the
//! example sets `errors.processing = "dead_letter"`, so rivulet writes the
//! line's original bytes to the dead-letter topic `<application_id>-dlq`
//! (created by rivulet) with headers describing the failure:
//! `rivulet.error.kind` (`processing`), `rivulet.error.message`,
//! `rivulet.source.topic`, `rivulet.source.partition` and
//! `rivulet.source.offset`. Values that are not UTF-8 text fail to
//! deserialize and follow `errors.deserialization` (default `fail`).
//!
//! # Running it
//!
//! Start a broker (`integration-tests/kafka/broker.sh start` starts one on
//! `127.0.0.1:9092`), create the input and output topics (rivulet creates
//! only its internal topics), then:
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run --example csv_to_json
//! # or with a config file:
//! cargo run --example csv_to_json -- --config csv_to_json.toml
//! ```
//!
//! It runs until SIGINT or SIGTERM, then commits and exits.
//!
//! # Settings
//!
//! Besides rivulet's own keys (`docs/configuration.md`), set in a config
//! file or as `RIVULET__SECTION__KEY` environment variables, the example
//! changes these defaults:
//!
//! ```toml
//! application_id = "csv-to-json"
//!
//! [errors]
//! processing = "dead_letter"    # malformed lines go to csv-to-json-dlq
//!
//! [app]
//! input_topic = "payments-csv"  # RIVULET__APP__INPUT_TOPIC
//! output_topic = "payments-json" # RIVULET__APP__OUTPUT_TOPIC
//! ```

use std::process::ExitCode;

use rivulet::prelude::*;
use serde::{Deserialize, Serialize};

/// The example's `[app]` settings.
#[derive(Debug, Deserialize)]
struct Settings {
    /// Topic of the CSV lines.
    input_topic: String,
    /// Topic of the JSON records.
    output_topic: String,
}

/// One payment, as written to the output topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Payment {
    /// Who paid.
    pub(crate) user: String,
    /// How much.
    pub(crate) amount: f64,
}

/// Parses `user,amount` into the output key (the user) and the payment.
/// Spaces around either field are ignored.
pub(crate) fn parse(line: &str) -> Result<(String, Payment), String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [user, amount] = fields.as_slice() else {
        return Err(format!("expected 2 comma-separated fields (user,amount), found {}: {line:?}", fields.len()));
    };
    if user.is_empty() {
        return Err(format!("the user is empty: {line:?}"));
    }
    let amount: f64 = amount.parse().map_err(|e| format!("the amount {amount:?} is not a number ({e}): {line:?}"))?;
    if !amount.is_finite() {
        // serde_json would write NaN and infinities as `null`.
        return Err(format!("the amount {amount} is not a finite number: {line:?}"));
    }
    Ok((user.to_string(), Payment { user: user.to_string(), amount }))
}

/// The topology: CSV lines from `input` become JSON payments in `output`,
/// keyed by user; lines `parse` rejects go to the processing-error policy.
pub(crate) fn topology(input: &str, output: &str) -> Result<Topology> {
    let mut b = Topology::builder();
    b.stream(input, Serdes::unit(), Serdes::string()).try_map(|(), line: String| parse(&line)).to(
        output,
        Serdes::string(),
        Serdes::json::<Payment>(),
    );
    Ok(b.build()?)
}

// pub(crate): integration-tests/cli.rs runs it, to check what a person
// reads when the config is wrong.
pub(crate) fn main() -> ExitCode {
    let defaults = Config::loader()
        .default_value("application_id", "csv-to-json")
        .default_value("errors.processing", "dead_letter")
        .default_value("app.input_topic", "payments-csv")
        .default_value("app.output_topic", "payments-json");
    // `run` (the default), `describe` or `reset`; see `--help`.
    rivulet::Main::new(defaults).main(|config| {
        let settings: Settings = config.app()?;
        topology(&settings.input_topic, &settings.output_topic)
    })
}
