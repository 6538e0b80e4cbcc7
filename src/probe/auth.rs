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

/// An Entra ID access token (`--bearer`): one leg; a second 401 means it was refused.
pub struct Bearer {
    token: String,
    sent: bool,
}

impl Bearer {
    /// Presents `token`.
    pub fn new(token: &str) -> Bearer {
        Bearer {
            token: token.trim().to_string(),
            sent: false,
        }
    }
}

impl ClientAuth for Bearer {
    fn scheme(&self) -> &'static str {
        "Bearer"
    }

    fn next_leg(&mut self, _challenge: Option<&str>) -> Option<String> {
        if self.sent {
            return None;
        }
        self.sent = true;
        Some(format!("Bearer {}", self.token))
    }
}

/// The parameters of a challenge line (`Bearer a="x", b="y"`), in order.
fn challenge_params(line: &str) -> Vec<(String, String)> {
    let rest = line.split_once(' ').map_or("", |(_, r)| r);
    let mut out = Vec::new();
    let mut text = rest.trim();
    while let Some((name, after)) = text.split_once('=') {
        let name = name
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((v, r)) => (v.to_string(), r),
                None => (quoted.to_string(), ""),
            },
            None => match after.split_once(',') {
                Some((v, r)) => (v.trim().to_string(), r),
                None => (after.trim().to_string(), ""),
            },
        };
        out.push((name, value));
        text = remainder.trim_start_matches([',', ' ']);
    }
    out
}

/// What a 401 says about Hybrid Modern Authentication, as the connectivity analyzer's
/// modern-auth test reads it: `None` without a Bearer challenge; `Ok` with a summary when
/// it has Exchange's four parameters in order (the Exchange Online application id, Entra's
/// token service `@` a tenant, the token types, an https `authorization_uri`); `Err` with
/// what is wrong otherwise.
pub fn bearer_offer(www_authenticate: &[String]) -> Option<Result<String, String>> {
    let line = www_authenticate.iter().find(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|s| s.eq_ignore_ascii_case("Bearer"))
    })?;
    let params = challenge_params(line);
    let names: Vec<&str> = params.iter().take(4).map(|(n, _)| n.as_str()).collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let expected = [
        "client_id",
        "trusted_issuers",
        "token_types",
        "authorization_uri",
    ];
    if names != expected {
        return Some(Err(format!(
            "the Bearer challenge's parameters are [{}], not client_id, trusted_issuers, token_types, authorization_uri",
            names.join(", ")
        )));
    }
    if get("client_id") != Some(crate::auth::bearer::EXCHANGE_CLIENT_ID) {
        return Some(Err(format!(
            "client_id is {:?}, not Exchange Online's {}",
            get("client_id").unwrap_or_default(),
            crate::auth::bearer::EXCHANGE_CLIENT_ID
        )));
    }
    let tenant = get("trusted_issuers")
        .and_then(|t| t.split_once('@'))
        .filter(|(sts, _)| *sts == crate::auth::bearer::ENTRA_STS_PRINCIPAL)
        .and_then(|(_, tenant)| crate::auth::bearer::parse_tenant_id(tenant));
    let Some(tenant) = tenant else {
        return Some(Err(format!(
            "trusted_issuers {:?} is not {}@<tenant id>",
            get("trusted_issuers").unwrap_or_default(),
            crate::auth::bearer::ENTRA_STS_PRINCIPAL
        )));
    };
    let uri = get("authorization_uri").unwrap_or_default();
    if !uri.starts_with("https://") {
        return Some(Err(format!(
            "authorization_uri {uri:?} is not an https URL: clients cannot get a token"
        )));
    }
    Some(Ok(format!("tenant {tenant}, authorization_uri {uri}")))
}

/// NTLMv2 (MS-NLMP), three legs on one connection: NEGOTIATE, then AUTHENTICATE built
/// from the server's CHALLENGE. Uses the crate's NTLM initiator; the client challenge and
/// the exported session key are inputs (randomness comes from the I/O side).
pub struct Ntlm {
    options: crate::auth::ntlm::client::ClientOptions,
    type1: Vec<u8>,
    legs: u8,
}

impl Ntlm {
    /// NTLM for `credentials`. `DOMAIN\user` is split; any other login (UPN, plain name)
    /// is sent as the user name with an empty domain.
    pub fn new(
        credentials: &Credentials,
        client_challenge: [u8; 8],
        session_key: [u8; 16],
    ) -> Ntlm {
        let (domain, user) = match credentials.user.split_once('\\') {
            Some((d, u)) => (d.to_string(), u.to_string()),
            None => (String::new(), credentials.user.clone()),
        };
        let mut options =
            crate::auth::ntlm::client::ClientOptions::new(&user, &domain, &credentials.password);
        options.client_challenge = client_challenge;
        options.random_session_key = session_key;
        Ntlm {
            options,
            type1: crate::auth::ntlm::client::negotiate_message(
                crate::auth::ntlm::client::DEFAULT_FLAGS,
            ),
            legs: 0,
        }
    }
}

impl ClientAuth for Ntlm {
    fn scheme(&self) -> &'static str {
        "NTLM"
    }

    fn next_leg(&mut self, challenge: Option<&str>) -> Option<String> {
        let b64 = &base64::engine::general_purpose::STANDARD;
        match (self.legs, challenge) {
            (0, _) => {
                self.legs = 1;
                Some(format!("NTLM {}", b64.encode(&self.type1)))
            }
            (1, Some(token)) => {
                self.legs = 2;
                let type2 = b64.decode(token.trim()).ok()?;
                let (type3, _) = crate::auth::ntlm::client::authenticate_message(
                    &self.options,
                    &self.type1,
                    &type2,
                )
                .ok()?;
                Some(format!("NTLM {}", b64.encode(type3)))
            }
            // No CHALLENGE after NEGOTIATE, or a 401 after AUTHENTICATE: refused.
            _ => None,
        }
    }
}

/// Which scheme the probe uses (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthChoice {
    /// NTLM when the server offers it (as Outlook and exchangelib prefer), else Basic.
    Auto,
    Basic,
    Ntlm,
}

impl AuthChoice {
    /// Parses `auto`, `basic` or `ntlm`.
    pub fn parse(text: &str) -> Option<AuthChoice> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(AuthChoice::Auto),
            "basic" => Some(AuthChoice::Basic),
            "ntlm" => Some(AuthChoice::Ntlm),
            _ => None,
        }
    }
}

/// A scheme to drive, chosen from what a 401 offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Basic,
    Ntlm,
    Bearer,
}

/// Picks the scheme for `choice` among the `offered` ones (a 401 without any
/// `WWW-Authenticate` is answered with Basic). `Err` explains the mismatch.
pub fn choose(choice: AuthChoice, offered: &[String]) -> Result<Scheme, String> {
    let has = |name: &str| offered.iter().any(|s| s.eq_ignore_ascii_case(name));
    let list = if offered.is_empty() {
        "nothing".to_string()
    } else {
        offered.join(", ")
    };
    match choice {
        AuthChoice::Auto if has("NTLM") => Ok(Scheme::Ntlm),
        AuthChoice::Auto | AuthChoice::Basic if has("Basic") || offered.is_empty() => {
            Ok(Scheme::Basic)
        }
        AuthChoice::Ntlm if has("NTLM") => Ok(Scheme::Ntlm),
        AuthChoice::Auto => Err(format!(
            "the server offers {list}; this probe speaks NTLM and Basic"
        )),
        AuthChoice::Basic => Err(format!("--auth basic, but the server offers {list}")),
        AuthChoice::Ntlm => Err(format!("--auth ntlm, but the server offers {list}")),
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
    fn ntlm_sends_negotiate_then_authenticate_for_the_challenge() {
        use crate::auth::ntlm::{crypto, messages, SIGNATURE};
        let creds = Credentials {
            user: "CONTOSO\\alice".into(),
            password: "alice-pw".into(),
        };
        let mut n = Ntlm::new(&creds, [1; 8], [2; 16]);
        let b64 = &base64::engine::general_purpose::STANDARD;
        let first = n.next_leg(None).unwrap();
        let type1 = b64.decode(first.strip_prefix("NTLM ").unwrap()).unwrap();
        assert!(type1.starts_with(SIGNATURE));
        assert!(messages::parse_negotiate(&type1).is_ok());
        // A server CHALLENGE built by the crate's own acceptor code.
        let names = messages::ServerNames {
            nb_domain: "CONTOSO".into(),
            nb_computer: "AUTODISCOVER".into(),
            dns_domain: "contoso.com".into(),
            dns_computer: "autodiscover.contoso.com".into(),
            dns_tree: "contoso.com".into(),
        };
        let info = messages::target_info(&names, 1);
        let type2 = messages::build_challenge(
            crate::auth::ntlm::client::DEFAULT_FLAGS,
            &crypto::utf16le("CONTOSO"),
            &[9; 8],
            &info,
        );
        let third = n.next_leg(Some(&b64.encode(&type2))).unwrap();
        let type3 = b64.decode(third.strip_prefix("NTLM ").unwrap()).unwrap();
        let parsed = messages::parse_authenticate(&type3).unwrap();
        assert_eq!(parsed.user, "alice");
        assert_eq!(parsed.domain, "CONTOSO");
        // The NTProofStr is right for the password (MS-NLMP §3.3.2).
        let key = crypto::ntowfv2(&crypto::nt_hash("alice-pw"), "alice", "CONTOSO");
        let (proof, temp) = parsed.nt_response.split_at(16);
        assert_eq!(proof, crypto::nt_proof(&key, &[9; 8], temp));
        // Refused after the third leg; garbage challenges end the exchange too.
        assert_eq!(n.next_leg(None), None);
        let mut n = Ntlm::new(&creds, [1; 8], [2; 16]);
        n.next_leg(None);
        assert_eq!(n.next_leg(Some("not base64!")), None);
    }

    #[test]
    fn auto_prefers_ntlm_and_explicit_choices_are_checked() {
        let both = vec!["NTLM".to_string(), "Basic realm=\"x\"".to_string()];
        let offered = offered_schemes(&both);
        assert_eq!(choose(AuthChoice::Auto, &offered), Ok(Scheme::Ntlm));
        assert_eq!(choose(AuthChoice::Basic, &offered), Ok(Scheme::Basic));
        let basic = vec!["Basic".to_string()];
        assert_eq!(choose(AuthChoice::Auto, &basic), Ok(Scheme::Basic));
        assert!(choose(AuthChoice::Ntlm, &basic)
            .unwrap_err()
            .contains("offers Basic"));
        assert_eq!(choose(AuthChoice::Auto, &[]), Ok(Scheme::Basic));
        assert!(choose(AuthChoice::Auto, &["Negotiate".to_string()]).is_err());
        assert_eq!(AuthChoice::parse("NTLM"), Some(AuthChoice::Ntlm));
        assert_eq!(AuthChoice::parse("digest"), None);
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
    fn the_bearer_offer_is_checked_like_the_connectivity_analyzer_does() {
        let tenant = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
        let good = crate::auth::bearer::challenge(
            tenant,
            crate::auth::bearer::DEFAULT_AUTHORIZATION_URI,
            false,
        );
        let lines = vec![good.clone(), "NTLM".to_string()];
        assert_eq!(
            bearer_offer(&lines),
            Some(Ok(format!(
                "tenant {tenant}, authorization_uri https://login.windows.net/common/oauth2/authorize"
            )))
        );
        let refused = crate::auth::bearer::challenge(tenant, "https://x.example/a", true);
        assert!(matches!(bearer_offer(&[refused]), Some(Ok(_))));
        assert_eq!(bearer_offer(&["NTLM".to_string()]), None);
        let no_uri = good.replace(
            ", authorization_uri=\"https://login.windows.net/common/oauth2/authorize\"",
            "",
        );
        assert!(bearer_offer(&[no_uri])
            .unwrap()
            .unwrap_err()
            .contains("parameters"));
        let plain = good.replace("https://login.windows.net", "http://login.windows.net");
        assert!(bearer_offer(&[plain])
            .unwrap()
            .unwrap_err()
            .contains("https"));
        let other_app = good.replace("00000002-0000-0ff1", "00000003-0000-0ff1");
        assert!(bearer_offer(&[other_app])
            .unwrap()
            .unwrap_err()
            .contains("client_id"));
        let no_tenant = good.replace(&format!("@{tenant}"), "");
        assert!(bearer_offer(&[no_tenant])
            .unwrap()
            .unwrap_err()
            .contains("trusted_issuers"));
        assert_eq!(
            Bearer::new(" t0k ").next_leg(None).as_deref(),
            Some("Bearer t0k")
        );
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
