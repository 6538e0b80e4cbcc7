//! The Exchange services' front door, emulated for labs and test tenants
//! (`organization.emulate_service_endpoints`). The settings this server hands out name EWS,
//! OAB, MAPI/HTTP and ActiveSync URLs; a client's next step (and `probe --check-urls`) is to
//! reach them, and an Exchange front end answers a request without credentials with a 401
//! offering its authentication schemes. With the option on, those paths answer the same way,
//! through the one authentication entry point, so a lab's service URLs can be checked end to
//! end. Nothing behind the login is emulated: an authenticated request gets 501, which says so.

use bytes::Bytes;
use http::{Request, StatusCode};

use super::auth::{admit, Admission};
use super::body::read_request_body;
use super::respond::{self, Body};
use super::{ConnInfo, State};
type Response = http::Response<Body>;

/// `Retry-After` of the 503 when the directory could not be asked.
const DIRECTORY_RETRY_SECS: u64 = 5;

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
    match admit(&parts, state, conn).await {
        Admission::Admitted(identity) => {
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
        Admission::Answered(r, outcome) => (r, (outcome, None)),
        Admission::DirectoryDown => (
            respond::service_unavailable(DIRECTORY_RETRY_SECS),
            ("directory_unavailable", None),
        ),
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
