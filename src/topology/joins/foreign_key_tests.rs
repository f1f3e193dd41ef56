//! The foreign-key join on the test driver, against an oracle: after every
//! input record the result tables hold exactly the foreign-key join of the
//! two tables as they are (Kafka Streams' `KTable#join` and `#leftJoin`
//! with a foreign-key extractor), through foreign-key changes, deletes on
//! both sides, values whose foreign key names no row or that have none,
//! and restarts with and without local state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::processor::time::MARKER_HEADER;
use crate::serde::Serdes;
use crate::testing::{RawRecord, TopologyTestDriver};
use crate::topology::{Topology, TopologyError};

use super::shared_tests::{apply, changes, table_input, with_restart, Lcg, Table};

/// The foreign key of a left value: `k<v % 6>`, none for 0 (values are 0 to 9).
fn fk(v: i64) -> Option<String> {
    (v != 0).then(|| format!("k{}", v % 6))
}

/// `a` (key -> value naming a row of `b` by [`fk`]) joined with `b`, inner
/// and left; the joiner shows what it got: 100 * a + b, -1 for no b.
fn fk_joins() -> Topology {
    let mut b = Topology::builder();
    let a = b.table("a", "a", Serdes::string(), Serdes::i64());
    let bt = b.table("b", "b", Serdes::string(), Serdes::i64());
    a.join_foreign_key(&bt, "fk-inner", |v| fk(*v), |_, x, y| 100 * x + y, Serdes::i64()).to_change_stream().to(
        "inner",
        Serdes::string(),
        Serdes::optional(Serdes::i64()),
    );
    a.left_join_foreign_key(&bt, "fk-left", |v| fk(*v), |_, x, y| 100 * x + y.copied().unwrap_or(-1), Serdes::i64())
        .to_change_stream()
        .to("left", Serdes::string(), Serdes::optional(Serdes::i64()));
    b.build().unwrap()
}

/// The inner and left foreign-key joins of `a` and `b`.
fn fk_oracle(a: &Table, b: &Table) -> Vec<Table> {
    let (mut inner, mut left) = (Table::new(), Table::new());
    for (k, &x) in a {
        let y = fk(x).and_then(|f| b.get(&f).copied());
        if let Some(y) = y {
            inner.insert(k.clone(), 100 * x + y);
        }
        left.insert(k.clone(), 100 * x + y.unwrap_or(-1));
    }
    vec![inner, left]
}

#[test]
fn foreign_key_joins_follow_every_update_on_both_sides() {
    let mut driver = TopologyTestDriver::new(fk_joins()).unwrap();
    let (a_in, b_in) = (table_input(&driver, "a"), table_input(&driver, "b"));
    let outputs = [changes(&driver, "inner"), changes(&driver, "left")];
    let (mut a, mut b) = (Table::new(), Table::new());
    let mut seen = vec![Table::new(); 2];
    let mut rng = Lcg(23);
    let (mut fk_changes, mut dangling) = (0, 0);
    for step in 0..600 {
        let (k, v) = rng.update();
        if rng.below(2) == 0 {
            if a.get(&k).and_then(|x| fk(*x)) != v.and_then(fk) && a.contains_key(&k) && v.is_some() {
                fk_changes += 1;
            }
            driver.pipe(&a_in, k.clone(), v, step).unwrap();
            apply(&mut a, k, v);
        } else {
            driver.pipe(&b_in, k.clone(), v, step).unwrap();
            apply(&mut b, k, v);
        }
        dangling += a.values().filter(|x| fk(**x).is_some_and(|f| !b.contains_key(&f))).count();
        for (topic, seen) in outputs.iter().zip(seen.iter_mut()) {
            for (key, value) in driver.read_key_values(topic).unwrap() {
                assert!(value.is_some() || seen.contains_key(&key), "step {step}: a delete of {key}, never emitted");
                apply(seen, key, value);
            }
        }
        assert_eq!(seen, fk_oracle(&a, &b), "step {step}");
    }
    assert!(fk_changes > 20 && dangling > 100, "the run covers foreign-key changes ({fk_changes}) and dangling keys");
    assert_eq!(driver.store_entries::<String, i64>("fk-left-result").unwrap(), Vec::from_iter(seen[1].clone()));
}

#[test]
fn foreign_key_joins_are_exact_across_restarts_with_and_without_local_state() {
    for wipe in [false, true] {
        for seed in [5, 29] {
            let (tables, seen) = with_restart(fk_joins(), &["a", "b"], &["inner", "left"], wipe, seed);
            assert_eq!(seen, fk_oracle(&tables[0], &tables[1]), "wipe: {wipe}, seed {seed}");
        }
    }
}

#[test]
fn a_response_for_an_older_left_value_is_dropped() {
    let mut driver = TopologyTestDriver::new(fk_joins()).unwrap();
    let (a_in, b_in) = (table_input(&driver, "a"), table_input(&driver, "b"));
    let inner = changes(&driver, "inner");
    let responses = "rivulet-test-fk-inner-subscription-response";
    // The responses written since the last call, without the watermark
    // markers the topic carries too, and without their watermark headers.
    let read_responses = |driver: &mut TopologyTestDriver| -> Vec<RawRecord> {
        let mut records = driver.read_raw(responses);
        records.retain(|r| r.header(MARKER_HEADER).is_none());
        records.iter_mut().for_each(|r| r.headers.clear());
        records
    };
    driver.pipe(&b_in, "k1".to_string(), Some(5), 0).unwrap();
    driver.pipe(&b_in, "k2".to_string(), Some(7), 0).unwrap();
    driver.pipe(&a_in, "o".to_string(), Some(1), 1).unwrap(); // -> k1
    let old = read_responses(&mut driver);
    assert_eq!(old.len(), 1);
    driver.pipe(&a_in, "o".to_string(), Some(2), 2).unwrap(); // -> k2
    assert_eq!(
        driver.read_key_values(&inner).unwrap(),
        vec![("o".to_string(), Some(105)), ("o".to_string(), Some(207))]
    );
    // The answer to value 1 arrives again, late: it answers a value "o" no
    // longer has, so it is dropped.
    driver.pipe_raw(responses, old[0].clone()).unwrap();
    assert!(driver.read_key_values(&inner).unwrap().is_empty());
    // The answer to the current value is applied.
    let current = read_responses(&mut driver).remove(0);
    driver.pipe(&b_in, "k2".to_string(), Some(8), 3).unwrap();
    assert_eq!(driver.read_key_values(&inner).unwrap(), vec![("o".to_string(), Some(208))]);
    driver.pipe_raw(responses, current).unwrap();
    assert_eq!(driver.read_key_values(&inner).unwrap(), vec![("o".to_string(), Some(207))], "same hash: applied");
    // Bytes nobody wrote stop the driver with the serde named.
    let err = driver.pipe_raw(responses, RawRecord::new(Some(b"o"), Some(&[7]), 4)).unwrap_err();
    assert!(err.to_string().contains("subscription-response<i64>"), "{err}");
}

#[test]
fn the_join_has_its_topics_and_stores_and_each_side_its_sub_topology() {
    let topology = fk_joins();
    let described = topology.describe();
    for name in [
        "<application_id>-fk-inner-subscription-registration",
        "<application_id>-fk-inner-subscription-response",
        "<application_id>-fk-left-subscription-store-changelog",
        "fk-inner-result (rocksdb",
    ] {
        assert!(described.contains(name), "{name} in {described}");
    }
    // The left table with its response readers; the right table with its
    // subscription stores.
    assert_eq!(topology.subtopologies.len(), 2, "{described}");
    let stores: Vec<Vec<String>> = topology.subtopologies.iter().map(|s| s.stores.clone()).collect();
    assert!(stores.iter().any(|s| s.contains(&"a".to_string()) && s.contains(&"fk-left-result".to_string())));
    assert!(stores
        .iter()
        .any(|s| s.contains(&"b".to_string()) && s.contains(&"fk-left-subscription-store".to_string())));
}

#[test]
fn a_foreign_key_join_needs_stores_and_a_name_that_can_name_topics() {
    let mut b = Topology::builder();
    let a = b.table("a", "a", Serdes::string(), Serdes::i64()).filter(|_, v| *v > 0);
    let bt = b.table("b", "b", Serdes::string(), Serdes::i64());
    a.join_foreign_key(&bt, "j", |v| fk(*v), |_, x, y| x + y, Serdes::i64());
    match b.build() {
        Err(TopologyError::Invalid(m)) => assert!(m.contains(".materialize(\"<store name>\")"), "{m}"),
        other => panic!("expected an invalid topology, got {other:?}"),
    }
    let mut b = Topology::builder();
    let a = b.table("a", "a", Serdes::string(), Serdes::i64());
    let bt = b.table("b", "b", Serdes::string(), Serdes::i64());
    a.join_foreign_key(&bt, "bad name", |v| fk(*v), |_, x, y| x + y, Serdes::i64());
    assert!(matches!(b.build(), Err(TopologyError::Invalid(m)) if m.contains("bad name")));
}
