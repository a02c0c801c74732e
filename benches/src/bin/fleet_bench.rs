//! Fleet figures with the PostgreSQL store (issue #17).
//!
//! ```text
//! cargo run --release -p ilink-benches --bin fleet_bench [-- --accounts 300 --quick]
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
//! A measurement tool, not a test: figures go to BENCHMARKS.md by hand.

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
    let mut a = Args {
        accounts: 300,
        ttls: vec![1, 2, 4],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--accounts" => {
                a.accounts = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--accounts needs a positive number")?;
            }
            "--quick" => {
                a.accounts = a.accounts.min(60);
                a.ttls = vec![2];
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
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

async fn accounts_per_process(cluster: &TestCluster, n: usize) -> Result<(), String> {
    let db = cluster.database().await.map_err(|e| e.to_string())?;
    let store = Arc::new(db.store().await.map_err(|e| e.to_string())?);
    let sim = Sim::start(SimConfig::for_tests(Duration::from_secs(10)))
        .await
        .map_err(|e| e.to_string())?;
    let bots = seed(&sim, &store, n).await?;
    let ttl = Duration::from_secs(10);
    let fleet = member(&sim, &store, "bench-solo", ttl)?;
    let t = Instant::now();
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
    println!(
        "| accounts per process | one member takes {n} accounts | {:.2} s ({:.0} accounts/s) | ttl 10 s, rebalance 1 s |",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    println!(
        "| accounts per process | burst: 1 message to each of {n} accounts | {:.0} msgs/s ({:.2} s) | one process, PgStore pool 8 |",
        n as f64 / answered.as_secs_f64(),
        answered.as_secs_f64()
    );
    println!(
        "| round trips | per handled message (burst, all included) | {:.2} | {trips} round trips for {n} messages in {during:.2} s |",
        trips as f64 / n as f64
    );
    println!(
        "| round trips | per handled message (less idle background) | {:.2} | idle: {idle_rate:.1} round trips/s for {n} accounts ({:.3}/s per account: renewals every ttl/3, heartbeat) |",
        (trips as f64 - background).max(0.0) / n as f64,
        idle_rate / n as f64
    );
    fleet.shutdown();
    let _ = tokio::time::timeout(LIMIT, run).await;
    let _ = t;
    sim.shutdown().await;
    Ok(())
}

async fn takeover(cluster: &TestCluster, n: usize, ttl_s: u64) -> Result<(), String> {
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
        .ok_or("b did not take every account over")?;
    let answered = until(LIMIT, || {
        echoed(&sim, "echo: after the crash") >= crashed.len()
    })
    .await
    .ok_or("the messages to the crashed member's accounts were not answered")?;
    let _ = crash;
    println!(
        "| takeover | {} accounts of a crashed member, ttl {ttl_s} s | all served again after {:.2} s ({:.2}x ttl); all answered after {:.2} s ({:.2}x ttl) | 2 members, {n} accounts |",
        crashed.len(),
        served.as_secs_f64(),
        served.as_secs_f64() / ttl.as_secs_f64(),
        answered.as_secs_f64(),
        answered.as_secs_f64() / ttl.as_secs_f64()
    );
    b.shutdown();
    let _ = tokio::time::timeout(LIMIT, run_b).await;
    sim.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fleet_bench: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(cluster) = TestCluster::shared() else {
        eprintln!("fleet_bench: no PostgreSQL (set ILINK_TEST_PG or install postgresql)");
        return ExitCode::from(1);
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fleet_bench: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        println!("| area | measurement | figure | notes |");
        println!("|---|---|---:|---|");
        accounts_per_process(cluster, args.accounts).await?;
        for ttl in &args.ttls {
            takeover(cluster, args.accounts, *ttl).await?;
        }
        Ok::<(), String>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet_bench: {e}");
            ExitCode::from(1)
        }
    }
}
