//! The typed, read-only view of a window store.

use super::{KeyOwner, QueryError, ReadOnlyStore};
use crate::record::Windowed;

/// A read-only, typed view of the store of a tumbling or hopping windowed
/// aggregation of a running instance, from
/// [`RunningApp::window_store`](crate::RunningApp::window_store): a key's
/// windows and their results as of the task's last commit. `V` is the
/// aggregation's result type (`i64` for `count`). Only windows not yet
/// closed and dropped are there: those whose end plus grace the watermark
/// has not passed (as Kafka Streams' window stores keep windows for their
/// retention).
///
/// ```no_run
/// # fn main() -> rivulet::Result<()> {
/// # let app: rivulet::RunningApp = unimplemented!();
/// // A topology with `.windowed_by(Windows::tumbling(..)).count("clicks-per-minute")`.
/// let clicks = app.window_store::<String, i64>("clicks-per-minute")?;
/// for (window, count) in clicks.fetch(&"alice".to_string(), 0, i64::MAX)? {
///     println!("[{}, {}): {count}", window.start, window.end);
/// }
/// # Ok(()) }
/// ```
pub struct ReadOnlyWindowStore<K, V> {
    pub(crate) inner: ReadOnlyStore<K, V>,
}

impl<K: Clone + 'static, V: 'static> ReadOnlyWindowStore<K, V> {
    /// The windows of `key` that start between `from_ms` and `to_ms`
    /// (both included), in start order, when its task runs on this
    /// instance; [`QueryError::NotHere`] (with the owner's address when
    /// known) when it does not (Kafka Streams' `WindowStore#fetch(key,
    /// timeFrom, timeTo)`).
    ///
    /// ```no_run
    /// # fn main() -> rivulet::Result<()> {
    /// # let app: rivulet::RunningApp = unimplemented!();
    /// let clicks = app.window_store::<String, i64>("clicks-per-minute")?;
    /// let last_hour = clicks.fetch(&"alice".to_string(), 1_700_000_000_000, 1_700_003_600_000)?;
    /// # Ok(()) }
    /// ```
    pub fn fetch(&self, key: &K, from_ms: i64, to_ms: i64) -> Result<Vec<(Windowed<K>, V)>, QueryError> {
        let store = &self.inner;
        let k = store.key_bytes(key)?;
        let (_, windows) = store.queries.fetch_bytes(&store.name, &k, from_ms, to_ms)?;
        windows
            .into_iter()
            .map(|w| Ok((Windowed { key: key.clone(), start: w.start, end: w.end }, store.value(&w.value)?)))
            .collect()
    }

    /// Which partition and instance own `key`'s windows.
    ///
    /// ```no_run
    /// # fn main() -> rivulet::Result<()> {
    /// # let app: rivulet::RunningApp = unimplemented!();
    /// let owner = app.window_store::<String, i64>("clicks-per-minute")?.owner(&"alice".to_string())?;
    /// # Ok(()) }
    /// ```
    pub fn owner(&self, key: &K) -> Result<KeyOwner, QueryError> {
        self.inner.owner(key)
    }

    /// The store's partitions whose tasks run on this instance now.
    ///
    /// ```no_run
    /// # fn main() -> rivulet::Result<()> {
    /// # let app: rivulet::RunningApp = unimplemented!();
    /// println!("{:?}", app.window_store::<String, i64>("clicks-per-minute")?.local_partitions());
    /// # Ok(()) }
    /// ```
    pub fn local_partitions(&self) -> Vec<i32> {
        self.inner.local_partitions()
    }
}
