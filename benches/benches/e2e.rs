//! End to end through ilink-sim on loopback HTTP, with ilink-client as the bot:
//!
//! 1. **Echo latency**: a scripted user sends one message, the bot's handler replies
//!    (`ctx.reply`, with the official client's typing calls); the time from the user's send
//!    to the bot's reply being accepted by the emulator, one message at a time (p50/p95/p99).
//! 2. **Echo throughput**: a burst of messages queued at once; messages per second until
//!    every reply was accepted (the bot handles a batch's messages one after another, as the
//!    official client does).
//! 3. **Accounts per process**: N accounts (1,000 and 10,000) long-polling at once. The
//!    emulator runs in a child process (this same binary, re-executed), so the bot process
//!    holds only the client side; every account receives one message, then, once all are
//!    polling again, a second one. Reported: time until all N got each round, polls that
//!    failed, and the bot process's RSS per account (VmRSS from /proc/self/status).
//!
//! Not a criterion bench (percentiles and process memory are not what criterion measures),
//! so it is registered with `harness = false` and prints its own table. Under
//! `cargo xtask bench` the rows also go to `$ILINK_BENCH_REPORT_DIR/e2e.tsv`.
//! `ILINK_BENCH_QUICK=1` shortens every phase.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ilink_client::{
    Client, ClientConfig, Credentials, Delays, MemoryStore, MessageContext, Secret, Update,
};
use ilink_sim::{Sim, SimConfig};
use tokio::sync::mpsc;

const CHILD_ENV: &str = "ILINK_E2E_SIM_CHILD";
const ACCOUNTS_ENV: &str = "ILINK_E2E_ACCOUNTS";

fn quick() -> bool {
    std::env::var_os("ILINK_BENCH_QUICK").is_some()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client_config(base_url: &str, cdn: &str) -> ClientConfig {
    let mut c = ClientConfig::for_server(base_url)
        .with_delays(Delays::fast())
        .with_cdn_base_url(cdn);
    c.timeouts.long_poll_margin = Duration::from_millis(500);
    c
}

fn creds(base_url: &str, bot_id: &str, token: &str) -> Credentials {
    Credentials {
        account_id: bot_id.to_owned(),
        token: Secret::new(token.to_owned()),
        base_url: Some(base_url.to_owned()),
        user_id: None,
        saved_at_ms: 1,
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct Rows(Vec<[String; 4]>);

impl Rows {
    fn add(&mut self, area: &str, what: &str, value: String, note: &str) {
        if std::env::var_os(ACCOUNTS_ENV).is_some() {
            // A measuring child: the parent prints and collects the rows.
            println!("ROW\t{area}\t{what}\t{value}\t{note}");
        } else {
            println!("{area:<9} {what:<62} {value:<24} {note}");
        }
        self.0
            .push([area.to_owned(), what.to_owned(), value, note.to_owned()]);
    }

    fn write(&self) {
        let Some(dir) = std::env::var_os("ILINK_BENCH_REPORT_DIR") else {
            return;
        };
        let text: String = self.0.iter().map(|r| r.join("\t") + "\n").collect();
        std::fs::write(std::path::Path::new(&dir).join("e2e.tsv"), text).unwrap();
    }
}

// ------------------------------------------------------------------------------- echo

async fn echo(rows: &mut Rows) {
    let (latency_n, burst_n) = if quick() { (100, 300) } else { (500, 2000) };
    let mut config = SimConfig::for_tests(Duration::from_secs(5)).without_limits();
    config.max_logged_requests = 1_000_000;
    let sim = Sim::start(config).await.unwrap();
    let bot = sim.create_bot();
    let base = sim.base_url();
    let client = Client::new(
        client_config(&base, &sim.cdn_base_url()),
        MemoryStore::new(),
    )
    .unwrap();
    let account = client
        .add_account(creds(&base, &bot.bot_id, &bot.token))
        .await
        .unwrap();

    // The handler reports each message's number once its reply was accepted.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<usize>();
    let runner = account.clone();
    let run = tokio::spawn(async move {
        runner
            .run(move |ctx: MessageContext| {
                let done = done_tx.clone();
                async move {
                    let text = ctx.text().unwrap_or_default().to_owned();
                    let out = ctx.reply(&format!("echo: {text}")).await;
                    assert!(out.is_ok(), "reply failed: {out:?}");
                    let n = text.trim_start_matches('m').parse().unwrap();
                    let _ = done.send(n);
                }
            })
            .await
    });

    let user = sim.user("alice@im.wechat");
    // Warm up: connections, typing ticket.
    for i in 0..20 {
        user.send_text(&bot.bot_id, &format!("m{i}")).unwrap();
        done_rx.recv().await.unwrap();
    }

    let mut lat = Vec::with_capacity(latency_n);
    for i in 0..latency_n {
        let t0 = Instant::now();
        user.send_text(&bot.bot_id, &format!("m{i}")).unwrap();
        let got = done_rx.recv().await.unwrap();
        lat.push(t0.elapsed());
        assert_eq!(got, i);
    }
    lat.sort();
    rows.add(
        "e2e",
        &format!("echo latency, one at a time ({latency_n} msgs): p50 / p95 / p99"),
        format!(
            "{} / {} / {}",
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.95)),
            ms(percentile(&lat, 0.99))
        ),
        &format!(
            "user send -> bot reply accepted by ilink-sim, loopback HTTP; {}",
            requests_per_message(&sim, 20 + latency_n)
        ),
    );

    let t0 = Instant::now();
    for i in 0..burst_n {
        user.send_text(&bot.bot_id, &format!("m{i}")).unwrap();
    }
    let mut seen = vec![false; burst_n];
    for _ in 0..burst_n {
        seen[done_rx.recv().await.unwrap()] = true;
    }
    let elapsed = t0.elapsed();
    assert!(seen.iter().all(|s| *s));
    rows.add(
        "e2e",
        &format!("echo throughput, burst of {burst_n} msgs, one account"),
        format!("{:.0} msgs/s", burst_n as f64 / elapsed.as_secs_f64()),
        "messages of a batch handled one after another, like the official client",
    );
    let delivered = sim.delivered().len();
    assert_eq!(delivered, 20 + latency_n + burst_n, "every reply delivered");
    assert!(sim.dropped().is_empty());

    account.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
    sim.shutdown().await;
}

/// What the bot sent per message so far, from the emulator's request log.
fn requests_per_message(sim: &Sim, messages: usize) -> String {
    let reqs = sim.requests();
    let count = |suffix: &str| reqs.iter().filter(|r| r.path.ends_with(suffix)).count();
    format!(
        "per message: {:.1} sendmessage, {:.1} sendtyping, {:.2} getconfig, {:.1} getupdates",
        count("sendmessage") as f64 / messages as f64,
        count("sendtyping") as f64 / messages as f64,
        count("getconfig") as f64 / messages as f64,
        count("getupdates") as f64 / messages as f64,
    )
}

// ------------------------------------------------------------------- accounts per process

/// The emulator side of the accounts test, in its own process: creates `n` bots, prints
/// `BASE <url> <cdn>` and `BOT <id> <token>` lines, then serves; on `send` every bot gets one
/// message from its own user; `quit` ends it.
fn sim_child(n: usize) {
    let rt = runtime();
    rt.block_on(async {
        let mut config = SimConfig::for_tests(Duration::from_secs(20)).without_limits();
        config.max_logged_requests = 1000;
        let sim = Sim::start(config).await.unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "BASE {} {}", sim.base_url(), sim.cdn_base_url()).unwrap();
        let bots: Vec<_> = (0..n).map(|_| sim.create_bot()).collect();
        for b in &bots {
            writeln!(out, "BOT {} {}", b.bot_id, b.token).unwrap();
        }
        writeln!(out, "READY").unwrap();
        out.flush().unwrap();
        drop(out);
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(cmd) = rx.recv().await {
            match cmd.as_str() {
                "send" => {
                    for (i, b) in bots.iter().enumerate() {
                        sim.user(&format!("u{i}@im.wechat"))
                            .send_text(&b.bot_id, "hi")
                            .unwrap();
                    }
                    println!("SENT");
                }
                _ => break,
            }
        }
        sim.shutdown().await;
    });
}

struct SimProcess {
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl SimProcess {
    fn start(n: usize) -> (Self, String, String, Vec<(String, String)>) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut base, mut cdn, mut bots) = (String::new(), String::new(), Vec::new());
        for line in lines.by_ref() {
            let line = line.unwrap();
            let mut parts = line.split(' ');
            match parts.next() {
                Some("BASE") => {
                    base = parts.next().unwrap().to_owned();
                    cdn = parts.next().unwrap().to_owned();
                }
                Some("BOT") => bots.push((
                    parts.next().unwrap().to_owned(),
                    parts.next().unwrap().to_owned(),
                )),
                Some("READY") => break,
                _ => {}
            }
        }
        (
            Self {
                child,
                stdin,
                lines,
            },
            base,
            cdn,
            bots,
        )
    }

    fn send_all(&mut self) {
        writeln!(self.stdin, "send").unwrap();
        self.stdin.flush().unwrap();
        let line = self.lines.next().unwrap().unwrap();
        assert_eq!(line, "SENT");
    }

    fn stop(mut self) {
        let _ = writeln!(self.stdin, "quit");
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

async fn wait_count(counter: &AtomicU64, target: u64, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while counter.load(Ordering::Relaxed) < target {
        if t0.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Some(t0.elapsed())
}

async fn accounts(n: usize, rows: &mut Rows) {
    let (mut sim, base, cdn, bots) = SimProcess::start(n);
    assert_eq!(bots.len(), n);
    let rss_before = rss_kib();

    let client = Client::new(client_config(&base, &cdn), MemoryStore::new()).unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(n);
    let t0 = Instant::now();
    for (id, token) in &bots {
        let account = client.add_account(creds(&base, id, token)).await.unwrap();
        let (received, failed) = (received.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut updates = account.updates().await.unwrap();
            while let Some(update) = updates.next().await {
                match update {
                    Update::Message(_) => {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Update::PollFailed { .. } => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }));
    }
    // Round 1: every account gets a message, queued before or while it connects.
    sim.send_all();
    let limit = Duration::from_secs(120);
    let first = wait_count(&received, n as u64, limit).await;
    let startup = t0.elapsed();
    // Let every account go back to a held long-poll, then measure the steady state.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_polling = rss_kib();
    // Round 2: all N are long-polling; one message each.
    let t1 = Instant::now();
    sim.send_all();
    let second = wait_count(&received, 2 * n as u64, limit).await;
    let fanout = t1.elapsed();

    let got = received.load(Ordering::Relaxed);
    let fails = failed.load(Ordering::Relaxed);
    let per_account = (rss_polling.saturating_sub(rss_before)) as f64 / n as f64;
    let status = if first.is_some() && second.is_some() {
        "all received"
    } else {
        "INCOMPLETE"
    };
    rows.add(
        "accounts",
        &format!("{n} accounts long-polling in one process: start -> all got msg 1"),
        format!("{:.2} s", startup.as_secs_f64()),
        &format!("{status}: {got}/{} messages, {fails} failed polls", 2 * n),
    );
    rows.add(
        "accounts",
        &format!("{n} accounts, all long-polling: msg 2 to every account"),
        format!("{:.2} s", fanout.as_secs_f64()),
        "emulator in a child process; time until every account received it",
    );
    rows.add(
        "accounts",
        &format!("{n} accounts: bot process RSS per account"),
        format!("{per_account:.1} KiB"),
        &format!(
            "VmRSS {} MiB -> {} MiB with all polling (client side only)",
            rss_before / 1024,
            rss_polling / 1024
        ),
    );

    client.shutdown();
    for t in tasks {
        t.abort();
    }
    sim.stop();
}

fn main() {
    if let Ok(n) = std::env::var(CHILD_ENV) {
        sim_child(n.parse().unwrap());
        return;
    }
    // `cargo bench` passes `--bench`; a name filter other than "e2e" skips this bench.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && a.parse::<f64>().is_err())
        .collect();
    if !filter.is_empty() && !filter.iter().any(|f| "e2e".contains(f.as_str())) {
        return;
    }
    let mut rows = Rows(Vec::new());
    if let Ok(n) = std::env::var(ACCOUNTS_ENV) {
        runtime().block_on(accounts(n.parse().unwrap(), &mut rows));
        return;
    }
    runtime().block_on(echo(&mut rows));
    // Each account count in a fresh process, so its RSS starts clean.
    let sizes: &[usize] = if quick() { &[1000] } else { &[1000, 10_000] };
    for &n in sizes {
        let out = Command::new(std::env::current_exe().unwrap())
            .env(ACCOUNTS_ENV, n.to_string())
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "the {n}-accounts run failed");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            if let ["ROW", area, what, value, note] = cols[..] {
                rows.add(area, what, value.to_owned(), note);
            }
        }
    }
    rows.write();
}
