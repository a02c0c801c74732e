//! Receiving: the per-account stream of updates (docs/protocol.md §7, §14).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_core::Stream;
use ilink_proto::{MessageErrorKind, MessageItem, RawMessageError, Secret, WeixinMessage, WireId};
use tracing::Instrument as _;

use crate::account::Account;
use crate::dedupe::{MessageKeys, message_keys};
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
    /// transcript (docs/protocol.md §8.4).
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

    /// What the message carries: the content of its first item (`None` without items).
    /// See [`Content`](crate::Content); [`contents`](Self::contents) has every item.
    pub fn content(&self) -> Option<crate::Content<'_>> {
        self.items().first().map(crate::Content::of)
    }

    /// The content of every item, in order.
    pub fn contents(&self) -> impl Iterator<Item = crate::Content<'_>> {
        self.items().iter().map(crate::Content::of)
    }

    /// `create_time_ms`.
    pub fn create_time_ms(&self) -> Option<i64> {
        self.msg.create_time_ms
    }

    /// The key that names this message for dedupe: its first strong key (`m:<message_id>`, else
    /// `c:<client_id>`, else `s:<from>:<seq>`), else `f:<fingerprint of sender and content>`.
    /// A copy is recognised by any of its strong keys, not only this one.
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

/// A message of a batch that could not be decoded; the rest of the batch and the cursor are
/// unaffected. It keeps the message as received: its JSON, or its exact bytes when they are not
/// JSON on their own (invalid UTF-8, a number such as `1e400`).
///
/// `Debug` and `Display` never show the message (it holds a `context_token`).
#[derive(Clone)]
pub struct UndecodableMessage {
    error: Arc<RawMessageError>,
}

impl UndecodableMessage {
    /// Position of the message in its batch.
    pub fn index(&self) -> usize {
        self.error.index()
    }

    /// Why it did not decode.
    pub fn kind(&self) -> MessageErrorKind {
        self.error.kind()
    }

    /// Its JSON, when its bytes parsed (it then had the wrong shape or nested too deep).
    pub fn raw(&self) -> Option<&serde_json::Value> {
        self.error.raw()
    }

    /// Its bytes: exactly as received when they did not parse, else its JSON re-encoded.
    pub fn raw_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        self.error.raw_bytes()
    }

    /// The decoding error of `ilink-proto`.
    pub fn error(&self) -> &RawMessageError {
        &self.error
    }
}

impl fmt::Debug for UndecodableMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.error, f)
    }
}

impl fmt::Display for UndecodableMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.error, f)
    }
}

impl std::error::Error for UndecodableMessage {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.error)
    }
}

/// What kind of failure a [`PollError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PollErrorKind {
    /// No answer: connect, TLS, timeout or connection reset.
    Transport,
    /// The server or a gateway answered with a non-2xx HTTP status (e.g. 524).
    HttpStatus,
    /// The server answered with a non-zero `ret`/`errcode` other than `-14`.
    Server,
    /// The body could not be read at all (not a JSON object, truncated, or its cursor is
    /// unreadable), so the batch cannot be acknowledged. One odd message or envelope field never
    /// causes this.
    UnreadableBody,
    /// Anything else (local state could not be read).
    Other,
}

/// Why a getupdates poll failed, carried by [`Update::PollFailed`]. `Display` says only that
/// the poll failed and how; the cause is its [`source`](std::error::Error::source).
#[derive(Clone)]
pub struct PollError {
    kind: PollErrorKind,
    cause: Arc<Error>,
}

impl PollError {
    pub(crate) fn new(cause: Error) -> Self {
        let kind = match cause.kind() {
            ErrorKind::Transport => PollErrorKind::Transport,
            ErrorKind::HttpStatus => PollErrorKind::HttpStatus,
            ErrorKind::Api => PollErrorKind::Server,
            ErrorKind::Decode => PollErrorKind::UnreadableBody,
            _ => PollErrorKind::Other,
        };
        Self {
            kind,
            cause: Arc::new(cause),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> PollErrorKind {
        self.kind
    }

    /// Whether a client-side timeout caused it.
    pub fn is_timeout(&self) -> bool {
        self.cause.is_timeout()
    }

    /// Whether the body could not be read at all ([`PollErrorKind::UnreadableBody`]).
    pub fn is_unreadable_body(&self) -> bool {
        self.kind == PollErrorKind::UnreadableBody
    }

    /// The server's non-zero `ret`/`errcode`, for [`PollErrorKind::Server`].
    pub fn api_code(&self) -> Option<i64> {
        self.cause.api_code()
    }

    /// The runtime error underneath.
    pub fn cause(&self) -> &Error {
        &self.cause
    }
}

impl fmt::Debug for PollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollError")
            .field("kind", &self.kind)
            .field("cause", &self.cause)
            .finish()
    }
}

impl fmt::Display for PollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            PollErrorKind::Transport => "getupdates failed: no answer from the server",
            PollErrorKind::HttpStatus => {
                "getupdates failed: the server answered with an HTTP error"
            }
            PollErrorKind::Server => "getupdates failed: the server returned an error code",
            PollErrorKind::UnreadableBody => {
                "getupdates failed: the body could not be read, so its cursor is unknown"
            }
            PollErrorKind::Other => "getupdates failed",
        })
    }
}

impl std::error::Error for PollError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
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
    /// A poll failed (network, HTTP status, server error other than `-14`, a body that cannot
    /// be read at all); the stream waits `retry_in` (longer after
    /// [`Delays::max_consecutive_failures`](crate::Delays) in a row) and polls again with the
    /// same cursor. Every failed poll is reported: a server that keeps sending an unreadable body
    /// shows as a run of these with [`PollErrorKind::UnreadableBody`], never as silence.
    PollFailed {
        /// What failed.
        error: PollError,
        /// Failed polls in a row (reset after the long backoff).
        consecutive: u32,
        /// How long the stream waits before the next poll.
        retry_in: std::time::Duration,
    },
}

type PollFuture =
    Pin<Box<dyn std::future::Future<Output = (Option<(Update, Option<Receipt>)>, Poller)> + Send>>;

/// Where one yielded update stands: its dedupe key (messages only) and its batch. Settled
/// (acknowledged) exactly once, in any order: a batch's cursor is committed once every
/// message of it and of every earlier batch is settled.
#[derive(Debug)]
pub(crate) struct Receipt {
    key: Option<MessageKeys>,
    batch: u64,
}

/// The batches received but not yet committed, shared by the poller and the acknowledgers of
/// messages handled concurrently ([`Account::run`]).
#[derive(Debug, Default)]
struct Ledger {
    next_id: u64,
    /// Oldest first; the front is the oldest batch not yet committed.
    batches: VecDeque<LedgerBatch>,
    /// Keys of messages yielded and not yet settled: a replay of one of them is not yielded
    /// again.
    in_flight: HashSet<String>,
    /// Messages in all batches of `batches` (for the dedupe floor).
    open_messages: usize,
    /// The cursor last persisted (or loaded).
    committed: Option<Secret>,
}

#[derive(Debug)]
struct LedgerBatch {
    id: u64,
    cursor: Option<Secret>,
    /// Messages of the batch not settled yet.
    open: usize,
    size: usize,
}

/// Settles receipts from any task: persists the tombstone of a handled message and commits
/// the cursors of finished batches, in order.
#[derive(Clone)]
pub(crate) struct Acker {
    account: Account,
    ledger: Arc<Mutex<Ledger>>,
    /// Notified when every batch received is committed.
    drained: Arc<tokio::sync::Notify>,
    /// The account's tombstone journal.
    tombstones: Arc<Tombstones>,
    /// The stream ended because the account's lease was lost.
    lease_lost: Arc<AtomicBool>,
}

impl fmt::Debug for Acker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acker").finish_non_exhaustive()
    }
}

impl Acker {
    /// The message of `receipt` was handled: persist its tombstone, then settle it.
    pub(crate) fn ack(&self, receipt: Receipt) {
        if let Some(keys) = &receipt.key {
            self.tombstones.record(&self.account, keys);
        }
        self.settle(receipt);
    }

    /// Wait until the tombstones acknowledged so far are durable.
    pub(crate) async fn flush(&self) {
        self.tombstones.flush().await;
    }

    /// Count `receipt` as done for its batch (no tombstone: undecodable or duplicate), and
    /// commit the cursor of every batch finished from the oldest on.
    fn settle(&self, receipt: Receipt) {
        let Ok(mut l) = self.ledger.lock() else {
            return;
        };
        if let Some(k) = &receipt.key {
            for key in flight_keys(k) {
                l.in_flight.remove(key);
            }
        }
        if let Some(b) = l.batches.iter_mut().find(|b| b.id == receipt.batch) {
            b.open = b.open.saturating_sub(1);
        }
        let mut commit = None;
        let had_batches = !l.batches.is_empty();
        while l.batches.front().is_some_and(|b| b.open == 0) {
            if let Some(b) = l.batches.pop_front() {
                l.open_messages = l.open_messages.saturating_sub(b.size);
                if b.cursor.is_some() {
                    commit = b.cursor;
                }
            }
        }
        // Queued under the ledger's lock, so cursors are persisted in order (and after the
        // tombstones queued before them).
        if let Some(c) = commit
            && l.committed.as_ref() != Some(&c)
        {
            self.tombstones.writer.cursor(c.clone());
            self.tombstones.unflushed.store(true, Ordering::SeqCst);
            l.committed = Some(c);
        }
        if had_batches && l.batches.is_empty() {
            self.drained.notify_waiters();
        }
    }

    /// True while polling ahead could lose messages on a crash: batches are not committed and
    /// no cursor was ever persisted, so a restart could not ask for them again (a poll with
    /// `""` resumes after what the server saw confirmed).
    fn must_not_poll_ahead(&self) -> bool {
        self.ledger.lock().is_ok_and(|l| {
            !l.batches.is_empty() && l.committed.as_ref().is_none_or(|c| c.is_empty())
        })
    }
}

/// The keys a message is known by while it is in flight: its strong keys, else its content key.
fn flight_keys(k: &MessageKeys) -> impl Iterator<Item = &String> {
    let content = k.strong.is_empty().then_some(&k.content);
    k.strong.iter().chain(content)
}

/// An account's dedupe tombstones on their way to the store: recorded in memory at once and
/// appended to the store by the account's progress writer task (in order, with the cursor), compacted
/// now and then.
struct Tombstones {
    writer: crate::journal::TombstoneWriter,
    /// Entries appended since the last compaction.
    appended: AtomicUsize,
    /// Entries were queued since the last flush.
    unflushed: AtomicBool,
}

impl Tombstones {
    /// Remember a handled message and queue its tombstones for the writer. Queued under the
    /// dedupe lock, so concurrent acknowledgers queue appends and snapshots in order.
    fn record(&self, account: &Account, keys: &MessageKeys) {
        let Ok(mut d) = account.inner.dedupe.lock() else {
            return;
        };
        let entries = d.record(keys, now_ms());
        if entries.is_empty() {
            return;
        }
        let appended = self.appended.fetch_add(entries.len(), Ordering::SeqCst) + entries.len();
        self.writer.append(entries);
        // Compact when the journal holds about twice what is kept.
        if appended > d.len().max(COMPACT_MIN) {
            self.appended.store(0, Ordering::SeqCst);
            self.writer.compact(d.entries());
        }
        self.unflushed.store(true, Ordering::SeqCst);
    }

    /// Queue a compaction to exactly the entries held, if anything was appended since the
    /// last one.
    fn compact(&self, account: &Account) {
        let Ok(d) = account.inner.dedupe.lock() else {
            return;
        };
        if self.appended.swap(0, Ordering::SeqCst) > 0 {
            self.writer.compact(d.entries());
            self.unflushed.store(true, Ordering::SeqCst);
        }
    }

    /// Wait until the queued tombstones are durable (the progress writer does the I/O).
    async fn flush(&self) {
        if self.unflushed.swap(false, Ordering::SeqCst) {
            self.writer.flush().await;
        }
    }
}

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
    acker: Acker,
    stop: tokio::sync::watch::Sender<bool>,
}

impl fmt::Debug for Updates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Updates").finish_non_exhaustive()
    }
}

impl Updates {
    pub(crate) async fn new(account: Account, lease: LeaseMode) -> Result<Self, Error> {
        let cursor = account
            .shared()
            .store
            .load_cursor(account.id())
            .await?
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
        // One consumer per account across processes too: the account's lease.
        let hold = match take_lease(&account, lease).await {
            Ok(h) => h,
            Err(e) => {
                account.inner.polling.store(false, Ordering::SeqCst);
                return Err(e);
            }
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let ledger = Arc::new(Mutex::new(Ledger {
            committed: Some(cursor.clone()),
            ..Ledger::default()
        }));
        let tombstones = Arc::new(Tombstones {
            writer: crate::journal::TombstoneWriter::start(account.clone()),
            appended: AtomicUsize::new(0),
            unflushed: AtomicBool::new(false),
        });
        let acker = Acker {
            account: account.clone(),
            ledger: ledger.clone(),
            drained: Arc::new(tokio::sync::Notify::new()),
            tombstones,
            lease_lost: Arc::new(AtomicBool::new(false)),
        };
        Ok(Self {
            stop: stop_tx,
            acker: acker.clone(),
            state: Some(Poller {
                lease: hold,
                lost: account.lease_lost_watch(),
                stop: stop_rx,
                lease_lost: false,
                shutdown: account.shutdown_watch(),
                account,
                cursor,
                acker,
                ledger,
                pending: VecDeque::new(),
                handled: None,
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

    /// Marks the message last yielded as handled, now: its dedupe tombstone is queued for the
    /// account's progress writer (a task of its own, writing through the async store) and, if
    /// it was the last message of its batch, the batch's cursor is queued after it.
    /// The tombstone is durable before the stream yields anything else, or when
    /// [`flush`](Self::flush) returns. Without `ack` the same happens when the next update is
    /// asked for. Call it as soon as the message's side effects are done. Does nothing if there
    /// is nothing to acknowledge.
    pub fn ack(&mut self) {
        if let Some(poller) = self.state.as_mut() {
            poller.ack();
        }
    }

    /// Waits until every tombstone queued by [`ack`](Self::ack) (and every cursor committed)
    /// is durable. A crash after this returns does not deliver the acknowledged messages
    /// again.
    pub async fn flush(&mut self) {
        self.acker.tombstones.flush().await;
    }

    /// Ends this stream like [`Account::shutdown`] does, without shutting the account down:
    /// after the message being handled, what was handled is committed, notifystop is sent
    /// and the lease (if the stream took it) is released.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// True when the stream ended because this process lost the account's lease (another
    /// holder took the account over, or the lease could not be renewed in time): the stream
    /// wrote nothing more and sent no notifystop after that.
    pub fn lease_lost(&self) -> bool {
        self.acker.lease_lost.load(Ordering::SeqCst)
    }

    /// The next update with its receipt, which the caller settles through
    /// [`acker`](Self::acker) when the message is handled, in any order and from any task.
    /// Messages yielded this way are not acknowledged by asking for the next update.
    pub(crate) async fn next_deferred(&mut self) -> Option<(Update, Option<Receipt>)> {
        std::future::poll_fn(|cx| self.poll_inner(cx)).await
    }

    /// Settles the receipts of [`next_deferred`](Self::next_deferred).
    pub(crate) fn acker(&self) -> Acker {
        self.acker.clone()
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<(Update, Option<Receipt>)>> {
        let this = self;
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

impl Stream for Updates {
    type Item = Update;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Update>> {
        match self.poll_inner(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some((u, receipt))) => {
                // Acknowledged by `ack` or, at the latest, when the next update is asked for.
                if let Some(p) = self.state.as_mut() {
                    p.handled = receipt;
                }
                Poll::Ready(Some(u))
            }
        }
    }
}

struct Poller {
    /// The account's lease while this stream serves it.
    lease: Option<crate::lease::LeaseHold>,
    /// Set when the lease is lost ([`Account::signal_lease_lost`]).
    lost: tokio::sync::watch::Receiver<bool>,
    /// Set by [`Updates::stop`]: this stream ends like on a shutdown of the account.
    stop: tokio::sync::watch::Receiver<bool>,
    /// The stream ended because the lease was lost.
    lease_lost: bool,
    account: Account,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// The cursor of the next poll (the last batch received; committed separately).
    cursor: Secret,
    acker: Acker,
    ledger: Arc<Mutex<Ledger>>,
    /// Updates not yet yielded: the update, its dedupe key and its batch.
    pending: VecDeque<(Update, Option<MessageKeys>, u64)>,
    /// The receipt of the message last yielded by the stream, settled by `ack`.
    handled: Option<Receipt>,
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
    /// Persist the tombstone of the message last yielded and, once its batch (and every batch
    /// before it) is settled, the batch's cursor.
    fn ack(&mut self) {
        if let Some(r) = self.handled.take() {
            self.acker.ack(r);
        }
    }

    fn is_duplicate(&self, keys: &MessageKeys) -> bool {
        self.account
            .inner
            .dedupe
            .lock()
            .map(|d| d.is_copy(keys, now_ms()))
            .unwrap_or(false)
            || self
                .ledger
                .lock()
                .map(|l| flight_keys(keys).any(|k| l.in_flight.contains(k)))
                .unwrap_or(false)
    }

    async fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        // A clean stop leaves a compacted journal: exactly the entries still held.
        self.acker.tombstones.compact(&self.account);
        self.acker.tombstones.flush().await;
        if self.started
            && let Err(e) = self.account.notify_stop().await
        {
            tracing::debug!(error = %e, "notifystop failed");
        }
        if let Some(hold) = self.lease.as_mut() {
            hold.end().await;
        }
    }

    fn is_lease_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// The lease is lost: end at once, writing nothing more and sending no notifystop (the
    /// new holder serves the account now).
    async fn lose_lease(&mut self) {
        self.finished = true;
        self.lease_lost = true;
        self.acker.lease_lost.store(true, Ordering::SeqCst);
        tracing::warn!(account = %self.account.id(),
            "this process lost the account's lease; it stops serving the account");
        if let Some(hold) = self.lease.as_mut() {
            hold.lost();
        }
    }

    fn is_shutdown(&self) -> bool {
        *self.shutdown.borrow() || *self.stop.borrow()
    }

    /// Sleep unless shut down first; returns false on shutdown.
    async fn sleep(&mut self, d: std::time::Duration) -> bool {
        let halt = self.halted();
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = halt => false,
        }
    }

    /// Completes when the stream must stop: a shutdown of the account, a stop of this stream
    /// ([`Updates::stop`]), or the loss of the lease.
    fn halted(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (mut a, mut b, mut c) = (self.shutdown.clone(), self.stop.clone(), self.lost.clone());
        async move {
            tokio::select! {
                _ = a.wait_for(|s| *s) => {}
                _ = b.wait_for(|s| *s) => {}
                _ = c.wait_for(|s| *s) => {}
            }
        }
    }

    async fn take_batch(&mut self, resp: ilink_proto::GetUpdatesResponse) {
        let account_id = self.account.id().to_owned();
        let count = resp.message_count();
        let (batch, uncommitted) = match self.ledger.lock() {
            Ok(mut l) => {
                l.next_id += 1;
                (l.next_id, l.open_messages)
            }
            Err(_) => (0, 0),
        };
        if count > 0 {
            // Never forget a key that can still come again: this batch's, the batches not
            // committed yet, and the last committed one (a lost response or a restart replays
            // it), whatever the capacity.
            if let Ok(mut d) = self.account.inner.dedupe.lock() {
                d.set_floor(
                    count
                        .saturating_add(uncommitted)
                        .saturating_add(self.last_batch_len),
                );
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
                        && let Err(e) = self.account.set_context_token(from, tok.clone()).await
                    {
                        tracing::warn!(error = %e, "could not persist a context token");
                    }
                    let keys = message_keys(&msg);
                    if let Some(from) = msg.from_user_id.as_deref().filter(|f| !f.is_empty()) {
                        // The user wrote: a new reply window (crate::outbox).
                        self.account.note_inbound(from, keys.primary()).await;
                    }
                    self.pending.push_back((
                        Update::Message(InboundMessage {
                            account_id: account_id.clone(),
                            key: keys.primary().to_owned(),
                            msg: Box::new(msg),
                        }),
                        Some(keys),
                        batch,
                    ));
                }
                Err(e) => {
                    tracing::warn!(account = %account_id, error = %e, "undecodable message");
                    self.pending.push_back((
                        Update::Undecodable(UndecodableMessage { error: Arc::new(e) }),
                        None,
                        batch,
                    ));
                }
            }
        }
        let size = self.pending.iter().filter(|p| p.2 == batch).count();
        if let Some(c) = &next_cursor {
            // The next poll continues after this batch; the cursor is persisted only once the
            // whole batch is handled (a restart before that receives it again).
            self.cursor = c.clone();
        }
        if next_cursor.is_none() && size == 0 {
            return;
        }
        if let Ok(mut l) = self.ledger.lock() {
            l.open_messages = l.open_messages.saturating_add(size);
            l.batches.push_back(LedgerBatch {
                id: batch,
                cursor: next_cursor,
                open: size + 1,
                size,
            });
        }
        // The extra count is the batch's own: settled now that every message is queued (an
        // empty batch is committed here).
        self.acker.settle(Receipt { key: None, batch });
    }

    async fn poll_once(&mut self) -> Option<Result<ilink_proto::GetUpdatesResponse, Error>> {
        let halt = self.halted();
        let account = self.account.clone();
        let cursor = self.cursor.clone();
        tokio::select! {
            r = account.get_updates(&cursor) => Some(r),
            _ = halt => None,
        }
    }

    async fn next(&mut self) -> Option<(Update, Option<Receipt>)> {
        loop {
            self.ack();
            // The tombstones of what was handled are durable before anything new is yielded.
            self.acker.tombstones.flush().await;
            if self.finished {
                return None;
            }
            if self.is_lease_lost() {
                self.lose_lease().await;
                return None;
            }
            if self.is_shutdown() {
                // Stop between messages. A partly handled batch keeps its old cursor: the rest
                // comes again on the next start.
                self.finish().await;
                return None;
            }
            if let Some((update, key, batch)) = self.pending.pop_front() {
                let Some(k) = key else {
                    // Not a message (undecodable): nothing to hand back, done when yielded.
                    self.acker.settle(Receipt { key: None, batch });
                    return Some((update, None));
                };
                if self.is_duplicate(&k) {
                    tracing::debug!(key = %k.primary(), "duplicate message skipped");
                    self.acker.settle(Receipt { key: None, batch });
                    continue;
                }
                if let Ok(mut l) = self.ledger.lock() {
                    l.in_flight.extend(flight_keys(&k).cloned());
                }
                return Some((
                    update,
                    Some(Receipt {
                        key: Some(k),
                        batch,
                    }),
                ));
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
                    return Some((u, None));
                }
                continue;
            }
            if self.acker.must_not_poll_ahead() {
                // Wait until the batches in hand are handled (or a shutdown), then re-check.
                let drained = self.acker.drained.clone();
                let notified = drained.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.acker.must_not_poll_ahead() {
                    let halt = self.halted();
                    tokio::select! {
                        _ = notified => {}
                        _ = halt => {}
                    }
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
                    self.take_batch(resp).await;
                    if restored && self.announced {
                        self.announced = false;
                        return Some((Update::SessionRestored, None));
                    }
                }
                Err(e) if e.kind() == ErrorKind::SessionExpired => {
                    if let Some(u) = self.on_stale().await {
                        return Some((u, None));
                    }
                }
                Err(e) => {
                    let error = PollError::new(e);
                    self.failures += 1;
                    let consecutive = self.failures;
                    let delays = &self.account.shared().config.delays;
                    let delay = if self.failures >= delays.max_consecutive_failures {
                        self.failures = 0;
                        delays.backoff
                    } else {
                        delays.retry
                    };
                    if error.is_unreadable_body() && consecutive >= delays.max_consecutive_failures
                    {
                        tracing::error!(account = %self.account.id(), cause = %error.cause(),
                            consecutive, "getupdates keeps answering with a body that cannot be read; \
                            no message can be received until the server sends a readable one");
                    } else {
                        tracing::warn!(account = %self.account.id(), cause = %error.cause(),
                            delay_ms = delay.as_millis() as u64, "getupdates failed; retrying");
                    }
                    self.sleep_due = Some(delay);
                    return Some((
                        Update::PollFailed {
                            error,
                            consecutive,
                            retry_in: delay,
                        },
                        None,
                    ));
                }
            }
        }
    }

    /// The `-14` recovery ladder: notifystart and a probe first; then tell the application;
    /// then (next call) a re-login if a presenter is configured, else a slow probe.
    async fn on_stale(&mut self) -> Option<Update> {
        let first = !self.account.is_session_expired();
        // A newer login of this account may have been saved meanwhile (by `ilink login` in
        // another process, say): use it before declaring the session expired.
        if self.account.reload_credentials().await {
            return None;
        }
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
                    self.take_batch(resp).await;
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
            let halt = self.halted();
            let login = tokio::select! {
                r = client.login(presenter.as_ref()) => r,
                _ = halt => return None,
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
        let halt = self.halted();
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stale.wait_for(|s| !*s) => {}
            _ = halt => {}
        }
        None
    }
}

impl Account {
    /// The stream of updates of this account. Only one stream per account can be active.
    pub async fn updates(&self) -> Result<Updates, Error> {
        Updates::new(self.clone(), LeaseMode::Acquire).await
    }

    /// The update stream of this account served under `lease`, which the caller already holds
    /// (from [`StateStore::acquire_lease`](crate::StateStore::acquire_lease) for this account):
    /// see [`Account::run_with_lease`]. The stream renews the lease but does not release it.
    pub async fn updates_with_lease(&self, lease: crate::store::Lease) -> Result<Updates, Error> {
        Updates::new(self.clone(), LeaseMode::Held(lease)).await
    }
}

/// How an update stream gets the account's lease.
pub(crate) enum LeaseMode {
    /// Take it (holder [`ClientConfig::holder_id`](crate::ClientConfig::holder_id), ttl
    /// [`ClientConfig::lease_ttl`](crate::ClientConfig::lease_ttl)), and release it at the end.
    Acquire,
    /// Use this one, held by the caller (not released at the end).
    Held(crate::store::Lease),
}

/// Takes (or adopts) the account's lease and starts renewing it.
async fn take_lease(
    account: &Account,
    mode: LeaseMode,
) -> Result<Option<crate::lease::LeaseHold>, Error> {
    let cfg = &account.shared().config;
    let ttl = cfg.lease_ttl.max(std::time::Duration::from_millis(30));
    let store = &account.shared().store;
    let (lease, owned, ttl) = match mode {
        LeaseMode::Held(lease) => {
            if lease.account() != account.id() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "a lease of account {} cannot serve account {}",
                        lease.account(),
                        account.id()
                    ),
                ));
            }
            let ttl = lease.ttl().max(std::time::Duration::from_millis(30));
            (lease, false, ttl)
        }
        LeaseMode::Acquire => match store
            .acquire_lease(account.id(), &cfg.holder_id, ttl)
            .await?
        {
            Some(l) => (l, true, ttl),
            None => {
                let holder = store
                    .leases()
                    .await
                    .ok()
                    .and_then(|all| all.into_iter().find(|l| l.account == account.id()))
                    .map(|l| l.holder);
                let who = match holder {
                    Some(h) => format!("holder {h}"),
                    None => "another holder".to_owned(),
                };
                return Err(Error::new(
                    ErrorKind::AccountBusy,
                    format!(
                        "account {} is already being consumed by {who}",
                        account.id()
                    ),
                ));
            }
        },
    };
    tracing::debug!(account = %account.id(), token = lease.token(), "serving the account under its lease");
    Ok(Some(crate::lease::LeaseHold::start(
        account, lease, ttl, owned,
    )))
}

/// Compact the journal when more than this many entries (and more than are held) were
/// appended since the last compaction.
const COMPACT_MIN: usize = 512;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
