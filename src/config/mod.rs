//! Loads `autodiscoverd.toml` into a validated [`Config`]. Owns the rules about which values
//! make sense; never opens sockets, certificates or the directory.
//!
//! This file holds [`Config`], loading and the `Validator` that walks the file; each
//! table's validated types and rules live with their idea: `listeners` (`[server]`,
//! `[proxy]`, `[metrics]`, `[log]`), `tls`, `auth`, `services` (`[organization]`,
//! `[services]`, `[redirect]`), `ldap`, `throttle`, `v2`; `file` is the serde mirror of the
//! file and `error` the errors that name the file, the key and the fix.

mod auth;
mod cidr;
mod domain_auth;
mod error;
mod file;
mod ldap;
mod listeners;
pub mod mail;
mod services;
#[cfg(test)]
pub(crate) mod tests;
mod throttle;
mod tls;
mod v2;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use auth::{AuthConfig, BearerConfig, CbtPolicy, LookupPolicy, NtlmConfig};
pub use cidr::Cidr;
pub use domain_auth::{KerberosConfig, WinbindSettings};
pub use error::ConfigError;
use file::FileConfig;
pub use ldap::{
    normalise_dn, BindPassword, LdapAttributes, LdapConfig, LdapScope, LdapUrl, MailboxKindRule,
};
pub use listeners::{LogConfig, LogFormat, MetricsConfig, ProxyConfig, ServerConfig};
pub use services::{
    is_host_name, parse_exchange_version, Endpoint, ExchangeVersion, MapiHttp, Organization,
    OutlookAnywhere, Owa, RedirectConfig, Services,
};
pub use throttle::{LockoutSettings, SharedStore, StoreSecret, ThrottleConfig, ThrottleSettings};
pub use tls::{CertPaths, TlsConfig};
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
    /// Mailbox kinds, Internet-mail servers, autoconfig/mobileconfig (`[mail]`).
    pub mail: mail::MailConfig,
    /// Failed-authentication throttling (`[throttle]`, on with defaults when absent).
    pub throttle: ThrottleSettings,
    /// Reverse-proxy listeners and trusted proxies (empty when `[proxy]` is absent).
    pub proxy: ProxyConfig,
    /// The metrics/health listener (`[metrics]`), if any.
    pub metrics: Option<MetricsConfig>,
    pub log: LogConfig,
}

/// Which directory backend answers lookups and verifies passwords.
#[derive(Debug, Clone)]
pub enum DirectoryConfig {
    /// The embedded TOML directory file.
    File { path: PathBuf },
    /// An LDAP directory (Active Directory, OpenLDAP).
    Ldap(Box<LdapConfig>),
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
        if self.org.emulate_service_endpoints {
            out.push_str(
                "service front door: emulated (EWS, OAB, MAPI/HTTP, ActiveSync answer 401 before a login, 501 after)\n",
            );
        }
        out.push_str(&format!(
            "ews (external):     {}\n",
            self.services.ews.external
        ));
        let kinds: Vec<String> = self
            .org
            .accepted_domains
            .iter()
            .map(|d| format!("{d}={}", self.mail.kind_of_domain(d).name()))
            .collect();
        out.push_str(&format!(
            "mailbox kinds:      {} (autoconfig/mobileconfig: {}{})\n",
            kinds.join(", "),
            if self.mail.reveal_mailboxes {
                "per mailbox"
            } else {
                "domain answers"
            },
            if self.mail.mobileconfig.signer.is_some() {
                ", profiles signed"
            } else {
                ""
            }
        ));
        let submission = self.exchange_submission();
        let methods: Vec<&str> = submission
            .authentication
            .iter()
            .map(|m| m.autoconfig_name())
            .collect();
        out.push_str(&format!(
            "exchange smtp:      {}:{} {}, {}{}\n",
            submission.smtp.host,
            submission.smtp.port,
            submission.smtp.security.name(),
            methods.join(", "),
            if self.mail.exchange_submission.is_some() {
                ""
            } else {
                " (default; [mail.exchange] changes it)"
            }
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
        if let Some(b) = &self.auth.bearer {
            let audiences = if b.rules.audiences.is_empty() {
                "https://<request host>".to_string()
            } else {
                b.rules.audiences.join(", ")
            };
            let keys = match &b.jwks_file {
                Some(f) => format!("keys from {}", f.display()),
                None => format!("keys from {}", b.authority),
            };
            out.push_str(&format!(
                "bearer (HMA):       tenant {}, audiences {audiences}, {keys}{}\n",
                b.rules.tenant_id,
                if b.upn_fallback { ", upn fallback" } else { "" }
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
        let tls = self.tls(raw.tls, &org)?;
        let mail = self.mail(raw.mail, &org.accepted_domains, &tls.default)?;
        Ok(Config {
            mail,
            tls,
            source: self.file.to_path_buf(),
            server: self.server(raw.server)?,
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
}
