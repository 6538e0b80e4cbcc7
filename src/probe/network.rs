//! DNS (the system resolver through hickory-resolver, or the overrides) and TCP: the
//! first two steps of every candidate.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, ResolveHosts};
use hickory_resolver::TokioResolver;
use tokio::net::TcpStream;

use super::report::{Attempt, Status, StepKind};
use super::Prober;

pub(super) fn new_resolver(timeout: Duration) -> Result<TokioResolver, String> {
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
}
