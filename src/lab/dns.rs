//! The lab's DNS: authoritative zones for the lab's names, written by `lab init` as
//! ordinary master files (RFC 1035 §5) under `dns/`, and served by `lab up` on loopback
//! with hickory-server. The probe asks it with `--dns-server`, so missing names, CNAME
//! chains and SRV records behave like real DNS instead of a name map.
//!
//! The zones: the organisation's domain (`autodiscover` is a CNAME to `mail`, as many
//! deployments publish it, and `_autodiscover._tcp` has an SRV record, RFC 2782) and the
//! cloud domain (`autodiscover.<tenant>.mail.onmicrosoft` is a CNAME to `autodiscover-s`,
//! as `autodiscover.<tenant>.mail.onmicrosoft.com` is to `autodiscover.outlook.com`). The
//! bare routing domain has no address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::authority::{AuthorityObject, Catalog, ZoneType};
use hickory_server::proto::rr::LowerName;
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;
use serde::Deserialize;

use super::{Breakage, LabSpec, Ports};

/// `dns/zones.toml` inside a lab directory.
pub const ZONES_FILE: &str = "dns/zones.toml";

/// One zone file: its origin and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFile {
    pub origin: String,
    pub text: String,
}

impl ZoneFile {
    /// `dns/<origin>.zone`.
    pub fn file_name(&self) -> String {
        format!("{}.zone", self.origin)
    }
}

fn zone_head(origin: &str) -> String {
    format!(
        "; The {origin} zone of the autodiscoverd lab (`lab up` serves it on loopback).\n\
         $ORIGIN {origin}.\n\
         $TTL 300\n\
         @ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n\
         @ IN NS ns.{origin}.\n\
         ns IN A 127.0.0.1\n"
    )
}

/// The relative owner name of `host` in `origin` (`@` for the apex).
fn owner(host: &str, origin: &str) -> String {
    if host == origin {
        return "@".into();
    }
    host.strip_suffix(&format!(".{origin}"))
        .map_or_else(|| format!("{host}."), str::to_string)
}

/// The lab's zones: the organisation's domain and the cloud domain.
pub fn zones(spec: &LabSpec) -> Vec<ZoneFile> {
    let domain = spec.domain.as_str();
    let mail = spec.mail_host();
    let mut org = zone_head(domain);
    org.push_str(&format!(
        "; The root domain: someone else's web hosting (its certificate names another host).\n\
         @ IN A 127.0.0.1\n\
         {mail_owner} IN A 127.0.0.1\n\
         ; Thunderbird's autoconfig name.\n\
         {autoconfig} IN CNAME {mail}.\n",
        mail_owner = owner(&mail, domain),
        autoconfig = owner(&spec.autoconfig_host(), domain),
    ));
    if spec.broken(Breakage::MissingAutodiscoverName) {
        org.push_str(
            "; BROKEN ON PURPOSE (lab init --break missing-autodiscover-name): no autodiscover record.\n",
        );
    } else {
        org.push_str(&format!("autodiscover IN CNAME {mail}.\n"));
    }
    org.push_str(&format!(
        "; Clients that find no other candidate ask this (and should ask the user first).\n\
         _autodiscover._tcp IN SRV 0 0 443 {mail}.\n"
    ));
    let cloud = spec.cloud.as_str();
    let mut tenant = zone_head(cloud);
    for host in [spec.tenant_autodiscover_host(), spec.outlook_host()] {
        tenant.push_str(&format!("{} IN A 127.0.0.1\n", owner(&host, cloud)));
    }
    tenant.push_str(&format!(
        "; The routing domain's autodiscover name points at the tenant's endpoint; the bare\n\
         ; routing domain {routing} has no address.\n\
         {redirect} IN CNAME {autodiscover_s}.\n",
        routing = spec.routing_domain(),
        redirect = owner(&spec.tenant_redirect_host(), cloud),
        autodiscover_s = spec.tenant_autodiscover_host(),
    ));
    let mut out = vec![ZoneFile {
        origin: domain.to_string(),
        text: org,
    }];
    if cloud != domain {
        out.push(ZoneFile {
            origin: cloud.to_string(),
            text: tenant,
        });
    }
    out
}

/// `dns/zones.toml`: where `lab up` serves which zone files.
pub fn zones_config(spec: &LabSpec, ports: Ports) -> String {
    let files: Vec<String> = zones(spec)
        .iter()
        .map(|z| format!("\"{}\"", z.file_name()))
        .collect();
    format!(
        "# The lab's authoritative DNS, served by `autodiscoverd lab up` (UDP and TCP).\n\
         # Ask it: autodiscoverd probe --dns-server 127.0.0.1:{port} --map dns.conf ...\n\
         #         dig @127.0.0.1 -p {port} autodiscover.{domain}\n\
         listen = \"127.0.0.1:{port}\"\n\
         zones = [{files}]\n",
        port = ports.dns,
        domain = spec.domain,
        files = files.join(", "),
    )
}

/// Why the lab's DNS could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{path}: {message}. Fix: rewrite the lab with `autodiscoverd lab init --force`")]
    Config { path: PathBuf, message: String },
    #[error("cannot listen on {addr} for DNS: {source}. Fix: free the port or choose another --base-port")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZonesConfig {
    listen: SocketAddr,
    zones: Vec<String>,
}

fn config_error(path: &Path, message: impl std::fmt::Display) -> DnsError {
    DnsError::Config {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// The zones of a lab directory and where to serve them; `None` for a lab written before
/// the lab had DNS.
pub fn load(dir: &Path) -> Result<Option<(SocketAddr, Catalog)>, DnsError> {
    let path = dir.join(ZONES_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(config_error(&path, e)),
    };
    let config: ZonesConfig = toml::from_str(&text).map_err(|e| config_error(&path, e))?;
    let mut catalog = Catalog::new();
    for file in &config.zones {
        let zone_path = path.with_file_name(file);
        let text = std::fs::read_to_string(&zone_path).map_err(|e| config_error(&zone_path, e))?;
        let (origin, records) = Parser::new(text, Some(zone_path.clone()), None)
            .parse()
            .map_err(|e| config_error(&zone_path, e))?;
        let authority = InMemoryAuthority::new(
            origin.clone(),
            records.into_iter().collect::<BTreeMap<_, _>>(),
            ZoneType::Primary,
            false,
        )
        .map_err(|e| config_error(&zone_path, e))?;
        let objects: Vec<Arc<dyn AuthorityObject>> = vec![Arc::new(authority)];
        catalog.upsert(LowerName::new(&origin), objects);
    }
    Ok(Some((config.listen, catalog)))
}

/// The lab's DNS server, bound and answering until dropped or shut down.
pub struct LabDns {
    pub addr: SocketAddr,
    server: ServerFuture<Catalog>,
}

/// Longest a TCP DNS client may stay idle.
const TCP_IDLE: Duration = Duration::from_secs(10);

impl LabDns {
    /// Binds UDP and TCP on `addr` (port 0: any free port, the same for both; another
    /// port is tried while TCP finds the UDP port taken).
    pub async fn bind(addr: SocketAddr, catalog: Catalog) -> Result<LabDns, DnsError> {
        let bind_error = |addr, source| DnsError::Bind { addr, source };
        let mut tries = if addr.port() == 0 { 20 } else { 1 };
        loop {
            tries -= 1;
            let udp = tokio::net::UdpSocket::bind(addr)
                .await
                .map_err(|e| bind_error(addr, e))?;
            let bound = udp.local_addr().map_err(|e| bind_error(addr, e))?;
            let tcp = match tokio::net::TcpListener::bind(bound).await {
                Ok(tcp) => tcp,
                Err(e) if tries > 0 && e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(bind_error(bound, e)),
            };
            let mut server = ServerFuture::new(catalog);
            server.register_socket(udp);
            server.register_listener(tcp, TCP_IDLE);
            return Ok(LabDns {
                addr: bound,
                server,
            });
        }
    }

    /// Answers until `stop` completes.
    pub async fn serve_until(mut self, stop: impl std::future::Future<Output = ()>) {
        stop.await;
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::warn!(error = %e, "the lab DNS did not stop cleanly");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_parse_and_publish_the_journeys_names() {
        let spec = LabSpec::default();
        let zones = zones(&spec);
        assert_eq!(zones.len(), 2);
        for z in &zones {
            let (origin, records) = Parser::new(z.text.clone(), None, None).parse().unwrap();
            assert_eq!(origin.to_ascii(), format!("{}.", z.origin));
            assert!(!records.is_empty());
        }
        let org = &zones[0].text;
        assert!(
            org.contains("autodiscover IN CNAME mail.contoso.lab.\n"),
            "{org}"
        );
        assert!(org.contains("_autodiscover._tcp IN SRV 0 0 443 mail.contoso.lab.\n"));
        let cloud = &zones[1].text;
        assert!(
            cloud.contains("autodiscover.contoso.mail.onmicrosoft IN CNAME autodiscover-s.lab.\n"),
            "{cloud}"
        );
        assert!(!cloud.contains("\ncontoso.mail.onmicrosoft IN"));

        let broken = LabSpec {
            breakage: Some(Breakage::MissingAutodiscoverName),
            ..LabSpec::default()
        };
        assert!(!super::zones(&broken)[0]
            .text
            .contains("autodiscover IN CNAME"));
    }

    #[test]
    fn owners_are_relative_to_the_origin() {
        assert_eq!(owner("lab", "lab"), "@");
        assert_eq!(owner("outlook.lab", "lab"), "outlook");
        assert_eq!(owner("elsewhere.test", "lab"), "elsewhere.test.");
    }
}
