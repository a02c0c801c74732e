//! Failover of a fleet of `ilink echo --fleet` processes on one PostgreSQL store: ilink-sim
//! in-process on loopback with 300 bots, three child processes of the real binary sharing the
//! bots through account leases (ttl 3 s), scripted users writing to every bot all along.
//! One process is killed (SIGKILL), later another is stopped (SIGSTOP) past its lease and
//! continued (SIGCONT). Every message must be answered exactly once, and the stopped process
//! must stop serving every account it lost. Needs PostgreSQL (`ilink_postgres::testing`:
//! skipped without it locally, a failure in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ilink_client::{Credentials, Secret, StateStore};
use ilink_postgres::testing::TestCluster;
use ilink_sim::{BotAccount, Sim, SimConfig};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const BOTS: usize = 300;
const PROCESSES: usize = 3;
const TTL_S: u64 = 3;
/// How long each phase may take at most (generous: a shared 2-core machine, debug builds).
const PHASE: Duration = Duration::from_secs(90);
/// A scripted round (one message to every bot) every this long.
const ROUND_EVERY: Duration = Duration::from_secs(5);

/// A child `ilink echo --fleet` and what it printed (stdout and stderr, in arrival order).
struct Member {
    name: String,
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Member {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id().unwrap()).unwrap()
    }

    fn lines_since(&self, t: Instant) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= t)
            .map(|(_, l)| l.clone())
            .collect()
    }

    fn dump(&self) -> String {
        let lines = self.lines.lock().unwrap();
        let tail: Vec<&str> = lines
            .iter()
            .filter(|(_, l)| !l.contains(": bot -> "))
            .rev()
            .take(40)
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("--- {} (last 40 lines) ---\n{}", self.name, tail.join("\n"))
    }
}

fn spawn_member(name: &str, sim: &Sim, url: &str) -> Member {
    let mut c = command();
    c.env("RUST_LOG", "warn,ilink_client::fleet=debug")
        .args(["echo", "--fleet", "--member-id", name])
        .args(["--lease-ttl", &TTL_S.to_string()])
        .args(["--store", url])
        .args(["--base-url", &sim.base_url()])
        .args(["--cdn-base-url", &sim.cdn_base_url()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().unwrap();
    let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    for reader in [
        Box::new(out) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(err),
    ] {
        let lines = lines.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(reader).lines();
            while let Ok(Some(l)) = r.next_line().await {
                lines.lock().unwrap().push((Instant::now(), l));
            }
        });
    }
    Member {
        name: name.to_owned(),
        child,
        lines,
    }
}

fn signal(pid: i32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Live leases by holder.
async fn holders(store: &dyn StateStore) -> BTreeMap<String, HashSet<String>> {
    let now = std::time::SystemTime::now();
    let mut m: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for l in store.leases().await.unwrap() {
        if l.expires > now {
            m.entry(l.holder).or_default().insert(l.account);
        }
    }
    m
}

async fn wait_for<F, Fut>(what: &str, members: &[Member], mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        if start.elapsed() > PHASE {
            let dumps: Vec<String> = members.iter().map(Member::dump).collect();
            panic!("timed out waiting for {what}\n{}", dumps.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

fn user(i: usize) -> String {
    format!("user{i}@im.wechat")
}

/// (user, text) of every inbound message sent, and how many echoes each got.
fn tally(sim: &Sim, sent: &[(String, String)]) -> (usize, usize, Vec<String>) {
    let mut echoes: HashMap<(String, String), usize> = HashMap::new();
    for d in sim.delivered() {
        *echoes
            .entry((
                d.to_user_id.clone(),
                d.text().unwrap_or_default().to_owned(),
            ))
            .or_default() += 1;
    }
    let mut missing = 0;
    let mut twice = Vec::new();
    for (u, t) in sent {
        match echoes.remove(&(u.clone(), format!("echo: {t}"))) {
            None => missing += 1,
            Some(1) => {}
            Some(n) => twice.push(format!("{u} {t} x{n}")),
        }
    }
    // Anything left was never asked for.
    twice.extend(
        echoes
            .into_iter()
            .map(|((u, t), n)| format!("unexpected {u} {t:?} x{n}")),
    );
    (sent.len(), missing, twice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_answers_every_message_once_through_a_kill_and_a_stall() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let db = cluster.database().await.unwrap();
    let store = db.store().await.unwrap();
    // Long polls held 10 s (a message ends one at once): idle accounts cost little.
    let sim = Sim::start(SimConfig::for_tests(Duration::from_secs(10)))
        .await
        .unwrap();
    let bots: Vec<BotAccount> = (0..BOTS).map(|_| sim.create_bot()).collect();
    for b in &bots {
        store
            .save_credentials(&Credentials {
                account_id: b.bot_id.clone(),
                token: Secret::new(b.token.clone()),
                base_url: Some(sim.base_url()),
                user_id: b.user_id.clone(),
                saved_at_ms: 1,
            })
            .await
            .unwrap();
    }
    let url = db.url().to_owned();
    let mut members: Vec<Member> = (0..PROCESSES)
        .map(|i| spawn_member(&format!("member-{i}"), &sim, &url))
        .collect();

    // Everyone joins; the accounts are spread: every one leased, nobody above its share.
    let t = wait_for(
        "the accounts to be spread over the three members",
        &members,
        || async {
            let h = holders(&store).await;
            h.len() == PROCESSES
                && h.values().all(|a| a.len() <= BOTS.div_ceil(PROCESSES))
                && h.values().map(HashSet::len).sum::<usize>() == BOTS
        },
    )
    .await;
    println!(
        "spread {BOTS} accounts over {PROCESSES} processes in {:.1} s",
        t.as_secs_f64()
    );
    // `ilink fleet status` sees the same: every account, three holders.
    let status = tokio::process::Command::new(BIN)
        .args(["fleet", "status", "--json", "--store", &url])
        .env_remove("ILINK_STORE")
        .output()
        .await
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["accounts"].as_array().unwrap().len(), BOTS);
    let names: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["member"].as_str())
        .collect();
    assert_eq!(names, ["member-0", "member-1", "member-2"], "{v}");

    // Users write to every bot, a round every few seconds, until told to stop.
    let sent: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let sent = sent.clone();
        let writing = writing.clone();
        let bots = bots.clone();
        let sim_users: Vec<_> = (0..BOTS).map(|i| sim.user(&user(i))).collect();
        tokio::spawn(async move {
            let mut round = 0;
            while writing.load(std::sync::atomic::Ordering::SeqCst) {
                for (i, bot) in bots.iter().enumerate() {
                    let text = format!("r{round} b{i}");
                    sim_users[i].send_text(bot, &text).unwrap();
                    sent.lock().unwrap().push((user(i), text));
                }
                round += 1;
                tokio::time::sleep(ROUND_EVERY).await;
            }
            round
        })
    };
    let answered_all = |sim: &Sim, sent: &Arc<Mutex<Vec<(String, String)>>>| {
        let s = sent.lock().unwrap().clone();
        let (_, missing, _) = tally(sim, &s);
        missing == 0
    };
    wait_for("the first round to be answered", &members, || async {
        let first: Vec<(String, String)> =
            sent.lock().unwrap().iter().take(BOTS).cloned().collect();
        first.len() == BOTS && tally(&sim, &first).1 == 0
    })
    .await;

    // SIGKILL member-0: its accounts come back after their leases expire.
    let killed = members[0].name.clone();
    let held_by_killed = holders(&store)
        .await
        .get(&killed)
        .cloned()
        .unwrap_or_default();
    assert!(!held_by_killed.is_empty());
    signal(members[0].pid(), "KILL");
    let _ = members[0].child.wait().await;
    let takeover_kill = wait_for(
        "the killed member's accounts to be taken over",
        &members,
        || async {
            let h = holders(&store).await;
            !h.contains_key(&killed) && h.values().map(HashSet::len).sum::<usize>() == BOTS
        },
    )
    .await;
    println!(
        "takeover after SIGKILL: {} accounts in {:.1} s (lease ttl {TTL_S} s)",
        held_by_killed.len(),
        takeover_kill.as_secs_f64()
    );

    // SIGSTOP member-1 past its lease: member-2 takes everything over; then SIGCONT.
    let stalled = members[1].name.clone();
    let held_by_stalled = holders(&store)
        .await
        .get(&stalled)
        .cloned()
        .unwrap_or_default();
    assert!(!held_by_stalled.is_empty());
    signal(members[1].pid(), "STOP");
    let takeover_stall = wait_for(
        "the stalled member's accounts to be taken over",
        &members,
        || async {
            let h = holders(&store).await;
            h.len() == 1 && h.get("member-2").is_some_and(|a| a.len() == BOTS)
        },
    )
    .await;
    println!(
        "takeover after SIGSTOP: {} accounts in {:.1} s (lease ttl {TTL_S} s)",
        held_by_stalled.len(),
        takeover_stall.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resumed = Instant::now();
    signal(members[1].pid(), "CONT");
    // It notices that it lost every lease it held, and stops serving those accounts.
    let lost_seen = wait_for(
        "the stalled member to report its lost leases",
        &members,
        || {
            let lines = members[1].lines_since(resumed);
            let held_by_stalled = &held_by_stalled;
            async move {
                let lost: HashSet<&str> = lines
                    .iter()
                    .filter(|l| l.contains("lost the account's lease"))
                    .filter_map(|l| held_by_stalled.iter().find(|a| l.contains(a.as_str())))
                    .map(String::as_str)
                    .collect();
                lost.len() == held_by_stalled.len()
            }
        },
    )
    .await;
    println!(
        "the stalled member reported its {} lost leases {:.1} s after SIGCONT",
        held_by_stalled.len(),
        lost_seen.as_secs_f64()
    );
    // It rejoins and gets its share back by hand-over.
    wait_for(
        "the two live members to share the accounts again",
        &members,
        || async {
            let h = holders(&store).await;
            h.len() == 2 && h.values().all(|a| a.len() <= BOTS.div_ceil(2))
        },
    )
    .await;

    // Stop writing; every message gets its one answer.
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    let rounds = writer.await.unwrap();
    wait_for("every message to be answered", &members, || async {
        answered_all(&sim, &sent)
    })
    .await;
    // Leave time for a late duplicate to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = sent.lock().unwrap().clone();
    let (total, missing, twice) = tally(&sim, &s);
    let dup_drops = sim
        .dropped()
        .iter()
        .filter(|d| d.reason == ilink_sim::DropReason::DuplicateClientId)
        .count();
    println!(
        "{total} messages in {rounds} rounds: {missing} unanswered, {} answered more than once; \
         {dup_drops} repeated sends dropped by client_id",
        twice.len()
    );
    assert_eq!(missing, 0);
    assert!(twice.is_empty(), "{:?}", &twice[..twice.len().min(20)]);

    for m in &members[1..] {
        signal(m.pid(), "TERM");
    }
    for m in members.iter_mut().skip(1) {
        let status = tokio::time::timeout(PHASE, m.child.wait()).await;
        assert!(
            status
                .as_ref()
                .is_ok_and(|s| s.as_ref().is_ok_and(|s| s.success())),
            "{} did not stop cleanly: {status:?}\n{}",
            m.name,
            m.dump()
        );
    }
    // Both left cleanly: their leases were released.
    assert!(holders(&store).await.is_empty());
}
