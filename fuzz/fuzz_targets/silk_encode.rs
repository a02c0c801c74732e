//! SILK encoding of arbitrary PCM (outbound voice): resampling and the C encoder.
//!
//! Input: one byte choosing the sample rate, bitrate and complexity, then little-endian i16
//! samples. Properties: no panic, no memory error; the result is Tencent SILK whose
//! `playtime_ms` is the metadata's and which decodes to exactly that much 24 kHz audio.
#![no_main]

use std::time::Duration;

use ilink_silk::{DecodeOptions, EncodeOptions, decode_silk, encode_pcm, playtime_ms, probe, SilkFormat};
use libfuzzer_sys::fuzz_target;

const RATES: [u32; 6] = [8_000, 12_000, 16_000, 24_000, 44_100, 48_000];
const BITRATES: [u32; 4] = [8_000, 16_000, 24_000, 40_000];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let rate = RATES[usize::from(sel) % RATES.len()];
    let bitrate = BITRATES[usize::from(sel >> 3) % BITRATES.len()];
    let complexity = (sel >> 5) % 3;
    let samples: Vec<i16> = body
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let options = EncodeOptions::default()
        .bitrate(bitrate)
        .complexity(complexity)
        .max_duration(Duration::from_secs(10));
    let Ok(voice) = encode_pcm(&samples, rate, options) else {
        assert!(samples.is_empty(), "encoding failed on {} samples", samples.len());
        return;
    };
    assert_eq!(probe(&voice.silk).ok(), Some(SilkFormat::Tencent));
    assert_eq!(playtime_ms(&voice.silk).ok(), Some(voice.meta.playtime_ms));
    let pcm = decode_silk(&voice.silk, DecodeOptions::default()).expect("our own SILK decodes");
    assert_eq!(pcm.samples.len() as u64, voice.meta.playtime_ms * 24);
});
