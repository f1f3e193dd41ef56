//! Nexmark (issue 15, item 4): queries q0-q5, q7 and q8 in rivulet and in
//! Kafka Streams (`benches/kstreams`, `rivulet.bench.Nexmark`) over the
//! same preloaded topics, as specified in the spec both sides share
//! (topics, keys, JSON names, query semantics; see `docs/benchmarks.md`,
//! "Nexmark").
//!
//! - **Input**, loaded once per benchmark run by [`generator`] (a port of
//!   the `nexmark/nexmark` generator at its default configuration, seeded):
//!   `RIVULET_BENCH_NEXMARK_EVENTS` events (1,000,000), 10 per millisecond
//!   of event time (Nexmark's default `firstEventRate` of 10,000/s), into
//!   `<prefix>-person`, `-auction` and `-bid` (4 partitions,
//!   `retention.ms=-1`), key = the id (a bid: its auction) as a decimal
//!   string, explicit partition = that number % 4, record timestamp =
//!   `dateTime`, JSON values with Nexmark's Flink field names. The base
//!   time is the load's wall clock minus the events' span, rounded down to
//!   a minute: every timestamp is in the past (the broker refuses records
//!   too far in the future), recent enough that no retention (Kafka
//!   Streams' one-day window changelogs) deletes what a run writes, and
//!   window contents are the same from run to run.
//! - **Queries** ([`topology`]): q0 pass-through, q1 currency conversion,
//!   q2 filter, q3 foreign-key table join, q4 stream-stream join then two
//!   table aggregations, q5 hopping-window count then the top auction per
//!   window, q7 tumbling-window max then the top bid per window, q8
//!   stream-stream join after a repartition.
//! - **Runs**: `RIVULET_BENCH_NEXMARK_RUNS` rounds (1), each query under
//!   `at_least_once` and `exactly_once`, rivulet and Kafka Streams (unless
//!   `RIVULET_BENCH_KSTREAMS=0`; rivulet first in even rounds), commit
//!   interval 100 ms, each run its own process with a fresh application id.
//!   Time and CPU run from the spawn until the last output is committed:
//!   the group's committed offsets at the end of every input topic the
//!   query reads, then at the end of every internal topic it consumes
//!   (the topics named `<application id>-*` other than changelogs: its
//!   repartition topics and the foreign-key join's subscription topics;
//!   under exactly-once one below the end, where the last transaction's
//!   commit marker is), held for [`QUIET`] with no internal topic growing,
//!   so that a record written last is consumed too. The time and CPU are
//!   those of the first check of that quiet stretch.
//! - **Reported** per run: events/s, CPU s per 1M events, peak RSS,
//!   committed outputs per event, committed changelog records per event
//!   (read `read_committed`; `>=` where the broker deleted some), the end
//!   offsets of the repartition and subscription topics per event (both
//!   engines delete what they consumed, so the records cannot be counted
//!   afterwards; the offsets include rivulet's watermark markers and, under
//!   exactly-once, commit markers), and a cross-check against the Kafka
//!   Streams run of the
//!   same round and guarantee: the last value per output key (a tombstone
//!   removes the key) must be the same in both, floats within 1e-9
//!   relative; for q8, whose output has one record per person-auction
//!   pair, the multiset of values per key is compared instead (which pair
//!   of a person comes last depends on the order the engine reads its two
//!   inputs in).
//!
//! `RIVULET_BENCH_WORKLOADS=Q0,Q7` runs those queries only (without the
//! W0-W4 input); by default every query runs after W0-W4.

pub(crate) mod generator;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use generator::{Auction, Bid, Event, Generator, Person};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use rivulet::prelude::*;
use rivulet::topology::JoinWindows;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::harness::child::ChildApp;
use super::harness::{self, TestRecord};
use super::{env_or, spread, Engine, Workload, COMMIT_INTERVAL_MS, KSTREAMS_JAR, PARTITIONS};

/// The queries, as `RIVULET_BENCH_WORKLOADS` names them.
pub(crate) const QUERIES: [&str; 8] = ["Q0", "Q1", "Q2", "Q3", "Q4", "Q5", "Q7", "Q8"];

/// q4's join window: the generator's longest auction, so that every bid
/// inside an auction's life is in the window.
const Q4_WINDOW_MS: u64 = generator::MAX_AUCTION_LENGTH_MS as u64;
/// The stream-stream joins' grace (q4, q8): longer than the runs' event
/// time, so neither engine drops a record as late.
const JOIN_GRACE: Duration = Duration::from_secs(3600);
/// How long the internal topics must stay consumed to their end.
const QUIET: Duration = Duration::from_millis(1000);
const KSTREAMS_MAIN: &str = "rivulet.bench.Nexmark";

// ---------------------------------------------------------------- queries

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Q1Out {
    auction: i64,
    bidder: i64,
    price: i64,
    date_time: i64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Q2Out {
    auction: i64,
    price: i64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Q3Out {
    name: String,
    city: String,
    state: String,
    id: i64,
}

/// q4: an auction's category and one of its bids' price (the table's
/// value: the highest).
#[derive(Clone, Serialize, Deserialize)]
struct Q4Price {
    category: i64,
    price: i64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Q4Sum {
    sum: i64,
    count: i64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Q4Out {
    category: i64,
    avg: f64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Q5Out {
    window_start: i64,
    auction: i64,
    count: i64,
}

/// q7's first stage: the fields of a bid it keeps.
#[derive(Clone, Serialize, Deserialize)]
struct Q7Bid {
    auction: i64,
    bidder: i64,
    price: i64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Q7Out {
    window_start: i64,
    auction: i64,
    bidder: i64,
    price: i64,
}

/// q8's person side: the fields it keeps.
#[derive(Clone, Serialize, Deserialize)]
struct Q8Person {
    id: i64,
    name: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct Q8Out {
    id: i64,
    name: String,
    auction: i64,
}

fn topics(prefix: &str) -> [String; 3] {
    [format!("{prefix}-person"), format!("{prefix}-auction"), format!("{prefix}-bid")]
}

/// The input topics (0 person, 1 auction, 2 bid) a query reads.
fn inputs_of(query: &str) -> &'static [usize] {
    match query {
        "Q3" | "Q8" => &[0, 1],
        "Q4" => &[1, 2],
        _ => &[2],
    }
}

/// The higher of two bids by price, then the lower auction id, then the
/// lower bidder (q7's order; an order independent of arrival).
fn q7_max(a: Q7Out, b: Q7Out) -> Q7Out {
    if (b.price, -b.auction, -b.bidder) > (a.price, -a.auction, -a.bidder) {
        b
    } else {
        a
    }
}

/// Query `query`'s topology over the topics of `prefix`, writing to
/// `output` (the child side).
pub(crate) fn topology(query: &str, prefix: &str, output: &str) -> Topology {
    let [person, auction, bid] = topics(prefix);
    let mut b = Topology::builder();
    let s = Serdes::string;
    match query {
        "Q0" => b.stream(&bid, s(), Serdes::json::<Bid>()).to(output, s(), Serdes::json::<Bid>()),
        "Q1" => b
            .stream(&bid, s(), Serdes::json::<Bid>())
            .map_values(|b: Bid| Q1Out {
                auction: b.auction,
                bidder: b.bidder,
                price: b.price * 908 / 1000,
                date_time: b.date_time,
            })
            .to(output, s(), Serdes::json::<Q1Out>()),
        "Q2" => b
            .stream(&bid, s(), Serdes::json::<Bid>())
            .filter(|_, b| b.auction % 123 == 0)
            .map_values(|b: Bid| Q2Out { auction: b.auction, price: b.price })
            .to(output, s(), Serdes::json::<Q2Out>()),
        "Q3" => {
            // The inputs are partitioned by id % 4, rivulet's internal
            // topics by murmur2 (no custom partitioner): the foreign-key
            // join's subscriptions and responses would reach other tasks
            // than the rows'. So both sides go through a repartition topic
            // first, and become tables there (the last row per id: the
            // same table, as Nexmark never updates an auction or a person;
            // filtered before, which for such rows is the same as after).
            let auctions = b
                .stream(&auction, s(), Serdes::json::<Auction>())
                .filter(|_, a| a.category == 10)
                .group_by(|id, _| id.clone(), s())
                .reduce("q3-auctions-category-10", |_, newer| newer);
            let persons = b
                .stream(&person, s(), Serdes::json::<Person>())
                .filter(|_, p| matches!(p.state.as_str(), "OR" | "ID" | "CA"))
                .group_by(|id, _| id.clone(), s())
                .reduce("q3-persons-or-id-ca", |_, newer| newer);
            auctions
                .join_foreign_key(
                    &persons,
                    "q3-seller",
                    |a: &Auction| a.seller.to_string(),
                    |_, a, p| Q3Out { name: p.name.clone(), city: p.city.clone(), state: p.state.clone(), id: a.id },
                    Serdes::json::<Q3Out>(),
                )
                .to_change_stream()
                .to(output, s(), Serdes::optional(Serdes::json::<Q3Out>()));
        }
        "Q4" => {
            let bids = b.stream(&bid, s(), Serdes::json::<Bid>());
            let auctions = b.stream(&auction, s(), Serdes::json::<Auction>());
            let window = JoinWindows::symmetric(Duration::from_millis(Q4_WINDOW_MS)).grace(JOIN_GRACE);
            bids.join_stream(&auctions, "q4-bids-auctions", window, |_, b, a| {
                (a.date_time <= b.date_time && b.date_time <= a.expires)
                    .then_some(Q4Price { category: a.category, price: b.price })
            })
            .flat_map_values(|p: Option<Q4Price>| p)
            .with_serdes(s(), Serdes::json::<Q4Price>())
            .group_by_key()
            .reduce("q4-max-price", |a, b| if b.price > a.price { b } else { a })
            .group_by(|_, p: Q4Price| (p.category.to_string(), p.price), s(), Serdes::i64())
            .aggregate(
                "q4-per-category",
                || Q4Sum { sum: 0, count: 0 },
                |_, price, a| Q4Sum { sum: a.sum + price, count: a.count + 1 },
                |_, price, a| Q4Sum { sum: a.sum - price, count: a.count - 1 },
                Serdes::json::<Q4Sum>(),
            )
            .to_stream()
            .filter(|_, a| a.count > 0)
            .try_map(|category: String, a: Q4Sum| {
                let out = Q4Out { category: category.parse()?, avg: a.sum as f64 / a.count as f64 };
                Ok::<_, std::num::ParseIntError>((category, out))
            })
            .to(output, s(), Serdes::json::<Q4Out>());
        }
        "Q5" => b
            .stream(&bid, s(), Serdes::json::<Bid>())
            .group_by_key()
            .windowed_by(Windows::hopping(Duration::from_secs(10), Duration::from_secs(2)).grace(Duration::ZERO))
            .emit_final()
            .count("q5-bids-per-auction")
            .try_map(|w: Windowed<String>, count: i64| {
                let out = Q5Out { window_start: w.start, auction: w.key.parse()?, count };
                Ok::<_, std::num::ParseIntError>((w.start.to_string(), out))
            })
            .with_serdes(s(), Serdes::json::<Q5Out>())
            .group_by_key()
            .reduce("q5-hottest", |a, b| if (b.count, -b.auction) > (a.count, -a.auction) { b } else { a })
            .to_stream()
            .to(output, s(), Serdes::json::<Q5Out>()),
        "Q7" => b
            .stream(&bid, s(), Serdes::json::<Bid>())
            .map_values(|b: Bid| Q7Bid { auction: b.auction, bidder: b.bidder, price: b.price })
            .with_serdes(s(), Serdes::json::<Q7Bid>())
            .group_by_key()
            .windowed_by(Windows::tumbling(Duration::from_secs(10)).grace(Duration::ZERO))
            .emit_final()
            .reduce("q7-max-per-auction", |a, b| if (b.price, -b.bidder) > (a.price, -a.bidder) { b } else { a })
            .map(|w: Windowed<String>, b: Q7Bid| {
                let out = Q7Out { window_start: w.start, auction: b.auction, bidder: b.bidder, price: b.price };
                (w.start.to_string(), out)
            })
            .with_serdes(s(), Serdes::json::<Q7Out>())
            .group_by_key()
            .reduce("q7-highest", q7_max)
            .to_stream()
            .to(output, s(), Serdes::json::<Q7Out>()),
        "Q8" => {
            let persons = b
                .stream(&person, s(), Serdes::json::<Person>())
                .map_values(|p: Person| Q8Person { id: p.id, name: p.name })
                .with_serdes(s(), Serdes::json::<Q8Person>())
                // Partitioned by id % 4; the auctions re-keyed by seller go
                // by murmur2: both through a repartition topic so that they
                // meet (rivulet has no custom partitioner).
                .repartition("q8-persons-by-id");
            let auctions = b
                .stream(&auction, s(), Serdes::json::<Auction>())
                .map(|_, a: Auction| (a.seller.to_string(), a.id))
                .with_serdes(s(), Serdes::i64());
            let window = JoinWindows::symmetric(Duration::from_secs(10)).grace(JOIN_GRACE);
            persons
                .join_stream(&auctions, "q8-persons-auctions", window, |_, p, auction| Q8Out {
                    id: p.id,
                    name: p.name.clone(),
                    auction: *auction,
                })
                .to(output, s(), Serdes::json::<Q8Out>());
        }
        other => panic!("unknown Nexmark query {other}"),
    }
    b.build().unwrap()
}

// ---------------------------------------------------------------- input

/// The loaded input: topic prefix, events, and each topic's end offsets.
struct Input {
    prefix: String,
    events: usize,
    ends: [TopicPartitionList; 3],
}

impl Input {
    /// The end offsets of the topics `query` reads.
    fn ends_of(&self, query: &str) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for &i in inputs_of(query) {
            for e in self.ends[i].elements() {
                tpl.add_partition_offset(e.topic(), e.partition(), e.offset()).unwrap();
            }
        }
        tpl
    }
}

fn record(id: i64, value: Vec<u8>, timestamp: i64) -> TestRecord {
    TestRecord {
        partition: (id % PARTITIONS as i64) as i32,
        key: Some(id.to_string().into_bytes()),
        value: Some(value),
        headers: vec![],
        timestamp: Some(timestamp),
    }
}

/// Generates and writes the three topics, in chunks (each chunk's records
/// acknowledged before the next, so a partition's order is the generator's).
async fn load(events: usize, seed: u64) -> Input {
    let prefix = harness::unique("nexmark");
    let names = topics(&prefix);
    for t in &names {
        harness::create_topic(t, PARTITIONS, &[("retention.ms", "-1")]).await;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let span = (events as f64 * 1000.0 / generator::EVENT_RATE) as i64 + 1;
    let base = (now - span - 60_000).div_euclid(60_000) * 60_000;
    let started = Instant::now();
    let mut gen = Generator::new(seed, base);
    let mut counts = [0usize; 3];
    // For the expected sizes of q3's and q8's results (printed).
    let mut persons: BTreeMap<i64, (bool, i64)> = BTreeMap::new();
    let mut auctions: Vec<(i64, bool, i64)> = Vec::new();
    let mut left = events;
    while left > 0 {
        let chunk = left.min(100_000);
        left -= chunk;
        let mut out: [Vec<TestRecord>; 3] = Default::default();
        for _ in 0..chunk {
            let (i, r) = match gen.next_event() {
                Event::Person(p) => {
                    persons.insert(p.id, (matches!(p.state.as_str(), "OR" | "ID" | "CA"), p.date_time));
                    (0, record(p.id, serde_json::to_vec(&p).unwrap(), p.date_time))
                }
                Event::Auction(a) => {
                    auctions.push((a.seller, a.category == 10, a.date_time));
                    (1, record(a.id, serde_json::to_vec(&a).unwrap(), a.date_time))
                }
                Event::Bid(b) => (2, record(b.auction, serde_json::to_vec(&b).unwrap(), b.date_time)),
            };
            out[i].push(r);
        }
        for (i, records) in out.iter().enumerate() {
            counts[i] += records.len();
            harness::produce_many(&names[i], records).await;
        }
    }
    let ends = names.clone().map(|t| {
        let mut tpl = TopicPartitionList::new();
        for (p, (_, high)) in harness::watermarks(&t).into_iter().enumerate() {
            tpl.add_partition_offset(&t, p as i32, Offset::Offset(high)).unwrap();
        }
        tpl
    });
    let q3 = auctions.iter().filter(|(seller, cat10, _)| *cat10 && persons.get(seller).is_some_and(|p| p.0)).count();
    let q8 =
        auctions.iter().filter(|(seller, _, t)| persons.get(seller).is_some_and(|p| (p.1 - t).abs() <= 10_000)).count();
    eprintln!(
        "nexmark: loaded {events} events ({} persons, {} auctions, {} bids; base time {base}) in {:.1}s; \
         q3 should give {q3} auctions, q8 {q8} pairs",
        counts[0],
        counts[1],
        counts[2],
        started.elapsed().as_secs_f64()
    );
    Input { prefix, events, ends }
}

// ---------------------------------------------------------------- runs

/// What one run measured.
struct Run {
    seconds: f64,
    cpu: f64,
    rss_mib: f64,
    outputs: u64,
    /// Committed changelog records.
    changelog: u64,
    /// Some changelog records were deleted by the broker.
    truncated: bool,
    /// Offsets of the repartition and subscription topics (records, and
    /// under exactly-once the commit markers).
    repartition: u64,
}

/// Seconds since the spawn, CPU seconds, peak RSS MiB.
type Measure = (f64, f64, f64);

/// The final output: per key, the last value (q8: every value, sorted).
type Finals = BTreeMap<String, Vec<Value>>;

fn spawn_kstreams(query: &str, guarantee: &str, prefix: &str, output: &str, group: &str, state: &Path) -> ChildApp {
    let mut c = Command::new("java");
    if let Ok(opts) = std::env::var("RIVULET_BENCH_JAVA_OPTS") {
        c.args(opts.split_whitespace());
    }
    c.arg("-cp").arg(KSTREAMS_JAR).arg(KSTREAMS_MAIN).args([
        &query.to_lowercase(),
        guarantee,
        harness::bootstrap(),
        prefix,
        output,
        group,
        &state.display().to_string(),
        COMMIT_INTERVAL_MS,
    ]);
    ChildApp::start(c)
}

/// The application's topics (`<group>-*`) and their partition counts.
fn internal_topics(group: &str) -> Vec<(String, i32)> {
    let probe: BaseConsumer = harness::client_config().create().unwrap();
    let md = probe.fetch_metadata(None, Duration::from_secs(30)).unwrap();
    let prefix = format!("{group}-");
    md.topics()
        .iter()
        .filter(|t| t.name().starts_with(&prefix))
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect()
}

/// After the inputs: waits until the group's committed offsets are at the
/// end of every internal topic it consumes (under exactly-once at least
/// one below: the commit marker) and stay there for [`QUIET`] with no such
/// topic growing. Returns the seconds since `spawned`, the CPU seconds and
/// the peak RSS at the first check of that quiet stretch.
async fn wait_internal(
    child: &mut ChildApp,
    w: Workload,
    guarantee: &str,
    checker: &BaseConsumer,
    group: &str,
    spawned: Instant,
) -> Measure {
    let consumed: Vec<(String, i32)> =
        internal_topics(group).into_iter().filter(|(t, _)| !t.ends_with("-changelog")).collect();
    let mut tpl = TopicPartitionList::new();
    for (t, n) in &consumed {
        for p in 0..*n {
            tpl.add_partition(t, p);
        }
    }
    let slack = i64::from(guarantee == "exactly_once");
    // Since when, what was measured then, and the end offsets then.
    let mut candidate: Option<(Instant, Measure, Vec<i64>)> = None;
    loop {
        let highs: Vec<i64> = tpl
            .elements()
            .iter()
            .map(|e| checker.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(5)).map_or(-1, |(_, h)| h))
            .collect();
        let done = highs.is_empty()
            || checker.committed_offsets(tpl.clone(), Duration::from_secs(5)).is_ok_and(|committed| {
                tpl.elements().iter().zip(&highs).all(|(e, &high)| {
                    let c = committed.find_partition(e.topic(), e.partition()).map(|c| c.offset());
                    high == 0 || matches!(c, Some(Offset::Offset(o)) if o >= high - slack)
                })
            });
        if !done {
            candidate = None;
        } else {
            match &candidate {
                Some((since, measured, h)) if *h == highs => {
                    if since.elapsed() >= QUIET || highs.is_empty() {
                        return *measured;
                    }
                }
                _ => {
                    let (cpu, rss) = super::proc_usage(child.id());
                    candidate = Some((Instant::now(), (spawned.elapsed().as_secs_f64(), cpu, rss), highs));
                    continue;
                }
            }
        }
        if let Some(status) = child.try_wait() {
            panic!("{} ({guarantee}) exited early with {status}; log:\n{}", w.label(), child.log());
        }
        assert!(spawned.elapsed() < Duration::from_secs(900), "{} ({guarantee}) took over 15 minutes", w.label());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads `output` (`read_committed`): the records, and the final values.
fn finals(output: &str, every_value: bool) -> (u64, Finals) {
    let records = harness::read_committed(output);
    let mut m = Finals::new();
    for r in &records {
        let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
        match &r.value {
            None if !every_value => {
                m.remove(&key);
            }
            None => {}
            Some(v) => {
                let v: Value = serde_json::from_slice(v)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(v).into_owned()));
                if every_value {
                    m.entry(key).or_default().push(v);
                } else {
                    m.insert(key, vec![v]);
                }
            }
        }
    }
    if every_value {
        for vs in m.values_mut() {
            vs.sort_by_cached_key(|v| v.to_string());
        }
    }
    (records.len() as u64, m)
}

async fn run_once(query: &'static str, engine: Engine, guarantee: &str, input: &Input) -> (Run, Finals) {
    let w = Workload { name: query, engine };
    let output = harness::unique(&format!("nexmark-{}-out", query.to_lowercase()));
    harness::create_topic(&output, PARTITIONS, &[("retention.ms", "-1")]).await;
    let group = harness::unique(&format!("nexmark-{}", query.to_lowercase()));
    let state = tempfile::tempdir().unwrap();
    let checker: BaseConsumer = harness::client_config().set("group.id", &group).create().unwrap();
    let spawned = Instant::now();
    let mut child = match engine {
        Engine::KStreams => spawn_kstreams(query, guarantee, &input.prefix, &output, &group, state.path()),
        _ => super::spawn(w, guarantee, &input.prefix, &output, &group, state.path()),
    };
    super::wait_committed(&mut child, w, guarantee, &checker, &input.ends_of(query), spawned).await;
    let (seconds, cpu, rss_mib) = wait_internal(&mut child, w, guarantee, &checker, &group, spawned).await;
    super::stop(child, engine);
    // Changelogs: committed records. Repartition (and subscription)
    // topics: offsets, as both engines purge what they consumed.
    let (mut changelog, mut truncated, mut repartition) = (0, false, 0);
    let mut written = Vec::new();
    for (t, n) in internal_topics(&group) {
        let name = t.strip_prefix(&group).unwrap_or(&t).to_string();
        if t.ends_with("-changelog") {
            let (records, _, cut) = super::count_committed_matching(&t, n, b"");
            changelog += records;
            truncated |= cut;
            written.push(format!("{name}: {}{records}", if cut { ">= " } else { "" }));
        } else {
            let offsets: i64 = harness::watermarks(&t).iter().map(|(_, high)| high).sum();
            repartition += offsets as u64;
            written.push(format!("{name}: {offsets} offsets"));
        }
    }
    eprintln!("  internal topics of {}: {}", w.label(), written.join(", "));
    let (outputs, finals) = finals(&output, query == "Q8");
    (Run { seconds, cpu, rss_mib, outputs, changelog, truncated, repartition }, finals)
}

/// JSON values equal, numbers that are not both integers within 1e-9
/// relative.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if !(x.is_i64() && y.is_i64()) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| json_equal(v, w)),
        _ => a == b,
    }
}

/// The cross-check line: rivulet's final values against Kafka Streams'.
fn cross_check(query: &str, guarantee: &str, rivulet: &Finals, kstreams: &Finals) -> String {
    let q = query.to_lowercase();
    let equal_values = |a: &[Value], b: &[Value]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_equal(x, y));
    let common: Vec<&String> = rivulet.keys().filter(|k| kstreams.contains_key(*k)).collect();
    let differing: Vec<&String> =
        common.iter().copied().filter(|k| !equal_values(&rivulet[*k], &kstreams[*k])).collect();
    let equal = common.len() - differing.len();
    let mut line = if common.len() == rivulet.len() && common.len() == kstreams.len() {
        format!("{q} {guarantee}: {} keys, {equal} equal", common.len())
    } else {
        format!(
            "{q} {guarantee}: rivulet {} keys, Kafka Streams {} keys, {} in both, {equal} equal",
            rivulet.len(),
            kstreams.len(),
            common.len()
        )
    };
    let show = |vs: &[Value]| vs.iter().map(Value::to_string).collect::<Vec<_>>().join(", ");
    for k in differing.iter().take(3) {
        line.push_str(&format!(
            "\n    key {k}: rivulet {} / Kafka Streams {}",
            show(&rivulet[*k]),
            show(&kstreams[*k])
        ));
    }
    let only = |a: &Finals, b: &Finals| a.keys().filter(|k| !b.contains_key(*k)).take(3).cloned().collect::<Vec<_>>();
    let (only_r, only_k) = (only(rivulet, kstreams), only(kstreams, rivulet));
    if !only_r.is_empty() {
        line.push_str(&format!("\n    only in rivulet (first): {}", only_r.join(", ")));
    }
    if !only_k.is_empty() {
        line.push_str(&format!("\n    only in Kafka Streams (first): {}", only_k.join(", ")));
    }
    line
}

/// Whether the Kafka Streams jar has the Nexmark class (the driver built
/// the jar, `build_kstreams`, before any workload ran).
fn kstreams_ready() -> bool {
    let class = format!("{}.class", KSTREAMS_MAIN.replace('.', "/"));
    std::fs::read(KSTREAMS_JAR).is_ok_and(|jar| jar.windows(class.len()).any(|w| w == class.as_bytes()))
}

/// The queries `RIVULET_BENCH_WORKLOADS` selects (all when unset).
pub(crate) fn selected(only: Option<&[String]>) -> Vec<&'static str> {
    QUERIES.into_iter().filter(|q| only.is_none_or(|o| o.iter().any(|x| x == q))).collect()
}

/// Loads the input and runs `queries` (see the module docs).
pub(crate) async fn run(queries: &[&'static str], kstreams: bool) {
    if queries.is_empty() {
        return;
    }
    let events: usize = env_or("RIVULET_BENCH_NEXMARK_EVENTS", 1_000_000);
    let rounds: usize = env_or("RIVULET_BENCH_NEXMARK_RUNS", 1);
    let seed: u64 = env_or("RIVULET_BENCH_SEED", 0x9E37_79B9_7F4A_7C15);
    let kstreams = kstreams && {
        let ready = kstreams_ready();
        if !ready {
            eprintln!("nexmark: {KSTREAMS_JAR} has no {KSTREAMS_MAIN}: Kafka Streams left out of the Nexmark runs");
        }
        ready
    };
    let input = load(events, seed).await;
    let guarantees = ["at_least_once", "exactly_once"];
    let mut results: BTreeMap<(&str, &str, Engine), Vec<Run>> = BTreeMap::new();
    let mut checks = Vec::new();
    for round in 0..rounds {
        for guarantee in guarantees {
            for &q in queries {
                let mut engines = vec![Engine::Rivulet];
                if kstreams {
                    engines.push(Engine::KStreams);
                }
                if round % 2 == 1 {
                    engines.reverse();
                }
                let mut finals: BTreeMap<Engine, Finals> = BTreeMap::new();
                for engine in engines {
                    let (r, f) = run_once(q, engine, guarantee, &input).await;
                    eprintln!(
                        "nexmark round {} {guarantee} {}: {:.1}s, {:.0} events/s, {:.1} CPU s, peak RSS {:.0} MiB, {} outputs, {}{} changelog records, {} repartition offsets",
                        round + 1,
                        Workload { name: q, engine }.label(),
                        r.seconds,
                        events as f64 / r.seconds,
                        r.cpu,
                        r.rss_mib,
                        r.outputs,
                        if r.truncated { ">= " } else { "" },
                        r.changelog,
                        r.repartition,
                    );
                    finals.insert(engine, f);
                    results.entry((q, guarantee, engine)).or_default().push(r);
                }
                if let (Some(r), Some(k)) = (finals.get(&Engine::Rivulet), finals.get(&Engine::KStreams)) {
                    let line = cross_check(q, guarantee, r, k);
                    eprintln!("nexmark round {} cross-check {line}", round + 1);
                    checks.push(format!("round {}: {line}", round + 1));
                }
            }
        }
    }
    report(&input, rounds, queries, &results, &checks);
}

fn report(
    input: &Input,
    rounds: usize,
    queries: &[&'static str],
    results: &BTreeMap<(&str, &str, Engine), Vec<Run>>,
    checks: &[String],
) {
    let n = input.events as f64;
    println!(
        "\nNexmark: {} events, {PARTITIONS} partitions, {rounds} rounds, commit interval {COMMIT_INTERVAL_MS} ms; median (min-max)\n",
        input.events
    );
    println!("| query | guarantee | events/s | CPU s per 1M events | peak RSS MiB | events per CPU-s vs KS | peak RSS vs KS | outputs per event | changelog records per event | repartition offsets per event |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for guarantee in ["at_least_once", "exactly_once"] {
        for &q in queries {
            for engine in [Engine::Rivulet, Engine::KStreams] {
                let Some(runs) = results.get(&(q, guarantee, engine)) else { continue };
                let ks = results.get(&(q, guarantee, Engine::KStreams)).filter(|_| engine == Engine::Rivulet);
                let vs_ks = |f: &dyn Fn(&Run, &Run) -> f64| {
                    ks.map_or_else(|| "-".into(), |ks| spread(runs.iter().zip(ks).map(|(a, b)| f(a, b)).collect(), 2))
                };
                let at_least = if runs.iter().any(|r| r.truncated) { ">= " } else { "" };
                println!(
                    "| {} | {guarantee} | {} | {} | {} | {} | {} | {} | {at_least}{} | {} |",
                    Workload { name: q, engine }.label(),
                    spread(runs.iter().map(|r| n / r.seconds).collect(), 0),
                    spread(runs.iter().map(|r| r.cpu / n * 1e6).collect(), 2),
                    spread(runs.iter().map(|r| r.rss_mib).collect(), 0),
                    vs_ks(&|a, b| b.cpu / a.cpu),
                    vs_ks(&|a, b| a.rss_mib / b.rss_mib),
                    spread(runs.iter().map(|r| r.outputs as f64 / n).collect(), 3),
                    spread(runs.iter().map(|r| r.changelog as f64 / n).collect(), 3),
                    spread(runs.iter().map(|r| r.repartition as f64 / n).collect(), 3),
                );
            }
        }
    }
    if !checks.is_empty() {
        println!("\nCross-check, final value per output key, rivulet against Kafka Streams:\n");
        for c in checks {
            println!("- {c}");
        }
    }
}
