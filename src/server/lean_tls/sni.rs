//! The server name a TLS ClientHello asks for, read from the raw records the client sent.
//!
//! rustls's unbuffered server connection does not expose the SNI it acted on, and the
//! server needs it (the access log, and NTLM channel bindings are computed over the
//! certificate chosen by SNI). This reads the same field by the same rules rustls applies
//! (RFC 6066 `server_name`, one `host_name` entry, IP literals ignored, lower-cased), from a
//! copy of the bytes rustls is given, so both always agree when the handshake succeeds.
//! Pure: bytes in, answer out.

use rustls_pki_types::ServerName;

/// What the bytes read so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sni {
    /// The ClientHello is not complete yet.
    NeedMore,
    /// The ClientHello is complete (or the bytes are not one): the name, if any.
    Done(Option<String>),
}

/// rustls refuses handshake messages larger than this; so does this reader.
const MAX_HELLO: usize = 0xffff;
const HANDSHAKE_RECORD: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_NAME_EXTENSION: u16 = 0;
const HOST_NAME: u8 = 0;

/// Reads the SNI from the first bytes of a TLS connection (records, possibly several
/// carrying fragments of the ClientHello).
pub fn from_client_hello(bytes: &[u8]) -> Sni {
    let mut message = Vec::new();
    let mut records = Reader::new(bytes);
    loop {
        let Some(header) = records.take(5) else {
            return Sni::NeedMore;
        };
        let mut header = Reader::new(header);
        let (Some(content_type), Some(_version), Some(length)) =
            (header.u8(), header.u16(), header.u16())
        else {
            return Sni::Done(None);
        };
        if content_type != HANDSHAKE_RECORD {
            return Sni::Done(None);
        }
        let Some(fragment) = records.take(usize::from(length)) else {
            return Sni::NeedMore;
        };
        message.extend_from_slice(fragment);
        let mut hs = Reader::new(&message);
        let (Some(kind), Some(len)) = (hs.u8(), hs.u24()) else {
            continue;
        };
        if kind != CLIENT_HELLO || len > MAX_HELLO {
            return Sni::Done(None);
        }
        if let Some(body) = hs.take(len) {
            return Sni::Done(server_name(body));
        }
    }
}

/// The SNI in a ClientHello body (after the 4-byte handshake header).
fn server_name(body: &[u8]) -> Option<String> {
    let mut r = Reader::new(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    let mut extensions = Reader::new(r.vec16()?);
    while !extensions.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        if kind == SERVER_NAME_EXTENSION {
            return host_name(data);
        }
    }
    None
}

fn host_name(extension: &[u8]) -> Option<String> {
    let mut list = Reader::new(Reader::new(extension).vec16()?);
    let mut found: Option<&[u8]> = None;
    while !list.is_empty() {
        if list.u8()? != HOST_NAME {
            // An unknown name type has an unknown encoding: nothing after it can be read.
            break;
        }
        let name = list.vec16()?;
        if found.is_some() {
            // Two host names: rustls refuses the handshake.
            return None;
        }
        found = Some(name);
    }
    match ServerName::try_from(found?).ok()? {
        ServerName::DnsName(name) => Some(name.to_lowercase_owned().as_ref().to_string()),
        _ => None,
    }
}

/// A cursor over bytes whose reads fail instead of running past the end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(
            usize::from(*b.first()?) << 16 | usize::from(*b.get(1)?) << 8 | usize::from(*b.get(2)?),
        )
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello with the given extensions, as one handshake message (no record header).
    fn hello_message(extensions: &[u8]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(extensions);
        let mut message = vec![CLIENT_HELLO];
        message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        message.extend_from_slice(&body);
        message
    }

    fn sni_extension(names: &[(u8, &[u8])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (kind, name) in names {
            list.push(*kind);
            list.extend_from_slice(&(name.len() as u16).to_be_bytes());
            list.extend_from_slice(name);
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        let mut ext = SERVER_NAME_EXTENSION.to_be_bytes().to_vec();
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(&data);
        ext
    }

    fn records(message: &[u8], fragment: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in message.chunks(fragment) {
            out.extend_from_slice(&[HANDSHAKE_RECORD, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn the_host_name_is_read_and_lower_cased() {
        let mut extensions = vec![0, 10, 0, 2, 0, 29]; // supported_groups first
        extensions.extend(sni_extension(&[(0, b"AutoDiscover.Contoso.com")]));
        let bytes = records(&hello_message(&extensions), 16_384);
        assert_eq!(
            from_client_hello(&bytes),
            Sni::Done(Some("autodiscover.contoso.com".into()))
        );
    }

    #[test]
    fn a_hello_fragmented_over_records_is_joined() {
        let bytes = records(&hello_message(&sni_extension(&[(0, b"a.example")])), 7);
        assert_eq!(
            from_client_hello(&bytes),
            Sni::Done(Some("a.example".into()))
        );
        for cut in 0..bytes.len() {
            assert_eq!(
                from_client_hello(&bytes[..cut]),
                Sni::NeedMore,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn no_sni_ip_literals_and_two_names_give_none() {
        let none = records(&hello_message(&[]), 16_384);
        assert_eq!(from_client_hello(&none), Sni::Done(None));
        let ip = records(&hello_message(&sni_extension(&[(0, b"192.0.2.1")])), 16_384);
        assert_eq!(from_client_hello(&ip), Sni::Done(None));
        let two = sni_extension(&[(0, b"a.example"), (0, b"b.example")]);
        assert_eq!(
            from_client_hello(&records(&hello_message(&two), 16_384)),
            Sni::Done(None)
        );
    }

    #[test]
    fn bytes_that_are_not_a_client_hello_give_none() {
        assert_eq!(
            from_client_hello(b"GET / HTTP/1.1\r\n\r\n"),
            Sni::Done(None)
        );
        let mut server_hello = hello_message(&[]);
        server_hello[0] = 2;
        assert_eq!(
            from_client_hello(&records(&server_hello, 16_384)),
            Sni::Done(None)
        );
        let truncated_inside = records(&[CLIENT_HELLO, 0, 0, 3, 3, 3, 0], 16_384);
        assert_eq!(from_client_hello(&truncated_inside), Sni::Done(None));
    }
}
