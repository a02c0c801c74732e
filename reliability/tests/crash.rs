//! Crash safety: the `reliability-bot` binary runs as a child process with a `FileStore`, and
//! is killed with SIGKILL (`Child::kill`) at seeded random moments during a conversation, then
//! restarted. Its fsynced journal and the emulator's records must agree: nothing lost, state
//! files always valid and private, and a message handled again only when a kill interrupted it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ilink_client::{Credentials, FileStore, Secret, StateStore};
use ilink_reliability::SplitMix64;
use ilink_reliability::files::inspect_state_dir;
use ilink_sim::{BotAccount, Endpoint, Fault, Sim};

struct Rig {
    sim: Sim,
    bot: BotAccount,
    _dir: tempfile::TempDir,
    state: PathBuf,
    journal: PathBuf,
}

impl Rig {
    async fn new() -> Self {
        let sim = Sim::start(ilink_reliability::sim_config()).await.unwrap();
        let bot = sim.create_bot();
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let journal = dir.path().join("journal.log");
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
            journal,
        }
    }

    fn spawn(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_reliability-bot"))
            .env("RELIABILITY_BASE_URL", self.sim.base_url())
            .env("RELIABILITY_CDN_URL", self.sim.cdn_base_url())
            .env("RELIABILITY_STATE_DIR", &self.state)
            .env("RELIABILITY_JOURNAL", &self.journal)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn send(&self, n: usize) {
        let user = format!("crash-user{}@im.wechat", n % 3);
        self.sim
            .user(&user)
            .send_text(&self.bot, &format!("m{n}"))
            .unwrap();
    }

    fn journal(&self) -> Journal {
        Journal::read(&self.journal)
    }

    fn inbound_ids(&self) -> Vec<String> {
        self.sim
            .inbound()
            .iter()
            .map(|m| m.message_id.to_string())
            .collect()
    }

    fn id_of(&self, text: &str) -> String {
        self.sim
            .inbound()
            .iter()
            .find(|m| m.message["item_list"][0]["text_item"]["text"] == text)
            .map(|m| m.message_id.to_string())
            .unwrap()
    }

    /// Waits (bounded, generously for a loaded CI machine with slow fsync) until the journal
    /// satisfies `done`.
    async fn wait_journal(&self, done: impl Fn(&Journal) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while tokio::time::Instant::now() < deadline {
            if done(&self.journal()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// Every state file parses and is private; returns the temp files left behind.
    async fn assert_state_valid(&self, when: &str) -> usize {
        let r = inspect_state_dir(&self.state).unwrap();
        assert!(r.is_clean(), "state after {when}: {r:#?}");
        // The stored account must still open (a reader that would choke on the state fails
        // here, not in production).
        let store = FileStore::new(&self.state);
        assert_eq!(
            store.accounts().await.unwrap(),
            vec![self.bot.bot_id.clone()]
        );
        store.load_cursor(&self.bot.bot_id).await.unwrap();
        store.load_tombstones(&self.bot.bot_id).await.unwrap();
        store.load_context_tokens(&self.bot.bot_id).await.unwrap();
        r.temp_files.len()
    }
}

fn kill(child: &mut Child) {
    // `Child::kill` sends SIGKILL on Unix.
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The bot's journal: `H id` when the handler starts its side effects, `D id outcome` when it
/// returns.
#[derive(Debug, Default)]
struct Journal {
    handled: Vec<String>,
    done: Vec<String>,
}

impl Journal {
    fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut j = Self::default();
        // A kill can cut the last line short; only whole lines count.
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        for line in complete.lines() {
            let mut parts = line.split(' ');
            match (parts.next(), parts.next()) {
                (Some("H"), Some(id)) => j.handled.push(id.to_owned()),
                (Some("D"), Some(id)) => j.done.push(id.to_owned()),
                _ => panic!("corrupt journal line {line:?}"),
            }
        }
        j
    }

    fn counts(&self) -> HashMap<String, usize> {
        let mut c = HashMap::new();
        for id in &self.handled {
            *c.entry(id.clone()).or_default() += 1;
        }
        c
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_and_keeps_state_valid() {
    const KILLS: usize = 30;
    const PER_ROUND: usize = 10;
    let rig = Rig::new().await;
    let mut rng = SplitMix64::new(0xC0FF_EE00_D1E5);
    let mut sent = 0;
    // What each kill interrupted: the last message the handler had started, and whether its
    // handler had returned.
    let mut at_kill: Vec<(String, bool)> = Vec::new();
    // The journal's length at each kill: what one process run handled lies between two.
    let mut segments: Vec<usize> = vec![0];
    let mut temp_files = 0;
    let mut max_temp_files = 0;
    // Kills that hit a bot with messages still to handle (not idle, not done).
    let mut mid_conversation = 0;
    // Faults too, one per round, so crashes meet a failing network.
    let faults = [
        (Endpoint::GetUpdates, Fault::Status(500)),
        (Endpoint::GetUpdates, Fault::DuplicateBatch),
        (Endpoint::GetUpdates, Fault::TruncatedBody),
        (Endpoint::SendMessage, Fault::ConnectionReset),
        (Endpoint::SendMessage, Fault::Status(502)),
        (
            Endpoint::SendTyping,
            Fault::Latency(Duration::from_millis(150)),
        ),
    ];
    let mut injected = 0;
    for k in 0..KILLS {
        let (ep, f) = faults[rng.below(faults.len() as u64) as usize].clone();
        rig.sim.inject_fault(ep, f, 1);
        injected += 1;
        for _ in 0..PER_ROUND {
            rig.send(sent);
            sent += 1;
        }
        let mut child = rig.spawn();
        let wait = if k % 4 == 0 {
            // A random moment: sometimes before the first poll, sometimes while handling.
            let wait = rng.below(400);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            wait
        } else {
            // Mid-conversation by construction, whatever the machine's speed: once the
            // handler has started a random number of this round's messages (at least one,
            // never all ten). A clock-driven moment alone lands after the round on a fast
            // machine and before the first poll on a loaded one.
            let before = rig.journal().counts().len();
            let target = before + 1 + rng.below(PER_ROUND as u64 - 1) as usize;
            let started = tokio::time::Instant::now();
            assert!(
                rig.wait_journal(|j| j.counts().len() >= target).await,
                "kill {k}: the bot never started message {target}"
            );
            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
        };
        kill(&mut child);
        let j = rig.journal();
        if j.counts().len() < sent {
            mid_conversation += 1;
        }
        if let Some(last) = j.handled.last() {
            let completed = j.done.iter().filter(|d| *d == last).count()
                >= j.handled.iter().filter(|h| *h == last).count();
            at_kill.push((last.clone(), completed));
        }
        // `run` handles different users' messages concurrently, so a kill can interrupt
        // several: every message whose handler had started and whose dedupe tombstone was not
        // persisted yet (still running, or returned a moment before the kill) may come again;
        // no other may.
        let tombstones: HashSet<String> = FileStore::new(&rig.state)
            .load_tombstones(&rig.bot.bot_id)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        let started: HashSet<&String> = j.handled.iter().collect();
        for id in started {
            if j.handled.last() != Some(id) && !tombstones.contains(&format!("m:{id}")) {
                let completed = j.done.iter().filter(|d| *d == id).count()
                    >= j.handled.iter().filter(|h| *h == id).count();
                at_kill.push((id.clone(), completed));
            }
        }
        segments.push(j.handled.len());
        temp_files = rig
            .assert_state_valid(&format!("kill {k} (after {wait} ms)"))
            .await;
        max_temp_files = max_temp_files.max(temp_files);
    }
    // The last run is not interrupted: everything must come through.
    let mut child = rig.spawn();
    let all = rig.inbound_ids();
    let settled = rig
        .wait_journal(|j| {
            let done: HashSet<&String> = j.done.iter().collect();
            all.iter().all(|id| done.contains(id))
        })
        .await;
    // The bot committed its cursor once the batch was through: the emulator saw it polling
    // from the end of the stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let b = rig.sim.bot(&rig.bot.bot_id).unwrap();
        if b.acked == b.inbox_len {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    kill(&mut child);
    rig.assert_state_valid("the final run").await;
    let names: Vec<String> = inspect_state_dir(&rig.state)
        .unwrap()
        .valid_json
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for f in [
        "credentials.json",
        "cursor.json",
        "dedupe.journal",
        "context_tokens.json",
    ] {
        assert!(names.iter().any(|n| n == f), "{f} missing: {names:?}");
    }

    let j = rig.journal();
    let counts = j.counts();
    let lost: Vec<&String> = all.iter().filter(|id| !counts.contains_key(*id)).collect();
    let phantom: Vec<&String> = counts.keys().filter(|id| !all.contains(id)).collect();
    let duplicates: BTreeMap<&String, usize> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, n)| (k, *n))
        .collect();
    let mut allowed: HashMap<&String, usize> = HashMap::new();
    for (id, _) in &at_kill {
        *allowed.entry(id).or_default() += 1;
    }
    // Handled again although its handler had returned before the kill: what the client's
    // README says cannot happen ("handled ones do not [come again]").
    let after_completion: HashSet<&String> = at_kill
        .iter()
        .filter(|(id, completed)| *completed && duplicates.contains_key(id))
        .map(|(id, _)| id)
        .collect();
    // Replies the user received twice (a redelivered message is answered again).
    let mut replies: HashMap<String, usize> = HashMap::new();
    for d in rig.sim.delivered() {
        *replies
            .entry(d.text().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    let replied_twice = replies.values().filter(|n| **n > 1).count();
    let fired = injected - rig.sim.pending_faults().len();
    println!(
        "crash: faults={injected} (fired {fired}) messages={} kills={KILLS} (mid-conversation: {mid_conversation}) lost={} \
         duplicates={} (after a completed handler: {}) replies_delivered_twice={replied_twice} \
         leftover_temp_files={temp_files} (max {max_temp_files})",
        all.len(),
        lost.len(),
        duplicates.len(),
        after_completion.len()
    );
    assert!(
        settled,
        "the last run did not handle everything: lost {lost:?}"
    );
    assert!(lost.is_empty(), "lost across SIGKILLs: {lost:?}");
    assert!(phantom.is_empty(), "{phantom:?}");
    assert_eq!(all.len(), KILLS * PER_ROUND);
    // The schedule really interrupted conversations (not only idle or finished bots).
    assert!(mid_conversation >= KILLS / 2, "{mid_conversation}");
    // At least once: a message is handled again only if a kill interrupted it (its handler
    // had started and its tombstone was not persisted), and at most once per such kill.
    // Within one process run a message is never handled twice (dedupe and in-flight keys).
    segments.push(j.handled.len());
    for w in segments.windows(2) {
        let run = j.handled.get(w[0]..w[1]).unwrap_or(&[]);
        let unique: HashSet<&String> = run.iter().collect();
        assert_eq!(unique.len(), run.len(), "handled twice in one run: {run:?}");
    }
    for (id, n) in &duplicates {
        let may = allowed.get(id).copied().unwrap_or(0);
        assert!(
            *n <= 1 + may,
            "{id} handled {n} times but interrupted by only {may} kill(s)"
        );
    }
}

/// Regression test of finding R1: a kill that lands after the handler returned (its reply
/// delivered) while the runtime still stops the typing indicator (a sendtyping round trip,
/// held open here by a slow sendtyping so the kill lands in it every time) must not make the
/// message come again: its dedupe tombstone is persisted as soon as the handler returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_the_handler_returned_does_not_redeliver() {
    let rig = Rig::new().await;
    let mut child = rig.spawn();
    rig.send(0);
    let m0 = rig.id_of("m0");
    assert!(rig.wait_journal(|j| j.done.contains(&m0)).await);
    // Hold the typing start and the typing cancel of the next message for 1.5 s each.
    rig.sim.inject_fault(
        Endpoint::SendTyping,
        Fault::Latency(Duration::from_millis(1500)),
        2,
    );
    rig.send(1);
    let m1 = rig.id_of("m1");
    assert!(rig.wait_journal(|j| j.done.contains(&m1)).await);
    // The handler of m1 returned and its reply was delivered; the runtime is cancelling the
    // typing indicator (held for 1.5 s). The process dies in the middle of that.
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill(&mut child);
    assert_eq!(
        rig.sim
            .delivered()
            .iter()
            .filter(|d| d.text() == Some("re:m1"))
            .count(),
        1
    );
    let mut child = rig.spawn();
    rig.send(2);
    let m2 = rig.id_of("m2");
    assert!(rig.wait_journal(|j| j.done.contains(&m2)).await);
    kill(&mut child);
    let counts = rig.journal().counts();
    let replies = rig
        .sim
        .delivered()
        .iter()
        .filter(|d| d.text() == Some("re:m1"))
        .count();
    assert_eq!(
        counts.get(&m1),
        Some(&1),
        "m1 handled {:?} times",
        counts.get(&m1)
    );
    assert_eq!(replies, 1, "the user got the reply to m1 {replies} times");
}
