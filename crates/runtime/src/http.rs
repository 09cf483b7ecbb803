//! The HTTP server of a running pipeline (`[http] bind`): Prometheus metrics at `/metrics`,
//! the JSON API the dashboard reads, and the dashboard at `/`. It runs on a thread of its
//! own with its own small runtime, and only reads the metrics registry, so that neither a
//! slow client nor a scrape ever holds a stage back. Every endpoint is a read-only GET.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use tokio::sync::watch;
use weir_core::Error;

use crate::metrics::PipelineMetrics;

/// The dashboard: one page, its script and styles inline, with no request beyond this
/// server's own API, so that it works without network access.
const DASHBOARD: &str = include_str!("dashboard.html");

const OPEN_METRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long open requests get to finish once the run has ended.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A running server; [`HttpServer::stop`] ends it.
pub(crate) struct HttpServer {
    address: SocketAddr,
    shutdown: Option<watch::Sender<bool>>,
}

impl HttpServer {
    /// Listens on `bind` at once (so that a port in use fails the start, naming the key),
    /// then serves `metrics` from a thread of its own.
    pub(crate) fn start(bind: SocketAddr, metrics: Arc<PipelineMetrics>) -> Result<Self, Error> {
        let cannot =
            |e: std::io::Error| Error::Config(format!("http.bind: cannot listen on {bind}: {e}"));
        let listener = std::net::TcpListener::bind(bind).map_err(cannot)?;
        listener.set_nonblocking(true).map_err(cannot)?;
        let address = listener.local_addr().map_err(cannot)?;
        if !address.ip().is_loopback() {
            tracing::warn!(%address, "the HTTP server listens beyond loopback: anyone who can reach it can read the pipeline's metrics and progress");
        }
        let (shutdown, stopped) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the HTTP server's runtime: {e}")))?;
        // Detached: a client holding a connection open must not hold the caller; the thread
        // ends SHUTDOWN_GRACE after `stop` at the latest.
        std::thread::Builder::new()
            .name("weir-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => return tracing::error!(%e, "the HTTP server cannot listen"),
                    };
                    let mut graceful = stopped.clone();
                    let serve =
                        axum::serve(listener, router(metrics)).with_graceful_shutdown(async move {
                            let _ = graceful.wait_for(|stop| *stop).await;
                        });
                    // A dashboard keeps its connection open: answers in flight get a moment
                    // to finish, then the server ends regardless.
                    let mut hard = stopped;
                    let deadline = async move {
                        let _ = hard.wait_for(|stop| *stop).await;
                        tokio::time::sleep(SHUTDOWN_GRACE).await;
                    };
                    tokio::select! {
                        served = serve => if let Err(e) = served {
                            tracing::error!(%e, "the HTTP server stopped");
                        },
                        () = deadline => {}
                    }
                });
            })
            .map_err(|e| Error::Internal(format!("cannot start the HTTP server's thread: {e}")))?;
        tracing::info!(%address, "serving metrics and the dashboard");
        Ok(HttpServer {
            address,
            shutdown: Some(shutdown),
        })
    }

    /// Where the server listens (with the port the system chose for port 0).
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting connections and ends the server's thread once open requests are
    /// answered; does not wait for it.
    pub(crate) fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(true);
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn router(metrics: Arc<PipelineMetrics>) -> Router {
    let m = metrics;
    Router::new()
        .route("/", get(|| async { html(DASHBOARD) }))
        .route("/metrics", {
            let m = m.clone();
            get(|headers: HeaderMap| async move {
                // Prometheus asks for OpenMetrics; promtool, curl and older scrapers get the
                // classic text format.
                let open_metrics = headers
                    .get_all(header::ACCEPT)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| v.contains("application/openmetrics-text"));
                let (content_type, body) = match open_metrics {
                    true => (OPEN_METRICS, m.prometheus()),
                    false => (CLASSIC, m.prometheus_classic()),
                };
                ([(header::CONTENT_TYPE, content_type)], body).into_response()
            })
        })
        .route("/api/graph", {
            let m = m.clone();
            get(|| async move { json(m.graph_json()) })
        })
        .route("/api/samples", {
            let m = m.clone();
            get(|| async move { json(m.samples_json()) })
        })
        .route("/api/progress", {
            let m = m.clone();
            get(|| async move { json(m.progress_json()) })
        })
        .route("/api/checkpoints", {
            let m = m.clone();
            get(|| async move {
                // RocksDB reads block: off the server's one thread of async work.
                match tokio::task::spawn_blocking(move || m.checkpoints_json()).await {
                    Ok(value) => json(value),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                }
            })
        })
}

fn html(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn json(value: Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            // Figures change every second: never from a cache.
            (header::CACHE_CONTROL, "no-store"),
        ],
        value.to_string(),
    )
        .into_response()
}
