//! The one authentication entry point of the endpoints: Basic, NTLM, Negotiate and Entra
//! ID Bearer tokens (Hybrid Modern Authentication) behind the failed-login throttle, the
//! realm of the challenges, and the answer to a throttled attempt. The rules are in
//! [`crate::auth`]; the I/O glue in [`super::ntlm`], [`super::bearer`] and
//! [`super::throttle`].

use http::{HeaderMap, Response};

use super::bearer::BearerFailure;
use super::ntlm::WindowsAuth;
use super::respond::{self, Body};
use super::throttle::{retry_after_secs, Throttled};
use super::{ClientContext, ConnInfo, State};
use crate::auth::bearer::Refusal;
use crate::auth::{self, Presented};
use crate::directory::{Directory, DirectoryError, Identity};
use crate::ops::metrics;

/// `Retry-After` when the domain could not be asked to verify credentials.
const VERIFIER_RETRY_SECS: u64 = 5;

/// What the authentication of one request decided.
enum AuthResult {
    Authenticated(Identity),
    Challenge,
    /// A Bearer token was refused: the challenge with `error="invalid_token"`.
    BearerRefused(Refusal),
    /// 401 with this `WWW-Authenticate` value (an NTLM/Negotiate handshake continues).
    Continue(String),
    Unavailable(DirectoryError),
    /// The failed-login throttle refused the attempt without checking it.
    Throttled(Throttled),
    /// The domain could not be asked to verify the credentials (winbind): 503.
    VerifierDown,
}

/// What an endpoint does with a request once authentication has had its say.
pub(super) enum Admission {
    /// Go on as this identity.
    Admitted(Identity),
    /// Answer this, with this outcome label: the challenge, the next NTLM/Negotiate leg, a
    /// throttled attempt, or 503 when the domain could not be asked.
    Answered(Response<Body>, &'static str),
    /// The directory could not be asked; each endpoint says so in its own format.
    DirectoryDown,
}

/// Authenticates one request and turns every outcome but success and a directory outage
/// into the answer all endpoints give it.
pub(super) async fn admit(
    parts: &http::request::Parts,
    state: &State,
    conn: &ConnInfo,
) -> Admission {
    let headers = &parts.headers;
    match authenticate(parts, state, conn).await {
        AuthResult::Authenticated(identity) => Admission::Admitted(identity),
        AuthResult::Throttled(t) => {
            Admission::Answered(throttled_response(t, state, headers, conn), t.label())
        }
        AuthResult::Challenge => Admission::Answered(
            respond::unauthorized(&challenge_set(state, headers, conn, false)),
            "unauthorized",
        ),
        AuthResult::BearerRefused(refusal) => {
            let mut r = respond::unauthorized(&challenge_set(state, headers, conn, true));
            respond::add_diagnostics(&mut r, &refusal.diagnostics());
            Admission::Answered(r, "bearer_refused")
        }
        AuthResult::Continue(header) => {
            Admission::Answered(respond::unauthorized(&[header]), "ntlm_challenge")
        }
        AuthResult::VerifierDown => Admission::Answered(
            respond::service_unavailable(VERIFIER_RETRY_SECS),
            "auth_verifier_down",
        ),
        AuthResult::Unavailable(e) => {
            // The backend logs outages once per state change; per request is debug.
            tracing::debug!(error = %e, "directory unavailable during authentication");
            Admission::DirectoryDown
        }
    }
}

/// Authenticates one request (Basic, NTLM or Negotiate, or the identity an NTLM connection
/// already carries); every attempt that is checked passes the failed-login throttle first.
async fn authenticate(parts: &http::request::Parts, state: &State, conn: &ConnInfo) -> AuthResult {
    let headers = &parts.headers;
    // The resolved client (after trusted proxies), which is what the throttle counts.
    let client = parts
        .extensions
        .get::<ClientContext>()
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
            let throttle = &state.throttle;
            // A pool's correct logins answered from the verification cache ask the store at
            // most once a second per client and account.
            if throttle.recently_clean(client, &account) {
                if let Some(identity) = state
                    .directory
                    .cached_verification(&creds.login, &creds.password)
                {
                    return AuthResult::Authenticated(identity);
                }
            }
            let admitted = match throttle
                .admit_deferred(client, &account, Some(&creds.password))
                .await
            {
                Ok(admitted) => admitted,
                Err(t) => return AuthResult::Throttled(t),
            };
            if admitted.known_wrong {
                // The same wrong password again (a phone retrying an old one): the domain
                // is not asked again and nothing more is counted.
                metrics::throttled("repeated_wrong_password");
                tracing::info!(target: "auth", %client, "authentication refused: a wrong password already given for this login");
                throttle.wait(client, admitted.on_failure).await;
                return AuthResult::Challenge;
            }
            let guard = throttle.guard(client);
            match state
                .directory
                .verify_password_guarded(&creds.login, &creds.password, &guard)
                .await
            {
                Ok(Some(identity)) => {
                    throttle.succeeded(client, &account, Some(&admitted)).await;
                    AuthResult::Authenticated(identity)
                }
                Ok(None) => {
                    if let Some(retry_after) = guard.refused() {
                        return AuthResult::Throttled(Throttled::Refused { retry_after });
                    }
                    if guard.shared_outcome() {
                        // The same wrong password in an identical request checked at the
                        // same time, which counted it: like a repeated wrong password.
                        metrics::throttled("repeated_wrong_password");
                        throttle.wait(client, admitted.on_failure).await;
                        return AuthResult::Challenge;
                    }
                    throttle.failed(client, &account, Some(&admitted)).await;
                    throttle.wait(client, admitted.on_failure).await;
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
        Presented::Bearer(Some(token)) if state.bearer.is_some() => {
            bearer_token(&token, parts, state, conn, client).await
        }
        // Outlook for iOS and Android's empty `Bearer` (is modern authentication on?) falls
        // through to the challenge with everything else.
        // IIS-style: a connection that completed NTLM stays authenticated (when persisting).
        Presented::Nothing => match state.ntlm.connection_identity(conn) {
            Some(identity) => AuthResult::Authenticated(identity),
            None => AuthResult::Challenge,
        },
        _ => AuthResult::Challenge,
    }
}

/// An Entra ID access token: counted by the failed-login throttle per source when refused.
async fn bearer_token(
    token: &str,
    parts: &http::request::Parts,
    state: &State,
    conn: &ConnInfo,
    client: std::net::IpAddr,
) -> AuthResult {
    let Some(service) = &state.bearer else {
        return AuthResult::Challenge;
    };
    let throttle = &state.throttle;
    // The claimed user, unverified: a key for counting, never an identity.
    let account = auth::bearer::throttle_account(token);
    let admitted = match throttle.admit_deferred(client, &account, None).await {
        Ok(admitted) => admitted,
        Err(t) => return AuthResult::Throttled(t),
    };
    // The default audience: the host the client asked for (the TLS name without `Host`).
    let host = request_host(&parts.headers)
        .or_else(|| conn.sni.clone())
        .unwrap_or_default();
    match service.authenticate(token, &host, &state.directory).await {
        Ok((identity, user)) => {
            metrics::bearer_token("accepted");
            tracing::info!(
                target: "auth",
                auth = "bearer",
                %client,
                oid = user.object_id.as_deref().unwrap_or("-"),
                user = %identity.user_principal_name,
                by = if user.onprem_sid.is_some() { "onprem_sid" } else { "upn" },
                "bearer token accepted"
            );
            throttle.succeeded(client, &account, Some(&admitted)).await;
            AuthResult::Authenticated(identity)
        }
        Err(BearerFailure::Refused(refusal)) => {
            metrics::bearer_token(refusal.label());
            tracing::info!(target: "auth", auth = "bearer", %client, reason = refusal.label(), detail = %refusal.diagnostics(), "bearer token refused");
            if refusal.counts_as_failure() {
                throttle.failed(client, &account, Some(&admitted)).await;
                throttle.wait(client, admitted.on_failure).await;
            }
            AuthResult::BearerRefused(refusal)
        }
        Err(BearerFailure::Unavailable(e)) => AuthResult::Unavailable(e),
    }
}

/// The `Host` of the request, lower-case (the audience rule drops a port).
fn request_host(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.trim().to_ascii_lowercase())
}

/// The 401's challenges: Bearer first when `[auth.bearer]` is on (`refused`: with
/// `error="invalid_token"`), then Negotiate, NTLM and Basic as offered.
fn challenge_set(
    state: &State,
    headers: &HeaderMap,
    conn: &ConnInfo,
    refused: bool,
) -> Vec<String> {
    auth::challenges(
        state.bearer.as_ref().map(|b| b.challenge(refused)),
        &realm(state, headers, conn),
        state.ntlm.offers(state.config.auth.basic),
    )
}

/// The realm of the Basic challenge: the configured one, else the host the client asked for.
fn realm(state: &State, headers: &HeaderMap, conn: &ConnInfo) -> String {
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

/// The answer to a throttled attempt: 429, or the endpoint's usual 401 challenge set, both
/// with `Retry-After` and the `/autodiscover/*` headers.
fn throttled_response(
    throttled: Throttled,
    state: &State,
    headers: &HeaderMap,
    conn: &ConnInfo,
) -> Response<Body> {
    match throttled {
        Throttled::TooManyRequests { retry_after } => {
            respond::too_many_requests(retry_after_secs(retry_after))
        }
        Throttled::Refused { retry_after } => {
            let mut r = respond::unauthorized(&challenge_set(state, headers, conn, false));
            respond::add_retry_after(&mut r, retry_after_secs(retry_after));
            r
        }
    }
}
