//! Media throughput through ilink-sim on loopback HTTP (issue 7), next to the raw AES speed
//! of ilink-crypto on the same size, in one criterion group (`media_16MiB`):
//!
//! - `aes_encrypt_one_shot` / `aes_decrypt_one_shot`: `ilink_crypto::encrypt` / `decrypt`
//!   of 16 MiB in memory, the reference;
//! - `upload_send_file`: `Account::send_file` of a 16 MiB file on disk: the MD5 pass,
//!   getuploadurl, the encrypted POST, the emulator's check of the upload (streaming
//!   decryption and MD5, in this process) and the sendmessage;
//! - `download_to_file` / `download_to_memory`: `Account::download_to_file` /
//!   `Account::download` of a 16 MiB file a scripted user sent.
//!
//! The emulator runs in this process (on the same runtime), so its work is part of the
//! figures; `cargo run --release -p ilink-benches --bin media_rss` measures 1 GiB with the
//! emulator in a child process, and the bot's peak memory.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ilink_client::proto::MessageItem;
use ilink_client::{
    Account, Client, ClientConfig, Credentials, Delays, MemoryStore, Secret, Update, Updates,
};
use ilink_crypto::MediaKey;
use ilink_sim::{Sim, SimConfig};

const SIZE: usize = 16 << 20;
const USER: &str = "alice@im.wechat";

fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn scratch_dir() -> PathBuf {
    // target/release/deps/media-<hash> -> target/media-bench
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("media-bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh emulator and a bot that already has a context token for `USER`.
/// Every upload stays on the emulated CDN, so uploads get a fresh emulator per batch.
struct Setup {
    sim: Sim,
    client: Client,
    account: Account,
    updates: Updates,
    bot_id: String,
}

impl Setup {
    async fn new() -> Self {
        let sim = Sim::start(SimConfig::for_tests(Duration::from_secs(5)).without_limits())
            .await
            .unwrap();
        let bot = sim.create_bot();
        let base = sim.base_url();
        let mut config = ClientConfig::for_server(&base)
            .with_delays(Delays::fast())
            .with_cdn_base_url(sim.cdn_base_url());
        config.max_media_bytes = 64 << 20;
        let client = Client::new(config, MemoryStore::new()).unwrap();
        let account = client
            .add_account(Credentials {
                account_id: bot.bot_id.clone(),
                token: Secret::new(bot.token.clone()),
                base_url: Some(base),
                user_id: None,
                saved_at_ms: 1,
            })
            .await
            .unwrap();
        let updates = account.updates().await.unwrap();
        let mut setup = Self {
            sim,
            client,
            account,
            updates,
            bot_id: bot.bot_id,
        };
        setup.sim.user(USER).send_text(&setup.bot_id, "hi").unwrap();
        setup.next_message().await;
        setup
    }

    /// Polls until the next inbound message and returns its media item, if any.
    async fn next_message(&mut self) -> Option<MessageItem> {
        loop {
            match tokio::time::timeout(Duration::from_secs(30), self.updates.next()).await {
                Ok(Some(Update::Message(m))) => return m.media_item().cloned(),
                Ok(Some(_)) => {}
                other => panic!("no message: {other:?}"),
            }
        }
    }

    async fn stop(self) {
        self.client.shutdown();
        self.sim.shutdown().await;
    }
}

fn bench_media(c: &mut Criterion) {
    let rt = runtime();
    let plain = data(SIZE);
    let key = MediaKey::from_bytes([0x42; 16]);
    let ct = ilink_crypto::encrypt(&key, &plain);
    let dir = scratch_dir();
    let upload_path = dir.join("upload-16MiB.bin");
    std::fs::write(&upload_path, &plain).unwrap();
    let download_path = dir.join("download-16MiB.bin");

    let mut group = c.benchmark_group("media_16MiB");
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));

    group.bench_function("aes_encrypt_one_shot", |b| {
        b.iter(|| black_box(ilink_crypto::encrypt(&key, black_box(&plain))));
    });
    group.bench_function("aes_decrypt_one_shot", |b| {
        b.iter(|| black_box(ilink_crypto::decrypt(&key, black_box(&ct)).unwrap()));
    });

    group.bench_function("upload_send_file", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let s = Setup::new().await;
                let t0 = Instant::now();
                for _ in 0..iters {
                    s.account
                        .send_file(USER, upload_path.as_path(), None)
                        .await
                        .unwrap();
                }
                let elapsed = t0.elapsed();
                assert_eq!(s.sim.delivered_to(USER).len() as u64, iters);
                assert!(s.sim.dropped().is_empty());
                s.stop().await;
                elapsed
            })
        });
    });

    // One emulator with one inbound 16 MiB file for both download benches.
    let (inbound, item) = rt.block_on(async {
        let mut s = Setup::new().await;
        s.sim
            .user(USER)
            .send_file(&s.bot_id, "inbound.bin", &plain)
            .unwrap();
        let item = s.next_message().await.expect("a media item");
        (s, item)
    });
    group.bench_function("download_to_file", |b| {
        b.iter(|| {
            let n = rt
                .block_on(inbound.account.download_to_file(&item, &download_path))
                .unwrap();
            assert_eq!(n, SIZE as u64);
        });
    });
    group.bench_function("download_to_memory", |b| {
        b.iter(|| {
            let got = rt.block_on(inbound.account.download(&item)).unwrap();
            assert_eq!(got.len(), SIZE);
        });
    });
    group.finish();

    assert_eq!(std::fs::read(&download_path).unwrap(), plain);
    rt.block_on(inbound.stop());
    let _ = std::fs::remove_file(&upload_path);
    let _ = std::fs::remove_file(&download_path);
}

criterion_group!(benches, bench_media);
criterion_main!(benches);
