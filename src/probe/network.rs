//! DNS (the system resolver through hickory-resolver, or the overrides) and TCP: the
//! first two steps of every candidate.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfigGroup, ResolveHosts, ResolverConfig,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use tokio::net::TcpStream;

use super::report::{Attempt, Status, StepKind};
use super::Prober;

/// Longest wait for one DNS answer. A lab name asked of real DNS often gets no answer at
/// all; five seconds once (see [`Prober::ask_dns`]) is enough to say so.
const DNS_LIMIT: Duration = Duration::from_secs(5);

/// The limit of one DNS query: the probe's timeout, at most [`DNS_LIMIT`].
pub(super) fn dns_timeout(timeout: Duration) -> Duration {
    timeout.min(DNS_LIMIT)
}

/// The system resolver, or only `server` (like `dig @server`) when one is given.
pub(super) fn new_resolver(
    timeout: Duration,
    server: Option<SocketAddr>,
) -> Result<TokioResolver, String> {
    let mut builder = match server {
        Some(addr) => TokioResolver::builder_with_config(
            ResolverConfig::from_parts(
                None,
                Vec::new(),
                NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
            ),
            TokioConnectionProvider::default(),
        ),
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?,
    };
    let opts = builder.options_mut();
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // The hosts file first, like the system resolver (labs publish their names there);
    // a chosen server answers alone.
    opts.use_hosts_file = if server.is_some() {
        ResolveHosts::Never
    } else {
        ResolveHosts::Always
    };
    opts.timeout = dns_timeout(timeout);
    opts.attempts = 1;
    Ok(builder.build())
}

pub(super) fn dns_error(e: &hickory_resolver::ResolveError) -> String {
    if e.is_nx_domain() {
        "no such name (NXDOMAIN)".into()
    } else if e.is_no_records_found() {
        "the name has no records of that type".into()
    } else {
        e.to_string()
    }
}

impl Prober<'_> {
    /// One DNS query within the DNS limit. After a query got no answer, DNS is not asked
    /// again in this probe: every later name would wait just as long for nothing.
    pub(super) async fn ask_dns<T>(
        &self,
        query: impl std::future::Future<Output = Result<T, hickory_resolver::ResolveError>>,
    ) -> Result<T, String> {
        if let Some(first) = self.dns_silent.get() {
            return Err(format!("DNS did not answer {first}; not asked again"));
        }
        let limit = dns_timeout(self.options.timeout) + Duration::from_secs(1);
        let timed_out = match tokio::time::timeout(limit, query).await {
            Ok(Ok(found)) => return Ok(found),
            Ok(Err(e)) if !e.to_string().contains("timed out") => return Err(dns_error(&e)),
            Ok(Err(_)) | Err(_) => format!("within {} s", limit.as_secs()),
        };
        let _ = self.dns_silent.set(timed_out.clone());
        Err(format!("DNS timed out (no answer {timed_out})"))
    }

    /// Resolves and connects; records the DNS and TCP steps.
    pub(super) async fn connect(
        &self,
        a: &mut Attempt,
        host: &str,
        port: u16,
    ) -> Option<TcpStream> {
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
                    match self.ask_dns(resolver.lookup_ip(route.host.as_str())).await {
                        Ok(found) => {
                            let addrs: Vec<IpAddr> = found.iter().collect();
                            let s = a.step(
                                StepKind::Dns,
                                Status::Pass,
                                format!("{} resolves (A/AAAA)", route.host),
                            );
                            // The CNAME chain the answer came through, then the addresses.
                            for record in found.as_lookup().records() {
                                if let Some(target) = record.data().as_cname() {
                                    s.detail(format!("CNAME {} -> {}", record.name(), target.0));
                                }
                            }
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
                        Err(e) => {
                            a.step(
                                StepKind::Dns,
                                Status::Fail,
                                format!("{} does not resolve (A/AAAA): {e}", route.host),
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
}
