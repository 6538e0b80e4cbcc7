//! The mail account a non-Autodiscover client (Thunderbird autoconfig, Apple profiles) is
//! told to create, independent of the format that carries it; and the address parameter
//! those anonymous requests carry.

use crate::config::mail::InternetServers;

/// Longest address accepted (RFC 5321 §4.5.3.1: 64 + 1 + 255).
const MAX_ADDRESS: usize = 320;

/// The login name of an account: concrete, or a placeholder the client fills in from the
/// address the user typed (autoconfig only; `%EMAILADDRESS%`, `%EMAILLOCALPART%`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    Name(String),
    AddressPlaceholder,
    LocalPartPlaceholder,
}

/// An Exchange account (EWS for autoconfig, ActiveSync for profiles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeAccount<'a> {
    /// Host and port of the EWS URL.
    pub host: String,
    pub port: u16,
    pub ews_url: String,
    pub owa_url: Option<&'a str>,
    pub activesync_url: Option<String>,
    /// Autoconfig authentication names (`NTLM`, `password-cleartext`), preferred first.
    pub auth: Vec<&'static str>,
    pub login: Login,
}

/// What kind of account to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountKind<'a> {
    /// IMAP/POP3 and SMTP (an Internet-mail mailbox, or a migrated one at the tenant).
    Internet {
        servers: &'a InternetServers,
        login: Login,
    },
    Exchange(ExchangeAccount<'a>),
}

/// One account to configure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccount<'a> {
    /// The lower-case domain the answer is for.
    pub domain: &'a str,
    /// The organisation's name (`organization.display_name`).
    pub provider_name: &'a str,
    /// The account's address; `None` for a domain answer without one.
    pub email: Option<&'a str>,
    /// The user's name, only in per-mailbox answers.
    pub display_name: Option<&'a str>,
    pub kind: AccountKind<'a>,
}

/// Why an address parameter is refused.
pub use super::autoconfig::AutoconfigReject as AddressReject;

/// A plausible `local@domain`: within the length limit, no whitespace, controls or
/// characters that are markup or quoting in the documents it is written into, one `@`
/// before a host name. Refusing these outright (400) means no answer ever carries them.
pub fn is_clean_address(text: &str) -> bool {
    text.len() <= MAX_ADDRESS
        && !text.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '\'' | '\\' | '&')
        })
        && text.rsplit_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !local.contains('@') && crate::config::is_host_name(domain)
        })
}

/// The first `name=` parameter of `query` (name case-insensitive), percent-decoded and
/// checked with [`is_clean_address`]. `Ok(None)` when absent or empty.
pub fn query_address(query: Option<&str>, name: &str) -> Result<Option<String>, AddressReject> {
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(key) = super::v2::percent_decode(key, true) else {
            continue;
        };
        if !key.eq_ignore_ascii_case(name) {
            continue;
        }
        let value = super::v2::percent_decode(value, true).ok_or(AddressReject::InvalidAddress)?;
        let value = value.trim();
        // `emailaddress=` with nothing: the client has no address to give.
        if value.is_empty() {
            return Ok(None);
        }
        return if is_clean_address(value) {
            Ok(Some(value.to_string()))
        } else {
            Err(AddressReject::InvalidAddress)
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_addresses_pass_and_markup_does_not() {
        assert!(is_clean_address("alice@contoso.com"));
        assert!(is_clean_address("a.b+tag@sub.contoso.com"));
        for bad in [
            "",
            "alice",
            "@contoso.com",
            "alice@",
            "a@b@contoso.com",
            "<a>@contoso.com",
            "a@contoso.com\r\nX: y",
            "a b@contoso.com",
            "a@contoso..com",
            "a&amp;@contoso.com",
        ] {
            assert!(!is_clean_address(bad), "{bad:?}");
        }
    }

    #[test]
    fn query_addresses_are_decoded_and_the_first_one_wins() {
        assert_eq!(
            query_address(Some("x=1&EMAIL=bob%40contoso.com&email=z@z.z"), "email"),
            Ok(Some("bob@contoso.com".into()))
        );
        assert_eq!(query_address(Some("x=1"), "email"), Ok(None));
        assert_eq!(query_address(None, "email"), Ok(None));
        assert_eq!(
            query_address(Some("email=%E0%80"), "email"),
            Err(AddressReject::InvalidAddress)
        );
    }
}
