#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod consts;

mod api;
mod decode;
mod enums;
mod envelope;
mod id;
mod lenient;
mod message;
mod secret;
mod url;
mod version;

pub use api::{
    ApiResponse, Endpoint, GetBotQrCodeRequest, GetBotQrCodeResponse, GetConfigRequest,
    GetConfigResponse, GetUpdatesRequest, GetUpdatesResponse, GetUploadUrlRequest,
    GetUploadUrlResponse, NotifyRequest, NotifyResponse, QrCodeStatusQuery, QrCodeStatusResponse,
    SendMessageRequest, SendMessageResponse, SendTypingRequest, SendTypingResponse,
};
pub use consts::*;
pub use decode::{
    DecodeError, MAX_BATCH_DEPTH, MAX_BODY_BYTES, MAX_DEPTH, RawMessageError, decode,
    decode_updates, decode_with_limits,
};
pub use enums::{
    ItemType, MessageState, MessageType, QrStatus, TypingStatus, UploadMediaType, VoiceEncodeType,
};
pub use envelope::{ApiError, Envelope, ThrottleReason};
pub use id::WireId;
pub use lenient::{MAX_LONG_POLL_TIMEOUT_MS, MessageErrorKind, UnparsedMessage};
pub use message::{
    CdnMedia, Extra, FileItem, ImageItem, MessageItem, PartialText, RefMessage, TextItem,
    ToolCallResultItem, ToolCallStartItem, VideoItem, VoiceItem, WeixinMessage,
};
pub use secret::Secret;
pub use url::{encode_uri_component, with_query};
pub use version::{
    BaseInfo, CompatVersion, DEFAULT_BOT_AGENT, ParseVersionError, sanitize_bot_agent,
    uin_header_value,
};

/// Alias of [`CdnMedia`] under the protocol's own name, `CDNMedia`.
pub type CDNMedia = CdnMedia;

/// Compile-time check that every public type can cross threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<WeixinMessage>();
    assert_send_sync::<MessageItem>();
    assert_send_sync::<TextItem>();
    assert_send_sync::<ImageItem>();
    assert_send_sync::<VoiceItem>();
    assert_send_sync::<FileItem>();
    assert_send_sync::<VideoItem>();
    assert_send_sync::<CdnMedia>();
    assert_send_sync::<RefMessage>();
    assert_send_sync::<PartialText>();
    assert_send_sync::<ToolCallStartItem>();
    assert_send_sync::<ToolCallResultItem>();
    assert_send_sync::<GetUpdatesRequest>();
    assert_send_sync::<GetUpdatesResponse>();
    assert_send_sync::<SendMessageRequest>();
    assert_send_sync::<SendMessageResponse>();
    assert_send_sync::<GetUploadUrlRequest>();
    assert_send_sync::<GetUploadUrlResponse>();
    assert_send_sync::<GetConfigRequest>();
    assert_send_sync::<GetConfigResponse>();
    assert_send_sync::<SendTypingRequest>();
    assert_send_sync::<SendTypingResponse>();
    assert_send_sync::<NotifyRequest>();
    assert_send_sync::<NotifyResponse>();
    assert_send_sync::<GetBotQrCodeRequest>();
    assert_send_sync::<GetBotQrCodeResponse>();
    assert_send_sync::<QrCodeStatusQuery>();
    assert_send_sync::<QrCodeStatusResponse>();
    assert_send_sync::<Envelope>();
    assert_send_sync::<ApiError>();
    assert_send_sync::<ThrottleReason>();
    assert_send_sync::<DecodeError>();
    assert_send_sync::<RawMessageError>();
    assert_send_sync::<UnparsedMessage>();
    assert_send_sync::<MessageErrorKind>();
    assert_send_sync::<WireId>();
    assert_send_sync::<Secret>();
    assert_send_sync::<BaseInfo>();
    assert_send_sync::<CompatVersion>();
    assert_send_sync::<ParseVersionError>();
    assert_send_sync::<Endpoint>();
    assert_send_sync::<MessageType>();
    assert_send_sync::<MessageState>();
    assert_send_sync::<ItemType>();
    assert_send_sync::<UploadMediaType>();
    assert_send_sync::<TypingStatus>();
    assert_send_sync::<VoiceEncodeType>();
    assert_send_sync::<QrStatus>();
};
