//! A leased run's hold on its account: the lease, its renewal in the background, and the
//! local deadline after which nothing is sent until a renewal succeeds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::account::Account;
use crate::error::Result;
use crate::store::{Fence, Lease, StateStore, lease_lost};

/// `t + d`, or a century after `t` if that overflows.
fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(t)
}

/// The lease a run holds, shared by the run, its renewal task and the account's sends.
pub(crate) struct LeaseKeeper {
    store: Arc<dyn StateStore>,
    lease: Lease,
    ttl: Duration,
    /// Until when the lease is certainly ours: the start of the last successful renewal (or
    /// of the acquisition) plus the ttl, on this process's monotonic clock.
    deadline: Mutex<Instant>,
    lost: AtomicBool,
    /// One renewal at a time.
    renewing: tokio::sync::Mutex<()>,
}

impl LeaseKeeper {
    /// Keeps `lease` (granted at `lease.acquired()` or later) for `ttl` per renewal.
    pub(crate) fn new(store: Arc<dyn StateStore>, lease: Lease, ttl: Duration) -> Arc<Self> {
        let deadline = after(lease.acquired(), ttl);
        Arc::new(Self {
            store,
            lease,
            ttl,
            deadline: Mutex::new(deadline),
            lost: AtomicBool::new(false),
            renewing: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn lease(&self) -> &Lease {
        &self.lease
    }

    pub(crate) fn fence(&self) -> Fence {
        self.lease.fence()
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    pub(crate) fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    fn deadline(&self) -> Instant {
        self.deadline
            .lock()
            .map(|d| *d)
            .unwrap_or_else(|_| Instant::now())
    }

    /// One renewal. True while the lease is ours. A store error is not a loss until the
    /// deadline has passed (the store may be back before that).
    pub(crate) async fn renew(&self) -> bool {
        if self.is_lost() {
            return false;
        }
        let start = Instant::now();
        match self.store.renew_lease(&self.lease, self.ttl).await {
            Ok(true) => {
                if let Ok(mut d) = self.deadline.lock() {
                    *d = (*d).max(after(start, self.ttl));
                }
                metrics::counter!(
                    crate::metrics::LEASE_CHANGES,
                    crate::metrics::LABEL_CHANGE => crate::metrics::CHANGE_RENEWED
                )
                .increment(1);
                true
            }
            Ok(false) => {
                tracing::warn!(account = %self.lease.account(), token = self.lease.token(),
                    "the account's lease was taken over by another holder");
                self.mark_lost();
                false
            }
            Err(e) => {
                if Instant::now() >= self.deadline() {
                    tracing::warn!(account = %self.lease.account(), error = %crate::error::chain(&e),
                        "the account's lease could not be renewed before it expired");
                    self.mark_lost();
                } else {
                    tracing::warn!(account = %self.lease.account(), error = %crate::error::chain(&e),
                        "renewing the account's lease failed; retrying");
                }
                false
            }
        }
    }

    /// Ok while the lease is certainly ours: before the deadline, or after a renewal made
    /// now. Called before every sendmessage of a leased run.
    pub(crate) async fn ensure_live(&self) -> Result<()> {
        let refused = || lease_lost(self.lease.account(), "sending");
        if self.is_lost() {
            return Err(refused());
        }
        if Instant::now() < self.deadline() {
            return Ok(());
        }
        let _one = self.renewing.lock().await;
        if Instant::now() < self.deadline() {
            return Ok(());
        }
        if self.renew().await && Instant::now() < self.deadline() {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

/// A run's hold on the lease: renews it every third of its ttl in a task, fences the
/// account's writes while it lives, and signals the account when the lease is lost.
pub(crate) struct LeaseHold {
    keeper: Arc<LeaseKeeper>,
    account: Account,
    renewer: tokio::task::JoinHandle<()>,
    /// Release the lease when the hold ends (a lease the run acquired itself).
    owned: bool,
    released: bool,
}

impl LeaseHold {
    /// Serve `account` under `lease` (renewed every `ttl / 3`). `owned`: release it at the end.
    pub(crate) fn start(account: &Account, lease: Lease, ttl: Duration, owned: bool) -> Self {
        let keeper = LeaseKeeper::new(account.shared().store.clone(), lease, ttl);
        account.set_lease(Some(keeper.clone()));
        let every = (ttl / 3).max(Duration::from_millis(10));
        let (k, acct) = (keeper.clone(), account.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let _one = k.renewing.lock().await;
                k.renew().await;
                if k.is_lost() {
                    acct.signal_lease_lost();
                    return;
                }
            }
        });
        Self {
            keeper,
            account: account.clone(),
            renewer,
            owned,
            released: false,
        }
    }

    /// The lease is lost: stop renewing, and leave the lost keeper on the account, so that
    /// its sends and fenced writes stay refused until a new lease serves it.
    pub(crate) fn lost(&mut self) {
        self.keeper.mark_lost();
        self.renewer.abort();
        self.released = true;
    }

    /// Stop renewing and fencing; give the lease up if the run acquired it.
    pub(crate) async fn end(&mut self) {
        self.renewer.abort();
        self.account.clear_lease(&self.keeper);
        if self.owned && !self.released && !self.keeper.is_lost() {
            self.released = true;
            if let Err(e) = self.keeper.store.release_lease(self.keeper.lease()).await {
                tracing::warn!(account = %self.account.id(), error = %crate::error::chain(&e), "could not release the lease");
            }
        }
    }
}

impl Drop for LeaseHold {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.keeper.is_lost() {
            return;
        }
        self.account.clear_lease(&self.keeper);
        if self.owned && !self.released && !self.keeper.is_lost() {
            // Dropped without `end` (a stream dropped mid-way): release now if the store can
            // without waiting (the file and memory stores can), else in the background.
            let (store, lease) = (self.keeper.store.clone(), self.keeper.lease().clone());
            let now = futures_util::FutureExt::now_or_never(store.release_lease(&lease));
            if now.is_none()
                && let Ok(rt) = tokio::runtime::Handle::try_current()
            {
                rt.spawn(async move {
                    let _ = store.release_lease(&lease).await;
                });
            }
        }
    }
}
