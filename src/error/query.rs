//! The error of a store query (`rivulet::query`), here so that
//! [`Error`](crate::Error) can wrap it; used as `rivulet::query::QueryError`.

use crate::state::StateError;

/// Why a store query has no answer.
///
/// ```
/// use rivulet::query::QueryError;
/// let e = QueryError::NotHere { store: "counts".into(), partition: 2, owner: Some("10.0.0.7:8080".into()) };
/// assert_eq!(e.to_string(), "the key of store `counts` lives in partition 2, which instance 10.0.0.7:8080 owns, not this one");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// No task store of the topology has this name.
    #[error("no store `{store}` in the topology (stores: {known})")]
    UnknownStore {
        /// The name asked for.
        store: String,
        /// The stores there are, comma-separated.
        known: String,
    },
    /// The store holds other key or value types than asked for.
    #[error("store `{store}` holds {holds}, not {asked}")]
    WrongTypes {
        /// The store.
        store: String,
        /// Its key and value types.
        holds: String,
        /// The types asked for.
        asked: String,
    },
    /// The store's layout is not one queries decode (session, sliding or
    /// count windows, keyed state), or it is not of the kind asked for.
    #[error("store `{store}` cannot be queried: {reason}")]
    NotQueryable {
        /// The store.
        store: String,
        /// Why.
        reason: String,
    },
    /// The key's task is not running on this instance; `owner` is the
    /// advertised address of the instance that owns it, when known.
    #[error(
        "the key of store `{store}` lives in partition {partition}, which {} owns, not this one",
        owner.as_deref().map_or("no known instance".to_string(), |o| format!("instance {o}"))
    )]
    NotHere {
        /// The store.
        store: String,
        /// The key's partition.
        partition: i32,
        /// The owner's `host:port`, if the directory knows one.
        owner: Option<String>,
    },
    /// The key could not be encoded or a stored value decoded.
    #[error("store `{store}`: {reason}")]
    Serde {
        /// The store.
        store: String,
        /// What failed.
        reason: String,
    },
    /// Reading the local store failed.
    #[error(transparent)]
    State(#[from] StateError),
}
