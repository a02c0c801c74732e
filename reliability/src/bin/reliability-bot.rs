//! The bot the crash-safety test runs as a child process and kills with SIGKILL.
//!
//! Environment:
//! - `RELIABILITY_BASE_URL`, `RELIABILITY_CDN_URL`: the emulator;
//! - `RELIABILITY_STATE_DIR`: the `FileStore` root, holding exactly one stored account;
//! - `RELIABILITY_JOURNAL`: an append-only journal. For every message the handler writes
//!   `H <message_id>` (handled: the side effect) with fsync, replies `re:<text>`, then writes
//!   `D <message_id> <ok|error kind>` with fsync.
//! - `RELIABILITY_TYPING`: `0` to turn typing indicators off.
//!
//! SIGINT and SIGTERM stop it gracefully (the message in hand finishes, progress is
//! committed, notifystop is sent; exit 0); a second one ends it at once.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use ilink_client::{Client, FileStore, MessageContext};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn append(journal: &Mutex<std::fs::File>, line: &str) -> Result<(), String> {
    let mut f = journal
        .lock()
        .map_err(|_| "journal lock poisoned".to_owned())?;
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| format!("journal: {e}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let base = env("RELIABILITY_BASE_URL")?;
    let cdn = env("RELIABILITY_CDN_URL")?;
    let state = env("RELIABILITY_STATE_DIR")?;
    let journal_path = env("RELIABILITY_JOURNAL")?;
    let mut config = ilink_reliability::fast_config_for(&base, &cdn);
    config.typing = std::env::var("RELIABILITY_TYPING").map_or(true, |v| v != "0");
    let client = Client::new(config, FileStore::new(&state)).map_err(|e| e.to_string())?;
    client.shutdown_handle().on_signals();
    let account = client
        .accounts()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("no stored account")?;
    let journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal_path)
        .map_err(|e| format!("{journal_path}: {e}"))?;
    let journal = Arc::new(Mutex::new(journal));
    // How long each handler works before it replies (an AI agent's answer takes a while), so
    // a stop can come while messages are still being answered.
    let delay = std::time::Duration::from_millis(
        std::env::var("RELIABILITY_HANDLER_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    account
        .run(move |ctx: MessageContext| {
            let journal = journal.clone();
            async move {
                let id = ctx
                    .message()
                    .message_id()
                    .map(|i| i.as_str().to_owned())
                    .unwrap_or_default();
                append(&journal, &format!("H {id}\n"))?;
                tokio::time::sleep(delay).await;
                let text = format!("re:{}", ctx.text().unwrap_or(""));
                let outcome = match ctx.reply(&text).await {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => format!("{:?}", e.kind()),
                };
                append(&journal, &format!("D {id} {outcome}\n"))
            }
        })
        .await
        .map_err(|e| e.to_string())
}
