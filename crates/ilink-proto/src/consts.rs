//! Protocol constants: endpoint paths, hosts, header names, timeouts and limits.
//!
//! Values come from docs/protocol.md (§1-§4, §6, §12, §14) and match what Tencent's client
//! `@tencent-weixin/openclaw-weixin` 2.4.9 uses. Endpoint paths have **no** leading slash:
//! they are resolved against a base URL that ends in `/` (§1), so a base with a path
//! prefix keeps its prefix.

use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Endpoint paths (relative to the bot API base URL)
// ---------------------------------------------------------------------------------------

/// `POST`: long-poll for inbound messages (§7).
pub const GET_UPDATES: &str = "ilink/bot/getupdates";
/// `POST`: send one message (§9).
pub const SEND_MESSAGE: &str = "ilink/bot/sendmessage";
/// `POST`: ask for a CDN upload parameter or URL (§12.1).
pub const GET_UPLOAD_URL: &str = "ilink/bot/getuploadurl";
/// `POST`: fetch the per-peer config, i.e. the typing ticket (§10).
pub const GET_CONFIG: &str = "ilink/bot/getconfig";
/// `POST`: show or cancel the typing indicator (§10).
pub const SEND_TYPING: &str = "ilink/bot/sendtyping";
/// `POST`: announce that an account starts (§11).
pub const NOTIFY_START: &str = "ilink/bot/msg/notifystart";
/// `POST`: announce that an account stops (§11).
pub const NOTIFY_STOP: &str = "ilink/bot/msg/notifystop";
/// `POST` (2.3.1+, body `{"local_token_list":[..]}`) or `GET` (older, no body): issue a
/// login QR code. Always add the query `bot_type=`[`DEFAULT_BOT_TYPE`] (§6.1).
pub const GET_BOT_QRCODE: &str = "ilink/bot/get_bot_qrcode";
/// `GET`: poll the status of a login QR code, query `qrcode=..` and optionally
/// `verify_code=..` (§6.1).
pub const GET_QRCODE_STATUS: &str = "ilink/bot/get_qrcode_status";

/// Every bot endpoint path, in the order of [`Endpoint`](crate::Endpoint)'s variants.
pub const ALL_ENDPOINTS: [&str; 9] = [
    GET_UPDATES,
    SEND_MESSAGE,
    GET_UPLOAD_URL,
    GET_CONFIG,
    SEND_TYPING,
    NOTIFY_START,
    NOTIFY_STOP,
    GET_BOT_QRCODE,
    GET_QRCODE_STATUS,
];

/// CDN upload path, relative to the CDN base URL (§12.2).
pub const CDN_UPLOAD: &str = "upload";
/// CDN download path, relative to the CDN base URL (§12.3).
pub const CDN_DOWNLOAD: &str = "download";

// ---------------------------------------------------------------------------------------
// Query parameter names
// ---------------------------------------------------------------------------------------

/// Query key of `get_bot_qrcode` carrying [`DEFAULT_BOT_TYPE`].
pub const QUERY_BOT_TYPE: &str = "bot_type";
/// Query key of `get_qrcode_status` carrying the QR key.
pub const QUERY_QRCODE: &str = "qrcode";
/// Query key of `get_qrcode_status` carrying the pairing digits the user typed.
pub const QUERY_VERIFY_CODE: &str = "verify_code";
/// Query key of CDN upload and download. Note the "ed", unlike the JSON key
/// `encrypt_query_param` (§12.2).
pub const QUERY_ENCRYPTED_PARAM: &str = "encrypted_query_param";
/// Query key of the CDN upload carrying the upload's `filekey`.
pub const QUERY_FILEKEY: &str = "filekey";

// ---------------------------------------------------------------------------------------
// Hosts
// ---------------------------------------------------------------------------------------

/// Default bot API base URL (§1).
pub const DEFAULT_BASE_URL: &str = "https://ilinkai.weixin.qq.com";
/// Host of QR login: fixed since 2.1.1, whatever the account's base URL (§1).
pub const QR_LOGIN_BASE_URL: &str = "https://ilinkai.weixin.qq.com";
/// Default CDN base URL (§1).
pub const DEFAULT_CDN_BASE_URL: &str = "https://novac2c.cdn.weixin.qq.com/c2c";
/// The `bot_type` query value of `get_bot_qrcode` (`DEFAULT_ILINK_BOT_TYPE`).
pub const DEFAULT_BOT_TYPE: &str = "3";

// ---------------------------------------------------------------------------------------
// Headers (§3)
// ---------------------------------------------------------------------------------------

/// `AuthorizationType` header name.
pub const HEADER_AUTHORIZATION_TYPE: &str = "AuthorizationType";
/// The fixed value of the `AuthorizationType` header.
pub const AUTHORIZATION_TYPE_VALUE: &str = "ilink_bot_token";
/// `Authorization` header name; value `Bearer <bot_token>`, sent only with a token.
pub const HEADER_AUTHORIZATION: &str = "Authorization";
/// The scheme prefix of the `Authorization` value (with its space).
pub const BEARER_PREFIX: &str = "Bearer ";
/// `X-WECHAT-UIN` header name; see [`uin_header_value`](crate::uin_header_value).
pub const HEADER_WECHAT_UIN: &str = "X-WECHAT-UIN";
/// `iLink-App-Id` header name (2.1.1+).
pub const HEADER_APP_ID: &str = "iLink-App-Id";
/// `iLink-App-ClientVersion` header name (2.1.1+); see
/// [`CompatVersion::client_version_header`](crate::CompatVersion::client_version_header).
pub const HEADER_APP_CLIENT_VERSION: &str = "iLink-App-ClientVersion";
/// `SKRouteTag` header name (optional, from config).
pub const HEADER_ROUTE_TAG: &str = "SKRouteTag";
/// Response header of a successful CDN upload: the download parameter (§12.2).
pub const HEADER_ENCRYPTED_PARAM: &str = "x-encrypted-param";
/// Response header of a failed CDN upload: the error text (§12.2).
pub const HEADER_ERROR_MESSAGE: &str = "x-error-message";
/// The value of `iLink-App-Id` in every published client version.
pub const APP_ID: &str = "bot";
/// `Content-Type` of every JSON request.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// `Content-Type` of a CDN upload.
pub const CONTENT_TYPE_OCTET_STREAM: &str = "application/octet-stream";

// ---------------------------------------------------------------------------------------
// Timeouts and delays (§4, §6.2, §10, §14.1, §14.2)
// ---------------------------------------------------------------------------------------

/// First client-side timeout of a getupdates long-poll; later polls use the server's
/// `longpolling_timeout_ms` when it is positive (§4).
pub const LONG_POLL_TIMEOUT: Duration = Duration::from_millis(35_000);
/// Timeout of sendmessage and getuploadurl (§4).
pub const API_TIMEOUT: Duration = Duration::from_millis(15_000);
/// Timeout of getconfig (§4).
pub const CONFIG_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Timeout of sendtyping (§4).
pub const TYPING_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Timeout of notifystart and notifystop (§4).
pub const NOTIFY_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Timeout of one get_qrcode_status long-poll; a timeout counts as `wait` (§4).
pub const QR_STATUS_TIMEOUT: Duration = Duration::from_millis(35_000);
/// Default time limit of the whole QR login wait (§4).
pub const QR_LOGIN_TIMEOUT: Duration = Duration::from_millis(480_000);
/// How long an active QR session counts as fresh (§4).
pub const QR_SESSION_FRESH: Duration = Duration::from_millis(300_000);
/// Delay between QR status polls, except right after `need_verifycode` (§6.2).
pub const QR_POLL_INTERVAL: Duration = Duration::from_millis(1_000);
/// Delay after a failed poll while below [`MAX_CONSECUTIVE_FAILURES`] (§14.1).
pub const RETRY_DELAY: Duration = Duration::from_millis(2_000);
/// Delay after [`MAX_CONSECUTIVE_FAILURES`] failed polls in a row (§14.1).
pub const BACKOFF_DELAY: Duration = Duration::from_millis(30_000);
/// How long an account pauses after `-14` from getupdates (§14.2).
pub const SESSION_PAUSE: Duration = Duration::from_millis(3_600_000);
/// Interval at which a typing indicator is refreshed during long generations (§10).
pub const TYPING_KEEPALIVE: Duration = Duration::from_millis(5_000);
/// First retry delay after a failed getconfig; it doubles up to
/// [`CONFIG_RETRY_MAX_DELAY`] (§10).
pub const CONFIG_RETRY_DELAY: Duration = Duration::from_millis(2_000);
/// Upper bound of the getconfig retry delay (§10).
pub const CONFIG_RETRY_MAX_DELAY: Duration = Duration::from_millis(3_600_000);
/// A successful getconfig is refreshed at a random moment within this window (§10).
pub const CONFIG_REFRESH_WINDOW: Duration = Duration::from_millis(86_400_000);

// ---------------------------------------------------------------------------------------
// Limits and codes
// ---------------------------------------------------------------------------------------

/// Failed polls in a row that trigger [`BACKOFF_DELAY`] (§14.1).
pub const MAX_CONSECUTIVE_FAILURES: u32 = 3;
/// QR codes shown per login attempt: the original plus two refreshes (§6.2).
pub const MAX_QR_REFRESH_COUNT: u32 = 3;
/// At most this many stored bot tokens go in `local_token_list` (§6.1).
pub const MAX_LOCAL_TOKENS: usize = 10;
/// CDN upload attempts in total, with no delay between them (§12.2).
pub const UPLOAD_MAX_ATTEMPTS: u32 = 3;
/// Inbound media storage cap per file, 100 MiB (§12.3).
pub const MEDIA_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// The text chunk limit the client declares to its host: one sendmessage per chunk (§9).
pub const TEXT_CHUNK_LIMIT: usize = 4000;
/// `ret` / `errcode` value meaning the bot token is stale or the session expired (§5).
pub const STALE_TOKEN_ERRCODE: i64 = -14;
/// `ret` value the live server uses for throttling, reply-window and validation
/// rejections (§16, §19).
pub const THROTTLED_ERRCODE: i64 = -2;
/// `ret` value seen for an invalid target (§5, §19).
pub const BAD_TARGET_ERRCODE: i64 = -3;
/// `ret` value of a generic failure, e.g. getuploadurl with an invalid `to_user_id`.
pub const FAILED_ERRCODE: i64 = -1;
/// Maximum length of `base_info.bot_agent` in bytes (§2).
pub const BOT_AGENT_MAX_BYTES: usize = 256;
/// Prefix of the `client_id` the official client generates:
/// `openclaw-weixin:<epoch-ms>-<8 lowercase hex>` (§9).
pub const CLIENT_ID_PREFIX: &str = "openclaw-weixin";
/// Suffix of WeChat user ids (`…@im.wechat`).
pub const USER_ID_SUFFIX: &str = "@im.wechat";
/// Suffix of bot ids (`…@im.bot`).
pub const BOT_ID_SUFFIX: &str = "@im.bot";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_have_no_leading_slash() {
        for p in ALL_ENDPOINTS {
            assert!(p.starts_with("ilink/bot/"), "{p}");
        }
        assert_eq!(NOTIFY_START, "ilink/bot/msg/notifystart");
    }

    #[test]
    fn limits() {
        assert_eq!(MEDIA_MAX_BYTES, 104_857_600);
        assert_eq!(LONG_POLL_TIMEOUT.as_secs(), 35);
        assert_eq!(SESSION_PAUSE.as_secs(), 3600);
        assert_eq!(QR_LOGIN_TIMEOUT.as_secs(), 480);
    }
}
