//! Accept loops for every listener kind: HTTPS, plain HTTP behind a TLS-terminating proxy,
//! either of them after a PROXY protocol header, the port-80 redirect responder and the
//! metrics/health listener. Each connection takes the current [`Generation`] once and keeps
//! it; each request gets a [`ClientContext`](crate::server::endpoints::ClientContext) (client address, whether the client's hop was
//! encrypted) in its extensions before the Autodiscover handler sees it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::drain::{draining, Drain, DrainWatch};
use super::park::{self, Stream};
use super::proxy::{self, Link, ProxyHeader};
use super::reload::Live;
use crate::ops::metrics;
use crate::server::endpoints::respond::{self, Body};
use crate::server::endpoints::{handlers, health, redirect80, ConnInfo, State};
use crate::server::http1_builder;

/// What a listening socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Autodiscover over TLS.
    Https,
    /// Autodiscover over plain HTTP, behind a TLS-terminating proxy.
    Plain,
    /// A PROXY header, then TLS (L4 load balancer passing TLS through).
    HttpsProxy,
    /// A PROXY header, then plain HTTP.
    PlainProxy,
    /// The port-80 redirect responder.
    Redirect,
    /// `/metrics`, `/healthz`, `/readyz`.
    Metrics,
}

impl Kind {
    /// Metrics label and `STATUS=` key.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Https => "https",
            Kind::Plain => "plain",
            Kind::HttpsProxy => "https_proxy",
            Kind::PlainProxy => "plain_proxy",
            Kind::Redirect => "redirect",
            Kind::Metrics => "metrics",
        }
    }

    fn tls(self) -> bool {
        matches!(self, Kind::Https | Kind::HttpsProxy)
    }

    fn proxy_protocol(self) -> bool {
        matches!(self, Kind::HttpsProxy | Kind::PlainProxy)
    }
}

/// Accepts connections on `listener` until the task is aborted. Connections are tracked
/// by `drain` when given (metrics scrapes are not: they must not hold up a drain).
pub async fn accept_loop(
    kind: Kind,
    listener: TcpListener,
    live: Arc<Live>,
    drain: Option<Arc<Drain>>,
    limit: Arc<Semaphore>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, listener = kind.label(), "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Take the permit after accepting, not before: a loop waiting in accept() must
        // not hold one, or several listeners together would serve fewer than
        // `max_connections`. At the cap this loop waits here and further clients queue in
        // the kernel backlog.
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let live = Arc::clone(&live);
        let watcher = drain.as_ref().map(|d| d.watch());
        tokio::spawn(async move {
            let _permit = permit;
            let _active = metrics::connection_opened(kind.label());
            // Opening (PROXY header, TLS handshake) runs in its own allocation, freed before
            // the connection's long keep-alive life; the serving future is awaited where it
            // lands (pinned, not moved), so the task holds its state once.
            let serving = std::pin::pin!(Box::pin(open(kind, stream, peer, live, watcher)).await);
            if let Some(serving) = serving.as_pin_mut() {
                serving.await;
            }
        });
    }
}

/// Opens a connection: reads a PROXY header and does the TLS handshake where the listener
/// wants them. Connections of the short-lived kinds (port-80 redirects, metrics) are served
/// here; for an Autodiscover connection the future that serves it is returned.
async fn open(
    kind: Kind,
    mut stream: TcpStream,
    peer: SocketAddr,
    live: Arc<Live>,
    watcher: Option<DrainWatch>,
) -> Option<impl Future<Output = ()> + Send> {
    let generation = live.current();
    let state = Arc::clone(&generation.state);
    let mut link = Link {
        peer: peer.ip(),
        proxied_source: None,
        proxied_ssl: false,
        tls: kind.tls(),
    };
    if kind.proxy_protocol() {
        match accept_proxy_header(&mut stream, peer, &state).await {
            Some(header) => {
                if let ProxyHeader::Proxied { source, ssl, .. } = header {
                    link.proxied_source = Some(source.ip());
                    link.proxied_ssl = ssl;
                }
            }
            None => return None,
        }
    }
    match kind {
        Kind::Metrics => {
            let live = Arc::clone(&live);
            let service = service_fn(move |req: Request<Incoming>| {
                let live = Arc::clone(&live);
                async move {
                    let generation = live.current();
                    let response = health::handle(&req, live.is_draining(), &generation.state);
                    Ok::<_, Infallible>(response.await)
                }
            });
            serve(TokioIo::new(stream), service, &state, peer, None).await;
            None
        }
        Kind::Redirect => {
            let redirect = state.config.redirect.clone().map(Arc::new);
            let shared = Arc::clone(&state);
            let service = service_fn(move |req: Request<Incoming>| {
                let (redirect, state) = (redirect.clone(), Arc::clone(&shared));
                async move { Ok::<_, Infallible>(redirect80::serve(req, redirect, &state, peer).await) }
            });
            serve(TokioIo::new(stream), service, &state, peer, watcher).await;
            None
        }
        _ if kind.tls() => {
            let tls = handshake(stream, peer, &generation.tls, &state).await?;
            let (_, session) = tls.get_ref();
            tracing::debug!(
                client = %peer,
                sni = session.server_name().unwrap_or("-"),
                version = ?session.protocol_version(),
                cipher = ?session.negotiated_cipher_suite().map(|s| s.suite()),
                alpn = %String::from_utf8_lossy(session.alpn_protocol().unwrap_or(b"-")),
                "TLS handshake done"
            );
            let sni = session.server_name().map(str::to_owned);
            let conn = Arc::new(ConnInfo::new(peer, sni));
            Some(serve_autodiscover(
                Stream::Tls(Box::new(tls)),
                state,
                conn,
                link,
                watcher,
            ))
        }
        _ => {
            let conn = Arc::new(ConnInfo::new(peer, None));
            Some(serve_autodiscover(
                Stream::Plain(stream),
                state,
                conn,
                link,
                watcher,
            ))
        }
    }
}

/// The TLS handshake, by rustls through tokio-rustls. A failed handshake has already
/// sent the alert rustls chose (tokio-rustls writes it before reporting the error); it is
/// counted while the socket is still open, so a client that sees the connection close
/// finds the count up to date.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    config: &Arc<rustls::ServerConfig>,
    state: &State,
) -> Option<TlsStream<TcpStream>> {
    let accept = TlsAcceptor::from(Arc::clone(config))
        .accept(stream)
        .into_fallible();
    tokio::pin!(accept);
    let timeout = tokio::time::sleep(state.config.server.tls_handshake_timeout);
    tokio::select! {
        done = &mut accept => match done {
            Ok(tls) => Some(tls),
            Err((e, stream)) => {
                metrics::tls_handshake_failure("error");
                tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
                drop(stream);
                None
            }
        },
        () = timeout => {
            metrics::tls_handshake_failure("timeout");
            tracing::debug!(client = %peer, "TLS handshake timed out");
            // The socket closes with `accept`, when this function returns.
            None
        }
    }
}

/// Reads the PROXY header from a trusted peer. `None`: the connection is refused (closed).
async fn accept_proxy_header(
    stream: &mut TcpStream,
    peer: SocketAddr,
    state: &State,
) -> Option<ProxyHeader> {
    if !proxy::is_trusted(&state.config.proxy.trusted, peer.ip()) {
        metrics::proxy_rejected("untrusted");
        tracing::warn!(client = %peer, "PROXY protocol connection from an untrusted peer refused (add the load balancer to proxy.trusted if it is one)");
        return None;
    }
    let read = tokio::time::timeout(
        state.config.server.tls_handshake_timeout,
        read_proxy_header(stream),
    )
    .await;
    match read {
        Ok(Ok(header)) => Some(header),
        Ok(Err(problem)) => {
            metrics::proxy_rejected("malformed");
            tracing::warn!(client = %peer, error = %problem, "PROXY protocol header refused");
            None
        }
        Err(_) => {
            metrics::proxy_rejected("timeout");
            tracing::warn!(client = %peer, "no PROXY protocol header in time");
            None
        }
    }
}

/// Reads exactly the PROXY header, never a byte of what follows it.
async fn read_proxy_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<ProxyHeader, String> {
    let mut buf = Vec::with_capacity(64);
    loop {
        match proxy::decode(&buf).map_err(|e| e.to_string())? {
            proxy::Progress::Done(decoded) => return Ok(decoded.header),
            proxy::Progress::NeedMore(n) => {
                let mut more = vec![0u8; n];
                stream
                    .read_exact(&mut more)
                    .await
                    .map_err(|e| format!("connection ended inside the header ({e})"))?;
                buf.extend_from_slice(&more);
            }
        }
    }
}

/// Serves a short-lived connection (port-80 redirects, metrics scrapes) to its end; a drain
/// lets the request in progress finish.
async fn serve<I, S>(
    io: I,
    service: S,
    state: &State,
    peer: SocketAddr,
    mut watcher: Option<DrainWatch>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = Body> + Send,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = http1_builder(state).serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = draining(&mut watcher) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(client = %peer, error = %e, "connection ended with an error");
    }
}

/// The future serving an Autodiscover connection, parked outside hyper whenever it idles.
fn serve_autodiscover(
    io: Stream,
    state: Arc<State>,
    conn: Arc<ConnInfo>,
    link: Link,
    watcher: Option<DrainWatch>,
) -> impl Future<Output = ()> + Send {
    let timing = park::Timing::new(state.config.server.header_read_timeout);
    let peer = conn.peer;
    let make_service = move || {
        let service = autodiscover_service(Arc::clone(&state), Arc::clone(&conn), link);
        (http1_builder(&state), service)
    };
    park::serve(io, peer, make_service, timing, watcher)
}

fn autodiscover_service(
    state: Arc<State>,
    conn: Arc<ConnInfo>,
    link: Link,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + Unpin,
> + Send
       + Unpin {
    service_fn(move |req: Request<Incoming>| {
        let state = Arc::clone(&state);
        let conn = Arc::clone(&conn);
        // Boxed: hyper keeps the in-flight future inline in every connection, idle ones
        // included, and the handler's future (directory backends, NTLM) is kilobytes.
        // Boxing costs one allocation per request and frees that memory between requests.
        Box::pin(
            async move { Ok::<_, Infallible>(autodiscover_request(req, state, conn, link).await) },
        )
    })
}

/// Path of the benchmark baseline (only with `server.benchmark_static_route = true`).
pub const BENCHMARK_PATH: &str = "/benchmark/static";

/// The scheme of an `Authorization` header, as a metrics label.
fn auth_scheme<B>(req: &Request<B>) -> Option<&'static str> {
    let value = req.headers().get(http::header::AUTHORIZATION)?.as_bytes();
    let scheme = value.split(|b| *b == b' ').next().unwrap_or_default();
    Some(if scheme.eq_ignore_ascii_case(b"basic") {
        "basic"
    } else if scheme.eq_ignore_ascii_case(b"ntlm") {
        "ntlm"
    } else if scheme.eq_ignore_ascii_case(b"negotiate") {
        "negotiate"
    } else if scheme.eq_ignore_ascii_case(b"bearer") {
        "bearer"
    } else {
        "other"
    })
}

/// One request on an Autodiscover listener: operational short-cuts, the insecure-Basic rule,
/// then the handler; counts the outcome.
async fn autodiscover_request(
    mut req: Request<Incoming>,
    state: Arc<State>,
    conn: Arc<ConnInfo>,
    link: Link,
) -> Response<Body> {
    let started = Instant::now();
    let ctx = proxy::resolve(&link, req.headers(), &state.config.proxy.trusted);
    let endpoint = crate::server::endpoints::handlers::endpoint_label(req.uri().path());
    if endpoint == "healthcheck" && matches!(*req.method(), Method::GET | Method::HEAD) {
        metrics::request(endpoint, "ok", started.elapsed());
        tracing::debug!(target: "access", client = %ctx.client, endpoint, status = 200, "health check");
        return respond::healthcheck();
    }
    if state.config.server.benchmark_static_route && req.uri().path() == BENCHMARK_PATH {
        // The benchmark baseline: the same TLS/HTTP stack, no Autodiscover work.
        metrics::request("benchmark", "ok", started.elapsed());
        return respond::benchmark_static();
    }
    let scheme = auth_scheme(&req);
    let insecure_outcome = match scheme {
        Some("basic") => Some("basic_refused_insecure"),
        Some("bearer") => Some("bearer_refused_insecure"),
        _ => None,
    };
    if let (false, Some(scheme), Some(outcome)) = (ctx.secure, scheme, insecure_outcome) {
        // The password (or the bearer token, as good as one until it expires) already
        // crossed the network in clear; refusing it keeps clients from being trained to do
        // that and keeps a sniffed credential from working here.
        metrics::auth(scheme, "refused_insecure");
        metrics::request(endpoint, outcome, started.elapsed());
        let response = respond::insecure_credentials_refused(scheme);
        tracing::info!(
            target: "access",
            client = %ctx.client,
            method = %req.method(),
            path = %req.uri().path(),
            endpoint,
            user = "-",
            outcome,
            status = response.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "request"
        );
        return response;
    }
    req.extensions_mut().insert(ctx);
    let mut response = handlers::handle(req, state, conn).await;
    if !ctx.secure {
        strip_basic_challenges(&mut response);
    }
    let outcome = response
        .extensions()
        .get::<metrics::RequestOutcome>()
        .copied();
    metrics::request(
        endpoint,
        outcome.map(|o| o.outcome).unwrap_or("unknown"),
        started.elapsed(),
    );
    if let Some(method) = scheme {
        metrics::auth(method, auth_result(&response, outcome));
    }
    response
}

/// A 401 on an insecure hop must not invite Basic credentials or bearer tokens.
fn strip_basic_challenges(response: &mut Response<Body>) {
    let headers = response.headers_mut();
    let keep: Vec<_> = headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter(|v| {
            let scheme = v
                .as_bytes()
                .split(|b| *b == b' ')
                .next()
                .unwrap_or_default();
            !scheme.eq_ignore_ascii_case(b"basic") && !scheme.eq_ignore_ascii_case(b"bearer")
        })
        .cloned()
        .collect();
    headers.remove(http::header::WWW_AUTHENTICATE);
    for v in keep {
        headers.append(http::header::WWW_AUTHENTICATE, v);
    }
}

/// Classifies an authentication attempt from what the handler answered.
fn auth_result(
    response: &Response<Body>,
    outcome: Option<metrics::RequestOutcome>,
) -> &'static str {
    if outcome.is_some_and(|o| o.authenticated) {
        return "success";
    }
    if response.status() == StatusCode::UNAUTHORIZED {
        // "NTLM <token>" / "Negotiate <token>": a handshake leg, not a failure (Basic and
        // Bearer challenges carry parameters, never a leg).
        let continues = response
            .headers()
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .any(|v| {
                let v = v.as_bytes().trim_ascii();
                (v.starts_with(b"NTLM ") || v.starts_with(b"Negotiate ")) && v.contains(&b' ')
            });
        return if continues { "continue" } else { "failure" };
    }
    if outcome.is_some_and(|o| o.outcome == "error_603") {
        return "unavailable";
    }
    "not_evaluated"
}

/// Start-up warnings for settings that are valid but risky behind a TLS-terminating proxy.
pub fn warn_about_proxy_settings(config: &crate::config::Config) {
    let plain = !config.proxy.plain_listen.is_empty()
        || !config.proxy.proxy_protocol_plain_listen.is_empty();
    if !plain {
        return;
    }
    if config.proxy.trusted.is_empty() {
        tracing::warn!("plain listeners are configured but proxy.trusted is empty: X-Forwarded-* headers are ignored and Basic credentials are refused there");
    }
    let ntlm = &config.auth.ntlm;
    if ntlm.enabled && ntlm.channel_binding != crate::auth::ntlm::CbtPolicy::Off {
        tracing::warn!("NTLM channel bindings on plain listeners are checked against tls.cert, but clients bind to the certificate of the proxy that terminated TLS; unless the proxy presents that same certificate, set auth.ntlm_channel_binding = \"off\"");
    }
    if ntlm.enabled && ntlm.persist_on_connection {
        tracing::warn!("auth.ntlm_persist_on_connection is on with plain listeners: safe only if the proxy never shares an upstream connection between clients (HAProxy marks NTLM connections private; open-source nginx does not), otherwise set it to false");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn proxy_header_reader_leaves_the_rest_of_the_stream() {
        let mut bytes: &[u8] = b"PROXY TCP4 192.0.2.10 192.0.2.1 56324 443\r\nGET / HTTP/1.1\r\n";
        let header = read_proxy_header(&mut bytes).await.unwrap();
        assert!(matches!(header, ProxyHeader::Proxied { .. }));
        assert_eq!(bytes, b"GET / HTTP/1.1\r\n");
        let mut short: &[u8] = b"PROXY TCP4 192.0.2.10";
        assert!(read_proxy_header(&mut short).await.is_err());
    }

    #[test]
    fn basic_and_bearer_challenges_are_removed_on_insecure_hops() {
        let bearer = crate::auth::bearer::challenge("t", "https://login.example/a", false);
        let mut r = respond::unauthorized(&[bearer, "NTLM".into(), "Basic realm=\"x\"".into()]);
        strip_basic_challenges(&mut r);
        let left: Vec<_> = r.headers().get_all("www-authenticate").iter().collect();
        assert_eq!(left, ["NTLM"]);
    }

    #[test]
    fn ntlm_handshake_legs_are_not_failures() {
        let leg = respond::unauthorized(&["NTLM TlRMTVNTUAACAAAA".into()]);
        assert_eq!(auth_result(&leg, None), "continue");
        let fail = respond::unauthorized(&["NTLM".into(), "Basic realm=\"x y\"".into()]);
        assert_eq!(auth_result(&fail, None), "failure");
        // The Bearer challenge carries parameters, never a handshake leg.
        let bearer = crate::auth::bearer::challenge("t", "https://login.example/a", true);
        let refused = respond::unauthorized(&[bearer, "NTLM".into()]);
        assert_eq!(auth_result(&refused, None), "failure");
    }
}
