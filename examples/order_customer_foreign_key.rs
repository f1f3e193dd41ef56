//! `order_customer_foreign_key`: a table of orders joined with the
//! customer each order names, with Kafka Streams' foreign-key table-table
//! join (KIP-213).
//!
//! Two input topics, both tables (a null value deletes the key), with
//! string keys and JSON values:
//!
//! - `orders`: order id -> `{"customer_id": "c-1", "item": "lamp",
//!   "quantity": 2}`;
//! - `customers`: customer id -> `{"name": "Ann", "city": "Lyon"}`.
//!
//! Each order is joined with its customer (`left_join_foreign_key`: an
//! order whose customer is unknown is kept, with `customer: null`) and
//! written to `orders-with-customers`, keyed by order id:
//! `{"order_id", "customer_id", "customer", "item", "quantity"}`, or a
//! tombstone when the order is deleted. The output is the join of the two
//! tables as they are: a customer who moves city updates every order of
//! theirs, an order moved to another customer gets that customer, a deleted
//! customer leaves their orders with `customer: null`.
//!
//! The two topics need not have the same partition count: the join sends
//! each order's customer id through `<application_id>-order-customers-
//! subscription-registration` (partitioned like `customers`, whose
//! sub-topology keeps the subscriptions in the store
//! `order-customers-subscription-store`) and gets the customer back through
//! `<application_id>-order-customers-subscription-response` (partitioned
//! like `orders`). An answer that was computed for an older version of the
//! order (its hash no longer matches) is dropped: the answer to the newer
//! version follows.
//!
//! # Running it
//!
//! Start a broker (`integration-tests/kafka/broker.sh start`), create the
//! three topics, then:
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 RIVULET__STATE_DIR=/tmp/rivulet \
//!     cargo run --example order_customer_foreign_key
//! ```
//!
//! # Settings
//!
//! ```toml
//! application_id = "order-customers"
//!
//! [app]
//! orders_topic = "orders"                  # RIVULET__APP__ORDERS_TOPIC
//! customers_topic = "customers"            # RIVULET__APP__CUSTOMERS_TOPIC
//! output_topic = "orders-with-customers"   # RIVULET__APP__OUTPUT_TOPIC
//! ```

use std::process::ExitCode;

use rivulet::prelude::*;
use serde::{Deserialize, Serialize};

/// A customer, the value of the `customers` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Customer {
    pub(crate) name: String,
    pub(crate) city: String,
}

/// An order, the value of the `orders` table; `customer_id` is the
/// foreign key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Order {
    pub(crate) customer_id: String,
    pub(crate) item: String,
    pub(crate) quantity: i64,
}

/// An order with its customer (`None`: not known), keyed by order id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OrderWithCustomer {
    pub(crate) order_id: String,
    pub(crate) customer_id: String,
    pub(crate) customer: Option<Customer>,
    pub(crate) item: String,
    pub(crate) quantity: i64,
}

/// The example's `[app]` settings.
#[derive(Debug, Deserialize)]
struct Settings {
    orders_topic: String,
    customers_topic: String,
    output_topic: String,
}

/// The topology: the orders table joined with the customers table on each
/// order's `customer_id`, its changes written keyed by order id.
pub(crate) fn topology(orders: &str, customers: &str, output: &str) -> Result<Topology> {
    let mut b = Topology::builder();
    let orders = b.table(orders, "orders", Serdes::string(), Serdes::json::<Order>());
    let customers = b.table(customers, "customers", Serdes::string(), Serdes::json::<Customer>());
    orders
        .left_join_foreign_key(
            &customers,
            "order-customers",
            |order: &Order| order.customer_id.clone(),
            |order_id, order, customer| OrderWithCustomer {
                order_id: order_id.clone(),
                customer_id: order.customer_id.clone(),
                customer: customer.cloned(),
                item: order.item.clone(),
                quantity: order.quantity,
            },
            Serdes::json::<OrderWithCustomer>(),
        )
        .to_change_stream()
        .to(output, Serdes::string(), Serdes::optional(Serdes::json::<OrderWithCustomer>()));
    Ok(b.build()?)
}

fn main() -> ExitCode {
    let defaults = Config::loader()
        .default_value("application_id", "order-customers")
        .default_value("app.orders_topic", "orders")
        .default_value("app.customers_topic", "customers")
        .default_value("app.output_topic", "orders-with-customers");
    // `run` (the default), `describe` or `reset`; see `--help`.
    rivulet::Main::new(defaults).main(|config| {
        let settings: Settings = config.app()?;
        topology(&settings.orders_topic, &settings.customers_topic, &settings.output_topic)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet::testing::TopologyTestDriver;

    #[test]
    fn orders_follow_their_customer_through_updates_moves_and_deletes() {
        let mut driver = TopologyTestDriver::new(topology("orders", "customers", "out").unwrap()).unwrap();
        let customers = driver.input_topic("customers", Serdes::string(), Serdes::optional(Serdes::json::<Customer>()));
        let orders = driver.input_topic("orders", Serdes::string(), Serdes::optional(Serdes::json::<Order>()));
        let out = driver.output_topic("out", Serdes::string(), Serdes::optional(Serdes::json::<OrderWithCustomer>()));
        let ann = |city: &str| Customer { name: "Ann".into(), city: city.into() };
        let order = |customer: &str| Order { customer_id: customer.into(), item: "lamp".into(), quantity: 2 };
        let with = |customer_id: &str, customer: Option<Customer>| {
            Some(OrderWithCustomer {
                order_id: "o1".into(),
                customer_id: customer_id.into(),
                customer,
                item: "lamp".into(),
                quantity: 2,
            })
        };
        driver.pipe(&customers, "c1".into(), Some(ann("Lyon")), 0).unwrap();
        driver.pipe(&orders, "o1".into(), Some(order("c1")), 1).unwrap();
        driver.pipe(&customers, "c1".into(), Some(ann("Oslo")), 2).unwrap(); // Ann moves
        driver.pipe(&orders, "o1".into(), Some(order("c9")), 3).unwrap(); // another customer, unknown
        driver.pipe(&customers, "c1".into(), None, 4).unwrap(); // no longer o1's: nothing
        driver.pipe(&orders, "o1".into(), None, 5).unwrap(); // the order is deleted
        let o1 = |v| ("o1".to_string(), v);
        assert_eq!(
            driver.read_key_values(&out).unwrap(),
            vec![o1(with("c1", Some(ann("Lyon")))), o1(with("c1", Some(ann("Oslo")))), o1(with("c9", None)), o1(None)]
        );
    }
}
