//! The handler API on top of the update stream: `account.run(handler)`.

use std::fmt;
use std::future::Future;

use ilink_proto::{MessageItem, Secret};

use crate::account::{Account, new_run_id};
use crate::error::Result;
use crate::login::BoxFuture;
use crate::send::{SendError, SendOutcome};
use crate::updates::{InboundMessage, Update};

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
    pub async fn reply(&self, text: &str) -> Result<Vec<SendOutcome>, SendError> {
        let k = self
            .replies
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.account
            .send_text_queued(
                self.from(),
                text,
                self.token(),
                Some(&self.run_id),
                Some((self.message.dedupe_key(), k)),
            )
            .await
    }

    /// Reply with one prepared item (for example media uploaded with `ilink-cdn`).
    pub async fn reply_item(&self, item: MessageItem) -> Result<SendOutcome, SendError> {
        self.account
            .send_item_in_turn(self.from(), item, self.token(), Some(&self.run_id))
            .await
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
    /// Handle one message. The next message is handled after this returns.
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

/// One handler shared by several accounts.
struct SharedHandler<H>(std::sync::Arc<H>);

impl<H: Handler> Handler for SharedHandler<H> {
    fn on_message(&self, ctx: MessageContext) -> BoxFuture<'_, ()> {
        self.0.on_message(ctx)
    }
    fn on_update(&self, update: &Update) {
        self.0.on_update(update);
    }
}

impl crate::Client {
    /// Run `handler` on every stored account, each with its own loop, until
    /// [`Client::shutdown`](crate::Client::shutdown). Returns when every loop has ended; the
    /// first error (for example an account that already has a stream) is returned after that.
    pub async fn run<H: Handler>(&self, handler: H) -> Result<()> {
        let handler = std::sync::Arc::new(handler);
        let mut tasks = Vec::new();
        for account in self.accounts()? {
            let h = SharedHandler(handler.clone());
            tasks.push(tokio::spawn(async move { account.run(h).await }));
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

impl Account {
    /// Run `handler` on every inbound message until [`Account::shutdown`] (or
    /// [`Client::shutdown`](crate::Client::shutdown)). Messages are handled one at a time, in
    /// order; while a handler runs, a typing indicator is shown (if enabled) and refreshed,
    /// and cancelled when it returns. A message counts as handled as soon as its handler
    /// returns: its dedupe tombstone is written then ([`Updates::ack`](crate::Updates::ack)),
    /// before the typing indicator is cancelled. A crash after that write does not deliver it
    /// again; a crash while the handler runs (or before the write is done) does: at least
    /// once. On shutdown the message
    /// being handled finishes, the progress is committed and notifystop is sent; then `run`
    /// returns.
    pub async fn run<H: Handler>(&self, handler: H) -> Result<()> {
        let mut updates = self.updates()?;
        let typing = self.shared().config.typing;
        while let Some(update) = updates.next().await {
            match update {
                Update::Message(msg) => {
                    let ctx = MessageContext::new(self.clone(), msg);
                    // The user's queued messages go first, then the handler sees the message.
                    self.begin_turn(&ctx).await;
                    let guard = if typing {
                        Some(self.start_typing(ctx.from(), ctx.token()).await)
                    } else {
                        None
                    };
                    handler.on_message(ctx).await;
                    // Handled: persist the tombstone before anything else, so a crash while
                    // the typing indicator is cancelled does not deliver the message again.
                    updates.ack();
                    if let Some(g) = guard {
                        g.stop().await;
                    }
                }
                other => handler.on_update(&other),
            }
        }
        Ok(())
    }
}
