//! How the driver runs its tasks: starting and stopping them, processing
//! what is pending in its in-memory topics until nothing is, commits.

use super::*;

impl TopologyTestDriver {
    /// The end of input, as a bounded run ends it
    /// ([`App::run_to_end`](crate::App::run_to_end)): each task, once the
    /// tasks writing its repartition topics have ended and their last
    /// records are processed, ends; with `bounded.close_windows_at_end`
    /// (the default) its watermark goes to infinity, so every window,
    /// session and join window closes and every event-time timer fires.
    /// Records piped afterwards are late for those operators.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::time::Duration;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(10)))
    ///     .emit_final()
    ///     .count("counts")
    ///     .map(|w, n| (format!("{}@{}", w.key, w.start), n))
    ///     .to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// for t in [1_000, 2_000, 12_000] {
    ///     driver.pipe(&input, "a".into(), "x".into(), t)?;
    /// }
    /// assert_eq!(driver.read_key_values(&output)?, [("a@0".to_string(), 2)]);
    /// driver.end_input()?; // the window [10 s, 20 s) closes too
    /// assert_eq!(driver.read_key_values(&output)?, [("a@10000".to_string(), 1)]);
    /// # Ok(()) }
    /// ```
    pub fn end_input(&mut self) -> Result<()> {
        self.settle()?;
        let app = &self.app.config.application_id;
        let upstreams = crate::runtime::task_manager::bounded::upstreams(&self.app.topology, app);
        if let Some(st) = crate::runtime::task_manager::bounded::in_cycle(&self.app.topology, app) {
            let why = format!("sub-topology {st} reads what it writes (a foreign-key join): its input has no end");
            return Err(Error::Topology(crate::processor::TopologyError::Invalid(why)));
        }
        let close = self.app.config.bounded.close_windows_at_end;
        let mut ended = vec![false; self.tasks.len()];
        while let Some(i) = (0..ended.len()).find(|&i| !ended[i] && upstreams[i].iter().all(|&u| ended[u])) {
            let result = self.tasks[i].end_input(close, &[]);
            self.handle(i, result, None)?;
            ended[i] = true;
            self.settle()?;
        }
        Ok(())
    }

    pub(super) fn stop_tasks(&mut self) {
        for mut task in self.tasks.drain(..) {
            task.abort();
            task.close();
        }
        let mut log = self.collector.log.borrow_mut();
        log.abort();
        // Records read but taken back are read again when written again.
        for (topic, position) in &mut self.read {
            *position = (*position).min(log.len(topic));
        }
        drop(log);
        self.consumed.clone_from(&self.committed);
    }

    /// Creates the tasks and restores their stores from the in-memory
    /// changelogs, as the runtime's restore does.
    pub(super) fn start_tasks(&mut self) -> Result<()> {
        for sub in 0..self.app.topology.subtopologies.len() {
            let id = TaskId { subtopology: sub, partition: 0 };
            let mut task = Task::new(id, &self.app, Box::new(self.collector.clone()))?;
            for (store, topic, local) in task.changelog_offsets()? {
                let log = self.collector.log.borrow();
                let records = log.records(&topic);
                let start = usize::try_from(local.unwrap_or(0)).unwrap_or(0).min(records.len());
                if start == records.len() {
                    continue;
                }
                let batch = records[start..].iter().filter_map(|r| Some((r.key.clone()?, r.value.clone()))).collect();
                let end = records.len() as i64;
                let mut part = RestorePartition { store, topic: topic.clone(), partition: 0, next: end, end, batch };
                task.apply_restored(&mut part, &self.app.stats)?;
            }
            task.init().map_err(|e| Error::record(None, e))?;
            self.tasks.push(task);
        }
        Ok(())
    }

    /// Processes what the piped record led to, then commits (unless the
    /// test commits).
    pub(super) fn settle(&mut self) -> Result<()> {
        self.process_pending()?;
        if self.auto_commit {
            self.commit()?;
        }
        Ok(())
    }

    /// Feeds every unread record of every source topic to its task, and
    /// the watermark markers that follow, until nothing is left. Whether
    /// anything was fed.
    pub(super) fn process_pending(&mut self) -> Result<bool> {
        let mut any = false;
        loop {
            let mut fed = false;
            let topics: Vec<(Arc<str>, usize)> =
                self.names.iter().map(|(t, name)| (name.clone(), self.app.topic_to_subtopology[t.as_str()])).collect();
            for (topic, sub) in topics {
                while let Some((offset, record)) = self.next_unread(&topic) {
                    fed = true;
                    self.process_one(sub, &topic, offset, record)?;
                }
            }
            let now = self.clock.load(Ordering::Relaxed);
            for i in 0..self.tasks.len() {
                let result = self.tasks[i].send_watermark_markers(now);
                self.handle(i, result, None)?;
            }
            if !fed {
                return Ok(any);
            }
            any = true;
        }
    }

    pub(super) fn next_unread(&mut self, topic: &str) -> Option<(i64, RawRecord)> {
        let log = self.collector.log.borrow();
        let position = self.consumed.entry(topic.to_string()).or_insert(0);
        let record = log.records(topic).get(*position)?.clone();
        *position += 1;
        Some((*position as i64 - 1, record))
    }

    pub(super) fn process_one(&mut self, sub: usize, topic: &Arc<str>, offset: i64, record: RawRecord) -> Result<()> {
        let mut headers = Headers::new();
        let mut mark = None;
        for (k, v) in &record.headers {
            if k == RECORD_MARK_HEADER {
                mark = Some(v.clone().unwrap_or_default());
            } else {
                headers.push((k.clone(), v.clone()));
            }
        }
        let input = Input { topic, partition: 0, offset, timestamp: record.timestamp, headers, mark: mark.as_deref() };
        let result = self.tasks[sub].process_input(input, record.key.as_deref(), record.value.as_deref());
        self.handle(sub, result, Some(&record))
    }

    /// What the task manager does with a task's error: a bad record goes
    /// to its policy; anything else stops the driver.
    pub(super) fn handle(
        &mut self,
        sub: usize,
        result: Result<(), crate::processor::ProcessError>,
        record: Option<&RawRecord>,
    ) -> Result<()> {
        let task = &mut self.tasks[sub];
        self.late += task.take_late_records();
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.is_record_error() => {
                let source = task.source().cloned();
                let original = record.map(|r| Original {
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                    headers: r.headers.iter().filter(|(k, _)| k != RECORD_MARK_HEADER).cloned().collect(),
                });
                handle_bad_record(&self.app, &self.collector, e, source.as_ref(), original)
            }
            Err(e) => Err(Error::record(task.source(), e)),
        }
    }

    pub(super) fn consumed_to_committed(&mut self) {
        self.committed.clone_from(&self.consumed);
        self.collector.log.borrow_mut().commit();
    }

    pub(super) fn task_with_store(&mut self, store: &str) -> Result<&mut Task> {
        let subs = &self.app.topology.subtopologies;
        let Some(sub) = subs.iter().position(|s| s.stores.iter().any(|n| n == store)) else {
            let known: Vec<&String> = subs.iter().flat_map(|s| &s.stores).collect();
            return Err(Error::TestDriver(format!("the topology has no store `{store}`; its stores are {known:?}")));
        };
        Ok(&mut self.tasks[sub])
    }
}

pub(super) fn encode<T: 'static>(serde: &dyn Serde<T>, value: &T, topic: &str, what: &str) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    match serde.serialize(value, &mut out) {
        Ok(Encoded::Bytes) => Ok(Some(out)),
        Ok(Encoded::Null) => Ok(None),
        Err(e) => Err(Error::TestDriver(format!("the test's {what} for topic {topic} cannot be serialized: {e}"))),
    }
}

pub(super) fn decode_error(topic: &str, what: &str, e: crate::serde::SerdeError) -> Error {
    Error::TestDriver(format!("a {what} in topic {topic} cannot be read with the output topic's serde: {e}"))
}
