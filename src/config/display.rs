//! The effective config as TOML (`Display`, also `Debug`), secrets redacted.

use std::fmt;

use config::{Map, Value, ValueKind};

use super::{keys, Config, ErrorPolicy, LogFormat};

pub(super) fn redact<'a>(key: &str, value: &'a str) -> &'a str {
    if keys::is_secret(key) {
        "[redacted]"
    } else {
        value
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Prints the effective config as TOML, secrets redacted.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "application_id = {:?}", self.application_id)?;
        writeln!(f, "instance_id = {:?}", self.instance_id)?;
        writeln!(f, "processing_guarantee = \"{}\"", self.processing_guarantee)?;
        writeln!(f, "commit_interval_ms = {}", self.commit_interval.as_millis())?;
        writeln!(f, "repartition_purge_interval_ms = {}", self.repartition_purge_interval.as_millis())?;
        writeln!(f, "num_threads = {}", self.num_threads)?;
        writeln!(f, "group_protocol = \"{}\"", self.group_protocol)?;
        writeln!(f, "num_standby_replicas = {}", self.num_standby_replicas)?;
        writeln!(f, "shutdown_timeout_ms = {}", self.shutdown_timeout.as_millis())?;
        writeln!(f, "state_dir = {:?}", self.state_dir.display().to_string())?;
        writeln!(f, "\n[state]")?;
        writeln!(f, "block_cache_bytes = {}", self.state.block_cache_bytes)?;
        writeln!(f, "write_buffer_bytes = {}", self.state.write_buffer_bytes)?;
        writeln!(f, "cache_bytes = {}", self.state.cache_bytes)?;
        writeln!(
            f,
            "window_changelog_additional_retention_ms = {}",
            self.state.window_changelog_additional_retention_ms
        )?;
        writeln!(f, "\n[errors]")?;
        for (k, p) in [
            ("deserialization", self.errors.deserialization),
            ("processing", self.errors.processing),
            ("production", self.errors.production),
        ] {
            writeln!(f, "{k} = \"{}\"", policy_name(p))?;
        }
        writeln!(f, "dead_letter_topic = {:?}", self.errors.dead_letter_topic)?;
        let reset = keys::OFFSET_RESET_POLICIES.iter().find(|(_, p)| *p == self.errors.offset_out_of_range);
        writeln!(f, "offset_out_of_range = {:?}", reset.map_or("", |(n, _)| *n))?;
        let b = &self.bounded;
        writeln!(f, "\n[bounded]\nenabled = {}\nclose_windows_at_end = {}", b.enabled, b.close_windows_at_end)?;
        writeln!(f, "\n[http]\nlisten = \"{}\"", self.http.listen)?;
        writeln!(f, "advertised_address = {:?}", self.http.advertised_address)?;
        let format = match self.log.format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        writeln!(f, "\n[log]\nformat = \"{format}\"\nlevel = {:?}", self.log.level)?;
        writeln!(f, "\n[kafka]\nbootstrap_servers = {:?}", self.kafka.bootstrap_servers)?;
        for (section, props) in
            [("common", &self.kafka.common), ("consumer", &self.kafka.consumer), ("producer", &self.kafka.producer)]
        {
            writeln!(f, "\n[kafka.{section}]")?;
            for (k, v) in props.iter() {
                writeln!(f, "{k:?} = {:?}", redact(k, v))?;
            }
        }
        let sr = &self.schema_registry;
        writeln!(f, "\n[schema_registry]\nurl = {:?}", sr.url)?;
        let user_info = if sr.basic_auth_user_info.is_empty() { "" } else { "[redacted]" };
        writeln!(f, "basic_auth_user_info = {user_info:?}")?;
        let ca = sr.ssl_ca_location.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        writeln!(f, "ssl_ca_location = {ca:?}")?;
        writeln!(f, "auto_register_schemas = {}", sr.auto_register_schemas)?;
        writeln!(f, "subject_name_strategy = \"{}\"", sr.subject_name_strategy)?;
        writeln!(f, "request_timeout_ms = {}", sr.request_timeout.as_millis())?;
        writeln!(f, "\n[app]")?;
        write_app_table(f, "", &self.app)
    }
}

fn policy_name(p: ErrorPolicy) -> &'static str {
    match p {
        ErrorPolicy::Fail => "fail",
        ErrorPolicy::Skip => "skip",
        ErrorPolicy::DeadLetter => "dead_letter",
    }
}

fn write_app_table(f: &mut fmt::Formatter<'_>, prefix: &str, table: &Map<String, Value>) -> fmt::Result {
    for (k, v) in table {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match &v.kind {
            ValueKind::Table(inner) => write_app_table(f, &path, inner)?,
            _ if keys::is_secret(k) => writeln!(f, "{path} = \"[redacted]\"")?,
            _ => writeln!(f, "{path} = {}", keys::shown(v))?,
        }
    }
    Ok(())
}
