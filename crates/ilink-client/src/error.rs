//! The error type of the runtime (DESIGN.md §6: a kind, a message, an optional source).

use std::error::Error as StdError;
use std::fmt;

/// A boxed error source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The HTTP exchange failed (connect, TLS, timeout, body cap, protocol); the source is an
    /// [`ilink_http::HttpError`].
    Transport,
    /// The server answered with a non-2xx HTTP status.
    HttpStatus,
    /// The server's body was not the JSON this endpoint returns.
    Decode,
    /// The server answered with a non-zero `ret` / `errcode` (see [`Error::api_code`]).
    Api,
    /// The bot token is stale or the session expired (`-14`); log in again.
    SessionExpired,
    /// The QR login failed: too many QR codes, timed out, cancelled, or no bot id confirmed.
    Login,
    /// Reading or writing local state failed.
    Store,
    /// An argument was invalid (empty text, malformed id, bad configuration).
    InvalidInput,
    /// The account is not logged in (no stored credentials).
    NotLoggedIn,
    /// Media could not be uploaded, downloaded, decrypted or converted.
    Media,
    /// A task of the runtime failed (a message handler panicked).
    Internal,
    /// Another consumer (usually another process) already receives this account's messages:
    /// its lease is held by another holder (see
    /// [`StateStore::acquire_lease`](crate::StateStore::acquire_lease)).
    AccountBusy,
    /// This process no longer holds the account's lease (another holder took it over, or it
    /// could not be renewed in time): a fenced write was refused and nothing was written, or
    /// a run stopped serving the account. See [`Error::is_lease_lost`].
    LeaseLost,
}

/// An error of the bot runtime.
///
/// Reads once, like reqwest's and twilight's errors: [`Display`](fmt::Display) says only what
/// failed at this layer ("sendmessage failed"), the cause is in
/// [`source()`](StdError::source) (a reporter that walks the chain, such as anyhow's `{:#}`,
/// prints each fact once), and the advice is in [`Error::hint`]. Ask the predicates
/// ([`Error::is_timeout`], [`Error::is_throttled`], [`Error::is_stale_token`]...) rather than
/// inspecting the source.
pub struct Error {
    kind: ErrorKind,
    message: String,
    code: Option<i64>,
    source: Option<BoxError>,
}

impl Error {
    /// An error of `kind` saying what failed, for example from a custom
    /// [`StateStore`](crate::StateStore): `Error::new(ErrorKind::Store, "saving the cursor")`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code: None,
            source: None,
        }
    }

    /// The same error caused by `source` (kept in [`source()`](StdError::source), not
    /// repeated in `Display`).
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn with_code(mut self, code: i64) -> Self {
        self.code = Some(code);
        self
    }

    pub(crate) fn transport(what: &str, e: ilink_http::HttpError) -> Self {
        Self::new(ErrorKind::Transport, format!("{what} failed")).with_source(e)
    }

    pub(crate) fn store(what: impl Into<String>, e: std::io::Error) -> Self {
        Self::new(ErrorKind::Store, what).with_source(e)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The server's non-zero `ret` / `errcode`, for [`ErrorKind::Api`] and
    /// [`ErrorKind::SessionExpired`] (the HTTP status for [`ErrorKind::HttpStatus`]).
    pub fn api_code(&self) -> Option<i64> {
        self.code
    }

    /// The HTTP status, for [`ErrorKind::HttpStatus`].
    pub fn http_status(&self) -> Option<u16> {
        match self.kind {
            ErrorKind::HttpStatus => self.code.and_then(|c| u16::try_from(c).ok()),
            _ => None,
        }
    }

    /// The transport error underneath, if this is [`ErrorKind::Transport`].
    pub fn http_error(&self) -> Option<&crate::http::HttpError> {
        self.source
            .as_ref()
            .and_then(|s| s.downcast_ref::<ilink_http::HttpError>())
    }

    /// The server's error, when the server refused the call (`ret` / `errcode`).
    pub fn api_error(&self) -> Option<&ilink_proto::ApiError> {
        self.source
            .as_ref()
            .and_then(|s| s.downcast_ref::<ilink_proto::ApiError>())
    }

    /// True when a client-side timeout caused this error.
    pub fn is_timeout(&self) -> bool {
        self.http_error()
            .is_some_and(ilink_http::HttpError::is_timeout)
    }

    /// True when the request certainly never reached the server (no connection, proxy or
    /// TLS failure): repeating it cannot duplicate its effect.
    pub fn is_request_not_sent(&self) -> bool {
        self.http_error()
            .is_some_and(ilink_http::HttpError::is_request_not_sent)
    }

    /// True when the server throttled the call (`ret: -2`).
    pub fn is_throttled(&self) -> bool {
        self.kind == ErrorKind::Api && self.code == Some(ilink_proto::consts::THROTTLED_ERRCODE)
    }

    /// True when this process lost the account's lease ([`ErrorKind::LeaseLost`]): another
    /// holder serves the account now; stop writing its state and serving it.
    pub fn is_lease_lost(&self) -> bool {
        self.kind == ErrorKind::LeaseLost
    }

    /// True when the bot token is stale or the session expired (`-14`): log in again.
    pub fn is_stale_token(&self) -> bool {
        self.kind == ErrorKind::SessionExpired
    }

    /// What to do about it, in a few words (not part of `Display`).
    pub fn hint(&self) -> &'static str {
        match self.kind {
            ErrorKind::Transport => "check the network; the call is retried where that is safe",
            ErrorKind::HttpStatus => "the server or a gateway failed; retry later",
            ErrorKind::Decode => "the server sent an unexpected body; retry later or report it",
            ErrorKind::Api => "see the server's errmsg",
            ErrorKind::SessionExpired => "log in again (scan a new QR code)",
            ErrorKind::Login => "start the login again",
            ErrorKind::Store => "check the state directory's permissions and free space",
            ErrorKind::InvalidInput => "fix the argument",
            ErrorKind::NotLoggedIn => "log in first",
            ErrorKind::Media => "check the media source, its key and the CDN settings",
            ErrorKind::Internal => "see the panic message in the logs",
            ErrorKind::AccountBusy => {
                "stop the other consumer first: one process at a time receives an account's messages"
            }
            ErrorKind::LeaseLost => {
                "another process serves this account now; this one stopped serving it"
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("code", &self.code)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        // A source (the server's `ApiError`) states the code itself.
        if let Some(code) = self.code
            && self.source.is_none()
        {
            write!(f, " (code {code})")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn StdError + 'static))
    }
}

/// A shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `e` and its causes, `": "`-separated, for log lines (each layer's `Display` says only its
/// own part; a log line wants the whole story, e.g. "joining the fleet: connection refused").
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_this_layer_only() {
        let e = Error::new(ErrorKind::SessionExpired, "getupdates: session expired").with_code(-14);
        assert_eq!(e.kind(), ErrorKind::SessionExpired);
        assert_eq!(e.api_code(), Some(-14));
        assert!(e.is_stale_token());
        assert_eq!(e.to_string(), "getupdates: session expired (code -14)");
        assert_eq!(e.hint(), "log in again (scan a new QR code)");
        let t = Error::transport(
            "sendmessage",
            ilink_http::HttpError::new(ilink_http::ErrorKind::Timeout, None),
        );
        assert!(t.is_timeout());
        assert!(!t.is_request_not_sent());
        assert!(t.http_error().is_some());
        assert_eq!(t.to_string(), "sendmessage failed");
        assert!(
            t.source()
                .is_some_and(|s| s.to_string().contains("timed out"))
        );
        let s = Error::new(ErrorKind::HttpStatus, "sendmessage: HTTP 502").with_code(502);
        assert_eq!(s.http_status(), Some(502));
        let a = Error::new(ErrorKind::Api, "sendmessage refused").with_code(-2);
        assert!(a.is_throttled());
        assert_eq!(a.http_status(), None);
    }
}
