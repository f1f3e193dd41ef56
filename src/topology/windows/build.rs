//! Building a windowed aggregation: the window node (and its late-record
//! topic), in one phase or after a two-phase pre-aggregation
//! (`topology/two_phase.rs`, [`WindowedStream::two_phase`]).

use super::*;
use crate::topology::two_phase::{PreAggregateProcessor, Tumbling, PRE_AGGREGATE_MAX_KEYS};

impl<K: Data, V: Data, R: WindowOutput> WindowedStream<K, V, R> {
    /// Pre-aggregates per task, key and window before the repartition
    /// topic, and merges the partials in the window node after it (Flink
    /// SQL's two-phase window aggregation: `LocalWindowAggregate` then
    /// `GlobalWindowAggregate`). Results are the one-phase aggregation's;
    /// under `emit_on_update` a window is updated once per upstream task and
    /// commit (or watermark closing it) instead of once per record. The
    /// aggregation's own merge (`Aggregator::merge`) combines the partials.
    ///
    /// Lateness is still decided after the repartition, as in one phase
    /// and in Flink (whose local window operator drops nothing): a record
    /// on time where it is read is never late downstream, and its window's
    /// partial is flushed before this task's watermark marks could close
    /// the window there; a record already late where it is read goes on
    /// alone at once and is judged as in one phase.
    ///
    /// Tumbling windows only, without [`late_records_to`](Self::late_records_to)
    /// (the late records would be partial aggregates, not the input's
    /// values); `build()` says so otherwise. Without a repartition (the key
    /// did not change) it runs in one phase.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::unit(), Serdes::string()) // page
    ///     .group_by(|_, page: &String| page.clone(), Serdes::string())
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(60)))
    ///     .two_phase()
    ///     .emit_final()
    ///     .count("clicks-per-page-minute")
    ///     .to("clicks-per-page-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?.manual_commits();
    /// # let clicks = driver.input_topic("clicks", Serdes::unit(), Serdes::string());
    /// # let out = driver.output_topic("clicks-per-page-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// for t in [1_000, 2_000, 3_000, 61_000] {
    ///     driver.pipe(&clicks, (), "/home".to_string(), t)?;
    /// }
    /// driver.commit()?;
    /// let closed: Vec<(i64, i64)> = driver.read(&out)?.iter().map(|r| (r.key.start, r.value)).collect();
    /// assert_eq!(closed, [(0, 3)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn two_phase(mut self) -> Self {
        self.two_phase = true;
        self
    }

    pub(super) fn build<S: Data, O: Data>(
        self,
        name: &str,
        agg: Agg<V, S, O>,
        out_serde: Arc<dyn Serde<O>>,
    ) -> KStream<Windowed<K>, R::Value<O>> {
        let WindowedStream { grouped, windows, emit, late_topic, two_phase, .. } = self;
        let s = &grouped.stream;
        if two_phase && s.key_changed {
            if let Some(key_serde) = s.key_serde.clone() {
                let Some((input, key_serde, global)) = local_phase(name, s, key_serde, windows, late_topic, agg) else {
                    return s.derive(s.node_id(), false);
                };
                return window_node::<K, S, S, O, R>(name, input, key_serde, windows, emit, None, global, out_serde);
            }
        }
        let Some((input, key_serde)) = grouped.input(name) else {
            return grouped.stream.derive(grouped.stream.node_id(), false);
        };
        window_node::<K, V, S, O, R>(name, input, key_serde, windows, emit, late_topic, agg, out_serde)
    }
}

/// The local phase (`PRE_AGGREGATE`) and the repartition topic of
/// partials: the window node's input, its key serde and the aggregation
/// merging the partials. `None` after recording a topology error.
#[allow(clippy::type_complexity)]
fn local_phase<K: Data, V: Data, S: Data, O: Data>(
    name: &str,
    s: &KStream<K, V>,
    key_serde: Arc<dyn Serde<K>>,
    windows: Windows,
    late_topic: Option<String>,
    agg: Agg<V, S, O>,
) -> Option<(KStream<K, S>, Arc<dyn Serde<K>>, Agg<S, S, O>)> {
    let tumbling = match windows.kind {
        Kind::Time { size, advance } if size == advance => Some(Tumbling { size, grace: windows.grace }),
        _ => None,
    };
    let why = match (tumbling, &late_topic) {
        (None, _) => Some("two_phase() supports tumbling windows only"),
        (_, Some(_)) => Some("two_phase() cannot send late records to a topic (they would be partial aggregates)"),
        _ => None,
    };
    let (Some(tumbling), None) = (tumbling, why) else {
        let why = why.unwrap_or_default();
        s.graph.borrow_mut().errors.push(TopologyError::Invalid(format!("windowed aggregation `{name}`: {why}")));
        return None;
    };
    let (init, add) = (agg.init.clone(), agg.add.clone());
    let ks = key_serde.clone();
    let local = s.add_processor("PRE_AGGREGATE", Vec::new(), move |node| {
        let (init, add) = (init.clone(), add.clone());
        let add: crate::topology::two_phase::PartialFn<K, V, S> =
            Arc::new(move |_, v: V, acc: Option<S>| Ok(add(acc.unwrap_or_else(|| init()), &v)));
        PreAggregateProcessor::new(node, ks.clone(), add, Some(tumbling), PRE_AGGREGATE_MAX_KEYS)
    });
    let partials: KStream<K, S> =
        KStream { key_serde: Some(key_serde.clone()), value_serde: Some(agg.codec.clone()), ..local };
    let (input, key_serde) = KGroupedStream { stream: partials }.input(name)?;
    let merge = agg.merge.clone();
    let global: Agg<S, S, O> = Agg {
        init: agg.init,
        add: Arc::new(move |acc: S, partial: &S| merge(acc, partial.clone())),
        merge: agg.merge,
        result: agg.result,
        codec: agg.codec,
    };
    Some((input, key_serde, global))
}

/// The window node over `input` (already repartitioned), its late-record
/// topic and its results.
#[allow(clippy::too_many_arguments)]
fn window_node<K: Data, V: Data, S: Data, O: Data, R: WindowOutput>(
    name: &str,
    input: KStream<K, V>,
    key_serde: Arc<dyn Serde<K>>,
    windows: Windows,
    emit: EmitMode,
    late_topic: Option<String>,
    agg: Agg<V, S, O>,
    out_serde: Arc<dyn Serde<O>>,
) -> KStream<Windowed<K>, R::Value<O>> {
    let value_serde = input.value_serde.clone();
    if matches!(windows.kind, Kind::Sliding { .. }) && value_serde.is_none() {
        input.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
            "sliding-window aggregation `{name}` keeps each window's values, so it needs the value serde; \
             call .with_serdes(..) before grouping"
        )));
    }
    let mut builder = TopologyBuilder { graph: input.graph.clone() };
    builder.add_store(segmented::store_spec(name, &windows).queried_as(query::layout(&windows, &key_serde, &agg)));
    let store = name.to_string();
    let op = format!("WINDOW({})", windows.describe());
    let (ks, vs) = (key_serde.clone(), value_serde.clone());
    let node: KStream<(), WinOut<K, V, O>> =
        input.add_processor(&op, vec![store.clone()], move |node| WindowProcessor {
            node: node.to_string(),
            store: store.clone(),
            windows,
            emit,
            agg: agg.clone(),
            key_serde: ks.clone(),
            value_serde: vs.clone(),
            dirty: BTreeSet::new(),
            unemitted: BTreeSet::new(),
            retracted: BTreeSet::new(),
            closes: BTreeMap::new(),
            persisted_watermark: i64::MIN,
            watermark: i64::MIN,
            store_index: usize::MAX,
            raw_purged: i64::MIN,
            closed_below: i64::MIN,
            _k: std::marker::PhantomData,
        });
    if let Some(topic) = late_topic {
        let hint = format!("late records of `{name}`");
        late_records_to(&node, &hint, "before grouping", &topic, key_serde.clone(), value_serde, |_, out| match out {
            WinOut::Late(key, value) => Some((key, value)),
            WinOut::Result(..) => None,
        });
    }
    let results = node.flat(
        "WINDOW_RESULTS",
        false,
        Arc::new(|r: Record<(), WinOut<K, V, O>>| {
            Ok(match r.value {
                WinOut::Result(key, value) => match R::wrap(value) {
                    Some(value) => Emit::One(Record { key, value, timestamp: r.timestamp, headers: r.headers }),
                    None => Emit::None,
                },
                WinOut::Late(..) => Emit::None,
            })
        }),
    );
    KStream {
        key_serde: Some(Arc::new(Serdes::windowed(ArcSerde(key_serde)))),
        value_serde: Some(R::serde(out_serde)),
        ..results
    }
}
