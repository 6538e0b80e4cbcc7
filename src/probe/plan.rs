//! The client's plan, pure: which URLs to try in which order ([MS-OXDISCO] §3.1.5), which
//! redirects to accept and when to give up (after 10 hops, like the EWS Managed API and
//! exchangelib). No sockets, no DNS, no clock: the I/O side
//! ([`super`]) asks this module what to do next and reports back.

use serde::Serialize;

/// Which Autodiscover flavour the probe speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// POST `/autodiscover/autodiscover.xml` (MS-OXDSCLI).
    Pox,
    /// The same POST in the mobilesync schema, as ActiveSync phones send it.
    MobileSync,
    /// POST `/autodiscover/autodiscover.svc` GetUserSettings (MS-OXWSADISC).
    Soap,
    /// Anonymous GET `/autodiscover/autodiscover.json/v1.0/<email>`.
    V2,
    /// Anonymous GET of Mozilla's `/mail/config-v1.1.xml?emailaddress=<email>`, as
    /// Thunderbird asks `autoconfig.<domain>` and then the domain's `/.well-known/`.
    Autoconfig,
    /// Anonymous GET `/mobileconfig?emailaddress=<email>` (an Apple profile, maybe signed).
    Mobileconfig,
}

impl Protocol {
    /// Parses `pox`, `mobilesync`, `soap` or `v2` (any case).
    pub fn parse(text: &str) -> Option<Protocol> {
        match text.trim().to_ascii_lowercase().as_str() {
            "pox" => Some(Protocol::Pox),
            "mobilesync" => Some(Protocol::MobileSync),
            "soap" => Some(Protocol::Soap),
            "v2" | "json" => Some(Protocol::V2),
            "autoconfig" | "thunderbird" => Some(Protocol::Autoconfig),
            "mobileconfig" | "apple" => Some(Protocol::Mobileconfig),
            _ => None,
        }
    }

    /// Upper-case name for reports.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Pox => "POX",
            Protocol::MobileSync => "POX, mobilesync schema",
            Protocol::Soap => "SOAP",
            Protocol::V2 => "AutodiscoverV2",
            Protocol::Autoconfig => "autoconfig",
            Protocol::Mobileconfig => "mobileconfig",
        }
    }

    /// The path probed on port 80 by the HTTP-redirect method: SOAP clients keep `.svc`
    /// (MS-OXDISCO §3.1.5.4); V2 clients use the POX path and keep only the host, as
    /// GetFederationInformation does (MS-OXDISCO §3.1.5).
    pub fn redirect_probe_path(self) -> &'static str {
        match self {
            Protocol::Soap => "/autodiscover/autodiscover.svc",
            Protocol::Pox | Protocol::MobileSync | Protocol::V2 => "/autodiscover/autodiscover.xml",
            Protocol::Autoconfig => AUTOCONFIG_PATH,
            Protocol::Mobileconfig => "/mobileconfig",
        }
    }

    /// Whether a request is a POST with credentials (POX, mobilesync, SOAP) or an anonymous GET.
    pub fn authenticated(self) -> bool {
        matches!(self, Protocol::Pox | Protocol::MobileSync | Protocol::Soap)
    }
}

/// How a candidate URL was found (MS-OXDISCO §3.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `https://<domain>/autodiscover/…`
    RootDomain,
    /// `https://autodiscover.<domain>/autodiscover/…`
    AutodiscoverPrefix,
    /// `GET http://autodiscover.<domain>/autodiscover/autodiscover.xml` → 302.
    HttpRedirect,
    /// `_autodiscover._tcp.<domain>` SRV → `https://<target>:<port>/…`
    Srv,
    /// A URL learned from a redirect (302 or redirectUrl) or from the HTTP-redirect method.
    Redirected,
    /// A URL from an Active Directory service connection point (`--scp`).
    Scp,
    /// After settings were found: a service URL they name (EWS, OAB, MAPI/HTTP,
    /// ActiveSync), checked without credentials (`--check-urls`).
    ServiceUrl,
}

impl Method {
    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            Method::RootDomain => "root domain",
            Method::AutodiscoverPrefix => "autodiscover. prefix",
            Method::HttpRedirect => "HTTP redirect method (port 80)",
            Method::Srv => "SRV record",
            Method::Redirected => "followed redirect",
            Method::ServiceUrl => "service URL check",
            Method::Scp => "SCP (Active Directory)",
        }
    }
}

/// One entry of the candidate list for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub method: Method,
    /// Host to try (for [`Method::Srv`] the SRV owner name `_autodiscover._tcp.<domain>`).
    pub host: String,
    pub port: u16,
}

/// The domain part of an address, lower-case; `None` for something that is not
/// `local@domain`.
pub fn domain_of(email: &str) -> Option<String> {
    let (local, domain) = email.trim().rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if local.is_empty() || !crate::config::is_host_name(&domain) {
        return None;
    }
    Some(domain)
}

/// The SRV owner name for a domain (MS-OXDISCO §3.1.5.3).
pub fn srv_name(domain: &str) -> String {
    format!("_autodiscover._tcp.{domain}")
}

/// The candidate list for `domain`, in the order of MS-OXDISCO §3.1.5.
pub fn candidates(domain: &str) -> Vec<Candidate> {
    vec![
        Candidate {
            method: Method::RootDomain,
            host: domain.to_string(),
            port: 443,
        },
        Candidate {
            method: Method::AutodiscoverPrefix,
            host: format!("autodiscover.{domain}"),
            port: 443,
        },
        Candidate {
            method: Method::HttpRedirect,
            host: format!("autodiscover.{domain}"),
            port: 80,
        },
        Candidate {
            method: Method::Srv,
            host: srv_name(domain),
            port: 443,
        },
    ]
}

/// Percent-encodes everything except unreserved characters (RFC 3986).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An absolute https URL, split for connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpsUrl {
    /// The URL as text (port omitted when 443).
    pub fn text(&self) -> String {
        if self.port == 443 {
            format!("https://{}{}", self.host, self.path)
        } else {
            format!("https://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// Mozilla autoconfig on an `autoconfig.` host.
const AUTOCONFIG_PATH: &str = "/mail/config-v1.1.xml";

/// The candidates of `protocol` for `domain`: Autodiscover's (MS-OXDISCO §3.1.5);
/// autoconfig's as Thunderbird orders them (`autoconfig.<domain>`, then the domain's
/// `/.well-known/autoconfig/`); a profile from `autodiscover.<domain>`, then the domain.
pub fn candidates_for(domain: &str, protocol: Protocol) -> Vec<Candidate> {
    let https = |method, host: String| Candidate {
        method,
        host,
        port: 443,
    };
    match protocol {
        Protocol::Pox | Protocol::MobileSync | Protocol::Soap | Protocol::V2 => candidates(domain),
        Protocol::Autoconfig => vec![
            https(Method::AutodiscoverPrefix, format!("autoconfig.{domain}")),
            https(Method::RootDomain, domain.to_string()),
        ],
        Protocol::Mobileconfig => vec![
            https(Method::AutodiscoverPrefix, format!("autodiscover.{domain}")),
            https(Method::RootDomain, domain.to_string()),
        ],
    }
}

/// The Autodiscover URL of `protocol` on `host:port` for `email`.
pub fn endpoint(host: &str, port: u16, protocol: Protocol, email: &str) -> HttpsUrl {
    let query = || format!("?emailaddress={}", percent_encode(email.trim()));
    let path = match protocol {
        Protocol::Pox | Protocol::MobileSync => "/autodiscover/autodiscover.xml".to_string(),
        Protocol::Soap => "/autodiscover/autodiscover.svc".to_string(),
        Protocol::V2 => v2_path(email),
        // Thunderbird: the plain path on autoconfig.<domain>, /.well-known/ elsewhere.
        Protocol::Autoconfig if host.to_ascii_lowercase().starts_with("autoconfig.") => {
            format!("{AUTOCONFIG_PATH}{}", query())
        }
        Protocol::Autoconfig => format!("/.well-known/autoconfig{AUTOCONFIG_PATH}{}", query()),
        Protocol::Mobileconfig => format!("/mobileconfig{}", query()),
    };
    HttpsUrl {
        host: host.to_ascii_lowercase(),
        port,
        path,
    }
}

/// The AutodiscoverV2 path asking for the EWS URL of `email`.
pub fn v2_path(email: &str) -> String {
    format!(
        "/autodiscover/autodiscover.json/v1.0/{}?Protocol=Ews",
        percent_encode(email.trim())
    )
}

/// Why a redirect target was refused (MS-OXDISCO §3.1.5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectProblem {
    /// Not an absolute URL.
    Unparseable,
    /// Credentials only go over https.
    NotHttps,
    /// The path is not an Autodiscover path of the protocol in use.
    WrongPath,
}

impl RedirectProblem {
    /// Explanation for the report.
    pub fn explain(&self) -> &'static str {
        match self {
            RedirectProblem::Unparseable => "the target is not an absolute URL",
            RedirectProblem::NotHttps => {
                "the target is not https; clients never send credentials over plain HTTP"
            }
            RedirectProblem::WrongPath => {
                "the target path is not an Autodiscover endpoint (clients such as the EWS Managed API require /autodiscover/…/autodiscover.xml)"
            }
        }
    }
}

fn path_matches(path: &str, protocol: Protocol) -> bool {
    let path = path
        .split('?')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match protocol {
        Protocol::Autoconfig => return path.ends_with(AUTOCONFIG_PATH),
        Protocol::Mobileconfig => return path == "/mobileconfig",
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/autodiscover/") else {
        return false;
    };
    match protocol {
        // `/autodiscover/(<seg>/)*autodiscover.xml`.
        Protocol::Pox | Protocol::MobileSync => {
            rest == "autodiscover.xml" || rest.ends_with("/autodiscover.xml")
        }
        Protocol::Soap => rest == "autodiscover.svc" || rest.ends_with("/autodiscover.svc"),
        Protocol::V2 => rest.starts_with("autodiscover.json"),
        Protocol::Autoconfig | Protocol::Mobileconfig => false,
    }
}

/// Checks a redirect target (a `Location` header or a `RedirectUrl` element) the way
/// strict clients do: absolute, https, an Autodiscover path. `path_protocol` is the
/// protocol whose path must match (the port-80 redirect always points at a POX or SOAP
/// path, even for V2).
pub fn check_redirect(
    location: &str,
    path_protocol: Protocol,
) -> Result<HttpsUrl, RedirectProblem> {
    let url = parse_https(location)?;
    if !path_matches(&url.path, path_protocol) {
        return Err(RedirectProblem::WrongPath);
    }
    Ok(url)
}

/// An absolute https URL, split for connecting.
pub fn parse_https(location: &str) -> Result<HttpsUrl, RedirectProblem> {
    let uri: http::Uri = location
        .trim()
        .parse()
        .map_err(|_| RedirectProblem::Unparseable)?;
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return Err(RedirectProblem::Unparseable);
    };
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(RedirectProblem::NotHttps);
    }
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    Ok(HttpsUrl {
        host: host.trim_end_matches('.').to_ascii_lowercase(),
        port: uri.port_u16().unwrap_or(443),
        path,
    })
}

/// The service URLs a client goes on to use, from the settings: (service, URL).
pub fn service_urls(settings: &super::answer::Settings) -> Vec<(&'static str, String)> {
    let user = |name: &str| settings.user_settings.get(name).cloned();
    let field = |name: &str| {
        settings
            .protocols
            .iter()
            .find_map(|p| p.get(name).map(str::to_string))
    };
    let v2 = settings
        .v2
        .as_ref()
        .map(|v| (v.protocol.as_str(), v.url.clone()));
    let candidates = [
        (
            "EWS",
            settings
                .ews_url
                .clone()
                .or_else(|| user("ExternalEwsUrl"))
                .or_else(|| {
                    v2.clone()
                        .filter(|(p, _)| p.eq_ignore_ascii_case("ews"))
                        .map(|(_, u)| u)
                }),
        ),
        ("OAB", field("OABUrl").or_else(|| user("ExternalOABUrl"))),
        ("MAPI/HTTP", settings.mapi_mailstore_url.clone()),
        (
            "ActiveSync",
            user("ExternalMobileUrl")
                .or_else(|| user("MobileSyncUrl"))
                .or_else(|| {
                    v2.filter(|(p, _)| p.eq_ignore_ascii_case("activesync"))
                        .map(|(_, u)| u)
                }),
        ),
    ];
    candidates
        .into_iter()
        .filter_map(|(service, url)| url.map(|u| (service, u)))
        .collect()
}

/// Judges a service URL's answer to an unauthenticated GET: a 200, or a 401 that offers
/// a scheme, means the service is there.
pub fn service_answer(status: u16, offered: &[String]) -> (bool, String) {
    match status {
        200..=299 => (true, format!("HTTP {status}: the service answers")),
        401 if !offered.is_empty() => (
            true,
            format!(
                "HTTP 401: the service asks for credentials ({})",
                offered.join(", ")
            ),
        ),
        401 => (false, "HTTP 401 without an authentication scheme".into()),
        300..=399 => (
            false,
            format!("HTTP {status}: redirected elsewhere instead of answering"),
        ),
        404 => (false, "HTTP 404: nothing is published at this URL".into()),
        _ => (false, format!("HTTP {status}")),
    }
}

/// One SRV answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SrvTarget {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// Orders SRV answers as RFC 2782 says (lowest priority first, then highest weight),
/// dropping the "service not available" target `.`.
pub fn order_srv(mut records: Vec<SrvTarget>) -> Vec<SrvTarget> {
    records.retain(|r| !r.target.trim_end_matches('.').is_empty());
    for r in &mut records {
        r.target = r.target.trim_end_matches('.').to_ascii_lowercase();
    }
    records.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    records
}

/// URL redirects a client follows before giving up (EWS Managed API, exchangelib: 10).
pub const MAX_URL_HOPS: usize = 10;
/// Address redirects before giving up (besides loop detection).
pub const MAX_ADDRESS_REDIRECTS: usize = 10;

/// What to do with a `redirectAddr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressStep {
    /// Restart discovery for the new address (new candidate list, same credentials).
    Restart,
    /// The address was already tried: a loop between the two sides.
    Loop { first_seen: usize },
    /// Too many address redirects.
    TooMany,
    /// The target is not an SMTP address.
    Invalid,
}

/// What to do with a URL redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlStep {
    Follow,
    /// This URL was already visited for the current address.
    Loop,
    TooMany,
}

/// The journey's memory: addresses seen, URLs visited, hops spent.
#[derive(Debug, Clone)]
pub struct Journey {
    addresses: Vec<String>,
    urls: Vec<String>,
    url_hops: usize,
}

impl Journey {
    /// Starts with the address the user typed.
    pub fn new(email: &str) -> Journey {
        Journey {
            addresses: vec![email.trim().to_string()],
            urls: Vec::new(),
            url_hops: 0,
        }
    }

    /// The address being discovered now.
    pub fn current(&self) -> &str {
        self.addresses
            .last()
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Every address tried so far, in order.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// URL redirects followed so far.
    pub fn url_hops(&self) -> usize {
        self.url_hops
    }

    /// Address redirects followed so far.
    pub fn address_redirects(&self) -> usize {
        self.addresses.len().saturating_sub(1)
    }

    /// Decides about `redirectAddr target`; on [`AddressStep::Restart`] the target
    /// becomes the current address.
    pub fn redirect_address(&mut self, target: &str) -> AddressStep {
        let target = target.trim();
        if domain_of(target).is_none() {
            return AddressStep::Invalid;
        }
        if let Some(i) = self
            .addresses
            .iter()
            .position(|a| a.eq_ignore_ascii_case(target))
        {
            return AddressStep::Loop { first_seen: i };
        }
        if self.address_redirects() >= MAX_ADDRESS_REDIRECTS {
            return AddressStep::TooMany;
        }
        self.addresses.push(target.to_string());
        self.urls.clear();
        AddressStep::Restart
    }

    /// Records a visit to `url` (the first request of a candidate or a redirect target).
    /// Returns whether it was new.
    pub fn visit(&mut self, url: &str) -> bool {
        if self.urls.iter().any(|u| u.eq_ignore_ascii_case(url)) {
            return false;
        }
        self.urls.push(url.to_string());
        true
    }

    /// Decides about a URL redirect to `url`.
    pub fn redirect_url(&mut self, url: &str) -> UrlStep {
        if self.urls.iter().any(|u| u.eq_ignore_ascii_case(url)) {
            return UrlStep::Loop;
        }
        if self.url_hops >= MAX_URL_HOPS {
            return UrlStep::TooMany;
        }
        self.url_hops += 1;
        UrlStep::Follow
    }
}

/// A certificate's validity compared with now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Valid { days_left: i64 },
    NotYetValid { days_until: i64 },
    Expired { days_ago: i64 },
}

/// Compares `now` with a certificate's dates (all Unix seconds).
pub fn validity(now: i64, not_before: i64, not_after: i64) -> Validity {
    const DAY: i64 = 86_400;
    if now < not_before {
        Validity::NotYetValid {
            days_until: (not_before - now) / DAY,
        }
    } else if now > not_after {
        Validity::Expired {
            days_ago: (now - not_after) / DAY,
        }
    } else {
        Validity::Valid {
            days_left: (not_after - now) / DAY,
        }
    }
}

/// The moment to validate a chain at: now when the leaf is within its dates, otherwise
/// the nearest moment inside them, so that chain and dates are reported separately.
pub fn chain_check_time(now: i64, not_before: i64, not_after: i64) -> i64 {
    now.clamp(not_before, not_after.max(not_before))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_the_documented_order() {
        let c = candidates("contoso.com");
        let got: Vec<(Method, &str, u16)> = c
            .iter()
            .map(|c| (c.method, c.host.as_str(), c.port))
            .collect();
        assert_eq!(
            got,
            vec![
                (Method::RootDomain, "contoso.com", 443),
                (Method::AutodiscoverPrefix, "autodiscover.contoso.com", 443),
                (Method::HttpRedirect, "autodiscover.contoso.com", 80),
                (Method::Srv, "_autodiscover._tcp.contoso.com", 443),
            ]
        );
    }

    #[test]
    fn domains_are_taken_from_the_last_at_sign() {
        assert_eq!(
            domain_of("Alice@Contoso.COM").as_deref(),
            Some("contoso.com")
        );
        assert_eq!(
            domain_of("\"a@b\"@contoso.com").as_deref(),
            Some("contoso.com")
        );
        assert_eq!(domain_of("alice"), None);
        assert_eq!(domain_of("@contoso.com"), None);
        assert_eq!(domain_of("alice@bad domain"), None);
    }

    #[test]
    fn endpoints_per_protocol() {
        assert_eq!(
            endpoint("Mail.Contoso.com", 443, Protocol::Pox, "a@b.c").text(),
            "https://mail.contoso.com/autodiscover/autodiscover.xml"
        );
        assert_eq!(
            endpoint("h", 8443, Protocol::Soap, "a@b.c").text(),
            "https://h:8443/autodiscover/autodiscover.svc"
        );
        assert_eq!(
            endpoint("h", 443, Protocol::V2, "a+b@c.d").path,
            "/autodiscover/autodiscover.json/v1.0/a%2Bb%40c.d?Protocol=Ews"
        );
    }

    #[test]
    fn redirect_targets_must_be_https_autodiscover_urls() {
        let ok = check_redirect(
            "https://autodiscover-s.outlook.com/Autodiscover/AutoDiscover.xml",
            Protocol::Pox,
        )
        .unwrap();
        assert_eq!(ok.host, "autodiscover-s.outlook.com");
        assert_eq!(ok.port, 443);
        assert_eq!(ok.path, "/Autodiscover/AutoDiscover.xml");
        assert_eq!(
            check_redirect("http://x.com/autodiscover/autodiscover.xml", Protocol::Pox),
            Err(RedirectProblem::NotHttps)
        );
        assert_eq!(
            check_redirect("https://x.com/owa/", Protocol::Pox),
            Err(RedirectProblem::WrongPath)
        );
        assert_eq!(
            check_redirect("/autodiscover/autodiscover.xml", Protocol::Pox),
            Err(RedirectProblem::Unparseable)
        );
        assert!(check_redirect(
            "https://x.com:8443/autodiscover/v1/autodiscover.xml",
            Protocol::Pox
        )
        .is_ok());
        assert!(check_redirect(
            "https://x.com/autodiscover/autodiscover.svc",
            Protocol::Soap
        )
        .is_ok());
        assert_eq!(
            check_redirect(
                "https://x.com/autodiscover/autodiscover.xml",
                Protocol::Soap
            ),
            Err(RedirectProblem::WrongPath)
        );
        assert!(check_redirect(
            "https://x.com/autodiscover/autodiscover.json?Email=a%40b.c&Protocol=Ews&RedirectCount=1",
            Protocol::V2
        )
        .is_ok());
    }

    #[test]
    fn address_redirects_restart_until_a_loop_or_the_limit() {
        let mut j = Journey::new("bob@contoso.com");
        assert_eq!(
            j.redirect_address("bob@contoso.mail.onmicrosoft.com"),
            AddressStep::Restart
        );
        assert_eq!(j.current(), "bob@contoso.mail.onmicrosoft.com");
        assert_eq!(
            j.redirect_address("BOB@contoso.com"),
            AddressStep::Loop { first_seen: 0 }
        );
        assert_eq!(j.redirect_address("not an address"), AddressStep::Invalid);
        let mut j = Journey::new("a0@x.com");
        for i in 1..=MAX_ADDRESS_REDIRECTS {
            assert_eq!(
                j.redirect_address(&format!("a{i}@x.com")),
                AddressStep::Restart
            );
        }
        assert_eq!(j.redirect_address("last@x.com"), AddressStep::TooMany);
    }

    #[test]
    fn url_redirects_stop_at_ten_hops_and_on_revisits() {
        let mut j = Journey::new("a@x.com");
        assert!(j.visit("https://a/autodiscover/autodiscover.xml"));
        assert!(!j.visit("https://A/autodiscover/autodiscover.xml"));
        assert_eq!(
            j.redirect_url("https://a/autodiscover/autodiscover.xml"),
            UrlStep::Loop
        );
        for i in 0..MAX_URL_HOPS {
            let url = format!("https://h{i}/autodiscover/autodiscover.xml");
            assert_eq!(j.redirect_url(&url), UrlStep::Follow);
            j.visit(&url);
        }
        assert_eq!(
            j.redirect_url("https://h99/autodiscover/autodiscover.xml"),
            UrlStep::TooMany
        );
        // A new address starts a new URL history (but keeps the hop count).
        j.redirect_address("b@y.com");
        assert!(j.visit("https://a/autodiscover/autodiscover.xml"));
    }

    #[test]
    fn srv_answers_are_ordered_by_priority_then_weight() {
        let r = |priority, weight, target: &str| SrvTarget {
            priority,
            weight,
            port: 443,
            target: target.into(),
        };
        let ordered = order_srv(vec![
            r(10, 5, "b."),
            r(0, 1, "a."),
            r(10, 50, "C."),
            r(0, 0, "."),
        ]);
        let names: Vec<&str> = ordered.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(names, vec!["a", "c", "b"]);
    }

    #[test]
    fn validity_and_chain_time() {
        assert_eq!(
            validity(100, 0, 86_400 * 3),
            Validity::Valid { days_left: 2 }
        );
        assert_eq!(
            validity(86_400 * 40, 0, 86_400 * 10),
            Validity::Expired { days_ago: 30 }
        );
        assert_eq!(
            validity(0, 86_400 * 2, 86_400 * 3),
            Validity::NotYetValid { days_until: 2 }
        );
        assert_eq!(chain_check_time(50, 0, 100), 50);
        assert_eq!(chain_check_time(500, 0, 100), 100);
        assert_eq!(chain_check_time(-5, 0, 100), 0);
    }

    #[test]
    fn percent_encoding_keeps_unreserved_characters() {
        assert_eq!(percent_encode("a.b-c_d~e@f g"), "a.b-c_d~e%40f%20g");
    }

    #[test]
    fn service_urls_come_from_pox_soap_and_v2_settings() {
        use crate::probe::answer::{ProtocolBlock, Settings, V2Answer};
        let block = ProtocolBlock {
            kind: "EXCH".into(),
            fields: [(
                "OABUrl".to_string(),
                "https://mail.contoso.com/OAB/x/".to_string(),
            )]
            .into(),
        };
        let pox = Settings {
            ews_url: Some("https://mail.contoso.com/EWS/Exchange.asmx".into()),
            mapi_mailstore_url: Some("https://mail.contoso.com/mapi/emsmdb/?MailboxId=a".into()),
            protocols: vec![block],
            ..Settings::default()
        };
        let services: Vec<&str> = service_urls(&pox).iter().map(|(s, _)| *s).collect();
        assert_eq!(services, ["EWS", "OAB", "MAPI/HTTP"]);
        let mut soap = Settings::default();
        soap.user_settings.insert(
            "ExternalEwsUrl".into(),
            "https://e/EWS/Exchange.asmx".into(),
        );
        soap.user_settings.insert(
            "ExternalMobileUrl".into(),
            "https://e/Microsoft-Server-ActiveSync".into(),
        );
        assert_eq!(
            service_urls(&soap),
            [
                ("EWS", "https://e/EWS/Exchange.asmx".to_string()),
                (
                    "ActiveSync",
                    "https://e/Microsoft-Server-ActiveSync".to_string()
                )
            ]
        );
        let v2 = Settings {
            v2: Some(V2Answer {
                protocol: "ActiveSync".into(),
                url: "https://e/Microsoft-Server-ActiveSync".into(),
            }),
            ..Settings::default()
        };
        assert_eq!(service_urls(&v2)[0].0, "ActiveSync");
    }

    #[test]
    fn a_service_answers_with_200_or_a_challenge() {
        assert!(service_answer(200, &[]).0);
        assert!(service_answer(401, &["NTLM".into()]).0);
        assert!(!service_answer(401, &[]).0);
        assert!(!service_answer(404, &[]).0);
        assert!(!service_answer(302, &[]).0);
        assert!(service_answer(503, &[]).1.contains("503"));
    }
}
