#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod admin;
mod api;
mod bounded;
mod clock;
mod config;
mod error;
mod fault;
mod model;
mod page;
mod qr;
mod rng;
mod sample;
mod server;
mod state;
mod user;
mod voice;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::bounded::{Cap, ListStats, Retention};
pub use crate::config::{
    AccessToken, BurstPolicy, BurstScope, DEFAULT_TEXT_CAP, FullUrlMode, SimConfig,
    UploadGrantRefusal, UploadUrlMode,
};
pub use crate::error::SimError;
pub use crate::fault::{Endpoint, Fault};
pub use crate::model::{
    BotAccount, Delivered, DropReason, Dropped, Inbound, RequestRecord, TypingEvent, TypingState,
    UploadRecord,
};
pub use crate::qr::{QrSessionInfo, QrStep};
pub use crate::sample::long_reply;
pub use crate::user::ScriptedUser;
pub use crate::voice::{VoiceCodec, VoiceCodecRef};

use crate::clock::Clock;
use crate::state::{Shared, State};

/// A running emulator of the iLink bot API and its CDN, listening on loopback.
///
/// Dropping it (or calling [`Sim::shutdown`]) stops the server. All reads and scripting
/// calls are synchronous; only starting, stopping and the `wait_*` helpers are async.
pub struct Sim {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

/// What the emulator knows about a bot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BotStatus {
    /// The account (token redacted in `Debug`).
    pub account: BotAccount,
    /// Whether the token is stale (`-14`).
    pub stale: bool,
    /// Messages in the bot's update stream.
    pub inbox_len: u64,
    /// The furthest position a client confirmed by sending its cursor back.
    pub acked: u64,
    /// `msg/notifystart` calls.
    pub notify_started: u32,
    /// `msg/notifystop` calls.
    pub notify_stopped: u32,
}

impl Sim {
    /// Starts an emulator on `127.0.0.1` with an ephemeral port.
    ///
    /// # Errors
    /// [`SimError::Bind`] if the socket cannot be opened.
    pub async fn start(config: SimConfig) -> Result<Self, SimError> {
        Self::start_on(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts an emulator listening on `addr`.
    ///
    /// # Errors
    /// [`SimError::Bind`] if the socket cannot be opened.
    pub async fn start_on(config: SimConfig, addr: SocketAddr) -> Result<Self, SimError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let state = State::new(&config);
        // Never open to the network without a secret.
        let access_token = config.access_token.clone().or_else(|| {
            (!local.ip().is_loopback()).then(|| {
                let mut raw = [0u8; 18];
                let _ = getrandom::fill(&mut raw);
                config::AccessToken::new(hex::encode(raw))
            })
        });
        let shared = Arc::new(Shared {
            access_token,
            config,
            clock: Clock::new(),
            addr: local,
            state: Mutex::new(state),
            inbox_changed: tokio::sync::Notify::new(),
            activity: tokio::sync::Notify::new(),
            changes: watch::channel(0).0,
        });
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(server::run(listener, Arc::clone(&shared), rx));
        tracing::debug!(addr = %local, "ilink-sim listening");
        Ok(Self {
            shared,
            shutdown: tx,
            task: Some(task),
        })
    }

    /// Stops accepting connections and closes open ones.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// The socket address the emulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `host:port`, the value the emulator sends as `redirect_host`.
    pub fn host(&self) -> String {
        self.shared.host()
    }

    /// The bot API base URL, with a trailing `/`: `http://127.0.0.1:PORT/` (plus the
    /// configured path prefix). Endpoints are `ilink/bot/...` relative to it.
    pub fn base_url(&self) -> String {
        self.shared.base_url()
    }

    /// The web page that plays the phone: `http://127.0.0.1:PORT/`, with `?token=…` when the
    /// emulator requires an access token (not on loopback).
    pub fn page_url(&self) -> String {
        match &self.shared.access_token {
            Some(t) => format!("http://{}/?token={}", self.shared.host(), t.expose()),
            None => format!("http://{}/", self.shared.host()),
        }
    }

    /// The access token the web page and the admin API require, if any: the configured
    /// [`SimConfig::access_token`], or a random one when listening on a non-loopback address.
    pub fn access_token(&self) -> Option<&AccessToken> {
        self.shared.access_token.as_ref()
    }

    /// The CDN base URL: `http://127.0.0.1:PORT/c2c` (append `/upload`, `/download`).
    pub fn cdn_base_url(&self) -> String {
        self.shared.cdn_base_url()
    }

    /// The configuration the emulator runs with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Provisions a bot account directly, as if a QR login had been confirmed, not bound
    /// to any user.
    pub fn create_bot(&self) -> BotAccount {
        let now = self.shared.now_ms();
        self.shared
            .lock()
            .provision_bot(&self.shared.config, None, now)
    }

    /// Provisions a bot account bound to `user_id` (the user who "scanned"). With the
    /// one-bot-per-user rule, older bots of this user go stale.
    pub fn create_bot_for(&self, user_id: &str) -> BotAccount {
        let now = self.shared.now_ms();
        self.shared
            .lock()
            .provision_bot(&self.shared.config, Some(user_id), now)
    }

    /// All bots, in id order.
    pub fn bots(&self) -> Vec<BotStatus> {
        self.shared.lock().bots.values().map(bot_status).collect()
    }

    /// One bot's status.
    pub fn bot(&self, bot_id: &str) -> Option<BotStatus> {
        self.shared.lock().bots.get(bot_id).map(bot_status)
    }

    /// Makes a bot's token stale: every call with it answers `-14` from now on.
    /// Returns `false` for an unknown bot.
    pub fn expire_token(&self, bot_id: &str) -> bool {
        self.shared.lock().expire_token(bot_id)
    }

    /// A handle to script the WeChat user `user_id` (`…@im.wechat`).
    pub fn user(&self, user_id: &str) -> ScriptedUser {
        ScriptedUser {
            shared: Arc::clone(&self.shared),
            id: user_id.to_owned(),
        }
    }

    /// Queues `message` in `bot_id`'s update stream exactly as given (no ids, no
    /// `context_token` added): for payload shapes the emulator would not make itself.
    ///
    /// # Errors
    /// [`SimError::UnknownBot`].
    pub fn inject_raw(&self, bot_id: &str, message: Value) -> Result<u64, SimError> {
        let seq = self
            .shared
            .lock()
            .push_raw(bot_id, message)
            .ok_or_else(|| SimError::UnknownBot(bot_id.to_owned()))?;
        self.shared.inbox_changed.notify_waiters();
        self.shared.touch();
        Ok(seq)
    }

    /// Every inbound message scripted users sent, oldest first.
    pub fn inbound(&self) -> Vec<Inbound> {
        self.shared.lock().inbound.to_vec()
    }

    /// Everything the emulator delivered, oldest first.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.shared.lock().delivered.to_vec()
    }

    /// Messages delivered to `user_id`, oldest first.
    pub fn delivered_to(&self, user_id: &str) -> Vec<Delivered> {
        self.shared
            .lock()
            .delivered
            .iter()
            .filter(|d| d.to_user_id == user_id)
            .cloned()
            .collect()
    }

    /// sendmessage requests that were answered but not delivered, with the reason.
    pub fn dropped(&self) -> Vec<Dropped> {
        self.shared.lock().dropped.to_vec()
    }

    /// Every CDN upload attempt.
    pub fn uploads(&self) -> Vec<UploadRecord> {
        self.shared.lock().uploads.to_vec()
    }

    /// The latest typing state `sendtyping` set for `user_id` (with a valid ticket).
    pub fn typing_state(&self, user_id: &str) -> Option<TypingState> {
        self.shared.lock().typing.get(user_id).copied()
    }

    /// Every `sendtyping` call, oldest first.
    pub fn typing_events(&self) -> Vec<TypingEvent> {
        self.shared.lock().typing_events.to_vec()
    }

    /// Requests received (admin API excluded), oldest first; the newest
    /// [`SimConfig::max_logged_requests`] are kept.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.to_vec()
    }

    /// What every bounded list holds now, its cap, and what it dropped to stay under the cap
    /// ([`SimConfig::retention`]). Served as `GET /_sim/memory`.
    pub fn retention_stats(&self) -> Vec<ListStats> {
        self.shared.lock().retention_stats()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Fetches and decrypts the media of a `MessageItem` JSON object from the emulated CDN.
    ///
    /// # Errors
    /// See [`ScriptedUser::download`].
    pub fn download(&self, item: &Value) -> Result<Vec<u8>, SimError> {
        user::download(&self.shared, item)
    }

    /// Queues `fault` for the next `times` requests to `endpoint`. Faults for one
    /// endpoint apply in the order they were queued.
    pub fn inject_fault(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.shared.lock().faults.push(endpoint, fault, times);
    }

    /// Faults still queued: `(endpoint, fault, remaining)`.
    pub fn pending_faults(&self) -> Vec<(Endpoint, Fault, u32)> {
        self.shared.lock().faults.pending()
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Moves the emulated clock forward (reply window, token lifetime, burst window)
    /// without sleeping.
    pub fn advance_clock(&self, by: Duration) {
        self.shared
            .clock
            .advance_ms(u64::try_from(by.as_millis()).unwrap_or(u64::MAX));
    }

    /// The emulated clock, epoch milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.shared.now_ms()
    }

    /// QR login scripting.
    pub fn qr(&self) -> QrControl<'_> {
        QrControl { sim: self }
    }

    /// Waits until at least `count` messages were delivered to `user_id`, and returns them.
    ///
    /// # Errors
    /// [`SimError::Timeout`].
    pub async fn wait_for_delivered(
        &self,
        user_id: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Delivered>, SimError> {
        self.wait_until(timeout, "deliveries", || {
            let d = self.delivered_to(user_id);
            (d.len() >= count).then_some(d)
        })
        .await
    }

    /// Waits until at least `count` sendmessage requests were dropped, and returns them.
    ///
    /// # Errors
    /// [`SimError::Timeout`].
    pub async fn wait_for_dropped(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Dropped>, SimError> {
        self.wait_until(timeout, "drops", || {
            let d = self.dropped();
            (d.len() >= count).then_some(d)
        })
        .await
    }

    /// Waits until `check` returns `Some`, re-checking after every request the emulator
    /// handles (and every delivery or drop), and returns its value.
    ///
    /// ```no_run
    /// # async fn f(sim: &ilink_sim::Sim) -> Result<(), ilink_sim::SimError> {
    /// use std::time::Duration;
    /// let state = sim
    ///     .wait_for(Duration::from_secs(5), |s| s.typing_state("alice@im.wechat"))
    ///     .await?;
    /// # let _ = state; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SimError::Timeout`].
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        check: impl Fn(&Sim) -> Option<T>,
    ) -> Result<T, SimError> {
        self.wait_until(timeout, "a condition", || check(self))
            .await
    }

    async fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &'static str,
        check: impl Fn() -> Option<T>,
    ) -> Result<T, SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.activity.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = check() {
                return Ok(v);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return check().ok_or(SimError::Timeout(timeout, what));
            }
        }
    }
}

fn bot_status(b: &state::Bot) -> BotStatus {
    BotStatus {
        account: b.account.clone(),
        stale: b.stale,
        inbox_len: b.stream_len(),
        acked: b.acked,
        notify_started: b.notify_started,
        notify_stopped: b.notify_stopped,
    }
}

/// Scripts QR logins. Get it with [`Sim::qr`].
#[derive(Debug)]
pub struct QrControl<'a> {
    sim: &'a Sim,
}

impl QrControl<'_> {
    /// Queues a script for the next QR code `get_bot_qrcode` issues (scripts are used
    /// in the order queued; without one, [`SimConfig::default_qr_script`] is used).
    pub fn script(&self, steps: Vec<QrStep>) {
        self.sim.shared.lock().qr_scripts.push_back(steps);
    }

    /// Appends a "phone" action to an issued QR code's script.
    /// Returns `false` if the code is unknown.
    pub fn act(&self, qrcode: &str, step: QrStep) -> bool {
        let mut st = self.sim.shared.lock();
        match st.qr_sessions.iter_mut().find(|s| s.qrcode == qrcode) {
            Some(s) => {
                s.steps.push_back(step);
                true
            }
            None => false,
        }
    }

    /// Every QR code issued, oldest first.
    pub fn sessions(&self) -> Vec<QrSessionInfo> {
        self.sim
            .shared
            .lock()
            .qr_sessions
            .iter()
            .map(qr::QrSession::info)
            .collect()
    }
}

/// Runs an emulator on `addr` until the returned future is dropped (the `ilink sim`
/// command wraps this). Logs the URLs through `tracing`.
///
/// # Errors
/// [`SimError::Bind`] if the socket cannot be opened.
pub async fn serve(config: SimConfig, addr: SocketAddr) -> Result<(), SimError> {
    let sim = Sim::start_on(config, addr).await?;
    tracing::info!(
        base_url = %sim.base_url(),
        cdn_base_url = %sim.cdn_base_url(),
        admin = %format!("http://{}/_sim/", sim.addr()),
        "ilink-sim running"
    );
    std::future::pending::<()>().await;
    drop(sim);
    Ok(())
}
