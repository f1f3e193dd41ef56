//! [`KTable::with_caching`](crate::topology::KTable::with_caching): a table's
//! updates held back to at most one per key per commit, as Kafka Streams'
//! record cache does.
//!
//! ```text
//! update(k, v1, t1) --> held: {k: (v1, t1)}
//! update(k, v2, t2) --> held: {k: (v2, t2)}        (v1 is never forwarded)
//! update(j, w1, t3) --> held: {k: .., j: (w1, t3)}
//! commit step 1 (on_commit) --> forward (k, v2, t2), (j, w1, t3), in order of first update
//! held keys reach CACHE_MAX_KEYS --> forward them all at once (the cache is full)
//! abort --> the task runs init again: held updates are dropped with the transaction
//! ```
//!
//! Kafka Streams' `CachingKeyValueStore` keeps the latest value per key with
//! the context (timestamp, headers) of the record that wrote it; its
//! `NamedCache` forwards every dirty entry when the task commits
//! (`flush()`), or all of them when the thread's cache
//! (`statestore.cache.max.bytes`) is full and a dirty entry is evicted
//! (`evict()` -> `flush(eldest)`); `TimestampedCacheFlushListener` forwards
//! each with the new value's timestamp. Here the changelog needs no cache
//! (the task's write buffer already writes one record per key per commit),
//! so the cache is a node of its own below the table's operator and only
//! thins the updates forwarded downstream. Its records leave in commit step
//! 1, before the changelogs are drained, so they join the same transaction
//! as the input offsets that produced them.
//!
//! Bounded by keys, not bytes: values are typed here, and their size is
//! unknown without serializing them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::processor::api::{Processor, ProcessorContext};
use crate::processor::ProcessError;
use crate::record::Record;
use crate::serde::{Encoded, Serde};
use crate::topology::change::Change;

/// Keys held per cache (per task) before they are forwarded early.
pub(crate) const CACHE_MAX_KEYS: usize = 10_000;

/// Holds the latest update per key of a table until the commit.
pub(crate) struct CacheProcessor<K, V> {
    pub(crate) name: String,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) max_keys: usize,
    /// Serialized key -> its update's position in `held`.
    index: HashMap<Vec<u8>, usize>,
    /// The latest update of each key, in order of each key's first update.
    held: Vec<Record<K, Change<V>>>,
    key_buf: Vec<u8>,
}

impl<K: 'static, V> CacheProcessor<K, V> {
    pub(crate) fn new(name: &str, key_serde: Arc<dyn Serde<K>>, max_keys: usize) -> Self {
        CacheProcessor {
            name: name.to_string(),
            key_serde,
            max_keys: max_keys.max(1),
            index: HashMap::new(),
            held: Vec::new(),
            key_buf: Vec::new(),
        }
    }

    /// Writes the key's bytes to `key_buf` (see [`held_key`]).
    fn key_bytes(&mut self, key: &K) -> Result<(), ProcessError> {
        held_key(&*self.key_serde, key, &self.name, &mut self.key_buf)
    }
}

/// Writes `key`'s bytes to `buf`, tagged so that a null key and an empty
/// one differ: the key of a node holding records per key (this cache,
/// `topology::two_phase`).
pub(crate) fn held_key<K: 'static>(
    serde: &dyn Serde<K>,
    key: &K,
    node: &str,
    buf: &mut Vec<u8>,
) -> Result<(), ProcessError> {
    buf.clear();
    buf.push(1);
    let encoded = serde
        .serialize(key, buf)
        .map_err(|e| ProcessError::Serde { what: format!("key held by {node}"), source: e })?;
    if encoded == Encoded::Null {
        buf.clear();
        buf.push(0);
    }
    Ok(())
}

impl<K: Clone + 'static, V: Clone + 'static> CacheProcessor<K, V> {
    /// Forwards every held update. If a child fails on one, the updates
    /// after it stay held for the next flush, so a failure loses nothing
    /// but the update that failed.
    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), ProcessError> {
        self.index.clear();
        let mut held = std::mem::take(&mut self.held).into_iter();
        while let Some(record) = held.next() {
            if let Err(e) = ctx.forward(record) {
                for record in held {
                    self.hold(record)?;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Holds `record` as its key's latest update; the value it replaces is
    /// the one before the first held update of the key.
    fn hold(&mut self, mut record: Record<K, Change<V>>) -> Result<(), ProcessError> {
        let next = self.held.len();
        self.key_bytes(&record.key)?;
        match self.index.get(self.key_buf.as_slice()) {
            Some(&i) => {
                record.value.old = self.held[i].value.old.take();
                self.held[i] = record;
            }
            None => {
                self.index.insert(self.key_buf.clone(), next);
                self.held.push(record);
            }
        }
        Ok(())
    }
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, Change<V>, K, Change<V>> for CacheProcessor<K, V> {
    /// Runs when the task starts and again after an aborted transaction:
    /// what was held belongs to the aborted work, which is reprocessed.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), ProcessError> {
        self.index.clear();
        self.held.clear();
        Ok(())
    }

    fn process(
        &mut self,
        record: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), ProcessError> {
        self.hold(record)?;
        if self.held.len() >= self.max_keys {
            self.flush(ctx)?;
        }
        Ok(())
    }

    fn on_commit(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), ProcessError> {
        self.flush(ctx)
    }
}
