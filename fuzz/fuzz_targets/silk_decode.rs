//! SILK framing and decoding of untrusted voice bytes (inbound `voice_item` media after
//! decryption): the Rust framing parser and the Rust decoder behind it (the differential
//! comparison with the C decoder is `silk_decode_diff`).
//!
//! Run with AddressSanitizer on the C code too: `cargo xtask fuzz silk_decode` builds the
//! SILK SDK with `CFLAGS=-fsanitize=address`.
//!
//! Properties: no panic, no memory error; `probe`, `playtime_ms` and `to_tencent` agree on
//! which inputs are valid; a stream decodes to the same samples in either layout.
#![no_main]

use std::time::Duration;

use ilink_silk::{DecodeOptions, SilkFormat, decode_silk, is_silk, playtime_ms, probe, to_tencent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = is_silk(data);
    let _ = SilkFormat::detect(data);
    let probed = probe(data);
    let playtime = playtime_ms(data);
    assert_eq!(probed.is_ok(), playtime.is_ok(), "probe and playtime_ms disagree");
    let tencent = to_tencent(data);
    assert_eq!(probed.is_ok(), tencent.is_ok(), "probe and to_tencent disagree");

    // Keep each run short: at most 10 s of audio.
    let options = DecodeOptions::default().max_duration(Duration::from_secs(10));
    let decoded = decode_silk(data, options);
    if let Ok(pcm) = &decoded {
        assert_eq!(pcm.sample_rate, 24_000);
        assert!(probed.is_ok(), "decoded a stream that probe rejects");
    }
    if let Ok(tencent) = tencent {
        assert_eq!(probe(&tencent).ok(), Some(SilkFormat::Tencent));
        assert_eq!(playtime_ms(&tencent).ok(), playtime.ok());
        let again = decode_silk(&tencent, options);
        assert_eq!(again.ok(), decoded.ok(), "layouts decode differently");
    }
});
