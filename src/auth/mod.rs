//! Sans-IO authentication: `Authorization` header parsing and the 401 challenge set.

pub mod basic;
pub mod bearer;
pub mod der;
pub mod kerberos;
pub mod login;
pub mod negotiate;
pub mod ntlm;
pub mod spnego;
pub mod throttle;
pub mod winbind;

/// Helpers shared by unit tests (the authentication modules, the TLS record vectors).
#[cfg(test)]
pub(crate) mod testing {
    /// Hex (whitespace ignored) to bytes, for specification test vectors.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}

pub use basic::{credential_digest, parse_basic, BasicCredentials};
pub use login::{Identity, Login};
pub use negotiate::{ConnAuth, Scheme};

use base64::Engine;

/// What a client presented in its `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// No `Authorization` header.
    Nothing,
    /// Basic credentials (possibly malformed: `None`).
    Basic(Option<BasicCredentials>),
    /// An `NTLM` or `Negotiate` token (`None`: missing or not base64).
    Windows(Scheme, Option<Vec<u8>>),
    /// A `Bearer` access token (RFC 6750 §2.1); `None`: the empty `Bearer` Outlook for
    /// iOS and Android sends to ask whether modern authentication is on, or an oversized
    /// or non-token value.
    Bearer(Option<String>),
    /// A scheme this server does not accept.
    Other,
}

/// Classifies an `Authorization` header value (scheme names are case-insensitive).
pub fn presented(header: Option<&[u8]>) -> Presented {
    let Some(value) = header else {
        return Presented::Nothing;
    };
    let value = std::str::from_utf8(value).unwrap_or("");
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if scheme.eq_ignore_ascii_case("Basic") {
        Presented::Basic(parse_basic(rest.trim()))
    } else if scheme.eq_ignore_ascii_case("NTLM") {
        Presented::Windows(Scheme::Ntlm, decode_token(rest))
    } else if scheme.eq_ignore_ascii_case("Negotiate") {
        Presented::Windows(Scheme::Negotiate, decode_token(rest))
    } else if scheme.eq_ignore_ascii_case("Bearer") {
        Presented::Bearer(bearer_token(rest))
    } else {
        Presented::Other
    }
}

/// Largest accepted base64 token after `NTLM`/`Negotiate`: a bound on parser input; a
/// Type 3 with a full AV list stays far below it.
const MAX_WINDOWS_TOKEN_B64: usize = 16 * 1024;

fn decode_token(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_WINDOWS_TOKEN_B64 {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// The token after `Bearer`: the b64token of RFC 6750 §2.1, bounded.
fn bearer_token(text: &str) -> Option<String> {
    let text = text.trim();
    let is_b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    (!text.is_empty() && text.len() <= bearer::MAX_TOKEN_LEN && text.chars().all(is_b64token))
        .then(|| text.to_string())
}

/// Which schemes a 401 offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offers {
    pub negotiate: bool,
    pub ntlm: bool,
    pub basic: bool,
}

/// The `WWW-Authenticate` lines of a 401, one header line each, in the order
/// Bearer (when HMA is on: the rendered [`bearer::challenge`]), Negotiate, NTLM, Basic
/// (Exchange's order; RFC 7235 §4.1 allows one challenge per header line).
pub fn challenges(bearer: Option<&str>, realm: &str, offers: Offers) -> Vec<String> {
    let mut out: Vec<String> = bearer.map(str::to_string).into_iter().collect();
    if offers.negotiate {
        out.push("Negotiate".to_string());
    }
    if offers.ntlm {
        out.push("NTLM".to_string());
    }
    if offers.basic {
        out.push(format!("Basic realm=\"{}\"", sanitize_realm(realm)));
    }
    out
}

/// Keeps a realm printable and quote-free (it may come from the Host header).
pub fn sanitize_realm(realm: &str) -> String {
    realm
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        .take(255)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_from_a_hostile_host_header_is_cleaned() {
        assert_eq!(sanitize_realm("evil\"\r\nX: y"), "evilX:y");
        let basic_only = Offers {
            negotiate: false,
            ntlm: false,
            basic: true,
        };
        assert_eq!(
            challenges(None, "autodiscover.contoso.com", basic_only),
            vec!["Basic realm=\"autodiscover.contoso.com\"".to_string()]
        );
    }

    #[test]
    fn offers_come_in_iis_order_on_separate_lines() {
        let all = Offers {
            negotiate: true,
            ntlm: true,
            basic: true,
        };
        assert_eq!(
            challenges(None, "a.example", all),
            vec!["Negotiate", "NTLM", "Basic realm=\"a.example\""]
        );
        let bearer = bearer::challenge("t", bearer::DEFAULT_AUTHORIZATION_URI, false);
        let lines = challenges(Some(&bearer), "a.example", all);
        assert_eq!(lines.first(), Some(&bearer));
        assert_eq!(
            lines.get(1..),
            Some(
                &[
                    "Negotiate".to_string(),
                    "NTLM".to_string(),
                    "Basic realm=\"a.example\"".to_string()
                ][..]
            )
        );
    }

    #[test]
    fn bearer_tokens_and_the_empty_bearer_probe_are_told_apart() {
        assert_eq!(presented(Some(b"Bearer")), Presented::Bearer(None));
        assert_eq!(presented(Some(b"bearer  ")), Presented::Bearer(None));
        assert_eq!(
            presented(Some(b"Bearer eyJ0.eyJ1.c2ln-_")),
            Presented::Bearer(Some("eyJ0.eyJ1.c2ln-_".to_string()))
        );
        assert_eq!(presented(Some(b"Bearer a b")), Presented::Bearer(None));
        let huge = format!("Bearer {}", "a".repeat(bearer::MAX_TOKEN_LEN + 1));
        assert_eq!(presented(Some(huge.as_bytes())), Presented::Bearer(None));
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert!(matches!(
            presented(Some(b"bAsIc YTpi")),
            Presented::Basic(Some(_))
        ));
        assert_eq!(presented(Some(b"Digest xyz")), Presented::Other);
        assert_eq!(
            presented(Some(b"ntlm TlRMTVNTUAAB")),
            Presented::Windows(Scheme::Ntlm, Some(b"NTLMSSP\0\x01".to_vec()))
        );
        assert_eq!(
            presented(Some(b"Negotiate !!")),
            Presented::Windows(Scheme::Negotiate, None)
        );
        assert_eq!(
            presented(Some(b"NTLM")),
            Presented::Windows(Scheme::Ntlm, None)
        );
        assert_eq!(presented(None), Presented::Nothing);
    }
}
