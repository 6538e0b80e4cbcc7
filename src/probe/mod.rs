//! `autodiscoverd probe <email>`: walks the Autodiscover journey as a client does
//! ([MS-OXDISCO] §3.1.5: with `--scp` the SCP lookup in Active Directory first, then the
//! root domain, the `autodiscover.` prefix, the HTTP-redirect method, SRV) and records
//! every step: DNS, TCP, TLS and the certificate checks, the
//! unauthenticated and authenticated requests, the answer and the redirects, ending in a
//! verdict. The pure parts: [`plan`] decides what to try, [`answer`] builds and reads the
//! documents, [`report`] judges and renders, [`auth`] and [`target`] are client helpers.
//! The I/O: `network` (DNS, TCP), `handshake` (TLS and the certificate checks),
//! `exchange` (one HTTPS request with its authentication legs) and `methods` (the
//! candidates and the redirects between them); this file drives the journey.

pub mod answer;
pub mod auth;
pub mod handout;
pub mod plan;
pub mod report;
pub mod target;
mod tls;
pub mod verdict;

mod exchange;
mod handshake;
mod methods;
mod network;
mod scp;
mod services;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_resolver::TokioResolver;
use rustls::RootCertStore;

use auth::Credentials;
use plan::{Journey, Method, Protocol};
use report::{Attempt, Obtained, Report, Status, StepKind};
use target::Overrides;

/// What to probe and how.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub email: String,
    pub protocol: Protocol,
    /// `None`: requests go out without credentials (a 401 then ends the attempt).
    pub credentials: Option<Credentials>,
    pub overrides: Overrides,
    /// Trust anchors instead of the system store.
    pub ca_file: Option<PathBuf>,
    /// Ask the system resolver for names without an override (`--no-dns` turns it off).
    pub system_dns: bool,
    /// Ask only this DNS server instead of the system's (`--dns-server`).
    pub dns_server: Option<std::net::SocketAddr>,
    /// Limit for each network operation.
    pub timeout: Duration,
    /// Send `X-MapiHttpCapability: 1` like Outlook 2013 SP1+ (MS-OXDSCLI §2.2.2.1).
    pub mapi_http: bool,
    /// Look up Autodiscover SCPs on this LDAP URL first (`--scp ldaps://dc`), as a
    /// domain-joined Outlook does.
    pub scp: Option<String>,
    /// The client's AD site, which orders the SCP URLs (`--site`).
    pub site: Option<String>,
    /// POX: ask by this legacy DN instead of the address (the first address only).
    pub legacy_dn: Option<String>,
    /// After settings were found, check the service URLs they name (`--check-urls`).
    pub check_urls: bool,
    /// Record the evidence of every HTTP exchange (`-v`): status, tracing headers,
    /// authentication offers and bodies, never credentials.
    pub verbose: bool,
    /// Which authentication scheme to use.
    pub auth: auth::AuthChoice,
    /// An Entra ID access token to present instead of credentials (`--bearer`); never
    /// shown in reports.
    pub bearer: Option<String>,
}

/// What one candidate produced for the journey.
enum Found {
    Settings(Box<Obtained>),
    /// A new address: restart the candidate list.
    Restart,
    /// Nothing here; try the next candidate.
    Nothing,
    /// The journey must end (address loop, too many redirects).
    Stop,
}

/// Runs the whole probe. `now` is the time certificate dates are checked against.
pub async fn run(options: &ProbeOptions, now: SystemTime) -> Report {
    let mut prober = Prober::new(options, now);
    let obtained = prober.discover().await;
    let addresses = prober.journey.addresses().to_vec();
    let url_redirects = prober.journey.url_hops();
    let service_checks = match (&obtained, options.check_urls) {
        (Some(o), true) => prober.check_services(&o.settings).await,
        _ => Vec::new(),
    };
    let mut verdict = verdict::verdict(
        &prober.attempts,
        obtained.as_ref(),
        &addresses,
        url_redirects,
    );
    verdict
        .advice
        .extend(verdict::service_advice(&service_checks));
    Report {
        email: options.email.clone(),
        started_at: Some(tls::rfc3339(prober.now_unix)),
        protocol: options.protocol,
        addresses,
        url_redirects,
        attempts: prober.attempts,
        obtained,
        service_checks,
        verdict,
    }
}

struct Prober<'a> {
    options: &'a ProbeOptions,
    now_unix: i64,
    roots: Result<(Arc<RootCertStore>, String), String>,
    resolver: Option<Result<TokioResolver, String>>,
    journey: Journey,
    attempts: Vec<Attempt>,
    /// Set when a DNS query got no answer: how long it waited.
    dns_silent: std::sync::OnceLock<String>,
    /// Steps are timed from here.
    started: std::time::Instant,
}

impl<'a> Prober<'a> {
    fn new(options: &'a ProbeOptions, now: SystemTime) -> Prober<'a> {
        let now_unix = now
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let ca_file = options
            .ca_file
            .clone()
            .or_else(|| options.overrides.ca_file.as_ref().map(PathBuf::from));
        Prober {
            options,
            now_unix,
            roots: tls::load_roots(ca_file.as_deref()),
            resolver: options
                .system_dns
                .then(|| network::new_resolver(options.timeout, options.dns_server)),
            journey: Journey::new(&options.email),
            attempts: Vec::new(),
            dns_silent: std::sync::OnceLock::new(),
            started: std::time::Instant::now(),
        }
    }

    fn new_attempt(&self, method: Method, url: &str) -> Attempt {
        Attempt::new(self.attempts.len() + 1, self.journey.current(), method, url)
            .timed(self.started)
    }

    async fn discover(&mut self) -> Option<Obtained> {
        'address: loop {
            let address = self.journey.current().to_string();
            let Some(domain) = plan::domain_of(&address) else {
                let mut a = self.new_attempt(Method::RootDomain, "-");
                a.step(
                    StepKind::Dns,
                    Status::Fail,
                    format!("`{address}` is not an email address (local@domain)"),
                );
                a.fail("no domain to discover");
                self.attempts.push(a);
                return None;
            };
            if let Some(ldap_url) = self.options.scp.clone() {
                // Only for the address asked about: a redirected address is discovered by DNS.
                if self.journey.addresses().len() == 1 {
                    let mut walk = scp::ScpWalk::new(&ldap_url);
                    while let scp::Next::Ask(server) = walk.next() {
                        let urls = self.scp_lookup(&mut walk, &server, &domain).await;
                        let tried = !urls.is_empty();
                        for found in urls {
                            let url = match plan::parse_https(&found) {
                                Ok(u) if self.options.protocol == Protocol::Pox => u,
                                Ok(u) => {
                                    plan::endpoint(&u.host, u.port, self.options.protocol, &address)
                                }
                                Err(_) => continue,
                            };
                            match self.https_chain(Method::Scp, url).await {
                                Found::Settings(o) => return Some(*o),
                                Found::Restart => continue 'address,
                                Found::Stop => return None,
                                Found::Nothing => {}
                            }
                        }
                        if tried {
                            // None of this directory's URLs answered: an unscoped pointer.
                            self.fallback(&mut walk);
                        }
                    }
                }
            }
            for candidate in plan::candidates_for(&domain, self.options.protocol) {
                let found = match candidate.method {
                    Method::HttpRedirect => {
                        self.http_redirect(&candidate.host, candidate.port).await
                    }
                    Method::Srv => self.srv(&domain).await,
                    method => {
                        let url = plan::endpoint(
                            &candidate.host,
                            candidate.port,
                            self.options.protocol,
                            &address,
                        );
                        self.https_chain(method, url).await
                    }
                };
                match found {
                    Found::Settings(o) => return Some(*o),
                    Found::Restart => continue 'address,
                    Found::Stop => return None,
                    Found::Nothing => {}
                }
            }
            return None;
        }
    }
}
