//! `reset` refuses while the application still runs: its consumer group
//! (DescribeConsumerGroups) or its streams group (StreamsGroupDescribe) has
//! live members.

use rdkafka::consumer::BaseConsumer;

use super::TIMEOUT;
use crate::error::{Error, Result};
use crate::Config;

/// Fails while `group` has members, naming them (Kafka Streams'
/// `maybeDeleteActiveConsumers`, without its `--force`).
pub(super) fn check_no_members(consumer: &BaseConsumer, group: &str, bootstrap: &str) -> Result<()> {
    let members = crate::kafka::group_members::group_members(consumer, group, TIMEOUT).map_err(|why| {
        Error::Reset(format!(
            "describing consumer group {group} failed: {why} (is the broker up and kafka.bootstrap_servers = \
             {bootstrap} right? the reset's principal needs DESCRIBE on the group)"
        ))
    })?;
    let members: Vec<String> =
        members.iter().map(|m| format!("{} on {}", m.client_id, m.host.trim_start_matches('/'))).collect();
    refuse_while_members(group, "consumer group", &members)
}

/// Fails while the streams group `application_id` (KIP-1071) has members,
/// naming them, read with StreamsGroupDescribe: DescribeConsumerGroups does
/// not see a streams group. Checked under every protocol (a streams group
/// and a consumer group cannot share an id, so at most one check finds
/// members), through the client's TLS and SASL settings; under the consumer
/// protocols a SASL mechanism it does not speak (GSSAPI, OAUTHBEARER) or a
/// broker without streams groups leaves nothing to check.
pub(super) fn check_no_streams_members(config: &Config) -> Result<()> {
    use crate::kafka::streams_group::{describe::no_streams_groups, SecurityConfig, StreamsGroupClient};
    let streams = config.group_protocol == crate::config::GroupProtocol::Streams;
    let security = match SecurityConfig::from_config(config) {
        Ok(security) => security,
        Err(_) if !streams => return Ok(()),
        Err(e) => return Err(e),
    };
    let group = &config.application_id;
    let bootstrap = &config.kafka.bootstrap_servers;
    let client_id = format!("{group}-reset");
    let members = match StreamsGroupClient::connect(&security, bootstrap, group, &client_id, TIMEOUT)
        .and_then(|mut client| client.describe_members())
    {
        Ok(members) => members,
        Err(e) if no_streams_groups(&e) && !streams => return Ok(()),
        Err(e) => {
            return Err(Error::Reset(format!(
                "describing streams group {group} failed: {e} (is the broker up and kafka.bootstrap_servers = \
                 {bootstrap} right? the reset's principal needs DESCRIBE on the group)"
            )))
        }
    };
    let members: Vec<String> = members
        .iter()
        .map(|m| {
            format!(
                "{} on {} (process {}: {} active, {} standby tasks)",
                m.client_id,
                m.client_host.trim_start_matches('/'),
                m.process_id,
                m.assignment.active_count(),
                m.assignment.standby_count()
            )
        })
        .collect();
    refuse_while_members(group, "streams group", &members)
}

/// The refusal of a reset while `group` (a `kind`) has `members`.
fn refuse_while_members(group: &str, kind: &str, members: &[String]) -> Result<()> {
    if members.is_empty() {
        return Ok(());
    }
    Err(Error::Reset(format!(
        "cannot reset application `{group}`: its {kind} still has {} live member(s) ({}); stop every instance of \
         the application and run reset again (an instance with an explicit instance_id stays in the group until \
         the group's session timeout has passed after it stopped)",
        members.len(),
        members.join(", ")
    )))
}
