//! Persistent state: credentials, the update cursor, context tokens, dedupe tombstones, the
//! outbox journal, account leases and fleet membership.
//!
//! [`StateStore`] is the async trait every backend implements ([`MemoryStore`], [`FileStore`],
//! `ilink_postgres::PgStore`, or your own); the `conformance` module (feature `conformance`)
//! is the test suite that proves a backend meets the contract below.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ilink_proto::Secret;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;

/// The credentials of one logged-in bot account (what a confirmed QR login returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The bot's id, `ilink_bot_id` (`…@im.bot`); the account id.
    pub account_id: String,
    /// The bearer token, `bot_token`.
    pub token: Secret,
    /// The API base URL, `baseurl`, if the server gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The WeChat user who scanned the QR code, `ilink_user_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// When these credentials were saved, in epoch milliseconds.
    #[serde(default)]
    pub saved_at_ms: u64,
}

/// Proof of holding an account's lease, carried by every write of progress (cursor,
/// tombstones, context tokens, outbox). Get one from [`Lease::fence`].
///
/// A store accepts a write with `Some(fence)` only while `fence.token` is the account's
/// current lease token (the last one granted); see [`StateStore`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Fence {
    /// The account the lease is for (`…@im.bot`).
    pub account: String,
    /// The lease's fencing token.
    pub token: u64,
}

/// A held account lease, from [`StateStore::acquire_lease`]: one holder per account at a
/// time. Renew it with [`StateStore::renew_lease`] well within its ttl, give it up with
/// [`StateStore::release_lease`]; [`Lease::fence`] is the proof to pass to progress writes.
///
/// Cheap to clone; clones share the store's guard (the [`FileStore`] keeps its OS file lock in
/// it, released when the last clone drops or on [`StateStore::release_lease`]).
#[derive(Clone)]
pub struct Lease {
    account: String,
    holder: String,
    token: u64,
    ttl: Duration,
    acquired: Instant,
    guard: Option<Arc<dyn Any + Send + Sync>>,
}

impl Lease {
    /// A lease of `account` held by `holder` with fencing `token` for `ttl`, granted now (for
    /// third-party stores implementing [`StateStore::acquire_lease`]).
    pub fn new(
        account: impl Into<String>,
        holder: impl Into<String>,
        token: u64,
        ttl: Duration,
    ) -> Lease {
        Lease {
            account: account.into(),
            holder: holder.into(),
            token,
            ttl,
            acquired: Instant::now(),
            guard: None,
        }
    }

    /// The same lease holding `guard` (for example an OS lock or a dedicated database
    /// connection) until the last clone of the lease is dropped. The store can reach it again
    /// with [`Lease::guard`].
    #[must_use]
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Lease {
        self.guard = Some(Arc::new(guard));
        self
    }

    /// The account (`…@im.bot`).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Who holds it (for example `host:pid:random`, see `ClientConfig::holder_id`).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fencing token: strictly larger than that of any earlier acquisition of the account.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The ttl it was granted for.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// When it was granted, on this process's monotonic clock.
    pub fn acquired(&self) -> Instant {
        self.acquired
    }

    /// The proof to pass to progress writes.
    pub fn fence(&self) -> Fence {
        Fence {
            account: self.account.clone(),
            token: self.token,
        }
    }

    /// The guard given to [`Lease::with_guard`], if any (downcast it to your type).
    pub fn guard(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.guard.as_deref()
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("account", &self.account)
            .field("holder", &self.holder)
            .field("token", &self.token)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// One lease as [`StateStore::leases`] lists it (for `ilink fleet status`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LeaseInfo {
    /// The account (`…@im.bot`).
    pub account: String,
    /// Who holds (or last held) it.
    pub holder: String,
    /// Its fencing token.
    pub token: u64,
    /// When it was granted, on the store's clock.
    pub since: SystemTime,
    /// When it expires unless renewed, on the store's clock (in the past: no longer live).
    pub expires: SystemTime,
}

/// The error of a fenced write or a lease operation whose lease is no longer the account's
/// current one ([`ErrorKind::LeaseLost`]).
pub fn lease_lost(account: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::LeaseLost,
        format!("{what} refused: this process no longer holds the lease of account {account}"),
    )
}

/// Where a bot keeps its state: an async trait, so `Arc<dyn StateStore>` works and a backend
/// may do network I/O. Every method is keyed by the account id (`…@im.bot`).
///
/// # What a store keeps, per account
///
/// - its [`Credentials`];
/// - the `get_updates_buf` cursor (an opaque [`Secret`]);
/// - the context tokens, one [`Secret`] per peer user id;
/// - the dedupe tombstones: keys of handled inbound messages, an ordered list of strings;
/// - the outbox journal (reply budget, outbound queue and turn journal, see
///   [`crate::outbox`]): an ordered list of opaque one-line records (no `\n`);
/// - its lease (holder, fencing token, expiry); and, store-wide, the fleet members.
///
/// # Rules every store must meet (the `conformance` suite checks them)
///
/// - **Atomic and durable writes**: when a `save_*`, `append_*` or `replace_*` returns `Ok`
///   the data is durable (as far as the backend can tell) and a reader, even after a crash,
///   sees either the old or the new value, never a mix. An interrupted append is wholly
///   present or absent; appends keep their order, including appends from many tasks at once
///   (all are kept).
/// - **Isolation**: accounts never see each other's state. [`remove_account`] forgets
///   everything of one account (credentials, cursor, tokens, tombstones, outbox) except its
///   lease token counter.
/// - **Values**: any string is stored as given (Unicode, megabytes); saving the same value
///   twice is the same as once.
/// - **Fencing**: every write of progress takes `fence: Option<&Fence>`. `None` is an
///   unfenced writer (single-process tools, `ilink send`, login) and is always accepted.
///   `Some(fence)` succeeds only if `fence.token` is the account's **current** lease token
///   (the last one granted, even if it has since expired or been released, as long as no
///   newer one was granted); otherwise the write fails with [`ErrorKind::LeaseLost`]
///   ([`Error::is_lease_lost`]) and **nothing** is written. The check and the write must be
///   one atomic step.
/// - **Leases**: one live holder per account. Each new acquisition (another holder, or after
///   the previous lease expired) gets a token strictly larger than every earlier one of that
///   account, also across restarts (tokens are persisted). Expiry uses the store's clock (a
///   database server's `now()`); [`FileStore`] has no expiry (its lease is an OS lock).
/// - **Errors**: a failure of the backend is an [`Error`] of [`ErrorKind::Store`] saying
///   what failed (`Error::new(ErrorKind::Store, "...").with_source(e)`); a stored value that
///   cannot be read is either an error or, when the store recovers from it (moves it aside),
///   read as missing with a warning. No method panics on bad stored data.
///
/// [`remove_account`]: StateStore::remove_account
#[async_trait::async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// The stored accounts (those with credentials), oldest login first.
    async fn accounts(&self) -> Result<Vec<String>>;
    /// The credentials of an account; `None` if none are stored.
    async fn load_credentials(&self, account: &str) -> Result<Option<Credentials>>;
    /// Store credentials, replacing any for the same account (`creds.account_id`). Unfenced:
    /// a login may replace the credentials while another process serves the account.
    async fn save_credentials(&self, creds: &Credentials) -> Result<()>;
    /// Forget an account and all its state (not its lease token counter, so tokens keep
    /// increasing). Removing an unknown account is `Ok`.
    async fn remove_account(&self, account: &str) -> Result<()>;
    /// The `get_updates_buf` cursor; `None` if none is stored.
    async fn load_cursor(&self, account: &str) -> Result<Option<Secret>>;
    /// Store the cursor (fenced, see the trait's rules).
    async fn save_cursor(
        &self,
        account: &str,
        cursor: &Secret,
        fence: Option<&Fence>,
    ) -> Result<()>;
    /// The latest context token per peer user; empty if none are stored.
    async fn load_context_tokens(&self, account: &str) -> Result<HashMap<String, Secret>>;
    /// Replace the whole map of context tokens (fenced).
    async fn save_context_tokens(
        &self,
        account: &str,
        tokens: &HashMap<String, Secret>,
        fence: Option<&Fence>,
    ) -> Result<()>;
    /// The dedupe tombstones (keys of inbound messages already handled), oldest first.
    async fn load_tombstones(&self, account: &str) -> Result<Vec<String>>;
    /// Replace the stored tombstones with `keys`, in this order (a compaction; fenced).
    async fn save_tombstones(
        &self,
        account: &str,
        keys: &[String],
        fence: Option<&Fence>,
    ) -> Result<()>;
    /// Add `keys` after the stored tombstones, in order (fenced). Called for each handled
    /// message or batch, so it should be cheap: [`FileStore`] appends to a journal.
    async fn append_tombstones(
        &self,
        account: &str,
        keys: &[String],
        fence: Option<&Fence>,
    ) -> Result<()>;
    /// The outbox journal: every record appended and not yet replaced, oldest first. A record
    /// whose append was interrupted by a crash is absent.
    async fn load_outbox(&self, account: &str) -> Result<Vec<String>>;
    /// Append one record (a line without `\n`; a record with one is an
    /// [`ErrorKind::Store`] or [`ErrorKind::InvalidInput`] error) to the outbox journal
    /// (fenced). Durable when it returns; records keep their order.
    async fn append_outbox(&self, account: &str, record: &str, fence: Option<&Fence>)
    -> Result<()>;
    /// Replace the whole outbox journal with `records`, atomically (compaction; fenced).
    async fn replace_outbox(
        &self,
        account: &str,
        records: &[String],
        fence: Option<&Fence>,
    ) -> Result<()>;

    /// Called once when a client opens an account, before its state is loaded: a place to
    /// tidy up after a crash. [`FileStore`] removes the temporary files of atomic writes that a
    /// crash interrupted. The default does nothing.
    async fn open_account(&self, account: &str) -> Result<()> {
        let _ = account;
        Ok(())
    }

    /// Checks, before a login asks for a QR code, that credentials can be saved (for
    /// [`FileStore`]: the directory can be created and written, and there is room for the
    /// files), so a confirmed login is never lost to a store that cannot take it. The default
    /// does nothing.
    async fn check_writable(&self) -> Result<()> {
        Ok(())
    }

    /// Take the account's lease for `holder` for `ttl`, or renew it if `holder` already holds
    /// it (then the token stays the same). `Ok(None)`: another holder's lease is live. Each
    /// *new* acquisition (a different holder, or after expiry or release) gets a strictly
    /// larger `token` than any earlier one for that account.
    async fn acquire_lease(
        &self,
        account: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>>;
    /// Extend a held lease to now + `ttl`. `Ok(false)`: lost (someone else took it: the
    /// account's token changed, or it was released); the caller must stop writing and serving.
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool>;
    /// Give the lease up, so another holder can take it at once (a no-op if already lost).
    async fn release_lease(&self, lease: &Lease) -> Result<()>;
    /// The leases the store knows of: at least every live one (a store may also list ended
    /// ones, with `expires` not after now). For `ilink fleet status`.
    async fn leases(&self) -> Result<Vec<LeaseInfo>>;

    /// Heartbeat of fleet membership: record `member` as alive until now + `ttl`; returns the
    /// live members (including `member`), sorted.
    async fn join_fleet(&self, member: &str, ttl: Duration) -> Result<Vec<String>>;
    /// Remove `member` from the fleet at once (a no-op if unknown).
    async fn leave_fleet(&self, member: &str) -> Result<()>;
}

/// The directory-safe form of an account id: `b0f5860fdecb@im.bot` → `b0f5860fdecb-im-bot`.
pub fn normalize_account_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A write of progress must carry a fence of this account that is the current token.
fn fence_ok(account: &str, fence: Option<&Fence>, current: Option<u64>) -> bool {
    match fence {
        None => true,
        Some(f) => f.account == account && current == Some(f.token),
    }
}

/// Outbox records are lines: one with a `\n` is refused ([`ErrorKind::InvalidInput`]).
fn check_outbox_records<S: AsRef<str>>(records: impl IntoIterator<Item = S>) -> Result<()> {
    if records.into_iter().any(|r| r.as_ref().contains('\n')) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "an outbox record must be one line",
        ));
    }
    Ok(())
}

/// State kept in memory only (for tests and short-lived tools). Leases expire on this
/// process's monotonic clock; fleet members likewise.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemState>,
}

#[derive(Debug, Default)]
struct MemState {
    accounts: BTreeMap<String, MemAccount>,
    /// Accounts with credentials, oldest save first.
    order: Vec<String>,
    /// Leases by account; kept after `remove_account` so tokens keep increasing.
    leases: HashMap<String, MemLease>,
    /// Fleet members and when they expire.
    members: HashMap<String, Instant>,
}

#[derive(Debug, Default, Clone)]
struct MemAccount {
    creds: Option<Credentials>,
    cursor: Option<Secret>,
    tokens: HashMap<String, Secret>,
    tombstones: Vec<String>,
    outbox: Vec<String>,
}

#[derive(Debug, Clone)]
struct MemLease {
    holder: String,
    token: u64,
    since: SystemTime,
    expires: Instant,
    released: bool,
}

impl MemLease {
    fn live(&self, now: Instant) -> bool {
        !self.released && self.expires > now
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, MemState>> {
        self.inner
            .lock()
            .map_err(|_| Error::new(ErrorKind::Store, "memory store lock poisoned"))
    }

    /// Runs `f` on the account's state, if `fence` allows it (checked under the same lock).
    fn write(
        &self,
        account: &str,
        fence: Option<&Fence>,
        what: &str,
        f: impl FnOnce(&mut MemAccount),
    ) -> Result<()> {
        let mut st = self.state()?;
        let current = st.leases.get(account).map(|l| l.token);
        if !fence_ok(account, fence, current) {
            return Err(lease_lost(account, what));
        }
        f(st.accounts.entry(account.to_owned()).or_default());
        Ok(())
    }

    fn read<T>(&self, account: &str, f: impl FnOnce(&MemAccount) -> T) -> Result<T> {
        let st = self.state()?;
        Ok(match st.accounts.get(account) {
            Some(a) => f(a),
            None => f(&MemAccount::default()),
        })
    }
}

fn system_after(d: Duration) -> SystemTime {
    SystemTime::now()
        .checked_add(d)
        .unwrap_or_else(SystemTime::now)
}

fn instant_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 100))
}

#[async_trait::async_trait]
impl StateStore for MemoryStore {
    async fn accounts(&self) -> Result<Vec<String>> {
        let st = self.state()?;
        Ok(st
            .order
            .iter()
            .filter(|a| st.accounts.get(*a).is_some_and(|m| m.creds.is_some()))
            .cloned()
            .collect())
    }
    async fn load_credentials(&self, account: &str) -> Result<Option<Credentials>> {
        self.read(account, |a| a.creds.clone())
    }
    async fn save_credentials(&self, creds: &Credentials) -> Result<()> {
        let mut st = self.state()?;
        st.accounts
            .entry(creds.account_id.clone())
            .or_default()
            .creds = Some(creds.clone());
        st.order.retain(|a| a != &creds.account_id);
        st.order.push(creds.account_id.clone());
        Ok(())
    }
    async fn remove_account(&self, account: &str) -> Result<()> {
        let mut st = self.state()?;
        st.accounts.remove(account);
        st.order.retain(|a| a != account);
        Ok(())
    }
    async fn load_cursor(&self, account: &str) -> Result<Option<Secret>> {
        self.read(account, |a| a.cursor.clone())
    }
    async fn save_cursor(
        &self,
        account: &str,
        cursor: &Secret,
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.write(account, fence, "saving the cursor", |a| {
            a.cursor = Some(cursor.clone());
        })
    }
    async fn load_context_tokens(&self, account: &str) -> Result<HashMap<String, Secret>> {
        self.read(account, |a| a.tokens.clone())
    }
    async fn save_context_tokens(
        &self,
        account: &str,
        tokens: &HashMap<String, Secret>,
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.write(account, fence, "saving context tokens", |a| {
            a.tokens = tokens.clone();
        })
    }
    async fn load_tombstones(&self, account: &str) -> Result<Vec<String>> {
        self.read(account, |a| a.tombstones.clone())
    }
    async fn save_tombstones(
        &self,
        account: &str,
        keys: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.write(account, fence, "saving tombstones", |a| {
            a.tombstones = keys.to_vec();
        })
    }
    async fn append_tombstones(
        &self,
        account: &str,
        keys: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.write(account, fence, "appending tombstones", |a| {
            a.tombstones.extend_from_slice(keys);
        })
    }
    async fn load_outbox(&self, account: &str) -> Result<Vec<String>> {
        self.read(account, |a| a.outbox.clone())
    }
    async fn append_outbox(
        &self,
        account: &str,
        record: &str,
        fence: Option<&Fence>,
    ) -> Result<()> {
        check_outbox_records([record])?;
        self.write(account, fence, "appending to the outbox", |a| {
            a.outbox.push(record.to_owned());
        })
    }
    async fn replace_outbox(
        &self,
        account: &str,
        records: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        check_outbox_records(records)?;
        self.write(account, fence, "replacing the outbox", |a| {
            a.outbox = records.to_vec();
        })
    }
    async fn acquire_lease(
        &self,
        account: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let mut st = self.state()?;
        let now = Instant::now();
        let token = match st.leases.get_mut(account) {
            Some(l) if l.live(now) && l.holder == holder => {
                l.expires = instant_after(ttl);
                return Ok(Some(Lease::new(account, holder, l.token, ttl)));
            }
            Some(l) if l.live(now) => return Ok(None),
            Some(l) => l.token.saturating_add(1),
            None => 1,
        };
        st.leases.insert(
            account.to_owned(),
            MemLease {
                holder: holder.to_owned(),
                token,
                since: SystemTime::now(),
                expires: instant_after(ttl),
                released: false,
            },
        );
        Ok(Some(Lease::new(account, holder, token, ttl)))
    }
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        let mut st = self.state()?;
        match st.leases.get_mut(lease.account()) {
            Some(l) if l.token == lease.token() && !l.released => {
                l.expires = instant_after(ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let mut st = self.state()?;
        if let Some(l) = st.leases.get_mut(lease.account())
            && l.token == lease.token()
        {
            l.released = true;
        }
        Ok(())
    }
    async fn leases(&self) -> Result<Vec<LeaseInfo>> {
        let st = self.state()?;
        let now = Instant::now();
        let mut out: Vec<LeaseInfo> = st
            .leases
            .iter()
            .filter(|(_, l)| l.live(now))
            .map(|(a, l)| LeaseInfo {
                account: a.clone(),
                holder: l.holder.clone(),
                token: l.token,
                since: l.since,
                expires: system_after(l.expires.saturating_duration_since(now)),
            })
            .collect();
        out.sort_by(|a, b| a.account.cmp(&b.account));
        Ok(out)
    }
    async fn join_fleet(&self, member: &str, ttl: Duration) -> Result<Vec<String>> {
        let mut st = self.state()?;
        let now = Instant::now();
        st.members.retain(|_, e| *e > now);
        st.members.insert(member.to_owned(), instant_after(ttl));
        let mut live: Vec<String> = st.members.keys().cloned().collect();
        live.sort();
        Ok(live)
    }
    async fn leave_fleet(&self, member: &str) -> Result<()> {
        self.state()?.members.remove(member);
        Ok(())
    }
}

/// State in files: one directory per account under `<root>/accounts/<normalized id>/`, holding
/// `credentials.json`, `cursor.json`, `context_tokens.json`, the dedupe journal
/// `dedupe.journal` (appended to with a data sync per handled message or batch, and compacted
/// now and then) and the outbox journal `outbox.jsonl` (append-only, see [`crate::outbox`]).
/// Every file is written atomically (a temporary file `.<name>.<random>.tmp` in the same
/// directory, synced, then renamed over the old one) with mode 0600, except the journals'
/// appends, whose torn last line a reader skips; directories are created with mode 0700.
/// Temporary files left by a crash are removed when a client opens the account
/// ([`StateStore::open_account`]), so a bot that crashes often does not grow its directory.
///
/// Every file is a JSON object with a format `"version"` (1; a file without one is read as the
/// version 1 layout, as written before versions existed) and is validated when read. A file
/// that cannot be read as its kind (empty, truncated, not JSON, the wrong JSON type, an
/// invalid version, a directory in its place) is **moved aside** as `NAME.corrupt-<UTC time>`
/// with a warning (`tracing`, level warn) that names both paths and says what was lost, and the
/// store goes on as if the file did not exist:
///
/// | file | what is lost when it is moved aside |
/// |---|---|
/// | `credentials.json` | the login of that bot: run `ilink login` again |
/// | `cursor.json` | the position in the message stream: the server sends its next batch; handled messages the dedupe file remembers are still skipped |
/// | `context_tokens.json` | the users' context tokens: each user must write again before the bot can send to them |
/// | `dedupe.json` | the memory of handled messages: recent messages may be delivered again |
///
/// A file written by a newer ilink (a higher `"version"`) is not touched: reading it fails
/// with an [`ErrorKind::Store`] error naming the file and the fix (upgrade, or move it aside).
/// Neither is a file that cannot be opened (permissions, I/O errors): that is an
/// [`ErrorKind::Store`] error naming it.
///
/// # Leases and fleet membership
///
/// An account's lease ([`StateStore::acquire_lease`]) is an OS file lock on `consumer.lock`
/// in its directory (released by the OS if the process dies) plus the persisted token counter
/// `lease.json` (holder, token, PID, times); `consumer.json` has the PID of the holder, for
/// [`FileStore::consumer_pid`]. Because the lock lives as long as the process, **the ttl does
/// not apply**: a lease ends only when released or when its process ends, and
/// [`StateStore::renew_lease`] returns true while the lock is held and the token is the
/// current one. A fenced write checks the token in `lease.json` before it writes; the OS lock
/// keeps any other process from granting a newer one meanwhile. [`StateStore::leases`] lists
/// the accounts whose lock is held. A `lease.json` lost to corruption makes the next token
/// restart from the clock in milliseconds, so tokens still increase.
///
/// Fleet members are kept in `<root>/fleet.json` (member → expiry in epoch milliseconds,
/// the wall clock), read and written under the OS lock `<root>/fleet.lock`.
///
/// # Blocking I/O
///
/// Every method does its file I/O (and fsyncs) on tokio's blocking thread pool
/// (`spawn_blocking`), not on the async executor: a sync can take from milliseconds to seconds
/// on a busy disk, and would stall every other account of the process meanwhile. Outside a
/// tokio runtime the I/O runs in place.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

/// One kind of state file of the [`FileStore`]: its name, its format version and what is lost
/// when a corrupt copy is moved aside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StateFile {
    /// The file name in the account directory.
    pub(crate) name: &'static str,
    /// The newest format version this build reads and writes.
    pub(crate) version: u64,
    /// What is lost when the file is moved aside, for the warning.
    pub(crate) loss: &'static str,
}

pub(crate) const CREDENTIALS_FILE: StateFile = StateFile {
    name: "credentials.json",
    version: 1,
    loss: "the bot's login is lost: run `ilink login` again",
};
pub(crate) const CURSOR_FILE: StateFile = StateFile {
    name: "cursor.json",
    version: 1,
    loss: "the position in the message stream is lost: the server sends its next batch \
           (handled messages that the dedupe file remembers are still skipped)",
};
pub(crate) const CONTEXT_TOKENS_FILE: StateFile = StateFile {
    name: "context_tokens.json",
    version: 1,
    loss: "the users' context tokens are lost: each user must write to the bot again before \
           it can send to them",
};
pub(crate) const DEDUPE_FILE: StateFile = StateFile {
    name: "dedupe.json",
    version: 1,
    loss: "the memory of handled messages is lost: recent messages may be delivered again",
};

/// The largest state file read, in bytes; a bigger one is treated as corrupt.
const MAX_STATE_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The name of the lock file of an account's consumer.
const LOCK_FILE: &str = "consumer.lock";
/// The name of the file with the PID of the consumer holding the lock.
const HOLDER_FILE: &str = "consumer.json";

const HOLDER_STATE: StateFile = StateFile {
    name: HOLDER_FILE,
    version: 1,
    loss: "only the PID of the last consumer is lost",
};

/// The lease's persisted token counter and holder.
const LEASE_STATE: StateFile = StateFile {
    name: "lease.json",
    version: 1,
    loss: "the lease's token counter is lost: the next token starts from the clock",
};

/// The fleet's members, in the root directory.
const FLEET_STATE: StateFile = StateFile {
    name: "fleet.json",
    version: 1,
    loss: "the list of fleet members is lost: live members join again at their next heartbeat",
};

/// The OS lock taken while `fleet.json` is read and written.
const FLEET_LOCK_FILE: &str = "fleet.lock";

#[derive(Serialize, Deserialize, Clone)]
struct LeaseFile {
    account: String,
    holder: String,
    token: u64,
    pid: u32,
    since_ms: u64,
    ttl_ms: u64,
    renewed_ms: u64,
}

#[derive(Serialize, Deserialize, Default)]
struct FleetFile {
    members: BTreeMap<String, u64>,
}

/// Why a state file could not be used.
enum Invalid {
    /// Corrupt: moved aside.
    Corrupt(String),
    /// Written by a newer version of the format.
    Newer(u64),
    /// Not readable (permissions, I/O): not the file's fault, so left alone.
    Io(std::io::Error),
}

#[derive(Serialize, Deserialize)]
struct CursorFile {
    get_updates_buf: Secret,
}

#[derive(Serialize, Deserialize)]
struct TokensFile {
    tokens: BTreeMap<String, Secret>,
}

#[derive(Serialize, Deserialize)]
struct HolderFile {
    pid: u32,
    since_ms: u64,
}

#[derive(Serialize)]
struct Versioned<'a, T> {
    version: u64,
    #[serde(flatten)]
    data: &'a T,
}

#[derive(Serialize, Deserialize, Default)]
struct TombstoneFile {
    keys: Vec<String>,
}

impl FileStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default state directory: `$ILINK_STATE_DIR`, else `$XDG_STATE_HOME/ilink`, else
    /// `$HOME/.local/state/ilink`, else `./.ilink`.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("ILINK_STATE_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
            return PathBuf::from(d).join("ilink");
        }
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(".local/state/ilink");
        }
        PathBuf::from(".ilink")
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one account.
    pub fn account_dir(&self, account: &str) -> PathBuf {
        self.root
            .join("accounts")
            .join(normalize_account_id(account))
    }

    /// Reads the state file `file` of `account`, validated: `decode` gets the format version
    /// (`0` for a file written before versions existed) and the JSON object without its
    /// `"version"`, and says why it is invalid. A missing file is `None`; a corrupt one is
    /// moved aside with a warning and is `None` too; a newer one is an error naming the file.
    pub(crate) fn read_state<T>(
        &self,
        account: &str,
        file: &StateFile,
        decode: impl FnOnce(u64, serde_json::Value) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        let path = self.account_dir(account).join(file.name);
        self.read_state_at(&path, file, decode)
    }

    fn read_state_at<T>(
        &self,
        path: &Path,
        file: &StateFile,
        decode: impl FnOnce(u64, serde_json::Value) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        match read_state_file(path, file, decode) {
            Ok(v) => Ok(v),
            Err(Invalid::Newer(v)) => Err(Error::new(
                ErrorKind::Store,
                format!(
                    "{} was written by a newer ilink (format version {v}; this one reads up to \
                     {}): upgrade ilink, or move the file aside to start over ({})",
                    path.display(),
                    file.version,
                    file.loss
                ),
            )),
            Err(Invalid::Io(e)) => Err(Error::store(
                format!(
                    "reading {}: check the file's owner and permissions",
                    path.display()
                ),
                e,
            )),
            Err(Invalid::Corrupt(why)) => {
                let aside = move_aside(path)?;
                tracing::warn!(
                    "{} is corrupt ({why}); moved it aside to {}; {}",
                    path.display(),
                    aside.display(),
                    file.loss
                );
                Ok(None)
            }
        }
    }

    /// Writes the state file `file` of `account` atomically (mode 0600), with its version. A
    /// directory in the file's place is moved aside first.
    pub(crate) fn write_state<T: Serialize>(
        &self,
        account: &str,
        file: &StateFile,
        value: &T,
    ) -> Result<()> {
        let dir = self.account_dir(account);
        self.write_state_at(&dir.join(file.name), file, value)
    }

    fn write_state_at<T: Serialize>(&self, path: &Path, file: &StateFile, value: &T) -> Result<()> {
        if let Some(dir) = path.parent() {
            create_private_dir(dir)?;
        }
        let bytes = serde_json::to_vec_pretty(&Versioned {
            version: file.version,
            data: value,
        })
        .map_err(|e| Error::new(ErrorKind::Store, "encoding state").with_source(e))?;
        move_dir_aside(path, None)?;
        write_atomic(path, &bytes)
    }

    /// The PID of the process consuming `account`'s messages (holding its lease), if one
    /// does; `None` when nobody does (or the PID is unknown).
    /// Takes no lock and writes nothing.
    pub fn consumer_pid(&self, account: &str) -> Option<u32> {
        let path = self.account_dir(account).join(LOCK_FILE);
        let file = fs::OpenOptions::new().read(true).open(&path).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(fs::TryLockError::WouldBlock) => self
                .read_state(account, &HOLDER_STATE, |_, v| {
                    serde_json::from_value::<HolderFile>(v).map_err(|e| e.to_string())
                })
                .ok()
                .flatten()
                .map(|h| h.pid),
            Err(fs::TryLockError::Error(_)) => None,
        }
    }

    fn load_credentials_at(&self, path: &Path) -> Result<Option<Credentials>> {
        let dir_name = path
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.read_state_at(path, &CREDENTIALS_FILE, |_, v| {
            let c: Credentials = serde_json::from_value(v).map_err(|e| e.to_string())?;
            if c.account_id.trim().is_empty() {
                return Err("its account_id is empty".into());
            }
            if normalize_account_id(&c.account_id) != dir_name {
                return Err(format!(
                    "it holds account {} but sits in the directory of another",
                    c.account_id
                ));
            }
            if c.token.expose().trim().is_empty() {
                return Err("its token is empty".into());
            }
            Ok(c)
        })
    }
}

/// Reads and validates one state file (see [`FileStore::read_state`]).
fn read_state_file<T>(
    path: &Path,
    file: &StateFile,
    decode: impl FnOnce(u64, serde_json::Value) -> std::result::Result<T, String>,
) -> std::result::Result<Option<T>, Invalid> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Invalid::Io(e)),
    };
    if meta.is_dir() {
        return Err(Invalid::Corrupt("a directory is in its place".into()));
    }
    if meta.len() > MAX_STATE_FILE_BYTES {
        return Err(Invalid::Corrupt(format!(
            "{} bytes, more than the {MAX_STATE_FILE_BYTES} a state file may have",
            meta.len()
        )));
    }
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(Invalid::Corrupt(format!("cannot read it: {e}")));
        }
        Err(e) => return Err(Invalid::Io(e)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Invalid::Corrupt("it is empty".into()));
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Invalid::Corrupt(format!("not valid JSON: {e}")))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(Invalid::Corrupt("not a JSON object".into()));
    };
    let version = match map.remove("version") {
        None => 0,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= file.version => n,
            Some(n) if n > file.version => return Err(Invalid::Newer(n)),
            _ => return Err(Invalid::Corrupt(format!("its version {v} is not valid"))),
        },
    };
    decode(version, serde_json::Value::Object(map))
        .map(Some)
        .map_err(|why| Invalid::Corrupt(format!("not a valid {}: {why}", file.name)))
}

/// Renames `path` to `path.corrupt-<UTC time>` (a free name) and returns the new path.
fn move_aside(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = utc_stamp(crate::util::now_ms() / 1000);
    for n in 0..100u32 {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let aside = path.with_file_name(format!("{name}.corrupt-{stamp}{suffix}"));
        if fs::symlink_metadata(&aside).is_ok() {
            continue;
        }
        return fs::rename(path, &aside)
            .map(|()| aside)
            .map_err(|e| Error::store(format!("moving the corrupt {} aside", path.display()), e));
    }
    Err(Error::new(
        ErrorKind::Store,
        format!("too many corrupt copies of {} already", path.display()),
    ))
}

/// Moves a directory that stands where the file `path` belongs aside (see [`move_aside`]),
/// with a warning naming both paths and then `loss`, if given. `Ok(true)`: there was one.
fn move_dir_aside(path: &Path, loss: Option<&str>) -> Result<bool> {
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return Ok(false);
    }
    let aside = move_aside(path)?;
    match loss {
        Some(loss) => tracing::warn!(
            "{} was a directory; moved it aside to {}; {loss}",
            path.display(),
            aside.display()
        ),
        None => tracing::warn!(
            "{} was a directory; moved it aside to {}",
            path.display(),
            aside.display()
        ),
    }
    Ok(true)
}

/// `YYYYMMDDTHHMMSSZ` for epoch seconds (UTC).
fn utc_stamp(secs: u64) -> String {
    let t = UtcDateTime::from_unix_secs(secs);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// A moment as its UTC calendar date and time of day, for printing times without a date-time
/// crate: the [`FileStore`] names corrupt files it moves aside `NAME.corrupt-YYYYMMDDTHHMMSSZ`,
/// and `ilink fleet status` prints [`LeaseInfo::since`] with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UtcDateTime {
    /// The year (proleptic Gregorian calendar).
    pub year: i64,
    /// The month, 1 to 12.
    pub month: u8,
    /// The day of the month, 1 to 31.
    pub day: u8,
    /// The hour, 0 to 23.
    pub hour: u8,
    /// The minute, 0 to 59.
    pub minute: u8,
    /// The second, 0 to 59.
    pub second: u8,
}

impl UtcDateTime {
    /// The UTC date and time `secs` seconds after the Unix epoch (1970-01-01 00:00:00 UTC).
    pub fn from_unix_secs(secs: u64) -> UtcDateTime {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        // Civil from days (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        // Each is in range by construction (month 1..=12, day 1..=31, hour < 24, ...).
        UtcDateTime {
            year: y,
            month: m as u8,
            day: d as u8,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }
}

/// Writes `creds` to a new file `path` (mode 0600, never replacing one), in the format of
/// `credentials.json`.
pub(crate) fn write_rescue(path: &Path, creds: &Credentials) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(&Versioned {
        version: CREDENTIALS_FILE.version,
        data: creds,
    })
    .map_err(std::io::Error::other)?;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(&bytes)?;
    f.sync_all()
}

/// A fresh temporary path beside `path`: `.<name>.<random>.tmp` in the same directory (what
/// [`remove_stale_temps`] cleans up after a crash).
fn temp_beside(path: &Path) -> std::path::PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(
        ".{name}.{}.tmp",
        crate::util::random_hex(TEMP_RANDOM_HEX / 2)
    ))
}

/// Creates the new file `tmp` with mode 0600 and writes and syncs `bytes` into it.
fn write_new_private(tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates `path` with `bytes` only if it does not exist (never replacing a file another
/// process may have opened): a temporary file hard-linked into place.
fn create_once(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let tmp = temp_beside(path);
    let result = write_new_private(&tmp, bytes).and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    });
    let _ = fs::remove_file(&tmp);
    result
}

/// The entries of `dir`; `None` if it does not exist.
fn list_dir(dir: &Path) -> Result<Option<fs::ReadDir>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::store(format!("listing {}", dir.display()), e)),
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Error::store(format!("creating {}", dir.display()), e))
}

/// Length of the random part of a temporary file name, in hex digits.
const TEMP_RANDOM_HEX: usize = 16;

/// Whether `name` is the name of a temporary file of [`write_atomic`]:
/// `.<target>.<16 hex digits>.tmp`.
fn is_temp_name(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    match inner.rsplit_once('.') {
        Some((target, random)) => {
            !target.is_empty()
                && random.len() == TEMP_RANDOM_HEX
                && random.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// Remove the temporary files of [`write_atomic`] in `dir` (left behind when a crash
/// interrupted a write). A write in progress in another process whose temporary file is
/// removed here starts again (see [`write_atomic`]); the target files are never touched.
fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let Some(entries) = list_dir(dir)? else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_temp_name) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::store(
                    format!("removing {}", entry.path().display()),
                    e,
                ));
            }
        }
    }
    Ok(removed)
}

/// Write `bytes` to `path` atomically with mode 0600.
///
/// If the temporary file disappears before the rename (another process opening the account
/// removed it as stale), the write starts again with a new one, up to 3 times in all.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut attempt = 1;
    loop {
        match write_atomic_once(path, bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => attempt += 1,
            Err(e) => return Err(Error::store(format!("writing {}", path.display()), e)),
            Ok(()) => return Ok(()),
        }
    }
}

fn write_atomic_once(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    let result = (|| -> std::io::Result<()> {
        write_new_private(&tmp, bytes)?;
        fs::rename(&tmp, path)?;
        #[cfg(unix)]
        if let Ok(d) = fs::File::open(path.parent().unwrap_or(Path::new("."))) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The lease of a [`FileStore`] account: the open `consumer.lock` holding the OS lock.
struct FileLeaseGuard {
    file: fs::File,
    released: std::sync::atomic::AtomicBool,
}

impl FileStore {
    /// Runs the blocking file work `f` on tokio's blocking pool (fsyncs can take milliseconds
    /// to seconds; they must not stall the other tasks of the executor), or in place when no
    /// tokio runtime is running.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&FileStore) -> Result<T> + Send + 'static,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return f(self);
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Internal, "a state store task failed").with_source(e)
            })?
    }

    /// A write of progress: off the executor like [`Self::blocking`], after the fence check
    /// (`what` names the write in the `LeaseLost` error). `f` gets the store and the account.
    async fn fenced_blocking<F>(
        &self,
        account: &str,
        fence: Option<&Fence>,
        what: &'static str,
        f: F,
    ) -> Result<()>
    where
        F: FnOnce(&FileStore, &str) -> Result<()> + Send + 'static,
    {
        let (account, fence) = (account.to_owned(), fence.cloned());
        self.blocking(move |s| {
            s.check_fence(&account, fence.as_ref(), what)?;
            f(s, &account)
        })
        .await
    }

    /// Fails with [`ErrorKind::LeaseLost`] unless `fence` is `None` or the account's current
    /// lease token (the last one granted, from `lease.json`).
    fn check_fence(&self, account: &str, fence: Option<&Fence>, what: &str) -> Result<()> {
        let Some(f) = fence else {
            return Ok(());
        };
        let current = if f.account == account {
            self.read_lease(account)?.map(|l| l.token)
        } else {
            None
        };
        if fence_ok(account, fence, current) {
            Ok(())
        } else {
            Err(lease_lost(account, what))
        }
    }

    fn read_lease(&self, account: &str) -> Result<Option<LeaseFile>> {
        self.read_state(account, &LEASE_STATE, |_, v| {
            serde_json::from_value::<LeaseFile>(v).map_err(|e| e.to_string())
        })
    }

    /// The account directories under `<root>/accounts` (none if it does not exist yet).
    fn account_dirs(&self) -> Result<Vec<PathBuf>> {
        let Some(entries) = list_dir(&self.root.join("accounts"))? else {
            return Ok(Vec::new());
        };
        Ok(entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .map(|entry| entry.path())
            .collect())
    }

    fn accounts_sync(&self) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for dir in self.account_dirs()? {
            let path = dir.join(CREDENTIALS_FILE.name);
            // One unreadable account must not hide the others (or block a login).
            match self.load_credentials_at(&path) {
                Ok(Some(c)) => found.push((c.saved_at_ms, c.account_id)),
                Ok(None) => {}
                Err(e) => tracing::warn!("skipping an account: {e}"),
            }
        }
        found.sort();
        Ok(found.into_iter().map(|(_, a)| a).collect())
    }

    fn remove_account_sync(&self, account: &str) -> Result<()> {
        let Some(entries) = list_dir(&self.account_dir(account))? else {
            return Ok(());
        };
        // Everything but the lease: its lock file may be held by a running consumer, and its
        // token counter must keep increasing.
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == LOCK_FILE || name == LEASE_STATE.name {
                continue;
            }
            let path = entry.path();
            let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match result {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::store(format!("removing {}", path.display()), e)),
            }
        }
        Ok(())
    }

    fn load_cursor_sync(&self, account: &str) -> Result<Option<Secret>> {
        self.read_state(account, &CURSOR_FILE, |_, v| {
            serde_json::from_value::<CursorFile>(v)
                .map(|c| c.get_updates_buf)
                .map_err(|e| e.to_string())
        })
    }

    fn load_context_tokens_sync(&self, account: &str) -> Result<HashMap<String, Secret>> {
        Ok(self
            .read_state(account, &CONTEXT_TOKENS_FILE, |version, v| {
                let tokens = if version == 0 {
                    // Before versions: the map itself.
                    serde_json::from_value::<BTreeMap<String, Secret>>(v)
                } else {
                    serde_json::from_value::<TokensFile>(v).map(|f| f.tokens)
                }
                .map_err(|e| e.to_string())?;
                Ok(tokens.into_iter().collect::<HashMap<_, _>>())
            })?
            .unwrap_or_default())
    }

    fn load_tombstones_sync(&self, account: &str) -> Result<Vec<String>> {
        let dir = self.account_dir(account);
        // A whole-set file of earlier versions (versioned, recovered like every state file),
        // then the journal.
        let mut keys = self
            .read_state(account, &DEDUPE_FILE, |_, v| {
                serde_json::from_value::<TombstoneFile>(v).map_err(|e| e.to_string())
            })?
            .unwrap_or_default()
            .keys;
        let path = dir.join(crate::journal::JOURNAL_FILE);
        if move_dir_aside(&path, Some(DEDUPE_FILE.loss))? {
            return Ok(keys);
        }
        // Torn or foreign lines are skipped by the decoder: a damaged journal loses only them.
        match fs::read(&path) {
            Ok(bytes) => keys.extend(crate::journal::decode(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::store(
                    format!(
                        "reading {}: check the file's owner and permissions",
                        path.display()
                    ),
                    e,
                ));
            }
        }
        Ok(keys)
    }

    fn save_tombstones_sync(&self, account: &str, keys: &[String]) -> Result<()> {
        let dir = self.account_dir(account);
        create_private_dir(&dir)?;
        write_atomic(
            &dir.join(crate::journal::JOURNAL_FILE),
            &crate::journal::encode(keys),
        )?;
        match fs::remove_file(dir.join(crate::journal::LEGACY_FILE)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::store("removing the old dedupe.json", e)),
        }
    }

    fn append_tombstones_sync(&self, account: &str, keys: &[String]) -> Result<()> {
        let dir = self.account_dir(account);
        create_private_dir(&dir)?;
        let path = dir.join(crate::journal::JOURNAL_FILE);
        crate::journal::append(&path, keys)
            .map_err(|e| Error::store(format!("appending to {}", path.display()), e))
    }

    fn replace_outbox_sync(&self, account: &str, records: &[String]) -> Result<()> {
        check_outbox_records(records)?;
        let dir = self.account_dir(account);
        create_private_dir(&dir)?;
        let mut bytes = Vec::new();
        for r in records {
            bytes.extend_from_slice(r.as_bytes());
            bytes.push(b'\n');
        }
        write_atomic(&dir.join(crate::outbox::JOURNAL_FILE), &bytes)
    }

    fn open_account_sync(&self, account: &str) -> Result<()> {
        let removed = remove_stale_temps(&self.account_dir(account))?;
        if removed > 0 {
            tracing::debug!(
                account,
                removed,
                "removed temporary files of interrupted writes"
            );
        }
        Ok(())
    }

    fn check_writable_sync(&self) -> Result<()> {
        let dir = self.root.join("accounts");
        let result = create_private_dir(&dir).and_then(|()| {
            // Room for the credentials and the other state files of a new account, written
            // the way they will be.
            let probe = dir.join(format!(".probe-{}", crate::util::random_hex(8)));
            let result = write_atomic(&probe, &[b' '; 16 * 1024]);
            let _ = fs::remove_file(&probe);
            result
        });
        result.map_err(|e| {
            Error::new(
                ErrorKind::Store,
                format!(
                    "the state directory {} cannot be written",
                    self.root.display()
                ),
            )
            .with_source(e)
        })
    }

    /// Opens the account's `consumer.lock` (creating it, and moving a directory in its place
    /// aside).
    fn open_lock_file(&self, account: &str) -> Result<(fs::File, PathBuf)> {
        let dir = self.account_dir(account);
        create_private_dir(&dir)?;
        let path = dir.join(LOCK_FILE);
        move_dir_aside(&path, None)?;
        create_once(
            &path,
            b"{\"version\": 1, \"note\": \"locked while a process serves this account; see lease.json\"}\n",
        )
        .map_err(|e| Error::store(format!("creating {}", path.display()), e))?;
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::store(format!("opening {}", path.display()), e))?;
        Ok((file, path))
    }

    /// Whether another open file (any process, or another lease in this one) holds the
    /// account's lock.
    fn lock_is_held(&self, account: &str) -> Result<bool> {
        let path = self.account_dir(account).join(LOCK_FILE);
        let file = match fs::OpenOptions::new().read(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::store(format!("opening {}", path.display()), e)),
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(false)
            }
            Err(fs::TryLockError::WouldBlock) => Ok(true),
            Err(fs::TryLockError::Error(e)) => {
                Err(Error::store(format!("locking {}", path.display()), e))
            }
        }
    }

    fn acquire_lease_sync(
        &self,
        account: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let (file, path) = self.open_lock_file(account)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                // Held: by this holder (a renewal), or by another.
                return match self.read_lease(account)? {
                    Some(mut l) if l.holder == holder => {
                        l.ttl_ms = duration_ms(ttl);
                        l.renewed_ms = crate::util::now_ms();
                        self.write_state(account, &LEASE_STATE, &l)?;
                        Ok(Some(Lease::new(account, holder, l.token, ttl)))
                    }
                    _ => Ok(None),
                };
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(Error::store(format!("locking {}", path.display()), e));
            }
        }
        // Ours: the next token. A counter lost to corruption restarts from the clock (in
        // milliseconds), above any count a lease could have reached, so tokens still increase.
        let lease_path = self.account_dir(account).join(LEASE_STATE.name);
        let existed = fs::symlink_metadata(&lease_path).is_ok();
        let token = match self.read_lease(account)? {
            Some(l) => l.token.saturating_add(1),
            None if existed => crate::util::now_ms().max(1),
            None => 1,
        };
        let now = crate::util::now_ms();
        self.write_state(
            account,
            &LEASE_STATE,
            &LeaseFile {
                account: account.to_owned(),
                holder: holder.to_owned(),
                token,
                pid: std::process::id(),
                since_ms: now,
                ttl_ms: duration_ms(ttl),
                renewed_ms: now,
            },
        )?;
        self.write_state(
            account,
            &HOLDER_STATE,
            &HolderFile {
                pid: std::process::id(),
                since_ms: now,
            },
        )?;
        Ok(Some(Lease::new(account, holder, token, ttl).with_guard(
            FileLeaseGuard {
                file,
                released: std::sync::atomic::AtomicBool::new(false),
            },
        )))
    }

    fn renew_lease_sync(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        if let Some(g) = lease
            .guard()
            .and_then(|g| g.downcast_ref::<FileLeaseGuard>())
            && g.released.load(std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(false);
        }
        if !self.lock_is_held(lease.account())? {
            return Ok(false);
        }
        match self.read_lease(lease.account())? {
            Some(mut l) if l.token == lease.token() => {
                l.ttl_ms = duration_ms(ttl);
                l.renewed_ms = crate::util::now_ms();
                self.write_state(lease.account(), &LEASE_STATE, &l)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn leases_sync(&self) -> Result<Vec<LeaseInfo>> {
        let mut out = Vec::new();
        for dir in self.account_dirs()? {
            let path = dir.join(LEASE_STATE.name);
            let lease = match self.read_state_at(&path, &LEASE_STATE, |_, v| {
                serde_json::from_value::<LeaseFile>(v).map_err(|e| e.to_string())
            }) {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("skipping a lease: {e}");
                    continue;
                }
            };
            if !self.lock_is_held(&lease.account)? {
                continue;
            }
            out.push(LeaseInfo {
                since: SystemTime::UNIX_EPOCH + Duration::from_millis(lease.since_ms),
                // The OS lock has no expiry: live until released or its process ends.
                expires: system_after(Duration::from_millis(lease.ttl_ms.max(1))),
                account: lease.account,
                holder: lease.holder,
                token: lease.token,
            });
        }
        out.sort_by(|a, b| a.account.cmp(&b.account));
        Ok(out)
    }

    /// Runs `f` on the fleet's members (name → expiry in epoch ms, expired ones dropped) under
    /// the OS lock `fleet.lock`, and saves what it leaves.
    fn with_fleet<T>(&self, f: impl FnOnce(&mut BTreeMap<String, u64>) -> T) -> Result<T> {
        create_private_dir(&self.root)?;
        let lock_path = self.root.join(FLEET_LOCK_FILE);
        create_once(&lock_path, b"{\"version\": 1}\n")
            .map_err(|e| Error::store(format!("creating {}", lock_path.display()), e))?;
        let lock = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::store(format!("opening {}", lock_path.display()), e))?;
        lock.lock()
            .map_err(|e| Error::store(format!("locking {}", lock_path.display()), e))?;
        let path = self.root.join(FLEET_STATE.name);
        let mut members = self
            .read_state_at(&path, &FLEET_STATE, |_, v| {
                serde_json::from_value::<FleetFile>(v).map_err(|e| e.to_string())
            })?
            .unwrap_or_default()
            .members;
        let now = crate::util::now_ms();
        members.retain(|_, expires| *expires > now);
        let out = f(&mut members);
        self.write_state_at(&path, &FLEET_STATE, &FleetFile { members })?;
        let _ = lock.unlock();
        Ok(out)
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait::async_trait]
impl StateStore for FileStore {
    async fn accounts(&self) -> Result<Vec<String>> {
        self.blocking(|s| s.accounts_sync()).await
    }
    async fn load_credentials(&self, account: &str) -> Result<Option<Credentials>> {
        let account = account.to_owned();
        self.blocking(move |s| {
            s.load_credentials_at(&s.account_dir(&account).join(CREDENTIALS_FILE.name))
        })
        .await
    }
    async fn save_credentials(&self, creds: &Credentials) -> Result<()> {
        let creds = creds.clone();
        self.blocking(move |s| s.write_state(&creds.account_id, &CREDENTIALS_FILE, &creds))
            .await
    }
    async fn remove_account(&self, account: &str) -> Result<()> {
        let account = account.to_owned();
        self.blocking(move |s| s.remove_account_sync(&account))
            .await
    }
    async fn load_cursor(&self, account: &str) -> Result<Option<Secret>> {
        let account = account.to_owned();
        self.blocking(move |s| s.load_cursor_sync(&account)).await
    }
    async fn save_cursor(
        &self,
        account: &str,
        cursor: &Secret,
        fence: Option<&Fence>,
    ) -> Result<()> {
        let cursor = cursor.clone();
        self.fenced_blocking(account, fence, "saving the cursor", move |s, account| {
            let file = CursorFile {
                get_updates_buf: cursor,
            };
            s.write_state(account, &CURSOR_FILE, &file)
        })
        .await
    }
    async fn load_context_tokens(&self, account: &str) -> Result<HashMap<String, Secret>> {
        let account = account.to_owned();
        self.blocking(move |s| s.load_context_tokens_sync(&account))
            .await
    }
    async fn save_context_tokens(
        &self,
        account: &str,
        tokens: &HashMap<String, Secret>,
        fence: Option<&Fence>,
    ) -> Result<()> {
        let tokens: BTreeMap<String, Secret> =
            tokens.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        self.fenced_blocking(
            account,
            fence,
            "saving context tokens",
            move |s, account| s.write_state(account, &CONTEXT_TOKENS_FILE, &TokensFile { tokens }),
        )
        .await
    }
    async fn load_tombstones(&self, account: &str) -> Result<Vec<String>> {
        let account = account.to_owned();
        self.blocking(move |s| s.load_tombstones_sync(&account))
            .await
    }
    async fn save_tombstones(
        &self,
        account: &str,
        keys: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        let keys = keys.to_vec();
        self.fenced_blocking(account, fence, "saving tombstones", move |s, account| {
            s.save_tombstones_sync(account, &keys)
        })
        .await
    }
    async fn append_tombstones(
        &self,
        account: &str,
        keys: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        let keys = keys.to_vec();
        self.fenced_blocking(account, fence, "appending tombstones", move |s, account| {
            s.append_tombstones_sync(account, &keys)
        })
        .await
    }
    async fn load_outbox(&self, account: &str) -> Result<Vec<String>> {
        let account = account.to_owned();
        self.blocking(move |s| crate::outbox::file_load(&s.account_dir(&account)))
            .await
    }
    async fn append_outbox(
        &self,
        account: &str,
        record: &str,
        fence: Option<&Fence>,
    ) -> Result<()> {
        let record = record.to_owned();
        self.fenced_blocking(
            account,
            fence,
            "appending to the outbox",
            move |s, account| {
                let dir = s.account_dir(account);
                create_private_dir(&dir)?;
                crate::outbox::file_append(&dir, &record)
            },
        )
        .await
    }
    async fn replace_outbox(
        &self,
        account: &str,
        records: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        let records = records.to_vec();
        self.fenced_blocking(account, fence, "replacing the outbox", move |s, account| {
            s.replace_outbox_sync(account, &records)
        })
        .await
    }
    async fn open_account(&self, account: &str) -> Result<()> {
        let account = account.to_owned();
        self.blocking(move |s| s.open_account_sync(&account)).await
    }
    async fn check_writable(&self) -> Result<()> {
        self.blocking(|s| s.check_writable_sync()).await
    }
    async fn acquire_lease(
        &self,
        account: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let (account, holder) = (account.to_owned(), holder.to_owned());
        self.blocking(move |s| s.acquire_lease_sync(&account, &holder, ttl))
            .await
    }
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        let lease = lease.clone();
        self.blocking(move |s| s.renew_lease_sync(&lease, ttl))
            .await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        if let Some(g) = lease
            .guard()
            .and_then(|g| g.downcast_ref::<FileLeaseGuard>())
            && !g.released.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            // Unlocking is a quick system call: no need for the blocking pool.
            g.file.unlock().map_err(|e| {
                Error::store(
                    format!("unlocking the lease of account {}", lease.account()),
                    e,
                )
            })?;
        }
        Ok(())
    }
    async fn leases(&self) -> Result<Vec<LeaseInfo>> {
        self.blocking(|s| s.leases_sync()).await
    }
    async fn join_fleet(&self, member: &str, ttl: Duration) -> Result<Vec<String>> {
        let member = member.to_owned();
        self.blocking(move |s| {
            s.with_fleet(|members| {
                let expires = crate::util::now_ms().saturating_add(duration_ms(ttl));
                members.insert(member, expires);
                members.keys().cloned().collect::<Vec<_>>()
            })
        })
        .await
    }
    async fn leave_fleet(&self, member: &str) -> Result<()> {
        let member = member.to_owned();
        self.blocking(move |s| {
            s.with_fleet(|members| {
                members.remove(&member);
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(id: &str, at: u64) -> Credentials {
        Credentials {
            account_id: id.into(),
            token: Secret::from("TOKEN-SECRET"),
            base_url: Some("http://127.0.0.1:1".into()),
            user_id: Some("u@im.wechat".into()),
            saved_at_ms: at,
        }
    }

    async fn exercise(store: &dyn StateStore) {
        assert!(store.accounts().await.unwrap().is_empty());
        assert_eq!(store.load_credentials("a@im.bot").await.unwrap(), None);
        store.save_credentials(&creds("b@im.bot", 2)).await.unwrap();
        store.save_credentials(&creds("a@im.bot", 1)).await.unwrap();
        assert_eq!(
            store.load_credentials("a@im.bot").await.unwrap(),
            Some(creds("a@im.bot", 1))
        );
        assert_eq!(store.accounts().await.unwrap().len(), 2);
        store
            .save_cursor("a@im.bot", &Secret::from("CURSOR"), None)
            .await
            .unwrap();
        assert_eq!(
            store.load_cursor("a@im.bot").await.unwrap(),
            Some(Secret::from("CURSOR"))
        );
        let mut m = HashMap::new();
        m.insert("u@im.wechat".to_owned(), Secret::from("CTX"));
        store
            .save_context_tokens("a@im.bot", &m, None)
            .await
            .unwrap();
        assert_eq!(store.load_context_tokens("a@im.bot").await.unwrap(), m);
        store
            .save_tombstones("a@im.bot", &["m:1".into(), "c:x".into()], None)
            .await
            .unwrap();
        assert_eq!(
            store.load_tombstones("a@im.bot").await.unwrap(),
            vec!["m:1".to_owned(), "c:x".to_owned()]
        );
        store.remove_account("a@im.bot").await.unwrap();
        assert_eq!(store.load_credentials("a@im.bot").await.unwrap(), None);
        assert_eq!(store.load_cursor("a@im.bot").await.unwrap(), None);
        assert_eq!(store.accounts().await.unwrap(), vec!["b@im.bot".to_owned()]);
    }

    #[tokio::test]
    async fn memory_store_round_trips() {
        exercise(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn file_store_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        exercise(&FileStore::new(dir.path())).await;
    }

    #[test]
    fn normalizes_ids() {
        assert_eq!(
            normalize_account_id("b0f5860fdecb@im.bot"),
            "b0f5860fdecb-im-bot"
        );
        assert_eq!(normalize_account_id("../x"), "---x");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn files_are_private_and_no_temp_files_remain() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        store.save_credentials(&creds("a@im.bot", 1)).await.unwrap();
        store.save_credentials(&creds("a@im.bot", 5)).await.unwrap();
        let acct = store.account_dir("a@im.bot");
        let mode = fs::metadata(acct.join("credentials.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = fs::metadata(&acct).unwrap().permissions().mode();
        assert_eq!(dmode & 0o777, 0o700);
        let names: Vec<String> = fs::read_dir(&acct)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["credentials.json".to_owned()]);
        // The token is stored (it must be, to log in again) but never in Debug output.
        let c = store.load_credentials("a@im.bot").await.unwrap().unwrap();
        assert_eq!(c.saved_at_ms, 5);
        assert!(!format!("{c:?}").contains("TOKEN-SECRET"));
    }

    #[test]
    fn temp_names() {
        assert!(is_temp_name(".cursor.json.0123456789abcdef.tmp"));
        assert!(is_temp_name(".dedupe.json.ABCDEF0123456789.tmp"));
        assert!(!is_temp_name("cursor.json"));
        assert!(!is_temp_name(".cursor.json.tmp"));
        assert!(!is_temp_name(".cursor.json.0123.tmp"));
        assert!(!is_temp_name(".cursor.json.0123456789abcdeg.tmp"));
        assert!(!is_temp_name("..0123456789abcdef.tmp"));
        assert!(!is_temp_name("x.cursor.json.0123456789abcdef.tmp"));
    }

    #[tokio::test]
    async fn stale_temps_are_removed_when_an_account_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        // Opening an account that has no directory yet is fine.
        store.open_account("a@im.bot").await.unwrap();
        store
            .save_cursor("a@im.bot", &Secret::from("CURSOR"), None)
            .await
            .unwrap();
        let acct = store.account_dir("a@im.bot");
        for n in [
            ".cursor.json.0123456789abcdef.tmp",
            ".dedupe.json.fedcba9876543210.tmp",
        ] {
            fs::write(acct.join(n), b"{\"partial").unwrap();
        }
        fs::write(acct.join("notes.tmp"), b"mine").unwrap();
        store.open_account("a@im.bot").await.unwrap();
        let mut names: Vec<String> = fs::read_dir(&acct)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["cursor.json".to_owned(), "notes.tmp".to_owned()]
        );
        assert_eq!(
            store.load_cursor("a@im.bot").await.unwrap(),
            Some(Secret::from("CURSOR"))
        );
    }

    /// Each way a state file can be broken, as bytes (`None`: a directory in its place).
    fn corruptions() -> Vec<(&'static str, Option<&'static [u8]>)> {
        vec![
            ("empty", Some(b"")),
            ("truncated", Some(b"{\"version\": 1, \"get_upd")),
            ("wrong JSON type", Some(b"[1, 2, 3]")),
            ("wrong field type", Some(b"{\"version\": 1, \"keys\": 7, \"get_updates_buf\": 7, \"tokens\": 7, \"account_id\": 7}")),
            ("version zero", Some(b"{\"version\": 0}")),
            ("version not a number", Some(b"{\"version\": \"one\"}")),
            ("a directory", None),
        ]
    }

    fn break_file(path: &Path, how: Option<&[u8]>) {
        let _ = fs::remove_file(path);
        match how {
            Some(bytes) => fs::write(path, bytes).unwrap(),
            None => fs::create_dir_all(path.join("inside")).unwrap(),
        }
    }

    fn aside_copies(dir: &Path, name: &str) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}.corrupt-"))
            })
            .count()
    }

    #[tokio::test]
    async fn every_corrupt_file_is_moved_aside_and_read_as_missing() {
        for (way, bytes) in corruptions() {
            let dir = tempfile::tempdir().unwrap();
            let store = FileStore::new(dir.path());
            store.save_credentials(&creds("a@im.bot", 1)).await.unwrap();
            let acct = store.account_dir("a@im.bot");
            for name in ["cursor.json", "context_tokens.json", "dedupe.json"] {
                break_file(&acct.join(name), bytes);
            }
            assert_eq!(store.load_cursor("a@im.bot").await.unwrap(), None, "{way}");
            assert!(
                store
                    .load_context_tokens("a@im.bot")
                    .await
                    .unwrap()
                    .is_empty(),
                "{way}"
            );
            assert!(
                store.load_tombstones("a@im.bot").await.unwrap().is_empty(),
                "{way}"
            );
            for name in ["cursor.json", "context_tokens.json", "dedupe.json"] {
                assert_eq!(aside_copies(&acct, name), 1, "{way}: {name}");
                assert!(!acct.join(name).exists(), "{way}: {name}");
            }
            // The store works again.
            store
                .save_cursor("a@im.bot", &Secret::from("C"), None)
                .await
                .unwrap();
            assert_eq!(
                store.load_cursor("a@im.bot").await.unwrap(),
                Some(Secret::from("C"))
            );

            // Broken credentials: the account disappears (moved aside), others stay, and a
            // new login can save.
            store.save_credentials(&creds("b@im.bot", 2)).await.unwrap();
            break_file(&acct.join("credentials.json"), bytes);
            assert_eq!(
                store.accounts().await.unwrap(),
                vec!["b@im.bot".to_owned()],
                "{way}"
            );
            assert_eq!(aside_copies(&acct, "credentials.json"), 1, "{way}");
            assert_eq!(
                store.load_credentials("a@im.bot").await.unwrap(),
                None,
                "{way}"
            );
            store.save_credentials(&creds("a@im.bot", 3)).await.unwrap();
            assert_eq!(
                store.load_credentials("a@im.bot").await.unwrap(),
                Some(creds("a@im.bot", 3))
            );
        }
    }

    #[tokio::test]
    async fn a_directory_in_place_of_a_file_is_moved_aside_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let acct = store.account_dir("a@im.bot");
        fs::create_dir_all(acct.join("credentials.json").join("x")).unwrap();
        store.save_credentials(&creds("a@im.bot", 1)).await.unwrap();
        assert_eq!(
            store.load_credentials("a@im.bot").await.unwrap(),
            Some(creds("a@im.bot", 1))
        );
        assert_eq!(aside_copies(&acct, "credentials.json"), 1);
    }

    #[tokio::test]
    async fn a_newer_version_is_an_error_naming_the_file_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        store.save_credentials(&creds("a@im.bot", 1)).await.unwrap();
        let acct = store.account_dir("a@im.bot");
        fs::write(acct.join("cursor.json"), b"{\"version\": 99, \"x\": 1}").unwrap();
        let e = store.load_cursor("a@im.bot").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store);
        let msg = e.to_string();
        assert!(
            msg.contains("cursor.json") && msg.contains("newer ilink"),
            "{msg}"
        );
        assert!(msg.contains("upgrade ilink"), "{msg}");
        assert!(acct.join("cursor.json").exists());
        assert_eq!(aside_copies(&acct, "cursor.json"), 0);
    }

    #[tokio::test]
    async fn files_without_a_version_are_read_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let acct = store.account_dir("a@im.bot");
        fs::create_dir_all(&acct).unwrap();
        fs::write(
            acct.join("credentials.json"),
            br#"{"account_id":"a@im.bot","token":"T","saved_at_ms":4}"#,
        )
        .unwrap();
        fs::write(acct.join("cursor.json"), br#"{"get_updates_buf":"C"}"#).unwrap();
        fs::write(acct.join("context_tokens.json"), br#"{"u@im.wechat":"X"}"#).unwrap();
        fs::write(acct.join("dedupe.json"), br#"{"keys":["m:1"]}"#).unwrap();
        assert_eq!(store.accounts().await.unwrap(), vec!["a@im.bot".to_owned()]);
        assert_eq!(
            store.load_cursor("a@im.bot").await.unwrap(),
            Some(Secret::from("C"))
        );
        assert_eq!(
            store
                .load_context_tokens("a@im.bot")
                .await
                .unwrap()
                .get("u@im.wechat"),
            Some(&Secret::from("X"))
        );
        assert_eq!(
            store.load_tombstones("a@im.bot").await.unwrap(),
            vec!["m:1".to_owned()]
        );
        // Written back with a version.
        store
            .save_cursor("a@im.bot", &Secret::from("D"), None)
            .await
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(acct.join("cursor.json")).unwrap()).unwrap();
        assert_eq!(v["version"], 1);
    }

    #[tokio::test]
    async fn one_lease_holder_per_account() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let ttl = Duration::from_secs(30);
        let first = store
            .acquire_lease("a@im.bot", "h1", ttl)
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .acquire_lease("a@im.bot", "h2", ttl)
                .await
                .unwrap()
                .is_none()
        );
        // Even another store on the same directory (as another process would) is refused.
        let other = FileStore::new(dir.path());
        assert!(
            other
                .acquire_lease("a@im.bot", "h2", ttl)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.consumer_pid("a@im.bot"), Some(std::process::id()));
        assert_eq!(store.consumer_pid("b@im.bot"), None);
        // Another account is free.
        let _b = store
            .acquire_lease("b@im.bot", "h2", ttl)
            .await
            .unwrap()
            .unwrap();
        // Dropping the lease frees the lock (as the OS does when a process dies).
        let token = first.token();
        drop(first);
        assert_eq!(store.consumer_pid("a@im.bot"), None);
        let again = store
            .acquire_lease("a@im.bot", "h2", ttl)
            .await
            .unwrap()
            .unwrap();
        assert!(again.token() > token);
        let lease: serde_json::Value = serde_json::from_slice(
            &fs::read(store.account_dir("a@im.bot").join("lease.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(lease["token"], again.token());
        assert_eq!(lease["holder"], "h2");
    }

    #[tokio::test]
    async fn a_broken_lock_or_lease_file_does_not_block_a_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let acct = store.account_dir("a@im.bot");
        fs::create_dir_all(acct.join("consumer.lock").join("x")).unwrap();
        fs::write(acct.join("consumer.json"), b"{\"pid\": \"x").unwrap();
        let ttl = Duration::from_secs(30);
        let first = store
            .acquire_lease("a@im.bot", "h", ttl)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.consumer_pid("a@im.bot"), Some(std::process::id()));
        assert!(acct.join("consumer.lock").is_file());
        assert_eq!(aside_copies(&acct, "consumer.lock"), 1);
        store.release_lease(&first).await.unwrap();
        // A corrupt token counter restarts from the clock: still above the old token.
        fs::write(acct.join("lease.json"), b"{\"token\": ").unwrap();
        let second = store
            .acquire_lease("a@im.bot", "h", ttl)
            .await
            .unwrap()
            .unwrap();
        assert!(second.token() > first.token());
        assert_eq!(aside_copies(&acct, "lease.json"), 1);
    }

    #[tokio::test]
    async fn removing_an_account_keeps_its_lease_counter() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        store.save_credentials(&creds("a@im.bot", 1)).await.unwrap();
        let ttl = Duration::from_secs(30);
        let first = store
            .acquire_lease("a@im.bot", "h", ttl)
            .await
            .unwrap()
            .unwrap();
        store.release_lease(&first).await.unwrap();
        store.remove_account("a@im.bot").await.unwrap();
        assert!(store.accounts().await.unwrap().is_empty());
        let second = store
            .acquire_lease("a@im.bot", "h", ttl)
            .await
            .unwrap()
            .unwrap();
        assert!(second.token() > first.token());
    }

    #[test]
    fn file_store_works_outside_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let cursor = Secret::from("C");
        let f = store.save_cursor("a@im.bot", &cursor, None);
        futures_util::FutureExt::now_or_never(f).unwrap().unwrap();
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(784_111_777), "19941106T084937Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        let t = UtcDateTime::from_unix_secs(784_111_777);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (1994, 11, 6, 8, 49, 37)
        );
        // The largest input stays in range (no overflow, no panic).
        let t = UtcDateTime::from_unix_secs(u64::MAX);
        assert!(t.year > 9999 && (1..=12).contains(&t.month), "{t:?}");
    }

    #[tokio::test]
    async fn writable_check() {
        let dir = tempfile::tempdir().unwrap();
        FileStore::new(dir.path().join("new"))
            .check_writable()
            .await
            .unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let e = FileStore::new(file.join("under"))
            .check_writable()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store);
        assert!(e.to_string().contains("cannot be written"), "{e}");
    }
}
