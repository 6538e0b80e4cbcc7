//! Abuse resistance over real TLS: failed-login throttling (password spraying, guessing one
//! account, distributed attacks on one account), no user enumeration (byte-identical
//! answers and the same timing class for unknown users and wrong passwords), and the
//! connection limits (slow clients, idle keep-alive, oversized headers and bodies, the
//! connection cap, TLS handshakes that never finish).
//!
//! Client addresses: the example config trusts 127.0.0.1 as a proxy, so a test speaks for
//! any client address by sending `X-Forwarded-For` (documentation ranges only; nothing is
//! ever sent to those addresses).

use std::time::{Duration, Instant};

use autodiscoverd::auth::ntlm::client::{self, ClientOptions};
use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::harness::{client::basic, outlook_request, set, Answer, TestServer, TlsClient};

const PATH: &str = "/autodiscover/autodiscover.xml";
const SOAP_PATH: &str = "/autodiscover/autodiscover.svc";
const HOST: &str = "autodiscover.contoso.com";

/// A client address in TEST-NET-2 (RFC 5737).
fn addr(n: u32) -> String {
    format!("198.51.100.{}", n % 250 + 1)
}

fn tweak_throttle(t: &mut toml::Table, pairs: &[(&str, i64)]) {
    for (key, value) in pairs {
        set(t, &["throttle", key], (*value).into());
    }
}

/// POSTs an Outlook request with Basic credentials as `client`.
async fn login_from(c: &mut TlsClient, client: &str, user: &str, password: &str) -> Answer {
    c.post_basic(
        PATH,
        user,
        password,
        &[("X-Forwarded-For", client)],
        &outlook_request("alice@contoso.com"),
    )
    .await
}

/// The value of one sample in the in-process metrics registry (0 when absent).
fn metric(series: &str) -> f64 {
    autodiscoverd::ops::metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

const THROTTLED_429: &str = r#"autodiscoverd_auth_throttled_total{action="too_many_requests"}"#;
const THROTTLED_401: &str = r#"autodiscoverd_auth_throttled_total{action="refused"}"#;
const THROTTLED_DELAY: &str = r#"autodiscoverd_auth_throttled_total{action="delayed"}"#;

// ---- Throttling ----------------------------------------------------------------------

#[tokio::test]
async fn a_spray_from_one_address_is_blocked_while_an_untouched_account_still_logs_in() {
    let server = TestServer::start_with(&|t| {
        tweak_throttle(
            t,
            &[
                ("source_delay_after", 4),
                ("source_block_after", 8),
                ("max_delay_ms", 40),
                ("account_delay_after", 3),
                ("account_max_delay_ms", 40),
            ],
        )
    })
    .await;
    let before_429 = metric(THROTTLED_429);
    let before_delay = metric(THROTTLED_DELAY);
    let mut c = server.client().await;
    let sprayer = addr(7);
    let mut statuses = Vec::new();
    for i in 0..12 {
        let a = login_from(
            &mut c,
            &sprayer,
            &format!("user{i}@contoso.com"),
            "Summer2026!",
        )
        .await;
        statuses.push(a.status.as_u16());
        if a.status == 429 {
            assert_eq!(a.header("retry-after").as_deref(), Some("225"));
            assert_eq!(a.header("x-soap-enabled").as_deref(), Some("True"));
            assert!(a.header_all("www-authenticate").is_empty());
            assert!(a.body.is_empty());
        }
    }
    assert_eq!(&statuses[..8], &[401; 8], "{statuses:?}");
    assert_eq!(&statuses[8..], &[429; 4], "{statuses:?}");
    // Blocked means blocked: the right password of a real account from that address too.
    let a = login_from(&mut c, &sprayer, "alice@contoso.com", "alice-pw").await;
    assert_eq!(a.status, 429);
    // A spray across many accounts from many addresses (a few guesses each, below every
    // per-address threshold) ...
    for i in 0..40u32 {
        let a = login_from(
            &mut c,
            &addr(100 + i),
            &format!("user{}@contoso.com", i % 10),
            "Winter2026!",
        )
        .await;
        assert_eq!(a.status, 401);
    }
    // ... does not touch an account it did not guess: alice from her own address logs in
    // at once and gets her settings.
    let started = Instant::now();
    let a = login_from(&mut c, &addr(3), "alice@contoso.com", "alice-pw").await;
    assert_eq!(a.status, 200);
    assert!(a.text().contains("<Action>settings</Action>"));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(metric(THROTTLED_429) >= before_429 + 5.0);
    assert!(metric(THROTTLED_DELAY) > before_delay);
}

#[tokio::test]
async fn one_address_guessing_one_account_gets_401_with_retry_after_and_the_real_user_elsewhere_does_not(
) {
    let server = TestServer::start_with(&|t| {
        tweak_throttle(t, &[("pair_block_after", 3), ("window_secs", 60)])
    })
    .await;
    let before = metric(THROTTLED_401);
    let mut c = server.client().await;
    let guesser = addr(9);
    for guess in ["123456", "password", "alice2026"] {
        let a = login_from(&mut c, &guesser, "alice@contoso.com", guess).await;
        assert_eq!(a.status, 401);
        assert!(a.header("retry-after").is_none());
    }
    // From now on the guesser's attempts on alice are refused without a check: even the
    // right password (so the answer tells the guesser nothing).
    let refused = login_from(&mut c, &guesser, "alice@contoso.com", "alice-pw").await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("retry-after").as_deref(), Some("15"));
    assert_eq!(
        refused.header_all("www-authenticate"),
        ["NTLM", "Basic realm=\"autodiscover.contoso.com\""]
    );
    assert_eq!(refused.header("x-soap-enabled").as_deref(), Some("True"));
    assert!(metric(THROTTLED_401) > before);
    // The same refusal on the SOAP endpoint.
    let soap = c
        .send(
            "POST",
            SOAP_PATH,
            &[
                ("Authorization", &basic("alice@contoso.com", "alice-pw")),
                ("X-Forwarded-For", &guesser),
                ("Content-Type", "text/xml"),
            ],
            b"<x/>",
        )
        .await;
    assert_eq!(soap.status, 401);
    assert_eq!(soap.header("retry-after").as_deref(), Some("15"));
    // The login form does not matter: CONTOSO\alice is the same account (case-folded).
    let a = login_from(&mut c, &guesser, "ALICE@contoso.com", "alice-pw").await;
    assert_eq!(a.status, 401);
    // The real user on her own address is not affected, and other accounts from the
    // guesser's address still work.
    let a = login_from(&mut c, &addr(10), "alice@contoso.com", "alice-pw").await;
    assert_eq!(a.status, 200);
    let a = login_from(&mut c, &guesser, "bob@contoso.com", "bob-pw").await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn a_distributed_attack_on_one_account_delays_the_real_user_only_up_to_the_bound() {
    let bound = Duration::from_millis(400);
    let server = TestServer::start_with(&|t| {
        tweak_throttle(
            t,
            &[
                ("account_delay_after", 3),
                ("account_max_delay_ms", bound.as_millis() as i64),
            ],
        )
    })
    .await;
    let mut c = server.client().await;
    // 60 addresses, one wrong guess each: below every per-address threshold. The guesses
    // differ: the same wrong password again counts once (throttle.rs, wrong passwords).
    for i in 0..60 {
        let guess = format!("guess-{i}");
        let a = login_from(&mut c, &addr(i), "alice@contoso.com", &guess).await;
        assert_eq!(a.status, 401);
    }
    // The real user from yet another address: checked (never locked out), delayed by the
    // bound and not more (generous slack for a loaded machine).
    for _ in 0..2 {
        let started = Instant::now();
        let a = login_from(&mut c, "203.0.113.5", "alice@contoso.com", "alice-pw").await;
        let took = started.elapsed();
        assert_eq!(a.status, 200);
        assert!(took >= bound, "not delayed: {took:?}");
        assert!(took < bound + Duration::from_millis(1500), "{took:?}");
    }
    // Another account is not slowed.
    let started = Instant::now();
    let a = login_from(&mut c, "203.0.113.5", "bob@contoso.com", "bob-pw").await;
    assert_eq!(a.status, 200);
    assert!(started.elapsed() < bound);
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(header: &str) -> Vec<u8> {
    let token = header.split_once(' ').map(|(_, t)| t).unwrap_or("");
    base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .unwrap()
}

/// Type 1 → Type 2 → Type 3 on `c` as `client`; returns the answer to the Type 3.
pub(crate) async fn ntlm_from(c: &mut TlsClient, client: &str, opts: &ClientOptions) -> Answer {
    let body = outlook_request("alice@contoso.com");
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let auth = format!("NTLM {}", b64(&t1));
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Forwarded-For", client),
        ("Content-Type", "text/xml"),
    ];
    let a = c.send("POST", PATH, &headers, body.as_bytes()).await;
    assert_eq!(a.status, 401);
    let t2 = unb64(&a.header_all("www-authenticate")[0]);
    let (t3, _) = client::authenticate_message(opts, &t1, &t2).unwrap();
    let auth = format!("NTLM {}", b64(&t3));
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Forwarded-For", client),
        ("Content-Type", "text/xml"),
    ];
    c.send("POST", PATH, &headers, body.as_bytes()).await
}

#[tokio::test]
async fn ntlm_guesses_are_throttled_at_the_type3_step() {
    let server = TestServer::start_with(&|t| tweak_throttle(t, &[("pair_block_after", 2)])).await;
    let mut c = server.client().await;
    let guesser = addr(42);
    for guess in ["one", "two"] {
        let a = ntlm_from(
            &mut c,
            &guesser,
            &ClientOptions::new("alice", "CONTOSO", guess),
        )
        .await;
        assert_eq!(a.status, 401);
        assert!(a.header("retry-after").is_none());
    }
    // Third Type 3 from that address, right password: refused before the hash is checked.
    let right = ClientOptions::new("alice", "CONTOSO", "alice-pw");
    let a = ntlm_from(&mut c, &guesser, &right).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.header("retry-after").as_deref(), Some("225"));
    assert_eq!(
        a.header_all("www-authenticate"),
        ["NTLM", "Basic realm=\"autodiscover.contoso.com\""]
    );
    // The connection is still usable and the handshake starts over; alice elsewhere is fine.
    let a = ntlm_from(&mut c, &addr(43), &right).await;
    assert_eq!(a.status, 200);
}

// ---- No enumeration ------------------------------------------------------------------

/// One HTTP/1.1 exchange on a raw TLS stream: the exact bytes of the answer (head and a
/// `Content-Length` body).
async fn raw_exchange<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    request: &[u8],
) -> Vec<u8> {
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "connection closed mid-head: {}",
            String::from_utf8_lossy(&out)
        );
        out.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&out).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    out.extend_from_slice(&body);
    out
}

fn without_date(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer)
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
        .collect::<Vec<_>>()
        .join("\r\n")
}

async fn raw_tls(server: &TestServer) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(server.https).await.unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(crate::harness::client::client_config(&server.pki));
    let name = rustls_pki_types::ServerName::try_from(HOST).unwrap();
    connector.connect(name, tcp).await.unwrap()
}

fn post_bytes(path: &str, authorization: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: {authorization}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The shipped example directory: argon2 password hashes, as in production.
fn example_directory(t: &mut toml::Table) {
    let root = crate::harness::repo_root();
    set(
        t,
        &["directory", "file", "path"],
        root.join("config/directory.example.toml")
            .display()
            .to_string()
            .into(),
    );
    // Many failures from one address on purpose: measure the directory, not the throttle.
    set(t, &["throttle", "enabled"], false.into());
}

#[tokio::test]
async fn unknown_user_and_wrong_password_answers_are_byte_identical_apart_from_the_date() {
    let server = TestServer::start_with(&example_directory).await;
    let body = outlook_request("alice@contoso.com");
    for path in [PATH, SOAP_PATH] {
        let mut answers = Vec::new();
        for (user, password) in [
            ("alice@contoso.com", "Alice-Demo-2026?"),
            ("mallory@contoso.com", "Alice-Demo-2026?"),
            ("CONTOSO\\nobody", "x"),
        ] {
            let mut s = raw_tls(&server).await;
            answers
                .push(raw_exchange(&mut s, &post_bytes(path, &basic(user, password), &body)).await);
        }
        let first = without_date(&answers[0]);
        assert!(first.starts_with("HTTP/1.1 401 "), "{first}");
        for other in &answers[1..] {
            assert_eq!(without_date(other), first, "{path}");
        }
    }
    // NTLM: a Type 3 for an unknown user and one with a wrong password.
    let mut ntlm_answers = Vec::new();
    for opts in [
        ClientOptions::new("alice", "CONTOSO", "wrong"),
        ClientOptions::new("mallory", "CONTOSO", "wrong"),
    ] {
        let mut s = raw_tls(&server).await;
        let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
        let a = raw_exchange(
            &mut s,
            &post_bytes(PATH, &format!("NTLM {}", b64(&t1)), &body),
        )
        .await;
        let text = String::from_utf8_lossy(&a).into_owned();
        let challenge = text
            .split("\r\n")
            .find_map(|l| l.strip_prefix("www-authenticate: "))
            .unwrap()
            .to_string();
        let (t3, _) = client::authenticate_message(&opts, &t1, &unb64(&challenge)).unwrap();
        ntlm_answers.push(
            raw_exchange(
                &mut s,
                &post_bytes(PATH, &format!("NTLM {}", b64(&t3)), &body),
            )
            .await,
        );
    }
    let wrong = without_date(&ntlm_answers[0]);
    assert!(wrong.starts_with("HTTP/1.1 401 "), "{wrong}");
    assert_eq!(without_date(&ntlm_answers[1]), wrong);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Constant work, checked as a timing class: an unknown user costs one argon2 verification
/// of the dummy hash, a wrong password one of the real hash. Interleaved samples (so load
/// from other processes hits both alike), medians, and a generous factor: this is not a
/// performance test, it catches a skipped hash (which would be ~100x faster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_cost_the_same_time_as_wrong_passwords() {
    let server = TestServer::start_with(&example_directory).await;
    let mut c = server.client().await;
    let body = outlook_request("alice@contoso.com");
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..31 {
        for (user, samples) in [
            ("alice@contoso.com", &mut wrong),
            ("mallory@contoso.com", &mut unknown),
        ] {
            let started = Instant::now();
            let a = c
                .post_basic(PATH, user, &format!("Guess-{i}"), &[], &body)
                .await;
            samples.push(started.elapsed());
            assert_eq!(a.status, 401);
        }
    }
    let (w, u) = (median(wrong), median(unknown));
    let ratio = u.as_secs_f64() / w.as_secs_f64();
    eprintln!("median wrong password {w:?}, unknown user {u:?}, ratio {ratio:.2}");
    assert!((0.5..=2.0).contains(&ratio), "wrong {w:?} vs unknown {u:?}");
    // And the verification is real work (argon2), not a short-cut for both.
    assert!(w > Duration::from_millis(2), "{w:?}");
}

// ---- Limits --------------------------------------------------------------------------

/// Reads until the server closes; returns what arrived and how long it took.
async fn read_until_closed<S: AsyncRead + Unpin>(
    s: &mut S,
    limit: Duration,
) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for {limit:?}"
    );
    (buf, started.elapsed())
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let server =
        TestServer::start_with(&|t| set(t, &["server", "header_read_timeout_secs"], 1.into()))
            .await;
    let mut s = raw_tls(&server).await;
    let a = raw_exchange(
        &mut s,
        format!("GET /autodiscover/healthcheck.htm HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(a.starts_with(b"HTTP/1.1 200"));
    // Now idle on a kept-alive connection: hyper's header timer runs while it waits for
    // the next request, so the idle connection goes after header_read_timeout_secs.
    let (rest, took) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(rest.is_empty());
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_by_the_request_timeout() {
    let server =
        TestServer::start_with(&|t| set(t, &["server", "request_timeout_secs"], 1.into())).await;
    let mut s = raw_tls(&server).await;
    s.write_all(
        format!(
            "POST {PATH} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: text/xml\r\nContent-Length: 500\r\n\r\n<Auto"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (answer, took) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn oversized_headers_are_refused_with_431_and_the_connection_closed() {
    let server = TestServer::start().await;
    let mut s = raw_tls(&server).await;
    let big = "a".repeat(70 * 1024);
    let request = format!("GET {PATH} HTTP/1.1\r\nHost: {HOST}\r\nX-Padding: {big}\r\n\r\n");
    // The server may stop reading before all of it is written.
    let _ = s.write_all(request.as_bytes()).await;
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // Headers below the limit are fine.
    let mut c = server.client().await;
    let padding = "a".repeat(16 * 1024);
    let a = c.send("GET", PATH, &[("X-Padding", &padding)], b"").await;
    assert_eq!(a.status, 401);
}

#[tokio::test]
async fn oversized_chunked_bodies_without_a_length_get_413() {
    let server =
        TestServer::start_with(&|t| set(t, &["server", "max_body_bytes"], 2048.into())).await;
    let mut s = raw_tls(&server).await;
    let chunk = "x".repeat(1024);
    let mut request = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        basic("alice@contoso.com", "alice-pw")
    );
    for _ in 0..4 {
        request.push_str(&format!("400\r\n{chunk}\r\n"));
    }
    request.push_str("0\r\n\r\n");
    let _ = s.write_all(request.as_bytes()).await;
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_tcp_client_that_never_says_hello_is_closed_within_the_handshake_timeout() {
    let server =
        TestServer::start_with(&|t| set(t, &["server", "tls_handshake_timeout_secs"], 1.into()))
            .await;
    let before = metric(r#"autodiscoverd_tls_handshake_failures_total{reason="timeout"}"#);
    let mut silent = tokio::net::TcpStream::connect(server.https).await.unwrap();
    // And one that stops in the middle of its ClientHello.
    let mut partial = tokio::net::TcpStream::connect(server.https).await.unwrap();
    partial
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ])
        .await
        .unwrap();
    for s in [&mut silent, &mut partial] {
        let (bytes, took) = read_until_closed(s, Duration::from_secs(10)).await;
        assert!(bytes.is_empty());
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    assert!(
        metric(r#"autodiscoverd_tls_handshake_failures_total{reason="timeout"}"#) >= before + 2.0
    );
}

#[tokio::test]
async fn connections_past_the_limit_wait_and_the_server_recovers() {
    let server = TestServer::start_with(&|t| {
        set(t, &["server", "max_connections"], 2.into());
        // The redirect listener stays on: accept loops take a permit only after accepting,
        // so a second listener waiting in accept() must not eat into the limit.
    })
    .await;
    let mut first = server.client().await;
    let mut second = server.client().await;
    // The third is accepted by the kernel but not served: its handshake does not finish.
    let third = tokio::spawn({
        let addr = server.https;
        let pki = std::sync::Arc::clone(&server.pki);
        async move { TlsClient::try_connect(addr, HOST, &pki).await }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !third.is_finished(),
        "connection 3 was served past max_connections = 2"
    );
    for c in [&mut first, &mut second] {
        let a = c
            .send("GET", "/autodiscover/healthcheck.htm", &[], b"")
            .await;
        assert_eq!(a.status, 200);
    }
    // One leaves: the waiting one is served.
    drop(first);
    let mut third = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("connection 3 served after a slot freed")
        .unwrap()
        .unwrap();
    let a = third
        .send("GET", "/autodiscover/healthcheck.htm", &[], b"")
        .await;
    assert_eq!(a.status, 200);
    let a = second
        .send("GET", "/autodiscover/healthcheck.htm", &[], b"")
        .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn the_benchmark_route_is_off_unless_configured() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(
        c.send("GET", "/benchmark/static", &[], b"").await.status,
        404
    );
    let server =
        TestServer::start_with(&|t| set(t, &["server", "benchmark_static_route"], true.into()))
            .await;
    let mut c = server.client().await;
    let a = c.send("GET", "/benchmark/static", &[], b"").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.len(), 1024);
}
