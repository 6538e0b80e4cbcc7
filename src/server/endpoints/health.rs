//! The metrics/health listener's routes: `/metrics` (Prometheus text), `/healthz`
//! (liveness: the process answers) and `/readyz` (readiness: not draining and the directory
//! answers a cheap lookup). The Exchange-style `/autodiscover/healthcheck.htm` lives on the
//! Autodiscover listeners (`server::net::listener`).

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};

use super::respond::{self, Body};
use super::State;
use crate::directory::{Directory, Lookup};
use crate::ops::metrics;

/// Prometheus text exposition content type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
/// Longest a readiness probe waits for the directory.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// An address no directory holds: the lookup costs one query and finds nothing.
const PROBE_ADDRESS: &str = "readyz-probe@autodiscoverd.invalid";

/// Answers one request on the metrics listener; `draining` once shutdown has begun, `state`
/// of the current configuration generation.
pub async fn handle<B>(req: &Request<B>, draining: bool, state: &State) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return respond::method_not_allowed("GET, HEAD");
    }
    match req.uri().path() {
        "/metrics" => respond::text(StatusCode::OK, PROMETHEUS_TEXT, metrics::render()),
        "/healthz" => respond::text(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" => ready(draining, state).await,
        _ => respond::not_found(),
    }
}

async fn ready(draining: bool, state: &State) -> Response<Body> {
    if draining {
        return respond::text(StatusCode::SERVICE_UNAVAILABLE, TEXT, "draining\n");
    }
    let probe = Lookup::Address(PROBE_ADDRESS.to_string());
    match tokio::time::timeout(READY_TIMEOUT, state.directory.find(&probe)).await {
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
