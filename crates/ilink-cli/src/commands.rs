//! The network commands: login, echo, send, doctor (tail and download are in `inbound`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{ArgGroup, Args};
use ilink_client::proto::ItemType;
use ilink_client::{
    Account, BoxFuture, ErrorKind, Handler, LoginOutcome, MediaType, MessageContext,
    TerminalPresenter, Update,
};
use serde_json::{Value, json};

use crate::NetArgs;
use crate::error::{CliError, CliResult, Exit, chain};
use crate::inbound::summary;
use crate::net::{self, human_size};

// ---------------------------------------------------------------------------------------
// login
// ---------------------------------------------------------------------------------------

/// `ilink login`.
pub async fn login(net: &NetArgs) -> CliResult {
    let client = net::client(net).await?;
    let dir = net::state_dir(net);
    let url = crate::fleetcmd::store_url(net);
    let place = match &url {
        crate::fleetcmd::StoreUrl::File(d) => format!("state directory {}", d.display()),
        other => format!("store {other}"),
    };
    // Before a QR code is shown: a confirmed login must have somewhere to go.
    client.store().check_writable().await.map_err(|e| {
        CliError::failure(format!("cannot log in: the {place} cannot be written")).hint(format!(
            "{e}. Choose a writable directory with --state-dir (or ILINK_STATE_DIR), or \
                 another --store"
        ))
    })?;
    eprintln!("Logging in at {} ({place}).", client.config().qr_base_url);
    match client.login(&TerminalPresenter::new()).await? {
        LoginOutcome::Confirmed(account) => {
            let creds = account.credentials()?;
            println!("Logged in as {}.", account.id());
            if let Some(user) = creds.user_id.as_deref() {
                println!("WeChat user {user} can now talk to this bot.");
            }
            match &url {
                crate::fleetcmd::StoreUrl::File(d) => {
                    let file = ilink_client::FileStore::new(d)
                        .account_dir(account.id())
                        .join("credentials.json");
                    println!("Credentials saved (mode 0600) in {}.", file.display());
                }
                other => println!("Credentials saved in the store {other}."),
            }
            Ok(())
        }
        LoginOutcome::AlreadyBound => {
            println!("This bot is already connected to this client; nothing changed.");
            Ok(())
        }
        LoginOutcome::Unsaved {
            credentials,
            error,
            rescued_to,
        } => {
            let target = ilink_client::FileStore::new(&dir)
                .account_dir(&credentials.account_id)
                .join("credentials.json");
            let err = CliError::failure(format!(
                "the login of {} was confirmed but could not be saved in the {place}: {error}",
                credentials.account_id,
            ));
            Err(match rescued_to {
                Some(p) => err.hint(format!(
                    "the credentials are safe in {} (mode 0600): once the state directory \
                     can be written, move that file to {}",
                    p.display(),
                    target.display()
                )),
                None => err.hint(
                    "nothing could be written anywhere; free space or fix the permissions, \
                     then run `ilink login` again",
                ),
            })
        }
        _ => Err(CliError::new(
            Exit::Auth,
            "the login ended without an account",
        )),
    }
}

/// `ilink accounts`.
pub async fn accounts(net: &NetArgs, json_lines: bool) -> CliResult {
    let client = net::client(net).await?;
    let url = crate::fleetcmd::store_url(net);
    let file_store = match &url {
        crate::fleetcmd::StoreUrl::File(d) => Some(ilink_client::FileStore::new(d)),
        _ => None,
    };
    let accounts = client.accounts().await?;
    if accounts.is_empty() && !json_lines {
        match &url {
            crate::fleetcmd::StoreUrl::File(d) => eprintln!(
                "No bot account is logged in (state directory {}).",
                d.display()
            ),
            other => eprintln!("No bot account is logged in (store {other})."),
        }
    }
    for a in accounts {
        let creds = a.credentials()?;
        let consumer = file_store.as_ref().and_then(|s| s.consumer_pid(a.id()));
        if json_lines {
            println!(
                "{}",
                json!({
                    "account": a.id(),
                    "user": creds.user_id,
                    "base_url": a.base_url()?,
                    "saved_at_ms": creds.saved_at_ms,
                    "users": a.known_users().len(),
                    "consumer_pid": consumer,
                })
            );
        } else {
            println!(
                "{}  user {}  base URL {}  {} known user(s){}",
                a.id(),
                creds.user_id.as_deref().unwrap_or("?"),
                a.base_url()?,
                a.known_users().len(),
                consumer
                    .map(|p| format!("  consumed by process {p}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// `ilink users`.
pub async fn users(net: &NetArgs, json_lines: bool) -> CliResult {
    let client = net::client(net).await?;
    let account = net::account(&client, net).await?;
    let users = account.known_users();
    if users.is_empty() && !json_lines {
        eprintln!(
            "No user has written to {} yet (nobody can be sent to).",
            account.id()
        );
    }
    for u in users {
        let b = account.budget(&u);
        if json_lines {
            println!(
                "{}",
                json!({
                    "account": account.id(),
                    "user": u,
                    "left": b.left,
                    "queued": b.queued,
                    "window_closes_at_ms": b.window_closes_at_ms,
                })
            );
        } else {
            let closes = b
                .window_closes_at_ms
                .map_or_else(|| "unknown".to_owned(), crate::replies::window_closes);
            println!(
                "{u}  {} message(s) left, {} queued, window closes {closes}",
                b.left, b.queued
            );
        }
    }
    Ok(())
}

/// Takes the account's lease (holder and ttl of the client's configuration), or fails with
/// [`ErrorKind::AccountBusy`](ilink_client::ErrorKind::AccountBusy) naming the holder when
/// another holder's lease is live.
async fn take_lease(
    client: &ilink_client::Client,
    id: &str,
) -> CliResult<ilink_client::store::Lease> {
    let cfg = client.config();
    let store = client.store();
    if let Some(lease) = store
        .acquire_lease(id, &cfg.holder_id, cfg.lease_ttl)
        .await?
    {
        return Ok(lease);
    }
    let holder = store
        .leases()
        .await
        .ok()
        .and_then(|all| all.into_iter().find(|l| l.account == id))
        .map_or_else(
            || "another process".to_owned(),
            |l| format!("holder {}", l.holder),
        );
    Err(ilink_client::Error::new(
        ilink_client::ErrorKind::AccountBusy,
        format!("account {id} is already being consumed by {holder}"),
    )
    .into())
}

/// `ilink logout`.
pub async fn logout(net: &NetArgs) -> CliResult {
    let client = net::client(net).await?;
    let account = net::account(&client, net).await?;
    let id = account.id().to_owned();
    // Not while a consumer runs: it would write the state back. Holding the account's lease
    // also keeps one from starting meanwhile.
    let store = client.store();
    let lease = take_lease(&client, &id).await?;
    let removed = store.remove_account(&id).await;
    store.release_lease(&lease).await?;
    removed?;
    let place = match crate::fleetcmd::store_url(net) {
        crate::fleetcmd::StoreUrl::File(d) => d.display().to_string(),
        other => format!("the store {other}"),
    };
    println!("Logged out {id}: its credentials and state were deleted from {place}.");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// echo
// ---------------------------------------------------------------------------------------

/// Answer one message as the echo bot does: text echoed with `prefix`, media sent back.
/// Returns what was sent, for the log.
pub async fn echo_one(ctx: &MessageContext, prefix: &str) -> Result<String, CliError> {
    let account = ctx.account();
    let Some(item) = ctx.message().media_item().cloned() else {
        let text = ctx.text().unwrap_or("(a message without text)");
        let reply = format!("{prefix}{text}");
        let out = ctx.reply(&reply).await?;
        let queued = out.iter().filter(|o| o.is_queued()).count();
        let shown = if reply.chars().count() > 200 {
            format!("{} chars in {} part(s)", reply.chars().count(), out.len())
        } else {
            format!("{reply:?}")
        };
        if queued > 0 {
            return Ok(format!(
                "{shown}; {queued} part(s) queued until the user writes again"
            ));
        }
        return Ok(shown);
    };
    let bytes = account.download(&item).await?;
    let size = human_size(bytes.len() as u64);
    match item.item_type {
        ItemType::Image => {
            ctx.reply_media_as(bytes, MediaType::Image).await?;
            Ok(format!("[image {size}]"))
        }
        ItemType::Video => {
            ctx.reply_media_as(bytes, MediaType::Video).await?;
            Ok(format!("[video {size}]"))
        }
        ItemType::Voice => {
            ctx.reply_media_as(bytes, MediaType::Voice).await?;
            Ok(format!("[voice {size}]"))
        }
        _ => {
            let name = item
                .file_item
                .as_ref()
                .and_then(|f| f.file_name.clone())
                .unwrap_or_else(|| "file".to_owned());
            ctx.reply_file(bytes, &name).await?;
            Ok(format!("[file {name} {size}]"))
        }
    }
}

/// The echo bot of `ilink echo`: answers messages, stops after `max` of them, and stops with
/// a login error when the session expires.
struct EchoBot {
    account: Account,
    prefix: String,
    max: Option<u64>,
    handled: AtomicU64,
    expired: Arc<AtomicBool>,
}

impl Handler for EchoBot {
    fn on_message(&self, ctx: MessageContext) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let from = ctx.from().to_owned();
            println!("{from} -> bot: {}", summary(ctx.message().items()));
            match echo_one(&ctx, &self.prefix).await {
                Ok(sent) => println!("bot -> {from}: {sent}"),
                Err(e) => eprintln!("ilink: could not answer {from}: {e}"),
            }
            let _ = std::io::stdout().flush();
            let n = self.handled.fetch_add(1, Ordering::SeqCst) + 1;
            if self.max.is_some_and(|m| n >= m) {
                self.account.shutdown();
            }
        })
    }

    fn on_update(&self, update: &Update) {
        // Undecodable messages are logged by the library (warn), once.
        if matches!(update, Update::SessionExpired) {
            self.expired.store(true, Ordering::SeqCst);
            self.account.shutdown();
        }
    }
}

/// `ilink echo`.
pub async fn echo(
    net: &NetArgs,
    max: Option<u64>,
    prefix: &str,
    policy: &crate::replies::PolicyArgs,
) -> CliResult {
    let client = crate::replies::client(net, policy).await?;
    let account = net::account(&client, net).await?;
    net::stop_on_signals(std::slice::from_ref(&account));
    // Take the account's lease before saying it runs: fail fast (exit 5) if another process
    // consumes the account.
    let lease = take_lease(&client, account.id()).await?;
    eprintln!(
        "Echo bot {} is running; it consumes the account's messages (no other `ilink echo`, \
         `ilink tail` or bot receives them meanwhile). Ctrl-C or SIGTERM stops it.",
        account.id()
    );
    let expired = Arc::new(AtomicBool::new(false));
    let bot = EchoBot {
        account: account.clone(),
        prefix: prefix.to_owned(),
        max,
        handled: AtomicU64::new(0),
        expired: expired.clone(),
    };
    let ran = account
        .run_with_lease(lease.clone(), bot, std::future::pending())
        .await;
    if let Err(e) = client.store().release_lease(&lease).await {
        tracing::warn!(error = %e, "could not release the account's lease");
    }
    ran?;
    if expired.load(Ordering::SeqCst) {
        return Err(
            CliError::new(Exit::Auth, "the session expired (-14)").hint("run `ilink login` again")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// send
// ---------------------------------------------------------------------------------------

/// Arguments of `ilink send`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("content").required(true).args(["text", "text_file", "image", "video", "file", "voice"])))]
pub struct SendArgs {
    /// The recipient (`…@im.wechat`); they must have written to the bot.
    #[arg(long, value_name = "USER")]
    to: String,
    /// Send this text; `-` reads it from standard input. A long text is split into messages
    /// the server keeps whole (1800 UTF-16 units each); what the user's reply window does not
    /// allow now is queued (exit 6) and sent when the user writes again.
    #[arg(long)]
    text: Option<String>,
    /// Send the text of this file (UTF-8), like --text.
    #[arg(long, value_name = "PATH", conflicts_with = "text")]
    text_file: Option<PathBuf>,
    /// Send an image: JPEG, PNG, GIF, WebP or BMP (checked before upload; at most 100 MiB).
    #[arg(long, value_name = "PATH")]
    image: Option<PathBuf>,
    /// Send a video: MP4 or MOV (checked before upload; at most 100 MiB).
    #[arg(long, value_name = "PATH")]
    video: Option<PathBuf>,
    /// Send a file: any document, not empty, at most 100 MiB.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Send a voice message made from an audio file (WAV, MP3, Ogg, FLAC, AAC/M4A or SILK).
    #[arg(long, value_name = "AUDIO")]
    voice: Option<PathBuf>,
    /// A caption sent before the media, as its own text message.
    #[arg(long, conflicts_with = "text")]
    caption: Option<String>,
    /// When the content does not fit --image, --video or --voice (a text file as an image,
    /// say), send it as a file instead, with a notice, rather than fail.
    #[arg(long, conflicts_with = "text")]
    or_file: bool,
    /// Send the text exactly as written. Without it (or with --markdown) the text goes through
    /// the official client's Markdown filter: images `![alt](url)` are removed, `#####` and
    /// `######` heading marks and italic markers around Chinese/Japanese/Korean text are
    /// dropped; everything else (bold, code, tables, links) is kept as written.
    #[arg(long, conflicts_with = "markdown")]
    plain: bool,
    /// Apply the official client's Markdown filter to the text (the default; see --plain).
    #[arg(long)]
    markdown: bool,
    /// Print one JSON object per message sent: {"sent", "message_id", "client_id"}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    policy: crate::replies::PolicyArgs,
}

fn check_file(path: &Path) -> CliResult<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))
}

/// `ilink send`.
pub async fn send(net: &NetArgs, args: SendArgs) -> CliResult {
    let mut config = net::config(net);
    if args.plain {
        config.markdown_filter = false;
    } else if args.markdown {
        config.markdown_filter = true;
    }
    crate::replies::apply_policy(&mut config, &args.policy);
    let client = net::client_with(net, config).await?;
    let to = args.to.trim();
    let account = net::account_for(&client, net, to).await?;
    let json_lines = args.json;
    if let Some(text) = crate::replies::read_text(args.text.as_deref(), args.text_file.as_deref())?
    {
        let out = account.send_text(to, &text).await?;
        return crate::replies::report_parts(&out, "text", json_lines);
    }
    let (path, kind) = if let Some(p) = &args.image {
        (p, MediaType::Image)
    } else if let Some(p) = &args.video {
        (p, MediaType::Video)
    } else if let Some(p) = &args.file {
        (p, MediaType::File)
    } else if let Some(p) = &args.voice {
        (p, MediaType::Voice)
    } else {
        return Err(CliError::usage("nothing to send"));
    };
    check_file(path)?;
    let sent = crate::outbound::send_media(
        &account,
        crate::outbound::MediaArgs {
            to,
            path,
            kind,
            caption: args.caption.as_deref(),
            or_file: args.or_file,
        },
    )
    .await?;
    let mut result = Ok(());
    for (outcome, what) in &sent {
        if let Err(e) =
            crate::replies::report_parts(std::slice::from_ref(outcome), what, json_lines)
        {
            result = Err(e);
        }
    }
    result
}

// ---------------------------------------------------------------------------------------
// doctor
// ---------------------------------------------------------------------------------------

/// Parses an IMF-fixdate HTTP `Date` header ("Sun, 06 Nov 1994 08:49:37 GMT") into epoch
/// seconds. Hand-written because this one format is all the doctor needs.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, _] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

struct Checks {
    failed: bool,
    auth_failed: bool,
    json: bool,
    results: Vec<Value>,
}

impl Checks {
    fn record(&mut self, status: &str, what: &str, detail: &str) {
        if self.json {
            self.results
                .push(json!({"check": what, "status": status, "detail": detail}));
        } else {
            let label = if status == "fail" { "FAIL" } else { status };
            println!("  {label:<5} {what}: {detail}");
        }
    }
    fn ok(&mut self, what: &str, detail: impl AsRef<str>) {
        self.record("ok", what, detail.as_ref());
    }
    fn warn(&mut self, what: &str, detail: impl AsRef<str>) {
        self.record("warn", what, detail.as_ref());
    }
    fn fail(&mut self, what: &str, detail: impl AsRef<str>) {
        self.failed = true;
        self.record("fail", what, detail.as_ref());
    }
    /// Prints the JSON report (with --json).
    fn finish(&self) {
        if self.json {
            println!(
                "{}",
                json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "passed": !self.failed,
                    "checks": self.results,
                })
            );
        }
    }
}

/// `ilink doctor`.
pub async fn doctor(net: &NetArgs, json_out: bool) -> CliResult {
    let client = net::client(net).await?;
    let config = client.config().clone();
    let dir = net::state_dir(net);
    if !json_out {
        println!("ilink doctor (ilink-cli {})", env!("CARGO_PKG_VERSION"));
    }
    let mut c = Checks {
        failed: false,
        auth_failed: false,
        json: json_out,
        results: Vec::new(),
    };
    let account = match net::account(&client, net).await {
        Ok(a) => a,
        Err(e) => {
            c.fail("account", &e.message);
            c.finish();
            return Err(e);
        }
    };
    let creds = account.credentials()?;
    c.ok("account", format!("{} in {}", account.id(), dir.display()));
    if let Some(u) = &creds.user_id {
        c.ok("owner", u);
    }
    let store = ilink_client::FileStore::new(&dir);
    let account_dir = store.account_dir(account.id());
    let creds_file = account_dir.join("credentials.json");
    match store.consumer_pid(account.id()) {
        Some(pid) => c.ok(
            "consumer",
            format!("process {pid} receives this account's messages"),
        ),
        None => c.ok(
            "consumer",
            "no process receives this account's messages now",
        ),
    }
    let mut aside: Vec<String> = std::fs::read_dir(&account_dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".corrupt-"))
                .collect()
        })
        .unwrap_or_default();
    aside.sort();
    if aside.is_empty() {
        c.ok("state files", "none was found corrupt");
    } else {
        c.warn(
            "state files",
            format!(
                "{} corrupt file(s) were moved aside in {}: {}; inspect them, then delete them",
                aside.len(),
                account_dir.display(),
                aside.join(", ")
            ),
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        match std::fs::metadata(&creds_file) {
            Ok(m) if m.permissions().mode() & 0o077 == 0 => {
                c.ok(
                    "credentials file",
                    format!(
                        "{} (mode {:o})",
                        creds_file.display(),
                        m.permissions().mode() & 0o777
                    ),
                );
            }
            Ok(m) => c.warn(
                "credentials file",
                format!(
                    "{} is readable by others (mode {:o}); chmod 600 it",
                    creds_file.display(),
                    m.permissions().mode() & 0o777
                ),
            ),
            Err(e) => c.warn("credentials file", format!("{}: {e}", creds_file.display())),
        }
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if creds.saved_at_ms > 0 {
        let age_days = now_ms.saturating_sub(creds.saved_at_ms) / 86_400_000;
        if creds.saved_at_ms > now_ms + 60_000 {
            c.warn("login time", "saved in the future: is the clock right?");
        } else if age_days >= 25 {
            c.warn(
                "login time",
                format!("{age_days} days ago; tokens are reported to expire after about 30 days"),
            );
        } else {
            c.ok("login time", format!("{age_days} day(s) ago"));
        }
    }
    let base = account.base_url()?;
    // Reachability and clock: any HTTP answer of the server will do.
    let req = ilink_http::Request::get(base.clone()).timeout(Duration::from_secs(10));
    match client.http().request(req).await {
        Ok(resp) => {
            c.ok("server", format!("{base} answered"));
            match resp.header("date").and_then(parse_http_date) {
                Some(server) => {
                    let skew = now_ms as i64 / 1000 - server;
                    if skew.abs() > 300 {
                        c.fail("clock", format!("this machine is {skew} s off the server's clock; fix the system time"));
                    } else {
                        c.ok("clock", format!("within {} s of the server", skew.abs()));
                    }
                }
                None => c.warn("clock", "the server sent no Date header; not checked"),
            }
        }
        Err(e) => c.fail("server", format!("{base} is unreachable: {}", chain(&e))),
    }
    match account.notify_start().await {
        Ok(()) => c.ok("token", "accepted (msg/notifystart answered ret 0)"),
        Err(e) if e.kind() == ErrorKind::SessionExpired => {
            c.auth_failed = true;
            c.fail("token", "stale or expired (-14): run `ilink login` again");
        }
        Err(e) => c.fail("token", format!("could not be checked: {}", chain(&e))),
    }
    let cdn = config.cdn_base_url.clone();
    match client
        .http()
        .request(ilink_http::Request::get(cdn.clone()).timeout(Duration::from_secs(10)))
        .await
    {
        Ok(_) => c.ok("cdn", format!("{cdn} answered")),
        Err(e) => c.warn("cdn", format!("{cdn} is unreachable: {}", chain(&e))),
    }
    let v = config.compat_version;
    let base_info = ilink_client::proto::BaseInfo::for_version(&v, config.bot_agent.as_deref());
    c.ok(
        "sent as",
        format!(
            "official client {} (base_info {}; headers {}: {}, {}: {}, {}: {})",
            v.channel_version(),
            serde_json::to_string(&base_info).unwrap_or_default(),
            ilink_client::proto::consts::HEADER_APP_ID,
            ilink_client::proto::consts::APP_ID,
            ilink_client::proto::consts::HEADER_APP_CLIENT_VERSION,
            v.client_version_header_value(),
            ilink_client::proto::consts::HEADER_AUTHORIZATION_TYPE,
            ilink_client::proto::consts::AUTHORIZATION_TYPE_VALUE,
        ),
    );
    c.finish();
    if c.auth_failed {
        Err(CliError::new(Exit::Auth, "the account needs a new login").hint("run `ilink login`"))
    } else if c.failed {
        Err(CliError::failure("some checks failed (see above)"))
    } else {
        if !json_out {
            println!("all checks passed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("garbage"), None);
    }
}
