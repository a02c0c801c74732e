//! A memory store with faults a test switches on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ilink_client::store::{Fence, Lease, LeaseInfo};
use ilink_client::{Credentials, ErrorKind, FileStore, MemoryStore, Result, Secret, StateStore};

/// A [`MemoryStore`] whose faults a test switches on (all off by default); every other call is
/// the memory store's.
#[derive(Debug, Default)]
pub struct FaultyStore {
    pub inner: MemoryStore,
    /// `save_credentials` fails with a store error (a disk that filled up after the check).
    pub refuse_credentials: AtomicBool,
    /// `renew_lease` fails with a store error (the database is unreachable).
    pub renewals_down: AtomicBool,
}

#[async_trait::async_trait]
impl StateStore for FaultyStore {
    async fn accounts(&self) -> Result<Vec<String>> {
        self.inner.accounts().await
    }
    async fn load_credentials(&self, account: &str) -> Result<Option<Credentials>> {
        self.inner.load_credentials(account).await
    }
    async fn save_credentials(&self, creds: &Credentials) -> Result<()> {
        if self.refuse_credentials.load(Ordering::SeqCst) {
            // Borrow a store error: a FileStore under a regular file.
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("f");
            std::fs::write(&file, b"x").unwrap();
            return FileStore::new(file.join("x")).save_credentials(creds).await;
        }
        self.inner.save_credentials(creds).await
    }
    async fn remove_account(&self, account: &str) -> Result<()> {
        self.inner.remove_account(account).await
    }
    async fn load_cursor(&self, account: &str) -> Result<Option<Secret>> {
        self.inner.load_cursor(account).await
    }
    async fn save_cursor(
        &self,
        account: &str,
        cursor: &Secret,
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.inner.save_cursor(account, cursor, fence).await
    }
    async fn load_context_tokens(&self, account: &str) -> Result<HashMap<String, Secret>> {
        self.inner.load_context_tokens(account).await
    }
    async fn save_context_tokens(
        &self,
        account: &str,
        tokens: &HashMap<String, Secret>,
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.inner.save_context_tokens(account, tokens, fence).await
    }
    async fn load_tombstones(&self, account: &str) -> Result<Vec<String>> {
        self.inner.load_tombstones(account).await
    }
    async fn save_tombstones(
        &self,
        account: &str,
        keys: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.inner.save_tombstones(account, keys, fence).await
    }
    async fn append_tombstones(
        &self,
        account: &str,
        keys: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.inner.append_tombstones(account, keys, fence).await
    }
    async fn load_outbox(&self, account: &str) -> Result<Vec<String>> {
        self.inner.load_outbox(account).await
    }
    async fn append_outbox(
        &self,
        account: &str,
        record: &str,
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.inner.append_outbox(account, record, fence).await
    }
    async fn replace_outbox(
        &self,
        account: &str,
        records: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.inner.replace_outbox(account, records, fence).await
    }
    async fn acquire_lease(
        &self,
        account: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        self.inner.acquire_lease(account, holder, ttl).await
    }
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        if self.renewals_down.load(Ordering::SeqCst) {
            return Err(ilink_client::Error::new(
                ErrorKind::Store,
                "the database is unreachable",
            ));
        }
        self.inner.renew_lease(lease, ttl).await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.inner.release_lease(lease).await
    }
    async fn leases(&self) -> Result<Vec<LeaseInfo>> {
        self.inner.leases().await
    }
    async fn join_fleet(&self, member: &str, ttl: Duration) -> Result<Vec<String>> {
        self.inner.join_fleet(member, ttl).await
    }
    async fn leave_fleet(&self, member: &str) -> Result<()> {
        self.inner.leave_fleet(member).await
    }
}
