//! `[organization]`, `[services]` and `[redirect]`: the Exchange organisation, where the
//! clients' services live, and the port-80 redirect responder.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use uuid::Uuid;

use super::{file, ConfigError, Validator};

/// The Exchange organisation this server speaks for.
#[derive(Debug, Clone)]
pub struct Organization {
    pub display_name: String,
    /// `/o=<exchange_org>` in legacy DNs.
    pub exchange_org: String,
    pub deployment_id: Uuid,
    /// Lower-case accepted SMTP domains.
    pub accepted_domains: Vec<String>,
    /// `<tenant>.mail.onmicrosoft.com`, lower-case.
    pub tenant_routing_domain: Option<String>,
    /// True when this process plays the Exchange Online side.
    pub microsoft_online: bool,
    /// Labs and test tenants: the EWS, OAB, MAPI/HTTP and ActiveSync paths answer like an
    /// Exchange front end before a login (a 401 with the server's schemes).
    pub emulate_service_endpoints: bool,
}

/// An Exchange build number such as 15.2.1258.12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeVersion {
    pub major: u32,
    pub minor: u32,
    pub build: u32,
    pub revision: u32,
}

/// An internal and an external URL of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub internal: String,
    pub external: String,
}

/// Outlook on the web URLs and the authentication methods advertised for them.
#[derive(Debug, Clone)]
pub struct Owa {
    pub urls: Endpoint,
    pub internal_auth: String,
    pub external_auth: String,
}

/// Outlook Anywhere (RPC over HTTP) settings for the EXPR/EXHTTP blocks.
#[derive(Debug, Clone)]
pub struct OutlookAnywhere {
    pub external_host: String,
    pub internal_host: String,
    pub ssl: bool,
    pub auth_package: String,
    pub cert_principal_name: Option<String>,
}

/// MAPI over HTTP host names.
#[derive(Debug, Clone)]
pub struct MapiHttp {
    pub internal_host: String,
    pub external_host: String,
}

/// Where the clients' services live.
#[derive(Debug, Clone)]
pub struct Services {
    pub exchange_version: ExchangeVersion,
    pub ttl_hours: u32,
    pub ad_server: Option<String>,
    pub public_folder_server: String,
    pub ews: Endpoint,
    pub oab: Option<Endpoint>,
    pub ecp: Option<Endpoint>,
    pub owa: Option<Owa>,
    pub activesync: Option<Endpoint>,
    pub outlook_anywhere: OutlookAnywhere,
    /// `None` when MAPI/HTTP is not offered.
    pub mapi_http: Option<MapiHttp>,
}

/// The plain-HTTP redirect responder ([MS-OXDISCO] §3.1.5.4).
#[derive(Debug, Clone)]
pub struct RedirectConfig {
    pub listen: Vec<SocketAddr>,
    /// `https://host[:port]` the redirect points at by default.
    pub target: String,
    /// Lower-case request host → `https://host[:port]`.
    pub hosts: BTreeMap<String, String>,
}

impl Validator<'_> {
    pub(super) fn organization(
        &self,
        raw: file::OrganizationSection,
    ) -> Result<Organization, ConfigError> {
        let deployment_id = Uuid::parse_str(raw.deployment_id.trim()).map_err(|_| {
            self.invalid(
                "organization.deployment_id",
                format!("`{}` is not a GUID", raw.deployment_id),
                "use the GUID of your Exchange organisation (or any fixed GUID, e.g. from `uuidgen`)",
            )
        })?;
        if raw.exchange_org.trim().is_empty() || raw.exchange_org.contains('/') {
            return Err(self.invalid(
                "organization.exchange_org",
                "empty or contains '/'",
                "use the organisation name of your legacy DNs, e.g. \"Contoso\" for /o=Contoso",
            ));
        }
        if raw.accepted_domains.is_empty() {
            return Err(self.invalid(
                "organization.accepted_domains",
                "no accepted domain",
                "list the SMTP domains this server answers for, e.g. [\"contoso.com\"]",
            ));
        }
        let mut accepted = Vec::new();
        for d in &raw.accepted_domains {
            let d = d.trim().to_ascii_lowercase();
            if !is_host_name(&d) {
                return Err(self.invalid(
                    "organization.accepted_domains",
                    format!("`{d}` is not a domain name"),
                    "use DNS domain names such as \"contoso.com\"",
                ));
            }
            accepted.push(d);
        }
        let tenant = match raw.tenant_routing_domain {
            Some(t) => {
                let t = t.trim().to_ascii_lowercase();
                if !is_host_name(&t) {
                    return Err(self.invalid(
                        "organization.tenant_routing_domain",
                        format!("`{t}` is not a domain name"),
                        "use your tenant's routing domain, e.g. \"contoso.mail.onmicrosoft.com\"",
                    ));
                }
                Some(t)
            }
            None => None,
        };
        Ok(Organization {
            display_name: raw.display_name,
            exchange_org: raw.exchange_org.trim().to_string(),
            deployment_id,
            accepted_domains: accepted,
            tenant_routing_domain: tenant,
            microsoft_online: raw.microsoft_online,
            emulate_service_endpoints: raw.emulate_service_endpoints,
        })
    }

    pub(super) fn https_url(&self, key: &str, value: &str) -> Result<String, ConfigError> {
        let value = value.trim();
        let uri: http::Uri = value.parse().map_err(|_| {
            self.invalid(
                key,
                format!("`{value}` is not a URL"),
                "write an absolute https:// URL",
            )
        })?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(self.invalid(
                key,
                format!("`{value}` is not an absolute https URL"),
                "clients only accept https service URLs; write https://host/path",
            ));
        }
        Ok(value.to_string())
    }

    pub(super) fn endpoint(&self, key: &str, raw: file::UrlPair) -> Result<Endpoint, ConfigError> {
        let (internal, external) = match (raw.internal, raw.external) {
            (Some(i), Some(e)) => (i, e),
            (Some(one), None) | (None, Some(one)) => (one.clone(), one),
            (None, None) => {
                return Err(self.invalid(
                    key,
                    "neither `internal` nor `external` is set",
                    "set at least `external = \"https://...\"`",
                ))
            }
        };
        let external = self.https_url(&format!("{key}.external"), &external)?;
        let internal = self.https_url(&format!("{key}.internal"), &internal)?;
        Ok(Endpoint { internal, external })
    }

    pub(super) fn host(&self, key: &str, value: &str) -> Result<String, ConfigError> {
        let v = value.trim().to_ascii_lowercase();
        if !is_host_name(&v) {
            return Err(self.invalid(
                key,
                format!("`{value}` is not a host name"),
                "use a DNS name such as \"mail.contoso.com\" (no scheme, no path)",
            ));
        }
        Ok(v)
    }

    pub(super) fn services(&self, raw: file::ServicesSection) -> Result<Services, ConfigError> {
        let exchange_version = parse_exchange_version(&raw.exchange_version).ok_or_else(|| {
            self.invalid(
                "services.exchange_version",
                format!("`{}` is not a build number", raw.exchange_version),
                "use the Exchange build as major.minor.build[.revision], e.g. \"15.2.1258.12\"",
            )
        })?;
        let oa = raw.outlook_anywhere;
        let external_host =
            self.host("services.outlook_anywhere.external_host", &oa.external_host)?;
        let internal_host = match &oa.internal_host {
            Some(h) => self.host("services.outlook_anywhere.internal_host", h)?,
            None => external_host.clone(),
        };
        const PACKAGES: [&str; 7] = [
            "Basic",
            "Ntlm",
            "Negotiate",
            "Kerb",
            "KerbNtlm",
            "Certificate",
            "Anonymous",
        ];
        let Some(auth_package) = PACKAGES
            .iter()
            .find(|p| p.eq_ignore_ascii_case(oa.auth_package.trim()))
        else {
            return Err(self.invalid(
                "services.outlook_anywhere.auth_package",
                format!("unknown AuthPackage `{}`", oa.auth_package),
                format!("use one of {}", PACKAGES.join(", ")),
            ));
        };
        let mapi_http = match raw.mapi_http {
            Some(m) if m.enabled => {
                let ext = match &m.external_host {
                    Some(h) => self.host("services.mapi_http.external_host", h)?,
                    None => external_host.clone(),
                };
                let int = match &m.internal_host {
                    Some(h) => self.host("services.mapi_http.internal_host", h)?,
                    None => ext.clone(),
                };
                Some(MapiHttp {
                    internal_host: int,
                    external_host: ext,
                })
            }
            _ => None,
        };
        let owa = match raw.owa {
            Some(o) => Some(Owa {
                urls: self.endpoint(
                    "services.owa",
                    file::UrlPair {
                        internal: o.internal,
                        external: o.external,
                    },
                )?,
                internal_auth: o.internal_auth,
                external_auth: o.external_auth,
            }),
            None => None,
        };
        if raw.ttl_hours > 24 * 7 {
            return Err(self.invalid(
                "services.ttl_hours",
                "more than a week",
                "clients re-discover after TTL hours; use 1 (the default) to 24",
            ));
        }
        let public_folder_server = match &raw.public_folder_server {
            Some(h) => self.host("services.public_folder_server", h)?,
            None => external_host.clone(),
        };
        let ad_server = match &raw.ad_server {
            Some(h) => Some(self.host("services.ad_server", h)?),
            None => None,
        };
        Ok(Services {
            exchange_version,
            ttl_hours: raw.ttl_hours,
            ad_server,
            public_folder_server,
            ews: self.endpoint("services.ews", raw.ews)?,
            oab: raw
                .oab
                .map(|e| self.endpoint("services.oab", e))
                .transpose()?,
            ecp: raw
                .ecp
                .map(|e| self.endpoint("services.ecp", e))
                .transpose()?,
            owa,
            activesync: raw
                .activesync
                .map(|e| self.endpoint("services.activesync", e))
                .transpose()?,
            outlook_anywhere: OutlookAnywhere {
                external_host,
                internal_host,
                ssl: oa.ssl,
                auth_package: (*auth_package).to_string(),
                cert_principal_name: oa.cert_principal_name,
            },
            mapi_http,
        })
    }

    pub(super) fn redirect_target(&self, key: &str, value: &str) -> Result<String, ConfigError> {
        let url = self.https_url(key, value)?;
        let trimmed = url.trim_end_matches('/');
        let after_scheme = trimmed.trim_start_matches("https://");
        if after_scheme.contains('/') || after_scheme.contains('?') {
            return Err(self.invalid(
                key,
                format!("`{value}` has a path"),
                "give only scheme and host, e.g. \"https://autodiscover.contoso.com\"; the Autodiscover path is added per request",
            ));
        }
        Ok(trimmed.to_string())
    }

    pub(super) fn redirect(
        &self,
        raw: file::RedirectSection,
    ) -> Result<RedirectConfig, ConfigError> {
        let mut hosts = BTreeMap::new();
        for (host, target) in &raw.hosts {
            let key = format!("redirect.hosts.\"{host}\"");
            let host = self.host(&key, host)?;
            hosts.insert(host, self.redirect_target(&key, target)?);
        }
        Ok(RedirectConfig {
            listen: self.listen("redirect.listen", &raw.listen)?,
            target: self.redirect_target("redirect.target", &raw.target)?,
            hosts,
        })
    }
}

/// Parses `15.2.1258.12` or `15.2.1258`.
pub fn parse_exchange_version(text: &str) -> Option<ExchangeVersion> {
    let parts: Vec<u32> = text
        .trim()
        .split('.')
        .map(|p| p.parse::<u32>().ok())
        .collect::<Option<Vec<u32>>>()?;
    let (major, minor, build, revision) = match parts.as_slice() {
        [a, b, c] => (*a, *b, *c, 0),
        [a, b, c, d] => (*a, *b, *c, *d),
        _ => return None,
    };
    // The POX ServerVersion packs major in 6 bits, minor in 6 and build in 15.
    if major >= 64 || minor >= 64 || build >= 0x8000 {
        return None;
    }
    Some(ExchangeVersion {
        major,
        minor,
        build,
        revision,
    })
}

/// True for a syntactically valid DNS host name (letters, digits, '-', dots).
pub fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
