//! `async_scoring`: model inference in the stream. Each payment is scored
//! by a logistic regression that the example trains at start on synthetic
//! data; the scoring runs on tokio's blocking thread pool
//! (`tokio::task::spawn_blocking`) through `KStream::map_async`, so the
//! processing thread never runs the model and keeps up to 32 payments in
//! flight per task.
//!
//! Each input value is a JSON payment `{"amount": 120.0, "velocity": 3.0}`
//! (amount in euros, payments by the same card in the last hour). The
//! output, keyed as the input, is the payment with its fraud probability:
//! `{"amount": 120.0, "velocity": 3.0, "fraud": 0.87}`.
//!
//! The model: `p = sigmoid(w_amount * amount / 100 + w_velocity * velocity + b)`,
//! fitted by batch gradient descent to 2,000 synthetic payments labelled
//! fraud when `amount / 100 + velocity / 2 > 3` (1 label in 20 flipped as
//! noise), from a fixed seed: the same weights on every run.
//!
//! # Running it
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run --example async_scoring
//! ```
//!
//! ```toml
//! application_id = "async-scoring"
//! processing_guarantee = "exactly_once"
//!
//! [app]
//! input_topic = "payments"          # RIVULET__APP__INPUT_TOPIC
//! output_topic = "scored-payments"  # RIVULET__APP__OUTPUT_TOPIC
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rivulet::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
struct Settings {
    input_topic: String,
    output_topic: String,
}

/// A payment to score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Payment {
    pub(crate) amount: f64,
    pub(crate) velocity: f64,
}

/// A payment with its fraud probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Scored {
    pub(crate) amount: f64,
    pub(crate) velocity: f64,
    pub(crate) fraud: f64,
}

/// A logistic regression over (amount / 100, velocity).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Model {
    pub(crate) weights: [f64; 2],
    pub(crate) bias: f64,
}

impl Model {
    fn features(p: &Payment) -> [f64; 2] {
        [p.amount / 100.0, p.velocity]
    }

    /// The fraud probability of `p`.
    pub(crate) fn score(&self, p: &Payment) -> f64 {
        let [x0, x1] = Self::features(p);
        let z = self.weights[0] * x0 + self.weights[1] * x1 + self.bias;
        1.0 / (1.0 + (-z).exp())
    }
}

/// A small deterministic generator (64-bit LCG), so the example needs no
/// random-number crate and trains the same model every time.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The synthetic training set: payments and whether each is fraud.
pub(crate) fn training_data() -> Vec<(Payment, bool)> {
    let mut rng = Lcg(42);
    (0..2_000)
        .map(|_| {
            let payment = Payment { amount: rng.next() * 400.0, velocity: rng.next() * 6.0 };
            let fraud = payment.amount / 100.0 + payment.velocity / 2.0 > 3.0;
            (payment, if rng.next() < 0.05 { !fraud } else { fraud })
        })
        .collect()
}

/// Fits the model by batch gradient descent on the log loss.
pub(crate) fn train() -> Model {
    let data = training_data();
    let mut model = Model { weights: [0.0; 2], bias: 0.0 };
    let rate = 0.5;
    for _ in 0..2_000 {
        let (mut g, mut gb) = ([0.0; 2], 0.0);
        for (p, fraud) in &data {
            let err = model.score(p) - if *fraud { 1.0 } else { 0.0 };
            let x = Model::features(p);
            g[0] += err * x[0];
            g[1] += err * x[1];
            gb += err;
        }
        let n = data.len() as f64;
        model.weights[0] -= rate * g[0] / n;
        model.weights[1] -= rate * g[1] / n;
        model.bias -= rate * gb / n;
    }
    model
}

/// The topology: payments from `input`, scored by `model` on the blocking
/// pool, to `output`.
pub(crate) fn topology(input: &str, output: &str, model: Model) -> Result<Topology> {
    let model = Arc::new(model);
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::json::<Payment>())
        .try_map_async(32, Duration::from_secs(5), move |p: Payment| {
            let model = model.clone();
            async move {
                let fraud = tokio::task::spawn_blocking(move || {
                    let fraud = model.score(&p);
                    Scored { amount: p.amount, velocity: p.velocity, fraud }
                });
                fraud.await
            }
        })
        .to(output, Serdes::string(), Serdes::json::<Scored>());
    Ok(b.build()?)
}

fn main() -> ExitCode {
    let defaults = Config::loader()
        .default_value("application_id", "async-scoring")
        .default_value("processing_guarantee", "exactly_once")
        .default_value("app.input_topic", "payments")
        .default_value("app.output_topic", "scored-payments");
    rivulet::Main::new(defaults).main(|config| {
        let settings: Settings = config.app()?;
        let model = train();
        tracing::info!(?model, "trained the fraud model");
        topology(&settings.input_topic, &settings.output_topic, model)
    })
}
