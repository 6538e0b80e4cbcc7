//! Keep-alive connections parked outside hyper between requests (src/server/net/park.rs),
//! through the real server over TLS.

use std::time::{Duration, Instant};

use autodiscoverd::auth::ntlm::client::ClientOptions;

use crate::abuse::ntlm_from;
use crate::harness::{outlook_request, TestServer};

const PATH: &str = "/autodiscover/autodiscover.xml";

/// Longer than the quiet time after which a connection parks (1 s with the default
/// `header_read_timeout_secs = 10`).
const PARKED: Duration = Duration::from_millis(1600);

#[tokio::test]
async fn an_ntlm_login_outlives_the_parking_of_its_connection() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let alice = ClientOptions::new("alice", "CONTOSO", "alice-pw");
    let a = ntlm_from(&mut c, "192.0.2.7", &alice).await;
    assert_eq!(a.status, 200);
    tokio::time::sleep(PARKED).await;
    // Same connection, no Authorization header: the identity NTLM established is kept
    // (IIS-style), across the park.
    let body = outlook_request("alice@contoso.com");
    let headers = [("Content-Type", "text/xml")];
    let a = c.send("POST", PATH, &headers, body.as_bytes()).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(
        a.text().contains("<Action>settings</Action>"),
        "{}",
        a.text()
    );
    // A new connection without credentials is not logged in.
    let mut fresh = server.client().await;
    let a = fresh.send("POST", PATH, &headers, body.as_bytes()).await;
    assert_eq!(a.status, 401);
}

#[tokio::test]
async fn a_connection_serves_requests_before_and_after_parking_many_times() {
    let server = TestServer::start_with(&|t| {
        crate::harness::set(t, &["server", "header_read_timeout_secs"], 2.into())
    })
    .await;
    let mut c = server.client().await;
    for round in 0..3 {
        let a = c
            .post_basic(
                PATH,
                "alice@contoso.com",
                "alice-pw",
                &[],
                &outlook_request("alice@contoso.com"),
            )
            .await;
        assert_eq!(a.status, 200, "round {round}");
        // Over the 1 s of quiet after which it parks (half the timeout, at most 1 s).
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
}

#[tokio::test]
async fn stopping_the_server_closes_parked_connections_without_waiting_for_the_grace_period() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let a = c
        .send("GET", "/autodiscover/healthcheck.htm", &[], b"")
        .await;
    assert_eq!(a.status, 200);
    tokio::time::sleep(PARKED).await;
    let started = Instant::now();
    server.stop().await;
    // The grace period is 10 s by default; a parked connection has nothing in flight.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(c
        .try_send("GET", "/autodiscover/healthcheck.htm", &[], b"")
        .await
        .is_err());
}
