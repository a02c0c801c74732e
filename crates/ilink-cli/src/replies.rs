//! Long texts: reading them (`--text -`, `--text-file`), reporting each part (delivered,
//! queued), and `ilink queue show|flush|clear`.

use std::io::Read as _;
use std::path::Path;

use clap::{Args, Subcommand};
use ilink_client::outbox::Overflow;
use ilink_client::{Account, QueueReason, SendErrorKind, SendOutcome};

use crate::NetArgs;
use crate::error::{CliError, CliResult, Exit};
use crate::net;

/// Largest text read from standard input or a file, in bytes.
pub const MAX_TEXT_BYTES: u64 = 8 * 1024 * 1024;

/// The text to send: `--text -` reads standard input, `--text-file F` reads a file (both
/// UTF-8, at most [`MAX_TEXT_BYTES`], one final line break removed as `$(cat F)` would).
pub fn read_text(text: Option<&str>, text_file: Option<&Path>) -> CliResult<Option<String>> {
    if let Some(path) = text_file {
        let f = std::fs::File::open(path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
        return read_bounded(f, &path.display().to_string()).map(Some);
    }
    match text {
        Some("-") => read_bounded(std::io::stdin().lock(), "standard input").map(Some),
        Some(t) => Ok(Some(t.to_owned())),
        None => Ok(None),
    }
}

fn read_bounded(r: impl std::io::Read, what: &str) -> CliResult<String> {
    let mut bytes = Vec::new();
    r.take(MAX_TEXT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::failure(format!("cannot read {what}: {e}")))?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return Err(CliError::usage(format!(
            "{what} holds more than {MAX_TEXT_BYTES} bytes of text"
        )));
    }
    let mut text = String::from_utf8(bytes)
        .map_err(|_| CliError::usage(format!("{what} is not UTF-8 text")))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// How long texts are sent: the flags of `ilink send` and `ilink echo`.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Fail before sending anything when a text needs more messages than the user's reply
    /// window allows (default: send what fits and queue the rest until the user writes).
    #[arg(long)]
    all_or_nothing: bool,
    /// Retries of a message the server throttles (ret -2) before it waits in the queue.
    #[arg(long, default_value_t = 3, value_name = "N")]
    throttle_retries: u32,
}

/// A client with the configuration of `net` and the policy of `policy`.
pub async fn client(net: &NetArgs, policy: &PolicyArgs) -> CliResult<ilink_client::Client> {
    let mut config = net::config(net);
    apply_policy(&mut config, policy);
    net::client_with(net, config).await
}

/// Sets the overflow policy and the throttle retries of `config` from the options.
pub fn apply_policy(config: &mut ilink_client::ClientConfig, policy: &PolicyArgs) {
    config.replies.overflow = if policy.all_or_nothing {
        Overflow::AllOrNothing
    } else {
        Overflow::Queue
    };
    config.replies.throttle_retries = policy.throttle_retries;
}

/// Print one line per part of a text (`part i/n: delivered|accepted|queued …`), or with
/// `json_lines` one JSON object per part: {"sent", "part", "parts", "status", "message_id",
/// "client_id", "position", "queued_because"}. Exit 0 when every part was delivered; 6 when
/// some wait in the queue for the user's next message; 3 when some were queued because the
/// session expired; 1 when some were queued because sending failed; 4 when the server
/// accepted a part without a `message_id`.
pub fn report_parts(outcomes: &[SendOutcome], what: &str, json_lines: bool) -> CliResult {
    let n = outcomes.len();
    let (mut queued, mut accepted_only) = (0, false);
    let mut failure: Option<SendErrorKind> = None;
    for (i, o) in outcomes.iter().enumerate() {
        let part = if n > 1 {
            format!("{what} part {}/{n}", i + 1)
        } else {
            what.to_owned()
        };
        let (status, position, because) = match o {
            SendOutcome::Queued {
                position, reason, ..
            } => {
                queued += 1;
                let because = match reason {
                    QueueReason::Failed(
                        kind @ (SendErrorKind::StaleToken | SendErrorKind::SessionExpired),
                    ) => {
                        failure.get_or_insert(*kind);
                        "session expired"
                    }
                    QueueReason::Failed(kind) => {
                        failure.get_or_insert(*kind);
                        "sending failed"
                    }
                    _ => "reply window",
                };
                ("queued", Some(*position), Some(because))
            }
            o if o.message_id().is_some() => ("delivered", None, None),
            _ => {
                accepted_only = true;
                ("accepted", None, None)
            }
        };
        if json_lines {
            println!(
                "{}",
                serde_json::json!({
                    "sent": what,
                    "part": i + 1,
                    "parts": n,
                    "status": status,
                    "message_id": o.message_id().map(|id| id.as_str().to_owned()),
                    "client_id": o.client_id(),
                    "position": position,
                    "queued_because": because,
                })
            );
            continue;
        }
        match (position, o.message_id()) {
            (Some(p), _) => println!(
                "queued {part} (position {p}, {}): kept in the state directory",
                because.unwrap_or("reply window")
            ),
            (None, Some(id)) => println!("delivered {part} (message_id {})", id.as_str()),
            (None, None) => println!("accepted {part} without a message_id"),
        }
    }
    if let Some(kind) = failure {
        return Err(match kind {
            SendErrorKind::StaleToken | SendErrorKind::SessionExpired => CliError::new(
                Exit::Auth,
                format!(
                    "{queued} of {n} part(s) are queued: the session expired or the token is \
                     stale (code -14)"
                ),
            )
            .hint(
                "run `ilink login` again; the queued parts go out, in order, with \
                 `ilink queue flush --to USER` or when the user writes and `ilink echo` runs",
            ),
            _ => CliError::new(
                Exit::Failure,
                format!("{queued} of {n} part(s) are queued: sending failed (network or server)"),
            )
            .hint(
                "check the server with `ilink doctor`; `ilink queue flush --to USER` sends the \
                 queued parts again with the same client_id (the server drops a copy it has)",
            ),
        });
    }
    if accepted_only {
        return Err(CliError::new(
            Exit::NotDelivered,
            "the server accepted a message without a message_id; it may not be delivered",
        ));
    }
    if queued > 0 {
        return Err(CliError::new(
            Exit::Queued,
            format!(
                "{queued} of {n} part(s) are queued: the reply window allows no more now (or \
                 the server refused this chat's context_token: both answer ret -2)"
            ),
        )
        .hint(
            "they are kept in the state directory and go out, in order, when the user writes \
             again and `ilink echo` runs (or `ilink queue flush --to USER` in a new window)",
        ));
    }
    Ok(())
}

/// `ilink queue …`.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List the messages waiting for a user (all users without --to), and their budget.
    Show(QueueArgs),
    /// Send what a user's queue holds, as far as their reply window allows.
    Flush(QueueTo),
    /// Drop every message waiting for a user, unsent.
    Clear(QueueTo),
}

/// Arguments of `ilink queue show`.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The user (`…@im.wechat`).
    #[arg(long, value_name = "USER")]
    to: Option<String>,
    #[command(flatten)]
    net: NetArgs,
}

/// Arguments of `ilink queue flush|clear`.
#[derive(Debug, Args)]
pub struct QueueTo {
    /// The user (`…@im.wechat`).
    #[arg(long, value_name = "USER")]
    to: String,
    #[command(flatten)]
    net: NetArgs,
}

impl QueueCommand {
    /// The server and state options given to the subcommand.
    pub fn net(&self) -> &NetArgs {
        match self {
            Self::Show(a) => &a.net,
            Self::Flush(a) | Self::Clear(a) => &a.net,
        }
    }
}

/// When a window closes, for people: "in 23 h 59 min (epoch ms 1796136590824)", or "already
/// closed".
pub fn window_closes(at_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    if at_ms <= now {
        return format!("already (epoch ms {at_ms})");
    }
    let mins = (at_ms - now) / 60_000;
    format!("in {} h {} min (epoch ms {at_ms})", mins / 60, mins % 60)
}

fn show_user(account: &Account, user: &str) {
    let b = account.budget(user);
    let closes = b
        .window_closes_at_ms
        .map_or_else(|| "unknown".to_owned(), window_closes);
    println!(
        "{user}: {} queued, {} message(s) left in the window, window closes {closes}{}",
        b.queued,
        b.left,
        if b.exhausted {
            " (the server refused more)"
        } else {
            ""
        }
    );
    for m in account.queued(user) {
        let chars = m.text.chars().count();
        let preview: String = m.text.chars().take(40).collect();
        let more = if chars > 40 { "…" } else { "" };
        println!(
            "  {:>3}  {}  {chars} chars  {:?}{more}",
            m.position, m.client_id, preview
        );
    }
}

/// `ilink queue`.
pub async fn queue(net: &NetArgs, cmd: QueueCommand) -> CliResult {
    let client = net::client(net).await?;
    let account = net::account(&client, net).await?;
    match cmd {
        QueueCommand::Show(a) => {
            let users = match a.to {
                Some(u) => vec![u.trim().to_owned()],
                None => account.queued_users(),
            };
            if users.is_empty() {
                println!("no messages are queued");
            }
            for u in users {
                show_user(&account, &u);
            }
            Ok(())
        }
        QueueCommand::Flush(a) => {
            let user = a.to.trim();
            let report = account.flush_queue(user).await?;
            println!(
                "sent {} message(s); {} still queued{}",
                report.sent.len(),
                report.still_queued,
                if report.expired.is_empty() {
                    String::new()
                } else {
                    format!("; {} expired unsent", report.expired.len())
                }
            );
            if report.still_queued > 0 {
                return Err(CliError::new(
                    Exit::Queued,
                    format!("{} message(s) still wait for {user}", report.still_queued),
                )
                .hint("they go out when the user writes again"));
            }
            Ok(())
        }
        QueueCommand::Clear(a) => {
            let n = account.clear_queue(a.to.trim()).await?;
            println!("removed {n} queued message(s)");
            Ok(())
        }
    }
}
