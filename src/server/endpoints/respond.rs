//! The one place that turns outcomes into HTTP responses.

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, LOCATION, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

/// Response body type of every handler.
pub type Body = Full<Bytes>;

/// `Content-Type` of POX and SOAP answers, exactly (DavMail compares the string).
pub const TEXT_XML: &str = "text/xml; charset=utf-8";

fn response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

/// `X-SOAP-Enabled` (HTTP/1 sends header names in lower case either way); a constant, so
/// the name is not parsed again for every response.
const X_SOAP_ENABLED: HeaderName = HeaderName::from_static("x-soap-enabled");

/// Headers every `/autodiscover/*` response carries, 401s included: the EWS Managed API looks
/// for `X-SOAP-Enabled` on an unauthenticated GET.
pub fn add_autodiscover_headers(r: &mut Response<Body>) {
    let h = r.headers_mut();
    h.insert(X_SOAP_ENABLED, HeaderValue::from_static("True"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
}

/// HTTP 200 with an XML document (settings, redirects and Error bodies alike).
pub fn xml(body: impl Into<Bytes>) -> Response<Body> {
    let mut r = response(StatusCode::OK, body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_XML));
    add_autodiscover_headers(&mut r);
    r
}

/// 401 with one `WWW-Authenticate` line per scheme, empty body, keep-alive (NTLM and
/// Negotiate authenticate the connection, not the request: MS-NTHT, RFC 4559).
pub fn unauthorized(challenges: &[String]) -> Response<Body> {
    let mut r = response(StatusCode::UNAUTHORIZED, Bytes::new());
    for c in challenges {
        if let Ok(v) = HeaderValue::from_str(c) {
            r.headers_mut().append(WWW_AUTHENTICATE, v);
        }
    }
    add_autodiscover_headers(&mut r);
    r
}

/// `x-ms-diagnostics`: why a Bearer token was refused, in Exchange's
/// `<code>;reason="...";error_category="..."` shape.
pub fn add_diagnostics(r: &mut Response<Body>, value: &str) {
    const X_MS_DIAGNOSTICS: HeaderName = HeaderName::from_static("x-ms-diagnostics");
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(X_MS_DIAGNOSTICS, v);
    }
}

/// Adds one `WWW-Authenticate` line (the final Negotiate token on a 200).
pub fn add_www_authenticate(r: &mut Response<Body>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(WWW_AUTHENTICATE, v);
    }
}

/// 413: the body exceeds `server.max_body_bytes`; the connection is closed because the
/// rest of the body is not read.
pub fn too_large() -> Response<Body> {
    let mut r = response(StatusCode::PAYLOAD_TOO_LARGE, Bytes::new());
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// 408: the body did not arrive within `server.request_timeout_secs`.
pub fn request_timeout() -> Response<Body> {
    let mut r = response(StatusCode::REQUEST_TIMEOUT, Bytes::new());
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// 429: the client address failed to authenticate too often; `Retry-After` in seconds.
/// Carries the `/autodiscover/*` headers like every answer there.
pub fn too_many_requests(retry_after_secs: u64) -> Response<Body> {
    let mut r = response(StatusCode::TOO_MANY_REQUESTS, Bytes::new());
    add_retry_after(&mut r, retry_after_secs);
    add_autodiscover_headers(&mut r);
    r
}

/// 503: a component authentication depends on (the domain, through winbind) did not
/// answer; the client may retry after `Retry-After` seconds.
pub fn service_unavailable(retry_after_secs: u64) -> Response<Body> {
    let mut r = response(StatusCode::SERVICE_UNAVAILABLE, Bytes::new());
    add_retry_after(&mut r, retry_after_secs);
    add_autodiscover_headers(&mut r);
    r
}

/// Adds `Retry-After: <seconds>`.
pub fn add_retry_after(r: &mut Response<Body>, secs: u64) {
    r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
}

/// The benchmark baseline: 200 with a fixed 1 KiB text body (only served when
/// `server.benchmark_static_route` is on; see docs/benchmarks.md).
pub fn benchmark_static() -> Response<Body> {
    static BODY: [u8; 1024] = [b'x'; 1024];
    let mut r = response(StatusCode::OK, Bytes::from_static(&BODY));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// 404 with no body.
pub fn not_found() -> Response<Body> {
    response(StatusCode::NOT_FOUND, Bytes::new())
}

/// 405 listing the allowed methods.
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = response(StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// 200 to `OPTIONS` with the allowed methods.
pub fn options(allow: &'static str) -> Response<Body> {
    let mut r = response(StatusCode::OK, Bytes::new());
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    add_autodiscover_headers(&mut r);
    r
}

/// 200 with no body (authenticated HEAD).
pub fn empty_ok() -> Response<Body> {
    let mut r = response(StatusCode::OK, Bytes::new());
    add_autodiscover_headers(&mut r);
    r
}

/// `302 Found` with an absolute `Location` and IIS's tiny HTML body ([MS-OXDISCO] §3.1.5.4).
pub fn found(location: &str) -> Response<Body> {
    let escaped = location
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<html><head><title>Object moved</title></head><body><h2>Object moved to <a href=\"{escaped}\">here</a>.</h2></body></html>"
    );
    let mut r = response(StatusCode::FOUND, body);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// An XML document with a status other than 200: SOAP Faults are HTTP 500 (SOAP 1.1 §6.2;
/// exchangelib still parses the body).
pub fn xml_status(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = xml(body);
    *r.status_mut() = status;
    r
}

/// `Content-Type` of AutodiscoverV2 answers.
pub const APPLICATION_JSON: &str = "application/json; charset=utf-8";

/// An AutodiscoverV2 JSON answer (200 with a URL, or a 4xx/5xx error object).
pub fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = response(status, body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(APPLICATION_JSON));
    add_autodiscover_headers(&mut r);
    r
}

/// A plain-text (or other non-XML) answer for operational endpoints and refusals.
pub fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = response(status, body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `GET /autodiscover/healthcheck.htm`: 200 with the body `200 OK`, as Exchange answers load
/// balancers (no authentication). Carries the `/autodiscover/*` headers.
pub fn healthcheck() -> Response<Body> {
    let mut r = text(StatusCode::OK, "text/html", "200 OK");
    add_autodiscover_headers(&mut r);
    r
}

/// 403: Basic credentials or a bearer token (`scheme`: `basic`, `bearer`) arrived over a
/// connection that was not encrypted end to end.
pub fn insecure_credentials_refused(scheme: &str) -> Response<Body> {
    let body = if scheme == "bearer" {
        "Bearer tokens are refused over plain HTTP; connect with https.\n"
    } else {
        "Basic authentication is refused over plain HTTP; connect with https.\n"
    };
    let mut r = text(StatusCode::FORBIDDEN, "text/plain; charset=utf-8", body);
    add_autodiscover_headers(&mut r);
    r
}

/// `Content-Type` of autoconfig answers (Thunderbird accepts any XML type).
pub const APPLICATION_XML: &str = "application/xml; charset=utf-8";

/// An autoconfig document (or an error document) with `status`. Private: a per-mailbox
/// answer must not sit in shared caches.
pub fn autoconfig_xml(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = text(status, APPLICATION_XML, body);
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("private"));
    r
}

/// A configuration profile for Apple devices, offered as a download.
pub fn mobileconfig(body: impl Into<Bytes>) -> Response<Body> {
    let mut r = text(
        StatusCode::OK,
        crate::protocol::mobileconfig::CONTENT_TYPE,
        body,
    );
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.insert(
        http::header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"mail.mobileconfig\""),
    );
    r
}

/// `OPTIONS` (200 with `Allow`) and methods outside `allowed` (405) answered at once;
/// `None` for a method the endpoint serves.
pub fn method_gate(
    method: &Method,
    allowed: &[Method],
    allow: &'static str,
) -> Option<(Response<Body>, &'static str)> {
    if method == Method::OPTIONS {
        Some((options(allow), "options"))
    } else if !allowed.contains(method) {
        Some((method_not_allowed(allow), "method_not_allowed"))
    } else {
        None
    }
}
