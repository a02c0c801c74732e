//! Interoperability with other SILK implementations, against committed files (see
//! `tests/data/README.md` for how they were made and what was measured).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{best_alignment, compare_at, flac24k, fnv1a, read};
use ilink_silk::{DecodeOptions, EncodeOptions, SilkFormat, decode_silk, encode_pcm};

fn decode(name: &str) -> Vec<i16> {
    let pcm = decode_silk(&read(name), DecodeOptions::default()).unwrap();
    assert_eq!(pcm.sample_rate, 24_000);
    pcm.samples
}

#[test]
fn decodes_silk_python_tencent_file_bit_exactly() {
    let ours = decode("pysilk_tencent_24k.silk");
    let theirs = flac24k("pysilk_tencent_24k.pysilk.flac");
    assert_eq!(theirs.len(), 32_640);
    assert_eq!(ours.len(), theirs.len());
    // Measured: identical (correlation 1, infinite SNR).
    assert!(ours == theirs, "ilink and silk-python decodings differ");
    assert_eq!(fnv1a(&ours), fnv1a(&theirs));
}

#[test]
fn decodes_silk_python_standard_16k_file_bit_exactly() {
    let silk = read("pysilk_standard_16k.silk");
    assert_eq!(SilkFormat::detect(&silk), Some(SilkFormat::Standard));
    let ours = decode("pysilk_standard_16k.silk");
    assert_eq!(ours.len(), 32_640);
    assert_eq!(
        fnv1a(&ours),
        0xbf06_f18d_b212_58f8,
        "silk-python's decoding, hashed"
    );
}

#[test]
fn decodes_silk_wasm_file_like_silk_wasm() {
    let ours = decode("silkwasm_tencent_24k.silk");
    let theirs = flac24k("silkwasm_tencent_24k.silkwasm.flac");
    assert_eq!(ours.len(), theirs.len());
    // silk-wasm's output runs 960 samples (two frames) ahead of the reference decoder's.
    let (lag, corr, snr) = best_alignment(&theirs, &ours, -970..=-950);
    assert_eq!(lag, -960);
    assert!(compare_at(&theirs, &ours, 0).0 < 0.5);
    // Measured: correlation 0.9943, SNR 19.3 dB.
    assert!(corr > 0.99, "correlation {corr}, SNR {snr} dB");
}

#[test]
fn other_decoders_decode_ilink_output() {
    let silk = read("ilink_tencent_24k.silk");
    let ours = decode("ilink_tencent_24k.silk");
    assert_eq!(ours.len(), 33_120);
    // silk-python decoded this file to exactly these samples (hash recorded offline).
    assert_eq!(fnv1a(&ours), 0xe776_e283_f443_2458);
    // silk-wasm decoded it to this.
    let wasm = flac24k("ilink_tencent_24k.silkwasm.flac");
    let (corr, snr) = compare_at(&wasm, &ours, -960);
    // Measured: correlation 0.9937, SNR 18.8 dB.
    assert!(corr > 0.99, "correlation {corr}, SNR {snr} dB");
    assert_eq!(&silk[..10], b"\x02#!SILK_V3");
}

/// The C reference encoder (ilink's encoder until the Rust one replaced it) writes the same
/// bytes as silk-python for the same input, plus the padded last frame.
#[cfg(feature = "c-reference")]
#[test]
fn the_c_reference_encoder_writes_silk_python_bytes_plus_the_padded_last_frame() {
    let source = flac24k("speech24k.flac");
    assert_eq!(source.len(), 32_959); // 68.66 frames of 20 ms
    let c = ilink_silk::reference::encode(&source, Default::default()).unwrap();
    assert_eq!(ilink_silk::playtime_ms(&c).unwrap(), 69 * 20);
    assert!(
        c == read("ilink_tencent_24k.silk"),
        "reference output changed"
    );
    // silk-python drops the partial last frame; everything before it is byte-identical.
    let pysilk = read("pysilk_tencent_24k.silk");
    assert!(c.starts_with(&pysilk));
    assert_eq!(ilink_silk::playtime_ms(&pysilk).unwrap(), 68 * 20);
}

/// The Rust encoder's stream for the same input: same framing and play time.
#[test]
fn the_rust_encoder_pads_the_last_frame_like_the_reference() {
    let source = flac24k("speech24k.flac");
    let voice = encode_pcm(&source, 24_000, EncodeOptions::default()).unwrap();
    assert_eq!(voice.meta.playtime_ms, 69 * 20);
    assert_eq!(ilink_silk::playtime_ms(&voice.silk).unwrap(), 69 * 20);
    assert_eq!(&voice.silk[..10], b"\x02#!SILK_V3");
    assert_eq!(
        decode_silk(&voice.silk, DecodeOptions::default())
            .unwrap()
            .samples
            .len(),
        69 * 480
    );
}

#[test]
fn encoded_speech_resembles_the_source() {
    let source = flac24k("speech24k.flac");
    let ours = decode("ilink_tencent_24k.silk");
    // SILK is perceptual; waveform similarity after the codec's delay is what can be checked.
    let (lag, corr, _) = best_alignment(&source, &ours, -300..=0);
    // Measured: lag -130 samples (5.4 ms codec delay), correlation 0.913.
    assert_eq!(lag, -130);
    assert!(corr > 0.88, "correlation {corr}");
}
