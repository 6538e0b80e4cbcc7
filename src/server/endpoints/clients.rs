//! Glue for the anonymous endpoints of non-Autodiscover clients: Thunderbird autoconfig
//! (`/mail/config-v1.1.xml`, `/.well-known/autoconfig/mail/config-v1.1.xml`, `/v1.1/...`)
//! and Apple profiles (`/mobileconfig`). Parse → (only when the operator lets answers depend on the
//! mailbox) look up and decide → render. The rules are in `protocol::autoconfig`,
//! `protocol::mobileconfig`, `protocol::account::client_account` and `decision`.
//!
//! What an anonymous answer may reveal follows the AutodiscoverV2 rule: by default
//! (`mail.reveal_mailboxes = false`) every address of an accepted domain gets the domain's
//! answer, which does not depend on the directory at all, so it says nothing about
//! whether the address exists, what kind of mailbox it is or whether it moved.

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};

use super::body::read_request_body;
use super::respond::{self, Body};
use super::throttle::{retry_after_secs, Throttled};
use super::State;
use crate::decision::{decide, Decision};
use crate::protocol::account::ClientAccount;
use crate::protocol::account::{client_account, AccountClient, AccountFor};
use crate::protocol::{autoconfig, mobileconfig};

const AUTOCONFIG_ALLOW: &str = "OPTIONS, GET, HEAD";
const MOBILECONFIG_ALLOW: &str = "OPTIONS, GET, POST, HEAD";

/// The access-log facts of one request: outcome label, and never a user (anonymous).
pub type Outcome = (&'static str, Option<String>);

/// Whom to describe for `email` of `domain`, or the outcome to answer instead.
// Lives for one request on the stack; boxing the account would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Resolved<'a> {
    Account(ClientAccount<'a>, &'static str),
    /// 404: the domain is not ours, or (revealing) the address is not served here.
    NotServed(&'static str),
    /// 503: the directory could not be asked.
    Unavailable,
    /// 429: this source asked about too many addresses that are not served here.
    Throttled(std::time::Duration),
}

impl<'a> Resolved<'a> {
    /// The HTTP answer and its outcome label; `render` makes the one for an account.
    fn respond(
        self,
        render: impl FnOnce(ClientAccount<'a>) -> Response<Body>,
    ) -> (Response<Body>, &'static str) {
        match self {
            Resolved::Account(account, label) => (render(account), label),
            Resolved::NotServed(label) => (respond::not_found(), label),
            Resolved::Unavailable => (unavailable(), "directory_unavailable"),
            Resolved::Throttled(retry_after) => (
                respond::too_many_requests(retry_after_secs(retry_after)),
                "too_many_requests",
            ),
        }
    }
}

/// The account for `email` (lookup only when answers may depend on the mailbox).
///
/// Per-mailbox answers tell addresses apart, so then every "not served" answer counts as a
/// failure of the client in the failed-login throttle (by source address, across
/// addresses): walking a list of names ends in 429s like guessing passwords does.
async fn resolve<'a>(
    state: &'a State,
    client_ip: IpAddr,
    domain: &'a str,
    email: Option<&'a str>,
    client: AccountClient,
    found: &'a mut Option<crate::directory::Recipient>,
) -> Resolved<'a> {
    let config = &state.config;
    if !config.org.accepted_domains.iter().any(|d| d == domain) {
        return Resolved::NotServed("not_accepted_domain");
    }
    let domain_answer =
        |label| match client_account(config, domain, email, AccountFor::Domain, client) {
            Some(account) => Resolved::Account(account, label),
            None => Resolved::NotServed("no_configuration"),
        };
    let Some(address) = email.filter(|_| config.mail.reveal_mailboxes) else {
        return domain_answer("domain_default");
    };
    if let Err(t) = state.throttle.admit(client_ip, address).await {
        return Resolved::Throttled(match t {
            Throttled::TooManyRequests { retry_after } | Throttled::Refused { retry_after } => {
                retry_after
            }
        });
    }
    *found = match super::soap_v2::find(address, state, None).await {
        Ok(found) => found,
        Err(()) => return Resolved::Unavailable,
    };
    let whom = match decide(Some(address), found.as_ref(), &config.mail) {
        Decision::Settings(r) => (AccountFor::Exchange(r), "exchange"),
        Decision::InternetMail(r) => (AccountFor::Internet(r), "internet_mail"),
        Decision::RedirectAddr(_) => match found.as_ref() {
            Some(r) => (AccountFor::Migrated(r), "migrated"),
            None => return Resolved::NotServed("not_served"),
        },
        Decision::Error(_) => {
            state.throttle.failed(client_ip, address, None).await;
            return Resolved::NotServed("not_served");
        }
    };
    match client_account(config, domain, email, whom.0, client) {
        Some(account) => Resolved::Account(account, whom.1),
        None => Resolved::NotServed("no_configuration"),
    }
}

/// `GET /mail/config-v1.1.xml?emailaddress=...` on any Autodiscover listener, and on the
/// port-80 listener.
pub async fn autoconfig_endpoint<B>(
    req: Request<B>,
    state: &State,
    client_ip: IpAddr,
) -> (Response<Body>, Outcome) {
    let allowed = [Method::GET, Method::HEAD];
    if let Some((r, outcome)) = respond::method_gate(req.method(), &allowed, AUTOCONFIG_ALLOW) {
        return (r, (outcome, None));
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let accepted = &state.config.org.accepted_domains;
    let request = match autoconfig::parse_request(req.uri().query(), host, accepted) {
        Ok(r) => r,
        Err(_) => return (bad_request(), ("invalid_address", None)),
    };
    let mut found = None;
    let (response, outcome) = resolve(
        state,
        client_ip,
        &request.domain,
        request.email.as_deref(),
        AccountClient::Autoconfig,
        &mut found,
    )
    .await
    .respond(|account| respond::autoconfig_xml(StatusCode::OK, autoconfig::render(&account)));
    (response, (outcome, None))
}

/// `GET /mobileconfig?emailaddress=...` or a form `POST` with `emailaddress`.
pub async fn mobileconfig_endpoint<B>(
    req: Request<B>,
    state: &State,
    client_ip: IpAddr,
) -> (Response<Body>, Outcome)
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method().clone();
    let allowed = [Method::GET, Method::HEAD, Method::POST];
    if let Some((r, outcome)) = respond::method_gate(&method, &allowed, MOBILECONFIG_ALLOW) {
        return (r, (outcome, None));
    }
    let (parts, body) = req.into_parts();
    let form;
    let query = if method == Method::POST {
        if !is_form(&parts.headers) {
            let r = respond::text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "text/plain; charset=utf-8",
                "Send the form as application/x-www-form-urlencoded.\n",
            );
            return (r, ("unsupported_media_type", None));
        }
        form = match read_request_body(body, &parts.headers, state).await {
            Ok(b) => b,
            Err(r) => return (r, ("body_rejected", None)),
        };
        match std::str::from_utf8(&form) {
            Ok(text) => Some(text),
            Err(_) => return (bad_request(), ("invalid_address", None)),
        }
    } else {
        parts.uri.query()
    };
    let email = match crate::protocol::account::query_address(query, "emailaddress") {
        Ok(Some(email)) => email,
        Ok(None) | Err(_) => return (bad_request(), ("invalid_address", None)),
    };
    let domain = crate::config::mail::domain_of(&email);
    let mut found = None;
    let resolved = resolve(
        state,
        client_ip,
        &domain,
        Some(&email),
        AccountClient::Profile,
        &mut found,
    )
    .await;
    let mc = &state.config.mail.mobileconfig;
    let meta = mobileconfig::ProfileMeta {
        identifier: &mc.identifier,
        organization: if mc.organization.is_empty() {
            &state.config.org.display_name
        } else {
            &mc.organization
        },
    };
    let mut failure = None;
    let (response, mut outcome) =
        resolved.respond(|account| match mobileconfig::render(&account, &meta) {
            Ok(plist) => match &state.profile_signer {
                None => respond::mobileconfig(plist),
                Some(signer) => signer.sign(&plist).map_or_else(
                    |e| {
                        tracing::warn!(error = %e, "signing a configuration profile failed");
                        failure = Some("signing_failed");
                        unavailable()
                    },
                    respond::mobileconfig,
                ),
            },
            Err(_) => {
                failure = Some("no_configuration");
                respond::not_found()
            }
        });
    if let Some(label) = failure {
        outcome = label;
    }
    (response, (outcome, None))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// 400 that repeats nothing of what was sent.
fn bad_request() -> Response<Body> {
    respond::text(
        StatusCode::BAD_REQUEST,
        "text/plain; charset=utf-8",
        "The request needs one valid emailaddress parameter.\n",
    )
}

fn unavailable() -> Response<Body> {
    respond::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain; charset=utf-8",
        "The directory is not reachable; try again later.\n",
    )
}
