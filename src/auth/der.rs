//! The sliver of DER that SPNEGO tokens and certificate signature algorithms need:
//! single-byte tags, definite lengths (short or long form up to 4 bytes), no indefinite
//! lengths, nothing read past the end.

/// Why DER could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DerError {
    #[error("DER truncated")]
    Truncated,
    #[error("DER length form not allowed")]
    BadLength,
    #[error("unexpected DER tag {0:#04x}")]
    UnexpectedTag(u8),
    #[error("trailing bytes after DER value")]
    Trailing,
}

/// One tag-length-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    /// The contents.
    pub value: &'a [u8],
    /// The whole encoding (tag, length and contents).
    pub raw: &'a [u8],
}

/// Reads consecutive TLVs from a slice.
#[derive(Debug, Clone)]
pub struct DerReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> DerReader<'a> {
    pub fn new(buf: &'a [u8]) -> DerReader<'a> {
        DerReader { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The tag of the next TLV, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn byte(&mut self) -> Result<u8, DerError> {
        let b = *self.buf.get(self.pos).ok_or(DerError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// The next TLV, whatever its tag.
    pub fn any(&mut self) -> Result<Tlv<'a>, DerError> {
        let start = self.pos;
        let tag = self.byte()?;
        if tag & 0x1f == 0x1f {
            return Err(DerError::UnexpectedTag(tag));
        }
        let first = self.byte()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(DerError::BadLength);
            }
            let mut len = 0usize;
            for _ in 0..n {
                len = (len << 8) | usize::from(self.byte()?);
            }
            len
        };
        let end = self.pos.checked_add(len).ok_or(DerError::Truncated)?;
        let value = self.buf.get(self.pos..end).ok_or(DerError::Truncated)?;
        let raw = self.buf.get(start..end).ok_or(DerError::Truncated)?;
        self.pos = end;
        Ok(Tlv { tag, value, raw })
    }

    /// The next TLV, which must have `tag`.
    pub fn expect(&mut self, tag: u8) -> Result<Tlv<'a>, DerError> {
        let tlv = self.any()?;
        if tlv.tag != tag {
            return Err(DerError::UnexpectedTag(tlv.tag));
        }
        Ok(tlv)
    }

    /// The next TLV if it has `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.any().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails unless everything was read.
    pub fn finish(&self) -> Result<(), DerError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DerError::Trailing)
        }
    }
}

/// Reads exactly one TLV with `tag` from `buf`, nothing after it.
pub fn single(buf: &[u8], tag: u8) -> Result<Tlv<'_>, DerError> {
    let mut r = DerReader::new(buf);
    let tlv = r.expect(tag)?;
    r.finish()?;
    Ok(tlv)
}

/// Encodes a TLV.
pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or(&[]);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_in_short_and_long_form() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let value = vec![7u8; len];
            let enc = tlv(0x04, &value);
            let t = single(&enc, 0x04).unwrap();
            assert_eq!(t.value.len(), len);
            assert_eq!(t.raw, &enc[..]);
        }
    }

    #[test]
    fn indefinite_truncated_and_trailing_encodings_are_errors() {
        assert_eq!(single(&[0x30, 0x80, 0, 0], 0x30), Err(DerError::BadLength));
        assert_eq!(
            single(&[0x30, 0x85, 1, 1, 1, 1, 1], 0x30),
            Err(DerError::BadLength)
        );
        assert_eq!(single(&[0x30, 0x05, 1], 0x30), Err(DerError::Truncated));
        assert_eq!(
            single(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], 0x30),
            Err(DerError::Truncated)
        );
        assert_eq!(single(&[0x30, 0x00, 0x00], 0x30), Err(DerError::Trailing));
        assert_eq!(
            single(&[0x31, 0x00], 0x30),
            Err(DerError::UnexpectedTag(0x31))
        );
        assert_eq!(
            single(&[0x1f, 0x00], 0x30),
            Err(DerError::UnexpectedTag(0x1f))
        );
        assert_eq!(single(&[], 0x30), Err(DerError::Truncated));
    }
}
