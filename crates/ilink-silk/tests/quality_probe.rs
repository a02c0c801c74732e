//! A probe for tuning, not a check: encodes the WAV files in `$SILK_PROBE_DIR` with the Rust
//! encoder and the C reference at `$SILK_PROBE_RATE` Hz (24 000 unless set) and writes the
//! originals and both decodings at 16 kHz next to them for a PESQ script, printing sizes and
//! encode times (`$SILK_PROBE_BITRATE` and `$SILK_PROBE_COMPLEXITY` set the encoders'
//! bit rate and complexity; 24 000 and 2 unless set). Run with
//! `SILK_PROBE_DIR=/tmp/x cargo test -p ilink-silk --test quality_probe -- --ignored --nocapture`.
#![cfg(feature = "c-reference")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use ilink_silk::{DecodeOptions, EncodeOptions, Pcm, decode_audio_file, decode_silk, encode_pcm};

fn write16(path: &std::path::Path, samples: &[i16]) {
    let pcm = Pcm {
        samples: samples.to_vec(),
        sample_rate: 16_000,
    };
    std::fs::write(path, pcm.to_wav().unwrap()).unwrap();
}

#[test]
#[ignore = "a tuning probe; needs SILK_PROBE_DIR"]
fn probe() {
    let Ok(dir) = std::env::var("SILK_PROBE_DIR") else {
        return;
    };
    let rate: u32 = std::env::var("SILK_PROBE_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24_000);
    let bitrate: u32 = std::env::var("SILK_PROBE_BITRATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24_000);
    let complexity: u8 = std::env::var("SILK_PROBE_COMPLEXITY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let dir = std::path::PathBuf::from(dir);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.starts_with("in_") && n.ends_with(".wav"))
        .collect();
    names.sort();
    let (mut t_rust, mut t_c, mut secs) = (0f64, 0f64, 0f64);
    for name in names {
        let stem = name.trim_end_matches(".wav");
        let pcm =
            decode_audio_file(dir.join(&name), DecodeOptions::default().sample_rate(rate)).unwrap();
        let orig = decode_audio_file(
            dir.join(&name),
            DecodeOptions::default().sample_rate(16_000),
        )
        .unwrap();
        let opts = EncodeOptions::default()
            .bitrate(bitrate)
            .complexity(complexity);
        let t0 = Instant::now();
        let rust = encode_pcm(&pcm.samples, rate, opts).unwrap();
        let t1 = Instant::now();
        let settings = ilink_silk::reference::EncoderSettings::default()
            .api_rate(rate)
            .max_internal_rate(rate)
            .bitrate(bitrate)
            .complexity(complexity);
        let c = ilink_silk::reference::encode(&pcm.samples, settings).unwrap();
        let t2 = Instant::now();
        t_rust += (t1 - t0).as_secs_f64();
        t_c += (t2 - t1).as_secs_f64();
        let dur = pcm.samples.len() as f64 / f64::from(rate);
        secs += dur;
        let out = DecodeOptions::default().sample_rate(16_000);
        let dr = decode_silk(&rust.silk, out).unwrap();
        let dc = decode_silk(&c, out).unwrap();
        write16(&dir.join(format!("ref_{stem}.wav")), &orig.samples);
        write16(&dir.join(format!("rust_{stem}.wav")), &dr.samples);
        write16(&dir.join(format!("c_{stem}.wav")), &dc.samples);
        println!(
            "{stem}: rust {:.1} kbit/s, c {:.1} kbit/s",
            rust.silk.len() as f64 * 8.0 / dur / 1000.0,
            c.len() as f64 * 8.0 / dur / 1000.0
        );
    }
    println!(
        "encode speed: rust {:.1}x real time, c {:.1}x",
        secs / t_rust,
        secs / t_c
    );
}
