//! Loads `autodiscoverd.toml` into a validated [`Config`]. Owns the rules about which values
//! make sense; never opens sockets, certificates or the directory.

mod domain_auth;
mod error;
mod file;
mod ldap;
#[cfg(test)]
mod tests;
mod throttle;
mod v2;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use domain_auth::{KerberosConfig, WinbindSettings};
pub use error::ConfigError;
use file::FileConfig;
pub use ldap::{BindPassword, LdapAttributes, LdapConfig, LdapScope, LdapUrl};
pub use throttle::{LockoutSettings, ThrottleSettings};
use uuid::Uuid;
pub use v2::V2Config;

/// The validated configuration of one server process.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from (relative paths inside it are resolved
    /// against its directory).
    pub source: PathBuf,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub org: Organization,
    pub auth: AuthConfig,
    pub services: Services,
    pub directory: DirectoryConfig,
    pub redirect: Option<RedirectConfig>,
    /// AutodiscoverV2 (JSON) settings (`[v2]`, defaults when absent).
    pub v2: V2Config,
    /// Failed-authentication throttling (`[throttle]`, on with defaults when absent).
    pub throttle: ThrottleSettings,
    /// Reverse-proxy listeners and trusted proxies (empty when `[proxy]` is absent).
    pub proxy: ProxyConfig,
    /// The metrics/health listener (`[metrics]`), if any.
    pub metrics: Option<MetricsConfig>,
    pub log: LogConfig,
}

/// Listeners for use behind reverse proxies, and whom to believe (`[proxy]`).
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// Peers whose `X-Forwarded-For`/`X-Forwarded-Proto` and PROXY headers are believed.
    pub trusted: Vec<crate::server::proxy::Cidr>,
    /// Plain-HTTP Autodiscover listeners (TLS terminated by a proxy).
    pub plain_listen: Vec<SocketAddr>,
    /// HTTPS listeners that expect a PROXY v1/v2 header before the TLS handshake.
    pub proxy_protocol_https_listen: Vec<SocketAddr>,
    /// Plain-HTTP listeners that expect a PROXY v1/v2 header before the request.
    pub proxy_protocol_plain_listen: Vec<SocketAddr>,
}

/// The Prometheus/health listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable (tracing's default).
    #[default]
    Text,
    /// One JSON object per line, event fields at the top level.
    Json,
    /// `key=value` pairs.
    Logfmt,
}

/// Logging settings (`[log]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// HTTPS listener settings and limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub max_body_bytes: usize,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Serve `GET /benchmark/static` (1 KiB) as the benchmark baseline. Off by default.
    pub benchmark_static_route: bool,
}

/// PEM certificate chain and private key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Certificates: a default one and optional per-SNI-host-name ones.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub default: CertPaths,
    pub self_signed_if_missing: bool,
    /// Names for a generated self-signed certificate.
    pub self_signed_names: Vec<String>,
    /// Lower-case host name (or `*.domain`) → certificate.
    pub sni: Vec<(String, CertPaths)>,
}

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
}

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
    pub channel_binding: crate::auth::ntlm::CbtPolicy,
    /// Accept NTLMv1 and anonymous AUTHENTICATE messages (legacy labs only).
    pub allow_legacy: bool,
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

/// Which directory backend answers lookups and verifies passwords.
#[derive(Debug, Clone)]
pub enum DirectoryConfig {
    /// The embedded TOML directory file.
    File { path: PathBuf },
    /// An LDAP directory (Active Directory, OpenLDAP).
    Ldap(Box<LdapConfig>),
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

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(path, &text)
    }

    /// Validates configuration text as if it had been read from `path`.
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Validator { file: path }.config(raw)
    }

    /// A short human summary (for `check-config`).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let listen: Vec<String> = self.server.listen.iter().map(|a| a.to_string()).collect();
        out.push_str(&format!("config file:        {}\n", self.source.display()));
        out.push_str(&format!("https listeners:    {}\n", listen.join(", ")));
        out.push_str(&format!(
            "default cert:       {}{}\n",
            self.tls.default.cert.display(),
            if self.tls.self_signed_if_missing {
                " (self-signed if missing)"
            } else {
                ""
            }
        ));
        for (host, paths) in &self.tls.sni {
            out.push_str(&format!(
                "sni cert:           {host} -> {}\n",
                paths.cert.display()
            ));
        }
        out.push_str(&format!(
            "organization:       {} (/o={}, DeploymentId {})\n",
            self.org.display_name, self.org.exchange_org, self.org.deployment_id
        ));
        out.push_str(&format!(
            "accepted domains:   {}\n",
            self.org.accepted_domains.join(", ")
        ));
        out.push_str(&format!(
            "tenant routing:     {}\n",
            self.org
                .tenant_routing_domain
                .as_deref()
                .unwrap_or("(none)")
        ));
        out.push_str(&format!(
            "role:               {}\n",
            if self.org.microsoft_online {
                "Exchange Online (tenant emulation)"
            } else {
                "on-premises"
            }
        ));
        out.push_str(&format!(
            "ews (external):     {}\n",
            self.services.ews.external
        ));
        if let Some(k) = &self.auth.kerberos {
            out.push_str(&format!(
                "kerberos:           {} ({}; realms {})\n",
                k.keytab.display(),
                k.service_principals.join(", "),
                k.realms.join(", ")
            ));
        }
        if let Some(w) = &self.auth.winbind {
            out.push_str(&format!(
                "ntlm checked by:    the domain, {} x {} ({} ms)\n",
                w.helpers,
                w.command.join(" "),
                w.timeout.as_millis()
            ));
        }
        match &self.directory {
            DirectoryConfig::File { path } => {
                out.push_str(&format!("directory:          file {}\n", path.display()))
            }
            DirectoryConfig::Ldap(l) => out.push_str(&ldap_summary(l)),
        }
        if let Some(redirect) = &self.redirect {
            let listen: Vec<String> = redirect.listen.iter().map(|a| a.to_string()).collect();
            out.push_str(&format!(
                "http redirect:      {} -> {}\n",
                listen.join(", "),
                redirect.target
            ));
        }
        let addrs = |list: &[SocketAddr]| {
            list.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (label, list) in [
            ("plain (proxied):    ", &self.proxy.plain_listen),
            (
                "https + PROXY:      ",
                &self.proxy.proxy_protocol_https_listen,
            ),
            (
                "plain + PROXY:      ",
                &self.proxy.proxy_protocol_plain_listen,
            ),
        ] {
            if !list.is_empty() {
                out.push_str(&format!("{label}{}\n", addrs(list)));
            }
        }
        if !self.proxy.trusted.is_empty() {
            let trusted: Vec<String> = self.proxy.trusted.iter().map(|c| c.to_string()).collect();
            out.push_str(&format!("trusted proxies:    {}\n", trusted.join(", ")));
        }
        if let Some(m) = &self.metrics {
            out.push_str(&format!(
                "metrics/health:     http://{}/metrics\n",
                m.listen
            ));
        }
        out
    }

    /// Resolves a path from the config file relative to the file's directory.
    pub fn resolve(&self, relative: &Path) -> PathBuf {
        resolve_against(&self.source, relative)
    }
}

fn ldap_summary(l: &LdapConfig) -> String {
    let urls: Vec<&str> = l.urls.iter().map(|u| u.url.as_str()).collect();
    format!(
        "directory:          ldap {}{} (base {}, bind {}, pool {}, timeout {} ms, cache {})\n",
        urls.join(", "),
        if l.starttls { " +StartTLS" } else { "" },
        l.base_dn,
        l.bind_dn,
        l.pool_size,
        l.timeout.as_millis(),
        if l.cache_ttl.is_zero() {
            "off".to_string()
        } else {
            format!("{} s", l.cache_ttl.as_secs())
        }
    )
}

fn resolve_against(config_file: &Path, relative: &Path) -> PathBuf {
    if relative.is_absolute() {
        return relative.to_path_buf();
    }
    match config_file.parent() {
        Some(dir) => dir.join(relative),
        None => relative.to_path_buf(),
    }
}

struct Validator<'a> {
    file: &'a Path,
}

impl Validator<'_> {
    fn invalid(
        &self,
        key: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError::invalid(self.file, key, problem, fix)
    }

    fn config(&self, raw: FileConfig) -> Result<Config, ConfigError> {
        let org = self.organization(raw.organization)?;
        let services = self.services(raw.services)?;
        let v2 = self.v2(raw.v2, &org, &services)?;
        Ok(Config {
            source: self.file.to_path_buf(),
            server: self.server(raw.server)?,
            tls: self.tls(raw.tls, &org)?,
            auth: self.auth(raw.auth)?,
            directory: self.directory(raw.directory)?,
            redirect: raw.redirect.map(|r| self.redirect(r)).transpose()?,
            proxy: raw
                .proxy
                .map(|p| self.proxy(p))
                .transpose()?
                .unwrap_or_default(),
            metrics: raw.metrics.map(|m| self.metrics(m)).transpose()?,
            log: self.log(raw.log)?,
            org,
            services,
            v2,
            throttle: self.throttle(raw.throttle)?,
        })
    }

    fn listen(&self, key: &str, addrs: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
        if addrs.is_empty() {
            return Err(self.invalid(
                key,
                "no listen address",
                "give at least one address such as \"0.0.0.0:443\"",
            ));
        }
        addrs
            .iter()
            .map(|a| {
                a.parse::<SocketAddr>().map_err(|_| {
                    self.invalid(
                        key,
                        format!("`{a}` is not an IP:port socket address"),
                        "write addresses as \"0.0.0.0:443\" or \"[::]:443\"",
                    )
                })
            })
            .collect()
    }

    fn server(&self, raw: file::ServerSection) -> Result<ServerConfig, ConfigError> {
        if raw.max_body_bytes < 1024 {
            return Err(self.invalid(
                "server.max_body_bytes",
                format!(
                    "{} bytes is too small for an Autodiscover request",
                    raw.max_body_bytes
                ),
                "use at least 1024 (the default is 65536)",
            ));
        }
        for (key, value) in [
            (
                "server.header_read_timeout_secs",
                raw.header_read_timeout_secs,
            ),
            ("server.request_timeout_secs", raw.request_timeout_secs),
            (
                "server.tls_handshake_timeout_secs",
                raw.tls_handshake_timeout_secs,
            ),
        ] {
            if value == 0 {
                return Err(self.invalid(
                    key,
                    "a timeout of 0 seconds",
                    "use a positive number of seconds",
                ));
            }
        }
        if raw.max_connections == 0 {
            return Err(self.invalid(
                "server.max_connections",
                "0 connections would refuse every client",
                "use a positive number (the default is 10000)",
            ));
        }
        Ok(ServerConfig {
            listen: self.listen("server.listen", &raw.listen)?,
            max_body_bytes: raw.max_body_bytes,
            header_read_timeout: Duration::from_secs(raw.header_read_timeout_secs),
            request_timeout: Duration::from_secs(raw.request_timeout_secs),
            tls_handshake_timeout: Duration::from_secs(raw.tls_handshake_timeout_secs),
            max_connections: raw.max_connections,
            shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
            benchmark_static_route: raw.benchmark_static_route,
        })
    }

    fn optional_listen(&self, key: &str, addrs: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
        if addrs.is_empty() {
            Ok(Vec::new())
        } else {
            self.listen(key, addrs)
        }
    }

    fn proxy(&self, raw: file::ProxySection) -> Result<ProxyConfig, ConfigError> {
        let mut trusted = Vec::new();
        for (i, text) in raw.trusted.iter().enumerate() {
            let cidr = crate::server::proxy::Cidr::parse(text).ok_or_else(|| {
                self.invalid(
                    &format!("proxy.trusted[{i}]"),
                    format!("`{text}` is not an IP address or CIDR network"),
                    "write networks as \"10.0.0.0/8\", \"192.0.2.7\" or \"fd00::/8\"",
                )
            })?;
            trusted.push(cidr);
        }
        let proxy = ProxyConfig {
            plain_listen: self.optional_listen("proxy.plain_listen", &raw.plain_listen)?,
            proxy_protocol_https_listen: self.optional_listen(
                "proxy.proxy_protocol_https_listen",
                &raw.proxy_protocol_https_listen,
            )?,
            proxy_protocol_plain_listen: self.optional_listen(
                "proxy.proxy_protocol_plain_listen",
                &raw.proxy_protocol_plain_listen,
            )?,
            trusted,
        };
        let has_pp = !proxy.proxy_protocol_https_listen.is_empty()
            || !proxy.proxy_protocol_plain_listen.is_empty();
        if has_pp && proxy.trusted.is_empty() {
            return Err(self.invalid(
                "proxy.trusted",
                "PROXY protocol listeners are configured but no proxy is trusted, so every connection would be refused",
                "list the addresses of your load balancers, e.g. trusted = [\"10.0.0.0/24\"]",
            ));
        }
        Ok(proxy)
    }

    fn metrics(&self, raw: file::MetricsSection) -> Result<MetricsConfig, ConfigError> {
        let listen = raw.listen.parse::<SocketAddr>().map_err(|_| {
            self.invalid(
                "metrics.listen",
                format!("`{}` is not an IP:port socket address", raw.listen),
                "write e.g. \"127.0.0.1:9187\" (keep it off the public network)",
            )
        })?;
        Ok(MetricsConfig { listen })
    }

    fn log(&self, raw: Option<file::LogSection>) -> Result<LogConfig, ConfigError> {
        let format = match raw.and_then(|l| l.format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some("logfmt") => LogFormat::Logfmt,
            Some(other) => {
                return Err(self.invalid(
                    "log.format",
                    format!("unknown format `{other}`"),
                    "use \"text\", \"json\" or \"logfmt\"",
                ))
            }
        };
        Ok(LogConfig { format })
    }

    fn tls(&self, raw: file::TlsSection, org: &Organization) -> Result<TlsConfig, ConfigError> {
        let default = CertPaths {
            cert: resolve_against(self.file, Path::new(&raw.cert)),
            key: resolve_against(self.file, Path::new(&raw.key)),
        };
        let mut sni = Vec::new();
        for (i, entry) in raw.sni.into_iter().enumerate() {
            let host = entry.host.trim().to_ascii_lowercase();
            if !is_host_name(host.trim_start_matches("*.")) {
                return Err(self.invalid(
                    &format!("tls.sni[{i}].host"),
                    format!("`{}` is not a host name", entry.host),
                    "use a DNS name such as \"autodiscover.fabrikam.com\" or \"*.fabrikam.com\"",
                ));
            }
            sni.push((
                host,
                CertPaths {
                    cert: resolve_against(self.file, Path::new(&entry.cert)),
                    key: resolve_against(self.file, Path::new(&entry.key)),
                },
            ));
        }
        let mut names = raw.self_signed_names;
        if names.is_empty() {
            names = org
                .accepted_domains
                .iter()
                .map(|d| format!("autodiscover.{d}"))
                .collect();
            names.push("localhost".into());
        }
        Ok(TlsConfig {
            default,
            self_signed_if_missing: raw.self_signed_if_missing,
            self_signed_names: names,
            sni,
        })
    }

    fn organization(&self, raw: file::OrganizationSection) -> Result<Organization, ConfigError> {
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
        })
    }

    fn auth(&self, raw: file::AuthSection) -> Result<AuthConfig, ConfigError> {
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

    fn ntlm(&self, raw: &file::AuthSection) -> Result<NtlmConfig, ConfigError> {
        use crate::auth::ntlm::CbtPolicy;
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

    fn https_url(&self, key: &str, value: &str) -> Result<String, ConfigError> {
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

    fn endpoint(&self, key: &str, raw: file::UrlPair) -> Result<Endpoint, ConfigError> {
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

    fn host(&self, key: &str, value: &str) -> Result<String, ConfigError> {
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

    fn services(&self, raw: file::ServicesSection) -> Result<Services, ConfigError> {
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

    fn directory(&self, raw: file::DirectorySection) -> Result<DirectoryConfig, ConfigError> {
        match raw.backend.as_str() {
            "file" => {
                let Some(file) = raw.file else {
                    return Err(self.invalid(
                        "directory.file",
                        "backend is \"file\" but there is no [directory.file] table",
                        "add [directory.file] with path = \"directory.toml\"",
                    ));
                };
                Ok(DirectoryConfig::File {
                    path: resolve_against(self.file, Path::new(&file.path)),
                })
            }
            "ldap" => {
                let Some(section) = raw.ldap else {
                    return Err(self.invalid(
                        "directory.ldap",
                        "backend is \"ldap\" but there is no [directory.ldap] table",
                        "add [directory.ldap] with urls, bind_dn, bind_password_file and base_dn (see config/autodiscoverd.ldap-example.toml)",
                    ));
                };
                Ok(DirectoryConfig::Ldap(Box::new(ldap::validate(
                    self.file, section,
                )?)))
            }
            other => Err(self.invalid(
                "directory.backend",
                format!("unknown backend `{other}`"),
                "use \"file\" (the embedded directory) or \"ldap\"",
            )),
        }
    }

    fn redirect_target(&self, key: &str, value: &str) -> Result<String, ConfigError> {
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

    fn redirect(&self, raw: file::RedirectSection) -> Result<RedirectConfig, ConfigError> {
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
