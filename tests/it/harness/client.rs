//! A real HTTP/1.1 client (hyper) over TLS (tokio-rustls) that keeps one connection, so
//! connection-bound authentication can be tested.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

use super::TestPki;

/// One response, fully read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect()
    }

    /// One header value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("").to_string())
    }
}

/// A keep-alive HTTP/1.1 connection over TLS.
pub struct TlsClient {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

/// A rustls client configuration trusting only the test CA.
pub fn client_config(pki: &TestPki) -> Arc<rustls::ClientConfig> {
    client_config_with(&[pki], rustls::DEFAULT_VERSIONS)
}

/// A rustls client configuration trusting the CAs of `pkis`, offering `versions` and ALPN
/// `http/1.1`.
pub fn client_config_with(
    pkis: &[&TestPki],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for pki in pkis {
        roots
            .add(CertificateDer::from(pki.ca_der()))
            .expect("add root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

impl TlsClient {
    /// Connects and completes the TLS handshake with `sni`.
    pub async fn connect(addr: SocketAddr, sni: &str, pki: &TestPki) -> TlsClient {
        TlsClient::try_connect(addr, sni, pki)
            .await
            .expect("connect")
    }

    /// Like [`TlsClient::connect`] but returns errors.
    pub async fn try_connect(
        addr: SocketAddr,
        sni: &str,
        pki: &TestPki,
    ) -> std::io::Result<TlsClient> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let connector = TlsConnector::from(client_config(pki));
        let name = ServerName::try_from(sni.to_string()).expect("server name");
        let tls = connector.connect(name, tcp).await?;
        let peer_certificates = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(TlsClient {
            sender,
            host: sni.to_string(),
            peer_certificates,
        })
    }

    /// Sends a request on this connection and reads the whole answer.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        self.try_send(method, path, headers, body)
            .await
            .expect("request")
    }

    /// Like [`TlsClient::send`] but returns errors (e.g. the server closed the connection).
    pub async fn try_send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, hyper::Error> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", self.host.as_str());
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("request");
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// POSTs a body with Basic credentials.
    pub async fn post_basic(
        &mut self,
        path: &str,
        user: &str,
        password: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let auth = basic(user, password);
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "text/xml"),
        ];
        headers.extend_from_slice(extra);
        self.send("POST", path, &headers, body.as_bytes()).await
    }
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
