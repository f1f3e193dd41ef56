//! The streams group client's TLS and SASL settings from a [`Config`]:
//! the librdkafka properties of `[kafka.common]`, overridden by
//! `[kafka.consumer]` (as a consumer gets them), with their
//! `${directory:...}`/`${file:...}` references read now.

use std::cell::RefCell;

use super::streams_group::SecurityConfig;
use crate::config::{reference, Config};
use crate::error::{Error, Result};

impl SecurityConfig {
    /// The settings `config` gives the consumer's librdkafka client.
    pub(crate) fn from_config(config: &Config) -> Result<SecurityConfig> {
        let failed: RefCell<Option<Error>> = RefCell::new(None);
        let settings = SecurityConfig::from_properties(|key| {
            let (section, value) = [("consumer", &config.kafka.consumer), ("common", &config.kafka.common)]
                .into_iter()
                .find_map(|(section, props)| props.get(key).map(|v| (section, v)))?;
            if !reference::has_reference(value) {
                return Some(value.to_string());
            }
            match reference::resolve(&format!("kafka.{section}.{key}"), "the loaded config", value) {
                Ok(v) => Some(v),
                Err(e) => {
                    failed.borrow_mut().get_or_insert(e.into());
                    None
                }
            }
        });
        match failed.into_inner() {
            Some(e) => Err(e),
            None => settings,
        }
    }
}
