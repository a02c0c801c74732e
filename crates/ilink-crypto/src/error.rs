//! Error types of this crate.

use std::fmt;

/// Why a ciphertext could not be decrypted.
///
/// None of these carry key material or plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// The ciphertext was empty. A PKCS#7 ciphertext is always at least one block (16 bytes),
    /// even for an empty file.
    Empty,
    /// The ciphertext length is not a multiple of the 16-byte AES block, so it was truncated
    /// or is not AES-128-ECB ciphertext at all.
    NotBlockAligned {
        /// The length that was seen, in bytes.
        len: u64,
    },
    /// The last block does not end in valid PKCS#7 padding. This almost always means the
    /// wrong key was used (or the data is not encrypted).
    BadPadding,
    /// A caller-supplied buffer has no room for the padded ciphertext.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str(
                "ciphertext is empty: AES-128-ECB/PKCS#7 ciphertext is at least 16 bytes; \
                 the download was probably cut short",
            ),
            Self::NotBlockAligned { len } => write!(
                f,
                "ciphertext length {len} is not a multiple of 16: the data was truncated \
                 or is not AES-128-ECB ciphertext",
            ),
            Self::BadPadding => f.write_str(
                "bad PKCS#7 padding after decryption: the media key is probably wrong \
                 (check which key encoding was used) or the data is not encrypted",
            ),
            Self::BufferTooSmall { needed, got } => write!(
                f,
                "buffer too small for the padded ciphertext: need {needed} bytes, have {got}",
            ),
        }
    }
}

impl std::error::Error for CryptoError {}

/// Why a media key could not be decoded.
///
/// The message never contains the key text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The key text was empty (or only whitespace).
    Empty,
    /// A hex key must be exactly 32 hex digits (16 bytes).
    InvalidHex {
        /// Length of the text that was given, in characters.
        len: usize,
    },
    /// The text is neither 32 hex digits nor valid base64 (standard or URL-safe alphabet,
    /// padded or not).
    InvalidBase64 {
        /// Length of the text that was given, in characters.
        len: usize,
    },
    /// The base64 decoded fine, but to neither 16 raw bytes nor 32 hex characters.
    WrongDecodedLength {
        /// Number of bytes the base64 decoded to.
        len: usize,
    },
    /// A key given as raw bytes did not have 16 bytes.
    WrongByteLength {
        /// Number of bytes given.
        len: usize,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("media key is empty"),
            Self::InvalidHex { len } => write!(
                f,
                "media key is not 32 hex digits (got {len} characters); \
                 image_item.aeskey must be the 16-byte key in hex",
            ),
            Self::InvalidBase64 { len } => write!(
                f,
                "media key ({len} characters) is neither 32 hex digits nor valid base64",
            ),
            Self::WrongDecodedLength { len } => write!(
                f,
                "media key base64 decodes to {len} bytes; expected 16 raw bytes \
                 or 32 hex characters",
            ),
            Self::WrongByteLength { len } => {
                write!(f, "media key must be 16 bytes, got {len}")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// The operating system's random number generator failed.
#[derive(Debug)]
pub struct RngError(getrandom::Error);

impl RngError {
    pub(crate) fn new(err: getrandom::Error) -> Self {
        Self(err)
    }
}

impl fmt::Display for RngError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The OS error itself is the source.
        f.write_str("the operating system's random number generator failed")
    }
}

impl std::error::Error for RngError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
