//! TLS as clients see it, with real clients: OpenSSL's `s_client` and curl for how refusals
//! look on the wire (the alert rustls sends, RFC 8446 §6 / RFC 5246 §7.2), rustls's client
//! for SNI certificate choice, TLS 1.3 key updates (RFC 8446 §4.6.3) and large bodies.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::harness::client::{basic, client_config_with};
use crate::harness::daemon::{scrape, Daemon};
use crate::harness::{outlook_request, set, TestPki, TestServer};

const HOST: &str = "autodiscover.contoso.com";
const WAIT: Duration = Duration::from_secs(20);

/// TLS alert descriptions (RFC 8446 §6, RFC 7301 §3.2).
const HANDSHAKE_FAILURE: u8 = 40;
const NO_APPLICATION_PROTOCOL: u8 = 120;
const CONTENT_ALERT: u8 = 21;
const FATAL: u8 = 2;

fn tool_available(tool: &str, arg: &str) -> bool {
    let found = Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but {tool} is not available"
        );
        eprintln!("SKIPPED: {tool} is not available (the test would fail in CI)");
    }
    found
}

/// A relay for one connection between a client and `server` that keeps every byte the
/// server sent, until the server closed its side.
async fn recording_relay(server: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let upstream = TcpStream::connect(server).await.unwrap();
        let (mut client_rx, mut client_tx) = client.into_split();
        let (mut server_rx, mut server_tx) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
            let _ = server_tx.shutdown().await;
        });
        let mut sent = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match server_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    sent.extend_from_slice(&buf[..n]);
                    // The client may be gone already; the server's side is read to its end
                    // regardless.
                    let _ = client_tx.write_all(&buf[..n]).await;
                }
            }
        }
        sent
    });
    (addr, task)
}

/// The TLS records in `bytes` as (content type, payload); panics on a truncated record.
fn records(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 5, "truncated record header: {bytes:?}");
        let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        assert!(bytes.len() >= 5 + len, "truncated record: {bytes:?}");
        out.push((bytes[0], bytes[5..5 + len].to_vec()));
        bytes = &bytes[5 + len..];
    }
    out
}

/// Runs `openssl s_client` with `args` through a recording relay and returns what the
/// server sent, and s_client's output.
async fn s_client_refused(server: SocketAddr, args: &[&str]) -> (Vec<u8>, String) {
    let (relay, recorded) = recording_relay(server).await;
    let mut command = vec![
        "s_client".to_string(),
        "-connect".into(),
        relay.to_string(),
        "-servername".into(),
        HOST.into(),
    ];
    command.extend(args.iter().map(|a| a.to_string()));
    let output = tokio::task::spawn_blocking(move || {
        Command::new("openssl")
            .args(&command)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!output.status.success(), "the handshake must fail");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let sent = tokio::time::timeout(WAIT, recorded)
        .await
        .expect("the server closes the connection")
        .unwrap();
    (sent, text)
}

/// The server answered with exactly one record, a fatal alert with `description`, and then
/// closed: no close_notify (or anything else) after it.
fn assert_only_fatal_alert(sent: &[u8], description: u8, openssl: &str) {
    let records = records(sent);
    assert_eq!(
        records,
        vec![(CONTENT_ALERT, vec![FATAL, description])],
        "server sent {sent:?}; openssl said:\n{openssl}"
    );
    assert!(
        !openssl.contains("unexpected eof"),
        "openssl saw a bare EOF:\n{openssl}"
    );
}

#[tokio::test]
async fn no_shared_cipher_suite_gets_handshake_failure_and_nothing_after_it() {
    if !tool_available("openssl", "version") {
        return;
    }
    let server = TestServer::start().await;
    // AES128-SHA is RSA key exchange with CBC, which rustls does not implement.
    let (sent, text) = s_client_refused(server.https, &["-tls1_2", "-cipher", "AES128-SHA"]).await;
    assert_only_fatal_alert(&sent, HANDSHAKE_FAILURE, &text);
    assert!(text.contains("alert handshake failure"), "{text}");
}

#[tokio::test]
async fn tls_1_1_gets_rustls_refusal_and_nothing_after_it() {
    if !tool_available("openssl", "version") {
        return;
    }
    let server = TestServer::start().await;
    // OpenSSL 3 offers TLS 1.1 only at security level 0. A TLS 1.1 ClientHello carries no
    // signature_algorithms extension (new in TLS 1.2, RFC 5246 §7.4.1.4.1), and rustls
    // checks for it before it looks at the version, so its alert is handshake_failure; a
    // client that offered TLS 1.1 with that extension would get protocol_version (70).
    let (sent, text) =
        s_client_refused(server.https, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]).await;
    assert_only_fatal_alert(&sent, HANDSHAKE_FAILURE, &text);
    assert!(text.contains("alert handshake failure"), "{text}");
}

#[tokio::test]
async fn alpn_without_http_1_gets_no_application_protocol_and_nothing_after_it() {
    if !tool_available("openssl", "version") {
        return;
    }
    let server = TestServer::start().await;
    // TLS 1.2: the alert comes before the ServerHello, in clear.
    let (sent, text) = s_client_refused(server.https, &["-tls1_2", "-alpn", "h2"]).await;
    assert_only_fatal_alert(&sent, NO_APPLICATION_PROTOCOL, &text);
    assert!(text.contains("no application protocol"), "{text}");
    // TLS 1.3 chooses ALPN for EncryptedExtensions, after the ServerHello: the alert is
    // protected with the handshake keys (RFC 8446 §5.2), one record of 2 alert bytes, the
    // content type and a 16-byte tag; OpenSSL opens it and names it. Nothing follows it.
    let (sent, text) = s_client_refused(server.https, &["-tls1_3", "-alpn", "h2"]).await;
    let kinds: Vec<(u8, usize)> = records(&sent).iter().map(|(k, p)| (*k, p.len())).collect();
    assert!(
        matches!(kinds.as_slice(), [(22, _), (20, 1), (23, 19)]),
        "ServerHello, change_cipher_spec, one protected alert expected: {kinds:?}\n{text}"
    );
    assert!(text.contains("no application protocol"), "{text}");
}

#[tokio::test]
async fn a_failed_handshake_is_counted_before_the_client_sees_the_close() {
    if !tool_available("openssl", "version") {
        return;
    }
    let daemon = Daemon::start(&|_| {});
    let metrics = daemon.addr("metrics");
    let scrape = || async {
        scrape(metrics)
            .await
            .get(r#"autodiscoverd_tls_handshake_failures_total{reason="error"}"#)
            .copied()
            .unwrap_or(0.0)
    };
    let before = scrape().await;
    for _ in 0..3 {
        s_client_refused(daemon.addr("https"), &["-tls1_3", "-alpn", "h2"]).await;
    }
    // s_client_refused returned after the server closed each connection.
    assert_eq!(scrape().await - before, 3.0);
}

#[tokio::test]
async fn curl_http_1_0_is_served() {
    if !tool_available("curl", "--version") {
        return;
    }
    let server = TestServer::start().await;
    let ca = server.pki.write_ca(server.dir.path());
    let url = format!(
        "https://{HOST}:{}/autodiscover/healthcheck.htm",
        server.https.port()
    );
    let resolve = format!("{HOST}:{}:127.0.0.1", server.https.port());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sS", "-v", "--http1.0", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &resolve, &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "200 OK");
    assert!(
        stderr.contains("ALPN: server accepted http/1.0")
            || stderr.contains("ALPN, server accepted to use http/1.0"),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP/1.0 200"), "{stderr}");
}

async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await.unwrap()
}

/// Sends one HTTP/1.1 request and reads its answer (status line and Content-Length body).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    head: &str,
    body: &[u8],
) -> (String, Vec<u8>) {
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(body);
    s.write_all(&request).await.unwrap();
    s.flush().await.unwrap();
    let mut answer_head = Vec::new();
    while !answer_head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(WAIT, s.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            n,
            1,
            "closed mid-answer: {:?}",
            String::from_utf8_lossy(&answer_head)
        );
        answer_head.push(byte[0]);
    }
    let answer_head = String::from_utf8(answer_head).unwrap();
    let len: usize = answer_head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .unwrap()
        .parse()
        .unwrap();
    let mut answer_body = vec![0u8; len];
    s.read_exact(&mut answer_body).await.unwrap();
    (answer_head, answer_body)
}

fn health_request() -> String {
    format!("GET /autodiscover/healthcheck.htm HTTP/1.1\r\nHost: {HOST}\r\n\r\n")
}

#[tokio::test]
async fn sni_picks_the_certificate_configured_for_the_name() {
    let other = TestPki::new();
    let other_dir = tempfile::tempdir().unwrap();
    let (cert, key) =
        other.write_leaf(other_dir.path(), "fabrikam", &["autodiscover.fabrikam.com"]);
    let fabrikam_leaf = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let server = TestServer::start_with(&|t| {
        let mut entry = toml::Table::new();
        entry.insert("host".into(), "autodiscover.fabrikam.com".into());
        entry.insert("cert".into(), cert.display().to_string().into());
        entry.insert("key".into(), key.display().to_string().into());
        set(t, &["tls", "sni"], toml::Value::Array(vec![entry.into()]));
    })
    .await;
    let config = client_config_with(&[&server.pki, &other], rustls::ALL_VERSIONS);
    for (name, expect_fabrikam) in [
        ("autodiscover.fabrikam.com", true),
        ("AUTODISCOVER.Fabrikam.com", true),
        (HOST, false),
        ("localhost", false),
    ] {
        let mut tls = connect(server.https, name, Arc::clone(&config)).await;
        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        assert_eq!(leaf == fabrikam_leaf, expect_fabrikam, "{name}");
        let (head, body) = exchange(&mut tls, &health_request(), b"").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"200 OK");
    }
}

#[tokio::test]
async fn client_key_updates_work_on_a_busy_and_on_a_parked_connection() {
    let server = TestServer::start().await;
    let config = client_config_with(&[&server.pki], &[&rustls::version::TLS13]);
    let mut tls = connect(server.https, HOST, config).await;
    for round in 0..6 {
        // KeyUpdate with update_requested: the server must switch its own keys too, or the
        // answer cannot be opened.
        tls.get_mut().1.refresh_traffic_keys().unwrap();
        let (head, body) = exchange(&mut tls, &health_request(), b"").await;
        assert!(head.starts_with("HTTP/1.1 200"), "round {round}: {head}");
        assert_eq!(body, b"200 OK");
        if round == 3 {
            // Let the connection park (after 1 s of quiet), then update keys while parked.
            tokio::time::sleep(Duration::from_millis(1600)).await;
        }
    }
    // A key update alone, with nothing after it: the server's answering KeyUpdate arrives
    // without waiting for a request.
    tls.get_mut().1.refresh_traffic_keys().unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (head, _) = exchange(&mut tls, &health_request(), b"").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[tokio::test]
async fn a_60_kb_request_body_arrives_intact_on_tls_1_2_and_1_3() {
    let server = TestServer::start().await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = client_config_with(&[&server.pki], &[version]);
        let mut tls = connect(server.https, HOST, config).await;
        // The address comes after 60 KB of comment: a lost, doubled or reordered record
        // leaves XML that does not parse or names no mailbox.
        let pattern: String = (0..60 * 1024)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let request = outlook_request("alice@contoso.com").replacen(
            "<Request>",
            &format!("<!--{pattern}--><Request>"),
            1,
        );
        assert!(request.len() > 60 * 1024);
        let head = format!(
            "POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: text/xml\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
            basic("alice@contoso.com", "alice-pw"),
            request.len()
        );
        for _ in 0..2 {
            let (answer_head, body) = exchange(&mut tls, &head, request.as_bytes()).await;
            assert!(answer_head.starts_with("HTTP/1.1 200"), "{answer_head}");
            let text = String::from_utf8(body).unwrap();
            assert!(text.contains("<Action>settings</Action>"), "{text}");
        }
    }
}
