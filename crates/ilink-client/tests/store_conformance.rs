//! The `StateStore` conformance suite against the stores of this crate, and against stores that
//! break one rule each (every check must catch the rule it checks).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ilink_client::store::conformance::{self, Capabilities, Subject};
use ilink_client::store::{Fence, Lease, LeaseInfo};
use ilink_client::{Credentials, FileStore, MemoryStore, Result, Secret, StateStore};

mod memory {
    use super::*;
    ilink_client::store_conformance_tests!(
        || async { Subject::new(MemoryStore::new()) },
        Capabilities::default()
    );
}

mod file {
    use super::*;
    // The file store's lease is an OS lock: no expiry.
    ilink_client::store_conformance_tests!(
        || async {
            let dir = tempfile::tempdir().unwrap();
            Subject::new(FileStore::new(dir.path())).keeping(dir)
        },
        Capabilities::default().without_lease_expiry()
    );
}

#[tokio::test]
async fn run_reports_every_check_of_a_good_store() {
    conformance::run(
        || async { Subject::new(MemoryStore::new()) },
        Capabilities::default(),
    )
    .await
    .unwrap();
    let e = conformance::run_one(
        "no_such_check",
        &Subject::new(MemoryStore::new()),
        Capabilities::default(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no_such_check"), "{e}");
}

/// One rule a broken store ignores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flaw {
    ForgetsCursor,
    MergesTokens,
    AppendReplacesTombstones,
    PrependsOutbox,
    OneAccountForAll,
    RemoveKeepsState,
    TruncatesLargeValues,
    ListsAccountsTwice,
    IgnoresFences,
    RestartsTokens,
    NoExclusivity,
    NeverExpires,
    RenewsAlways,
    ReleaseDoesNothing,
    ListsNoLeases,
    KeepsMembers,
    RacyAppends,
}

/// A memory store with one flaw.
struct Broken {
    inner: MemoryStore,
    flaw: Flaw,
    tokens: AtomicU64,
}

impl Broken {
    fn new(flaw: Flaw) -> Self {
        Self {
            inner: MemoryStore::new(),
            flaw,
            tokens: AtomicU64::new(0),
        }
    }
    fn acct<'a>(&self, account: &'a str) -> &'a str {
        if self.flaw == Flaw::OneAccountForAll {
            "shared"
        } else {
            account
        }
    }
    fn fence<'a>(&self, fence: Option<&'a Fence>) -> Option<&'a Fence> {
        if self.flaw == Flaw::IgnoresFences {
            None
        } else {
            fence
        }
    }
}

#[async_trait::async_trait]
impl StateStore for Broken {
    async fn accounts(&self) -> Result<Vec<String>> {
        let mut a = self.inner.accounts().await?;
        if self.flaw == Flaw::ListsAccountsTwice
            && let Some(last) = a.last().cloned()
        {
            a.push(last);
        }
        Ok(a)
    }
    async fn load_credentials(&self, account: &str) -> Result<Option<Credentials>> {
        self.inner.load_credentials(account).await
    }
    async fn save_credentials(&self, creds: &Credentials) -> Result<()> {
        self.inner.save_credentials(creds).await
    }
    async fn remove_account(&self, account: &str) -> Result<()> {
        if self.flaw == Flaw::RemoveKeepsState {
            return Ok(());
        }
        self.inner.remove_account(self.acct(account)).await?;
        self.inner.remove_account(account).await
    }
    async fn load_cursor(&self, account: &str) -> Result<Option<Secret>> {
        self.inner.load_cursor(self.acct(account)).await
    }
    async fn save_cursor(
        &self,
        account: &str,
        cursor: &Secret,
        fence: Option<&Fence>,
    ) -> Result<()> {
        if self.flaw == Flaw::ForgetsCursor {
            return Ok(());
        }
        let cursor = if self.flaw == Flaw::TruncatesLargeValues {
            Secret::from(cursor.expose().chars().take(1000).collect::<String>())
        } else {
            cursor.clone()
        };
        self.inner
            .save_cursor(self.acct(account), &cursor, self.fence(fence))
            .await
    }
    async fn load_context_tokens(&self, account: &str) -> Result<HashMap<String, Secret>> {
        self.inner.load_context_tokens(self.acct(account)).await
    }
    async fn save_context_tokens(
        &self,
        account: &str,
        tokens: &HashMap<String, Secret>,
        fence: Option<&Fence>,
    ) -> Result<()> {
        let mut all = tokens.clone();
        if self.flaw == Flaw::MergesTokens {
            for (k, v) in self.inner.load_context_tokens(account).await? {
                all.entry(k).or_insert(v);
            }
        }
        self.inner
            .save_context_tokens(self.acct(account), &all, self.fence(fence))
            .await
    }
    async fn load_tombstones(&self, account: &str) -> Result<Vec<String>> {
        self.inner.load_tombstones(self.acct(account)).await
    }
    async fn save_tombstones(
        &self,
        account: &str,
        keys: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.inner
            .save_tombstones(self.acct(account), keys, self.fence(fence))
            .await
    }
    async fn append_tombstones(
        &self,
        account: &str,
        keys: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        match self.flaw {
            Flaw::AppendReplacesTombstones => {
                self.inner.save_tombstones(account, keys, fence).await
            }
            Flaw::RacyAppends => {
                let mut all = self.inner.load_tombstones(account).await?;
                tokio::task::yield_now().await;
                all.extend_from_slice(keys);
                self.inner.save_tombstones(account, &all, fence).await
            }
            _ => {
                self.inner
                    .append_tombstones(self.acct(account), keys, self.fence(fence))
                    .await
            }
        }
    }
    async fn load_outbox(&self, account: &str) -> Result<Vec<String>> {
        self.inner.load_outbox(self.acct(account)).await
    }
    async fn append_outbox(
        &self,
        account: &str,
        record: &str,
        fence: Option<&Fence>,
    ) -> Result<()> {
        if self.flaw == Flaw::PrependsOutbox {
            let mut all = vec![record.to_owned()];
            all.extend(self.inner.load_outbox(account).await?);
            return self.inner.replace_outbox(account, &all, fence).await;
        }
        self.inner
            .append_outbox(self.acct(account), record, self.fence(fence))
            .await
    }
    async fn replace_outbox(
        &self,
        account: &str,
        records: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.inner
            .replace_outbox(self.acct(account), records, self.fence(fence))
            .await
    }
    async fn acquire_lease(
        &self,
        account: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        match self.flaw {
            Flaw::NoExclusivity => {
                let t = self.tokens.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(Some(Lease::new(account, holder, t, ttl)))
            }
            Flaw::RestartsTokens => {
                let got = self.inner.acquire_lease(account, holder, ttl).await?;
                Ok(got.map(|l| Lease::new(account, holder, 1.min(l.token()), ttl)))
            }
            Flaw::NeverExpires => {
                self.inner
                    .acquire_lease(account, holder, ttl.max(Duration::from_secs(3600)))
                    .await
            }
            _ => self.inner.acquire_lease(account, holder, ttl).await,
        }
    }
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        if self.flaw == Flaw::RenewsAlways {
            return Ok(true);
        }
        self.inner.renew_lease(lease, ttl).await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        if self.flaw == Flaw::ReleaseDoesNothing {
            return Ok(());
        }
        self.inner.release_lease(lease).await
    }
    async fn leases(&self) -> Result<Vec<LeaseInfo>> {
        if self.flaw == Flaw::ListsNoLeases {
            return Ok(Vec::new());
        }
        self.inner.leases().await
    }
    async fn join_fleet(&self, member: &str, ttl: Duration) -> Result<Vec<String>> {
        let ttl = if self.flaw == Flaw::KeepsMembers {
            Duration::from_secs(3600)
        } else {
            ttl
        };
        self.inner.join_fleet(member, ttl).await
    }
    async fn leave_fleet(&self, member: &str) -> Result<()> {
        self.inner.leave_fleet(member).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_catches_a_store_that_breaks_its_rule() {
    let cases: &[(Flaw, &str)] = &[
        (Flaw::ForgetsCursor, "cursor_round_trip"),
        (Flaw::MergesTokens, "context_tokens_round_trip"),
        (Flaw::ListsAccountsTwice, "credentials_round_trip"),
        (
            Flaw::AppendReplacesTombstones,
            "tombstones_append_and_load_in_order",
        ),
        (Flaw::PrependsOutbox, "outbox_appends_and_replaces_in_order"),
        (Flaw::OneAccountForAll, "accounts_are_isolated"),
        (Flaw::RemoveKeepsState, "remove_account_forgets_everything"),
        (
            Flaw::TruncatesLargeValues,
            "unicode_and_large_values_round_trip",
        ),
        (Flaw::ListsAccountsTwice, "saves_are_idempotent"),
        (Flaw::IgnoresFences, "fenced_cursor_writes"),
        (Flaw::IgnoresFences, "fenced_tombstone_writes"),
        (Flaw::IgnoresFences, "fenced_context_token_writes"),
        (Flaw::IgnoresFences, "fenced_outbox_writes"),
        (Flaw::RestartsTokens, "lease_tokens_strictly_increase"),
        (Flaw::NoExclusivity, "one_live_holder_per_account"),
        (Flaw::NeverExpires, "an_expired_lease_can_be_taken_over"),
        (Flaw::RenewsAlways, "renew_fails_after_a_takeover"),
        (Flaw::ReleaseDoesNothing, "release_frees_the_lease"),
        (Flaw::ListsNoLeases, "leases_lists_live_leases"),
        (Flaw::KeepsMembers, "fleet_membership"),
        (Flaw::RacyAppends, "concurrent_appends_are_all_kept"),
    ];
    // Every check is covered.
    for name in conformance::CHECKS {
        assert!(
            cases.iter().any(|(_, c)| c == name),
            "no broken store for {name}"
        );
    }
    for (flaw, check) in cases {
        // The flawless store passes the check...
        conformance::run_one(
            check,
            &Subject::new(MemoryStore::new()),
            Capabilities::default(),
        )
        .await
        .unwrap();
        // ...and the flawed one fails it.
        let r = conformance::run_one(
            check,
            &Subject::new(Broken::new(*flaw)),
            Capabilities::default(),
        )
        .await;
        assert!(r.is_err(), "{check} passed a store that is {flaw:?}");
    }
}
