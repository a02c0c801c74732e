//! The conformance suite of the [`StateStore`] contract: the checks any backend must pass
//! (in-memory, files, PostgreSQL, or yours). Behind the `conformance` feature.
//!
//! Each check gets a fresh, empty store and returns `Err` with what went wrong; nothing
//! panics. Run them all with [`run`], one with [`run_one`], or expand one `#[tokio::test]`
//! per check with [`store_conformance_tests!`](crate::store_conformance_tests):
//!
//! ```ignore
//! // In a test file of your backend (needs tokio with "macros" and "rt-multi-thread"):
//! use ilink_client::store::conformance::{Capabilities, Subject};
//!
//! ilink_client::store_conformance_tests!(
//!     || async { Subject::new(my_backend::Store::connect_for_tests().await) },
//!     Capabilities::default()
//! );
//! ```
//!
//! What is checked (see [`StateStore`] for the contract): round trips of every method,
//! accounts isolated, [`remove_account`](StateStore::remove_account), Unicode and large
//! values, idempotent saves, tombstone append and load order, outbox append and replace
//! order, fencing (a stale token's write fails with
//! [`ErrorKind::LeaseLost`](crate::ErrorKind::LeaseLost) and writes
//! nothing: cursor, tombstones, context tokens, outbox), lease tokens strictly increasing
//! (also after release and re-acquire), exclusivity, expiry and takeover, renew after a
//! takeover, release, [`leases`](StateStore::leases), fleet membership with expiry, and
//! concurrent appends from many tasks all kept. Checks that wait for an expiry sleep for a
//! few hundred milliseconds; they assert what happened, never how long it took.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ilink_proto::Secret;

use super::{Credentials, Fence, Lease, StateStore};

/// What a backend supports, for the checks that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Leases expire after their ttl without renewal, so another holder can take over.
    /// False for [`FileStore`](super::FileStore), whose lease is an OS lock held until
    /// release or process exit.
    pub lease_expiry: bool,
    /// Fleet members expire after their ttl without a heartbeat.
    pub membership_expiry: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            lease_expiry: true,
            membership_expiry: true,
        }
    }
}

impl Capabilities {
    /// Everything supported (the default).
    pub fn all() -> Self {
        Self::default()
    }

    /// Leases do not expire (like the [`FileStore`](super::FileStore)).
    #[must_use]
    pub fn without_lease_expiry(mut self) -> Self {
        self.lease_expiry = false;
        self
    }

    /// Fleet members do not expire.
    #[must_use]
    pub fn without_membership_expiry(mut self) -> Self {
        self.membership_expiry = false;
        self
    }
}

/// A store under test, with whatever must live as long as it (a temporary directory, a
/// database guard).
pub struct Subject {
    store: Arc<dyn StateStore>,
    _keep: Option<Box<dyn Any + Send + Sync>>,
}

impl Subject {
    /// A subject for `store`.
    pub fn new(store: impl StateStore) -> Self {
        Self {
            store: Arc::new(store),
            _keep: None,
        }
    }

    /// A subject for a shared store.
    pub fn shared(store: Arc<dyn StateStore>) -> Self {
        Self { store, _keep: None }
    }

    /// Keep `guard` alive as long as the subject (dropped after the check).
    #[must_use]
    pub fn keeping(mut self, guard: impl Any + Send + Sync) -> Self {
        self._keep = Some(Box::new(guard));
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject").finish_non_exhaustive()
    }
}

/// A check that failed: its name and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check's name (see [`CHECKS`]).
    pub check: &'static str,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "store conformance check `{}` failed: {}",
            self.check, self.message
        )
    }
}

impl std::error::Error for Failure {}

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type CheckFn = fn(Arc<dyn StateStore>, Capabilities) -> CheckFuture;

macro_rules! checks {
    ($d:tt; $($name:ident),* $(,)?) => {
        /// The names of every check, in the order [`run`] runs them.
        pub const CHECKS: &[&str] = &[$(stringify!($name)),*];

        fn lookup(name: &str) -> Option<CheckFn> {
            match name {
                $(stringify!($name) => Some(|s, c| Box::pin($name(s, c))),)*
                _ => None,
            }
        }

        /// Expands to one `#[tokio::test]` per conformance check (named after it), each on a
        /// fresh subject from `make` (a closure returning a future of a
        /// [`Subject`](crate::store::conformance::Subject)), with the given
        /// [`Capabilities`](crate::store::conformance::Capabilities). The calling crate needs
        /// tokio with the `macros` and `rt-multi-thread` features. See
        /// [`store::conformance`](crate::store::conformance).
        #[macro_export]
        macro_rules! store_conformance_tests {
            ($d make:expr, $d caps:expr $d(,)?) => {
                $d crate::__store_conformance_tests!($d make, $d caps; $($name),*);
            };
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_tests {
    ($make:expr, $caps:expr; $($name:ident),*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let subject = ($make)().await;
                if let ::std::result::Result::Err(f) =
                    $crate::store::conformance::run_one(stringify!($name), &subject, $caps).await
                {
                    ::std::panic!("{f}");
                }
            }
        )*
    };
}

checks!(
    $;
    credentials_round_trip,
    cursor_round_trip,
    context_tokens_round_trip,
    tombstones_append_and_load_in_order,
    outbox_appends_and_replaces_in_order,
    accounts_are_isolated,
    remove_account_forgets_everything,
    unicode_and_large_values_round_trip,
    saves_are_idempotent,
    fenced_cursor_writes,
    fenced_tombstone_writes,
    fenced_context_token_writes,
    fenced_outbox_writes,
    lease_tokens_strictly_increase,
    one_live_holder_per_account,
    an_expired_lease_can_be_taken_over,
    renew_fails_after_a_takeover,
    release_frees_the_lease,
    leases_lists_live_leases,
    fleet_membership,
    concurrent_appends_are_all_kept,
);

/// Runs the check `name` on `subject`.
///
/// # Errors
/// The [`Failure`] of the check (an unknown name is one too).
pub async fn run_one(name: &str, subject: &Subject, caps: Capabilities) -> Result<(), Failure> {
    let Some((check, f)) = CHECKS
        .iter()
        .find(|c| **c == name)
        .and_then(|c| lookup(c).map(|f| (*c, f)))
    else {
        return Err(Failure {
            check: "unknown",
            message: format!("no conformance check is called {name}"),
        });
    };
    f(subject.store.clone(), caps)
        .await
        .map_err(|message| Failure { check, message })
}

/// Runs every check, each on a fresh subject from `make`.
///
/// # Errors
/// Every [`Failure`], when at least one check failed.
pub async fn run<F, Fut>(mut make: F, caps: Capabilities) -> Result<(), Vec<Failure>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Subject>,
{
    let mut failures = Vec::new();
    for name in CHECKS {
        let subject = make().await;
        if let Err(f) = run_one(name, &subject, caps).await {
            failures.push(f);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

// ------------------------------------------------------------------ helpers

type Check = Result<(), String>;

/// Fails the check with a message unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// `?` for store calls: a store error fails the check, saying which call.
fn ok<T>(what: &str, r: crate::Result<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what} failed: {e} ({:?})", e.kind()))
}

const A: &str = "conf-a@im.bot";
const B: &str = "conf-b@im.bot";
const TTL: Duration = Duration::from_secs(30);
const SHORT_TTL: Duration = Duration::from_millis(150);
const PAST_SHORT_TTL: Duration = Duration::from_millis(500);

fn creds(account: &str, at: u64) -> Credentials {
    Credentials {
        account_id: account.to_owned(),
        token: Secret::from(format!("token-of-{account}-{at}")),
        base_url: Some("http://127.0.0.1:1".to_owned()),
        user_id: Some(format!("owner-{at}@im.wechat")),
        saved_at_ms: at,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn tokens(pairs: &[(&str, &str)]) -> HashMap<String, Secret> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Secret::from(*v)))
        .collect()
}

async fn acquire(
    store: &dyn StateStore,
    account: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Lease, String> {
    ok(
        "acquire_lease",
        store.acquire_lease(account, holder, ttl).await,
    )?
    .ok_or_else(|| format!("acquire_lease({account}, {holder}) on a free lease returned None"))
}

/// A lease of `A` whose fence is stale: `A` was released and re-acquired by another holder.
async fn stale_and_current(store: &dyn StateStore) -> Result<(Fence, Fence), String> {
    let old = acquire(store, A, "holder-1", TTL).await?;
    ok("release_lease", store.release_lease(&old).await)?;
    let new = acquire(store, A, "holder-2", TTL).await?;
    ensure!(
        new.token() > old.token(),
        "a new acquisition got token {} after {}",
        new.token(),
        old.token()
    );
    Ok((old.fence(), new.fence()))
}

fn expect_lease_lost(what: &str, r: crate::Result<()>) -> Check {
    match r {
        Err(e) if e.is_lease_lost() => Ok(()),
        Err(e) => Err(format!(
            "{what} with a stale fence failed with {:?} ({e}), not LeaseLost",
            e.kind()
        )),
        Ok(()) => Err(format!("{what} with a stale fence was accepted")),
    }
}

// ------------------------------------------------------------------ the checks

async fn credentials_round_trip(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    ensure!(
        ok("accounts", store.accounts().await)?.is_empty(),
        "a new store lists accounts"
    );
    ensure!(
        ok("load_credentials", store.load_credentials(A).await)?.is_none(),
        "a new store has credentials"
    );
    ok(
        "save_credentials",
        store.save_credentials(&creds(B, 1)).await,
    )?;
    ok(
        "save_credentials",
        store.save_credentials(&creds(A, 2)).await,
    )?;
    let got = ok("load_credentials", store.load_credentials(A).await)?;
    ensure!(got == Some(creds(A, 2)), "credentials came back as {got:?}");
    let accounts = ok("accounts", store.accounts().await)?;
    ensure!(
        accounts == strings(&[B, A]),
        "accounts are {accounts:?}, not [{B}, {A}] (oldest login first)"
    );
    // Replacing keeps one entry.
    ok(
        "save_credentials",
        store.save_credentials(&creds(A, 3)).await,
    )?;
    let got = ok("load_credentials", store.load_credentials(A).await)?;
    ensure!(
        got == Some(creds(A, 3)),
        "replaced credentials came back as {got:?}"
    );
    let accounts = ok("accounts", store.accounts().await)?;
    ensure!(
        accounts.len() == 2,
        "accounts after a replace: {accounts:?}"
    );
    Ok(())
}

async fn cursor_round_trip(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    ensure!(
        ok("load_cursor", store.load_cursor(A).await)?.is_none(),
        "a new store has a cursor"
    );
    ok(
        "save_cursor",
        store.save_cursor(A, &Secret::from("C1"), None).await,
    )?;
    let got = ok("load_cursor", store.load_cursor(A).await)?;
    ensure!(
        got == Some(Secret::from("C1")),
        "the cursor came back wrong"
    );
    ok(
        "save_cursor",
        store.save_cursor(A, &Secret::from("C2"), None).await,
    )?;
    let got = ok("load_cursor", store.load_cursor(A).await)?;
    ensure!(
        got == Some(Secret::from("C2")),
        "an overwritten cursor came back wrong"
    );
    Ok(())
}

async fn context_tokens_round_trip(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    ensure!(
        ok("load_context_tokens", store.load_context_tokens(A).await)?.is_empty(),
        "a new store has context tokens"
    );
    let two = tokens(&[("u1@im.wechat", "T1"), ("u2@im.wechat", "T2")]);
    ok(
        "save_context_tokens",
        store.save_context_tokens(A, &two, None).await,
    )?;
    let got = ok("load_context_tokens", store.load_context_tokens(A).await)?;
    ensure!(
        got == two,
        "the context tokens came back wrong ({} entries)",
        got.len()
    );
    // The whole map is replaced, not merged.
    let one = tokens(&[("u3@im.wechat", "T3")]);
    ok(
        "save_context_tokens",
        store.save_context_tokens(A, &one, None).await,
    )?;
    let got = ok("load_context_tokens", store.load_context_tokens(A).await)?;
    ensure!(
        got == one,
        "save_context_tokens merged instead of replacing ({} entries)",
        got.len()
    );
    Ok(())
}

async fn tombstones_append_and_load_in_order(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    ensure!(
        ok("load_tombstones", store.load_tombstones(A).await)?.is_empty(),
        "a new store has tombstones"
    );
    ok(
        "append_tombstones",
        store
            .append_tombstones(A, &strings(&["m:1", "m:2"]), None)
            .await,
    )?;
    ok(
        "append_tombstones",
        store.append_tombstones(A, &strings(&["m:3"]), None).await,
    )?;
    ok(
        "append_tombstones",
        store.append_tombstones(A, &[], None).await,
    )?;
    let got = ok("load_tombstones", store.load_tombstones(A).await)?;
    ensure!(
        got == strings(&["m:1", "m:2", "m:3"]),
        "appended tombstones came back as {got:?}"
    );
    ok(
        "save_tombstones",
        store
            .save_tombstones(A, &strings(&["m:9", "m:3"]), None)
            .await,
    )?;
    let got = ok("load_tombstones", store.load_tombstones(A).await)?;
    ensure!(
        got == strings(&["m:9", "m:3"]),
        "saved tombstones came back as {got:?}"
    );
    ok(
        "append_tombstones",
        store.append_tombstones(A, &strings(&["m:4"]), None).await,
    )?;
    let got = ok("load_tombstones", store.load_tombstones(A).await)?;
    ensure!(
        got == strings(&["m:9", "m:3", "m:4"]),
        "tombstones appended after a save came back as {got:?}"
    );
    Ok(())
}

async fn outbox_appends_and_replaces_in_order(
    store: Arc<dyn StateStore>,
    _: Capabilities,
) -> Check {
    ensure!(
        ok("load_outbox", store.load_outbox(A).await)?.is_empty(),
        "a new store has an outbox"
    );
    for r in ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"] {
        ok("append_outbox", store.append_outbox(A, r, None).await)?;
    }
    let got = ok("load_outbox", store.load_outbox(A).await)?;
    ensure!(
        got == strings(&["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]),
        "appended records came back as {got:?}"
    );
    ok(
        "replace_outbox",
        store
            .replace_outbox(A, &strings(&["{\"n\":2}"]), None)
            .await,
    )?;
    ok(
        "append_outbox",
        store.append_outbox(A, "{\"n\":4}", None).await,
    )?;
    let got = ok("load_outbox", store.load_outbox(A).await)?;
    ensure!(
        got == strings(&["{\"n\":2}", "{\"n\":4}"]),
        "records after a replace and an append came back as {got:?}"
    );
    ok("replace_outbox", store.replace_outbox(A, &[], None).await)?;
    ensure!(
        ok("load_outbox", store.load_outbox(A).await)?.is_empty(),
        "replace with nothing left records"
    );
    Ok(())
}

/// Writes every kind of state of `account`, marked with `tag`.
async fn fill(store: &dyn StateStore, account: &str, tag: &str, at: u64) -> Check {
    ok(
        "save_credentials",
        store.save_credentials(&creds(account, at)).await,
    )?;
    ok(
        "save_cursor",
        store
            .save_cursor(account, &Secret::from(format!("cursor-{tag}")), None)
            .await,
    )?;
    let t = tokens(&[(&format!("{tag}@im.wechat"), tag)]);
    ok(
        "save_context_tokens",
        store.save_context_tokens(account, &t, None).await,
    )?;
    ok(
        "append_tombstones",
        store
            .append_tombstones(account, &[format!("m:{tag}")], None)
            .await,
    )?;
    ok(
        "append_outbox",
        store
            .append_outbox(account, &format!("{{\"tag\":\"{tag}\"}}"), None)
            .await,
    )?;
    Ok(())
}

/// Checks that `account` holds exactly what [`fill`] wrote with `tag`.
async fn holds(store: &dyn StateStore, account: &str, tag: &str, at: u64) -> Check {
    let c = ok("load_credentials", store.load_credentials(account).await)?;
    ensure!(
        c == Some(creds(account, at)),
        "{account}: credentials {c:?}"
    );
    let cur = ok("load_cursor", store.load_cursor(account).await)?;
    ensure!(
        cur == Some(Secret::from(format!("cursor-{tag}"))),
        "{account}: another account's cursor"
    );
    let t = ok(
        "load_context_tokens",
        store.load_context_tokens(account).await,
    )?;
    ensure!(
        t == tokens(&[(&format!("{tag}@im.wechat"), tag)]),
        "{account}: context tokens mixed up"
    );
    let k = ok("load_tombstones", store.load_tombstones(account).await)?;
    ensure!(k == vec![format!("m:{tag}")], "{account}: tombstones {k:?}");
    let o = ok("load_outbox", store.load_outbox(account).await)?;
    ensure!(
        o == vec![format!("{{\"tag\":\"{tag}\"}}")],
        "{account}: outbox {o:?}"
    );
    Ok(())
}

async fn is_empty(store: &dyn StateStore, account: &str) -> Check {
    ensure!(
        ok("load_credentials", store.load_credentials(account).await)?.is_none(),
        "{account} has credentials"
    );
    ensure!(
        ok("load_cursor", store.load_cursor(account).await)?.is_none(),
        "{account} has a cursor"
    );
    ensure!(
        ok(
            "load_context_tokens",
            store.load_context_tokens(account).await
        )?
        .is_empty(),
        "{account} has context tokens"
    );
    ensure!(
        ok("load_tombstones", store.load_tombstones(account).await)?.is_empty(),
        "{account} has tombstones"
    );
    ensure!(
        ok("load_outbox", store.load_outbox(account).await)?.is_empty(),
        "{account} has an outbox"
    );
    Ok(())
}

async fn accounts_are_isolated(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    fill(store.as_ref(), A, "a", 1).await?;
    is_empty(store.as_ref(), B).await?;
    fill(store.as_ref(), B, "b", 2).await?;
    holds(store.as_ref(), A, "a", 1).await?;
    holds(store.as_ref(), B, "b", 2).await
}

async fn remove_account_forgets_everything(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    fill(store.as_ref(), A, "a", 1).await?;
    fill(store.as_ref(), B, "b", 2).await?;
    ok("remove_account", store.remove_account(A).await)?;
    is_empty(store.as_ref(), A).await?;
    holds(store.as_ref(), B, "b", 2).await?;
    let accounts = ok("accounts", store.accounts().await)?;
    ensure!(
        accounts == strings(&[B]),
        "accounts after remove_account: {accounts:?}"
    );
    ok(
        "remove_account of an unknown account",
        store.remove_account("conf-none@im.bot").await,
    )?;
    Ok(())
}

async fn unicode_and_large_values_round_trip(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    let odd = "ünï\u{1F600}\u{4E2D}\"quote\" back\\slash\ttab \u{200B}";
    let big: String = odd.repeat(1 + (1 << 20) / odd.len());
    ok(
        "save_cursor",
        store.save_cursor(A, &Secret::from(big.clone()), None).await,
    )?;
    let got = ok("load_cursor", store.load_cursor(A).await)?;
    ensure!(
        got == Some(Secret::from(big.clone())),
        "a 1 MiB Unicode cursor came back changed"
    );
    let t: HashMap<String, Secret> = (0..200)
        .map(|i| {
            (
                format!("{odd}-{i}@im.wechat"),
                Secret::from(format!("{odd}{i}")),
            )
        })
        .collect();
    ok(
        "save_context_tokens",
        store.save_context_tokens(A, &t, None).await,
    )?;
    let got = ok("load_context_tokens", store.load_context_tokens(A).await)?;
    ensure!(got == t, "Unicode context tokens came back changed");
    let keys: Vec<String> = (0..2000).map(|i| format!("f:{odd}:{i}")).collect();
    ok(
        "append_tombstones",
        store.append_tombstones(A, &keys, None).await,
    )?;
    let got = ok("load_tombstones", store.load_tombstones(A).await)?;
    ensure!(got == keys, "2000 Unicode tombstones came back changed");
    let record: String = format!(
        "{{\"text\":\"{}\"}}",
        odd.replace(['"', '\\'], "").repeat(8 * 1024)
    );
    ok("append_outbox", store.append_outbox(A, &record, None).await)?;
    let got = ok("load_outbox", store.load_outbox(A).await)?;
    ensure!(
        got == vec![record],
        "a large Unicode outbox record came back changed"
    );
    let mut c = creds(A, 7);
    c.user_id = Some(format!("{odd}@im.wechat"));
    ok("save_credentials", store.save_credentials(&c).await)?;
    let got = ok("load_credentials", store.load_credentials(A).await)?;
    ensure!(got == Some(c), "Unicode credentials came back changed");
    Ok(())
}

async fn saves_are_idempotent(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    for _ in 0..2 {
        ok(
            "save_credentials",
            store.save_credentials(&creds(A, 1)).await,
        )?;
        ok(
            "save_cursor",
            store.save_cursor(A, &Secret::from("C"), None).await,
        )?;
        ok(
            "save_context_tokens",
            store
                .save_context_tokens(A, &tokens(&[("u", "T")]), None)
                .await,
        )?;
        ok(
            "save_tombstones",
            store.save_tombstones(A, &strings(&["m:1"]), None).await,
        )?;
        ok(
            "replace_outbox",
            store.replace_outbox(A, &strings(&["r"]), None).await,
        )?;
    }
    let accounts = ok("accounts", store.accounts().await)?;
    ensure!(
        accounts == strings(&[A]),
        "saving credentials twice listed {accounts:?}"
    );
    ensure!(
        ok("load_credentials", store.load_credentials(A).await)? == Some(creds(A, 1)),
        "credentials changed"
    );
    ensure!(
        ok("load_cursor", store.load_cursor(A).await)? == Some(Secret::from("C")),
        "cursor changed"
    );
    ensure!(
        ok("load_context_tokens", store.load_context_tokens(A).await)? == tokens(&[("u", "T")]),
        "tokens changed"
    );
    let k = ok("load_tombstones", store.load_tombstones(A).await)?;
    ensure!(k == strings(&["m:1"]), "saving tombstones twice gave {k:?}");
    let o = ok("load_outbox", store.load_outbox(A).await)?;
    ensure!(
        o == strings(&["r"]),
        "replacing the outbox twice gave {o:?}"
    );
    Ok(())
}

async fn fenced_cursor_writes(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    // No lease was ever granted: a fence proves nothing.
    let never = Fence {
        account: A.to_owned(),
        token: 1,
    };
    expect_lease_lost(
        "save_cursor (no lease granted)",
        store.save_cursor(A, &Secret::from("X"), Some(&never)).await,
    )?;
    ensure!(
        ok("load_cursor", store.load_cursor(A).await)?.is_none(),
        "a refused save_cursor wrote"
    );
    let (stale, current) = stale_and_current(store.as_ref()).await?;
    ok(
        "save_cursor (current fence)",
        store
            .save_cursor(A, &Secret::from("C1"), Some(&current))
            .await,
    )?;
    expect_lease_lost(
        "save_cursor",
        store
            .save_cursor(A, &Secret::from("STALE"), Some(&stale))
            .await,
    )?;
    let got = ok("load_cursor", store.load_cursor(A).await)?;
    ensure!(
        got == Some(Secret::from("C1")),
        "a refused save_cursor wrote"
    );
    ok(
        "save_cursor (unfenced)",
        store.save_cursor(A, &Secret::from("C2"), None).await,
    )?;
    ensure!(
        ok("load_cursor", store.load_cursor(A).await)? == Some(Secret::from("C2")),
        "an unfenced save_cursor was lost"
    );
    Ok(())
}

async fn fenced_tombstone_writes(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    let (stale, current) = stale_and_current(store.as_ref()).await?;
    ok(
        "append_tombstones (current fence)",
        store
            .append_tombstones(A, &strings(&["m:1"]), Some(&current))
            .await,
    )?;
    expect_lease_lost(
        "append_tombstones",
        store
            .append_tombstones(A, &strings(&["m:stale"]), Some(&stale))
            .await,
    )?;
    expect_lease_lost(
        "save_tombstones",
        store
            .save_tombstones(A, &strings(&["m:stale"]), Some(&stale))
            .await,
    )?;
    let got = ok("load_tombstones", store.load_tombstones(A).await)?;
    ensure!(
        got == strings(&["m:1"]),
        "refused tombstone writes wrote: {got:?}"
    );
    ok(
        "save_tombstones (current fence)",
        store
            .save_tombstones(A, &strings(&["m:2"]), Some(&current))
            .await,
    )?;
    ensure!(
        ok("load_tombstones", store.load_tombstones(A).await)? == strings(&["m:2"]),
        "a fenced save_tombstones was lost"
    );
    Ok(())
}

async fn fenced_context_token_writes(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    let (stale, current) = stale_and_current(store.as_ref()).await?;
    let good = tokens(&[("u@im.wechat", "GOOD")]);
    ok(
        "save_context_tokens (current fence)",
        store.save_context_tokens(A, &good, Some(&current)).await,
    )?;
    let bad = tokens(&[("u@im.wechat", "STALE")]);
    expect_lease_lost(
        "save_context_tokens",
        store.save_context_tokens(A, &bad, Some(&stale)).await,
    )?;
    ensure!(
        ok("load_context_tokens", store.load_context_tokens(A).await)? == good,
        "a refused save_context_tokens wrote"
    );
    Ok(())
}

async fn fenced_outbox_writes(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    let (stale, current) = stale_and_current(store.as_ref()).await?;
    ok(
        "append_outbox (current fence)",
        store.append_outbox(A, "r1", Some(&current)).await,
    )?;
    expect_lease_lost(
        "append_outbox",
        store.append_outbox(A, "stale", Some(&stale)).await,
    )?;
    expect_lease_lost(
        "replace_outbox",
        store
            .replace_outbox(A, &strings(&["stale"]), Some(&stale))
            .await,
    )?;
    let got = ok("load_outbox", store.load_outbox(A).await)?;
    ensure!(
        got == strings(&["r1"]),
        "refused outbox writes wrote: {got:?}"
    );
    ok(
        "replace_outbox (current fence)",
        store
            .replace_outbox(A, &strings(&["r2"]), Some(&current))
            .await,
    )?;
    ensure!(
        ok("load_outbox", store.load_outbox(A).await)? == strings(&["r2"]),
        "a fenced replace_outbox was lost"
    );
    Ok(())
}

async fn lease_tokens_strictly_increase(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    let mut last = 0u64;
    for (i, holder) in ["h1", "h1", "h2", "h3", "h1"].iter().enumerate() {
        let lease = acquire(store.as_ref(), A, holder, TTL).await?;
        ensure!(
            lease.token() > last,
            "acquisition {i} (holder {holder}) got token {} after {last}",
            lease.token()
        );
        ensure!(
            lease.account() == A && lease.holder() == *holder,
            "the lease names {} / {}",
            lease.account(),
            lease.holder()
        );
        last = lease.token();
        ok("release_lease", store.release_lease(&lease).await)?;
    }
    // Tokens are per account: another account's acquisitions do not matter, but must be
    // positive and increasing too.
    let b1 = acquire(store.as_ref(), B, "h1", TTL).await?;
    ok("release_lease", store.release_lease(&b1).await)?;
    let b2 = acquire(store.as_ref(), B, "h2", TTL).await?;
    ensure!(
        b2.token() > b1.token(),
        "account {B}: token {} after {}",
        b2.token(),
        b1.token()
    );
    Ok(())
}

async fn one_live_holder_per_account(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    let first = acquire(store.as_ref(), A, "h1", TTL).await?;
    let second = ok("acquire_lease", store.acquire_lease(A, "h2", TTL).await)?;
    ensure!(
        second.is_none(),
        "a second holder got a live lease: {second:?}"
    );
    // The holder itself renews by acquiring again: same token.
    let again = acquire(store.as_ref(), A, "h1", TTL).await?;
    ensure!(
        again.token() == first.token(),
        "re-acquiring by its holder changed the token ({} to {})",
        first.token(),
        again.token()
    );
    // Another account is free.
    acquire(store.as_ref(), B, "h2", TTL).await?;
    ensure!(
        ok("renew_lease", store.renew_lease(&first, TTL).await)?,
        "renewing a held lease returned false"
    );
    Ok(())
}

async fn an_expired_lease_can_be_taken_over(
    store: Arc<dyn StateStore>,
    caps: Capabilities,
) -> Check {
    if !caps.lease_expiry {
        return Ok(());
    }
    let first = acquire(store.as_ref(), A, "h1", SHORT_TTL).await?;
    tokio::time::sleep(PAST_SHORT_TTL).await;
    let second = ok("acquire_lease", store.acquire_lease(A, "h2", TTL).await)?
        .ok_or("an expired lease could not be taken over")?;
    ensure!(
        second.token() > first.token(),
        "the takeover got token {} after {}",
        second.token(),
        first.token()
    );
    ensure!(
        !ok("renew_lease", store.renew_lease(&first, TTL).await)?,
        "the expired holder renewed after a takeover"
    );
    expect_lease_lost(
        "save_cursor",
        store
            .save_cursor(A, &Secret::from("X"), Some(&first.fence()))
            .await,
    )?;
    ensure!(
        ok("renew_lease", store.renew_lease(&second, TTL).await)?,
        "the new holder could not renew"
    );
    Ok(())
}

async fn renew_fails_after_a_takeover(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    let first = acquire(store.as_ref(), A, "h1", TTL).await?;
    ensure!(
        ok("renew_lease", store.renew_lease(&first, TTL).await)?,
        "renewing a held lease returned false"
    );
    ok("release_lease", store.release_lease(&first).await)?;
    let second = acquire(store.as_ref(), A, "h2", TTL).await?;
    ensure!(
        !ok("renew_lease", store.renew_lease(&first, TTL).await)?,
        "a lease renewed after another holder took it"
    );
    ensure!(
        ok("renew_lease", store.renew_lease(&second, TTL).await)?,
        "the new holder could not renew"
    );
    // The old lease's renewal did not give it back.
    ensure!(
        ok("acquire_lease", store.acquire_lease(A, "h1", TTL).await)?.is_none(),
        "the old holder took the lease back"
    );
    Ok(())
}

async fn release_frees_the_lease(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    let first = acquire(store.as_ref(), A, "h1", TTL).await?;
    ok("release_lease", store.release_lease(&first).await)?;
    ok("release_lease (again)", store.release_lease(&first).await)?;
    let second = ok("acquire_lease", store.acquire_lease(A, "h2", TTL).await)?
        .ok_or("a released lease could not be taken at once")?;
    // Releasing the old lease again must not free the new holder's.
    ok("release_lease (stale)", store.release_lease(&first).await)?;
    ensure!(
        ok("acquire_lease", store.acquire_lease(A, "h3", TTL).await)?.is_none(),
        "releasing a stale lease freed the current one"
    );
    ensure!(
        ok("renew_lease", store.renew_lease(&second, TTL).await)?,
        "releasing a stale lease ended the current one"
    );
    Ok(())
}

async fn leases_lists_live_leases(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    let before = SystemTime::now() - Duration::from_secs(5);
    let a = acquire(store.as_ref(), A, "holder-a", TTL).await?;
    let b = acquire(store.as_ref(), B, "holder-b", TTL).await?;
    let now = SystemTime::now();
    let all = ok("leases", store.leases().await)?;
    for lease in [&a, &b] {
        let info = all
            .iter()
            .find(|l| l.account == lease.account())
            .ok_or_else(|| format!("leases() does not list {}", lease.account()))?;
        ensure!(
            info.holder == lease.holder(),
            "leases() names holder {} for {}",
            info.holder,
            lease.account()
        );
        ensure!(
            info.token == lease.token(),
            "leases() gives token {} for {}",
            info.token,
            lease.account()
        );
        ensure!(
            info.expires > now,
            "leases() gives a live lease of {} an expiry in the past",
            lease.account()
        );
        ensure!(
            info.since >= before && info.since <= now + Duration::from_secs(5),
            "leases() gives {} an odd start time",
            lease.account()
        );
    }
    ok("release_lease", store.release_lease(&a).await)?;
    let all = ok("leases", store.leases().await)?;
    let now = SystemTime::now();
    ensure!(
        !all.iter()
            .any(|l| l.account == A && l.token == a.token() && l.expires > now),
        "leases() still lists a released lease as live"
    );
    Ok(())
}

async fn fleet_membership(store: Arc<dyn StateStore>, caps: Capabilities) -> Check {
    let m = ok("join_fleet", store.join_fleet("member-b", TTL).await)?;
    ensure!(m == strings(&["member-b"]), "members after one join: {m:?}");
    let m = ok("join_fleet", store.join_fleet("member-a", TTL).await)?;
    ensure!(
        m == strings(&["member-a", "member-b"]),
        "members (sorted) after two joins: {m:?}"
    );
    let m = ok("join_fleet", store.join_fleet("member-a", TTL).await)?;
    ensure!(
        m == strings(&["member-a", "member-b"]),
        "a heartbeat changed the members: {m:?}"
    );
    ok("leave_fleet", store.leave_fleet("member-a").await)?;
    ok("leave_fleet (unknown)", store.leave_fleet("member-x").await)?;
    let m = ok("join_fleet", store.join_fleet("member-b", TTL).await)?;
    ensure!(m == strings(&["member-b"]), "members after a leave: {m:?}");
    if caps.membership_expiry {
        ok("join_fleet", store.join_fleet("member-c", SHORT_TTL).await)?;
        tokio::time::sleep(PAST_SHORT_TTL).await;
        let m = ok("join_fleet", store.join_fleet("member-b", TTL).await)?;
        ensure!(
            m == strings(&["member-b"]),
            "an expired member is still listed: {m:?}"
        );
    }
    Ok(())
}

async fn concurrent_appends_are_all_kept(store: Arc<dyn StateStore>, _: Capabilities) -> Check {
    const TASKS: usize = 16;
    const EACH: usize = 8;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..EACH {
                store
                    .append_tombstones(A, &[format!("m:{t}:{i}")], None)
                    .await?;
                store
                    .append_outbox(A, &format!("{{\"t\":{t},\"i\":{i}}}"), None)
                    .await?;
            }
            crate::Result::Ok(())
        }));
    }
    for h in handles {
        match h.await {
            Ok(r) => ok("a concurrent append", r)?,
            Err(e) => return Err(format!("an appending task failed: {e}")),
        }
    }
    let keys = ok("load_tombstones", store.load_tombstones(A).await)?;
    let records = ok("load_outbox", store.load_outbox(A).await)?;
    let unique: HashSet<&String> = keys.iter().collect();
    ensure!(
        keys.len() == TASKS * EACH && unique.len() == TASKS * EACH,
        "{} of {} concurrently appended tombstones were kept",
        unique.len(),
        TASKS * EACH
    );
    ensure!(
        records.len() == TASKS * EACH,
        "{} of {} concurrently appended outbox records were kept",
        records.len(),
        TASKS * EACH
    );
    // Each task's own appends keep their order.
    for t in 0..TASKS {
        let mine: Vec<&String> = keys
            .iter()
            .filter(|k| k.starts_with(&format!("m:{t}:")))
            .collect();
        let want: Vec<String> = (0..EACH).map(|i| format!("m:{t}:{i}")).collect();
        ensure!(
            mine.iter()
                .map(|s| s.as_str())
                .eq(want.iter().map(String::as_str)),
            "task {t}'s tombstones came back out of order"
        );
    }
    Ok(())
}
