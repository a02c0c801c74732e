//! Many processes serving one store's accounts between them: a fleet.
//!
//! Every process that runs a [`Fleet`] on the same [`StateStore`](crate::StateStore) (for
//! example one PostgreSQL database) is a **member**: it sends a heartbeat
//! ([`StateStore::join_fleet`](crate::StateStore::join_fleet)) every
//! [`FleetConfig::rebalance_interval`], and each time it
//!
//! 1. counts the store's accounts and the live members, and computes its **fair share**,
//!    `ceil(accounts / members)` (at most [`FleetConfig::max_accounts`]);
//! 2. stops serving, and releases the lease of, the accounts it holds above that share (a
//!    member that joins thereby gets its share from the others), and those no longer in the
//!    store;
//! 3. takes the lease ([`StateStore::acquire_lease`](crate::StateStore::acquire_lease)) of
//!    free accounts, and of accounts whose lease expired (their process died or stalled), up to
//!    its share, and serves each with [`Account::run_with_lease`]. New accounts are noticed on
//!    the next round.
//!
//! Which member takes which free account is spread deterministically: every member ranks the
//! accounts by rendezvous hashing of (account, member) and tries its best-ranked ones first, so
//! members rarely race for the same account (the store settles a race: one gets the lease).
//!
//! Each served account renews its own lease (every third of
//! [`ClientConfig::lease_ttl`](crate::ClientConfig::lease_ttl)) and fences every write with it.
//! When the lease is lost (another member took the account over after this process stalled, or
//! it could not be renewed before it expired) the account stops at once and sends nothing
//! more; the fleet counts it and may take the account again later.
//!
//! A member that takes an account over continues from the last committed cursor: messages the
//! previous holder had handled but not yet committed are delivered again, the dedupe tombstones
//! it did commit keep handled messages from being handled twice, and the replies of a message
//! handled twice go out under the same `client_id`s (see [`MessageContext::reply`]).
//!
//! # Metrics
//!
//! Through the `metrics` facade: `ilink_lease_changes_total{change=acquired|released|lost}`
//! (a counter, counted here; `renewed` is counted by every leased account run, fleet or not,
//! on each successful renewal) and `ilink_accounts_served` (a gauge: the accounts this member
//! serves now, hand-overs in progress not included).
//!
//! [`MessageContext::reply`]: crate::MessageContext::reply

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::account::Account;
use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::handler::{Handler, MessageContext};
use crate::login::BoxFuture;
use crate::store::Lease;
use crate::updates::Update;

/// How a [`Fleet`] behaves. The lease ttl and this process's member id are the client's
/// ([`ClientConfig::lease_ttl`](crate::ClientConfig::lease_ttl),
/// [`ClientConfig::holder_id`](crate::ClientConfig::holder_id)); each served account renews
/// its lease every third of the ttl.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetConfig {
    /// How often the member sends its heartbeat, recounts the accounts and members and takes
    /// or gives up leases. Default 2 s; at least 10 ms, and less than the lease ttl.
    pub rebalance_interval: Duration,
    /// How long a member counts as alive after its last heartbeat. Default (`None`): the
    /// lease ttl. At least 1.5 times the rebalance interval.
    pub member_ttl: Option<Duration>,
    /// At most this many accounts in this process, whatever its share. Default: no cap.
    pub max_accounts: Option<usize>,
    /// After an account's run ended with an error other than a lost lease (for example an
    /// expired session), the account is not taken again by this member for this long.
    /// Default 30 s.
    pub retry_after: Duration,
    /// How long an account that is handed over (above the share, or at shutdown) may take to
    /// finish the handlers running and commit, before its run is cancelled and the lease
    /// released anyway. Default 10 s.
    pub handover_timeout: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            rebalance_interval: Duration::from_secs(2),
            member_ttl: None,
            max_accounts: None,
            retry_after: Duration::from_secs(30),
            handover_timeout: Duration::from_secs(10),
        }
    }
}

impl FleetConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set [`FleetConfig::rebalance_interval`].
    #[must_use]
    pub fn with_rebalance_interval(mut self, every: Duration) -> Self {
        self.rebalance_interval = every;
        self
    }

    /// Set [`FleetConfig::member_ttl`].
    #[must_use]
    pub fn with_member_ttl(mut self, ttl: Duration) -> Self {
        self.member_ttl = Some(ttl);
        self
    }

    /// Set [`FleetConfig::max_accounts`].
    #[must_use]
    pub fn with_max_accounts(mut self, max: usize) -> Self {
        self.max_accounts = Some(max);
        self
    }

    /// Set [`FleetConfig::retry_after`].
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Set [`FleetConfig::handover_timeout`].
    #[must_use]
    pub fn with_handover_timeout(mut self, timeout: Duration) -> Self {
        self.handover_timeout = timeout;
        self
    }

    /// Checks the settings against the client's lease ttl.
    fn validate(&self, lease_ttl: Duration) -> Result<()> {
        let bad = |msg: String| Err(Error::new(ErrorKind::InvalidInput, msg));
        if lease_ttl < Duration::from_millis(100) {
            return bad(format!(
                "the lease ttl is {} ms; a fleet needs at least 100 ms",
                lease_ttl.as_millis()
            ));
        }
        if self.rebalance_interval < Duration::from_millis(10)
            || self.rebalance_interval >= lease_ttl
        {
            return bad(format!(
                "the rebalance interval is {} ms; it must be at least 10 ms and less than the lease ttl ({} ms)",
                self.rebalance_interval.as_millis(),
                lease_ttl.as_millis()
            ));
        }
        if self.effective_member_ttl(lease_ttl) < self.rebalance_interval.saturating_mul(3) / 2 {
            return bad(format!(
                "the member ttl is {} ms; it must be at least 1.5 times the rebalance interval ({} ms)",
                self.effective_member_ttl(lease_ttl).as_millis(),
                self.rebalance_interval.as_millis()
            ));
        }
        if self.max_accounts == Some(0) {
            return bad("max_accounts is 0: the member would serve nothing".to_owned());
        }
        Ok(())
    }

    fn effective_member_ttl(&self, lease_ttl: Duration) -> Duration {
        self.member_ttl.unwrap_or(lease_ttl)
    }
}

/// How many leases a member asks for at once.
const ACQUIRE_AT_ONCE: usize = 8;

/// What happened to a lease, the `change` label of `ilink_lease_changes_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeaseChange {
    Acquired,
    Released,
    Lost,
}

impl LeaseChange {
    fn label(self) -> &'static str {
        match self {
            Self::Acquired => crate::metrics::CHANGE_ACQUIRED,
            Self::Released => crate::metrics::CHANGE_RELEASED,
            Self::Lost => crate::metrics::CHANGE_LOST,
        }
    }
}

fn count(change: LeaseChange) {
    metrics::counter!(crate::metrics::LEASE_CHANGES, crate::metrics::LABEL_CHANGE => change.label())
        .increment(1);
}

/// An account this member serves now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedAccount {
    /// The account (`…@im.bot`).
    pub account: String,
    /// The fencing token of the lease it is served under.
    pub token: u64,
    /// When this member took it (this machine's clock).
    pub since: SystemTime,
}

/// A run of one account, as the fleet tracks it.
struct Run {
    lease: Lease,
    /// Asks the run to stop (hand over); `None` once asked.
    stop: Option<oneshot::Sender<()>>,
    /// When a hand-over was asked: the run is cancelled if it takes longer than the timeout.
    stopping_since: Option<Instant>,
    abort: tokio::task::AbortHandle,
}

/// The shared state of a fleet: what it serves, for [`Fleet::served`].
struct Inner {
    client: Client,
    config: FleetConfig,
    member: String,
    lease_ttl: Duration,
    shutdown: watch::Sender<bool>,
    served: Mutex<BTreeMap<String, ServedAccount>>,
    running: std::sync::atomic::AtomicBool,
}

/// One member of a fleet of processes that serve a shared store's accounts between them (see
/// the [module documentation](self)). Cheap to clone; clones share everything.
///
/// ```no_run
/// # async fn demo(client: ilink_client::Client) -> ilink_client::Result<()> {
/// use ilink_client::fleet::{Fleet, FleetConfig};
/// let fleet = Fleet::new(client, FleetConfig::new())?;
/// fleet.run(|ctx: ilink_client::MessageContext| async move {
///     if let Some(text) = ctx.text() {
///         let _ = ctx.reply(text).await;
///     }
/// })
/// .await
/// # }
/// ```
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("member", &self.inner.member)
            .field("lease_ttl", &self.inner.lease_ttl)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A handler shared by every account run of a fleet.
struct SharedHandler<H>(Arc<H>);

impl<H: Handler> Handler for SharedHandler<H> {
    fn on_message(&self, ctx: MessageContext) -> BoxFuture<'_, ()> {
        self.0.on_message(ctx)
    }
    fn on_update(&self, update: &Update) {
        self.0.on_update(update);
    }
}

/// A task that is cancelled when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> std::result::Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How an account's run ended.
type RunEnd = (String, u64, std::result::Result<Result<()>, String>);

impl Fleet {
    /// A member for `client`'s store, with the client's holder id as member id and its lease
    /// ttl. Fails with [`ErrorKind::InvalidInput`] when the settings do not fit together (a
    /// rebalance interval not below the lease ttl, a member ttl below 1.5 intervals, an empty
    /// holder id).
    pub fn new(client: Client, config: FleetConfig) -> Result<Self> {
        let member = client.config().holder_id.clone();
        let lease_ttl = client.config().lease_ttl;
        if member.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "the client's holder id (the fleet member id) is empty",
            ));
        }
        config.validate(lease_ttl)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                config,
                member,
                lease_ttl,
                shutdown: watch::channel(false).0,
                served: Mutex::new(BTreeMap::new()),
                running: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// This member's id (the client's holder id).
    pub fn member(&self) -> &str {
        &self.inner.member
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The accounts this member serves now, by account id.
    pub fn served(&self) -> Vec<ServedAccount> {
        self.inner
            .served
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Ask [`Fleet::run`] to stop: every account finishes the handlers running, commits and
    /// releases its lease (within [`FleetConfig::handover_timeout`]), the member leaves the
    /// fleet, then `run` returns.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Serve this member's share of the store's accounts with `handler` until
    /// [`Fleet::shutdown`]. Store errors while rebalancing are logged and retried on the next
    /// round (the accounts served go on, each under its own lease). Fails with
    /// [`ErrorKind::InvalidInput`] if this fleet (or a clone) is already running.
    pub async fn run<H: Handler>(&self, handler: H) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.inner.running.swap(true, Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "this fleet is already running",
            ));
        }
        let mut state = RunState {
            fleet: self.clone(),
            handler: Arc::new(handler),
            runs: HashMap::new(),
            tasks: JoinSet::new(),
            retry: HashMap::new(),
        };
        let result = state.run().await;
        self.inner.running.store(false, Ordering::SeqCst);
        result
    }
}

/// The state of [`Fleet::run`].
struct RunState<H> {
    fleet: Fleet,
    handler: Arc<H>,
    runs: HashMap<String, Run>,
    tasks: JoinSet<RunEnd>,
    /// Accounts not to take again before the instant (their run failed).
    retry: HashMap<String, Instant>,
}

impl<H: Handler> RunState<H> {
    fn inner(&self) -> &Inner {
        &self.fleet.inner
    }

    async fn run(&mut self) -> Result<()> {
        let mut shutdown = self.inner().shutdown.subscribe();
        let mut tick = tokio::time::interval(self.inner().config.rebalance_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(member = %self.inner().member, lease_ttl_ms = self.inner().lease_ttl.as_millis() as u64,
            "joining the fleet");
        loop {
            tokio::select! {
                biased;
                () = async {
                    // The guard it returns is not Send: drop it at once.
                    let _ = shutdown.wait_for(|s| *s).await;
                } => break,
                Some(end) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    self.on_end(end).await;
                }
                _ = tick.tick() => self.rebalance().await,
            }
        }
        self.stop_all().await;
        Ok(())
    }

    /// A run ended: note why, give the lease up unless it was lost.
    async fn on_end(&mut self, end: std::result::Result<RunEnd, tokio::task::JoinError>) {
        let (account, token, outcome) = match end {
            Ok(e) => e,
            // Cancelled runs are accounted for where they were cancelled.
            Err(e) if e.is_cancelled() => return,
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "an account run failed to join");
                return;
            }
        };
        let Some(run) = self
            .runs
            .remove(&account)
            .filter(|r| r.lease.token() == token)
        else {
            return;
        };
        self.forget(&account);
        // This process no longer holds the account's queue: its depth gauge here goes to 0, so
        // that a sum over the fleet's processes counts each queue once.
        crate::metrics::forget_account(&account);
        let handed_over = run.stopping_since.is_some();
        match outcome {
            Ok(Err(e)) if e.is_lease_lost() => {
                count(LeaseChange::Lost);
                tracing::warn!(account = %account, token, error = %crate::error::chain(&e),
                    "lost the account's lease; stopped serving it");
                return;
            }
            Ok(Ok(())) if handed_over => {}
            Ok(Ok(())) => {
                tracing::warn!(account = %account, "the account's run ended on its own; giving it up for now");
                self.backoff(&account);
            }
            Ok(Err(e)) => {
                tracing::warn!(account = %account, error = %crate::error::chain(&e),
                    retry_after_ms = self.inner().config.retry_after.as_millis() as u64,
                    "the account's run failed; giving it up for now");
                self.backoff(&account);
            }
            Err(panic) => {
                tracing::error!(account = %account, error = %panic,
                    "the account's run panicked; giving it up for now");
                self.backoff(&account);
            }
        }
        self.release(&run.lease).await;
    }

    fn backoff(&mut self, account: &str) {
        let until = Instant::now() + self.inner().config.retry_after;
        self.retry.insert(account.to_owned(), until);
    }

    async fn release(&self, lease: &Lease) {
        match self.inner().client.store().release_lease(lease).await {
            Ok(()) => {
                count(LeaseChange::Released);
                tracing::info!(account = %lease.account(), token = lease.token(), "released the account's lease");
            }
            Err(e) => {
                tracing::warn!(account = %lease.account(), error = %crate::error::chain(&e),
                    "could not release the account's lease; it expires on its own");
            }
        }
    }

    fn forget(&self, account: &str) {
        if let Ok(mut s) = self.inner().served.lock() {
            s.remove(account);
        }
        self.gauge();
    }

    fn gauge(&self) {
        let active = self
            .runs
            .values()
            .filter(|r| r.stopping_since.is_none())
            .count();
        metrics::gauge!(crate::metrics::ACCOUNTS_SERVED).set(active as f64);
    }

    /// Ask a run to hand its account over (finish, commit; the lease is released when it
    /// ends).
    fn hand_over(&mut self, account: &str) {
        if let Some(run) = self.runs.get_mut(account)
            && let Some(stop) = run.stop.take()
        {
            let _ = stop.send(());
            run.stopping_since = Some(Instant::now());
            tracing::info!(account, "handing the account over");
        }
        if let Ok(mut s) = self.inner().served.lock() {
            s.remove(account);
        }
        self.gauge();
    }

    /// Cancel runs whose hand-over takes too long, then release their leases.
    async fn cancel_overdue(&mut self) {
        let timeout = self.inner().config.handover_timeout;
        let overdue: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, r)| r.stopping_since.is_some_and(|t| t.elapsed() >= timeout))
            .map(|(a, _)| a.clone())
            .collect();
        for account in overdue {
            if let Some(run) = self.runs.remove(&account) {
                run.abort.abort();
                tracing::warn!(account = %account, timeout_ms = timeout.as_millis() as u64,
                    "the account did not finish within the hand-over timeout; cancelled it");
                self.release(&run.lease).await;
            }
        }
    }

    /// One round: heartbeat, share, give up the surplus, take up to the share.
    async fn rebalance(&mut self) {
        self.cancel_overdue().await;
        let now = Instant::now();
        self.retry.retain(|_, until| *until > now);
        let inner = self.fleet.inner.clone();
        let store = inner.client.store().clone();
        let member_ttl = inner.config.effective_member_ttl(inner.lease_ttl);
        let members = match store.join_fleet(&inner.member, member_ttl).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "fleet heartbeat failed; retrying next round");
                return;
            }
        };
        let accounts = match store.accounts().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "could not list the store's accounts; retrying next round");
                return;
            }
        };
        let me = inner.member.clone();
        let mut members = members;
        if !members.contains(&me) {
            members.push(me.clone());
        }
        let share = plan::fair_share(accounts.len(), members.len())
            .min(inner.config.max_accounts.unwrap_or(usize::MAX));
        // Accounts gone from the store (logged out) stop.
        let known: HashSet<&String> = accounts.iter().collect();
        let gone: Vec<String> = self
            .runs
            .iter()
            .filter(|(a, r)| r.stopping_since.is_none() && !known.contains(a))
            .map(|(a, _)| a.clone())
            .collect();
        for a in gone {
            self.hand_over(&a);
        }
        let active: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, r)| r.stopping_since.is_none())
            .map(|(a, _)| a.clone())
            .collect();
        if active.len() > share {
            let order = plan::release_order(&active, &me, &members);
            let surplus = active.len() - share;
            for a in order.into_iter().take(surplus) {
                self.hand_over(&a);
            }
            return;
        }
        if active.len() == share {
            return;
        }
        let leases = match store.leases().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "could not list the leases; retrying next round");
                return;
            }
        };
        let busy: HashSet<&str> = self
            .runs
            .keys()
            .map(String::as_str)
            .chain(self.retry.keys().map(String::as_str))
            .collect();
        let candidates = plan::candidates(&accounts, &leases, &members, SystemTime::now(), &busy);
        let order = plan::acquire_order(&candidates, &me, &members);
        let mut have = active.len();
        let (mut tried, before) = (0usize, have);
        let mut order = order.into_iter();
        // A few acquisitions at a time (never more than are still needed, so the share is
        // never exceeded): a takeover of many accounts is not one round trip after another.
        while have < share && !*self.inner().shutdown.borrow() {
            let batch: Vec<String> = order
                .by_ref()
                .take((share - have).min(ACQUIRE_AT_ONCE))
                .collect();
            if batch.is_empty() {
                break;
            }
            tried += batch.len();
            let t = Instant::now();
            let results = futures_util::future::join_all(
                batch
                    .iter()
                    .map(|a| store.acquire_lease(a, &me, inner.lease_ttl)),
            )
            .await;
            let mut failed = false;
            for (account, result) in batch.iter().zip(results) {
                match result {
                    Ok(Some(lease)) => {
                        count(LeaseChange::Acquired);
                        tracing::info!(account = %account, token = lease.token(),
                            acquire_ms = t.elapsed().as_millis() as u64, "took the account's lease");
                        self.start(lease);
                        have += 1;
                    }
                    Ok(None) => {
                        tracing::trace!(account = %account, "the lease is held by another member");
                    }
                    Err(e) => {
                        tracing::warn!(account = %account, error = %crate::error::chain(&e),
                            "could not take the account's lease; retrying next round");
                        failed = true;
                    }
                }
            }
            if failed {
                break;
            }
        }
        tracing::debug!(
            members = members.len(),
            accounts = accounts.len(),
            share,
            candidates = candidates.len(),
            tried,
            taken = have - before,
            elapsed_ms = now.elapsed().as_millis() as u64,
            "fleet round"
        );
        self.gauge();
    }

    /// Serve an account under `lease`: its run opens it (loads its state) and serves it in a
    /// task of its own, so that a slow store does not hold up the round.
    fn start(&mut self, lease: Lease) {
        let account_id = lease.account().to_owned();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let handler = SharedHandler(self.handler.clone());
        let token = lease.token();
        let run_lease = lease.clone();
        let id = account_id.clone();
        let client = self.inner().client.clone();
        let abort = self.tasks.spawn(async move {
            let stop = async move {
                let _ = stop_rx.await;
            };
            let open_id = id.clone();
            // A task of its own, so that a panic is contained and reported with the account;
            // cancelled with this one.
            let run = AbortOnDrop(tokio::spawn(async move {
                let account: Account = client.account(&open_id).await?;
                account.run_with_lease(run_lease, handler, stop).await
            }));
            let outcome = run.join().await.map_err(|e| e.to_string());
            (id, token, outcome)
        });
        let since = SystemTime::now();
        if let Ok(mut s) = self.inner().served.lock() {
            s.insert(
                account_id.clone(),
                ServedAccount {
                    account: account_id.clone(),
                    token,
                    since,
                },
            );
        }
        self.runs.insert(
            account_id,
            Run {
                lease,
                stop: Some(stop_tx),
                stopping_since: None,
                abort,
            },
        );
        self.gauge();
    }

    /// Shutdown: hand every account over, wait for the runs (up to the hand-over timeout),
    /// release the leases, leave the fleet.
    async fn stop_all(&mut self) {
        let accounts: Vec<String> = self.runs.keys().cloned().collect();
        for a in &accounts {
            self.hand_over(a);
        }
        let deadline = Instant::now() + self.inner().config.handover_timeout;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(end)) => self.on_end(end).await,
                Ok(None) => break,
                Err(_) => break,
            }
        }
        let left: Vec<String> = self.runs.keys().cloned().collect();
        for a in left {
            if let Some(run) = self.runs.remove(&a) {
                run.abort.abort();
                self.release(&run.lease).await;
            }
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        if let Ok(mut s) = self.inner().served.lock() {
            s.clear();
        }
        metrics::gauge!(crate::metrics::ACCOUNTS_SERVED).set(0.0);
        let inner = self.inner();
        if let Err(e) = inner.client.store().leave_fleet(&inner.member).await {
            tracing::warn!(error = %crate::error::chain(&e), "could not leave the fleet; the membership expires on its own");
        }
        tracing::info!(member = %inner.member, "left the fleet");
    }
}

/// The pure part: shares, rendezvous ranking, candidates. No I/O.
pub(crate) mod plan {
    use std::collections::HashSet;
    use std::time::SystemTime;

    use crate::store::LeaseInfo;

    /// `ceil(accounts / members)`; all of them with no member.
    pub(crate) fn fair_share(accounts: usize, members: usize) -> usize {
        if members == 0 {
            return accounts;
        }
        accounts.div_ceil(members)
    }

    /// The rendezvous weight of (account, member): stable across processes and platforms.
    pub(crate) fn weight(account: &str, member: &str) -> u64 {
        let h = crate::util::fnv1a(&[b"ilink-fleet", account.as_bytes(), member.as_bytes()]);
        // A finaliser (splitmix64's) so that near names spread well.
        let mut z = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// How many members rank above `me` for `account` (0: `me` is its preferred member).
    pub(crate) fn rank(account: &str, me: &str, members: &[String]) -> usize {
        let mine = (weight(account, me), me);
        members
            .iter()
            .filter(|m| m.as_str() != me)
            .filter(|m| (weight(account, m), m.as_str()) > mine)
            .count()
    }

    /// The order in which `me` tries to take `candidates`: those it ranks best for first.
    pub(crate) fn acquire_order(
        candidates: &[String],
        me: &str,
        members: &[String],
    ) -> Vec<String> {
        let mut v: Vec<(usize, std::cmp::Reverse<u64>, &String)> = candidates
            .iter()
            .map(|a| (rank(a, me, members), std::cmp::Reverse(weight(a, me)), a))
            .collect();
        v.sort();
        v.into_iter().map(|(_, _, a)| a.clone()).collect()
    }

    /// The order in which `me` gives up accounts it holds: those it ranks worst for first.
    pub(crate) fn release_order(held: &[String], me: &str, members: &[String]) -> Vec<String> {
        let mut v = acquire_order(held, me, members);
        v.reverse();
        v
    }

    /// The accounts worth trying to take: not `busy` (served here, or waiting to be retried),
    /// and with no lease, an expired one (by `now`; the store decides), or one held by a
    /// holder that is not a live member.
    pub(crate) fn candidates(
        accounts: &[String],
        leases: &[LeaseInfo],
        members: &[String],
        now: SystemTime,
        busy: &HashSet<&str>,
    ) -> Vec<String> {
        let live: HashSet<&str> = members.iter().map(String::as_str).collect();
        let by_account: std::collections::HashMap<&str, &LeaseInfo> =
            leases.iter().map(|l| (l.account.as_str(), l)).collect();
        accounts
            .iter()
            .filter(|a| !busy.contains(a.as_str()))
            .filter(|a| match by_account.get(a.as_str()) {
                None => true,
                Some(l) => l.expires <= now || !live.contains(l.holder.as_str()),
            })
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::plan::*;
    use super::*;
    use crate::store::LeaseInfo;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn fair_share_is_the_ceiling() {
        assert_eq!(fair_share(300, 3), 100);
        assert_eq!(fair_share(301, 3), 101);
        assert_eq!(fair_share(2, 3), 1);
        assert_eq!(fair_share(0, 3), 0);
        assert_eq!(fair_share(5, 0), 5);
    }

    #[test]
    fn rendezvous_gives_every_account_one_preferred_member_and_spreads_them() {
        let accounts = names("bot", 300);
        let members = names("host:", 3);
        let mut per_member = vec![0usize; 3];
        for a in &accounts {
            let top: Vec<usize> = (0..3)
                .filter(|&i| rank(a, &members[i], &members) == 0)
                .collect();
            assert_eq!(top.len(), 1, "{a}");
            per_member[top[0]] += 1;
        }
        // Roughly even: each gets well over half its fair share.
        assert!(per_member.iter().all(|&n| n > 60), "{per_member:?}");
        assert_eq!(per_member.iter().sum::<usize>(), 300);
    }

    #[test]
    fn a_member_tries_its_own_accounts_first_and_gives_up_the_others_first() {
        let accounts = names("bot", 50);
        let members = names("m", 2);
        let order = acquire_order(&accounts, "m0", &members);
        let firsts: Vec<usize> = order.iter().map(|a| rank(a, "m0", &members)).collect();
        let mut sorted = firsts.clone();
        sorted.sort();
        assert_eq!(firsts, sorted);
        let rel = release_order(&accounts, "m0", &members);
        assert_eq!(rank(&rel[0], "m0", &members), 1);
        assert_eq!(rank(&rel[49], "m0", &members), 0);
    }

    #[test]
    fn candidates_are_free_expired_or_held_by_the_dead() {
        let now = SystemTime::now();
        let later = now + Duration::from_secs(10);
        let earlier = now - Duration::from_secs(10);
        let lease = |a: &str, h: &str, exp| LeaseInfo {
            account: a.into(),
            holder: h.into(),
            token: 1,
            since: earlier,
            expires: exp,
        };
        let accounts = names("a", 5);
        let leases = vec![
            lease("a0", "alive", later),
            lease("a1", "alive", earlier),
            lease("a2", "dead", later),
            lease("a3", "alive", later),
        ];
        let members = vec!["alive".to_owned(), "me".to_owned()];
        let busy: HashSet<&str> = ["a3"].into_iter().collect();
        let c = candidates(&accounts, &leases, &members, now, &busy);
        assert_eq!(c, vec!["a1", "a2", "a4"]);
    }

    /// Members that follow the plan against an ideal store end up with every account held
    /// once, nobody above their share, as members come and go.
    #[test]
    fn members_following_the_plan_converge() {
        let accounts = names("bot", 100);
        let mut holder: HashMap<String, String> = HashMap::new();
        let round = |members: &[String], holder: &mut HashMap<String, String>| {
            for _ in 0..4 {
                for me in members {
                    let share = fair_share(accounts.len(), members.len());
                    let mine: Vec<String> = accounts
                        .iter()
                        .filter(|a| holder.get(*a) == Some(me))
                        .cloned()
                        .collect();
                    if mine.len() > share {
                        for a in release_order(&mine, me, members)
                            .into_iter()
                            .take(mine.len() - share)
                        {
                            holder.remove(&a);
                        }
                        continue;
                    }
                    let free: Vec<String> = accounts
                        .iter()
                        .filter(|a| holder.get(*a).is_none_or(|h| !members.contains(h)))
                        .cloned()
                        .collect();
                    for a in acquire_order(&free, me, members)
                        .into_iter()
                        .take(share - mine.len())
                    {
                        holder.insert(a, me.clone());
                    }
                }
            }
        };
        let check = |members: &[String], holder: &HashMap<String, String>| {
            let share = fair_share(accounts.len(), members.len());
            for a in &accounts {
                let h = holder.get(a).expect("every account is held");
                assert!(members.contains(h), "{a} held by a dead member");
            }
            for m in members {
                let n = holder.values().filter(|h| *h == m).count();
                assert!(n <= share, "{m} holds {n} > {share}");
            }
        };
        let mut members = vec!["a".to_owned()];
        round(&members, &mut holder);
        check(&members, &holder);
        members.extend(["b".to_owned(), "c".to_owned()]);
        round(&members, &mut holder);
        check(&members, &holder);
        for m in &members {
            assert!(holder.values().filter(|h| *h == m).count() >= 30);
        }
        members.retain(|m| m != "b");
        round(&members, &mut holder);
        check(&members, &holder);
    }

    #[test]
    fn bad_settings_are_refused() {
        let ttl = Duration::from_secs(3);
        assert!(FleetConfig::new().validate(ttl).is_ok());
        let e = FleetConfig::new()
            .with_rebalance_interval(Duration::from_secs(3))
            .validate(ttl)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("rebalance interval"), "{e}");
        assert!(
            FleetConfig::new()
                .with_member_ttl(Duration::from_secs(1))
                .validate(ttl)
                .is_err()
        );
        assert!(
            FleetConfig::new()
                .with_max_accounts(0)
                .validate(ttl)
                .is_err()
        );
        assert!(
            FleetConfig::new()
                .validate(Duration::from_millis(50))
                .is_err()
        );
    }
}
