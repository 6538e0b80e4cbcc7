//! `[auth]`: Basic, NTLM and Negotiate, the realm of the challenges and the lookup policy.

use super::{file, ConfigError, KerberosConfig, Validator, WinbindSettings};
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
        })
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
