//! One bot account: its session, context tokens, typing tickets, sends and API calls.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ilink_proto::{
    Endpoint, GetConfigRequest, GetConfigResponse, GetUpdatesRequest, GetUpdatesResponse,
    MessageItem, NotifyRequest, Secret, SendMessageRequest, SendMessageResponse, SendTypingRequest,
    TypingStatus, WeixinMessage,
};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::ClientShared;
use crate::dedupe::Dedupe;
use crate::error::{Error, ErrorKind, Result};
use crate::send::{SendError, SendErrorKind, SendOutcome};
use crate::store::Credentials;
use crate::transport::{ApiCall, NotifyCall, Target};

#[derive(Clone)]
struct Session {
    token: Secret,
    base_url: String,
    creds: Credentials,
}

struct TicketState {
    ticket: Option<Secret>,
    refresh_at: Instant,
    retry_delay: Duration,
}

pub(crate) struct AccountInner {
    pub(crate) shared: Arc<ClientShared>,
    id: String,
    session: RwLock<Session>,
    stale: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
    tokens: Mutex<HashMap<String, Secret>>,
    tickets: tokio::sync::Mutex<HashMap<String, TicketState>>,
    pub(crate) dedupe: Mutex<Dedupe>,
    pub(crate) poll_timeout: Mutex<Duration>,
    pub(crate) polling: AtomicBool,
    /// The reply budget, outbound queue and turn journal ([`crate::outbox`]).
    pub(crate) outbox: Mutex<crate::outbox::OutboxState>,
    /// One lock per user, held while that user's queue is flushed.
    pub(crate) flush_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Held while an outbox record is journaled and applied (records keep their order).
    pub(crate) journal_lock: tokio::sync::Mutex<()>,
    /// The lease a leased run holds for this account: its fence goes with every write of
    /// progress, and no sendmessage goes out once it may have expired. `None` when unleased.
    lease: Mutex<Option<Arc<crate::lease::LeaseKeeper>>>,
    /// Set when a fenced write was refused ([`ErrorKind::LeaseLost`]): the run stops.
    lease_lost: watch::Sender<bool>,
}

/// One logged-in bot account: receive with [`Account::updates`] or [`Account::run`], send with
/// [`Account::send_text`]. Cheap to clone; clones share everything. Each account has its own
/// long-poll loop, cursor, context tokens, dedupe memory and typing tickets.
#[derive(Clone)]
pub struct Account {
    pub(crate) inner: Arc<AccountInner>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.inner.id)
            .field("session_expired", &self.is_session_expired())
            .finish_non_exhaustive()
    }
}

fn lock_err() -> Error {
    Error::new(ErrorKind::Store, "an internal lock was poisoned")
}

/// A v4 UUID from random bytes, for `run_id`.
fn uuid_v4() -> String {
    let h = crate::util::random_hex(16);
    let mut b: Vec<char> = h.chars().collect();
    if b.len() == 32 {
        b[12] = '4';
        let v = b[16].to_digit(16).unwrap_or(0);
        b[16] = std::char::from_digit((v & 0x3) | 0x8, 16).unwrap_or('8');
    }
    let s: String = b.into_iter().collect();
    format!(
        "{}-{}-{}-{}-{}",
        s.get(0..8).unwrap_or(""),
        s.get(8..12).unwrap_or(""),
        s.get(12..16).unwrap_or(""),
        s.get(16..20).unwrap_or(""),
        s.get(20..32).unwrap_or("")
    )
}

pub(crate) fn new_run_id() -> String {
    uuid_v4()
}

impl Account {
    pub(crate) async fn open(shared: Arc<ClientShared>, creds: Credentials) -> Result<Self> {
        let store = &shared.store;
        // Best effort: tidying up after a crash must not keep a bot from starting.
        if let Err(e) = store.open_account(&creds.account_id).await {
            tracing::warn!(account = %creds.account_id, error = %e, "could not tidy the account's state");
        }
        let tokens = store.load_context_tokens(&creds.account_id).await?;
        let tombstones = store.load_tombstones(&creds.account_id).await?;
        let dedupe = Dedupe::new(shared.config.dedupe_capacity, tombstones);
        let outbox = match store.load_outbox(&creds.account_id).await {
            Ok(lines) => crate::outbox::OutboxState::from_lines(&lines),
            Err(e) if e.kind() == ErrorKind::Store && e.to_string().contains("keeps no outbox") => {
                tracing::warn!(account = %creds.account_id,
                    "the state store keeps no outbox: queued replies live in memory only");
                crate::outbox::OutboxState::default()
            }
            Err(e) => return Err(e),
        };
        let base_url = creds
            .base_url
            .clone()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| shared.config.default_base_url.clone());
        let poll_timeout = shared.config.timeouts.long_poll;
        Ok(Self {
            inner: Arc::new(AccountInner {
                id: creds.account_id.clone(),
                session: RwLock::new(Session {
                    token: creds.token.clone(),
                    base_url,
                    creds,
                }),
                stale: watch::channel(false).0,
                shutdown: watch::channel(false).0,
                tokens: Mutex::new(tokens),
                tickets: tokio::sync::Mutex::new(HashMap::new()),
                dedupe: Mutex::new(dedupe),
                poll_timeout: Mutex::new(poll_timeout),
                polling: AtomicBool::new(false),
                outbox: Mutex::new(outbox),
                flush_locks: Mutex::new(HashMap::new()),
                journal_lock: tokio::sync::Mutex::new(()),
                lease: Mutex::new(None),
                lease_lost: watch::channel(false).0,
                shared,
            }),
        })
    }

    /// The account id: the bot's `ilink_bot_id` (`…@im.bot`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The stored credentials (the token is redacted in `Debug`).
    pub fn credentials(&self) -> Result<Credentials> {
        Ok(self.session()?.creds)
    }

    /// The API base URL in use.
    pub fn base_url(&self) -> Result<String> {
        Ok(self.session()?.base_url)
    }

    fn session(&self) -> Result<Session> {
        self.inner
            .session
            .read()
            .map(|s| s.clone())
            .map_err(|_| lock_err())
    }

    pub(crate) fn shared(&self) -> &Arc<ClientShared> {
        &self.inner.shared
    }

    /// The lease a leased run holds for this account, if any.
    pub(crate) fn lease_keeper(&self) -> Option<Arc<crate::lease::LeaseKeeper>> {
        self.inner.lease.lock().ok().and_then(|l| l.clone())
    }

    /// The fence of the lease a leased run holds for this account (`None`: unleased).
    pub(crate) fn fence(&self) -> Option<crate::store::Fence> {
        self.lease_keeper().map(|k| k.fence())
    }

    /// Start serving under `keeper` (fences every write of progress from now on).
    pub(crate) fn set_lease(&self, keeper: Option<Arc<crate::lease::LeaseKeeper>>) {
        if let Ok(mut l) = self.inner.lease.lock() {
            *l = keeper;
        }
        self.inner.lease_lost.send_replace(false);
    }

    /// Stop fencing with `keeper` (if it is still the account's lease).
    pub(crate) fn clear_lease(&self, keeper: &Arc<crate::lease::LeaseKeeper>) {
        if let Ok(mut l) = self.inner.lease.lock()
            && l.as_ref().is_some_and(|k| Arc::ptr_eq(k, keeper))
        {
            *l = None;
        }
    }

    /// The lease is lost: the run stops serving the account.
    pub(crate) fn signal_lease_lost(&self) {
        if let Some(k) = self.lease_keeper() {
            k.mark_lost();
        }
        self.inner.lease_lost.send_replace(true);
    }

    /// Note a failed write of progress: a refused fence means the lease is lost.
    pub(crate) fn note_store_error(&self, e: &Error) {
        if e.is_lease_lost() {
            self.signal_lease_lost();
        }
    }

    /// Tells when a fenced write was refused (the lease is lost).
    pub(crate) fn lease_lost_watch(&self) -> watch::Receiver<bool> {
        self.inner.lease_lost.subscribe()
    }

    /// True while the session is known to be expired (`-14` on getupdates, not yet recovered).
    /// Sends fail fast with [`SendErrorKind::SessionExpired`] meanwhile.
    pub fn is_session_expired(&self) -> bool {
        *self.inner.stale.borrow()
    }

    pub(crate) fn set_stale(&self, stale: bool) {
        self.inner.stale.send_replace(stale);
    }

    pub(crate) fn stale_watch(&self) -> watch::Receiver<bool> {
        self.inner.stale.subscribe()
    }

    pub(crate) fn shutdown_watch(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Use new credentials (for example after a fresh QR login for this bot): saves them,
    /// clears the expired state and wakes the update loop.
    pub async fn replace_credentials(&self, creds: Credentials) -> Result<()> {
        if creds.account_id != self.inner.id {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "credentials for {} cannot replace those of {}",
                    creds.account_id, self.inner.id
                ),
            ));
        }
        self.inner.shared.store.save_credentials(&creds).await?;
        let base_url = creds
            .base_url
            .clone()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| self.inner.shared.config.default_base_url.clone());
        {
            let mut s = self.inner.session.write().map_err(|_| lock_err())?;
            *s = Session {
                token: creds.token.clone(),
                base_url,
                creds,
            };
        }
        self.set_stale(false);
        Ok(())
    }

    /// Reloads the account's credentials from the store and uses them if they hold another
    /// token than the one in use (a newer login saved by another process). Returns true when
    /// the token changed. Called when the session expires (`-14`), before reporting it.
    pub async fn reload_credentials(&self) -> bool {
        let stored = match self
            .inner
            .shared
            .store
            .load_credentials(&self.inner.id)
            .await
        {
            Ok(Some(c)) => c,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(account = %self.inner.id, error = %e, "could not reload the credentials");
                return false;
            }
        };
        let Ok(current) = self.session() else {
            return false;
        };
        if stored.token == current.token {
            return false;
        }
        let base_url = stored
            .base_url
            .clone()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| self.inner.shared.config.default_base_url.clone());
        match self.inner.session.write() {
            Ok(mut s) => {
                *s = Session {
                    token: stored.token.clone(),
                    base_url,
                    creds: stored,
                };
            }
            Err(_) => return false,
        }
        self.set_stale(false);
        tracing::info!(account = %self.inner.id, "session expired (-14); a newer login was saved, using it");
        true
    }

    /// Ask this account to stop receiving: its update stream ends after the message being
    /// handled (whose replies still go out), commits what was handled and sends notifystop.
    /// Sending stays possible afterwards.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// True once [`Account::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    // ------------------------------------------------------------------ context tokens

    /// The latest `context_token` received from `user`, if any.
    pub fn context_token(&self, user: &str) -> Option<Secret> {
        self.inner.tokens.lock().ok()?.get(user).cloned()
    }

    /// The users this account holds a context token for.
    pub fn known_users(&self) -> Vec<String> {
        self.inner
            .tokens
            .lock()
            .map(|t| {
                let mut v: Vec<String> = t.keys().cloned().collect();
                v.sort();
                v
            })
            .unwrap_or_default()
    }

    /// Record the latest context token of `user` and persist the map (done automatically for
    /// every inbound message).
    pub async fn set_context_token(&self, user: &str, token: Secret) -> Result<()> {
        let snapshot = {
            let mut t = self.inner.tokens.lock().map_err(|_| lock_err())?;
            if t.get(user) == Some(&token) {
                return Ok(());
            }
            t.insert(user.to_owned(), token);
            t.clone()
        };
        let fence = self.fence();
        self.inner
            .shared
            .store
            .save_context_tokens(&self.inner.id, &snapshot, fence.as_ref())
            .await
            .inspect_err(|e| self.note_store_error(e))
    }

    // ------------------------------------------------------------------ raw API calls

    /// Send one API call with this account's base URL and token (the envelope is judged).
    pub(crate) async fn call<C: ApiCall>(&self, call: &C) -> Result<C::Response> {
        let s = self.session()?;
        let to = Target {
            base: &s.base_url,
            token: Some(&s.token),
        };
        self.inner.shared.transport.call(to, call).await
    }

    /// `msg/notifystart` (§11). A non-zero `ret` is returned as an error (the official client
    /// only logs it).
    pub async fn notify_start(&self) -> Result<()> {
        self.notify(Endpoint::NotifyStart).await
    }

    /// `msg/notifystop` (§11).
    pub async fn notify_stop(&self) -> Result<()> {
        self.notify(Endpoint::NotifyStop).await
    }

    async fn notify(&self, endpoint: Endpoint) -> Result<()> {
        if !self.inner.shared.config.compat_version.sends_notify() {
            return Ok(());
        }
        let body = NotifyRequest::new(self.inner.shared.transport.base_info());
        self.call(&NotifyCall { endpoint, body }).await.map(|_| ())
    }

    /// One getupdates call with `cursor` (§7). A client-side timeout is an empty batch
    /// (`Ok` with no messages and no cursor), not an error; `-14` is
    /// [`ErrorKind::SessionExpired`].
    pub(crate) async fn get_updates(&self, cursor: &Secret) -> Result<GetUpdatesResponse> {
        let cfg = &self.inner.shared.config;
        let base = *self.inner.poll_timeout.lock().map_err(|_| lock_err())?;
        let timeout = base + cfg.timeouts.long_poll_margin;
        let body = GetUpdatesRequest::new(cursor.clone(), self.inner.shared.transport.base_info());
        let s = self.session()?;
        let to = Target {
            base: &s.base_url,
            token: Some(&s.token),
        };
        let call = self
            .inner
            .shared
            .transport
            .call_with_timeout(to, &body, timeout);
        let resp: GetUpdatesResponse = match call.await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                tracing::debug!(account = %self.inner.id, "long-poll timed out: empty batch");
                return Ok(GetUpdatesResponse::default());
            }
            Err(e) => return Err(e),
        };
        if let Some(advertised) = resp.long_poll_timeout()
            && let Ok(mut p) = self.inner.poll_timeout.lock()
        {
            let cap = cfg.timeouts.long_poll_cap();
            if advertised > cap {
                tracing::debug!(account = %self.inner.id,
                    advertised_ms = advertised.as_millis() as u64, cap_ms = cap.as_millis() as u64,
                    "the server's longpolling_timeout_ms is above the cap; capping it");
            }
            *p = advertised.min(cap);
        }
        Ok(resp)
    }

    // ------------------------------------------------------------------ sending

    /// Send text to `user` with their stored context token (a proactive send): the text goes
    /// through the Markdown filter (if enabled), is split into chunks of at most the chunk
    /// limit, and goes out through the user's reply budget and queue ([`crate::outbox`]): one
    /// outcome per chunk, in order, each [`SendOutcome::Delivered`] (or `Accepted`) or
    /// [`SendOutcome::Queued`] when the window does not allow it now (it is sent when the user
    /// writes next).
    ///
    /// Fails before sending anything with [`SendErrorKind::NoContextToken`] when the user
    /// never wrote to this bot, [`SendErrorKind::Invalid`] when nothing is left to send after
    /// the Markdown filter, [`SendErrorKind::BudgetExceeded`] under
    /// [`Overflow::AllOrNothing`](crate::outbox::Overflow::AllOrNothing) and
    /// [`SendErrorKind::QueueFull`] when the queue cannot take the text.
    pub async fn send_text(&self, user: &str, text: &str) -> Result<Vec<SendOutcome>, SendError> {
        self.send_text_queued(user, text, None, None, None).await
    }

    /// Text sent in a turn outside the turn journal (a media caption): budget and queue apply.
    pub(crate) async fn send_text_in_turn(
        &self,
        user: &str,
        text: &str,
        context_token: Option<Secret>,
        run_id: Option<&str>,
    ) -> Result<Vec<SendOutcome>, SendError> {
        self.send_text_queued(user, text, context_token, run_id, None)
            .await
    }

    /// Checks done before anything is sent: not shut down, session not expired, a recipient
    /// and a context token. Returns the token to use.
    pub(crate) fn precheck(
        &self,
        user: &str,
        context_token: Option<Secret>,
    ) -> Result<Secret, SendError> {
        if self.lease_keeper().is_some_and(|k| k.is_lost()) {
            return Err(SendError::new(
                SendErrorKind::LeaseLost,
                format!(
                    "this process no longer holds the lease of {}; another one serves it",
                    self.inner.id
                ),
            ));
        }
        if self.is_session_expired() {
            return Err(SendError::new(
                SendErrorKind::SessionExpired,
                format!(
                    "the session of {} expired (-14); log in again before sending",
                    self.inner.id
                ),
            ));
        }
        if user.trim().is_empty() {
            return Err(SendError::new(
                SendErrorKind::Invalid,
                "the recipient is empty",
            ));
        }
        let token = context_token
            .filter(|t| !t.is_empty())
            .or_else(|| self.context_token(user))
            .ok_or_else(|| {
                SendError::new(
                    SendErrorKind::NoContextToken,
                    format!("no context_token for {user}: the user must write to this bot first"),
                )
            })?;
        Ok(token)
    }

    /// Send one item (text, or media prepared by `ilink-cdn`) to `user` in one sendmessage,
    /// with the hidden fields the server needs (`from_user_id` `""`, a fresh `client_id`,
    /// `message_type` 2, `message_state` 2, the user's `context_token`).
    pub async fn send_item(&self, user: &str, item: MessageItem) -> Result<SendOutcome, SendError> {
        self.send_item_in_turn(user, item, None, None).await
    }

    pub(crate) async fn send_item_in_turn(
        &self,
        user: &str,
        item: MessageItem,
        context_token: Option<Secret>,
        run_id: Option<&str>,
    ) -> Result<SendOutcome, SendError> {
        let client_id = crate::util::new_client_id(&self.inner.shared.config.client_id_prefix);
        let outcome = self
            .send_item_with_id(user, item, context_token, run_id, client_id)
            .await?;
        // Count it against the user's reply budget.
        self.note_sent(user, &outcome).await;
        Ok(outcome)
    }

    /// One sendmessage with a given `client_id` (reused when a queued message is retried).
    pub(crate) async fn send_item_with_id(
        &self,
        user: &str,
        item: MessageItem,
        context_token: Option<Secret>,
        run_id: Option<&str>,
        client_id: String,
    ) -> Result<SendOutcome, SendError> {
        let token = self.precheck(user, context_token)?;
        let cfg = &self.inner.shared.config;
        let mut msg = WeixinMessage::outbound(user, client_id.clone(), vec![item], Some(token));
        if let Some(r) = run_id
            && cfg.compat_version >= ilink_proto::CompatVersion::V2_4_4
        {
            msg = msg.with_run_id(r);
        }
        let body = SendMessageRequest::new(msg, self.inner.shared.transport.base_info());
        let mut attempt = 0;
        let resp: SendMessageResponse = loop {
            // A leased run never sends once its lease may have expired (another process may
            // serve the account by now): renew first, and send nothing if that fails.
            if let Some(k) = self.lease_keeper() {
                k.ensure_live().await.map_err(|e| {
                    self.note_store_error(&e);
                    SendError::from_error(e)
                })?;
            }
            match self.call(&body).await {
                Ok(r) => break r,
                Err(e) if attempt < cfg.send_retries && e.is_request_not_sent() => {
                    // The request never reached the server: repeating it cannot duplicate.
                    attempt += 1;
                    tracing::debug!(attempt, error = %e, "sendmessage not sent; retrying");
                    let backoff = ilink_cdn::Backoff::new(
                        cfg.delays.send_retry,
                        cfg.delays.send_retry.saturating_mul(8),
                    );
                    backoff.sleep(attempt - 1).await;
                }
                Err(e) => return Err(SendError::from_error(e)),
            }
        };
        Ok(match resp.message_id {
            Some(id) if !id.as_str().is_empty() => SendOutcome::Delivered {
                message_id: id,
                client_id,
            },
            _ => SendOutcome::Accepted { client_id },
        })
    }

    // ------------------------------------------------------------------ typing

    /// The typing ticket for `user` (getconfig, §10), from the per-user cache: refreshed at a
    /// random moment within 24 h after a success, retried after 2 s doubling to 1 h after a
    /// failure. `None` while no call has succeeded.
    pub async fn typing_ticket(&self, user: &str, context_token: Option<Secret>) -> Option<Secret> {
        let cfg = &self.inner.shared.config;
        let mut tickets = self.inner.tickets.lock().await;
        let now = Instant::now();
        if let Some(state) = tickets.get(user)
            && now < state.refresh_at
        {
            return state.ticket.clone();
        }
        let body = GetConfigRequest::new(
            user,
            context_token.or_else(|| self.context_token(user)),
            self.inner.shared.transport.base_info(),
        );
        let result: Result<GetConfigResponse> = self.call(&body).await;
        let ok = match result {
            Ok(r) => r.typing_ticket.filter(|t| !t.is_empty()),
            Err(e) => {
                tracing::debug!(error = %e, "getconfig failed");
                None
            }
        };
        let prev = tickets.remove(user);
        let state = match ok {
            Some(t) => {
                let window = cfg.delays.typing_ticket_refresh.as_millis().max(1) as u64;
                let jitter = Duration::from_millis(crate::util::random_u64() % window);
                TicketState {
                    ticket: Some(t),
                    refresh_at: now + jitter,
                    retry_delay: cfg.delays.typing_ticket_retry,
                }
            }
            None => {
                let delay = prev
                    .as_ref()
                    .map_or(cfg.delays.typing_ticket_retry, |p| p.retry_delay);
                // The official client's delay (2 s doubling to 1 h, §10) as the ceiling of a
                // jittered one, so that many bots that failed together do not retry together.
                let jittered = ilink_cdn::Backoff::new(delay, delay).delay(0);
                TicketState {
                    ticket: prev.and_then(|p| p.ticket),
                    refresh_at: now + jittered,
                    retry_delay: (delay * 2).min(cfg.delays.typing_ticket_retry_max),
                }
            }
        };
        let ticket = state.ticket.clone();
        tickets.insert(user.to_owned(), state);
        ticket
    }

    /// Show (`Typing`) or cancel (`Cancel`) the typing indicator for `user` (sendtyping, §10).
    /// Returns false, sending nothing, when no typing ticket could be had. A non-zero `ret` or
    /// `errcode` in the answer is an error (the official client ignores the answer), so that
    /// a caller can retry a cancel that did not take.
    pub async fn send_typing(&self, user: &str, status: TypingStatus) -> Result<bool> {
        let Some(ticket) = self.typing_ticket(user, None).await else {
            return Ok(false);
        };
        self.send_typing_with(user, ticket, status).await?;
        Ok(true)
    }

    pub(crate) async fn send_typing_with(
        &self,
        user: &str,
        ticket: Secret,
        status: TypingStatus,
    ) -> Result<()> {
        let body = SendTypingRequest::new(
            user,
            ticket,
            status,
            self.inner.shared.transport.base_info(),
        );
        // The official client never reads the response of sendtyping (§5); a non-zero code
        // is still a failure here (the request path judges the envelope), so that a refused
        // cancel is retried.
        self.call(&body).await.map(|_| ())
    }

    /// Sends the typing cancel, retried with backoff up to
    /// [`Delays::typing_cancel_attempts`](crate::Delays::typing_cancel_attempts) times; a
    /// final failure is a warning (the indicator may stay on until WeChat times it out).
    async fn cancel_typing(&self, user: &str, ticket: Secret) {
        let delays = &self.inner.shared.config.delays;
        let attempts = delays.typing_cancel_attempts.max(1);
        for attempt in 1..=attempts {
            match self
                .send_typing_with(user, ticket.clone(), TypingStatus::Cancel)
                .await
            {
                Ok(()) => return,
                Err(e) if attempt < attempts => {
                    tracing::debug!(account = %self.inner.id, user, attempt, error = %e,
                        "sendtyping cancel failed; retrying");
                    delays.typing_cancel_retry.sleep(attempt - 1).await;
                }
                Err(e) => {
                    tracing::warn!(account = %self.inner.id, user, attempts, error = %e,
                        "the typing cancel failed; the indicator may stay on for this user");
                }
            }
        }
    }

    /// Start a typing indicator for `user` that is refreshed every keepalive interval until
    /// the returned guard is stopped or dropped, which ends the keepalive and sends the
    /// cancel; a failed cancel is retried with backoff up to
    /// [`Delays::typing_cancel_attempts`](crate::Delays::typing_cancel_attempts) times, and a
    /// final failure is logged as a warning with the user id.
    pub async fn start_typing(&self, user: &str, context_token: Option<Secret>) -> TypingGuard {
        let acct = self.clone();
        let user = user.to_owned();
        let delays = &self.inner.shared.config.delays;
        let every = delays.typing_keepalive;
        let start_wait = delays.typing_start_wait;
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let ticket = tokio::select! {
                t = acct.typing_ticket(&user, context_token) => t,
                _ = &mut stop_rx => None,
            };
            // Without a ticket no indicator is sent (the official client does the same).
            let Some(ticket) = ticket else {
                return;
            };
            let mut started = Some(started_tx);
            loop {
                if let Err(e) = acct
                    .send_typing_with(&user, ticket.clone(), TypingStatus::Typing)
                    .await
                {
                    tracing::debug!(error = %e, "sendtyping failed");
                }
                if let Some(s) = started.take() {
                    let _ = s.send(());
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = &mut stop_rx => break,
                }
            }
            acct.cancel_typing(&user, ticket).await;
        });
        // Wait (briefly) for the first indicator so it precedes the reply on the wire, as in
        // the official client's order (getconfig, typing, sendmessage, cancel).
        let _ = tokio::time::timeout(start_wait, started_rx).await;
        TypingGuard {
            task: Some((stop_tx, task)),
        }
    }
}

/// A running typing indicator; see [`Account::start_typing`].
#[derive(Debug)]
pub struct TypingGuard {
    task: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl TypingGuard {
    /// Stop the keepalive and send the cancel; waits until the cancel was sent.
    pub async fn stop(mut self) {
        if let Some((tx, task)) = self.task.take() {
            let _ = tx.send(());
            let _ = task.await;
        }
    }
}

impl Drop for TypingGuard {
    fn drop(&mut self) {
        // Dropped without `stop`: ask the task to cancel on its own.
        if let Some((tx, _task)) = self.task.take() {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(
            parts[3].chars().next(),
            Some('8' | '9' | 'a' | 'b')
        ));
    }
}
