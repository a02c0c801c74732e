//! Receiving: the per-account stream of updates (PROTOCOL.md §7, §14).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use futures_core::Stream;
use ilink_proto::{MessageItem, Secret, WeixinMessage, WireId};
use tracing::Instrument as _;

use crate::account::Account;
use crate::dedupe::message_key;
use crate::error::{Error, ErrorKind};

/// One inbound message, decoded.
#[derive(Clone)]
pub struct InboundMessage {
    account_id: String,
    key: String,
    msg: Box<WeixinMessage>,
}

impl fmt::Debug for InboundMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundMessage")
            .field("account_id", &self.account_id)
            .field("from", &self.from())
            .field("message_id", &self.msg.message_id)
            .field("items", &self.items().len())
            .finish_non_exhaustive()
    }
}

impl InboundMessage {
    /// The account that received it.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The sender, `from_user_id` (`…@im.wechat`).
    pub fn from(&self) -> &str {
        self.msg.from_user_id.as_deref().unwrap_or("")
    }

    /// The body text as the official client reads it: the first text item, or a voice
    /// transcript (PROTOCOL.md §8.4).
    pub fn text(&self) -> Option<&str> {
        self.msg.body_text()
    }

    /// The server's `message_id`.
    pub fn message_id(&self) -> Option<&WireId> {
        self.msg.message_id.as_ref()
    }

    /// The `context_token` that came with it.
    pub fn context_token(&self) -> Option<&Secret> {
        self.msg.context_token.as_ref()
    }

    /// The content items.
    pub fn items(&self) -> &[MessageItem] {
        self.msg.items()
    }

    /// `create_time_ms`.
    pub fn create_time_ms(&self) -> Option<i64> {
        self.msg.create_time_ms
    }

    /// The dedupe key of this message (`m:<message_id>`, `c:<client_id>`, `s:<from>:<seq>` or
    /// `f:<fingerprint>`).
    pub fn dedupe_key(&self) -> &str {
        &self.key
    }

    /// The whole wire message.
    pub fn raw(&self) -> &WeixinMessage {
        &self.msg
    }

    /// The whole wire message, by value.
    pub fn into_raw(self) -> WeixinMessage {
        *self.msg
    }
}

/// A message of a batch that could not be decoded; the rest of the batch is unaffected.
#[derive(Debug, Clone)]
pub struct UndecodableMessage {
    /// Its raw JSON.
    pub raw: serde_json::Value,
    /// Why decoding failed.
    pub error: String,
}

/// What an account's update stream yields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Update {
    /// An inbound message (never one already handled: duplicates are filtered out).
    Message(InboundMessage),
    /// A message that could not be decoded, with its raw JSON.
    Undecodable(UndecodableMessage),
    /// The session expired (`-14`) and notifystart plus a probe did not revive it. Sends fail
    /// until it recovers; log in again (a configured re-login presenter is run next), or call
    /// [`Account::replace_credentials`]. Polling slows to one probe per
    /// `stale_probe_interval` meanwhile.
    SessionExpired,
    /// The session works again after [`Update::SessionExpired`].
    SessionRestored,
    /// A poll failed (network, HTTP status, server error other than `-14`); the stream waits
    /// `retry_in` and polls again with the same cursor. For observability only.
    PollFailed {
        /// What failed.
        error: String,
        /// Failed polls in a row (reset after the long backoff).
        consecutive: u32,
        /// How long the stream waits before the next poll.
        retry_in: std::time::Duration,
    },
}

type PollFuture = Pin<Box<dyn std::future::Future<Output = (Option<Update>, Poller)> + Send>>;

/// The update stream of one account, from [`Account::updates`]. A `Stream` of [`Update`]s.
///
/// Delivery is at least once, with duplicates hidden: a message counts as handled when
/// [`ack`](Updates::ack) is called or, at the latest, when the next update is asked for. Then
/// its dedupe key is persisted, and the cursor of a batch is persisted only after every message
/// of the batch was handled. After a crash, handled messages are filtered out; a message whose
/// handling was not acknowledged (the crash came while it was being handled) comes again, so
/// handlers with external side effects should be idempotent (for example keyed by
/// [`InboundMessage::dedupe_key`]).
///
/// The stream sends notifystart before its first poll. It ends after [`Account::shutdown`]
/// (sending notifystop), or with `None` if another stream of the same account is active.
pub struct Updates {
    state: Option<Poller>,
    fut: Option<PollFuture>,
}

impl fmt::Debug for Updates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Updates").finish_non_exhaustive()
    }
}

impl Updates {
    pub(crate) fn new(account: Account) -> Result<Self, Error> {
        let cursor = account
            .shared()
            .store
            .load_cursor(account.id())?
            .unwrap_or_default();
        if account.inner.polling.swap(true, Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "account {} already has an active update stream",
                    account.id()
                ),
            ));
        }
        Ok(Self {
            state: Some(Poller {
                shutdown: account.shutdown_watch(),
                account,
                cursor,
                pending: VecDeque::new(),
                handled: None,
                batch_cursor: None,
                last_batch_len: 0,
                failures: 0,
                started: false,
                finished: false,
                announced: false,
                relogin_due: false,
                sleep_due: None,
            }),
            fut: None,
        })
    }

    /// The next update; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Update> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Marks the message last yielded as handled, now: its dedupe tombstone is persisted
    /// before this returns (and, if it was the last message of its batch, the batch's cursor),
    /// so a crash from here on does not deliver it again. Without `ack` the same happens when
    /// the next update is asked for. Call it as soon as the message's side effects are done
    /// (for example before work that does not matter for delivery, such as stopping a typing
    /// indicator). Does nothing if there is nothing to acknowledge.
    pub fn ack(&mut self) {
        if let Some(poller) = self.state.as_mut() {
            poller.ack();
        }
    }
}

impl Stream for Updates {
    type Item = Update;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Update>> {
        let this = &mut *self;
        if this.fut.is_none() {
            let Some(mut poller) = this.state.take() else {
                return Poll::Ready(None);
            };
            let span = tracing::debug_span!("ilink_account", account = %poller.account.id());
            this.fut = Some(Box::pin(
                async move {
                    let u = poller.next().await;
                    (u, poller)
                }
                .instrument(span),
            ));
        }
        let Some(fut) = this.fut.as_mut() else {
            return Poll::Ready(None);
        };
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((u, poller)) => {
                this.fut = None;
                if u.is_some() {
                    this.state = Some(poller);
                }
                Poll::Ready(u)
            }
        }
    }
}

struct Poller {
    account: Account,
    shutdown: tokio::sync::watch::Receiver<bool>,
    cursor: Secret,
    pending: VecDeque<(Update, Option<String>)>,
    handled: Option<String>,
    batch_cursor: Option<Secret>,
    /// Messages in the last non-empty batch (for the dedupe floor).
    last_batch_len: usize,
    failures: u32,
    started: bool,
    finished: bool,
    announced: bool,
    relogin_due: bool,
    sleep_due: Option<std::time::Duration>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.account.inner.polling.store(false, Ordering::SeqCst);
    }
}

impl Poller {
    fn mark_handled(&mut self, key: String) {
        let keys = {
            let Ok(mut d) = self.account.inner.dedupe.lock() else {
                return;
            };
            if !d.insert(key) {
                return;
            }
            d.keys()
        };
        if let Err(e) = self
            .account
            .shared()
            .store
            .save_tombstones(self.account.id(), &keys)
        {
            tracing::warn!(error = %e, "could not persist dedupe tombstones");
        }
    }

    /// Persist the tombstone of the message last yielded and, if the batch holds nothing
    /// more, the batch's cursor.
    fn ack(&mut self) {
        if let Some(key) = self.handled.take() {
            self.mark_handled(key);
            if self.pending.is_empty()
                && let Some(c) = self.batch_cursor.take()
            {
                self.commit_cursor(c);
            }
        }
    }

    fn is_duplicate(&self, key: &str) -> bool {
        self.account
            .inner
            .dedupe
            .lock()
            .map(|d| d.contains(key))
            .unwrap_or(false)
    }

    fn commit_cursor(&mut self, cursor: Secret) {
        if cursor == self.cursor {
            return;
        }
        match self
            .account
            .shared()
            .store
            .save_cursor(self.account.id(), &cursor)
        {
            Ok(()) => self.cursor = cursor,
            Err(e) => {
                // Keep polling with the new cursor in memory; the batch may come again after
                // a restart, and dedupe hides it.
                tracing::warn!(error = %e, "could not persist the cursor");
                self.cursor = cursor;
            }
        }
    }

    async fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.started
            && let Err(e) = self.account.notify_stop().await
        {
            tracing::debug!(error = %e, "notifystop failed");
        }
    }

    fn is_shutdown(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleep unless shut down first; returns false on shutdown.
    async fn sleep(&mut self, d: std::time::Duration) -> bool {
        let mut rx = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = rx.wait_for(|s| *s) => false,
        }
    }

    fn take_batch(&mut self, resp: ilink_proto::GetUpdatesResponse) {
        let account_id = self.account.id().to_owned();
        let count = resp.message_count();
        if count > 0 {
            // Never forget a key that can still come again: this batch's, and the previous
            // batch's (a lost response or a restart replays it), whatever the capacity.
            if let Ok(mut d) = self.account.inner.dedupe.lock() {
                d.set_floor(count.saturating_add(self.last_batch_len));
            }
            self.last_batch_len = count;
        }
        let next_cursor = resp.next_cursor().cloned();
        for decoded in resp.into_messages() {
            match decoded {
                Ok(msg) => {
                    if let (Some(from), Some(tok)) =
                        (msg.from_user_id.as_deref(), msg.context_token.as_ref())
                        && !from.is_empty()
                        && !tok.is_empty()
                        && let Err(e) = self.account.set_context_token(from, tok.clone())
                    {
                        tracing::warn!(error = %e, "could not persist a context token");
                    }
                    let key = message_key(&msg);
                    if let Some(from) = msg.from_user_id.as_deref().filter(|f| !f.is_empty()) {
                        // The user wrote: a new reply window (crate::outbox).
                        self.account.note_inbound(from, &key);
                    }
                    self.pending.push_back((
                        Update::Message(InboundMessage {
                            account_id: account_id.clone(),
                            key: key.clone(),
                            msg: Box::new(msg),
                        }),
                        Some(key),
                    ));
                }
                Err(e) => {
                    let error = e.to_string();
                    tracing::warn!(account = %account_id, %error, "undecodable message");
                    self.pending.push_back((
                        Update::Undecodable(UndecodableMessage {
                            raw: e.into_raw(),
                            error,
                        }),
                        None,
                    ));
                }
            }
        }
        if let Some(c) = next_cursor {
            if self.pending.is_empty() {
                self.commit_cursor(c);
            } else {
                self.batch_cursor = Some(c);
            }
        }
    }

    async fn poll_once(&mut self) -> Option<Result<ilink_proto::GetUpdatesResponse, Error>> {
        let mut rx = self.shutdown.clone();
        let account = self.account.clone();
        let cursor = self.cursor.clone();
        tokio::select! {
            r = account.get_updates(&cursor) => Some(r),
            _ = rx.wait_for(|s| *s) => None,
        }
    }

    async fn next(&mut self) -> Option<Update> {
        loop {
            if let Some(key) = self.handled.take() {
                self.mark_handled(key);
            }
            if self.finished {
                return None;
            }
            if self.is_shutdown() {
                // Stop between messages. A partly handled batch keeps its old cursor: the rest
                // comes again on the next start.
                if self.pending.is_empty()
                    && let Some(c) = self.batch_cursor.take()
                {
                    self.commit_cursor(c);
                }
                self.finish().await;
                return None;
            }
            if let Some((update, key)) = self.pending.pop_front() {
                if let Some(k) = &key
                    && self.is_duplicate(k)
                {
                    tracing::debug!(key = %k, "duplicate message skipped");
                    continue;
                }
                self.handled = key;
                return Some(update);
            }
            if let Some(c) = self.batch_cursor.take() {
                self.commit_cursor(c);
            }
            if !self.started {
                self.started = true;
                if let Err(e) = self.account.notify_start().await {
                    tracing::debug!(error = %e, "notifystart failed");
                }
            }
            if let Some(delay) = self.sleep_due.take() {
                self.sleep(delay).await;
                continue; // re-check shutdown
            }
            if self.relogin_due {
                self.relogin_due = false;
                if let Some(u) = self.relogin().await {
                    return Some(u);
                }
                continue;
            }
            let Some(result) = self.poll_once().await else {
                continue; // shutdown: handled at the top
            };
            match result {
                Ok(resp) => {
                    self.failures = 0;
                    let restored = self.account.is_session_expired() || self.announced;
                    self.account.set_stale(false);
                    self.take_batch(resp);
                    if restored && self.announced {
                        self.announced = false;
                        return Some(Update::SessionRestored);
                    }
                }
                Err(e) if e.kind() == ErrorKind::SessionExpired => {
                    if let Some(u) = self.on_stale().await {
                        return Some(u);
                    }
                }
                Err(e) => {
                    self.failures += 1;
                    let consecutive = self.failures;
                    let delays = &self.account.shared().config.delays;
                    let delay = if self.failures >= delays.max_consecutive_failures {
                        self.failures = 0;
                        delays.backoff
                    } else {
                        delays.retry
                    };
                    tracing::warn!(account = %self.account.id(), error = %e,
                        delay_ms = delay.as_millis() as u64, "getupdates failed; retrying");
                    self.sleep_due = Some(delay);
                    return Some(Update::PollFailed {
                        error: e.to_string(),
                        consecutive,
                        retry_in: delay,
                    });
                }
            }
        }
    }

    /// The `-14` recovery ladder: notifystart and a probe first; then tell the application;
    /// then (next call) a re-login if a presenter is configured, else a slow probe.
    async fn on_stale(&mut self) -> Option<Update> {
        let first = !self.account.is_session_expired();
        self.account.set_stale(true);
        if first {
            tracing::warn!(account = %self.account.id(), "session expired (-14); trying notifystart");
            if let Err(e) = self.account.notify_start().await {
                tracing::debug!(error = %e, "notifystart failed");
            }
            match self.poll_once().await {
                None => return None,
                Some(Ok(resp)) => {
                    tracing::info!(account = %self.account.id(), "session revived by notifystart");
                    self.account.set_stale(false);
                    self.take_batch(resp);
                    return None;
                }
                Some(Err(e)) if e.kind() == ErrorKind::SessionExpired => {}
                Some(Err(e)) => tracing::debug!(error = %e, "probe failed"),
            }
        }
        self.relogin_due = true;
        if !self.announced {
            self.announced = true;
            return Some(Update::SessionExpired);
        }
        None
    }

    async fn relogin(&mut self) -> Option<Update> {
        let shared = self.account.shared().clone();
        if let Some(presenter) = shared.relogin.clone() {
            let client = crate::Client { shared };
            let mut rx = self.shutdown.clone();
            let login = tokio::select! {
                r = client.login(presenter.as_ref()) => r,
                _ = rx.wait_for(|s| *s) => return None,
            };
            match login {
                Ok(crate::LoginOutcome::Confirmed(acct)) if acct.id() == self.account.id() => {
                    // `add_account` gave the open account its new credentials.
                    self.announced = false;
                    self.account.set_stale(false);
                    return Some(Update::SessionRestored);
                }
                Ok(crate::LoginOutcome::Confirmed(acct)) => {
                    tracing::warn!(expected = %self.account.id(), got = %acct.id(),
                        "re-login confirmed a different bot");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "re-login failed"),
            }
        }
        // Wait for new credentials, a shutdown, or the probe interval: no polling storm.
        let interval = self.account.shared().config.delays.stale_probe_interval;
        let mut stale = self.account.stale_watch();
        let mut rx = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stale.wait_for(|s| !*s) => {}
            _ = rx.wait_for(|s| *s) => {}
        }
        None
    }
}

impl Account {
    /// The stream of updates of this account. Only one stream per account can be active.
    pub fn updates(&self) -> Result<Updates, Error> {
        Updates::new(self.clone())
    }
}
