//! The port-80 HTTP-redirect responder ([MS-OXDISCO] §3.1.5.4): unauthenticated GET/POST of the
//! Autodiscover paths get `302` to https; Thunderbird's autoconfig (anonymous, fetched over
//! plain HTTP from `autoconfig.<domain>` by older versions) is answered here directly;
//! everything else is 404. It never asks for, and never reads, credentials.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response};

use super::respond::{self, Body};
use super::State;
use crate::config::RedirectConfig;

/// One request on the port-80 listener: autoconfig, or the redirect; logged and counted.
pub async fn serve<B>(
    req: Request<B>,
    redirect: Option<Arc<RedirectConfig>>,
    state: &State,
    peer: SocketAddr,
) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let endpoint = super::handlers::endpoint_label(&path);
    let (response, outcome) = if crate::protocol::autoconfig::is_autoconfig_path(&path) {
        let (r, (outcome, _)) = super::clients::autoconfig_endpoint(req, state, peer.ip()).await;
        (r, outcome)
    } else {
        let r = match &redirect {
            Some(redirect) => handle(&req, redirect),
            None => respond::not_found(),
        };
        (r, "redirect")
    };
    crate::ops::metrics::request(endpoint, outcome, started.elapsed());
    tracing::info!(target: "access", client = %peer, method = %method, path = %path, endpoint, outcome, status = response.status().as_u16(), "redirect listener");
    response
}

/// The Autodiscover path kind a redirect preserves (SOAP clients follow `.svc`).
fn autodiscover_file(path: &str) -> Option<&'static str> {
    match path.to_ascii_lowercase().as_str() {
        "/autodiscover/autodiscover.xml" => Some("/autodiscover/autodiscover.xml"),
        "/autodiscover/autodiscover.svc" => Some("/autodiscover/autodiscover.svc"),
        _ => None,
    }
}

/// The request host without port, lower-case.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    let raw = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())?;
    let host = match raw.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => raw,
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// Answers one request on the redirect listener.
pub fn handle<B>(req: &Request<B>, config: &Arc<RedirectConfig>) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::POST | Method::HEAD) {
        return respond::not_found();
    }
    let Some(file) = autodiscover_file(req.uri().path()) else {
        return respond::not_found();
    };
    let target = request_host(req)
        .and_then(|h| config.hosts.get(&h))
        .unwrap_or(&config.target);
    respond::found(&format!("{target}{file}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config() -> Arc<RedirectConfig> {
        let mut hosts = BTreeMap::new();
        hosts.insert(
            "autodiscover.fabrikam.com".to_string(),
            "https://autodiscover-s.fabrikam.com".to_string(),
        );
        Arc::new(RedirectConfig {
            listen: vec![],
            target: "https://autodiscover.contoso.com".into(),
            hosts,
        })
    }

    fn req(method: &str, path: &str, host: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .header("Host", host)
            .body(())
            .unwrap()
    }

    #[test]
    fn xml_and_svc_paths_are_redirected_case_insensitively() {
        let r = handle(
            &req(
                "GET",
                "/AutoDiscover/AutoDiscover.xml",
                "autodiscover.contoso.com",
            ),
            &config(),
        );
        assert_eq!(r.status(), 302);
        assert_eq!(
            r.headers()["location"],
            "https://autodiscover.contoso.com/autodiscover/autodiscover.xml"
        );
        let r = handle(
            &req(
                "POST",
                "/autodiscover/autodiscover.svc",
                "autodiscover.contoso.com:80",
            ),
            &config(),
        );
        assert_eq!(
            r.headers()["location"],
            "https://autodiscover.contoso.com/autodiscover/autodiscover.svc"
        );
    }

    #[test]
    fn per_host_targets_apply() {
        let r = handle(
            &req(
                "GET",
                "/autodiscover/autodiscover.xml",
                "AUTODISCOVER.fabrikam.com",
            ),
            &config(),
        );
        assert_eq!(
            r.headers()["location"],
            "https://autodiscover-s.fabrikam.com/autodiscover/autodiscover.xml"
        );
    }

    #[test]
    fn everything_else_is_404() {
        assert_eq!(handle(&req("GET", "/", "x"), &config()).status(), 404);
        assert_eq!(handle(&req("GET", "/owa/", "x"), &config()).status(), 404);
        assert_eq!(
            handle(
                &req("PUT", "/autodiscover/autodiscover.xml", "x"),
                &config()
            )
            .status(),
            404
        );
    }
}
