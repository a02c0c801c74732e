#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;
mod schema;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use ilink_client::store::{Credentials, Fence, Lease, LeaseInfo, StateStore};
use ilink_client::{Error, ErrorKind, Result};
use ilink_proto::Secret;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

pub use config::{
    DEFAULT_APPLICATION_NAME, DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, PgConfig, TlsMode,
};
pub use error::{PgError, PgErrorKind, pg_error_kind};
pub use schema::SCHEMA_VERSION;

use error::{from_pg, from_pool, is_connection_lost, store_error};

/// How long a caller waits for a free pooled connection before an error.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// The longest lease or membership TTL stored (longer ones are cut to it): ten years.
const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Attempts of one idempotent operation whose connection turned out to be dead.
const ATTEMPTS: usize = 3;

/// A [`StateStore`] in PostgreSQL: every account's state in a handful of `ilink_*` tables,
/// shared by any number of processes (see the crate docs for the tables, what is stored in
/// clear, and the fencing of writes).
///
/// Cheap to clone (the clones share one connection pool). `Debug` shows where it connects,
/// never the password.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: PgConfig,
    round_trips: AtomicU64,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.inner.pool.status();
        f.debug_struct("PgStore")
            .field("config", &self.inner.config)
            .field("connections", &status.size)
            .field("round_trips", &self.round_trips())
            .finish()
    }
}

/// A parameter with its PostgreSQL type (every statement is sent with typed parameters in
/// one round trip: no separate prepare).
type Param<'a> = (&'a (dyn ToSql + Sync), Type);

impl PgStore {
    /// Connects to the database at `url` (see [`PgConfig::from_url`] for its form), and
    /// creates or upgrades the `ilink_*` tables if needed (see the crate docs).
    ///
    /// Errors ([`pg_error_kind`] tells them apart): a bad URL ([`ErrorKind::InvalidInput`]),
    /// an unreachable server ([`PgErrorKind::Connect`]), a refused login
    /// ([`PgErrorKind::Auth`]), a missing database ([`PgErrorKind::NoDatabase`]), a TLS
    /// failure ([`PgErrorKind::Tls`]), a schema newer than this build
    /// ([`PgErrorKind::SchemaTooNew`]), or missing privileges ([`PgErrorKind::Permission`]).
    pub async fn connect(url: &str) -> Result<PgStore> {
        Self::connect_with(PgConfig::from_url(url)?).await
    }

    /// Like [`connect`](Self::connect), with settings built by hand.
    pub async fn connect_with(config: PgConfig) -> Result<PgStore> {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config.rustls_config()?);
        let manager = Manager::from_config(
            config.inner.clone(),
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let connect_timeout = config
            .inner
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::InvalidInput, "setting up the connection pool").with_source(e)
            })?;
        let store = PgStore {
            inner: Arc::new(Inner {
                pool,
                config,
                round_trips: AtomicU64::new(0),
            }),
        };
        let what = format!(
            "connecting to PostgreSQL at {}",
            store.inner.config.describe()
        );
        let mut client = store
            .inner
            .pool
            .get()
            .await
            .map_err(|e| from_pool(&what, e))?;
        let (applied, trips) = schema::migrate(&mut client).await?;
        store.inner.round_trips.fetch_add(trips, Ordering::Relaxed);
        tracing::debug!(
            server = %store.inner.config.describe(),
            applied,
            "connected to the PostgreSQL state store"
        );
        Ok(store)
    }

    /// The number of statements sent to the server so far (each is one network round trip;
    /// opening connections is not counted). For benchmarks and tests.
    pub fn round_trips(&self) -> u64 {
        self.inner.round_trips.load(Ordering::Relaxed)
    }

    /// The settings this store connects with.
    pub fn config(&self) -> &PgConfig {
        &self.inner.config
    }

    /// The schema version recorded in the database (this build writes [`SCHEMA_VERSION`]).
    pub async fn schema_version(&self) -> Result<i32> {
        let rows = self
            .query(
                "reading the ilink schema version",
                true,
                "SELECT coalesce(max(version), 0) FROM ilink_schema_version",
                &[],
            )
            .await?;
        Ok(rows.first().map(|r| r.get::<_, i32>(0)).unwrap_or(0))
    }

    /// Closes every pooled connection; later calls fail. Dropping the last clone does the
    /// same.
    pub fn close(&self) {
        self.inner.pool.close();
    }

    /// Runs one statement on a pooled connection. `idempotent`: when the connection turns
    /// out to be dead (the server restarted), try again on another, up to [`ATTEMPTS`] in all.
    async fn query(
        &self,
        what: &str,
        idempotent: bool,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>> {
        let mut attempt = 1;
        loop {
            let client = self
                .inner
                .pool
                .get()
                .await
                .map_err(|e| from_pool(what, e))?;
            self.inner.round_trips.fetch_add(1, Ordering::Relaxed);
            match client.query_typed(sql, params).await {
                Ok(rows) => return Ok(rows),
                Err(e) if idempotent && attempt < ATTEMPTS && is_connection_lost(&e) => {
                    tracing::debug!(error = %e, what, "database connection lost; retrying");
                    // A closed client is not recycled: the pool opens a new connection.
                    drop(client);
                    attempt += 1;
                }
                Err(e) => return Err(from_pg(what, e)),
            }
        }
    }

    /// Runs a fenced write: `sql` starts with [`FENCE_CTE`] (parameters `$1` account, `$2`
    /// token) and returns one row with the boolean `ok`. `false`: the fence is stale and
    /// nothing was written.
    async fn fenced(
        &self,
        what: &str,
        idempotent: bool,
        account: &str,
        fence: Option<&Fence>,
        sql: &str,
        more: &[Param<'_>],
    ) -> Result<()> {
        let token = match fence {
            None => None,
            Some(f) => match fence_token(account, f) {
                Some(t) => Some(t),
                None => return Err(lease_lost(what, account, f)),
            },
        };
        let mut params: Vec<Param<'_>> = Vec::with_capacity(2 + more.len());
        params.push((&account, Type::TEXT));
        params.push((&token, Type::INT8));
        params.extend(more.iter().cloned());
        let rows = self.query(what, idempotent, sql, &params).await?;
        let ok = rows.first().is_some_and(|r| r.get::<_, bool>(0));
        match (ok, fence) {
            (true, _) => Ok(()),
            (false, Some(f)) => Err(lease_lost(what, account, f)),
            (false, None) => Err(store_error(
                what.to_owned(),
                PgErrorKind::Query,
                "the statement did not confirm the write",
            )),
        }
    }

    /// A fenced write (see [`fenced`](Self::fenced)) whose `$3` is `items` as `bytea[]`
    /// (tombstones, outbox records): the account id is checked first, then each item with
    /// `check`. Retried on a lost connection (every such write is safe to repeat).
    async fn fenced_list(
        &self,
        what: &str,
        account: &str,
        fence: Option<&Fence>,
        sql: &str,
        items: &[String],
        check: fn(&str) -> Result<()>,
    ) -> Result<()> {
        check_text([("account id", account)])?;
        items.iter().try_for_each(|i| check(i))?;
        let items: Vec<&[u8]> = items.iter().map(|i| i.as_bytes()).collect();
        self.fenced(
            what,
            true,
            account,
            fence,
            sql,
            &[(&items, Type::BYTEA_ARRAY)],
        )
        .await
    }
}

/// The token of `fence` as stored, if it can be this account's (a fence of another account
/// proves nothing about this one).
fn fence_token(account: &str, fence: &Fence) -> Option<i64> {
    if fence.account != account {
        return None;
    }
    i64::try_from(fence.token).ok()
}

/// The error of a stale fence, worded as every store words it; nothing was written.
fn lease_lost(what: &str, account: &str, fence: &Fence) -> Error {
    ilink_client::store::lease_lost(
        account,
        &format!("{what} with fencing token {}", fence.token),
    )
}

/// PostgreSQL `text` cannot hold NUL characters: refuse them in names (account ids, holders,
/// members) with a clear error instead of the server's encoding error. Values are `bytea`
/// and take any string.
fn check_text<'a>(fields: impl IntoIterator<Item = (&'static str, &'a str)>) -> Result<()> {
    for (name, value) in fields {
        if value.contains('\0') {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("the {name} contains a NUL character, which PostgreSQL text cannot hold"),
            ));
        }
    }
    Ok(())
}

/// An outbox record is one line: one with a `\n` is refused (as by the file store).
fn check_record(record: &str) -> Result<()> {
    if record.contains('\n') {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "an outbox record must be one line (it contains a newline)",
        ));
    }
    Ok(())
}

/// A stored value as a string; bytes that are not UTF-8 (written by something else) are a
/// store error naming the value, never a panic.
fn utf8(what: &str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| {
        store_error(
            format!("reading the stored {what}"),
            PgErrorKind::Query,
            "the stored value is not UTF-8 (written by something other than ilink?)",
        )
    })
}

/// The arrays of `rows` (column 0, `bytea[]`), in row order, as one list of strings.
fn flatten(what: &str, rows: &[Row]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for r in rows {
        for v in r.get::<_, Vec<Vec<u8>>>(0) {
            out.push(utf8(what, v)?);
        }
    }
    Ok(out)
}

/// A TTL in seconds for `make_interval(secs => ...)`, capped at [`MAX_TTL`].
fn ttl_secs(ttl: Duration) -> f64 {
    ttl.min(MAX_TTL).as_secs_f64()
}

/// The first CTEs of every fenced write: `ok` is true for an unfenced write (`$2` NULL) or
/// when `$2` is the account's current lease token. `FOR SHARE` locks the lease row until the
/// write commits, so a takeover (which updates that row) waits for the write, or the write,
/// re-checking the row after the takeover commits, finds the token changed and writes nothing.
macro_rules! fenced_sql {
    ($($rest:literal),* $(,)?) => {
        concat!(
            "WITH fence AS (SELECT 1 FROM ilink_leases WHERE account = $1 AND token = $2 FOR SHARE), \
             ok AS (SELECT ($2::int8 IS NULL OR EXISTS (SELECT 1 FROM fence)) AS ok)",
            $($rest),*
        )
    };
}

const SQL_ACCOUNTS: &str = "SELECT account FROM ilink_credentials ORDER BY saved_at_ms, login_seq";
const SQL_LOAD_CREDENTIALS: &str = "SELECT bot_token, base_url, user_id, saved_at_ms \
     FROM ilink_credentials WHERE account = $1";
const SQL_SAVE_CREDENTIALS: &str = "INSERT INTO ilink_credentials \
     (account, bot_token, base_url, user_id, saved_at_ms, login_seq) \
     VALUES ($1, $2, $3, $4, $5, nextval('ilink_login_seq')) \
     ON CONFLICT (account) DO UPDATE SET bot_token = EXCLUDED.bot_token, \
     base_url = EXCLUDED.base_url, user_id = EXCLUDED.user_id, \
     saved_at_ms = EXCLUDED.saved_at_ms, login_seq = EXCLUDED.login_seq";
const SQL_REMOVE_ACCOUNT: &str = "WITH c AS (DELETE FROM ilink_credentials WHERE account = $1), \
     u AS (DELETE FROM ilink_cursors WHERE account = $1), \
     t AS (DELETE FROM ilink_context_tokens WHERE account = $1), \
     d AS (DELETE FROM ilink_tombstones WHERE account = $1) \
     DELETE FROM ilink_outbox WHERE account = $1";
const SQL_LOAD_CURSOR: &str = "SELECT get_updates_buf FROM ilink_cursors WHERE account = $1";
const SQL_SAVE_CURSOR: &str = fenced_sql!(
    ", w AS (INSERT INTO ilink_cursors (account, get_updates_buf) \
     SELECT $1, $3 FROM ok WHERE ok.ok \
     ON CONFLICT (account) DO UPDATE SET get_updates_buf = EXCLUDED.get_updates_buf) \
     SELECT ok FROM ok"
);
const SQL_LOAD_CONTEXT_TOKENS: &str =
    "SELECT peer, context_token FROM ilink_context_tokens WHERE account = $1";
const SQL_SAVE_CONTEXT_TOKENS: &str = fenced_sql!(
    ", d AS (DELETE FROM ilink_context_tokens \
     WHERE account = $1 AND (SELECT ok FROM ok) AND NOT (peer = ANY ($3::bytea[]))), \
     w AS (INSERT INTO ilink_context_tokens (account, peer, context_token) \
     SELECT $1, u.p, u.t FROM ok, unnest($3::bytea[], $4::bytea[]) AS u(p, t) WHERE ok.ok \
     ON CONFLICT (account, peer) DO UPDATE SET context_token = EXCLUDED.context_token \
     WHERE ilink_context_tokens.context_token IS DISTINCT FROM EXCLUDED.context_token) \
     SELECT ok FROM ok"
);
const SQL_LOAD_TOMBSTONES: &str =
    "SELECT keys FROM ilink_tombstones WHERE account = $1 ORDER BY id";
const SQL_APPEND_TOMBSTONES: &str = fenced_sql!(
    ", w AS (INSERT INTO ilink_tombstones (account, keys) \
     SELECT $1, $3 FROM ok WHERE ok.ok AND cardinality($3::bytea[]) > 0) \
     SELECT ok FROM ok"
);
const SQL_SAVE_TOMBSTONES: &str = fenced_sql!(
    ", d AS (DELETE FROM ilink_tombstones WHERE account = $1 AND (SELECT ok FROM ok)), \
     w AS (INSERT INTO ilink_tombstones (account, keys) \
     SELECT $1, $3 FROM ok WHERE ok.ok AND cardinality($3::bytea[]) > 0) \
     SELECT ok FROM ok"
);
const SQL_LOAD_OUTBOX: &str = "SELECT records FROM ilink_outbox WHERE account = $1 ORDER BY id";
const SQL_APPEND_OUTBOX: &str = fenced_sql!(
    ", w AS (INSERT INTO ilink_outbox (account, records) \
     SELECT $1, ARRAY[$3::bytea] FROM ok WHERE ok.ok) \
     SELECT ok FROM ok"
);
const SQL_REPLACE_OUTBOX: &str = fenced_sql!(
    ", d AS (DELETE FROM ilink_outbox WHERE account = $1 AND (SELECT ok FROM ok)), \
     w AS (INSERT INTO ilink_outbox (account, records) \
     SELECT $1, $3 FROM ok WHERE ok.ok AND cardinality($3::bytea[]) > 0) \
     SELECT ok FROM ok"
);
const SQL_CHECK_WRITABLE: &str = "SELECT NOT pg_is_in_recovery(), \
     has_table_privilege('ilink_credentials', 'SELECT, INSERT, UPDATE, DELETE')";
/// A new acquisition (no holder, expired, or a different holder after expiry) takes the next
/// token; the same holder within its TTL renews and keeps its token. No row: another
/// holder's lease is live.
const SQL_ACQUIRE: &str = "INSERT INTO ilink_leases AS l (account, holder, token, since, expires) \
     VALUES ($1, $2, 1, now(), now() + make_interval(secs => $3)) \
     ON CONFLICT (account) DO UPDATE SET \
     token = CASE WHEN l.holder = EXCLUDED.holder AND l.expires > now() \
             THEN l.token ELSE l.token + 1 END, \
     since = CASE WHEN l.holder = EXCLUDED.holder AND l.expires > now() \
             THEN l.since ELSE now() END, \
     holder = EXCLUDED.holder, expires = EXCLUDED.expires \
     WHERE l.holder IS NULL OR l.expires <= now() OR l.holder = EXCLUDED.holder \
     RETURNING token";
const SQL_RENEW: &str = "UPDATE ilink_leases SET expires = now() + make_interval(secs => $4) \
     WHERE account = $1 AND token = $2 AND holder = $3 RETURNING token";
const SQL_RELEASE: &str = "UPDATE ilink_leases SET holder = NULL, expires = now() \
     WHERE account = $1 AND token = $2 AND holder = $3";
const SQL_LEASES: &str = "SELECT account, holder, token, since, expires FROM ilink_leases \
     WHERE holder IS NOT NULL";
/// Also forgets members whose heartbeat ran out a day ago.
const SQL_JOIN_FLEET: &str = "WITH up AS (INSERT INTO ilink_fleet (member, expires) \
     VALUES ($1, now() + make_interval(secs => $2)) \
     ON CONFLICT (member) DO UPDATE SET expires = EXCLUDED.expires RETURNING member, expires), \
     gc AS (DELETE FROM ilink_fleet WHERE member <> $1 AND expires < now() - interval '1 day') \
     SELECT member FROM ilink_fleet WHERE member <> $1 AND expires > now() \
     UNION ALL SELECT member FROM up";
const SQL_LEAVE_FLEET: &str = "DELETE FROM ilink_fleet WHERE member = $1";

#[async_trait::async_trait]
impl StateStore for PgStore {
    async fn accounts(&self) -> Result<Vec<String>> {
        let rows = self
            .query("listing the accounts", true, SQL_ACCOUNTS, &[])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn load_credentials(&self, account: &str) -> Result<Option<Credentials>> {
        let rows = self
            .query(
                "loading the credentials",
                true,
                SQL_LOAD_CREDENTIALS,
                &[(&account, Type::TEXT)],
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(Credentials {
            account_id: account.to_owned(),
            token: Secret::new(utf8("bot token", r.get(0))?),
            base_url: r.get(1),
            user_id: r.get(2),
            saved_at_ms: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
        }))
    }

    async fn save_credentials(&self, creds: &Credentials) -> Result<()> {
        check_text([
            ("account id", creds.account_id.as_str()),
            ("base URL", creds.base_url.as_deref().unwrap_or("")),
            ("user id", creds.user_id.as_deref().unwrap_or("")),
        ])?;
        let saved_at = i64::try_from(creds.saved_at_ms).unwrap_or(i64::MAX);
        let token = creds.token.expose().as_bytes();
        self.query(
            "saving the credentials",
            true,
            SQL_SAVE_CREDENTIALS,
            &[
                (&creds.account_id, Type::TEXT),
                (&token, Type::BYTEA),
                (&creds.base_url, Type::TEXT),
                (&creds.user_id, Type::TEXT),
                (&saved_at, Type::INT8),
            ],
        )
        .await?;
        Ok(())
    }

    async fn remove_account(&self, account: &str) -> Result<()> {
        self.query(
            "removing the account",
            true,
            SQL_REMOVE_ACCOUNT,
            &[(&account, Type::TEXT)],
        )
        .await?;
        Ok(())
    }

    async fn load_cursor(&self, account: &str) -> Result<Option<Secret>> {
        let rows = self
            .query(
                "loading the cursor",
                true,
                SQL_LOAD_CURSOR,
                &[(&account, Type::TEXT)],
            )
            .await?;
        rows.first()
            .map(|r| utf8("cursor", r.get(0)).map(Secret::new))
            .transpose()
    }

    async fn save_cursor(
        &self,
        account: &str,
        cursor: &Secret,
        fence: Option<&Fence>,
    ) -> Result<()> {
        check_text([("account id", account)])?;
        let value = cursor.expose().as_bytes();
        self.fenced(
            "saving the cursor",
            true,
            account,
            fence,
            SQL_SAVE_CURSOR,
            &[(&value, Type::BYTEA)],
        )
        .await
    }

    async fn load_context_tokens(&self, account: &str) -> Result<HashMap<String, Secret>> {
        let rows = self
            .query(
                "loading the context tokens",
                true,
                SQL_LOAD_CONTEXT_TOKENS,
                &[(&account, Type::TEXT)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    utf8("peer id", r.get(0))?,
                    Secret::new(utf8("context token", r.get(1))?),
                ))
            })
            .collect()
    }

    async fn save_context_tokens(
        &self,
        account: &str,
        tokens: &HashMap<String, Secret>,
        fence: Option<&Fence>,
    ) -> Result<()> {
        check_text([("account id", account)])?;
        let peers: Vec<&[u8]> = tokens.keys().map(|p| p.as_bytes()).collect();
        let values: Vec<&[u8]> = tokens.values().map(|t| t.expose().as_bytes()).collect();
        self.fenced(
            "saving the context tokens",
            true,
            account,
            fence,
            SQL_SAVE_CONTEXT_TOKENS,
            &[(&peers, Type::BYTEA_ARRAY), (&values, Type::BYTEA_ARRAY)],
        )
        .await
    }

    async fn load_tombstones(&self, account: &str) -> Result<Vec<String>> {
        let rows = self
            .query(
                "loading the dedupe tombstones",
                true,
                SQL_LOAD_TOMBSTONES,
                &[(&account, Type::TEXT)],
            )
            .await?;
        flatten("dedupe key", &rows)
    }

    async fn save_tombstones(
        &self,
        account: &str,
        keys: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.fenced_list(
            "saving the dedupe tombstones",
            account,
            fence,
            SQL_SAVE_TOMBSTONES,
            keys,
            |_| Ok(()),
        )
        .await
    }

    async fn append_tombstones(
        &self,
        account: &str,
        keys: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        // A repeated append only repeats keys, which the dedupe set absorbs: safe to retry.
        self.fenced_list(
            "appending dedupe tombstones",
            account,
            fence,
            SQL_APPEND_TOMBSTONES,
            keys,
            |_| Ok(()),
        )
        .await
    }

    async fn load_outbox(&self, account: &str) -> Result<Vec<String>> {
        let rows = self
            .query(
                "loading the outbox journal",
                true,
                SQL_LOAD_OUTBOX,
                &[(&account, Type::TEXT)],
            )
            .await?;
        flatten("outbox record", &rows)
    }

    async fn append_outbox(
        &self,
        account: &str,
        record: &str,
        fence: Option<&Fence>,
    ) -> Result<()> {
        check_text([("account id", account)])?;
        check_record(record)?;
        let value = record.as_bytes();
        // Not retried: an append whose reply was lost may have committed.
        self.fenced(
            "appending to the outbox journal",
            false,
            account,
            fence,
            SQL_APPEND_OUTBOX,
            &[(&value, Type::BYTEA)],
        )
        .await
    }

    async fn replace_outbox(
        &self,
        account: &str,
        records: &[String],
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.fenced_list(
            "replacing the outbox journal",
            account,
            fence,
            SQL_REPLACE_OUTBOX,
            records,
            check_record,
        )
        .await
    }

    async fn check_writable(&self) -> Result<()> {
        let what = format!(
            "the PostgreSQL store at {} cannot be written",
            self.inner.config.describe()
        );
        let rows = self.query(&what, true, SQL_CHECK_WRITABLE, &[]).await?;
        let (primary, allowed) = rows
            .first()
            .map(|r| (r.get::<_, bool>(0), r.get::<_, bool>(1)))
            .unwrap_or((false, false));
        if !primary {
            return Err(store_error(
                what,
                PgErrorKind::Permission,
                "the server is a read-only standby: connect to the primary",
            ));
        }
        if !allowed {
            return Err(store_error(
                what,
                PgErrorKind::Permission,
                "the role may not write the ilink_* tables: GRANT SELECT, INSERT, UPDATE, \
                 DELETE on them",
            ));
        }
        Ok(())
    }

    async fn acquire_lease(
        &self,
        account: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        check_text([("account id", account), ("lease holder", holder)])?;
        let secs = ttl_secs(ttl);
        // Retrying is safe: a second try by the same holder renews what the first took.
        let rows = self
            .query(
                "acquiring the account's lease",
                true,
                SQL_ACQUIRE,
                &[
                    (&account, Type::TEXT),
                    (&holder, Type::TEXT),
                    (&secs, Type::FLOAT8),
                ],
            )
            .await?;
        Ok(rows.first().map(|r| {
            let token = u64::try_from(r.get::<_, i64>(0)).unwrap_or(0);
            Lease::new(account, holder, token, ttl)
        }))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        let Ok(token) = i64::try_from(lease.token()) else {
            return Ok(false);
        };
        let account = lease.account();
        let holder = lease.holder();
        let secs = ttl_secs(ttl);
        let rows = self
            .query(
                "renewing the account's lease",
                true,
                SQL_RENEW,
                &[
                    (&account, Type::TEXT),
                    (&token, Type::INT8),
                    (&holder, Type::TEXT),
                    (&secs, Type::FLOAT8),
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let Ok(token) = i64::try_from(lease.token()) else {
            return Ok(());
        };
        let account = lease.account();
        let holder = lease.holder();
        self.query(
            "releasing the account's lease",
            true,
            SQL_RELEASE,
            &[
                (&account, Type::TEXT),
                (&token, Type::INT8),
                (&holder, Type::TEXT),
            ],
        )
        .await?;
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<LeaseInfo>> {
        let rows = self
            .query("listing the leases", true, SQL_LEASES, &[])
            .await?;
        let mut out: Vec<LeaseInfo> = rows
            .iter()
            .map(|r| LeaseInfo {
                account: r.get(0),
                holder: r.get(1),
                token: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                since: r.get::<_, SystemTime>(3),
                expires: r.get::<_, SystemTime>(4),
            })
            .collect();
        out.sort_by(|a, b| a.account.cmp(&b.account));
        Ok(out)
    }

    async fn join_fleet(&self, member: &str, ttl: Duration) -> Result<Vec<String>> {
        check_text([("fleet member", member)])?;
        let secs = ttl_secs(ttl);
        let rows = self
            .query(
                "joining the fleet",
                true,
                SQL_JOIN_FLEET,
                &[(&member, Type::TEXT), (&secs, Type::FLOAT8)],
            )
            .await?;
        let mut members: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        members.sort();
        Ok(members)
    }

    async fn leave_fleet(&self, member: &str) -> Result<()> {
        self.query(
            "leaving the fleet",
            true,
            SQL_LEAVE_FLEET,
            &[(&member, Type::TEXT)],
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<PgStore>();
        assert_send_sync::<PgConfig>();
        assert_send_sync::<PgError>();
    }

    #[test]
    fn fences_of_other_accounts_or_out_of_range_never_match() {
        let f = |account: &str, token| Fence {
            account: account.to_owned(),
            token,
        };
        assert_eq!(fence_token("a", &f("a", 7)), Some(7));
        assert_eq!(fence_token("a", &f("b", 7)), None);
        assert_eq!(fence_token("a", &f("a", u64::MAX)), None);
        let e = lease_lost("saving the cursor", "a", &f("a", 7));
        assert!(e.is_lease_lost());
        assert!(
            e.to_string()
                .contains("saving the cursor with fencing token 7"),
            "{e}"
        );
    }

    #[test]
    fn nul_characters_are_refused_by_name() {
        let e = check_text([("cursor", "a\0b")]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("cursor"), "{e}");
        check_text([("cursor", "ok ✓ \n")]).unwrap();
    }

    #[test]
    fn ttls_are_capped() {
        assert_eq!(ttl_secs(Duration::from_millis(1500)), 1.5);
        assert_eq!(ttl_secs(Duration::MAX), MAX_TTL.as_secs_f64());
    }
}
