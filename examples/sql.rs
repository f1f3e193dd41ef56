//! `sql`: runs a SQL script (see [`rivulet::sql`]) as an application, the
//! command line every rivulet application has included:
//!
//! ```sh
//! RIVULET__APP__SCRIPT=views.sql cargo run --example sql -- describe   # the topology it compiles to
//! RIVULET__APP__SCRIPT=views.sql RIVULET__APPLICATION_ID=views \
//!     RIVULET__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run --example sql
//! ```
//!
//! The script declares its topics (`CREATE TABLE .. WITH ('topic' = ..)`)
//! and its queries (`INSERT INTO .. SELECT ..`); an unsupported statement
//! or clause stops it before it starts, with the line, column and text.
//! Tables in `'format' = 'avro-confluent'` use the Schema Registry of
//! `schema_registry.url` (`RIVULET__SCHEMA_REGISTRY__URL`).
//!
//! # Settings
//!
//! ```toml
//! application_id = "sql"
//!
//! [app]
//! script = "views.sql"   # RIVULET__APP__SCRIPT: the path of the script
//! ```

use std::process::ExitCode;

use rivulet::prelude::*;
use rivulet::processor::TopologyError;
use rivulet::serde::registry::SchemaRegistry;
use serde::Deserialize;

/// The example's `[app]` settings.
#[derive(Debug, Clone, Deserialize)]
struct Settings {
    script: String,
}

fn main() -> ExitCode {
    let defaults = Config::loader().default_value("application_id", "sql");
    rivulet::Main::new(defaults).main(|config| {
        let settings: Settings = config.app()?;
        let script = std::fs::read_to_string(&settings.script)
            .map_err(|e| TopologyError::Invalid(format!("cannot read the SQL script {}: {e}", settings.script)))?;
        if config.schema_registry.url.is_empty() {
            rivulet::sql::topology(&script)
        } else {
            // For 'format' = 'avro-confluent' tables.
            let registry = SchemaRegistry::connect(&config.schema_registry)?;
            rivulet::sql::topology_with_registry(&script, &registry)
        }
    })
}
