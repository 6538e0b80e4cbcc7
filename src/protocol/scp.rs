//! Autodiscover service connection points (SCPs) in Active Directory, as a domain-joined
//! Outlook reads them (MS-OXDISCO §3.1.5.1) and as Exchange writes them: the search filter,
//! the keywords, the order in which a client tries the URLs, the pointers it follows, and
//! what `autodiscoverd scp publish` writes. Pure: the LDAP I/O is in `crate::scp` and the
//! probe.
//!
//! - A *URL SCP* carries [`URL_KEYWORD`]; its `serviceBindingInformation` is an
//!   Autodiscover URL. `Site=<AD site>` keywords rank it: the client's site first, then SCPs
//!   without a site, then other sites.
//! - A *pointer SCP* carries [`POINTER_KEYWORD`]; its `serviceBindingInformation` is
//!   `LDAP://host` of another directory. With `Domain=<domain>` keywords it is scoped to
//!   those domains (followed at once, before any URL); without, it is a fallback for when no
//!   URL of this directory answers.

use std::fmt;

use crate::directory::ldap::escape::dn_value;

/// The keyword of SCPs that publish an Autodiscover URL.
pub const URL_KEYWORD: &str = "77378F46-2C66-4aa9-A6A6-3E7A48B19596";
/// The keyword of SCPs that point to another directory.
pub const POINTER_KEYWORD: &str = "67661D7F-8FC4-4fa7-BFAC-E1D7794C1F68";
/// The `serviceClassName` Exchange writes on its Autodiscover SCPs.
pub const SERVICE_CLASS: &str = "ms-Exchange-AutoDiscover-Service";
/// The keyword that marks the SCPs `autodiscoverd scp publish` wrote (and `remove` may
/// delete). Clients ignore keywords they do not know.
pub const OWNER_KEYWORD: &str = "Publisher=autodiscoverd";
/// The container that holds them, under `CN=Services` of the configuration partition.
pub const CONTAINER_CN: &str = "autodiscoverd";
/// The `description` that marks the container as ours.
pub const CONTAINER_DESCRIPTION: &str =
    "autodiscoverd: Autodiscover service connection points (autodiscoverd scp publish)";
/// The `description` of the SCPs we publish, for administrators browsing the directory.
pub const SCP_DESCRIPTION: &str =
    "Autodiscover URL published by autodiscoverd; change it with `autodiscoverd scp publish`, delete it with `autodiscoverd scp remove`";
/// How many pointer SCPs a walk follows before it gives up.
pub const MAX_POINTER_HOPS: usize = 10;
/// The attributes Outlook asks for.
pub const OUTLOOK_ATTRIBUTES: [&str; 2] = ["serviceBindingInformation", "keywords"];

/// Outlook's search filter, run over the subtree of the configuration naming context
/// (where the objects sit is not checked).
pub fn outlook_filter() -> String {
    format!(
        "(&(objectcategory=serviceConnectionPoint)(|(keywords={POINTER_KEYWORD})(keywords={URL_KEYWORD})))"
    )
}

/// What an SCP is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScpKind {
    Url,
    Pointer,
}

/// One Autodiscover SCP as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scp {
    pub dn: String,
    pub kind: ScpKind,
    /// The `serviceBindingInformation` values, trimmed, empty ones dropped.
    pub bindings: Vec<String>,
    /// `Site=` keywords.
    pub sites: Vec<String>,
    /// `Domain=` keywords (pointers).
    pub domains: Vec<String>,
    /// Carries [`OWNER_KEYWORD`].
    pub owned: bool,
}

/// The value of a `Name=value` keyword when its name is `name` (case-insensitive).
fn keyword_value<'a>(keyword: &'a str, name: &str) -> Option<&'a str> {
    let (key, value) = keyword.split_once('=')?;
    key.trim()
        .eq_ignore_ascii_case(name)
        .then_some(value.trim())
        .filter(|v| !v.is_empty())
}

/// True when `keywords` hold `wanted` (keywords compare case-insensitively in AD).
pub fn has_keyword(keywords: &[String], wanted: &str) -> bool {
    keywords
        .iter()
        .any(|k| k.trim().eq_ignore_ascii_case(wanted))
}

impl Scp {
    /// Reads an entry found with [`outlook_filter`]; `None` when it carries neither GUID.
    /// An entry with both counts as a pointer (a client follows pointers first).
    pub fn from_entry(dn: &str, bindings: &[String], keywords: &[String]) -> Option<Scp> {
        let kind = if has_keyword(keywords, POINTER_KEYWORD) {
            ScpKind::Pointer
        } else if has_keyword(keywords, URL_KEYWORD) {
            ScpKind::Url
        } else {
            return None;
        };
        let values = |name: &str| -> Vec<String> {
            keywords
                .iter()
                .filter_map(|k| keyword_value(k, name))
                .map(str::to_string)
                .collect()
        };
        Some(Scp {
            dn: dn.to_string(),
            kind,
            bindings: bindings
                .iter()
                .map(|b| b.trim().to_string())
                .filter(|b| !b.is_empty())
                .collect(),
            sites: values("Site"),
            domains: values("Domain"),
            owned: has_keyword(keywords, OWNER_KEYWORD),
        })
    }

    /// The URL a client tries (the first binding), if any.
    pub fn url(&self) -> Option<&str> {
        self.bindings.first().map(String::as_str)
    }
}

/// How a URL SCP ranks for a client in a site (MS-OXDISCO §3.1.5.1): lower is tried first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SiteRank {
    /// Tagged with the client's site.
    ClientSite,
    /// No `Site=` keyword: for every site.
    NoSite,
    /// Tagged with other sites only.
    OtherSite,
}

impl fmt::Display for SiteRank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SiteRank::ClientSite => "the client's site",
            SiteRank::NoSite => "no site",
            SiteRank::OtherSite => "other sites",
        })
    }
}

/// The rank of `scp` for a client in `client_site` (none: no site matches).
pub fn site_rank(scp: &Scp, client_site: Option<&str>) -> SiteRank {
    if scp.sites.is_empty() {
        return SiteRank::NoSite;
    }
    match client_site {
        Some(site) if scp.sites.iter().any(|s| s.eq_ignore_ascii_case(site)) => {
            SiteRank::ClientSite
        }
        _ => SiteRank::OtherSite,
    }
}

/// The URL SCPs in the order a client in `client_site` tries them: by rank, the
/// directory's order within a rank.
pub fn order_urls(scps: &[Scp], client_site: Option<&str>) -> Vec<(SiteRank, Scp)> {
    let mut urls: Vec<(SiteRank, Scp)> = scps
        .iter()
        .filter(|s| s.kind == ScpKind::Url)
        .map(|s| (site_rank(s, client_site), s.clone()))
        .collect();
    urls.sort_by_key(|(rank, _)| *rank);
    urls
}

/// Where a pointer SCP leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    pub dn: String,
    /// Lower-case host of the `LDAP://host[:port]` binding.
    pub host: String,
    pub port: Option<u16>,
    /// Scoped to the user's domain (`Domain=`), rather than a fallback.
    pub scoped: bool,
}

/// Reads `LDAP://host[:port][/dn]` (scheme case-insensitive; `GC://` and `LDAPS://` too).
pub fn parse_ldap_target(binding: &str) -> Option<(String, Option<u16>)> {
    let (scheme, rest) = binding.trim().split_once("://")?;
    if !["ldap", "ldaps", "gc"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
    {
        return None;
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None if authority.matches(':').count() == 1 => {
            let (host, port) = authority.split_once(':')?;
            (host, Some(port))
        }
        None => (authority, None),
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => None,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some((host, port))
}

/// What a client does with the SCPs one directory returned for a user of `user_domain`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerPlan {
    /// A pointer scoped to the user's domain: follow it at once, ignore the rest.
    pub follow: Option<Pointer>,
    /// Otherwise the URL SCPs in the order they are tried.
    pub urls: Vec<(SiteRank, Scp)>,
    /// Unscoped pointers: where to look when no URL here answers.
    pub fallbacks: Vec<Pointer>,
    /// SCPs a client passes over, with the reason (stale or unusable entries).
    pub skipped: Vec<(String, String)>,
}

/// The client's decision over one directory's SCPs (MS-OXDISCO §3.1.5.1): a pointer for the
/// user's domain wins; otherwise the URLs by site, with unscoped pointers kept as fallbacks.
/// Pointers scoped to other domains are passed over.
pub fn plan_server(scps: &[Scp], user_domain: &str, client_site: Option<&str>) -> ServerPlan {
    let mut plan = ServerPlan::default();
    for scp in scps.iter().filter(|s| s.kind == ScpKind::Pointer) {
        let Some((host, port)) = scp.bindings.first().and_then(|b| parse_ldap_target(b)) else {
            plan.skipped.push((
                scp.dn.clone(),
                "pointer SCP without an LDAP://host serviceBindingInformation".into(),
            ));
            continue;
        };
        let scoped = scp
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(user_domain));
        let pointer = Pointer {
            dn: scp.dn.clone(),
            host,
            port,
            scoped,
        };
        if scoped {
            if plan.follow.is_none() {
                plan.follow = Some(pointer);
            }
        } else if scp.domains.is_empty() {
            plan.fallbacks.push(pointer);
        } else {
            plan.skipped.push((
                scp.dn.clone(),
                format!(
                    "pointer SCP for other domains ({}), not {user_domain}",
                    scp.domains.join(", ")
                ),
            ));
        }
    }
    for scp in scps.iter().filter(|s| s.kind == ScpKind::Url) {
        if scp.url().is_none() {
            plan.skipped.push((
                scp.dn.clone(),
                "stale: URL SCP without a serviceBindingInformation".into(),
            ));
        }
    }
    plan.urls = order_urls(scps, client_site)
        .into_iter()
        .filter(|(_, s)| s.url().is_some())
        .collect();
    plan
}

/// Why a pointer is not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkStop {
    /// The directory was asked already (pointers that point back would loop).
    Visited(String),
    /// [`MAX_POINTER_HOPS`] pointers were followed already.
    HopLimit,
}

impl fmt::Display for WalkStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalkStop::Visited(host) => write!(f, "{host} was asked already (a pointer loop)"),
            WalkStop::HopLimit => write!(f, "{MAX_POINTER_HOPS} pointers followed already"),
        }
    }
}

/// The directories a walk asked, and the hop limit.
#[derive(Debug, Clone)]
pub struct PointerWalk {
    visited: Vec<String>,
    hops: usize,
}

impl PointerWalk {
    /// A walk that starts at `host`.
    pub fn new(host: &str) -> PointerWalk {
        PointerWalk {
            visited: vec![host.to_ascii_lowercase()],
            hops: 0,
        }
    }

    /// Takes the hop to `host`, or says why not.
    pub fn follow(&mut self, host: &str) -> Result<(), WalkStop> {
        let host = host.to_ascii_lowercase();
        if self.visited.contains(&host) {
            return Err(WalkStop::Visited(host));
        }
        if self.hops >= MAX_POINTER_HOPS {
            return Err(WalkStop::HopLimit);
        }
        self.hops += 1;
        self.visited.push(host);
        Ok(())
    }

    /// Pointers followed so far.
    pub fn hops(&self) -> usize {
        self.hops
    }
}

/// Something `scp show` flags on an SCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A URL SCP without a URL (what Exchange leaves when the internal URI is cleared).
    NoUrl,
    /// Its URL does not answer (why).
    Unreachable(String),
    /// Someone else's URL SCP that a client in the site tries before ours.
    OutranksOurs,
}

/// One SCP in the order a client tries them, with what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    pub scp: Scp,
    /// For URL SCPs: the rank for the client's site.
    pub rank: Option<SiteRank>,
    pub findings: Vec<Finding>,
}

/// Every SCP of the forest in the order a client in `client_site` meets them (pointers,
/// then the URL SCPs by rank), flagged: no URL, a URL that does not answer (`dead(url)`
/// says why), or tried before ours.
pub fn review(
    scps: &[Scp],
    client_site: Option<&str>,
    dead: &dyn Fn(&str) -> Option<String>,
) -> Vec<Reviewed> {
    let mut out: Vec<Reviewed> = scps
        .iter()
        .filter(|s| s.kind == ScpKind::Pointer)
        .map(|s| Reviewed {
            scp: s.clone(),
            rank: None,
            findings: Vec::new(),
        })
        .collect();
    let mut ours_seen = false;
    let any_ours = scps.iter().any(|s| s.owned && s.kind == ScpKind::Url);
    for (rank, scp) in order_urls(scps, client_site) {
        let mut findings = Vec::new();
        match scp.url() {
            None => findings.push(Finding::NoUrl),
            Some(url) => {
                if let Some(why) = dead(url) {
                    findings.push(Finding::Unreachable(why));
                }
            }
        }
        ours_seen |= scp.owned;
        if any_ours && !ours_seen && scp.url().is_some() {
            findings.push(Finding::OutranksOurs);
        }
        out.push(Reviewed {
            scp,
            rank: Some(rank),
            findings,
        });
    }
    out
}

/// The commands that fix a finding on someone else's SCP, given our URL.
pub fn fixes(reviewed: &Reviewed, our_url: Option<&str>, client_site: Option<&str>) -> Vec<String> {
    let dn = &reviewed.scp.dn;
    let mut out = Vec::new();
    let stale = reviewed
        .findings
        .iter()
        .any(|f| matches!(f, Finding::NoUrl | Finding::Unreachable(_)));
    if reviewed.scp.owned {
        if stale {
            out.push("ours: check that autodiscoverd answers at this URL, or publish the right one with `autodiscoverd scp publish --url URL`".to_string());
        }
        return out;
    }
    if stale || reviewed.findings.contains(&Finding::OutranksOurs) {
        out.push(format!(
            "if its Exchange server is gone, delete the object: Windows: Remove-ADObject -Identity \"{dn}\"; Samba: ldbdel -H ldaps://<dc> -U '<DOMAIN>\\Administrator' '{dn}'"
        ));
        if let Some(url) = our_url {
            out.push(format!(
                "if the Exchange server still exists, point it at autodiscoverd: Set-ClientAccessService -Identity <server> -AutoDiscoverServiceInternalUri {url}"
            ));
        }
    }
    if !stale && reviewed.findings.contains(&Finding::OutranksOurs) {
        if let Some(site) = client_site {
            out.push(format!(
                "or publish ours for the site too: autodiscoverd scp publish --site {site}"
            ));
        }
    }
    out
}

/// What `scp publish` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The SCP's CN.
    pub name: String,
    pub url: String,
    pub sites: Vec<String>,
}

/// `https://autodiscover.<domain>/Autodiscover/Autodiscover.xml`, the URL Exchange publishes
/// for a namespace.
pub fn default_url(domain: &str) -> String {
    format!("https://autodiscover.{domain}/Autodiscover/Autodiscover.xml")
}

/// Checks a URL to publish: absolute `https://host[:port]/path`; returns its host.
pub fn url_host(url: &str) -> Result<String, String> {
    let rest = url
        .get(..8)
        .filter(|s| s.eq_ignore_ascii_case("https://"))
        .and_then(|_| url.get(8..))
        .ok_or_else(|| format!("`{url}` is not an https:// URL (Outlook only uses HTTPS)"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() || authority.contains('@') || url.chars().any(char::is_whitespace) {
        return Err(format!("`{url}` has no usable host"));
    }
    Ok(host.to_ascii_lowercase())
}

/// The port of an `https://` URL (443 unless it names one).
pub fn url_port(url: &str) -> u16 {
    let authority = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default())
        .unwrap_or_default();
    let after_host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(_, p)| p).unwrap_or_default(),
        None => authority.split_once(':').map(|(_, p)| p).map_or("", |p| p),
    };
    after_host
        .trim_start_matches(':')
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .unwrap_or(443)
}

/// `CN=autodiscoverd,CN=Services,<configuration NC>`.
pub fn container_dn(config_nc: &str) -> String {
    format!("CN={CONTAINER_CN},CN=Services,{config_nc}")
}

/// The DN of the SCP called `name`.
pub fn scp_dn(name: &str, config_nc: &str) -> String {
    format!("CN={},{}", dn_value(name), container_dn(config_nc))
}

/// The attributes of the SCP `p` describes, as Exchange writes them plus our marker.
pub fn wanted_attributes(p: &Publication) -> Result<Vec<(&'static str, Vec<String>)>, String> {
    let host = url_host(&p.url)?;
    let mut keywords = vec![URL_KEYWORD.to_string(), OWNER_KEYWORD.to_string()];
    for site in &p.sites {
        let site = site.trim();
        if site.is_empty() || site.contains('=') {
            return Err(format!("`{site}` is not an AD site name"));
        }
        let keyword = format!("Site={site}");
        if !has_keyword(&keywords, &keyword) {
            keywords.push(keyword);
        }
    }
    Ok(vec![
        ("objectClass", vec!["serviceConnectionPoint".into()]),
        ("serviceClassName", vec![SERVICE_CLASS.into()]),
        ("serviceDNSName", vec![host]),
        ("serviceBindingInformation", vec![p.url.clone()]),
        ("keywords", keywords),
        ("description", vec![SCP_DESCRIPTION.into()]),
    ])
}

/// The container's attributes.
pub fn container_attributes() -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("objectClass", vec!["container".into()]),
        ("description", vec![CONTAINER_DESCRIPTION.into()]),
    ]
}

/// One change to an existing entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add(&'static str, Vec<String>),
    Delete(&'static str, Vec<String>),
    Replace(&'static str, Vec<String>),
}

/// The values of `attribute` in `existing` (attribute names compare case-insensitively).
pub fn values_of<'a>(existing: &'a [(String, Vec<String>)], attribute: &str) -> &'a [String] {
    existing
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .map(|(_, v)| v.as_slice())
        .unwrap_or_default()
}

/// What turns `existing` into `wanted`; empty when they agree, so that publishing twice
/// writes nothing. `keywords` changes value by value (a new URL or site replaces only that
/// keyword); single values are replaced. `objectClass` is never changed.
pub fn changes(
    wanted: &[(&'static str, Vec<String>)],
    existing: &[(String, Vec<String>)],
) -> Vec<Change> {
    let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
    let mut out = Vec::new();
    for (attribute, want) in wanted {
        if attribute.eq_ignore_ascii_case("objectClass") {
            continue;
        }
        let have = values_of(existing, attribute);
        if *attribute == "keywords" {
            let gone: Vec<String> = have
                .iter()
                .filter(|h| !want.iter().any(|w| same(h, w)))
                .cloned()
                .collect();
            let new: Vec<String> = want
                .iter()
                .filter(|w| !have.iter().any(|h| same(h, w)))
                .cloned()
                .collect();
            if !gone.is_empty() {
                out.push(Change::Delete(attribute, gone));
            }
            if !new.is_empty() {
                out.push(Change::Add(attribute, new));
            }
        } else if have != want.as_slice() {
            out.push(Change::Replace(attribute, want.clone()));
        }
    }
    out
}

/// What is at the SCP's DN before publishing or removing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    Absent,
    /// Ours: its attributes.
    Ours(Vec<(String, Vec<String>)>),
    /// Someone else's object: never changed or deleted.
    Foreign,
}

/// Classifies the entry found at the SCP's DN (`None`: nothing there).
pub fn classify(found: Option<Vec<(String, Vec<String>)>>) -> Existing {
    match found {
        None => Existing::Absent,
        Some(attrs) if has_keyword(values_of(&attrs, "keywords"), OWNER_KEYWORD) => {
            Existing::Ours(attrs)
        }
        Some(_) => Existing::Foreign,
    }
}

/// True when the container's `description` marks it as ours.
pub fn container_is_ours(attrs: &[(String, Vec<String>)]) -> bool {
    values_of(attrs, "description")
        .iter()
        .any(|d| d == CONTAINER_DESCRIPTION)
}

/// `S-1-5-21-…` from a binary `objectSid` (MS-DTYP §2.4.2.2).
pub fn sid_string(bytes: &[u8]) -> Option<String> {
    crate::auth::bearer::Sid::from_bytes(bytes).map(|sid| sid.to_string())
}

/// The rights a delegated account needs on our container (and everything in it): list,
/// read, write, create and delete children, delete, read the security descriptor.
pub const DELEGATED_RIGHTS_SDDL: &str = "RPWPCCDCLCLOSDDTRC";

/// The commands that delegate our container to an account, for an administrator to run
/// (Samba's `samba-tool dsacl set` with the account's SID; Windows' `dsacls` with its
/// `DOMAIN\name`), or the step before when the container does not exist yet.
pub fn delegation_advice(
    config_nc: &str,
    container_exists: bool,
    sid: Option<&str>,
    account: &str,
) -> String {
    let container = container_dn(config_nc);
    let sid = sid.unwrap_or("<the account's SID>");
    let grant = format!(
        "  Samba:   samba-tool dsacl set --objectdn='{container}' --sddl='(A;CI;{DELEGATED_RIGHTS_SDDL};;;{sid})'\n  Windows: dsacls \"{container}\" /I:T /G \"{account}:GA\""
    );
    let create = if container_exists {
        String::new()
    } else {
        format!(
            "  first create the container {container} by publishing once as an Enterprise Admin\n  (`autodiscoverd scp publish --bind-dn <admin DN> --password-file <file>`), then\n"
        )
    };
    format!(
        "{account} may not write under CN=Services,CN=Configuration (creating objects there needs an Enterprise Admin or a delegated right). To delegate to it:\n{create}{grant}"
    )
}

#[cfg(test)]
mod tests;
