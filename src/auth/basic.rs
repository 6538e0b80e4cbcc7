//! HTTP Basic credentials: base64 of `user:password`, UTF-8 with a Latin-1 fallback
//! (Outlook encodes ISO-8859-1, phones UTF-8; RFC 7617 §2.1 leaves the charset open).

use base64::Engine;

use super::login::Login;

/// Decoded Basic credentials. `Debug` never shows the password.
#[derive(PartialEq, Eq)]
pub struct BasicCredentials {
    pub login: Login,
    pub password: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("login", &self.login)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Upper bound on the encoded token; real ones are far shorter.
const MAX_TOKEN: usize = 4096;

/// Decodes the token after `Basic `. `None` for bad base64, no colon or an unusable login.
pub fn parse_basic(token: &str) -> Option<BasicCredentials> {
    if token.len() > MAX_TOKEN {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = match String::from_utf8(raw) {
        Ok(t) => t,
        // Latin-1: every byte is the code point of the same value.
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    let (user, password) = text.split_once(':')?;
    Some(BasicCredentials {
        login: Login::parse(user)?,
        password: password.to_string(),
    })
}

/// A keyed, non-reversible digest of a login and password (HMAC-SHA-256; the login
/// trimmed and case-folded, length-prefixed so that login and password cannot trade
/// characters): what the verification cache and the record of wrong passwords keep instead
/// of the password.
pub fn credential_digest(key: &ring::hmac::Key, login: &str, password: &str) -> [u8; 32] {
    let login = login.trim().to_lowercase();
    let mut ctx = ring::hmac::Context::with_key(key);
    ctx.update(&(login.len() as u64).to_be_bytes());
    ctx.update(login.as_bytes());
    ctx.update(password.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn utf8_credentials_decode() {
        let c = parse_basic(&b64("alice@contoso.com:pässword:with:colons".as_bytes())).unwrap();
        assert_eq!(
            c.login,
            Login::UserPrincipalName("alice@contoso.com".into())
        );
        assert_eq!(c.password, "pässword:with:colons");
    }

    #[test]
    fn latin1_credentials_fall_back() {
        let c = parse_basic(&b64(b"CONTOSO\\alice:p\xe4ss")).unwrap();
        assert_eq!(c.password, "päss");
        assert!(matches!(c.login, Login::DownLevel { .. }));
    }

    #[test]
    fn garbage_is_none() {
        assert!(parse_basic("!!!").is_none());
        assert!(parse_basic(&b64(b"nocolon")).is_none());
        assert!(parse_basic(&b64(b":password")).is_none());
        assert!(parse_basic(&"A".repeat(10_000)).is_none());
    }

    #[test]
    fn debug_hides_the_password() {
        let c = parse_basic(&b64(b"alice:SecretValue")).unwrap();
        assert!(!format!("{c:?}").contains("SecretValue"));
    }
}
