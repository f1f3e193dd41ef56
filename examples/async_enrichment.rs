//! `async_enrichment`: enriches each record with an HTTP call, up to
//! `concurrency` calls in flight per task (`KStream::try_map_async`, the
//! async I/O operator; Flink's `AsyncDataStream.orderedWait`).
//!
//! Each input record's value is a user id (a UTF-8 string). The example
//! starts a small "user directory" HTTP server on 127.0.0.1 (any free
//! port) that answers `GET /users/{id}` with `name-of-{id}` after
//! `latency_ms` (20 ms by default), as a remote service would, and `404`
//! for ids starting with `missing`. For each record the example calls it
//! and writes `{id} -> {name}` with the input's key, timestamp and headers
//! to the output topic, in input order per partition. A call that fails
//! (a `404`, a timeout) is tried twice more, 10 ms apart, then goes to the
//! dead-letter topic `<application_id>-dlq` (`errors.processing =
//! "dead_letter"`).
//!
//! With one call in flight the throughput is at most one record per
//! latency (50 records/s at 20 ms); with 64 in flight, up to 64 times
//! that (`docs/benchmarks.md` has the measured figures).
//!
//! # Running it
//!
//! Start a broker (`integration-tests/kafka/broker.sh start`), create the
//! input and output topics, then:
//!
//! ```sh
//! RIVULET__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run --example async_enrichment
//! ```
//!
//! # Settings
//!
//! ```toml
//! application_id = "async-enrichment"
//! processing_guarantee = "exactly_once"
//!
//! [errors]
//! processing = "dead_letter"
//!
//! [app]
//! input_topic = "user-ids"       # RIVULET__APP__INPUT_TOPIC
//! output_topic = "user-names"    # RIVULET__APP__OUTPUT_TOPIC
//! concurrency = 64               # calls in flight per task
//! latency_ms = 20                # the server's latency per call
//! ```

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use rivulet::prelude::*;
use rivulet::topology::{AsyncOptions, AsyncRetry, TopologyError};
use serde::Deserialize;
use tokio::net::TcpStream;

/// The example's `[app]` settings.
#[derive(Debug, Deserialize)]
struct Settings {
    input_topic: String,
    output_topic: String,
    concurrency: usize,
    latency_ms: u64,
}

/// Starts the user directory on its own thread and runtime: `GET
/// /users/{id}` answers `name-of-{id}` after `latency`, or `404` for ids
/// starting with `missing`. It runs until the process exits.
pub(crate) fn start_user_directory(latency: Duration) -> std::io::Result<SocketAddr> {
    use axum::extract::Path;
    use axum::http::StatusCode;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("user-directory".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
            Ok(r) => r,
            Err(e) => return drop(tx.send(Err(e))),
        };
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => return drop(tx.send(Err(e))),
            };
            let _ = tx.send(listener.local_addr());
            let lookup = move |Path(id): Path<String>| async move {
                tokio::time::sleep(latency).await;
                match id.starts_with("missing") {
                    true => Err((StatusCode::NOT_FOUND, format!("no user {id}"))),
                    false => Ok(format!("name-of-{id}")),
                }
            };
            let router = axum::Router::new().route("/users/{id}", axum::routing::get(lookup));
            let _ = axum::serve(listener, router).await;
        });
    })?;
    rx.recv().map_err(|e| std::io::Error::other(e.to_string()))?
}

/// A minimal HTTP/1.1 GET (one connection per call, `Connection: close`):
/// the body of a `200`, or an error. Enough for the example, without an
/// HTTP client crate.
pub(crate) async fn http_get(addr: SocketAddr, path: String) -> Result<String, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connecting to {addr}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut out = request.as_bytes();
    while !out.is_empty() {
        stream.writable().await.map_err(|e| e.to_string())?;
        match stream.try_write(out) {
            Ok(n) => out = &out[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("writing to {addr}: {e}")),
        }
    }
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        stream.readable().await.map_err(|e| e.to_string())?;
        match stream.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("reading from {addr}: {e}")),
        }
    }
    let text = String::from_utf8(response).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    match head.split(' ').nth(1) {
        Some("200") => Ok(body.to_string()),
        status => Err(format!("GET {path}: status {}: {body}", status.unwrap_or("?"))),
    }
}

/// The topology: each user id in `input` becomes `{id} -> {name}` in
/// `output`, the name from the directory at `directory`, with up to
/// `concurrency` calls in flight per task.
pub(crate) fn topology(input: &str, output: &str, directory: SocketAddr, concurrency: usize) -> Result<Topology> {
    let options = AsyncOptions::ordered(concurrency, Duration::from_secs(5))
        .retry(AsyncRetry::fixed(2, Duration::from_millis(10)));
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::string())
        .try_map_async_with(options, move |id: String| async move {
            let name = http_get(directory, format!("/users/{id}")).await?;
            Ok::<_, String>(format!("{id} -> {name}"))
        })
        .to(output, Serdes::string(), Serdes::string());
    Ok(b.build()?)
}

fn main() -> ExitCode {
    let defaults = Config::loader()
        .default_value("application_id", "async-enrichment")
        .default_value("processing_guarantee", "exactly_once")
        .default_value("errors.processing", "dead_letter")
        .default_value("app.input_topic", "user-ids")
        .default_value("app.output_topic", "user-names")
        .default_value("app.concurrency", "64")
        .default_value("app.latency_ms", "20");
    rivulet::Main::new(defaults).main(|config| {
        let settings: Settings = config.app()?;
        let directory = start_user_directory(Duration::from_millis(settings.latency_ms))
            .map_err(|e| TopologyError::Invalid(format!("cannot start the user directory: {e}")))?;
        topology(&settings.input_topic, &settings.output_topic, directory, settings.concurrency)
    })
}
