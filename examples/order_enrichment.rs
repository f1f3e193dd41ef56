//! `order_enrichment`: orders joined with their customer (a table) and
//! their product (a global table), with Kafka Streams' stream-table and
//! stream-global-table joins.
//!
//! Three input topics, all with JSON values and string keys:
//!
//! - `customers` (a table; a null value deletes): customer id ->
//!   `{"name": "Ann", "tier": "gold"}`;
//! - `products` (a table): product id -> `{"title": "Lamp", "price_cents": 2599}`;
//! - `orders` (a stream): customer id -> `{"order_id": "o-1", "product_id":
//!   "p-7", "quantity": 2}`.
//!
//! Each order looks up its customer (`left_join_table`: an order of an
//! unknown customer is kept, with `customer: null`), then its product in
//! the global table (`left_join_global`, by the order's `product_id`), and
//! is written to `enriched-orders`, keyed by order id: `{"order_id",
//! "customer_id", "customer", "product_id", "product", "quantity",
//! "total_cents"}` (`total_cents` is null when the product is unknown).
//!
//! `customers` and `orders` must have the same partition count (the join
//! reads partition p of both in one task; the start checks it and names
//! both topics if not). `products` is read whole by every instance, before
//! processing starts, so it may have any partition count and the orders
//! are not repartitioned.
//!
//! A stream record sees the customer table as it is when the record is
//! processed: load the customers before the orders arrive (rivulet does
//! not yet order a task's partitions by timestamp as Kafka Streams does).
//!
//! # Running it
//!
//! Start a broker (`integration-tests/kafka/broker.sh start`), create the
//! four topics, then:
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 RIVULET__STATE_DIR=/tmp/rivulet \
//!     cargo run --example order_enrichment
//! ```
//!
//! # Settings
//!
//! ```toml
//! application_id = "order-enrichment"
//!
//! [app]
//! orders_topic = "orders"            # RIVULET__APP__ORDERS_TOPIC
//! customers_topic = "customers"      # RIVULET__APP__CUSTOMERS_TOPIC
//! products_topic = "products"        # RIVULET__APP__PRODUCTS_TOPIC
//! output_topic = "enriched-orders"   # RIVULET__APP__OUTPUT_TOPIC
//! ```

use std::process::ExitCode;

use rivulet::prelude::*;
use serde::{Deserialize, Serialize};

/// A customer, the value of the `customers` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Customer {
    pub(crate) name: String,
    pub(crate) tier: String,
}

/// A product, the value of the `products` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Product {
    pub(crate) title: String,
    pub(crate) price_cents: i64,
}

/// An order, keyed by customer id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Order {
    pub(crate) order_id: String,
    pub(crate) product_id: String,
    pub(crate) quantity: i64,
}

/// An order with its customer and product, keyed by order id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EnrichedOrder {
    pub(crate) order_id: String,
    pub(crate) customer_id: String,
    pub(crate) customer: Option<Customer>,
    pub(crate) product_id: String,
    pub(crate) product: Option<Product>,
    pub(crate) quantity: i64,
    pub(crate) total_cents: Option<i64>,
}

/// The example's `[app]` settings.
#[derive(Debug, Deserialize)]
struct Settings {
    orders_topic: String,
    customers_topic: String,
    products_topic: String,
    output_topic: String,
}

/// The topology: orders joined with customers, then with products by
/// product id, written keyed by order id.
pub(crate) fn topology(orders: &str, customers: &str, products: &str, output: &str) -> Result<Topology> {
    let mut b = Topology::builder();
    let customers = b.table(customers, "customers", Serdes::string(), Serdes::json::<Customer>());
    let products = b.global_table(products, "products", Serdes::string(), Serdes::json::<Product>());
    b.stream(orders, Serdes::string(), Serdes::json::<Order>())
        .left_join_table(&customers, |customer_id, order, customer| EnrichedOrder {
            order_id: order.order_id.clone(),
            customer_id: customer_id.clone(),
            customer: customer.cloned(),
            product_id: order.product_id.clone(),
            product: None,
            quantity: order.quantity,
            total_cents: None,
        })
        .left_join_global(
            &products,
            |_, o| o.product_id.clone(),
            |_, order, product| EnrichedOrder {
                product: product.cloned(),
                total_cents: product.map(|p| p.price_cents * order.quantity),
                ..order.clone()
            },
        )
        .select_key(|_, o| o.order_id.clone())
        .to(output, Serdes::string(), Serdes::json::<EnrichedOrder>());
    Ok(b.build()?)
}

fn main() -> ExitCode {
    let defaults = Config::loader()
        .default_value("application_id", "order-enrichment")
        .default_value("app.orders_topic", "orders")
        .default_value("app.customers_topic", "customers")
        .default_value("app.products_topic", "products")
        .default_value("app.output_topic", "enriched-orders");
    // `run` (the default), `describe` or `reset`; see `--help`.
    rivulet::Main::new(defaults).main(|config| {
        let settings: Settings = config.app()?;
        topology(&settings.orders_topic, &settings.customers_topic, &settings.products_topic, &settings.output_topic)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet::testing::TopologyTestDriver;

    #[test]
    fn orders_get_their_customer_and_product_or_null_when_unknown() {
        let mut driver = TopologyTestDriver::new(topology("orders", "customers", "products", "out").unwrap()).unwrap();
        let customers = driver.input_topic("customers", Serdes::string(), Serdes::json::<Option<Customer>>());
        let products = driver.input_topic("products", Serdes::string(), Serdes::json::<Option<Product>>());
        let orders = driver.input_topic("orders", Serdes::string(), Serdes::json::<Order>());
        let ann = Customer { name: "Ann".into(), tier: "gold".into() };
        let lamp = Product { title: "Lamp".into(), price_cents: 2599 };
        driver.pipe(&customers, "c1".into(), Some(ann.clone()), 0).unwrap();
        driver.pipe(&products, "p7".into(), Some(lamp.clone()), 0).unwrap();
        let order = |id: &str, product: &str| Order { order_id: id.into(), product_id: product.into(), quantity: 2 };
        driver.pipe(&orders, "c1".into(), order("o1", "p7"), 1).unwrap();
        driver.pipe(&orders, "c2".into(), order("o2", "p9"), 2).unwrap();
        let out = driver.output_topic("out", Serdes::string(), Serdes::json::<EnrichedOrder>());
        let got = driver.read_key_values(&out).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "o1");
        assert_eq!((got[0].1.customer.as_ref(), got[0].1.product.as_ref()), (Some(&ann), Some(&lamp)));
        assert_eq!(got[0].1.total_cents, Some(5198));
        assert_eq!((got[1].1.customer.as_ref(), got[1].1.total_cents), (None, None));
    }
}
