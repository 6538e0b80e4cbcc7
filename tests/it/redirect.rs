//! The plain-HTTP redirect responder over a real socket.

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::harness::TestServer;

async fn get(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    auth: Option<&str>,
) -> (u16, Option<String>, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Host", host);
    if let Some(a) = auth {
        builder = builder.header("Authorization", a);
    }
    let response = sender
        .send_request(builder.body(Empty::<bytes::Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        response.headers().get("www-authenticate").is_none(),
        "never asks for credentials"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        location,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn autodiscover_paths_get_302_to_https() {
    let server = TestServer::start().await;
    let addr = server.redirect.unwrap();
    let (status, location, body) = get(
        addr,
        "GET",
        "/Autodiscover/Autodiscover.xml",
        "autodiscover.contoso.com",
        None,
    )
    .await;
    assert_eq!(status, 302);
    assert_eq!(
        location.as_deref(),
        Some("https://autodiscover.contoso.com/autodiscover/autodiscover.xml")
    );
    assert!(body.contains("Object moved"));
    let (status, location, _) = get(
        addr,
        "POST",
        "/autodiscover/autodiscover.svc",
        "autodiscover.contoso.com",
        Some("Basic YTpi"),
    )
    .await;
    assert_eq!(status, 302);
    assert_eq!(
        location.as_deref(),
        Some("https://autodiscover.contoso.com/autodiscover/autodiscover.svc")
    );
}

#[tokio::test]
async fn other_paths_on_the_redirect_listener_are_404() {
    let server = TestServer::start().await;
    let addr = server.redirect.unwrap();
    for path in [
        "/",
        "/owa/",
        "/autodiscover/",
        "/autodiscover/autodiscover.json",
    ] {
        let (status, location, _) = get(addr, "GET", path, "autodiscover.contoso.com", None).await;
        assert_eq!(status, 404, "{path}");
        assert!(location.is_none());
    }
}
