//! The bot of `tests/long_replies.rs`, run as a child process and killed with SIGKILL.
//!
//! Environment: `RELIABILITY_BASE_URL`, `RELIABILITY_CDN_URL` (the emulator),
//! `RELIABILITY_STATE_DIR` (the `FileStore` root with one stored account) and
//! `RELIABILITY_REPLY_CHARS` (default 30000). It answers a message `start` with
//! [`ilink_sim::long_reply`] of that many characters, and any other message with nothing: what
//! its queue holds goes out first when a message arrives ([`ilink_client::Account::begin_turn`]).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use ilink_client::{Client, FileStore, MessageContext};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let base = env("RELIABILITY_BASE_URL")?;
    let cdn = env("RELIABILITY_CDN_URL")?;
    let state = env("RELIABILITY_STATE_DIR")?;
    let chars = std::env::var("RELIABILITY_REPLY_CHARS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(30_000);
    let mut config = ilink_reliability::fast_config_for(&base, &cdn);
    config.typing = false;
    config.replies.throttle_backoff = Duration::from_millis(100);
    let client = Client::new(config, FileStore::new(&state)).map_err(|e| e.to_string())?;
    let account = client
        .accounts()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("no stored account")?;
    let reply = Arc::new(ilink_sim::long_reply(chars));
    account
        .run(move |ctx: MessageContext| {
            let reply = reply.clone();
            async move {
                if ctx.text() == Some("start") {
                    ctx.reply(&reply).await.map(|_| ())
                } else {
                    Ok(())
                }
            }
        })
        .await
        .map_err(|e| e.to_string())
}
