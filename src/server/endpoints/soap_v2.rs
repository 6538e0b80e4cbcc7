//! Glue for the SOAP (`/autodiscover/autodiscover.svc`) and AutodiscoverV2
//! (`/autodiscover/autodiscover.json`) endpoints: read body → authenticate (SOAP only) →
//! parse → look up → decide → render. The protocol rules are in `protocol::soap`,
//! `protocol::v2`, `decision` and `settings`; the HTTP shapes in `respond`.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

use super::answers;
use super::auth::{admit, Admission};
use super::body::read_request_body;
use super::respond::{self, Body};
use super::{ConnInfo, State};
use crate::config::LookupPolicy;
use crate::decision::{decide, Decision};
use crate::directory::{Directory, Identity, Lookup, Recipient};
use crate::protocol::soap::{self, DomainAnswer, Fault, ServerVersion, SoapRequest, UserAnswer};
use crate::protocol::v2::{self, Found, V2Answer, V2Policy, V2Urls};
use crate::protocol::ErrorCode;
use crate::settings::{cas_version, mailbox_settings};

const SOAP_ALLOW: &str = "OPTIONS, GET, POST, HEAD";
const V2_ALLOW: &str = "OPTIONS, GET, HEAD";

/// True for the SOAP endpoint and its `/wssecurity` alias (case-insensitive, rule 16).
pub fn is_soap_path(lower: &str) -> bool {
    matches!(
        lower.trim_end_matches('/'),
        "/autodiscover/autodiscover.svc" | "/autodiscover/autodiscover.svc/wssecurity"
    )
}

/// The access-log facts of one request: outcome label and authenticated user.
pub type Outcome = (&'static str, Option<String>);

fn fault(fault: Fault, outcome: &'static str, user: Option<String>) -> (Response<Body>, Outcome) {
    (
        respond::xml_status(StatusCode::INTERNAL_SERVER_ERROR, soap::render_fault(fault)),
        (outcome, user),
    )
}

/// `POST /autodiscover/autodiscover.svc`: SOAP GetUserSettings / GetDomainSettings with the
/// same authentication as POX. Unauthenticated requests of any method get the 401 challenge
/// (with `X-SOAP-Enabled`, rule 7), which is what exchangelib's auth sniffing and HEAD
/// probes expect.
pub async fn soap_endpoint<B>(
    req: Request<B>,
    state: &State,
    conn: &ConnInfo,
) -> (Response<Body>, Outcome)
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method().clone();
    let allowed = [Method::GET, Method::POST, Method::HEAD];
    if let Some((r, outcome)) = respond::method_gate(&method, &allowed, SOAP_ALLOW) {
        return (r, (outcome, None));
    }
    let (parts, body) = req.into_parts();
    // Read the body before answering, even with a 401: an unread body closes the
    // connection, and connection-bound authentication (NTLM) would be lost.
    let body = match read_request_body(body, &parts.headers, state).await {
        Ok(b) => b,
        Err(r) => return (r, ("body_rejected", None)),
    };
    let identity = match admit(&parts, state, conn).await {
        Admission::Admitted(identity) => identity,
        Admission::Answered(r, outcome) => return (r, (outcome, None)),
        Admission::DirectoryDown => return fault(Fault::SERVER, "internal_server_error", None),
    };
    let user = Some(identity.user_principal_name.clone());
    if method == Method::HEAD {
        return (respond::empty_ok(), ("head", user));
    }
    if method == Method::GET {
        return fault(Fault::NOT_A_POST, "soap_fault", user);
    }
    let request = match soap::parse_request(&body) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(reason = %e.reason(), "SOAP request rejected");
            return fault(e.fault(), "soap_fault", user);
        }
    };
    tracing::debug!(
        operation = request.operation(),
        requested_server_version = match &request {
            SoapRequest::GetUserSettings(r) => r.requested_server_version.as_deref(),
            SoapRequest::GetDomainSettings(r) => r.requested_server_version.as_deref(),
        }
        .unwrap_or("-"),
        "SOAP request"
    );
    let sv = ServerVersion::from_build(state.config.services.exchange_version);
    let request_error = request.request_error();
    let (body, outcome) = match &request {
        SoapRequest::GetUserSettings(r) => {
            let mut answers = Vec::new();
            if request_error.is_none() {
                for mailbox in &r.mailboxes {
                    answers.push(user_answer(mailbox, &r.settings, state, &identity, &sv).await);
                }
            }
            // One user is the common case; label it by its answer.
            let outcome = match answers.as_slice() {
                [only] => only.label(),
                _ if request_error.is_some() => "invalid_request",
                _ => "get_user_settings",
            };
            (
                soap::render_user_settings(&sv, &answers, request_error),
                outcome,
            )
        }
        SoapRequest::GetDomainSettings(r) => {
            let mut answers = Vec::new();
            if request_error.is_none() {
                let services = &state.config.services;
                let version = cas_version(services.exchange_version);
                for domain in &r.domains {
                    let lower = domain.to_ascii_lowercase();
                    answers.push(if state.config.org.accepted_domains.contains(&lower) {
                        soap::domain_settings(&r.settings, &services.ews.external, &version)
                    } else {
                        DomainAnswer::InvalidDomain(domain.clone())
                    });
                }
            }
            (
                soap::render_domain_settings(&sv, &answers, request_error),
                if request_error.is_some() {
                    "invalid_request"
                } else {
                    "get_domain_settings"
                },
            )
        }
    };
    (respond::xml(body), (outcome, user))
}

/// Finds a recipient, applying the lookup policy exactly as POX does.
pub(super) async fn find(
    address: &str,
    state: &State,
    identity: Option<&Identity>,
) -> Result<Option<Recipient>, ()> {
    let found = match state
        .directory
        .find(&Lookup::Address(address.to_string()))
        .await
    {
        Ok(found) => found,
        Err(e) => {
            // The backend logs outages once per state change; per request is debug.
            tracing::debug!(error = %e, "directory unavailable during lookup");
            return Err(());
        }
    };
    Ok(
        found.filter(|r| match (state.config.auth.lookup_policy, identity) {
            (LookupPolicy::SelfOnly, Some(id)) => id.addresses.iter().any(|a| r.has_address(a)),
            _ => true,
        }),
    )
}

/// The SOAP answer for one user: the same per-mailbox decision as POX.
async fn user_answer(
    mailbox: &str,
    requested: &[String],
    state: &State,
    identity: &Identity,
    sv: &ServerVersion,
) -> UserAnswer {
    let Ok(found) = find(mailbox, state, Some(identity)).await else {
        return UserAnswer::InternalServerError;
    };
    match decide(Some(mailbox), found.as_ref(), &state.config.mail) {
        Decision::Settings(r) => {
            let settings = mailbox_settings(&state.config.org, &state.config.services, r);
            soap::user_settings(requested, &settings, sv)
        }
        Decision::InternetMail(r) => match answers::internet_servers(state, &r.primary_smtp) {
            Some(servers) => soap::internet_user_settings(requested, r, servers),
            None => UserAnswer::InternalServerError,
        },
        Decision::RedirectAddr(target) => UserAnswer::RedirectAddress(target),
        Decision::Error(ErrorCode::AddressNotFound | ErrorCode::NoConfiguration) => {
            UserAnswer::InvalidUser(mailbox.to_string())
        }
        // 602 (remote mailbox without target, redirect loop) and 603.
        Decision::Error(_) => UserAnswer::InternalServerError,
    }
}

/// The URLs V2 answers with, from the configuration.
fn v2_urls(state: &State) -> V2Urls {
    let c = &state.config;
    V2Urls {
        autodiscover_v1: c.v2.autodiscover_v1_url.clone(),
        ews: c.services.ews.external.clone(),
        activesync: c.services.activesync.as_ref().map(|e| e.external.clone()),
        rest: c.v2.rest_url.clone(),
    }
}

fn v2_response(answer: V2Answer) -> Response<Body> {
    match answer {
        V2Answer::Json { status, body } => respond::json(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        ),
        V2Answer::Redirect(location) => respond::found(&location),
    }
}

/// `GET /autodiscover/autodiscover.json…`: anonymous AutodiscoverV2.
pub async fn v2_endpoint<B>(req: Request<B>, state: &State) -> (Response<Body>, Outcome) {
    let method = req.method().clone();
    let allowed = [Method::GET, Method::HEAD];
    if let Some((r, outcome)) = respond::method_gate(&method, &allowed, V2_ALLOW) {
        return (r, (outcome, None));
    }
    let urls = v2_urls(state);
    let request = match v2::parse_request(req.uri().path(), req.uri().query()) {
        Ok(r) => r,
        Err(reject) => {
            return (
                v2_response(v2::reject(&reject, &urls)),
                ("v2_rejected", None),
            )
        }
    };
    let c = &state.config;
    let policy = V2Policy {
        urls: &urls,
        tenant_url: &c.v2.tenant_url,
        accepted_domains: &c.org.accepted_domains,
        reveal_unknown_users: c.v2.reveal_unknown_users,
        max_redirect_count: c.v2.max_redirect_count,
    };
    if let Some(answer) = v2::precheck(&request, &policy) {
        return (v2_response(answer), ("v2_rejected", None));
    }
    let found = match find(&request.email, state, None).await {
        Err(()) => Found::Unavailable,
        Ok(found) => match decide(Some(&request.email), found.as_ref(), &c.mail) {
            Decision::Settings(_) => Found::Local,
            // Only Autodiscover (POX) describes an IMAP/SMTP mailbox; EWS, ActiveSync and
            // REST do not serve it.
            Decision::InternetMail(_) => Found::InternetMail,
            Decision::RedirectAddr(target) => Found::Migrated(target),
            Decision::Error(_) => Found::NotServed,
        },
    };
    // The access log is for the operator: it may say what the client must not learn.
    let outcome = match &found {
        Found::Local => "v2_local",
        Found::InternetMail => "v2_internet_mail",
        Found::Migrated(_) => "v2_redirect",
        Found::NotServed => "v2_not_served",
        Found::Unavailable => "v2_directory_unavailable",
    };
    (
        v2_response(v2::answer(&request, &found, &policy)),
        (outcome, None),
    )
}
