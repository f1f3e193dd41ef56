//! The foreign-key join on a real broker: the `order_customer_foreign_key`
//! example under exactly-once, over a backlog of orders and customers in
//! topics with different partition counts (the subscription topic is
//! co-partitioned with the customers, the response topic with the orders),
//! then customers that move, appear and are deleted and orders that change
//! customer or are deleted, processed on a new machine that restores the
//! stores from their changelogs. The output, read `read_committed`, ends
//! as the join of the two tables.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

#[allow(dead_code)]
#[path = "../examples/order_customer_foreign_key.rs"]
mod order_customer_foreign_key;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::TestRecord;
use order_customer_foreign_key::{Customer, Order, OrderWithCustomer};
use rivulet::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(120);
const ORDER_PARTITIONS: i32 = 3;
const CUSTOMER_PARTITIONS: i32 = 2;

/// A table update: JSON, or a tombstone for `None`.
fn record<T: serde::Serialize>(partitions: i32, key: &str, value: Option<&T>) -> TestRecord {
    TestRecord {
        partition: harness::partition_of(key, partitions),
        key: Some(key.as_bytes().to_vec()),
        value: value.map(|v| serde_json::to_vec(v).unwrap()),
        headers: vec![],
        timestamp: None,
    }
}

fn customer(c: usize, city: &str) -> Customer {
    Customer { name: format!("customer {c}"), city: city.to_string() }
}

fn order(i: usize, c: usize) -> Order {
    Order { customer_id: format!("c{c}"), item: format!("item {}", i % 13), quantity: (i % 5) as i64 + 1 }
}

/// The tables as the test wrote them.
#[derive(Default)]
struct Tables {
    orders: BTreeMap<String, Order>,
    customers: BTreeMap<String, Customer>,
}

impl Tables {
    async fn put_customers(&mut self, topic: &str, updates: Vec<(usize, Option<Customer>)>) {
        let records: Vec<TestRecord> =
            updates.iter().map(|(c, v)| record(CUSTOMER_PARTITIONS, &format!("c{c}"), v.as_ref())).collect();
        harness::produce_many(topic, &records).await;
        for (c, v) in updates {
            match v {
                Some(v) => self.customers.insert(format!("c{c}"), v),
                None => self.customers.remove(&format!("c{c}")),
            };
        }
    }

    async fn put_orders(&mut self, topic: &str, updates: Vec<(usize, Option<Order>)>) {
        let records: Vec<TestRecord> =
            updates.iter().map(|(i, v)| record(ORDER_PARTITIONS, &format!("o{i}"), v.as_ref())).collect();
        harness::produce_many(topic, &records).await;
        for (i, v) in updates {
            match v {
                Some(v) => self.orders.insert(format!("o{i}"), v),
                None => self.orders.remove(&format!("o{i}")),
            };
        }
    }

    /// The left foreign-key join of the tables.
    fn joined(&self) -> BTreeMap<String, OrderWithCustomer> {
        self.orders
            .iter()
            .map(|(id, o)| {
                let joined = OrderWithCustomer {
                    order_id: id.clone(),
                    customer_id: o.customer_id.clone(),
                    customer: self.customers.get(&o.customer_id).cloned(),
                    item: o.item.clone(),
                    quantity: o.quantity,
                };
                (id.clone(), joined)
            })
            .collect()
    }
}

/// The output table: the latest value per order, tombstones deleting.
fn output_table(topic: &str) -> BTreeMap<String, OrderWithCustomer> {
    let mut table = BTreeMap::new();
    for r in harness::read_committed(topic) {
        match r.value.as_deref() {
            Some(v) => table.insert(r.key_str().to_string(), serde_json::from_slice(v).unwrap()),
            None => table.remove(r.key_str()),
        };
    }
    table
}

fn matches(output: &str, want: &BTreeMap<String, OrderWithCustomer>) -> Result<(), String> {
    let got = output_table(output);
    if &got == want {
        return Ok(());
    }
    let wrong = want.iter().filter(|(k, v)| got.get(*k) != Some(v)).count();
    let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
    Err(format!("{} results, {wrong} missing or wrong, {extra} extra", got.len()))
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_join_their_customer_by_foreign_key_across_updates_and_a_new_machine() {
    let orders = harness::new_topic("orders", ORDER_PARTITIONS).await;
    let customers = harness::new_topic("customers", CUSTOMER_PARTITIONS).await;
    let output = harness::new_topic("orders-with-customers", 1).await;
    let mut tables = Tables::default();
    // A backlog: 30 customers of 40 that orders name, 2,000 orders.
    tables.put_customers(&customers, (0..30).map(|c| (c, Some(customer(c, "Lyon")))).collect()).await;
    let n = 2_000;
    tables.put_orders(&orders, (0..n).map(|i| (i, Some(order(i, i % 40)))).collect()).await;

    let app_id = harness::unique("order-customers");
    let topology = || order_customer_foreign_key::topology(&orders, &customers, &output).unwrap();
    let config = |dir: &std::path::Path, instance: &str| harness::eos_config(&app_id, dir, instance, &[]);
    let first_state = tempfile::tempdir().unwrap();
    let app = App::new(config(first_state.path(), "a")).unwrap().start(topology()).unwrap();
    let want = tables.joined();
    harness::eventually("the backlog is joined", TIMEOUT, || matches(&output, &want));
    // Updates on both sides while the first machine runs.
    tables
        .put_customers(
            &customers,
            (0..10)
                .map(|c| (c, Some(customer(c, "Oslo"))))
                .chain((10..15).map(|c| (c, None)))
                .chain((30..35).map(|c| (c, Some(customer(c, "Porto")))))
                .collect(),
        )
        .await;
    tables.put_orders(&orders, (0..200).map(|i| (i, Some(order(i, (i + 7) % 40)))).collect()).await;
    app.shutdown().unwrap();

    // More updates, then a new machine: no local state, the stores come
    // back from their changelogs and the rest is processed there.
    tables.put_orders(&orders, (200..300).map(|i| (i, None)).collect()).await;
    tables.put_customers(&customers, (20..25).map(|c| (c, Some(customer(c, "Riga")))).collect()).await;
    tables.put_orders(&orders, (300..400).map(|i| (i, Some(order(i, 35 + i % 5)))).collect()).await;
    let second_state = tempfile::tempdir().unwrap();
    let app = App::new(config(second_state.path(), "b")).unwrap().start(topology()).unwrap();
    let want = tables.joined();
    assert_eq!(want.len(), n - 100);
    harness::eventually("every update is joined", TIMEOUT, || matches(&output, &want));
    app.shutdown().unwrap();
    let internal: Vec<String> = ["subscription-registration", "subscription-response"]
        .iter()
        .map(|t| format!("{app_id}-order-customers-{t}"))
        .collect();
    let counts: Vec<usize> = internal.iter().map(|t| harness::watermarks(t).len()).collect();
    assert_eq!(counts, [CUSTOMER_PARTITIONS as usize, ORDER_PARTITIONS as usize], "{internal:?}");
}

/// Both tables built from streams rekeyed through repartition topics (the
/// shape of Nexmark's q3): the sub-topologies of the join read only internal
/// topics, and the subscription and response topics make a cycle between
/// them. rivulet used to refuse to start ("cannot size sub-topology ...: its
/// repartition input has no writer"); the join's topics now take the count
/// of the repartition topics, and the join is complete.
#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_key_join_of_two_rekeyed_streams_starts_and_joins() {
    // Events keyed by their position; the ids are in the values.
    let order_events = harness::new_topic("order-events", ORDER_PARTITIONS).await;
    let customer_events = harness::new_topic("customer-events", CUSTOMER_PARTITIONS).await;
    let output = harness::new_topic("orders-with-customers", 1).await;
    let event = |partitions: i32, i: usize, value: Vec<u8>| TestRecord {
        partition: i as i32 % partitions,
        key: Some(format!("event-{i}").into_bytes()),
        value: Some(value),
        headers: vec![],
        timestamp: None,
    };
    // Customer `c<c>` is named by `name`; order `o<i>` by `item`.
    let customers: Vec<TestRecord> =
        (0..30).map(|c| event(CUSTOMER_PARTITIONS, c, serde_json::to_vec(&customer(c, "Lyon")).unwrap())).collect();
    let n = 500;
    let orders: Vec<Order> = (0..n).map(|i| Order { item: format!("o{i}"), ..order(i, i % 40) }).collect();
    let order_records: Vec<TestRecord> =
        orders.iter().enumerate().map(|(i, o)| event(ORDER_PARTITIONS, i, serde_json::to_vec(o).unwrap())).collect();
    harness::produce_many(&customer_events, &customers).await;
    harness::produce_many(&order_events, &order_records).await;

    let mut b = Topology::builder();
    let orders_table = b
        .stream(&order_events, Serdes::string(), Serdes::json::<Order>())
        .group_by(|_, o: &Order| o.item.clone(), Serdes::string())
        .reduce("orders-by-id", |_, newer| newer);
    let customers_table = b
        .stream(&customer_events, Serdes::string(), Serdes::json::<Customer>())
        .group_by(|_, c: &Customer| c.name.trim_start_matches("customer ").to_string(), Serdes::string())
        .reduce("customers-by-id", |_, newer| newer);
    orders_table
        .join_foreign_key(
            &customers_table,
            "order-customer",
            |o: &Order| o.customer_id.trim_start_matches('c').to_string(),
            |id, o, c| format!("{id}:{}:{}", o.customer_id, c.name),
            Serdes::string(),
        )
        .to_change_stream()
        .to(&output, Serdes::string(), Serdes::optional(Serdes::string()));
    let topology = b.build().unwrap();

    let app_id = harness::unique("rekeyed-fk");
    let state = tempfile::tempdir().unwrap();
    let app = App::new(harness::eos_config(&app_id, state.path(), "a", &[])).unwrap().start(topology).unwrap();
    // Inner join: the orders of customers 0-29, each with its customer.
    let want: BTreeMap<String, String> = orders
        .iter()
        .filter(|o| o.customer_id.trim_start_matches('c').parse::<usize>().unwrap() < 30)
        .map(|o| (o.item.clone(), format!("{}:{}:customer {}", o.item, o.customer_id, &o.customer_id[1..])))
        .collect();
    harness::eventually("every order is joined", TIMEOUT, || {
        let mut got = BTreeMap::new();
        for r in harness::read_committed(&output) {
            match &r.value {
                Some(v) => got.insert(r.key_str().to_string(), String::from_utf8(v.clone()).unwrap()),
                None => got.remove(r.key_str()),
            };
        }
        if got == want {
            Ok(())
        } else {
            Err(format!("{} of {} joined", got.iter().filter(|(k, v)| want.get(*k) == Some(v)).count(), want.len()))
        }
    });
    app.shutdown().unwrap();
    // The subscriptions go to the customers' tasks, the responses to the
    // orders': each co-partitioned with the repartition topic it joins.
    let internal: Vec<String> = ["subscription-registration", "subscription-response"]
        .iter()
        .map(|t| format!("{app_id}-order-customer-{t}"))
        .collect();
    let counts: Vec<usize> = internal.iter().map(|t| harness::watermarks(t).len()).collect();
    assert_eq!(counts, [CUSTOMER_PARTITIONS as usize, ORDER_PARTITIONS as usize], "{internal:?}");
}
