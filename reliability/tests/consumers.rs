//! One consumer per account, and graceful stops: the `reliability-bot` binary runs as child
//! processes on one `FileStore`. A second consumer of the same account is refused (naming the
//! first one's PID) while the first answers everything once; and SIGTERM at seeded random
//! moments of a conversation loses nothing and handles nothing twice (a graceful stop commits
//! the message in hand), with the state valid after every stop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ilink_client::{Credentials, FileStore, Secret, StateStore};
use ilink_reliability::SplitMix64;
use ilink_reliability::files::inspect_state_dir;
use ilink_sim::{BotAccount, Endpoint, Sim};

struct Rig {
    sim: Sim,
    bot: BotAccount,
    dir: tempfile::TempDir,
    state: PathBuf,
}

impl Rig {
    async fn new() -> Self {
        let sim = Sim::start(ilink_reliability::sim_config()).await.unwrap();
        let bot = sim.create_bot();
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        FileStore::new(&state)
            .save_credentials(&Credentials {
                account_id: bot.bot_id.clone(),
                token: Secret::new(bot.token.clone()),
                base_url: Some(sim.base_url()),
                user_id: None,
                saved_at_ms: 1,
            })
            .await
            .unwrap();
        Self {
            sim,
            bot,
            dir,
            state,
        }
    }

    fn journal_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&self, journal: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_reliability-bot"))
            .env("RELIABILITY_BASE_URL", self.sim.base_url())
            .env("RELIABILITY_CDN_URL", self.sim.cdn_base_url())
            .env("RELIABILITY_STATE_DIR", &self.state)
            .env("RELIABILITY_JOURNAL", self.journal_path(journal))
            .env("RELIABILITY_TYPING", "0")
            // Each answer takes a while, so a SIGTERM can come mid-conversation.
            .env("RELIABILITY_HANDLER_DELAY_MS", "60")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn notifystarts(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.endpoint == Some(Endpoint::NotifyStart))
            .count()
    }

    /// Waits until a bot started after `before` notifystarts is polling (its signal handler
    /// is installed before that).
    async fn wait_running(&self, before: usize) {
        for _ in 0..2000 {
            if self.notifystarts() > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the bot did not start");
    }

    fn send(&self, n: usize) {
        self.sim
            .user(&format!("c-user{}@im.wechat", n % 3))
            .send_text(&self.bot, &format!("m{n}"))
            .unwrap();
    }

    fn inbound_ids(&self) -> Vec<String> {
        self.sim
            .inbound()
            .iter()
            .map(|m| m.message_id.to_string())
            .collect()
    }

    fn delivered(&self) -> usize {
        (0..3)
            .map(|u| self.sim.delivered_to(&format!("c-user{u}@im.wechat")).len())
            .sum()
    }

    async fn assert_state_valid(&self, when: &str) {
        let r = inspect_state_dir(&self.state).unwrap();
        assert!(r.is_clean(), "state after {when}: {r:#?}");
        let store = FileStore::new(&self.state);
        assert_eq!(
            store.accounts().await.unwrap(),
            vec![self.bot.bot_id.clone()]
        );
        store.load_cursor(&self.bot.bot_id).await.unwrap();
        store.load_tombstones(&self.bot.bot_id).await.unwrap();
        store.load_context_tokens(&self.bot.bot_id).await.unwrap();
        assert_eq!(
            store.consumer_pid(&self.bot.bot_id),
            None,
            "{when}: lock free"
        );
    }
}

/// `H id` lines of a journal: the messages whose handler started.
fn handled(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("H "))
        .map(str::to_owned)
        .collect()
}

fn done_ok(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("D ") && l.ends_with(" ok"))
        .count()
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

async fn wait_exit(mut child: Child) -> (Option<i32>, String) {
    let stderr = child.stderr.take();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let err = stderr
        .map(|s| std::io::read_to_string(s).unwrap_or_default())
        .unwrap_or_default();
    (status.code(), err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_consumer_of_an_account_is_refused() {
    let rig = Rig::new().await;
    let first = rig.spawn("first.log");
    rig.wait_running(0).await;
    let pid = first.id();
    for n in 0..5 {
        rig.send(n);
    }
    let (code, err) = wait_exit(rig.spawn("second.log")).await;
    assert_ne!(code, Some(0), "the second consumer must not run: {err}");
    assert!(err.contains("already being consumed"), "{err}");
    // The lease holder is named: `host:pid:random` by default.
    assert!(err.contains(&format!(":{pid}:")), "{err}");
    assert!(handled(&rig.journal_path("second.log")).is_empty());
    for n in 5..10 {
        rig.send(n);
    }
    for _ in 0..3000 {
        if done_ok(&rig.journal_path("first.log")) >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sigterm(&first);
    let (code, err) = wait_exit(first).await;
    assert_eq!(code, Some(0), "{err}");
    let h = handled(&rig.journal_path("first.log"));
    let mut ids = rig.inbound_ids();
    ids.sort();
    let mut got = h.clone();
    got.sort();
    assert_eq!(
        got, ids,
        "every message handled once, by the first consumer"
    );
    assert_eq!(rig.delivered(), 10);
    rig.assert_state_valid("the stop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_at_random_moments_loses_nothing() {
    const ROUNDS: usize = 12;
    const PER_ROUND: usize = 6;
    let rig = Rig::new().await;
    let mut rng = SplitMix64::new(0x51_6E_A1_7E_12);
    let journal = rig.journal_path("bot.log");
    let mut sent = 0;
    let mut mid_conversation = 0;
    for round in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            rig.send(sent);
            sent += 1;
        }
        let before = rig.notifystarts();
        let child = rig.spawn("bot.log");
        rig.wait_running(before).await;
        tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
        if done_ok(&journal) < sent {
            mid_conversation += 1;
        }
        sigterm(&child);
        let (code, err) = wait_exit(child).await;
        assert_eq!(
            code,
            Some(0),
            "round {round}: a graceful stop exits 0: {err}"
        );
        rig.assert_state_valid(&format!("round {round}")).await;
    }
    // A last run answers whatever is left.
    let before = rig.notifystarts();
    let child = rig.spawn("bot.log");
    rig.wait_running(before).await;
    for _ in 0..6000 {
        if done_ok(&journal) >= sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sigterm(&child);
    let (code, err) = wait_exit(child).await;
    assert_eq!(code, Some(0), "{err}");
    rig.assert_state_valid("the last stop").await;

    let mut counts: HashMap<String, usize> = HashMap::new();
    for id in handled(&journal) {
        *counts.entry(id).or_default() += 1;
    }
    let ids = rig.inbound_ids();
    assert_eq!(ids.len(), sent);
    for id in &ids {
        assert_eq!(
            counts.get(id).copied(),
            Some(1),
            "message {id} handled once: {counts:?}"
        );
    }
    assert_eq!(done_ok(&journal), sent, "every reply went out");
    assert_eq!(rig.delivered(), sent);
    assert!(
        mid_conversation > 0,
        "at least one SIGTERM came with messages still to answer"
    );
}
