//! Concurrent conversations in `Account::run`: 10 users each send one message to a bot whose
//! handler takes 2 s (an LLM call, say) before it replies. Measured: the wall time from the
//! first user's send until all 10 replies were accepted by ilink-sim (loopback HTTP).
//!
//! `handler_concurrency/16` is the default (different users handled at once, about 2 s);
//! `handler_concurrency/1` handles one message at a time as `run` did before (about 20 s).
//! Each sample takes that long (`ILINK_BENCH_QUICK=1` runs only the first); to run one, e.g.
//! `cargo bench -p ilink-benches --bench concurrency -- handler_concurrency/16`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ilink_client::{
    Client, ClientConfig, Credentials, Delays, MemoryStore, MessageContext, Secret,
};
use ilink_sim::{Sim, SimConfig};

const USERS: usize = 10;
const HANDLER_TIME: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(120);

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("handler_concurrency");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    // `ILINK_BENCH_QUICK` (`cargo xtask bench --quick`) skips the 20 s-per-sample case.
    let limits: &[usize] = if std::env::var_os("ILINK_BENCH_QUICK").is_some() {
        &[16]
    } else {
        &[16, 1]
    };
    for &limit in limits {
        group.bench_with_input(BenchmarkId::from_parameter(limit), &limit, |b, &limit| {
            let (sim, account, bot) = rt.block_on(start(limit));
            let mut round = 0usize;
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        round += 1;
                        let t = Instant::now();
                        for u in 0..USERS {
                            sim.user(&format!("user{u}@im.wechat"))
                                .send_text(&bot, "question")
                                .unwrap();
                        }
                        for u in 0..USERS {
                            sim.wait_for_delivered(&format!("user{u}@im.wechat"), round, WAIT)
                                .await
                                .unwrap();
                        }
                        total += t.elapsed();
                    }
                    total
                })
            });
            account.shutdown();
        });
    }
    group.finish();
}

/// A sim and a bot running a 2 s handler, with one message handled already (so a cursor is
/// committed and later messages may arrive in batches of their own).
async fn start(limit: usize) -> (Sim, ilink_client::Account, ilink_sim::BotAccount) {
    let sim = Sim::start(SimConfig::for_tests(Duration::from_millis(500)))
        .await
        .unwrap();
    let bot = sim.create_bot();
    let mut config = ClientConfig::for_server(&sim.base_url())
        .with_delays(Delays::fast())
        .with_cdn_base_url(sim.cdn_base_url())
        .with_handler_concurrency(limit);
    config.timeouts.long_poll_margin = Duration::from_millis(500);
    let client = Client::new(config, MemoryStore::new()).unwrap();
    let account = client
        .add_account(Credentials {
            account_id: bot.bot_id.clone(),
            token: Secret::new(bot.token.clone()),
            base_url: Some(sim.base_url()),
            user_id: None,
            saved_at_ms: 1,
        })
        .await
        .unwrap();
    let acct = account.clone();
    tokio::spawn(async move {
        acct.run(|ctx: MessageContext| async move {
            if ctx.from() != "warmup@im.wechat" {
                tokio::time::sleep(HANDLER_TIME).await;
            }
            ctx.reply("answer").await.map(|_| ())
        })
        .await
    });
    sim.user("warmup@im.wechat").send_text(&bot, "hi").unwrap();
    sim.wait_for_delivered("warmup@im.wechat", 1, WAIT)
        .await
        .unwrap();
    (sim, account, bot)
}

criterion_group!(benches, bench);
criterion_main!(benches);
