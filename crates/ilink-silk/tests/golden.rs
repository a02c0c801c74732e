//! The Rust decoder against the C reference decoder without the C code: every decoding listed
//! in `tests/data/golden/digests.tsv` (the length and FNV-1a-64 of the C decoder's output,
//! written by `tests/bitexact.rs`'s `write_golden` and re-checked against the C decoder by its
//! `golden_digests_are_the_c_decoders`) must come out of `decode_silk` sample for sample.
//!
//! The streams (`tests/data/golden/*.silk`) were made by the SILK SDK's C encoder: every
//! internal rate (8, 12, 16, 24 kHz), bitrates from 5 to 60 kbit/s, every complexity, 100 ms
//! packets, in-band FEC, DTX and internal-rate switches; plus the committed streams of
//! silk-python, silk-wasm and ilink; decoded at every output rate the reference accepts, with
//! and without lost packets. This runs in the default `cargo test`, so the default build
//! proves the decoder bit-exact on that corpus.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::{fnv1a, golden};
use ilink_silk::{DecodeOptions, decode_silk};

#[test]
fn rust_decoder_matches_the_c_decoders_golden_digests() {
    let lines = golden();
    // A truncated or emptied file must not pass.
    assert!(lines.len() >= 100, "only {} golden lines", lines.len());
    let mut failures = Vec::new();
    for g in &lines {
        let pcm = decode_silk(&g.bytes(), DecodeOptions::default().sample_rate(g.rate))
            .unwrap_or_else(|e| panic!("{} at {} Hz: {e}", g.stream, g.rate));
        if (pcm.samples.len(), fnv1a(&pcm.samples)) != (g.samples, g.fnv) {
            failures.push(format!(
                "{} at {} Hz, losses {}: {} samples {:016x}, C gave {} samples {:016x}",
                g.stream,
                g.rate,
                g.losses,
                pcm.samples.len(),
                fnv1a(&pcm.samples),
                g.samples,
                g.fnv
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn golden_corpus_covers_every_output_rate_and_losses() {
    let lines = golden();
    let rates: BTreeSet<u32> = lines.iter().map(|g| g.rate).collect();
    assert_eq!(
        rates.into_iter().collect::<Vec<_>>(),
        [8_000, 12_000, 16_000, 24_000, 32_000, 44_100, 48_000]
    );
    assert!(lines.iter().filter(|g| g.losses > 0).count() >= 20);
    let streams: BTreeSet<&str> = lines.iter().map(|g| g.stream.as_str()).collect();
    assert!(streams.len() >= 20, "{} streams", streams.len());
}
