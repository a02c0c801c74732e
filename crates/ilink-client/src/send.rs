//! Typed outcomes of sendmessage.

use std::error::Error as StdError;
use std::fmt;

use ilink_proto::{ApiError, ThrottleReason, WireId};

/// What the server said about one sendmessage request that it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendOutcome {
    /// `ret: 0` with a `message_id`: delivered.
    Delivered {
        /// The server's id of the message.
        message_id: WireId,
        /// The `client_id` we generated for the request.
        client_id: String,
    },
    /// Success without a `message_id`. Live reports say such messages were sometimes never
    /// delivered (docs/protocol.md §19), so this is reported apart. (The server also answers so
    /// when a `client_id` is sent again: a queued message retried after a crash.)
    Accepted {
        /// The `client_id` we generated for the request.
        client_id: String,
    },
    /// Not sent yet: kept in the user's durable outbound queue because the reply budget of
    /// the window is used up (or the window is closed, or the server throttled). It goes out
    /// when the user writes next ([`crate::outbox`]).
    Queued {
        /// The `client_id` it will be sent with.
        client_id: String,
        /// Messages ahead of it in the queue (0: the next to go).
        position: usize,
        /// Why it was queued rather than sent.
        reason: QueueReason,
    },
}

/// Why a message was queued ([`SendOutcome::Queued`]) rather than sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QueueReason {
    /// The reply budget of the user's window is used up, the window is closed, or the server
    /// kept throttling (`ret:-2`): it goes out, in order, when the user writes next.
    Window,
    /// Sending failed (the session expired or the token is stale, the network or the server
    /// failed): it is kept, retried in the background for a while, and sent at the latest
    /// when the user writes next. The kind says what failed; a `StaleToken` or
    /// `SessionExpired` needs a new login first.
    Failed(SendErrorKind),
}

impl SendOutcome {
    /// The `client_id` of the request.
    pub fn client_id(&self) -> &str {
        match self {
            Self::Delivered { client_id, .. }
            | Self::Accepted { client_id }
            | Self::Queued { client_id, .. } => client_id,
        }
    }

    /// The server's `message_id`, when it gave one.
    pub fn message_id(&self) -> Option<&WireId> {
        match self {
            Self::Delivered { message_id, .. } => Some(message_id),
            Self::Accepted { .. } | Self::Queued { .. } => None,
        }
    }

    /// True for [`SendOutcome::Queued`].
    pub fn is_queued(&self) -> bool {
        matches!(self, Self::Queued { .. })
    }
}

/// Why a send failed. See [`SendError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// `ret: -2`: throttled or refused by the reply window, with the reason the `errmsg` tells
    /// (often none). Never retried automatically: wait for the user to write again.
    Throttled(ThrottleReason),
    /// `-14`: the bot token is stale or the session expired; log in again.
    StaleToken,
    /// The account's session is known to be expired (`-14` on getupdates); the send was not
    /// attempted. Log in again.
    SessionExpired,
    /// `ret: -3`: the target user is not valid.
    BadTarget,
    /// No `context_token` is known for this user: they have not written to this bot yet (or the
    /// token was lost). Nothing was sent.
    NoContextToken,
    /// Any other non-zero `ret` / `errcode`; see [`SendError::ret`] and [`SendError::errmsg`].
    Rejected,
    /// The HTTP exchange failed or the server's answer was not JSON; the message may or may not
    /// have been delivered.
    Transport,
    /// The message was invalid before sending (empty text, empty recipient, audio that cannot
    /// be made into voice).
    Invalid,
    /// Uploading the media failed (getuploadurl gave no upload target, or the CDN failed);
    /// no message was sent. A getuploadurl that *refuses* the grant with a code gives the
    /// same kinds as a refused sendmessage instead ([`SendErrorKind::Throttled`],
    /// [`SendErrorKind::StaleToken`], [`SendErrorKind::BadTarget`],
    /// [`SendErrorKind::Rejected`]).
    Upload,
    /// Under [`Overflow::AllOrNothing`](crate::outbox::Overflow::AllOrNothing): the text needs
    /// more messages than the reply budget allows; nothing was sent.
    BudgetExceeded,
    /// The user's outbound queue cannot take the text (it would exceed
    /// [`ReplyPolicy::max_queued`](crate::outbox::ReplyPolicy::max_queued)); nothing was
    /// queued or sent.
    QueueFull,
    /// The media was refused before anything was uploaded or sent; see [`MediaProblem`].
    BadMedia(MediaProblem),
    /// This process no longer holds the account's lease (another process serves it now, or
    /// the lease could not be renewed in time): nothing was sent.
    LeaseLost,
}

/// Why media was refused before upload (checked by every media send, and by
/// [`Account::check_media`](crate::Account::check_media)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaProblem {
    /// The source holds no bytes.
    Empty,
    /// The source is larger than the limit of its kind
    /// ([`ClientConfig::media_limits`](crate::ClientConfig::media_limits)).
    TooLarge,
    /// The content is not of the kind it is sent as: an image that WeChat does not show, a
    /// video it does not play, or a voice source that is not audio.
    WrongFormat,
    /// The source could not be read (a missing file, a directory, a read error), or its
    /// audio could not be decoded into a voice message.
    Unreadable,
}

/// A failed send. When a long text was split into several messages, [`SendError::sent`] lists
/// those that went out before the failure.
pub struct SendError {
    inner: Box<Inner>,
}

struct Inner {
    kind: SendErrorKind,
    ret: Option<i64>,
    errmsg: Option<String>,
    message: String,
    sent: Vec<SendOutcome>,
    source: Option<crate::error::Error>,
}

impl SendError {
    fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Box::new(inner),
        }
    }

    pub(crate) fn new(kind: SendErrorKind, message: impl Into<String>) -> Self {
        Self::from_inner(Inner {
            kind,
            ret: None,
            errmsg: None,
            message: message.into(),
            sent: Vec::new(),
            source: None,
        })
    }

    pub(crate) fn from_api(e: &ApiError) -> Self {
        let kind = match e {
            ApiError::StaleToken { .. } => SendErrorKind::StaleToken,
            ApiError::Throttled { .. } => {
                SendErrorKind::Throttled(e.throttle_reason().unwrap_or(ThrottleReason::Unknown))
            }
            ApiError::BadTarget { .. } => SendErrorKind::BadTarget,
            _ => SendErrorKind::Rejected,
        };
        Self::from_inner(Inner {
            kind,
            ret: e.code(),
            errmsg: e.errmsg().map(str::to_owned),
            message: e.to_string(),
            sent: Vec::new(),
            source: None,
        })
    }

    /// A refused upload grant: the kinds of a refused sendmessage, said to be the grant.
    pub(crate) fn grant_refused(e: &ApiError) -> Self {
        let mut s = Self::from_api(e);
        s.inner.message = format!("getuploadurl refused the upload: {}", s.inner.message);
        s
    }

    /// Media refused before upload.
    pub(crate) fn bad_media(
        problem: MediaProblem,
        message: impl Into<String>,
        source: Option<crate::error::Error>,
    ) -> Self {
        let mut s = Self::new(SendErrorKind::BadMedia(problem), message);
        s.inner.source = source;
        s
    }

    pub(crate) fn from_error(e: crate::error::Error) -> Self {
        // The server refused: typed by its code (the transport judged the envelope).
        if let Some(api) = e.api_error() {
            return Self::from_api(api);
        }
        let kind = match e.kind() {
            crate::ErrorKind::SessionExpired => SendErrorKind::SessionExpired,
            crate::ErrorKind::InvalidInput => SendErrorKind::Invalid,
            crate::ErrorKind::LeaseLost => SendErrorKind::LeaseLost,
            _ => SendErrorKind::Transport,
        };
        Self::from_inner(Inner {
            kind,
            ret: None,
            errmsg: None,
            message: "sendmessage failed".to_owned(),
            sent: Vec::new(),
            source: Some(e),
        })
    }

    pub(crate) fn with_kind(mut self, kind: SendErrorKind) -> Self {
        self.inner.kind = kind;
        if kind == SendErrorKind::Upload {
            self.inner.message = "uploading the media failed".to_owned();
        }
        self
    }

    pub(crate) fn with_sent(mut self, sent: Vec<SendOutcome>) -> Self {
        self.inner.sent = sent;
        self
    }

    /// Why the send failed.
    pub fn kind(&self) -> SendErrorKind {
        self.inner.kind
    }

    /// The server's non-zero code, when it answered with one.
    pub fn ret(&self) -> Option<i64> {
        self.inner.ret
    }

    /// The server's `errmsg`, when it gave one.
    pub fn errmsg(&self) -> Option<&str> {
        self.inner.errmsg.as_deref()
    }

    /// The messages (chunks) that were sent before this failure.
    pub fn sent(&self) -> &[SendOutcome] {
        &self.inner.sent
    }

    /// True for [`SendErrorKind::Throttled`].
    pub fn is_throttled(&self) -> bool {
        matches!(self.inner.kind, SendErrorKind::Throttled(_))
    }
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("SendError")
            .field("kind", &i.kind)
            .field("ret", &i.ret)
            .field("errmsg", &i.errmsg)
            .field("message", &i.message)
            .field("sent", &i.sent.len())
            .field("source", &i.source)
            .finish()
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        // The cause is in `source()`, not repeated here.
        f.write_str(&i.message)?;
        if !i.sent.is_empty() {
            write!(f, " ({} earlier part(s) were sent)", i.sent.len())?;
        }
        Ok(())
    }
}

impl StdError for SendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_map_to_kinds() {
        let e = SendError::from_api(&ApiError::Throttled {
            errmsg: Some("prepare failed".into()),
        });
        assert_eq!(
            e.kind(),
            SendErrorKind::Throttled(ThrottleReason::PrepareFailed)
        );
        assert_eq!(e.ret(), Some(-2));
        assert!(e.is_throttled());
        let e = SendError::from_api(&ApiError::BadTarget { errmsg: None });
        assert_eq!(e.kind(), SendErrorKind::BadTarget);
        assert_eq!(e.ret(), Some(-3));
        let e = SendError::from_api(&ApiError::StaleToken { errmsg: None });
        assert_eq!(e.kind(), SendErrorKind::StaleToken);
        let e = SendError::from_api(&ApiError::Other {
            ret: Some(-9),
            errcode: None,
            errmsg: Some("x".into()),
        });
        assert_eq!(e.kind(), SendErrorKind::Rejected);
        assert_eq!(e.ret(), Some(-9));
        assert_eq!(e.errmsg(), Some("x"));
    }

    #[test]
    fn outcome_accessors() {
        let d = SendOutcome::Delivered {
            message_id: WireId::from_u64(9007199254740993001),
            client_id: "c".into(),
        };
        assert_eq!(d.message_id().unwrap().as_str(), "9007199254740993001");
        assert_eq!(d.client_id(), "c");
        assert!(
            SendOutcome::Accepted {
                client_id: "x".into()
            }
            .message_id()
            .is_none()
        );
    }
}
