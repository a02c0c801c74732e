//! Shared helpers of the tests that run the `ilink` binary as a process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use ilink_client::{Credentials, FileStore, Secret, StateStore};
use ilink_sim::{BotAccount, Sim, SimConfig};
use tokio::io::AsyncWriteExt as _;

pub const BIN: &str = env!("CARGO_BIN_EXE_ilink");

/// An ilink-sim on loopback with short long polls.
pub async fn sim() -> Sim {
    Sim::start(SimConfig::for_tests(Duration::from_millis(300)))
        .await
        .unwrap()
}

/// The `ilink` binary, killed when dropped, without the environment variables it reads
/// (a developer's own settings must not leak into a test).
pub fn command() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(BIN);
    for var in [
        "ILINK_BASE_URL",
        "ILINK_CDN_BASE_URL",
        "ILINK_STATE_DIR",
        "ILINK_STORE",
        "ILINK_ACCOUNT",
        "ILINK_METRICS",
        "RUST_LOG",
        "NO_COLOR",
    ] {
        c.env_remove(var);
    }
    c.kill_on_drop(true);
    c
}

/// `--base-url`, `--cdn-base-url` and `--state-dir` for `sim` and `dir`.
pub fn net_args(sim: &Sim, dir: &Path) -> Vec<String> {
    vec![
        "--base-url".into(),
        sim.base_url(),
        "--cdn-base-url".into(),
        sim.cdn_base_url(),
        "--state-dir".into(),
        dir.display().to_string(),
    ]
}

/// Runs `c` to the end with `stdin` as its input (stdout and stderr captured).
pub async fn run(mut c: tokio::process::Command, stdin: Option<&str>) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("ilink did not finish")
        .unwrap()
}

/// Runs `ilink` with the sim's URLs and `dir` as the state directory.
pub async fn ilink(sim: &Sim, dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = command();
    c.args(net_args(sim, dir)).args(args);
    run(c, stdin).await
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Stores credentials for a bot provisioned directly in the emulator.
pub async fn seed(sim: &Sim, dir: &Path) -> BotAccount {
    let bot = sim.create_bot();
    FileStore::new(dir)
        .save_credentials(&Credentials {
            account_id: bot.bot_id.clone(),
            token: Secret::new(bot.token.clone()),
            base_url: Some(sim.base_url()),
            user_id: None,
            saved_at_ms: 1,
        })
        .await
        .unwrap();
    bot
}
