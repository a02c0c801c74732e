//! The handler API on top of the update stream: `account.run(handler)`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use ilink_proto::{MessageItem, Secret};

use crate::account::{Account, new_run_id};
use crate::error::Result;
use crate::login::BoxFuture;
use crate::send::{SendError, SendOutcome};
use crate::updates::{Acker, InboundMessage, Receipt, Update};
use tokio::task::JoinSet;

/// The context of one inbound message given to a handler: the message, its account, and
/// replies that carry the message's `context_token` (and the turn's `run_id`) automatically.
#[derive(Clone)]
pub struct MessageContext {
    account: Account,
    message: InboundMessage,
    run_id: String,
    /// Text replies made so far in this turn (shared by clones): the reply number of the
    /// turn journal.
    replies: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// Item replies made so far in this turn (shared by clones).
    items: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl fmt::Debug for MessageContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageContext")
            .field("account", &self.account.id())
            .field("message", &self.message)
            .field("run_id", &self.run_id)
            .finish()
    }
}

impl MessageContext {
    /// A context for `message` received by `account` (for use with [`Account::updates`]).
    pub fn new(account: Account, message: InboundMessage) -> Self {
        Self {
            account,
            message,
            run_id: new_run_id(),
            replies: Default::default(),
            items: Default::default(),
        }
    }

    /// The message.
    pub fn message(&self) -> &InboundMessage {
        &self.message
    }

    /// The body text, if the message has one (see [`InboundMessage::text`]).
    pub fn text(&self) -> Option<&str> {
        self.message.text()
    }

    /// What the message carries (see [`InboundMessage::content`]).
    pub fn content(&self) -> Option<crate::Content<'_>> {
        self.message.content()
    }

    /// The sender.
    pub fn from(&self) -> &str {
        self.message.from()
    }

    /// The account that received the message.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// The `run_id` of this turn (sent on replies for compat versions 2.4.4+).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn token(&self) -> Option<Secret> {
        self.message.context_token().cloned()
    }

    /// Reply with text to the sender (filtered, chunked and sent through the reply budget
    /// and queue like [`Account::send_text`]).
    ///
    /// Replies are journaled by (message, reply number): if this message is delivered again
    /// (the bot crashed before it was marked handled), the k-th reply is not sent a second
    /// time; its recorded outcomes are returned instead (and what of it is still queued is
    /// sent).
    ///
    /// The `client_id`s of a reply are made from (account, the message's dedupe key, reply
    /// number, chunk number), not drawn at random: when the journal entry was lost with a
    /// crash (or another process took the account over before it was committed) the message
    /// is handled again and the reply goes out again, under the same `client_id`s. ilink-sim
    /// keeps only the first message of a `client_id`; whether the live server does is not
    /// known ([sim assumption], docs/protocol.md §9), so against it such a reply may show twice.
    pub async fn reply(&self, text: &str) -> Result<Vec<SendOutcome>, SendError> {
        let k = self
            .replies
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let r = self
            .account
            .send_text_queued(
                self.from(),
                text,
                self.token(),
                Some(&self.run_id),
                Some((self.message.dedupe_key(), k, self.message.create_time_ms())),
            )
            .await;
        crate::metrics::replied(r)
    }

    /// Reply with one prepared item (for example media uploaded with `ilink-cdn`).
    ///
    /// Its `client_id` is the same every time this message is handled (the n-th item reply of
    /// the turn), so that a process that handles the message again after a crash or a
    /// takeover sends it under the same id (see [`MessageContext::reply`]).
    pub async fn reply_item(&self, item: MessageItem) -> Result<SendOutcome, SendError> {
        let n = self.items.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let cfg = &self.account.shared().config;
        // Item replies are numbered apart from text replies (from 2^31 on).
        let client_id = crate::util::turn_client_id(
            &cfg.client_id_prefix,
            self.account.id(),
            self.message.dedupe_key(),
            n | 0x8000_0000,
            0,
            self.message.create_time_ms(),
        );
        let r = async {
            let outcome = self
                .account
                .send_item_with_id(
                    self.from(),
                    item,
                    self.token(),
                    Some(&self.run_id),
                    client_id,
                )
                .await?;
            self.account.note_sent(self.from(), &outcome).await;
            Ok(outcome)
        }
        .await;
        crate::metrics::replied(r)
    }
}

/// What a handler may return: `()` or a `Result` whose error is logged.
pub trait HandlerOutput: Send {
    /// Log a failure, if this is one.
    fn log(self, account: &str);
}

impl HandlerOutput for () {
    fn log(self, _account: &str) {}
}

impl<E: fmt::Display + Send> HandlerOutput for std::result::Result<(), E> {
    fn log(self, account: &str) {
        if let Err(e) = self {
            tracing::warn!(account, error = %e, "message handler failed");
        }
    }
}

/// Handles updates for [`Account::run`]. Any `Fn(MessageContext) -> impl Future` closure is a
/// handler; implement the trait to also see other updates.
pub trait Handler: Send + Sync + 'static {
    /// Handle one message. The same user's next message is handled after this returns;
    /// other users' messages may be handled meanwhile (see [`Account::run`]).
    fn on_message(&self, ctx: MessageContext) -> BoxFuture<'_, ()>;

    /// See an update that is not a message ([`Update::SessionExpired`],
    /// [`Update::Undecodable`]…). The default logs nothing more than the runtime does.
    fn on_update(&self, update: &Update) {
        let _ = update;
    }
}

impl<F, Fut> Handler for F
where
    F: Fn(MessageContext) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput,
{
    fn on_message(&self, ctx: MessageContext) -> BoxFuture<'_, ()> {
        let account = ctx.account.id().to_owned();
        let fut = self(ctx);
        Box::pin(async move { fut.await.log(&account) })
    }
}

/// Messages taken from the stream but not yet started, per account, at most: the stream is
/// not read further until some start.
const MAX_QUEUED: usize = 1024;

impl crate::Client {
    /// Run `handler` on every stored account, each with its own loop (see [`Account::run`]),
    /// until [`Client::shutdown`](crate::Client::shutdown). Returns when every loop has ended;
    /// the first error (for example an account that already has a stream) is returned after
    /// that.
    pub async fn run<H: Handler>(&self, handler: H) -> Result<()> {
        let handler = Arc::new(handler);
        let mut tasks = Vec::new();
        for account in self.accounts().await? {
            let h = handler.clone();
            tasks.push(tokio::spawn(async move {
                let updates = account.updates().await?;
                account.run_shared(updates, h, std::future::pending()).await
            }));
        }
        let mut first_err = None;
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(
                        crate::Error::new(crate::ErrorKind::Internal, "an account loop panicked")
                            .with_source(e),
                    );
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// The messages of one account waiting for their handler: a lane per user, at most one
/// handler per user at a time, at most `limit` at once.
struct Lanes {
    waiting: HashMap<String, VecDeque<(InboundMessage, Receipt)>>,
    /// Users with waiting messages and no running handler, in arrival order.
    ready: VecDeque<String>,
    busy: HashSet<String>,
    queued: usize,
}

impl Lanes {
    fn push(&mut self, msg: InboundMessage, receipt: Receipt) {
        let user = msg.from().to_owned();
        let lane = self.waiting.entry(user.clone()).or_default();
        lane.push_back((msg, receipt));
        self.queued += 1;
        if lane.len() == 1 && !self.busy.contains(&user) {
            self.ready.push_back(user);
        }
    }

    /// The next message to start, from the user who has waited longest.
    fn pop_ready(&mut self) -> Option<(String, InboundMessage, Receipt)> {
        while let Some(user) = self.ready.pop_front() {
            let Some(lane) = self.waiting.get_mut(&user) else {
                continue;
            };
            let Some((msg, receipt)) = lane.pop_front() else {
                self.waiting.remove(&user);
                continue;
            };
            if lane.is_empty() {
                self.waiting.remove(&user);
            }
            self.queued = self.queued.saturating_sub(1);
            self.busy.insert(user.clone());
            return Some((user, msg, receipt));
        }
        None
    }

    fn done(&mut self, user: &str) {
        self.busy.remove(user);
        if self.waiting.get(user).is_some_and(|l| !l.is_empty()) {
            self.ready.push_back(user.to_owned());
        }
    }
}

impl Account {
    /// Run `handler` on every inbound message until [`Account::shutdown`] (or
    /// [`Client::shutdown`](crate::Client::shutdown)).
    ///
    /// Messages of different users are handled concurrently, up to
    /// [`ClientConfig::handler_concurrency`](crate::ClientConfig::handler_concurrency) at
    /// once (teloxide's dispatcher does the same per chat); the messages of one user are
    /// handled one after another, in the order received. While a handler runs, a typing
    /// indicator is shown to its user (if enabled) and refreshed, and cancelled when it
    /// returns.
    ///
    /// A message counts as handled as soon as its handler returns (or panics: the panic is
    /// logged and the message is not delivered again): its dedupe tombstone is written then,
    /// before the typing indicator is cancelled, and a batch's cursor is persisted once every
    /// message of it (and of the batches before it) is handled. A crash after that write does
    /// not deliver the message again; a crash while the handler runs (or before the write is
    /// done) does: at least once.
    ///
    /// On shutdown no further message is started; the handlers running finish, their progress
    /// is committed and notifystop is sent; then `run` returns. Messages received but not
    /// started come again on the next start.
    ///
    /// The run serves the account under its lease
    /// ([`StateStore::acquire_lease`](crate::StateStore::acquire_lease), holder
    /// [`ClientConfig::holder_id`](crate::ClientConfig::holder_id), ttl
    /// [`ClientConfig::lease_ttl`](crate::ClientConfig::lease_ttl)), renewed every third of
    /// the ttl and released at the end; every write of progress carries its fence. It fails
    /// with [`ErrorKind::AccountBusy`](crate::ErrorKind::AccountBusy) when another holder's
    /// lease is live, and returns an [`ErrorKind::LeaseLost`](crate::ErrorKind::LeaseLost)
    /// error when the lease is lost while it runs (another holder took it over, or it could
    /// not be renewed in time): it then stops at once and sends nothing more.
    pub async fn run<H: Handler>(&self, handler: H) -> Result<()> {
        let updates = self.updates().await?;
        self.run_shared(updates, Arc::new(handler), std::future::pending())
            .await
    }

    /// Serve this account with a lease the caller already holds (a fleet runtime): like
    /// [`Account::run`], but under `lease` (from
    /// [`StateStore::acquire_lease`](crate::StateStore::acquire_lease) for this account,
    /// else [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)), until `stop`
    /// completes or the account shuts down. When `stop` completes, no further message is
    /// started, the handlers running finish, progress is committed and notifystop is sent.
    ///
    /// The run renews the lease every third of its ttl
    /// ([`Lease::ttl`](crate::store::Lease::ttl), the ttl it was acquired with), sends
    /// nothing once it may have expired without a renewal, and fences every write with it,
    /// but does **not** release it: the caller decides (release it, or hand it to the next
    /// run). Returns an [`ErrorKind::LeaseLost`](crate::ErrorKind::LeaseLost) error when the
    /// lease is lost (a renewal says so, or a write is refused), at once, without committing
    /// more or sending notifystop.
    pub async fn run_with_lease<H: Handler>(
        &self,
        lease: crate::store::Lease,
        handler: H,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> Result<()> {
        let updates = self.updates_with_lease(lease).await?;
        self.run_shared(updates, Arc::new(handler), stop).await
    }

    async fn run_shared<H: Handler>(
        &self,
        mut updates: crate::Updates,
        handler: Arc<H>,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> Result<()> {
        tokio::pin!(stop);
        let mut stop_seen = false;
        let acker = updates.acker();
        let cfg = &self.shared().config;
        let limit = cfg.handler_concurrency.max(1);
        let typing = cfg.typing;
        let mut shutdown = self.shutdown_watch();
        let mut lanes = Lanes {
            waiting: HashMap::new(),
            ready: VecDeque::new(),
            busy: HashSet::new(),
            queued: 0,
        };
        let mut running: JoinSet<String> = JoinSet::new();
        let mut stopping = false;
        loop {
            while !stopping && running.len() < limit {
                let Some((user, msg, receipt)) = lanes.pop_ready() else {
                    break;
                };
                running.spawn(handle_one(
                    self.clone(),
                    handler.clone(),
                    acker.clone(),
                    typing,
                    user,
                    msg,
                    receipt,
                ));
            }
            if stopping && running.is_empty() {
                // Let the stream commit what was handled and send notifystop.
                while updates.next_deferred().await.is_some() {}
                if updates.lease_lost() {
                    return Err(crate::store::lease_lost(self.id(), "serving the account"));
                }
                return Ok(());
            }
            tokio::select! {
                biased;
                Some(done) = running.join_next(), if !running.is_empty() => match done {
                    Ok(user) => lanes.done(&user),
                    // Only a cancelled task ends without a user; nothing to release.
                    Err(e) => tracing::error!(account = %self.id(), error = %e, "a handler task failed"),
                },
                _ = shutdown.wait_for(|s| *s), if !stopping => stopping = true,
                () = &mut stop, if !stop_seen => {
                    stop_seen = true;
                    stopping = true;
                    updates.stop();
                }
                next = updates.next_deferred(), if !stopping && lanes.queued < MAX_QUEUED => {
                    match next {
                        None => stopping = true,
                        Some((Update::Message(msg), Some(receipt))) => lanes.push(msg, receipt),
                        Some((other, receipt)) => {
                            handler.on_update(&other);
                            if let Some(r) = receipt {
                                acker.ack(r);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A handler task that is cancelled when `run` is (dropping a `JoinHandle` detaches it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    async fn join(mut self) -> std::result::Result<(), tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Handle one message: the user's queued replies, typing indicator, the handler (in a task of its own, so a panic is
/// contained), the acknowledgement, then the typing cancel. Returns the user.
async fn handle_one<H: Handler>(
    account: Account,
    handler: Arc<H>,
    acker: Acker,
    typing: bool,
    user: String,
    msg: InboundMessage,
    receipt: Receipt,
) -> String {
    let ctx = MessageContext::new(account.clone(), msg);
    // The user's queued messages go first, within their new reply window; then the handler
    // sees the message (crate::outbox).
    account.begin_turn(&ctx).await;
    let guard = if typing {
        Some(account.start_typing(&user, ctx.token()).await)
    } else {
        None
    };
    let started = std::time::Instant::now();
    let task = AbortOnDrop(tokio::spawn(async move { handler.on_message(ctx).await }));
    let joined = task.join().await;
    crate::metrics::handler_duration(started.elapsed());
    if let Err(e) = joined {
        tracing::error!(account = %account.id(), error = %e,
            "a message handler panicked; the message counts as handled");
    }
    // Handled: persist the tombstone before anything else, so a crash while the typing
    // indicator is cancelled does not deliver the message again.
    acker.ack(receipt);
    // The progress writer syncs it (grouped with other users' tombstones); wait for that.
    acker.flush().await;
    if let Some(g) = guard {
        g.stop().await;
    }
    user
}
