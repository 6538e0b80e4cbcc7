//! `autodiscoverd probe <email>`: walks the Autodiscover journey as a client does
//! ([MS-OXDISCO] §3.1.5: root domain, `autodiscover.` prefix, HTTP-redirect method, SRV;
//! SCP is out of scope) and records every step: DNS, TCP, TLS and the certificate checks, the
//! unauthenticated and authenticated requests, the answer and the redirects, ending in a
//! verdict. This module does the I/O; [`plan`] decides what to try, [`answer`] builds and
//! reads the documents, [`report`] renders, [`auth`] and [`target`] are pure helpers.

pub mod answer;
pub mod auth;
pub mod plan;
pub mod report;
pub mod target;
mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hickory_resolver::config::{LookupIpStrategy, ResolveHosts};
use hickory_resolver::TokioResolver;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use answer::Answer;
use auth::{ClientAuth, Credentials};
use plan::{AddressStep, HttpsUrl, Journey, Method, Protocol, UrlStep, Validity};
use report::{Attempt, Obtained, Outcome, Report, Status, StepKind};
use target::Overrides;

/// Largest answer the probe reads.
const MAX_ANSWER_BYTES: usize = 1 << 20;

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
    /// Limit for each network operation.
    pub timeout: Duration,
    /// Send `X-MapiHttpCapability: 1` like Outlook 2013 SP1+ ([MS-OXDSCLI] §2.2.2.1).
    pub mapi_http: bool,
    /// Which authentication scheme to use.
    pub auth: auth::AuthChoice,
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

/// What one HTTPS request produced.
enum Exchange {
    Answer(Answer),
    /// A 3xx with this `Location`.
    Moved(String),
    Failed,
}

/// Runs the whole probe. `now` is the time certificate dates are checked against.
pub async fn run(options: &ProbeOptions, now: SystemTime) -> Report {
    let mut prober = Prober::new(options, now);
    let obtained = prober.discover().await;
    let addresses = prober.journey.addresses().to_vec();
    let url_redirects = prober.journey.url_hops();
    let verdict = report::verdict(
        &prober.attempts,
        obtained.as_ref(),
        &addresses,
        url_redirects,
    );
    Report {
        email: options.email.clone(),
        protocol: options.protocol,
        addresses,
        url_redirects,
        attempts: prober.attempts,
        obtained,
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
}

fn new_resolver(timeout: Duration) -> Result<TokioResolver, String> {
    let mut builder = TokioResolver::builder_tokio()
        .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?;
    let opts = builder.options_mut();
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // The hosts file first, like the system resolver (labs publish their names there).
    opts.use_hosts_file = ResolveHosts::Always;
    opts.timeout = timeout;
    opts.attempts = 1;
    Ok(builder.build())
}

fn dns_error(e: &hickory_resolver::ResolveError) -> String {
    if e.is_nx_domain() {
        "no such name (NXDOMAIN)".into()
    } else if e.is_no_records_found() {
        "the name has no records of that type".into()
    } else {
        e.to_string()
    }
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
            resolver: options.system_dns.then(|| new_resolver(options.timeout)),
            journey: Journey::new(&options.email),
            attempts: Vec::new(),
        }
    }

    fn new_attempt(&self, method: Method, url: &str) -> Attempt {
        Attempt::new(self.attempts.len() + 1, self.journey.current(), method, url)
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
            for candidate in plan::candidates(&domain) {
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

    /// Resolves and connects; records the DNS and TCP steps.
    async fn connect(&self, a: &mut Attempt, host: &str, port: u16) -> Option<TcpStream> {
        let route = self.options.overrides.route(host, port);
        let addrs: Vec<IpAddr> = match &route.addrs {
            Some(addrs) => {
                let list: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
                let s = a.step(
                    StepKind::Dns,
                    Status::Pass,
                    format!(
                        "{host}:{port} -> {}:{} (override, no DNS query)",
                        list.join(","),
                        route.port
                    ),
                );
                for via in &route.via {
                    s.detail(via.clone());
                }
                addrs.clone()
            }
            None => match &self.resolver {
                None => {
                    let s = a.step(
                        StepKind::Dns,
                        Status::Fail,
                        format!("{} not resolved: DNS is off (--no-dns) and no --resolve/--connect-to entry covers {host}:{port}", route.host),
                    );
                    for via in &route.via {
                        s.detail(via.clone());
                    }
                    return None;
                }
                Some(Err(e)) => {
                    a.step(
                        StepKind::Dns,
                        Status::Fail,
                        format!("{} not resolved: {e}", route.host),
                    );
                    return None;
                }
                Some(Ok(resolver)) => {
                    let lookup = tokio::time::timeout(
                        self.options.timeout * 2,
                        resolver.lookup_ip(route.host.as_str()),
                    )
                    .await;
                    match lookup {
                        Ok(Ok(found)) => {
                            let addrs: Vec<IpAddr> = found.iter().collect();
                            let s = a.step(
                                StepKind::Dns,
                                Status::Pass,
                                format!("{} resolves (A/AAAA)", route.host),
                            );
                            for ip in &addrs {
                                s.detail(format!(
                                    "{} {ip}",
                                    if ip.is_ipv4() { "A   " } else { "AAAA" }
                                ));
                            }
                            for via in &route.via {
                                s.detail(via.clone());
                            }
                            addrs
                        }
                        Ok(Err(e)) => {
                            a.step(
                                StepKind::Dns,
                                Status::Fail,
                                format!(
                                    "{} does not resolve (A/AAAA): {}",
                                    route.host,
                                    dns_error(&e)
                                ),
                            );
                            return None;
                        }
                        Err(_) => {
                            a.step(
                                StepKind::Dns,
                                Status::Fail,
                                format!("{} does not resolve: DNS timed out", route.host),
                            );
                            return None;
                        }
                    }
                }
            },
        };
        if addrs.is_empty() {
            a.step(
                StepKind::Dns,
                Status::Fail,
                format!("{} has no address", route.host),
            );
            return None;
        }
        let mut errors = Vec::new();
        for ip in addrs {
            let addr = SocketAddr::new(ip, route.port);
            match tokio::time::timeout(self.options.timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let s = a.step(
                        StepKind::Tcp,
                        Status::Pass,
                        format!("TCP connected to {addr}"),
                    );
                    for e in &errors {
                        s.detail(format!("before that: {e}"));
                    }
                    return Some(stream);
                }
                Ok(Err(e)) => errors.push(format!("{addr}: {e}")),
                Err(_) => errors.push(format!("{addr}: timed out")),
            }
        }
        let s = a.step(
            StepKind::Tcp,
            Status::Fail,
            format!("TCP connect to {host}:{port} failed"),
        );
        for e in errors {
            s.detail(e);
        }
        None
    }

    /// TLS handshake plus the certificate steps. `None` when the server cannot be trusted.
    async fn tls(
        &self,
        a: &mut Attempt,
        host: &str,
        tcp: TcpStream,
    ) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
        let (config, observed) = match tls::client_config() {
            Ok(c) => c,
            Err(e) => {
                a.step(
                    StepKind::TlsHandshake,
                    Status::Fail,
                    format!("TLS setup failed: {e}"),
                );
                return None;
            }
        };
        let Ok(name) = ServerName::try_from(host.to_string()) else {
            a.step(
                StepKind::TlsHandshake,
                Status::Fail,
                format!("`{host}` is not a valid TLS server name"),
            );
            return None;
        };
        let connector = TlsConnector::from(config);
        let stream =
            match tokio::time::timeout(self.options.timeout, connector.connect(name, tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    a.step(
                        StepKind::TlsHandshake,
                        Status::Fail,
                        format!("TLS handshake with {host} failed: {e}"),
                    )
                    .detail("nothing that speaks TLS answered there (or it refused us)");
                    return None;
                }
                Err(_) => {
                    a.step(
                        StepKind::TlsHandshake,
                        Status::Fail,
                        format!("TLS handshake with {host} timed out"),
                    );
                    return None;
                }
            };
        {
            let conn = stream.get_ref().1;
            let version = conn
                .protocol_version()
                .and_then(|v| v.as_str())
                .unwrap_or("TLS");
            let suite = conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("?");
            a.step(
                StepKind::TlsHandshake,
                Status::Pass,
                format!("TLS handshake with SNI {host}: {version}, {suite}"),
            );
        }
        let chain = observed.chain();
        let described = match tls::describe(&chain) {
            Ok(d) => d,
            Err(e) => {
                a.step(StepKind::Certificate, Status::Fail, e);
                return None;
            }
        };
        {
            let info = &described.info;
            let s = a.step(
                StepKind::Certificate,
                Status::Info,
                format!("certificate for {}", info.dns_names.join(", ")),
            );
            s.detail(format!("subject: {}", info.subject));
            s.detail(format!(
                "SAN:     {}",
                info.dns_names
                    .iter()
                    .chain(info.ip_addresses.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            s.detail(format!("issuer:  {}", info.issuer));
            s.detail(format!(
                "valid:   {} to {}",
                info.not_before, info.not_after
            ));
            s.certificate = Some(info.clone());
        }
        let mut trusted = true;
        match tls::check_name(&chain, host) {
            Ok(()) => {
                a.step(
                    StepKind::CertificateName,
                    Status::Pass,
                    format!("certificate name matches {host}"),
                );
            }
            Err(e) => {
                trusted = false;
                a.step(
                    StepKind::CertificateName,
                    Status::Fail,
                    format!("certificate name mismatch: {e}"),
                )
                .detail(format!(
                    "the certificate names {}",
                    described.info.dns_names.join(", ")
                ));
            }
        }
        match &self.roots {
            Err(e) => {
                trusted = false;
                a.step(
                    StepKind::CertificateChain,
                    Status::Fail,
                    format!("chain not checked: {e}"),
                );
            }
            Ok((roots, label)) => {
                let at = plan::chain_check_time(
                    self.now_unix,
                    described.not_before,
                    described.not_after,
                );
                match tls::check_chain(&chain, roots, host, &described.info.dns_names, at) {
                    Ok(()) => {
                        a.step(
                            StepKind::CertificateChain,
                            Status::Pass,
                            format!("chain trusted (anchors: {label})"),
                        );
                    }
                    Err(e) => {
                        trusted = false;
                        a.step(
                            StepKind::CertificateChain,
                            Status::Fail,
                            format!("chain not trusted: {e}"),
                        )
                        .detail(format!("anchors: {label}"));
                    }
                }
            }
        }
        match plan::validity(self.now_unix, described.not_before, described.not_after) {
            Validity::Valid { days_left } => {
                a.step(
                    StepKind::CertificateDates,
                    Status::Pass,
                    format!("certificate dates valid ({days_left} days left)"),
                );
            }
            Validity::Expired { days_ago } => {
                trusted = false;
                a.step(
                    StepKind::CertificateDates,
                    Status::Fail,
                    format!(
                        "certificate expired {days_ago} days ago ({})",
                        described.info.not_after
                    ),
                );
            }
            Validity::NotYetValid { days_until } => {
                trusted = false;
                a.step(
                    StepKind::CertificateDates,
                    Status::Fail,
                    format!(
                        "certificate not valid yet (for {days_until} more days, from {})",
                        described.info.not_before
                    ),
                );
            }
        }
        if observed.client_cert_requested() {
            a.step(
                StepKind::ClientCertificate,
                Status::Info,
                "the server requested a client certificate; the probe sent none",
            );
        } else {
            a.step(
                StepKind::ClientCertificate,
                Status::Info,
                "no client certificate requested",
            );
        }
        if !trusted {
            a.fail("certificate not trusted; credentials not sent");
            return None;
        }
        Some(stream)
    }

    /// Follows one candidate URL and the URL redirects it leads to.
    async fn https_chain(&mut self, method: Method, first: HttpsUrl) -> Found {
        let mut url = first;
        let mut method = method;
        loop {
            let text = url.text();
            let mut a = self.new_attempt(method, &text);
            if !self.journey.visit(&text) {
                a.outcome = Outcome::Skipped {
                    reason: "this URL was already tried for this address".into(),
                };
                self.attempts.push(a);
                return Found::Nothing;
            }
            let exchange = self.https_once(&mut a, &url).await;
            let next = match exchange {
                Exchange::Failed => None,
                Exchange::Moved(location) => Some(location),
                Exchange::Answer(Answer::RedirectUrl(target)) => Some(target),
                Exchange::Answer(Answer::Settings(settings)) => {
                    a.outcome = Outcome::Settings;
                    self.attempts.push(a);
                    return Found::Settings(Box::new(Obtained {
                        address: self.journey.current().to_string(),
                        url: text,
                        settings: *settings,
                    }));
                }
                Exchange::Answer(Answer::RedirectAddr(target)) => {
                    let found = self.follow_address(&mut a, &target);
                    self.attempts.push(a);
                    return found;
                }
                Exchange::Answer(Answer::Error { .. }) => None,
            };
            let Some(location) = next else {
                if matches!(a.outcome, Outcome::Failed { ref reason } if reason == "not finished") {
                    a.fail("no usable answer");
                }
                self.attempts.push(a);
                return Found::Nothing;
            };
            let path_protocol = self.options.protocol;
            match plan::check_redirect(&location, path_protocol) {
                Err(problem) => return self.refuse_redirect(a, &location, problem),
                Ok(target) => match self.journey.redirect_url(&target.text()) {
                    UrlStep::Follow => {
                        a.step(
                            StepKind::Redirect,
                            Status::Pass,
                            format!("redirect to {} accepted (https, Autodiscover path; hop {} of at most {})", target.text(), self.journey.url_hops(), plan::MAX_URL_HOPS),
                        );
                        a.outcome = Outcome::RedirectUrl { url: target.text() };
                        self.attempts.push(a);
                        url = target;
                        method = Method::Redirected;
                    }
                    UrlStep::Loop => {
                        a.step(
                            StepKind::Redirect,
                            Status::Fail,
                            format!("redirect loop: {} was already visited", target.text()),
                        );
                        a.fail("redirect loop");
                        self.attempts.push(a);
                        return Found::Nothing;
                    }
                    UrlStep::TooMany => {
                        a.step(
                            StepKind::Redirect,
                            Status::Fail,
                            format!(
                                "too many redirects: clients stop after {} URL hops",
                                plan::MAX_URL_HOPS
                            ),
                        );
                        a.fail("too many redirects");
                        self.attempts.push(a);
                        return Found::Stop;
                    }
                },
            }
        }
    }

    /// Ends an attempt whose redirect target is not https or not an Autodiscover path.
    fn refuse_redirect(
        &mut self,
        mut a: Attempt,
        location: &str,
        problem: plan::RedirectProblem,
    ) -> Found {
        a.step(
            StepKind::Redirect,
            Status::Fail,
            format!("redirect to {location} refused: {}", problem.explain()),
        );
        a.fail("unusable redirect");
        self.attempts.push(a);
        Found::Nothing
    }

    fn follow_address(&mut self, a: &mut Attempt, target: &str) -> Found {
        let before = self.journey.addresses().to_vec();
        match self.journey.redirect_address(target) {
            AddressStep::Restart => {
                a.step(
                    StepKind::Redirect,
                    Status::Pass,
                    format!("redirectAddr {target} accepted: discovery restarts for the new address with the same credentials"),
                );
                a.outcome = Outcome::RedirectAddr {
                    address: target.to_string(),
                };
                Found::Restart
            }
            AddressStep::Loop { first_seen } => {
                let mut chain: Vec<String> = before.iter().skip(first_seen).cloned().collect();
                chain.push(target.to_string());
                a.step(
                    StepKind::Redirect,
                    Status::Fail,
                    format!("redirect loop: redirectAddr {target} was already tried"),
                )
                .detail(format!("address loop: {}", chain.join(" -> ")))
                .detail("each side says the mailbox is on the other side: check targetAddress on-premises and the mailbox in the tenant");
                a.fail("address redirect loop");
                Found::Stop
            }
            AddressStep::TooMany => {
                a.step(
                    StepKind::Redirect,
                    Status::Fail,
                    format!(
                        "too many address redirects (more than {})",
                        plan::MAX_ADDRESS_REDIRECTS
                    ),
                );
                a.fail("too many address redirects");
                Found::Stop
            }
            AddressStep::Invalid => {
                a.step(
                    StepKind::Redirect,
                    Status::Fail,
                    format!("redirectAddr `{target}` is not an email address"),
                );
                a.fail("invalid redirect address");
                Found::Nothing
            }
        }
    }

    /// One HTTPS endpoint: connect, TLS, request(s), answer.
    async fn https_once(&mut self, a: &mut Attempt, url: &HttpsUrl) -> Exchange {
        let Some(tcp) = self.connect(a, &url.host, url.port).await else {
            a.fail(format!("cannot reach {}:{}", url.host, url.port));
            return Exchange::Failed;
        };
        let Some(tls) = self.tls(a, &url.host, tcp).await else {
            if matches!(a.outcome, Outcome::Failed { ref reason } if reason == "not finished") {
                a.fail("TLS failed");
            }
            return Exchange::Failed;
        };
        let mut sender = match http_handshake(tls, self.options.timeout).await {
            Ok(s) => s,
            Err(e) => {
                a.step(
                    StepKind::Request,
                    Status::Fail,
                    format!("HTTP/1.1 over TLS failed: {e}"),
                );
                a.fail("HTTP failed");
                return Exchange::Failed;
            }
        };
        let address = self.journey.current().to_string();
        let host_header = if url.port == 443 {
            url.host.clone()
        } else {
            format!("{}:{}", url.host, url.port)
        };
        let protocol = self.options.protocol;
        let (method, body) = match protocol {
            Protocol::Pox => ("POST", answer::pox_request(&address)),
            Protocol::Soap => ("POST", answer::soap_request(&address, &url.text())),
            Protocol::V2 => ("GET", Vec::new()),
        };
        let build = |authorization: Option<&str>| {
            let mut b = Request::builder()
                .method(method)
                .uri(url.path.as_str())
                .header(http::header::HOST, host_header.as_str())
                .header(
                    http::header::USER_AGENT,
                    concat!("autodiscoverd-probe/", env!("CARGO_PKG_VERSION")),
                );
            if protocol != Protocol::V2 {
                b = b
                    .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
                    .header("X-AnchorMailbox", address.as_str());
                if self.options.mapi_http && protocol == Protocol::Pox {
                    b = b.header("X-MapiHttpCapability", "1");
                }
            }
            if let Some(v) = authorization {
                b = b.header(http::header::AUTHORIZATION, v);
            }
            b.body(Full::new(Bytes::from(body.clone())))
        };
        let label = format!("{method} {}", url.path);
        let first = match build(None) {
            Ok(r) => send(&mut sender, r, self.options.timeout).await,
            Err(e) => Err(e.to_string()),
        };
        let mut response = match first {
            Ok(r) => r,
            Err(e) => {
                a.step(
                    StepKind::Request,
                    Status::Fail,
                    format!("{label} without credentials failed: {e}"),
                );
                a.fail("HTTP failed");
                return Exchange::Failed;
            }
        };
        if response.status == StatusCode::UNAUTHORIZED && protocol.authenticated() {
            let offered = auth::offered_schemes(&response.www_authenticate());
            a.step(
                StepKind::Request,
                Status::Pass,
                format!(
                    "{label} without credentials: 401, server offers {}",
                    if offered.is_empty() {
                        "no scheme".to_string()
                    } else {
                        offered.join(", ")
                    }
                ),
            );
            let Some(credentials) = &self.options.credentials else {
                a.step(
                    StepKind::Authentication,
                    Status::Fail,
                    "authentication required but no credentials given (--user, --password or --password-file)",
                );
                a.fail("no credentials");
                return Exchange::Failed;
            };
            let mut scheme: Box<dyn ClientAuth> = match auth::choose(self.options.auth, &offered) {
                Ok(auth::Scheme::Basic) => Box::new(auth::Basic::new(credentials.clone())),
                Ok(auth::Scheme::Ntlm) => Box::new(auth::Ntlm::new(
                    credentials,
                    rand::random::<[u8; 8]>(),
                    rand::random::<[u8; 16]>(),
                )),
                Err(problem) => {
                    a.step(StepKind::Authentication, Status::Fail, problem);
                    a.fail("no common authentication scheme");
                    return Exchange::Failed;
                }
            };
            let mut challenge: Option<String> = None;
            let mut legs = 0;
            loop {
                let Some(header) = scheme.next_leg(challenge.as_deref()) else {
                    a.step(
                        StepKind::Authentication,
                        Status::Fail,
                        format!("credentials for {} rejected ({} answered 401 after {} leg{})", credentials.user, scheme.scheme(), legs, if legs == 1 { "" } else { "s" }),
                    )
                    .detail("wrong password, unknown or disabled account, or a login name the server does not accept");
                    a.fail("authentication failed");
                    return Exchange::Failed;
                };
                legs += 1;
                let sent = match build(Some(&header)) {
                    Ok(r) => send(&mut sender, r, self.options.timeout).await,
                    Err(e) => Err(e.to_string()),
                };
                response = match sent {
                    Ok(r) => r,
                    Err(e) => {
                        a.step(
                            StepKind::Authentication,
                            Status::Fail,
                            format!("{label} with credentials failed: {e}"),
                        );
                        a.fail("HTTP failed");
                        return Exchange::Failed;
                    }
                };
                if response.status != StatusCode::UNAUTHORIZED {
                    break;
                }
                challenge = auth::challenge_token(&response.www_authenticate(), scheme.scheme())
                    .map(str::to_string);
            }
            let status = response.status;
            if status.is_success() || status.is_redirection() {
                a.step(
                    StepKind::Authentication,
                    Status::Pass,
                    format!(
                        "{label} as {} ({}): HTTP {}",
                        credentials.user,
                        scheme.scheme(),
                        status.as_u16()
                    ),
                );
            } else {
                a.step(
                    StepKind::Authentication,
                    Status::Fail,
                    format!(
                        "{label} as {} ({}): HTTP {}",
                        credentials.user,
                        scheme.scheme(),
                        status.as_u16()
                    ),
                );
                a.fail(format!("HTTP {}", status.as_u16()));
                return Exchange::Failed;
            }
        } else {
            let status = response.status;
            let ok = status.is_success() || status.is_redirection();
            a.step(
                StepKind::Request,
                if ok { Status::Pass } else { Status::Fail },
                format!(
                    "{label}: HTTP {}{}",
                    status.as_u16(),
                    if protocol.authenticated() && ok {
                        " without authentication"
                    } else {
                        ""
                    }
                ),
            );
            if !ok {
                a.fail(format!("HTTP {}", status.as_u16()));
                return Exchange::Failed;
            }
        }
        if response.status.is_redirection() {
            return match response.location() {
                Some(location) => {
                    a.step(
                        StepKind::Redirect,
                        Status::Info,
                        format!("HTTP {} redirect to {location}", response.status.as_u16()),
                    );
                    Exchange::Moved(location)
                }
                None => {
                    a.step(
                        StepKind::Redirect,
                        Status::Fail,
                        format!("HTTP {} without Location", response.status.as_u16()),
                    );
                    a.fail("redirect without Location");
                    Exchange::Failed
                }
            };
        }
        self.read_answer(a, &response)
    }

    fn read_answer(&self, a: &mut Attempt, response: &Response) -> Exchange {
        let parsed = match self.options.protocol {
            Protocol::Pox => answer::parse_pox(&response.body),
            Protocol::Soap => answer::parse_soap(&response.body),
            Protocol::V2 => answer::parse_v2(&response.body),
        };
        let content_type = response.header("content-type").unwrap_or_default();
        let (settings_label, addr_label, url_label) = match self.options.protocol {
            Protocol::Pox => (
                "settings received (Action=settings)",
                "Action=redirectAddr: the mailbox is elsewhere; RedirectAddr",
                "Action=redirectUrl: ask",
            ),
            Protocol::Soap => (
                "settings received (UserResponse ErrorCode=NoError)",
                "ErrorCode=RedirectAddress: the mailbox is elsewhere; RedirectTarget",
                "ErrorCode=RedirectUrl: ask",
            ),
            Protocol::V2 => ("service URL received (200 JSON)", "redirect to", "ask"),
        };
        match parsed {
            Err(e) => {
                a.step(
                    StepKind::Response,
                    Status::Fail,
                    format!("unreadable answer: {e}"),
                )
                .detail(format!(
                    "Content-Type: {content_type}, {} bytes",
                    response.body.len()
                ));
                a.fail("unreadable answer");
                Exchange::Failed
            }
            Ok(Answer::Settings(s)) => {
                let step = a.step(StepKind::Response, Status::Pass, settings_label);
                if let Some(smtp) = &s.smtp_address {
                    step.detail(format!("AutoDiscoverSMTPAddress {smtp}"));
                }
                match s.microsoft_online {
                    Some(true) => {
                        step.detail("MicrosoftOnline=True: an Exchange Online answer");
                    }
                    Some(false) => {
                        step.detail("MicrosoftOnline=False: an on-premises answer");
                    }
                    None => {}
                }
                if let Some(ews) = &s.ews_url {
                    step.detail(format!("EWS {ews}"));
                }
                if let Some(mapi) = &s.mapi_mailstore_url {
                    step.detail(format!("MAPI/HTTP {mapi}"));
                }
                if !s.protocols.is_empty() {
                    let kinds: Vec<&str> = s.protocols.iter().map(|p| p.kind.as_str()).collect();
                    step.detail(format!("Protocol blocks: {}", kinds.join(", ")));
                }
                Exchange::Answer(Answer::Settings(s))
            }
            Ok(Answer::RedirectAddr(target)) => {
                a.step(
                    StepKind::Response,
                    Status::Info,
                    format!("{addr_label} {target}"),
                );
                Exchange::Answer(Answer::RedirectAddr(target))
            }
            Ok(Answer::RedirectUrl(target)) => {
                a.step(
                    StepKind::Response,
                    Status::Info,
                    format!("{url_label} {target} instead"),
                );
                Exchange::Answer(Answer::RedirectUrl(target))
            }
            Ok(Answer::Error { code, message }) => {
                a.step(
                    StepKind::Response,
                    Status::Fail,
                    format!("Autodiscover error {code}: {message}"),
                );
                a.fail(format!("error {code}"));
                Exchange::Answer(Answer::Error { code, message })
            }
        }
    }

    /// The HTTP-redirect method: unauthenticated GET on port 80, then the https target.
    async fn http_redirect(&mut self, host: &str, port: u16) -> Found {
        let path = self.options.protocol.redirect_probe_path();
        let url = if port == 80 {
            format!("http://{host}{path}")
        } else {
            format!("http://{host}:{port}{path}")
        };
        let mut a = self.new_attempt(Method::HttpRedirect, &url);
        let Some(tcp) = self.connect(&mut a, host, port).await else {
            a.fail(format!("cannot reach {host}:{port}"));
            self.attempts.push(a);
            return Found::Nothing;
        };
        let result = async {
            let mut sender = http_handshake(tcp, self.options.timeout).await?;
            let request = Request::builder()
                .method("GET")
                .uri(path)
                .header(http::header::HOST, host)
                .header(
                    http::header::USER_AGENT,
                    concat!("autodiscoverd-probe/", env!("CARGO_PKG_VERSION")),
                )
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            send(&mut sender, request, self.options.timeout).await
        }
        .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                a.step(
                    StepKind::Request,
                    Status::Fail,
                    format!("GET {path} failed: {e}"),
                );
                a.fail("HTTP failed");
                self.attempts.push(a);
                return Found::Nothing;
            }
        };
        let location = response.location();
        let (true, Some(location)) = (response.status.is_redirection(), location) else {
            a.step(
                StepKind::Request,
                Status::Fail,
                format!(
                    "GET {path} (no credentials): HTTP {}, not a redirect",
                    response.status.as_u16()
                ),
            );
            a.fail("no redirect on port 80");
            self.attempts.push(a);
            return Found::Nothing;
        };
        a.step(
            StepKind::Request,
            Status::Pass,
            format!(
                "GET {path} (no credentials): HTTP {} to {location}",
                response.status.as_u16()
            ),
        );
        // The port-80 answer points at a POX (or SOAP) path even for V2 clients.
        let path_protocol = match self.options.protocol {
            Protocol::Soap => Protocol::Soap,
            Protocol::Pox | Protocol::V2 => Protocol::Pox,
        };
        let target = match plan::check_redirect(&location, path_protocol) {
            Ok(t) => t,
            Err(problem) => return self.refuse_redirect(a, &location, problem),
        };
        let next = match self.options.protocol {
            Protocol::V2 => plan::endpoint(
                &target.host,
                target.port,
                Protocol::V2,
                self.journey.current(),
            ),
            _ => target,
        };
        let found = match self.journey.redirect_url(&next.text()) {
            UrlStep::Follow => {
                a.step(
                    StepKind::Redirect,
                    Status::Pass,
                    format!(
                        "redirect target {} accepted (https, Autodiscover path)",
                        next.text()
                    ),
                )
                .detail(
                    "learned over plain HTTP: Outlook asks the user before using it (MS-OXDISCO §3.1.5.4)",
                );
                a.outcome = Outcome::RedirectUrl { url: next.text() };
                None
            }
            UrlStep::Loop => {
                a.step(
                    StepKind::Redirect,
                    Status::Info,
                    format!("{} was already tried", next.text()),
                );
                a.outcome = Outcome::Skipped {
                    reason: "target already tried".into(),
                };
                Some(Found::Nothing)
            }
            UrlStep::TooMany => {
                a.step(StepKind::Redirect, Status::Fail, "too many redirects");
                a.fail("too many redirects");
                Some(Found::Stop)
            }
        };
        self.attempts.push(a);
        match found {
            Some(f) => f,
            None => self.https_chain(Method::Redirected, next).await,
        }
    }

    /// The SRV method.
    async fn srv(&mut self, domain: &str) -> Found {
        let name = plan::srv_name(domain);
        let mut a = self.new_attempt(Method::Srv, &format!("{name} SRV"));
        let resolver = match &self.resolver {
            None => {
                a.step(
                    StepKind::Srv,
                    Status::Skip,
                    format!("SRV lookup of {name} skipped: DNS is off (--no-dns)"),
                );
                a.outcome = Outcome::Skipped {
                    reason: "DNS is off".into(),
                };
                self.attempts.push(a);
                return Found::Nothing;
            }
            Some(Err(e)) => {
                a.step(
                    StepKind::Srv,
                    Status::Fail,
                    format!("SRV lookup of {name} impossible: {e}"),
                );
                a.fail("no DNS");
                self.attempts.push(a);
                return Found::Nothing;
            }
            Some(Ok(r)) => r.clone(),
        };
        let lookup =
            tokio::time::timeout(self.options.timeout * 2, resolver.srv_lookup(name.as_str()))
                .await;
        let records = match lookup {
            Ok(Ok(found)) => plan::order_srv(
                found
                    .iter()
                    .map(|r| plan::SrvTarget {
                        priority: r.priority(),
                        weight: r.weight(),
                        port: r.port(),
                        target: r.target().to_ascii(),
                    })
                    .collect(),
            ),
            Ok(Err(e)) => {
                a.step(
                    StepKind::Srv,
                    Status::Fail,
                    format!("no SRV record {name}: {}", dns_error(&e)),
                );
                a.fail("no SRV record");
                self.attempts.push(a);
                return Found::Nothing;
            }
            Err(_) => {
                a.step(
                    StepKind::Srv,
                    Status::Fail,
                    format!("SRV lookup of {name} timed out"),
                );
                a.fail("DNS timeout");
                self.attempts.push(a);
                return Found::Nothing;
            }
        };
        if records.is_empty() {
            a.step(
                StepKind::Srv,
                Status::Fail,
                format!("{name} has no usable SRV target"),
            );
            a.fail("no SRV target");
            self.attempts.push(a);
            return Found::Nothing;
        }
        {
            let s = a.step(
                StepKind::Srv,
                Status::Pass,
                format!("{name}: {} target(s)", records.len()),
            );
            for r in &records {
                s.detail(format!(
                    "{} {} {} {}",
                    r.priority, r.weight, r.port, r.target
                ));
            }
            s.detail(
                "learned from DNS: Outlook asks the user before using an SRV target (MS-OXDISCO §3.1.5.3)",
            );
        }
        a.outcome = Outcome::Skipped {
            reason: "SRV targets follow".into(),
        };
        self.attempts.push(a);
        for r in records {
            let url = plan::endpoint(
                &r.target,
                r.port,
                self.options.protocol,
                self.journey.current(),
            );
            match self.https_chain(Method::Srv, url).await {
                Found::Nothing => continue,
                other => return other,
            }
        }
        Found::Nothing
    }
}

/// One HTTP response, fully read.
struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Response {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn www_authenticate(&self) -> Vec<String> {
        self.headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }

    fn location(&self) -> Option<String> {
        self.header("location")
    }
}

async fn http_handshake<S>(stream: S, timeout: Duration) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = tokio::time::timeout(
        timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| "HTTP handshake timed out".to_string())?
    .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Response, String> {
    let exchange = async {
        sender.ready().await.map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| "no answer in time".to_string())?
}
