//! Per-message cost of persisting dedupe tombstones with ilink-client's `FileStore`
//! (issue 13: "Dedupe tombstones appended, not rewritten").
//!
//! * `rewrite_whole_set/1024_keys`: what every handled message cost before: the whole set of
//!   1024 keys serialized, written to a temporary file, synced and renamed (now only the
//!   occasional compaction does this).
//! * `append_one_message/3_keys`: what a handled message costs now: its (up to 3) keys appended
//!   to the journal and the data synced (as the account's progress writer does it: through the
//!   async `StateStore`, whose file I/O runs on tokio's blocking pool).
//! * `compaction/3072_keys`: the rewrite done about once per 1000 appended keys.
//!
//! Both paths sync to disk, so the figures depend on the file system; run them on the disk the
//! bot's state lives on. `cargo bench -p ilink-benches --bench dedupe -- --quick`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ilink_client::{FileStore, StateStore};

const ACCOUNT: &str = "bench@im.bot";

fn keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("m:{}", 7_461_000_000_000_000_000u64 + i as u64))
        .collect()
}

fn tombstones(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("ilink-bench-dedupe-{}", std::process::id()));
    let store = FileStore::new(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("dedupe_tombstones");
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(30);

    let old = keys(1024);
    group.bench_function("rewrite_whole_set/1024_keys", |b| {
        b.iter(|| {
            rt.block_on(store.save_tombstones(ACCOUNT, &old, None))
                .unwrap();
        });
    });

    let big = keys(3072);
    group.bench_function("compaction/3072_keys", |b| {
        b.iter(|| {
            rt.block_on(store.save_tombstones(ACCOUNT, &big, None))
                .unwrap();
        });
    });

    let mut n = 0u64;
    group.bench_function("append_one_message/3_keys", |b| {
        b.iter(|| {
            n += 1;
            let msg = [
                format!("m:{}", 7_462_000_000_000_000_000u64 + n),
                format!("c:srv-cid-{n}"),
                format!("s:user@im.wechat:{n}"),
            ];
            rt.block_on(store.append_tombstones(ACCOUNT, &msg, None))
                .unwrap();
        });
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, tombstones);
criterion_main!(benches);
