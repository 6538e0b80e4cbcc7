//! One HTTPS endpoint over HTTP/1.1 (hyper): the request without credentials, the
//! authentication legs and the answer, parsed and explained.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::answer::{self, Answer};
use super::auth::{self, ClientAuth};
use super::plan::{HttpsUrl, Protocol};
use super::report::{Attempt, Outcome, Status, StepKind};
use super::Prober;

/// Largest answer the probe reads.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// What one HTTPS request produced.
pub(super) enum Exchange {
    Answer(Answer),
    /// A 3xx with this `Location`.
    Moved(String),
    Failed,
}

impl Prober<'_> {
    /// One HTTPS endpoint: connect, TLS, request(s), answer.
    pub(super) async fn https_once(&mut self, a: &mut Attempt, url: &HttpsUrl) -> Exchange {
        let mut wire = Vec::new();
        let exchange = self.https_exchange(a, url, &mut wire).await;
        if self.options.verbose && !wire.is_empty() {
            // The evidence goes to the last request or authentication step of the attempt.
            if let Some(step) = a
                .steps
                .iter_mut()
                .rev()
                .find(|s| matches!(s.kind, StepKind::Request | StepKind::Authentication))
            {
                step.details.append(&mut wire);
            }
        }
        exchange
    }

    async fn https_exchange(
        &mut self,
        a: &mut Attempt,
        url: &HttpsUrl,
        wire: &mut Vec<String>,
    ) -> Exchange {
        let Some(tcp) = self.connect(a, &url.host, url.port).await else {
            a.fail(format!("cannot reach {}:{}", url.host, url.port));
            return Exchange::Failed;
        };
        let Some(tls) = self.tls(a, &url.host, tcp).await else {
            if matches!(a.outcome, Outcome::Failed { ref reason } if reason == "not finished") {
                a.fail("TLS failed");
            }
            return Exchange::Failed;
        };
        let mut sender = match http_handshake(tls, self.options.timeout).await {
            Ok(s) => s,
            Err(e) => {
                a.step(
                    StepKind::Request,
                    Status::Fail,
                    format!("HTTP/1.1 over TLS failed: {e}"),
                );
                a.fail("HTTP failed");
                return Exchange::Failed;
            }
        };
        let address = self.journey.current().to_string();
        let host_header = if url.port == 443 {
            url.host.clone()
        } else {
            format!("{}:{}", url.host, url.port)
        };
        let protocol = self.options.protocol;
        let (method, body) = match protocol {
            Protocol::Pox | Protocol::MobileSync => {
                // The legacy DN stands in for the address asked about first only: after a
                // redirectAddr the client asks for the new address.
                let subject = match &self.options.legacy_dn {
                    Some(dn) if self.journey.addresses().len() == 1 => {
                        answer::Subject::LegacyDn(dn)
                    }
                    _ => answer::Subject::Address(&address),
                };
                (
                    "POST",
                    answer::pox_request_for(subject, protocol == Protocol::MobileSync),
                )
            }
            Protocol::Soap => ("POST", answer::soap_request(&address, &url.text())),
            Protocol::V2 | Protocol::Autoconfig | Protocol::Mobileconfig => ("GET", Vec::new()),
        };
        let build = |authorization: Option<&str>| {
            let mut b = Request::builder()
                .method(method)
                .uri(url.path.as_str())
                .header(http::header::HOST, host_header.as_str())
                .header(
                    http::header::USER_AGENT,
                    concat!("autodiscoverd-probe/", env!("CARGO_PKG_VERSION")),
                );
            if protocol.authenticated() {
                b = b
                    .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
                    .header("X-AnchorMailbox", address.as_str());
                if self.options.mapi_http && protocol == Protocol::Pox {
                    b = b.header("X-MapiHttpCapability", "1");
                }
            }
            if let Some(v) = authorization {
                b = b.header(http::header::AUTHORIZATION, v);
            }
            b.body(Full::new(Bytes::from(body.clone())))
        };
        let label = format!("{method} {}", url.path);
        let first = match build(None) {
            Ok(r) => send(&mut sender, r, self.options.timeout).await,
            Err(e) => Err(e.to_string()),
        };
        wire.extend(request_lines(&label, None, &body));
        if let Ok(r) = &first {
            wire.extend(response_lines(r));
        }
        let mut response = match first {
            Ok(r) => r,
            Err(e) => {
                a.step(
                    StepKind::Request,
                    Status::Fail,
                    format!("{label} without credentials failed: {e}"),
                );
                a.fail("HTTP failed");
                return Exchange::Failed;
            }
        };
        if response.status == StatusCode::UNAUTHORIZED && protocol.authenticated() {
            let offered = auth::offered_schemes(&response.www_authenticate());
            a.step(
                StepKind::Request,
                Status::Pass,
                format!(
                    "{label} without credentials: 401, server offers {}",
                    if offered.is_empty() {
                        "no scheme".to_string()
                    } else {
                        offered.join(", ")
                    }
                ),
            );
            match auth::bearer_offer(&response.www_authenticate()) {
                Some(Ok(summary)) => {
                    a.step(
                        StepKind::Authentication,
                        Status::Pass,
                        format!(
                            "modern authentication (HMA) offered: Bearer challenge with {summary}"
                        ),
                    );
                }
                Some(Err(problem)) => {
                    a.step(
                        StepKind::Authentication,
                        Status::Fail,
                        format!("modern authentication: the Bearer challenge is malformed: {problem}"),
                    )
                    .detail("Outlook reads authorization_uri and the tenant from this challenge to get a token from Entra ID");
                }
                None if self.options.bearer.is_some() => {
                    a.step(
                        StepKind::Authentication,
                        Status::Fail,
                        "modern authentication (HMA) is not offered: no Bearer challenge",
                    )
                    .detail(
                        "configure [auth.bearer] on the server (docs/modern-authentication.md)",
                    );
                    a.fail("no Bearer challenge");
                    return Exchange::Failed;
                }
                None => {}
            }
            let (mut scheme, who): (Box<dyn ClientAuth>, String) = match (
                &self.options.bearer,
                &self.options.credentials,
            ) {
                (Some(token), _) => (
                    Box::new(auth::Bearer::new(token)),
                    "the --bearer token".to_string(),
                ),
                (None, Some(credentials)) => match auth::choose(self.options.auth, &offered) {
                    Ok(auth::Scheme::Basic) => (
                        Box::new(auth::Basic::new(credentials.clone())),
                        credentials.user.clone(),
                    ),
                    Ok(auth::Scheme::Ntlm) => (
                        Box::new(auth::Ntlm::new(
                            credentials,
                            rand::random::<[u8; 8]>(),
                            rand::random::<[u8; 16]>(),
                        )),
                        credentials.user.clone(),
                    ),
                    other => {
                        let problem = other
                            .err()
                            .unwrap_or_else(|| "a token is presented with --bearer".to_string());
                        a.step(StepKind::Authentication, Status::Fail, problem);
                        a.fail("no common authentication scheme");
                        return Exchange::Failed;
                    }
                },
                (None, None) => {
                    a.step(
                        StepKind::Authentication,
                        Status::Fail,
                        "authentication required but no credentials given (--user, --password, --password-file or --bearer)",
                    );
                    a.fail("no credentials");
                    return Exchange::Failed;
                }
            };
            let mut challenge: Option<String> = None;
            let mut legs = 0;
            loop {
                let Some(header) = scheme.next_leg(challenge.as_deref()) else {
                    a.step(
                        StepKind::Authentication,
                        Status::Fail,
                        format!("credentials for {} rejected ({} answered 401 after {} leg{})", who, scheme.scheme(), legs, if legs == 1 { "" } else { "s" }),
                    )
                    .detail("wrong password, unknown or disabled account, or a login name the server does not accept");
                    a.fail("authentication failed");
                    return Exchange::Failed;
                };
                legs += 1;
                let sent = match build(Some(&header)) {
                    Ok(r) => send(&mut sender, r, self.options.timeout).await,
                    Err(e) => Err(e.to_string()),
                };
                wire.extend(request_lines(&label, Some(&header), &[]));
                if let Ok(r) = &sent {
                    wire.extend(response_lines(r));
                }
                response = match sent {
                    Ok(r) => r,
                    Err(e) => {
                        a.step(
                            StepKind::Authentication,
                            Status::Fail,
                            format!("{label} with credentials failed: {e}"),
                        );
                        a.fail("HTTP failed");
                        return Exchange::Failed;
                    }
                };
                if response.status != StatusCode::UNAUTHORIZED {
                    break;
                }
                challenge = auth::challenge_token(&response.www_authenticate(), scheme.scheme())
                    .map(str::to_string);
            }
            let status = response.status;
            if status.is_success() || status.is_redirection() {
                a.step(
                    StepKind::Authentication,
                    Status::Pass,
                    format!(
                        "{label} as {} ({}): HTTP {}",
                        who,
                        scheme.scheme(),
                        status.as_u16()
                    ),
                );
            } else {
                a.step(
                    StepKind::Authentication,
                    Status::Fail,
                    format!(
                        "{label} as {} ({}): HTTP {}",
                        who,
                        scheme.scheme(),
                        status.as_u16()
                    ),
                );
                a.fail(format!("HTTP {}", status.as_u16()));
                return Exchange::Failed;
            }
        } else {
            let status = response.status;
            let ok = status.is_success() || status.is_redirection();
            a.step(
                StepKind::Request,
                if ok { Status::Pass } else { Status::Fail },
                format!(
                    "{label}: HTTP {}{}",
                    status.as_u16(),
                    if protocol.authenticated() && ok {
                        " without authentication"
                    } else {
                        ""
                    }
                ),
            );
            if !ok {
                a.fail(format!("HTTP {}", status.as_u16()));
                return Exchange::Failed;
            }
        }
        if response.status.is_redirection() {
            return match response.location() {
                Some(location) => {
                    a.step(
                        StepKind::Redirect,
                        Status::Info,
                        format!("HTTP {} redirect to {location}", response.status.as_u16()),
                    );
                    Exchange::Moved(location)
                }
                None => {
                    a.step(
                        StepKind::Redirect,
                        Status::Fail,
                        format!("HTTP {} without Location", response.status.as_u16()),
                    );
                    a.fail("redirect without Location");
                    Exchange::Failed
                }
            };
        }
        wire.extend(body_lines("<", &response.body));
        self.read_answer(a, &response)
    }

    pub(super) fn read_answer(&self, a: &mut Attempt, response: &Response) -> Exchange {
        let parsed = match self.options.protocol {
            Protocol::Pox => answer::parse_pox(&response.body),
            Protocol::MobileSync => answer::parse_mobilesync(&response.body),
            Protocol::Soap => answer::parse_soap(&response.body),
            Protocol::V2 => answer::parse_v2(&response.body),
            Protocol::Autoconfig => answer::parse_autoconfig(&response.body),
            Protocol::Mobileconfig => answer::parse_mobileconfig(&response.body),
        };
        let content_type = response.header("content-type").unwrap_or_default();
        let (settings_label, addr_label, url_label) = match self.options.protocol {
            Protocol::Pox => (
                "settings received (Action=settings)",
                "Action=redirectAddr: the mailbox is elsewhere; RedirectAddr",
                "Action=redirectUrl: ask",
            ),
            Protocol::MobileSync => (
                "settings received (Action/Settings, Server Type MobileSync)",
                "Action/Redirect: the mailbox is elsewhere; Redirect",
                "ask",
            ),
            Protocol::Soap => (
                "settings received (UserResponse ErrorCode=NoError)",
                "ErrorCode=RedirectAddress: the mailbox is elsewhere; RedirectTarget",
                "ErrorCode=RedirectUrl: ask",
            ),
            Protocol::V2 => ("service URL received (200 JSON)", "redirect to", "ask"),
            Protocol::Autoconfig => ("autoconfig document received", "redirect to", "ask"),
            Protocol::Mobileconfig => ("configuration profile received", "redirect to", "ask"),
        };
        match parsed {
            Err(e) => {
                a.step(
                    StepKind::Response,
                    Status::Fail,
                    format!("unreadable answer: {e}"),
                )
                .detail(format!(
                    "Content-Type: {content_type}, {} bytes",
                    response.body.len()
                ));
                a.fail("unreadable answer");
                Exchange::Failed
            }
            Ok(Answer::Settings(s)) => {
                let step = a.step(StepKind::Response, Status::Pass, settings_label);
                if let Some(smtp) = &s.smtp_address {
                    step.detail(format!("AutoDiscoverSMTPAddress {smtp}"));
                }
                match s.microsoft_online {
                    Some(true) => {
                        step.detail("MicrosoftOnline=True: an Exchange Online answer");
                    }
                    Some(false) => {
                        step.detail("MicrosoftOnline=False: an on-premises answer");
                    }
                    None => {}
                }
                if let Some(ews) = &s.ews_url {
                    step.detail(format!("EWS {ews}"));
                }
                if let Some(mapi) = &s.mapi_mailstore_url {
                    step.detail(format!("MAPI/HTTP {mapi}"));
                }
                if !s.protocols.is_empty() {
                    let kinds: Vec<&str> = s.protocols.iter().map(|p| p.kind.as_str()).collect();
                    step.detail(format!("Protocol blocks: {}", kinds.join(", ")));
                }
                Exchange::Answer(Answer::Settings(s))
            }
            Ok(Answer::RedirectAddr(target)) => {
                a.step(
                    StepKind::Response,
                    Status::Info,
                    format!("{addr_label} {target}"),
                );
                Exchange::Answer(Answer::RedirectAddr(target))
            }
            Ok(Answer::RedirectUrl(target)) => {
                a.step(
                    StepKind::Response,
                    Status::Info,
                    format!("{url_label} {target} instead"),
                );
                Exchange::Answer(Answer::RedirectUrl(target))
            }
            Ok(Answer::Error { code, message }) => {
                a.step(
                    StepKind::Response,
                    Status::Fail,
                    format!("Autodiscover error {code}: {message}"),
                );
                a.fail(format!("error {code}"));
                Exchange::Answer(Answer::Error { code, message })
            }
        }
    }
}

/// One HTTP response, fully read.
pub(super) struct Response {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Response {
    pub(super) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub(super) fn www_authenticate(&self) -> Vec<String> {
        self.headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }

    pub(super) fn location(&self) -> Option<String> {
        self.header("location")
    }
}

/// Response headers that help Microsoft support and admins trace a request.
const EVIDENCE_HEADERS: [&str; 6] = [
    "request-id",
    "x-feserver",
    "x-beserver",
    "x-diaginfo",
    "x-calculatedbetarget",
    "content-type",
];

/// Largest body shown with `-v`.
const EVIDENCE_BODY_BYTES: usize = 16 * 1024;

/// `-v`: the request line, with the Authorization header reduced to its scheme (a Basic
/// value is the password in base64), and the body when it is the first send.
fn request_lines(label: &str, authorization: Option<&str>, body: &[u8]) -> Vec<String> {
    let auth = match authorization {
        Some(value) => {
            let scheme = value.split_whitespace().next().unwrap_or("");
            format!(" with Authorization: {scheme} (credentials not shown)")
        }
        None => " without Authorization".to_string(),
    };
    let mut out = vec![format!("> {label}{auth}")];
    out.extend(body_lines(">", body));
    out
}

/// `-v`: status and the headers worth seeing (every WWW-Authenticate offer, scheme only
/// when it carries a token).
fn response_lines(response: &Response) -> Vec<String> {
    let mut out = vec![format!("< HTTP {}", response.status.as_u16())];
    for offer in response.www_authenticate() {
        let shown = match offer.split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("ntlm")
                    || scheme.eq_ignore_ascii_case("negotiate") =>
            {
                format!("{scheme} (token of {} characters)", token.len())
            }
            _ => offer,
        };
        out.push(format!("< WWW-Authenticate: {shown}"));
    }
    for name in EVIDENCE_HEADERS {
        if let Some(value) = response.header(name) {
            out.push(format!("< {name}: {value}"));
        }
    }
    out
}

/// `-v`: a body, line by line, cut at [`EVIDENCE_BODY_BYTES`].
fn body_lines(direction: &str, body: &[u8]) -> Vec<String> {
    if body.is_empty() {
        return Vec::new();
    }
    let shown = body.get(..EVIDENCE_BODY_BYTES).unwrap_or(body);
    let text = String::from_utf8_lossy(shown);
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{direction} | {l}"))
        .collect();
    if body.len() > shown.len() {
        out.push(format!(
            "{direction} | ... ({} more bytes)",
            body.len() - shown.len()
        ));
    }
    out
}

/// An unauthenticated GET of `path` with this `Host` (the port-80 redirect method, the
/// service URL checks).
pub(super) fn plain_get(path: &str, host: &str) -> Result<Request<Full<Bytes>>, String> {
    Request::builder()
        .method("GET")
        .uri(path)
        .header(http::header::HOST, host)
        .header(
            http::header::USER_AGENT,
            concat!("autodiscoverd-probe/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())
}

pub(super) async fn http_handshake<S>(
    stream: S,
    timeout: Duration,
) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = tokio::time::timeout(
        timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| "HTTP handshake timed out".to_string())?
    .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

pub(super) async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Response, String> {
    let exchange = async {
        sender.ready().await.map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| "no answer in time".to_string())?
}
