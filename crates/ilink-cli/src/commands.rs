//! The network commands: login, echo, tail, send, download, doctor.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{ArgGroup, Args};
use ilink_client::cdn::{CdnClient, CdnConfig, MediaSource};
use ilink_client::proto::{CdnMedia, ItemType, MessageItem};
use ilink_client::{
    Account, BoxFuture, ErrorKind, Handler, InboundMessage, LoginOutcome, MediaType,
    MessageContext, SendOutcome, TerminalPresenter, Update,
};
use ilink_crypto::MediaKey;
use serde_json::{Value, json};

use crate::NetArgs;
use crate::error::{CliError, CliResult, Exit};
use crate::net::{self, human_size};
use crate::progress;

// ---------------------------------------------------------------------------------------
// login
// ---------------------------------------------------------------------------------------

/// `ilink login`.
pub async fn login(net: &NetArgs) -> CliResult {
    let client = net::client(net)?;
    eprintln!(
        "Logging in at {} (state directory {}).",
        client.config().qr_base_url,
        net::state_dir(net).display()
    );
    match client.login(&TerminalPresenter::new()).await? {
        LoginOutcome::Confirmed(account) => {
            let creds = account.credentials()?;
            println!("Logged in as {}.", account.id());
            if let Some(user) = creds.user_id.as_deref() {
                println!("WeChat user {user} can now talk to this bot.");
            }
            println!(
                "Credentials saved (mode 0600) in {}.",
                net::state_dir(net).display()
            );
            Ok(())
        }
        LoginOutcome::AlreadyBound => {
            println!("This bot is already connected to this client; nothing changed.");
            Ok(())
        }
        _ => Err(CliError::new(
            Exit::Auth,
            "the login ended without an account",
        )),
    }
}

// ---------------------------------------------------------------------------------------
// echo
// ---------------------------------------------------------------------------------------

/// A one-line summary of a message's content.
pub fn summary(items: &[MessageItem]) -> String {
    let parts: Vec<String> = items.iter().map(item_summary).collect();
    if parts.is_empty() {
        "(empty)".to_owned()
    } else {
        parts.join(" ")
    }
}

fn item_summary(item: &MessageItem) -> String {
    match item.item_type {
        ItemType::Text => {
            let text = item
                .text_item
                .as_ref()
                .and_then(|t| t.text.as_deref())
                .unwrap_or("");
            let quote = if item.ref_msg.is_some() {
                "[quote] "
            } else {
                ""
            };
            format!("{quote}{text:?}")
        }
        ItemType::Image => {
            let size = item.image_item.as_ref().and_then(|i| i.mid_size);
            format!(
                "[image{}]",
                size.map(|s| format!(" ~{}", human_size(s)))
                    .unwrap_or_default()
            )
        }
        ItemType::Video => {
            let size = item.video_item.as_ref().and_then(|v| v.video_size);
            format!(
                "[video{}]",
                size.map(|s| format!(" ~{}", human_size(s)))
                    .unwrap_or_default()
            )
        }
        ItemType::File => {
            let f = item.file_item.as_ref();
            let name = f.and_then(|f| f.file_name.as_deref()).unwrap_or("file");
            let len = f.and_then(|f| f.len_bytes());
            format!(
                "[file {name}{}]",
                len.map(|l| format!(" {}", human_size(l)))
                    .unwrap_or_default()
            )
        }
        ItemType::Voice => {
            let v = item.voice_item.as_ref();
            let ms = v.and_then(|v| v.playtime);
            let text = v.and_then(|v| v.text.as_deref());
            format!(
                "[voice{}{}]",
                ms.map(|m| format!(" {:.1} s", m as f64 / 1000.0))
                    .unwrap_or_default(),
                text.map(|t| format!(" {t:?}")).unwrap_or_default()
            )
        }
        other => format!("[item type {}]", other.raw()),
    }
}

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
        match update {
            Update::SessionExpired => {
                self.expired.store(true, Ordering::SeqCst);
                self.account.shutdown();
            }
            Update::Undecodable(u) => {
                eprintln!("ilink: a message could not be decoded: {}", u.error);
            }
            _ => {}
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
    let client = crate::replies::client(net, policy)?;
    let account = net::account(&client, net)?;
    net::stop_on_ctrl_c(&account);
    eprintln!("Echo bot {} is running; Ctrl-C stops it.", account.id());
    let expired = Arc::new(AtomicBool::new(false));
    let bot = EchoBot {
        account: account.clone(),
        prefix: prefix.to_owned(),
        max,
        handled: AtomicU64::new(0),
        expired: expired.clone(),
    };
    account.run(bot).await?;
    if expired.load(Ordering::SeqCst) {
        return Err(
            CliError::new(Exit::Auth, "the session expired (-14)").hint("run `ilink login` again")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// tail
// ---------------------------------------------------------------------------------------

/// The JSON line `ilink tail --json` prints for a message.
pub fn message_json(msg: &InboundMessage) -> Value {
    json!({
        "account": msg.account_id(),
        "from": msg.from(),
        "message_id": msg.message_id().map(|i| i.as_str().to_owned()),
        "create_time_ms": msg.create_time_ms(),
        "text": msg.text(),
        "items": msg.items(),
    })
}

fn clock(ms: Option<i64>) -> String {
    let ms = ms.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    });
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// `ilink tail`.
pub async fn tail(net: &NetArgs, json_lines: bool, max: Option<u64>) -> CliResult {
    let client = net::client(net)?;
    let account = net::account(&client, net)?;
    net::stop_on_ctrl_c(&account);
    if !json_lines {
        eprintln!("Waiting for messages to {}; Ctrl-C stops.", account.id());
    }
    let mut updates = account.updates()?;
    let mut seen = 0u64;
    while let Some(update) = updates.next().await {
        match update {
            Update::Message(msg) => {
                if json_lines {
                    println!("{}", message_json(&msg));
                } else {
                    println!(
                        "{} UTC {}: {}",
                        clock(msg.create_time_ms()),
                        msg.from(),
                        summary(msg.items())
                    );
                }
                let _ = std::io::stdout().flush();
                seen += 1;
                if max.is_some_and(|m| seen >= m) {
                    account.shutdown();
                }
            }
            Update::Undecodable(u) => {
                eprintln!("ilink: a message could not be decoded: {}", u.error);
                if json_lines {
                    println!("{}", json!({"undecodable": u.raw, "error": u.error}));
                }
            }
            Update::SessionExpired => {
                return Err(CliError::new(Exit::Auth, "the session expired (-14)")
                    .hint("run `ilink login` again"));
            }
            _ => {}
        }
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
    /// allow now is queued (exit 5) and sent when the user writes again.
    #[arg(long)]
    text: Option<String>,
    /// Send the text of this file (UTF-8), like --text.
    #[arg(long, value_name = "PATH", conflicts_with = "text")]
    text_file: Option<PathBuf>,
    /// Send an image file.
    #[arg(long, value_name = "PATH")]
    image: Option<PathBuf>,
    /// Send a video file.
    #[arg(long, value_name = "PATH")]
    video: Option<PathBuf>,
    /// Send a file (any document).
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Send a voice message made from an audio file (WAV, MP3, Ogg, FLAC, AAC/M4A or SILK).
    #[arg(long, value_name = "AUDIO")]
    voice: Option<PathBuf>,
    /// A caption sent before the media, as its own text message.
    #[arg(long, conflicts_with = "text")]
    caption: Option<String>,
    #[command(flatten)]
    policy: crate::replies::PolicyArgs,
}

fn report(outcomes: &[SendOutcome], what: &str) -> CliResult {
    let mut accepted_only = false;
    for o in outcomes {
        match o.message_id() {
            Some(id) => println!("delivered {what} (message_id {})", id.as_str()),
            None => {
                accepted_only = true;
                println!("accepted {what} without a message_id");
            }
        }
    }
    if accepted_only {
        return Err(CliError::new(
            Exit::NotDelivered,
            "the server accepted a message without a message_id; it may not be delivered",
        ));
    }
    Ok(())
}

fn check_file(path: &Path) -> CliResult<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))
}

/// `ilink send`.
pub async fn send(net: &NetArgs, args: SendArgs) -> CliResult {
    let client = crate::replies::client(net, &args.policy)?;
    let account = net::account(&client, net)?;
    let to = args.to.trim();
    if let Some(text) = crate::replies::read_text(args.text.as_deref(), args.text_file.as_deref())?
    {
        let out = account.send_text(to, &text).await?;
        return crate::replies::report_parts(&out, "text");
    }
    let (path, kind, label) = if let Some(p) = &args.image {
        (p, MediaType::Image, "image")
    } else if let Some(p) = &args.video {
        (p, MediaType::Video, "video")
    } else if let Some(p) = &args.file {
        (p, MediaType::File, "file")
    } else if let Some(p) = &args.voice {
        (p, MediaType::Voice, "voice")
    } else {
        return Err(CliError::usage("nothing to send"));
    };
    let size = check_file(path)?;
    if let Some(c) = &args.caption {
        let out = account.send_text(to, c).await?;
        crate::replies::report_parts(&out, "caption")?;
    }
    let label_text = format!("uploading {} ({})", path.display(), human_size(size));
    let mut send = account
        .media(to, MediaSource::file(path.clone()))
        .media_type(kind);
    let bar = if kind == MediaType::Voice {
        // Most of a voice send is the conversion to SILK, which reports no progress; the
        // upload after it is small.
        progress::spinner(size, &label_text)
    } else {
        // The upload is the ciphertext: AES-128-ECB with PKCS#7 padding (next multiple of
        // 16 bytes), streamed from the file and reported as it goes.
        let bar = progress::bytes_bar(Some((size / 16 + 1) * 16), &label_text);
        send = send.progress(progress::callback(&bar));
        bar
    };
    let result = send.send().await;
    bar.finish_and_clear();
    report(&result?, label)
}

// ---------------------------------------------------------------------------------------
// download
// ---------------------------------------------------------------------------------------

/// Arguments of `ilink download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The message: a line of `ilink tail --json` (its first media item is used), or one
    /// item of its `items`, as JSON; `-` reads it from stdin.
    #[arg(value_name = "JSON", required_unless_present_any = ["param", "full_url"])]
    message: Option<String>,
    /// Which item of the message's `items` to download (from 0).
    #[arg(long, value_name = "N", requires = "message")]
    index: Option<usize>,
    /// Instead of JSON: the media's `encrypt_query_param`.
    #[arg(long, value_name = "PARAM", conflicts_with = "message")]
    param: Option<String>,
    /// Instead of JSON: the media's `full_url`.
    #[arg(long, value_name = "URL", conflicts_with = "message")]
    full_url: Option<String>,
    /// The AES key (hex, or base64 of the raw bytes or of the hex); overrides the item's.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// Where to write the decrypted media.
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,
    /// For voice: write a 24 kHz WAV file instead of the SILK bytes.
    #[arg(long)]
    wav: bool,
}

/// The item to download from a JSON argument: a tail line (`items`) or an item.
pub fn pick_item(value: &Value, index: Option<usize>) -> CliResult<MessageItem> {
    let parse = |v: &Value| {
        serde_json::from_value::<MessageItem>(v.clone())
            .map_err(|e| CliError::usage(format!("not a message item: {e}")))
    };
    let Some(items) = value.get("items").and_then(Value::as_array) else {
        return parse(value);
    };
    let items: Vec<MessageItem> = items.iter().map(parse).collect::<CliResult<_>>()?;
    if let Some(i) = index {
        return items.get(i).cloned().ok_or_else(|| {
            CliError::usage(format!(
                "the message has {} item(s); --index {i} is out of range",
                items.len()
            ))
        });
    }
    for wanted in [
        ItemType::Image,
        ItemType::Video,
        ItemType::File,
        ItemType::Voice,
    ] {
        if let Some(item) = items
            .iter()
            .find(|i| i.item_type == wanted && i.media().is_some_and(CdnMedia::is_downloadable))
        {
            return Ok(item.clone());
        }
    }
    Err(CliError::usage("the message has no downloadable media"))
}

/// The key that decrypts an item's media (PROTOCOL.md §12.4).
pub fn item_key(item: &MessageItem) -> CliResult<Option<MediaKey>> {
    let media = item.media();
    let aes = media.and_then(|m| m.aes_key.as_ref()).map(|k| k.expose());
    let bad =
        |e: ilink_crypto::KeyError| CliError::failure(format!("the item's key is malformed: {e}"));
    if item.item_type == ItemType::Image {
        let hex = item
            .image_item
            .as_ref()
            .and_then(|i| i.aeskey.as_ref())
            .map(|k| k.expose());
        return MediaKey::from_image_item(hex, aes).map_err(bad);
    }
    match aes.filter(|k| !k.trim().is_empty()) {
        Some(k) => MediaKey::from_cdn_aes_key(k).map(Some).map_err(bad),
        None => Ok(None),
    }
}

fn size_hint(item: &MessageItem) -> Option<u64> {
    item.file_item
        .as_ref()
        .and_then(|f| f.len_bytes())
        .or_else(|| item.image_item.as_ref().and_then(|i| i.mid_size))
        .or_else(|| item.video_item.as_ref().and_then(|v| v.video_size))
}

/// `ilink download`.
pub async fn download(net: &NetArgs, args: DownloadArgs) -> CliResult {
    let client = net::client(net)?;
    let config = client.config();
    let cdn = CdnClient::new(
        client.http().clone(),
        CdnConfig::default()
            .with_base_url(config.cdn_base_url.clone())
            .with_max_download_bytes(config.max_media_bytes),
    );
    let (media, mut key, is_voice, hint) = match &args.message {
        Some(text) => {
            let text = if text == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| CliError::io("reading stdin", e))?
            } else {
                text.clone()
            };
            let value: Value = serde_json::from_str(text.trim())
                .map_err(|e| CliError::usage(format!("the message is not JSON: {e}")))?;
            let item = pick_item(&value, args.index)?;
            let media = item
                .media()
                .cloned()
                .ok_or_else(|| CliError::usage("this item has no media"))?;
            (
                media,
                item_key(&item)?,
                item.item_type == ItemType::Voice,
                size_hint(&item),
            )
        }
        None => (
            CdnMedia {
                encrypt_query_param: args.param.clone(),
                full_url: args.full_url.clone(),
                ..CdnMedia::default()
            },
            None,
            false,
            None,
        ),
    };
    if let Some(k) = &args.key {
        key = Some(MediaKey::parse(k).map_err(|e| CliError::usage(format!("--key: {e}")))?);
    }
    if key.is_none() {
        eprintln!("ilink: no key given; saving the bytes as they are (not decrypted)");
    }
    let bar = progress::bytes_bar(hint, "downloading");
    let out = &args.output;
    let written = if args.wav {
        let url = cdn
            .download_url(&media)
            .map_err(|e| CliError::failure(e.to_string()))?;
        let silk = cdn
            .download_url_to_vec(&url, key.as_ref(), Some(progress::callback(&bar)))
            .await
            .map_err(|e| CliError::failure(format!("download failed: {e}")))?;
        let wav = tokio::task::spawn_blocking(move || ilink_silk::decode_to_wav(&silk))
            .await
            .map_err(|e| CliError::failure(format!("the voice decoder failed: {e}")))?
            .map_err(|e| CliError::failure(format!("not a voice message: {e}")))?;
        tokio::fs::write(out, &wav)
            .await
            .map_err(|e| CliError::io(&format!("writing {}", out.display()), e))?;
        wav.len() as u64
    } else {
        cdn.download_to_file(&media, key.as_ref(), out, Some(progress::callback(&bar)))
            .await
            .map_err(|e| CliError::failure(format!("download failed: {e}")))?
            .len
    };
    bar.finish_and_clear();
    let note = if is_voice && !args.wav {
        " (SILK; add --wav for a WAV file)"
    } else {
        ""
    };
    println!("saved {} to {}{note}", human_size(written), out.display());
    Ok(())
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
}

impl Checks {
    fn ok(&self, what: &str, detail: impl AsRef<str>) {
        println!("  ok    {what}: {}", detail.as_ref());
    }
    fn warn(&self, what: &str, detail: impl AsRef<str>) {
        println!("  warn  {what}: {}", detail.as_ref());
    }
    fn fail(&mut self, what: &str, detail: impl AsRef<str>) {
        self.failed = true;
        println!("  FAIL  {what}: {}", detail.as_ref());
    }
}

/// `ilink doctor`.
pub async fn doctor(net: &NetArgs) -> CliResult {
    let client = net::client(net)?;
    let config = client.config().clone();
    let dir = net::state_dir(net);
    println!("ilink doctor (ilink-cli {})", env!("CARGO_PKG_VERSION"));
    let mut c = Checks {
        failed: false,
        auth_failed: false,
    };
    let account = match net::account(&client, net) {
        Ok(a) => a,
        Err(e) => {
            c.fail("account", &e.message);
            return Err(e);
        }
    };
    let creds = account.credentials()?;
    c.ok("account", format!("{} in {}", account.id(), dir.display()));
    if let Some(u) = &creds.user_id {
        c.ok("owner", u);
    }
    let creds_file = ilink_client::FileStore::new(&dir)
        .account_dir(account.id())
        .join("credentials.json");
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
    if let Some(flag) = net.base_url.as_deref().filter(|u| !u.trim().is_empty())
        && flag.trim().trim_end_matches('/') != base.trim_end_matches('/')
    {
        c.warn(
            "base URL",
            format!(
                "the account uses the base URL the server gave at login ({base}), not --base-url {flag}"
            ),
        );
    }
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
        Err(e) => c.fail("server", format!("{base} is unreachable: {e}")),
    }
    match account.notify_start().await {
        Ok(()) => c.ok("token", "accepted (msg/notifystart answered ret 0)"),
        Err(e) if e.kind() == ErrorKind::SessionExpired => {
            c.auth_failed = true;
            c.fail("token", "stale or expired (-14): run `ilink login` again");
        }
        Err(e) => c.fail("token", format!("could not be checked: {e}")),
    }
    let cdn = config.cdn_base_url.clone();
    match client
        .http()
        .request(ilink_http::Request::get(cdn.clone()).timeout(Duration::from_secs(10)))
        .await
    {
        Ok(_) => c.ok("cdn", format!("{cdn} answered")),
        Err(e) => c.warn("cdn", format!("{cdn} is unreachable: {e}")),
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
    if c.auth_failed {
        Err(CliError::new(Exit::Auth, "the account needs a new login").hint("run `ilink login`"))
    } else if c.failed {
        Err(CliError::failure("some checks failed (see above)"))
    } else {
        println!("all checks passed");
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

    #[test]
    fn items_are_picked_by_priority_or_index() {
        let line = json!({"items": [
            {"type": 1, "text_item": {"text": "hi"}},
            {"type": 4, "file_item": {"media": {"encrypt_query_param": "f"}, "file_name": "a.txt"}},
            {"type": 2, "image_item": {"media": {"encrypt_query_param": "i"}}},
        ]});
        assert_eq!(pick_item(&line, None).unwrap().item_type, ItemType::Image);
        assert_eq!(pick_item(&line, Some(1)).unwrap().item_type, ItemType::File);
        assert!(pick_item(&line, Some(7)).is_err());
        let text_only = json!({"items": [{"type": 1, "text_item": {"text": "hi"}}]});
        assert!(pick_item(&text_only, None).is_err());
        let item = json!({"type": 3, "voice_item": {"media": {"encrypt_query_param": "v"}}});
        assert_eq!(pick_item(&item, None).unwrap().item_type, ItemType::Voice);
    }

    #[test]
    fn keys_follow_the_image_rule() {
        let hex = "00112233445566778899aabbccddeeff";
        let img: MessageItem = serde_json::from_value(json!({"type": 2, "image_item": {
            "aeskey": hex, "media": {"encrypt_query_param": "p"}}}))
        .unwrap();
        assert_eq!(item_key(&img).unwrap().unwrap().to_hex(), hex);
        let file: MessageItem = serde_json::from_value(json!({"type": 4, "file_item": {
            "media": {"encrypt_query_param": "p", "aes_key": "MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmY="}}}))
        .unwrap();
        assert_eq!(item_key(&file).unwrap().unwrap().to_hex(), hex);
    }

    #[test]
    fn summaries_name_each_item() {
        let items: Vec<MessageItem> = serde_json::from_value(json!([
            {"type": 1, "text_item": {"text": "hi"}},
            {"type": 4, "file_item": {"file_name": "a.txt", "len": "2048"}},
            {"type": 3, "voice_item": {"playtime": 1500}},
        ]))
        .unwrap();
        assert_eq!(summary(&items), "\"hi\" [file a.txt 2.0 KiB] [voice 1.5 s]");
    }
}
