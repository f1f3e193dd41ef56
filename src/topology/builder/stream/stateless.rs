//! `KStream`'s stateless operators: filter, peek, map, flat_map, their
//! fallible `try_` forms, and select_key.

use super::*;

impl<K: Data, V: Data> KStream<K, V> {
    /// Keeps the records for which `predicate(&key, &value)` holds.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("logins", Serdes::string(), Serdes::string())
    ///     .filter(|user, _ip| !user.starts_with("bot-"))
    ///     .to("human-logins", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let logins = driver.input_topic("logins", Serdes::string(), Serdes::string());
    /// # let human = driver.output_topic("human-logins", Serdes::string(), Serdes::string());
    /// driver.pipe(&logins, "bot-7".to_string(), "10.0.0.7".to_string(), 0)?;
    /// driver.pipe(&logins, "alice".to_string(), "10.0.0.1".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&human)?, vec![("alice".to_string(), "10.0.0.1".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        self.try_filter(move |k, v| Ok::<_, UserError>(predicate(k, v)))
    }

    /// Fallible [`filter`](Self::filter): an error sends the record to the
    /// processing-error policy (`errors.processing`: by default `fail`,
    /// which stops the application).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("amounts", Serdes::string(), Serdes::string())
    ///     .try_filter(|_, amount: &String| amount.parse::<i64>().map(|n| n > 0))
    ///     .to("positive-amounts", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let amounts = driver.input_topic("amounts", Serdes::string(), Serdes::string());
    /// driver.pipe(&amounts, "a".to_string(), "12".to_string(), 0)?;
    /// let err = driver.pipe(&amounts, "b".to_string(), "twelve".to_string(), 0).unwrap_err();
    /// assert!(err.to_string().contains("invalid digit"));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn try_filter<E: Into<UserError>>(
        &self,
        predicate: impl Fn(&K, &V) -> Result<bool, E> + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let s = self.flat(
            "FILTER",
            false,
            Arc::new(move |r| {
                Ok(if predicate(&r.key, &r.value).map_err(Into::into)? { Emit::One(r) } else { Emit::None })
            }),
        );
        self.same_serdes(s)
    }

    /// Calls `f` on each record and passes it on unchanged: for logging,
    /// metrics, debugging.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// let seen = Arc::new(AtomicU64::new(0));
    /// let counter = seen.clone();
    /// let mut b = Topology::builder();
    /// b.stream("orders", Serdes::string(), Serdes::i64())
    ///     .peek(move |id, amount| {
    ///         tracing::debug!(%id, amount, "order");
    ///         counter.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .to("orders-copy", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let orders = driver.input_topic("orders", Serdes::string(), Serdes::i64());
    /// driver.pipe(&orders, "o-1".to_string(), 30, 0)?;
    /// assert_eq!(seen.load(Ordering::Relaxed), 1);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let s = self.flat(
            "PEEK",
            false,
            Arc::new(move |r| {
                f(&r.key, &r.value);
                Ok(Emit::One(r))
            }),
        );
        self.same_serdes(s)
    }

    /// A new key and value for each record: `f(key, value)` takes both by
    /// value and returns the new pair. Changes the key: grouping afterwards
    /// repartitions.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("page-views", Serdes::string(), Serdes::string()) // user -> page
    ///     .map(|user: String, page: String| (page, user.len() as i64))
    ///     .to("views-by-page", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let views = driver.input_topic("page-views", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("views-by-page", Serdes::string(), Serdes::i64());
    /// driver.pipe(&views, "alice".to_string(), "/home".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("/home".to_string(), 5)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn map<K2: Data, V2: Data>(&self, f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static) -> KStream<K2, V2> {
        self.try_map(move |k, v| Ok::<_, UserError>(f(k, v)))
    }

    /// Fallible [`map`](Self::map): an error sends the record to the
    /// processing-error policy. Here the policy is `dead_letter`, so a bad
    /// record goes to the dead-letter topic and the rest go on:
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("settings", Serdes::unit(), Serdes::string())
    ///     .try_map(|(), line: String| match line.split_once('=') {
    ///         Some((key, value)) => Ok((key.to_string(), value.to_string())),
    ///         None => Err(format!("{line:?} is not key=value")),
    ///     })
    ///     .to("settings-by-key", Serdes::string(), Serdes::string());
    /// let config = Config::loader().default_value("errors.processing", "dead_letter");
    /// # let config = config.default_value("application_id", "settings").env(std::iter::empty::<(String, String)>());
    /// let mut driver = TopologyTestDriver::with_config(b.build()?, config.load()?)?;
    /// # let settings = driver.input_topic("settings", Serdes::unit(), Serdes::string());
    /// # let out = driver.output_topic("settings-by-key", Serdes::string(), Serdes::string());
    /// driver.pipe(&settings, (), "color=blue".to_string(), 0)?;
    /// driver.pipe(&settings, (), "oops".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("color".to_string(), "blue".to_string())]);
    /// assert_eq!(driver.dead_letters()[0].value.as_deref(), Some(&b"oops"[..]));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn try_map<K2: Data, V2: Data, E: Into<UserError>>(
        &self,
        f: impl Fn(K, V) -> Result<(K2, V2), E> + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let s = self.flat(
            "MAP",
            true,
            Arc::new(move |r: Record<K, V>| {
                let Record { key, value, timestamp, headers } = r;
                let (k, v) = f(key, value).map_err(Into::into)?;
                Ok(Emit::One(Record { key: k, value: v, timestamp, headers }))
            }),
        );
        KStream { key_serde: carry(&self.key_serde), value_serde: carry(&self.value_serde), ..s }
    }

    /// A new value for each record, `f(value)`; the key stays, so grouping
    /// afterwards does not repartition.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("names", Serdes::string(), Serdes::string())
    ///     .map_values(|name: String| name.trim().to_uppercase())
    ///     .to("names-upper", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let names = driver.input_topic("names", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("names-upper", Serdes::string(), Serdes::string());
    /// driver.pipe(&names, "id-1".to_string(), " ada ".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("id-1".to_string(), "ADA".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn map_values<V2: Data>(&self, f: impl Fn(V) -> V2 + Send + Sync + 'static) -> KStream<K, V2> {
        self.try_map_values(move |v| Ok::<_, UserError>(f(v)))
    }

    /// Fallible [`map_values`](Self::map_values): any error type that
    /// converts into [`UserError`] (`String`, `&str`, every
    /// `std::error::Error + Send + Sync`). Here the policy is `skip`:
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("temperatures", Serdes::string(), Serdes::string())
    ///     .try_map_values(|celsius: String| celsius.parse::<f64>().map(|c| (c * 1.8 + 32.0) as i64))
    ///     .to("fahrenheit", Serdes::string(), Serdes::i64());
    /// let config = Config::loader().default_value("errors.processing", "skip");
    /// # let config = config.default_value("application_id", "temps").env(std::iter::empty::<(String, String)>());
    /// let mut driver = TopologyTestDriver::with_config(b.build()?, config.load()?)?;
    /// # let input = driver.input_topic("temperatures", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("fahrenheit", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "oslo".to_string(), "warm".to_string(), 0)?;
    /// driver.pipe(&input, "oslo".to_string(), "20".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("oslo".to_string(), 68)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn try_map_values<V2: Data, E: Into<UserError>>(
        &self,
        f: impl Fn(V) -> Result<V2, E> + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let s = self.flat(
            "MAP_VALUES",
            false,
            Arc::new(move |r: Record<K, V>| {
                let Record { key, value, timestamp, headers } = r;
                Ok(Emit::One(Record { key, value: f(value).map_err(Into::into)?, timestamp, headers }))
            }),
        );
        KStream { key_serde: self.key_serde.clone(), value_serde: carry(&self.value_serde), ..s }
    }

    /// Zero or more new records per record: `f(key, value)` returns any
    /// `IntoIterator` of `(key, value)` pairs, each becoming a record with
    /// the input's timestamp and headers. Changes the key.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("orders", Serdes::string(), Serdes::string()) // order id -> "item,item,.."
    ///     .flat_map(|order: String, items: String| {
    ///         items.split(',').map(|item| (item.to_string(), order.clone())).collect::<Vec<_>>()
    ///     })
    ///     .to("orders-by-item", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let orders = driver.input_topic("orders", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("orders-by-item", Serdes::string(), Serdes::string());
    /// driver.pipe(&orders, "o-1".to_string(), "tea,milk".to_string(), 0)?;
    /// let by_item = driver.read_key_values(&out)?;
    /// assert_eq!(by_item, [("tea".to_string(), "o-1".to_string()), ("milk".to_string(), "o-1".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn flat_map<K2: Data, V2: Data, I>(&self, f: impl Fn(K, V) -> I + Send + Sync + 'static) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.try_flat_map(move |k, v| Ok::<_, UserError>(f(k, v)))
    }

    /// Fallible [`flat_map`](Self::flat_map): an error emits none of the
    /// record's outputs and sends the record to the processing-error policy.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::topology::UserError;
    /// let mut b = Topology::builder();
    /// b.stream("scores", Serdes::unit(), Serdes::string()) // "alice 3,5"
    ///     .try_flat_map(|(), line: String| {
    ///         let (user, scores) = line.split_once(' ').ok_or("no scores")?;
    ///         let pairs = scores.split(',').map(|s| Ok((user.to_string(), s.parse::<i64>()?)));
    ///         pairs.collect::<Result<Vec<_>, UserError>>()
    ///     })
    ///     .to("scores-by-user", Serdes::string(), Serdes::i64());
    /// # b.build()?;
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn try_flat_map<K2: Data, V2: Data, I, E: Into<UserError>>(
        &self,
        f: impl Fn(K, V) -> Result<I, E> + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        let s = self.flat(
            "FLAT_MAP",
            true,
            Arc::new(move |r: Record<K, V>| {
                let Record { key, value, timestamp, headers } = r;
                let out = f(key, value).map_err(Into::into)?;
                Ok(Emit::Many(
                    out.into_iter()
                        .map(|(key, value)| Record { key, value, timestamp, headers: headers.clone() })
                        .collect(),
                ))
            }),
        );
        KStream { key_serde: carry(&self.key_serde), value_serde: carry(&self.value_serde), ..s }
    }

    /// Zero or more new values per record, each with the record's key (and
    /// timestamp and headers).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("articles", Serdes::string(), Serdes::string()) // id -> "tag,tag,.."
    ///     .flat_map_values(|tags: String| tags.split(',').map(str::to_string).collect::<Vec<_>>())
    ///     .to("article-tags", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let articles = driver.input_topic("articles", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("article-tags", Serdes::string(), Serdes::string());
    /// driver.pipe(&articles, "a-1".to_string(), "rust,kafka".to_string(), 0)?;
    /// let tags: Vec<String> = driver.read_key_values(&out)?.into_iter().map(|(_, tag)| tag).collect();
    /// assert_eq!(tags, ["rust", "kafka"]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn flat_map_values<V2: Data, I>(&self, f: impl Fn(V) -> I + Send + Sync + 'static) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        self.try_flat_map_values(move |v| Ok::<_, UserError>(f(v)))
    }

    /// Fallible [`flat_map_values`](Self::flat_map_values).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("batches", Serdes::string(), Serdes::string()) // "[1,2,3]"
    ///     .try_flat_map_values(|batch: String| serde_json::from_str::<Vec<i64>>(&batch))
    ///     .to("readings", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let batches = driver.input_topic("batches", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("readings", Serdes::string(), Serdes::i64());
    /// driver.pipe(&batches, "sensor".to_string(), "[20,21]".to_string(), 0)?;
    /// let readings: Vec<i64> = driver.read_key_values(&out)?.into_iter().map(|(_, r)| r).collect();
    /// assert_eq!(readings, [20, 21]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn try_flat_map_values<V2: Data, I, E: Into<UserError>>(
        &self,
        f: impl Fn(V) -> Result<I, E> + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        let s = self.flat(
            "FLAT_MAP_VALUES",
            false,
            Arc::new(move |r: Record<K, V>| {
                let Record { key, value, timestamp, headers } = r;
                let out = f(value).map_err(Into::into)?;
                Ok(Emit::Many(
                    out.into_iter()
                        .map(|value| Record { key: key.clone(), value, timestamp, headers: headers.clone() })
                        .collect(),
                ))
            }),
        );
        KStream { key_serde: self.key_serde.clone(), value_serde: carry(&self.value_serde), ..s }
    }

    /// A new key for each record, computed from key and value; the value
    /// stays. Grouping afterwards repartitions.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("views", Serdes::unit(), Serdes::string()) // "user:page"
    ///     .select_key(|_, view: &String| view.split(':').next().unwrap_or_default().to_string())
    ///     .to("views-by-user", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let views = driver.input_topic("views", Serdes::unit(), Serdes::string());
    /// # let out = driver.output_topic("views-by-user", Serdes::string(), Serdes::string());
    /// driver.pipe(&views, (), "alice:/home".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("alice".to_string(), "alice:/home".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn select_key<K2: Data>(&self, f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static) -> KStream<K2, V> {
        let s = self.flat(
            "SELECT_KEY",
            true,
            Arc::new(move |r: Record<K, V>| {
                let key = f(&r.key, &r.value);
                let Record { value, timestamp, headers, .. } = r;
                Ok(Emit::One(Record { key, value, timestamp, headers }))
            }),
        );
        KStream { key_serde: carry(&self.key_serde), value_serde: self.value_serde.clone(), ..s }
    }
}
