#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// On docs.rs, feature-gated items say which feature they need.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod account;
pub mod chunk;
mod client;
mod config;
pub mod content;
mod dedupe;
pub mod download;
mod error;
mod handler;
mod journal;
mod login;
mod markdown;
mod media;
pub mod outbox;
mod send;
mod store;
mod transport;
mod updates;
mod util;

pub use account::{Account, TypingGuard};
pub use chunk::{DEFAULT_CHUNK_LIMIT, chunk_text};
pub use client::{Client, ClientBuilder, ShutdownHandle};
pub use config::{ClientConfig, Delays, Timeouts};
pub use content::Content;
pub use error::{BoxError, Error, ErrorKind, Result};
pub use handler::{Handler, HandlerOutput, MessageContext};
/// Media sources and CDN types, re-exported from `ilink-cdn`.
pub use ilink_cdn::{self as cdn, MediaSource};
pub use login::{
    BoxFuture, LoginEvent, LoginOutcome, LoginPresenter, MAX_STATUS_FAILURES, QrCode,
    STATUS_FAILURE_WINDOW, TerminalPresenter, normalize_verify_code, render_qr_unicode,
};
pub use markdown::filter_markdown;
pub use media::{CheckedMedia, MediaLimits, MediaSend, MediaType};
pub use outbox::{Budget, Overflow, ReplyPolicy};
pub use send::{MediaProblem, QueueReason, SendError, SendErrorKind, SendOutcome};
pub use store::{
    ConsumerLock, Credentials, FileStore, MemoryStore, StateStore, normalize_account_id,
};
pub use updates::{InboundMessage, PollError, PollErrorKind, UndecodableMessage, Update, Updates};
pub use util::StopSignals;

/// The HTTP layer (`ilink-http`), re-exported: [`ClientConfig::proxy`] takes its
/// [`Proxy`](http::Proxy), [`Client::http`] returns its [`HttpClient`](http::HttpClient), and
/// [`Error::http_error`] its [`HttpError`](http::HttpError).
pub use ilink_http as http;
/// The wire types, re-exported for convenience.
pub use ilink_proto as proto;
pub use ilink_proto::{CompatVersion, Secret, ThrottleReason, TypingStatus, WireId};

#[cfg(test)]
mod send_sync {
    use super::*;
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn public_types_are_send_sync() {
        assert_send_sync::<Client>();
        assert_send_sync::<Account>();
        assert_send_sync::<ClientConfig>();
        assert_send_sync::<Error>();
        assert_send_sync::<SendError>();
        assert_send_sync::<SendOutcome>();
        assert_send_sync::<Update>();
        assert_send_sync::<InboundMessage>();
        assert_send_sync::<PollError>();
        assert_send_sync::<UndecodableMessage>();
        assert_send_sync::<MessageContext>();
        assert_send_sync::<Credentials>();
        assert_send_sync::<FileStore>();
        assert_send_sync::<MemoryStore>();
        assert_send_sync::<TerminalPresenter>();
        assert_send_sync::<ShutdownHandle>();
        assert_send_sync::<ConsumerLock>();
    }
    fn assert_send<T: Send>() {}
    #[test]
    fn streams_are_send() {
        assert_send::<Updates>();
        assert_send::<TypingGuard>();
    }
}
