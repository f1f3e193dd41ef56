//! The driver's input and output topics: piping records in, reading
//! records out (typed or raw), dead letters and late records.

use super::*;

/// An input topic with the serdes that turn its keys and values into
/// bytes (Kafka Streams' `TestInputTopic`); from
/// [`TopologyTestDriver::input_topic`].
///
/// ```
/// # use rivulet::prelude::*;
/// # use rivulet::testing::TopologyTestDriver;
/// # fn main() -> rivulet::Result<()> {
/// # let mut b = Topology::builder();
/// # b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to("out", Serdes::string(), Serdes::string());
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// let input = driver.input_topic("in", Serdes::string(), Serdes::string());
/// driver.pipe(&input, "k".into(), "hello".into(), 0)?;
/// # let output = driver.output_topic("out", Serdes::string(), Serdes::string());
/// # assert_eq!(driver.read_key_values(&output)?.len(), 1);
/// # Ok(()) }
/// ```
pub struct TestInputTopic<K: 'static, V: 'static> {
    pub(super) name: String,
    pub(super) key: Arc<dyn Serde<K>>,
    pub(super) value: Arc<dyn Serde<V>>,
}

/// An output topic with the serdes that read its records (Kafka Streams'
/// `TestOutputTopic`); from [`TopologyTestDriver::output_topic`].
///
/// ```
/// # use rivulet::prelude::*;
/// # use rivulet::testing::TopologyTestDriver;
/// # fn main() -> rivulet::Result<()> {
/// # let mut b = Topology::builder();
/// # b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to("out", Serdes::string(), Serdes::string());
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
/// let output = driver.output_topic("out", Serdes::string(), Serdes::string());
/// driver.pipe(&input, "k".into(), "hello".into(), 0)?;
/// assert_eq!(driver.read_key_values(&output)?, [("k".to_string(), "HELLO".to_string())]);
/// # Ok(()) }
/// ```
pub struct TestOutputTopic<K: 'static, V: 'static> {
    pub(super) name: String,
    pub(super) key: Arc<dyn Serde<K>>,
    pub(super) value: Arc<dyn Serde<V>>,
}

impl TopologyTestDriver {
    /// Pipes one record (no headers) into `topic` and processes it, with
    /// everything it leads to.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .count("counts")
    ///     .to_stream()
    ///     .to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// for key in ["a", "b", "a"] {
    ///     driver.pipe(&input, key.to_string(), "x".into(), 0)?;
    /// }
    /// let counts = driver.read_key_values(&output)?;
    /// assert_eq!(counts, [("a".to_string(), 1), ("b".to_string(), 1), ("a".to_string(), 2)]);
    /// # Ok(()) }
    /// ```
    pub fn pipe<K: 'static, V: 'static>(
        &mut self,
        topic: &TestInputTopic<K, V>,
        key: K,
        value: V,
        timestamp: i64,
    ) -> Result<()> {
        self.pipe_record(topic, Record::new(key, value, timestamp))
    }

    /// [`pipe`](Self::pipe) with the record's headers.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to("out", Serdes::string(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// let mut record = Record::new("k".to_string(), "v".to_string(), 1_000);
    /// record.headers.push(("trace-id".into(), Some(b"abc".to_vec())));
    /// driver.pipe_record(&input, record)?;
    /// let out = driver.read(&output)?;
    /// assert_eq!(out[0].headers, [("trace-id".to_string(), Some(b"abc".to_vec()))]); // passed through
    /// # Ok(()) }
    /// ```
    pub fn pipe_record<K: 'static, V: 'static>(
        &mut self,
        topic: &TestInputTopic<K, V>,
        record: Record<K, V>,
    ) -> Result<()> {
        let key = encode(&*topic.key, &record.key, &topic.name, "key")?;
        let value = encode(&*topic.value, &record.value, &topic.name, "value")?;
        self.pipe_raw(&topic.name, RawRecord { key, value, timestamp: record.timestamp, headers: record.headers })
    }

    /// Pipes a record's bytes, as any producer could have written them
    /// (for records the topology cannot read).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to("out", Serdes::string(), Serdes::string());
    /// use rivulet::testing::RawRecord;
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// // Under errors.deserialization = "fail" (the default) a bad record stops the driver.
    /// let err = driver.pipe_raw("in", RawRecord::new(Some(b"k"), Some(&[0xff]), 0)).unwrap_err();
    /// assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    /// # Ok(()) }
    /// ```
    pub fn pipe_raw(&mut self, topic: &str, record: RawRecord) -> Result<()> {
        // A global table's topic goes straight to its store, as the global
        // thread would have it by the next record.
        if let Some(g) = self.app.topology.globals.iter().find(|g| g.topic == topic) {
            if let Some(store) = self.app.globals.get(&g.name) {
                let next = self.collector.log.borrow().len(topic) as i64 + 1;
                store.apply(record.key.as_deref(), record.value.as_deref(), (topic, 0, next))?;
            }
        }
        {
            let mut log = self.collector.log.borrow_mut();
            log.append(topic, record);
            log.commit_topic(topic);
        }
        self.settle()
    }

    /// The records written to `topic` since the last read, decoded, with
    /// their timestamps and headers.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to("out", Serdes::string(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "k".into(), "v".into(), 1_000)?;
    /// assert_eq!(driver.read(&output)?, [Record::new("k".to_string(), "V".to_string(), 1_000)]);
    /// # Ok(()) }
    /// ```
    pub fn read<K: 'static, V: 'static>(&mut self, topic: &TestOutputTopic<K, V>) -> Result<Vec<Record<K, V>>> {
        let mut out = Vec::new();
        for raw in self.read_raw(&topic.name) {
            let key = topic.key.deserialize(raw.key.as_deref()).map_err(|e| decode_error(&topic.name, "key", e))?;
            let value =
                topic.value.deserialize(raw.value.as_deref()).map_err(|e| decode_error(&topic.name, "value", e))?;
            out.push(Record { key, value, timestamp: raw.timestamp, headers: raw.headers });
        }
        Ok(out)
    }

    /// [`read`](Self::read), keys and values only.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to("out", Serdes::string(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "a".into(), "x".into(), 0)?;
    /// driver.pipe(&input, "b".into(), "y".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&output)?, [("a".to_string(), "X".to_string()), ("b".to_string(), "Y".to_string())]);
    /// # Ok(()) }
    /// ```
    pub fn read_key_values<K: 'static, V: 'static>(&mut self, topic: &TestOutputTopic<K, V>) -> Result<Vec<(K, V)>> {
        Ok(self.read(topic)?.into_iter().map(|r| (r.key, r.value)).collect())
    }

    /// The records written to `topic` since the last read, as bytes: any
    /// topic, internal ones (`<application_id>-<name>-repartition`,
    /// `-changelog`) included.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .count("counts")
    ///     .to_stream()
    ///     .to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "a".into(), "x".into(), 0)?;
    /// let changelog = driver.read_raw("rivulet-test-counts-changelog");
    /// assert_eq!(changelog[0].key.as_deref(), Some(&b"a"[..]));
    /// assert_eq!(changelog[0].value.as_deref(), Some(&1i64.to_be_bytes()[..]));
    /// # Ok(()) }
    /// ```
    pub fn read_raw(&mut self, topic: &str) -> Vec<RawRecord> {
        let log = self.collector.log.borrow();
        let records = log.records(topic);
        let from = self.read.get(topic).copied().unwrap_or(0).min(records.len());
        self.read.insert(topic.to_string(), records.len());
        records[from..].to_vec()
    }

    /// The records the bad-record policies wrote to the dead-letter topic
    /// since the last call, with their `rivulet.error.*` and
    /// `rivulet.source.*` headers.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to("out", Serdes::string(), Serdes::string());
    /// use rivulet::testing::RawRecord;
    /// let config = Config::loader()
    ///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__ERRORS__DESERIALIZATION", "dead_letter")])
    ///     .load()?;
    /// let mut driver = TopologyTestDriver::with_config(b.build()?, config)?;
    /// driver.pipe_raw("in", RawRecord::new(Some(b"k"), Some(&[0xff]), 0))?;
    /// let dead = driver.dead_letters(); // from the topic "orders-dlq"
    /// assert_eq!(dead[0].value.as_deref(), Some(&[0xff][..])); // the record as it came
    /// assert_eq!(dead[0].header("rivulet.error.kind"), Some(&b"deserialization"[..]));
    /// # Ok(()) }
    /// ```
    pub fn dead_letters(&mut self) -> Vec<RawRecord> {
        let topic = self.app.dead_letter_topic.clone();
        self.read_raw(&topic)
    }

    /// How many records arrived for a window or timer already closed
    /// (`rivulet_late_records_total`), since the driver started.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::time::Duration;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(60)))
    ///     .count("per-minute");
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "a".into(), "x".into(), 130_000)?; // closes the minute [60 s, 120 s)
    /// driver.pipe(&input, "a".into(), "x".into(), 70_000)?; // too late for it
    /// assert_eq!(driver.late_records(), 1);
    /// # Ok(()) }
    /// ```
    pub fn late_records(&self) -> u64 {
        self.late
    }
}
