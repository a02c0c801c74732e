//! What a message declares about its media, checked against what a download produced
//! (docs/protocol.md §8.3: `file_item.len` and `file_item.md5`, `video_item.video_md5`).
//!
//! AES-128-ECB with PKCS#7 has no authentication: with a wrong key, about one download in 256
//! still ends in valid padding and "decrypts" to garbage. The declared plaintext size and MD5
//! are the only way to tell; a download that contradicts them fails with
//! [`CdnErrorKind::Integrity`](crate::CdnErrorKind::Integrity).

use std::fmt;

use ilink_crypto::Md5Hasher;

use crate::error::{CdnError, CdnErrorKind};

/// The plaintext size and MD5 a message declares for its media. Empty by default (nothing is
/// checked).
///
/// ```
/// use ilink_cdn::Expected;
/// let e = Expected::new().with_len(9000).with_md5_hex("9e107d9d372bb6826bd81d3542a419d6");
/// assert_eq!(e.len(), Some(9000));
/// assert!(e.md5().is_some());
/// // A malformed MD5 is not a check (it cannot be compared).
/// assert!(Expected::new().with_md5_hex("not hex").md5().is_none());
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Expected {
    len: Option<u64>,
    md5: Option<[u8; 16]>,
}

impl Expected {
    /// Nothing declared.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The plaintext size in bytes.
    #[must_use]
    pub fn with_len(mut self, len: u64) -> Self {
        self.len = Some(len);
        self
    }

    /// The plaintext MD5 as 32 hex digits (either case, surrounding space ignored). Anything
    /// else is ignored: it cannot be compared.
    #[must_use]
    pub fn with_md5_hex(mut self, hex: &str) -> Self {
        self.md5 = parse_md5(hex);
        self
    }

    /// The plaintext MD5.
    #[must_use]
    pub fn with_md5(mut self, md5: [u8; 16]) -> Self {
        self.md5 = Some(md5);
        self
    }

    /// The declared size.
    #[must_use]
    pub fn len(&self) -> Option<u64> {
        self.len
    }

    /// The declared MD5.
    #[must_use]
    pub fn md5(&self) -> Option<[u8; 16]> {
        self.md5
    }

    /// Whether nothing is declared.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len.is_none() && self.md5.is_none()
    }
}

impl fmt::Debug for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expected")
            .field("len", &self.len)
            .field("md5", &self.md5.map(hex))
            .finish()
    }
}

fn parse_md5(s: &str) -> Option<[u8; 16]> {
    let s = s.trim().as_bytes();
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = (*pair.first()? as char).to_digit(16)?;
        let lo = (*pair.get(1)? as char).to_digit(16)?;
        *out.get_mut(i)? = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

fn hex(b: [u8; 16]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks a download as it goes: the size as soon as it is exceeded, the MD5 at the end.
pub(crate) struct Checker {
    expected: Expected,
    hasher: Option<Md5Hasher>,
    seen: u64,
}

impl Checker {
    pub(crate) fn new(expected: Expected) -> Self {
        Self {
            expected,
            hasher: expected.md5.map(|_| Md5Hasher::new()),
            seen: 0,
        }
    }

    /// The ciphertext (or plain body) size announced by the CDN, checked before reading.
    pub(crate) fn check_body_len(&self, body_len: u64, encrypted: bool) -> Result<(), CdnError> {
        let Some(len) = self.expected.len else {
            return Ok(());
        };
        let want = if encrypted {
            ilink_crypto::ciphertext_len(len)
        } else {
            len
        };
        if body_len == want {
            return Ok(());
        }
        Err(mismatch(format!(
            "the CDN serves {body_len} bytes, but a {len}-byte file takes {want}"
        )))
    }

    /// Plaintext produced so far.
    pub(crate) fn update(&mut self, plain: &[u8]) -> Result<(), CdnError> {
        self.seen += plain.len() as u64;
        if let Some(h) = &mut self.hasher {
            h.update(plain);
        }
        match self.expected.len {
            Some(len) if self.seen > len => Err(mismatch(format!(
                "the media is larger than the {len} bytes its message declares"
            ))),
            _ => Ok(()),
        }
    }

    /// The end of the plaintext.
    pub(crate) fn finish(self) -> Result<(), CdnError> {
        if let Some(len) = self.expected.len
            && self.seen != len
        {
            return Err(mismatch(format!(
                "the media is {} bytes, but its message declares {len}",
                self.seen
            )));
        }
        if let (Some(want), Some(h)) = (self.expected.md5, self.hasher) {
            let got = h.finish();
            if got != want {
                return Err(mismatch(format!(
                    "the media's MD5 is {}, but its message declares {}",
                    hex(got),
                    hex(want)
                )));
            }
        }
        Ok(())
    }
}

fn mismatch(detail: String) -> CdnError {
    CdnError::new(
        CdnErrorKind::Integrity,
        format!("the downloaded media is not what its message declares: {detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_forms() {
        let want = Some([0xabu8; 16]);
        assert_eq!(parse_md5(&"ab".repeat(16)), want);
        assert_eq!(parse_md5(&format!(" {} ", "AB".repeat(16))), want);
        assert_eq!(parse_md5(&"ab".repeat(15)), None);
        assert_eq!(parse_md5(&"zz".repeat(16)), None);
        assert_eq!(parse_md5("é".repeat(16).as_str()), None);
    }

    #[test]
    fn checks() {
        let data = b"hello world";
        let md5 = ilink_crypto::md5_hex(data);
        let ok = Expected::new().with_len(11).with_md5_hex(&md5);
        let mut c = Checker::new(ok);
        c.check_body_len(16, true).unwrap();
        c.update(data).unwrap();
        c.finish().unwrap();

        let c = Checker::new(ok);
        assert_eq!(
            c.check_body_len(32, true).unwrap_err().kind(),
            CdnErrorKind::Integrity
        );
        let mut c = Checker::new(ok);
        assert!(c.update(b"hello world!").is_err());
        let mut c = Checker::new(ok);
        c.update(b"hello").unwrap();
        assert!(c.finish().is_err());
        let mut c = Checker::new(Expected::new().with_md5_hex(&md5));
        c.update(b"hello worle").unwrap();
        let e = c.finish().unwrap_err();
        assert!(e.to_string().contains(&md5), "{e}");
        // Nothing declared: nothing checked.
        let mut c = Checker::new(Expected::new());
        c.check_body_len(5, true).unwrap();
        c.update(data).unwrap();
        c.finish().unwrap();
    }
}
