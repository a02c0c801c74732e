//! ilink-silk: decode and encode of 60 s of speech, and any-audio-to-voice of a 60 s 44.1 kHz
//! stereo WAV (decode, mix, resample to 24 kHz, encode).
//!
//! The speech is the crate's committed test recording (`speech24k.flac`, 1.37 s) repeated to
//! 60 s. Real-time factor = 60 s / measured time. To compare with `silk-python`, write the same
//! PCM out (`ILINK_SILK_BENCH_PCM=/tmp/speech60s.pcm`) and time `pysilk.encode`/`decode` on it.
//!
//! `encode_24k_24kbps` is the public encoder (`encode_pcm`: what `send_voice` runs). With the
//! `c-reference` feature (`cargo xtask bench` passes it), `c_reference_encode_24k_24kbps` is the
//! SILK SDK's C encoder on the same PCM and settings, for context.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::Cursor;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ilink_silk::{
    DecodeOptions, EncodeOptions, audio_to_voice, decode_audio, decode_silk, encode_pcm,
};

const SECONDS: usize = 60;

/// 60 s of 24 kHz mono speech.
fn speech_60s() -> Vec<i16> {
    let flac = include_bytes!("../../crates/ilink-silk/tests/data/speech24k.flac");
    let clip = decode_audio(flac, DecodeOptions::default())
        .unwrap()
        .samples;
    let samples: Vec<i16> = clip
        .iter()
        .copied()
        .cycle()
        .take(SECONDS * 24_000)
        .collect();
    if let Ok(path) = std::env::var("ILINK_SILK_BENCH_PCM") {
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::fs::write(path, bytes).unwrap();
    }
    samples
}

/// The same speech as a 44.1 kHz stereo 16-bit WAV file.
fn wav_44k_stereo(speech: &[i16]) -> Vec<u8> {
    let pcm = ilink_silk::Pcm {
        samples: speech.to_vec(),
        sample_rate: 24_000,
    };
    let wav = pcm.to_wav().unwrap();
    let up = decode_audio(&wav, DecodeOptions::default().sample_rate(44_100)).unwrap();
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Vec::new();
    let mut writer = hound::WavWriter::new(Cursor::new(&mut out), spec).unwrap();
    for &s in &up.samples {
        writer.write_sample(s).unwrap();
        writer.write_sample(s / 2).unwrap();
    }
    writer.finalize().unwrap();
    out
}

fn bench_silk(c: &mut Criterion) {
    let speech = speech_60s();
    let voice = encode_pcm(&speech, 24_000, EncodeOptions::default()).unwrap();
    let wav = wav_44k_stereo(&speech);

    let mut group = c.benchmark_group("silk_60s_speech");
    group.sample_size(10);
    // Throughput in seconds of audio, so "elements/s" reads as the real-time factor.
    group.throughput(Throughput::Elements(SECONDS as u64));
    group.bench_function("encode_24k_24kbps", |b| {
        b.iter(|| encode_pcm(black_box(&speech), 24_000, EncodeOptions::default()).unwrap())
    });
    #[cfg(feature = "c-reference")]
    group.bench_function("c_reference_encode_24k_24kbps", |b| {
        let settings = ilink_silk::reference::EncoderSettings::default();
        b.iter(|| ilink_silk::reference::encode(black_box(&speech), settings).unwrap())
    });
    group.bench_function("decode_24k", |b| {
        b.iter(|| decode_silk(black_box(&voice.silk), DecodeOptions::default()).unwrap())
    });
    group.bench_function("decode_to_16k", |b| {
        let options = DecodeOptions::default().sample_rate(16_000);
        b.iter(|| decode_silk(black_box(&voice.silk), options).unwrap())
    });
    group.bench_function("wav_44k_stereo_to_voice", |b| {
        b.iter(|| audio_to_voice(black_box(&wav), EncodeOptions::default()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_silk);
criterion_main!(benches);
