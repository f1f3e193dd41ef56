//! `fraud_alerts`: flags suspicious card payments with keyed state and an
//! event-time timer.
//!
//! Each input record is one card payment, a JSON value
//! `{"card": "4111-...", "amount": 12.5, "ts": 1700000000000}` (`ts` in ms
//! since the epoch is the payment's event time). The record key is not
//! read, but the producer must key payments by card, so that all payments
//! of a card are in one partition. Two rules raise an alert:
//!
//! - **burst**: the card made `burst_count` (3) or more payments within
//!   `burst_window_secs` (60) seconds of event time, this one included: the
//!   payments at `t` with `ts - window < t <= ts`. Each such payment alerts.
//! - **large**: the payment is more than `large_factor` (10) times the
//!   card's average payment so far (from its second payment on).
//!
//! The alert goes to the output topic, keyed by card (a string), as JSON:
//! `{"card":"..","kind":"burst","ts":..,"amount":..,"payments":3}` or
//! `{"card":"..","kind":"large","ts":..,"amount":..,"average":..}`, with
//! the payment's timestamp.
//!
//! `FraudDetector` is a [`KeyedProcessor`]: per card it keeps the times of
//! its recent payments and its spending in [`ValueState`]s, in the store
//! `fraud-state` (changelog `<application_id>-fraud-state-changelog`). Each
//! payment registers an event-time timer at `ts + window`; when the
//! watermark passes it, the timer drops the payments that left the window,
//! so a card's recent activity does not grow. The watermark trails the
//! largest `ts` seen by `out_of_orderness_ms` (5000), so a payment up to 5 s
//! late is still counted with its neighbours. A card's spending expires
//! after 90 days without payments (a time-to-live on processing time).
//!
//! # Running it
//!
//! Start a broker (`integration-tests/kafka/broker.sh start` starts one on
//! `127.0.0.1:9092`), create the input and output topics, then:
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 RIVULET__STATE_DIR=/tmp/rivulet \
//!     cargo run --example fraud_alerts
//! ```
//!
//! # Settings
//!
//! ```toml
//! application_id = "fraud-alerts"
//!
//! [app]
//! input_topic = "payments"       # RIVULET__APP__INPUT_TOPIC
//! output_topic = "fraud-alerts"  # RIVULET__APP__OUTPUT_TOPIC
//! burst_count = 3                # RIVULET__APP__BURST_COUNT
//! burst_window_secs = 60         # RIVULET__APP__BURST_WINDOW_SECS
//! large_factor = 10.0            # RIVULET__APP__LARGE_FACTOR
//! out_of_orderness_ms = 5000     # RIVULET__APP__OUT_OF_ORDERNESS_MS
//! ```

use std::process::ExitCode;
use std::time::Duration;

use rivulet::prelude::*;
use rivulet::topology::keyed::{KeyedContext, KeyedProcess, KeyedProcessor, Timer, ValueState};
use rivulet::topology::{ProcessError, Timestamps};
use serde::{Deserialize, Serialize};

/// The store of the detector's state and timers, also naming its changelog.
const STORE: &str = "fraud-state";

/// How long a card's spending is kept after its last payment.
const SPENDING_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// The example's `[app]` settings.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Settings {
    /// Topic of the payments (JSON).
    pub(crate) input_topic: String,
    /// Topic of the alerts (JSON, keyed by card).
    pub(crate) output_topic: String,
    /// Payments within the window that make a burst.
    pub(crate) burst_count: usize,
    /// The burst window, seconds of event time.
    pub(crate) burst_window_secs: u64,
    /// A payment above this many times the card's average is large.
    pub(crate) large_factor: f64,
    /// How late (ms) a payment may arrive and still count in its window.
    pub(crate) out_of_orderness_ms: u64,
}

/// A card payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Payment {
    pub(crate) card: String,
    pub(crate) amount: f64,
    /// Event time, ms since the epoch.
    pub(crate) ts: i64,
}

/// Why a payment is suspicious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AlertKind {
    /// Too many payments in the window.
    Burst,
    /// Far above the card's average.
    Large,
}

/// An alert, written as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Alert {
    pub(crate) card: String,
    pub(crate) kind: AlertKind,
    pub(crate) ts: i64,
    pub(crate) amount: f64,
    /// Burst: the card's payments in the window, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) payments: Option<usize>,
    /// Large: the card's average payment before this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) average: Option<f64>,
}

/// A card's spending so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Spending {
    payments: u64,
    total: f64,
}

/// Applies the two rules per card.
struct FraudDetector {
    burst_count: usize,
    window_ms: i64,
    large_factor: f64,
    /// Event times of the card's payments not yet out of the window.
    recent: ValueState<Vec<i64>>,
    spending: ValueState<Spending>,
}

type Ctx<'c, 'a> = KeyedContext<'c, 'a, String, String, Alert>;

impl KeyedProcessor<String, Payment, String, Alert> for FraudDetector {
    fn process_element(&mut self, payment: Record<String, Payment>, ctx: &mut Ctx<'_, '_>) -> Result<(), ProcessError> {
        let p = &payment.value;
        let alert =
            |kind| Alert { card: p.card.clone(), kind, ts: p.ts, amount: p.amount, payments: None, average: None };

        let mut recent = self.recent.get(ctx)?.unwrap_or_default();
        recent.push(p.ts);
        self.recent.set(ctx, &recent)?;
        // This payment leaves the window when the watermark passes ts + window.
        ctx.register_event_time_timer(p.ts.saturating_add(self.window_ms))?;
        let in_window = recent.iter().filter(|&&t| t > p.ts.saturating_sub(self.window_ms) && t <= p.ts).count();
        if in_window >= self.burst_count {
            let a = Alert { payments: Some(in_window), ..alert(AlertKind::Burst) };
            ctx.forward(Record::new(p.card.clone(), a, p.ts))?;
        }

        let mut spending = self.spending.get(ctx)?.unwrap_or_default();
        if spending.payments > 0 {
            let average = spending.total / spending.payments as f64;
            if p.amount > self.large_factor * average {
                let a = Alert { average: Some(average), ..alert(AlertKind::Large) };
                ctx.forward(Record::new(p.card.clone(), a, p.ts))?;
            }
        }
        spending.payments += 1;
        spending.total += p.amount;
        self.spending.set(ctx, &spending)
    }

    /// The payments at `timer.time - window` and before left the window.
    fn on_timer(&mut self, timer: Timer, ctx: &mut Ctx<'_, '_>) -> Result<(), ProcessError> {
        let mut recent = self.recent.get(ctx)?.unwrap_or_default();
        recent.retain(|&t| t > timer.time.saturating_sub(self.window_ms));
        if recent.is_empty() {
            self.recent.clear(ctx)
        } else {
            self.recent.set(ctx, &recent)
        }
    }
}

/// The topology: payments with event time from `ts`, per card through
/// [`FraudDetector`], alerts to the output topic.
pub(crate) fn topology(s: &Settings) -> Result<Topology> {
    let mut b = Topology::builder();
    b.add_store(StoreSpec::keyed(STORE));
    let time =
        Timestamps::from_value(|p: &Payment| Some(p.ts)).out_of_orderness(Duration::from_millis(s.out_of_orderness_ms));
    let rules = s.clone();
    b.stream_with_time(&s.input_topic, Serdes::optional(Serdes::string()), Serdes::json::<Payment>(), time)
        .select_key(|_, p: &Payment| p.card.clone())
        .process(&[STORE], move || {
            let detector = FraudDetector {
                burst_count: rules.burst_count,
                window_ms: i64::try_from(rules.burst_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
                large_factor: rules.large_factor,
                recent: ValueState::new("recent", Serdes::json()),
                spending: ValueState::new("spending", Serdes::json()).with_ttl(SPENDING_TTL),
            };
            KeyedProcess::new(STORE, Serdes::string(), detector)
        })
        .to(&s.output_topic, Serdes::string(), Serdes::json::<Alert>());
    Ok(b.build()?)
}

fn main() -> ExitCode {
    let defaults = Config::loader()
        .default_value("application_id", "fraud-alerts")
        .default_value("app.input_topic", "payments")
        .default_value("app.output_topic", "fraud-alerts")
        .default_value("app.burst_count", "3")
        .default_value("app.burst_window_secs", "60")
        .default_value("app.large_factor", "10")
        .default_value("app.out_of_orderness_ms", "5000");
    // `run` (the default), `describe` or `reset`; see `--help`.
    rivulet::Main::new(defaults).main(|config| {
        let settings: Settings = config.app()?;
        topology(&settings)
    })
}
