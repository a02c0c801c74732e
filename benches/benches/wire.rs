//! getupdates batch decoding with ilink-proto: the body a bot decodes on every long-poll.
//!
//! The messages are the real ones of the fixtures (Tencent's client's wire capture and the
//! payloads users captured from the live server: text, image, voice, file, video, quotes,
//! unknown fields, string and >2^53 ids), as committed in the fuzz seed corpus
//! (`fuzz/corpus/proto_getupdates/batch-all`, made from `shared/fixtures` by
//! `fuzz/make_corpus.py`). Batches of 1, 10 and 100 messages cycle through them.
//!
//! Measured: the whole client-side path, `decode::<GetUpdatesResponse>` of the body and
//! `into_messages()` (each message decoded on its own, design rule 5). Throughput is in
//! messages.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ilink_proto::{GetUpdatesResponse, decode, decode_updates};
use serde_json::{Value, json};

const FIXTURE_BATCH: &[u8] = include_bytes!("../../fuzz/corpus/proto_getupdates/batch-all");

/// The fixtures' messages (only JSON objects: the seed also holds two deliberately broken
/// entries to exercise error values, which a live server does not send).
fn fixture_messages() -> Vec<Value> {
    let batch: Value = serde_json::from_slice(FIXTURE_BATCH).expect("fixture batch is JSON");
    batch["msgs"]
        .as_array()
        .expect("fixture batch has msgs")
        .iter()
        .filter(|m| m.is_object())
        .cloned()
        .collect()
}

/// A getupdates body with `n` messages, as the live server sends it (no `ret`, a
/// cursor, `sync_buf`), each message with its own `seq` and `message_id`.
fn batch(n: usize, messages: &[Value]) -> Vec<u8> {
    let msgs: Vec<Value> = (0..n)
        .map(|i| {
            let mut m = messages[i % messages.len()].clone();
            m["seq"] = json!(i + 1);
            m["message_id"] = json!(7_448_678_501_208_393_123u64 + i as u64);
            m
        })
        .collect();
    serde_json::to_vec(&json!({
        "msgs": msgs,
        "get_updates_buf": "CgQIARACEhZiMGY1ODYwZmRlY2JAaW0uYm90OlRPS0VO",
        "sync_buf": "CgQIARAC",
    }))
    .unwrap()
}

fn bench_getupdates(c: &mut Criterion) {
    let messages = fixture_messages();
    let mut group = c.benchmark_group("wire_getupdates_decode");
    for n in [1usize, 10, 100] {
        let body = batch(n, &messages);
        // Check once that the batch decodes completely, so the bench measures success.
        let resp: GetUpdatesResponse = decode(&body).unwrap();
        let decoded = resp.into_messages();
        assert_eq!(decoded.len(), n);
        assert!(decoded.iter().all(Result::is_ok));

        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(
            BenchmarkId::new("messages", format!("{n}msgs_{}B", body.len())),
            &body,
            |b, body| {
                b.iter(|| {
                    let resp: GetUpdatesResponse = decode(black_box(body)).unwrap();
                    black_box(resp.into_messages())
                });
            },
        );
    }
    group.finish();

    // Where the time goes, for the 100-message batch: the body alone (messages kept raw),
    // and a plain serde_json parse into `Value` as the floor any JSON decoder pays.
    let body = batch(100, &messages);
    let mut group = c.benchmark_group("wire_getupdates_parts");
    group.throughput(Throughput::Elements(100));
    group.bench_function("body_only_100msgs", |b| {
        b.iter(|| black_box(decode::<GetUpdatesResponse>(black_box(&body)).unwrap()));
    });
    // The client's own path: the tolerant decoder (`decode_updates`: a structural scan, then
    // each message and envelope field parsed on its own).
    group.bench_function("tolerant_body_only_100msgs", |b| {
        b.iter(|| black_box(decode_updates(black_box(&body)).unwrap()));
    });
    group.bench_function("serde_json_value_100msgs", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&body)).unwrap()));
    });
    group.finish();
}

criterion_group!(benches, bench_getupdates);
criterion_main!(benches);
