//! Differential fuzzing of ilink's SILK encoder output: a stream ilink's public encoder makes
//! from any PCM, at any supported rate, bitrate and complexity, decodes identically with the
//! Rust decoder and the SILK SDK's C decoder (the `c-reference` feature of ilink-silk), at an
//! output rate the reference accepts.
//!
//! Input: a rate byte (one of 8 input rates), a bitrate byte, an options byte (complexity and
//! the output rate of the decoders), then little-endian i16 samples (at most 4 s are used).
//! Properties: encoding succeeds; both decoders give the same samples, `playtime_ms` worth of
//! them.
#![no_main]

use ilink_silk::{
    DecodeOptions, EncodeOptions, MAX_BITRATE, MIN_BITRATE, decode_silk, encode_pcm, reference,
};
use libfuzzer_sys::fuzz_target;

const INPUT_RATES: [u32; 8] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 44_100, 48_000,
];
const OUTPUT_RATES: [u32; 7] = [8_000, 12_000, 16_000, 24_000, 32_000, 44_100, 48_000];

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_first_chunk::<3>() else {
        return;
    };
    let [rate, bitrate, opts] = *head;
    let rate = INPUT_RATES[usize::from(rate) % INPUT_RATES.len()];
    let bitrate = MIN_BITRATE + u32::from(bitrate) * (MAX_BITRATE - MIN_BITRATE) / 255;
    let complexity = opts % 3;
    let out_rate = OUTPUT_RATES[usize::from(opts / 3) % OUTPUT_RATES.len()];
    let samples: Vec<i16> = body
        .chunks_exact(2)
        .take(4 * rate as usize)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    if samples.is_empty() {
        return;
    }
    let options = EncodeOptions::default()
        .bitrate(bitrate)
        .complexity(complexity);
    let voice = encode_pcm(&samples, rate, options).expect("valid settings encode");
    let rust = decode_silk(&voice.silk, DecodeOptions::default().sample_rate(out_rate))
        .expect("the Rust decoder reads ilink's stream");
    let c = reference::decode(&voice.silk, out_rate).expect("the C decoder reads ilink's stream");
    assert!(
        rust.samples == c,
        "decoders differ at {out_rate} Hz ({} vs {} samples)",
        rust.samples.len(),
        c.len()
    );
    let expected = voice.meta.playtime_ms * u64::from(out_rate) / 1000;
    assert!(
        (c.len() as u64).abs_diff(expected) <= u64::from(out_rate) / 50,
        "{} samples for {} ms at {out_rate} Hz",
        c.len(),
        voice.meta.playtime_ms
    );
});
