//! Glue for the HTTPS listener: route → read body → authenticate → parse → look up →
//! decide → render. No protocol rules live here; they are in `protocol`, `decision`,
//! `settings` and `auth`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Limited};

use super::answers::AnswerKey;
use super::ntlm::WindowsAuth;
use super::respond::{self, Body};
use super::throttle::Throttled;
use super::{ConnInfo, State};
use crate::auth::{self, Presented};
use crate::config::LookupPolicy;
use crate::decision::{decide, Decision};
use crate::directory::{Directory, DirectoryError, Identity, Lookup};
use crate::protocol::error_code::ErrorStamp;
use crate::protocol::pox::{self, Flavour};
use crate::protocol::{ClientCaps, ErrorCode};
use crate::settings::mailbox_settings;

const POX_ALLOW: &str = "OPTIONS, GET, POST, HEAD";

/// `Retry-After` when the domain could not be asked to verify credentials.
pub(super) const VERIFIER_RETRY_SECS: u64 = 5;

/// Routes on the HTTPS listener; path matching is case-insensitive (IIS semantics; Outlook
/// sends `/Autodiscover/Autodiscover.xml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Pox,
    /// `autodiscover.svc` (SOAP) and its aliases.
    Soap,
    /// `autodiscover.json` (AutodiscoverV2).
    V2,
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
    let client = super::listener::client_of(&req, &conn);
    let (mut response, note) = match route(&path) {
        Route::Pox => pox_endpoint(req, &state, &conn).await,
        Route::Soap => {
            let (r, (outcome, user)) = super::soap_v2::soap_endpoint(req, &state, &conn).await;
            (r, Note { outcome, user })
        }
        Route::V2 => {
            let (r, (outcome, user)) = super::soap_v2::v2_endpoint(req, &state).await;
            (r, Note { outcome, user })
        }
        Route::OtherAutodiscover => {
            let mut r = respond::not_found();
            respond::add_autodiscover_headers(&mut r);
            (r, Note::outcome("not_found"))
        }
        Route::NotFound => (respond::not_found(), Note::outcome("not_found")),
    };
    // Every /autodiscover/* answer says SOAP is here, errors included.
    if route(&path) != Route::NotFound {
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
        endpoint: crate::ops::metrics::endpoint_label(&path),
        user: note.user.as_deref().unwrap_or("-"),
        outcome: note.outcome,
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

/// Reads the whole body within the limits; `Err` is the response to send instead.
pub async fn read_body<B>(
    body: B,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Response<Body>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(respond::too_large());
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(respond::too_large())
            } else {
                tracing::debug!(error = %e, "request body read failed");
                Err(respond::request_timeout())
            }
        }
        Err(_) => Err(respond::request_timeout()),
    }
}

pub(super) enum AuthResult {
    Authenticated(Identity),
    Challenge,
    /// 401 with this `WWW-Authenticate` value (an NTLM/Negotiate handshake continues).
    Continue(String),
    Unavailable(DirectoryError),
    /// The failed-login throttle refused the attempt without checking it.
    Throttled(Throttled),
    /// The domain could not be asked to verify the credentials (winbind): 503.
    VerifierDown,
}

pub(super) async fn authenticate(
    parts: &http::request::Parts,
    state: &State,
    conn: &ConnInfo,
) -> AuthResult {
    let headers = &parts.headers;
    // The resolved client (after trusted proxies), which is what the throttle counts.
    let client = parts
        .extensions
        .get::<super::proxy::ClientContext>()
        .map(|c| c.client)
        .unwrap_or_else(|| conn.peer.ip());
    let presented = auth::presented(
        headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
    );
    match presented {
        Presented::Basic(Some(creds)) if state.config.auth.basic => {
            state.ntlm.forget(conn);
            // The login as typed; never the password.
            let account = creds.login.to_string();
            let delay = match state.throttle.admit_deferred(client, &account).await {
                Ok(delay) => delay,
                Err(t) => return AuthResult::Throttled(t),
            };
            let guard = state.throttle.guard(client);
            match state
                .directory
                .verify_password_guarded(&creds.login, &creds.password, &guard)
                .await
            {
                Ok(Some(identity)) => {
                    state.throttle.succeeded(client, &account);
                    AuthResult::Authenticated(identity)
                }
                Ok(None) => {
                    if let Some(retry_after) = guard.refused() {
                        return AuthResult::Throttled(Throttled::Refused { retry_after });
                    }
                    state.throttle.failed(client, &account);
                    state.throttle.wait(client, delay).await;
                    AuthResult::Challenge
                }
                Err(e) => AuthResult::Unavailable(e),
            }
        }
        Presented::Windows(scheme, Some(token)) if state.ntlm.accepts(scheme) => {
            match state
                .ntlm
                .authenticate(
                    scheme,
                    &token,
                    &state.directory,
                    conn,
                    (&state.throttle, client),
                )
                .await
            {
                WindowsAuth::Authenticated(identity) => AuthResult::Authenticated(identity),
                WindowsAuth::Continue(header) => AuthResult::Continue(header),
                WindowsAuth::Rejected => AuthResult::Challenge,
                WindowsAuth::Unavailable(e) => AuthResult::Unavailable(e),
                WindowsAuth::Throttled(t) => AuthResult::Throttled(t),
                WindowsAuth::VerifierDown => AuthResult::VerifierDown,
            }
        }
        // IIS-style: a connection that completed NTLM stays authenticated (when persisting).
        Presented::Nothing => match state.ntlm.connection_identity(conn) {
            Some(identity) => AuthResult::Authenticated(identity),
            None => AuthResult::Challenge,
        },
        _ => AuthResult::Challenge,
    }
}

pub(super) fn realm(state: &State, headers: &HeaderMap, conn: &ConnInfo) -> String {
    if let Some(realm) = &state.config.auth.realm {
        return realm.clone();
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_string())
        .or_else(|| conn.sni.clone())
        .unwrap_or_else(|| "autodiscover".to_string());
    auth::sanitize_realm(&host)
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
    if method == Method::OPTIONS {
        return (respond::options(POX_ALLOW), Note::outcome("options"));
    }
    if !matches!(method, Method::GET | Method::POST | Method::HEAD) {
        let mut r = respond::method_not_allowed(POX_ALLOW);
        respond::add_autodiscover_headers(&mut r);
        return (r, Note::outcome("method_not_allowed"));
    }
    let (parts, body) = req.into_parts();
    // Read the body even when the answer will be 401: an unread body makes hyper close the
    // connection, and connection-bound authentication would be lost with it.
    let body = match read_body(
        body,
        &parts.headers,
        state.config.server.max_body_bytes,
        state.config.server.request_timeout,
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return (r, Note::outcome("body_rejected")),
    };
    let identity = match authenticate(&parts, state, conn).await {
        AuthResult::Authenticated(identity) => identity,
        AuthResult::Throttled(t) => {
            return (
                super::throttle::response(t, state, &parts.headers, conn),
                Note::outcome(t.label()),
            );
        }
        AuthResult::Challenge => {
            let challenges = auth::challenges(
                &realm(state, &parts.headers, conn),
                state.ntlm.offers(state.config.auth.basic),
            );
            return (
                respond::unauthorized(&challenges),
                Note::outcome("unauthorized"),
            );
        }
        AuthResult::Continue(header) => {
            return (
                respond::unauthorized(&[header]),
                Note::outcome("ntlm_challenge"),
            );
        }
        AuthResult::VerifierDown => {
            return (
                respond::service_unavailable(VERIFIER_RETRY_SECS),
                Note::outcome("auth_verifier_down"),
            );
        }
        AuthResult::Unavailable(e) => {
            // The backend logs outages once per state change; per request is debug.
            tracing::debug!(error = %e, "directory unavailable during authentication");
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
    let decision = decide(email, found.as_ref());
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
    }
}
