//! The error type of this crate: a kind, a message, and an optional source (DESIGN.md §6).

use std::error::Error as StdError;
use std::fmt;

/// A boxed error source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong. See [`CdnError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CdnErrorKind {
    /// A media URL is not an absolute `http(s)` URL.
    InvalidUrl,
    /// A server-supplied `full_url` points at a host outside the allowlist.
    HostNotAllowed,
    /// getuploadurl returned neither `upload_full_url` nor `upload_param`.
    NoUploadTarget,
    /// The CDN refused the upload with a 4xx status. Final: not retried.
    UploadRejected,
    /// Every upload attempt failed (5xx, a success status other than 200, no
    /// `x-encrypted-param`, or a transport error).
    UploadFailed,
    /// The CDN answered a download with a non-2xx status.
    DownloadFailed,
    /// The media is larger than the configured download cap; reading stopped there.
    TooLarge,
    /// The downloaded bytes could not be decrypted (wrong key, truncated data).
    Decrypt,
    /// The download contradicts the size or MD5 its message declares: most likely a wrong
    /// key that happened to pass the padding check, or corrupted data. Nothing was kept.
    Integrity,
    /// The media key could not be decoded.
    Key,
    /// The source file changed between hashing and sending it.
    SourceChanged,
    /// Local I/O failed: reading the source or writing the destination.
    Io,
    /// The HTTP transport failed (connect, TLS, timeout, connection reset).
    Http,
    /// The operating system's random number generator failed.
    Random,
}

/// An error of a CDN upload or download.
///
/// Shows what failed and what to do; never contains keys or the secret query parameters of
/// CDN URLs.
pub struct CdnError {
    kind: CdnErrorKind,
    message: String,
    status: Option<u16>,
    source: Option<BoxError>,
}

impl CdnError {
    pub(crate) fn new(kind: CdnErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: None,
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> CdnErrorKind {
        self.kind
    }

    /// The HTTP status of the CDN's answer, when the error comes from one.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The error message without the source chain.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for CdnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CdnError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("status", &self.status)
            .field("source", &self.source)
            .finish()
    }
}

/// Only this layer; the cause is in [`source()`](StdError::source) (reporters that walk the
/// chain print each fact once).
impl fmt::Display for CdnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for CdnError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<ilink_crypto::KeyError> for CdnError {
    fn from(e: ilink_crypto::KeyError) -> Self {
        Self::new(CdnErrorKind::Key, "the media key could not be decoded").with_source(e)
    }
}

impl From<ilink_crypto::RngError> for CdnError {
    fn from(e: ilink_crypto::RngError) -> Self {
        Self::new(
            CdnErrorKind::Random,
            "could not generate a media key or filekey",
        )
        .with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_this_layer_only() {
        let e = CdnError::new(CdnErrorKind::Decrypt, "could not decrypt")
            .with_source(ilink_crypto::CryptoError::BadPadding);
        assert_eq!(e.to_string(), "could not decrypt");
        assert!(
            e.source()
                .is_some_and(|s| s.to_string().starts_with("bad PKCS#7 padding"))
        );
        assert_eq!(e.kind(), CdnErrorKind::Decrypt);
        assert_eq!(e.status(), None);
        assert_eq!(
            CdnError::new(CdnErrorKind::UploadRejected, "x")
                .with_status(403)
                .status(),
            Some(403)
        );
    }
}
