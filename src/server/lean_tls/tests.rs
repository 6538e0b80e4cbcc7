//! LeanTls against rustls's own (buffered) client over real loopback TCP.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::version::{TLS12, TLS13};
use rustls::SupportedProtocolVersion;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use super::LeanTls;
use crate::server::park::ParkableIo;

pub(super) struct Pki {
    pub(super) server: Arc<rustls::ServerConfig>,
    pub(super) client_roots: rustls::RootCertStore,
}

pub(super) fn pki(version: &'static SupportedProtocolVersion) -> Pki {
    let key = rcgen::generate_simple_self_signed(vec![
        "autodiscover.contoso.com".into(),
        "127.0.0.1".into(),
    ])
    .unwrap();
    let cert = CertificateDer::from(key.cert.der().to_vec());
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], private)
        .unwrap();
    server.enable_secret_extraction = true;
    let mut client_roots = rustls::RootCertStore::empty();
    client_roots.add(cert).unwrap();
    Pki {
        server: Arc::new(server),
        client_roots,
    }
}

fn connector(pki: &Pki, version: &'static SupportedProtocolVersion) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(pki.client_roots.clone())
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A connected pair: (client, server stream, SNI the server saw).
async fn pair(
    version: &'static SupportedProtocolVersion,
    sni: &str,
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    LeanTls,
    Option<String>,
) {
    let pki = pki(version);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Arc::clone(&pki.server);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        LeanTls::accept(tcp, config).await.unwrap()
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let client = connector(&pki, version).connect(name, tcp).await.unwrap();
    let (server, seen) = server.await.unwrap();
    (client, server, seen)
}

pub(super) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Client sends `up` bytes, the server echoes them, both sides check every byte.
async fn echo(version: &'static SupportedProtocolVersion, len: usize) {
    let (mut client, mut server, sni) = pair(version, "AutoDiscover.contoso.com").await;
    assert_eq!(sni.as_deref(), Some("autodiscover.contoso.com"));
    let up = pattern(len, 7);
    let expected = up.clone();
    let echo = tokio::spawn(async move {
        let mut got = vec![0u8; len];
        server.read_exact(&mut got).await.unwrap();
        server.write_all(&got).await.unwrap();
        server.flush().await.unwrap();
        server
    });
    let writer = async {
        client.write_all(&up).await.unwrap();
        client.flush().await.unwrap();
        let mut back = vec![0u8; len];
        client.read_exact(&mut back).await.unwrap();
        back
    };
    let back = writer.await;
    assert!(back == expected, "echoed bytes differ");
    let mut server = echo.await.unwrap();
    // Idle now: every buffer can go.
    server.release_idle_buffers();
    assert_eq!(server.buffered_capacity(), 0);
}

#[tokio::test]
async fn tls13_carries_a_megabyte_both_ways_and_frees_its_buffers_when_idle() {
    echo(&TLS13, 1 << 20).await;
}

#[tokio::test]
async fn tls12_carries_a_megabyte_both_ways_and_frees_its_buffers_when_idle() {
    echo(&TLS12, 1 << 20).await;
}

#[tokio::test]
async fn small_exchanges_work_on_both_versions() {
    for version in [&TLS12, &TLS13] {
        echo(version, 1).await;
        echo(version, 700).await;
    }
}

#[tokio::test]
async fn a_key_update_from_the_client_is_answered_and_traffic_goes_on() {
    let (mut client, mut server, _) = pair(&TLS13, "autodiscover.contoso.com").await;
    for round in 0..3u8 {
        client.get_mut().1.refresh_traffic_keys().unwrap();
        let message = pattern(5000, round);
        client.write_all(&message).await.unwrap();
        client.flush().await.unwrap();
        let mut got = vec![0u8; message.len()];
        server.read_exact(&mut got).await.unwrap();
        assert!(got == message);
        server.write_all(b"ok").await.unwrap();
        server.flush().await.unwrap();
        let mut ok = [0u8; 2];
        client.read_exact(&mut ok).await.unwrap();
        assert_eq!(&ok, b"ok");
    }
}

#[tokio::test]
async fn close_notify_is_sent_and_received() {
    let (mut client, mut server, _) = pair(&TLS13, "autodiscover.contoso.com").await;
    server.write_all(b"bye").await.unwrap();
    server.shutdown().await.unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"bye");
    client.shutdown().await.unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(server.read(&mut buf).await.unwrap(), 0);
}

#[tokio::test]
async fn without_sni_the_handshake_succeeds_and_the_name_is_none() {
    let (_client, _server, sni) = pair(&TLS13, "127.0.0.1").await;
    assert_eq!(sni, None);
}

#[tokio::test]
async fn bytes_that_are_not_tls_fail_the_handshake_cleanly() {
    let pki = pki(&TLS13);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer).await;
    });
    let (tcp, _) = listener.accept().await.unwrap();
    assert!(LeanTls::accept(tcp, Arc::clone(&pki.server)).await.is_err());
    client.await.unwrap();
    // A client that goes away mid-handshake is an error too, not a hang.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&[22, 3, 1, 0, 200, 1, 0]).await.unwrap();
    });
    let (tcp, _) = listener.accept().await.unwrap();
    client.await.unwrap();
    assert!(LeanTls::accept(tcp, pki.server).await.is_err());
}
