//! The interactive-query side of a running application: the typed store
//! handles, the advertised address, and starting the instances directory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::RunningApp;
use crate::error::Result;
use crate::query::directory::DirectoryThread;
use crate::query::{Queries, QueryError, ReadOnlyStore, ReadOnlyWindowStore};
use crate::runtime::stats::RuntimeStats;
use crate::state::QueryableStores;
use crate::topology::Topology;
use crate::Config;

/// `http.advertised_address`, or when empty the bound address; on all
/// interfaces (0.0.0.0 or ::), the instance id as the host.
pub(super) fn advertised_address(config: &Config, bound: SocketAddr) -> String {
    if !config.http.advertised_address.is_empty() {
        return config.http.advertised_address.clone();
    }
    if bound.ip().is_unspecified() {
        format!("{}:{}", config.instance_id, bound.port())
    } else {
        bound.to_string()
    }
}

/// The queries of an instance and, when its topology has stores, the
/// thread that keeps the instances directory.
pub(super) fn start(
    config: &Config,
    topology: &Topology,
    (partitions, topics): (&[i32], &HashMap<String, usize>),
    bound: SocketAddr,
    stats: &Arc<RuntimeStats>,
) -> Result<(Arc<Queries>, Option<DirectoryThread>)> {
    let address = advertised_address(config, bound);
    let readers = Arc::new(QueryableStores::default());
    let queries = Queries::new(topology, partitions, topics, config.instance_id.clone(), address.clone(), readers);
    let queries = Arc::new(queries);
    let directory = match queries.has_stores() {
        true => Some(DirectoryThread::start(config, address, stats.clone(), queries.directory.clone())?),
        false => None,
    };
    Ok((queries, directory))
}

impl RunningApp {
    /// A read-only view of the store `name` (Kafka Streams'
    /// `KafkaStreams#store`): `get` of a key whose task runs here, `range`
    /// over the tasks that run here, and which instance owns a key. Reads
    /// see each task's state as of its last commit; see [`crate::query`]
    /// for which stores can be read and how ownership is known.
    ///
    /// Fails when the topology has no such store, when `K` and `V` are not
    /// the store's types, or when the store is a window or keyed-state store.
    ///
    /// ```no_run
    /// # fn main() -> rivulet::Result<()> {
    /// # let app: rivulet::RunningApp = unimplemented!();
    /// // The topology counts words: `.group_by_key().count("word-counts")`.
    /// let counts = app.store::<String, i64>("word-counts")?;
    /// let kafka = counts.get(&"kafka".to_string())?;
    /// # Ok(()) }
    /// ```
    pub fn store<K: 'static, V: 'static>(&self, name: &str) -> std::result::Result<ReadOnlyStore<K, V>, QueryError> {
        self.queries.store(name, false)
    }

    /// A read-only view of the store `name` of a tumbling or hopping
    /// windowed aggregation (`windowed_by(..).count(name)`, `aggregate`,
    /// `reduce`): a key's windows over a time range (Kafka Streams'
    /// `ReadOnlyWindowStore#fetch`). `V` is the aggregation's result type.
    ///
    /// ```no_run
    /// # fn main() -> rivulet::Result<()> {
    /// # let app: rivulet::RunningApp = unimplemented!();
    /// let clicks = app.window_store::<String, i64>("clicks-per-minute")?;
    /// let windows = clicks.fetch(&"alice".to_string(), 0, i64::MAX)?;
    /// # Ok(()) }
    /// ```
    pub fn window_store<K: Clone + 'static, V: 'static>(
        &self,
        name: &str,
    ) -> std::result::Result<ReadOnlyWindowStore<K, V>, QueryError> {
        Ok(ReadOnlyWindowStore { inner: self.queries.store(name, true)? })
    }

    /// The `host:port` this instance publishes for store queries
    /// (`http.advertised_address`, or derived from the bound address).
    ///
    /// ```no_run
    /// # let app: rivulet::RunningApp = unimplemented!();
    /// println!("queries: http://{}/stores/word-counts/keys/kafka", app.advertised_address());
    /// ```
    pub fn advertised_address(&self) -> &str {
        &self.queries.address
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_advertised_address_is_the_configured_one_or_the_bound_one_with_the_instance_as_host_on_all_interfaces() {
        let load = |vars: &[(&str, &str)]| {
            let mut env = vec![("RIVULET__APPLICATION_ID", "shop"), ("HOSTNAME", "pod-1")];
            env.extend_from_slice(vars);
            Config::loader().env(env).load().unwrap()
        };
        let c = load(&[]);
        assert_eq!(advertised_address(&c, "0.0.0.0:8080".parse().unwrap()), "pod-1:8080");
        assert_eq!(advertised_address(&c, "127.0.0.1:41000".parse().unwrap()), "127.0.0.1:41000");
        let c = load(&[("RIVULET__HTTP__ADVERTISED_ADDRESS", "10.1.2.3:8080")]);
        assert_eq!(advertised_address(&c, "0.0.0.0:8080".parse().unwrap()), "10.1.2.3:8080");
        let bad = Config::loader()
            .env([
                ("RIVULET__APPLICATION_ID", "shop"),
                ("HOSTNAME", "p"),
                ("RIVULET__HTTP__ADVERTISED_ADDRESS", "nohost"),
            ])
            .load();
        assert!(bad.unwrap_err().to_string().contains("http.advertised_address"));
    }
}
