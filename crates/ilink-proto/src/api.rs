//! Requests and responses of every endpoint.
//!
//! Request fields are `Option`, as in the official client's types, so a server (the
//! emulator) sees exactly what was sent; use the constructors to build what the official
//! client sends. Responses carry the envelope fields `ret`, `errcode`, `errmsg` directly
//! and expose them as an [`Envelope`] through [`ApiResponse`]. Every struct keeps unknown
//! fields in `extra`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::consts;
use crate::decode::{MAX_DEPTH, RawMessageError, RawMessageErrorKind, RawPayload, value_depth};
use crate::enums::{QrStatus, TypingStatus, UploadMediaType};
use crate::envelope::{ApiError, Envelope};
use crate::id::WireId;
use crate::lenient::UnparsedMessage;
use crate::message::{Extra, WeixinMessage};
use crate::secret::Secret;
use crate::version::BaseInfo;

/// A response type: gives access to its envelope.
pub trait ApiResponse {
    /// The `ret` / `errcode` / `errmsg` of this response.
    fn envelope(&self) -> Envelope;

    /// [`Envelope::status`] of this response (the lenient §19 rule).
    fn status(&self) -> Result<(), ApiError> {
        self.envelope().status()
    }
}

macro_rules! impl_api_response {
    ($($t:ty),+) => {$(
        impl ApiResponse for $t {
            fn envelope(&self) -> Envelope {
                Envelope {
                    ret: self.ret,
                    errcode: self.errcode,
                    errmsg: self.errmsg.clone(),
                }
            }
        }
    )+};
}

// ---------------------------------------------------------------------------------------
// getupdates
// ---------------------------------------------------------------------------------------

/// `POST ilink/bot/getupdates` request (§7).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetUpdatesRequest {
    /// The cursor: `""` on the first call, then the last non-empty `get_updates_buf`.
    /// Secret (it embeds the bot token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_updates_buf: Option<Secret>,
    /// `base_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_info: Option<BaseInfo>,
    /// Unknown fields (e.g. the deprecated `sync_buf`, never sent by the official client).
    #[serde(flatten)]
    pub extra: Extra,
}

impl GetUpdatesRequest {
    /// The request the official client sends: `{"get_updates_buf":..,"base_info":..}`.
    pub fn new(get_updates_buf: Secret, base_info: BaseInfo) -> Self {
        Self {
            get_updates_buf: Some(get_updates_buf),
            base_info: Some(base_info),
            extra: Extra::new(),
        }
    }
}

/// `POST ilink/bot/getupdates` response (§7, §19).
///
/// `msgs` is kept as raw JSON so that **each message decodes on its own**: one bad
/// message never fails the batch, and the cursor stays readable. Use
/// [`messages`](Self::messages).
///
/// ```
/// use ilink_proto::{decode, GetUpdatesResponse};
/// let body = br#"{"msgs":[{"message_type":1,"item_list":[{"type":1,"text_item":{"text":"hi"}}]},
///                         {"message_type":"oops"}],
///                 "get_updates_buf":"CURSOR"}"#;
/// let resp: GetUpdatesResponse = decode(body).unwrap();
/// let msgs = resp.messages();
/// assert_eq!(msgs[0].as_ref().unwrap().body_text(), Some("hi"));
/// assert_eq!(msgs[1].as_ref().unwrap_err().raw().unwrap()["message_type"], "oops");
/// assert_eq!(resp.next_cursor().unwrap().expose(), "CURSOR");
/// ```
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetUpdatesResponse {
    /// `0` = success; absent on many live successes. Read from an integer, an integral float
    /// or a numeric string; anything else counts as absent.
    #[serde(
        default,
        deserialize_with = "crate::lenient::de_code",
        skip_serializing_if = "Option::is_none"
    )]
    pub ret: Option<i64>,
    /// `-14` = stale token or session. Read like `ret`.
    #[serde(
        default,
        deserialize_with = "crate::lenient::de_code",
        skip_serializing_if = "Option::is_none"
    )]
    pub errcode: Option<i64>,
    /// Error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errmsg: Option<String>,
    /// The messages that parsed as JSON, raw, in order. May be absent or empty. Entries whose
    /// bytes did not parse are in [`unparsed_msgs`](Self::unparsed_msgs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgs: Option<Vec<Value>>,
    /// Entries of `msgs` that are not JSON on their own (only from
    /// [`decode_updates`](crate::decode_updates); never serialized), with their positions.
    #[serde(skip)]
    pub unparsed_msgs: Vec<UnparsedMessage>,
    /// The next cursor; absent or empty means keep the old one. Secret. Any JSON scalar is
    /// kept as its text.
    #[serde(
        default,
        deserialize_with = "crate::lenient::de_cursor",
        skip_serializing_if = "Option::is_none"
    )]
    pub get_updates_buf: Option<Secret>,
    /// The server's suggested client timeout for the next poll, in ms: any non-negative
    /// number, rounded up and clamped to [`MAX_LONG_POLL_TIMEOUT_MS`](crate::MAX_LONG_POLL_TIMEOUT_MS).
    #[serde(
        default,
        deserialize_with = "crate::lenient::de_timeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub longpolling_timeout_ms: Option<i64>,
    /// Deprecated cursor, ignored by clients; secret like the cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_buf: Option<Secret>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl GetUpdatesResponse {
    /// A successful response (`ret: 0`) carrying `messages` and the next cursor, as a
    /// server builds it.
    pub fn with_messages<'a>(
        messages: impl IntoIterator<Item = &'a WeixinMessage>,
        get_updates_buf: Secret,
    ) -> Result<Self, serde_json::Error> {
        let msgs = messages
            .into_iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            ret: Some(0),
            msgs: Some(msgs),
            get_updates_buf: Some(get_updates_buf),
            ..Self::default()
        })
    }

    /// Decodes each message on its own, in the order of `msgs`. A message that fails becomes
    /// a [`RawMessageError`] carrying its index and its raw JSON or bytes.
    pub fn messages(&self) -> Vec<Result<WeixinMessage, RawMessageError>> {
        self.clone().into_messages()
    }

    /// Like [`messages`](Self::messages), consuming the response (no copies).
    pub fn into_messages(self) -> Vec<Result<WeixinMessage, RawMessageError>> {
        let mut parsed = self.msgs.into_iter().flatten();
        let mut unparsed = self.unparsed_msgs;
        unparsed.sort_by_key(|u| u.index);
        let mut unparsed = unparsed.into_iter().peekable();
        let mut out = Vec::new();
        loop {
            let index = out.len();
            if let Some(u) = unparsed.next_if(|u| u.index <= index) {
                out.push(Err(RawMessageError {
                    index,
                    raw: RawPayload::Bytes(u.bytes),
                    error: RawMessageErrorKind::Unparsed(u.kind, u.detail),
                }));
            } else if let Some(raw) = parsed.next() {
                out.push(decode_message(index, raw));
            } else if let Some(u) = unparsed.next() {
                out.push(Err(RawMessageError {
                    index,
                    raw: RawPayload::Bytes(u.bytes),
                    error: RawMessageErrorKind::Unparsed(u.kind, u.detail),
                }));
            } else {
                return out;
            }
        }
    }

    /// Number of messages in the batch, parsed or not.
    pub fn message_count(&self) -> usize {
        self.msgs.as_ref().map_or(0, Vec::len) + self.unparsed_msgs.len()
    }

    /// The cursor to use next, if the server sent a non-empty one (§7). `None` means:
    /// keep sending the old cursor.
    pub fn next_cursor(&self) -> Option<&Secret> {
        self.get_updates_buf.as_ref().filter(|c| !c.is_empty())
    }

    /// The server's suggested hold time, if positive, and at least
    /// [`MIN_LONG_POLL_TIMEOUT`](Self::MIN_LONG_POLL_TIMEOUT) (a value such as `3.5` ms would
    /// make every poll time out at once); the official client uses it as the next poll's
    /// timeout with no margin (§4).
    pub fn long_poll_timeout(&self) -> Option<Duration> {
        self.longpolling_timeout_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .filter(|&ms| ms > 0)
            .map(|ms| Duration::from_millis(ms).max(Self::MIN_LONG_POLL_TIMEOUT))
    }

    /// The shortest long-poll timeout [`long_poll_timeout`](Self::long_poll_timeout) gives:
    /// 1 s.
    pub const MIN_LONG_POLL_TIMEOUT: Duration = Duration::from_secs(1);
}

fn decode_message(index: usize, raw: Value) -> Result<WeixinMessage, RawMessageError> {
    // Values from `decode` are already depth-limited; this guards values built by hand,
    // since deserializing deeply nested quotes recurses.
    if value_depth(&raw) > MAX_DEPTH {
        return Err(RawMessageError {
            index,
            raw: RawPayload::Json(raw),
            error: RawMessageErrorKind::TooDeep(MAX_DEPTH),
        });
    }
    match serde::Deserialize::deserialize(&raw) {
        Ok(m) => Ok(m),
        Err(e) => Err(RawMessageError {
            index,
            raw: RawPayload::Json(raw),
            error: RawMessageErrorKind::Json(e),
        }),
    }
}

impl fmt::Debug for GetUpdatesResponse {
    /// Shows the message count, not the messages (they carry context tokens).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetUpdatesResponse")
            .field("ret", &self.ret)
            .field("errcode", &self.errcode)
            .field("errmsg", &self.errmsg)
            .field("msgs", &format_args!("<{} messages>", self.message_count()))
            .field("unparsed_msgs", &self.unparsed_msgs.len())
            .field("get_updates_buf", &self.get_updates_buf)
            .field("longpolling_timeout_ms", &self.longpolling_timeout_ms)
            .field("sync_buf", &self.sync_buf)
            .field("extra", &self.extra)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// sendmessage
// ---------------------------------------------------------------------------------------

/// `POST ilink/bot/sendmessage` request: `{"msg":..,"base_info":..}` (§9).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendMessageRequest {
    /// The message; see [`WeixinMessage::outbound`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<WeixinMessage>,
    /// `base_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_info: Option<BaseInfo>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SendMessageRequest {
    /// The request the official client sends.
    pub fn new(msg: WeixinMessage, base_info: BaseInfo) -> Self {
        Self {
            msg: Some(msg),
            base_info: Some(base_info),
            extra: Extra::new(),
        }
    }
}

/// `POST ilink/bot/sendmessage` response (§9, §19).
///
/// `{"ret":0}` without `message_id` was reported as accepted but never delivered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendMessageResponse {
    /// `0` = success; `-2` the common rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// Not checked by the official client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    /// Error text (`"invalid arguments"`, `"prepare failed"`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errmsg: Option<String>,
    /// Server message id (uint64 beyond 2^53).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<WireId>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

// ---------------------------------------------------------------------------------------
// getuploadurl
// ---------------------------------------------------------------------------------------

/// `POST ilink/bot/getuploadurl` request (§12.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetUploadUrlRequest {
    /// 32 lowercase hex characters, new for each upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filekey: Option<String>,
    /// What is uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<UploadMediaType>,
    /// The recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_user_id: Option<String>,
    /// Plaintext size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rawsize: Option<u64>,
    /// Lowercase hex MD5 of the plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rawfilemd5: Option<String>,
    /// Ciphertext size: `16 * (rawsize / 16 + 1)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesize: Option<u64>,
    /// Always `true` from the official client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_need_thumb: Option<bool>,
    /// The AES key as 32 lowercase hex characters. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aeskey: Option<Secret>,
    /// Thumbnail plaintext size (declared, never sent by the official client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_rawsize: Option<u64>,
    /// Thumbnail MD5 (declared, never sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_rawfilemd5: Option<String>,
    /// Thumbnail ciphertext size (declared, never sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_filesize: Option<u64>,
    /// The chat's `context_token` (the one sendmessage carries). Not in Tencent's client
    /// 2.4.9; since about July 2026 the live server refuses a grant without it (`ret:-2`, or
    /// `errcode:-14` "session timeout" although the session is valid). docs/protocol.md §12.1
    /// \[obs\]. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_token: Option<Secret>,
    /// `base_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_info: Option<BaseInfo>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl GetUploadUrlRequest {
    /// The request the official client sends for an upload: `filesize` is computed from
    /// `rawsize` ([`ciphertext_size`](Self::ciphertext_size)) and `no_need_thumb` is
    /// `true`. `aeskey_hex` is the key as 32 lowercase hex characters.
    pub fn new(
        filekey: impl Into<String>,
        media_type: UploadMediaType,
        to_user_id: impl Into<String>,
        rawsize: u64,
        rawfilemd5: impl Into<String>,
        aeskey_hex: Secret,
        base_info: BaseInfo,
    ) -> Self {
        Self {
            filekey: Some(filekey.into()),
            media_type: Some(media_type),
            to_user_id: Some(to_user_id.into()),
            rawsize: Some(rawsize),
            rawfilemd5: Some(rawfilemd5.into()),
            filesize: Some(Self::ciphertext_size(rawsize)),
            no_need_thumb: Some(true),
            aeskey: Some(aeskey_hex),
            base_info: Some(base_info),
            ..Self::default()
        }
    }

    /// The same request carrying the chat's `context_token` (see
    /// [`GetUploadUrlRequest::context_token`]); it is serialized after the official
    /// client's fields, before `base_info`.
    #[must_use]
    pub fn with_context_token(mut self, token: Secret) -> Self {
        self.context_token = Some(token);
        self
    }

    /// AES-128-ECB/PKCS#7 ciphertext size of `rawsize` plaintext bytes:
    /// `16 * (rawsize / 16 + 1)` (§12.4). Saturates at `u64::MAX` (no real file gets there).
    pub const fn ciphertext_size(rawsize: u64) -> u64 {
        (rawsize / 16).saturating_add(1).saturating_mul(16)
    }
}

/// `POST ilink/bot/getuploadurl` response (§12.1, §19).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetUploadUrlResponse {
    /// Not checked by the official client; `-1`/`-2` seen on failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    /// Error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errmsg: Option<String>,
    /// Upload parameter for the original file (legacy; replaced by `upload_full_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_param: Option<String>,
    /// Thumbnail upload parameter; empty without a thumbnail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_upload_param: Option<String>,
    /// A complete upload URL (may carry extra query parameters such as `taskid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_full_url: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl GetUploadUrlResponse {
    /// The trimmed `upload_full_url`, if non-empty: it takes precedence (§12.2).
    pub fn full_url(&self) -> Option<&str> {
        self.upload_full_url
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The `upload_param`, if non-empty.
    pub fn param(&self) -> Option<&str> {
        self.upload_param.as_deref().filter(|s| !s.is_empty())
    }

    /// The official client's judgement (§5): the call failed only if both
    /// `upload_full_url` and `upload_param` are empty.
    pub fn has_upload_target(&self) -> bool {
        self.full_url().is_some() || self.param().is_some()
    }
}

// ---------------------------------------------------------------------------------------
// getconfig, sendtyping
// ---------------------------------------------------------------------------------------

/// `POST ilink/bot/getconfig` request (§10).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetConfigRequest {
    /// The peer; the server answers `ret:-2 "ilink_user_id required"` without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ilink_user_id: Option<String>,
    /// Token of the inbound message that triggered the call. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_token: Option<Secret>,
    /// `base_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_info: Option<BaseInfo>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl GetConfigRequest {
    /// The request the official client sends.
    pub fn new(
        ilink_user_id: impl Into<String>,
        context_token: Option<Secret>,
        base_info: BaseInfo,
    ) -> Self {
        Self {
            ilink_user_id: Some(ilink_user_id.into()),
            context_token,
            base_info: Some(base_info),
            extra: Extra::new(),
        }
    }
}

/// `POST ilink/bot/getconfig` response (§10). The official client requires an explicit
/// `ret: 0` here ([`Envelope::status_requiring_ret`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetConfigResponse {
    /// `0` = success (must be explicit for the official client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    /// Error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errmsg: Option<String>,
    /// The typing ticket (base64) for sendtyping. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_ticket: Option<Secret>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `POST ilink/bot/sendtyping` request (§10). There is no `context_token`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendTypingRequest {
    /// The peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ilink_user_id: Option<String>,
    /// From getconfig. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_ticket: Option<Secret>,
    /// Typing or cancel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TypingStatus>,
    /// `base_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_info: Option<BaseInfo>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SendTypingRequest {
    /// The request the official client sends.
    pub fn new(
        ilink_user_id: impl Into<String>,
        typing_ticket: Secret,
        status: TypingStatus,
        base_info: BaseInfo,
    ) -> Self {
        Self {
            ilink_user_id: Some(ilink_user_id.into()),
            typing_ticket: Some(typing_ticket),
            status: Some(status),
            base_info: Some(base_info),
            extra: Extra::new(),
        }
    }
}

/// `POST ilink/bot/sendtyping` response; the official client never reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendTypingResponse {
    /// `0` = success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    /// Error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errmsg: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

// ---------------------------------------------------------------------------------------
// notifystart / notifystop
// ---------------------------------------------------------------------------------------

/// `POST ilink/bot/msg/notifystart` and `msg/notifystop` request: only `base_info` (§11).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifyRequest {
    /// `base_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_info: Option<BaseInfo>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl NotifyRequest {
    /// The request the official client sends.
    pub fn new(base_info: BaseInfo) -> Self {
        Self {
            base_info: Some(base_info),
            extra: Extra::new(),
        }
    }
}

/// `msg/notifystart` and `msg/notifystop` response: `{ret, errmsg}`; a non-zero `ret`
/// is only logged by the official client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifyResponse {
    /// `0` = success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    /// Error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errmsg: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

// ---------------------------------------------------------------------------------------
// QR login
// ---------------------------------------------------------------------------------------

/// `POST ilink/bot/get_bot_qrcode?bot_type=3` body (2.3.1+, §6.1): up to 10 locally
/// stored bot tokens, newest account first, possibly empty. No `base_info`, no
/// Authorization header.
///
/// Before 2.3.1 the same call was a `GET` with the same query and **no body**: for that
/// form send no `GetBotQrCodeRequest` at all
/// ([`CompatVersion::posts_qrcode_request`](crate::CompatVersion::posts_qrcode_request)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetBotQrCodeRequest {
    /// Stored bot tokens (secrets); always sent, `[]` when there are none.
    #[serde(default)]
    pub local_token_list: Vec<Secret>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl GetBotQrCodeRequest {
    /// A request with the given tokens, keeping at most [`consts::MAX_LOCAL_TOKENS`].
    pub fn new(tokens: impl IntoIterator<Item = Secret>) -> Self {
        Self {
            local_token_list: tokens.into_iter().take(consts::MAX_LOCAL_TOKENS).collect(),
            extra: Extra::new(),
        }
    }

    /// The query pairs of the URL: `bot_type=3`.
    pub fn query_pairs() -> [(&'static str, &'static str); 1] {
        [(consts::QUERY_BOT_TYPE, consts::DEFAULT_BOT_TYPE)]
    }
}

/// `get_bot_qrcode` response (§6.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetBotQrCodeResponse {
    /// `0` seen on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    /// Error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errmsg: Option<String>,
    /// The opaque QR key to poll with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qrcode: Option<String>,
    /// The content to render as the QR code (a liteapp.weixin.qq.com link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qrcode_img_content: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The query of `GET ilink/bot/get_qrcode_status` (§6.1); it has no body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QrCodeStatusQuery {
    /// The QR key from [`GetBotQrCodeResponse::qrcode`].
    pub qrcode: String,
    /// The digits the user typed after `need_verifycode`.
    pub verify_code: Option<String>,
}

impl QrCodeStatusQuery {
    /// The query pairs, not yet URL-encoded: `qrcode` then optional `verify_code`.
    pub fn query_pairs(&self) -> Vec<(&'static str, &str)> {
        let mut pairs = vec![(consts::QUERY_QRCODE, self.qrcode.as_str())];
        if let Some(code) = &self.verify_code {
            pairs.push((consts::QUERY_VERIFY_CODE, code.as_str()));
        }
        pairs
    }
}

/// `get_qrcode_status` response (§6.1, §6.2).
///
/// A missing `status` decodes as [`QrStatus::Wait`] (what the official client does
/// with any unusable answer) and is then written back as `"wait"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QrCodeStatusResponse {
    /// Error code field `ret`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    /// Error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errmsg: Option<String>,
    /// The login state.
    #[serde(default)]
    pub status: QrStatus,
    /// With `confirmed`: the Bearer token. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token: Option<Secret>,
    /// With `confirmed` (required): the account id, `…@im.bot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ilink_bot_id: Option<String>,
    /// With `confirmed`: the future API base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseurl: Option<String>,
    /// With `confirmed`: the WeChat user who scanned, `…@im.wechat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ilink_user_id: Option<String>,
    /// With `scaned_but_redirect`: poll `https://<redirect_host>` from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_host: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl_api_response!(
    GetUpdatesResponse,
    SendMessageResponse,
    GetUploadUrlResponse,
    GetConfigResponse,
    SendTypingResponse,
    NotifyResponse,
    GetBotQrCodeResponse,
    QrCodeStatusResponse
);

impl ApiResponse for Envelope {
    fn envelope(&self) -> Envelope {
        self.clone()
    }
}

// ---------------------------------------------------------------------------------------
// Endpoint metadata
// ---------------------------------------------------------------------------------------

/// Every endpoint of the bot API, with its path, method, timeout and how the official
/// client judges its response.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST ilink/bot/getupdates`.
    GetUpdates,
    /// `POST ilink/bot/sendmessage`.
    SendMessage,
    /// `POST ilink/bot/getuploadurl`.
    GetUploadUrl,
    /// `POST ilink/bot/getconfig`.
    GetConfig,
    /// `POST ilink/bot/sendtyping`.
    SendTyping,
    /// `POST ilink/bot/msg/notifystart`.
    NotifyStart,
    /// `POST ilink/bot/msg/notifystop`.
    NotifyStop,
    /// `POST` (2.3.1+) or `GET` `ilink/bot/get_bot_qrcode`.
    GetBotQrCode,
    /// `GET ilink/bot/get_qrcode_status`.
    GetQrCodeStatus,
}

impl Endpoint {
    /// All endpoints.
    pub const ALL: [Endpoint; 9] = [
        Self::GetUpdates,
        Self::SendMessage,
        Self::GetUploadUrl,
        Self::GetConfig,
        Self::SendTyping,
        Self::NotifyStart,
        Self::NotifyStop,
        Self::GetBotQrCode,
        Self::GetQrCodeStatus,
    ];

    /// The path, without a leading slash.
    pub const fn path(self) -> &'static str {
        match self {
            Self::GetUpdates => consts::GET_UPDATES,
            Self::SendMessage => consts::SEND_MESSAGE,
            Self::GetUploadUrl => consts::GET_UPLOAD_URL,
            Self::GetConfig => consts::GET_CONFIG,
            Self::SendTyping => consts::SEND_TYPING,
            Self::NotifyStart => consts::NOTIFY_START,
            Self::NotifyStop => consts::NOTIFY_STOP,
            Self::GetBotQrCode => consts::GET_BOT_QRCODE,
            Self::GetQrCodeStatus => consts::GET_QRCODE_STATUS,
        }
    }

    /// The endpoint for a path (with or without a leading slash).
    pub fn from_path(path: &str) -> Option<Self> {
        let p = path.strip_prefix('/').unwrap_or(path);
        Self::ALL.into_iter().find(|e| e.path() == p)
    }

    /// The HTTP method of the 2.4.9 client: `"GET"` for get_qrcode_status, `"POST"`
    /// otherwise (get_bot_qrcode was `GET` before 2.3.1).
    pub const fn method(self) -> &'static str {
        match self {
            Self::GetQrCodeStatus => "GET",
            _ => "POST",
        }
    }

    /// Whether the request carries the bot token and `base_info` (all `POST`s but
    /// get_bot_qrcode).
    pub const fn is_authenticated(self) -> bool {
        !matches!(self, Self::GetBotQrCode | Self::GetQrCodeStatus)
    }

    /// Whether the server holds the request open until something happens (a long-poll):
    /// getupdates and get_qrcode_status. A client sends these on a pool of their own so a
    /// held poll never delays another call.
    pub const fn is_long_poll(self) -> bool {
        matches!(self, Self::GetUpdates | Self::GetQrCodeStatus)
    }

    /// The last path segment (`"sendmessage"`, `"notifystart"`), for messages and logs.
    pub fn name(self) -> &'static str {
        let p = self.path();
        match p.rsplit_once('/') {
            Some((_, last)) => last,
            None => p,
        }
    }

    /// The official client's timeout for this call (§4); `None` for get_bot_qrcode
    /// (2.1.4+ has none). getupdates uses [`consts::LONG_POLL_TIMEOUT`] until the server
    /// suggests another.
    pub const fn timeout(self) -> Option<Duration> {
        match self {
            Self::GetUpdates => Some(consts::LONG_POLL_TIMEOUT),
            Self::SendMessage | Self::GetUploadUrl => Some(consts::API_TIMEOUT),
            Self::GetConfig => Some(consts::CONFIG_TIMEOUT),
            Self::SendTyping => Some(consts::TYPING_TIMEOUT),
            Self::NotifyStart | Self::NotifyStop => Some(consts::NOTIFY_TIMEOUT),
            Self::GetBotQrCode => None,
            Self::GetQrCodeStatus => Some(consts::QR_STATUS_TIMEOUT),
        }
    }

    /// How the official client 2.4.9 judges this endpoint's envelope (§5):
    ///
    /// * getupdates: non-zero `ret` or `errcode` ([`Envelope::status`]);
    /// * sendmessage: non-zero `ret` only ([`Envelope::status_ret_only`]);
    /// * getconfig: explicit `ret: 0` required ([`Envelope::status_requiring_ret`]);
    /// * getuploadurl, notify*, sendtyping, QR endpoints: the envelope is not checked
    ///   (getuploadurl fails on a missing upload target instead, see
    ///   [`GetUploadUrlResponse::has_upload_target`]).
    ///
    /// This project's client uses the lenient [`Envelope::status`] everywhere (§19).
    pub fn official_status(self, envelope: &Envelope) -> Result<(), ApiError> {
        match self {
            Self::GetUpdates => envelope.status(),
            Self::SendMessage => envelope.status_ret_only(),
            Self::GetConfig => envelope.status_requiring_ret(),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageItem;
    use serde_json::json;

    #[test]
    fn one_bad_message_does_not_fail_the_batch() {
        let body = json!({
            "msgs": [
                {"seq": 1, "item_list": [{"type": 1, "text_item": {"text": "a"}}]},
                {"seq": "not a number", "context_token": "SECRET-CTX"},
                7,
                {"message_id": 18446744073709551615u64}
            ],
            "get_updates_buf": "NEXT"
        });
        let resp: GetUpdatesResponse = serde_json::from_value(body).unwrap();
        let msgs = resp.messages();
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[0].as_ref().unwrap().seq, Some(1));
        let err = msgs[1].as_ref().unwrap_err();
        assert_eq!(err.index(), 1);
        assert_eq!(err.raw().unwrap()["seq"], "not a number");
        assert!(!format!("{err:?} {err}").contains("SECRET-CTX"));
        assert!(msgs[2].is_err());
        assert_eq!(
            msgs[3]
                .as_ref()
                .unwrap()
                .message_id
                .as_ref()
                .unwrap()
                .as_u64(),
            Some(u64::MAX)
        );
        assert_eq!(resp.next_cursor().unwrap().expose(), "NEXT");
        assert_eq!(resp.clone().into_messages().len(), 4);
        assert!(!format!("{resp:?}").contains("SECRET-CTX"));
        assert!(!format!("{resp:?}").contains("NEXT"));
    }

    #[test]
    fn cursor_and_timeout_rules() {
        let r: GetUpdatesResponse =
            serde_json::from_value(json!({"get_updates_buf": "", "longpolling_timeout_ms": 0}))
                .unwrap();
        assert!(r.next_cursor().is_none());
        assert_eq!(r.long_poll_timeout(), None);
        let r: GetUpdatesResponse =
            serde_json::from_value(json!({"longpolling_timeout_ms": 25000})).unwrap();
        assert_eq!(r.long_poll_timeout(), Some(Duration::from_secs(25)));
        let r: GetUpdatesResponse =
            serde_json::from_value(json!({"longpolling_timeout_ms": -1})).unwrap();
        assert_eq!(r.long_poll_timeout(), None);
    }

    #[test]
    fn with_messages_round_trips() {
        let m = WeixinMessage::outbound("u", "c", vec![MessageItem::text("x")], None);
        let r = GetUpdatesResponse::with_messages([&m], Secret::from("C")).unwrap();
        let got = r.messages();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap(), &m);
        assert_eq!(r.status(), Ok(()));
    }

    #[test]
    fn ciphertext_sizes() {
        for (raw, ct) in [(0, 16), (1, 16), (15, 16), (16, 32), (17, 32), (100, 112)] {
            assert_eq!(GetUploadUrlRequest::ciphertext_size(raw), ct);
        }
        assert_eq!(GetUploadUrlRequest::ciphertext_size(u64::MAX), u64::MAX);
    }

    #[test]
    fn upload_target() {
        let r: GetUploadUrlResponse =
            serde_json::from_value(json!({"upload_full_url": "  ", "upload_param": ""})).unwrap();
        assert!(!r.has_upload_target());
        let r: GetUploadUrlResponse =
            serde_json::from_value(json!({"upload_full_url": " https://x/upload?taskid=1 "}))
                .unwrap();
        assert_eq!(r.full_url(), Some("https://x/upload?taskid=1"));
        assert!(r.has_upload_target());
    }

    #[test]
    fn endpoints() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_path(&format!("/{}", e.path())), Some(e));
        }
        assert_eq!(Endpoint::from_path("ilink/bot/nope"), None);
        assert_eq!(Endpoint::GetQrCodeStatus.method(), "GET");
        assert_eq!(Endpoint::NotifyStart.name(), "notifystart");
        assert_eq!(Endpoint::GetUpdates.name(), "getupdates");
        assert!(Endpoint::GetUpdates.is_long_poll());
        assert!(!Endpoint::SendMessage.is_long_poll());
        assert!(!Endpoint::GetBotQrCode.is_authenticated());
        let e: Envelope = serde_json::from_value(json!({"errcode": -14})).unwrap();
        assert!(Endpoint::GetUpdates.official_status(&e).is_err());
        assert!(Endpoint::SendMessage.official_status(&e).is_ok());
        assert!(
            Endpoint::GetConfig
                .official_status(&Envelope::default())
                .is_err()
        );
        assert!(
            Endpoint::NotifyStart
                .official_status(&Envelope::error(-1, None))
                .is_ok()
        );
    }

    #[test]
    fn qr_query() {
        let q = QrCodeStatusQuery {
            qrcode: "K".into(),
            verify_code: Some("123".into()),
        };
        assert_eq!(
            q.query_pairs(),
            vec![("qrcode", "K"), ("verify_code", "123")]
        );
        let r = GetBotQrCodeRequest::new((0..20).map(|i| Secret::new(i.to_string())));
        assert_eq!(r.local_token_list.len(), 10);
        assert_eq!(
            serde_json::to_string(&GetBotQrCodeRequest::default()).unwrap(),
            r#"{"local_token_list":[]}"#
        );
    }
}
