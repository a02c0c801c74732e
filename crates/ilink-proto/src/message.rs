//! The message model (§8): [`WeixinMessage`], [`MessageItem`] and every item kind.
//!
//! Every field is optional, as in the official client's types, and is left out of the
//! JSON when `None` (the official client never sends `null`). Every struct keeps fields
//! it does not know in `extra`, so decoding and re-encoding a message is lossless.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::enums::{ItemType, MessageState, MessageType, VoiceEncodeType};
use crate::id::WireId;
use crate::secret::Secret;

/// Unknown JSON fields of a wire object, kept so re-encoding is lossless.
pub type Extra = Map<String, Value>;

/// One message, inbound (from getupdates) or outbound (in sendmessage) (§8.2).
///
/// Fields serialize in the order the official client sends them in sendmessage:
/// `from_user_id`, `to_user_id`, `client_id`, `message_type`, `message_state`,
/// `item_list`, `context_token`, `run_id`, then the rest.
///
/// ```
/// use ilink_proto::{MessageItem, Secret, WeixinMessage};
/// let msg = WeixinMessage::outbound(
///     "o9abc@im.wechat",
///     "openclaw-weixin:1795301219633-ba55e158",
///     vec![MessageItem::text("pong")],
///     Some(Secret::from("CTX-1")),
/// );
/// assert_eq!(
///     serde_json::to_string(&msg).unwrap(),
///     r#"{"from_user_id":"","to_user_id":"o9abc@im.wechat","client_id":"openclaw-weixin:1795301219633-ba55e158","message_type":2,"message_state":2,"item_list":[{"type":1,"text_item":{"text":"pong"}}],"context_token":"CTX-1"}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeixinMessage {
    /// Inbound: the sender (`…@im.wechat`). Outbound: always `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_id: Option<String>,
    /// Inbound: the bot. Outbound: the recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_user_id: Option<String>,
    /// Client-generated id of an outbound message; inbound it can be a long server string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `1` for user messages, `2` for every outbound message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<MessageType>,
    /// Outbound always `2` (FINISH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_state: Option<MessageState>,
    /// The content. The official client sends exactly one item per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_list: Option<Vec<MessageItem>>,
    /// Issued with each inbound message; must be sent back on replies (§14.4). Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_token: Option<Secret>,
    /// Per-turn id the official client puts on every reply of a turn (2.4.4+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Sequence number; only logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Server-assigned id (a uint64 beyond 2^53, as number or string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<WireId>,
    /// Epoch milliseconds; inbound it is the event timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time_ms: Option<i64>,
    /// Epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time_ms: Option<i64>,
    /// Epoch milliseconds (`0` when not deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_time_ms: Option<i64>,
    /// Only logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Declared, unused: the protocol supports direct chats only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Unknown fields (e.g. `root_id`, `parent_id`), kept for lossless re-encoding.
    #[serde(flatten)]
    pub extra: Extra,
}

impl WeixinMessage {
    /// An outbound message as the official client builds it (§9): `from_user_id` `""`,
    /// `message_type` Bot, `message_state` Finish. An empty `items` leaves out
    /// `item_list`; a `None` token leaves out `context_token`.
    pub fn outbound(
        to_user_id: impl Into<String>,
        client_id: impl Into<String>,
        items: Vec<MessageItem>,
        context_token: Option<Secret>,
    ) -> Self {
        Self {
            from_user_id: Some(String::new()),
            to_user_id: Some(to_user_id.into()),
            client_id: Some(client_id.into()),
            message_type: Some(MessageType::Bot),
            message_state: Some(MessageState::Finish),
            item_list: (!items.is_empty()).then_some(items),
            context_token,
            ..Self::default()
        }
    }

    /// Sets `run_id` (builder style).
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// The items, or an empty slice when `item_list` is absent.
    pub fn items(&self) -> &[MessageItem] {
        self.item_list.as_deref().unwrap_or(&[])
    }

    /// The body text as the official client reads it (§8.4): the first TEXT item's text,
    /// or the transcript of a VOICE item that comes first among text/media items.
    /// `None` if the first such item is media without text.
    pub fn body_text(&self) -> Option<&str> {
        for item in self.items() {
            match item.item_type {
                ItemType::Text => return item.text_item.as_ref().and_then(|t| t.text.as_deref()),
                ItemType::Voice => return item.voice_item.as_ref().and_then(|v| v.text.as_deref()),
                ItemType::Image | ItemType::File | ItemType::Video => return None,
                _ => {}
            }
        }
        None
    }
}

/// One content item of a message (§8.3).
///
/// `type` is [`item_type`](Self::item_type). An item of a type this crate does not
/// know keeps all its content (`extra` holds unknown sub-objects). Build items with the
/// constructors or with struct update syntax:
///
/// ```
/// use ilink_proto::{ItemType, MessageItem, TextItem};
/// let item = MessageItem {
///     item_type: ItemType::Text,
///     text_item: Some(TextItem::new("hi")),
///     ..Default::default()
/// };
/// assert_eq!(item, MessageItem::text("hi"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageItem {
    /// The JSON key `type`.
    pub item_type: ItemType,
    /// `true` when the decoded JSON had no `type` key (quoted items stripped by the
    /// server carry only ids, §19); `item_type` is then [`ItemType::None`]. While it is
    /// `true`, `type` is not serialized, whatever `item_type` holds. Leave it `false`
    /// when building items.
    pub type_absent: bool,
    /// Epoch milliseconds.
    pub create_time_ms: Option<i64>,
    /// Epoch milliseconds.
    pub update_time_ms: Option<i64>,
    /// Whether the item is complete (tool progress items set it).
    pub is_completed: Option<bool>,
    /// Item id: a number, a decimal string or a `"v1:<digits>"` string (§19).
    pub msg_id: Option<WireId>,
    /// A quoted message.
    pub ref_msg: Option<RefMessage>,
    /// Content of a TEXT item.
    pub text_item: Option<TextItem>,
    /// Content of an IMAGE item.
    pub image_item: Option<ImageItem>,
    /// Content of a VOICE item.
    pub voice_item: Option<VoiceItem>,
    /// Content of a FILE item.
    pub file_item: Option<FileItem>,
    /// Content of a VIDEO item.
    pub video_item: Option<VideoItem>,
    /// Content of a TOOL_CALL_START item (11).
    pub tool_call_start_item: Option<ToolCallStartItem>,
    /// Content of a TOOL_CALL_RESULT item (12).
    pub tool_call_result_item: Option<ToolCallResultItem>,
    /// Unknown fields (e.g. `button_item_list`, `at_bot_username_list`).
    pub extra: Extra,
}

impl MessageItem {
    /// A TEXT item: `{"type":1,"text_item":{"text":..}}`.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            item_type: ItemType::Text,
            text_item: Some(TextItem::new(text)),
            ..Self::default()
        }
    }

    /// An IMAGE item as the official client sends it: `media` and `mid_size` (the
    /// ciphertext size).
    pub fn image(media: CdnMedia, mid_size: u64) -> Self {
        Self {
            item_type: ItemType::Image,
            image_item: Some(ImageItem {
                media: Some(media),
                mid_size: Some(mid_size),
                ..ImageItem::default()
            }),
            ..Self::default()
        }
    }

    /// A VIDEO item as the official client sends it: `media` and `video_size` (the
    /// ciphertext size).
    pub fn video(media: CdnMedia, video_size: u64) -> Self {
        Self {
            item_type: ItemType::Video,
            video_item: Some(VideoItem {
                media: Some(media),
                video_size: Some(video_size),
                ..VideoItem::default()
            }),
            ..Self::default()
        }
    }

    /// A FILE item as the official client sends it: `media`, `file_name` and `len` (the
    /// plaintext size, as a decimal string on the wire).
    pub fn file(media: CdnMedia, file_name: impl Into<String>, plaintext_len: u64) -> Self {
        Self {
            item_type: ItemType::File,
            file_item: Some(FileItem {
                media: Some(media),
                file_name: Some(file_name.into()),
                len: Some(plaintext_len.to_string()),
                ..FileItem::default()
            }),
            ..Self::default()
        }
    }

    /// A VOICE item (not sent by the official client; §13): SILK media with its
    /// `encode_type`, `bits_per_sample`, `sample_rate` and `playtime` (ms).
    pub fn voice(media: CdnMedia, sample_rate: u32, playtime_ms: u64) -> Self {
        Self {
            item_type: ItemType::Voice,
            voice_item: Some(VoiceItem {
                media: Some(media),
                encode_type: Some(VoiceEncodeType::Silk),
                bits_per_sample: Some(16),
                sample_rate: Some(sample_rate),
                playtime: Some(playtime_ms),
                ..VoiceItem::default()
            }),
            ..Self::default()
        }
    }

    /// A TOOL_CALL_START item as the official client sends it (§9): `create_time_ms`,
    /// `is_completed:false` and `tool_call_start_item`.
    pub fn tool_call_start(
        create_time_ms: i64,
        tool_name: impl Into<String>,
        tool_call_id: impl Into<String>,
    ) -> Self {
        Self {
            item_type: ItemType::ToolCallStart,
            create_time_ms: Some(create_time_ms),
            is_completed: Some(false),
            tool_call_start_item: Some(ToolCallStartItem {
                tool_name: Some(tool_name.into()),
                tool_call_id: Some(tool_call_id.into()),
                extra: Extra::new(),
            }),
            ..Self::default()
        }
    }

    /// A TOOL_CALL_RESULT item as the official client sends it (§9): `is_completed:true`
    /// and `tool_call_result_item` with `status` (`completed`, `failed`, `blocked`,
    /// `unknown`).
    pub fn tool_call_result(
        tool_name: impl Into<String>,
        tool_call_id: impl Into<String>,
        status: impl Into<String>,
    ) -> Self {
        Self {
            item_type: ItemType::ToolCallResult,
            is_completed: Some(true),
            tool_call_result_item: Some(ToolCallResultItem {
                tool_name: Some(tool_name.into()),
                tool_call_id: Some(tool_call_id.into()),
                status: Some(status.into()),
                extra: Extra::new(),
            }),
            ..Self::default()
        }
    }

    /// The CDN media of this item's kind (image, voice, file or video), if any.
    pub fn media(&self) -> Option<&CdnMedia> {
        match self.item_type {
            ItemType::Image => self.image_item.as_ref()?.media.as_ref(),
            ItemType::Voice => self.voice_item.as_ref()?.media.as_ref(),
            ItemType::File => self.file_item.as_ref()?.media.as_ref(),
            ItemType::Video => self.video_item.as_ref()?.media.as_ref(),
            _ => None,
        }
    }
}

/// Deserialization shape of [`MessageItem`]: `type` may be absent.
#[derive(Deserialize)]
struct MessageItemDe {
    #[serde(rename = "type", default)]
    item_type: Option<ItemType>,
    #[serde(default)]
    create_time_ms: Option<i64>,
    #[serde(default)]
    update_time_ms: Option<i64>,
    #[serde(default)]
    is_completed: Option<bool>,
    #[serde(default)]
    msg_id: Option<WireId>,
    #[serde(default)]
    ref_msg: Option<RefMessage>,
    #[serde(default)]
    text_item: Option<TextItem>,
    #[serde(default)]
    image_item: Option<ImageItem>,
    #[serde(default)]
    voice_item: Option<VoiceItem>,
    #[serde(default)]
    file_item: Option<FileItem>,
    #[serde(default)]
    video_item: Option<VideoItem>,
    #[serde(default)]
    tool_call_start_item: Option<ToolCallStartItem>,
    #[serde(default)]
    tool_call_result_item: Option<ToolCallResultItem>,
    #[serde(flatten)]
    extra: Extra,
}

/// Serialization shape of [`MessageItem`], borrowing it.
#[derive(Serialize)]
struct MessageItemSer<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    item_type: Option<ItemType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    create_time_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    update_time_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_completed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg_id: Option<&'a WireId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ref_msg: Option<&'a RefMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text_item: Option<&'a TextItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_item: Option<&'a ImageItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    voice_item: Option<&'a VoiceItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_item: Option<&'a FileItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    video_item: Option<&'a VideoItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_start_item: Option<&'a ToolCallStartItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_result_item: Option<&'a ToolCallResultItem>,
    #[serde(flatten)]
    extra: &'a Extra,
}

impl Serialize for MessageItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        MessageItemSer {
            item_type: (!self.type_absent).then_some(self.item_type),
            create_time_ms: self.create_time_ms,
            update_time_ms: self.update_time_ms,
            is_completed: self.is_completed,
            msg_id: self.msg_id.as_ref(),
            ref_msg: self.ref_msg.as_ref(),
            text_item: self.text_item.as_ref(),
            image_item: self.image_item.as_ref(),
            voice_item: self.voice_item.as_ref(),
            file_item: self.file_item.as_ref(),
            video_item: self.video_item.as_ref(),
            tool_call_start_item: self.tool_call_start_item.as_ref(),
            tool_call_result_item: self.tool_call_result_item.as_ref(),
            extra: &self.extra,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MessageItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let de = MessageItemDe::deserialize(deserializer)?;
        Ok(Self {
            type_absent: de.item_type.is_none(),
            item_type: de.item_type.unwrap_or_default(),
            create_time_ms: de.create_time_ms,
            update_time_ms: de.update_time_ms,
            is_completed: de.is_completed,
            msg_id: de.msg_id,
            ref_msg: de.ref_msg,
            text_item: de.text_item,
            image_item: de.image_item,
            voice_item: de.voice_item,
            file_item: de.file_item,
            video_item: de.video_item,
            tool_call_start_item: de.tool_call_start_item,
            tool_call_result_item: de.tool_call_result_item,
            extra: de.extra,
        })
    }
}

/// `text_item`: only `text`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextItem {
    /// The text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl TextItem {
    /// A text item with `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            extra: Extra::new(),
        }
    }
}

/// `CDNMedia`: where an encrypted file lives on the CDN and how to decrypt it (§8.3).
///
/// `Debug` redacts `aes_key`, `encrypt_query_param` and the query of `full_url` (CDN
/// parameters stay out of logs, as in ilink-http); serde sees every field as is.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CdnMedia {
    /// The download parameter (the JSON key has no "ed"; the CDN query key does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt_query_param: Option<String>,
    /// The AES key, base64: of the 16 raw bytes (24 chars) or of the 32 hex characters
    /// (44 chars) (§12.4). Outbound: base64 of the hex text. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aes_key: Option<Secret>,
    /// `0` = only the file id is encrypted, `1` = thumbnail/mid-size info packed in; the
    /// official client always sends `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt_type: Option<i64>,
    /// A complete download URL; takes precedence over `encrypt_query_param`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_url: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl std::fmt::Debug for CdnMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// Shows only the length of a CDN parameter.
        struct Redacted(usize);
        impl std::fmt::Debug for Redacted {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "<redacted, {} bytes>", self.0)
            }
        }
        // A URL up to its query, which may carry the same CDN parameter.
        let full_url = self.full_url.as_deref().map(|u| match u.split_once('?') {
            Some((base, _)) => format!("{base}?<redacted>"),
            None => u.to_owned(),
        });
        f.debug_struct("CdnMedia")
            .field(
                "encrypt_query_param",
                &self.encrypt_query_param.as_ref().map(|p| Redacted(p.len())),
            )
            .field("aes_key", &self.aes_key)
            .field("encrypt_type", &self.encrypt_type)
            .field("full_url", &full_url)
            .field("extra", &self.extra)
            .finish()
    }
}

impl CdnMedia {
    /// Outbound media as the official client sends it: `encrypt_query_param` (the CDN's
    /// `x-encrypted-param`), `aes_key` (base64 of the 32-char hex key text) and
    /// `encrypt_type: 1`.
    pub fn outbound(encrypt_query_param: impl Into<String>, aes_key_b64: Secret) -> Self {
        Self {
            encrypt_query_param: Some(encrypt_query_param.into()),
            aes_key: Some(aes_key_b64),
            encrypt_type: Some(1),
            ..Self::default()
        }
    }

    /// Whether the media can be downloaded: `encrypt_query_param` or `full_url` is
    /// present and non-empty (§8.4).
    pub fn is_downloadable(&self) -> bool {
        self.encrypt_query_param
            .as_deref()
            .is_some_and(|s| !s.is_empty())
            || self.full_url.as_deref().is_some_and(|s| !s.is_empty())
    }
}

/// `image_item` (§8.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageItem {
    /// The original image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<CdnMedia>,
    /// The thumbnail (never fetched by the official client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_media: Option<CdnMedia>,
    /// Inbound AES key as 32 hex characters; preferred over `media.aes_key`. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aeskey: Option<Secret>,
    /// URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Size of the mid-size image; outbound: the ciphertext size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid_size: Option<u64>,
    /// Thumbnail size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_size: Option<u64>,
    /// Thumbnail height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_height: Option<u64>,
    /// Thumbnail width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_width: Option<u64>,
    /// HD image size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hd_size: Option<u64>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `voice_item` (§8.3). A captured voice item carried only `text` and `media` (§19).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VoiceItem {
    /// The voice media (SILK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<CdnMedia>,
    /// Codec; absent means assume SILK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encode_type: Option<VoiceEncodeType>,
    /// Bits per sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits_per_sample: Option<u32>,
    /// Sample rate in Hz; absent means assume 24 000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// Duration in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playtime: Option<u64>,
    /// The server's speech-to-text transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `file_item` (§8.3). `len` is a **string** on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileItem {
    /// The file media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<CdnMedia>,
    /// File name (outbound: the basename).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// MD5 hex of the plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Plaintext size as decimal text, e.g. `"542188"`. See [`len_bytes`](Self::len_bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl FileItem {
    /// `len` parsed as a number, if it is decimal digits.
    pub fn len_bytes(&self) -> Option<u64> {
        let s = self.len.as_deref()?.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

/// `video_item` (§8.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoItem {
    /// The video media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<CdnMedia>,
    /// Size in bytes; outbound: the ciphertext size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_size: Option<u64>,
    /// Duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play_length: Option<u64>,
    /// MD5 hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_md5: Option<String>,
    /// The thumbnail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_media: Option<CdnMedia>,
    /// Thumbnail size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_size: Option<u64>,
    /// Thumbnail height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_height: Option<u64>,
    /// Thumbnail width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_width: Option<u64>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ref_msg`: a quoted message (§8.3). Newer WeChat clients may strip the content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefMessage {
    /// The quoted content; may be absent, or carry only ids (§19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_item: Option<Box<MessageItem>>,
    /// A summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Server id of the quoted message (2.4.9+); absent in many captures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svr_id: Option<WireId>,
    /// Present when only part of a message was quoted (2.4.9+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_text: Option<PartialText>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ref_msg.partial_text`: the part of a message the user quoted (§8.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialText {
    /// Start text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// End text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Start index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startindex: Option<i64>,
    /// End index (two readings exist; `quotemd5` tells them apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endindex: Option<i64>,
    /// MD5 hex of the selected text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotemd5: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `tool_call_start_item` (item type 11, 2.4.4+).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallStartItem {
    /// Tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// Tool call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `tool_call_result_item` (item type 12, 2.4.4+).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallResultItem {
    /// Tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// Tool call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// `completed`, `failed`, `blocked` or `unknown` from the official client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    #[test]
    fn cdn_media_debug_redacts_cdn_parameters_but_serde_keeps_them() {
        let json = r#"{"encrypt_query_param":"EQP-SECRET-123","aes_key":"QUVTLUtFWS1TRUNSRVQ=","encrypt_type":1,"full_url":"https://cdn.example/c2c/download?encrypted_query_param=EQP-SECRET-123&filekey=k"}"#;
        let m: super::CdnMedia = serde_json::from_str(json).unwrap();
        let dbg = format!("{m:?}");
        assert!(!dbg.contains("EQP-SECRET"), "{dbg}");
        assert!(!dbg.contains("QUVTLUtFWS1TRUNSRVQ"), "{dbg}");
        assert!(dbg.contains("<redacted, 14 bytes>"), "{dbg}");
        assert!(
            dbg.contains("https://cdn.example/c2c/download?<redacted>"),
            "{dbg}"
        );
        assert!(dbg.contains("encrypt_type: Some(1)"), "{dbg}");
        // The wire form is untouched.
        assert_eq!(m.encrypt_query_param.as_deref(), Some("EQP-SECRET-123"));
        let back: serde_json::Value = serde_json::to_value(&m).unwrap();
        let orig: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back, orig);
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn item_without_type_round_trips() {
        let v = json!({"msg_id": 7504586663532869128u64});
        let item: MessageItem = serde_json::from_value(v.clone()).unwrap();
        assert!(item.type_absent);
        assert_eq!(item.item_type, ItemType::None);
        assert_eq!(serde_json::to_value(&item).unwrap(), v);
        let v0 = json!({"type": 0});
        let item: MessageItem = serde_json::from_value(v0.clone()).unwrap();
        assert!(!item.type_absent);
        assert_eq!(serde_json::to_value(&item).unwrap(), v0);
    }

    #[test]
    fn unknown_item_keeps_content() {
        let v = json!({"type": 8, "weird_item": {"a": [1, 2, {"b": null}]}, "msg_id": "v1:1"});
        let item: MessageItem = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(item.item_type, ItemType::Unknown(8));
        assert!(item.extra.contains_key("weird_item"));
        assert_eq!(serde_json::to_value(&item).unwrap(), v);
    }

    #[test]
    fn secrets_hidden_in_debug() {
        let mut m = WeixinMessage::outbound("u", "c", vec![], Some(Secret::from("CTX-SECRET")));
        m.item_list = Some(vec![MessageItem {
            item_type: ItemType::Image,
            image_item: Some(ImageItem {
                aeskey: Some(Secret::from("HEXKEY-SECRET")),
                media: Some(CdnMedia::outbound("p", Secret::from("B64KEY-SECRET"))),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let dbg = format!("{m:?}{m:#?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
    }

    #[test]
    fn outbound_shapes() {
        let m = WeixinMessage::outbound("u", "c", vec![], None);
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"from_user_id":"","to_user_id":"u","client_id":"c","message_type":2,"message_state":2})
        );
        let f = MessageItem::file(CdnMedia::outbound("q", Secret::from("k")), "a.pdf", 100);
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"type":4,"file_item":{"media":{"encrypt_query_param":"q","aes_key":"k","encrypt_type":1},"file_name":"a.pdf","len":"100"}})
        );
        assert_eq!(f.file_item.as_ref().unwrap().len_bytes(), Some(100));
        assert!(f.media().unwrap().is_downloadable());
        let t = MessageItem::tool_call_start(5, "search", "call-1");
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"type":11,"create_time_ms":5,"is_completed":false,"tool_call_start_item":{"tool_name":"search","tool_call_id":"call-1"}})
        );
        let r = MessageItem::tool_call_result("search", "call-1", "completed");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"type":12,"is_completed":true,"tool_call_result_item":{"tool_name":"search","tool_call_id":"call-1","status":"completed"}})
        );
    }

    #[test]
    fn body_text_rules() {
        let mut m = WeixinMessage::default();
        assert_eq!(m.body_text(), None);
        let voice = MessageItem {
            item_type: ItemType::Voice,
            voice_item: Some(VoiceItem {
                text: Some("transcript".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        m.item_list = Some(vec![voice, MessageItem::text("later")]);
        assert_eq!(m.body_text(), Some("transcript"));
        m.item_list = Some(vec![MessageItem::text("first"), MessageItem::text("x")]);
        assert_eq!(m.body_text(), Some("first"));
        m.item_list = Some(vec![
            MessageItem::image(CdnMedia::default(), 1),
            MessageItem::text("x"),
        ]);
        assert_eq!(m.body_text(), None);
    }
}
