//! Avro orders through a Schema Registry: the demo of
//! `rivulet::serde::registry`.
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=localhost:9092 \
//! RIVULET__SCHEMA_REGISTRY__URL=http://localhost:8081 \
//!     cargo run --example avro_orders
//! ```
//!
//! It reads `shop.Order` records (Avro in Confluent's wire format, as
//! Confluent's serializers and rivulet's write them) from `app.input_topic`,
//! with the schema below as its reader schema: orders written with an older
//! schema that lacks `channel` read as `"web"`. For each it writes a
//! `shop.OrderTotal` to `app.output_topic`, keyed as the order was.
//!
//! This demo turns `schema_registry.auto_register_schemas` on, so the
//! output's schema is registered under `<output_topic>-value` at start;
//! rivulet's default is off, and then the schema must be registered
//! beforehand (the start fails naming the subject when it is not). A
//! registry that cannot be reached stops the start with an error naming
//! its URL. Both topics must exist.
//!
//! `[app]` settings (defaults): `input_topic` ("orders"), `output_topic`
//! ("order-totals"). Other defaults set here: `application_id =
//! "avro-orders"`, `state_dir` = `<temp dir>/rivulet-avro-orders`.
//! `integration-tests/schema_registry.rs` runs this topology against a real
//! registry, with Confluent's Python serializers on both ends.

use rivulet::prelude::*;
use rivulet::serde::registry::SchemaRegistry;
use serde::{Deserialize, Serialize};

/// The reader schema of the input.
pub(crate) const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"long"},{"name":"sku","type":"string"},{"name":"quantity","type":"int"},
  {"name":"channel","type":"string","default":"web"}]}"#;

/// The schema of the output.
pub(crate) const ORDER_TOTAL: &str = r#"{"type":"record","name":"OrderTotal","namespace":"shop","fields":[
  {"name":"id","type":"long"},{"name":"channel","type":"string"},{"name":"units","type":"long"},
  {"name":"note","type":["null","string"],"default":null}]}"#;

/// An order, as [`ORDER`] describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Order {
    pub(crate) id: i64,
    pub(crate) sku: String,
    pub(crate) quantity: i32,
    pub(crate) channel: String,
}

/// What is written per order, as [`ORDER_TOTAL`] describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OrderTotal {
    pub(crate) id: i64,
    pub(crate) channel: String,
    pub(crate) units: i64,
    pub(crate) note: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Settings {
    pub(crate) input_topic: String,
    pub(crate) output_topic: String,
}

/// Ten units per item; a note for more than one item.
pub(crate) fn total(o: Order) -> OrderTotal {
    OrderTotal {
        id: o.id,
        channel: o.channel,
        units: i64::from(o.quantity) * 10,
        note: (o.quantity > 1).then(|| format!("{} x {}", o.quantity, o.sku)),
    }
}

/// The topology; it fails when the output's schema is neither registered
/// nor registrable.
pub(crate) fn topology(registry: &SchemaRegistry, settings: &Settings) -> Result<Topology> {
    let totals = registry.avro::<OrderTotal>(ORDER_TOTAL)?.value_of(&settings.output_topic);
    totals.writer_id()?;
    let mut b = Topology::builder();
    b.stream(&settings.input_topic, Serdes::string(), registry.avro::<Order>(ORDER)?).map_values(total).to(
        &settings.output_topic,
        Serdes::string(),
        totals,
    );
    Ok(b.build()?)
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let state_dir = std::env::temp_dir().join("rivulet-avro-orders");
    let config = Config::loader()
        .default_value("application_id", "avro-orders")
        .default_value("state_dir", &state_dir.to_string_lossy())
        .default_value("app.input_topic", "orders")
        .default_value("app.output_topic", "order-totals")
        .default_value("schema_registry.auto_register_schemas", "true")
        .args(std::env::args().skip(1))?
        .load()?;
    rivulet::init_logging(&config)?;
    let registry = SchemaRegistry::connect(&config.schema_registry)?;
    let topology = topology(&registry, &config.app()?)?;
    println!("{}", topology.describe());
    Ok(App::new(config)?.run(topology)?)
}
