//! Differential fuzzing of ilink's SILK decoder (safe Rust) against the SILK SDK's C decoder
//! (the `c-reference` feature of ilink-silk), on untrusted voice bytes.
//!
//! Input: one byte choosing the output rate (one of the seven the reference accepts), then a
//! SILK stream in either layout. Property: both decoders give the same samples, or both give
//! the same typed error. Seeds (`fuzz/corpus/silk_decode_diff`) are streams of the bit-exact
//! corpus (`crates/ilink-silk/tests/bitexact.rs`, `write_fuzz_seeds`).
#![no_main]

use std::time::Duration;

use ilink_silk::{DecodeOptions, decode_silk, reference};
use libfuzzer_sys::fuzz_target;

const RATES: [u32; 7] = [8_000, 12_000, 16_000, 24_000, 32_000, 44_100, 48_000];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let rate = RATES[usize::from(selector) % RATES.len()];
    // Keep each run short: the reference decoder's cap is the default 10 minutes, so only
    // compare streams that fit in it; ilink's is set to the same.
    let options = DecodeOptions::default()
        .sample_rate(rate)
        .max_duration(Duration::from_secs(600));
    let rust = decode_silk(stream, options);
    let c = reference::decode(stream, rate);
    match (rust, c) {
        (Ok(r), Ok(c)) => assert!(r.samples == c, "decoders differ at {rate} Hz"),
        (Err(r), Err(c)) => assert_eq!(r.to_string(), c.to_string(), "errors differ"),
        (r, c) => panic!(
            "one decoder failed at {rate} Hz: Rust {:?}, C {:?}",
            r.map(|p| p.samples.len()),
            c.map(|p| p.len())
        ),
    }
});
