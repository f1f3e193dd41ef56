//! The HTTP server: `/metrics`, `/health/live`, `/health/ready`, `/topology`.
//!
//! It runs on a thread of its own with a one-thread tokio runtime, apart
//! from the processing threads (which never block on it). The address is
//! bound before anything else starts, so a port already in use stops the
//! start with an error naming `http.listen`. Stopping the server (at
//! shutdown, after the processing threads) lets requests in flight finish.
//!
//! - `/health/live`: 200 while the process runs.
//! - `/health/ready`: 200 when every processing thread has its partitions
//!   and every assigned task is restored and processing; otherwise 503
//!   with the reason as text (restoring, waiting for an assignment, a
//!   thread stopped, shutting down).
//! - `/metrics`: every metric of [`Metrics`] in the Prometheus text format.
//! - `/topology`: `Topology::describe()`.
//! - `/stores/{store}/keys/{key}` and `/stores/{store}/owner/{key}`:
//!   interactive queries, and `/instances`, answered by `crate::query::answer`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::query::answer::Answer;
use crate::query::Queries;
use crate::runtime::stats::RuntimeStats;

/// How long stopping waits for requests in flight.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoints read.
pub(crate) struct HttpState {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) stats: Arc<RuntimeStats>,
    pub(crate) topology: String,
    /// Set once the topics are checked (store queries answer 503 before).
    pub(crate) queries: Arc<std::sync::OnceLock<Arc<Queries>>>,
}

/// The running server. Dropping it stops it.
pub(crate) struct HttpServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl HttpServer {
    /// Binds `listen` and serves on a thread of its own.
    pub(crate) fn start(listen: SocketAddr, state: HttpState) -> Result<HttpServer> {
        let fail = |reason: String| Error::Http { listen, reason };
        let listener = std::net::TcpListener::bind(listen).map_err(|e| fail(e.to_string()))?;
        listener.set_nonblocking(true).map_err(|e| fail(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| fail(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("starting its runtime: {e}")))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(Arc::new(state));
        let thread = std::thread::Builder::new()
            .name("rivulet-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await
                })
            })
            .map_err(|e| fail(format!("spawning its thread: {e}")))?;
        tracing::info!(address = %addr, "HTTP server listening: /metrics, /health/live, /health/ready, /topology");
        Ok(HttpServer { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The bound address (with the actual port when `http.listen` asked for port 0).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving; waits up to a few seconds for requests in flight.
    /// Returns the error the server stopped with, if any.
    pub(crate) fn stop(mut self) -> Result<()> {
        self.stop_now()
    }

    fn stop_now(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else { return Ok(()) };
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        while !thread.is_finished() {
            if std::time::Instant::now() > deadline {
                tracing::warn!(address = %self.addr, "the HTTP server did not stop within 5 s; leaving it behind");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match thread.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Http { listen: self.addr, reason: format!("the server failed: {e}") }),
            Err(_) => Err(Error::Internal("the HTTP server thread panicked".into())),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop_now() {
            tracing::error!(error = %e, "HTTP server");
        }
    }
}

fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready))
        .route("/topology", get(|State(s): State<Arc<HttpState>>| async move { s.topology.clone() }))
        .route("/stores/{store}/keys/{key}", get(store_key))
        .route("/stores/{store}/owner/{key}", get(store_owner))
        .route("/instances", get(|State(s): State<Arc<HttpState>>| async move { query(&s, Queries::http_instances) }))
        .with_state(state)
}

/// Sets `rivulet_ready` and says why the instance is not ready.
fn readiness(state: &HttpState) -> std::result::Result<(), String> {
    let ready = state.stats.readiness();
    state.metrics.ready.set(i64::from(ready.is_ok()));
    ready
}

async fn ready(State(state): State<Arc<HttpState>>) -> Response {
    match readiness(&state) {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response(),
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let _ = readiness(&state);
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering /metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
    }
}

type StoreKey = Path<(String, String)>;

async fn store_key(State(state): State<Arc<HttpState>>, Path((store, key)): StoreKey, uri: Uri) -> Response {
    query(&state, |q| q.http_get(&store, &key, uri.query()))
}

async fn store_owner(State(state): State<Arc<HttpState>>, Path((store, key)): StoreKey) -> Response {
    query(&state, |q| q.http_owner(&store, &key))
}

/// Runs a store query (short reads of local stores: fine on the server's thread).
fn query(state: &HttpState, ask: impl FnOnce(&Queries) -> Answer) -> Response {
    let answer = match state.queries.get() {
        Some(queries) => ask(queries),
        None => Answer {
            status: 503,
            headers: vec![("retry-after", "1".into())],
            body: serde_json::json!({ "error": "the application is starting" }),
        },
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response =
        (status, [(header::CONTENT_TYPE, "application/json")], format!("{}\n", answer.body)).into_response();
    for (name, value) in answer.headers {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
