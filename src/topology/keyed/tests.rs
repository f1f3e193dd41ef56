//! Keyed state and timers on the test driver (the runtime's task code over
//! in-memory topics): a processor driven by commands in the record values,
//! the driver's wall clock set by the test, commits the test asks for, and
//! restarts that keep the committed stores and drop everything else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::serde::Serdes;
use crate::testing::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use crate::topology::Topology;

const STORE: &str = "keyed";
const INPUT: &str = "commands";
const OUTPUT: &str = "emitted";
const TTL_MS: i64 = 1_000;

/// Runs the command in each record's value against the record key's state:
/// `set:v`, `get`, `clear`, `add:v`, `list`, `put:k=v`, `map`, `remove:k`,
/// `clear-map`, `et:t` / `pt:t` (register an event- or processing-time
/// timer at t), `del-et:t`, `noop`. Emits what it read. A timer emits
/// `fired:<et|pt>@<t>:<the key's value state or ->`.
struct Commands {
    value: ValueState<String>,
    expiring: ValueState<String>,
    list: ListState<String>,
    map: MapState<String, String>,
}

impl Commands {
    fn new() -> Self {
        Commands {
            value: ValueState::new("value", Serdes::string()),
            expiring: ValueState::new("expiring", Serdes::string()).with_ttl(Duration::from_millis(TTL_MS as u64)),
            list: ListState::new("list", Serdes::string()),
            map: MapState::new("map", Serdes::string(), Serdes::string()),
        }
    }
}

type Ctx<'c, 'a> = KeyedContext<'c, 'a, String, String, String>;

impl KeyedProcessor<String, String, String, String> for Commands {
    fn process_element(&mut self, r: Record<String, String>, ctx: &mut Ctx<'_, '_>) -> Result<(), ProcessError> {
        let (cmd, arg) = r.value.split_once(':').unwrap_or((r.value.as_str(), ""));
        let time = || arg.parse::<i64>().unwrap();
        let out = match cmd {
            "set" => return self.value.set(ctx, &arg.to_string()),
            "get" => self.value.get(ctx)?.unwrap_or_else(|| "none".into()),
            "clear" => return self.value.clear(ctx),
            "set-ttl" => return self.expiring.set(ctx, &arg.to_string()),
            "get-ttl" => self.expiring.get(ctx)?.unwrap_or_else(|| "none".into()),
            "add" => return self.list.add(ctx, &arg.to_string()),
            "list" => self.list.get(ctx)?.join(","),
            "clear-list" => return self.list.clear(ctx),
            "put" => {
                let (k, v) = arg.split_once('=').unwrap();
                return self.map.put(ctx, &k.to_string(), &v.to_string());
            }
            "map" => self.map.entries(ctx)?.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            "remove" => return self.map.remove(ctx, &arg.to_string()),
            "clear-map" => return self.map.clear(ctx),
            "et" => return ctx.register_event_time_timer(time()),
            "pt" => return ctx.register_processing_time_timer(time()),
            "del-et" => return ctx.delete_event_time_timer(time()),
            "noop" => return Ok(()),
            other => panic!("unknown command {other}"),
        };
        ctx.forward(r.with_value(out))
    }

    fn on_timer(&mut self, timer: Timer, ctx: &mut Ctx<'_, '_>) -> Result<(), ProcessError> {
        let domain = match timer.domain {
            TimeDomain::EventTime => "et",
            TimeDomain::ProcessingTime => "pt",
        };
        let state = self.value.get(ctx)?.unwrap_or_else(|| "-".into());
        let key = ctx.key().clone();
        ctx.forward(Record::new(key, format!("fired:{domain}@{}:{state}", timer.time), timer.time))
    }
}

/// The driver of `source -> KeyedProcess(Commands) -> OUTPUT`, committing
/// only when the test says so.
struct Task {
    driver: TopologyTestDriver,
    input: TestInputTopic<String, String>,
    output: TestOutputTopic<String, String>,
    /// How many outputs the last commit kept.
    committed_outputs: usize,
}

impl Task {
    /// The wall clock starts at 0. The driver's clock starts at the
    /// system's time and the tasks schedule their ticks from it, so after
    /// setting it the tasks start again (nothing to keep yet).
    fn start() -> Task {
        let mut b = Topology::builder();
        b.add_store(StoreSpec::keyed(STORE));
        b.stream(INPUT, Serdes::string(), Serdes::string())
            .process(&[STORE], move || KeyedProcess::new(STORE, Serdes::string(), Commands::new()))
            .to(OUTPUT, Serdes::string(), Serdes::string());
        let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap().manual_commits();
        driver.clock.store(0, Ordering::Relaxed);
        driver.restart().unwrap();
        let input = driver.input_topic(INPUT, Serdes::string(), Serdes::string());
        let output = driver.output_topic(OUTPUT, Serdes::string(), Serdes::string());
        Task { driver, input, output, committed_outputs: 0 }
    }

    fn push(&mut self, key: &str, value: &str, timestamp: i64) {
        self.driver.pipe(&self.input, key.to_string(), value.to_string(), timestamp).unwrap();
    }

    /// Pushes each `(key, command)` in turn, at timestamp 0 (record time
    /// matters only to event-time timers).
    fn run(&mut self, commands: &[(&str, &str)]) {
        for (key, command) in commands {
            self.push(key, command, 0);
        }
    }

    /// Pushes each `(key, command, timestamp)` in turn.
    fn run_at(&mut self, records: &[(&str, &str, i64)]) {
        for (key, command, timestamp) in records {
            self.push(key, command, *timestamp);
        }
    }

    /// Sets the wall clock and fires what is due.
    fn tick(&mut self, now: i64) {
        let by = now - self.driver.wall_clock_ms();
        self.driver.advance_wall_clock(Duration::from_millis(u64::try_from(by).unwrap())).unwrap();
    }

    fn set_clock(&self, now: i64) {
        self.driver.clock.store(now, Ordering::Relaxed);
    }

    /// What was emitted since the last call.
    fn take(&mut self) -> Vec<(String, String)> {
        self.driver.read_key_values(&self.output).unwrap()
    }

    fn commit(&mut self) {
        self.driver.commit().unwrap();
        self.committed_outputs = self.driver.collector.log.borrow().len(OUTPUT);
    }

    /// A crash and restart: what was not committed is lost, and the
    /// uncommitted input is processed again. The restart aborts outputs
    /// the test may have read already, and the driver's read position does
    /// not go back with them: it is moved back to the committed end here,
    /// so the outputs written again are read again.
    fn restart(&mut self) {
        if let Some(read) = self.driver.read.get_mut(OUTPUT) {
            *read = (*read).min(self.committed_outputs);
        }
        self.driver.restart().unwrap();
    }

    fn watermark(&mut self) -> i64 {
        self.driver.tasks[0].context_mut().time.watermark()
    }

    /// The store's keys with the given first byte (as the runtime sees them).
    fn raw_keys(&mut self, tag: u8) -> Vec<Vec<u8>> {
        let view = KeyValueView::<Vec<u8>, Vec<u8>>::new(self.driver.tasks[0].context_mut(), STORE, "test").unwrap();
        view.prefix_scan(&vec![tag]).unwrap().into_iter().map(|(k, _)| k).collect()
    }
}

fn out(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn value_state_is_scoped_to_the_record_key() {
    let mut t = Task::start();
    t.run(&[
        ("a", "set:1"),
        ("b", "set:2"),
        ("a", "get"),
        ("b", "get"),
        ("c", "get"),
        ("a", "clear"),
        ("a", "get"),
        ("b", "get"),
    ]);
    assert_eq!(t.take(), out(&[("a", "1"), ("b", "2"), ("c", "none"), ("a", "none"), ("b", "2")]));
}

#[test]
fn list_state_appends_in_order_per_key_and_clears() {
    let mut t = Task::start();
    for (k, v) in [("a", "x"), ("b", "y"), ("a", "z"), ("a", "x")] {
        t.push(k, &format!("add:{v}"), 0);
    }
    t.run(&[("a", "list"), ("b", "list"), ("a", "clear-list"), ("a", "list")]);
    assert_eq!(t.take(), out(&[("a", "x,z,x"), ("b", "y"), ("a", "")]));
}

#[test]
fn map_state_iterates_in_key_order_per_key_and_removes_and_clears() {
    let mut t = Task::start();
    for (k, kv) in [("a", "m=1"), ("a", "c=2"), ("ab", "q=9"), ("a", "x=3"), ("a", "c=4")] {
        t.push(k, &format!("put:{kv}"), 0);
    }
    t.run(&[
        ("a", "map"),
        // "ab" is not in "a"'s map though "a" is a prefix of it.
        ("ab", "map"),
        ("a", "remove:m"),
        ("a", "map"),
        ("a", "clear-map"),
        ("a", "map"),
        ("ab", "map"),
    ]);
    assert_eq!(t.take(), out(&[("a", "c=4,m=1,x=3"), ("ab", "q=9"), ("a", "c=4,x=3"), ("a", ""), ("ab", "q=9")]));
}

#[test]
fn state_with_a_ttl_reads_as_absent_once_it_expires_and_a_write_renews_it() {
    let mut t = Task::start();
    t.set_clock(10_000);
    t.push("a", "set-ttl:1", 0);
    t.push("b", "set-ttl:2", 0);
    t.set_clock(10_000 + TTL_MS - 1);
    t.push("a", "get-ttl", 0);
    t.push("b", "set-ttl:3", 0);
    t.set_clock(10_000 + TTL_MS);
    t.push("a", "get-ttl", 0);
    t.push("b", "get-ttl", 0);
    // b was renewed at 10_000 + TTL - 1, so it lasts until one TTL later.
    t.set_clock(10_000 + 2 * TTL_MS - 2);
    t.push("b", "get-ttl", 0);
    t.set_clock(10_000 + 2 * TTL_MS - 1);
    t.push("b", "get-ttl", 0);
    assert_eq!(t.take(), out(&[("a", "1"), ("a", "none"), ("b", "3"), ("b", "3"), ("b", "none")]));
    assert!(t.raw_keys(b'S').is_empty(), "expired entries are deleted when read");
    assert!(t.raw_keys(b'X').is_empty(), "and so are their TTL index entries");
}

#[test]
fn expired_state_nobody_reads_is_deleted_by_the_wall_clock_tick() {
    let mut t = Task::start();
    t.set_clock(0);
    t.run(&[("a", "set-ttl:1"), ("b", "set-ttl:2"), ("c", "set:no-ttl")]);
    t.set_clock(500);
    t.push("b", "set-ttl:3", 0); // renewed: expires at 1500
    t.commit();
    assert_eq!(t.raw_keys(b'X').len(), 2, "one TTL index entry per entry with a TTL, renewals replace theirs");
    t.tick(TTL_MS);
    assert_eq!(t.raw_keys(b'S').len(), 2, "a expired: b and c are left");
    t.tick(TTL_MS + 500);
    assert_eq!(t.raw_keys(b'S').len(), 1, "b expired: c, without a TTL, is left");
    assert!(t.raw_keys(b'X').is_empty());
    t.push("c", "get", 0);
    assert_eq!(t.take(), out(&[("c", "no-ttl")]));
}

#[test]
fn event_time_timers_fire_in_time_then_key_order_once_the_watermark_passes_them() {
    let mut t = Task::start();
    t.run_at(&[
        ("b", "et:200", 0),
        ("a", "et:200", 0),
        ("a", "et:100", 0),
        ("c", "et:300", 0),
        ("b", "set:B", 0),
        ("z", "noop", 99),
    ]);
    assert_eq!(t.take(), vec![]);
    t.push("z", "noop", 250);
    assert_eq!(t.take(), out(&[("a", "fired:et@100:-"), ("a", "fired:et@200:-"), ("b", "fired:et@200:B")]));
    // An out-of-order record does not move the watermark.
    t.push("z", "noop", 120);
    assert_eq!(t.take(), vec![]);
    t.push("z", "noop", 300);
    assert_eq!(t.take(), out(&[("c", "fired:et@300:-")]));
    t.push("z", "noop", 10_000);
    assert_eq!(t.take(), vec![], "each timer fired once");
    assert!(t.raw_keys(b'T').is_empty(), "fired timers are deleted");
}

#[test]
fn a_timer_registered_twice_fires_once_and_a_deleted_timer_never() {
    let mut t = Task::start();
    t.run_at(&[
        ("a", "et:100", 0),
        ("a", "et:100", 0),
        ("b", "et:100", 0),
        ("b", "del-et:100", 0),
        ("z", "noop", 1_000),
    ]);
    assert_eq!(t.take(), out(&[("a", "fired:et@100:-")]));
}

#[test]
fn an_event_time_timer_at_or_below_the_watermark_fires_right_after_it_is_registered() {
    let mut t = Task::start();
    t.run_at(&[("z", "noop", 500), ("a", "et:500", 400), ("b", "et:100", 400)]);
    assert_eq!(t.take(), out(&[("a", "fired:et@500:-"), ("b", "fired:et@100:-")]));
}

#[test]
fn processing_time_timers_fire_on_the_wall_clock_tick_without_records() {
    let mut t = Task::start();
    t.set_clock(1_000);
    t.run(&[("a", "pt:1500"), ("b", "pt:1200"), ("a", "et:1200")]);
    t.tick(1_199);
    assert_eq!(t.take(), vec![]);
    t.tick(1_500);
    assert_eq!(t.take(), out(&[("b", "fired:pt@1200:-"), ("a", "fired:pt@1500:-")]), "event-time timers wait");
    t.tick(5_000);
    assert_eq!(t.take(), vec![]);
}

#[test]
fn timers_state_and_the_watermark_survive_a_restart_and_a_timer_fires_once() {
    let mut t = Task::start();
    t.run_at(&[("a", "set:A", 0), ("a", "et:500", 0), ("b", "et:700", 0), ("z", "noop", 300)]);
    t.commit();

    t.restart();
    assert_eq!(t.watermark(), 300, "the watermark is restored from the store");
    t.push("z", "noop", 600);
    assert_eq!(t.take(), out(&[("a", "fired:et@500:A")]), "state and timers came back");
    // Not committed: after a restart the record is processed again and
    // the timer fires again, with the outputs it fired with (under
    // exactly-once those were aborted).
    t.restart();
    assert_eq!(t.take(), out(&[("a", "fired:et@500:A")]));
    t.commit();

    t.restart();
    assert_eq!(t.watermark(), 600);
    // Below the restored watermark: no timer fires again, and records do
    // not move the watermark back.
    t.push("z", "noop", 100);
    t.push("z", "noop", 650);
    assert_eq!(t.take(), vec![], "the committed firing is not repeated");
    t.push("z", "noop", 700);
    assert_eq!(t.take(), out(&[("b", "fired:et@700:-")]));
}
