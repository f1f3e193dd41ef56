//! Global tables (Kafka Streams' `GlobalKTable`) and the stream-global
//! join (`KStreamGlobalKTableJoin`).
//!
//! Every instance reads the whole topic of a global table, all partitions,
//! into a local store, on a thread of its own: before the processing
//! threads start (the instance stays not ready until then), and then as
//! the topic changes. A stream record looks up the key its selector gives,
//! so the stream and the table need not be co-partitioned, and the stream
//! is never repartitioned. The lookup sees the store as the global thread
//! has it at that moment: unlike a stream-table join, a global table's
//! updates are not ordered with the stream's records.

use super::*;

/// A table every instance holds whole (Kafka Streams' `GlobalKTable`),
/// made by [`TopologyBuilder::global_table`]; joined with
/// [`KStream::join_global`] and [`KStream::left_join_global`].
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::topology::GlobalKTable;
/// let mut b = Topology::builder();
/// let currencies: GlobalKTable<String, String> =
///     b.global_table("currencies", "currencies", Serdes::string(), Serdes::string());
/// // One table for any number of streams, whatever their partitioning.
/// for topic in ["eu-payments", "us-payments"] {
///     b.stream(topic, Serdes::string(), Serdes::string())
///         .join_global(&currencies, |_, code| code.clone(), |_, code, name| format!("{code} ({name})"))
///         .to(&format!("{topic}-named"), Serdes::string(), Serdes::string());
/// }
/// assert!(b.build().is_ok());
/// ```
pub struct GlobalKTable<K, V> {
    name: String,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable {
            name: self.name.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl TopologyBuilder {
    /// A global table of the latest value per key of `topic` (a null value
    /// deletes), kept whole on every instance in the store `name`.
    ///
    /// The store is brought up to the topic's end offsets at every start,
    /// before processing begins (`/health/ready` answers 503 until then),
    /// reading on from the offsets it kept (from the beginning the first
    /// time), and kept up to date by a thread of its own.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// let countries = b.global_table("countries", "countries", Serdes::string(), Serdes::string());
    /// b.stream("users", Serdes::string(), Serdes::string())
    ///     .left_join_global(&countries, |_, code| code.clone(), |_, code, name| {
    ///         format!("{code}: {}", name.map_or("unknown", String::as_str))
    ///     })
    ///     .to("user-countries", Serdes::string(), Serdes::string());
    /// assert!(b.build().unwrap().describe().contains("countries (topic countries; read whole by every instance)"));
    /// ```
    pub fn global_table<K: Data, V: Data>(
        &mut self,
        topic: &str,
        name: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> GlobalKTable<K, V> {
        self.graph.borrow_mut().globals.push(GlobalSpec { name: name.to_string(), topic: topic.to_string() });
        GlobalKTable { name: name.to_string(), key_serde: Arc::new(key_serde), value_serde: Arc::new(value_serde) }
    }
}

/// Picks the global table's key for a stream record.
type KeySelector<K, V, KG> = Arc<dyn Fn(&K, &V) -> KG + Send + Sync>;
/// Joins a stream record with the global value, or none.
type GlobalJoiner<K, V, VG, VR> = Arc<dyn Fn(&K, &V, Option<&VG>) -> Option<VR> + Send + Sync>;

impl<K: Data, V: Data> KStream<K, V> {
    /// Joins each record with the value `global` holds for the key
    /// `key_selector` picks, and drops records for which it holds none
    /// (Kafka Streams' `KStream#join` with a `GlobalKTable`). No
    /// co-partitioning is needed and the stream keeps its key.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    ///
    /// let mut b = Topology::builder();
    /// let products = b.global_table("products", "products", Serdes::string(), Serdes::string());
    /// // order id -> product id
    /// b.stream("orders", Serdes::string(), Serdes::string())
    ///     .join_global(&products, |_, product_id| product_id.clone(), |_, _, title| title.clone())
    ///     .to("ordered-titles", Serdes::string(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    /// let products = driver.input_topic("products", Serdes::string(), Serdes::optional(Serdes::string()));
    /// let orders = driver.input_topic("orders", Serdes::string(), Serdes::string());
    /// driver.pipe(&products, "p1".to_string(), Some("Lamp".to_string()), 0).unwrap();
    /// driver.pipe(&orders, "o1".to_string(), "p1".to_string(), 1).unwrap();
    /// driver.pipe(&orders, "o2".to_string(), "p9".to_string(), 2).unwrap(); // no such product: dropped
    /// let out = driver.output_topic("ordered-titles", Serdes::string(), Serdes::string());
    /// assert_eq!(driver.read_key_values(&out).unwrap(), vec![("o1".to_string(), "Lamp".to_string())]);
    /// ```
    pub fn join_global<KG: Data, VG: Data, VR: Data>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key_selector: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&K, &V, &VG) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(
            "JOIN_GLOBAL",
            global,
            Arc::new(key_selector),
            Arc::new(move |k, v, g| g.map(|g| joiner(k, v, g))),
        )
    }

    /// Joins each record with the value `global` holds for the key
    /// `key_selector` picks, or with `None` (Kafka Streams'
    /// `KStream#leftJoin` with a `GlobalKTable`).
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// let rates = b.global_table("fx-rates", "fx-rates", Serdes::string(), Serdes::i64());
    /// b.stream("payments", Serdes::string(), Serdes::json::<(String, i64)>())
    ///     .left_join_global(&rates, |_, (currency, _)| currency.clone(), |_, (_, amount), rate| {
    ///         rate.map(|r| amount * r)
    ///     })
    ///     .to("payments-in-cents", Serdes::string(), Serdes::json::<Option<i64>>());
    /// assert!(b.build().is_ok());
    /// ```
    pub fn left_join_global<KG: Data, VG: Data, VR: Data>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key_selector: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&K, &V, Option<&VG>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(
            "LEFT_JOIN_GLOBAL",
            global,
            Arc::new(key_selector),
            Arc::new(move |k, v, g| Some(joiner(k, v, g))),
        )
    }

    fn global_join<KG: Data, VG: Data, VR: Data>(
        &self,
        op: &str,
        global: &GlobalKTable<KG, VG>,
        key_selector: KeySelector<K, V, KG>,
        joiner: GlobalJoiner<K, V, VG, VR>,
    ) -> KStream<K, VR> {
        let global = global.clone();
        let s = self.add_processor(op, Vec::new(), move |node| GlobalJoin {
            node: node.to_string(),
            global: global.clone(),
            key_selector: key_selector.clone(),
            joiner: joiner.clone(),
            key_buf: Vec::new(),
        });
        KStream { key_serde: self.key_serde.clone(), ..s }
    }
}

struct GlobalJoin<K, V, KG, VG, VR> {
    node: String,
    global: GlobalKTable<KG, VG>,
    key_selector: KeySelector<K, V, KG>,
    joiner: GlobalJoiner<K, V, VG, VR>,
    key_buf: Vec<u8>,
}

impl<K: Data, V: Data, KG: Data, VG: Data, VR: Data> GlobalJoin<K, V, KG, VG, VR> {
    fn lookup(&mut self, key: &KG, ctx: &ProcessorContext<'_, K, VR>) -> Result<Option<VG>, ProcessError> {
        let Some(store) = ctx.task.globals.get(&self.global.name) else {
            return Err(ProcessError::Topology {
                node: self.node.clone(),
                reason: format!("the global table `{}` has no store in this instance", self.global.name),
            });
        };
        self.key_buf.clear();
        let what = || format!("key of global table `{}`", self.global.name);
        match self.global.key_serde.serialize(key, &mut self.key_buf) {
            Ok(Encoded::Bytes) => {}
            Ok(Encoded::Null) => return Ok(None),
            Err(source) => return Err(ProcessError::Serde { what: what(), source }),
        }
        let Some(bytes) = store.get(&self.key_buf)? else {
            return Ok(None);
        };
        self.global.value_serde.deserialize(Some(&bytes)).map(Some).map_err(|source| ProcessError::Serde {
            what: format!("value of global table `{}`", self.global.name),
            source,
        })
    }
}

impl<K: Data, V: Data, KG: Data, VG: Data, VR: Data> Processor<K, V, K, VR> for GlobalJoin<K, V, KG, VG, VR> {
    fn process(&mut self, record: Record<K, V>, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), ProcessError> {
        let key = (self.key_selector)(&record.key, &record.value);
        let global = self.lookup(&key, ctx)?;
        let Record { key, value, timestamp, headers } = record;
        match (self.joiner)(&key, &value, global.as_ref()) {
            Some(value) => ctx.forward(Record { key, value, timestamp, headers }),
            None => Ok(()),
        }
    }
}
