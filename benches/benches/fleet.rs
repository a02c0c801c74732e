//! Fleet figures with the PostgreSQL store (issue #17).
//!
//! ```text
//! cargo xtask bench fleet [--quick]          # or: cargo bench -p ilink-benches --bench fleet
//! ILINK_FLEET_BENCH_ACCOUNTS=1000 cargo bench -p ilink-benches --bench fleet
//! ```
//!
//! Needs PostgreSQL: `$ILINK_TEST_PG`, or Debian's binaries from which a throwaway cluster is
//! started (`ilink_postgres::testing::TestCluster`). ilink-sim runs in-process on loopback.
//!
//! 1. **Accounts per process**: one fleet member (one `PgStore`, pool of 8) takes every
//!    account of the store; then one user message per account, all at once. Prints the time to
//!    take the accounts, the burst's messages per second, the **database round trips per
//!    handled message** (`PgStore::round_trips()` over the burst, renewals and heartbeats
//!    included) and the round trips per second while idle (lease renewals every ttl/3 and the
//!    member's heartbeat).
//! 2. **Takeover time against the lease ttl**: two members share the accounts; one "crashes"
//!    (its run is dropped: no release, no goodbye) and the time until the other serves every
//!    account, and until a message sent to each of the crashed member's accounts right after the
//!    crash is answered, is measured for several ttls.
//!
//! Rows go to stdout and, under `cargo xtask bench`, to `$ILINK_BENCH_REPORT_DIR/fleet.tsv`.
//! A measurement, not a test: the figures of one run go to BENCHMARKS.md.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ilink_client::fleet::{Fleet, FleetConfig};
use ilink_client::{Client, ClientConfig, Credentials, Delays, MessageContext, Secret, StateStore};
use ilink_postgres::PgStore;
use ilink_postgres::testing::TestCluster;
use ilink_sim::{BotAccount, Sim, SimConfig};

struct Args {
    accounts: usize,
    ttls: Vec<u64>,
}

fn args() -> Result<Args, String> {
    let quick =
        std::env::var_os("ILINK_BENCH_QUICK").is_some() || std::env::args().any(|a| a == "--quick");
    let accounts = match std::env::var("ILINK_FLEET_BENCH_ACCOUNTS") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n: &usize| *n > 0)
            .ok_or("ILINK_FLEET_BENCH_ACCOUNTS needs a positive number")?,
        Err(_) if quick => 60,
        Err(_) => 300,
    };
    Ok(Args {
        accounts,
        ttls: if quick { vec![2] } else { vec![1, 2, 4] },
    })
}

/// The rows of the table (area, measurement, figure, notes).
#[derive(Default)]
struct Rows(Vec<[String; 4]>);

impl Rows {
    fn add(&mut self, area: &str, what: String, figure: String, note: String) {
        println!("| {area} | {what} | {figure} | {note} |");
        self.0.push([area.to_owned(), what, figure, note]);
    }

    fn write(&self) {
        let Some(dir) = std::env::var_os("ILINK_BENCH_REPORT_DIR") else {
            return;
        };
        let text: String = self.0.iter().map(|r| r.join("\t") + "\n").collect();
        if let Err(e) = std::fs::write(std::path::Path::new(&dir).join("fleet.tsv"), text) {
            eprintln!("fleet bench: cannot write its rows: {e}");
        }
    }
}

fn config(sim: &Sim, member: &str, ttl: Duration) -> ClientConfig {
    let mut c = ClientConfig::for_server(&sim.base_url())
        .with_delays(Delays::fast())
        .with_cdn_base_url(sim.cdn_base_url())
        .with_holder_id(member)
        .with_lease_ttl(ttl);
    c.timeouts.long_poll_margin = Duration::from_millis(500);
    c
}

fn member(sim: &Sim, store: &Arc<PgStore>, name: &str, ttl: Duration) -> Result<Fleet, String> {
    let shared: Arc<dyn StateStore> = store.clone();
    let client = Client::builder()
        .config(config(sim, name, ttl))
        .shared_store(shared)
        .build()
        .map_err(|e| e.to_string())?;
    Fleet::new(
        client,
        FleetConfig::new()
            .with_rebalance_interval(
                (ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(2)),
            )
            .with_handover_timeout(ttl),
    )
    .map_err(|e| e.to_string())
}

fn start(fleet: &Fleet) -> tokio::task::JoinHandle<()> {
    let f = fleet.clone();
    tokio::spawn(async move {
        let _ = f
            .run(|ctx: MessageContext| async move {
                let text = ctx.text().unwrap_or_default().to_owned();
                ctx.reply(&format!("echo: {text}")).await.map(|_| ())
            })
            .await;
    })
}

async fn until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while !f() {
        if t.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Some(t.elapsed())
}

async fn seed(sim: &Sim, store: &PgStore, n: usize) -> Result<Vec<BotAccount>, String> {
    let mut bots = Vec::with_capacity(n);
    for _ in 0..n {
        let b = sim.create_bot();
        store
            .save_credentials(&Credentials {
                account_id: b.bot_id.clone(),
                token: Secret::new(b.token.clone()),
                base_url: Some(sim.base_url()),
                user_id: b.user_id.clone(),
                saved_at_ms: 1,
            })
            .await
            .map_err(|e| e.to_string())?;
        bots.push(b);
    }
    Ok(bots)
}

fn user(i: usize) -> String {
    format!("bench-user{i}@im.wechat")
}

fn echoed(sim: &Sim, text: &str) -> usize {
    sim.delivered()
        .iter()
        .filter(|d| d.text() == Some(text))
        .count()
}

const LIMIT: Duration = Duration::from_secs(120);

async fn accounts_per_process(
    cluster: &TestCluster,
    n: usize,
    rows: &mut Rows,
) -> Result<(), String> {
    let db = cluster.database().await.map_err(|e| e.to_string())?;
    let store = Arc::new(db.store().await.map_err(|e| e.to_string())?);
    let sim = Sim::start(SimConfig::for_tests(Duration::from_secs(10)))
        .await
        .map_err(|e| e.to_string())?;
    let bots = seed(&sim, &store, n).await?;
    let ttl = Duration::from_secs(10);
    let fleet = member(&sim, &store, "bench-solo", ttl)?;
    let run = start(&fleet);
    let took = until(LIMIT, || fleet.served().len() == n)
        .await
        .ok_or("the member did not take every account")?;
    // Let the runs settle (first getupdates, context loads) before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_from = store.round_trips();
    let idle_t = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_rate = (store.round_trips() - idle_from) as f64 / idle_t.elapsed().as_secs_f64();

    let before = store.round_trips();
    let burst = Instant::now();
    for (i, b) in bots.iter().enumerate() {
        sim.user(&user(i))
            .send_text(b, "burst")
            .map_err(|e| e.to_string())?;
    }
    let answered = until(LIMIT, || echoed(&sim, "echo: burst") >= n)
        .await
        .ok_or("the burst was not answered")?;
    // Commits of the last messages go out right after their replies.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let trips = store.round_trips() - before;
    let during = burst.elapsed().as_secs_f64();
    let background = idle_rate * during;
    rows.add(
        "fleet",
        format!("one process takes {n} accounts (PgStore, pool 8)"),
        format!(
            "{:.0} accounts/s ({:.2} s)",
            n as f64 / took.as_secs_f64(),
            took.as_secs_f64()
        ),
        "lease ttl 10 s, rebalance every 1 s".to_owned(),
    );
    rows.add(
        "fleet",
        format!("burst: one message to each of {n} accounts, one process"),
        format!(
            "{:.0} msgs/s ({:.2} s)",
            n as f64 / answered.as_secs_f64(),
            answered.as_secs_f64()
        ),
        "user send -> echo delivered by ilink-sim, loopback".to_owned(),
    );
    rows.add(
        "fleet",
        "database round trips per handled message".to_owned(),
        format!("{:.2}", (trips as f64 - background).max(0.0) / n as f64),
        format!(
            "{trips} round trips during the burst ({during:.2} s), less the idle rate; {:.2} with it",
            trips as f64 / n as f64
        ),
    );
    rows.add(
        "fleet",
        format!("idle database round trips per second, {n} accounts"),
        format!(
            "{idle_rate:.1}/s ({:.3}/s per account)",
            idle_rate / n as f64
        ),
        "lease renewals every ttl/3 (10 s ttl), the member's rounds (3 queries/s), cursor commits of empty long polls (10 s)".to_owned(),
    );
    fleet.shutdown();
    let _ = tokio::time::timeout(LIMIT, run).await;
    sim.shutdown().await;
    Ok(())
}

async fn takeover(
    cluster: &TestCluster,
    n: usize,
    ttl_s: u64,
    rows: &mut Rows,
) -> Result<(), String> {
    let db = cluster.database().await.map_err(|e| e.to_string())?;
    let store_a = Arc::new(db.store().await.map_err(|e| e.to_string())?);
    let store_b = Arc::new(db.store().await.map_err(|e| e.to_string())?);
    let sim = Sim::start(SimConfig::for_tests(Duration::from_secs(10)))
        .await
        .map_err(|e| e.to_string())?;
    let bots = seed(&sim, &store_a, n).await?;
    let ttl = Duration::from_secs(ttl_s);
    let a = member(&sim, &store_a, "bench-a", ttl)?;
    let b = member(&sim, &store_b, "bench-b", ttl)?;
    let run_a = start(&a);
    let run_b = start(&b);
    until(LIMIT, || {
        a.served().len() + b.served().len() == n && !a.served().is_empty() && !b.served().is_empty()
    })
    .await
    .ok_or("the members did not share the accounts")?;
    // Settle: both at their share.
    until(LIMIT, || {
        a.served().len() <= n.div_ceil(2) && b.served().len() <= n.div_ceil(2)
    })
    .await
    .ok_or("the members did not settle")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let crashed: HashSet<String> = a.served().into_iter().map(|s| s.account).collect();
    // The crash: a's run is dropped (its account runs are cancelled; nothing is released).
    run_a.abort();
    let crash = Instant::now();
    for (i, bot) in bots.iter().enumerate() {
        if crashed.contains(&bot.bot_id) {
            sim.user(&user(i))
                .send_text(bot, "after the crash")
                .map_err(|e| e.to_string())?;
        }
    }
    let served = until(LIMIT, || b.served().len() == n)
        .await
        .map(|_| crash.elapsed())
        .ok_or("b did not take every account over")?;
    let answered = until(LIMIT, || {
        echoed(&sim, "echo: after the crash") >= crashed.len()
    })
    .await
    .map(|_| crash.elapsed())
    .ok_or("the messages to the crashed member's accounts were not answered")?;
    rows.add(
        "fleet",
        format!("takeover of a crashed process's {} accounts, lease ttl {ttl_s} s", crashed.len()),
        format!(
            "{:.2} s = {:.2}x ttl (all answered: {:.2} s = {:.2}x ttl)",
            served.as_secs_f64(),
            served.as_secs_f64() / ttl.as_secs_f64(),
            answered.as_secs_f64(),
            answered.as_secs_f64() / ttl.as_secs_f64()
        ),
        format!("2 members (a Client and a PgStore each) in one process, {n} accounts; from the crash to every account served again / every message sent at the crash answered"),
    );
    b.shutdown();
    let _ = tokio::time::timeout(LIMIT, run_b).await;
    sim.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; a name filter other than "fleet" skips this bench.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && a.parse::<f64>().is_err())
        .collect();
    if !filter.is_empty() && !filter.iter().any(|f| "fleet".contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fleet bench: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(cluster) = TestCluster::shared() else {
        // Skipped, not failed, so that `cargo xtask bench` runs the other benches.
        eprintln!("fleet bench: skipped: no PostgreSQL (set ILINK_TEST_PG or install postgresql)");
        return ExitCode::SUCCESS;
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fleet bench: {e}");
            return ExitCode::from(1);
        }
    };
    let mut rows = Rows::default();
    let result = rt.block_on(async {
        println!("| area | measurement | figure | notes |");
        println!("|---|---|---:|---|");
        accounts_per_process(cluster, args.accounts, &mut rows).await?;
        for ttl in &args.ttls {
            takeover(cluster, args.accounts, *ttl, &mut rows).await?;
        }
        Ok::<(), String>(())
    });
    rows.write();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet bench: {e}");
            ExitCode::from(1)
        }
    }
}
