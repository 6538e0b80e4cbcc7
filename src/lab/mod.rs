//! The hybrid lab: one command writes an on-premises organisation and an emulated
//! Exchange Online tenant with their PKI, directories and a name map, and one
//! command runs both. [`LabSpec`] names every host and port; [`files`] renders the text
//! files (pure), [`init`] writes them with a fresh CA, [`up`] serves both roles.

pub mod dns;
pub mod files;
pub mod init;
pub mod issuer;
pub mod up;

use crate::config::is_host_name;

/// A deliberate fault written into a lab, so that the probe has something to find. Each
/// is a mistake administrators make (or a service that is down), written into the same
/// files a real deployment would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakage {
    /// The on-premises `autodiscover.<domain>` certificate expired a month ago.
    ExpiredCertificate,
    /// The tenant believes the migrated mailbox is still on-premises and sends the client
    /// back (a MailUser whose targetAddress is the on-premises address): an address loop.
    RedirectLoop,
    /// `autodiscover.<domain>` has no address (left out of the hosts file and name map).
    MissingAutodiscoverName,
    /// The tenant's port-80 redirector does not run.
    TenantRedirectorDown,
    /// The tenant's mailbox lacks the routing-domain proxy address the on-premises
    /// targetAddress points at: the tenant answers Error 500.
    MissingRoutingAddress,
    /// The tenant's copy of the migrated user has another password (password hash sync
    /// not working): 401 only at the tenant.
    TenantPasswordDiffers,
    /// The on-premises remote mailbox has no targetAddress: Error 602 on-premises.
    MissingTargetAddress,
    /// `autodiscover.<domain>` presents a certificate from a CA clients do not trust.
    UntrustedChain,
    /// `autodiscover.<domain>` is issued by an intermediate CA the server does not send.
    MissingIntermediate,
}

impl Breakage {
    /// Every fault, in `--break` order.
    pub const ALL: [Breakage; 9] = [
        Breakage::ExpiredCertificate,
        Breakage::RedirectLoop,
        Breakage::MissingAutodiscoverName,
        Breakage::TenantRedirectorDown,
        Breakage::MissingRoutingAddress,
        Breakage::TenantPasswordDiffers,
        Breakage::MissingTargetAddress,
        Breakage::UntrustedChain,
        Breakage::MissingIntermediate,
    ];

    /// Parses the `--break` value.
    pub fn parse(text: &str) -> Option<Breakage> {
        let text = text.trim();
        Breakage::ALL.into_iter().find(|b| b.name() == text)
    }

    /// The `--break` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Breakage::ExpiredCertificate => "expired-cert",
            Breakage::RedirectLoop => "redirect-loop",
            Breakage::MissingAutodiscoverName => "missing-autodiscover-name",
            Breakage::TenantRedirectorDown => "tenant-redirector-down",
            Breakage::MissingRoutingAddress => "missing-routing-address",
            Breakage::TenantPasswordDiffers => "tenant-password-differs",
            Breakage::MissingTargetAddress => "missing-target-address",
            Breakage::UntrustedChain => "untrusted-chain",
            Breakage::MissingIntermediate => "missing-intermediate",
        }
    }

    /// One line for `LAB.txt` and the docs.
    pub fn describe(self) -> &'static str {
        match self {
            Breakage::ExpiredCertificate => {
                "the autodiscover.<domain> certificate expired 30 days ago"
            }
            Breakage::RedirectLoop => {
                "the tenant's copy of the migrated user points back on-premises"
            }
            Breakage::MissingAutodiscoverName => "autodiscover.<domain> has no address",
            Breakage::TenantRedirectorDown => "the tenant's port-80 redirector does not run",
            Breakage::MissingRoutingAddress => {
                "the tenant mailbox lacks the routing-domain address"
            }
            Breakage::TenantPasswordDiffers => {
                "the tenant's copy of the migrated user has another password"
            }
            Breakage::MissingTargetAddress => "the on-premises remote mailbox has no targetAddress",
            Breakage::UntrustedChain => {
                "autodiscover.<domain> presents a certificate from an untrusted CA"
            }
            Breakage::MissingIntermediate => {
                "autodiscover.<domain> does not send its intermediate CA certificate"
            }
        }
    }
}

/// One person of the lab: the same identity on both sides (a synced account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabUser {
    /// Local part of every address and the sAMAccountName.
    pub alias: &'static str,
    pub display_name: &'static str,
    /// A lab password (plaintext in the lab directories; never use it for anything real).
    pub password: &'static str,
    /// The mailbox moved to the tenant.
    pub migrated: bool,
    /// msExchMailboxGuid (kept across the move, as Exchange does).
    pub mailbox_guid: &'static str,
}

/// The lab's people: one on-premises mailbox and one migrated mailbox.
pub const USERS: [LabUser; 2] = [
    LabUser {
        alias: "alice",
        display_name: "Alice On-Premises",
        password: "alice-lab-pw",
        migrated: false,
        mailbox_guid: "9d0b7c2e-4f1a-4e6b-8a3c-5b2d1e0f7a64",
    },
    LabUser {
        alias: "bob",
        display_name: "Bob Migrated",
        password: "bob-lab-pw",
        migrated: true,
        mailbox_guid: "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
    },
];

/// The lab's Internet-mail mailbox: an on-premises mailbox on IMAP/SMTP servers
/// (`mailbox_kind = "internet"`), not in Exchange and never migrated.
pub const INTERNET_USER: LabUser = LabUser {
    alias: "ida",
    display_name: "Ida Internet Mail",
    password: "ida-lab-pw",
    migrated: false,
    mailbox_guid: "4b5c6d7e-8f90-4a1b-9c2d-3e4f5a6b7c8d",
};

/// The loopback ports of a lab (the real deployment would use 443 and 80).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// On-premises plain HTTP: the port-80 responder of `autodiscover.<domain>`.
    pub onprem_http: u16,
    /// The lab's authoritative DNS (UDP and TCP).
    pub dns: u16,
    /// On-premises HTTPS: `<domain>`, `autodiscover.<domain>`, `mail.<domain>`.
    pub onprem_https: u16,
    /// Tenant HTTPS: `autodiscover-s.<cloud>`, `outlook.<cloud>`.
    pub tenant_https: u16,
    /// Tenant plain HTTP: the port-80 redirector of `autodiscover.<routing domain>`.
    pub tenant_http: u16,
}

/// Why a lab specification cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("`{value}` is not a usable {what}. Fix: {fix}")]
    Invalid {
        what: &'static str,
        value: String,
        fix: &'static str,
    },
}

/// Everything that names a lab: domains, tenant, ports and an optional fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// The organisation's (vanity) SMTP domain, e.g. `contoso.lab`.
    pub domain: String,
    /// The tenant name: `<tenant>.mail.onmicrosoft.<cloud>` is the routing domain.
    pub tenant: String,
    /// Stands in for Microsoft's domains: `autodiscover-s.<cloud>`, `outlook.<cloud>`.
    pub cloud: String,
    /// First of five consecutive loopback ports (see [`Ports`]); with `hma` a sixth one,
    /// base+5, is the token issuer's.
    pub base_port: u16,
    pub breakage: Option<Breakage>,
    /// Hybrid Modern Authentication: an Entra-like token issuer beside the tenant, and the
    /// on-premises side accepting its tokens (`lab init --hma`).
    pub hma: bool,
}

impl Default for LabSpec {
    fn default() -> Self {
        LabSpec {
            domain: "contoso.lab".into(),
            tenant: "contoso".into(),
            cloud: "lab".into(),
            base_port: 8443,
            breakage: None,
            hma: false,
        }
    }
}

impl LabSpec {
    /// Checks names and ports; values are lower-cased.
    pub fn validated(mut self) -> Result<LabSpec, SpecError> {
        self.domain = self.domain.trim().to_ascii_lowercase();
        self.tenant = self.tenant.trim().to_ascii_lowercase();
        self.cloud = self.cloud.trim().to_ascii_lowercase();
        for (what, value, fix) in [
            (
                "domain",
                &self.domain,
                "use a DNS domain such as contoso.lab",
            ),
            (
                "tenant name",
                &self.tenant,
                "use one DNS label such as contoso",
            ),
            ("cloud domain", &self.cloud, "use a DNS name such as lab"),
        ] {
            if !is_host_name(value) {
                return Err(SpecError::Invalid {
                    what,
                    value: value.clone(),
                    fix,
                });
            }
        }
        if self.tenant.contains('.') {
            return Err(SpecError::Invalid {
                what: "tenant name",
                value: self.tenant.clone(),
                fix: "use one DNS label such as contoso",
            });
        }
        if self.hma && self.base_port > u16::MAX - 5 {
            return Err(SpecError::Invalid {
                what: "base port",
                value: self.base_port.to_string(),
                fix: "use a port from 1 to 65530; an HMA lab uses it and the next five",
            });
        }
        if self.base_port == 0 || self.base_port > u16::MAX - 4 {
            return Err(SpecError::Invalid {
                what: "base port",
                value: self.base_port.to_string(),
                fix: "use a port from 1 to 65531; the lab uses it and the next four",
            });
        }
        Ok(self)
    }

    /// The configured ports: base, base+1, base+2, base+3, base+4.
    pub fn ports(&self) -> Ports {
        Ports {
            dns: self.base_port.saturating_add(4),
            onprem_http: self.base_port.saturating_add(3),
            onprem_https: self.base_port,
            tenant_https: self.base_port.saturating_add(1),
            tenant_http: self.base_port.saturating_add(2),
        }
    }

    /// The token issuer's port (`--hma` labs): base+5.
    pub fn issuer_port(&self) -> u16 {
        self.base_port.saturating_add(5)
    }

    /// The token issuer's host name (`login.microsoftonline.com` in real life).
    pub fn issuer_host(&self) -> String {
        format!("login.{}", self.cloud)
    }

    /// The lab tenant's id (a GUID derived from the tenant name, stable across inits).
    pub fn tenant_id(&self) -> String {
        uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_DNS,
            format!("tenant-id.{}.{}", self.tenant, self.cloud).as_bytes(),
        )
        .hyphenated()
        .to_string()
    }

    /// A user's on-premises `objectSid` (the lab domain's SID and a RID per user).
    pub fn user_sid(&self, user: &LabUser) -> String {
        let rid = 1100
            + USERS
                .iter()
                .position(|u| u.alias == user.alias)
                .unwrap_or(9) as u32;
        format!("S-1-5-21-1004336348-1177238915-682003330-{rid}")
    }

    /// `<tenant>.mail.onmicrosoft.<cloud>`: the targetAddress domain of migrated mailboxes.
    pub fn routing_domain(&self) -> String {
        format!("{}.mail.onmicrosoft.{}", self.tenant, self.cloud)
    }

    /// `<tenant>.onmicrosoft.<cloud>`: the tenant's initial domain.
    pub fn initial_domain(&self) -> String {
        format!("{}.onmicrosoft.{}", self.tenant, self.cloud)
    }

    /// The on-premises Autodiscover host.
    pub fn onprem_autodiscover_host(&self) -> String {
        format!("autodiscover.{}", self.domain)
    }

    /// Thunderbird's autoconfig name (served by the on-premises endpoint).
    pub fn autoconfig_host(&self) -> String {
        format!("autoconfig.{}", self.domain)
    }

    /// The on-premises Exchange namespace (EWS, OWA, MAPI, Outlook Anywhere).
    pub fn mail_host(&self) -> String {
        format!("mail.{}", self.domain)
    }

    /// The name on the certificate the root domain presents: someone else's web site,
    /// as in the seed scenario.
    pub fn root_certificate_name(&self) -> String {
        format!("www.webhosting.{}", self.cloud)
    }

    /// The tenant's Autodiscover endpoint (`autodiscover-s.outlook.com` in real life).
    pub fn tenant_autodiscover_host(&self) -> String {
        format!("autodiscover-s.{}", self.cloud)
    }

    /// The tenant's service namespace (`outlook.office365.com` in real life).
    pub fn outlook_host(&self) -> String {
        format!("outlook.{}", self.cloud)
    }

    /// `autodiscover.<routing domain>`: port 80 only, answering 302 to the tenant.
    pub fn tenant_redirect_host(&self) -> String {
        format!("autodiscover.{}", self.routing_domain())
    }

    /// Whether the lab has this fault.
    pub fn broken(&self, fault: Breakage) -> bool {
        self.breakage == Some(fault)
    }

    /// The on-premises host names that have an address (the hosts file, the name map and
    /// the lab's DNS zone all publish these).
    pub fn onprem_hosts(&self) -> Vec<String> {
        let mut hosts = vec![self.domain.clone()];
        if !self.broken(Breakage::MissingAutodiscoverName) {
            hosts.push(self.onprem_autodiscover_host());
        }
        hosts.push(self.mail_host());
        hosts.push(self.autoconfig_host());
        hosts
    }

    /// The tenant host names that have an address (the bare routing domain has none).
    pub fn tenant_hosts(&self) -> Vec<String> {
        vec![
            self.tenant_autodiscover_host(),
            self.outlook_host(),
            self.tenant_redirect_host(),
        ]
    }

    /// Every `(host, port) → (address, port)` mapping a client needs to reach the lab on
    /// loopback. The bare routing domain is deliberately absent: it has no address.
    pub fn connect_map(&self, ports: Ports) -> Vec<ConnectTo> {
        let loopback = "127.0.0.1";
        let mut out = Vec::new();
        for host in self.onprem_hosts() {
            out.push(ConnectTo::new(&host, 443, loopback, ports.onprem_https));
        }
        // The on-premises port-80 responder redirects to https on the same name.
        if !self.broken(Breakage::MissingAutodiscoverName) {
            let host = self.onprem_autodiscover_host();
            out.push(ConnectTo::new(&host, 80, loopback, ports.onprem_http));
        }
        for host in [self.tenant_autodiscover_host(), self.outlook_host()] {
            out.push(ConnectTo::new(&host, 443, loopback, ports.tenant_https));
        }
        // The tenant's autodiscover name answers on port 80; on 443 it reaches the tenant's
        // TLS endpoint, whose certificate does not carry the tenant's name (as with
        // autodiscover.outlook.com in real life).
        let redirect = self.tenant_redirect_host();
        out.push(ConnectTo::new(&redirect, 80, loopback, ports.tenant_http));
        out.push(ConnectTo::new(&redirect, 443, loopback, ports.tenant_https));
        out
    }

    /// The primary (vanity) address of a lab user.
    pub fn address(&self, user: &LabUser) -> String {
        format!("{}@{}", user.alias, self.domain)
    }

    /// The routing-domain address of a lab user (targetAddress of migrated mailboxes).
    pub fn routing_address(&self, user: &LabUser) -> String {
        format!("{}@{}", user.alias, self.routing_domain())
    }
}

/// One curl-style `--connect-to HOST1:PORT1:HOST2:PORT2` mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pub host: String,
    pub port: u16,
    pub to_host: String,
    pub to_port: u16,
}

impl ConnectTo {
    /// Builds a mapping.
    pub fn new(host: &str, port: u16, to_host: &str, to_port: u16) -> ConnectTo {
        ConnectTo {
            host: host.to_string(),
            port,
            to_host: to_host.to_string(),
            to_port,
        }
    }
}

impl std::fmt::Display for ConnectTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.host, self.port, self.to_host, self.to_port
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_lab_names_follow_the_real_hybrid_layout() {
        let s = LabSpec::default().validated().unwrap();
        assert_eq!(s.routing_domain(), "contoso.mail.onmicrosoft.lab");
        assert_eq!(
            s.tenant_redirect_host(),
            "autodiscover.contoso.mail.onmicrosoft.lab"
        );
        assert_eq!(s.tenant_autodiscover_host(), "autodiscover-s.lab");
        assert_eq!(s.outlook_host(), "outlook.lab");
        assert_eq!(
            s.ports(),
            Ports {
                onprem_https: 8443,
                tenant_https: 8444,
                tenant_http: 8445,
                onprem_http: 8446,
                dns: 8447,
            }
        );
    }

    #[test]
    fn the_connect_map_leaves_the_bare_routing_domain_unmapped() {
        let s = LabSpec::default();
        let map = s.connect_map(s.ports());
        assert!(map.iter().all(|m| m.host != s.routing_domain()));
        assert!(map
            .iter()
            .any(|m| m.to_string() == "autodiscover.contoso.lab:80:127.0.0.1:8446"));
        let broken = LabSpec {
            breakage: Some(Breakage::MissingAutodiscoverName),
            ..LabSpec::default()
        };
        assert!(broken
            .connect_map(broken.ports())
            .iter()
            .all(|m| m.host != "autodiscover.contoso.lab"));
        assert!(map
            .iter()
            .any(|m| m.to_string() == "contoso.lab:443:127.0.0.1:8443"));
        assert!(map.iter().any(
            |m| m.to_string() == "autodiscover.contoso.mail.onmicrosoft.lab:80:127.0.0.1:8445"
        ));
    }

    #[test]
    fn bad_names_and_ports_are_refused() {
        let bad = |f: &dyn Fn(&mut LabSpec)| {
            let mut s = LabSpec::default();
            f(&mut s);
            s.validated().is_err()
        };
        assert!(bad(&|s| s.domain = "contoso lab".into()));
        assert!(bad(&|s| s.tenant = "a.b".into()));
        assert!(bad(&|s| s.base_port = 65532));
        assert!(bad(&|s| s.base_port = 0));
        assert!(!bad(&|s| s.domain = "Fabrikam.Test".into()));
    }

    #[test]
    fn breakages_round_trip_their_names() {
        for b in Breakage::ALL {
            assert_eq!(Breakage::parse(b.name()), Some(b));
        }
        assert_eq!(Breakage::parse("nothing"), None);
    }
}
