//! The 16-byte media key and its wire encodings (docs/protocol.md §12.4).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{KeyError, RngError};

/// Length of a media key in bytes.
pub const KEY_LEN: usize = 16;

const DECODE_ANY_PADDING: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
/// Standard alphabet, padding optional.
const STANDARD_LAX: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, DECODE_ANY_PADDING);
/// URL-safe alphabet, padding optional.
const URL_SAFE_LAX: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, DECODE_ANY_PADDING);

/// Longest base64 text we try to decode: 64 characters decode to at most 48 bytes, more than
/// either valid form (16 raw bytes, 32 hex characters) needs.
const MAX_BASE64_LEN: usize = 64;

/// An AES-128 media key: 16 bytes.
///
/// The bytes are zeroized on drop, and `Debug` prints `MediaKey(<redacted>)`. There is no
/// `Display`: pick the wire encoding you need ([`MediaKey::to_hex`] for
/// `getuploadurl.aeskey`, [`MediaKey::to_base64_of_hex`] for `CDNMedia.aes_key`).
///
/// ```
/// use ilink_crypto::MediaKey;
///
/// // The key of a captured upload, as getuploadurl and sendmessage carried it.
/// let key = MediaKey::from_hex("49009329a07bd051433b8a96781c72ef")?;
/// assert_eq!(key.to_base64_of_hex(), "NDkwMDkzMjlhMDdiZDA1MTQzM2I4YTk2NzgxYzcyZWY=");
/// assert_eq!(MediaKey::from_cdn_aes_key("NDkwMDkzMjlhMDdiZDA1MTQzM2I4YTk2NzgxYzcyZWY=")?, key);
/// assert_eq!(format!("{key:?}"), "MediaKey(<redacted>)");
/// # Ok::<(), ilink_crypto::KeyError>(())
/// ```
#[derive(Clone)]
pub struct MediaKey([u8; KEY_LEN]);

impl Drop for MediaKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for MediaKey {}

impl fmt::Debug for MediaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MediaKey(<redacted>)")
    }
}

impl PartialEq for MediaKey {
    /// Compares without an early exit, so timing does not reveal where keys differ.
    fn eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for MediaKey {}

impl From<[u8; KEY_LEN]> for MediaKey {
    fn from(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }
}

impl FromStr for MediaKey {
    type Err = KeyError;

    /// Same as [`MediaKey::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn is_hex_digits(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_hexdigit)
}

impl MediaKey {
    /// A new random key from the operating system's random number generator, as the
    /// official client makes one for every upload.
    ///
    /// # Errors
    /// [`RngError`] if the operating system cannot provide random bytes.
    pub fn generate() -> Result<Self, RngError> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(RngError::new)?;
        Ok(Self(bytes))
    }

    /// A key from its 16 raw bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A key from a slice of raw bytes.
    ///
    /// # Errors
    /// [`KeyError::WrongByteLength`] unless `bytes` has exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| KeyError::WrongByteLength { len: bytes.len() })?;
        Ok(Self(arr))
    }

    /// The 16 raw key bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Decodes 32 hex digits (either case; surrounding whitespace ignored), the form of
    /// `image_item.aeskey` and `getuploadurl.aeskey`.
    ///
    /// # Errors
    /// [`KeyError::Empty`] or [`KeyError::InvalidHex`].
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut bytes = [0u8; KEY_LEN];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| KeyError::InvalidHex {
            len: text.chars().count(),
        })?;
        Ok(Self(bytes))
    }

    /// Decodes an inbound `CDNMedia.aes_key` by the rule of docs/protocol.md §12.4: base64-decode
    /// (standard or URL-safe alphabet, padded or not); 16 bytes are the key; 32 ASCII hex
    /// characters are hex-decoded to the key; anything else is an error.
    ///
    /// # Errors
    /// [`KeyError::Empty`], [`KeyError::InvalidBase64`] or [`KeyError::WrongDecodedLength`].
    pub fn from_cdn_aes_key(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        let invalid = KeyError::InvalidBase64 {
            len: text.chars().count(),
        };
        if text.len() > MAX_BASE64_LEN {
            return Err(invalid);
        }
        let mut buf = Zeroizing::new([0u8; MAX_BASE64_LEN / 4 * 3]);
        let n = STANDARD_LAX
            .decode_slice(text, &mut buf[..])
            .or_else(|_| URL_SAFE_LAX.decode_slice(text, &mut buf[..]))
            .map_err(|_| invalid)?;
        let decoded = buf.get(..n).unwrap_or_default();
        match decoded.len() {
            KEY_LEN => Self::from_slice(decoded),
            32 if is_hex_digits(decoded) => {
                let mut bytes = [0u8; KEY_LEN];
                hex::decode_to_slice(decoded, &mut bytes)
                    .map_err(|_| KeyError::WrongDecodedLength { len: n })?;
                Ok(Self(bytes))
            }
            len => Err(KeyError::WrongDecodedLength { len }),
        }
    }

    /// Decodes a key in any of its known text forms: 32 hex digits, or base64 of the 16 raw
    /// bytes or of the 32 hex characters (standard or URL-safe, padded or not). Handy for
    /// keys typed by people; for wire fields prefer the specific decoder.
    ///
    /// # Errors
    /// [`KeyError::Empty`], [`KeyError::InvalidBase64`] or [`KeyError::WrongDecodedLength`].
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let trimmed = text.trim();
        if trimmed.len() == 2 * KEY_LEN && is_hex_digits(trimmed.as_bytes()) {
            Self::from_hex(trimmed)
        } else {
            Self::from_cdn_aes_key(trimmed)
        }
    }

    /// Chooses and decodes the key of an inbound image, as the official client does:
    /// `image_item.aeskey` (hex) first, else `image_item.media.aes_key` (§12.4).
    ///
    /// Empty strings count as absent. If `aeskey` is present but malformed, a valid
    /// `media.aes_key` is used instead (the official client would decrypt with garbage);
    /// if neither decodes, the error of `aeskey` is returned.
    ///
    /// Returns `Ok(None)` when the image has no key at all: its CDN bytes are then the
    /// plain image (§12.3).
    ///
    /// # Errors
    /// The [`KeyError`] of the key that was chosen.
    pub fn from_image_item(
        aeskey_hex: Option<&str>,
        media_aes_key: Option<&str>,
    ) -> Result<Option<Self>, KeyError> {
        fn present(s: Option<&str>) -> Option<&str> {
            s.map(str::trim).filter(|s| !s.is_empty())
        }
        let media = present(media_aes_key);
        match (present(aeskey_hex), media) {
            (Some(hex), media) => match Self::from_hex(hex) {
                Ok(key) => Ok(Some(key)),
                Err(err) => match media.map(Self::from_cdn_aes_key) {
                    Some(Ok(key)) => Ok(Some(key)),
                    _ => Err(err),
                },
            },
            (None, Some(media)) => Self::from_cdn_aes_key(media).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The key as 32 lowercase hex digits: the form of `getuploadurl.aeskey`.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The key as base64 (standard, padded) of its 32 lowercase hex digits, 44 characters:
    /// the form the official client sends in `CDNMedia.aes_key`.
    #[must_use]
    pub fn to_base64_of_hex(&self) -> String {
        let hex = Zeroizing::new(self.to_hex());
        STANDARD.encode(hex.as_bytes())
    }

    /// The key as base64 (standard, padded) of its 16 raw bytes, 24 characters: the other
    /// inbound form of `CDNMedia.aes_key`.
    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = MediaKey::from_bytes([0xab; 16]);
        let dbg = format!("{key:?}");
        assert_eq!(dbg, "MediaKey(<redacted>)");
        assert!(!dbg.contains("ab"));
    }

    #[test]
    fn generate_gives_distinct_keys() {
        let a = MediaKey::generate().unwrap();
        let b = MediaKey::generate().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn from_slice_checks_length() {
        assert_eq!(
            MediaKey::from_slice(&[1; 15]),
            Err(KeyError::WrongByteLength { len: 15 })
        );
        assert_eq!(MediaKey::from_slice(&[1; 16]).unwrap().as_bytes(), &[1; 16]);
    }
}
