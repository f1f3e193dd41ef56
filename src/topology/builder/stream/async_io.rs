//! `KStream`'s asynchronous operators: `map_async`, `try_map_async` and
//! their `_with` forms taking [`AsyncOptions`] (the operator is
//! `topology::async_io`).

use std::future::Future;
use std::time::Duration;

use super::*;
use crate::topology::async_io::{AsyncProcessor, CallFn, CallFuture};
use crate::topology::AsyncOptions;

impl<K: Data, V: Data + Send> KStream<K, V> {
    /// A new value for each record from an asynchronous call, `f(value)`
    /// (Flink's `AsyncDataStream.orderedWait`): up to `concurrency` calls
    /// in flight per task, each given `timeout`, results in input order
    /// with the input's key, timestamp and headers. While `concurrency`
    /// calls are in flight the task takes no more records; a commit waits
    /// for every call in flight, so their results go into the transaction
    /// of their input offsets (exactly-once). A call that times out goes
    /// to the processing-error policy; see
    /// [`try_map_async_with`](Self::try_map_async_with) for retries and
    /// unordered results.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::time::Duration;
    /// let mut b = Topology::builder();
    /// b.stream("user-ids", Serdes::string(), Serdes::i64())
    ///     .map_async(16, Duration::from_secs(1), |id: i64| async move {
    ///         tokio::time::sleep(Duration::from_millis(5)).await; // a lookup elsewhere
    ///         format!("user-{id}")
    ///     })
    ///     .to("user-names", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let ids = driver.input_topic("user-ids", Serdes::string(), Serdes::i64());
    /// # let out = driver.output_topic("user-names", Serdes::string(), Serdes::string());
    /// driver.pipe(&ids, "a".to_string(), 7, 0)?; // the driver commits after each record
    /// assert_eq!(driver.read_key_values(&out)?, vec![("a".to_string(), "user-7".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn map_async<V2, Fut>(
        &self,
        concurrency: usize,
        timeout: Duration,
        f: impl Fn(V) -> Fut + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        V2: Data + Send,
        Fut: Future<Output = V2> + Send + 'static,
    {
        self.map_async_with(AsyncOptions::ordered(concurrency, timeout), f)
    }

    /// [`map_async`](Self::map_async) with [`AsyncOptions`]: ordered or
    /// unordered results, and a retry policy.
    pub fn map_async_with<V2, Fut>(
        &self,
        options: AsyncOptions,
        f: impl Fn(V) -> Fut + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        V2: Data + Send,
        Fut: Future<Output = V2> + Send + 'static,
    {
        let call: CallFn<V, V2> = Arc::new(move |v| {
            let fut = f(v);
            Box::pin(async move { Ok(fut.await) }) as CallFuture<V2>
        });
        self.async_node(options, call)
    }

    /// Fallible [`map_async`](Self::map_async): a call that returns an
    /// error (or times out) goes to the processing-error policy
    /// (`errors.processing`; `dead_letter` writes the input record to the
    /// dead-letter topic).
    pub fn try_map_async<V2, E, Fut>(
        &self,
        concurrency: usize,
        timeout: Duration,
        f: impl Fn(V) -> Fut + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        V2: Data + Send,
        E: Into<UserError>,
        Fut: Future<Output = Result<V2, E>> + Send + 'static,
    {
        self.try_map_async_with(AsyncOptions::ordered(concurrency, timeout), f)
    }

    /// Fallible [`map_async_with`](Self::map_async_with): a call that still
    /// fails or times out after the options' retries goes to the
    /// processing-error policy. Here unordered, with two retries:
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::time::Duration;
    /// use rivulet::topology::{AsyncOptions, AsyncRetry};
    /// let options = AsyncOptions::unordered(8, Duration::from_millis(200))
    ///     .retry(AsyncRetry::fixed(2, Duration::from_millis(1)));
    /// let mut b = Topology::builder();
    /// b.stream("prices", Serdes::string(), Serdes::string())
    ///     .try_map_async_with(options, |price: String| async move { price.parse::<i64>() })
    ///     .to("parsed-prices", Serdes::string(), Serdes::i64());
    /// let config = Config::loader().default_value("errors.processing", "dead_letter");
    /// # let config = config.default_value("application_id", "prices").env(std::iter::empty::<(String, String)>());
    /// let mut driver = TopologyTestDriver::with_config(b.build()?, config.load()?)?;
    /// # let prices = driver.input_topic("prices", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("parsed-prices", Serdes::string(), Serdes::i64());
    /// driver.pipe(&prices, "tea".to_string(), "3".to_string(), 0)?;
    /// driver.pipe(&prices, "milk".to_string(), "cheap".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("tea".to_string(), 3)]);
    /// assert_eq!(driver.dead_letters()[0].value.as_deref(), Some(&b"cheap"[..]));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn try_map_async_with<V2, E, Fut>(
        &self,
        options: AsyncOptions,
        f: impl Fn(V) -> Fut + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        V2: Data + Send,
        E: Into<UserError>,
        Fut: Future<Output = Result<V2, E>> + Send + 'static,
    {
        let call: CallFn<V, V2> = Arc::new(move |v| {
            let fut = f(v);
            Box::pin(async move { fut.await.map_err(Into::into) }) as CallFuture<V2>
        });
        self.async_node(options, call)
    }

    fn async_node<V2: Data + Send>(&self, options: AsyncOptions, call: CallFn<V, V2>) -> KStream<K, V2> {
        let (key_serde, value_serde) = (self.key_serde.clone(), self.value_serde.clone());
        let s = self.add_processor("MAP_ASYNC", Vec::new(), move |name| {
            let mut p = AsyncProcessor::new(name, options.clone(), call.clone());
            p.key_serde.clone_from(&key_serde);
            p.value_serde.clone_from(&value_serde);
            p
        });
        KStream { key_serde: self.key_serde.clone(), value_serde: carry(&self.value_serde), ..s }
    }
}
