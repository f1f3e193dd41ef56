//! Tables and joins on the test driver, against oracles written out from
//! Kafka Streams' semantics tables (developer guide, "Joining" and
//! "KTable"): after every input record the derived tables hold exactly
//! what the oracle computes from the inputs so far; a restart in the
//! middle (with or without local state) changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::record::Record;
use crate::serde::Serdes;
use crate::testing::TopologyTestDriver;
use crate::topology::{Topology, TopologyError};

use super::shared_tests::{apply, changes, read_into, table_input, with_restart, Lcg, Table};

/// filter + map_values, and group_by + aggregate / count, over one table.
fn derived_tables() -> Topology {
    let mut b = Topology::builder();
    let t = b.table("t", "t", Serdes::string(), Serdes::i64());
    t.filter(|_, v| v % 2 == 0).map_values(|v| v * 10, Serdes::i64()).to_change_stream().to(
        "even-times-ten",
        Serdes::string(),
        Serdes::optional(Serdes::i64()),
    );
    let grouped = t.group_by(|_, v| (format!("g{}", v % 3), v), Serdes::string(), Serdes::i64());
    grouped.aggregate("sums", || 0, |_, v, s| s + v, |_, v, s| s - v, Serdes::i64()).to_change_stream().to(
        "sums",
        Serdes::string(),
        Serdes::optional(Serdes::i64()),
    );
    grouped.count("counts").to_change_stream().to("counts", Serdes::string(), Serdes::optional(Serdes::i64()));
    b.build().unwrap()
}

/// What the derived tables hold for `t`; `groups` are the groups that ever
/// had a member (an emptied group keeps its aggregate, 0, as in Kafka Streams).
fn derived_oracle(t: &Table, groups: &[String]) -> (Table, Table, Table) {
    let even = t.iter().filter(|(_, v)| *v % 2 == 0).map(|(k, v)| (k.clone(), v * 10)).collect();
    let mut sums: Table = groups.iter().map(|g| (g.clone(), 0)).collect();
    let mut counts = sums.clone();
    for v in t.values() {
        let g = format!("g{}", v % 3);
        *sums.entry(g.clone()).or_default() += v;
        *counts.entry(g).or_default() += 1;
    }
    (even, sums, counts)
}

#[test]
fn filter_map_values_and_table_aggregations_follow_every_update() {
    let mut driver = TopologyTestDriver::new(derived_tables()).unwrap();
    let (input, even, sums, counts) = (
        table_input(&driver, "t"),
        changes(&driver, "even-times-ten"),
        changes(&driver, "sums"),
        changes(&driver, "counts"),
    );
    let (mut t, mut seen_even, mut seen_sums, mut seen_counts): (Table, Table, Table, Table) = Default::default();
    let mut groups: Vec<String> = Vec::new();
    let mut rng = Lcg(7);
    for step in 0..300 {
        let (k, v) = rng.update();
        driver.pipe(&input, k.clone(), v, step).unwrap();
        apply(&mut t, k.clone(), v);
        if let Some(v) = v {
            let g = format!("g{}", v % 3);
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let before = seen_even.clone();
        let mut new_even = before.clone();
        for (key, value) in driver.read_key_values(&even).unwrap() {
            // A delete only for a key that passed before: no spurious tombstones.
            assert!(value.is_some() || before.contains_key(&key), "step {step}: spurious delete of {key}");
            apply(&mut new_even, key, value);
        }
        seen_even = new_even;
        read_into(&mut driver, &sums, &mut seen_sums);
        read_into(&mut driver, &counts, &mut seen_counts);
        let (want_even, want_sums, want_counts) = derived_oracle(&t, &groups);
        assert_eq!(seen_even, want_even, "step {step}");
        assert_eq!(seen_sums, want_sums, "step {step}");
        assert_eq!(seen_counts, want_counts, "step {step}");
    }
    assert_eq!(driver.store_entries::<String, i64>("counts").unwrap(), Vec::from_iter(seen_counts));
}

#[test]
fn table_aggregations_are_exact_across_restarts_with_and_without_local_state() {
    for wipe in [false, true] {
        let (tables, seen) = with_restart(derived_tables(), &["t"], &["even-times-ten", "sums", "counts"], wipe, 11);
        let groups: Vec<String> = seen[2].keys().cloned().collect();
        let (even, sums, counts) = derived_oracle(&tables[0], &groups);
        assert_eq!(seen, vec![even, sums, counts], "wipe: {wipe}");
    }
}

/// Inner, left and outer joins of tables `a` and `b` (the joiner shows
/// which sides it got: 100 * a + b, -1 for a missing side).
fn table_joins() -> Topology {
    let mut b = Topology::builder();
    let a = b.table("a", "a", Serdes::string(), Serdes::i64());
    let bt = b.table("b", "b", Serdes::string(), Serdes::i64());
    let out = |s: &str| (s.to_string(), Serdes::string(), Serdes::optional(Serdes::i64()));
    let (t, k, v) = out("inner");
    a.join(&bt, |_, x, y| 100 * x + y, Serdes::i64()).to_change_stream().to(&t, k, v);
    let (t, k, v) = out("left");
    a.left_join(&bt, |_, x, y| 100 * x + y.copied().unwrap_or(-1), Serdes::i64()).to_change_stream().to(&t, k, v);
    let (t, k, v) = out("outer");
    a.outer_join(&bt, |_, x, y| 100 * x.copied().unwrap_or(-1) + y.copied().unwrap_or(-1), Serdes::i64())
        .to_change_stream()
        .to(&t, k, v);
    b.build().unwrap()
}

/// The three joins of `a` and `b` as Kafka Streams' semantics table has them.
fn join_oracle(a: &Table, b: &Table) -> Vec<Table> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let (mut inner, mut left, mut outer) = (Table::new(), Table::new(), Table::new());
    for k in keys {
        let (x, y) = (a.get(k).copied(), b.get(k).copied());
        if let (Some(x), Some(y)) = (x, y) {
            inner.insert(k.clone(), 100 * x + y);
        }
        if let Some(x) = x {
            left.insert(k.clone(), 100 * x + y.unwrap_or(-1));
        }
        outer.insert(k.clone(), 100 * x.unwrap_or(-1) + y.unwrap_or(-1));
    }
    vec![inner, left, outer]
}

#[test]
fn table_table_joins_follow_updates_and_deletes_on_both_sides() {
    let mut driver = TopologyTestDriver::new(table_joins()).unwrap();
    let (a_in, b_in) = (table_input(&driver, "a"), table_input(&driver, "b"));
    let outputs = [changes(&driver, "inner"), changes(&driver, "left"), changes(&driver, "outer")];
    let (mut a, mut b) = (Table::new(), Table::new());
    let mut seen = vec![Table::new(); 3];
    let mut rng = Lcg(3);
    for step in 0..400 {
        let (k, v) = rng.update();
        if rng.below(2) == 0 {
            driver.pipe(&a_in, k.clone(), v, step).unwrap();
            apply(&mut a, k, v);
        } else {
            driver.pipe(&b_in, k.clone(), v, step).unwrap();
            apply(&mut b, k, v);
        }
        for (topic, seen) in outputs.iter().zip(seen.iter_mut()) {
            read_into(&mut driver, topic, seen);
        }
        assert_eq!(seen, join_oracle(&a, &b), "step {step}");
    }
}

#[test]
fn table_table_joins_are_exact_across_restarts() {
    for wipe in [false, true] {
        let (tables, seen) = with_restart(table_joins(), &["a", "b"], &["inner", "left", "outer"], wipe, 5);
        assert_eq!(seen, join_oracle(&tables[0], &tables[1]), "wipe: {wipe}");
    }
}

/// Orders (stream) joined with customers (table), inner and left, and the
/// same after re-keying the orders (through a repartition topic).
fn stream_table_joins() -> Topology {
    let mut b = Topology::builder();
    let customers = b.table("customers", "customers", Serdes::string(), Serdes::i64());
    let orders = b.stream("orders", Serdes::string(), Serdes::i64());
    orders.join_table(&customers, |_, o, c| o * 100 + c).to("inner", Serdes::string(), Serdes::i64());
    orders.left_join_table(&customers, |_, o, c| o * 100 + c.copied().unwrap_or(-1)).to(
        "left",
        Serdes::string(),
        Serdes::i64(),
    );
    // Orders arrive keyed by order id `<customer>/<n>`: re-keyed to the customer.
    b.stream("orders-by-id", Serdes::string(), Serdes::i64())
        .select_key(|id: &String, _| id.split('/').next().unwrap_or_default().to_string())
        .with_serdes(Serdes::string(), Serdes::i64())
        .join_table(&customers, |_, o, c| o * 100 + c)
        .to("rekeyed", Serdes::string(), Serdes::i64());
    b.build().unwrap()
}

#[test]
fn a_stream_record_joins_the_table_value_of_its_key_as_of_its_turn() {
    let topology = stream_table_joins();
    assert!(topology.describe().contains("customers-join-repartition"), "{}", topology.describe());
    for restart in [None, Some(false), Some(true)] {
        let mut driver = TopologyTestDriver::new(stream_table_joins()).unwrap().manual_commits();
        let customers = table_input(&driver, "customers");
        let orders = driver.input_topic("orders", Serdes::string(), Serdes::i64());
        let by_id = driver.input_topic("orders-by-id", Serdes::string(), Serdes::i64());
        let mut table = Table::new();
        let (mut inner, mut left) = (Vec::new(), Vec::new());
        let mut rng = Lcg(17);
        for step in 0..300 {
            let (k, v) = rng.update();
            if rng.below(3) == 0 {
                driver.pipe(&customers, k.clone(), v, step).unwrap();
                apply(&mut table, k, v);
            } else {
                let order = v.unwrap_or(0);
                driver.pipe(&orders, k.clone(), order, step).unwrap();
                driver.pipe(&by_id, format!("{k}/{step}"), order, step).unwrap();
                let c = table.get(&k).copied();
                if let Some(c) = c {
                    inner.push((k.clone(), order * 100 + c));
                }
                left.push((k, order * 100 + c.unwrap_or(-1)));
            }
            if step % 5 == 4 {
                driver.commit().unwrap();
            }
            match restart {
                Some(false) if step == 150 => driver.restart().unwrap(),
                Some(true) if step == 150 => driver.restart_without_local_state().unwrap(),
                _ => {}
            }
        }
        driver.commit().unwrap();
        let read = |driver: &mut TopologyTestDriver, name: &str| {
            driver.read_key_values(&driver.output_topic(name, Serdes::string(), Serdes::i64())).unwrap()
        };
        assert_eq!(read(&mut driver, "inner"), inner, "{restart:?}");
        assert_eq!(read(&mut driver, "left"), left, "{restart:?}");
        assert_eq!(read(&mut driver, "rekeyed"), inner, "{restart:?}");
    }
}

#[test]
fn table_updates_emit_nothing_from_a_stream_table_join() {
    let mut driver = TopologyTestDriver::new(stream_table_joins()).unwrap();
    driver.pipe(&table_input(&driver, "customers"), "k1".to_string(), Some(5), 0).unwrap();
    driver.pipe(&table_input(&driver, "customers"), "k1".to_string(), None, 1).unwrap();
    let out = driver.output_topic("left", Serdes::string(), Serdes::i64());
    assert!(driver.read(&out).unwrap().is_empty());
    let orders = driver.input_topic("orders", Serdes::string(), Serdes::i64());
    driver.pipe_record(&orders, Record::new("k1".to_string(), 2, 42)).unwrap();
    let joined = driver.read(&out).unwrap();
    assert_eq!((joined[0].value, joined[0].timestamp), (199, 42), "the stream record's timestamp");
}

#[test]
fn joining_a_table_without_a_store_asks_for_materialize() {
    let mut b = Topology::builder();
    let t = b.table("t", "t", Serdes::string(), Serdes::i64()).filter(|_, v| *v > 0);
    b.stream("s", Serdes::string(), Serdes::i64()).join_table(&t, |_, a, b| a + b).to(
        "out",
        Serdes::string(),
        Serdes::i64(),
    );
    match b.build() {
        Err(TopologyError::Invalid(m)) => assert!(m.contains(".materialize(\"<store name>\")"), "{m}"),
        other => panic!("expected an invalid topology, got {other:?}"),
    }
    let mut b = Topology::builder();
    let t = b.table("t", "t", Serdes::string(), Serdes::i64()).filter(|_, v| *v > 0).materialize("positive");
    b.stream("s", Serdes::string(), Serdes::i64()).join_table(&t, |_, a, b| a + b).to(
        "out",
        Serdes::string(),
        Serdes::i64(),
    );
    let topology = b.build().unwrap();
    assert_eq!(topology.subtopologies.len(), 1, "the join and the table it reads are one sub-topology");
    let mut driver = TopologyTestDriver::new(topology).unwrap();
    driver.pipe(&table_input(&driver, "t"), "k".to_string(), Some(-3), 0).unwrap();
    driver.pipe(&driver.input_topic("s", Serdes::string(), Serdes::i64()), "k".to_string(), 1, 1).unwrap();
    assert_eq!(driver.store_get::<String, i64>("positive", &"k".to_string()).unwrap(), None);
    driver.pipe(&table_input(&driver, "t"), "k".to_string(), Some(3), 2).unwrap();
    driver.pipe(&driver.input_topic("s", Serdes::string(), Serdes::i64()), "k".to_string(), 1, 3).unwrap();
    let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    assert_eq!(driver.read_key_values(&out).unwrap(), vec![("k".to_string(), 4)]);
}

/// Orders (stream, keyed by order id, valued by a product id) joined with
/// products (global table): each order takes the product's value as of its
/// turn, inner and left; a restart loses nothing and the global table
/// survives it.
#[test]
fn a_stream_record_joins_the_global_value_its_selector_picks_as_of_its_turn() {
    let topology =
        || {
            let mut b = Topology::builder();
            let products = b.global_table("products", "products", Serdes::string(), Serdes::i64());
            let orders = b.stream("orders", Serdes::string(), Serdes::string());
            orders.join_global(&products, |_, p: &String| p.clone(), |_, _, price| *price).to(
                "inner",
                Serdes::string(),
                Serdes::i64(),
            );
            orders
                .left_join_global(&products, |_, p: &String| p.clone(), |_, _, price| price.copied().unwrap_or(-1))
                .to("left", Serdes::string(), Serdes::i64());
            b.build().unwrap()
        };
    let t = topology();
    assert!(t.describe().contains("products (topic products; read whole by every instance)"));
    assert_eq!(t.subtopologies.len(), 1, "a global table is no sub-topology of its own");
    for restart in [false, true] {
        let mut driver = TopologyTestDriver::new(topology()).unwrap().manual_commits();
        let products = table_input(&driver, "products");
        let orders = driver.input_topic("orders", Serdes::string(), Serdes::string());
        let mut table = Table::new();
        let (mut inner, mut left) = (Vec::new(), Vec::new());
        let mut rng = Lcg(23);
        for step in 0..300 {
            let (k, v) = rng.update();
            if rng.below(3) == 0 {
                driver.pipe(&products, k.clone(), v, step).unwrap();
                apply(&mut table, k, v);
            } else {
                let order = format!("o{step}");
                driver.pipe(&orders, order.clone(), k.clone(), step).unwrap();
                if let Some(price) = table.get(&k) {
                    inner.push((order.clone(), *price));
                }
                left.push((order, table.get(&k).copied().unwrap_or(-1)));
            }
            if step % 5 == 4 {
                driver.commit().unwrap();
            }
            if restart && step == 150 {
                // Uncommitted orders are processed again, against the
                // global table as it is now: none changed since step 149.
                driver.commit().unwrap();
                driver.restart().unwrap();
            }
        }
        driver.commit().unwrap();
        let inner_out = driver.output_topic("inner", Serdes::string(), Serdes::i64());
        let left_out = driver.output_topic("left", Serdes::string(), Serdes::i64());
        assert_eq!(driver.read_key_values(&inner_out).unwrap(), inner, "restart: {restart}");
        assert_eq!(driver.read_key_values(&left_out).unwrap(), left, "restart: {restart}");
    }
}

/// Numbers each update of a key (deletes included) in a store of its own.
struct Versions;

impl crate::topology::ValueTransformerWithKey<String, i64, i64> for Versions {
    fn transform(
        &mut self,
        key: &String,
        value: Option<&i64>,
        ctx: &mut crate::topology::ValueTransformerContext<'_, '_, String, i64>,
    ) -> Result<Option<i64>, crate::topology::ProcessError> {
        let mut versions = ctx.store::<String, i64>("versions")?;
        let n = versions.get(key)?.unwrap_or(0) + 1;
        versions.put(key, &n)?;
        Ok(value.map(|v| v * 1_000 + n))
    }
}

/// transform_values runs its transformer once per update, with its store,
/// and keeps its result: after every update, and across restarts, the
/// result table is the oracle's.
#[test]
fn transform_values_with_a_store_runs_once_per_update_across_restarts() {
    let topology = || {
        let mut b = Topology::builder();
        b.add_store(crate::processor::StoreSpec::key_value("versions", Serdes::string(), Serdes::i64()));
        b.table("t", "t", Serdes::string(), Serdes::i64())
            .transform_values("versioned", &["versions"], || Versions, Serdes::i64())
            .to_change_stream()
            .to("versioned", Serdes::string(), Serdes::optional(Serdes::i64()));
        b.build().unwrap()
    };
    for wipe in [None, Some(false), Some(true)] {
        let mut driver = TopologyTestDriver::new(topology()).unwrap().manual_commits();
        let input = table_input(&driver, "t");
        let (mut want, mut versions) = (Table::new(), Table::new());
        let mut rng = Lcg(31);
        for step in 0..200 {
            let (k, v) = rng.update();
            driver.pipe(&input, k.clone(), v, step).unwrap();
            let n = versions.entry(k.clone()).or_default();
            *n += 1;
            apply(&mut want, k, v.map(|v| v * 1_000 + *n));
            if step % 7 == 6 {
                driver.commit().unwrap();
            }
            match wipe {
                Some(false) if step == 100 => driver.restart().unwrap(),
                Some(true) if step == 100 => driver.restart_without_local_state().unwrap(),
                _ => {}
            }
        }
        driver.commit().unwrap();
        let mut seen = Table::new();
        let out = changes(&driver, "versioned");
        read_into(&mut driver, &out, &mut seen);
        assert_eq!(seen, want, "{wipe:?}");
        assert_eq!(driver.store_entries::<String, i64>("versioned").unwrap(), Vec::from_iter(want), "{wipe:?}");
    }
}
