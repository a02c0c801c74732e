//! Every supported audio format decodes and becomes a voice message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Cursor;
use std::time::Duration;

use common::{best_alignment, data, flac24k, read, speech_like};
use ilink_silk::{
    DecodeOptions, EncodeOptions, SilkError, audio_file_to_voice, audio_to_voice, decode_audio,
    decode_silk, encode_wav, playtime_ms,
};

/// Source length: 32 959 samples at 24 kHz = 1373 ms.
const SOURCE_MS: i64 = 1373;

/// Decodes a committed file, checks its length and its likeness to the source speech.
fn check_file(name: &str, lag: isize, min_corr: f64, max_extra_ms: i64) {
    let source = flac24k("speech24k.flac");
    let pcm = decode_audio(&read(name), DecodeOptions::default()).unwrap();
    assert_eq!(pcm.sample_rate, 24_000);
    let ms = pcm.samples.len() as i64 * 1000 / 24_000;
    assert!(
        (SOURCE_MS - 5..=SOURCE_MS + max_extra_ms).contains(&ms),
        "{name}: {ms} ms"
    );
    let (lag, corr, _) = best_alignment(&source, &pcm.samples, lag - 20..=lag + 20);
    println!("{name}: {ms} ms, lag {lag}, correlation {corr:.4}");
    assert!(corr > min_corr, "{name}: correlation {corr} at lag {lag}");

    // The same file as a voice message, from memory and from disk.
    let voice = audio_to_voice(&read(name), EncodeOptions::default()).unwrap();
    assert!(voice.silk.starts_with(b"\x02#!SILK_V3"));
    assert_eq!(voice.meta.playtime_ms, (ms as u64).div_ceil(20) * 20);
    let from_file = audio_file_to_voice(data(name), EncodeOptions::default()).unwrap();
    assert_eq!(from_file, voice);
    assert_eq!(playtime_ms(&voice.silk).unwrap(), voice.meta.playtime_ms);
}

// Correlations with the source, as measured: MP3 0.9825, Ogg Vorbis 0.9878, FLAC 1 (lossless),
// AAC in MP4 0.9366, ADTS AAC at 16 kHz 0.9310. Lags are each codec's delay as decoded (the MP3
// decoder does not trim LAME's encoder delay, so MP3 starts 69 ms late).

#[test]
fn mp3_44k_stereo() {
    check_file("speech_44k_stereo.mp3", -1658, 0.97, 150);
}

#[test]
fn ogg_vorbis_22k_mono() {
    check_file("speech_22k_mono.ogg", 0, 0.97, 10);
}

#[test]
fn flac_24k_mono() {
    check_file("speech24k.flac", 0, 0.99999, 1);
}

#[test]
fn m4a_aac_48k_stereo() {
    check_file("speech_48k_stereo.m4a", -512, 0.9, 60);
}

#[test]
fn adts_aac_16k_mono() {
    check_file("speech_16k_mono.aac", -1536, 0.9, 150);
}

fn wav(
    spec: hound::WavSpec,
    write: impl FnOnce(&mut hound::WavWriter<Cursor<&mut Vec<u8>>>),
) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = hound::WavWriter::new(Cursor::new(&mut bytes), spec).unwrap();
    write(&mut writer);
    writer.finalize().unwrap();
    bytes
}

fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

/// WAV files of many shapes carrying the same signal all decode to (nearly) that signal at
/// 24 kHz, through symphonia (`decode_audio`) and through hound (`encode_wav`) alike.
#[test]
fn wav_any_rate_channels_and_sample_format() {
    let secs = 0.5;
    let reference = speech_like(24_000, secs);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("16-bit stereo 44.1 kHz", {
            let s = speech_like(44_100, secs);
            wav(spec(2, 44_100, 16, false), |w| {
                for &v in &s {
                    w.write_sample(v).unwrap();
                    w.write_sample(v / 2).unwrap();
                }
            })
        }),
        ("8-bit mono 11.025 kHz", {
            let s = speech_like(11_025, secs);
            wav(spec(1, 11_025, 8, false), |w| {
                for &v in &s {
                    w.write_sample((v >> 8) as i8).unwrap();
                }
            })
        }),
        ("24-bit stereo 48 kHz", {
            let s = speech_like(48_000, secs);
            wav(spec(2, 48_000, 24, false), |w| {
                for &v in &s {
                    w.write_sample(i32::from(v) << 8).unwrap();
                    w.write_sample(i32::from(v) << 8).unwrap();
                }
            })
        }),
        ("float 6 channels 32 kHz", {
            let s = speech_like(32_000, secs);
            wav(spec(6, 32_000, 32, true), |w| {
                for &v in &s {
                    for _ in 0..6 {
                        w.write_sample(f32::from(v) / 32768.0).unwrap();
                    }
                }
            })
        }),
        ("16-bit mono 8 kHz", {
            let s = speech_like(8_000, secs);
            wav(spec(1, 8_000, 16, false), |w| {
                for &v in &s {
                    w.write_sample(v).unwrap();
                }
            })
        }),
    ];
    for (name, bytes) in cases {
        let pcm = decode_audio(&bytes, DecodeOptions::default()).unwrap();
        // 11.025 kHz * 0.5 s is 5512 whole samples: 11 999 at 24 kHz.
        assert!((11_999..=12_000).contains(&pcm.samples.len()), "{name}");
        // The stereo case's right channel is half as loud: the mono mix is 3/4 of the signal.
        let (lag, corr, _) = best_alignment(&reference, &pcm.samples, -2..=2);
        assert!(corr > 0.999, "{name}: correlation {corr} at lag {lag}");

        let via_hound = encode_wav(&bytes, EncodeOptions::default()).unwrap();
        let via_symphonia = audio_to_voice(&bytes, EncodeOptions::default()).unwrap();
        assert_eq!(via_hound.meta.playtime_ms, 500, "{name}");
        assert_eq!(
            via_hound, via_symphonia,
            "{name}: hound and symphonia disagree"
        );
        let back = decode_silk(&via_hound.silk, DecodeOptions::default()).unwrap();
        assert_eq!(back.samples.len(), 12_000, "{name}");
    }
}

#[test]
fn decoded_audio_at_other_output_rates() {
    let bytes = wav(spec(1, 24_000, 16, false), |w| {
        for v in speech_like(24_000, 0.25) {
            w.write_sample(v).unwrap();
        }
    });
    for rate in [8_000, 16_000, 44_100, 48_000] {
        let pcm = decode_audio(&bytes, DecodeOptions::default().sample_rate(rate)).unwrap();
        assert_eq!(pcm.sample_rate, rate);
        assert_eq!(pcm.samples.len(), rate as usize / 4);
    }
}

#[test]
fn long_audio_is_refused_by_the_cap() {
    let bytes = wav(spec(1, 8_000, 16, false), |w| {
        for v in speech_like(8_000, 1.0) {
            w.write_sample(v).unwrap();
        }
    });
    let short = Duration::from_millis(500);
    assert!(matches!(
        decode_audio(&bytes, DecodeOptions::default().max_duration(short)),
        Err(SilkError::TooLong { .. })
    ));
    assert!(matches!(
        audio_to_voice(&bytes, EncodeOptions::default().max_duration(short)),
        Err(SilkError::TooLong { .. })
    ));
    assert!(matches!(
        encode_wav(&bytes, EncodeOptions::default().max_duration(short)),
        Err(SilkError::TooLong { .. })
    ));
}

#[test]
fn corrupt_audio_files_are_errors() {
    for name in [
        "speech_44k_stereo.mp3",
        "speech_22k_mono.ogg",
        "speech24k.flac",
        "speech_48k_stereo.m4a",
        "speech_16k_mono.aac",
    ] {
        let bytes = read(name);
        // Truncated at many points and with the middle scrambled: an error or some audio,
        // never a panic.
        for cut in [
            0,
            1,
            4,
            12,
            64,
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len() - 1,
        ] {
            let _ = audio_to_voice(&bytes[..cut], EncodeOptions::default());
        }
        let mut scrambled = bytes.clone();
        for (i, b) in scrambled.iter_mut().enumerate().skip(200) {
            *b ^= (i as u8).wrapping_mul(37);
        }
        let _ = audio_to_voice(&scrambled, EncodeOptions::default());
        assert!(audio_to_voice(&bytes[..4], EncodeOptions::default()).is_err());
    }
    assert!(matches!(
        audio_file_to_voice("/nonexistent/voice.mp3", EncodeOptions::default()),
        Err(SilkError::Io(_))
    ));
}

#[test]
fn mp4_with_inflated_sample_table_is_refused_before_symphonia_allocates() {
    // Found by the audio_decode fuzz target: symphonia 0.5 reserves 14 GB for this 2 KB file's
    // `stco` table and aborts the process. ilink-silk checks the tables first.
    let name = "isomp4_14GB_allocation.m4a";
    let bytes = read(name);
    for err in [
        decode_audio(&bytes, DecodeOptions::default()).unwrap_err(),
        audio_to_voice(&bytes, EncodeOptions::default()).unwrap_err(),
        audio_file_to_voice(data(name), EncodeOptions::default()).unwrap_err(),
        ilink_silk::decode_audio_file(data(name), DecodeOptions::default()).unwrap_err(),
    ] {
        assert!(
            matches!(&err, SilkError::MalformedContainer { container: "MP4", problem } if problem.contains("cannot hold")),
            "{err}"
        );
    }
}

#[test]
fn flac_with_inflated_vorbis_comment_is_refused_before_symphonia_allocates() {
    // Fuzz finding F3: this 9.5 KB FLAC's VORBIS_COMMENT block declares 4,294,967,295 comments
    // of up to 4 GiB each; symphonia 0.5 would reserve 4 GiB for the first one.
    let name = "flac_vorbis_comment_4GiB_allocation.flac";
    let bytes = read(name);
    for err in [
        decode_audio(&bytes, DecodeOptions::default()).unwrap_err(),
        audio_to_voice(&bytes, EncodeOptions::default()).unwrap_err(),
        audio_file_to_voice(data(name), EncodeOptions::default()).unwrap_err(),
        ilink_silk::decode_audio_file(data(name), DecodeOptions::default()).unwrap_err(),
    ] {
        match &err {
            SilkError::MalformedContainer {
                container: "FLAC",
                problem,
            } => assert_eq!(
                problem,
                "VORBIS_COMMENT block at byte 42 (46 bytes): 4294967295 comments are declared \
                 but only 25 bytes remain"
            ),
            other => panic!("expected a FLAC refusal, got {other:?}"),
        }
    }
}

/// An ID3v2.3 tag holding one `TIT2` frame whose header declares `size` bytes.
fn id3_tag(size: u32) -> Vec<u8> {
    let mut frame = b"TIT2".to_vec();
    frame.extend_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0]);
    frame.extend_from_slice(b"speech");
    let n = frame.len() as u8;
    let mut tag = b"ID3\x03\x00\x00\x00\x00\x00".to_vec();
    tag.push(n);
    tag.extend(frame);
    tag
}

#[test]
fn mp3_behind_an_id3_tag_decodes_unless_a_frame_outgrows_the_tag() {
    let mp3 = read("speech_44k_stereo.mp3");
    let plain = decode_audio(&mp3, DecodeOptions::default()).unwrap();

    let mut tagged = id3_tag(7);
    tagged.extend_from_slice(&mp3);
    let pcm = decode_audio(&tagged, DecodeOptions::default()).unwrap();
    assert_eq!(pcm.samples.len(), plain.samples.len());

    // symphonia would reserve 4 GiB for this frame before reading it.
    let mut hostile = id3_tag(0xFFFF_FFF0);
    hostile.extend_from_slice(&mp3);
    let err = decode_audio(&hostile, DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(&err, SilkError::MalformedContainer { container: "ID3v2", problem }
            if problem.contains("frame TIT2 declares 4294967280 bytes but only 7 remain")),
        "{err}"
    );
}

#[test]
fn wav_cut_short_or_with_a_streaming_length_still_encodes() {
    let mut bytes = wav(spec(1, 24_000, 16, false), |w| {
        for v in speech_like(24_000, 0.5) {
            w.write_sample(v).unwrap();
        }
    });
    // A recorder that stopped early: the header still promises 0.5 s, the data holds 0.25 s.
    bytes.truncate(44 + 12_000);
    let voice = encode_wav(&bytes, EncodeOptions::default()).unwrap();
    assert_eq!(voice.meta.playtime_ms, 260); // 6000 samples padded to whole 20 ms frames
    let voice = audio_to_voice(&bytes, EncodeOptions::default()).unwrap();
    assert_eq!(voice.meta.playtime_ms, 260);
    // A streaming writer's "unknown" length (even, so hound accepts it).
    bytes[40..44].copy_from_slice(&(u32::MAX - 1).to_le_bytes());
    let voice = encode_wav(&bytes, EncodeOptions::default()).unwrap();
    assert_eq!(voice.meta.playtime_ms, 260);
    let voice = audio_to_voice(&bytes, EncodeOptions::default()).unwrap();
    assert_eq!(voice.meta.playtime_ms, 260);
}
