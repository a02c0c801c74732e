//! What the emulator records and hands back to tests: accounts, deliveries, drops,
//! uploads, requests and typing state.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Shows that a secret exists without showing it.
pub(crate) fn redact(s: &str) -> String {
    format!("<redacted {} chars>", s.chars().count())
}

/// A bot account known to the emulator: the `ilink_bot_id` and its Bearer token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotAccount {
    /// The account id, `…@im.bot`.
    pub bot_id: String,
    /// The Bearer token (`bot_token`). Redacted in `Debug`.
    pub token: String,
    /// The WeChat user bound to this bot (the one who scanned the QR code), if any.
    pub user_id: Option<String>,
}

impl fmt::Debug for BotAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BotAccount")
            .field("bot_id", &self.bot_id)
            .field("token", &redact(&self.token))
            .field("user_id", &self.user_id)
            .finish()
    }
}

impl AsRef<str> for BotAccount {
    fn as_ref(&self) -> &str {
        &self.bot_id
    }
}

/// An inbound message a scripted user sent, as queued for the bot's `getupdates`.
#[derive(Clone, Serialize, Deserialize)]
pub struct Inbound {
    /// Server message id (a number above 2^53, sent as a bare JSON number).
    pub message_id: u64,
    /// Position in the bot's update stream (`seq`).
    pub seq: u64,
    /// The sender, `…@im.wechat`.
    pub from_user_id: String,
    /// The bot it was sent to.
    pub bot_id: String,
    /// The `context_token` issued with this message. Redacted in `Debug`.
    pub context_token: String,
    /// The whole message exactly as `getupdates` serves it.
    pub message: Value,
}

impl Inbound {
    /// The message decoded with the protocol crate's types.
    ///
    /// # Errors
    /// The serde error if the message does not decode.
    pub fn parsed(&self) -> Result<ilink_proto::WeixinMessage, serde_json::Error> {
        serde_json::from_value(self.message.clone())
    }
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound")
            .field("message_id", &self.message_id)
            .field("seq", &self.seq)
            .field("from_user_id", &self.from_user_id)
            .field("bot_id", &self.bot_id)
            .field("context_token", &redact(&self.context_token))
            .finish_non_exhaustive()
    }
}

/// A message the bot sent that the server delivered to the user.
#[derive(Clone, Serialize, Deserialize)]
pub struct Delivered {
    /// The server-assigned `message_id` returned to the bot.
    pub message_id: u64,
    /// The sending bot.
    pub bot_id: String,
    /// The recipient (`to_user_id`).
    pub to_user_id: String,
    /// The bot's `client_id`.
    pub client_id: String,
    /// The `context_token` the bot sent back. Redacted in `Debug`.
    pub context_token: Option<String>,
    /// The bot's `run_id`, if any.
    pub run_id: Option<String>,
    /// The single item of `item_list`.
    pub item: Value,
    /// The whole request body as the bot sent it.
    pub raw: Value,
    /// Emulated epoch milliseconds of delivery.
    pub at_ms: u64,
}

impl Delivered {
    /// The item type (`1` text, `2` image, `3` voice, `4` file, `5` video, ...).
    pub fn item_type(&self) -> Option<u64> {
        self.item.get("type").and_then(Value::as_u64)
    }

    /// The item decoded with the protocol crate's types.
    ///
    /// # Errors
    /// The serde error if the item does not decode.
    pub fn parsed_item(&self) -> Result<ilink_proto::MessageItem, serde_json::Error> {
        serde_json::from_value(self.item.clone())
    }

    /// The text of a TEXT item.
    pub fn text(&self) -> Option<&str> {
        self.item
            .get("text_item")
            .and_then(|t| t.get("text"))
            .and_then(Value::as_str)
    }
}

impl fmt::Debug for Delivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivered")
            .field("message_id", &self.message_id)
            .field("bot_id", &self.bot_id)
            .field("to_user_id", &self.to_user_id)
            .field("client_id", &self.client_id)
            .field("context_token", &self.context_token.as_deref().map(redact))
            .field("item_type", &self.item_type())
            .field("text", &self.text())
            .finish_non_exhaustive()
    }
}

/// Why the emulator did not deliver a request that a client may have taken as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DropReason {
    /// The body was not JSON.
    MalformedJson,
    /// No `msg` object.
    MissingMsg,
    /// No `base_info` object.
    MissingBaseInfo,
    /// `msg.from_user_id` absent or not `""`.
    FromUserIdNotEmpty,
    /// `msg.client_id` absent or empty.
    MissingClientId,
    /// `msg.client_id` reused (the server keeps the first message only).
    DuplicateClientId,
    /// `msg.message_type` not `2` (BOT).
    WrongMessageType,
    /// `msg.message_state` not `2` (FINISH).
    WrongMessageState,
    /// `msg.to_user_id` absent or empty.
    MissingRecipient,
    /// `msg.item_list` absent or empty.
    NoItems,
    /// More than one item in `item_list` (`ret:-2`, `"invalid arguments"`).
    MultipleItems,
    /// An item whose type and content do not match, or that is empty.
    InvalidItem,
    /// No `context_token` (`ret:-2`).
    MissingContextToken,
    /// A `context_token` the server never issued to this user for this bot
    /// (`ret:-2`, `"prepare failed"`).
    InvalidContextToken,
    /// A `context_token` older than [`SimConfig::context_token_lifetime`](crate::SimConfig::context_token_lifetime)
    /// (`ret:-2`, `"prepare failed"`).
    StaleContextToken,
    /// More than the allowed replies since the user's last message (`ret:-2`).
    ReplyLimitReached,
    /// The user's last message is older than the reply window (`ret:-2`).
    ReplyWindowExpired,
    /// Too many sends in a short time (`ret:-2`).
    Throttled,
    /// Media whose `encrypt_query_param` is not on the CDN.
    MediaNotFound,
    /// Media whose `aes_key` is missing or not a valid key encoding.
    MediaKeyInvalid,
    /// Media that does not decrypt with the key the message carries.
    MediaUndecryptable,
    /// The bot token was missing, unknown or stale (`errcode:-14`).
    StaleToken,
    /// A text item longer than [`SimConfig::text_cap`](crate::SimConfig::text_cap): the
    /// message **was delivered, cut**, and `ret:0` answered, as the live server is reported to
    /// do (docs/protocol.md §16). [`Dropped::original_len`] and [`Dropped::delivered_len`] give the
    /// lengths in UTF-16 code units.
    Truncated,
    /// An injected fault answered before the message was processed.
    InjectedFault,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::MalformedJson => "body is not JSON",
            Self::MissingMsg => "no msg object",
            Self::MissingBaseInfo => "no base_info object",
            Self::FromUserIdNotEmpty => "msg.from_user_id must be present and \"\"",
            Self::MissingClientId => "msg.client_id missing or empty",
            Self::DuplicateClientId => "msg.client_id already used",
            Self::WrongMessageType => "msg.message_type must be 2 (BOT)",
            Self::WrongMessageState => "msg.message_state must be 2 (FINISH)",
            Self::MissingRecipient => "msg.to_user_id missing or empty",
            Self::NoItems => "msg.item_list missing or empty",
            Self::MultipleItems => "msg.item_list must hold exactly one item",
            Self::InvalidItem => "item type and content do not match, or the item is empty",
            Self::MissingContextToken => "msg.context_token missing",
            Self::InvalidContextToken => "msg.context_token not issued to this user for this bot",
            Self::StaleContextToken => "msg.context_token is too old",
            Self::ReplyLimitReached => "reply limit per inbound message reached",
            Self::ReplyWindowExpired => "user's last message is older than the reply window",
            Self::Throttled => "too many sends in a short time",
            Self::MediaNotFound => "media encrypt_query_param not on the CDN",
            Self::MediaKeyInvalid => "media aes_key missing or not a valid key encoding",
            Self::MediaUndecryptable => "media does not decrypt with the message's aes_key",
            Self::StaleToken => "bot token missing, unknown or stale",
            Self::InjectedFault => "an injected fault answered first",
            Self::Truncated => "text item longer than the text cap: delivered cut",
        };
        f.write_str(s)
    }
}

/// A sendmessage the emulator answered but did not deliver.
#[derive(Clone, Serialize, Deserialize)]
pub struct Dropped {
    /// Why it was not delivered.
    pub reason: DropReason,
    /// The bot that sent it, if the token was valid.
    pub bot_id: Option<String>,
    /// `msg.to_user_id`, if present.
    pub to_user_id: Option<String>,
    /// What the emulator answered (as the live server would).
    pub answered: Value,
    /// The request body as sent (`Value::Null` if it was not JSON).
    pub raw: Value,
    /// Emulated epoch milliseconds.
    pub at_ms: u64,
    /// For [`DropReason::Truncated`]: the length of the text as sent, in UTF-16 code units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_len: Option<u64>,
    /// For [`DropReason::Truncated`]: the length of the text as delivered, in UTF-16 code units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_len: Option<u64>,
}

impl fmt::Debug for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dropped")
            .field("reason", &self.reason)
            .field("bot_id", &self.bot_id)
            .field("to_user_id", &self.to_user_id)
            .field("answered", &self.answered)
            .field("original_len", &self.original_len)
            .field("delivered_len", &self.delivered_len)
            .finish_non_exhaustive()
    }
}

/// One CDN upload attempt, checked against what `getuploadurl` declared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The `filekey` of the upload.
    pub filekey: String,
    /// Declared `media_type` (1 image, 2 video, 3 file, 4 voice).
    pub media_type: u64,
    /// Declared recipient.
    pub to_user_id: String,
    /// Declared `rawsize`.
    pub rawsize: u64,
    /// Declared `filesize` (ciphertext size).
    pub filesize: u64,
    /// Bytes actually received.
    pub received: u64,
    /// Whether the upload came through `upload_full_url` (it carried `taskid`).
    pub via_full_url: bool,
    /// The `x-encrypted-param` answered, when accepted.
    pub download_param: Option<String>,
    /// Why it was rejected, if it was.
    pub error: Option<String>,
}

impl UploadRecord {
    /// Whether the CDN accepted the upload.
    pub fn accepted(&self) -> bool {
        self.error.is_none()
    }
}

/// Typing state of a user as set by `sendtyping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypingState {
    /// Status 1.
    Typing,
    /// Status 2.
    Cancelled,
}

/// One `sendtyping` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingEvent {
    /// The bot.
    pub bot_id: String,
    /// `ilink_user_id`.
    pub user_id: String,
    /// The new state.
    pub state: TypingState,
    /// Whether the `typing_ticket` was one `getconfig` issued for this user.
    pub ticket_valid: bool,
    /// Emulated epoch milliseconds.
    pub at_ms: u64,
}

/// Every request the emulator received (admin requests excluded).
#[derive(Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Arrival number, from 0.
    pub id: u64,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (`""` if none).
    pub query: String,
    /// Headers, lower-cased names, in arrival order. `authorization` is redacted in `Debug`.
    pub headers: Vec<(String, String)>,
    /// The body as text when it is UTF-8 (JSON endpoints); `None` for binary bodies.
    pub body: Option<String>,
    /// Body length in bytes.
    pub body_len: u64,
    /// Which endpoint it was routed to, if any.
    pub endpoint: Option<crate::Endpoint>,
    /// Deviations from what the official client sends (missing headers, bad
    /// `X-WECHAT-UIN`, missing `base_info`...). Empty for a well-formed request.
    pub problems: Vec<String>,
    /// Emulated epoch milliseconds.
    pub at_ms: u64,
}

impl RequestRecord {
    /// Estimated heap bytes, for the log's byte cap.
    pub(crate) fn weight(&self) -> usize {
        use crate::bounded::str_size;
        str_size(&self.method)
            + str_size(&self.path)
            + str_size(&self.query)
            + self
                .headers
                .iter()
                .map(|(k, v)| str_size(k) + str_size(v))
                .sum::<usize>()
            + self.body.as_deref().map_or(0, str_size)
            + self.problems.iter().map(|p| str_size(p)).sum::<usize>()
            + 96
    }

    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Option<Value> {
        self.body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
    }
}

impl fmt::Debug for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                if k == "authorization" {
                    (k.as_str(), redact(v))
                } else {
                    (k.as_str(), v.clone())
                }
            })
            .collect();
        f.debug_struct("RequestRecord")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &headers)
            .field("body_len", &self.body_len)
            .field("endpoint", &self.endpoint)
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_token() {
        let b = BotAccount {
            bot_id: "abc@im.bot".into(),
            token: "SECRET-TOKEN".into(),
            user_id: None,
        };
        let s = format!("{b:?}");
        assert!(!s.contains("SECRET"));
        assert!(s.contains("abc@im.bot"));
    }

    #[test]
    fn drop_reason_serializes_snake_case() {
        let v = serde_json::to_value(DropReason::InvalidContextToken).unwrap();
        assert_eq!(v, "invalid_context_token");
        assert!(
            DropReason::MultipleItems
                .to_string()
                .contains("exactly one")
        );
    }
}
