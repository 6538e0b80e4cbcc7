//! The metrics/health listener's routes: `/metrics` (Prometheus text), `/healthz`
//! (liveness: the process answers) and `/readyz` (readiness: not draining and the directory
//! answers a cheap lookup). The Exchange-style `/autodiscover/healthcheck.htm` lives on the
//! Autodiscover listeners (`server::listener`).

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};

use crate::directory::{Directory, Lookup};
use crate::ops::metrics;
use crate::server::reload::Live;
use crate::server::respond::{self, Body};

/// Prometheus text exposition content type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
/// Longest a readiness probe waits for the directory.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// An address no directory holds: the lookup costs one query and finds nothing.
const PROBE_ADDRESS: &str = "readyz-probe@autodiscoverd.invalid";

/// Answers one request on the metrics listener.
pub async fn handle<B>(req: &Request<B>, live: &Live) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return respond::method_not_allowed("GET, HEAD");
    }
    match req.uri().path() {
        "/metrics" => respond::text(StatusCode::OK, PROMETHEUS_TEXT, metrics::render()),
        "/healthz" => respond::text(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" => ready(live).await,
        _ => respond::not_found(),
    }
}

async fn ready(live: &Live) -> Response<Body> {
    if live.is_draining() {
        return respond::text(StatusCode::SERVICE_UNAVAILABLE, TEXT, "draining\n");
    }
    let generation = live.current();
    let probe = Lookup::Address(PROBE_ADDRESS.to_string());
    match tokio::time::timeout(READY_TIMEOUT, generation.state.directory.find(&probe)).await {
        Ok(Ok(_)) => respond::text(StatusCode::OK, TEXT, "ready\n"),
        Ok(Err(e)) => respond::text(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            format!("directory: {e}\n"),
        ),
        Err(_) => respond::text(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            format!(
                "directory: no answer within {} s\n",
                READY_TIMEOUT.as_secs()
            ),
        ),
    }
}
