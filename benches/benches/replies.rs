//! Long replies (issue 18): how many messages a 30,000-character reply costs, and how long a
//! queue of 100 messages takes to flush.
//!
//! 1. **Messages used** (printed, not timed): the 30k reply of [`ilink_sim::long_reply`]
//!    (Chinese, English, emoji, Markdown code blocks and tables, after the Markdown filter)
//!    split by ilink's chunker (1800 UTF-16 units, packed, nothing lost at cuts) next to
//!    naive splitting every 4000 and every 2000 characters (Unicode scalar values, as a
//!    Python `s[i:i+n]` does). For each: messages, how many exceed the server's cap of 2000
//!    UTF-16 units (cut by the live server, docs/protocol.md §16) and the characters lost so, and
//!    how many reply windows of 10 messages the reply needs.
//!    The time of the chunker itself is measured too.
//! 2. **Flush of 100**: 100 queued messages sent by `Account::flush_queue` against ilink-sim on
//!    loopback (budget 100, the emulator's reply limits off, its text cap on), with the
//!    durable `FileStore` journal (one fsynced append per message sent).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ilink_client::{
    Client, ClientConfig, Credentials, DEFAULT_CHUNK_LIMIT, Delays, FileStore, Secret, Update,
    chunk_text, filter_markdown,
};
use ilink_sim::{Sim, SimConfig};

const CAP: usize = 2000;

fn naive(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

fn row(name: &str, parts: &[String]) {
    let over: Vec<&String> = parts
        .iter()
        .filter(|p| p.encode_utf16().count() > CAP)
        .collect();
    let lost: usize = over
        .iter()
        .map(|p| {
            // What the server drops: everything past CAP UTF-16 units, counted in characters.
            let mut units = 0;
            p.chars()
                .filter(|c| {
                    units += c.len_utf16();
                    units > CAP
                })
                .count()
        })
        .sum();
    println!(
        "{name:<28} {:>8} {:>16} {:>16} {:>8}",
        parts.len(),
        over.len(),
        lost,
        parts.len().div_ceil(10)
    );
}

fn bench_messages_used(c: &mut Criterion) {
    let reply = filter_markdown(&ilink_sim::long_reply(30_000));
    println!(
        "\nmessages for a {}-character reply ({} UTF-16 units)",
        reply.chars().count(),
        reply.encode_utf16().count()
    );
    println!(
        "{:<28} {:>8} {:>16} {:>16} {:>8}",
        "splitting", "messages", "over 2000 units", "chars cut off", "windows"
    );
    let ours = chunk_text(&reply, DEFAULT_CHUNK_LIMIT);
    assert_eq!(ours.concat(), reply, "ilink's chunks lose nothing");
    row("ilink chunk_text (1800 u16)", &ours);
    row("naive every 4000 chars", &naive(&reply, 4000));
    row("naive every 2000 chars", &naive(&reply, 2000));
    println!();
    c.bench_function("chunk_text_30k_reply", |b| {
        b.iter(|| chunk_text(black_box(&reply), DEFAULT_CHUNK_LIMIT))
    });
}

fn bench_flush(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sim = rt
        .block_on(Sim::start(
            SimConfig::for_tests(Duration::from_millis(200)).without_limits(),
        ))
        .unwrap();
    let bot = sim.create_bot();
    let dir = tempfile::tempdir().unwrap();
    let mut config = ClientConfig::for_server(&sim.base_url())
        .with_delays(Delays::fast())
        .with_cdn_base_url(sim.cdn_base_url());
    config.replies.per_inbound = 100;
    let client = Client::new(config, FileStore::new(dir.path())).unwrap();
    let account = rt
        .block_on(client.add_account(Credentials {
            account_id: bot.bot_id.clone(),
            token: Secret::new(bot.token.clone()),
            base_url: Some(sim.base_url()),
            user_id: None,
            saved_at_ms: 1,
        }))
        .unwrap();
    let user = sim.user("bench-reader@im.wechat");
    let uid = user.id().to_owned();
    // 100 messages of about 100 characters each.
    let text = "这是第一百条消息的内容，用来测量队列的发送速度。".repeat(4);
    let send_100 = |expect_queued: bool| {
        rt.block_on(async {
            for i in 0..100 {
                let out = account
                    .send_text(&uid, &format!("{i:03} {text}"))
                    .await
                    .unwrap();
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].is_queued(), expect_queued);
            }
        })
    };
    let mut updates = rt.block_on(async { account.updates().await.unwrap() });
    let open_window = |updates: &mut ilink_client::Updates| {
        user.send_text(&bot, "continue").unwrap();
        rt.block_on(async {
            loop {
                if let Some(Update::Message(_)) = updates.next().await {
                    updates.ack();
                    break;
                }
            }
        });
    };
    open_window(&mut updates);
    // Use the first window's budget so that the next 100 wait in the queue.
    send_100(false);
    let mut group = c.benchmark_group("outbox");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("flush_queue_of_100", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                send_100(true);
                open_window(&mut updates);
                let start = Instant::now();
                let report = rt.block_on(account.flush_queue(&uid)).unwrap();
                total += start.elapsed();
                assert_eq!(report.sent.len(), 100);
            }
            total
        })
    });
    group.finish();
    drop(updates);
    rt.block_on(sim.shutdown());
}

criterion_group!(benches, bench_messages_used, bench_flush);
criterion_main!(benches);
