//! Glue for the HTTPS listener: route → read body → authenticate → parse → look up →
//! decide → render. No protocol rules live here; they are in `protocol`, `decision`,
//! `settings` and `auth`.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};

use super::answers::{self, AnswerKey};
use super::auth::{admit, Admission};
use super::body::read_request_body;
use super::respond::{self, Body};
use super::{client_of, ConnInfo, State};
use crate::config::LookupPolicy;
use crate::decision::{decide, Decision};
use crate::directory::{Directory, Identity, Lookup};
use crate::protocol::error_code::ErrorStamp;
use crate::protocol::pox::{self, Flavour};
use crate::protocol::{ClientCaps, ErrorCode};
use crate::settings::mailbox_settings;

const POX_ALLOW: &str = "OPTIONS, GET, POST, HEAD";

/// Routes on the HTTPS listener; path matching is case-insensitive (IIS semantics; Outlook
/// sends `/Autodiscover/Autodiscover.xml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Pox,
    /// `autodiscover.svc` (SOAP) and its aliases.
    Soap,
    /// `autodiscover.json` (AutodiscoverV2).
    V2,
    /// Mozilla autoconfig (`/mail/config-v1.1.xml`, its `.well-known` and `/v1.1/` forms).
    Autoconfig,
    /// Apple configuration profiles (`/mobileconfig`).
    Mobileconfig,
    OtherAutodiscover,
    NotFound,
}

/// Maps a request path to a route.
pub fn route(path: &str) -> Route {
    // The POX path first, without allocating (nearly every request).
    if path.eq_ignore_ascii_case("/autodiscover/autodiscover.xml") {
        return Route::Pox;
    }
    let lower = path.to_ascii_lowercase();
    if lower == "/autodiscover/autodiscover.xml" {
        Route::Pox
    } else if super::soap_v2::is_soap_path(&lower) {
        Route::Soap
    } else if crate::protocol::v2::is_v2_path(&lower) {
        Route::V2
    } else if lower.starts_with("/autodiscover/") {
        Route::OtherAutodiscover
    } else if crate::protocol::autoconfig::is_autoconfig_path(&lower) {
        Route::Autoconfig
    } else if crate::protocol::mobileconfig::is_mobileconfig_path(&lower) {
        Route::Mobileconfig
    } else {
        Route::NotFound
    }
}

/// Entry point of every HTTPS request.
pub async fn handle<B>(req: Request<B>, state: Arc<State>, conn: Arc<ConnInfo>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let client = client_of(&req, &conn);
    let ((mut response, note), stale) = crate::directory::noting_stale(async {
        match route(&path) {
            Route::Pox => pox_endpoint(req, &state, &conn).await,
            Route::Soap => {
                let (r, (outcome, user)) = super::soap_v2::soap_endpoint(req, &state, &conn).await;
                (r, Note { outcome, user })
            }
            Route::V2 => {
                let (r, (outcome, user)) = super::soap_v2::v2_endpoint(req, &state).await;
                (r, Note { outcome, user })
            }
            Route::Autoconfig => {
                let (r, (outcome, user)) =
                    super::clients::autoconfig_endpoint(req, &state, client).await;
                (r, Note { outcome, user })
            }
            Route::Mobileconfig => {
                let (r, (outcome, user)) =
                    super::clients::mobileconfig_endpoint(req, &state, client).await;
                (r, Note { outcome, user })
            }
            Route::OtherAutodiscover => {
                let mut r = respond::not_found();
                respond::add_autodiscover_headers(&mut r);
                (r, Note::outcome("not_found"))
            }
            Route::NotFound => match emulated_service(&state, &path) {
                Some(service) => {
                    let (r, (outcome, user)) =
                        super::front_door::front_door_endpoint(req, &state, &conn, service).await;
                    (r, Note { outcome, user })
                }
                None => (respond::not_found(), Note::outcome("not_found")),
            },
        }
    })
    .await;
    // Every /autodiscover/* answer says SOAP is here, errors included.
    if !matches!(
        route(&path),
        Route::NotFound | Route::Autoconfig | Route::Mobileconfig
    ) {
        respond::add_autodiscover_headers(&mut response);
    }
    // The final Negotiate token (our mechListMIC) of a handshake this request completed.
    if let Some(header) = state.ntlm.take_final_header(&conn) {
        respond::add_www_authenticate(&mut response, &header);
    }
    crate::ops::access::request(&crate::ops::access::AccessLine {
        client,
        sni: conn.sni.as_deref().unwrap_or("-"),
        method: method.as_str(),
        path: &path,
        endpoint: endpoint_label(&path),
        user: note.user.as_deref().unwrap_or("-"),
        outcome: note.outcome,
        stale,
        status: response.status().as_u16(),
        latency_us: started.elapsed().as_micros() as u64,
    });
    response
        .extensions_mut()
        .insert(crate::ops::metrics::RequestOutcome {
            outcome: note.outcome,
            authenticated: note.user.is_some(),
        });
    response
}

/// The Exchange service whose front door this path is, when the configuration emulates them.
fn emulated_service(state: &State, path: &str) -> Option<&'static str> {
    if !state.config.org.emulate_service_endpoints {
        return None;
    }
    super::front_door::service_of(&path.to_ascii_lowercase())
}

/// What the access log records about a request (never secrets).
struct Note {
    outcome: &'static str,
    user: Option<String>,
}

impl Note {
    fn outcome(outcome: &'static str) -> Note {
        Note {
            outcome,
            user: None,
        }
    }
}

fn error_stamp(state: &State) -> ErrorStamp {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() % (86_400 * 1_000_000_000))
        .unwrap_or(0) as u64;
    ErrorStamp {
        nanos_since_midnight: nanos,
        server_id: state.server_id,
    }
}

fn caps(headers: &HeaderMap) -> ClientCaps {
    // Constant names: a `&str` name is parsed and lower-cased again on every lookup.
    const MAPI_HTTP: http::HeaderName = http::HeaderName::from_static("x-mapihttpcapability");
    const CAN_HANDLE: http::HeaderName = http::HeaderName::from_static("x-clientcanhandle");
    let get = |name: &http::HeaderName| headers.get(name).map(|v| v.as_bytes());
    ClientCaps::from_headers(
        get(&MAPI_HTTP),
        get(&CAN_HANDLE),
        get(&http::header::USER_AGENT),
    )
}

async fn pox_endpoint<B>(req: Request<B>, state: &State, conn: &ConnInfo) -> (Response<Body>, Note)
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method().clone();
    let allowed = [Method::GET, Method::POST, Method::HEAD];
    if let Some((r, outcome)) = respond::method_gate(&method, &allowed, POX_ALLOW) {
        return (r, Note::outcome(outcome));
    }
    let (parts, body) = req.into_parts();
    // Read the body even when the answer will be 401: an unread body makes hyper close the
    // connection, and connection-bound authentication would be lost with it.
    let body = match read_request_body(body, &parts.headers, state).await {
        Ok(b) => b,
        Err(r) => return (r, Note::outcome("body_rejected")),
    };
    let identity = match admit(&parts, state, conn).await {
        Admission::Admitted(identity) => identity,
        Admission::Answered(r, outcome) => return (r, Note::outcome(outcome)),
        Admission::DirectoryDown => {
            let body = pox::render_error(
                Flavour::Outlook,
                ErrorCode::ServerError,
                error_stamp(state),
                None,
            );
            return (
                respond::xml(body),
                Note::outcome(ErrorCode::ServerError.label()),
            );
        }
    };
    let user = Some(identity.user_principal_name.clone());
    if method == Method::HEAD {
        return (
            respond::empty_ok(),
            Note {
                outcome: "head",
                user,
            },
        );
    }
    if method == Method::GET {
        // Exchange answers an authenticated GET with Error 600.
        let body = pox::render_error(
            Flavour::Outlook,
            ErrorCode::InvalidRequest,
            error_stamp(state),
            None,
        );
        return (
            respond::xml(body),
            Note {
                outcome: ErrorCode::InvalidRequest.label(),
                user,
            },
        );
    }
    let (body, outcome) = answer_pox(&body, &parts.headers, state, &identity).await;
    (respond::xml(body), Note { outcome, user })
}

/// Answers an authenticated POX POST body.
async fn answer_pox(
    body: &[u8],
    headers: &HeaderMap,
    state: &State,
    identity: &Identity,
) -> (Bytes, &'static str) {
    let request = match state.pox_bodies.parse(body) {
        Ok(r) => r,
        Err(reject) => {
            tracing::debug!(reason = %reject.reason, "POX request rejected");
            return (
                pox::render_error(reject.flavour, reject.code, error_stamp(state), None).into(),
                reject.code.label(),
            );
        }
    };
    let lookup = match (&request.legacy_dn, &request.email) {
        // LegacyDN wins when both are present (MS-OXDSCLI §3.2.5).
        (Some(dn), _) => Lookup::LegacyDn(dn.clone()),
        (None, Some(email)) => Lookup::Address(email.clone()),
        (None, None) => Lookup::Address(String::new()),
    };
    let email = request.email.as_deref();
    let found = match state.directory.find(&lookup).await {
        Ok(found) => found,
        Err(e) => {
            // The backend logs outages once per state change; per request is debug.
            tracing::debug!(error = %e, "directory unavailable during lookup");
            return (
                pox::render_error(
                    request.flavour,
                    ErrorCode::ServerError,
                    error_stamp(state),
                    email,
                )
                .into(),
                ErrorCode::ServerError.label(),
            );
        }
    };
    let found = found.filter(|r| match state.config.auth.lookup_policy {
        LookupPolicy::Any => true,
        LookupPolicy::SelfOnly => identity.addresses.iter().any(|a| r.has_address(a)),
    });
    let decision = decide(email, found.as_ref(), &state.config.mail);
    let label = decision.label();
    let now = Instant::now();
    let body: Vec<u8> = match (request.flavour, decision) {
        (Flavour::Outlook, Decision::Settings(r)) => {
            let caps = caps(headers);
            let body = state
                .answers
                .get_or_render(AnswerKey::Settings(r, caps), now, || {
                    let settings = mailbox_settings(&state.config.org, &state.config.services, r);
                    pox::render_outlook_settings(&settings, caps)
                });
            return (body, label);
        }
        (Flavour::Outlook, Decision::RedirectAddr(target)) => {
            pox::render_outlook_redirect_addr(&target)
        }
        (Flavour::Outlook, Decision::InternetMail(r)) => {
            match answers::internet_servers(state, &r.primary_smtp) {
                Some(servers) => {
                    let body = state
                        .answers
                        .get_or_render(AnswerKey::InternetMail(r), now, || {
                            pox::render_outlook_internet_settings(
                                &r.display_name,
                                &r.primary_smtp,
                                servers,
                                &servers.login_name(&r.primary_smtp),
                            )
                        });
                    return (body, label);
                }
                None => pox::render_error(
                    Flavour::Outlook,
                    ErrorCode::NoConfiguration,
                    error_stamp(state),
                    email,
                ),
            }
        }
        // ActiveSync does not serve an IMAP/POP3 mailbox: no configuration for it.
        (Flavour::MobileSync, Decision::InternetMail(_)) => pox::render_error(
            Flavour::MobileSync,
            ErrorCode::NoConfiguration,
            error_stamp(state),
            email,
        ),
        (Flavour::MobileSync, Decision::Settings(r)) => match &state.config.services.activesync {
            Some(eas) => {
                pox::render_mobilesync_settings(&r.display_name, &r.primary_smtp, &eas.external)
            }
            None => {
                return (
                    pox::render_error(
                        Flavour::MobileSync,
                        ErrorCode::NoConfiguration,
                        error_stamp(state),
                        email,
                    )
                    .into(),
                    ErrorCode::NoConfiguration.label(),
                );
            }
        },
        (Flavour::MobileSync, Decision::RedirectAddr(target)) => {
            pox::render_mobilesync_redirect(email.unwrap_or_default(), &target)
        }
        (flavour, Decision::Error(code)) => {
            pox::render_error(flavour, code, error_stamp(state), email)
        }
    };
    (body.into(), label)
}

/// A bounded endpoint name for a request path (metrics label and access-log field).
pub fn endpoint_label(path: &str) -> &'static str {
    // The POX path first, without allocating (nearly every request).
    if path.eq_ignore_ascii_case("/autodiscover/autodiscover.xml") {
        return "autodiscover.xml";
    }
    match path.to_ascii_lowercase().as_str() {
        "/autodiscover/autodiscover.xml" => "autodiscover.xml",
        "/autodiscover/autodiscover.svc" => "autodiscover.svc",
        "/autodiscover/autodiscover.svc/wssecurity" => "autodiscover.svc",
        "/autodiscover/healthcheck.htm" => "healthcheck",
        p if p.starts_with("/autodiscover/autodiscover.json") => "autodiscover.json",
        p if p.starts_with("/autodiscover/") => "autodiscover.other",
        p if crate::protocol::autoconfig::is_autoconfig_path(p) => "autoconfig",
        p if crate::protocol::mobileconfig::is_mobileconfig_path(p) => "mobileconfig",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_case_insensitive() {
        assert_eq!(route("/autodiscover/autodiscover.xml"), Route::Pox);
        assert_eq!(route("/Autodiscover/Autodiscover.xml"), Route::Pox);
        assert_eq!(route("/AutoDiscover/AutoDiscover.xml"), Route::Pox);
        assert_eq!(route("/autodiscover/other"), Route::OtherAutodiscover);
        assert_eq!(route("/Autodiscover/Autodiscover.svc"), Route::Soap);
        assert_eq!(
            route("/autodiscover/autodiscover.svc/WSSecurity"),
            Route::Soap
        );
        assert_eq!(
            route("/AutoDiscover/AutoDiscover.json/v1.0/a@b.c"),
            Route::V2
        );
        assert_eq!(route("/autodiscover/autodiscover.json"), Route::V2);
        assert_eq!(route("/"), Route::NotFound);
        assert_eq!(route("/mail/config-v1.1.xml"), Route::Autoconfig);
        assert_eq!(
            route("/.well-known/autoconfig/mail/config-v1.1.xml"),
            Route::Autoconfig
        );
        // Nine's form.
        assert_eq!(route("/V1.1/mail/config-v1.1.xml"), Route::Autoconfig);
        assert_eq!(route("/MobileConfig"), Route::Mobileconfig);
        assert_eq!(route("/mail/config-v1.1.xml/x"), Route::NotFound);
        assert_eq!(route("/v1.0/mail/config-v1.1.xml"), Route::NotFound);
    }

    #[test]
    fn endpoints_are_a_closed_set() {
        assert_eq!(
            endpoint_label("/AutoDiscover/AutoDiscover.xml"),
            "autodiscover.xml"
        );
        assert_eq!(
            endpoint_label("/autodiscover/autodiscover.svc"),
            "autodiscover.svc"
        );
        assert_eq!(
            endpoint_label("/autodiscover/autodiscover.json/v1.0/a@b?Protocol=EWS"),
            "autodiscover.json"
        );
        assert_eq!(
            endpoint_label("/autodiscover/healthcheck.htm"),
            "healthcheck"
        );
        assert_eq!(endpoint_label("/autodiscover/x"), "autodiscover.other");
        assert_eq!(endpoint_label("/../../etc/passwd"), "other");
    }
}
