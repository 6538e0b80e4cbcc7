use super::*;

fn cidrs(list: &[&str]) -> Vec<Cidr> {
    list.iter().map(|c| Cidr::parse(c).unwrap()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Feeds `bytes` the way the listener does: only as many bytes as the decoder asks for.
fn feed(bytes: &[u8]) -> (Result<Decoded, ProxyError>, usize) {
    let mut buf = Vec::new();
    loop {
        match decode(&buf) {
            Ok(Progress::Done(d)) => return (Ok(d), buf.len()),
            Ok(Progress::NeedMore(n)) => {
                assert!(n > 0);
                let Some(more) = bytes.get(buf.len()..buf.len() + n) else {
                    return (Err(ProxyError::NotProxyProtocol), buf.len());
                };
                buf.extend_from_slice(more);
            }
            Err(e) => return (Err(e), buf.len()),
        }
    }
}

#[test]
fn cidrs_parse_and_match_both_families() {
    let c = Cidr::parse("10.0.0.0/8").unwrap();
    assert!(c.contains(ip("10.1.2.3")));
    assert!(!c.contains(ip("11.0.0.1")));
    assert!(
        c.contains(ip("::ffff:10.9.9.9")),
        "IPv4-mapped IPv6 is IPv4"
    );
    let host = Cidr::parse("192.0.2.7").unwrap();
    assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
    let v6 = Cidr::parse("fd00::/8").unwrap();
    assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
    assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
    assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    assert!(!Cidr::parse("::/0").unwrap().contains(ip("8.8.8.8")));
    for bad in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/",
        "10.0.0/8",
        "x",
        "10.0.0.0/+8",
        "",
    ] {
        assert_eq!(Cidr::parse(bad), None, "{bad}");
    }
}

#[test]
fn forwarded_for_takes_the_right_most_untrusted_hop() {
    let trusted = cidrs(&["10.0.0.0/8"]);
    // The client sent a spoofed "1.1.1.1"; our proxy appended the real address.
    let got = client_from_forwarded_for(
        ip("10.0.0.5"),
        ["1.1.1.1, 203.0.113.9"].into_iter(),
        &trusted,
    );
    assert_eq!(got, ip("203.0.113.9"));
    // Two trusted proxies in a row are skipped.
    let got = client_from_forwarded_for(
        ip("10.0.0.5"),
        ["1.1.1.1, 198.51.100.2, 10.0.0.9"].into_iter(),
        &trusted,
    );
    assert_eq!(got, ip("198.51.100.2"));
    // Several header lines are one list, in order.
    let got = client_from_forwarded_for(
        ip("10.0.0.5"),
        ["1.1.1.1", "198.51.100.3", "10.0.0.9"].into_iter(),
        &trusted,
    );
    assert_eq!(got, ip("198.51.100.3"));
}

#[test]
fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let trusted = cidrs(&["10.0.0.0/8"]);
    let got = client_from_forwarded_for(ip("203.0.113.50"), ["10.0.0.1"].into_iter(), &trusted);
    assert_eq!(got, ip("203.0.113.50"));
    let got = client_from_forwarded_for(ip("203.0.113.50"), ["1.2.3.4"].into_iter(), &[]);
    assert_eq!(got, ip("203.0.113.50"));
}

#[test]
fn forwarded_for_stops_at_garbage_and_handles_ports_and_brackets() {
    let trusted = cidrs(&["10.0.0.0/8", "fd00::/8"]);
    let got = client_from_forwarded_for(
        ip("10.0.0.5"),
        ["1.1.1.1, unknown, 10.0.0.7"].into_iter(),
        &trusted,
    );
    assert_eq!(got, ip("10.0.0.7"));
    let got = client_from_forwarded_for(
        ip("10.0.0.5"),
        ["\"[2001:db8::1]:443\""].into_iter(),
        &trusted,
    );
    assert_eq!(got, ip("2001:db8::1"));
    let got = client_from_forwarded_for(ip("10.0.0.5"), ["192.0.2.1:5555"].into_iter(), &trusted);
    assert_eq!(got, ip("192.0.2.1"));
    // Only trusted hops: the left-most of them is the best we know.
    let got =
        client_from_forwarded_for(ip("10.0.0.5"), ["fd00::1, 10.0.0.6"].into_iter(), &trusted);
    assert_eq!(got, ip("fd00::1"));
    // Empty elements are skipped; an empty header changes nothing.
    let got = client_from_forwarded_for(ip("10.0.0.5"), [" , "].into_iter(), &trusted);
    assert_eq!(got, ip("10.0.0.5"));
}

#[test]
fn forwarded_proto_is_the_right_most_value() {
    assert_eq!(
        forwarded_proto(["http, HTTPS"].into_iter()).as_deref(),
        Some("https")
    );
    assert_eq!(
        forwarded_proto(["https", "http"].into_iter()).as_deref(),
        Some("http")
    );
    assert_eq!(forwarded_proto([].into_iter()), None);
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, http::HeaderValue::from_static(v));
    }
    h
}

#[test]
fn resolve_believes_headers_only_from_trusted_senders() {
    let trusted = cidrs(&["127.0.0.1/32"]);
    let plain = Link {
        peer: ip("127.0.0.1"),
        proxied_source: None,
        proxied_ssl: false,
        tls: false,
    };
    let h = headers(&[
        ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
        ("x-forwarded-proto", "https"),
    ]);
    let ctx = resolve(&plain, &h, &trusted);
    assert_eq!(ctx.client, ip("203.0.113.9"));
    assert!(ctx.secure && ctx.via_trusted_proxy);

    let ctx = resolve(&plain, &h, &cidrs(&["192.0.2.0/24"]));
    assert_eq!(ctx.client, ip("127.0.0.1"));
    assert!(!ctx.secure && !ctx.via_trusted_proxy);

    // L4 PROXY protocol: the HTTP headers come from the client itself.
    let l4 = Link {
        proxied_source: Some(ip("198.51.100.4")),
        ..plain
    };
    let ctx = resolve(&l4, &h, &trusted);
    assert_eq!(ctx.client, ip("198.51.100.4"));
    assert!(!ctx.secure);
    let ctx = resolve(
        &Link {
            proxied_ssl: true,
            ..l4
        },
        &HeaderMap::new(),
        &trusted,
    );
    assert!(ctx.secure);
    let ctx = resolve(&Link { tls: true, ..plain }, &HeaderMap::new(), &[]);
    assert!(ctx.secure && !ctx.via_trusted_proxy);
}

#[test]
fn proxy_v1_tcp4_and_tcp6_lines_decode() {
    let line = b"PROXY TCP4 192.0.2.10 192.0.2.1 56324 443\r\nGET / HTTP/1.1\r\n";
    let (d, read) = feed(line);
    let d = d.unwrap();
    assert_eq!(d.version, 1);
    assert_eq!(d.len, 43);
    assert_eq!(read, 43, "never reads past the header");
    assert_eq!(
        d.header,
        ProxyHeader::Proxied {
            source: sa("192.0.2.10:56324"),
            destination: sa("192.0.2.1:443"),
            ssl: false
        }
    );
    let (d, _) = feed(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n");
    assert_eq!(
        d.unwrap().header,
        ProxyHeader::Proxied {
            source: sa("[2001:db8::1]:1"),
            destination: sa("[2001:db8::2]:65535"),
            ssl: false
        }
    );
    let (d, read) = feed(b"PROXY UNKNOWN\r\n\x16\x03\x01");
    assert_eq!(d.unwrap().header, ProxyHeader::Unknown);
    assert_eq!(read, 15);
}

#[test]
fn proxy_v1_malformed_lines_are_refused() {
    let cases: [(&[u8], ProxyError); 8] = [
        (
            b"PROXY TCP4 192.0.2.10 192.0.2.1 56324\r\n",
            ProxyError::V1Malformed("destination port"),
        ),
        (
            b"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n",
            ProxyError::V1Malformed("address does not match the family"),
        ),
        (
            b"PROXY TCP4 192.0.2.10 192.0.2.1 70000 443\r\n",
            ProxyError::V1Malformed("bad port"),
        ),
        (
            b"PROXY TCP4 192.0.2.10 192.0.2.1 +1 443\r\n",
            ProxyError::V1Malformed("bad port"),
        ),
        (
            b"PROXY TCP4 192.0.2.10 192.0.2.1 1 443 x\r\n",
            ProxyError::V1Malformed("extra fields"),
        ),
        (
            b"PROXY UDP4 192.0.2.10 192.0.2.1 1 443\r\n",
            ProxyError::V1Malformed("unknown protocol family"),
        ),
        (b"GET / HTTP/1.1\r\n\r\n", ProxyError::NotProxyProtocol),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc",
            ProxyError::NotProxyProtocol,
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            feed(bytes).0,
            Err(want),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 200));
    assert_eq!(feed(&long).0, Err(ProxyError::V1TooLong));
}

#[test]
fn proxy_v2_ipv4_ipv6_local_and_ssl_tlv_decode() {
    let mut bytes = encode_v2(sa("203.0.113.7:40000"), sa("192.0.2.1:443"), &[]);
    let header_len = bytes.len();
    bytes.extend_from_slice(b"\x16\x03\x01");
    let (d, read) = feed(&bytes);
    let d = d.unwrap();
    assert_eq!((d.version, d.len, read), (2, header_len, header_len));
    assert_eq!(
        d.header,
        ProxyHeader::Proxied {
            source: sa("203.0.113.7:40000"),
            destination: sa("192.0.2.1:443"),
            ssl: false
        }
    );

    // PP2_TYPE_SSL: client = PP2_CLIENT_SSL, verify = 0, one sub-TLV (version "TLSv1.3").
    let mut ssl = vec![0x20, 0x00, 5 + 3 + 7, 0x01, 0, 0, 0, 0, 0x21, 0x00, 0x07];
    ssl.extend_from_slice(b"TLSv1.3");
    let bytes = encode_v2(sa("[2001:db8::5]:1234"), sa("[2001:db8::1]:80"), &ssl);
    assert_eq!(
        feed(&bytes).0.unwrap().header,
        ProxyHeader::Proxied {
            source: sa("[2001:db8::5]:1234"),
            destination: sa("[2001:db8::1]:80"),
            ssl: true
        }
    );

    let mut local = V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    assert_eq!(feed(&local).0.unwrap().header, ProxyHeader::Local);

    let mut unspec = V2_SIGNATURE.to_vec();
    unspec.extend_from_slice(&[0x21, 0x00, 0x00, 0x00]);
    assert_eq!(feed(&unspec).0.unwrap().header, ProxyHeader::Unknown);
}

#[test]
fn proxy_v2_malformed_headers_are_refused() {
    let good = encode_v2(sa("203.0.113.7:40000"), sa("192.0.2.1:443"), &[]);
    let with = |i: usize, b: u8| {
        let mut v = good.clone();
        v[i] = b;
        v
    };
    assert_eq!(feed(&with(12, 0x11)).0, Err(ProxyError::V2Version));
    assert_eq!(feed(&with(12, 0x22)).0, Err(ProxyError::V2Command));
    assert_eq!(feed(&with(13, 0x12)).0, Err(ProxyError::V2Transport));
    assert_eq!(feed(&with(5, b'X')).0, Err(ProxyError::NotProxyProtocol));
    // Length smaller than the family's address block.
    let mut short = good.clone();
    short[15] = 4;
    short.truncate(20);
    assert_eq!(feed(&short).0, Err(ProxyError::V2ShortAddress));
    // Length beyond the limit is refused before reading it.
    let mut huge = good.clone();
    huge[14] = 0xff;
    huge[15] = 0xff;
    assert_eq!(feed(&huge), (Err(ProxyError::V2TooLong(16 + 0xffff)), 16));
    // A TLV that runs past the end.
    let bad_tlv = encode_v2(
        sa("203.0.113.7:1"),
        sa("192.0.2.1:2"),
        &[0x20, 0x00, 0x09, 0x01],
    );
    assert_eq!(feed(&bad_tlv).0, Err(ProxyError::V2BadTlv));
}

#[test]
fn proxy_decoder_never_panics_on_arbitrary_prefixes() {
    // Cheap exhaustive-ish check: every prefix and every single-byte mutation of real headers.
    let seeds = [
        b"PROXY TCP4 192.0.2.10 192.0.2.1 56324 443\r\n".to_vec(),
        encode_v2(
            sa("[2001:db8::5]:1234"),
            sa("[2001:db8::1]:80"),
            &[0x20, 0, 1, 1],
        ),
    ];
    for seed in seeds {
        for cut in 0..=seed.len() {
            let _ = decode(&seed[..cut]);
        }
        for i in 0..seed.len() {
            for b in [0u8, 0x20, 0x7f, 0xff, b'\r', b'\n'] {
                let mut m = seed.clone();
                m[i] = b;
                let _ = feed(&m);
            }
        }
    }
}
