//! Reverse-proxy facts, pure: trusted-proxy CIDRs, the client address from
//! `X-Forwarded-For` (right-most untrusted hop, never the left-most), `X-Forwarded-Proto`,
//! and PROXY protocol v1/v2 header decoding. No sockets here; `listener.rs` does the reads.
//!
//! References: HAProxy "The PROXY protocol" versions 1 & 2 (haproxy.org/download/3.0/doc/
//! proxy-protocol.txt); RFC 7239 §5.2 for why the left-most XFF entry is client-controlled.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::HeaderMap;

use crate::config::Cidr;
use crate::server::endpoints::ClientContext;

/// True when `ip` is in any of `trusted`.
pub fn is_trusted(trusted: &[Cidr], ip: IpAddr) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

/// Most `X-Forwarded-For` hops examined; a longer chain stops at the last trusted hop.
const MAX_HOPS: usize = 64;

/// Parses one `X-Forwarded-For` element: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:443`,
/// optionally in double quotes. `unknown` and obfuscated identifiers give `None`.
pub fn parse_forwarded_ip(element: &str) -> Option<IpAddr> {
    let e = element.trim().trim_matches('"');
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = e.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    e.parse::<SocketAddr>().ok().map(|s| s.ip().to_canonical())
}

/// The client address behind `peer` given the `X-Forwarded-For` header values (in header
/// order). Walks from the right: every hop appended by a trusted proxy is skipped, and the
/// first untrusted address is the client. The left part of the header is whatever the client
/// sent and is never believed. An untrusted `peer` makes the header meaningless.
pub fn client_from_forwarded_for<'a>(
    peer: IpAddr,
    values: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(trusted, peer) {
        return peer;
    }
    let mut client = peer;
    let hops = values.rev().flat_map(|v| v.rsplit(',')).take(MAX_HOPS);
    for element in hops {
        if element.trim().is_empty() {
            continue;
        }
        match parse_forwarded_ip(element) {
            Some(ip) => {
                client = ip;
                if !is_trusted(trusted, ip) {
                    return ip;
                }
            }
            // Garbage where a trusted proxy should have written an address: stop at the
            // last address we can vouch for.
            None => return client,
        }
    }
    client
}

/// The right-most `X-Forwarded-Proto` value (set by the nearest proxy), lower-case.
pub fn forwarded_proto<'a>(values: impl DoubleEndedIterator<Item = &'a str>) -> Option<String> {
    values
        .rev()
        .flat_map(|v| v.rsplit(','))
        .map(str::trim)
        .find(|v| !v.is_empty())
        .map(str::to_ascii_lowercase)
}

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The TCP peer.
    pub peer: IpAddr,
    /// The source address from a PROXY protocol header, when there was one.
    pub proxied_source: Option<IpAddr>,
    /// PROXY v2 `PP2_TYPE_SSL` said the client connected over TLS.
    pub proxied_ssl: bool,
    /// We terminated TLS on this connection.
    pub tls: bool,
}

/// Resolves the client of one request. HTTP headers are believed only when the party that
/// wrote them (the PROXY source, or else the TCP peer) is a trusted proxy: with L4 PROXY
/// protocol the HTTP headers come from the client itself.
pub fn resolve(link: &Link, headers: &HeaderMap, trusted: &[Cidr]) -> ClientContext {
    let sender = link.proxied_source.unwrap_or(link.peer).to_canonical();
    let text = |name: &'static str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
    };
    let mut ctx = ClientContext {
        client: sender,
        secure: link.tls || link.proxied_ssl,
        via_trusted_proxy: link.proxied_source.is_some(),
    };
    if is_trusted(trusted, sender) {
        let xff = text("x-forwarded-for");
        if !xff.is_empty() {
            ctx.client = client_from_forwarded_for(sender, xff.iter().copied(), trusted);
            ctx.via_trusted_proxy = true;
        }
        if let Some(proto) = forwarded_proto(text("x-forwarded-proto").iter().copied()) {
            ctx.via_trusted_proxy = true;
            if proto == "https" {
                ctx.secure = true;
            }
        }
    }
    ctx
}

// ---------------------------------------------------------------------------------------
// PROXY protocol

/// The 12-byte signature that starts a PROXY v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 line including CRLF (spec §2.1).
const V1_MAX: usize = 107;
/// Largest v2 header we accept (16 fixed bytes + addresses + TLVs). Real proxies send a few
/// hundred bytes at most; this bounds memory per pending connection.
pub const V2_MAX: usize = 16 + 2048;
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_CLIENT_SSL: u8 = 0x01;

/// What a PROXY header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// v2 LOCAL: the proxy's own connection (health check); use the real peer.
    Local,
    /// v1 `UNKNOWN` or a v2 family we do not map (UNSPEC, UNIX): use the real peer.
    Unknown,
    /// The original client connection.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
        /// v2 `PP2_TYPE_SSL` with `PP2_CLIENT_SSL` set.
        ssl: bool,
    },
}

/// A complete header and how many bytes it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub header: ProxyHeader,
    pub version: u8,
    pub len: usize,
}

/// Result of feeding the bytes read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Read exactly this many more bytes, then call again (never reads past the header).
    NeedMore(usize),
    Done(Decoded),
}

/// Why a PROXY header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("the connection does not start with a PROXY protocol header")]
    NotProxyProtocol,
    #[error("PROXY v1 line longer than 107 bytes")]
    V1TooLong,
    #[error("malformed PROXY v1 line: {0}")]
    V1Malformed(&'static str),
    #[error("PROXY v2 version nibble is not 2")]
    V2Version,
    #[error("PROXY v2 command is neither LOCAL nor PROXY")]
    V2Command,
    #[error("PROXY v2 datagram transport is not supported")]
    V2Transport,
    #[error("PROXY v2 header of {0} bytes exceeds the limit")]
    V2TooLong(usize),
    #[error("PROXY v2 address block shorter than its family needs")]
    V2ShortAddress,
    #[error("PROXY v2 TLV runs past the header")]
    V2BadTlv,
}

/// Decodes a PROXY v1 or v2 header from the bytes read so far (`buf` starts at the first
/// byte of the connection). Start with an empty buffer.
pub fn decode(buf: &[u8]) -> Result<Progress, ProxyError> {
    // 8 bytes are always safe to read: the shortest v1 line is 15 bytes, v2 has 16 fixed.
    if buf.len() < 8 {
        let prefix_ok = b"PROXY ".starts_with(buf.get(..buf.len().min(6)).unwrap_or(buf))
            || V2_SIGNATURE.starts_with(buf);
        if !prefix_ok {
            return Err(ProxyError::NotProxyProtocol);
        }
        return Ok(Progress::NeedMore(8 - buf.len()));
    }
    if buf.starts_with(b"PROXY ") {
        decode_v1(buf)
    } else if V2_SIGNATURE.starts_with(buf.get(..12).unwrap_or(buf)) {
        decode_v2(buf)
    } else {
        Err(ProxyError::NotProxyProtocol)
    }
}

fn decode_v1(buf: &[u8]) -> Result<Progress, ProxyError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_MAX {
            return Err(ProxyError::V1TooLong);
        }
        // The line ends somewhere: read one byte at a time so nothing after it is consumed.
        return Ok(Progress::NeedMore(1));
    };
    let len = end + 2;
    if len > V1_MAX {
        return Err(ProxyError::V1TooLong);
    }
    let line = buf
        .get(..end)
        .and_then(|l| std::str::from_utf8(l).ok())
        .ok_or(ProxyError::V1Malformed("not ASCII"))?;
    let mut words = line.split(' ');
    let _proxy = words.next();
    let header = match words.next() {
        Some("UNKNOWN") => ProxyHeader::Unknown,
        Some(family @ ("TCP4" | "TCP6")) => {
            let mut next = |what: &'static str| words.next().ok_or(ProxyError::V1Malformed(what));
            let (src, dst) = (next("source address")?, next("destination address")?);
            let (sport, dport) = (next("source port")?, next("destination port")?);
            if words.next().is_some() {
                return Err(ProxyError::V1Malformed("extra fields"));
            }
            let ip = |s: &str| -> Result<IpAddr, ProxyError> {
                let ip = if family == "TCP4" {
                    s.parse::<Ipv4Addr>().map(IpAddr::V4)
                } else {
                    s.parse::<Ipv6Addr>().map(IpAddr::V6)
                };
                ip.map_err(|_| ProxyError::V1Malformed("address does not match the family"))
            };
            let port = |s: &str| -> Result<u16, ProxyError> {
                if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ProxyError::V1Malformed("bad port"));
                }
                s.parse::<u16>()
                    .map_err(|_| ProxyError::V1Malformed("bad port"))
            };
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(src)?, port(sport)?),
                destination: SocketAddr::new(ip(dst)?, port(dport)?),
                ssl: false,
            }
        }
        _ => return Err(ProxyError::V1Malformed("unknown protocol family")),
    };
    Ok(Progress::Done(Decoded {
        header,
        version: 1,
        len,
    }))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

fn decode_v2(buf: &[u8]) -> Result<Progress, ProxyError> {
    if buf.len() < 16 {
        return Ok(Progress::NeedMore(16 - buf.len()));
    }
    if buf.get(..12) != Some(&V2_SIGNATURE[..]) {
        return Err(ProxyError::NotProxyProtocol);
    }
    let ver_cmd = buf.get(12).copied().unwrap_or(0);
    let fam = buf.get(13).copied().unwrap_or(0);
    let body_len = usize::from(be16(buf, 14).unwrap_or(0));
    let total = 16 + body_len;
    if total > V2_MAX {
        return Err(ProxyError::V2TooLong(total));
    }
    if buf.len() < total {
        return Ok(Progress::NeedMore(total - buf.len()));
    }
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::V2Version);
    }
    let body = buf.get(16..total).ok_or(ProxyError::V2ShortAddress)?;
    let done = |header| {
        Ok(Progress::Done(Decoded {
            header,
            version: 2,
            len: total,
        }))
    };
    match ver_cmd & 0x0f {
        0x0 => return done(ProxyHeader::Local),
        0x1 => {}
        _ => return Err(ProxyError::V2Command),
    }
    if fam & 0x0f == 0x2 {
        return Err(ProxyError::V2Transport);
    }
    let (source, destination, addr_len) = match fam >> 4 {
        0x1 => {
            let a = body.get(..12).ok_or(ProxyError::V2ShortAddress)?;
            let ip = |at: usize| -> Option<IpAddr> {
                let o: [u8; 4] = a.get(at..at + 4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(o)))
            };
            let (src, dst) = ip(0).zip(ip(4)).ok_or(ProxyError::V2ShortAddress)?;
            let (sp, dp) = be16(a, 8)
                .zip(be16(a, 10))
                .ok_or(ProxyError::V2ShortAddress)?;
            (SocketAddr::new(src, sp), SocketAddr::new(dst, dp), 12)
        }
        0x2 => {
            let a = body.get(..36).ok_or(ProxyError::V2ShortAddress)?;
            let ip = |at: usize| -> Option<IpAddr> {
                let o: [u8; 16] = a.get(at..at + 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(o)))
            };
            let (src, dst) = ip(0).zip(ip(16)).ok_or(ProxyError::V2ShortAddress)?;
            let (sp, dp) = be16(a, 32)
                .zip(be16(a, 34))
                .ok_or(ProxyError::V2ShortAddress)?;
            (SocketAddr::new(src, sp), SocketAddr::new(dst, dp), 36)
        }
        // UNSPEC, UNIX or unknown families: the address says nothing useful to us.
        _ => return done(ProxyHeader::Unknown),
    };
    let ssl = tls_flag(body.get(addr_len..).unwrap_or_default())?;
    done(ProxyHeader::Proxied {
        source,
        destination,
        ssl,
    })
}

/// Walks the TLVs after the address block; true when `PP2_TYPE_SSL` has `PP2_CLIENT_SSL`.
fn tls_flag(mut tlvs: &[u8]) -> Result<bool, ProxyError> {
    let mut ssl = false;
    while !tlvs.is_empty() {
        let kind = tlvs.first().copied().ok_or(ProxyError::V2BadTlv)?;
        let len = usize::from(be16(tlvs, 1).ok_or(ProxyError::V2BadTlv)?);
        let value = tlvs.get(3..3 + len).ok_or(ProxyError::V2BadTlv)?;
        if kind == PP2_TYPE_SSL {
            let client = value.first().copied().ok_or(ProxyError::V2BadTlv)?;
            ssl = client & PP2_CLIENT_SSL != 0;
        }
        tlvs = tlvs.get(3 + len..).unwrap_or_default();
    }
    Ok(ssl)
}

/// Encodes a v2 PROXY header (for tests and tools; the server only decodes).
pub fn encode_v2(source: SocketAddr, destination: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x21);
    let mut addrs = Vec::new();
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11);
            addrs.extend_from_slice(&s.ip().octets());
            addrs.extend_from_slice(&d.ip().octets());
            addrs.extend_from_slice(&s.port().to_be_bytes());
            addrs.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            out.push(0x21);
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            addrs.extend_from_slice(&v6(s).octets());
            addrs.extend_from_slice(&v6(d).octets());
            addrs.extend_from_slice(&s.port().to_be_bytes());
            addrs.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    addrs.extend_from_slice(tlvs);
    let len = u16::try_from(addrs.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&addrs);
    out
}

#[cfg(test)]
mod tests;
