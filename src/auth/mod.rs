//! Sans-IO authentication: `Authorization` header parsing and the 401 challenge set.

pub mod basic;
pub mod der;
pub mod ntlm;
pub mod spnego;
pub mod throttle;

pub use basic::{parse_basic, BasicCredentials};

/// What a client presented in its `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// No `Authorization` header.
    Nothing,
    /// Basic credentials (possibly malformed: `None`).
    Basic(Option<BasicCredentials>),
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
    } else {
        Presented::Other
    }
}

/// The `WWW-Authenticate` lines of a 401, one header line each (brief §0 rule 6).
pub fn challenges(realm: &str, basic: bool) -> Vec<String> {
    let mut out = Vec::new();
    if basic {
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
        assert_eq!(
            challenges("autodiscover.contoso.com", true),
            vec!["Basic realm=\"autodiscover.contoso.com\"".to_string()]
        );
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert!(matches!(
            presented(Some(b"bAsIc YTpi")),
            Presented::Basic(Some(_))
        ));
        assert_eq!(presented(Some(b"Bearer xyz")), Presented::Other);
        assert_eq!(presented(None), Presented::Nothing);
    }
}
