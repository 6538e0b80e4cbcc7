//! Record protection after the handshake, for connections rustls has handed over.
//!
//! Why this exists: rustls's session state costs ~3 KB per connection for the whole life of
//! a keep-alive connection, and the expanded AEAD keys inside it ~560 B per direction. Once
//! the handshake is done a connection needs only its two traffic keys and sequence numbers.
//! rustls hands exactly those over for kernel TLS (`dangerous_into_kernel_connection`); this
//! module does the record protection kTLS would do, in user space and free of I/O: it opens
//! and seals records over byte slices (RFC 8446 §5.2 for TLS 1.3, RFC 5288 and RFC 7905 for
//! TLS 1.2's AEAD suites). The expanded keys are built on first use and dropped when the
//! connection parks, so a parked connection keeps ~150 bytes of TLS state.
//!
//! The handshake itself, certificates, tickets and key derivation stay in rustls.

use std::ops::Range;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::ConnectionTrafficSecrets;
use zeroize::Zeroize;

/// Record header: type, version, length.
pub const HEADER_LEN: usize = 5;
const TAG_LEN: usize = 16;
/// Largest plaintext fragment (RFC 8446 §5.1, RFC 5246 §6.2.1).
pub const MAX_FRAGMENT: usize = 1 << 14;
/// TLS 1.2 AES-GCM carries the per-record part of its nonce in the record (RFC 5288 §3).
const EXPLICIT_NONCE_LEN: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

impl Cipher {
    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Cipher::Aes128Gcm => &aead::AES_128_GCM,
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::Chacha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }
}

/// Record content types (RFC 8446 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    ChangeCipherSpec,
    Alert,
    Handshake,
    ApplicationData,
}

impl ContentType {
    fn code(self) -> u8 {
        match self {
            ContentType::ChangeCipherSpec => 20,
            ContentType::Alert => 21,
            ContentType::Handshake => 22,
            ContentType::ApplicationData => 23,
        }
    }

    fn from_code(code: u8) -> Option<ContentType> {
        match code {
            20 => Some(ContentType::ChangeCipherSpec),
            21 => Some(ContentType::Alert),
            22 => Some(ContentType::Handshake),
            23 => Some(ContentType::ApplicationData),
            _ => None,
        }
    }
}

/// Why a record, or the connection, is refused. Each maps to the alert sent to the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("unexpected TLS record or message after the handshake")]
    UnexpectedMessage,
    #[error("TLS record failed authentication")]
    BadRecordMac,
    #[error("TLS record exceeds the maximum length")]
    RecordOverflow,
    #[error("malformed TLS message after the handshake")]
    DecodeError,
    #[error("invalid TLS key update")]
    IllegalParameter,
    #[error("TLS renegotiation is not supported")]
    Renegotiation,
    #[error("the peer sent TLS alert {0}")]
    PeerAlert(u8),
    #[error("TLS sequence numbers or key lifetime exhausted")]
    KeysExhausted,
    #[error("unsupported cipher after the TLS handshake")]
    Unsupported,
}

impl RecordError {
    /// The fatal alert to send, if any (none in answer to the peer's own alert).
    pub fn alert(self) -> Option<u8> {
        match self {
            RecordError::UnexpectedMessage => Some(10),
            RecordError::BadRecordMac => Some(20),
            RecordError::RecordOverflow => Some(22),
            RecordError::Renegotiation => Some(40),
            RecordError::IllegalParameter => Some(47),
            RecordError::DecodeError => Some(50),
            RecordError::KeysExhausted | RecordError::Unsupported => Some(80),
            RecordError::PeerAlert(_) => None,
        }
    }
}

/// A record opened in place: its inner type, where its plaintext lies in the buffer given
/// to [`RecordLayer::open`], and how many bytes the record took.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub content_type: ContentType,
    pub plaintext: Range<usize>,
    pub consumed: usize,
}

/// One direction's traffic key, IV and sequence number.
pub struct Keys {
    cipher: Cipher,
    key: [u8; 32],
    iv: [u8; 12],
    seq: u64,
    /// The key schedule ring works with; rebuilt from `key` after the connection parks.
    expanded: Option<Box<LessSafeKey>>,
}

impl Keys {
    /// Takes the secrets rustls extracted, with the sequence number to continue from.
    pub fn new(secrets: ConnectionTrafficSecrets, seq: u64) -> Result<Keys, RecordError> {
        let (cipher, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Cipher::Aes128Gcm, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Cipher::Aes256Gcm, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (Cipher::Chacha20Poly1305, key, iv)
            }
            _ => return Err(RecordError::Unsupported),
        };
        Keys::from_parts(cipher, key.as_ref(), iv.as_ref(), seq)
    }

    pub fn from_parts(
        cipher: Cipher,
        key: &[u8],
        iv: &[u8],
        seq: u64,
    ) -> Result<Keys, RecordError> {
        if key.len() != cipher.algorithm().key_len() || iv.len() != 12 {
            return Err(RecordError::Unsupported);
        }
        let mut keys = Keys {
            cipher,
            key: [0; 32],
            iv: [0; 12],
            seq,
            expanded: None,
        };
        keys.key
            .get_mut(..key.len())
            .ok_or(RecordError::Unsupported)?
            .copy_from_slice(key);
        keys.iv.copy_from_slice(iv);
        Ok(keys)
    }

    fn expanded(&mut self) -> Result<&LessSafeKey, RecordError> {
        let key = match self.expanded.take() {
            Some(key) => key,
            None => {
                let algorithm = self.cipher.algorithm();
                let raw = self.key.get(..algorithm.key_len()).unwrap_or_default();
                let unbound =
                    UnboundKey::new(algorithm, raw).map_err(|_| RecordError::Unsupported)?;
                Box::new(LessSafeKey::new(unbound))
            }
        };
        Ok(self.expanded.insert(key))
    }

    /// The nonce for the current sequence number: the IV XOR the big-endian sequence
    /// number (RFC 8446 §5.3; TLS 1.2 uses the same construction, RFC 7905 §2, and rustls
    /// derives its AES-GCM explicit nonces this way too).
    fn nonce(&self) -> [u8; 12] {
        let mut nonce = self.iv;
        for (n, s) in nonce.iter_mut().skip(4).zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }

    /// Refuses to protect another record once the sequence number cannot move on: a wrap
    /// would reuse a nonce.
    fn check_seq(&self) -> Result<(), RecordError> {
        match self.seq {
            u64::MAX => Err(RecordError::KeysExhausted),
            _ => Ok(()),
        }
    }

    fn advance(&mut self) {
        self.seq = self.seq.saturating_add(1);
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn release(&mut self) {
        self.expanded = None;
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        // Do not leave traffic keys in freed memory.
        self.key.zeroize();
        self.iv.zeroize();
    }
}

/// Both directions of a connection's record protection.
pub struct RecordLayer {
    version: Version,
    pub rx: Keys,
    pub tx: Keys,
}

impl RecordLayer {
    pub fn new(version: Version, rx: Keys, tx: Keys) -> RecordLayer {
        RecordLayer { version, rx, tx }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Drops the expanded keys; the next record rebuilds them.
    pub fn release_expanded(&mut self) {
        self.rx.release();
        self.tx.release();
    }

    /// Opens the record at the start of `buf` in place, or `None` if it is not complete
    /// yet. A record that fails any check is an error: the connection cannot go on.
    pub fn open(&mut self, buf: &mut [u8]) -> Result<Option<Opened>, RecordError> {
        let Some(&[outer, major, minor, len_hi, len_lo]) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        let outer = ContentType::from_code(outer).ok_or(RecordError::UnexpectedMessage)?;
        let overhead_limit = match self.version {
            Version::Tls13 => 256,
            Version::Tls12 => 2048,
        };
        if major != 3 {
            return Err(RecordError::DecodeError);
        }
        if len > MAX_FRAGMENT + overhead_limit {
            return Err(RecordError::RecordOverflow);
        }
        let consumed = HEADER_LEN + len;
        let Some(record) = buf.get_mut(..consumed) else {
            return Ok(None);
        };
        self.rx.check_seq()?;
        let opened = match self.version {
            Version::Tls13 => {
                // Every protected record travels as application data (RFC 8446 §5.2).
                if outer != ContentType::ApplicationData {
                    return Err(RecordError::UnexpectedMessage);
                }
                self.open_tls13(record)?
            }
            Version::Tls12 => {
                if minor != 3 {
                    return Err(RecordError::DecodeError);
                }
                if outer == ContentType::ChangeCipherSpec {
                    return Err(RecordError::UnexpectedMessage);
                }
                self.open_tls12(outer, record)?
            }
        };
        if opened.plaintext.len() > MAX_FRAGMENT {
            return Err(RecordError::RecordOverflow);
        }
        Ok(Some(opened))
    }

    fn open_tls13(&mut self, record: &mut [u8]) -> Result<Opened, RecordError> {
        let nonce = Nonce::assume_unique_for_key(self.rx.nonce());
        let (header, body) = record.split_at_mut(HEADER_LEN);
        let inner_len = self
            .rx
            .expanded()?
            .open_in_place(nonce, Aad::from(&*header), body)
            .map_err(|_| RecordError::BadRecordMac)?
            .len();
        self.rx.advance();
        // Padding does not lift the size limit: content, type and zeros together (§5.4).
        if inner_len > MAX_FRAGMENT + 1 {
            return Err(RecordError::RecordOverflow);
        }
        // The inner type is the last non-zero byte; zeros after it are padding.
        let inner = body.get(..inner_len).unwrap_or_default();
        let type_at = inner
            .iter()
            .rposition(|&b| b != 0)
            .ok_or(RecordError::UnexpectedMessage)?;
        let content_type = inner
            .get(type_at)
            .copied()
            .and_then(ContentType::from_code)
            .ok_or(RecordError::UnexpectedMessage)?;
        if content_type == ContentType::ChangeCipherSpec {
            return Err(RecordError::UnexpectedMessage);
        }
        Ok(Opened {
            content_type,
            plaintext: HEADER_LEN..HEADER_LEN + type_at,
            consumed: record.len(),
        })
    }

    fn open_tls12(
        &mut self,
        content_type: ContentType,
        record: &mut [u8],
    ) -> Result<Opened, RecordError> {
        let code = content_type.code();
        let body = record.get_mut(HEADER_LEN..).unwrap_or_default();
        let (nonce, explicit) = match self.rx.cipher {
            Cipher::Chacha20Poly1305 => (self.rx.nonce(), 0),
            Cipher::Aes128Gcm | Cipher::Aes256Gcm => {
                // Salt from the key block, the rest from the record.
                let mut nonce = self.rx.iv;
                let carried = body
                    .get(..EXPLICIT_NONCE_LEN)
                    .ok_or(RecordError::BadRecordMac)?;
                nonce[4..].copy_from_slice(carried);
                (nonce, EXPLICIT_NONCE_LEN)
            }
        };
        let plain_len = body
            .len()
            .checked_sub(explicit + TAG_LEN)
            .ok_or(RecordError::BadRecordMac)?;
        let aad = tls12_aad(self.rx.seq, code, plain_len);
        let sealed = body.get_mut(explicit..).unwrap_or_default();
        self.rx
            .expanded()?
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), sealed)
            .map_err(|_| RecordError::BadRecordMac)?;
        self.rx.advance();
        let start = HEADER_LEN + explicit;
        Ok(Opened {
            content_type,
            plaintext: start..start + plain_len,
            consumed: record.len(),
        })
    }

    /// Seals `data` as records of `content_type` appended to `out`, at most
    /// [`MAX_FRAGMENT`] bytes of plaintext each. Empty data yields no record.
    pub fn seal(
        &mut self,
        content_type: ContentType,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        for fragment in data.chunks(MAX_FRAGMENT) {
            self.seal_one(content_type, fragment, out)?;
        }
        Ok(())
    }

    fn seal_one(
        &mut self,
        content_type: ContentType,
        fragment: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        self.tx.check_seq()?;
        let nonce = self.tx.nonce();
        let start = out.len();
        let tag = match self.version {
            Version::Tls13 => {
                let len = fragment.len() + 1 + TAG_LEN;
                let header = record_header(ContentType::ApplicationData.code(), len);
                out.reserve(HEADER_LEN + len);
                out.extend_from_slice(&header);
                out.extend_from_slice(fragment);
                out.push(content_type.code());
                let sealed = out.get_mut(start + HEADER_LEN..).unwrap_or_default();
                self.tx.expanded()?.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(header),
                    sealed,
                )
            }
            Version::Tls12 => {
                let explicit = match self.tx.cipher {
                    Cipher::Chacha20Poly1305 => 0,
                    Cipher::Aes128Gcm | Cipher::Aes256Gcm => EXPLICIT_NONCE_LEN,
                };
                let len = explicit + fragment.len() + TAG_LEN;
                let header = record_header(content_type.code(), len);
                out.reserve(HEADER_LEN + len);
                out.extend_from_slice(&header);
                out.extend_from_slice(nonce.get(12 - explicit..).unwrap_or_default());
                out.extend_from_slice(fragment);
                let aad = tls12_aad(self.tx.seq, content_type.code(), fragment.len());
                let sealed = out
                    .get_mut(start + HEADER_LEN + explicit..)
                    .unwrap_or_default();
                self.tx.expanded()?.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    sealed,
                )
            }
        };
        match tag {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                self.tx.advance();
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(RecordError::Unsupported)
            }
        }
    }
}

fn record_header(content_type: u8, len: usize) -> [u8; HEADER_LEN] {
    let [hi, lo] = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
    [content_type, 3, 3, hi, lo]
}

/// TLS 1.2's additional data: sequence number, type, version, plaintext length.
fn tls12_aad(seq: u64, content_type: u8, plain_len: usize) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8..11].copy_from_slice(&[content_type, 3, 3]);
    let [hi, lo] = u16::try_from(plain_len).unwrap_or(u16::MAX).to_be_bytes();
    aad[11] = hi;
    aad[12] = lo;
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const CIPHERS: [Cipher; 3] = [
        Cipher::Aes128Gcm,
        Cipher::Aes256Gcm,
        Cipher::Chacha20Poly1305,
    ];

    fn keys(cipher: Cipher, fill: u8, seq: u64) -> Keys {
        let key = vec![fill; cipher.algorithm().key_len()];
        Keys::from_parts(cipher, &key, &[fill ^ 0x5a; 12], seq).unwrap()
    }

    /// Two ends whose keys match: what `a` seals (keys filled with 2), `b` opens.
    fn ends(version: Version, cipher: Cipher) -> (RecordLayer, RecordLayer) {
        let a = RecordLayer::new(version, keys(cipher, 1, 0), keys(cipher, 2, 0));
        let b = RecordLayer::new(version, keys(cipher, 2, 0), keys(cipher, 1, 0));
        (a, b)
    }

    fn every_end() -> Vec<(Version, Cipher)> {
        [Version::Tls12, Version::Tls13]
            .into_iter()
            .flat_map(|v| CIPHERS.map(|c| (v, c)))
            .collect()
    }

    fn open_all(layer: &mut RecordLayer, mut wire: Vec<u8>) -> Vec<(ContentType, Vec<u8>)> {
        let mut got = Vec::new();
        while !wire.is_empty() {
            let opened = layer.open(&mut wire).unwrap().expect("a whole record");
            got.push((opened.content_type, wire[opened.plaintext.clone()].to_vec()));
            wire.drain(..opened.consumed);
        }
        got
    }

    #[test]
    fn sealed_records_open_on_every_version_and_cipher_and_are_fragmented_at_16_kib() {
        for (version, cipher) in every_end() {
            let (mut a, mut b) = ends(version, cipher);
            let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
            let mut wire = Vec::new();
            a.seal(ContentType::ApplicationData, &data, &mut wire)
                .unwrap();
            a.seal(ContentType::Alert, &[1, 0], &mut wire).unwrap();
            let got = open_all(&mut b, wire);
            let sizes: Vec<usize> = got.iter().map(|(_, p)| p.len()).collect();
            assert_eq!(sizes, [16_384, 16_384, 7_232, 2], "{version:?} {cipher:?}");
            assert_eq!(got[..3].concat_payloads(), data);
            assert_eq!(got[3], (ContentType::Alert, vec![1, 0]));
            assert_eq!((a.tx.seq(), b.rx.seq()), (4, 4));
        }
    }

    trait Payloads {
        fn concat_payloads(&self) -> Vec<u8>;
    }

    impl Payloads for [(ContentType, Vec<u8>)] {
        fn concat_payloads(&self) -> Vec<u8> {
            self.iter().flat_map(|(_, p)| p.clone()).collect()
        }
    }

    #[test]
    fn any_changed_byte_replay_or_reordering_fails_authentication() {
        for (version, cipher) in every_end() {
            let (mut a, _) = ends(version, cipher);
            let mut wire = Vec::new();
            a.seal(ContentType::ApplicationData, b"first", &mut wire)
                .unwrap();
            let first_len = wire.len();
            a.seal(ContentType::ApplicationData, b"second", &mut wire)
                .unwrap();
            // Every byte after the type and version: length, nonce, ciphertext, tag.
            for at in 3..first_len {
                let (_, mut b) = ends(version, cipher);
                let mut tampered = wire[..first_len].to_vec();
                tampered[at] ^= 0x01;
                let result = b.open(&mut tampered);
                assert!(
                    matches!(result, Err(_) | Ok(None)),
                    "{version:?} {cipher:?}: byte {at} changed was accepted"
                );
            }
            // The second record first (reordered), or the first twice (replayed).
            let (_, mut b) = ends(version, cipher);
            let mut second = wire[first_len..].to_vec();
            assert_eq!(b.open(&mut second), Err(RecordError::BadRecordMac));
            let (_, mut b) = ends(version, cipher);
            let mut first = wire[..first_len].to_vec();
            b.open(&mut first.clone()).unwrap().unwrap();
            assert_eq!(b.open(&mut first), Err(RecordError::BadRecordMac));
        }
    }

    #[test]
    fn incomplete_records_wait_and_oversized_or_foreign_ones_are_refused() {
        for (version, cipher) in every_end() {
            let (mut a, mut b) = ends(version, cipher);
            let mut wire = Vec::new();
            a.seal(ContentType::ApplicationData, b"hello", &mut wire)
                .unwrap();
            for cut in 0..wire.len() {
                assert_eq!(b.open(&mut wire[..cut].to_vec()), Ok(None));
            }
            let limit = match version {
                Version::Tls13 => MAX_FRAGMENT + 256,
                Version::Tls12 => MAX_FRAGMENT + 2048,
            };
            let [hi, lo] = u16::try_from(limit + 1).unwrap().to_be_bytes();
            assert_eq!(
                b.open(&mut [23, 3, 3, hi, lo]),
                Err(RecordError::RecordOverflow)
            );
            assert_eq!(
                b.open(&mut [99, 3, 3, 0, 1, 0]),
                Err(RecordError::UnexpectedMessage)
            );
            // Outside the handshake, change_cipher_spec is never valid.
            assert_eq!(
                b.open(&mut [20, 3, 3, 0, 1, 1]),
                Err(RecordError::UnexpectedMessage)
            );
        }
        // TLS 1.3 protects every record as application data.
        let (_, mut b) = ends(Version::Tls13, Cipher::Aes128Gcm);
        assert_eq!(
            b.open(&mut [21, 3, 3, 0, 2, 1, 0]),
            Err(RecordError::UnexpectedMessage)
        );
    }

    /// A TLS 1.3 record built by hand from RFC 8446 §5.2, with `padding` zeros after the
    /// inner type.
    fn tls13_record(keys: &Keys, inner: &[u8], padding: usize) -> Vec<u8> {
        let mut body = inner.to_vec();
        body.resize(inner.len() + padding, 0);
        let header = record_header(23, body.len() + TAG_LEN);
        let key =
            LessSafeKey::new(UnboundKey::new(keys.cipher.algorithm(), &keys.key[..16]).unwrap());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(keys.nonce()),
                Aad::from(header),
                &mut body,
            )
            .unwrap();
        [&header[..], &body, tag.as_ref()].concat()
    }

    #[test]
    fn tls13_padding_is_removed_and_a_record_without_a_type_is_refused() {
        let sender = keys(Cipher::Aes128Gcm, 2, 0);
        let (_, mut b) = ends(Version::Tls13, Cipher::Aes128Gcm);
        let mut padded = tls13_record(&sender, b"data\x17", 100);
        let opened = b.open(&mut padded).unwrap().unwrap();
        assert_eq!(opened.content_type, ContentType::ApplicationData);
        assert_eq!(&padded[opened.plaintext], b"data");
        // An empty application data record is allowed (RFC 8446 §5.1).
        let sender = keys(Cipher::Aes128Gcm, 2, 1);
        let mut empty = tls13_record(&sender, b"\x17", 0);
        let opened = b.open(&mut empty).unwrap().unwrap();
        assert!(opened.plaintext.is_empty());
        let sender = keys(Cipher::Aes128Gcm, 2, 2);
        let mut all_zero = tls13_record(&sender, b"", 20);
        assert_eq!(b.open(&mut all_zero), Err(RecordError::UnexpectedMessage));
        // Content, type and padding together may not exceed 2^14 + 1 bytes.
        let sender = keys(Cipher::Aes128Gcm, 2, 3);
        let mut padded_too_far = tls13_record(&sender, b"data\x17", MAX_FRAGMENT);
        assert_eq!(
            b.open(&mut padded_too_far),
            Err(RecordError::RecordOverflow)
        );
    }

    #[test]
    fn the_last_sequence_number_is_never_used() {
        for (version, cipher) in every_end() {
            let mut a = RecordLayer::new(version, keys(cipher, 2, 0), keys(cipher, 1, u64::MAX));
            let mut wire = Vec::new();
            assert_eq!(
                a.seal(ContentType::ApplicationData, b"x", &mut wire),
                Err(RecordError::KeysExhausted)
            );
            assert!(wire.is_empty());
        }
    }

    #[test]
    fn released_keys_are_rebuilt_on_the_next_record() {
        let (mut a, mut b) = ends(Version::Tls13, Cipher::Chacha20Poly1305);
        let mut wire = Vec::new();
        a.seal(ContentType::ApplicationData, b"one", &mut wire)
            .unwrap();
        a.release_expanded();
        b.release_expanded();
        assert!(a.tx.expanded.is_none() && b.rx.expanded.is_none());
        a.seal(ContentType::ApplicationData, b"two", &mut wire)
            .unwrap();
        let got = open_all(&mut b, wire);
        assert_eq!(got.concat_payloads(), b"onetwo");
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        assert!(Keys::from_parts(Cipher::Aes256Gcm, &[0; 16], &[0; 12], 0).is_err());
        assert!(Keys::from_parts(Cipher::Aes128Gcm, &[0; 16], &[0; 8], 0).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

        /// The stable-toolchain twin of `fuzz/fuzz_targets/tls_records.rs`.
        #[test]
        fn any_bytes_are_refused_or_awaited_and_any_data_round_trips(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20_000),
        ) {
            for (version, cipher) in every_end() {
                let (mut a, mut b) = ends(version, cipher);
                let mut wire = data.clone();
                let _ = b.open(&mut wire);
                let (_, mut b) = ends(version, cipher);
                let mut sealed = Vec::new();
                a.seal(ContentType::ApplicationData, &data, &mut sealed).unwrap();
                let got = open_all(&mut b, sealed);
                proptest::prop_assert!(got.concat_payloads() == data);
            }
        }
    }
}
