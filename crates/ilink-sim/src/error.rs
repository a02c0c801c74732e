//! Errors of the emulator's Rust API.

use std::net::SocketAddr;
use std::time::Duration;

/// What went wrong in a call on [`Sim`](crate::Sim) or a [`ScriptedUser`](crate::ScriptedUser).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}; pick another address or port 0")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bot id is not known to this emulator.
    #[error("unknown bot {0:?}: create it with Sim::create_bot or a QR login first")]
    UnknownBot(String),
    /// The item carries no image, voice, file or video media.
    #[error("the item has no media (image_item, voice_item, file_item or video_item with media)")]
    NoMedia,
    /// The media's `encrypt_query_param` (or `full_url`) is not on the emulated CDN.
    #[error("the media is not on the emulated CDN; was it uploaded to this emulator?")]
    MediaNotFound,
    /// The item's key is missing or not one of the known encodings.
    #[error("the media key is missing or invalid: {0}")]
    MediaKey(String),
    /// The CDN bytes do not decrypt with the item's key.
    #[error("the media does not decrypt with the item's key")]
    Undecryptable,
    /// A wait gave up.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
}
