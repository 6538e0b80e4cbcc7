//! Serde mirror of `autodiscoverd.toml`. Only [`super`] uses these types; everything else
//! sees the validated [`super::Config`].

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: ServerSection,
    pub tls: TlsSection,
    pub organization: OrganizationSection,
    #[serde(default)]
    pub auth: AuthSection,
    pub services: ServicesSection,
    pub directory: DirectorySection,
    pub redirect: Option<RedirectSection>,
    #[serde(default)]
    pub v2: super::v2::V2Section,
    #[serde(default)]
    pub mail: super::mail::MailSection,
    #[serde(default)]
    pub throttle: super::throttle::ThrottleSection,
    pub proxy: Option<ProxySection>,
    pub metrics: Option<MetricsSection>,
    pub log: Option<LogSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Vec<String>,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    #[serde(default = "default_tls_handshake_timeout")]
    pub tls_handshake_timeout_secs: u64,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
    #[serde(default)]
    pub benchmark_static_route: bool,
}

fn default_max_body_bytes() -> usize {
    64 * 1024
}
fn default_header_read_timeout() -> u64 {
    10
}
fn default_request_timeout() -> u64 {
    30
}
fn default_tls_handshake_timeout() -> u64 {
    10
}
fn default_max_connections() -> usize {
    10_000
}
fn default_shutdown_grace() -> u64 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: String,
    pub key: String,
    #[serde(default)]
    pub self_signed_if_missing: bool,
    #[serde(default)]
    pub self_signed_names: Vec<String>,
    #[serde(default)]
    pub sni: Vec<SniEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniEntry {
    pub host: String,
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationSection {
    pub display_name: String,
    pub exchange_org: String,
    pub deployment_id: String,
    pub accepted_domains: Vec<String>,
    pub tenant_routing_domain: Option<String>,
    #[serde(default)]
    pub microsoft_online: bool,
    #[serde(default)]
    pub emulate_service_endpoints: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub realm: Option<String>,
    #[serde(default = "default_true")]
    pub basic: bool,
    #[serde(default)]
    pub lookup_policy: Option<String>,
    #[serde(default = "default_true")]
    pub ntlm: bool,
    #[serde(default)]
    pub negotiate: bool,
    pub ntlm_domain: Option<String>,
    #[serde(default = "default_ntlm_window")]
    pub ntlm_timestamp_window_secs: u64,
    #[serde(default = "default_true")]
    pub ntlm_persist_on_connection: bool,
    pub ntlm_channel_binding: Option<String>,
    #[serde(default)]
    pub ntlm_allow_legacy: bool,
    pub kerberos: Option<super::domain_auth::KerberosSection>,
    pub winbind: Option<super::domain_auth::WinbindSection>,
    pub bearer: Option<BearerSection>,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            realm: None,
            basic: true,
            lookup_policy: None,
            ntlm: true,
            negotiate: false,
            ntlm_domain: None,
            ntlm_timestamp_window_secs: default_ntlm_window(),
            ntlm_persist_on_connection: true,
            ntlm_channel_binding: None,
            ntlm_allow_legacy: false,
            kerberos: None,
            winbind: None,
            bearer: None,
        }
    }
}

fn default_ntlm_window() -> u64 {
    36 * 3600
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesSection {
    pub exchange_version: String,
    #[serde(default = "default_ttl")]
    pub ttl_hours: u32,
    pub ad_server: Option<String>,
    pub public_folder_server: Option<String>,
    pub ews: UrlPair,
    pub oab: Option<UrlPair>,
    pub ecp: Option<UrlPair>,
    pub owa: Option<OwaSection>,
    pub activesync: Option<UrlPair>,
    pub outlook_anywhere: OutlookAnywhereSection,
    pub mapi_http: Option<MapiHttpSection>,
}

fn default_ttl() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlPair {
    pub internal: Option<String>,
    pub external: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwaSection {
    pub internal: Option<String>,
    pub external: Option<String>,
    #[serde(default = "default_owa_internal_auth")]
    pub internal_auth: String,
    #[serde(default = "default_owa_external_auth")]
    pub external_auth: String,
}

fn default_owa_internal_auth() -> String {
    "Basic, Fba".into()
}
fn default_owa_external_auth() -> String {
    "Fba".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlookAnywhereSection {
    pub external_host: String,
    pub internal_host: Option<String>,
    #[serde(default = "default_true")]
    pub ssl: bool,
    #[serde(default = "default_auth_package")]
    pub auth_package: String,
    pub cert_principal_name: Option<String>,
}

fn default_auth_package() -> String {
    "Ntlm".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapiHttpSection {
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub internal_host: Option<String>,
    pub external_host: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySection {
    pub backend: String,
    pub file: Option<FileDirectorySection>,
    pub ldap: Option<super::ldap::LdapDirectorySection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDirectorySection {
    pub path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectSection {
    pub listen: Vec<String>,
    pub target: String,
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySection {
    #[serde(default)]
    pub trusted: Vec<String>,
    #[serde(default)]
    pub plain_listen: Vec<String>,
    #[serde(default)]
    pub proxy_protocol_https_listen: Vec<String>,
    #[serde(default)]
    pub proxy_protocol_plain_listen: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    pub listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub format: Option<String>,
}

/// `[auth.bearer]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerSection {
    pub tenant_id: String,
    pub authority: Option<String>,
    pub ca_file: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub authorization_uri: Option<String>,
    #[serde(default = "default_true")]
    pub upn_fallback: bool,
    pub jwks_file: Option<String>,
    #[serde(default)]
    pub accept_exchange_online_audience: bool,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_leeway() -> u64 {
    crate::auth::bearer::MAX_LEEWAY_SECS
}
