//! Sans-IO Hybrid Modern Authentication: the Bearer challenge Exchange Server sends when
//! HMA is on, the rules an Entra ID access token must pass (signature by `kid`, issuer,
//! audience, lifetime, a delegated user token), the signing keys of the tenant (OpenID
//! discovery document and JWKS, RFC 7517) and when to fetch them again. Fetching is the
//! server's (`server/endpoints/bearer.rs`); the clock is passed in.
//!
//! JWT parsing and the RS256 signature check are `jsonwebtoken`'s (RFC 7515, RFC 7519);
//! the claims are checked here, with the caller's clock.

use std::collections::HashMap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// The application id of "Office 365 Exchange Online", the resource Outlook asks Entra for.
pub const EXCHANGE_CLIENT_ID: &str = "00000002-0000-0ff1-ce00-000000000000";
/// The principal of Entra's token service, the `trusted_issuers` of the challenge.
pub const ENTRA_STS_PRINCIPAL: &str = "00000001-0000-0000-c000-000000000000";
/// Where Exchange's challenge sends clients for a token.
pub const DEFAULT_AUTHORIZATION_URI: &str = "https://login.windows.net/common/oauth2/authorize";
/// Entra's public authority.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The largest accepted clock skew for `exp` and `nbf`.
pub const MAX_LEEWAY_SECS: u64 = 300;
/// Largest accepted token (Entra's are a few KiB; groups overage keeps them bounded).
pub const MAX_TOKEN_LEN: usize = 32 * 1024;

/// What a validated configuration says about accepted tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRules {
    /// The tenant, a lower-case GUID.
    pub tenant_id: String,
    /// Accepted audiences, normalised ([`normalize_audience`]); empty: the origin of the
    /// request's host name.
    pub audiences: Vec<String>,
    /// Also accept the bare Exchange Online application id as audience (off: it would
    /// accept tokens minted for Exchange Online).
    pub accept_exchange_online_audience: bool,
    /// Clock skew allowed for `exp` and `nbf`, at most [`MAX_LEEWAY_SECS`].
    pub leeway_secs: u64,
}

impl TokenRules {
    /// The two issuer forms of the tenant: v1 (`sts.windows.net`) and v2 tokens.
    pub fn issuers(&self) -> [String; 2] {
        [
            format!("https://sts.windows.net/{}/", self.tenant_id),
            format!("https://login.microsoftonline.com/{}/v2.0", self.tenant_id),
        ]
    }
}

/// The `WWW-Authenticate` value of the Bearer challenge, exactly as Exchange Server sends
/// it with HMA on; `refused` adds `error="invalid_token"` (RFC 6750 §3.1).
pub fn challenge(tenant_id: &str, authorization_uri: &str, refused: bool) -> String {
    let mut out = format!(
        "Bearer client_id=\"{EXCHANGE_CLIENT_ID}\", trusted_issuers=\"{ENTRA_STS_PRINCIPAL}@{tenant_id}\", token_types=\"app_asserted_user_v1 service_asserted_app_v1\", authorization_uri=\"{authorization_uri}\""
    );
    if refused {
        out.push_str(", error=\"invalid_token\"");
    }
    out
}

/// A tenant id as Entra writes it: a GUID, returned lower-case.
pub fn parse_tenant_id(text: &str) -> Option<String> {
    uuid::Uuid::parse_str(text.trim())
        .ok()
        .filter(|_| text.trim().len() == 36)
        .map(|u| u.hyphenated().to_string())
}

/// An audience as compared: lower-case, no default port (`:443` for https), no trailing
/// `/`. Anything that is not an absolute http(s) URL is kept lower-case as it is (a GUID).
pub fn normalize_audience(text: &str) -> String {
    let lower = text.trim().to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return lower;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match (scheme, authority.rsplit_once(':')) {
        ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host,
        _ => authority,
    };
    format!("{scheme}://{authority}{}", path.trim_end_matches('/'))
}

/// The default audience for a request: `https://<host name>`, port dropped.
pub fn request_audience(host: &str) -> String {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.split_once(']').map_or(host, |(h, _)| h).to_string() + "]"
    } else {
        host.split(':').next().unwrap_or(host).to_string()
    };
    normalize_audience(&format!("https://{name}"))
}

/// Why a token was refused: a metrics label, and a reason an administrator can act on in
/// `x-ms-diagnostics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not three base64url parts with JSON inside.
    Malformed,
    /// The header names another algorithm than RS256 (`none`, HS256, ...).
    Algorithm(String),
    /// The header has no `kid`.
    NoKeyId,
    /// No signing key of the tenant has this `kid`, even after fetching them again.
    UnknownKey(String),
    /// The tenant's signing keys could not be fetched.
    KeysUnavailable,
    /// The signature does not verify.
    Signature,
    /// `iss` is not one of the tenant's two issuer forms.
    Issuer(String),
    /// `aud` is none of the accepted audiences.
    Audience(String),
    /// `exp` or `nbf` is missing.
    MissingLifetime,
    /// A claim has the wrong JSON type.
    ClaimType(&'static str),
    /// `exp` is past.
    Expired,
    /// `nbf` is ahead.
    NotYetValid,
    /// An application token (`idtyp=app`, or `roles` without `scp`).
    AppOnly,
    /// Neither `onprem_sid` nor `upn`: no on-premises account can be named.
    NoUser,
    /// The token names no enabled account of the directory.
    UnknownAccount,
}

impl Refusal {
    /// The metrics and access-log label.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Algorithm(_) => "algorithm",
            Refusal::NoKeyId | Refusal::UnknownKey(_) => "unknown_key",
            Refusal::KeysUnavailable => "keys_unavailable",
            Refusal::Signature => "signature",
            Refusal::Issuer(_) => "issuer",
            Refusal::Audience(_) => "audience",
            Refusal::MissingLifetime | Refusal::ClaimType(_) => "claims",
            Refusal::Expired | Refusal::NotYetValid => "lifetime",
            Refusal::AppOnly => "app_only",
            Refusal::NoUser => "no_user",
            Refusal::UnknownAccount => "unknown_account",
        }
    }

    /// Whether the client is to blame (counted by the failed-login throttle); an issuer
    /// that cannot be reached is not the client's failure.
    pub fn counts_as_failure(&self) -> bool {
        !matches!(self, Refusal::KeysUnavailable)
    }

    /// The `x-ms-diagnostics` value: `<code>;reason="...";error_category="..."`.
    pub fn diagnostics(&self) -> String {
        let (code, category, reason) = match self {
            Refusal::Malformed => (
                2000000,
                "invalid_token",
                "The token is not a JWT.".to_string(),
            ),
            Refusal::Algorithm(alg) => (
                2000001,
                "invalid_signature",
                format!("The token is signed with {alg}; only RS256 is accepted."),
            ),
            Refusal::NoKeyId => (
                2000001,
                "invalid_signature",
                "The token header has no kid.".to_string(),
            ),
            Refusal::UnknownKey(kid) => (
                2000001,
                "invalid_signature",
                format!("No signing key of the tenant has kid '{}'.", printable(kid)),
            ),
            Refusal::KeysUnavailable => (
                2000010,
                "invalid_signature",
                "The tenant's signing keys could not be fetched from the authority.".to_string(),
            ),
            Refusal::Signature => (
                2000001,
                "invalid_signature",
                "The token has an invalid signature.".to_string(),
            ),
            Refusal::Issuer(iss) => (
                2000002,
                "invalid_issuer",
                format!(
                    "The issuer '{}' is not the configured tenant.",
                    printable(iss)
                ),
            ),
            Refusal::Audience(aud) => (
                2000003,
                "invalid_resource",
                format!(
                    "The audience claim value '{}' is invalid for this server.",
                    printable(aud)
                ),
            ),
            Refusal::MissingLifetime => (
                2000004,
                "invalid_lifetime",
                "The token lacks exp or nbf.".to_string(),
            ),
            Refusal::ClaimType(claim) => (
                2000005,
                "invalid_token",
                format!("The claim '{claim}' has the wrong type."),
            ),
            Refusal::Expired => (
                2000008,
                "invalid_lifetime",
                "The token has expired.".to_string(),
            ),
            Refusal::NotYetValid => (
                2000009,
                "invalid_lifetime",
                "The token is not valid yet.".to_string(),
            ),
            Refusal::AppOnly => (
                2000006,
                "invalid_user",
                "The token is an application token; a delegated user token is required."
                    .to_string(),
            ),
            Refusal::NoUser => (
                2000007,
                "invalid_user",
                "The token carries neither onprem_sid nor upn.".to_string(),
            ),
            Refusal::UnknownAccount => (
                2000007,
                "invalid_user",
                "The token's user is not an enabled account of the on-premises directory."
                    .to_string(),
            ),
        };
        format!("{code};reason=\"{reason}\";error_category=\"{category}\"")
    }
}

/// Keeps a value from the token printable, short and quote-free inside a header.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .take(120)
        .collect()
}

/// The user a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// `oid`: the Entra object id (logged; never the token).
    pub object_id: Option<String>,
    /// `onprem_sid` of a synced user.
    pub onprem_sid: Option<Sid>,
    /// `upn` (v1) or `preferred_username` (v2).
    pub upn: Option<String>,
}

/// What a token's failures count against in the failed-login throttle (beside its
/// source): the user it claims (`upn`, else `oid`), read without trusting it, so that one
/// address shared by many users (a site's NAT) is not blocked for all of them by one user's
/// stale token. A forger who varies the claim still meets the per-source limits.
pub fn throttle_account(token: &str) -> String {
    let claimed = jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token)
        .ok()
        .and_then(|data| {
            ["upn", "preferred_username", "oid"]
                .iter()
                .find_map(|name| data.claims.get(*name)?.as_str().map(str::to_lowercase))
        })
        .map(|c| printable(&c))
        .unwrap_or_default();
    format!("bearer:{claimed}")
}

/// The `kid` of a token whose header names RS256 (checked before any key is looked up).
pub fn key_id(token: &str) -> Result<String, Refusal> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
        // An algorithm jsonwebtoken does not know (`none`) fails the header's parse.
        ErrorKind::Json(_) => header_algorithm(token)
            .map(Refusal::Algorithm)
            .unwrap_or(Refusal::Malformed),
        _ => Refusal::Malformed,
    })?;
    if header.alg != Algorithm::RS256 {
        return Err(Refusal::Algorithm(format!("{:?}", header.alg)));
    }
    header.kid.filter(|k| !k.is_empty()).ok_or(Refusal::NoKeyId)
}

/// The `alg` of a header jsonwebtoken refused (for the diagnostics only).
fn header_algorithm(token: &str) -> Option<String> {
    use base64::Engine;
    let part = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    header.get("alg")?.as_str().map(printable)
}

/// Checks a token's signature with `key` and its claims against `rules` at `now` (Unix
/// seconds); `request_host` gives the default audience.
pub fn check(
    token: &str,
    key: &DecodingKey,
    rules: &TokenRules,
    request_host: &str,
    now: u64,
) -> Result<TokenUser, Refusal> {
    key_id(token)?;
    let mut validation = Validation::new(Algorithm::RS256);
    // Lifetime, issuer and audience are checked below with the caller's clock and our
    // normalisation; the library checks the signature and the algorithm.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::InvalidSignature => Refusal::Signature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                Refusal::Algorithm("RS256 with a key of another type".to_string())
            }
            _ => Refusal::Malformed,
        })?;
    check_claims(&data.claims, rules, request_host, now)
}

fn string_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, Refusal> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Refusal::ClaimType(name)),
    }
}

fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<u64, Refusal> {
    match claims.get(name) {
        None | Some(Value::Null) => Err(Refusal::MissingLifetime),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or(Refusal::ClaimType(name)),
        Some(_) => Err(Refusal::ClaimType(name)),
    }
}

/// The claim checks of [`check`], on claims whose signature verified.
pub fn check_claims(
    claims: &Map<String, Value>,
    rules: &TokenRules,
    request_host: &str,
    now: u64,
) -> Result<TokenUser, Refusal> {
    let iss = string_claim(claims, "iss")?.unwrap_or_default();
    if !rules.issuers().contains(&iss) {
        return Err(Refusal::Issuer(iss));
    }
    let audiences: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or(Refusal::ClaimType("aud"))
            })
            .collect::<Result<_, _>>()?,
        None | Some(Value::Null) => vec![],
        Some(_) => return Err(Refusal::ClaimType("aud")),
    };
    let allowed: Vec<String> = if rules.audiences.is_empty() {
        vec![request_audience(request_host)]
    } else {
        rules.audiences.clone()
    };
    let accepted = audiences.iter().any(|a| {
        let a = normalize_audience(a);
        allowed.contains(&a) || (rules.accept_exchange_online_audience && a == EXCHANGE_CLIENT_ID)
    });
    if !accepted {
        return Err(Refusal::Audience(audiences.join(" ")));
    }
    let exp = time_claim(claims, "exp")?;
    let nbf = time_claim(claims, "nbf")?;
    let leeway = rules.leeway_secs.min(MAX_LEEWAY_SECS);
    if exp.saturating_add(leeway) <= now {
        return Err(Refusal::Expired);
    }
    if nbf > now.saturating_add(leeway) {
        return Err(Refusal::NotYetValid);
    }
    let idtyp = string_claim(claims, "idtyp")?;
    let scp = string_claim(claims, "scp")?;
    if idtyp.as_deref() == Some("app") || scp.as_deref().is_none_or(|s| s.trim().is_empty()) {
        return Err(Refusal::AppOnly);
    }
    let onprem_sid = match string_claim(claims, "onprem_sid")? {
        Some(text) => Some(Sid::parse(&text).ok_or(Refusal::ClaimType("onprem_sid"))?),
        None => None,
    };
    let upn = match string_claim(claims, "upn")? {
        Some(u) => Some(u),
        None => string_claim(claims, "preferred_username")?,
    }
    .filter(|u| !u.trim().is_empty());
    if onprem_sid.is_none() && upn.is_none() {
        return Err(Refusal::NoUser);
    }
    Ok(TokenUser {
        object_id: string_claim(claims, "oid")?,
        onprem_sid,
        upn,
    })
}

/// A Windows security identifier (MS-DTYP §2.4.2): `S-1-5-21-…` and its binary form, as
/// Active Directory stores it in `objectSid`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sid {
    revision: u8,
    authority: u64,
    sub_authorities: Vec<u32>,
}

impl Sid {
    /// Parses the string form (MS-DTYP §2.4.2.1); `None` when malformed.
    pub fn parse(text: &str) -> Option<Sid> {
        let mut parts = text.trim().split('-');
        if !parts.next()?.eq_ignore_ascii_case("S") {
            return None;
        }
        let revision: u8 = parts.next()?.parse().ok()?;
        let authority_text = parts.next()?;
        let authority: u64 = match authority_text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok()?,
            None => authority_text.parse().ok()?,
        };
        let sub_authorities = parts
            .map(|p| p.parse::<u32>().ok())
            .collect::<Option<Vec<_>>>()?;
        if revision != 1 || authority >= 1 << 48 || sub_authorities.len() > 15 {
            return None;
        }
        Some(Sid {
            revision,
            authority,
            sub_authorities,
        })
    }

    /// Parses the binary form (MS-DTYP §2.4.2.2).
    pub fn from_bytes(bytes: &[u8]) -> Option<Sid> {
        let (&revision, rest) = bytes.split_first()?;
        let (&count, rest) = rest.split_first()?;
        let (authority_bytes, rest) = rest.split_at_checked(6)?;
        if revision != 1 || rest.len() != usize::from(count) * 4 {
            return None;
        }
        let authority = authority_bytes
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let sub_authorities = rest
            .chunks_exact(4)
            .filter_map(|c| c.try_into().ok().map(u32::from_le_bytes))
            .collect();
        Some(Sid {
            revision,
            authority,
            sub_authorities,
        })
    }

    /// The binary form: revision, count, 48-bit authority (big-endian), sub-authorities
    /// (little-endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.revision, self.sub_authorities.len() as u8];
        out.extend_from_slice(self.authority.to_be_bytes().get(2..).unwrap_or_default());
        for s in &self.sub_authorities {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }
}

impl std::fmt::Display for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S-{}-{}", self.revision, self.authority)?;
        for s in &self.sub_authorities {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

/// The tenant's signing keys by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

/// Why a key document was not usable.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the OpenID configuration is not JSON with a jwks_uri: {0}")]
    Metadata(String),
    #[error("the JWKS is not a JSON key set: {0}")]
    Jwks(String),
    #[error("the JWKS holds no RSA signing key with a kid")]
    NoKeys,
}

impl KeySet {
    /// The RSA signing keys of a JWKS (RFC 7517 §5) that carry a `kid`; other keys (other
    /// types, `use` other than `sig`) are skipped.
    pub fn from_jwks(json: &[u8]) -> Result<KeySet, KeyError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let doc: Document =
            serde_json::from_slice(json).map_err(|e| KeyError::Jwks(e.to_string()))?;
        let mut keys = HashMap::new();
        for value in doc.keys {
            let Ok(jwk) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(value) else {
                continue;
            };
            let signing = jwk
                .common
                .public_key_use
                .as_ref()
                .is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature);
            let rsa = matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
            );
            let (Some(kid), true, true) = (jwk.common.key_id.clone(), signing, rsa) else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(&jwk) {
                keys.insert(kid, key);
            }
        }
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(KeySet { keys })
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The `jwks_uri` of an OpenID Provider configuration (OpenID Connect Discovery 1.0 §3).
pub fn jwks_uri(metadata: &[u8]) -> Result<String, KeyError> {
    #[derive(serde::Deserialize)]
    struct Metadata {
        jwks_uri: String,
    }
    let m: Metadata =
        serde_json::from_slice(metadata).map_err(|e| KeyError::Metadata(e.to_string()))?;
    if !m.jwks_uri.starts_with("https://") {
        return Err(KeyError::Metadata(format!(
            "jwks_uri {} is not https",
            printable(&m.jwks_uri)
        )));
    }
    Ok(m.jwks_uri)
}

/// The OpenID configuration URL of the tenant at `authority`.
pub fn metadata_url(authority: &str, tenant_id: &str) -> String {
    format!(
        "{}/{tenant_id}/v2.0/.well-known/openid-configuration",
        authority.trim_end_matches('/')
    )
}

/// The moments [`RefreshPolicy::fetch_due`] decides on (Unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchTimes {
    pub loaded_at: Option<u64>,
    pub attempted_at: Option<u64>,
    pub forced_at: Option<u64>,
}

/// When keys are fetched again: every `refresh_secs` (12–24 h), at once when a token names
/// an unknown `kid`, but never sooner than `min_gap_secs` after the last attempt (a forged
/// `kid` cannot make us hammer the issuer); keys older than `max_stale_secs` are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    pub refresh_secs: u64,
    pub min_gap_secs: u64,
    /// The gap while no key was ever loaded (start-up, issuer down).
    pub cold_gap_secs: u64,
    pub max_stale_secs: u64,
}

impl RefreshPolicy {
    /// Exchange-like: refresh daily, at most one forced fetch every 5 minutes, keys kept up
    /// to 7 days while the issuer cannot be reached.
    pub const DEFAULT: RefreshPolicy = RefreshPolicy {
        refresh_secs: 24 * 3600,
        min_gap_secs: 300,
        cold_gap_secs: 10,
        max_stale_secs: 7 * 24 * 3600,
    };

    /// Whether to fetch now. `loaded_at`: when the current keys were fetched (None: none);
    /// `attempted_at`: the last fetch attempt; `forced_at`: the last fetch an unknown `kid`
    /// caused; `unknown_kid`: a token names a key we lack.
    pub fn fetch_due(&self, times: FetchTimes, unknown_kid: bool, now: u64) -> bool {
        let since = |t: Option<u64>, gap: u64| t.is_none_or(|t| now.saturating_sub(t) >= gap);
        match times.loaded_at {
            // Nothing to serve with: try again soon, but not for every request.
            None => since(times.attempted_at, self.cold_gap_secs),
            // One forced fetch per gap, whatever kids tokens name.
            Some(_) if unknown_kid => since(times.forced_at, self.min_gap_secs),
            // The scheduled refresh; a failed one is retried after the gap.
            Some(loaded) => {
                now.saturating_sub(loaded) >= self.refresh_secs
                    && since(times.attempted_at, self.min_gap_secs)
            }
        }
    }

    /// Whether keys fetched at `loaded_at` may still be used.
    pub fn usable(&self, loaded_at: u64, now: u64) -> bool {
        now.saturating_sub(loaded_at) < self.max_stale_secs
    }
}

#[cfg(test)]
#[path = "bearer_tests.rs"]
mod tests;
