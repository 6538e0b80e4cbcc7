//! Client-side HTTP authentication for the probe, sans-IO and pluggable: a
//! [`ClientAuth`] produces the `Authorization` value of each leg from the server's
//! challenge on the previous 401. Basic is one leg; NTLM (three legs on one connection)
//! plugs in the same way once the NTLM module lands.

use base64::Engine;

/// User name and password. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One authentication scheme driven leg by leg.
pub trait ClientAuth: Send {
    /// The scheme name as it appears in `WWW-Authenticate` (`Basic`, `NTLM`).
    fn scheme(&self) -> &'static str;

    /// The `Authorization` header value for the next leg. `challenge` is the token the
    /// server sent with this scheme on the previous 401 (`None` on the first leg, or when
    /// the 401 carried the bare scheme name). `None` means there is nothing more to send:
    /// the server refused the credentials.
    fn next_leg(&mut self, challenge: Option<&str>) -> Option<String>;
}

/// HTTP Basic: one leg; a second 401 means the credentials were refused.
pub struct Basic {
    credentials: Credentials,
    sent: bool,
}

impl Basic {
    /// Basic authentication with `credentials` (encoded as UTF-8).
    pub fn new(credentials: Credentials) -> Basic {
        Basic {
            credentials,
            sent: false,
        }
    }
}

impl ClientAuth for Basic {
    fn scheme(&self) -> &'static str {
        "Basic"
    }

    fn next_leg(&mut self, _challenge: Option<&str>) -> Option<String> {
        if self.sent {
            return None;
        }
        self.sent = true;
        let pair = format!("{}:{}", self.credentials.user, self.credentials.password);
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
        ))
    }
}

/// The schemes a 401 offers, one per `WWW-Authenticate` line (`Basic realm="x"` → `Basic`).
pub fn offered_schemes(www_authenticate: &[String]) -> Vec<String> {
    www_authenticate
        .iter()
        .filter_map(|line| line.split_whitespace().next())
        .map(|s| s.trim_end_matches(',').to_string())
        .collect()
}

/// The challenge token of `scheme` in a 401 (`NTLM TlRMTVNT…` → `TlRMTVNT…`), if any.
pub fn challenge_token<'a>(www_authenticate: &'a [String], scheme: &str) -> Option<&'a str> {
    www_authenticate.iter().find_map(|line| {
        let (name, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        (name.eq_ignore_ascii_case(scheme) && is_token68(rest.trim())).then(|| rest.trim())
    })
}

/// RFC 7235 token68 (`abc+/==`), as opposed to auth-params (`realm="x"`).
fn is_token68(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_sends_one_leg_then_gives_up() {
        let mut b = Basic::new(Credentials {
            user: "alice@contoso.com".into(),
            password: "pässword".into(),
        });
        let first = b.next_leg(None).unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(first.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, "alice@contoso.com:pässword".as_bytes());
        assert_eq!(b.next_leg(None), None);
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials {
            user: "u".into(),
            password: "secret-pw".into(),
        };
        assert!(!format!("{c:?}").contains("secret-pw"));
    }

    #[test]
    fn schemes_and_tokens_are_read_from_challenges() {
        let lines = vec![
            "NTLM".to_string(),
            "Basic realm=\"autodiscover.contoso.com\"".to_string(),
        ];
        assert_eq!(offered_schemes(&lines), vec!["NTLM", "Basic"]);
        assert_eq!(challenge_token(&lines, "ntlm"), None);
        assert_eq!(challenge_token(&lines, "Basic"), None);
        let lines = vec!["NTLM TlRMTVNTUAACAAAA==".to_string()];
        assert_eq!(challenge_token(&lines, "NTLM"), Some("TlRMTVNTUAACAAAA=="));
    }
}
