//! The source and sink nodes: where records enter a sub-topology from a
//! topic (deserialized, timestamped, watermark marks taken) and leave it.

use super::*;

use crate::processor::collector::Outgoing;

pub(super) fn source<K: Data, V: Data>(
    graph: &Rc<RefCell<Graph>>,
    topic: TopicName,
    key_serde: impl Serde<K>,
    value_serde: impl Serde<V>,
    time: Timestamps<V>,
) -> KStream<K, V> {
    let key_serde: Arc<dyn Serde<K>> = Arc::new(key_serde);
    let value_serde: Arc<dyn Serde<V>> = Arc::new(value_serde);
    let mut serdes = format!("{} / {}", key_serde.name(), value_serde.name());
    if !matches!(time.extract, Extract::Record) || time.out_of_orderness_ms > 0 || time.idle_after_ms.is_some() {
        serdes = format!("{serdes}; {}", time.describe());
    }
    let (ks, vs, t) = (key_serde.clone(), value_serde.clone(), topic.clone());
    // Repartition topics carry the upstream tasks' watermarks as markers.
    let markers = matches!(topic, TopicName::Internal(_));
    let build: BuildFn = Arc::new(move |inst: &mut Instantiator<'_>, id| {
        let children = inst.children::<K, V>(id)?;
        let topic = t.resolve(inst.application_id());
        let entry: SourceEntry = Rc::new(RefCell::new(SourceNode {
            topic_name: Arc::from(topic.as_str()),
            topic,
            key_serde: ks.clone(),
            value_serde: vs.clone(),
            time: time.clone(),
            slot: None,
            markers,
            children,
        }));
        Ok(Box::new(entry) as Box<dyn Any>)
    });
    let mut g = graph.borrow_mut();
    let name = g.node_name("SOURCE");
    let id = g.add(name, NodeKind::Source { topic, serdes }, &[], Vec::new(), build);
    drop(g);
    KStream { graph: graph.clone(), node: id, key_serde: None, value_serde: None, key_changed: false, _t: PhantomData }
}

pub(super) struct SourceNode<K, V> {
    topic: String,
    topic_name: Arc<str>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    time: Timestamps<V>,
    /// This source partition's slot in the task's time, once it has data.
    slot: Option<usize>,
    /// A repartition topic: watermark markers move its time.
    markers: bool,
    children: Children<K, V>,
}

impl<K: Data, V: Data> SourceNode<K, V> {
    pub(super) fn bad_mark(&self, value: &[u8]) -> ProcessError {
        ProcessError::Topology {
            node: format!("the source of {}", self.topic),
            reason: format!(
                "a watermark mark reads {:?}, not <partition>/<tasks>/<watermark or idle>; only rivulet itself may \
                 write to its internal topic {}",
                String::from_utf8_lossy(value),
                self.topic
            ),
        }
    }
}

impl<K: Data, V: Data> RawSource for SourceNode<K, V> {
    fn register_time(&mut self, task: &mut crate::processor::TaskContext, now: i64) {
        if !self.markers {
            let (ooo, idle) = (self.time.out_of_orderness_ms, self.time.idle_after_ms);
            self.slot = Some(task.time.slot(&self.topic_name, ooo, idle, now));
        }
    }

    fn process_raw(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: crate::record::Headers,
        mark: Option<&[u8]>,
        task: &mut crate::processor::TaskContext,
    ) -> Result<(), ProcessError> {
        // A repartition topic: the upstream task's watermark comes with
        // each record (a header) or alone (a marker). A record is judged by
        // the watermark as of the records before it; its own mark applies
        // after it, as a Flink watermark that follows the record.
        let mut upstream = None;
        if self.markers {
            let slot = *self.slot.get_or_insert_with(|| task.time.marker_slot(&self.topic_name));
            if is_marker(value, headers.iter().map(|(k, _)| k.as_str())) {
                let raw = headers.iter().find(|(k, _)| k == MARKER_HEADER).and_then(|(_, v)| v.as_deref());
                let Some((from, tasks, m)) = raw.and_then(decode_mark) else {
                    return Err(self.bad_mark(raw.unwrap_or_default()));
                };
                task.time.observe_mark(slot, from, tasks, m, task.clock.now_ms());
                return Ok(());
            }
            if let Some(raw) = mark {
                upstream = Some(decode_mark(raw).ok_or_else(|| self.bad_mark(raw))?);
            }
        }
        let key = self
            .key_serde
            .deserialize(key)
            .map_err(|e| ProcessError::Deserialize { what: format!("key of topic {}", self.topic), source: e })?;
        let value = self
            .value_serde
            .deserialize(value)
            .map_err(|e| ProcessError::Deserialize { what: format!("value of topic {}", self.topic), source: e })?;
        let timestamp = match &self.time.extract {
            Extract::Record => timestamp,
            Extract::WallClock => task.clock.now_ms(),
            Extract::Value(f) => f(&value).ok_or_else(|| ProcessError::Rejected {
                node: format!("the timestamp extractor of topic {}", self.topic),
                source: "the value has no timestamp; the extractor returned None".into(),
            })?,
        };
        let now = if self.time.idle_after_ms.is_some() { task.clock.now_ms() } else { 0 };
        let (ooo, idle) = (self.time.out_of_orderness_ms, self.time.idle_after_ms);
        let slot = *self.slot.get_or_insert_with(|| task.time.slot(&self.topic_name, ooo, idle, now));
        task.time.observe(slot, timestamp, now);
        task.stream_time = task.stream_time.max(timestamp);
        self.children.forward(Record { key, value, timestamp, headers }, task)?;
        if let Some((from, tasks, m)) = upstream {
            task.time.observe_mark(slot, from, tasks, m, 0);
        }
        Ok(())
    }
}

/// Where a sink writes: one topic, or a topic chosen per record.
pub(super) enum SinkTarget<K, V> {
    Fixed(String),
    #[allow(clippy::type_complexity)]
    PerRecord(Arc<dyn Fn(&K, &V) -> String + Send + Sync>),
}

pub(super) struct SinkNode<K, V> {
    pub(super) target: SinkTarget<K, V>,
    pub(super) key_serde: Arc<dyn Serde<K>>,
    pub(super) value_serde: Arc<dyn Serde<V>>,
    /// A repartition topic: each record carries the task's watermark.
    pub(super) marks: bool,
}

impl<K: 'static, V: 'static> Node<K, V> for SinkNode<K, V> {
    fn process(&mut self, record: Record<K, V>, task: &mut crate::processor::TaskContext) -> Result<(), ProcessError> {
        let topic: std::borrow::Cow<'_, str> = match &self.target {
            SinkTarget::Fixed(t) => t.as_str().into(),
            SinkTarget::PerRecord(f) => f(&record.key, &record.value).into(),
        };
        let mut key = std::mem::take(&mut task.key_buf);
        let mut value = std::mem::take(&mut task.value_buf);
        key.clear();
        value.clear();
        let mark = if self.marks { Some(task.take_mark()) } else { None };
        let result = (|| {
            let k = self
                .key_serde
                .serialize(&record.key, &mut key)
                .map_err(|e| ProcessError::Serde { what: format!("key for topic {topic}"), source: e })?;
            let v = self
                .value_serde
                .serialize(&record.value, &mut value)
                .map_err(|e| ProcessError::Serde { what: format!("value for topic {topic}"), source: e })?;
            task.collector.send(Outgoing {
                topic: &topic,
                partition: None,
                key: (k == Encoded::Bytes).then_some(key.as_slice()),
                value: (v == Encoded::Bytes).then_some(value.as_slice()),
                timestamp: record.timestamp,
                headers: &record.headers,
                mark: mark.as_deref(),
                source: task.source.as_ref(),
            })
        })();
        task.key_buf = key;
        task.value_buf = value;
        if let Some(mark) = mark {
            task.return_mark(mark);
        }
        result
    }
}
