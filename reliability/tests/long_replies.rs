//! Long replies survive SIGKILL: the `long-reply-bot` binary answers `start` with a
//! 30,000-character reply (Chinese, English, emoji, Markdown with code blocks and tables) that
//! needs several reply windows, against ilink-sim with its live limits on (text cap 2000,
//! 10 replies per inbound message, bursts throttled). It is killed with SIGKILL at seeded
//! random moments while it queues, sends and flushes, and restarted; the user writes
//! "continue" whenever nothing moves. Every character must arrive exactly once, in order.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ilink_client::{Credentials, FileStore, Secret, StateStore, filter_markdown};
use ilink_reliability::SplitMix64;
use ilink_reliability::files::inspect_state_dir;
use ilink_sim::{BotAccount, DropReason, Sim, SimConfig};

const CHARS: usize = 30_000;

struct Rig {
    sim: Sim,
    bot: BotAccount,
    _dir: tempfile::TempDir,
    state: PathBuf,
}

impl Rig {
    async fn new() -> Self {
        // The live limits: text cap 2000, 10 replies per inbound message, 24 h window,
        // 30 sends per 10 s.
        let sim = Sim::start(SimConfig::for_tests(Duration::from_millis(300)))
            .await
            .unwrap();
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
            _dir: dir,
            state,
        }
    }

    fn spawn(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_long-reply-bot"))
            .env("RELIABILITY_BASE_URL", self.sim.base_url())
            .env("RELIABILITY_CDN_URL", self.sim.cdn_base_url())
            .env("RELIABILITY_STATE_DIR", &self.state)
            .env("RELIABILITY_REPLY_CHARS", CHARS.to_string())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// What `user` received, in order, with the continuation notices removed.
    fn received(&self, user: &str) -> String {
        let suffix = format!("\n\n{}", ilink_client::outbox::DEFAULT_CONTINUATION_NOTICE);
        self.sim
            .delivered_to(user)
            .iter()
            .map(|d| {
                let t = d.text().unwrap_or_default();
                t.strip_suffix(&suffix).unwrap_or(t).to_owned()
            })
            .collect()
    }
}

/// One long reply to `user`, with the bot killed at random moments until it is complete.
/// Returns the number of kills.
async fn one_reply_under_kills(rig: &Rig, user: &str, rng: &mut SplitMix64) -> u32 {
    let expected = filter_markdown(&ilink_sim::long_reply(CHARS));
    rig.sim.user(user).send_text(&rig.bot, "start").unwrap();
    let mut kills = 0u32;
    let mut still = 0u32;
    let mut last = 0usize;
    for round in 0..400 {
        let mut child = rig.spawn();
        match round % 4 {
            // Killed right as the server takes a message: between its answer and the
            // journal's record of it, the narrowest window of all.
            0 | 1 => {
                let target = rig.sim.delivered_to(user).len() + 1 + rng.below(3) as usize;
                let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
                while rig.sim.delivered_to(user).len() < target
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
            // A random moment: while it starts, queues, sends or flushes.
            2 => tokio::time::sleep(Duration::from_millis(20 + rng.below(300))).await,
            // Long enough for a whole window to go out.
            _ => tokio::time::sleep(Duration::from_millis(1200)).await,
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        let received = rig.received(user);
        if received.len() >= expected.len() {
            break;
        }
        let n = rig.sim.delivered_to(user).len();
        if n == last {
            still += 1;
        } else {
            still = 0;
            last = n;
        }
        // Nothing moved for a while: the window is used up; the user writes again.
        if still >= 3 {
            rig.sim.user(user).send_text(&rig.bot, "continue").unwrap();
            still = 0;
        }
    }
    // A last, undisturbed run lets anything in flight settle (nothing more may arrive).
    let mut child = rig.spawn();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let received = rig.received(user);
    assert_eq!(
        received.len(),
        expected.len(),
        "{user}: {} of {} bytes arrived",
        received.len(),
        expected.len()
    );
    assert!(
        received == expected,
        "{user}: the reply arrived changed or duplicated"
    );
    let delivered = rig.sim.delivered_to(user);
    let ids: HashSet<_> = delivered.iter().map(|d| d.client_id.clone()).collect();
    assert_eq!(
        ids.len(),
        delivered.len(),
        "{user}: a client_id delivered twice"
    );
    assert!(
        delivered
            .iter()
            .all(|d| d.text().unwrap_or_default().encode_utf16().count() <= 2000)
    );
    kills
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_replies_arrive_exactly_once_through_sigkills() {
    let rig = Rig::new().await;
    let mut rng = SplitMix64::new(0x18_1ACE);
    let mut kills = 0;
    let mut replies = 0;
    // At least two replies and at least 20 kills over the test.
    while replies < 2 || kills < 20 {
        assert!(replies < 6, "too few kills landed ({kills})");
        let user = format!("long-reader{replies}@im.wechat");
        kills += one_reply_under_kills(&rig, &user, &mut rng).await;
        replies += 1;
    }
    // Nothing was ever cut by the server's text cap. Retries of a message whose first
    // attempt went through show up as duplicate client_ids (the server keeps the first);
    // bursts and a budget that a kill left behind the server's count show up as -2.
    let dropped = rig.sim.dropped();
    assert!(
        dropped.iter().all(|d| matches!(
            d.reason,
            DropReason::DuplicateClientId | DropReason::Throttled | DropReason::ReplyLimitReached
        )),
        "{dropped:?}"
    );
    assert!(!dropped.iter().any(|d| d.reason == DropReason::Truncated));
    let r = inspect_state_dir(&rig.state).unwrap();
    assert!(r.is_clean(), "{r:#?}");
    // The journal is private and still loads.
    let store = FileStore::new(&rig.state);
    assert!(store.load_outbox(&rig.bot.bot_id).await.is_ok());
    let count = |r: DropReason| dropped.iter().filter(|d| d.reason == r).count();
    eprintln!(
        "{replies} replies of {CHARS} characters, {kills} SIGKILLs; {} messages delivered; \
         retries after a kill that the server had already taken: {}; -2 burst: {}, -2 limit: {}",
        rig.sim.delivered().len(),
        count(DropReason::DuplicateClientId),
        count(DropReason::Throttled),
        count(DropReason::ReplyLimitReached)
    );
}
