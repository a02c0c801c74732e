//! The inbound commands: `tail` (messages as they arrive), `download` (their media) and
//! `decrypt` (a file fetched from the CDN).
//!
//! Media item, key and declared size/MD5 come from the library (`ilink_client::download`), and
//! downloads go through the client's own CDN client, so the configuration (CDN base URL,
//! allowed hosts, download cap) is the same as the bot's.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use ilink_client::cdn::{CdnErrorKind, Expected};
use ilink_client::content::{Content, Reference};
use ilink_client::download::{self as media, MediaKey};
use ilink_client::proto::{CdnMedia, ItemType, MessageItem};
use ilink_client::{Account, InboundMessage, UndecodableMessage, Update};
use ilink_crypto::{Decryptor, Md5Hasher};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::NetArgs;
use crate::error::{CliError, CliResult, Exit, chain};
use crate::net::{self, human_size};
use crate::progress;

// ---------------------------------------------------------------------------------------
// summaries (tail's text view, echo's log)
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

/// What a quote shows: the quoted item's text (or its summary), else the quote's title.
fn quote_summary(reference: &Reference<'_>) -> String {
    let quoted = reference.content().map(|q| match q {
        Content::Text { text, .. } => format!("{text:?}"),
        other => item_summary(other.item()),
    });
    quoted
        .filter(|q| !q.is_empty())
        .or_else(|| reference.title().map(|t| format!("{t:?}")))
        .unwrap_or_default()
}

fn item_summary(item: &MessageItem) -> String {
    let approx = |s: Option<u64>| {
        s.map(|s| format!(" ~{}", human_size(s)))
            .unwrap_or_default()
    };
    match Content::of(item) {
        Content::Text { text, .. } => format!("{text:?}"),
        Content::Quote {
            text, reference, ..
        } => match quote_summary(&reference) {
            q if q.is_empty() => format!("[quote] {text:?}"),
            q => format!("[quoting {q}] {text:?}"),
        },
        Content::Image { size, .. } => format!("[image{}]", approx(size)),
        Content::Video { size, .. } => format!("[video{}]", approx(size)),
        Content::File { name, size, .. } => format!(
            "[file {}{}]",
            name.unwrap_or("file"),
            size.map(|l| format!(" {}", human_size(l)))
                .unwrap_or_default()
        ),
        Content::Voice {
            duration,
            transcript,
            ..
        } => format!(
            "[voice{}{}]",
            duration
                .map(|d| format!(" {:.1} s", d.as_secs_f64()))
                .unwrap_or_default(),
            transcript.map(|t| format!(" {t:?}")).unwrap_or_default()
        ),
        other => format!("[item type {}]", other.item().item_type.raw()),
    }
}

// ---------------------------------------------------------------------------------------
// tail
// ---------------------------------------------------------------------------------------

/// Fields whose values are 64-bit ids: printed as JSON strings, whatever the server sent, so
/// that JavaScript and jq (before 1.7) do not round them.
const ID_FIELDS: [&str; 5] = ["message_id", "msg_id", "svr_id", "root_id", "parent_id"];

/// Turns every number under an id field into its exact decimal text.
fn ids_as_strings(v: &mut Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(o) => {
                for (k, field) in o.iter_mut() {
                    if ID_FIELDS.contains(&k.as_str())
                        && let Value::Number(n) = field
                    {
                        *field = Value::String(n.to_string());
                    } else {
                        stack.push(field);
                    }
                }
            }
            Value::Array(a) => stack.extend(a.iter_mut()),
            _ => {}
        }
    }
}

/// The JSON line `ilink tail --json` prints for a message: every field of the wire message,
/// unknown ones included, with ids (`message_id`, item `msg_id`, `svr_id`, `root_id`,
/// `parent_id`) as strings and the `context_token` redacted; plus `account`, `from` (the
/// sender), `text` (the body as the official client reads it) and `items` (the `item_list`,
/// which `ilink download` reads).
pub fn message_json(msg: &InboundMessage) -> Value {
    let mut wire = serde_json::to_value(msg.raw()).unwrap_or_else(|_| json!({}));
    ids_as_strings(&mut wire);
    let Value::Object(mut out) = wire else {
        return json!({});
    };
    if out.contains_key("context_token") {
        out.insert("context_token".into(), json!("<redacted>"));
    }
    let items = out.get("item_list").cloned().unwrap_or_else(|| json!([]));
    out.insert("account".into(), json!(msg.account_id()));
    out.insert("from".into(), json!(msg.from()));
    out.insert("text".into(), json!(msg.text()));
    out.insert("items".into(), items);
    Value::Object(out)
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

/// The text line of `ilink tail` for a message: time, sender, group (if any), content.
pub fn message_line(msg: &InboundMessage) -> String {
    let group = msg
        .raw()
        .group_id
        .as_deref()
        .filter(|g| !g.is_empty())
        .map(|g| format!(" in group {g}"))
        .unwrap_or_default();
    format!(
        "{} UTC {}{group}: {}",
        clock(msg.create_time_ms()),
        msg.from(),
        summary(msg.items())
    )
}

/// The accounts `tail` reads: `--account` or the only one, else every stored account.
async fn tail_accounts(client: &ilink_client::Client, net: &NetArgs) -> CliResult<Vec<Account>> {
    if net.account.is_none() {
        let all = client.accounts().await?;
        if all.len() > 1 {
            return Ok(all);
        }
    }
    Ok(vec![net::account(client, net).await?])
}

/// The JSON line of a message that did not decode: what is known of it, raw bytes included.
fn undecodable_json(account: &str, u: &UndecodableMessage) -> Value {
    let raw = u.raw().cloned().unwrap_or(Value::Null);
    let bytes = u.raw_bytes();
    json!({
        "account": account,
        "undecodable": raw,
        "raw_text": String::from_utf8_lossy(&bytes),
        "index": u.index(),
        "kind": format!("{:?}", u.kind()),
        "error": u.to_string(),
    })
}

/// `ilink tail`: one account, or with several and no `--account`, all of them.
pub async fn tail(net: &NetArgs, json_lines: bool, max: Option<u64>) -> CliResult {
    let client = net::client(net).await?;
    let accounts = tail_accounts(&client, net).await?;
    // Claim every account first: fail fast (exit 5) if another process consumes one.
    let mut streams = Vec::with_capacity(accounts.len());
    for a in &accounts {
        streams.push(a.updates().await?);
    }
    net::stop_on_signals(&accounts);
    let several = accounts.len() > 1;
    if !json_lines {
        let ids: Vec<&str> = accounts.iter().map(Account::id).collect();
        eprintln!(
            "Waiting for messages to {}; they count as handled once printed (no other \
             `ilink echo`, `ilink tail` or bot receives them meanwhile). Ctrl-C stops.",
            ids.join(", ")
        );
    }
    // Each stream hands over one update at a time and waits until it was printed, so a
    // message counts as handled only once it is out.
    type Handover = (String, Update, tokio::sync::oneshot::Sender<()>);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Handover>(1);
    for (account, mut updates) in accounts.iter().cloned().zip(streams) {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(update) = updates.next().await {
                let (done_tx, done_rx) = tokio::sync::oneshot::channel();
                if tx
                    .send((account.id().to_owned(), update, done_tx))
                    .await
                    .is_err()
                {
                    break;
                }
                let _ = done_rx.await;
            }
        });
    }
    drop(tx);
    let stop_all = || accounts.iter().for_each(Account::shutdown);
    let mut seen = 0u64;
    let mut expired: Option<String> = None;
    while let Some((id, update, done)) = rx.recv().await {
        match update {
            Update::Message(msg) => {
                if json_lines {
                    println!("{}", message_json(&msg));
                } else if several {
                    println!("[to {id}] {}", message_line(&msg));
                } else {
                    println!("{}", message_line(&msg));
                }
                seen += 1;
                if max.is_some_and(|m| seen >= m) {
                    stop_all();
                }
            }
            // The library logs it (warn), once; the JSON stream carries it too, raw bytes
            // included. Poll failures are logged by the library as well.
            Update::Undecodable(u) if json_lines => {
                println!("{}", undecodable_json(&id, &u));
            }
            Update::SessionExpired => {
                expired.get_or_insert(id);
                stop_all();
            }
            _ => {}
        }
        let _ = std::io::stdout().flush();
        let _ = done.send(());
    }
    match expired {
        Some(id) => Err(
            CliError::new(Exit::Auth, format!("the session of {id} expired (-14)"))
                .hint("run `ilink login` again"),
        ),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// download
// ---------------------------------------------------------------------------------------

/// Arguments of `ilink download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The message: a line of `ilink tail --json` (its media item is chosen as the official
    /// client does), or one item of its `items`, as JSON; `-` reads it from stdin.
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
    /// Save the bytes as the CDN serves them when there is no key (otherwise refused).
    #[arg(long, conflicts_with = "key")]
    raw: bool,
    /// Where to write the media: a file, a directory (the file's own name is used), or `-`
    /// for stdout.
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,
    /// For voice: write a 24 kHz WAV file instead of the SILK bytes.
    #[arg(long)]
    wav: bool,
    /// The plaintext's MD5 (32 hex digits) to check; default: what the item declares.
    #[arg(long, value_name = "HEX")]
    md5: Option<String>,
    /// The plaintext's size in bytes to check; default: what the item declares.
    #[arg(long, value_name = "BYTES")]
    len: Option<u64>,
    /// Print the result as one JSON object: {"saved", "bytes"} (not with `-o -`).
    #[arg(long)]
    json: bool,
}

/// What `download` prints once a file is saved.
fn report_saved(json_out: bool, path: &Path, bytes: u64, note: &str) {
    if json_out {
        println!(
            "{}",
            json!({"saved": path.display().to_string(), "bytes": bytes})
        );
    } else {
        println!("saved {} to {}{note}", human_size(bytes), path.display());
    }
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
    media::media_item(&items)
        .cloned()
        .ok_or_else(|| CliError::usage("the message has no downloadable media"))
}

/// Checks declared by the flags, else by the item.
fn expected_from(
    md5: Option<&str>,
    len: Option<u64>,
    item: Option<&MessageItem>,
) -> CliResult<Expected> {
    let mut e = item.map(media::expected).unwrap_or_default();
    if let Some(m) = md5 {
        let given = Expected::new().with_md5_hex(m);
        let Some(d) = given.md5() else {
            return Err(CliError::usage(format!("--md5 {m:?} is not 32 hex digits")));
        };
        e = e.with_md5(d);
    }
    if let Some(l) = len {
        e = e.with_len(l);
    }
    Ok(e)
}

/// Where the output goes.
enum Target {
    Stdout,
    File(PathBuf),
}

fn cdn_failure(e: &ilink_client::cdn::CdnError) -> CliError {
    match e.kind() {
        CdnErrorKind::Integrity => CliError::failure(format!("download refused: {}", chain(e)))
            .hint("the key is probably wrong (it passed the padding check by chance) or the data is corrupted; nothing was saved"),
        CdnErrorKind::Decrypt => CliError::failure(format!("download failed: {}", chain(e)))
            .hint("check the key (images: image_item.aeskey; others: media.aes_key)"),
        _ => CliError::failure(format!("download failed: {}", chain(e))),
    }
}

fn interrupted() -> CliError {
    CliError::failure("interrupted; the partial file was removed")
}

/// `ilink download`.
pub async fn download(net: &NetArgs, args: DownloadArgs) -> CliResult {
    let client = net::client(net).await?;
    let cdn = client.cdn().clone();
    let (media_ref, mut key, item) = match &args.message {
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
            let m = item
                .media()
                .cloned()
                .ok_or_else(|| CliError::usage("this item has no media"))?;
            let key = if args.key.is_some() {
                None
            } else {
                match media::media_key(&item) {
                    Ok(k) => k,
                    Err(e) if e.kind() == ilink_client::ErrorKind::Media && args.raw => None,
                    Err(e) if e.kind() == ilink_client::ErrorKind::Media => {
                        return Err(CliError::usage(format!("{e}")).hint(
                            "give --key, or --raw to save the bytes as the CDN serves them",
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            (m, key, Some(item))
        }
        None => (
            CdnMedia {
                encrypt_query_param: args.param.clone(),
                full_url: args.full_url.clone(),
                ..CdnMedia::default()
            },
            None,
            None,
        ),
    };
    if let Some(k) = &args.key {
        key = Some(MediaKey::parse(k).map_err(|e| CliError::usage(format!("--key: {e}")))?);
    }
    let plain_image = item
        .as_ref()
        .is_some_and(|i| i.item_type == ItemType::Image && args.key.is_none());
    if key.is_none() && !plain_image && !args.raw {
        return Err(CliError::usage(
            "no key: the media would be saved still encrypted",
        )
        .hint("give --key (or a message whose item has its key), or --raw to save the bytes as the CDN serves them"));
    }
    // The item declares its plaintext; bytes saved undecrypted are checked only against flags.
    let declared = if key.is_some() || plain_image {
        item.as_ref()
    } else {
        None
    };
    let expected = expected_from(args.md5.as_deref(), args.len, declared)?;
    let is_voice = item
        .as_ref()
        .is_some_and(|i| i.item_type == ItemType::Voice);
    // Saved in a directory without a name of its own: `media` plus the extension of the
    // sniffed format (`.wav` for --wav), once the bytes are known.
    let unnamed = args.output.is_dir() && item.as_ref().and_then(media::file_name).is_none();
    let target = if args.output.as_os_str() == "-" {
        Target::Stdout
    } else if args.output.is_dir() {
        let name = item
            .as_ref()
            .and_then(media::file_name)
            .unwrap_or_else(|| "media".to_owned());
        Target::File(args.output.join(name))
    } else {
        Target::File(args.output.clone())
    };
    let hint = expected
        .len()
        .or_else(|| item.as_ref().and_then(|i| i.image_item.as_ref()?.mid_size))
        .or_else(|| {
            item.as_ref()
                .and_then(|i| i.video_item.as_ref()?.video_size)
        });
    let bar = progress::bytes_bar(hint, "downloading");
    let url = cdn.download_url(&media_ref).map_err(|e| cdn_failure(&e))?;

    if args.wav || matches!(target, Target::Stdout) {
        // In memory (capped by the client's download cap): checked before anything is written.
        let fetch = cdn.download_url_to_vec_checked(
            &url,
            key.as_ref(),
            Some(progress::callback(&bar)),
            expected,
        );
        let bytes = tokio::select! {
            r = fetch => r.map_err(|e| cdn_failure(&e))?,
            _ = tokio::signal::ctrl_c() => return Err(CliError::failure("interrupted; nothing was saved")),
        };
        bar.finish_and_clear();
        let bytes = if args.wav {
            tokio::task::spawn_blocking(move || ilink_silk::decode_to_wav(&bytes))
                .await
                .map_err(|e| CliError::failure(format!("the voice decoder failed: {e}")))?
                .map_err(|e| CliError::failure(format!("not a voice message: {}", chain(&e))))?
        } else {
            bytes
        };
        return match target {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)
                    .and_then(|()| out.flush())
                    .map_err(|e| CliError::io("writing to stdout", e))?;
                eprintln!("wrote {} to stdout", human_size(bytes.len() as u64));
                Ok(())
            }
            Target::File(mut path) => {
                if unnamed {
                    let ext = if args.wav {
                        Some("wav")
                    } else {
                        ilink_client::cdn::sniff(&bytes).map(|f| f.extension())
                    };
                    if let Some(ext) = ext {
                        path.set_extension(ext);
                    }
                }
                write_file(&path, &bytes).await?;
                report_saved(args.json, &path, bytes.len() as u64, "");
                Ok(())
            }
        };
    }

    let Target::File(path) = target else {
        return Err(CliError::failure("no output"));
    };
    let fetch = cdn.download_url_to_file_checked(
        &url,
        key.as_ref(),
        &path,
        Some(progress::callback(&bar)),
        expected,
    );
    // Ctrl-C drops the download, which removes its partial file.
    let done = tokio::select! {
        r = fetch => r.map_err(|e| cdn_failure(&e))?,
        _ = tokio::signal::ctrl_c() => return Err(interrupted()),
    };
    bar.finish_and_clear();
    // Without a name of its own, the file gets the extension of its sniffed format.
    let mut path = path;
    if unnamed && let Some(f) = done.format {
        let named = path.with_extension(f.extension());
        if tokio::fs::rename(&path, &named).await.is_ok() {
            path = named;
        }
    }
    let note = if is_voice {
        " (SILK; add --wav for a WAV file)"
    } else if key.is_none() && !plain_image {
        " (not decrypted)"
    } else {
        ""
    };
    report_saved(args.json, &path, done.len, note);
    Ok(())
}

/// Writes `bytes` to `path` through `<path>.part`, renamed when complete.
async fn write_file(path: &Path, bytes: &[u8]) -> CliResult {
    let part = part_path(path);
    let guard = PartGuard(Some(part.clone()));
    tokio::fs::write(&part, bytes)
        .await
        .map_err(|e| CliError::io(&format!("writing {}", part.display()), e))?;
    tokio::fs::rename(&part, path)
        .await
        .map_err(|e| CliError::io(&format!("cannot write {}", path.display()), e))?;
    guard.disarm();
    Ok(())
}

fn part_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".part");
    PathBuf::from(p)
}

/// Removes a partial file when dropped armed (error, Ctrl-C).
struct PartGuard(Option<PathBuf>);

impl PartGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for PartGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

// ---------------------------------------------------------------------------------------
// decrypt
// ---------------------------------------------------------------------------------------

/// Arguments of `ilink decrypt`.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The key: 32 hex digits, or base64 of the raw 16 bytes or of the hex digits.
    #[arg(long, value_name = "KEY")]
    key: String,
    /// The encrypted file.
    input: PathBuf,
    /// Where to write the plaintext: a file, or a directory (the input's name is used, without
    /// a `.enc` extension).
    output: PathBuf,
    /// The plaintext's MD5 (32 hex digits) to check.
    #[arg(long, value_name = "HEX")]
    md5: Option<String>,
    /// The plaintext's size in bytes to check.
    #[arg(long, value_name = "BYTES")]
    len: Option<u64>,
}

/// The file `decrypt` writes for `input` when `output` is a directory.
fn output_in_dir(dir: &Path, input: &Path) -> PathBuf {
    let name = match input.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("enc") => input.file_stem(),
        _ => input.file_name(),
    };
    let name = name.map_or_else(|| "decrypted".into(), |n| n.to_os_string());
    let out = dir.join(&name);
    if out == input {
        let mut n = name;
        n.push(".dec");
        dir.join(n)
    } else {
        out
    }
}

/// `ilink decrypt`: streamed, in constant memory; checked against `--md5`/`--len`.
pub async fn decrypt(args: DecryptArgs) -> CliResult {
    let key = MediaKey::parse(&args.key).map_err(|e| {
        CliError::usage(format!("--key: {e}"))
            .hint("give 32 hex digits, or base64 of the raw 16 bytes or of the 32 hex digits")
    })?;
    let expected = expected_from(args.md5.as_deref(), args.len, None)?;
    let input = &args.input;
    let output = if args.output.is_dir() {
        output_in_dir(&args.output, input)
    } else {
        args.output.clone()
    };
    let mut src = tokio::fs::File::open(input)
        .await
        .map_err(|e| CliError::io(&format!("cannot open {}", input.display()), e))?;
    let total = src.metadata().await.map(|m| m.len()).ok();
    let tmp = part_path(&output);
    let mut dst = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| CliError::io(&format!("cannot create {}", tmp.display()), e))?;
    let guard = PartGuard(Some(tmp.clone()));
    let bar = progress::bytes_bar(total, "decrypting");
    let work = async {
        let mut dec = Decryptor::new(&key);
        let mut hasher = Md5Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut out = Vec::with_capacity(buf.len() + 16);
        let mut done = 0u64;
        loop {
            let n = src
                .read(&mut buf)
                .await
                .map_err(|e| CliError::io(&format!("reading {}", input.display()), e))?;
            if n == 0 {
                break;
            }
            out.clear();
            dec.update(buf.get(..n).unwrap_or_default(), &mut out);
            hasher.update(&out);
            dst.write_all(&out)
                .await
                .map_err(|e| CliError::io(&format!("writing {}", tmp.display()), e))?;
            done += n as u64;
            bar.set_position(done);
        }
        out.clear();
        dec.finish(&mut out).map_err(|e| {
            CliError::failure(format!(
                "{} does not decrypt with this key: {e}",
                input.display()
            ))
            .hint("check the key (images: image_item.aeskey; others: media.aes_key)")
        })?;
        hasher.update(&out);
        dst.write_all(&out)
            .await
            .map_err(|e| CliError::io(&format!("writing {}", tmp.display()), e))?;
        dst.flush()
            .await
            .map_err(|e| CliError::io(&format!("writing {}", tmp.display()), e))?;
        let len = hasher.len();
        if let Some(want) = expected.len()
            && want != len
        {
            return Err(CliError::failure(format!(
                "the decrypted file is {len} bytes, not the {want} of --len; nothing was saved"
            ))
            .hint("the key is probably wrong (it passed the padding check by chance)"));
        }
        if let Some(want) = expected.md5() {
            let got = hasher.finish();
            if got != want {
                return Err(CliError::failure(
                    "the decrypted file's MD5 is not the one of --md5; nothing was saved",
                )
                .hint("the key is probably wrong (it passed the padding check by chance)"));
            }
        }
        Ok(len)
    };
    let result = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(interrupted()),
    };
    bar.finish_and_clear();
    let len = result?;
    tokio::fs::rename(&tmp, &output)
        .await
        .map_err(|e| CliError::io(&format!("cannot write {}", output.display()), e))?;
    guard.disarm();
    println!("decrypted {} to {}", human_size(len), output.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_strings_everywhere() {
        let mut v = json!({
            "message_id": 7461000000000000041u64, "seq": 41,
            "item_list": [{"msg_id": 18446744073709551615u64, "ref_msg": {"svr_id": 5}}],
            "root_id": 1, "other": 2
        });
        ids_as_strings(&mut v);
        assert_eq!(v["message_id"], "7461000000000000041");
        assert_eq!(v["item_list"][0]["msg_id"], "18446744073709551615");
        assert_eq!(v["item_list"][0]["ref_msg"]["svr_id"], "5");
        assert_eq!(v["root_id"], "1");
        assert_eq!(v["seq"], 41);
        assert_eq!(v["other"], 2);
    }

    #[test]
    fn decrypt_names_in_a_directory() {
        let d = Path::new("dl");
        assert_eq!(output_in_dir(d, Path::new("x/a.pdf.enc")), d.join("a.pdf"));
        assert_eq!(output_in_dir(d, Path::new("x/raw")), d.join("raw"));
        assert_eq!(output_in_dir(d, Path::new("dl/raw")), d.join("raw.dec"));
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
        assert_eq!(media::media_key(&img).unwrap().unwrap().to_hex(), hex);
        let file: MessageItem = serde_json::from_value(json!({"type": 4, "file_item": {
            "media": {"encrypt_query_param": "p", "aes_key": "MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmY="}}}))
        .unwrap();
        assert_eq!(media::media_key(&file).unwrap().unwrap().to_hex(), hex);
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
