//! The client against a fake broker on a local port: the answers a real
//! broker gives rarely (no streams protocol, NOT_COORDINATOR, a response
//! out of step), and what the client does next.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::codec::{Reader, Writer};
use super::tests::{decode_request, encode_response};
use super::*;

/// How the fake broker answers a heartbeat.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// A response with this error code.
    Code(i16),
    /// A response to another correlation id.
    OutOfStep,
}

/// (connection number, api key) of each request the fake broker read.
type Log = Arc<Mutex<Vec<(usize, i16)>>>;

/// A broker on 127.0.0.1 that is its own group coordinator; it lists
/// StreamsGroupHeartbeat only if `streams`, and answers heartbeats with
/// `answers` in turn (then with no error).
fn fake_broker(streams: bool, answers: Vec<Answer>) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for (conn, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            while let Some((api_key, correlation, body)) = read_request(&mut stream) {
                seen.lock().unwrap().push((conn, api_key));
                let mut w = Writer::default();
                match api_key {
                    18 => {
                        w.i32(correlation); // ApiVersions' response header is version 0
                        w.i16(0);
                        let keys: &[(i16, i16, i16)] =
                            if streams { &[(18, 0, 4), (10, 0, 6), (8, 2, 10), (88, 0, 0)] } else { &[(18, 0, 4)] };
                        w.array(keys, |w, (key, min, max)| {
                            w.i16(*key);
                            w.i16(*min);
                            w.i16(*max);
                            w.no_tagged_fields();
                        });
                        w.i32(0);
                        w.no_tagged_fields();
                    }
                    10 => {
                        w.i32(correlation);
                        w.no_tagged_fields();
                        w.i32(0);
                        let r = &mut Reader::new(&body);
                        assert_eq!(r.i8("key type").unwrap(), 0, "a group's coordinator");
                        let group = r.array("keys", |r| r.string("key")).unwrap();
                        w.array(&group, |w, key| {
                            w.string(key);
                            w.i32(1);
                            w.string("127.0.0.1");
                            w.i32(i32::from(port));
                            w.i16(0);
                            w.nullable_string(None);
                            w.no_tagged_fields();
                        });
                        w.no_tagged_fields();
                    }
                    88 => {
                        let request = decode_request(&body).unwrap();
                        let answer = answers.next().unwrap_or(Answer::Code(0));
                        let step = if matches!(answer, Answer::OutOfStep) { 1 } else { 0 };
                        w.i32(correlation + step);
                        w.no_tagged_fields();
                        let code = if let Answer::Code(c) = answer { c } else { 0 };
                        let response = HeartbeatResponse {
                            error_code: code,
                            member_id: request.member_id,
                            member_epoch: request.member_epoch + 1,
                            ..Default::default()
                        };
                        w.buf.extend_from_slice(&encode_response(&response));
                    }
                    other => panic!("the fake broker got api key {other}"),
                }
                let mut frame = (w.buf.len() as i32).to_be_bytes().to_vec();
                frame.extend_from_slice(&w.buf);
                if stream.write_all(&frame).is_err() {
                    break;
                }
            }
        }
    });
    (format!("127.0.0.1:{port}"), log)
}

/// (api key, correlation id, body) of the next request; `None` at the end.
fn read_request(stream: &mut TcpStream) -> Option<(i16, i32, Vec<u8>)> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut frame).ok()?;
    let r = &mut Reader::new(&frame);
    let api_key = r.i16("api key").unwrap();
    r.i16("api version").unwrap();
    let correlation = r.i32("correlation id").unwrap();
    // Every request the client sends has header version 2: a
    // non-compact nullable client id, then tagged fields.
    let client_id_len = r.i16("client id").unwrap();
    for _ in 0..client_id_len {
        r.i8("client id").unwrap();
    }
    r.tagged_fields("header").unwrap();
    let body = frame[frame.len() - r.remaining()..].to_vec();
    Some((api_key, correlation, body))
}

fn heartbeat(member_epoch: i32) -> HeartbeatRequest {
    HeartbeatRequest { group_id: "g".into(), member_id: "m".into(), member_epoch, ..Default::default() }
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn a_broker_without_the_streams_protocol_is_refused_with_what_to_do() {
    let (address, log) = fake_broker(false, vec![]);
    let err = StreamsGroupClient::connect(&SecurityConfig::default(), &address, "g", "c", TIMEOUT).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with(&format!("connecting to Kafka broker {address}:")), "{text}");
    assert!(text.contains("KIP-1071") && text.contains("use group_protocol = \"consumer\""), "{text}");
    assert_eq!(error_code(&err), Some(codes::UNSUPPORTED_VERSION));
    assert!(!err.is_retriable());
    assert_eq!(*log.lock().unwrap(), [(0, 18)], "no retry: nothing will change");
}

#[test]
fn not_coordinator_is_returned_and_the_next_heartbeat_finds_the_coordinator_again() {
    let answers = vec![Answer::Code(codes::NOT_COORDINATOR), Answer::Code(codes::FENCED_MEMBER_EPOCH)];
    let (address, log) = fake_broker(true, answers);
    let mut client =
        StreamsGroupClient::connect(&SecurityConfig::default(), &format!("PLAINTEXT://{address}"), "g", "c", TIMEOUT)
            .unwrap();
    assert_eq!(client.heartbeat(&heartbeat(0)).unwrap().error_code, codes::NOT_COORDINATOR);
    let fenced = client.heartbeat(&heartbeat(3)).unwrap();
    assert_eq!((fenced.error_code, fenced.member_epoch), (codes::FENCED_MEMBER_EPOCH, 4));
    assert_eq!(client.heartbeat(&heartbeat(4)).unwrap().error_code, 0, "a fenced member keeps its connection");
    assert_eq!(
        *log.lock().unwrap(),
        [(0, 18), (0, 10), (0, 88), (1, 18), (1, 10), (1, 88), (1, 88)],
        "ApiVersions and FindCoordinator again on a new connection after NOT_COORDINATOR"
    );
}

#[test]
fn a_response_out_of_step_is_an_error_and_the_connection_is_opened_again() {
    let (address, log) = fake_broker(true, vec![Answer::OutOfStep]);
    let mut client = StreamsGroupClient::connect(&SecurityConfig::default(), &address, "g", "c", TIMEOUT).unwrap();
    let err = client.heartbeat(&heartbeat(1)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("answers request 4 instead of 3") && text.contains(&address), "{text}");
    assert!(err.is_retriable() && error_code(&err).is_none(), "{err}");
    assert_eq!(client.heartbeat(&heartbeat(1)).unwrap().member_epoch, 2);
    client.reconnect().unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.iter().filter(|(_, key)| *key == 10).count(), 3, "{log:?}");
}

/// A broker that has no StreamsGroupDescribe (the fake lists only
/// StreamsGroupHeartbeat), or no streams protocol at all, has no streams
/// group to check: what `reset` skips under the other group protocols.
#[test]
fn a_broker_without_streams_group_describe_is_unsupported_version() {
    let (address, log) = fake_broker(true, vec![]);
    let mut client = StreamsGroupClient::connect(&SecurityConfig::default(), &address, "g", "c", TIMEOUT).unwrap();
    let err = client.describe_members().unwrap_err();
    assert!(err.to_string().contains("has no StreamsGroupDescribe version 0"), "{err}");
    assert!(describe::no_streams_groups(&err) && !err.is_retriable(), "{err}");
    assert_eq!(*log.lock().unwrap(), [(0, 18), (0, 10)], "nothing sent, no retry");
    let (address, _) = fake_broker(false, vec![]);
    let err = StreamsGroupClient::connect(&SecurityConfig::default(), &address, "g", "c", TIMEOUT).unwrap_err();
    assert!(describe::no_streams_groups(&err), "{err}");
}
