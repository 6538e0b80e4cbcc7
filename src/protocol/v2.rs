//! AutodiscoverV2: the anonymous JSON endpoint (not in Microsoft's open specifications; the
//! shape is Exchange's observable behaviour, see docs/protocol.md). Parses both URL forms
//! (`/autodiscover/autodiscover.json/v1.0/{email}?Protocol=..` and
//! `/autodiscover/autodiscover.json?Email=..&Protocol=..&RedirectCount=n`), decides what to
//! answer from what the directory said, and renders the JSON. No I/O; the caller looks up.

use serde::Serialize;

/// The V2 path, lower-case (matching is case-insensitive, as IIS matches paths).
pub const PATH: &str = "/autodiscover/autodiscover.json";

/// Longest address accepted (RFC 5321: 64 + 1 + 255).
const MAX_ADDRESS: usize = 320;

/// Protocols an on-premises Exchange answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Protocol {
    AutodiscoverV1,
    Ews,
    ActiveSync,
    Rest,
}

impl V2Protocol {
    /// Every protocol, in the order error messages list them.
    pub const ALL: [V2Protocol; 4] = [
        V2Protocol::AutodiscoverV1,
        V2Protocol::Ews,
        V2Protocol::ActiveSync,
        V2Protocol::Rest,
    ];

    /// The canonical spelling.
    pub fn name(self) -> &'static str {
        match self {
            V2Protocol::AutodiscoverV1 => "AutodiscoverV1",
            V2Protocol::Ews => "Ews",
            V2Protocol::ActiveSync => "ActiveSync",
            V2Protocol::Rest => "Rest",
        }
    }

    /// Case-insensitive match of a `Protocol` value.
    pub fn parse(text: &str) -> Option<V2Protocol> {
        V2Protocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(text))
    }
}

/// A parsed V2 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Request {
    /// The address, percent-decoded and trimmed.
    pub email: String,
    pub protocol: V2Protocol,
    /// `Protocol` exactly as the client spelled it (echoed back, as Exchange does).
    pub protocol_as_sent: String,
    /// `RedirectCount`, 0 when absent.
    pub redirect_count: u32,
}

/// Why a request cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2Reject {
    /// `Protocol` missing or not one we know (the value as sent, `""` when missing).
    InvalidProtocol(String),
    /// No address, or not an address.
    InvalidAddress,
    /// `RedirectCount` is not a non-negative integer.
    InvalidRedirectCount,
    /// A path under `autodiscover.json` that is neither V2 form.
    NotFound,
}

/// True when `path` (any case) is the V2 endpoint or below it.
pub fn is_v2_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower == PATH || lower.starts_with("/autodiscover/autodiscover.json/")
}

/// Decodes `%XX` escapes (and `+` as space in query strings). `None` for a broken escape
/// or a result that is not UTF-8.
pub fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `local@domain` with both parts non-empty, no spaces or control characters.
fn is_address(text: &str) -> bool {
    text.len() <= MAX_ADDRESS
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        && text
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
}

/// Parses the raw (still percent-encoded) path and query of a V2 request. Parameter names
/// and the `v1.0` segment are case-insensitive; the first of repeated parameters wins.
pub fn parse_request(path: &str, query: Option<&str>) -> Result<V2Request, V2Reject> {
    if !is_v2_path(path) {
        return Err(V2Reject::NotFound);
    }
    let rest = path.get(PATH.len()..).unwrap_or_default();
    let path_email = match rest {
        "" | "/" => None,
        _ => {
            let (version, email) = rest
                .trim_start_matches('/')
                .split_once('/')
                .ok_or(V2Reject::NotFound)?;
            if !version.eq_ignore_ascii_case("v1.0") || email.is_empty() || email.contains('/') {
                return Err(V2Reject::NotFound);
            }
            Some(percent_decode(email, false).ok_or(V2Reject::InvalidAddress)?)
        }
    };
    let mut email = None;
    let mut protocol = None;
    let mut count = None;
    for pair in query.unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(name) = percent_decode(name, true) else {
            continue;
        };
        let slot = if name.eq_ignore_ascii_case("Email") {
            &mut email
        } else if name.eq_ignore_ascii_case("Protocol") {
            &mut protocol
        } else if name.eq_ignore_ascii_case("RedirectCount") {
            &mut count
        } else {
            continue;
        };
        if slot.is_none() {
            *slot = Some(percent_decode(value, true));
        }
    }
    let protocol_as_sent = match protocol {
        Some(Some(p)) => p,
        Some(None) => return Err(V2Reject::InvalidProtocol(String::new())),
        None => return Err(V2Reject::InvalidProtocol(String::new())),
    };
    let protocol = V2Protocol::parse(protocol_as_sent.trim())
        .ok_or_else(|| V2Reject::InvalidProtocol(protocol_as_sent.clone()))?;
    let email = match (path_email, email) {
        (Some(e), _) => e,
        (None, Some(Some(e))) => e,
        _ => return Err(V2Reject::InvalidAddress),
    };
    let email = email.trim().to_string();
    if !is_address(&email) {
        return Err(V2Reject::InvalidAddress);
    }
    let redirect_count = match count {
        None => 0,
        Some(Some(c)) => c
            .trim()
            .parse::<u32>()
            .map_err(|_| V2Reject::InvalidRedirectCount)?,
        Some(None) => return Err(V2Reject::InvalidRedirectCount),
    };
    Ok(V2Request {
        email,
        protocol,
        protocol_as_sent,
        redirect_count,
    })
}

/// The URL answered for each protocol; `activesync` is `None` when it is not offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Urls {
    pub autodiscover_v1: String,
    pub ews: String,
    pub activesync: Option<String>,
    pub rest: String,
}

impl V2Urls {
    /// The URL for `protocol`, `None` when this server does not offer it.
    pub fn url(&self, protocol: V2Protocol) -> Option<&str> {
        match protocol {
            V2Protocol::AutodiscoverV1 => Some(&self.autodiscover_v1),
            V2Protocol::Ews => Some(&self.ews),
            V2Protocol::ActiveSync => self.activesync.as_deref(),
            V2Protocol::Rest => Some(&self.rest),
        }
    }

    /// The protocols offered, canonical spelling.
    pub fn supported(&self) -> Vec<&'static str> {
        V2Protocol::ALL
            .into_iter()
            .filter(|p| self.url(*p).is_some())
            .map(V2Protocol::name)
            .collect()
    }
}

/// Everything the answer depends on besides the request and the directory.
#[derive(Debug, Clone)]
pub struct V2Policy<'a> {
    pub urls: &'a V2Urls,
    /// `https://host[:port]` of the tenant's V2 endpoint.
    pub tenant_url: &'a str,
    /// Lower-case accepted domains.
    pub accepted_domains: &'a [String],
    pub reveal_unknown_users: bool,
    pub max_redirect_count: u32,
}

/// What the directory said about the address (from the shared hybrid decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A mailbox that lives here.
    Local,
    /// A mailbox in the tenant: `targetAddress` without `SMTP:`.
    Migrated(String),
    /// Unknown, or known without a mailbox we can describe (contact, broken object).
    NotServed,
    /// The directory could not be asked.
    Unavailable,
}

/// The HTTP answer to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2Answer {
    /// A JSON body with this status.
    Json { status: u16, body: Vec<u8> },
    /// `302 Found` to this absolute URL.
    Redirect(String),
}

#[derive(Serialize)]
struct UrlBody<'a> {
    #[serde(rename = "Protocol")]
    protocol: &'a str,
    #[serde(rename = "Url")]
    url: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "ErrorCode")]
    code: &'a str,
    #[serde(rename = "ErrorMessage")]
    message: &'a str,
}

fn json<T: Serialize>(status: u16, value: &T) -> V2Answer {
    // Serialising these two-string structs cannot fail; an empty body would still be a
    // clear (if unhelpful) answer.
    V2Answer::Json {
        status,
        body: serde_json::to_vec(value).unwrap_or_default(),
    }
}

/// `{"ErrorCode":..,"ErrorMessage":..}` with `status`.
pub fn error(status: u16, code: &str, message: &str) -> V2Answer {
    json(status, &ErrorBody { code, message })
}

/// The 400 `InvalidProtocol` answer (the shape Exchange Online and mailcow send).
pub fn invalid_protocol(value: &str, urls: &V2Urls) -> V2Answer {
    let message = format!(
        "The given protocol value '{value}' is invalid. Supported values are '{}'",
        urls.supported().join(",")
    );
    error(400, "InvalidProtocol", &message)
}

/// The answer to a request that failed to parse.
pub fn reject(reject: &V2Reject, urls: &V2Urls) -> V2Answer {
    match reject {
        V2Reject::InvalidProtocol(value) => invalid_protocol(value, urls),
        V2Reject::InvalidAddress => error(
            400,
            "InvalidUser",
            "The request carries no valid email address.",
        ),
        V2Reject::InvalidRedirectCount => error(
            400,
            "InvalidRequest",
            "RedirectCount must be a non-negative integer.",
        ),
        V2Reject::NotFound => error(404, "NotFound", "Unknown AutodiscoverV2 path."),
    }
}

/// `<tenant_url>/autodiscover/autodiscover.json?Email=..&Protocol=..&RedirectCount=n`.
pub fn redirect_location(
    tenant_url: &str,
    email: &str,
    protocol_as_sent: &str,
    count: u32,
) -> String {
    format!(
        "{}{PATH}?Email={}&Protocol={}&RedirectCount={count}",
        tenant_url.trim_end_matches('/'),
        percent_encode(email),
        percent_encode(protocol_as_sent)
    )
}

/// Checks that do not depend on the directory (so they reveal nothing about the user):
/// the protocol is offered, the domain is ours, `RedirectCount` is under the cap.
/// `Some` is the answer to send without looking up.
pub fn precheck(req: &V2Request, policy: &V2Policy<'_>) -> Option<V2Answer> {
    if policy.urls.url(req.protocol).is_none() {
        return Some(invalid_protocol(&req.protocol_as_sent, policy.urls));
    }
    let domain = req
        .email
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    if !policy.accepted_domains.contains(&domain) {
        return Some(error(
            400,
            "InvalidDomain",
            "The email address is not in a domain served here.",
        ));
    }
    if req.redirect_count > policy.max_redirect_count {
        return Some(too_many_redirects(policy));
    }
    None
}

fn too_many_redirects(policy: &V2Policy<'_>) -> V2Answer {
    error(
        400,
        "TooManyRedirects",
        &format!(
            "RedirectCount exceeds {}; the client is in a redirect loop.",
            policy.max_redirect_count
        ),
    )
}

/// The answer after the lookup. Without `reveal_unknown_users`, an address we do not serve
/// gets exactly the answer of a local mailbox of its domain: the URLs are organisation-wide,
/// so the body is byte-for-byte the same and the endpoint is no enumeration oracle.
pub fn answer(req: &V2Request, found: &Found, policy: &V2Policy<'_>) -> V2Answer {
    let Some(url) = policy.urls.url(req.protocol) else {
        return invalid_protocol(&req.protocol_as_sent, policy.urls);
    };
    let settings = || {
        json(
            200,
            &UrlBody {
                protocol: &req.protocol_as_sent,
                url,
            },
        )
    };
    match found {
        Found::Local => settings(),
        Found::Migrated(target) => {
            let next = req.redirect_count.saturating_add(1);
            if next > policy.max_redirect_count {
                return too_many_redirects(policy);
            }
            V2Answer::Redirect(redirect_location(
                policy.tenant_url,
                target,
                &req.protocol_as_sent,
                next,
            ))
        }
        Found::NotServed if policy.reveal_unknown_users => {
            error(404, "InvalidUser", "The email address can't be found.")
        }
        Found::NotServed => settings(),
        Found::Unavailable => error(
            503,
            "InternalServerError",
            "An internal server error occurred. The operation failed.",
        ),
    }
}

#[cfg(test)]
mod tests;
