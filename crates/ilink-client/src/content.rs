//! Typed message content: what an inbound item carries, without digging through the wire
//! structs' `Option`s (twilight-model's message types are the model).
//!
//! ```
//! use ilink_client::content::Content;
//! # fn describe(msg: &ilink_client::InboundMessage) -> String {
//! match msg.content() {
//!     Some(Content::Text { text, .. }) => format!("text: {text}"),
//!     Some(Content::Voice { duration, transcript, .. }) => format!(
//!         "voice of {} ms, heard as {:?}",
//!         duration.map_or(0, |d| d.as_millis()),
//!         transcript
//!     ),
//!     Some(Content::File { name, size, .. }) => format!("file {name:?} of {size:?} bytes"),
//!     Some(Content::Quote { text, reference, .. }) => {
//!         format!("{text:?} quoting {:?}", reference.title())
//!     }
//!     Some(other) => format!("{} item", other.kind()),
//!     None => "nothing".to_owned(),
//! }
//! # }
//! ```

use std::time::Duration;

use ilink_proto::{CdnMedia, ItemType, MessageItem, RefMessage, WireId};

/// What one item of a message carries (docs/protocol.md §8.3). Every variant keeps the wire
/// item in `item`, for anything not lifted here (and for
/// [`Account::download`](crate::Account::download)).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Content<'a> {
    /// A text item (`type` 1), without a quote.
    Text {
        /// The text (empty when the item carries none).
        text: &'a str,
        /// The wire item.
        item: &'a MessageItem,
    },
    /// A text that quotes an earlier message (a text item with `ref_msg`).
    Quote {
        /// The user's own text.
        text: &'a str,
        /// The quoted message.
        reference: Reference<'a>,
        /// The wire item.
        item: &'a MessageItem,
    },
    /// An image (`type` 2).
    Image {
        /// The encrypted media on the CDN, if the item carries one.
        media: Option<&'a CdnMedia>,
        /// `mid_size`: the size of the encrypted image in bytes, when given.
        size: Option<u64>,
        /// The wire item.
        item: &'a MessageItem,
    },
    /// A voice message (`type` 3), SILK at 24 kHz unless the item says otherwise.
    Voice {
        /// The encrypted SILK media on the CDN, if the item carries one.
        media: Option<&'a CdnMedia>,
        /// The duration, from `playtime` (milliseconds on the wire, docs/protocol.md §8.3), when
        /// given. The official client never reads it (§13), and a live capture came without
        /// it (§19): `None` means unknown, not zero (read it from the SILK then, with
        /// `ilink_silk::playtime_ms`).
        duration: Option<Duration>,
        /// The server's speech-to-text transcript (`voice_item.text`), when given.
        transcript: Option<&'a str>,
        /// The wire item.
        item: &'a MessageItem,
    },
    /// A file (`type` 4).
    File {
        /// The encrypted media on the CDN, if the item carries one.
        media: Option<&'a CdnMedia>,
        /// `file_name`, when given. Untrusted: never use it as a path as is.
        name: Option<&'a str>,
        /// The plaintext size in bytes (`len`, a decimal string on the wire), when valid.
        size: Option<u64>,
        /// The wire item.
        item: &'a MessageItem,
    },
    /// A video (`type` 5).
    Video {
        /// The encrypted media on the CDN, if the item carries one.
        media: Option<&'a CdnMedia>,
        /// `video_size` in bytes, when given.
        size: Option<u64>,
        /// The wire item.
        item: &'a MessageItem,
    },
    /// Anything else (tool-call items, types this crate does not know, an item whose
    /// typed part is missing), kept raw.
    Unknown {
        /// The wire item, with every field it had.
        item: &'a MessageItem,
    },
}

impl<'a> Content<'a> {
    /// The content of one wire item.
    pub fn of(item: &'a MessageItem) -> Self {
        match item.item_type {
            ItemType::Text => {
                let text = item
                    .text_item
                    .as_ref()
                    .and_then(|t| t.text.as_deref())
                    .unwrap_or("");
                match &item.ref_msg {
                    Some(r) => Self::Quote {
                        text,
                        reference: Reference { inner: r },
                        item,
                    },
                    None => Self::Text { text, item },
                }
            }
            ItemType::Image => match &item.image_item {
                Some(i) => Self::Image {
                    media: i.media.as_ref(),
                    size: i.mid_size,
                    item,
                },
                None => Self::Unknown { item },
            },
            ItemType::Voice => match &item.voice_item {
                Some(v) => Self::Voice {
                    media: v.media.as_ref(),
                    duration: v.playtime.map(Duration::from_millis),
                    transcript: v.text.as_deref().filter(|t| !t.is_empty()),
                    item,
                },
                None => Self::Unknown { item },
            },
            ItemType::File => match &item.file_item {
                Some(f) => Self::File {
                    media: f.media.as_ref(),
                    name: f.file_name.as_deref().filter(|n| !n.is_empty()),
                    size: f.len_bytes(),
                    item,
                },
                None => Self::Unknown { item },
            },
            ItemType::Video => match &item.video_item {
                Some(v) => Self::Video {
                    media: v.media.as_ref(),
                    size: v.video_size,
                    item,
                },
                None => Self::Unknown { item },
            },
            _ => Self::Unknown { item },
        }
    }

    /// The wire item.
    pub fn item(&self) -> &'a MessageItem {
        match *self {
            Self::Text { item, .. }
            | Self::Quote { item, .. }
            | Self::Image { item, .. }
            | Self::Voice { item, .. }
            | Self::File { item, .. }
            | Self::Video { item, .. }
            | Self::Unknown { item } => item,
        }
    }

    /// The text a person would read: a text's or quote's text, a voice transcript.
    pub fn text(&self) -> Option<&'a str> {
        match *self {
            Self::Text { text, .. } | Self::Quote { text, .. } => Some(text),
            Self::Voice { transcript, .. } => transcript,
            _ => None,
        }
    }

    /// The CDN media of an image, voice, file or video.
    pub fn media(&self) -> Option<&'a CdnMedia> {
        match *self {
            Self::Image { media, .. }
            | Self::Voice { media, .. }
            | Self::File { media, .. }
            | Self::Video { media, .. } => media,
            _ => None,
        }
    }

    /// True for images, voice, files and videos (whether or not their media can be fetched).
    pub fn is_media(&self) -> bool {
        matches!(
            self,
            Self::Image { .. } | Self::Voice { .. } | Self::File { .. } | Self::Video { .. }
        )
    }

    /// A short name of the kind: `"text"`, `"quote"`, `"image"`, `"voice"`, `"file"`,
    /// `"video"` or `"unknown"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Quote { .. } => "quote",
            Self::Image { .. } => "image",
            Self::Voice { .. } => "voice",
            Self::File { .. } => "file",
            Self::Video { .. } => "video",
            Self::Unknown { .. } => "unknown",
        }
    }
}

/// A quoted message (`ref_msg`, docs/protocol.md §8.3). Its content may be missing or of a type
/// no enum names (captures in §19), hence the `Option`s.
#[derive(Debug, Clone, Copy)]
pub struct Reference<'a> {
    inner: &'a RefMessage,
}

impl<'a> Reference<'a> {
    /// `title`: the quoted text as WeChat summarises it, when given.
    pub fn title(&self) -> Option<&'a str> {
        self.inner.title.as_deref().filter(|t| !t.is_empty())
    }

    /// The quoted message's server id (`svr_id`), when given.
    pub fn message_id(&self) -> Option<&'a WireId> {
        self.inner.svr_id.as_ref()
    }

    /// The quoted item's content, when the quote carries it.
    pub fn content(&self) -> Option<Content<'a>> {
        self.inner.message_item.as_deref().map(Content::of)
    }

    /// The wire `ref_msg`.
    pub fn raw(&self) -> &'a RefMessage {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: serde_json::Value) -> MessageItem {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn every_kind() {
        let t = item(json!({"type": 1, "text_item": {"text": "hi"}}));
        assert!(matches!(Content::of(&t), Content::Text { text: "hi", .. }));
        let v = item(json!({"type": 3, "voice_item": {"playtime": 2200, "text": "hello"}}));
        match Content::of(&v) {
            Content::Voice {
                duration,
                transcript,
                media,
                ..
            } => {
                assert_eq!(duration, Some(Duration::from_millis(2200)));
                assert_eq!(transcript, Some("hello"));
                assert!(media.is_none());
            }
            other => panic!("{other:?}"),
        }
        let f = item(
            json!({"type": 4, "file_item": {"file_name": "a.pdf", "len": "542188",
            "media": {"encrypt_query_param": "Q"}}}),
        );
        match Content::of(&f) {
            Content::File {
                name, size, media, ..
            } => {
                assert_eq!(name, Some("a.pdf"));
                assert_eq!(size, Some(542_188));
                assert!(media.is_some());
            }
            other => panic!("{other:?}"),
        }
        let bad_len = item(json!({"type": 4, "file_item": {"len": "-1"}}));
        assert!(matches!(
            Content::of(&bad_len),
            Content::File { size: None, .. }
        ));
        let i = item(json!({"type": 2, "image_item": {"mid_size": 10}}));
        assert!(matches!(
            Content::of(&i),
            Content::Image { size: Some(10), .. }
        ));
        let vid = item(json!({"type": 5, "video_item": {"video_size": 7}}));
        assert!(matches!(
            Content::of(&vid),
            Content::Video { size: Some(7), .. }
        ));
        let q = item(json!({"type": 1, "text_item": {"text": "yes"},
            "ref_msg": {"svr_id": "42", "title": "lunch?",
                "message_item": {"type": 1, "text_item": {"text": "lunch?"}}}}));
        match Content::of(&q) {
            Content::Quote {
                text, reference, ..
            } => {
                assert_eq!(text, "yes");
                assert_eq!(reference.title(), Some("lunch?"));
                assert_eq!(reference.message_id().map(WireId::as_str), Some("42"));
                assert_eq!(reference.content().and_then(|c| c.text()), Some("lunch?"));
            }
            other => panic!("{other:?}"),
        }
        let unknown = item(json!({"type": 99, "mystery": {"a": 1}}));
        let c = Content::of(&unknown);
        assert!(matches!(c, Content::Unknown { .. }));
        assert_eq!(c.kind(), "unknown");
        assert!(c.item().extra.contains_key("mystery"));
        // A media type without its typed part is kept raw, not guessed.
        let empty_voice = item(json!({"type": 3}));
        assert!(matches!(Content::of(&empty_voice), Content::Unknown { .. }));
    }
}
