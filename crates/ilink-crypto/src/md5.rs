//! MD5 helpers for `rawfilemd5` and the random `filekey` (docs/protocol.md §12.1).

use std::fmt;

use md5::{Digest, Md5};

use crate::error::RngError;

/// Streaming MD5, for the `rawfilemd5` of a file read in chunks. Also counts the bytes, which
/// is the `rawsize` of the same request.
///
/// ```
/// use ilink_crypto::{Md5Hasher, md5_hex};
///
/// let mut h = Md5Hasher::new();
/// h.update(b"hello ");
/// h.update(b"world");
/// assert_eq!(h.len(), 11);
/// assert_eq!(h.finish_hex(), md5_hex(b"hello world"));
/// ```
#[derive(Clone, Default)]
pub struct Md5Hasher {
    inner: Md5,
    len: u64,
}

impl fmt::Debug for Md5Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Md5Hasher")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Md5Hasher {
    /// A new hasher.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `data` into the hash.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len = self.len.saturating_add(data.len() as u64);
    }

    /// Number of bytes hashed so far.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been hashed yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The 16-byte digest.
    #[must_use]
    pub fn finish(self) -> [u8; 16] {
        self.inner.finalize().into()
    }

    /// The digest as 32 lowercase hex digits, the form of `rawfilemd5`.
    #[must_use]
    pub fn finish_hex(self) -> String {
        hex::encode(self.finish())
    }
}

/// MD5 of `data` as 32 lowercase hex digits.
#[must_use]
pub fn md5_hex(data: &[u8]) -> String {
    let mut h = Md5Hasher::new();
    h.update(data);
    h.finish_hex()
}

/// A new `filekey` for getuploadurl: 16 random bytes as 32 lowercase hex digits, as the
/// official client makes one for every upload.
///
/// # Errors
/// [`RngError`] if the operating system cannot provide random bytes.
pub fn new_filekey() -> Result<String, RngError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(RngError::new)?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1321_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            md5_hex(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            ),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut h = Md5Hasher::new();
        assert!(h.is_empty());
        for c in data.chunks(33) {
            h.update(c);
        }
        assert_eq!(h.len(), 1000);
        assert_eq!(h.finish_hex(), md5_hex(&data));
    }

    #[test]
    fn filekey_shape() {
        let a = new_filekey().unwrap();
        let b = new_filekey().unwrap();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(a, b);
    }
}
