//! The one error type of this crate.

use std::error::Error as StdError;
use std::fmt;

/// A boxed error source, as carried inside [`HttpError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong with an HTTP exchange. See [`HttpError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request could not be built: a malformed URL, header name or value.
    /// Nothing was sent.
    InvalidRequest,
    /// No TCP connection could be opened to the server (refused, unreachable, DNS failure).
    /// Nothing was sent.
    Connect,
    /// The configured proxy refused or failed the `CONNECT` tunnel. Nothing was sent.
    Proxy,
    /// The TLS handshake failed (certificate not trusted, wrong host name, protocol error).
    /// Nothing was sent.
    Tls,
    /// The per-request deadline passed before the response (headers and body) was complete.
    /// The request may or may not have reached the server.
    Timeout,
    /// The response body is larger than the allowed cap. The rest of the body was not read.
    BodyTooLarge,
    /// The server broke HTTP/1.1: an invalid status line or headers, or a body cut short.
    Protocol,
    /// The connection failed while the request or response was in flight (reset, closed).
    Io,
    /// The caller's streaming request body failed (for example a read error on the source file).
    RequestBody,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid HTTP request",
            Self::Connect => "could not connect",
            Self::Proxy => "the HTTP proxy failed the tunnel",
            Self::Tls => "TLS handshake failed",
            Self::Timeout => "HTTP request timed out",
            Self::BodyTooLarge => "response body too large",
            Self::Protocol => "HTTP protocol error",
            Self::Io => "connection failed mid-request",
            Self::RequestBody => "request body stream failed",
        }
    }

    fn advice(self) -> &'static str {
        match self {
            Self::InvalidRequest => "check the URL and header values",
            Self::Connect => "check the host, port and network (or the proxy setting)",
            Self::Proxy => "check the proxy address and its credentials",
            Self::Tls => "check the host name and that the server certificate is trusted",
            Self::Timeout => "retry later or raise the timeout",
            Self::BodyTooLarge => "raise the body cap if this size is expected",
            Self::Protocol => "the server or a middlebox sent a malformed response; retry later",
            Self::Io => "retry if the request is safe to repeat",
            Self::RequestBody => "check the data source of the upload",
        }
    }
}

/// An error of the HTTP transport: a [`kind`](HttpError::kind), a short context (the method and
/// the URL without its query, which may hold secrets) and an optional source.
pub struct HttpError {
    kind: ErrorKind,
    context: Option<String>,
    source: Option<BoxError>,
}

impl HttpError {
    /// A new error of the given kind with an optional source.
    pub fn new(kind: ErrorKind, source: Option<BoxError>) -> Self {
        Self {
            kind,
            context: None,
            source,
        }
    }

    pub(crate) fn with_context(mut self, context: impl Into<String>) -> Self {
        if self.context.is_none() {
            self.context = Some(context.into());
        }
        self
    }

    pub(crate) fn msg(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::new(kind, Some(message.into().into()))
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True when the request certainly never reached the server (it could not be built, no
    /// connection, proxy or TLS failure), so repeating it cannot duplicate its effect.
    pub fn is_request_not_sent(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::InvalidRequest | ErrorKind::Connect | ErrorKind::Proxy | ErrorKind::Tls
        )
    }

    /// True for [`ErrorKind::Timeout`].
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// What to do about it, in a few words (not part of `Display`).
    pub fn hint(&self) -> &'static str {
        self.kind.advice()
    }
}

impl fmt::Debug for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpError")
            .field("kind", &self.kind)
            .field("context", &self.context)
            .field("source", &self.source)
            .finish()
    }
}

/// Only this layer: what failed and where. The cause is in [`source()`](StdError::source),
/// the advice in [`HttpError::hint`], so a reporter that walks the chain says each once.
impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.describe())?;
        if let Some(context) = &self.context {
            write!(f, " ({context})")?;
        }
        Ok(())
    }
}

impl StdError for HttpError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn StdError + 'static))
    }
}

/// Sort a hyper / hyper-util error into a kind by walking its source chain.
pub(crate) fn classify(err: BoxError, is_connect: bool) -> HttpError {
    let mut kind = if is_connect {
        ErrorKind::Connect
    } else {
        ErrorKind::Io
    };
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err.as_ref());
    while let Some(e) = cur {
        if e.is::<rustls::Error>() {
            kind = ErrorKind::Tls;
            break;
        }
        if e.is::<ProxyFailure>() {
            kind = ErrorKind::Proxy;
            break;
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_incomplete_message() || h.is_parse_status() {
                kind = ErrorKind::Protocol;
                break;
            }
            if h.is_timeout() {
                kind = ErrorKind::Timeout;
                break;
            }
            if h.is_user() {
                // A failing request body is reported by hyper as a user error.
                if h.source().is_some() && !h.is_body_write_aborted() {
                    kind = ErrorKind::RequestBody;
                }
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::UnexpectedEof {
                // A body cut short of its announced length.
                kind = ErrorKind::Protocol;
                break;
            }
            if io.kind() == std::io::ErrorKind::TimedOut {
                kind = ErrorKind::Timeout;
                break;
            }
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                kind = ErrorKind::Tls;
                break;
            }
            if io.get_ref().is_some_and(|inner| inner.is::<ProxyFailure>()) {
                kind = ErrorKind::Proxy;
                break;
            }
            if matches!(io.kind(), std::io::ErrorKind::InvalidData) && is_connect {
                // rustls reports handshake failures as InvalidData io errors.
                kind = ErrorKind::Tls;
            }
        }
        if e.is::<RequestBodyFailure>() {
            kind = ErrorKind::RequestBody;
            break;
        }
        // `io::Error::source` skips the wrapped error itself; step into it instead.
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    HttpError::new(kind, Some(err))
}

/// Marker source for a failed proxy tunnel, so `classify` can find it.
#[derive(Debug)]
pub(crate) struct ProxyFailure(pub(crate) BoxError);

impl fmt::Display for ProxyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the proxy tunnel failed")
    }
}

impl StdError for ProxyFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.0.as_ref())
    }
}

/// Marker wrapper for an error from the caller's request body stream.
#[derive(Debug)]
pub(crate) struct RequestBodyFailure(pub(crate) std::io::Error);

impl fmt::Display for RequestBodyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("reading the request body failed")
    }
}

impl StdError for RequestBodyFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_says_what_and_the_hint_what_to_do() {
        let e = HttpError::msg(ErrorKind::BodyTooLarge, "over 10 bytes")
            .with_context("GET http://127.0.0.1/x");
        assert_eq!(
            e.to_string(),
            "response body too large (GET http://127.0.0.1/x)"
        );
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("over 10 bytes")
        );
        assert_eq!(e.hint(), "raise the body cap if this size is expected");
        assert_eq!(e.kind(), ErrorKind::BodyTooLarge);
        assert!(!e.is_request_not_sent());
    }

    #[test]
    fn not_sent_kinds() {
        for k in [
            ErrorKind::InvalidRequest,
            ErrorKind::Connect,
            ErrorKind::Proxy,
            ErrorKind::Tls,
        ] {
            assert!(HttpError::new(k, None).is_request_not_sent(), "{k:?}");
        }
        for k in [ErrorKind::Timeout, ErrorKind::Io, ErrorKind::Protocol] {
            assert!(!HttpError::new(k, None).is_request_not_sent(), "{k:?}");
        }
    }

    #[test]
    fn classify_finds_tls_and_proxy_in_chain() {
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::General("x".into()),
        );
        assert_eq!(classify(Box::new(tls), true).kind(), ErrorKind::Tls);
        let proxy = std::io::Error::other(ProxyFailure("407".into()));
        assert_eq!(classify(Box::new(proxy), true).kind(), ErrorKind::Proxy);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(Box::new(refused), true).kind(), ErrorKind::Connect);
    }
}
