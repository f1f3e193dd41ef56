//! The blocking client: one TCP connection to the group coordinator,
//! requests framed and numbered by hand, and the Kafka messages
//! `kafka-protocol` has (headers, ApiVersions, FindCoordinator,
//! OffsetCommit) next to the StreamsGroupHeartbeat it lacks.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    OffsetCommitRequest, OffsetCommitResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

use super::messages::{
    HeartbeatRequest, HeartbeatResponse, STREAMS_GROUP_HEARTBEAT_KEY, STREAMS_GROUP_HEARTBEAT_VERSION,
};
use super::transport::{SecurityConfig, Stream};
use super::{codes, error_name, protocol_error, sasl};
use crate::error::Result;

/// How long a request may wait for its answer (socket read and write
/// timeouts), as the Java client's `request.timeout.ms` default.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A larger response frame is taken for a corrupt stream.
const MAX_RESPONSE_BYTES: usize = 100 << 20;
/// The OffsetCommit version sent: 9 carries a streams member's id and
/// epoch (`StreamsGroup.validateOffsetCommit` refuses lower ones); 10
/// names topics by id, which would need a Metadata round trip first.
const OFFSET_COMMIT_VERSION: i16 = 9;
const API_VERSIONS_KEY: i16 = 18;
const API_VERSIONS_VERSION: i16 = 3;
const FIND_COORDINATOR_KEY: i16 = 10;
const OFFSET_COMMIT_KEY: i16 = 8;
/// FindCoordinator 4 looks keys up in a batch; every broker with
/// StreamsGroupHeartbeat has 4 to 6.
const FIND_COORDINATOR_VERSIONS: (i16, i16) = (4, 6);

/// One connection to a broker, with the versions of the APIs it speaks.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) address: String,
    stream: Stream,
    client_id: StrBytes,
    correlation_id: i32,
    /// api key -> (min, max) version.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `address` (`host:port`) within `timeout`, with TLS
    /// and SASL as `security` says, and asks the broker for its API
    /// versions.
    fn open(address: &str, client_id: &StrBytes, security: &SecurityConfig, timeout: Duration) -> Result<Connection> {
        let doing = format!("connecting to Kafka broker {address}");
        let fail = |e: String| protocol_error(&doing, None, format!("{e}; check that a broker listens there"));
        let addrs = address.to_socket_addrs().map_err(|e| fail(format!("cannot resolve it: {e}")))?;
        let mut last = format!("{address} resolves to no address");
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout.max(Duration::from_millis(1))) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        let stream = stream.ok_or_else(|| fail(last))?;
        stream.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
        let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let stream = Stream::new(stream, security.tls_config(), host)?;
        let mut conn = Connection {
            address: address.to_string(),
            stream,
            client_id: client_id.clone(),
            correlation_id: 0,
            versions: HashMap::new(),
        };
        conn.set_timeout(timeout.min(REQUEST_TIMEOUT))?;
        conn.api_versions()?;
        if let Some(credentials) = &security.sasl {
            sasl::authenticate(&mut conn, credentials)?;
        }
        conn.set_timeout(REQUEST_TIMEOUT)?;
        Ok(conn)
    }

    fn set_timeout(&self, timeout: Duration) -> Result<()> {
        self.stream
            .set_timeouts(timeout)
            .map_err(|e| protocol_error(&format!("setting socket timeouts on {}", self.address), None, e.to_string()))
    }

    /// Sends one request (`body`, encoded at `version`) and returns the
    /// response body after its header, checking the correlation id.
    fn round_trip(
        &mut self,
        api_key: i16,
        version: i16,
        header_versions: (i16, i16),
        body: &[u8],
        doing: &str,
    ) -> Result<Vec<u8>> {
        let doing = format!("{doing} (broker {})", self.address);
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = api_key;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(self.client_id.clone());
        let mut frame = vec![0u8; 4];
        header
            .encode(&mut frame, header_versions.0)
            .map_err(|e| protocol_error(&doing, None, format!("encoding the request header: {e}")))?;
        frame.extend_from_slice(body);
        let len = i32::try_from(frame.len() - 4)
            .map_err(|_| protocol_error(&doing, None, format!("a request of {} bytes is too large", frame.len())))?;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        let io = |e: std::io::Error| {
            let why = match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                    format!("no answer within {:?} (the connection is dropped and opened again)", REQUEST_TIMEOUT)
                }
                _ => format!("{e} (the connection is dropped and opened again)"),
            };
            protocol_error(&doing, None, why)
        };
        self.stream.write_all(&frame).and_then(|()| self.stream.flush()).map_err(io)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io)?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| protocol_error(&doing, None, format!("the broker sent a frame of {size} bytes")))?;
        let mut response = vec![0u8; size];
        self.stream.read_exact(&mut response).map_err(io)?;
        let mut rest = response.as_slice();
        let header = ResponseHeader::decode(&mut rest, header_versions.1)
            .map_err(|e| protocol_error(&doing, None, format!("decoding the response header: {e}")))?;
        if header.correlation_id != self.correlation_id {
            return Err(protocol_error(
                &doing,
                None,
                format!(
                    "the response answers request {} instead of {}: the connection is out of step and is dropped",
                    header.correlation_id, self.correlation_id
                ),
            ));
        }
        Ok(rest.to_vec())
    }

    /// A request `kafka-protocol` encodes, and its decoded response.
    pub(super) fn call<Req, Resp>(&mut self, api_key: i16, version: i16, request: &Req, doing: &str) -> Result<Resp>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let mut body = Vec::new();
        request
            .encode(&mut body, version)
            .map_err(|e| protocol_error(doing, None, format!("encoding the request: {e}")))?;
        let headers = (Req::header_version(version), Resp::header_version(version));
        let response = self.round_trip(api_key, version, headers, &body, doing)?;
        Resp::decode(&mut response.as_slice(), version)
            .map_err(|e| protocol_error(doing, None, format!("decoding the response (version {version}): {e}")))
    }

    fn api_versions(&mut self) -> Result<()> {
        let doing = "asking for the broker's API versions";
        let mut request = ApiVersionsRequest::default();
        request.client_software_name = StrBytes::from_static_str("rivulet");
        request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let response: ApiVersionsResponse = self.call(API_VERSIONS_KEY, API_VERSIONS_VERSION, &request, doing)?;
        // A broker older than Kafka 2.4 answers version 3 with
        // UNSUPPORTED_VERSION: it has no streams groups either.
        if response.error_code != 0 && response.error_code != codes::UNSUPPORTED_VERSION {
            return Err(protocol_error(doing, Some(response.error_code), error_name(response.error_code)));
        }
        self.versions = response.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        if !self.supports(STREAMS_GROUP_HEARTBEAT_KEY, STREAMS_GROUP_HEARTBEAT_VERSION) {
            return Err(protocol_error(
                &format!("connecting to Kafka broker {}", self.address),
                Some(codes::UNSUPPORTED_VERSION),
                "the broker does not support the streams rebalance protocol (KIP-1071: StreamsGroupHeartbeat, Kafka \
                 4.1 or later with it enabled: feature streams.version 1, or `streams` in \
                 group.coordinator.rebalance.protocols); use group_protocol = \"consumer\" instead"
                    .to_string(),
            ));
        }
        Ok(())
    }

    pub(super) fn supports(&self, api_key: i16, version: i16) -> bool {
        self.versions.get(&api_key).is_some_and(|(min, max)| (*min..=*max).contains(&version))
    }

    /// The highest version of `api_key` in `range` the broker speaks.
    pub(super) fn version_in(&self, api_key: i16, (low, high): (i16, i16)) -> Option<i16> {
        (low..=high).rev().find(|v| self.supports(api_key, *v))
    }
}

impl sasl::SaslConnection for Connection {
    fn address(&self) -> &str {
        &self.address
    }

    fn supports(&self, api_key: i16, version: i16) -> bool {
        Connection::supports(self, api_key, version)
    }

    fn version_in(&self, api_key: i16, versions: (i16, i16)) -> Option<i16> {
        Connection::version_in(self, api_key, versions)
    }

    fn call<Req, Resp>(&mut self, api_key: i16, version: i16, request: &Req, doing: &str) -> Result<Resp>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        Connection::call(self, api_key, version, request, doing)
    }
}

/// `host:port` of each bootstrap server in librdkafka's list
/// (`host:port,host:port`, an optional `PLAINTEXT://`, 9092 by default).
fn bootstrap_addresses(bootstrap: &str) -> Vec<String> {
    bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.split_once("://").map_or(s, |(_, rest)| rest))
        .map(|s| if s.ends_with(']') || !s.contains(':') { format!("{s}:9092") } else { s.to_string() })
        .collect()
}

/// A streams group member's connection to its group coordinator: sends
/// StreamsGroupHeartbeat and OffsetCommit requests, one at a time,
/// blocking for at most [`REQUEST_TIMEOUT`] each.
#[derive(Debug)]
pub(crate) struct StreamsGroupClient {
    bootstrap: Vec<String>,
    group_id: String,
    client_id: StrBytes,
    /// How long finding the coordinator may take.
    timeout: Duration,
    /// TLS and SASL of every connection.
    security: Arc<SecurityConfig>,
    coordinator: Option<Connection>,
}

impl StreamsGroupClient {
    /// Connects to a bootstrap broker of `bootstrap` (librdkafka-style
    /// `host:port,host:port`), checks that it speaks the streams group
    /// protocol, finds the coordinator of `group_id` and connects to it,
    /// all within `timeout` (requests after that wait [`REQUEST_TIMEOUT`]),
    /// with TLS and SASL as `security` says.
    pub(crate) fn connect(
        security: &SecurityConfig,
        bootstrap: &str,
        group_id: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self> {
        let mut client = StreamsGroupClient {
            bootstrap: bootstrap_addresses(bootstrap),
            group_id: group_id.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            timeout,
            security: Arc::new(security.clone()),
            coordinator: None,
        };
        client.reconnect()?;
        Ok(client)
    }

    /// Drops the coordinator connection, finds the group's coordinator
    /// again and connects to it (the next request does this by itself
    /// after an I/O error or a NOT_COORDINATOR-like answer).
    pub(crate) fn reconnect(&mut self) -> Result<()> {
        self.coordinator = None;
        let doing = format!("finding the coordinator of group '{}'", self.group_id);
        if self.bootstrap.is_empty() {
            return Err(protocol_error(&doing, None, "no bootstrap servers are given".into()));
        }
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            let (error, retriable) = match self.try_find_coordinator(deadline) {
                Ok(conn) => {
                    self.coordinator = Some(conn);
                    return Ok(());
                }
                Err(e) => {
                    let retriable = e.is_retriable();
                    (e, retriable)
                }
            };
            if !retriable || Instant::now() + backoff >= deadline {
                return Err(error);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// One attempt: each bootstrap server in turn until one answers.
    fn try_find_coordinator(&self, deadline: Instant) -> Result<Connection> {
        let mut failures = Vec::new();
        let mut last = None;
        for address in &self.bootstrap {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut conn = match Connection::open(address, &self.client_id, &self.security, left) {
                Ok(c) => c,
                Err(e) if e.is_retriable() => {
                    failures.push(e.to_string());
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let coordinator = self.find_coordinator(&mut conn)?;
            let target = format!("{}:{}", coordinator.host.as_str(), coordinator.port);
            if target == conn.address {
                return Ok(conn);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            return Connection::open(&target, &self.client_id, &self.security, left);
        }
        match (last, failures.len()) {
            (Some(e), 1) => Err(e),
            _ => Err(protocol_error(
                &format!("connecting to the bootstrap servers {}", self.bootstrap.join(",")),
                None,
                failures.join("; "),
            )),
        }
    }

    fn find_coordinator(&self, conn: &mut Connection) -> Result<Coordinator> {
        let doing = format!("finding the coordinator of group '{}'", self.group_id);
        let version = conn.version_in(FIND_COORDINATOR_KEY, FIND_COORDINATOR_VERSIONS).ok_or_else(|| {
            protocol_error(&doing, Some(codes::UNSUPPORTED_VERSION), "the broker has no FindCoordinator 4 to 6".into())
        })?;
        let mut request = FindCoordinatorRequest::default();
        request.key_type = 0;
        request.coordinator_keys = vec![StrBytes::from_string(self.group_id.clone())];
        let response: FindCoordinatorResponse = conn.call(FIND_COORDINATOR_KEY, version, &request, &doing)?;
        let coordinator = response
            .coordinators
            .into_iter()
            .find(|c| c.key.as_str() == self.group_id)
            .ok_or_else(|| protocol_error(&doing, None, "the answer names no coordinator for the group".into()))?;
        if coordinator.error_code != 0 {
            let detail = coordinator.error_message.as_ref().map(|m| format!(": {}", m.as_str())).unwrap_or_default();
            let message = format!("{}{detail}", error_name(coordinator.error_code));
            return Err(protocol_error(&doing, Some(coordinator.error_code), message));
        }
        Ok(coordinator)
    }

    /// The coordinator connection, found again if it was dropped.
    fn coordinator(&mut self) -> Result<&mut Connection> {
        if self.coordinator.is_none() {
            self.reconnect()?;
        }
        self.coordinator
            .as_mut()
            .ok_or_else(|| protocol_error("finding the group coordinator", None, "no connection".into()))
    }

    /// Sends one StreamsGroupHeartbeat and returns its answer, Kafka's
    /// error codes included. `Err` only when no answer came (I/O, timeout,
    /// a malformed response); then, and on a NOT_COORDINATOR,
    /// COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS answer,
    /// the next call finds the coordinator again (within the `timeout`
    /// given to [`connect`](Self::connect), before its own request).
    /// `req.group_id` is the group given to `connect`: the connection is
    /// to that group's coordinator.
    pub(crate) fn heartbeat(&mut self, req: &HeartbeatRequest) -> Result<HeartbeatResponse> {
        let doing = format!(
            "sending a streams group heartbeat for member {} (epoch {}) of group '{}'",
            req.member_id, req.member_epoch, req.group_id
        );
        let body = req.encode();
        let conn = self.coordinator()?;
        let headers = (2, 1); // flexible request and response headers
        let answer = conn
            .round_trip(STREAMS_GROUP_HEARTBEAT_KEY, STREAMS_GROUP_HEARTBEAT_VERSION, headers, &body, &doing)
            .and_then(|bytes| {
                HeartbeatResponse::decode(&bytes)
                    .map_err(|e| protocol_error(&doing, None, format!("malformed answer: {e}")))
            });
        match &answer {
            Ok(response) if !codes::coordinator_moved(response.error_code) => {}
            _ => self.coordinator = None,
        }
        answer
    }

    /// Commits `offsets` (topic, partition, next offset to read, metadata)
    /// for member `member_id` at `member_epoch` of `group_id` with
    /// OffsetCommit version 9. Any refused partition makes it an
    /// [`Error::Protocol`](crate::error::Error::Protocol) naming the
    /// partition and Kafka's error, with the code (a fencing one first,
    /// see [`codes::member_fenced`]).
    pub(crate) fn commit_offsets(
        &mut self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        offsets: &[(String, i32, i64, Option<String>)],
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let doing = format!("committing offsets for member {member_id} (epoch {member_epoch}) of group '{group_id}'");
        let mut request = OffsetCommitRequest::default();
        request.group_id = GroupId(StrBytes::from_string(group_id.to_string()));
        request.generation_id_or_member_epoch = member_epoch;
        request.member_id = StrBytes::from_string(member_id.to_string());
        for (topic, partition, offset, metadata) in offsets {
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = *partition;
            p.committed_offset = *offset;
            p.committed_metadata = metadata.as_ref().map(|m| StrBytes::from_string(m.clone()));
            match request.topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
                Some(t) => t.partitions.push(p),
                None => {
                    let mut t = OffsetCommitRequestTopic::default();
                    t.name = TopicName(StrBytes::from_string(topic.clone()));
                    t.partitions.push(p);
                    request.topics.push(t);
                }
            }
        }
        let conn = self.coordinator()?;
        if !conn.supports(OFFSET_COMMIT_KEY, OFFSET_COMMIT_VERSION) {
            return Err(protocol_error(
                &doing,
                Some(codes::UNSUPPORTED_VERSION),
                format!("the coordinator {} has no OffsetCommit version 9", conn.address),
            ));
        }
        let response: OffsetCommitResponse = match conn.call(OFFSET_COMMIT_KEY, OFFSET_COMMIT_VERSION, &request, &doing)
        {
            Ok(r) => r,
            Err(e) => {
                self.coordinator = None;
                return Err(e);
            }
        };
        let refused: Vec<(String, i32, i16)> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.error_code != 0)
                    .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
            })
            .collect();
        let Some(&(_, _, first)) = refused.first() else { return Ok(()) };
        let code = refused.iter().map(|r| r.2).find(|c| codes::member_fenced(*c)).unwrap_or(first);
        if refused.iter().any(|r| codes::coordinator_moved(r.2)) {
            self.coordinator = None;
        }
        let listed: Vec<String> =
            refused.iter().take(10).map(|(t, p, c)| format!("{t}-{p}: {}", error_name(*c))).collect();
        let more = if refused.len() > 10 { format!(" and {} more", refused.len() - 10) } else { String::new() };
        Err(protocol_error(&doing, Some(code), format!("Kafka refused {}{more}", listed.join(", "))))
    }
}

impl StreamsGroupClient {
    /// Describes the client's group (StreamsGroupDescribe v0): `None` when
    /// no streams group has its id (GROUP_ID_NOT_FOUND: none exists, or it
    /// is a consumer or classic group). One attempt; after no answer or a
    /// coordinator-moved error the next call finds the coordinator again.
    /// See [`describe_members`](Self::describe_members).
    pub(crate) fn describe_group(&mut self) -> Result<Option<super::describe::DescribedGroup>> {
        use super::describe::{self, STREAMS_GROUP_DESCRIBE_KEY as KEY, STREAMS_GROUP_DESCRIBE_VERSION as VERSION};
        let group_id = self.group_id.clone();
        let doing = format!("describing streams group '{group_id}'");
        let body = describe::encode_request(&[&group_id]);
        let conn = self.coordinator()?;
        if !conn.supports(KEY, VERSION) {
            let message = format!("the coordinator {} has no StreamsGroupDescribe version 0", conn.address);
            return Err(protocol_error(&doing, Some(codes::UNSUPPORTED_VERSION), message));
        }
        let answer = conn
            .round_trip(KEY, VERSION, (2, 1), &body, &doing)
            .and_then(|bytes| {
                describe::decode_response(&bytes)
                    .map_err(|e| protocol_error(&doing, None, format!("malformed answer: {e}")))
            })
            .and_then(|response| describe::group_of(response.groups, &group_id, &doing));
        if answer.as_ref().err().is_some_and(|e| super::error_code(e).is_none_or(codes::coordinator_moved)) {
            self.coordinator = None;
        }
        answer
    }
}

impl StreamsGroupClient {
    /// Sets `key = value` on this client's group (IncrementalAlterConfigs
    /// v1, resource type GROUP, operation SET), leaving the group's other
    /// configs as they are. rdkafka 0.39's admin client has only the
    /// replacing AlterConfigs, and its DescribeConfigs fails on a group's
    /// config source.
    pub(crate) fn set_group_config(&mut self, key: &str, value: &str) -> Result<()> {
        use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
        use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
        const INCREMENTAL_ALTER_CONFIGS_KEY: i16 = 44;
        const RESOURCE_TYPE_GROUP: i8 = 32;
        const OPERATION_SET: i8 = 0;
        let doing = format!("setting the config {key} = {value} of group '{}'", self.group_id);
        let mut config = AlterableConfig::default();
        config.name = StrBytes::from_string(key.to_string());
        config.config_operation = OPERATION_SET;
        config.value = Some(StrBytes::from_string(value.to_string()));
        let mut resource = AlterConfigsResource::default();
        resource.resource_type = RESOURCE_TYPE_GROUP;
        resource.resource_name = StrBytes::from_string(self.group_id.clone());
        resource.configs.push(config);
        let mut request = IncrementalAlterConfigsRequest::default();
        request.resources.push(resource);
        let conn = self.coordinator()?;
        let response: IncrementalAlterConfigsResponse =
            conn.call(INCREMENTAL_ALTER_CONFIGS_KEY, 1, &request, &doing)?;
        for r in &response.responses {
            if r.error_code != 0 {
                let message = r.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
                return Err(protocol_error(
                    &doing,
                    Some(r.error_code),
                    format!(
                        "{} {message} (the broker caps it; check ALTER_CONFIGS on the group)",
                        error_name(r.error_code)
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_lists_are_split_like_librdkafka() {
        assert_eq!(
            bootstrap_addresses(" a:1, PLAINTEXT://b:2,c,,[::1]:3,[::1]"),
            ["a:1", "b:2", "c:9092", "[::1]:3", "[::1]:9092"]
        );
    }
}
