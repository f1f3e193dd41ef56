//! Tables and stream-table joins on a real broker: the `order_enrichment`
//! example under exactly-once, its tables loaded from a backlog, restored
//! from their changelogs on a new machine in the middle; and the start
//! refusing a join of topics that are not co-partitioned; a global table
//! loaded before processing and followed after.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

#[allow(dead_code)]
#[path = "../examples/order_enrichment.rs"]
mod order_enrichment;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::TestRecord;
use order_enrichment::{Customer, EnrichedOrder, Order, Product};
use rivulet::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(90);
const PARTITIONS: i32 = 3;

fn json_record(partition: i32, key: &str, value: &impl serde::Serialize) -> TestRecord {
    TestRecord {
        partition,
        key: Some(key.as_bytes().to_vec()),
        value: Some(serde_json::to_vec(value).unwrap()),
        headers: vec![],
        timestamp: None,
    }
}

/// The partition Kafka's default partitioner (murmur2, as the Java client
/// and rivulet's own sinks) gives `key`: a customer's record is where its
/// orders are.
fn partition_of(key: &str) -> i32 {
    harness::partition_of(key, PARTITIONS)
}

fn customer_id(i: usize) -> String {
    format!("c{}", i % 40)
}

fn product_id(i: usize) -> String {
    format!("p{}", (i * 7) % 25)
}

/// Orders of customers c0..c39 for products p0..p24; customers c30..c39 and
/// products p20..p24 do not exist.
fn order(i: usize) -> Order {
    Order { order_id: format!("o{i}"), product_id: product_id(i), quantity: (i % 5) as i64 + 1 }
}

fn customer(c: usize) -> Customer {
    Customer { name: format!("name-{c}"), tier: if c.is_multiple_of(3) { "gold" } else { "basic" }.into() }
}

fn product(p: usize) -> Product {
    Product { title: format!("title-{p}"), price_cents: 100 + p as i64 }
}

/// All the group's committed offsets of `topic` are at its end.
fn caught_up(group: &str, topic: &str) -> Result<(), String> {
    let ends: Vec<i64> = harness::watermarks(topic).into_iter().map(|(_, high)| high).collect();
    let committed = harness::committed_offsets(group, topic, ends.len() as i32);
    let done = committed.iter().zip(&ends).all(|(c, end)| *end == 0 || *c == Some(*end));
    if done {
        Ok(())
    } else {
        Err(format!("{topic}: committed {committed:?}, end {ends:?}"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn order_enrichment_joins_every_order_once_across_a_restart_on_a_new_machine() {
    let orders = harness::new_topic("orders", PARTITIONS).await;
    let customers = harness::new_topic("customers", PARTITIONS).await;
    let products = harness::new_topic("products", PARTITIONS).await;
    let output = harness::new_topic("enriched", 1).await;
    let customer_records: Vec<TestRecord> =
        (0..30).map(|c| json_record(partition_of(&format!("c{c}")), &format!("c{c}"), &customer(c))).collect();
    let product_records: Vec<TestRecord> =
        (0..20).map(|p| json_record(partition_of(&format!("p{p}")), &format!("p{p}"), &product(p))).collect();
    harness::produce_many(&customers, &customer_records).await;
    harness::produce_many(&products, &product_records).await;

    let app_id = harness::unique("order-enrichment");
    let topology = || order_enrichment::topology(&orders, &customers, &products, &output).unwrap();
    let first_state = tempfile::tempdir().unwrap();
    // Exactly-once with the default commit interval.
    let config = |dir: &std::path::Path, instance: &str| {
        harness::app_config(
            &app_id,
            dir,
            &[
                ("RIVULET__PROCESSING_GUARANTEE", "exactly_once"),
                ("RIVULET__INSTANCE_ID", instance),
                ("RIVULET__COMMIT_INTERVAL_MS", "100"),
            ],
        )
    };
    let app = App::new(config(first_state.path(), "a")).unwrap().start(topology()).unwrap();
    // The customers are loaded before any order arrives (see the example's
    // docs); the products, a global table, are loaded before processing.
    harness::eventually("the customers are loaded", TIMEOUT, || caught_up(&app_id, &customers));

    let n = 3_000;
    let order_records = |range: std::ops::Range<usize>| -> Vec<TestRecord> {
        range.map(|i| json_record(partition_of(&customer_id(i)), &customer_id(i), &order(i))).collect()
    };
    harness::produce_many(&orders, &order_records(0..n / 2)).await;
    harness::eventually("the first half is processed", TIMEOUT, || caught_up(&app_id, &orders));
    app.shutdown().unwrap();

    // A new machine: no local state, the tables come back from their changelogs.
    harness::produce_many(&orders, &order_records(n / 2..n)).await;
    let second_state = tempfile::tempdir().unwrap();
    let app = App::new(config(second_state.path(), "b")).unwrap().start(topology()).unwrap();
    let read = || -> Vec<(String, EnrichedOrder)> {
        harness::read_committed(&output)
            .iter()
            .map(|r| (r.key_str().to_string(), serde_json::from_slice(r.value.as_deref().unwrap()).unwrap()))
            .collect()
    };
    harness::eventually("every order is in the output", TIMEOUT, || {
        let got = read().len();
        if got >= n {
            Ok(())
        } else {
            Err(format!("{got} of {n} orders"))
        }
    });
    app.shutdown().unwrap();

    let got = read();
    assert_eq!(got.len(), n, "every order exactly once");
    let by_id: BTreeMap<String, EnrichedOrder> = got.into_iter().collect();
    assert_eq!(by_id.len(), n);
    for i in 0..n {
        let o = &by_id[&format!("o{i}")];
        let (c, p) = (i % 40, (i * 7) % 25);
        assert_eq!(o.customer_id, customer_id(i));
        assert_eq!(o.customer, (c < 30).then(|| customer(c)), "order {i}");
        assert_eq!(o.product, (p < 20).then(|| product(p)), "order {i}");
        assert_eq!(o.total_cents, (p < 20).then(|| product(p).price_cents * order(i).quantity), "order {i}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_join_of_topics_with_different_partition_counts_is_refused_naming_both() {
    let orders = harness::new_topic("orders", 3).await;
    let customers = harness::new_topic("customers", 2).await;
    let products = harness::new_topic("products", 3).await;
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(&harness::unique("bad-join"), state.path(), &[]);
    let topology = order_enrichment::topology(&orders, &customers, &products, "unused").unwrap();
    let e = App::new(config).unwrap().start(topology).err().expect("the start refuses the topology");
    let m = e.to_string();
    assert!(m.contains(&format!("{orders}: 3")) && m.contains(&format!("{customers}: 2")), "{m}");
    assert!(m.contains("same number of partitions"), "{m}");
}

/// Products as a global table: every instance holds all of them, orders
/// (on a topic with another partition count) look up the product their
/// value names, and a product's update reaches later orders.
#[tokio::test(flavor = "multi_thread")]
async fn orders_join_a_global_table_loaded_before_processing_and_kept_up_to_date() {
    let orders = harness::new_topic("orders", 2).await;
    let products = harness::new_topic("products", 3).await;
    let output = harness::new_topic("titled", 1).await;
    let product_records: Vec<TestRecord> =
        (0..200).map(|p| json_record(p % 3, &format!("p{p}"), &product(p as usize))).collect();
    harness::produce_many(&products, &product_records).await;

    let topology = || {
        let mut b = Topology::builder();
        let products = b.global_table(&products, "products", Serdes::string(), Serdes::json::<Product>());
        b.stream(&orders, Serdes::string(), Serdes::string())
            .left_join_global(&products, |_, product_id| product_id.clone(), |_, _, p| p.map(|p| p.title.clone()))
            .to(&output, Serdes::string(), Serdes::json::<Option<String>>());
        b.build().unwrap()
    };
    let state = tempfile::tempdir().unwrap();
    let app_id = harness::unique("global");
    let config = || harness::app_config(&app_id, state.path(), &[("RIVULET__PROCESSING_GUARANTEE", "exactly_once")]);
    // The orders are there before the app starts: they must still all see
    // the products, which are loaded before any order is processed.
    let order_records: Vec<TestRecord> =
        (0..400).map(|i| text_record(i % 2, &format!("o{i}"), &format!("p{}", i % 250))).collect();
    harness::produce_many(&orders, &order_records).await;
    let app = App::new(config()).unwrap().start(topology()).unwrap();
    let titles = || -> BTreeMap<String, Option<String>> {
        harness::read_committed(&output)
            .iter()
            .map(|r| (r.key_str().to_string(), serde_json::from_slice(r.value.as_deref().unwrap()).unwrap()))
            .collect()
    };
    harness::eventually("every order is joined", TIMEOUT, || {
        let n = titles().len();
        if n == 400 {
            Ok(())
        } else {
            Err(format!("{n} of 400 orders"))
        }
    });
    let got = titles();
    for i in 0..400 {
        let p = i % 250;
        assert_eq!(got[&format!("o{i}")], (p < 200).then(|| format!("title-{p}")), "order {i}");
    }
    assert_eq!(harness::read_committed(&output).len(), 400, "each order once");

    // A product update reaches the global store, and later orders see it.
    let renamed = Product { title: "renamed".into(), price_cents: 1 };
    harness::produce_many(&products, &[json_record(1, "p7", &renamed)]).await;
    let mut i = 400;
    harness::eventually("an order sees the renamed product", TIMEOUT, || {
        let key = format!("o{i}");
        i += 1;
        let record = text_record(0, &key, "p7");
        produce_blocking(&orders, record);
        match titles().values().any(|t| t.as_deref() == Some("renamed")) {
            true => Ok(()),
            false => Err("no order has seen the update yet".into()),
        }
    });
    assert_eq!(app.stats().records_restored, 200, "the first start reads the whole topic");
    app.shutdown().unwrap();

    // A restart with its state reads on from the store's offsets: only the
    // five updates written while it was down.
    let updates: Vec<TestRecord> = (0..5).map(|p| json_record(p % 3, &format!("p{p}"), &renamed)).collect();
    harness::produce_many(&products, &updates).await;
    let app = App::new(config()).unwrap().start(topology()).unwrap();
    harness::eventually("the restarted instance is ready", TIMEOUT, || {
        if app.assignment().is_empty() {
            Err("no partitions yet".into())
        } else {
            Ok(())
        }
    });
    assert_eq!(app.stats().records_restored, 5, "the global store kept what it had read");
    produce_blocking(&orders, text_record(0, "after-restart", "p3"));
    harness::eventually("an order after the restart sees the update", TIMEOUT, || {
        match titles().get("after-restart") {
            Some(Some(t)) if t == "renamed" => Ok(()),
            other => Err(format!("got {other:?}")),
        }
    });
    app.shutdown().unwrap();
}

/// A record whose value is a plain string (not JSON).
fn text_record(partition: i32, key: &str, value: &str) -> TestRecord {
    TestRecord {
        partition,
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: vec![],
        timestamp: None,
    }
}

/// Produces one record from a synchronous closure.
fn produce_blocking(topic: &str, record: TestRecord) {
    let topic = topic.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(harness::produce(&topic, &[record]));
    })
    .join()
    .unwrap();
}
