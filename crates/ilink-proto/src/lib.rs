#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod consts;

mod api;
mod decode;
mod enums;
mod envelope;
mod id;
mod message;
mod secret;
mod version;

pub use api::{
    ApiResponse, Endpoint, GetBotQrCodeRequest, GetBotQrCodeResponse, GetConfigRequest,
    GetConfigResponse, GetUpdatesRequest, GetUpdatesResponse, GetUploadUrlRequest,
    GetUploadUrlResponse, NotifyRequest, NotifyResponse, QrCodeStatusQuery, QrCodeStatusResponse,
    SendMessageRequest, SendMessageResponse, SendTypingRequest, SendTypingResponse,
};
pub use consts::*;
pub use decode::{
    DecodeError, MAX_BODY_BYTES, MAX_DEPTH, RawMessageError, decode, decode_with_limits,
};
pub use enums::{
    ItemType, MessageState, MessageType, QrStatus, TypingStatus, UploadMediaType, VoiceEncodeType,
};
pub use envelope::{ApiError, Envelope, ThrottleReason};
pub use id::WireId;
pub use message::{
    CdnMedia, Extra, FileItem, ImageItem, MessageItem, PartialText, RefMessage, TextItem,
    ToolCallResultItem, ToolCallStartItem, VideoItem, VoiceItem, WeixinMessage,
};
pub use secret::Secret;
pub use version::{
    BaseInfo, CompatVersion, DEFAULT_BOT_AGENT, ParseVersionError, sanitize_bot_agent,
    uin_header_value,
};

/// Alias of [`CdnMedia`] under the protocol's own name, `CDNMedia`.
pub type CDNMedia = CdnMedia;
