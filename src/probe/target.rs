//! Name overrides for labs, with curl's syntax and meaning (pure):
//! `--resolve HOST:PORT:ADDR[,ADDR…]` pins the addresses of a name for one port, and
//! `--connect-to HOST1:PORT1:HOST2:PORT2` connects to another host and port while TLS
//! (SNI, certificate name) and the `Host` header keep the original name. A curl config
//! file (`curl -K`) with `resolve`, `connect-to` and `cacert` lines can be read as a map.

use std::net::IpAddr;

/// A `--resolve` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    pub host: String,
    pub port: u16,
    pub addrs: Vec<IpAddr>,
}

/// A `--connect-to` entry; empty fields are wildcards (HOST1, PORT1) or "unchanged"
/// (HOST2, PORT2), as in curl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub to_host: Option<String>,
    pub to_port: Option<u16>,
}

/// All overrides, plus a CA file named in a map file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub resolve: Vec<Resolve>,
    pub connect_to: Vec<ConnectTo>,
    /// `cacert` of a map file.
    pub ca_file: Option<String>,
}

/// Where to connect for a (host, port) of a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Host to resolve (or the address literal to use).
    pub host: String,
    pub port: u16,
    /// Addresses fixed by `--resolve` or an address literal; `None` means "ask DNS".
    pub addrs: Option<Vec<IpAddr>>,
    /// How the override applied, for the report.
    pub via: Vec<String>,
}

/// Splits on `:` outside `[...]` brackets (IPv6 literals).
fn split_fields(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut depth = 0u32;
    for c in text.chars() {
        match c {
            '[' => {
                depth += 1;
                push_char(&mut out, c);
            }
            ']' => {
                depth = depth.saturating_sub(1);
                push_char(&mut out, c);
            }
            ':' if depth == 0 => out.push(String::new()),
            _ => push_char(&mut out, c),
        }
    }
    out
}

fn push_char(out: &mut Vec<String>, c: char) {
    match out.last_mut() {
        Some(last) => last.push(c),
        None => out.push(c.to_string()),
    }
}

fn parse_port(text: &str, what: &str) -> Result<u16, String> {
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("`{text}` is not a port number ({what})"))
}

fn parse_addr(text: &str) -> Result<IpAddr, String> {
    let t = text.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    t.parse::<IpAddr>()
        .map_err(|_| format!("`{text}` is not an IP address"))
}

fn host_field(text: &str) -> String {
    let t = text.trim();
    t.strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Parses `HOST:PORT:ADDR[,ADDR…]`.
pub fn parse_resolve(text: &str) -> Result<Resolve, String> {
    let fields = split_fields(text);
    let [host, port, addrs] = fields.as_slice() else {
        return Err(format!(
            "`{text}`: expected HOST:PORT:ADDRESS[,ADDRESS...] (curl's --resolve syntax)"
        ));
    };
    let host = host_field(host);
    if host.is_empty() {
        return Err(format!("`{text}`: the host is empty"));
    }
    let addrs = addrs
        .split(',')
        .map(parse_addr)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Resolve {
        host,
        port: parse_port(port, "--resolve")?,
        addrs,
    })
}

/// Parses `HOST1:PORT1:HOST2:PORT2` (any field may be empty).
pub fn parse_connect_to(text: &str) -> Result<ConnectTo, String> {
    let fields = split_fields(text);
    let [h1, p1, h2, p2] = fields.as_slice() else {
        return Err(format!(
            "`{text}`: expected HOST1:PORT1:HOST2:PORT2 (curl's --connect-to syntax)"
        ));
    };
    let opt_host = |h: &str| Some(host_field(h)).filter(|h| !h.is_empty());
    let opt_port = |p: &str| -> Result<Option<u16>, String> {
        if p.trim().is_empty() {
            Ok(None)
        } else {
            parse_port(p, "--connect-to").map(Some)
        }
    };
    Ok(ConnectTo {
        host: opt_host(h1),
        port: opt_port(p1)?,
        to_host: opt_host(h2),
        to_port: opt_port(p2)?,
    })
}

/// Reads a curl config file (`curl -K`): `resolve`, `connect-to` and `cacert` lines in
/// the forms `name = "value"`, `name "value"`, `--name value`; other options are ignored
/// so that the same file can carry more curl settings.
pub fn parse_map_file(text: &str) -> Result<Overrides, String> {
    let mut out = Overrides::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.trim_start_matches('-');
        let split = line
            .find(|c: char| c == '=' || c == ':' || c.is_whitespace())
            .unwrap_or(line.len());
        let (name, rest) = line.split_at(split);
        let rest = rest.trim_start();
        let rest = rest
            .strip_prefix('=')
            .or_else(|| rest.strip_prefix(':'))
            .unwrap_or(rest)
            .trim();
        let value = unquote(rest);
        let at = |e: String| format!("line {}: {e}", n + 1);
        match name {
            "resolve" => out.resolve.push(parse_resolve(&value).map_err(at)?),
            "connect-to" => out.connect_to.push(parse_connect_to(&value).map_err(at)?),
            "cacert" => out.ca_file = Some(value),
            _ => {}
        }
    }
    Ok(out)
}

fn unquote(text: &str) -> String {
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return text.to_string();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Overrides {
    /// Adds the entries of another set (later entries lose to earlier ones, like curl).
    pub fn extend(&mut self, other: Overrides) {
        self.resolve.extend(other.resolve);
        self.connect_to.extend(other.connect_to);
        if self.ca_file.is_none() {
            self.ca_file = other.ca_file;
        }
    }

    /// Where to connect for `host:port`: `--connect-to` first, then `--resolve` for the
    /// resulting host and port, then an address literal; otherwise DNS.
    pub fn route(&self, host: &str, port: u16) -> Route {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let mut route = Route {
            host: host.clone(),
            port,
            addrs: None,
            via: Vec::new(),
        };
        if let Some(c) = self.connect_to.iter().find(|c| {
            c.host.as_deref().is_none_or(|h| h == host) && c.port.is_none_or(|p| p == port)
        }) {
            if let Some(h) = &c.to_host {
                route.host = h.clone();
            }
            if let Some(p) = c.to_port {
                route.port = p;
            }
            route.via.push(format!(
                "--connect-to {}:{}:{}:{}",
                c.host.as_deref().unwrap_or(""),
                c.port.map(|p| p.to_string()).unwrap_or_default(),
                c.to_host.as_deref().unwrap_or(""),
                c.to_port.map(|p| p.to_string()).unwrap_or_default()
            ));
        }
        if let Some(r) = self
            .resolve
            .iter()
            .find(|r| r.host == route.host && r.port == route.port)
        {
            route.addrs = Some(r.addrs.clone());
            let list: Vec<String> = r.addrs.iter().map(|a| a.to_string()).collect();
            route.via.push(format!(
                "--resolve {}:{}:{}",
                r.host,
                r.port,
                list.join(",")
            ));
        } else if let Ok(ip) = route.host.parse::<IpAddr>() {
            route.addrs = Some(vec![ip]);
        }
        route
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_entries_parse_like_curl() {
        let r = parse_resolve("autodiscover.contoso.lab:443:127.0.0.1,[::1]").unwrap();
        assert_eq!(r.host, "autodiscover.contoso.lab");
        assert_eq!(r.port, 443);
        assert_eq!(r.addrs.len(), 2);
        assert!(r.addrs[1].is_ipv6());
        assert!(parse_resolve("host:443").is_err());
        assert!(parse_resolve("host:x:127.0.0.1").is_err());
        assert!(parse_resolve("host:443:not-an-ip").is_err());
    }

    #[test]
    fn connect_to_entries_parse_with_wildcards() {
        let c = parse_connect_to("contoso.lab:443:127.0.0.1:8443").unwrap();
        assert_eq!(c.host.as_deref(), Some("contoso.lab"));
        assert_eq!(c.to_port, Some(8443));
        let c = parse_connect_to("::[::1]:").unwrap();
        assert_eq!(c.host, None);
        assert_eq!(c.port, None);
        assert_eq!(c.to_host.as_deref(), Some("::1"));
        assert_eq!(c.to_port, None);
        assert!(parse_connect_to("a:1:b").is_err());
    }

    #[test]
    fn routes_apply_connect_to_then_resolve_then_literals() {
        let mut o = Overrides::default();
        o.connect_to
            .push(parse_connect_to("contoso.lab:443:127.0.0.1:8443").unwrap());
        o.connect_to
            .push(parse_connect_to("mail.contoso.lab:443:backend.lab:9443").unwrap());
        o.resolve
            .push(parse_resolve("backend.lab:9443:10.0.0.7").unwrap());
        o.resolve
            .push(parse_resolve("autodiscover.contoso.lab:443:127.0.0.2").unwrap());

        let r = o.route("Contoso.Lab", 443);
        assert_eq!((r.host.as_str(), r.port), ("127.0.0.1", 8443));
        assert_eq!(r.addrs, Some(vec!["127.0.0.1".parse().unwrap()]));
        let r = o.route("mail.contoso.lab", 443);
        assert_eq!(r.addrs, Some(vec!["10.0.0.7".parse().unwrap()]));
        assert_eq!(r.via.len(), 2);
        let r = o.route("autodiscover.contoso.lab", 443);
        assert_eq!((r.host.as_str(), r.port), ("autodiscover.contoso.lab", 443));
        assert_eq!(r.addrs, Some(vec!["127.0.0.2".parse().unwrap()]));
        // Other ports of a mapped name are not mapped (curl semantics).
        let r = o.route("contoso.lab", 80);
        assert_eq!(r.addrs, None);
        assert!(r.via.is_empty());
    }

    #[test]
    fn curl_config_files_are_read() {
        let o = parse_map_file(
            "# lab\ncacert = \"/tmp/lab/ca.pem\"\nconnect-to = \"a.lab:443:127.0.0.1:8443\"\n--resolve b.lab:443:127.0.0.1\nsilent\nconnect-to: \"c.lab:80:127.0.0.1:8080\"\n",
        )
        .unwrap();
        assert_eq!(o.ca_file.as_deref(), Some("/tmp/lab/ca.pem"));
        assert_eq!(o.connect_to.len(), 2);
        assert_eq!(o.resolve.len(), 1);
        let err = parse_map_file("connect-to = \"broken\"\n").unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
    }
}
