//! Reverse-proxy mode on the real binary: plain listeners, trusted X-Forwarded-For /
//! X-Forwarded-Proto, PROXY protocol v1/v2 (accepted from trusted peers only), and the rule
//! that Basic credentials need an encrypted client hop.

use std::net::SocketAddr;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use autodiscoverd::server::net::proxy::encode_v2;

use crate::harness::client::{basic, client_config};
use crate::harness::daemon::{scrape, send_over, Daemon};
use crate::harness::haproxy::{connect_from, haproxy, start_haproxy};
use crate::harness::{outlook_request, set, Answer};

const PATH: &str = "/autodiscover/autodiscover.xml";
const WAIT: Duration = Duration::from_secs(20);

fn list(addrs: &[&str]) -> toml::Value {
    toml::Value::Array(addrs.iter().map(|a| (*a).into()).collect())
}

/// A daemon with every proxy listener kind on 127.0.0.1:0 and `trusted` proxies.
fn daemon(trusted: &[&str]) -> Daemon {
    let trusted = list(trusted);
    Daemon::start(&move |t| {
        set(t, &["proxy", "trusted"], trusted.clone());
        set(t, &["proxy", "plain_listen"], list(&["127.0.0.1:0"]));
        set(
            t,
            &["proxy", "proxy_protocol_https_listen"],
            list(&["127.0.0.1:0"]),
        );
        set(
            t,
            &["proxy", "proxy_protocol_plain_listen"],
            list(&["127.0.0.1:0"]),
        );
    })
}

async fn post<S>(stream: S, headers: &[(&str, &str)], user: Option<(&str, &str)>) -> Answer
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let auth = user.map(|(u, p)| basic(u, p));
    let mut all: Vec<(&str, &str)> = vec![("Content-Type", "text/xml")];
    if let Some(a) = &auth {
        all.push(("Authorization", a.as_str()));
    }
    all.extend_from_slice(headers);
    send_over(
        stream,
        "POST",
        PATH,
        &all,
        outlook_request("alice@contoso.com").as_bytes(),
    )
    .await
    .expect("answer")
}

fn action(a: &Answer) -> String {
    let text = a.text();
    let doc = roxmltree::Document::parse(&text).expect("XML");
    doc.descendants()
        .find(|n| n.has_tag_name("Action"))
        .and_then(|n| n.text())
        .unwrap_or_default()
        .to_string()
}

/// The client address the access log recorded for the latest request with `outcome`.
fn logged_client(d: &Daemon, outcome: &str) -> String {
    let e = d
        .wait_event(WAIT, |e| e["target"] == "access" && e["outcome"] == outcome)
        .unwrap_or_else(|| panic!("no access line with outcome {outcome}:\n{}", d.log_text()));
    e["client"].as_str().unwrap().to_string()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let d = daemon(&["192.0.2.0/24"]);
    let a = post(
        connect(d.addr("plain")).await,
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
        ],
        None,
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(logged_client(&d, "unauthorized"), "127.0.0.1");
    // The spoofed X-Forwarded-Proto does not make the hop secure: no Basic offer, and
    // Basic credentials are refused.
    assert!(a
        .header_all("www-authenticate")
        .iter()
        .all(|v| !v.starts_with("Basic")));
    let a = post(
        connect(d.addr("plain")).await,
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
        ],
        Some(("alice@contoso.com", "alice-pw")),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(logged_client(&d, "basic_refused_insecure"), "127.0.0.1");
    // A bearer token is as good as a password until it expires: refused the same way.
    let a = send_over(
        connect(d.addr("plain")).await,
        "POST",
        "/autodiscover/autodiscover.xml",
        &[
            ("Host", "autodiscover.contoso.com"),
            ("Authorization", "Bearer eyJ0eXAiOiJKV1QifQ.e30.c2ln"),
        ],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(a.status, 403);
    assert_eq!(logged_client(&d, "bearer_refused_insecure"), "127.0.0.1");
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_gives_the_right_most_untrusted_hop() {
    let d = daemon(&["127.0.0.1/32"]);
    // The client put 6.6.6.6 in the header itself; the proxy appended 203.0.113.9.
    let a = post(
        connect(d.addr("plain")).await,
        &[
            ("X-Forwarded-For", "6.6.6.6, 203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
        ],
        Some(("alice@contoso.com", "alice-pw")),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(action(&a), "settings");
    assert_eq!(logged_client(&d, "settings"), "203.0.113.9");
}

#[tokio::test]
async fn basic_on_a_plain_listener_needs_a_trusted_proxy_that_terminated_tls() {
    let d = daemon(&["127.0.0.1/32"]);
    let alice = Some(("alice@contoso.com", "alice-pw"));
    for headers in [
        vec![],
        vec![("X-Forwarded-Proto", "http")],
        vec![("X-Forwarded-Proto", "https, http")],
    ] {
        let a = post(connect(d.addr("plain")).await, &headers, alice).await;
        assert_eq!(a.status, 403, "{headers:?}");
        assert!(a.text().contains("https"));
    }
    let anonymous = post(connect(d.addr("plain")).await, &[], None).await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous
        .header_all("www-authenticate")
        .iter()
        .all(|v| !v.starts_with("Basic")));
    let anonymous = post(
        connect(d.addr("plain")).await,
        &[("X-Forwarded-Proto", "https")],
        None,
    )
    .await;
    assert!(anonymous
        .header_all("www-authenticate")
        .iter()
        .any(|v| v.starts_with("Basic")));
    let a = post(
        connect(d.addr("plain")).await,
        &[("X-Forwarded-Proto", "https")],
        alice,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(action(&a), "settings");
}

#[tokio::test]
async fn proxy_v1_and_v2_headers_from_trusted_peers_set_the_client_address() {
    let d = daemon(&["127.0.0.1/32"]);

    // v1 on the plain PROXY listener.
    let mut s = connect(d.addr("plain_proxy")).await;
    s.write_all(b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n")
        .await
        .unwrap();
    let a = post(s, &[], None).await;
    assert_eq!(a.status, 401);
    assert_eq!(logged_client(&d, "unauthorized"), "198.51.100.7");
    // HTTP headers on an L4 PROXY connection come from the client: not believed.
    let mut s = connect(d.addr("plain_proxy")).await;
    s.write_all(b"PROXY TCP4 198.51.100.8 192.0.2.1 40000 80\r\n")
        .await
        .unwrap();
    let a = post(
        s,
        &[
            ("X-Forwarded-For", "10.9.9.9"),
            ("X-Forwarded-Proto", "https"),
        ],
        Some(("alice@contoso.com", "alice-pw")),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(logged_client(&d, "basic_refused_insecure"), "198.51.100.8");

    // v2 with PP2_TYPE_SSL (client used TLS to the proxy) on the plain PROXY listener.
    let ssl_tlv = [0x20, 0x00, 0x05, 0x01, 0, 0, 0, 0];
    let mut s = connect(d.addr("plain_proxy")).await;
    let header = encode_v2(
        "[2001:db8::77]:5555".parse().unwrap(),
        "[2001:db8::1]:443".parse().unwrap(),
        &ssl_tlv,
    );
    s.write_all(&header).await.unwrap();
    let a = post(s, &[], Some(("alice@contoso.com", "alice-pw"))).await;
    assert_eq!(a.status, 200);
    assert_eq!(action(&a), "settings");
    assert_eq!(logged_client(&d, "settings"), "2001:db8::77");

    // v2 then TLS on the HTTPS PROXY listener (L4 pass-through, as HAProxy mode tcp).
    let mut s = connect(d.addr("https_proxy")).await;
    let header = encode_v2(
        "203.0.113.44:6000".parse().unwrap(),
        "192.0.2.1:443".parse().unwrap(),
        &[],
    );
    s.write_all(&header).await.unwrap();
    let connector = TlsConnector::from(client_config(&d.pki));
    let tls = connector
        .connect(ServerName::try_from("autodiscover.contoso.com").unwrap(), s)
        .await
        .unwrap();
    let a = send_over(
        tls,
        "GET",
        PATH,
        &[("Authorization", &basic("bob@contoso.com", "bob-pw"))],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(a.status, 200, "authenticated GET: Error 600 in a 200");
    let e = d
        .wait_event(WAIT, |e| {
            e["target"] == "access" && e["user"] == "bob@contoso.com"
        })
        .unwrap();
    assert_eq!(e["client"], "203.0.113.44");
}

/// Writes `bytes` and reads until the server closes; returns what came back.
async fn refused(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = connect(addr).await;
    let _ = s.write_all(bytes).await;
    let mut back = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut back)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    back
}

#[tokio::test]
async fn proxy_headers_from_untrusted_peers_or_malformed_ones_are_refused() {
    let d = daemon(&["192.0.2.0/24"]);
    let metrics = d.addr("metrics");
    let before = scrape(metrics).await;
    let mut request = b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n".to_vec();
    request.extend_from_slice(b"GET /autodiscover/healthcheck.htm HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(refused(d.addr("plain_proxy"), &request).await, b"");
    let v2 = encode_v2(
        "198.51.100.7:1".parse().unwrap(),
        "192.0.2.1:443".parse().unwrap(),
        &[],
    );
    assert_eq!(refused(d.addr("https_proxy"), &v2).await, b"");
    let after = scrape(metrics).await;
    let untrusted = r#"autodiscoverd_proxy_protocol_rejected_total{reason="untrusted"}"#;
    assert_eq!(
        after.get(untrusted).copied().unwrap_or(0.0)
            - before.get(untrusted).copied().unwrap_or(0.0),
        2.0
    );

    // From a trusted peer, a missing or malformed header still closes the connection.
    let d = daemon(&["127.0.0.1/32"]);
    let before = scrape(d.addr("metrics")).await;
    let plain = b"GET /autodiscover/healthcheck.htm HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(refused(d.addr("plain_proxy"), plain).await, b"");
    assert_eq!(
        refused(
            d.addr("plain_proxy"),
            b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n"
        )
        .await,
        b""
    );
    let after = scrape(d.addr("metrics")).await;
    let malformed = r#"autodiscoverd_proxy_protocol_rejected_total{reason="malformed"}"#;
    assert_eq!(
        after.get(malformed).copied().unwrap_or(0.0)
            - before.get(malformed).copied().unwrap_or(0.0),
        2.0
    );
    // The same listener serves a well-formed one.
    let mut ok = b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n".to_vec();
    ok.extend_from_slice(plain);
    let mut s = connect(d.addr("plain_proxy")).await;
    s.write_all(&ok).await.unwrap();
    let mut back = vec![0u8; 17];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"HTTP/1.1 200 OK\r\n");
}

// ---------------------------------------------------------------------------------------
// A real HAProxy in front (deploy/haproxy/*.cfg, trimmed to the lines that matter).

#[tokio::test]
async fn haproxy_tcp_mode_with_send_proxy_v2_passes_tls_and_the_client_address() {
    let Some(bin) = haproxy() else { return };
    let d = daemon(&["127.0.0.1/32"]);
    let backend = d.addr("https_proxy");
    let lb = start_haproxy(
        bin,
        d.dir.path(),
        &format!(
            "frontend tls\n    mode tcp\n    bind @LISTEN@\n    default_backend ad\nbackend ad\n    mode tcp\n    server ad1 {backend} send-proxy-v2\n"
        ),
    )
    .await;
    let tcp = connect_from("127.0.0.2", lb.addr).await;
    let connector = TlsConnector::from(client_config(&d.pki));
    let tls = connector
        .connect(
            ServerName::try_from("autodiscover.contoso.com").unwrap(),
            tcp,
        )
        .await
        .expect("TLS through HAProxy reaches autodiscoverd");
    let a = post(tls, &[], Some(("alice@contoso.com", "alice-pw"))).await;
    assert_eq!(a.status, 200);
    assert_eq!(action(&a), "settings");
    assert_eq!(logged_client(&d, "settings"), "127.0.0.2");
}

#[tokio::test]
async fn haproxy_http_mode_terminating_tls_forwards_the_client_and_allows_basic() {
    let Some(bin) = haproxy() else { return };
    let d = daemon(&["127.0.0.1/32"]);
    let backend = d.addr("plain");
    // HAProxy wants certificate chain and key in one file.
    let (cert, key) = d
        .pki
        .write_leaf(d.dir.path(), "lb", &["autodiscover.contoso.com"]);
    let bundle = d.dir.path().join("lb-bundle.pem");
    std::fs::write(
        &bundle,
        format!(
            "{}{}",
            std::fs::read_to_string(cert).unwrap(),
            std::fs::read_to_string(key).unwrap()
        ),
    )
    .unwrap();
    let lb = start_haproxy(
        bin,
        d.dir.path(),
        &format!(
            "frontend https\n    mode http\n    bind @LISTEN@ ssl crt {}\n    http-request del-header X-Forwarded-For\n    http-request set-header X-Forwarded-Proto https\n    option forwardfor\n    default_backend ad\nbackend ad\n    mode http\n    http-reuse never\n    server ad1 {backend}\n",
            bundle.display()
        ),
    )
    .await;
    let tcp = connect_from("127.0.0.3", lb.addr).await;
    let connector = TlsConnector::from(client_config(&d.pki));
    let tls = connector
        .connect(
            ServerName::try_from("autodiscover.contoso.com").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    // The client's own X-Forwarded-For is dropped by HAProxy and would not be believed anyway.
    let a = post(
        tls,
        &[("X-Forwarded-For", "6.6.6.6")],
        Some(("alice@contoso.com", "alice-pw")),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(action(&a), "settings");
    assert_eq!(logged_client(&d, "settings"), "127.0.0.3");
}
