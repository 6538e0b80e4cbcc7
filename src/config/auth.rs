//! `[auth]`: Basic, NTLM and Negotiate, the realm of the challenges and the lookup policy.

use std::path::{Path, PathBuf};

use super::{file, resolve_against, ConfigError, KerberosConfig, Validator, WinbindSettings};
use crate::auth::bearer::{self, TokenRules};
pub use crate::auth::ntlm::CbtPolicy;

/// Which addresses an authenticated user may ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupPolicy {
    /// Exchange behaviour: any authenticated user may discover any address (delegates,
    /// shared mailboxes, EWS multi-user queries).
    Any,
    /// Only the caller's own addresses; other addresses get Error 500 as if unknown.
    SelfOnly,
}

/// Authentication settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `realm` of the Basic challenge; when unset, the request's host name is used.
    pub realm: Option<String>,
    pub basic: bool,
    pub lookup_policy: LookupPolicy,
    pub ntlm: NtlmConfig,
    /// `[auth.kerberos]`: Negotiate with Kerberos (builds with the `kerberos` feature).
    pub kerberos: Option<KerberosConfig>,
    /// `[auth.winbind]`: NTLM responses checked by the domain.
    pub winbind: Option<WinbindSettings>,
    /// `[auth.bearer]`: Hybrid Modern Authentication, Entra ID access tokens.
    pub bearer: Option<BearerConfig>,
}

/// Hybrid Modern Authentication: which Entra ID tokens are accepted and where their keys
/// come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerConfig {
    /// Tenant, audiences and leeway (the pure checks).
    pub rules: TokenRules,
    /// Where the tenant's OpenID configuration is fetched (no trailing `/`).
    pub authority: String,
    /// Trust anchors for the authority; `None`: the system store.
    pub ca_file: Option<PathBuf>,
    /// `authorization_uri` of the challenge.
    pub authorization_uri: String,
    /// A token without a matching `onprem_sid` names its account by `upn`.
    pub upn_fallback: bool,
    /// A static JWKS used instead of fetching keys (air-gapped tests; rotate it by hand).
    pub jwks_file: Option<PathBuf>,
}

/// An `https://host[:port][/path]` URL without query, fragment or user information.
fn is_https_url(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or_default();
    !host.is_empty()
        && !text.contains(['?', '#', '@', ' ', '"', '\\'])
        && !text.chars().any(|c| c.is_control() || !c.is_ascii())
}

/// NTLM and Negotiate settings (`auth.ntlm*`, `auth.negotiate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtlmConfig {
    /// Accept and advertise NTLM.
    pub enabled: bool,
    /// Advertise `Negotiate` in 401s (Negotiate tokens are accepted whenever NTLM is on).
    pub advertise_negotiate: bool,
    /// NetBIOS domain announced in the CHALLENGE (upper case); default from the directory.
    pub domain: Option<String>,
    /// Largest accepted skew of the client's NTLMv2 timestamp.
    pub timestamp_window_secs: u64,
    /// Later requests on an authenticated connection need no new handshake (IIS default).
    pub persist_on_connection: bool,
    /// What to do with channel bindings (Extended Protection).
    pub channel_binding: CbtPolicy,
    /// Accept NTLMv1 and anonymous AUTHENTICATE messages (legacy labs only).
    pub allow_legacy: bool,
}

impl Validator<'_> {
    pub(super) fn auth(&self, raw: file::AuthSection) -> Result<AuthConfig, ConfigError> {
        let lookup_policy = match raw.lookup_policy.as_deref() {
            None | Some("any") => LookupPolicy::Any,
            Some("self") => LookupPolicy::SelfOnly,
            Some(other) => {
                return Err(self.invalid(
                    "auth.lookup_policy",
                    format!("unknown policy `{other}`"),
                    "use \"any\" (Exchange behaviour) or \"self\"",
                ))
            }
        };
        if let Some(realm) = &raw.realm {
            if !realm
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
            {
                return Err(self.invalid(
                    "auth.realm",
                    "contains quotes, backslashes, spaces or non-ASCII characters",
                    "use a host name such as \"autodiscover.contoso.com\"",
                ));
            }
        }
        let ntlm = self.ntlm(&raw)?;
        let kerberos = raw.kerberos.map(|k| self.kerberos(k)).transpose()?;
        let winbind = raw.winbind.map(|w| self.winbind(w)).transpose()?;
        let bearer = raw.bearer.map(|b| self.bearer(b)).transpose()?;
        if winbind.is_some() && !ntlm.enabled {
            return Err(self.invalid(
                "auth.winbind",
                "NTLM checking through winbind is configured but auth.ntlm is false",
                "set auth.ntlm = true, or remove [auth.winbind]",
            ));
        }
        Ok(AuthConfig {
            realm: raw.realm,
            basic: raw.basic,
            lookup_policy,
            ntlm,
            kerberos,
            winbind,
            bearer,
        })
    }

    pub(super) fn bearer(&self, raw: file::BearerSection) -> Result<BearerConfig, ConfigError> {
        let tenant_id = bearer::parse_tenant_id(&raw.tenant_id).ok_or_else(|| {
            self.invalid(
                "auth.bearer.tenant_id",
                format!("`{}` is not a tenant id", raw.tenant_id.trim()),
                "use the Directory (tenant) ID GUID from the Entra admin center overview, e.g. \"6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b\"",
            )
        })?;
        let authority = raw
            .authority
            .unwrap_or_else(|| bearer::DEFAULT_AUTHORITY.to_string());
        if !is_https_url(&authority) {
            return Err(self.invalid(
                "auth.bearer.authority",
                format!("`{authority}` is not an https URL"),
                "leave it out (https://login.microsoftonline.com), or give the https base URL of a lab issuer",
            ));
        }
        let authorization_uri = raw
            .authorization_uri
            .unwrap_or_else(|| bearer::DEFAULT_AUTHORIZATION_URI.to_string());
        if !is_https_url(&authorization_uri) {
            return Err(self.invalid(
                "auth.bearer.authorization_uri",
                format!("`{authorization_uri}` is not an https URL"),
                "leave it out (Exchange's https://login.windows.net/common/oauth2/authorize)",
            ));
        }
        let mut audiences = Vec::new();
        for aud in raw.audiences.unwrap_or_default() {
            let normalized = bearer::normalize_audience(&aud);
            if normalized == bearer::EXCHANGE_CLIENT_ID {
                return Err(self.invalid(
                    "auth.bearer.audiences",
                    "the Exchange Online application id would accept tokens minted for Exchange Online",
                    "list the on-premises origins, e.g. [\"https://autodiscover.contoso.com\"]; set accept_exchange_online_audience = true only if you mean it",
                ));
            }
            let origin_only = normalized
                .strip_prefix("https://")
                .is_some_and(|rest| !rest.contains('/'));
            if !is_https_url(&normalized) || !origin_only {
                return Err(self.invalid(
                    "auth.bearer.audiences",
                    format!("`{aud}` is not an https origin"),
                    "list origins without a path, as Outlook asks Entra for them, e.g. [\"https://autodiscover.contoso.com\"]",
                ));
            }
            if !audiences.contains(&normalized) {
                audiences.push(normalized);
            }
        }
        if raw.leeway_secs > bearer::MAX_LEEWAY_SECS {
            return Err(self.invalid(
                "auth.bearer.leeway_secs",
                format!("{} is more than 300 seconds", raw.leeway_secs),
                "use 300 or less; fix the clock (NTP) rather than widening the leeway",
            ));
        }
        let ca_file = raw
            .ca_file
            .map(|f| self.bearer_file("auth.bearer.ca_file", &f))
            .transpose()?;
        if let Some(path) = &ca_file {
            let pem = std::fs::read_to_string(path).unwrap_or_default();
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(self.invalid(
                    "auth.bearer.ca_file",
                    format!("{}: no PEM certificate in the file", path.display()),
                    "give the PEM file of the CA that issued the authority's certificate, or leave it out for the system trust store",
                ));
            }
        }
        let jwks_file = raw
            .jwks_file
            .map(|f| self.bearer_file("auth.bearer.jwks_file", &f))
            .transpose()?;
        if let Some(path) = &jwks_file {
            let bytes = std::fs::read(path).unwrap_or_default();
            if let Err(e) = bearer::KeySet::from_jwks(&bytes) {
                return Err(self.invalid(
                    "auth.bearer.jwks_file",
                    format!("{}: {e}", path.display()),
                    "save the tenant's key set (the jwks_uri of its OpenID configuration) to the file, or leave it out to fetch keys",
                ));
            }
        }
        Ok(BearerConfig {
            rules: TokenRules {
                tenant_id,
                audiences,
                accept_exchange_online_audience: raw.accept_exchange_online_audience,
                leeway_secs: raw.leeway_secs,
            },
            authority: authority.trim_end_matches('/').to_string(),
            ca_file,
            authorization_uri,
            upn_fallback: raw.upn_fallback,
            jwks_file,
        })
    }

    fn bearer_file(&self, key: &str, name: &str) -> Result<PathBuf, ConfigError> {
        let path = resolve_against(self.file, Path::new(name));
        if !path.is_file() {
            return Err(self.invalid(
                key,
                format!("{} does not exist or is not a file", path.display()),
                "give the path of a readable file (relative paths are relative to this configuration file)",
            ));
        }
        Ok(path)
    }

    pub(super) fn ntlm(&self, raw: &file::AuthSection) -> Result<NtlmConfig, ConfigError> {
        if raw.negotiate && !raw.ntlm && raw.kerberos.is_none() {
            return Err(self.invalid(
                "auth.negotiate",
                "Negotiate is on but neither NTLM nor [auth.kerberos] is, so it would carry nothing",
                "set auth.ntlm = true, configure [auth.kerberos], or set auth.negotiate = false",
            ));
        }
        let domain = match &raw.ntlm_domain {
            Some(d) => {
                let d = d.trim();
                if d.is_empty()
                    || d.len() > 15
                    || !d
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(self.invalid(
                        "auth.ntlm_domain",
                        format!("`{d}` is not a NetBIOS domain name"),
                        "use the pre-Windows 2000 domain name, 1 to 15 letters, digits, - or _, e.g. \"CONTOSO\"",
                    ));
                }
                Some(d.to_ascii_uppercase())
            }
            None => None,
        };
        if raw.ntlm_allow_legacy && !raw.ntlm {
            return Err(self.invalid(
                "auth.ntlm_allow_legacy",
                "legacy NTLM (NTLMv1, anonymous) is allowed but NTLM is off",
                "set auth.ntlm = true, or auth.ntlm_allow_legacy = false",
            ));
        }
        if raw.ntlm_timestamp_window_secs == 0 || raw.ntlm_timestamp_window_secs > 7 * 86_400 {
            return Err(self.invalid(
                "auth.ntlm_timestamp_window_secs",
                format!("{} is outside 1..=604800", raw.ntlm_timestamp_window_secs),
                "use 129600 (36 hours, the Windows default) unless you have a reason",
            ));
        }
        let channel_binding = match raw.ntlm_channel_binding.as_deref() {
            None | Some("accept") => CbtPolicy::Accept,
            Some("require") => CbtPolicy::Require,
            Some("off") => CbtPolicy::Off,
            Some(other) => {
                return Err(self.invalid(
                    "auth.ntlm_channel_binding",
                    format!("unknown policy `{other}`"),
                    "use \"accept\" (check bindings when sent), \"require\" or \"off\" (TLS ends at a proxy)",
                ))
            }
        };
        Ok(NtlmConfig {
            enabled: raw.ntlm,
            advertise_negotiate: raw.negotiate,
            domain,
            timestamp_window_secs: raw.ntlm_timestamp_window_secs,
            persist_on_connection: raw.ntlm_persist_on_connection,
            channel_binding,
            allow_legacy: raw.ntlm_allow_legacy,
        })
    }
}
