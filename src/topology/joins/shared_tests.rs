//! What the join tests share: tables of `String -> i64`, a fixed
//! pseudo-random sequence of updates, and a run with a restart in the
//! middle. (Named `*_tests`: test code, which may use any floor.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use crate::serde::Serdes;
use crate::testing::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use crate::topology::Topology;

pub(super) type Table = BTreeMap<String, i64>;

/// A fixed pseudo-random sequence, so a failure replays.
pub(super) struct Lcg(pub(super) u64);

impl Lcg {
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
    /// A key of six, and a value or (one time in five) a delete.
    pub(super) fn update(&mut self) -> (String, Option<i64>) {
        let key = format!("k{}", self.below(6));
        let value = if self.below(5) == 0 { None } else { Some(self.below(10) as i64) };
        (key, value)
    }
}

pub(super) fn apply(table: &mut Table, key: String, value: Option<i64>) {
    match value {
        Some(v) => table.insert(key, v),
        None => table.remove(&key),
    };
}

pub(super) fn changes(driver: &TopologyTestDriver, name: &str) -> TestOutputTopic<String, Option<i64>> {
    driver.output_topic(name, Serdes::string(), Serdes::optional(Serdes::i64()))
}

/// Applies what the driver wrote to `topic` since the last read to `seen`.
pub(super) fn read_into(
    driver: &mut TopologyTestDriver,
    topic: &TestOutputTopic<String, Option<i64>>,
    seen: &mut Table,
) {
    for (k, v) in driver.read_key_values(topic).unwrap() {
        apply(seen, k, v);
    }
}

pub(super) fn table_input(driver: &TopologyTestDriver, name: &str) -> TestInputTopic<String, Option<i64>> {
    driver.input_topic(name, Serdes::string(), Serdes::optional(Serdes::i64()))
}

/// Runs `steps` updates of `inputs` with manual commits every 7 records and
/// a restart after `restart_at`; the final derived outputs.
pub(super) fn with_restart(
    topology: Topology,
    inputs: &[&str],
    outputs: &[&str],
    wipe: bool,
    seed: u64,
) -> (Vec<Table>, Vec<Table>) {
    let mut driver = TopologyTestDriver::new(topology).unwrap().manual_commits();
    let inputs: Vec<_> = inputs.iter().map(|n| table_input(&driver, n)).collect();
    let mut tables = vec![Table::new(); inputs.len()];
    let mut rng = Lcg(seed);
    for step in 0..200 {
        let side = rng.below(inputs.len() as u64) as usize;
        let (k, v) = rng.update();
        driver.pipe(&inputs[side], k.clone(), v, step).unwrap();
        apply(&mut tables[side], k, v);
        if step % 7 == 6 {
            driver.commit().unwrap();
        }
        if step == 100 {
            // Records 98..=100 were not committed: they are processed again.
            if wipe {
                driver.restart_without_local_state().unwrap();
            } else {
                driver.restart().unwrap();
            }
        }
    }
    driver.commit().unwrap();
    let seen = outputs
        .iter()
        .map(|name| {
            let mut seen = Table::new();
            let topic = changes(&driver, name);
            read_into(&mut driver, &topic, &mut seen);
            seen
        })
        .collect();
    (tables, seen)
}
