//! Retrying broker calls that fail for a passing reason: a leader or
//! coordinator moving, a request timing out, a broker restarting.
//!
//! librdkafka retries produce requests by itself (`message.timeout.ms`);
//! what it hands back to the caller are the calls of the commit cycle:
//! committing offsets, flushing, and the transaction calls. Those it marks
//! retriable are retried here with exponential backoff for a bounded time,
//! so a coordinator moving does not stop a thread or abort a transaction.

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, KafkaResult};

use crate::error::kafka::{classify, KafkaErrorKind};

/// The first wait before a retry; doubled after each.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a call is retried in all. Short of the consumer's default
/// `max.poll.interval.ms` (300 s): the thread does not poll meanwhile.
pub(crate) const RETRY_FOR: Duration = Duration::from_secs(60);

/// Whether `e` passes on its own, so the same call may be made again.
pub(crate) fn is_retriable(e: &KafkaError) -> bool {
    classify(e) == KafkaErrorKind::Retriable
}

/// Runs `op` until it succeeds, fails for a reason that does not pass, or
/// `budget` is spent; between attempts it waits 100 ms, 200 ms, ... up to
/// 5 s. Each retry is logged with `what`. Returns the last result.
pub(crate) fn retrying<T>(what: &str, budget: Duration, op: impl FnMut() -> KafkaResult<T>) -> KafkaResult<T> {
    retrying_when(is_retriable, what, budget, op)
}

/// Whether aborting may be tried again after `e`: any error short of one
/// that ends the producer (an abort that failed still "requires an abort").
pub(crate) fn abort_is_retriable(e: &KafkaError) -> bool {
    matches!(classify(e), KafkaErrorKind::Retriable | KafkaErrorKind::Abortable)
}

/// [`retrying`] with its own test of which errors pass.
pub(crate) fn retrying_when<T>(
    retriable: impl Fn(&KafkaError) -> bool,
    what: &str,
    budget: Duration,
    mut op: impl FnMut() -> KafkaResult<T>,
) -> KafkaResult<T> {
    let started = Instant::now();
    let mut wait = FIRST_BACKOFF;
    let mut attempt = 1u32;
    loop {
        match op() {
            Err(e) if retriable(&e) && started.elapsed() + wait < budget => {
                tracing::warn!(
                    error = %e,
                    attempt,
                    retry_in_ms = wait.as_millis() as u64,
                    "{what} failed for a passing reason; retrying"
                );
                std::thread::sleep(wait);
                wait = (wait * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
            result => {
                if result.is_ok() && attempt > 1 {
                    tracing::info!(attempts = attempt, "{what} succeeded after retrying");
                }
                return result;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rdkafka::types::RDKafkaErrorCode as C;

    use super::*;

    fn timed_out() -> KafkaError {
        KafkaError::ConsumerCommit(C::RequestTimedOut)
    }

    #[test]
    fn a_passing_error_is_retried_until_the_call_succeeds() {
        let calls = Cell::new(0);
        let started = Instant::now();
        let result = retrying("committing", Duration::from_secs(10), || {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                Err(timed_out())
            } else {
                Ok(calls.get())
            }
        });
        assert_eq!(result.unwrap(), 3);
        // Backed off 100 ms, then 200 ms.
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    }

    #[test]
    fn a_lasting_error_is_returned_at_once() {
        let calls = Cell::new(0);
        let result: KafkaResult<()> = retrying("committing", Duration::from_secs(10), || {
            calls.set(calls.get() + 1);
            Err(KafkaError::ConsumerCommit(C::RebalanceInProgress))
        });
        assert_eq!(result.unwrap_err().rdkafka_error_code(), Some(C::RebalanceInProgress));
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn retrying_stops_when_the_budget_is_spent() {
        let calls = Cell::new(0);
        let result: KafkaResult<()> = retrying("committing", Duration::from_millis(350), || {
            calls.set(calls.get() + 1);
            Err(timed_out())
        });
        assert_eq!(result.unwrap_err().rdkafka_error_code(), Some(C::RequestTimedOut));
        // 0 ms, 100 ms, 300 ms; a fourth attempt would start at 700 ms.
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn coordinator_and_timeout_errors_pass_fencing_does_not() {
        for code in [C::NotCoordinator, C::CoordinatorNotAvailable, C::OperationTimedOut, C::BrokerTransportFailure] {
            assert!(is_retriable(&KafkaError::ConsumerCommit(code)), "{code:?}");
        }
        for code in [C::ProducerFenced, C::IllegalGeneration, C::UnknownMemberId, C::InvalidProducerEpoch] {
            assert!(!is_retriable(&KafkaError::ConsumerCommit(code)), "{code:?}");
        }
    }
}

/// The commit cycle against a broker that fails requests for a while,
/// on the embedded (mock) cluster: a real broker cannot be made to.
#[cfg(test)]
mod broker_trouble {
    use std::time::{Duration, Instant};

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    use crate::kafka::embedded::EmbeddedKafka;
    use crate::prelude::*;

    fn run_through(guarantee: &str, api: RDKafkaApiKey, error: RDKafkaRespErr) {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let kafka = EmbeddedKafka::start().unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut b = Topology::builder();
        b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to(
            "out",
            Serdes::string(),
            Serdes::string(),
        );
        let topology = b.build().unwrap();
        let config = Config::loader()
            .env(Vec::<(String, String)>::new())
            .default_value("application_id", "retries")
            .default_value("instance_id", "i")
            .default_value("processing_guarantee", guarantee)
            .default_value("commit_interval_ms", "100")
            .default_value("state_dir", &state.path().to_string_lossy())
            .default_value("kafka.bootstrap_servers", &kafka.bootstrap_servers())
            .default_value("http.listen", "127.0.0.1:0")
            .load()
            .unwrap();
        kafka.create_topics_for(&topology, &config, 1).unwrap();
        let producer: BaseProducer =
            ClientConfig::new().set("bootstrap.servers", kafka.bootstrap_servers()).create().unwrap();
        for i in 0..20 {
            producer.send(BaseRecord::to("in").key(&format!("k{i}")).payload("v")).unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();

        // The first commits meet the failing broker.
        kafka.fail_requests(api, error, 3);
        let app = App::new(config).unwrap().start(topology).unwrap();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka.bootstrap_servers())
            .set("group.id", "retries")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("in", 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if app.has_stopped() {
                panic!("the application stopped on a passing error: {:?}", app.shutdown());
            }
            let committed = consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)).unwrap();
            // The mock cluster does not store transactional offset commits
            // where OffsetFetch sees them: under exactly-once a committed
            // transaction after the errors is the proof.
            let done = match guarantee {
                "exactly_once" => app.stats().commits >= 1,
                _ => committed.elements()[0].offset() == Offset::Offset(20),
            };
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "offsets not committed: {committed:?}, {:?}", app.stats());
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(app.stats().records_processed >= 20, "{:?}", app.stats());
        app.shutdown().unwrap();
    }

    #[test]
    fn at_least_once_rides_out_offset_commit_timeouts() {
        run_through("at_least_once", RDKafkaApiKey::OffsetCommit, RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    }

    #[test]
    fn exactly_once_rides_out_end_txn_timeouts() {
        run_through("exactly_once", RDKafkaApiKey::EndTxn, RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    }
}
