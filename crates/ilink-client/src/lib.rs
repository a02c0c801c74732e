#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// On docs.rs, feature-gated items say which feature they need.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod account;
pub mod chunk;
mod client;
pub mod config;
pub mod content;
mod dedupe;
pub mod download;
mod error;
pub mod fleet;
mod handler;
mod journal;
mod lease;
pub mod login;
pub mod markdown;
pub mod media;
pub mod metrics;
pub mod outbox;
pub mod send;
pub mod store;
mod transport;
pub mod updates;
mod util;

// The crate root holds what every bot uses; the rest lives in its module (`ilink_client::send`,
// `::login`, `::store`, `::updates`, `::media`, `::config`, `::outbox`, `::chunk`,
// `::markdown`, `::download`, `::content`).
pub use account::Account;
pub use client::{Client, ClientBuilder, ShutdownHandle};
pub use config::ClientConfig;
pub use content::Content;
pub use error::{BoxError, Error, ErrorKind, Result};
pub use handler::{Handler, MessageContext};
/// Media sources and CDN types, re-exported from `ilink-cdn`.
pub use ilink_cdn::{self as cdn, MediaSource};
pub use login::{BoxFuture, LoginOutcome, TerminalPresenter};
pub use media::MediaType;
pub use send::{SendError, SendErrorKind, SendOutcome};
pub use store::{Credentials, FileStore, MemoryStore, StateStore};
pub use updates::{InboundMessage, Update, Updates};

// The names the crate root had before the modules above were public; kept so that code
// written against them still builds, hidden from the documentation.
#[doc(hidden)]
pub use account::TypingGuard;
#[doc(hidden)]
pub use chunk::{DEFAULT_CHUNK_LIMIT, chunk_text};
#[doc(hidden)]
pub use config::{Delays, Timeouts};
#[doc(hidden)]
pub use handler::HandlerOutput;
#[doc(hidden)]
pub use login::{
    LoginEvent, LoginPresenter, MAX_STATUS_FAILURES, QrCode, STATUS_FAILURE_WINDOW,
    normalize_verify_code, render_qr_unicode,
};
#[doc(hidden)]
pub use markdown::filter_markdown;
#[doc(hidden)]
pub use media::{CheckedMedia, MediaLimits, MediaSend};
#[doc(hidden)]
pub use outbox::{Budget, Overflow, ReplyPolicy};
#[doc(hidden)]
pub use send::{MediaProblem, QueueReason};
#[doc(hidden)]
pub use store::normalize_account_id;
#[doc(hidden)]
pub use updates::{PollError, PollErrorKind, UndecodableMessage};
#[doc(hidden)]
pub use util::StopSignals;
/// Stop signals (SIGINT and SIGTERM) and the account's typing indicator guard.
pub mod run {
    pub use crate::account::TypingGuard;
    pub use crate::handler::HandlerOutput;
    pub use crate::util::StopSignals;
}

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
        assert_send_sync::<fleet::Fleet>();
        assert_send_sync::<fleet::FleetConfig>();
        assert_send_sync::<fleet::ServedAccount>();
        assert_send_sync::<store::Lease>();
        assert_send_sync::<store::Fence>();
        assert_send_sync::<std::sync::Arc<dyn StateStore>>();
    }
    fn assert_send<T: Send>() {}
    #[test]
    fn streams_are_send() {
        assert_send::<Updates>();
        assert_send::<TypingGuard>();
    }
}
