//! Decoding of any audio file a user hands to the SDK (WAV, MP3, Ogg Vorbis, FLAC, AAC):
//! format detection, symphonia/hound parsing, channel mixing and resampling.
//!
//! Input: one selector byte, then the file. Properties: no panic outside the third-party
//! parsers (ilink-silk turns their panics into errors, see below), output at the requested
//! rate and within the duration cap.
#![no_main]

use std::time::Duration;

use ilink_silk::{DecodeOptions, EncodeOptions, decode_audio, encode_wav};
use libfuzzer_sys::fuzz_target;

const RATES: [u32; 4] = [24_000, 16_000, 8_000, 48_000];

fuzz_target!(
    init: {
        // libfuzzer-sys aborts on every panic, even one that is caught. ilink-silk runs the
        // third-party parsers under catch_unwind on purpose (their bugs become errors), so
        // let panics raised inside them unwind; any other panic is still a crash.
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_parser = info.location().is_some_and(|l| {
                let f = l.file();
                f.contains("symphonia") || f.contains("hound")
            });
            if !in_parser {
                default(info);
                std::process::abort();
            }
        }));
    },
    |data: &[u8]| {
        let Some((&sel, file)) = data.split_first() else {
            return;
        };
        let rate = RATES[usize::from(sel) % RATES.len()];
        let max = Duration::from_secs(5);
        if let Ok(pcm) = decode_audio(file, DecodeOptions::default().sample_rate(rate).max_duration(max)) {
            assert_eq!(pcm.sample_rate, rate);
            assert!(pcm.duration() <= max + Duration::from_millis(100), "{:?}", pcm.duration());
        }
        if sel & 0x80 != 0 {
            let _ = encode_wav(file, EncodeOptions::default().max_duration(max));
        }
    }
);
