//! The memory RocksDB may use, shared by every store of the process.

use std::fmt;

use rocksdb::{Cache, WriteBufferManager};

/// One block cache and one write-buffer manager for all the RocksDB stores of
/// a process, so that memory is bounded per process, not per store: an
/// instance with a thousand small stores uses no more than one with ten.
///
/// Memtables are charged to the block cache (as Kafka Streams' bounded-memory
/// setup does), so `block_cache_bytes` is the bound on RocksDB's memory as a
/// whole and `write_buffer_bytes` is the share of it memtables may take
/// before RocksDB flushes them. Both bounds are soft: writers are never
/// stalled, flushes are triggered instead. Keep `write_buffer_bytes` below
/// `block_cache_bytes`.
///
/// Cheap to clone: clones share the same cache and manager.
#[derive(Clone)]
pub(crate) struct StateResources {
    pub(crate) block_cache: Cache,
    pub(crate) write_buffer_manager: WriteBufferManager,
    block_cache_bytes: usize,
    write_buffer_bytes: usize,
    cache_bytes: usize,
}

impl StateResources {
    /// The default total for RocksDB: 64 MiB.
    pub(crate) const DEFAULT_BLOCK_CACHE_BYTES: usize = 64 << 20;
    /// The default share of it for memtables: 32 MiB.
    pub(crate) const DEFAULT_WRITE_BUFFER_BYTES: usize = 32 << 20;

    /// A shared LRU block cache of `block_cache_bytes` and a write-buffer
    /// manager letting memtables use up to `write_buffer_bytes` of it.
    pub(crate) fn new(block_cache_bytes: usize, write_buffer_bytes: usize) -> Self {
        let block_cache = Cache::new_lru_cache(block_cache_bytes);
        // No stall: a stalled write would block the processing thread inside
        // a commit; an overshoot until the triggered flush finishes is harmless.
        let write_buffer_manager =
            WriteBufferManager::new_write_buffer_manager_with_cache(write_buffer_bytes, false, block_cache.clone());
        StateResources { block_cache, write_buffer_manager, block_cache_bytes, write_buffer_bytes, cache_bytes: 0 }
    }

    /// A read cache of `bytes` in front of each RocksDB store of each task
    /// ([`CachedStore`](super::CachedStore)); 0 (the default here) for none.
    pub(crate) fn with_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// The read cache of each RocksDB store of each task, in bytes.
    pub(crate) fn cache_bytes(&self) -> usize {
        self.cache_bytes
    }

    /// Memory the block cache holds now (blocks and memtable reservations).
    #[cfg(test)]
    pub(crate) fn block_cache_usage(&self) -> usize {
        self.block_cache.get_usage()
    }

    /// Memory all memtables of the process use now.
    #[cfg(test)]
    pub(crate) fn write_buffer_usage(&self) -> usize {
        self.write_buffer_manager.get_usage()
    }
}

impl Default for StateResources {
    fn default() -> Self {
        StateResources::new(Self::DEFAULT_BLOCK_CACHE_BYTES, Self::DEFAULT_WRITE_BUFFER_BYTES)
    }
}

impl fmt::Debug for StateResources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateResources")
            .field("block_cache_bytes", &self.block_cache_bytes)
            .field("write_buffer_bytes", &self.write_buffer_bytes)
            .finish_non_exhaustive()
    }
}
