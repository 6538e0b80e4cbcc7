//! `[server]`, `[proxy]`, `[metrics]` and `[log]`: the listeners, their limits and whom to
//! believe behind a reverse proxy.

use std::net::SocketAddr;
use std::time::Duration;

use super::{file, Cidr, ConfigError, Validator};

/// Listeners for use behind reverse proxies, and whom to believe (`[proxy]`).
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// Peers whose `X-Forwarded-For`/`X-Forwarded-Proto` and PROXY headers are believed.
    pub trusted: Vec<Cidr>,
    /// Plain-HTTP Autodiscover listeners (TLS terminated by a proxy).
    pub plain_listen: Vec<SocketAddr>,
    /// HTTPS listeners that expect a PROXY v1/v2 header before the TLS handshake.
    pub proxy_protocol_https_listen: Vec<SocketAddr>,
    /// Plain-HTTP listeners that expect a PROXY v1/v2 header before the request.
    pub proxy_protocol_plain_listen: Vec<SocketAddr>,
}

/// The Prometheus/health listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable (tracing's default).
    #[default]
    Text,
    /// One JSON object per line, event fields at the top level.
    Json,
    /// `key=value` pairs.
    Logfmt,
}

/// Logging settings (`[log]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// HTTPS listener settings and limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub max_body_bytes: usize,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Serve `GET /benchmark/static` (1 KiB) as the benchmark baseline. Off by default.
    pub benchmark_static_route: bool,
}

impl Validator<'_> {
    pub(super) fn listen(
        &self,
        key: &str,
        addrs: &[String],
    ) -> Result<Vec<SocketAddr>, ConfigError> {
        if addrs.is_empty() {
            return Err(self.invalid(
                key,
                "no listen address",
                "give at least one address such as \"0.0.0.0:443\"",
            ));
        }
        addrs
            .iter()
            .map(|a| {
                a.parse::<SocketAddr>().map_err(|_| {
                    self.invalid(
                        key,
                        format!("`{a}` is not an IP:port socket address"),
                        "write addresses as \"0.0.0.0:443\" or \"[::]:443\"",
                    )
                })
            })
            .collect()
    }

    pub(super) fn server(&self, raw: file::ServerSection) -> Result<ServerConfig, ConfigError> {
        if raw.max_body_bytes < 1024 {
            return Err(self.invalid(
                "server.max_body_bytes",
                format!(
                    "{} bytes is too small for an Autodiscover request",
                    raw.max_body_bytes
                ),
                "use at least 1024 (the default is 65536)",
            ));
        }
        for (key, value) in [
            (
                "server.header_read_timeout_secs",
                raw.header_read_timeout_secs,
            ),
            ("server.request_timeout_secs", raw.request_timeout_secs),
            (
                "server.tls_handshake_timeout_secs",
                raw.tls_handshake_timeout_secs,
            ),
        ] {
            if value == 0 {
                return Err(self.invalid(
                    key,
                    "a timeout of 0 seconds",
                    "use a positive number of seconds",
                ));
            }
        }
        if raw.max_connections == 0 {
            return Err(self.invalid(
                "server.max_connections",
                "0 connections would refuse every client",
                "use a positive number (the default is 10000)",
            ));
        }
        Ok(ServerConfig {
            listen: self.listen("server.listen", &raw.listen)?,
            max_body_bytes: raw.max_body_bytes,
            header_read_timeout: Duration::from_secs(raw.header_read_timeout_secs),
            request_timeout: Duration::from_secs(raw.request_timeout_secs),
            tls_handshake_timeout: Duration::from_secs(raw.tls_handshake_timeout_secs),
            max_connections: raw.max_connections,
            shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
            benchmark_static_route: raw.benchmark_static_route,
        })
    }

    pub(super) fn optional_listen(
        &self,
        key: &str,
        addrs: &[String],
    ) -> Result<Vec<SocketAddr>, ConfigError> {
        if addrs.is_empty() {
            Ok(Vec::new())
        } else {
            self.listen(key, addrs)
        }
    }

    pub(super) fn proxy(&self, raw: file::ProxySection) -> Result<ProxyConfig, ConfigError> {
        let mut trusted = Vec::new();
        for (i, text) in raw.trusted.iter().enumerate() {
            let cidr = Cidr::parse(text).ok_or_else(|| {
                self.invalid(
                    &format!("proxy.trusted[{i}]"),
                    format!("`{text}` is not an IP address or CIDR network"),
                    "write networks as \"10.0.0.0/8\", \"192.0.2.7\" or \"fd00::/8\"",
                )
            })?;
            trusted.push(cidr);
        }
        let proxy = ProxyConfig {
            plain_listen: self.optional_listen("proxy.plain_listen", &raw.plain_listen)?,
            proxy_protocol_https_listen: self.optional_listen(
                "proxy.proxy_protocol_https_listen",
                &raw.proxy_protocol_https_listen,
            )?,
            proxy_protocol_plain_listen: self.optional_listen(
                "proxy.proxy_protocol_plain_listen",
                &raw.proxy_protocol_plain_listen,
            )?,
            trusted,
        };
        let has_pp = !proxy.proxy_protocol_https_listen.is_empty()
            || !proxy.proxy_protocol_plain_listen.is_empty();
        if has_pp && proxy.trusted.is_empty() {
            return Err(self.invalid(
                "proxy.trusted",
                "PROXY protocol listeners are configured but no proxy is trusted, so every connection would be refused",
                "list the addresses of your load balancers, e.g. trusted = [\"10.0.0.0/24\"]",
            ));
        }
        Ok(proxy)
    }

    pub(super) fn metrics(&self, raw: file::MetricsSection) -> Result<MetricsConfig, ConfigError> {
        let listen = raw.listen.parse::<SocketAddr>().map_err(|_| {
            self.invalid(
                "metrics.listen",
                format!("`{}` is not an IP:port socket address", raw.listen),
                "write e.g. \"127.0.0.1:9187\" (keep it off the public network)",
            )
        })?;
        Ok(MetricsConfig { listen })
    }

    pub(super) fn log(&self, raw: Option<file::LogSection>) -> Result<LogConfig, ConfigError> {
        let format = match raw.and_then(|l| l.format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some("logfmt") => LogFormat::Logfmt,
            Some(other) => {
                return Err(self.invalid(
                    "log.format",
                    format!("unknown format `{other}`"),
                    "use \"text\", \"json\" or \"logfmt\"",
                ))
            }
        };
        Ok(LogConfig { format })
    }
}
