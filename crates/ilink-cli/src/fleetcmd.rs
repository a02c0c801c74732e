//! Where the state lives (`--store URL`), the fleet mode of the long-running commands
//! (`ilink echo --fleet`) and `ilink fleet status`.

use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use ilink_client::fleet::{Fleet, FleetConfig};
use ilink_client::store::{LeaseInfo, UtcDateTime};
use ilink_client::{BoxFuture, FileStore, Handler, MemoryStore, MessageContext, StateStore};

use crate::NetArgs;
use crate::error::{CliError, CliResult};

/// A parsed `--store` value. `Debug` and `Display` never show a password.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `file:DIR` or a plain path: the file store in that directory.
    File(PathBuf),
    /// `memory:`: in memory, gone when the process ends (for tests and demos).
    Memory,
    /// `postgres://…` or `postgresql://…`: a PostgreSQL database (`ilink-postgres`).
    Postgres(String),
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(dir) => write!(f, "file:{}", dir.display()),
            Self::Memory => f.write_str("memory:"),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// The URL with its password (if any, in the user part or the query) replaced by `***`.
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = match userinfo.split_once(':') {
                        Some((u, _)) => format!("{u}:***"),
                        None => userinfo.to_owned(),
                    };
                    format!("{scheme}://{user}@{host}{path}")
                }
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    match query {
        Some(q) if q.to_ascii_lowercase().contains("password") => format!("{base}?***"),
        Some(q) => format!("{base}?{q}"),
        None => base,
    }
}

/// `s` with anything that may be a password hidden: the part between `:` and `@` of a
/// user-info, and the value of any `password=`.
fn redact_words(s: &str) -> String {
    let mut out = Vec::new();
    for w in s.split(' ') {
        let lower = w.to_ascii_lowercase();
        if let Some(at) = lower.find("password=") {
            out.push(format!("{}password=***", &w[..at]));
        } else if let (Some(colon), Some(at)) = (w.find(':'), w.rfind('@'))
            && colon < at
        {
            out.push(format!("{}:***{}", &w[..colon], &w[at..]));
        } else {
            out.push(w.to_owned());
        }
    }
    out.join(" ")
}

/// Parses `--store`: `file:DIR`, `memory:`, `postgres://…` / `postgresql://…`, or a plain
/// path (the file store). Another `scheme://` is refused.
pub fn parse_store_url(s: &str) -> Result<StoreUrl, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("the store URL is empty".to_owned());
    }
    if t.chars().any(char::is_control) {
        return Err("the store URL contains control characters".to_owned());
    }
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        let rest = t.split_once("://").map_or("", |(_, r)| r);
        if rest.is_empty() {
            return Err(format!("{} has no host or database", redact(t)));
        }
        // The driver takes the scheme in lower case only.
        let scheme = if lower.starts_with("postgres://") {
            "postgres"
        } else {
            "postgresql"
        };
        return Ok(StoreUrl::Postgres(format!("{scheme}://{rest}")));
    }
    if lower == "memory:" || lower == "memory://" {
        return Ok(StoreUrl::Memory);
    }
    if let Some(rest) = t
        .strip_prefix("file://")
        .or_else(|| t.strip_prefix("file:"))
    {
        if rest.is_empty() {
            return Err("file: needs a directory, e.g. file:/var/lib/ilink".to_owned());
        }
        return Ok(StoreUrl::File(PathBuf::from(rest)));
    }
    // A mistyped PostgreSQL URL (`postgres//…`, `postgres:/…`) or a libpq `key=value` string
    // must not become a directory named after it (with the password in its name).
    if ["postgres:", "postgresql:", "postgres/", "postgresql/"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return Err(format!(
            "{:?} looks like a mistyped PostgreSQL URL: write postgres://USER:PASSWORD@HOST:PORT/DB",
            redact_words(t)
        ));
    }
    if t.split_whitespace().all(|w| w.contains('='))
        && t.split_whitespace().any(|w| {
            let key = w.split('=').next().unwrap_or("").to_ascii_lowercase();
            matches!(
                key.as_str(),
                "host" | "hostaddr" | "port" | "user" | "dbname" | "password"
            )
        })
    {
        return Err(format!(
            "{:?} is a key=value connection string, which --store does not take: write \
             postgres://USER:PASSWORD@HOST:PORT/DB",
            redact_words(t)
        ));
    }
    if let Some((scheme, rest)) = t.split_once(':')
        && scheme.len() > 1
        && rest.starts_with('/')
        && !t.contains("://")
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(format!(
            "{:?} looks like a mistyped URL (`{scheme}:/` with one slash): use file:DIR (or a \
             path), memory: or postgres://USER@HOST/DB",
            redact_words(t)
        ));
    }
    if let Some((scheme, _)) = t.split_once(':')
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && scheme.len() > 1
        && (t.contains("://") || scheme.eq_ignore_ascii_case("memory"))
    {
        return Err(format!(
            "unknown store {:?}: use file:DIR (or a path), memory: or postgres://USER@HOST/DB",
            redact(t)
        ));
    }
    Ok(StoreUrl::File(PathBuf::from(t)))
}

/// The value parser of `--store`: like [`parse_store_url`], with an error that never repeats
/// the value (clap's own error would print it, password included).
#[derive(Clone, Copy, Debug)]
pub struct StoreUrlParser;

impl clap::builder::TypedValueParser for StoreUrlParser {
    type Value = StoreUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<StoreUrl, clap::Error> {
        let fail = |msg: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid --store (ILINK_STORE): {msg}\n"),
            )
            .with_cmd(cmd)
        };
        let s = value
            .to_str()
            .ok_or_else(|| fail("the store URL is not UTF-8".to_owned()))?;
        parse_store_url(s).map_err(fail)
    }
}

/// The store `net` asks for: `--store` / `ILINK_STORE`, else the state directory.
pub fn store_url(net: &NetArgs) -> StoreUrl {
    match &net.store {
        Some(url) => url.clone(),
        None => StoreUrl::File(crate::net::state_dir(net)),
    }
}

/// Opens the store `net` asks for. A database that cannot be reached is an error (exit 1)
/// that names the URL without its password.
pub async fn open_store(net: &NetArgs) -> CliResult<Arc<dyn StateStore>> {
    open(&store_url(net)).await
}

async fn open(url: &StoreUrl) -> CliResult<Arc<dyn StateStore>> {
    match url {
        StoreUrl::File(dir) => Ok(Arc::new(FileStore::new(dir))),
        StoreUrl::Memory => Ok(Arc::new(MemoryStore::new())),
        StoreUrl::Postgres(raw) => open_postgres(raw).await,
    }
}

#[cfg(feature = "postgres")]
async fn open_postgres(raw: &str) -> CliResult<Arc<dyn StateStore>> {
    match ilink_postgres::PgStore::connect(raw).await {
        Ok(store) => Ok(Arc::new(store)),
        Err(e) if e.kind() == ilink_client::ErrorKind::InvalidInput => {
            Err(CliError::usage(format!(
                "invalid --store (ILINK_STORE) {}: {}",
                redact(raw),
                crate::error::chain(&e)
            ))
            .hint("write postgres://USER:PASSWORD@HOST:PORT/DB (port 1 to 65535)"))
        }
        Err(e) => Err(CliError::failure(format!(
            "cannot open the PostgreSQL store {}: {}",
            redact(raw),
            crate::error::chain(&e)
        ))
        .hint("check that the database is up and the URL (user, host, port, database) is right")),
    }
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(raw: &str) -> CliResult<Arc<dyn StateStore>> {
    Err(CliError::usage(format!(
        "{}: this ilink was built without PostgreSQL support",
        redact(raw)
    ))
    .hint("build it with the `postgres` feature (on by default)"))
}

// ---------------------------------------------------------------------------------------
// fleet mode
// ---------------------------------------------------------------------------------------

/// The fleet options of the long-running commands.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Fleet (several processes share the store's accounts)")]
pub struct FleetArgs {
    /// Serve this process's share of every account in the store, together with the other
    /// processes started with --fleet on the same store (leases; see `ilink fleet status`).
    #[arg(long)]
    pub fleet: bool,
    /// How long an account's lease lasts without renewal, in seconds: another process takes
    /// the account over this long after this one died or stalled. Renewed every third of it.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0,
          value_parser = parse_seconds, requires = "fleet")]
    pub lease_ttl: f64,
    /// This process's member id in the fleet (default: host:pid:random).
    #[arg(long, value_name = "ID", requires = "fleet")]
    pub member_id: Option<String>,
    /// How often the process recounts the members and accounts and takes or gives up
    /// accounts, in seconds (default: a tenth of the lease ttl, at most 2).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, requires = "fleet")]
    pub rebalance: Option<f64>,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || !(0.1..=86_400.0).contains(&v) {
        return Err(format!("{s} s is out of range (0.1 to 86400)"));
    }
    Ok(v)
}

impl FleetArgs {
    /// The lease ttl.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs_f64(self.lease_ttl)
    }

    /// The fleet settings.
    pub fn config(&self) -> FleetConfig {
        let ttl = self.lease_ttl();
        let every = self
            .rebalance
            .map(Duration::from_secs_f64)
            .unwrap_or_else(|| {
                (ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(2))
            });
        FleetConfig::new()
            .with_rebalance_interval(every)
            .with_handover_timeout(ttl)
            .with_retry_after(ttl.max(Duration::from_secs(5)))
    }

    /// Applies the lease ttl and member id to the client configuration.
    pub fn apply(&self, mut config: ilink_client::ClientConfig) -> ilink_client::ClientConfig {
        config = config.with_lease_ttl(self.lease_ttl());
        if let Some(id) = self.member_id.as_deref().filter(|i| !i.trim().is_empty()) {
            config = config.with_holder_id(id.trim());
        }
        config
    }
}

/// Runs `handler` on this process's share of the store's accounts until SIGINT / SIGTERM
/// (a second one stops at once).
pub async fn run_fleet<H: Handler>(fleet: Fleet, what: &str, handler: H) -> CliResult {
    let stopper = fleet.clone();
    if let Some(mut signals) = ilink_client::run::StopSignals::new() {
        tokio::spawn(async move {
            if signals.next().await.is_none() {
                return;
            }
            eprintln!(
                "ilink: stopping: finishing the messages in hand and handing the accounts over \
                 (a second Ctrl-C or SIGTERM stops at once)"
            );
            stopper.shutdown();
            if let Some(sig) = signals.next().await {
                eprintln!("ilink: stopped at once");
                std::process::exit(128 + sig);
            }
        });
    } else {
        tracing::warn!("cannot listen to stop signals; they end the process at once");
    }
    eprintln!(
        "{what} is running in fleet mode as member {}: it serves its share of the store's \
         accounts (`ilink fleet status` shows who serves which). Ctrl-C or SIGTERM stops it.",
        fleet.member()
    );
    fleet.run(handler).await?;
    Ok(())
}

/// `ilink echo --fleet`: the echo bot on this process's share of the store's accounts.
pub async fn echo_fleet(
    net: &NetArgs,
    max: Option<u64>,
    prefix: &str,
    policy: &crate::replies::PolicyArgs,
    args: &FleetArgs,
) -> CliResult {
    if max.is_some() {
        return Err(CliError::usage("--max cannot be used with --fleet"));
    }
    if net.account.is_some() {
        return Err(CliError::usage(
            "--account cannot be used with --fleet: a fleet serves every account of the store",
        ));
    }
    let mut config = crate::net::config(net);
    crate::replies::apply_policy(&mut config, policy);
    let client = crate::net::client_with(net, args.apply(config)).await?;
    let fleet = Fleet::new(client, args.config())?;
    run_fleet(
        fleet,
        "The echo bot",
        FleetEcho {
            prefix: prefix.to_owned(),
        },
    )
    .await
}

/// The echo bot of `ilink echo --fleet`: every account of the fleet's share.
pub struct FleetEcho {
    /// Prefix of echoed text.
    pub prefix: String,
}

impl Handler for FleetEcho {
    fn on_message(&self, ctx: MessageContext) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let from = ctx.from().to_owned();
            let account = ctx.account().id().to_owned();
            match crate::commands::echo_one(&ctx, &self.prefix).await {
                Ok(sent) => println!("{account}: bot -> {from}: {sent}"),
                Err(e) => eprintln!("ilink: {account}: could not answer {from}: {e}"),
            }
            let _ = std::io::stdout().flush();
        })
    }
}

// ---------------------------------------------------------------------------------------
// ilink fleet status
// ---------------------------------------------------------------------------------------

/// `ilink fleet ...`.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Who serves which account: holder, lease token, since when, expires in.
    Status {
        /// One JSON object: {"members": [...], "accounts": [...]}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: NetArgs,
    },
}

impl FleetCommand {
    /// The network options given after the subcommand.
    pub fn net(&self) -> &NetArgs {
        match self {
            Self::Status { net, .. } => net,
        }
    }
}

/// One row of `ilink fleet status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatusRow {
    /// The account.
    pub account: String,
    /// Who holds (or last held) its lease; `None`: never leased.
    pub holder: Option<String>,
    /// Its fencing token.
    pub token: Option<u64>,
    /// When the lease was granted, ms since the Unix epoch (the store's clock).
    pub since_ms: Option<u64>,
    /// Milliseconds until the lease expires (negative: expired that long ago).
    pub expires_in_ms: Option<i64>,
    /// True while the lease is live.
    pub live: bool,
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn signed_ms(from: SystemTime, to: SystemTime) -> i64 {
    match to.duration_since(from) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The rows: every account of the store, with its lease if it has one; leases of accounts no
/// longer in the store are listed too.
pub fn rows(accounts: &[String], leases: &[LeaseInfo], now: SystemTime) -> Vec<StatusRow> {
    let mut out: Vec<StatusRow> = accounts
        .iter()
        .map(|a| StatusRow {
            account: a.clone(),
            holder: None,
            token: None,
            since_ms: None,
            expires_in_ms: None,
            live: false,
        })
        .collect();
    for l in leases {
        let row = StatusRow {
            account: l.account.clone(),
            holder: Some(l.holder.clone()),
            token: Some(l.token),
            since_ms: Some(epoch_ms(l.since)),
            expires_in_ms: Some(signed_ms(now, l.expires)),
            live: l.expires > now,
        };
        match out.iter_mut().find(|r| r.account == l.account) {
            Some(r) => *r = row,
            None => out.push(row),
        }
    }
    out.sort_by(|a, b| a.account.cmp(&b.account));
    out
}

/// The members seen: the holders of live leases.
pub fn members(rows: &[StatusRow]) -> Vec<(String, usize)> {
    let mut m: std::collections::BTreeMap<String, usize> = Default::default();
    for r in rows.iter().filter(|r| r.live) {
        if let Some(h) = &r.holder {
            *m.entry(h.clone()).or_default() += 1;
        }
    }
    m.into_iter().collect()
}

fn utc(ms: u64) -> String {
    let t = UtcDateTime::from_unix_secs(ms / 1000);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

fn expires_text(ms: i64) -> String {
    let s = ms.unsigned_abs() as f64 / 1000.0;
    if ms >= 0 {
        format!("in {s:.1} s")
    } else {
        format!("expired {s:.1} s ago")
    }
}

/// The table of `ilink fleet status`.
pub fn table(rows: &[StatusRow]) -> String {
    let mut out = String::new();
    let members = members(rows);
    out.push_str(&format!(
        "{} account(s), {} serving member(s) (holders of live leases)\n",
        rows.len(),
        members.len()
    ));
    for (m, n) in &members {
        out.push_str(&format!("  {m}: {n} account(s)\n"));
    }
    let header = ["ACCOUNT", "HOLDER", "TOKEN", "SINCE", "EXPIRES"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.account.clone(),
                r.holder.clone().unwrap_or_else(|| "-".into()),
                r.token.map_or_else(|| "-".into(), |t| t.to_string()),
                r.since_ms.map_or_else(|| "-".into(), utc),
                r.expires_in_ms
                    .map_or_else(|| "never leased".into(), expires_text),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for c in &cells {
        for (w, v) in widths.iter_mut().zip(c.iter()) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |vals: [&str; 5]| {
        let mut l = String::new();
        for (i, (v, w)) in vals.iter().zip(widths.iter()).enumerate() {
            if i + 1 == vals.len() {
                l.push_str(v);
            } else {
                l.push_str(&format!("{v:<w$}  "));
            }
        }
        l.push('\n');
        l
    };
    out.push_str(&line(header));
    for c in &cells {
        out.push_str(&line([&c[0], &c[1], &c[2], &c[3], &c[4]]));
    }
    out
}

/// `ilink fleet status`.
pub async fn status(net: &NetArgs, json: bool) -> CliResult {
    let store = open_store(net).await?;
    let accounts = store
        .accounts()
        .await
        .map_err(|e| CliError::from(e).hint("check --store / ILINK_STORE"))?;
    let leases = store.leases().await?;
    let rows = rows(&accounts, &leases, SystemTime::now());
    let mut out = std::io::stdout().lock();
    if json {
        let members: Vec<serde_json::Value> = members(&rows)
            .into_iter()
            .map(|(m, n)| serde_json::json!({"member": m, "accounts": n}))
            .collect();
        let v = serde_json::json!({"members": members, "accounts": rows});
        writeln!(out, "{v}").map_err(|e| CliError::io("writing the status", e))?;
    } else {
        out.write_all(table(&rows).as_bytes())
            .map_err(|e| CliError::io("writing the status", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse() {
        assert_eq!(parse_store_url("memory:"), Ok(StoreUrl::Memory));
        assert_eq!(
            parse_store_url("file:/tmp/x"),
            Ok(StoreUrl::File("/tmp/x".into()))
        );
        assert_eq!(
            parse_store_url("file:///tmp/x"),
            Ok(StoreUrl::File("/tmp/x".into()))
        );
        assert_eq!(
            parse_store_url("./state"),
            Ok(StoreUrl::File("./state".into()))
        );
        assert_eq!(
            parse_store_url("postgres://u:pw@h:5432/db"),
            Ok(StoreUrl::Postgres("postgres://u:pw@h:5432/db".into()))
        );
        assert!(matches!(
            parse_store_url("postgresql://h/db"),
            Ok(StoreUrl::Postgres(_))
        ));
        assert_eq!(
            parse_store_url("Postgres://h/db"),
            Ok(StoreUrl::Postgres("postgres://h/db".into()))
        );
        for bad in [
            "",
            "  ",
            "redis://h",
            "file:",
            "postgres://",
            "mysql://u:pw@h/db",
            "postgres//u:pw@h/db",
            "postgres:/u:pw@h/db",
            "PostgreSQL:u:pw@h/db",
            "host=127.0.0.1 port=5432 user=u password=pw dbname=db",
            "mysql:/u:pw@h/db",
        ] {
            let e = parse_store_url(bad).unwrap_err();
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn passwords_never_show() {
        let u = parse_store_url("postgres://me:s3cret@db.example:5432/ilink").unwrap();
        assert_eq!(u.to_string(), "postgres://me:***@db.example:5432/ilink");
        assert!(!format!("{u:?}").contains("s3cret"));
        assert_eq!(
            redact("postgres://h/db?user=me&password=s3cret"),
            "postgres://h/db?***"
        );
        assert_eq!(redact("postgres://me@h/db"), "postgres://me@h/db");
        assert_eq!(
            redact("postgres://h/db?sslmode=require"),
            "postgres://h/db?sslmode=require"
        );
    }

    #[test]
    fn the_status_lists_every_account_and_its_lease() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let leases = vec![
            LeaseInfo {
                account: "b@im.bot".into(),
                holder: "h1".into(),
                token: 7,
                since: now - Duration::from_secs(60),
                expires: now + Duration::from_millis(2500),
            },
            LeaseInfo {
                account: "c@im.bot".into(),
                holder: "h2".into(),
                token: 3,
                since: now - Duration::from_secs(60),
                expires: now - Duration::from_secs(4),
            },
        ];
        let accounts = vec![
            "a@im.bot".to_owned(),
            "b@im.bot".to_owned(),
            "c@im.bot".to_owned(),
        ];
        let r = rows(&accounts, &leases, now);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].holder, None);
        assert_eq!(r[1].token, Some(7));
        assert_eq!(r[1].expires_in_ms, Some(2500));
        assert!(r[1].live);
        assert_eq!(r[2].expires_in_ms, Some(-4000));
        assert!(!r[2].live);
        assert_eq!(members(&r), vec![("h1".to_owned(), 1)]);
        let t = table(&r);
        assert!(t.contains("in 2.5 s"), "{t}");
        assert!(t.contains("expired 4.0 s ago"), "{t}");
        assert!(t.contains("never leased"), "{t}");
        assert!(t.contains("2027-01-15 07:59:00Z"), "{t}");
        assert!(t.starts_with("3 account(s), 1 serving member(s)"), "{t}");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_800_000_000_000), "2027-01-15 08:00:00Z");
    }
}
