//! The record path, without Kafka: aggregations, tables, stores, failures
//! and the Processor API.

use super::*;

#[test]
fn count_updates_the_store_per_key_and_emits_each_new_count() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let updates = capture(&s.group_by_key().count("counts").to_stream());
    let t = b.build().unwrap();
    let mut d = driver(t).manual_commits();
    for k in ["a", "b", "a", "a"] {
        push(&mut d, "in", k, "whatever").unwrap();
    }
    assert_eq!(get::<String, i64>(&mut d, "counts", &"a".to_string()), Some(3));
    assert_eq!(get::<String, i64>(&mut d, "counts", &"b".to_string()), Some(1));
    assert_eq!(get::<String, i64>(&mut d, "counts", &"c".to_string()), None);
    // Writes stay in the write buffer until commit, serialized with the store's serdes.
    let ctx = task_context(&mut d, 0);
    assert_eq!(ctx.buffer.get("counts", b"a"), Some(Some(&3i64.to_be_bytes()[..])));
    assert!(ctx.stores[0].store.get(b"a").unwrap().is_none(), "nothing reaches the store before commit");
    let expected: Vec<(String, i64)> = vec![("a".into(), 1), ("b".into(), 1), ("a".into(), 2), ("a".into(), 3)];
    assert_eq!(pairs(&updates), expected);
}

#[test]
fn aggregate_continues_from_the_committed_store_value() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.group_by_key().count("counts");
    let t = b.build().unwrap();
    let mut d = driver(t);
    // A count of 5 committed before: in the changelog, restored from there.
    let committed = RawRecord::new(Some(b"a"), Some(&5i64.to_be_bytes()), 1);
    d.pipe_raw("app-counts-changelog", committed).unwrap();
    d.restart_without_local_state().unwrap();
    assert_eq!(get::<String, i64>(&mut d, "counts", &"a".to_string()), Some(5));
    push(&mut d, "in", "a", "x").unwrap();
    assert_eq!(get::<String, i64>(&mut d, "counts", &"a".to_string()), Some(6));
}

#[test]
fn aggregate_folds_values_per_key_starting_from_the_initial_value() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.group_by_key().aggregate("lengths", || 100u64, |_, v: String, a: u64| a + v.len() as u64, Serdes::u64());
    let t = b.build().unwrap();
    let mut d = driver(t);
    push(&mut d, "in", "a", "xy").unwrap();
    push(&mut d, "in", "b", "x").unwrap();
    push(&mut d, "in", "a", "xyz").unwrap();
    assert_eq!(get::<String, u64>(&mut d, "lengths", &"a".to_string()), Some(105));
    assert_eq!(get::<String, u64>(&mut d, "lengths", &"b".to_string()), Some(101));
}

#[test]
fn reduce_combines_values_per_key_starting_with_the_first() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let updates = capture(&s.group_by_key().reduce("joined", |a, v| format!("{a},{v}")).to_stream());
    let t = b.build().unwrap();
    let mut d = driver(t);
    push(&mut d, "in", "a", "1").unwrap();
    push(&mut d, "in", "b", "2").unwrap();
    push(&mut d, "in", "a", "3").unwrap();
    assert_eq!(get::<String, String>(&mut d, "joined", &"a".to_string()), Some("1,3".to_string()));
    assert_eq!(get::<String, String>(&mut d, "joined", &"b".to_string()), Some("2".to_string()));
    assert_eq!(pairs(&updates), strings(&[("a", "1"), ("b", "2"), ("a", "1,3")]));
}

#[test]
fn try_aggregate_error_is_rejected_naming_the_node_and_leaves_the_aggregate_unchanged() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.group_by_key().try_aggregate(
        "sum",
        || 0i64,
        |_, v: String, a: i64| v.parse::<i64>().map(|n| a + n),
        Serdes::i64(),
    );
    let t = b.build().unwrap();
    let mut d = driver(t);
    push(&mut d, "in", "k", "1").unwrap();
    let e = push(&mut d, "in", "k", "x").unwrap_err();
    assert!(matches!(&e, ProcessError::Rejected { node, .. } if node == "AGGREGATE-0002"), "{e:?}");
    push(&mut d, "in", "k", "2").unwrap();
    assert_eq!(get::<String, i64>(&mut d, "sum", &"k".to_string()), Some(3));
}

#[test]
fn group_by_count_runs_across_the_repartition_topic() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.group_by(|_, v: &String| v.clone(), Serdes::string()).count("c");
    let t = b.build().unwrap();

    let mut d = driver(t);
    for (k, v) in [("1", "x"), ("2", "x"), ("3", "y")] {
        push(&mut d, "in", k, v).unwrap();
    }
    let repartitioned = sent_to(&mut d, "app-c-repartition");
    assert_eq!(
        repartitioned,
        vec![
            sent("app-c-repartition", Some("x"), Some("x")),
            sent("app-c-repartition", Some("x"), Some("x")),
            sent("app-c-repartition", Some("y"), Some("y")),
        ]
    );

    // Sub-topology 1 read them from there.
    assert_eq!(get::<String, i64>(&mut d, "c", &"x".to_string()), Some(2));
    assert_eq!(get::<String, i64>(&mut d, "c", &"y".to_string()), Some(1));
}

#[test]
fn count_without_value_serde_sends_keys_with_null_values_through_the_repartition_topic() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.map_values(|v: String| v.len()).group_by(|_, n: &usize| format!("len{n}"), Serdes::string()).count("c");
    let t = b.build().unwrap();

    let mut d = driver(t);
    push(&mut d, "in", "a", "xy").unwrap();
    push(&mut d, "in", "b", "zw").unwrap();
    let repartitioned = sent_to(&mut d, "app-c-repartition");
    assert_eq!(
        repartitioned,
        vec![sent("app-c-repartition", Some("len2"), None), sent("app-c-repartition", Some("len2"), None)]
    );

    assert_eq!(get::<String, i64>(&mut d, "c", &"len2".to_string()), Some(2));
}

#[test]
fn table_keeps_the_latest_value_per_key_and_a_null_value_deletes_it() {
    let mut b = Topology::builder();
    let table = b.table("tbl", "t", Serdes::string(), Serdes::string());
    let changes = capture(&table.to_change_stream());
    let updates = capture(&table.to_stream());
    let t = b.build().unwrap();
    let mut d = driver(t).manual_commits();
    push(&mut d, "tbl", "a", "1").unwrap();
    push(&mut d, "tbl", "a", "2").unwrap();
    assert_eq!(get::<String, String>(&mut d, "t", &"a".to_string()), Some("2".to_string()));
    push_raw(&mut d, "tbl", Some(b"a"), None, 1, Headers::new()).unwrap();
    assert_eq!(get::<String, String>(&mut d, "t", &"a".to_string()), None);
    assert_eq!(task_context(&mut d, 0).buffer.get("t", b"a"), Some(None), "the delete is buffered");
    let expected: Vec<(String, Option<String>)> =
        vec![("a".into(), Some("1".into())), ("a".into(), Some("2".into())), ("a".into(), None)];
    assert_eq!(pairs(&changes), expected);
    assert_eq!(pairs(&updates), strings(&[("a", "1"), ("a", "2")]), "to_stream leaves deletes out");
}

#[test]
fn try_map_error_is_rejected_naming_the_node() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.try_map(|k: String, v: String| if v == "bad" { Err("no bad values") } else { Ok((k, v)) }));
    let t = b.build().unwrap();
    let mut d = driver(t);
    let e = push(&mut d, "in", "a", "bad").unwrap_err();
    assert!(matches!(&e, ProcessError::Rejected { node, .. } if node == "MAP-0002"), "{e:?}");
    assert_eq!(e.to_string(), "MAP-0002 rejected the record: no bad values");
    assert!(e.is_record_error());
    push(&mut d, "in", "b", "good").unwrap();
    assert_eq!(pairs(&seen), strings(&[("b", "good")]), "the rejected record went no further");
}

#[test]
fn try_filter_error_is_rejected_naming_the_node() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.try_filter(|_, v: &String| v.parse::<i64>().map(|n| n > 0));
    let t = b.build().unwrap();
    let mut d = driver(t);
    let e = push(&mut d, "in", "a", "NaN").unwrap_err();
    assert!(matches!(&e, ProcessError::Rejected { node, .. } if node == "FILTER-0002"), "{e:?}");
}

#[test]
fn an_undecodable_value_is_a_deserialize_error_naming_the_topic() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::i64());
    let seen = capture(&s);
    let t = b.build().unwrap();
    let mut d = driver(t);
    let e = push_raw(&mut d, "in", Some(b"k"), Some(b"abc"), 1, Headers::new()).unwrap_err();
    assert!(matches!(&e, ProcessError::Deserialize { what, .. } if what == "value of topic in"), "{e:?}");
    assert_eq!(e.to_string(), "value of topic in: i64: expected 8 bytes (big-endian), got 3");
    assert!(e.is_record_error());
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn an_undecodable_key_is_a_deserialize_error_naming_the_topic() {
    let mut b = Topology::builder();
    let _ = b.stream("in", Serdes::string(), Serdes::string());
    let t = b.build().unwrap();
    let mut d = driver(t);
    let e = push_raw(&mut d, "in", Some(b"\xff"), Some(b"v"), 1, Headers::new()).unwrap_err();
    assert!(matches!(&e, ProcessError::Deserialize { what, .. } if what == "key of topic in"), "{e:?}");
    let e = push_raw(&mut d, "in", Some(b"k"), None, 1, Headers::new()).unwrap_err();
    assert!(matches!(&e, ProcessError::Deserialize { what, .. } if what == "value of topic in"), "{e:?}");
    assert!(e.to_string().contains("Serdes::optional"), "a null value suggests optional: {e}");
}

#[test]
fn an_undecodable_repartition_record_names_the_resolved_internal_topic() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::i64());
    let _ = s.select_key(|_, v: &i64| v.to_string()).group_by_key().count("c");
    let t = b.build().unwrap();
    let mut d = driver(t);
    let e = push_raw(&mut d, "app-c-repartition", Some(b"k"), Some(b"1"), 1, Headers::new()).unwrap_err();
    assert!(
        matches!(&e, ProcessError::Deserialize { what, .. } if what == "value of topic app-c-repartition"),
        "{e:?}"
    );
}

#[test]
fn counting_a_keyless_stream_fails_per_record_because_a_store_key_cannot_be_null() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::unit(), Serdes::string());
    let _ = s.group_by_key().count("c");
    let t = b.build().unwrap();
    let mut d = driver(t);
    let e = push_raw(&mut d, "in", None, Some(b"v"), 1, Headers::new()).unwrap_err();
    assert!(matches!(&e, ProcessError::Serde { what, .. } if what == "key of store `c`"), "{e:?}");
    assert!(e.to_string().contains("a store key cannot be null"), "{e}");
}

#[test]
fn a_processor_writes_and_reads_its_declared_store() {
    let mut b = Topology::builder();
    b.add_store(string_store("s").in_memory());
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let out = capture(&s.process(&["s"], || PutInto { store: "s" }));
    let t = b.build().unwrap();
    let mut d = driver(t);
    push(&mut d, "in", "a", "1").unwrap();
    push(&mut d, "in", "a", "2").unwrap();
    assert_eq!(get::<String, String>(&mut d, "s", &"a".to_string()), Some("2".to_string()));
    assert_eq!(pairs(&out), strings(&[("a", "1"), ("a", "2")]));
}

#[test]
fn a_processor_using_a_store_it_did_not_declare_gets_a_topology_error() {
    let mut b = Topology::builder();
    b.add_store(string_store("s"));
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = s.process(&["s"], || PassOn);
    let _: KStream<String, String> = s.process(&[], || PutInto { store: "s" });
    let _: KStream<String, String> = s.process(&[], || PutInto { store: "never-declared" });
    let t = b.build().unwrap();

    let mut d = driver(t);
    let e = push(&mut d, "in", "a", "1").unwrap_err();
    let ProcessError::Topology { node, reason } = &e else { panic!("expected a topology error, got {e:?}") };
    assert_eq!(node, "PROCESS-0003");
    assert_eq!(reason, "it uses store `s` but did not declare it; list it in the stores of KStream::process");
    assert!(!e.is_record_error(), "a topology error stops the application");
    assert!(task_context(&mut d, 0).buffer.is_empty(), "nothing was written");
}

#[test]
fn a_processor_using_a_store_declared_nowhere_gets_a_topology_error() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = s.process(&[], || PutInto { store: "never-declared" });
    let t = b.build().unwrap();
    let mut d = driver(t);
    let e = push(&mut d, "in", "a", "1").unwrap_err();
    assert!(
        matches!(&e, ProcessError::Topology { node, reason } if node == "PROCESS-0002" && reason.contains("`never-declared`")),
        "{e:?}"
    );
}

#[test]
fn a_processor_reading_a_store_as_other_types_gets_a_topology_error() {
    let mut b = Topology::builder();
    b.add_store(string_store("s"));
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = s.process(&["s"], || ReadAsI64 { store: "s" });
    let t = b.build().unwrap();
    let mut d = driver(t);
    let e = push(&mut d, "in", "a", "1").unwrap_err();
    assert_eq!(
        e.to_string(),
        "topology error in PROCESS-0002: store `s` holds alloc::string::String -> alloc::string::String, \
         not alloc::string::String -> i64"
    );
}

#[test]
fn processor_init_runs_with_access_to_its_stores() {
    let mut b = Topology::builder();
    b.add_store(string_store("s"));
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = s.process(&["s"], || MarksInit { store: "s" });
    let t = b.build().unwrap();
    // The driver runs `init` as it starts the task.
    let mut d = driver(t);
    assert_eq!(get::<String, String>(&mut d, "s", &"init".to_string()), Some("done".to_string()));
}

#[test]
fn sinks_write_serialized_records_to_their_topics() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    s.to("out", Serdes::string(), Serdes::string());
    let t = b.build().unwrap();
    let mut d = driver(t);
    push(&mut d, "in", "a", "1").unwrap();
    push(&mut d, "in", "b", "2").unwrap();
    assert_eq!(all_sent(&d), vec![sent("out", Some("a"), Some("1")), sent("out", Some("b"), Some("2"))]);
}

/// Schedules a stream-time callback in `init`; emits `(kind, timestamp)`
/// when it fires; raises a flag on close.
struct Ticker {
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Processor<String, String, String, String> for Ticker {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), ProcessError> {
        ctx.schedule(Duration::from_millis(10), TimeKind::StreamTime);
        Ok(())
    }

    fn process(&mut self, r: Record<String, String>, ctx: &mut Ctx<'_>) -> Result<(), ProcessError> {
        ctx.forward(r)
    }

    fn on_timer(&mut self, kind: TimeKind, timestamp: i64, ctx: &mut Ctx<'_>) -> Result<(), ProcessError> {
        ctx.forward(Record::new(format!("{kind:?}"), timestamp.to_string(), timestamp))
    }

    fn close(&mut self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_processor_schedules_in_init_and_its_timer_callback_can_forward() {
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = closed.clone();
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.process(&[], move || Ticker { closed: c.clone() }));
    let t = b.build().unwrap();
    let ticker = t.nodes.iter().position(|n| n.name == "PROCESS-0002").unwrap();
    let mut d = driver(t).manual_commits();
    // The driver ran `init` at stream time i64::MIN; run it again at
    // stream time 100 (as a task refreshed after an abort does).
    let task = &mut d.tasks[0];
    task.context_mut().stream_time = 100;
    task.context_mut().schedules.clear();
    task.init().unwrap();
    let ctx = task.context_mut();
    assert_eq!(ctx.schedules.len(), 1);
    let schedule = &ctx.schedules[0];
    assert_eq!(
        (schedule.node, schedule.kind, schedule.interval_ms, schedule.next_ms),
        (ticker, TimeKind::StreamTime, 10, 110)
    );

    // The task fires the node's callback, once: one lifecycle per
    // processor node.
    task.fire_timers(TimeKind::StreamTime, 110).unwrap();
    assert_eq!(pairs(&seen), strings(&[("StreamTime", "110")]));

    // A restart closes the tasks.
    d.restart().unwrap();
    assert!(closed.load(std::sync::atomic::Ordering::SeqCst), "close reached the processor");
}
