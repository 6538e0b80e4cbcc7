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
    let failure = match tokio::time::timeout(READY_TIMEOUT, state.directory.find(&probe)).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", READY_TIMEOUT.as_secs())),
    };
    let serve_stale = match &state.config.directory {
        crate::config::DirectoryConfig::Ldap(l) => l.serve_stale,
        crate::config::DirectoryConfig::File { .. } => Duration::ZERO,
    };
    let (status, text) = readiness(failure.as_deref(), serve_stale);
    respond::text(status, TEXT, text)
}

/// Readiness when the directory answered (`failure` is `None`) or not. While it cannot be
/// asked, an instance that serves what it knows (`directory.ldap.serve_stale_secs`) stays
/// ready, degraded: a load balancer that took every instance of a pool out during a DC
/// outage would throw those answers away and leave clients with nothing.
fn readiness(failure: Option<&str>, serve_stale: Duration) -> (StatusCode, String) {
    match failure {
        None => (StatusCode::OK, "ready\n".into()),
        Some(e) if !serve_stale.is_zero() => (
            StatusCode::OK,
            format!(
                "degraded: directory: {e}; answering known mailboxes and logins from entries up to {} s old\n",
                serve_stale.as_secs()
            ),
        ),
        Some(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("directory: {e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_serving_stale_answers_stays_ready_degraded() {
        assert_eq!(
            readiness(None, Duration::from_secs(3600)),
            (StatusCode::OK, "ready\n".to_string())
        );
        let (status, text) = readiness(Some("directory timed out"), Duration::from_secs(3600));
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.starts_with("degraded: directory: directory timed out;"),
            "{text}"
        );
        assert!(text.contains("3600 s"), "{text}");
        let (status, text) = readiness(Some("directory timed out"), Duration::ZERO);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(text, "directory: directory timed out\n");
    }
}
