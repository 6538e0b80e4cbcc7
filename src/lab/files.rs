//! The text files of a lab, rendered from a [`LabSpec`]: both roles' configurations and
//! directories, the hosts-file lines, the curl/probe name map and a summary. Pure: no file
//! system, no clock; [`super::init`] writes what these functions return.
//!
//! Every value placed into TOML here is a validated host name, a fixed word or a number,
//! so plain formatting cannot produce broken TOML.

use uuid::Uuid;

use super::{Breakage, LabSpec, LabUser, Ports, USERS};

/// Who signs a lab certificate, and what the server sends with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    /// The lab CA (`ca/ca.pem`), which clients trust.
    LabCa,
    /// An intermediate CA under the lab CA; the certificate file holds only the leaf, so
    /// the server does not send the intermediate (`--break missing-intermediate`).
    IntermediateNotSent,
    /// A self-signed CA nobody trusts; the file holds the leaf and that CA
    /// (`--break untrusted-chain`).
    Untrusted,
}

/// Certificate file stems under `certs/` and the names each certificate carries.
pub struct CertPlan {
    pub stem: &'static str,
    pub names: Vec<String>,
    pub issuer: Issuer,
}

/// `certs/<stem>.pem` of the on-premises Autodiscover host.
pub const CERT_ONPREM_AUTODISCOVER: &str = "onprem-autodiscover";
/// `certs/<stem>.pem` of the on-premises mail host.
pub const CERT_ONPREM_MAIL: &str = "onprem-mail";
/// `certs/<stem>.pem` the root domain presents (issued to another name on purpose).
pub const CERT_ONPREM_ROOT: &str = "onprem-root-mismatch";
/// `certs/<stem>.pem` of the tenant's `autodiscover-s` host.
pub const CERT_TENANT_AUTODISCOVER: &str = "tenant-autodiscover-s";
/// `certs/<stem>.pem` of the tenant's `outlook` host.
pub const CERT_TENANT_OUTLOOK: &str = "tenant-outlook";
/// `certs/<stem>.pem` of the token issuer (`--hma` labs).
pub const CERT_ISSUER: &str = "issuer";

/// The certificates a lab needs, one per host.
pub fn certificates(spec: &LabSpec) -> Vec<CertPlan> {
    let autodiscover_issuer = if spec.broken(Breakage::MissingIntermediate) {
        Issuer::IntermediateNotSent
    } else if spec.broken(Breakage::UntrustedChain) {
        Issuer::Untrusted
    } else {
        Issuer::LabCa
    };
    let plan = |stem, names| CertPlan {
        stem,
        names,
        issuer: Issuer::LabCa,
    };
    vec![
        CertPlan {
            stem: CERT_ONPREM_AUTODISCOVER,
            names: vec![spec.onprem_autodiscover_host(), spec.autoconfig_host()],
            issuer: autodiscover_issuer,
        },
        plan(CERT_ONPREM_MAIL, vec![spec.mail_host()]),
        plan(CERT_ONPREM_ROOT, vec![spec.root_certificate_name()]),
        plan(
            CERT_TENANT_AUTODISCOVER,
            vec![spec.tenant_autodiscover_host()],
        ),
        plan(CERT_TENANT_OUTLOOK, vec![spec.outlook_host()]),
    ]
    .into_iter()
    .chain(spec.hma.then(|| {
        plan(
            CERT_ISSUER,
            vec!["localhost".to_string(), spec.issuer_host()],
        )
    }))
    .collect()
}

/// `[auth.bearer]` of the on-premises side of an `--hma` lab: the lab tenant, keys from the
/// lab issuer (reached as `localhost`), trusted through the lab CA.
pub fn onprem_bearer(spec: &LabSpec) -> String {
    format!(
        "\n# Hybrid Modern Authentication (lab init --hma): tokens of the lab's Entra-like issuer.\n\
         [auth.bearer]\n\
         tenant_id = \"{tenant}\"\n\
         authority = \"https://localhost:{port}\"\n\
         ca_file = \"../ca/ca.pem\"\n\
         authorization_uri = \"https://localhost:{port}/common/oauth2/authorize\"\n",
        tenant = spec.tenant_id(),
        port = spec.issuer_port(),
    )
}

/// `issuer/issuer.toml`: what `lab up` serves as the tenant's token issuer.
pub fn issuer_config(spec: &LabSpec) -> String {
    let mut out = format!(
        "# Lab: the Entra-like token issuer of tenant {tenant} (written by `autodiscoverd lab init --hma`).\n\
         # Discovery, keys and the token endpoint (password and refresh-token grants) under\n\
         # https://localhost:{port}/{tenant}/. Lab passwords in plaintext; never reuse them.\n\
         tenant_id = \"{tenant}\"\n\
         kid = \"lab-signing-key\"\n\
         listen = \"127.0.0.1:{port}\"\n\
         signing_key = \"signing-key.pem\"\n\
         cert = \"../certs/{CERT_ISSUER}.pem\"\n\
         key = \"../certs/{CERT_ISSUER}.key\"\n\
         # The on-premises origins registered as service principal names of Exchange Online.\n\
         resources = [\"https://{autodiscover}\"]\n",
        tenant = spec.tenant_id(),
        port = spec.issuer_port(),
        autodiscover = spec.onprem_autodiscover_host(),
    );
    for user in &USERS {
        out.push_str(&format!(
            "\n[[account]]\nupn = \"{}\"\npassword = \"{}\"\nonprem_sid = \"{}\"\n",
            spec.address(user),
            user.password,
            spec.user_sid(user)
        ));
    }
    out
}

fn org_name(spec: &LabSpec) -> String {
    let mut chars = spec.tenant.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn guid(spec: &LabSpec, purpose: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_DNS,
        format!("{purpose}.{}", spec.domain).as_bytes(),
    )
}

fn mailbox_guid(user: &LabUser) -> Uuid {
    Uuid::parse_str(user.mailbox_guid)
        .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, user.alias.as_bytes()))
}

/// The on-premises legacyExchangeDN of a lab user (also an X500 proxy in the tenant).
pub fn onprem_legacy_dn(spec: &LabSpec, user: &LabUser) -> String {
    format!(
        "/o={}/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={}-{}",
        org_name(spec),
        mailbox_guid(user).simple(),
        user.alias
    )
}

fn cert_entry(stem: &str) -> (String, String) {
    (
        format!("../certs/{stem}.pem"),
        format!("../certs/{stem}.key"),
    )
}

/// `onprem/autodiscoverd.toml`: the on-premises Exchange organisation.
pub fn onprem_config(spec: &LabSpec, ports: Ports) -> String {
    let (ad_cert, ad_key) = cert_entry(CERT_ONPREM_AUTODISCOVER);
    let (mail_cert, mail_key) = cert_entry(CERT_ONPREM_MAIL);
    let (root_cert, root_key) = cert_entry(CERT_ONPREM_ROOT);
    let mail = spec.mail_host();
    let oab = guid(spec, "oab.onprem");
    let bearer = if spec.hma {
        onprem_bearer(spec)
    } else {
        String::new()
    };
    let main = format!(
        r#"# Lab: the on-premises Exchange organisation of {domain} (written by `autodiscoverd lab init`).
# Run with `autodiscoverd lab up <lab dir>` (both roles) or
# `autodiscoverd serve --config <this file>` (this role only).

[server]
# Stands in for port 443 of {domain}, autodiscover.{domain} and {mail}.
listen = ["127.0.0.1:{port}"]

[tls]
# autodiscover.{domain}: the name Outlook tries second (MS-OXDISCO §3.1.5.2).
cert = "{ad_cert}"
key = "{ad_key}"

[[tls.sni]]
host = "{mail}"
cert = "{mail_cert}"
key = "{mail_key}"

# The root domain's HTTPS site is someone else's web hosting: its certificate is issued to
# {root_name}, so clients must reject https://{domain}/ (the seed scenario).
[[tls.sni]]
host = "{domain}"
cert = "{root_cert}"
key = "{root_key}"

[organization]
display_name = "{org} (lab, on-premises)"
exchange_org = "{org}"
deployment_id = "{deployment}"
accepted_domains = ["{domain}"]
tenant_routing_domain = "{routing}"
microsoft_online = false
# The EWS, OAB, MAPI/HTTP and ActiveSync URLs of the settings answer like an Exchange
# front end before a login (401 and the schemes), so `probe --check-urls` can reach them.
emulate_service_endpoints = true

[auth]
basic = true

[services]
exchange_version = "15.2.1258.12"
ad_server = "dc01.{domain}"

[services.ews]
external = "https://{mail}/EWS/Exchange.asmx"

[services.oab]
external = "https://{mail}/OAB/{oab}/"

[services.ecp]
external = "https://{mail}/ecp/"

[services.owa]
external = "https://{mail}/owa/"

[services.activesync]
external = "https://{mail}/Microsoft-Server-ActiveSync"

[services.outlook_anywhere]
external_host = "{mail}"
auth_package = "Ntlm"
cert_principal_name = "None"

[services.mapi_http]
enabled = true
external_host = "{mail}"

[directory]
backend = "file"

[directory.file]
path = "directory.toml"

# AutodiscoverV2: migrated mailboxes get 302 to the lab tenant's V2 endpoint.
[v2]
tenant_url = "https://{autodiscover_s}"
autodiscover_v1_url = "https://autodiscover.{domain}/autodiscover/autodiscover.xml"

# ida's mailbox is on IMAP/SMTP servers (mailbox_kind = "internet" in directory.toml):
# Outlook gets AccountType email, Thunderbird (autoconfig.{domain}) and Apple profiles
# IMAP/SMTP. The lab answers per mailbox (docs/clients.md, the enumeration rule).
[mail]
reveal_mailboxes = true

[mail.internet]
imap = {{ host = "imap.{domain}", port = 993, security = "tls" }}
smtp = {{ host = "smtp.{domain}", port = 587, security = "starttls" }}

# Port 80 of autodiscover.{domain} answers 302 to https, as an on-premises IIS redirect
# does: the HTTP-redirect method (MS-OXDISCO §3.1.5.4) finds the same endpoint.
[redirect]
listen = ["127.0.0.1:{http_port}"]
target = "https://autodiscover.{domain}"
"#,
        domain = spec.domain,
        port = ports.onprem_https,
        http_port = ports.onprem_http,
        autodiscover_s = spec.tenant_autodiscover_host(),
        root_name = spec.root_certificate_name(),
        org = org_name(spec),
        deployment = guid(spec, "deployment.onprem"),
        routing = spec.routing_domain(),
    );
    main + &bearer
}

/// `tenant/autodiscoverd.toml`: the Exchange Online emulation.
pub fn tenant_config(spec: &LabSpec, ports: Ports) -> String {
    let (s_cert, s_key) = cert_entry(CERT_TENANT_AUTODISCOVER);
    let (o_cert, o_key) = cert_entry(CERT_TENANT_OUTLOOK);
    let outlook = spec.outlook_host();
    let autodiscover_s = spec.tenant_autodiscover_host();
    let oab = guid(spec, "oab.tenant");
    format!(
        r#"# Lab: the Exchange Online side of the {org} tenant (written by `autodiscoverd lab init`).
# {autodiscover_s} and {outlook} stand in for autodiscover-s.outlook.com and
# outlook.office365.com; the plain-HTTP redirector stands in for the port-80 VIP behind
# {redirect_host}.

[server]
# Stands in for port 443 of {autodiscover_s} and {outlook}.
listen = ["127.0.0.1:{https_port}"]

[tls]
# Also presented to clients that ask for {redirect_host} on 443: it does not
# carry that name, exactly like autodiscover.outlook.com.
cert = "{s_cert}"
key = "{s_key}"

[[tls.sni]]
host = "{outlook}"
cert = "{o_cert}"
key = "{o_key}"

[organization]
display_name = "{org} (lab tenant, Exchange Online emulation)"
# Exchange Online's organisation in every legacy DN.
exchange_org = "ExchangeLabs"
deployment_id = "{deployment}"
# The tenant answers for the vanity domain and its own domains; migrated users are found
# by their routing-domain proxy address.
accepted_domains = ["{domain}", "{routing}", "{initial}"]
tenant_routing_domain = "{routing}"
# Answer as Exchange Online: MicrosoftOnline=True, EXO-shaped protocol blocks.
microsoft_online = true
# Service URLs answer like Exchange Online's front end before a login.
emulate_service_endpoints = true

# Exchange Online accepts Basic with the UPN only (no NTLM, no DOMAIN\\user): the
# tenant directory carries no sAMAccountName.
[auth]
basic = true
ntlm = false

[services]
# Exchange Online builds are 15.20.x (ServerVersion 73D49F70 for 15.20.8048).
exchange_version = "15.20.8048.0"
public_folder_server = "{outlook}"

[services.ews]
external = "https://{outlook}/EWS/Exchange.asmx"

[services.oab]
external = "https://{outlook}/OAB/{oab}/"

[services.ecp]
external = "https://{outlook}/ecp/"

[services.owa]
external = "https://{outlook}/owa/"
internal_auth = "LiveIdFba, OAuth"
external_auth = "LiveIdFba, OAuth"

[services.activesync]
external = "https://{outlook}/Microsoft-Server-ActiveSync"

[services.outlook_anywhere]
external_host = "{outlook}"
auth_package = "Basic"
cert_principal_name = "msstd:{outlook}"

[services.mapi_http]
enabled = true
external_host = "{outlook}"

[directory]
backend = "file"

[directory.file]
path = "directory.toml"

# AutodiscoverV2 answers point at the tenant's hosts.
[v2]
tenant_url = "https://{autodiscover_s}"
autodiscover_v1_url = "https://{autodiscover_s}/autodiscover/autodiscover.xml"
{redirect}"#,
        org = org_name(spec),
        domain = spec.domain,
        routing = spec.routing_domain(),
        initial = spec.initial_domain(),
        redirect_host = spec.tenant_redirect_host(),
        https_port = ports.tenant_https,
        deployment = guid(spec, "deployment.tenant"),
        redirect = tenant_redirect_section(spec, ports),
    )
}

/// The tenant's port-80 redirector, or a note that it is down on purpose.
fn tenant_redirect_section(spec: &LabSpec, ports: Ports) -> String {
    if spec.broken(Breakage::TenantRedirectorDown) {
        return "\n# BROKEN ON PURPOSE (lab init --break tenant-redirector-down): no port-80 redirector.\n".into();
    }
    format!(
        r#"
# The HTTP-redirect method (MS-OXDISCO §3.1.5.4): GET http://{redirect_host}/autodiscover/autodiscover.xml
# gets 302 to https://{autodiscover_s}/autodiscover/autodiscover.xml.
[redirect]
listen = ["127.0.0.1:{http_port}"]
target = "https://{autodiscover_s}"
hosts = {{ "{redirect_host}" = "https://{autodiscover_s}" }}
"#,
        redirect_host = spec.tenant_redirect_host(),
        autodiscover_s = spec.tenant_autodiscover_host(),
        http_port = ports.tenant_http,
    )
}

/// `onprem/directory.toml`: the on-premises accounts; migrated users are remote mailboxes.
pub fn onprem_directory(spec: &LabSpec) -> String {
    let mut out = format!(
        "# Lab: on-premises directory of {domain}. Plaintext lab passwords (lab = true); never\n\
         # reuse them. Keys are documented in config/directory.example.toml.\n\
         lab = true\n\
         netbios_domain = \"{netbios}\"\n",
        domain = spec.domain,
        netbios = spec.tenant.to_ascii_uppercase(),
    );
    for user in &USERS {
        out.push('\n');
        if user.migrated {
            out.push_str(&format!(
                "# Migrated to the tenant: Autodiscover answers redirectAddr {routing}.\n",
                routing = spec.routing_address(user)
            ));
        } else {
            out.push_str(
                "# Mailbox on-premises: Autodiscover answers with this server's settings.\n",
            );
        }
        out.push_str(&common_user(spec, user, true));
        out.push_str(&format!(
            "primary_smtp = \"{}\"\nlegacy_dn = \"{}\"\n",
            spec.address(user),
            onprem_legacy_dn(spec, user)
        ));
        if spec.hma {
            out.push_str(&format!("sid = \"{}\"\n", spec.user_sid(user)));
        }
        if user.migrated && spec.broken(Breakage::MissingTargetAddress) {
            out.push_str(
                "# BROKEN ON PURPOSE (lab init --break missing-target-address): a remote mailbox\n\
                 # without targetAddress (RemoteRoutingAddress).\n\
                 recipient_type = \"RemoteUserMailbox\"\nremote_recipient_type = 4\n",
            );
        } else if user.migrated {
            out.push_str(&format!(
                "recipient_type = \"RemoteUserMailbox\"\nremote_recipient_type = 4\ntarget_address = \"SMTP:{}\"\n",
                spec.routing_address(user)
            ));
        } else {
            out.push_str("recipient_type = \"UserMailbox\"\n");
        }
    }
    let ida = &super::INTERNET_USER;
    out.push_str(
        "\n# Mailbox on IMAP/SMTP servers: Outlook gets AccountType email (IMAP, SMTP).\n",
    );
    out.push_str(&common_user(spec, ida, true));
    out.push_str(&format!(
        "primary_smtp = \"{}\"\nrecipient_type = \"UserMailbox\"\nmailbox_kind = \"internet\"\n",
        spec.address(ida)
    ));
    out
}

/// The account lines both directories share. The tenant's copy has no sAMAccountName:
/// Exchange Online takes the UPN only.
fn common_user(spec: &LabSpec, user: &LabUser, on_premises: bool) -> String {
    let sam = if on_premises {
        format!("sam_account_name = \"{}\"\n", user.alias)
    } else {
        String::new()
    };
    let password = if !on_premises && user.migrated && spec.broken(Breakage::TenantPasswordDiffers)
    {
        format!(
            "# BROKEN ON PURPOSE (lab init --break tenant-password-differs): password hash sync\n\
             # did not bring the on-premises password here.\n\
             password = \"{}-stale\"\n",
            user.password
        )
    } else {
        format!("password = \"{}\"\n", user.password)
    };
    format!(
        "[[user]]\nupn = \"{address}\"\n{sam}display_name = \"{display}\"\nmailbox_guid = \"{guid}\"\n{password}",
        address = spec.address(user),
        display = user.display_name,
        guid = mailbox_guid(user),
    )
}

/// `tenant/directory.toml`: the synced copy in the tenant. Migrated users own a mailbox
/// here and are found by their routing-domain address; on-premises users are mail users.
pub fn tenant_directory(spec: &LabSpec) -> String {
    let mut out = format!(
        "# Lab: the tenant's directory, a synced copy of {domain} (same UPNs and passwords).\n\
         # Legacy DNs are generated under /o=ExchangeLabs; the on-premises legacy DN stays\n\
         # reachable as an X500 proxy address, as after a real migration.\n\
         lab = true\n\
         netbios_domain = \"{netbios}\"\n",
        domain = spec.domain,
        netbios = spec.tenant.to_ascii_uppercase(),
    );
    let loop_break = spec.breakage == Some(Breakage::RedirectLoop);
    for user in &USERS {
        out.push('\n');
        out.push_str(&common_user(spec, user, false));
        let routing = spec.routing_address(user);
        let initial = format!("{}@{}", user.alias, spec.initial_domain());
        if user.migrated && loop_break {
            out.push_str(&format!(
                "# BROKEN ON PURPOSE (lab init --break redirect-loop): the tenant thinks this\n\
                 # mailbox is still on-premises and sends clients back to {vanity}, which\n\
                 # sends them here again.\n\
                 primary_smtp = \"{routing}\"\n\
                 proxy_addresses = [\"smtp:{initial}\"]\n\
                 recipient_type = \"MailUser\"\n\
                 target_address = \"SMTP:{vanity}\"\n",
                vanity = spec.address(user),
            ));
        } else if user.migrated && spec.broken(Breakage::MissingRoutingAddress) {
            out.push_str(&format!(
                "# BROKEN ON PURPOSE (lab init --break missing-routing-address): the mailbox\n\
                 # lacks smtp:{routing}, the address on-premises sends clients to.\n\
                 primary_smtp = \"{vanity}\"\n\
                 proxy_addresses = [\"smtp:{initial}\", \"X500:{x500}\"]\n\
                 recipient_type = \"UserMailbox\"\n",
                vanity = spec.address(user),
                x500 = onprem_legacy_dn(spec, user),
            ));
        } else if user.migrated {
            out.push_str(&format!(
                "# The mailbox lives here; AutoDiscoverSMTPAddress stays the vanity address.\n\
                 primary_smtp = \"{vanity}\"\n\
                 proxy_addresses = [\"smtp:{routing}\", \"smtp:{initial}\", \"X500:{x500}\"]\n\
                 recipient_type = \"UserMailbox\"\n",
                vanity = spec.address(user),
                x500 = onprem_legacy_dn(spec, user),
            ));
        } else {
            out.push_str(&format!(
                "# Mailbox on-premises: a mail user in the tenant (no mailbox here, Error 501).\n\
                 primary_smtp = \"{vanity}\"\n\
                 proxy_addresses = [\"smtp:{routing}\", \"smtp:{initial}\"]\n\
                 recipient_type = \"MailUser\"\n",
                vanity = spec.address(user),
            ));
        }
    }
    out
}

/// `hosts`: hosts-file lines for every lab name (the bare routing domain left out).
pub fn hosts_file(spec: &LabSpec, ports: Ports) -> String {
    format!(
        "# Hosts-file lines for the {domain} lab (append to /etc/hosts or\n\
         # C:\\Windows\\System32\\drivers\\etc\\hosts). Programs that use the hosts file connect\n\
         # to ports 443/80, while the lab listens on {a} (on-premises HTTPS), {b} (tenant HTTPS),\n\
         # {c} (tenant HTTP redirector) and {d} (on-premises HTTP redirector): forward those\n\
         # ports, or use curl.conf (`curl -K`, `autodiscoverd probe --map`).\n\
         # {routing} is absent on purpose: the bare routing domain has no address.\n\
         127.0.0.1 {onprem}\n\
         127.0.0.1 {tenant}\n",
        domain = spec.domain,
        a = ports.onprem_https,
        b = ports.tenant_https,
        c = ports.tenant_http,
        d = ports.onprem_http,
        routing = spec.routing_domain(),
        onprem = spec.onprem_hosts().join(" "),
        tenant = spec.tenant_hosts().join(" "),
    )
}

/// `curl.conf`: curl's config-file syntax (`curl -K`), also read by `probe --map`:
/// the lab CA and one `connect-to` line per (host, port).
pub fn curl_config(spec: &LabSpec, ports: Ports, ca_file: &str) -> String {
    let mut out = format!(
        "# The {domain} lab's name map in curl config syntax.\n\
         #   curl -K curl.conf https://autodiscover.{domain}/autodiscover/autodiscover.xml ...\n\
         #   autodiscoverd probe --map curl.conf --no-dns alice@{domain}\n\
         cacert = \"{ca}\"\n",
        domain = spec.domain,
        ca = ca_file.replace('\\', "\\\\").replace('"', "\\\""),
    );
    for mapping in spec.connect_map(ports) {
        out.push_str(&format!("connect-to = \"{mapping}\"\n"));
    }
    out
}

/// `dns.conf`: for the lab's DNS mode, the same map as `curl.conf` but ports only: the
/// lab's DNS (`probe --dns-server`) gives the addresses.
pub fn dns_mode_config(spec: &LabSpec, ports: Ports, ca_file: &str) -> String {
    let mut out = format!(
        "# The {domain} lab's ports for its DNS mode: names resolve through the lab's DNS,\n\
         # only the ports are mapped.\n\
         #   autodiscoverd probe --dns-server 127.0.0.1:{dns} --map dns.conf alice@{domain}\n\
         cacert = \"{ca}\"\n",
        domain = spec.domain,
        dns = ports.dns,
        ca = ca_file.replace('\\', "\\\\").replace('"', "\\\""),
    );
    for mapping in spec.connect_map(ports) {
        out.push_str(&format!(
            "connect-to = \"{}:{}::{}\"\n",
            mapping.host, mapping.port, mapping.to_port
        ));
    }
    // The SRV target is reached on its own name.
    out.push_str(&format!(
        "connect-to = \"{}:443::{}\"\n",
        spec.mail_host(),
        ports.onprem_https
    ));
    out
}

/// `LAB.txt`: what was written and how to use it.
pub fn summary(spec: &LabSpec, ports: Ports, dir: &str) -> String {
    let mut users = String::new();
    for user in &USERS {
        users.push_str(&format!(
            "  {:<28} password {:<14} {}\n",
            spec.address(user),
            user.password,
            if user.migrated {
                format!("migrated -> {}", spec.routing_address(user))
            } else {
                "mailbox on-premises".to_string()
            }
        ));
    }
    let breakage = match spec.breakage {
        Some(b) => format!(
            "\nBROKEN ON PURPOSE: --break {}: {} (see the comments in the files).\n",
            b.name(),
            b.describe()
        ),
        None => String::new(),
    };
    let migrated = USERS
        .iter()
        .find(|u| u.migrated)
        .map(|u| (spec.address(u), u.password))
        .unwrap_or_default();
    let onprem = USERS
        .iter()
        .find(|u| !u.migrated)
        .map(|u| (spec.address(u), u.password))
        .unwrap_or_default();
    format!(
        "Hybrid Autodiscover lab for {domain} (tenant {routing}).\n\
         {breakage}\n\
         Users (same identity on-premises and in the tenant):\n{users}\n\
         Listeners (loopback):\n\
         \x20 127.0.0.1:{a}  on-premises HTTPS: {domain} (mismatched certificate), {autodiscover}, {mail}\n\
         \x20 127.0.0.1:{b}  tenant HTTPS: {autodiscover_s}, {outlook}\n\
         \x20 127.0.0.1:{c}  tenant HTTP redirector: {redirect} -> https://{autodiscover_s}\n\
         \x20 127.0.0.1:{d}  on-premises HTTP redirector: {autodiscover} -> https://{autodiscover}\n\
         \x20 127.0.0.1:{e}  DNS (UDP and TCP): the zones in dns/\n\n\
         Run both roles:   autodiscoverd lab up {dir}\n\
         Walk the journey: autodiscoverd probe --map {dir}/curl.conf --no-dns --user {user} --password {password} {user}\n\
         With lab DNS:     autodiscoverd probe --dns-server 127.0.0.1:{e} --map {dir}/dns.conf --password {password} {user}\n\
         Files: ca/ (lab CA), certs/, onprem/ and tenant/ (config + directory), dns/ (zones), hosts, curl.conf, dns.conf\n{hma}",
        domain = spec.domain,
        routing = spec.routing_domain(),
        a = ports.onprem_https,
        b = ports.tenant_https,
        c = ports.tenant_http,
        d = ports.onprem_http,
        e = ports.dns,
        autodiscover = spec.onprem_autodiscover_host(),
        mail = spec.mail_host(),
        autodiscover_s = spec.tenant_autodiscover_host(),
        outlook = spec.outlook_host(),
        redirect = spec.tenant_redirect_host(),
        user = migrated.0,
        password = migrated.1,
        hma = if spec.hma {
            format!(
                "\nHybrid Modern Authentication (--hma): token issuer for tenant {tenant} on https://localhost:{port}\n\
                 \x20 (issuer/: discovery, keys, token endpoint; the on-premises side accepts its tokens).\n\
                 \x20 Token:  curl --cacert {dir}/ca/ca.pem -d grant_type=password -d username={user} -d password={password} -d scope=https://{autodiscover}/.default https://localhost:{port}/{tenant}/oauth2/v2.0/token\n\
                 \x20 Probe:  autodiscoverd probe --map {dir}/curl.conf --no-dns --bearer TOKEN-FILE {user}\n",
                tenant = spec.tenant_id(),
                port = spec.issuer_port(),
                autodiscover = spec.onprem_autodiscover_host(),
                user = onprem.0,
                password = onprem.1,
            )
        } else {
            String::new()
        },
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::directory::{Directory, EmbeddedDirectory, Login, Lookup};

    fn spec() -> LabSpec {
        LabSpec::default().validated().unwrap()
    }

    #[test]
    fn an_hma_lab_gives_its_users_sids_and_the_issuer_their_accounts() {
        let s = LabSpec {
            hma: true,
            ..LabSpec::default()
        }
        .validated()
        .unwrap();
        let d = EmbeddedDirectory::from_toml(Path::new("d.toml"), &onprem_directory(&s)).unwrap();
        let alice = &USERS[0];
        let sid = crate::auth::bearer::Sid::parse(&s.user_sid(alice)).unwrap();
        let found = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(d.account_by_sid(&sid))
            .unwrap()
            .unwrap();
        assert_eq!(found.user_principal_name, s.address(alice));
        let issuer: toml::Table = toml::from_str(&issuer_config(&s)).unwrap();
        assert_eq!(issuer["tenant_id"].as_str(), Some(s.tenant_id().as_str()));
        assert_eq!(issuer["account"].as_array().unwrap().len(), USERS.len());
        assert!(onprem_config(&s, s.ports()).contains("[auth.bearer]"));
        assert!(!onprem_config(&spec(), spec().ports()).contains("[auth.bearer]"));
        assert!(certificates(&s).iter().any(|c| c.stem == CERT_ISSUER));
        assert!(summary(&s, s.ports(), "/lab").contains("--bearer"));
    }

    #[test]
    fn both_configurations_validate_and_play_their_roles() {
        let s = spec();
        let onprem = Config::from_toml(
            Path::new("/lab/onprem/autodiscoverd.toml"),
            &onprem_config(&s, s.ports()),
        )
        .unwrap();
        assert!(!onprem.org.microsoft_online);
        assert_eq!(onprem.server.listen[0].port(), 8443);
        let onprem_redirect = onprem.redirect.as_ref().unwrap();
        assert_eq!(onprem_redirect.listen[0].port(), 8446);
        assert_eq!(onprem_redirect.target, "https://autodiscover.contoso.lab");
        assert_eq!(onprem.v2.tenant_url, "https://autodiscover-s.lab");
        assert!(
            onprem
                .tls
                .sni
                .iter()
                .any(|(h, p)| h == "contoso.lab"
                    && p.cert.ends_with("certs/onprem-root-mismatch.pem"))
        );
        let tenant = Config::from_toml(
            Path::new("/lab/tenant/autodiscoverd.toml"),
            &tenant_config(&s, s.ports()),
        )
        .unwrap();
        assert!(tenant.org.microsoft_online);
        assert_eq!(tenant.org.exchange_org, "ExchangeLabs");
        assert_eq!(
            tenant.services.ews.external,
            "https://outlook.lab/EWS/Exchange.asmx"
        );
        assert_eq!(
            tenant.v2.autodiscover_v1_url,
            "https://autodiscover-s.lab/autodiscover/autodiscover.xml"
        );
        let redirect = tenant.redirect.unwrap();
        assert_eq!(redirect.listen[0].port(), 8445);
        assert_eq!(
            redirect
                .hosts
                .get("autodiscover.contoso.mail.onmicrosoft.lab")
                .map(String::as_str),
            Some("https://autodiscover-s.lab")
        );
    }

    #[tokio::test]
    async fn the_tenant_finds_the_migrated_user_by_routing_address() {
        let s = spec();
        let dir = EmbeddedDirectory::from_toml(Path::new("t.toml"), &tenant_directory(&s)).unwrap();
        let bob = dir
            .find(&Lookup::Address("bob@contoso.mail.onmicrosoft.lab".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bob.primary_smtp, "bob@contoso.lab");
        assert!(bob.recipient_type.is_local_mailbox());
        let id = dir
            .verify_password(
                &Login::UserPrincipalName("bob@contoso.lab".into()),
                "bob-lab-pw",
            )
            .await
            .unwrap();
        assert!(id.is_some());
        let onprem_dn = onprem_legacy_dn(&s, &USERS[1]);
        assert!(dir
            .find(&Lookup::LegacyDn(onprem_dn))
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn on_premises_directory_redirects_the_migrated_user() {
        let s = spec();
        let dir = EmbeddedDirectory::from_toml(Path::new("o.toml"), &onprem_directory(&s)).unwrap();
        let bob = dir
            .find(&Lookup::Address("bob@contoso.lab".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            bob.target_address.as_deref(),
            Some("bob@contoso.mail.onmicrosoft.lab")
        );
        assert!(bob.recipient_type.is_remote_mailbox());
    }

    #[tokio::test]
    async fn the_redirect_loop_breakage_points_the_tenant_back_on_premises() {
        let mut s = spec();
        s.breakage = Some(Breakage::RedirectLoop);
        let dir = EmbeddedDirectory::from_toml(Path::new("t.toml"), &tenant_directory(&s)).unwrap();
        let bob = dir
            .find(&Lookup::Address("bob@contoso.mail.onmicrosoft.lab".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bob.target_address.as_deref(), Some("bob@contoso.lab"));
        assert!(!bob.has_address("bob@contoso.lab"));
    }

    #[test]
    fn the_curl_config_maps_every_lab_host_and_names_the_ca() {
        let s = spec();
        let text = curl_config(&s, s.ports(), "/tmp/lab/ca/ca.pem");
        assert!(text.contains("cacert = \"/tmp/lab/ca/ca.pem\""));
        assert!(text.contains("connect-to = \"autodiscover.contoso.lab:443:127.0.0.1:8443\""));
        assert!(text.contains("connect-to = \"autodiscover-s.lab:443:127.0.0.1:8444\""));
        assert!(!text.contains("\"contoso.mail.onmicrosoft.lab:"));
        let hosts = hosts_file(&s, s.ports());
        assert!(hosts.contains("127.0.0.1 contoso.lab autodiscover.contoso.lab mail.contoso.lab"));
        for line in hosts.lines().filter(|l| !l.starts_with('#')) {
            assert!(line
                .split_whitespace()
                .all(|name| name != "contoso.mail.onmicrosoft.lab"));
        }
    }
}
