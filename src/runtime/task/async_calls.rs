//! The task's side of asynchronous calls (`topology::async_io`): the
//! commit's node hooks, run again while async results release the
//! watermark, and the failed calls to the processing-error policy.

use crate::config::ErrorPolicy;
use crate::error::Error;
use crate::processor::{FailedCall, ProcessError};
use crate::runtime::policy::{handle_bad_record, Original};

use super::Task;

impl Task {
    /// Commit step 1's node hooks: every node's `on_commit`, upstream
    /// first. Async nodes forward all their results there, which releases
    /// the watermark they held; the nodes then hear of it, and what they
    /// forward in turn (a window closing into an async node) belongs to
    /// this commit too, so the hooks run again until the watermark stays.
    pub(super) fn commit_nodes(&mut self) -> Result<(), ProcessError> {
        loop {
            let before = self.ctx.time.watermark();
            for (_, node) in &self.instance.lifecycles {
                node.borrow_mut().on_commit(&mut self.ctx)?;
            }
            if self.ctx.time.watermark() <= before {
                return Ok(());
            }
            self.watermark_advanced(before)?;
        }
    }

    /// At the end of a bounded run's input, before its windows close: the
    /// results of the calls in flight, which their windows wait for.
    pub(super) fn drain_async_calls(&mut self) -> Result<(), ProcessError> {
        if self.ctx.time.holding() {
            self.commit_nodes()?;
        }
        Ok(())
    }

    /// Hands each failed call to `errors.processing`: skipped, or written
    /// to the dead-letter topic in the current transaction. Under `fail`
    /// the first one is returned as the error that stops the application,
    /// naming the record whose call failed.
    pub(crate) fn settle_failed_calls(&mut self) -> Result<(), ProcessError> {
        if self.ctx.failed_calls.is_empty() {
            return Ok(());
        }
        for FailedCall { node, error, source, key, value, headers } in std::mem::take(&mut self.ctx.failed_calls) {
            let at = source.as_ref().map(ToString::to_string).unwrap_or_else(|| "(no source record)".into());
            let node = format!("{node} (the call for the record at {at})");
            let error = ProcessError::Rejected { node, source: error };
            if self.app.config.errors.processing == ErrorPolicy::Fail {
                return Err(error);
            }
            let original = Original { key: key.as_deref(), value: value.as_deref(), headers };
            match handle_bad_record(&self.app, &*self.ctx.collector, error, source.as_ref(), Some(original)) {
                Ok(()) => {}
                Err(Error::Record { error, .. }) => return Err(*error),
                Err(e) => {
                    return Err(ProcessError::Topology { node: format!("task {}", self.id), reason: e.to_string() })
                }
            }
        }
        Ok(())
    }
}
