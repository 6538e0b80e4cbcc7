//! The Exchange services' front door, emulated for labs and test tenants
//! (`organization.emulate_service_endpoints`). The settings this server hands out name EWS,
//! OAB, MAPI/HTTP and ActiveSync URLs; a client's next step (and `probe --check-urls`) is to
//! reach them, and an Exchange front end answers a request without credentials with a 401
//! offering its authentication schemes. With the option on, those paths answer the same way,
//! through the one authentication entry point, so a lab's service URLs can be checked end to
//! end. Nothing behind the login is emulated: an authenticated request gets 501, which says so.

use bytes::Bytes;
use http::{Request, StatusCode};

use super::auth::{authenticate, realm, throttled_response, AuthResult, VERIFIER_RETRY_SECS};
use super::body::read_request_body;
use super::respond::{self, Body};
use super::{ConnInfo, State};
use crate::auth;

type Response = http::Response<Body>;

/// The service a (lower-case) request path belongs to, when it is one the settings name.
pub fn service_of(path: &str) -> Option<&'static str> {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/ews") {
        Some("EWS")
    } else if under("/oab") {
        Some("OAB")
    } else if under("/mapi") {
        Some("MAPI/HTTP")
    } else if under("/microsoft-server-activesync") {
        Some("ActiveSync")
    } else {
        None
    }
}

/// Answers a request to one of the services' paths: the challenge of the server's schemes,
/// or, once authenticated, 501 naming what is not emulated.
pub async fn front_door_endpoint<B>(
    req: Request<B>,
    state: &State,
    conn: &ConnInfo,
    service: &'static str,
) -> (Response, (&'static str, Option<String>))
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    // Read the body even for a 401: connection-bound NTLM needs the connection kept.
    if let Err(r) = read_request_body(body, &parts.headers, state).await {
        return (r, ("body_rejected", None));
    }
    match authenticate(&parts, state, conn).await {
        AuthResult::Authenticated(identity) => {
            let text = format!(
                "autodiscoverd emulates the {service} front door only (organization.emulate_service_endpoints): \
                 {} is authenticated, and there is no {service} behind it.\n",
                identity.user_principal_name
            );
            (
                respond::text(
                    StatusCode::NOT_IMPLEMENTED,
                    "text/plain; charset=utf-8",
                    text,
                ),
                ("service_emulated", Some(identity.user_principal_name)),
            )
        }
        AuthResult::Challenge => {
            let challenges = auth::challenges(
                &realm(state, &parts.headers, conn),
                state.ntlm.offers(state.config.auth.basic),
            );
            (respond::unauthorized(&challenges), ("unauthorized", None))
        }
        AuthResult::Continue(header) => {
            (respond::unauthorized(&[header]), ("ntlm_challenge", None))
        }
        AuthResult::Throttled(t) => (
            throttled_response(t, state, &parts.headers, conn),
            (t.label(), None),
        ),
        AuthResult::VerifierDown => (
            respond::service_unavailable(VERIFIER_RETRY_SECS),
            ("auth_verifier_down", None),
        ),
        AuthResult::Unavailable(e) => {
            tracing::debug!(error = %e, "directory unavailable during authentication");
            (
                respond::service_unavailable(VERIFIER_RETRY_SECS),
                ("directory_unavailable", None),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::service_of;

    #[test]
    fn the_service_paths_of_the_settings_are_recognised_and_nothing_else() {
        assert_eq!(service_of("/ews/exchange.asmx"), Some("EWS"));
        assert_eq!(service_of("/oab/0d4e/oab.xml"), Some("OAB"));
        assert_eq!(service_of("/mapi/emsmdb/"), Some("MAPI/HTTP"));
        assert_eq!(service_of("/mapi/nspi/"), Some("MAPI/HTTP"));
        assert_eq!(
            service_of("/microsoft-server-activesync"),
            Some("ActiveSync")
        );
        assert_eq!(service_of("/ews"), Some("EWS"));
        assert_eq!(service_of("/ewsx/exchange.asmx"), None);
        assert_eq!(service_of("/owa/"), None);
        assert_eq!(service_of("/"), None);
        assert_eq!(service_of("/autodiscover/autodiscover.xml"), None);
    }
}
