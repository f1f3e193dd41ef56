//! The commit: one sequence for both guarantees, written as its
//! specification (the Quix Streams checkpoint is the model).
//!
//! 1. **Prepare.** Every task runs its nodes' `on_commit` (windows emit,
//!    watermark markers go out) and sends the latest value per key of its
//!    write buffer to the stores' changelogs (one record per key per
//!    cycle), keeping the drained batches for step 4.
//! 2. **Deliver.** The producer is flushed: outputs, repartition, marker
//!    and changelog records are all delivered. A failed delivery goes to
//!    the production-error policy under at-least-once (under `fail` the
//!    cycle stops here, so no offset passes an undelivered output), but a
//!    record failed only because another of its batch was refused is sent
//!    again; under exactly-once it makes the transaction abort, and a record
//!    the broker refused for a reason of its own goes to the policy when
//!    its input record is processed again (`runtime::refused`).
//! 3. **Commit the offsets.** The one step where the guarantees differ:
//!    at-least-once commits the consumed offsets with the consumer;
//!    exactly-once sends them with the consumer's group metadata (so a
//!    zombie of an older generation is fenced) into the transaction that
//!    holds every record of the cycle, and commits it
//!    ([`StreamsProducer::commit`]).
//! 4. **Apply.** Only then each task writes its drained batches to its local
//!    stores, one batch per store holding the data and the changelog offset
//!    it corresponds to.
//! 5. **Clear** the write buffers and consumed offsets; the committed
//!    offsets of repartition topics go to the purger.
//!
//! If the cycle fails before step 4 the local stores are untouched: a
//! consistent snapshot at a known changelog offset. Under exactly-once an
//! abortable failure aborts the transaction, drops every task's buffers and
//! rewinds the consumer to the committed offsets (the records are processed
//! again); a `TaskMigrated` one drops the tasks and rejoins.
//!
//! [`StreamsProducer::commit`]: crate::runtime::producer::StreamsProducer::commit

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::TaskManager;
use crate::config::ProcessingGuarantee;
use crate::error::kafka::{classify, KafkaErrorKind};
use crate::error::{Error, Result};
use crate::kafka::member_offsets::GroupMember;
use crate::kafka::streams_group::{codes, error_code, SecurityConfig, StreamsGroupClient};
use crate::metrics::CommitResult;
use crate::processor::collector::{Collector, Outgoing};
use crate::processor::wall_clock_ms;
use crate::record::Headers;
use crate::runtime::collector::{DeliveryFailure, FailureCause};
use crate::runtime::membership::Membership;
use crate::runtime::policy::{handle_bad_record, Original};
use crate::runtime::producer::OffsetsFor;
use crate::runtime::refused::culprits;
use crate::runtime::retry::{retrying, RETRY_FOR};
use crate::runtime::stats::RuntimeStats;
use crate::runtime::task::Task;
use crate::topology::ProcessError;

/// How long one flush waits for outputs to be delivered; a flush that
/// times out is retried within [`RETRY_FOR`].
const FLUSH_TIMEOUT: Duration = Duration::from_secs(20);

/// How a step of the cycle failed.
enum CommitFailure {
    /// Abort the transaction, rewind, go on (exactly-once only).
    Abort(String),
    /// Another member owns the tasks: drop them and rejoin.
    Migrated(String),
    /// Stop with this error (under exactly-once, after aborting).
    Stop(Error),
}

impl CommitFailure {
    /// A failed transaction call, by what the error means.
    fn of(e: KafkaError, what: &str) -> Self {
        match classify(&e) {
            KafkaErrorKind::TaskMigrated => CommitFailure::Migrated(format!("{what}: {e}")),
            // Still failing after the retries, or not passing: this
            // transaction cannot commit.
            KafkaErrorKind::Retriable | KafkaErrorKind::Abortable | KafkaErrorKind::Fatal => {
                CommitFailure::Abort(format!("{what}: {e}"))
            }
        }
    }
}

/// Attempts at an at-least-once commit as a streams-group member (each
/// with the member's current epoch, on a new connection after a failure).
const MEMBER_COMMIT_ATTEMPTS: u32 = 3;

impl TaskManager {
    /// At-least-once under the streams protocol: `OffsetCommit` (v9+) with
    /// the member id and epoch, which librdkafka cannot send for a consumer
    /// assigned by hand. Still failing after the attempts, the tasks are
    /// treated as migrated: dropped, and the thread starts over.
    fn commit_as_member(&mut self, m: &Membership, offsets: &TopicPartitionList) -> Result<(), CommitFailure> {
        let offsets: Vec<(String, i32, i64, Option<String>)> = offsets
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.topic().to_string(), e.partition(), o, Some(e.metadata().to_string()))),
                _ => None,
            })
            .collect();
        let mut last = String::new();
        for attempt in 0..MEMBER_COMMIT_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500));
            }
            let (member_id, epoch) = m.member();
            let config = &self.app.config;
            let client = match self.offsets_client.take() {
                Some(c) => c,
                None => {
                    let client_id = format!("{}-{}-{}-offsets", config.application_id, config.instance_id, self.thread);
                    let security = match SecurityConfig::from_config(config) {
                        Ok(s) => s,
                        Err(e) => {
                            last = e.to_string();
                            break;
                        }
                    };
                    match StreamsGroupClient::connect(
                        &security,
                        &config.kafka.bootstrap_servers,
                        m.group(),
                        &client_id,
                        Duration::from_secs(10),
                    ) {
                        Ok(c) => c,
                        Err(e) => {
                            last = e.to_string();
                            continue;
                        }
                    }
                }
            };
            let mut client = client;
            match client.commit_offsets(m.group(), &member_id, epoch, &offsets) {
                Ok(()) => {
                    self.offsets_client = Some(client);
                    return Ok(());
                }
                // Refused for good: the member lost these tasks.
                Err(e) if error_code(&e).is_some_and(codes::member_fenced) => {
                    return Err(CommitFailure::Migrated(format!("committing offsets as a streams group member: {e}")))
                }
                Err(e) => {
                    self.offsets_client = Some(client);
                    last = e.to_string();
                }
            }
        }
        Err(CommitFailure::Migrated(format!("committing offsets as member of the streams group: {last}")))
    }

    fn exactly_once(&self) -> bool {
        self.app.config.processing_guarantee == ProcessingGuarantee::ExactlyOnce
    }

    /// Runs the commit (see the module docs), counts it in the metrics and,
    /// when it committed, hands the committed repartition offsets to the
    /// purger.
    pub(crate) fn commit<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        self.last_commit = Instant::now();
        // Taken now: a successful cycle clears the tasks' consumed offsets.
        let purgeable =
            self.app.purger.as_ref().map(|p| p.purgeable(self.tasks.values().flat_map(Task::consumed_offsets)));
        let outcome = match self.commit_steps(consumer) {
            Ok(outcome) => Ok(outcome),
            Err(CommitFailure::Abort(why)) => match self.transaction_denied() {
                // Processing again would be refused again: stop.
                Some(denied) => Err(denied),
                None => {
                    tracing::warn!(reason = %why, "aborting the transaction; the tasks rewind to their last committed offsets");
                    self.abort_transaction(consumer).map(|()| Some(CommitResult::Aborted))
                }
            },
            Err(CommitFailure::Migrated(why)) => Err(Error::TaskMigrated(why)),
            Err(CommitFailure::Stop(e)) => {
                if self.exactly_once() {
                    if let Err(abort) = self.abort_transaction(consumer) {
                        tracing::warn!(error = %abort, "aborting the transaction after a failed commit also failed");
                    }
                }
                Err(e)
            }
        };
        let took = self.last_commit.elapsed();
        match outcome {
            Ok(Some(outcome)) => {
                self.app.metrics.commit(outcome, took);
                if let (CommitResult::Committed, Some(purger), Some(offsets)) = (outcome, &self.app.purger, purgeable) {
                    purger.committed(offsets);
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                self.app.metrics.commit(CommitResult::Failed, took);
                Err(e)
            }
        }
    }

    /// Steps 1 to 5. `None` when there was nothing to commit in a
    /// transaction.
    fn commit_steps<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> std::result::Result<Option<CommitResult>, CommitFailure> {
        // 1. Prepare.
        for task in self.tasks.values_mut() {
            task.prepare_commit().map_err(|e| match e {
                ProcessError::TransactionFailed { .. } => CommitFailure::Abort(e.to_string()),
                e => CommitFailure::Stop(Error::record(None, e)),
            })?;
        }
        let offsets = self.consumed_offsets().map_err(CommitFailure::Stop)?;
        let producer = self.collector.producer().clone();
        if self.exactly_once() && !producer.in_transaction() && offsets.count() == 0 {
            return Ok(None);
        }
        // 2. Deliver.
        self.deliver_outputs()?;
        // 3. Commit the offsets.
        if self.exactly_once() {
            let group = match &self.app.membership {
                Some(m) => {
                    let (member_id, epoch) = m.member();
                    OffsetsFor::Member(GroupMember { group: m.group().to_string(), member_id, epoch })
                }
                None => OffsetsFor::Consumer(
                    consumer
                        .group_metadata()
                        .ok_or_else(|| CommitFailure::Abort("the consumer has no group metadata yet".into()))?,
                ),
            };
            producer.commit(&offsets, &group).map_err(|e| {
                match self.denied(&e, "committing the transaction", "WRITE") {
                    // A missing ACL would fail every retry of the transaction.
                    Some(denied) => CommitFailure::Stop(denied),
                    None => CommitFailure::of(e, "committing the transaction"),
                }
            })?;
        } else if offsets.count() > 0 {
            if let Some(m) = self.app.membership.clone() {
                self.commit_as_member(&m, &offsets)?;
            } else {
                retrying("committing consumed offsets", RETRY_FOR, || consumer.commit(&offsets, CommitMode::Sync))
                    .map_err(|e| match classify(&e) {
                        KafkaErrorKind::TaskMigrated => CommitFailure::Migrated(format!("committing offsets: {e}")),
                        _ => CommitFailure::Stop(
                            self.denied(&e, "committing consumed offsets", "READ")
                                .unwrap_or_else(|| Error::kafka("committing consumed offsets", e)),
                        ),
                    })?;
            }
        }
        producer.forget_refused(&offsets);
        // 4. Apply, and 5. clear.
        for task in self.tasks.values_mut() {
            task.complete_commit().map_err(CommitFailure::Stop)?;
        }
        RuntimeStats::add(&self.app.stats.commits, 1);
        Ok(Some(CommitResult::Committed))
    }

    /// Step 2: flushes the producer until every record is delivered or has
    /// gone to its policy.
    fn deliver_outputs(&mut self) -> std::result::Result<(), CommitFailure> {
        loop {
            let flushed = retrying("delivering outputs", RETRY_FOR, || self.collector.flush(FLUSH_TIMEOUT));
            let failures = match flushed {
                Ok(()) => self.collector.take_failures(),
                Err(e) if self.exactly_once() => return Err(CommitFailure::of(e, "delivering outputs")),
                Err(e) => {
                    let what = format!("delivering outputs within {}s", RETRY_FOR.as_secs());
                    return Err(CommitFailure::Stop(Error::kafka(what, e)));
                }
            };
            if self.exactly_once() {
                // Retrying the transaction would be refused again.
                if let Some(f) = failures.iter().find(|f| f.cause == FailureCause::Denied) {
                    return Err(CommitFailure::Stop(Error::NotAuthorized(f.reason.clone())));
                }
                // The refused record's report names the broker's reason;
                // the others' are its consequences.
                let first = failures.first().map(|f| format!("delivery to {} failed: {}", f.topic, f.reason));
                let why = self.collector.producer().remember_refused(failures).or(first);
                if let Some(f) = self.collector.producer().take_unroutable() {
                    return Err(CommitFailure::Stop(unroutable(f)));
                }
                return why.map_or(Ok(()), |why| Err(CommitFailure::Abort(why)));
            }
            if failures.is_empty() {
                return Ok(());
            }
            // Dead-lettered and resent failures are new outputs: flush again.
            let (refused, others): (Vec<_>, Vec<_>) =
                failures.into_iter().partition(|f| f.cause == FailureCause::Refused);
            let at_fault = culprits(&refused);
            let refused = refused.into_iter().enumerate().map(|(i, f)| (f, at_fault.binary_search(&i).is_ok()));
            let others = others.into_iter().map(|f| {
                let at_fault = f.cause != FailureCause::OtherRecord;
                (f, at_fault)
            });
            for (f, at_fault) in refused.chain(others) {
                self.delivery_failed(f, at_fault).map_err(CommitFailure::Stop)?;
            }
        }
    }

    /// At-least-once: a record failed only because another of its batch
    /// was refused (not `at_fault`) is sent again; any other failure goes
    /// to the policy, with the input record that produced it.
    fn delivery_failed(&self, f: DeliveryFailure, at_fault: bool) -> Result<()> {
        let source = f.source.as_ref();
        let error = if !at_fault {
            let again = Outgoing {
                topic: &f.topic,
                partition: Some(f.partition),
                key: f.key.as_deref(),
                value: f.value.as_deref(),
                timestamp: f.timestamp.unwrap_or_else(wall_clock_ms),
                headers: &f.headers,
                mark: None,
                source,
            };
            match self.collector.produce(again) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            }
        } else {
            ProcessError::Produce { topic: f.topic, reason: f.reason, key: f.key.clone(), value: f.value.clone() }
        };
        if !error.is_record_error() {
            return Err(Error::record(source, error));
        }
        let original = Original { key: f.key.as_deref(), value: f.value.as_deref(), headers: Headers::new() };
        handle_bad_record(&self.app, &self.collector, error, source, Some(original))
    }

    pub(super) fn consumed_offsets(&self) -> Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for task in self.tasks.values() {
            for (topic, partition, offset) in task.consumed_offsets() {
                tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
                    .map_err(|e| Error::kafka("building the offsets to commit", e))?;
                // A bounded run's task past its end says so to the group.
                if let Some(mut e) = tpl.find_partition(topic, partition).filter(|_| task.ended()) {
                    e.set_metadata(super::bounded::DONE);
                }
            }
        }
        Ok(tpl)
    }

    /// When the open transaction failed for lack of a permission, the
    /// error naming it (see `StreamsProducer::transaction_error`).
    pub(super) fn transaction_denied(&self) -> Option<Error> {
        let e = self.collector.producer().transaction_error()?;
        self.denied(&e, "producing in the transaction", "WRITE")
    }

    /// Aborts the open transaction, drops every task's uncommitted state and
    /// rewinds their partitions to the group's committed offsets.
    pub(super) fn abort_transaction<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        match self.collector.producer().abort() {
            Ok(true) => self.app.metrics.transaction_aborts.inc(),
            Ok(false) => {}
            Err(e) if classify(&e) == KafkaErrorKind::TaskMigrated => {
                return Err(Error::TaskMigrated(format!("aborting the transaction: {e}")))
            }
            Err(e) => return Err(Error::Internal(format!("the transaction could not be aborted: {e}"))),
        }
        if let Some(f) = self.collector.producer().take_unroutable() {
            return Err(unroutable(f));
        }
        let mut tpl = TopicPartitionList::new();
        for task in self.tasks.values() {
            for (topic, partition) in task.consumed_partitions() {
                tpl.add_partition(topic, partition);
            }
        }
        for task in self.tasks.values_mut() {
            task.abort();
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        let committed = retrying("reading committed offsets", RETRY_FOR, || {
            consumer.committed_offsets(tpl.clone(), Duration::from_secs(30))
        })
        .map_err(|e| Error::kafka("reading committed offsets to rewind", e))?;
        for e in committed.elements() {
            let to = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            consumer
                .seek(e.topic(), e.partition(), to, Duration::from_secs(10))
                .map_err(|err| Error::kafka(format!("rewinding {}[{}]", e.topic(), e.partition()), err))?;
        }
        Ok(())
    }
}

/// Exactly-once: the broker refused a record no input record produced, so
/// processing again cannot route it to `errors.production`: stop, naming it.
fn unroutable(f: DeliveryFailure) -> Error {
    let reason = format!(
        "{}; no input record produced it (a changelog record, or an output of a timer or of the commit), \
         so under exactly-once it cannot go to errors.production",
        f.reason
    );
    Error::record(None, ProcessError::Produce { topic: f.topic, reason, key: f.key, value: f.value })
}
