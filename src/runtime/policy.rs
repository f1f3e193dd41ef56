//! Bad records: the failure policies `errors.deserialization`,
//! `errors.processing` and `errors.production` (fail, skip, or dead-letter),
//! as Kafka Streams' deserialization, processing and production exception
//! handlers.

use crate::config::ErrorPolicy;
use crate::error::{Error, Result};
use crate::processor::collector::Collector;
use crate::record::{Headers, SourceOffset};
use crate::runtime::stats::RuntimeStats;
use crate::runtime::AppContext;
use crate::topology::ProcessError;

/// The bytes of the record that failed, for the dead-letter topic.
pub(crate) struct Original<'a> {
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: Headers,
}

/// Applies the policy for `error`'s kind: fail, skip (log and count), or
/// dead-letter (the original bytes plus headers describing the error).
pub(crate) fn handle_bad_record(
    app: &AppContext,
    collector: &dyn Collector,
    error: ProcessError,
    source: Option<&SourceOffset>,
    original: Option<Original<'_>>,
) -> Result<()> {
    let errors = &app.config.errors;
    let (kind, policy) = match &error {
        ProcessError::Deserialize { .. } => ("deserialization", errors.deserialization),
        ProcessError::Produce { .. } => ("production", errors.production),
        _ => ("processing", errors.processing),
    };
    let at = source.map(ToString::to_string).unwrap_or_else(|| "an output record".into());
    match policy {
        ErrorPolicy::Fail => {
            app.metrics.bad_record(kind, "fail");
            Err(Error::record(source, error))
        }
        ErrorPolicy::Skip => {
            app.metrics.bad_record(kind, "skip");
            tracing::warn!(kind, record = %at, error = %error, "skipping a bad record (errors.{kind} = \"skip\")");
            RuntimeStats::add(&app.stats.records_skipped, 1);
            Ok(())
        }
        ErrorPolicy::DeadLetter => {
            let (key, value, mut headers) = match original {
                Some(o) => (o.key, o.value, o.headers),
                None => (None, None, Headers::new()),
            };
            headers.push(("rivulet.error.kind".into(), Some(kind.as_bytes().to_vec())));
            headers.push(("rivulet.error.message".into(), Some(error.to_string().into_bytes())));
            if let Some(s) = source {
                headers.push(("rivulet.source.topic".into(), Some(s.topic.as_bytes().to_vec())));
                headers.push(("rivulet.source.partition".into(), Some(s.partition.to_string().into_bytes())));
                headers.push(("rivulet.source.offset".into(), Some(s.offset.to_string().into_bytes())));
            }
            if let ProcessError::Produce { topic, .. } = &error {
                headers.push(("rivulet.target.topic".into(), Some(topic.as_bytes().to_vec())));
            }
            tracing::warn!(kind, record = %at, error = %error, topic = %app.dead_letter_topic, "writing a bad record to the dead-letter topic");
            collector
                .send_dead_letter(&app.dead_letter_topic, key, value, &headers)
                .map_err(|e| Error::record(source, e))?;
            RuntimeStats::add(&app.stats.records_dead_lettered, 1);
            app.metrics.bad_record(kind, "dead_letter");
            app.metrics.dead_letter_records.inc();
            Ok(())
        }
    }
}
