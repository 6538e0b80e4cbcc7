//! The server's handshake step and record layer against rustls's client, in memory: every
//! cipher suite of both versions, key updates, the key limit, and what a misbehaving
//! client gets. A "scripted" client takes its real traffic keys from rustls and then
//! sends records rustls itself would never send.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::ClientConnection;
use rustls::crypto::CryptoProvider;
use rustls::server::UnbufferedServerConnection;
use rustls::version::{TLS12, TLS13};
use rustls::{AlertDescription, SupportedCipherSuite};

use super::record::{ContentType, Keys, RecordError, RecordLayer, Version};
use super::tests::{pattern, pki};
use super::traffic::Traffic;
use super::{handshake_step, HandshakeStep};

/// The server's certificate is ECDSA, so TLS 1.2 offers the ECDSA suites.
fn suites() -> Vec<SupportedCipherSuite> {
    rustls::crypto::ring::default_provider()
        .cipher_suites
        .into_iter()
        .filter(|suite| {
            let name = format!("{:?}", suite.suite());
            suite.tls13().is_some() || name.contains("ECDSA")
        })
        .collect()
}

struct Pair {
    client: ClientConnection,
    server: Traffic,
    /// Application data the server received during the handshake.
    early: Vec<u8>,
}

/// Completes a handshake between rustls's client (offering only `suite`) and the server's
/// handshake step, then hands the server over to its record layer.
fn pair(suite: SupportedCipherSuite, extract: bool) -> Pair {
    let version = suite.version();
    let pki = pki(if version == &TLS13 { &TLS13 } else { &TLS12 });
    let provider = CryptoProvider {
        cipher_suites: vec![suite],
        ..rustls::crypto::ring::default_provider()
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(pki.client_roots.clone())
        .with_no_client_auth();
    config.enable_secret_extraction = extract;
    let name = "autodiscover.contoso.com".try_into().unwrap();
    let mut client = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut server = UnbufferedServerConnection::new(Arc::clone(&pki.server)).unwrap();
    let (mut incoming, mut early, mut outgoing) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..10 {
        incoming.extend(client_output(&mut client));
        let step = handshake_step(&mut server, &mut incoming, &mut early, &mut outgoing).unwrap();
        deliver(&mut client, &std::mem::take(&mut outgoing)).unwrap();
        match step {
            HandshakeStep::Done => {
                assert!(!client.is_handshaking());
                assert!(incoming.is_empty());
                let server = Traffic::from_rustls(server).unwrap();
                return Pair {
                    client,
                    server,
                    early,
                };
            }
            HandshakeStep::NeedInput => {}
            HandshakeStep::PeerClosed => panic!("client closed during the handshake"),
        }
    }
    panic!("handshake did not complete");
}

fn client_output(client: &mut ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut out).unwrap();
    }
    out
}

fn deliver(client: &mut ClientConnection, mut bytes: &[u8]) -> Result<(), rustls::Error> {
    while !bytes.is_empty() {
        client.read_tls(&mut bytes).unwrap();
        client.process_new_packets()?;
    }
    Ok(())
}

/// Hands `bytes` to the client a piece at a time, reading as it goes (rustls holds only so
/// much unread plaintext).
fn deliver_and_read(client: &mut ClientConnection, mut bytes: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    while !bytes.is_empty() {
        client.read_tls(&mut bytes).unwrap();
        client.process_new_packets().unwrap();
        got.extend(client_read(client).0);
    }
    got
}

/// Everything the client can read now, and whether it saw close_notify.
fn client_read(client: &mut ClientConnection) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match client.reader().read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (got, false),
            Err(e) => panic!("client read failed: {e}"),
        }
    }
}

impl Pair {
    /// The client sends `data`; returns what the server read and what it answered.
    fn client_sends(&mut self, data: &[u8]) -> Result<(Vec<u8>, Vec<u8>, bool), RecordError> {
        self.client.writer().write_all(data).unwrap();
        let mut incoming = client_output(&mut self.client);
        let (mut plaintext, mut outgoing) = (Vec::new(), Vec::new());
        let closed = self
            .server
            .read(&mut incoming, &mut plaintext, &mut outgoing)?;
        assert!(incoming.is_empty(), "whole records were left unread");
        Ok((plaintext, outgoing, closed))
    }

    /// The server sends `data`; returns what the client read.
    fn server_sends(&mut self, data: &[u8]) -> Vec<u8> {
        let mut outgoing = Vec::new();
        self.server.write(data, &mut outgoing).unwrap();
        deliver_and_read(&mut self.client, &outgoing)
    }
}

#[test]
fn every_cipher_suite_of_both_versions_carries_data_both_ways() {
    let suites = suites();
    assert_eq!(suites.len(), 6, "3 TLS 1.3 and 3 TLS 1.2 ECDSA suites");
    for suite in suites {
        let mut pair = pair(suite, false);
        assert_eq!(pair.client.negotiated_cipher_suite(), Some(suite));
        assert!(pair.early.is_empty());
        for len in [1, 700, 40_000] {
            let up = pattern(len, 1);
            let (got, answer, closed) = pair.client_sends(&up).unwrap();
            assert!(got == up && answer.is_empty() && !closed, "{suite:?} {len}");
            let down = pattern(len, 2);
            assert!(pair.server_sends(&down) == down, "{suite:?} {len}");
            pair.server.release();
        }
    }
}

#[test]
fn client_key_updates_are_followed_and_answered_on_every_tls13_suite() {
    for suite in suites().into_iter().filter(|s| s.tls13().is_some()) {
        let mut pair = pair(suite, false);
        for round in 0..3u8 {
            // rustls asks the peer to update too (update_requested).
            pair.client.refresh_traffic_keys().unwrap();
            let up = pattern(5000, round);
            let (got, answer, _) = pair.client_sends(&up).unwrap();
            assert!(got == up, "{suite:?} round {round}");
            assert!(
                !answer.is_empty(),
                "the server answers with its own KeyUpdate"
            );
            deliver(&mut pair.client, &answer).unwrap();
            let down = pattern(3000, round);
            assert!(pair.server_sends(&down) == down, "{suite:?} round {round}");
        }
    }
}

#[test]
fn at_the_key_limit_tls13_renews_the_key_and_tls12_ends_the_connection() {
    for suite in suites() {
        let mut pair = pair(suite, false);
        // Two more records under this key, then a new one (or the end).
        pair.server.set_tx_limit(pair.server.tx_seq() + 2);
        let mut outgoing = Vec::new();
        let data = pattern(5 * 16_384, 9);
        let written = pair.server.write(&data, &mut outgoing);
        if suite.tls13().is_some() {
            written.unwrap();
            // The last three records went out under the new key, from sequence number 0.
            assert_eq!(pair.server.tx_seq(), 3, "{suite:?}");
            assert!(
                deliver_and_read(&mut pair.client, &outgoing) == data,
                "{suite:?}"
            );
        } else {
            assert_eq!(written, Err(RecordError::KeysExhausted), "{suite:?}");
            // The two records the key could still seal, and nothing after them.
            let got = deliver_and_read(&mut pair.client, &outgoing);
            assert!(got == data[..2 * 16_384], "{suite:?}");
        }
    }
}

#[test]
fn a_changed_byte_is_refused_and_the_client_is_told_bad_record_mac() {
    for suite in suites() {
        let mut pair = pair(suite, false);
        pair.client.writer().write_all(b"GET / HTTP/1.1").unwrap();
        let mut incoming = client_output(&mut pair.client);
        let last = incoming.len() - 1;
        incoming[last] ^= 0x80;
        let (mut plaintext, mut outgoing) = (Vec::new(), Vec::new());
        let refused = pair
            .server
            .read(&mut incoming, &mut plaintext, &mut outgoing);
        assert_eq!(refused, Err(RecordError::BadRecordMac), "{suite:?}");
        assert!(plaintext.is_empty());
        pair.server
            .fatal_alert(RecordError::BadRecordMac, &mut outgoing);
        let heard = deliver(&mut pair.client, &outgoing);
        assert_eq!(
            heard,
            Err(rustls::Error::AlertReceived(AlertDescription::BadRecordMac)),
            "{suite:?}"
        );
    }
}

#[test]
fn close_notify_ends_reading_on_both_sides() {
    for suite in suites() {
        let mut pair = pair(suite, false);
        let mut outgoing = Vec::new();
        pair.server.write(b"bye", &mut outgoing).unwrap();
        pair.server.close_notify(&mut outgoing).unwrap();
        deliver(&mut pair.client, &outgoing).unwrap();
        assert_eq!(client_read(&mut pair.client), (b"bye".to_vec(), true));
        pair.client.writer().write_all(b"last").unwrap();
        pair.client.send_close_notify();
        let mut incoming = client_output(&mut pair.client);
        let mut plaintext = Vec::new();
        let closed = pair
            .server
            .read(&mut incoming, &mut plaintext, &mut Vec::new())
            .unwrap();
        assert!(closed && plaintext == b"last", "{suite:?}");
    }
}

/// A client whose keys come from a real handshake but whose records are written by hand.
struct Scripted {
    client: RecordLayer,
    server: Traffic,
}

fn scripted(suite: SupportedCipherSuite) -> Scripted {
    let pair = pair(suite, true);
    let secrets = pair.client.dangerous_extract_secrets().unwrap();
    let version = if suite.tls13().is_some() {
        Version::Tls13
    } else {
        Version::Tls12
    };
    let rx = Keys::new(secrets.rx.1, secrets.rx.0).unwrap();
    let tx = Keys::new(secrets.tx.1, secrets.tx.0).unwrap();
    Scripted {
        client: RecordLayer::new(version, rx, tx),
        server: pair.server,
    }
}

impl Scripted {
    fn send(&mut self, content_type: ContentType, payload: &[u8]) -> Result<bool, RecordError> {
        let mut incoming = Vec::new();
        self.client
            .seal(content_type, payload, &mut incoming)
            .unwrap();
        self.server
            .read(&mut incoming, &mut Vec::new(), &mut Vec::new())
    }
}

#[test]
fn after_the_handshake_only_data_alerts_and_tls13_key_updates_are_accepted() {
    for suite in suites() {
        let tls13 = suite.tls13().is_some();
        let client_hello = [1, 0, 0, 4, 3, 3, 0, 0];
        let mut s = scripted(suite);
        let expected = if tls13 {
            RecordError::UnexpectedMessage
        } else {
            RecordError::Renegotiation
        };
        assert_eq!(s.send(ContentType::Handshake, &client_hello), Err(expected));
        if tls13 {
            let mut s = scripted(suite);
            assert_eq!(
                s.send(ContentType::Handshake, &[24, 0, 0, 1, 2]),
                Err(RecordError::IllegalParameter)
            );
            let mut s = scripted(suite);
            assert_eq!(
                s.send(ContentType::Handshake, &[24, 0, 0, 2, 0, 0]),
                Err(RecordError::DecodeError)
            );
            // A KeyUpdate must end its record.
            let mut s = scripted(suite);
            assert_eq!(
                s.send(ContentType::Handshake, &[24, 0, 0, 1, 0, 24, 0, 0, 1, 0]),
                Err(RecordError::UnexpectedMessage)
            );
            // user_canceled is a warning in TLS 1.3, every other alert ends the connection.
            let mut s = scripted(suite);
            assert_eq!(s.send(ContentType::Alert, &[1, 90]), Ok(false));
            assert_eq!(
                s.send(ContentType::Alert, &[1, 42]),
                Err(RecordError::PeerAlert(42))
            );
        } else {
            // TLS 1.2 warnings are ignored, fatal alerts end the connection.
            let mut s = scripted(suite);
            assert_eq!(s.send(ContentType::Alert, &[1, 42]), Ok(false));
            assert_eq!(
                s.send(ContentType::Alert, &[2, 40]),
                Err(RecordError::PeerAlert(40))
            );
        }
        let mut s = scripted(suite);
        assert_eq!(
            s.send(ContentType::Alert, &[1, 0, 0]),
            Err(RecordError::DecodeError)
        );
        let mut s = scripted(suite);
        assert_eq!(s.send(ContentType::Alert, &[1, 0]), Ok(true));
    }
}
