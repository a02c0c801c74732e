//! Configuration of the emulator: timings, response shapes and server policies.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bounded::Retention;
use crate::qr::QrStep;
use crate::voice::VoiceCodecRef;

/// How `getuploadurl` tells the client where to upload.
///
/// The live server answered with `upload_param` until about March 2026 and with
/// `upload_full_url` (carrying extra query parameters such as `taskid`) since then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadUrlMode {
    /// Only `upload_full_url` (the current live behaviour).
    FullUrl,
    /// Only `upload_param` and an empty `thumb_upload_param` (the legacy behaviour).
    ParamOnly,
    /// Both `upload_param` and `upload_full_url`.
    Both,
    /// Alternate between [`UploadUrlMode::FullUrl`] and [`UploadUrlMode::ParamOnly`],
    /// starting with `ParamOnly`, so that one test run exercises both paths.
    Alternate,
    /// Pick `FullUrl` or `ParamOnly` at random (reproducible with [`SimConfig::seed`]).
    Random,
}

/// Whether inbound media carries `media.full_url` next to `encrypt_query_param`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FullUrlMode {
    /// Never send `full_url`.
    Never,
    /// Always send `full_url`.
    Always,
    /// Alternate, starting without `full_url`.
    Alternate,
    /// At random (reproducible with [`SimConfig::seed`]).
    Random,
}

/// How getuploadurl refuses a grant without the chat's `context_token`
/// ([`SimConfig::upload_requires_context_token`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadGrantRefusal {
    /// `{"ret":-2}` with no `errmsg`: what most reports show.
    Ret2,
    /// `{"errcode":-14,"errmsg":"session timeout"}` although the session is valid: what
    /// some reports show instead.
    SessionTimeout,
}

/// Burst throttling: more than `max_sends` delivered messages per bot within `window`
/// makes further sends fail with `ret:-2` (which messages count: [`SimConfig::burst_scope`]).
///
/// **\[obs\], numbers guessed.** Users report `ret:-2` "during rapid bursts of media sends"
/// (docs/protocol.md §16; `Tencent/openclaw-weixin` issues #81, #204, #216, #225, #286). No report
/// gives a number or says that text is throttled; the default of 30 per 10 s is this
/// emulator's guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstPolicy {
    /// How many messages a bot may send within the window.
    pub max_sends: u32,
    /// The sliding window.
    pub window: Duration,
}

/// The default [`SimConfig::text_cap`], in UTF-16 code units (\[obs\], docs/protocol.md §16).
pub const DEFAULT_TEXT_CAP: usize = 2000;

/// Which messages the burst throttle ([`SimConfig::burst`]) counts and refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BurstScope {
    /// Only image, voice, file and video items: what users reported (docs/protocol.md §16).
    #[default]
    MediaOnly,
    /// Every message, text included (a stricter guess than any report).
    AllMessages,
}

/// A secret that lets a browser or script use the web page and the admin API of an emulator
/// that listens on a non-loopback address ([`SimConfig::access_token`]). Redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps `token`.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token, to put in a URL (`?token=`) or the `X-Sim-Token` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::model::redact(&self.0))
    }
}

/// Configuration of a [`Sim`](crate::Sim).
///
/// Provenance of each policy: **\[wire\]** seen in the official client's traffic, **\[obs\]**
/// reported by users (docs/protocol.md §16, §19, with sources), or **guess** (this emulator's
/// choice, nowhere documented). `ilink sim --help` lists the same switches.
///
/// Every policy is an `Option` or a flag so that tests can switch it off; the defaults
/// are what the live server is reported to do (docs/protocol.md §14.4, §16, §19).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Path prefix the server is advertised under, e.g. `"/prefix"`; `base_url()` includes it.
    /// Requests are routed by their `ilink/bot/...` suffix, so they work with or without it.
    pub path_prefix: String,
    /// How long a `getupdates` long-poll is held when no message arrives, and the value
    /// advertised in `longpolling_timeout_ms`. The server answers a little *before* this
    /// (see [`SimConfig::longpoll_margin`]), as a compatible server must (§4).
    pub longpolling_timeout: Duration,
    /// How much earlier than `longpolling_timeout` an empty poll is answered.
    pub longpoll_margin: Duration,
    /// Whether `getupdates` responses carry `longpolling_timeout_ms`.
    pub advertise_longpolling_timeout: bool,
    /// Whether successful `getupdates` responses carry `"ret":0` (live captures do not).
    pub getupdates_ret: bool,
    /// The `Content-Type` of JSON responses. The live server has been seen serving JSON
    /// as `application/octet-stream`, which is the default here so clients do not depend on it.
    pub json_content_type: String,
    /// How `getuploadurl` answers.
    pub upload_url_mode: UploadUrlMode,
    /// Whether inbound media carries `full_url`.
    pub inbound_full_url: FullUrlMode,
    /// Seed for every random value (ids, keys, tokens). `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Replies allowed per inbound message before `ret:-2`. **\[obs\]** about 10
    /// (docs/protocol.md §16: `Tencent/openclaw-weixin` #81, the fixture `sendmessage-ret-2-reply-limit`;
    /// `NousResearch/hermes-agent` #7565, #7836). Default `Some(10)`.
    pub reply_limit: Option<u32>,
    /// How long after the user's last message the bot may still reply. **\[obs\]** 24 h
    /// (docs/protocol.md §16: `Tencent/openclaw-weixin` #204, with a maintainer's reply).
    pub reply_window: Option<Duration>,
    /// Burst throttling; `None` disables it. **\[obs\] that media bursts are throttled; the
    /// numbers are a guess** ([`BurstPolicy`]). Default 30 per 10 s, media only
    /// ([`SimConfig::burst_scope`]).
    pub burst: Option<BurstPolicy>,
    /// The text cap, in UTF-16 code units: a text item longer than this is **delivered cut**
    /// to its first `text_cap` units and `ret:0` is answered, and the cut is recorded in
    /// [`Sim::dropped`](crate::Sim::dropped) with [`DropReason::Truncated`](crate::DropReason::Truncated)
    /// and both lengths. `None` delivers texts whole. Default 2000.
    ///
    /// Provenance \[obs\] (docs/protocol.md §16): independent reports from April to August 2026
    /// (`NousResearch/hermes-agent` #16411 and PR #16985, `microclaw/microclaw` PR #399,
    /// `lsdefine/GenericAgent` PR #308, `zai-org/feedback` #385, `xmanrui/dsh-im` PR #48) say
    /// the live server cuts a text after about 2000 characters and still answers success. The
    /// unit is not published. UTF-16 code units are chosen because they are the stricter of the
    /// two readings of "characters" in those reports (JavaScript string length and Python code
    /// points; an emoji outside the BMP counts 2 here, 1 in Python), so a client that fits this
    /// cap fits either; bytes are ruled out by a Chinese report of a cut at about 2000 Chinese
    /// characters (`zai-org/feedback` #385), which would be 6000 bytes of UTF-8.
    pub text_cap: Option<usize>,
    /// Which messages the burst throttle counts. Default [`BurstScope::MediaOnly`], the only
    /// kind users reported throttled.
    pub burst_scope: BurstScope,
    /// Age after which a bot token goes stale (`-14`). **Guess**: 30 days; no report gives a
    /// lifetime (tokens are known to go stale: docs/protocol.md §14.2).
    pub token_lifetime: Option<Duration>,
    /// "One WeChat user is bound to one bot": a new login of the same user makes the
    /// older bot's token stale. **Guess** modelled on the `binded_redirect` status (§6).
    pub one_bot_per_user: bool,
    /// Whether sendmessage needs a `context_token`. **\[obs\]** the live server answers
    /// `ret:-2` without one (docs/protocol.md §16).
    pub require_context_token: bool,
    /// \[obs\] getuploadurl needs the chat's `context_token`: a request without a token that
    /// was issued to this bot for `to_user_id` (the rule sendmessage applies) is refused
    /// this way, and no upload target is given. Reported of the live server since about
    /// July 2026 (docs/protocol.md §12.1: `NousResearch/hermes-agent` #64704, #70776, PRs
    /// #64740, #80166, #83761; `Eynzof/Hermes-CN-Core` #130); Tencent's client 2.4.9 does
    /// not send the field. Default `Some(UploadGrantRefusal::Ret2)`; `None` switches the
    /// rule off.
    pub upload_requires_context_token: Option<UploadGrantRefusal>,
    /// Age after which a `context_token` answers `ret:-2` `"prepare failed"` (reported live
    /// after long agent turns of about 2 minutes; off by default because unconfirmed).
    pub context_token_lifetime: Option<Duration>,
    /// Wrong verify codes allowed before `verify_code_blocked`.
    pub qr_max_verify_attempts: u32,
    /// The QR script used for a QR code when no script was queued with
    /// [`QrControl::script`](crate::QrControl::script).
    pub default_qr_script: Vec<QrStep>,
    /// Largest request body accepted on the bot API and the admin API, in bytes
    /// (CDN uploads have their own cap, [`SimConfig::max_upload_bytes`]). Default 110 MiB.
    pub max_body_bytes: usize,
    /// Largest CDN upload body (the ciphertext) accepted, in bytes; a larger one is answered
    /// 413 without being read. Default 110 MiB, like [`SimConfig::max_body_bytes`].
    ///
    /// The emulated CDN keeps every object in memory, so an upload of N bytes costs the
    /// emulator's process about N bytes while it is stored (the upload is read into one
    /// buffer sized from `Content-Length`, and checked by streaming decryption and MD5, with
    /// no second copy). Raise this to test large media, e.g. to 1.1 GiB for a 1 GiB file;
    /// [`SimConfig::with_max_upload_bytes`] does it in a builder chain.
    pub max_upload_bytes: usize,
    /// How many requests [`Sim::requests`](crate::Sim::requests) keeps (oldest dropped first).
    pub max_logged_requests: usize,
    /// How many bytes (estimated) of requests [`Sim::requests`](crate::Sim::requests) keeps
    /// (oldest dropped first). Default 64 MiB.
    pub max_logged_request_bytes: usize,
    /// Whether a CDN upload is checked against its `getuploadurl` grant (size = `filesize`,
    /// decrypts with `aeskey`, plaintext size = `rawsize`, MD5 = `rawfilemd5`): a failing body
    /// answers 400 with `x-error-message`. **Guess**: the live CDN's checks are not known; this
    /// catches client bugs early. Default on.
    pub upload_checks: bool,
    /// Whether `getuploadurl` refuses a `to_user_id` that is not a WeChat user id
    /// (`…@im.wechat`) with `{"ret":-1}`. **\[obs\]**: the fixture `getuploadurl-ret-minus1`
    /// (`Tencent/openclaw-weixin` #213) shows the bare answer; the weilink docs attribute it to
    /// an invalid `to_user_id`. Default on.
    pub check_upload_recipient: bool,
    /// Caps on everything the emulator remembers (memory stays bounded in a soak).
    pub retention: Retention,
    /// The secret the web page and the admin API require. `None` on a loopback address means
    /// none is needed; on any other address [`Sim::start_on`](crate::Sim::start_on) makes a
    /// random one ([`Sim::access_token`](crate::Sim::access_token)), so the emulator is never
    /// open to the network without one.
    pub access_token: Option<AccessToken>,
    /// Converts between audio and SILK for the web page (voice recorded in the browser, voice
    /// played there). The emulator itself has no codec (its dependencies stay small); `ilink sim`
    /// plugs in `ilink-silk`. Without one the page sends picked `.silk` files as they are and
    /// offers bot voice as a SILK download.
    pub voice_codec: Option<VoiceCodecRef>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            path_prefix: String::new(),
            longpolling_timeout: Duration::from_secs(35),
            longpoll_margin: Duration::from_millis(100),
            advertise_longpolling_timeout: true,
            getupdates_ret: false,
            json_content_type: "application/octet-stream".to_owned(),
            upload_url_mode: UploadUrlMode::Alternate,
            inbound_full_url: FullUrlMode::Alternate,
            seed: None,
            reply_limit: Some(10),
            reply_window: Some(Duration::from_secs(24 * 3600)),
            burst: Some(BurstPolicy {
                max_sends: 30,
                window: Duration::from_secs(10),
            }),
            text_cap: Some(DEFAULT_TEXT_CAP),
            burst_scope: BurstScope::MediaOnly,
            token_lifetime: Some(Duration::from_secs(30 * 24 * 3600)),
            one_bot_per_user: true,
            require_context_token: true,
            upload_requires_context_token: Some(UploadGrantRefusal::Ret2),
            context_token_lifetime: None,
            qr_max_verify_attempts: 3,
            default_qr_script: vec![
                QrStep::Wait,
                QrStep::Scan,
                QrStep::Confirm {
                    user_id: "o9sim_default_user@im.wechat".to_owned(),
                },
            ],
            max_body_bytes: 110 * 1024 * 1024,
            max_upload_bytes: 110 * 1024 * 1024,
            max_logged_requests: 10_000,
            max_logged_request_bytes: 64 * 1024 * 1024,
            upload_checks: true,
            check_upload_recipient: true,
            retention: Retention::default(),
            access_token: None,
            voice_codec: None,
        }
    }
}

impl SimConfig {
    /// The same configuration with the rate and time limits switched off (reply limit,
    /// reply window, burst throttling, token and context-token lifetimes), for benchmarks
    /// and demos that send many messages. The checks of what a message must contain stay,
    /// and so does the text cap ([`SimConfig::text_cap`]).
    #[must_use]
    pub fn without_limits(self) -> Self {
        Self {
            reply_limit: None,
            reply_window: None,
            burst: None,
            token_lifetime: None,
            context_token_lifetime: None,
            ..self
        }
    }

    /// The same configuration with [`SimConfig::max_upload_bytes`] set to `bytes`.
    #[must_use]
    pub fn with_max_upload_bytes(self, bytes: usize) -> Self {
        Self {
            max_upload_bytes: bytes,
            ..self
        }
    }

    /// A configuration for tests: a short long-poll (`hold`), a fixed seed and otherwise
    /// the defaults (so the live server's limits apply: at most 10 replies per inbound
    /// message, 30 media sends per 10 s per bot; see [`SimConfig::without_limits`]).
    pub fn for_tests(hold: Duration) -> Self {
        Self {
            longpolling_timeout: hold,
            longpoll_margin: Duration::from_millis(20).min(hold / 4),
            seed: Some(0x11AB_5EED),
            ..Self::default()
        }
    }
}
