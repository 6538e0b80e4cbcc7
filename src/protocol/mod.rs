//! Sans-IO Autodiscover protocol: request parsing and response rendering over bytes and
//! plain structs. Nothing here touches sockets, files, clocks or randomness; callers pass
//! the time of day and other facts in.

pub mod account;
pub mod autoconfig;
pub mod error_code;
pub mod mobileconfig;
pub mod pox;
pub mod scp;
pub mod soap;
pub mod v2;
pub mod xml;

pub use error_code::ErrorCode;

/// Autodiscover namespaces ([MS-OXDSCLI] §2.2.1, [MS-ASCMD] §6.2–§6.4); always `http://`.
pub mod ns {
    pub const OUTLOOK_REQUEST: &str =
        "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
    pub const MOBILESYNC_REQUEST: &str =
        "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006";
    pub const RESPONSE_BASE: &str =
        "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
    pub const OUTLOOK_RESPONSE: &str =
        "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
    pub const MOBILESYNC_RESPONSE: &str =
        "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006";
}

/// What the client told us about itself in headers ([MS-OXDSCLI] §2.2.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCaps {
    /// A valid `X-MapiHttpCapability` (integer ≥ 1) was sent.
    pub mapi_http: bool,
    /// `X-ClientCanHandle` lists `ExHttpInfo`: two EXHTTP blocks, internal first.
    pub ex_http_info: bool,
    /// `X-ClientCanHandle` lists `Negotiate` (or the client is Outlook).
    pub negotiate: bool,
    /// The User-Agent is Outlook for Windows: one EXHTTP block.
    pub outlook: bool,
}

impl ClientCaps {
    /// Derives the capabilities from the raw header values (`None` when absent).
    pub fn from_headers(
        mapi_http_capability: Option<&[u8]>,
        client_can_handle: Option<&[u8]>,
        user_agent: Option<&[u8]>,
    ) -> ClientCaps {
        // MS-OXDSCLI §3.2.5.1: an integer greater than zero; anything else is ignored.
        let mapi_http = mapi_http_capability
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .is_some_and(|v| v >= 1);
        let mut caps = ClientCaps {
            mapi_http,
            ..ClientCaps::default()
        };
        if let Some(list) = client_can_handle.and_then(|v| std::str::from_utf8(v).ok()) {
            for token in list.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("ExHttpInfo") {
                    caps.ex_http_info = true;
                } else if token.eq_ignore_ascii_case("Negotiate") {
                    caps.negotiate = true;
                }
            }
        }
        if let Some(ua) = user_agent.and_then(|v| std::str::from_utf8(v).ok()) {
            if ua.contains("Microsoft Outlook") || ua.contains("Microsoft Office/") {
                caps.outlook = true;
                caps.negotiate = true;
            }
        }
        caps
    }
}
