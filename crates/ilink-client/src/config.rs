//! Configuration of a [`Client`](crate::Client).

use std::time::Duration;

use ilink_cdn::Backoff;
use ilink_proto::{CompatVersion, consts};

use crate::media::MediaLimits;

/// Client-side timeouts per call (docs/protocol.md §4).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Timeouts {
    /// The first getupdates long-poll; later polls use the server's `longpolling_timeout_ms`
    /// (at most [`Timeouts::long_poll_cap`]). Default 35 s.
    pub long_poll: Duration,
    /// Added to every long-poll timeout so a server that answers right at its advertised time is
    /// not cut off (the official client has no margin). Default 5 s.
    pub long_poll_margin: Duration,
    /// sendmessage and getuploadurl. Default 15 s.
    pub send: Duration,
    /// getconfig. Default 10 s.
    pub config: Duration,
    /// sendtyping. Default 10 s.
    pub typing: Duration,
    /// notifystart and notifystop. Default 10 s.
    pub notify: Duration,
    /// get_bot_qrcode. Default 15 s (none in the official client since 2.1.4).
    pub qr_code: Duration,
    /// One get_qrcode_status long-poll; a timeout counts as `wait`. Default 35 s.
    pub qr_status: Duration,
    /// The whole QR login. Default 480 s.
    pub qr_login: Duration,
    /// Upper bound on a server-advertised `longpolling_timeout_ms`: a larger value (a hostile
    /// or broken server, 1 h or `i64::MAX`) is cut to this, so a poll that is never answered
    /// cannot silence the bot for longer. `None` (the default) means 4 × `long_poll`
    /// (140 s with the default 35 s). See [`Timeouts::long_poll_cap`].
    pub long_poll_max: Option<Duration>,
}

impl Timeouts {
    /// The largest long-poll timeout a server may set: `long_poll_max`, or 4 × `long_poll`.
    pub fn long_poll_cap(&self) -> Duration {
        self.long_poll_max
            .unwrap_or_else(|| self.long_poll.saturating_mul(4))
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            long_poll: consts::LONG_POLL_TIMEOUT,
            long_poll_margin: Duration::from_secs(5),
            send: consts::API_TIMEOUT,
            config: consts::CONFIG_TIMEOUT,
            typing: consts::TYPING_TIMEOUT,
            notify: consts::NOTIFY_TIMEOUT,
            qr_code: Duration::from_secs(15),
            qr_status: consts::QR_STATUS_TIMEOUT,
            qr_login: consts::QR_LOGIN_TIMEOUT,
            long_poll_max: None,
        }
    }
}

/// Delays of the long-poll loop, typing tickets, QR polling and session recovery.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Delays {
    /// After a failed poll, below `max_consecutive_failures`. Default 2 s (§14.1).
    pub retry: Duration,
    /// After `max_consecutive_failures` failed polls in a row. Default 30 s (§14.1).
    pub backoff: Duration,
    /// Failed polls in a row that trigger `backoff`. Default 3.
    pub max_consecutive_failures: u32,
    /// Between QR status polls (none right after `need_verifycode`). Default 1 s (§6.2).
    pub qr_poll: Duration,
    /// First retry after a failed getconfig; doubles up to `typing_ticket_retry_max`. Default 2 s.
    pub typing_ticket_retry: Duration,
    /// Upper bound of the getconfig retry delay. Default 1 h.
    pub typing_ticket_retry_max: Duration,
    /// A typing ticket is refreshed at a random moment within this window. Default 24 h.
    pub typing_ticket_refresh: Duration,
    /// Typing indicator keepalive while a handler runs. Default 5 s (§10).
    pub typing_keepalive: Duration,
    /// How long a handler waits for the first typing indicator (getconfig and sendtyping)
    /// before it runs anyway. Default 1 s.
    pub typing_start_wait: Duration,
    /// After `-14`, when notifystart and a probe did not help and no re-login succeeded: how long
    /// to wait before probing again. Default 1 h (the official client's pause, §14.2).
    pub stale_probe_interval: Duration,
    /// Delay before retrying a send that certainly never reached the server. Default 500 ms;
    /// it doubles (with jitter) for each further retry.
    pub send_retry: Duration,
    /// Delay between CDN upload attempts: exponential with jitter. Default 250 ms doubling
    /// to 8 s.
    pub upload_retry: Backoff,
    /// Attempts to send a typing cancel (sendtyping status 2) that fails (HTTP error or a
    /// non-zero `ret`), at least 1. Default 3. A final failure is logged as a warning.
    pub typing_cancel_attempts: u32,
    /// Delay between typing-cancel attempts: exponential with jitter. Default 500 ms
    /// doubling to 4 s.
    pub typing_cancel_retry: Backoff,
}

impl Default for Delays {
    fn default() -> Self {
        Self {
            retry: consts::RETRY_DELAY,
            backoff: consts::BACKOFF_DELAY,
            max_consecutive_failures: consts::MAX_CONSECUTIVE_FAILURES,
            qr_poll: consts::QR_POLL_INTERVAL,
            typing_ticket_retry: consts::CONFIG_RETRY_DELAY,
            typing_ticket_retry_max: consts::CONFIG_RETRY_MAX_DELAY,
            typing_ticket_refresh: consts::CONFIG_REFRESH_WINDOW,
            typing_keepalive: consts::TYPING_KEEPALIVE,
            typing_start_wait: Duration::from_secs(1),
            stale_probe_interval: consts::SESSION_PAUSE,
            send_retry: Duration::from_millis(500),
            upload_retry: Backoff::default(),
            typing_cancel_attempts: 3,
            typing_cancel_retry: Backoff::new(Duration::from_millis(500), Duration::from_secs(4)),
        }
    }
}

impl Delays {
    /// Short delays for tests and demos against the emulator (milliseconds instead of
    /// seconds). Behind the `test-util` feature: against the live server they would poll and
    /// retry far faster than the official client does.
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn fast() -> Self {
        Self {
            retry: Duration::from_millis(20),
            backoff: Duration::from_millis(100),
            max_consecutive_failures: 3,
            qr_poll: Duration::from_millis(10),
            typing_ticket_retry: Duration::from_millis(20),
            typing_ticket_retry_max: Duration::from_millis(500),
            typing_ticket_refresh: Duration::from_secs(3600),
            typing_keepalive: Duration::from_millis(200),
            typing_start_wait: Duration::from_secs(1),
            stale_probe_interval: Duration::from_millis(200),
            send_retry: Duration::from_millis(10),
            upload_retry: Backoff::new(Duration::from_millis(5), Duration::from_millis(50)),
            typing_cancel_attempts: 3,
            typing_cancel_retry: Backoff::new(Duration::from_millis(5), Duration::from_millis(50)),
        }
    }
}

/// Configuration of a [`Client`](crate::Client). Start from [`ClientConfig::default`] and set
/// fields (or use the `with_*` helpers).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The official client version whose wire behaviour is reproduced: `base_info`,
    /// `iLink-App-ClientVersion`, `bot_agent`. Default 2.4.9.
    pub compat_version: CompatVersion,
    /// `base_info.bot_agent` (sanitized); `None` sends `"OpenClaw"` as the official client does.
    pub bot_agent: Option<String>,
    /// The optional `SKRouteTag` header.
    pub route_tag: Option<String>,
    /// The prefix of generated `client_id`s. Default `openclaw-weixin`.
    pub client_id_prefix: String,
    /// The API base URL used when the credentials carry none. Default
    /// `https://ilinkai.weixin.qq.com`.
    pub default_base_url: String,
    /// The QR login host. Default `https://ilinkai.weixin.qq.com`.
    pub qr_base_url: String,
    /// The scheme used for a `scaned_but_redirect` host (`https`; `http` for the emulator).
    pub redirect_scheme: String,
    /// The CDN base URL (for media). Default `https://novac2c.cdn.weixin.qq.com/c2c`.
    pub cdn_base_url: String,
    /// An HTTP proxy for every call (`None`: direct).
    pub proxy: Option<ilink_http::Proxy>,
    /// Per-call timeouts.
    pub timeouts: Timeouts,
    /// Loop delays and backoff.
    pub delays: Delays,
    /// The text chunk limit in UTF-16 code units. Default 1800 (below the server's cap of
    /// about 2000, docs/protocol.md §16; see [`DEFAULT_CHUNK_LIMIT`](crate::DEFAULT_CHUNK_LIMIT)).
    pub chunk_limit: usize,
    /// Apply the official client's Markdown filter to outgoing text. Default true.
    pub markdown_filter: bool,
    /// Send typing indicators while a handler runs. Default true.
    pub typing: bool,
    /// How many messages [`Account::run`](crate::Account::run) handles at once per account,
    /// each from a different user; one user's messages are always handled one after another,
    /// in order. 1 handles every message in turn. Default 16; 0 counts as 1.
    pub handler_concurrency: usize,
    /// How many inbound message keys to remember for dedupe. Default 1024. The keys of the
    /// batch in progress and of the batch before it (the ones a lost response or a restart
    /// can replay) are always kept, even beyond this.
    pub dedupe_capacity: usize,
    /// Cap on every API response body in bytes. Default 16 MiB.
    pub max_response_body: u64,
    /// Largest inbound media download, and largest media read from a reader for sending
    /// ([`Account::media_from_reader`](crate::Account::media_from_reader)), in bytes.
    /// Default 100 MiB (§12.3).
    pub max_media_bytes: u64,
    /// Hosts (besides the CDN base URL's) that a server-supplied `full_url` (download) or
    /// `upload_full_url` (upload) may point at; others are refused before connecting.
    /// `*.suffix` entries match subdomains. Default: `ilink-cdn`'s list of WeChat CDN hosts.
    pub cdn_allowed_hosts: Vec<String>,
    /// The reply window, budget and overflow policy ([`crate::outbox`]).
    pub replies: crate::outbox::ReplyPolicy,
    /// Extra attempts for a send that certainly never reached the server (connect, TLS or
    /// proxy failure). Default 2. Nothing else is ever retried automatically.
    pub send_retries: u32,
    /// Send the chat's `context_token` in every getuploadurl (default true). Since about July
    /// 2026 the live server refuses an upload grant without it (`ret:-2`, or `errcode:-14`
    /// although the session is valid; docs/protocol.md §12.1 \[obs\]). Tencent's client 2.4.9 does
    /// not send the field: switch this off for a server that rejects unknown fields.
    pub upload_context_token: bool,
    /// The largest media accepted per kind, checked before anything is uploaded.
    pub media_limits: MediaLimits,
    /// Who this process is when it takes an account's lease
    /// ([`StateStore::acquire_lease`](crate::StateStore::acquire_lease)): shown by
    /// `ilink fleet status`. Default `<hostname>:<pid>:<8 random hex digits>`, unique per
    /// client.
    pub holder_id: String,
    /// How long an account's lease lasts without renewal. A running account renews it every
    /// third of this, and sends nothing once it may have expired without a renewal. Another
    /// process can take the account over this long after this one died (the file store's
    /// lease is an OS lock instead, freed at once when the process dies). Default 30 s.
    pub lease_ttl: Duration,
}

/// The default [`ClientConfig::holder_id`]: `<hostname>:<pid>:<8 random hex digits>`.
pub fn default_holder_id() -> String {
    format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        crate::util::random_hex(4)
    )
}

/// The machine's host name (Linux: the kernel's; elsewhere `$HOSTNAME` / `$COMPUTERNAME`),
/// else `localhost`; only printable ASCII is kept, at most 64 characters.
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != ':')
        .take(64)
        .collect();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            compat_version: CompatVersion::DEFAULT,
            bot_agent: None,
            route_tag: None,
            client_id_prefix: consts::CLIENT_ID_PREFIX.to_owned(),
            default_base_url: consts::DEFAULT_BASE_URL.to_owned(),
            qr_base_url: consts::QR_LOGIN_BASE_URL.to_owned(),
            redirect_scheme: "https".to_owned(),
            cdn_base_url: consts::DEFAULT_CDN_BASE_URL.to_owned(),
            proxy: None,
            timeouts: Timeouts::default(),
            delays: Delays::default(),
            chunk_limit: crate::chunk::DEFAULT_CHUNK_LIMIT,
            markdown_filter: true,
            typing: true,
            handler_concurrency: 16,
            dedupe_capacity: 1024,
            max_response_body: 16 * 1024 * 1024,
            send_retries: 2,
            replies: crate::outbox::ReplyPolicy::default(),
            max_media_bytes: consts::MEDIA_MAX_BYTES,
            cdn_allowed_hosts: Vec::new(),
            upload_context_token: true,
            media_limits: MediaLimits::default(),
            holder_id: default_holder_id(),
            lease_ttl: Duration::from_secs(30),
        }
    }
}

impl ClientConfig {
    /// A configuration for a server at `base_url` (for example the emulator at
    /// `http://127.0.0.1:PORT`): it becomes the default API base, the QR login host, and
    /// redirects keep its scheme.
    pub fn for_server(base_url: &str) -> Self {
        let scheme = base_url.split("://").next().unwrap_or("https");
        Self {
            default_base_url: base_url.to_owned(),
            qr_base_url: base_url.to_owned(),
            redirect_scheme: scheme.to_owned(),
            ..Self::default()
        }
    }

    /// Set the compat version.
    pub fn with_compat_version(mut self, v: CompatVersion) -> Self {
        self.compat_version = v;
        self
    }

    /// Set the delays.
    pub fn with_delays(mut self, d: Delays) -> Self {
        self.delays = d;
        self
    }

    /// Set the timeouts.
    pub fn with_timeouts(mut self, t: Timeouts) -> Self {
        self.timeouts = t;
        self
    }

    /// Set the CDN base URL.
    pub fn with_cdn_base_url(mut self, url: impl Into<String>) -> Self {
        self.cdn_base_url = url.into();
        self
    }

    /// Handle up to `n` users' messages at once in [`Account::run`](crate::Account::run).
    pub fn with_handler_concurrency(mut self, n: usize) -> Self {
        self.handler_concurrency = n;
        self
    }

    /// Set the lease holder id ([`ClientConfig::holder_id`]).
    pub fn with_holder_id(mut self, id: impl Into<String>) -> Self {
        self.holder_id = id.into();
        self
    }

    /// Set the lease ttl ([`ClientConfig::lease_ttl`]).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Set the proxy.
    pub fn with_proxy(mut self, proxy: Option<ilink_http::Proxy>) -> Self {
        self.proxy = proxy;
        self
    }
}
