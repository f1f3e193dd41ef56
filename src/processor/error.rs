//! What a processor returns when a record fails, and why a topology
//! cannot be built.

use crate::serde::SerdeError;
use crate::state::StateError;

/// What a user function returns when it rejects a record: any error. The
/// record then goes to the processing-error policy (`errors.processing`).
///
/// The fallible DSL operators (`try_map_values`, `try_filter`, ...) take any
/// error that converts into it, such as a `ParseIntError` or a `String`.
///
/// ```
/// # use rivulet::prelude::*;
/// # use rivulet::testing::TopologyTestDriver;
/// use rivulet::processor::UserError;
/// # fn main() -> rivulet::Result<()> {
/// let parse = |v: String| v.trim().parse::<i64>().map_err(UserError::from);
/// let mut b = Topology::builder();
/// b.stream("in", Serdes::unit(), Serdes::string()).try_map_values(parse).to("out", Serdes::unit(), Serdes::i64());
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
/// // Under the default `errors.processing = "fail"`, the rejection stops the driver.
/// let err = driver.pipe(&input, (), "12x".into(), 0).unwrap_err();
/// assert!(err.to_string().contains("invalid digit found in string"), "{err}");
/// # Ok(()) }
/// ```
pub type UserError = Box<dyn std::error::Error + Send + Sync>;

/// Why processing a record failed. A [`Processor`](crate::processor::Processor)
/// returns it; the runtime sends the record-level kinds (`Rejected`,
/// `Deserialize`, `Serde`, `Produce`) to the bad-record policies and stops
/// on the others.
///
/// ```
/// # use rivulet::prelude::*;
/// # use rivulet::testing::TopologyTestDriver;
/// use rivulet::processor::ProcessError;
/// struct NonEmpty;
/// impl Processor<(), String, (), String> for NonEmpty {
///     fn process(&mut self, r: Record<(), String>, ctx: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> {
///         if r.value.is_empty() {
///             return Err(ProcessError::Rejected { node: "non-empty".into(), source: "an empty value".into() });
///         }
///         ctx.forward(r)
///     }
/// }
/// # fn main() -> rivulet::Result<()> {
/// # let mut b = Topology::builder();
/// # b.stream("in", Serdes::unit(), Serdes::string()).process(&[], || NonEmpty);
/// # let mut driver = TopologyTestDriver::new(b.build()?)?;
/// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
/// let err = driver.pipe(&input, (), String::new(), 0).unwrap_err();
/// assert_eq!(err.to_string(), "record at topic in partition 0 offset 0 failed: non-empty rejected the record: an empty value");
/// # Ok(()) }
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// A user function rejected the record.
    #[error("{node} rejected the record: {source}")]
    Rejected {
        /// The node whose function failed.
        node: String,
        /// The user's error.
        source: UserError,
    },
    /// A source record's key or value could not be deserialized; goes to
    /// the deserialization-error policy (`errors.deserialization`).
    #[error("{what}: {source}")]
    Deserialize {
        /// Which key or value of which topic.
        what: String,
        /// The serde's error.
        source: SerdeError,
    },
    /// A key or value could not be (de)serialized.
    #[error("{what}: {source}")]
    Serde {
        /// Which key or value, of which topic or store.
        what: String,
        /// The serde's error.
        source: SerdeError,
    },
    /// The producer refused an output record (for example too large).
    #[error("producing to {topic} failed: {reason}")]
    Produce {
        /// The target topic.
        topic: String,
        /// librdkafka's reason.
        reason: String,
        /// The serialized key, for the dead-letter topic.
        key: Option<Vec<u8>>,
        /// The serialized value, for the dead-letter topic.
        value: Option<Vec<u8>>,
    },
    /// The thread's transaction can no longer commit (exactly-once: its
    /// records timed out, or the producer needs its epoch bumped), so
    /// nothing can be sent in it: the runtime aborts it and processes the
    /// cycle's records again. Not a bad record.
    #[error("the transaction failed while producing to {topic}: {reason}")]
    TransactionFailed {
        /// The topic of the record that could not be sent.
        topic: String,
        /// librdkafka's reason.
        reason: String,
    },
    /// Local state failed; the task must be closed and restored.
    #[error(transparent)]
    State(#[from] StateError),
    /// A bug in the topology's use of the Processor API (an undeclared
    /// store, a store of other types); stops the application.
    #[error("topology error in {node}: {reason}")]
    Topology {
        /// The node.
        node: String,
        /// What is wrong.
        reason: String,
    },
}

impl ProcessError {
    /// Whether the error concerns one record (and so goes to a bad-record
    /// policy) rather than the task or the application.
    pub(crate) fn is_record_error(&self) -> bool {
        matches!(
            self,
            ProcessError::Rejected { .. }
                | ProcessError::Deserialize { .. }
                | ProcessError::Serde { .. }
                | ProcessError::Produce { .. }
        )
    }
}

/// Why a topology cannot be built, from
/// [`TopologyBuilder::build`](crate::topology::TopologyBuilder::build).
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::processor::TopologyError;
/// let mut b = Topology::builder();
/// b.add_store(StoreSpec::key_value("counts", Serdes::string(), Serdes::i64()));
/// b.add_store(StoreSpec::key_value("counts", Serdes::string(), Serdes::i64()));
/// let Err(TopologyError::Invalid(why)) = b.build() else { panic!("a store declared twice") };
/// assert!(why.contains("store `counts` is declared twice"), "{why}");
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// The topology is not valid; the message says what to change.
    #[error("invalid topology: {0}")]
    Invalid(String),
    /// A bug in rivulet's graph construction.
    #[error("internal topology error (a rivulet bug): {0}")]
    Internal(String),
}
