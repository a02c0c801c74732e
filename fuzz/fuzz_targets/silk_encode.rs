//! SILK encoding of arbitrary PCM (outbound voice) by ilink's public encoder, at any sample
//! rate, bitrate, complexity and layout, valid or not.
//!
//! Input: a rate selector byte and two rate bytes, a bitrate byte, an options byte, then
//! little-endian i16 samples. The rate is a common one (selector < 0x80) or any value in
//! 0..400000 (so also below `MIN_SAMPLE_RATE` and above `MAX_SAMPLE_RATE`); the bitrate is the
//! byte times 500 bit/s (0..127500, so also outside `MIN_BITRATE..=MAX_BITRATE`); the options
//! byte picks complexity 0..=3 (3 is invalid) and the layout.
//!
//! Properties: no panic, no memory error; invalid settings and empty or too long input give
//! exactly their typed error; otherwise the stream is valid SILK in the chosen layout whose
//! `playtime_ms` is the metadata's and which decodes (Rust decoder) to exactly that much
//! 24 kHz audio.
#![no_main]

use std::time::Duration;

use ilink_silk::{
    DecodeOptions, EncodeOptions, MAX_BITRATE, MAX_SAMPLE_RATE, MIN_BITRATE, MIN_SAMPLE_RATE,
    SilkError, SilkFormat, decode_silk, encode_pcm, playtime_ms, probe,
};
use libfuzzer_sys::fuzz_target;

const COMMON: [u32; 10] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000,
];
const MAX_SECONDS: u64 = 10;

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_first_chunk::<5>() else {
        return;
    };
    let [sel, lo, hi, bitrate, opts] = *head;
    let rate = if sel < 0x80 {
        COMMON[usize::from(sel) % COMMON.len()]
    } else {
        (u32::from(sel & 0x7f) << 16 | u32::from(hi) << 8 | u32::from(lo)) % 400_000
    };
    let bitrate = u32::from(bitrate) * 500;
    let complexity = opts & 3;
    let format = if opts & 4 == 0 {
        SilkFormat::Tencent
    } else {
        SilkFormat::Standard
    };
    let samples: Vec<i16> = body
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let options = EncodeOptions::default()
        .bitrate(bitrate)
        .complexity(complexity)
        .format(format)
        .max_duration(Duration::from_secs(MAX_SECONDS));
    let result = encode_pcm(&samples, rate, options);

    let bad_bitrate = !(MIN_BITRATE..=MAX_BITRATE).contains(&bitrate);
    let bad_rate = !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate);
    let too_long = samples.len() as u64 > MAX_SECONDS * u64::from(rate);
    let voice = match result {
        Err(SilkError::BadBitrate { .. }) if bad_bitrate => return,
        Err(SilkError::BadComplexity(3)) if !bad_bitrate && complexity == 3 => return,
        Err(SilkError::BadSampleRate { .. }) if bad_rate => return,
        // Under 1 ms of input may resample to no 24 kHz sample at all.
        Err(SilkError::Empty) if samples.len() < (rate as usize).div_ceil(1000) => return,
        Err(SilkError::TooLong { .. }) if too_long => return,
        Err(e) => panic!(
            "{} samples at {rate} Hz, {bitrate} bit/s, complexity {complexity}: {e}",
            samples.len()
        ),
        Ok(voice) => voice,
    };
    assert!(
        !(bad_bitrate || bad_rate || complexity == 3 || samples.is_empty() || too_long),
        "accepted invalid input: {} samples at {rate} Hz, {bitrate} bit/s, complexity {complexity}",
        samples.len()
    );
    assert_eq!(probe(&voice.silk).ok(), Some(format));
    assert_eq!(playtime_ms(&voice.silk).ok(), Some(voice.meta.playtime_ms));
    // At least the input's duration, rounded up to whole 20 ms frames (plus at most one more
    // frame of resampler tail).
    let input_ms = (samples.len() as u64 * 1000).div_ceil(u64::from(rate));
    assert!(
        voice.meta.playtime_ms + 20 >= input_ms && voice.meta.playtime_ms <= input_ms + 40,
        "{} ms for {input_ms} ms of input",
        voice.meta.playtime_ms
    );
    let pcm = decode_silk(&voice.silk, DecodeOptions::default()).expect("our own SILK decodes");
    assert_eq!(pcm.samples.len() as u64, voice.meta.playtime_ms * 24);
});
