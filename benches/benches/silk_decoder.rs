//! The SILK decoder in safe Rust against the SILK SDK's C decoder, on the same 60 s of speech
//! (the silk bench's: the crate's test recording repeated), same stream, same output rate.
//!
//! `silk_decoder/rust_24k` is what `decode_silk` runs; `silk_decoder/c_24k` is the reference
//! (through `ilink_silk::reference`, the `c-reference` feature). Both produce the same samples
//! (checked before measuring). Real-time factor = 60 s / measured time.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ilink_silk::reference::{self, EncoderSettings};
use ilink_silk::{DecodeOptions, EncodeOptions, decode_audio, decode_silk, encode_pcm};

const SECONDS: usize = 60;

fn speech_60s() -> Vec<i16> {
    let flac = include_bytes!("../../crates/ilink-silk/tests/data/speech24k.flac");
    let clip = decode_audio(flac, DecodeOptions::default())
        .unwrap()
        .samples;
    clip.iter()
        .copied()
        .cycle()
        .take(SECONDS * 24_000)
        .collect()
}

fn bench_decoders(c: &mut Criterion) {
    let speech = speech_60s();
    let voice = encode_pcm(&speech, 24_000, EncodeOptions::default())
        .unwrap()
        .silk;
    // A 16 kHz-internal stream decoded to 48 kHz exercises the reference resampler.
    let wideband = reference::encode(
        &speech,
        EncoderSettings::default()
            .max_internal_rate(16_000)
            .bitrate(20_000),
    )
    .unwrap();
    for (silk, rate) in [(&voice, 24_000), (&wideband, 48_000)] {
        let rust = decode_silk(silk, DecodeOptions::default().sample_rate(rate)).unwrap();
        assert!(
            rust.samples == reference::decode(silk, rate).unwrap(),
            "decoders differ"
        );
    }

    let mut group = c.benchmark_group("silk_decoder");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SECONDS as u64));
    group.bench_function("rust_24k", |b| {
        b.iter(|| decode_silk(black_box(&voice), DecodeOptions::default()).unwrap())
    });
    group.bench_function("c_24k", |b| {
        b.iter(|| reference::decode(black_box(&voice), 24_000).unwrap())
    });
    group.bench_function("rust_16k_stream_to_48k", |b| {
        let options = DecodeOptions::default().sample_rate(48_000);
        b.iter(|| decode_silk(black_box(&wideband), options).unwrap())
    });
    group.bench_function("c_16k_stream_to_48k", |b| {
        b.iter(|| reference::decode(black_box(&wideband), 48_000).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_decoders);
criterion_main!(benches);
