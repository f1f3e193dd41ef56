//! Word count: the quickstart.
//!
//! ```sh
//! cargo run --example wordcount
//! ```
//!
//! With no Kafka configured, it starts an embedded Kafka cluster in the
//! process (librdkafka's mock cluster), writes a few sample lines, counts
//! the words, prints the counts and exits.
//!
//! With a real cluster it runs until stopped (Ctrl-C):
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=localhost:9092 cargo run --example wordcount
//! ```
//!
//! reading text lines from `app.input_topic` and writing, for every word
//! (lowercased), its count as decimal text to `app.output_topic`, keyed by
//! the word. Both topics must exist; rivulet creates its internal topics
//! (`wordcount-word-counts-repartition`, `wordcount-word-counts-changelog`).
//!
//! `[app]` settings (defaults):
//! - `input_topic` ("lines"): text lines, any key;
//! - `output_topic` ("word-counts"): word -> count.
//!
//! Other defaults set here: `application_id = "wordcount"`, and
//! `state_dir` = `<temp dir>/rivulet-wordcount`.
//!
//! The binary takes rivulet's subcommands (`cargo run --example wordcount
//! -- --help`): `describe` prints the topology; with a real cluster,
//! `reset` makes the next run count every line again from the start.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use rivulet::kafka::embedded::EmbeddedKafka;
use rivulet::prelude::*;

#[derive(serde::Deserialize)]
struct Settings {
    input_topic: String,
    output_topic: String,
}

const SAMPLE: &[&str] = &[
    "the quick brown fox jumps over the lazy dog",
    "The dog barks",
    "a fox is quick and a dog is lazy",
    "rivulet counts words the way Kafka Streams would",
];

fn topology(settings: &Settings) -> Result<Topology> {
    let mut b = Topology::builder();
    b.stream(&settings.input_topic, Serdes::unit(), Serdes::string())
        .flat_map_values(|line: String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
        .group_by(|_, word: &String| word.clone(), Serdes::string())
        .count("word-counts")
        .to_stream()
        .map_values(|count: i64| count.to_string())
        .to(&settings.output_topic, Serdes::string(), Serdes::string());
    Ok(b.build()?)
}

fn main() -> ExitCode {
    let state_dir = std::env::temp_dir().join("rivulet-wordcount");
    let defaults = Config::loader()
        .default_value("application_id", "wordcount")
        .default_value("state_dir", &state_dir.to_string_lossy())
        .default_value("app.input_topic", "lines")
        .default_value("app.output_topic", "word-counts")
        .default_value("log.level", "warn,rivulet=info");
    // `run` (the default), `describe` or `reset`; see `--help`.
    rivulet::Main::new(defaults).run_with(run_or_demo).main(|config| topology(&config.app()?))
}

/// `run`: on the configured cluster, or the demo on an embedded one when
/// none is configured.
fn run_or_demo(mut config: Config, topology: Topology) -> std::result::Result<(), Box<dyn std::error::Error>> {
    println!("{}", topology.describe());
    if !config.kafka.bootstrap_servers.is_empty() {
        return Ok(App::new(config)?.run(topology)?);
    }
    let settings: Settings = config.app()?;

    // Zero-setup demo on an embedded cluster.
    let kafka = EmbeddedKafka::start()?;
    config.kafka.bootstrap_servers = kafka.bootstrap_servers();
    config.commit_interval = Duration::from_millis(200);
    // Any free local port: the demo must not need 8080.
    config.http.listen = ([127, 0, 0, 1], 0).into();
    // A fresh state dir: the embedded cluster starts empty every time.
    let _ = std::fs::remove_dir_all(config.state_dir.join(&config.application_id));
    kafka.create_topics_for(&topology, &config, 2)?;
    write_sample(&config.kafka.bootstrap_servers, &settings.input_topic)?;

    let words: usize = SAMPLE.iter().map(|l| l.split_whitespace().count()).sum();
    let app = App::new(config.clone())?.start(topology)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Every line, then every word after the repartition, and a commit after that.
    while app.stats().records_processed < (SAMPLE.len() + words) as u64 || app.stats().commits < 2 {
        if Instant::now() > deadline || app.has_stopped() {
            app.shutdown()?;
            return Err("the word count did not finish within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    app.shutdown()?;

    let counts = read_counts(&config.kafka.bootstrap_servers, &settings.output_topic)?;
    println!("word counts in {}:", settings.output_topic);
    for (word, count) in &counts {
        println!("  {word:>8} {count}");
    }
    Ok(())
}

fn write_sample(bootstrap: &str, topic: &str) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    for line in SAMPLE {
        producer.send(BaseRecord::<[u8], str>::to(topic).payload(line)).map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(10))?;
    Ok(())
}

/// The latest count per word in the output topic.
fn read_counts(
    bootstrap: &str,
    topic: &str,
) -> std::result::Result<BTreeMap<String, String>, Box<dyn std::error::Error>> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", "wordcount-reader").create()?;
    let partitions = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?.topics()[0].partitions().len();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = BTreeMap::new();
    for p in 0..partitions as i32 {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high > low {
            remaining.insert(p, high);
        }
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut counts = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !remaining.is_empty() && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m?;
            let word = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let count = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            counts.insert(word, count);
            if remaining.get(&m.partition()).is_some_and(|high| m.offset() + 1 >= *high) {
                remaining.remove(&m.partition());
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use rivulet::testing::TopologyTestDriver;

    use super::*;

    #[test]
    fn counts_words_across_lines_and_a_restart_from_the_changelog() -> Result<()> {
        let settings = Settings { input_topic: "lines".into(), output_topic: "word-counts".into() };
        let mut driver = TopologyTestDriver::new(topology(&settings)?)?;
        let lines = driver.input_topic("lines", Serdes::unit(), Serdes::string());
        let counts = driver.output_topic("word-counts", Serdes::string(), Serdes::string());

        driver.pipe(&lines, (), "To be or not to be".into(), 1_000)?;
        // A new machine: the store comes back from its changelog.
        driver.restart_without_local_state()?;
        driver.pipe(&lines, (), "be quick".into(), 2_000)?;

        let out = driver.read_key_values(&counts)?;
        let expected = [("to", "1"), ("be", "1"), ("or", "1"), ("not", "1"), ("to", "2"), ("be", "2")]
            .into_iter()
            .chain([("be", "3"), ("quick", "1")])
            .map(|(w, n)| (w.to_string(), n.to_string()))
            .collect::<Vec<_>>();
        assert_eq!(out, expected);
        assert_eq!(driver.store_get::<String, i64>("word-counts", &"be".into())?, Some(3));
        Ok(())
    }
}
