//! Truncated, garbage and hostile input: typed errors, never a panic, a hang or a read outside
//! our buffers. (Run these with the C code under AddressSanitizer, see the crate README.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::read;
use ilink_silk::{
    DecodeOptions, EncodeOptions, SilkError, audio_to_voice, decode_audio, decode_audio_file,
    decode_silk, decode_to_wav, encode_pcm, is_silk, playtime_ms, probe, to_tencent,
};
use proptest::prelude::*;

/// The packets of a valid stream (without its header).
fn body(name: &str) -> Vec<u8> {
    let silk = read(name);
    let header = if silk[0] == 0x02 { 10 } else { 9 };
    silk[header..].to_vec()
}

#[test]
fn every_truncation_of_a_valid_stream_is_typed() {
    let silk = read("ilink_tencent_24k.silk");
    let full = decode_silk(&silk, DecodeOptions::default())
        .unwrap()
        .samples;
    // Packet boundaries: a cut there is a shorter valid stream.
    let mut boundaries = vec![10];
    let mut at = 10;
    while at < silk.len() {
        at += 2 + usize::from(u16::from_le_bytes([silk[at], silk[at + 1]]));
        boundaries.push(at);
    }
    for cut in 0..silk.len() {
        let result = decode_silk(&silk[..cut], DecodeOptions::default());
        match result {
            Ok(pcm) => {
                let packets = boundaries.iter().position(|&b| b == cut).unwrap();
                assert_eq!(pcm.samples.len(), packets * 480, "cut {cut}");
                // A prefix of the stream decodes to a prefix of the audio.
                assert_eq!(pcm.samples[..], full[..pcm.samples.len()], "cut {cut}");
            }
            Err(SilkError::NotSilk) => assert!(cut < 10, "cut {cut}"),
            Err(SilkError::Truncated { offset, .. }) => {
                assert!(!boundaries.contains(&cut) && offset < cut, "cut {cut}");
            }
            Err(other) => panic!("cut {cut}: unexpected {other:?}"),
        }
    }
}

#[test]
fn doubled_prefix_and_other_headers_are_not_silk() {
    for bad in [
        &b"\x02\x02#!SILK_V3\x00\x00"[..],
        b"#!SILK_V2\x00\x00",
        b"#!AMR\n",
        b"RIFF\x00\x00\x00\x00WAVE",
        b"",
        b"\x02",
        b"#!SILK_V",
    ] {
        assert!(!is_silk(bad));
        assert!(matches!(
            decode_silk(bad, DecodeOptions::default()),
            Err(SilkError::NotSilk)
        ));
        assert!(matches!(playtime_ms(bad), Err(SilkError::NotSilk)));
        assert!(matches!(decode_to_wav(bad), Err(SilkError::NotSilk)));
    }
}

#[test]
fn end_marker_and_bytes_after_it() {
    let mut silk = read("pysilk_standard_16k.silk");
    let plain = decode_silk(&silk, DecodeOptions::default()).unwrap();
    silk.extend_from_slice(&[0xff, 0xff]);
    silk.extend_from_slice(b"trailing junk the SDK's decoder also ignores");
    let marked = decode_silk(&silk, DecodeOptions::default()).unwrap();
    assert_eq!(plain, marked);
    assert_eq!(playtime_ms(&silk).unwrap(), 68 * 20);
    assert_eq!(to_tencent(&silk).unwrap()[..10], *b"\x02#!SILK_V3");
}

#[test]
fn tiny_packets_reach_the_decoder_padded() {
    // Packets of 1..=3 bytes make the SDK read 4 bytes; they are staged in a zeroed buffer.
    let mut silk = b"\x02#!SILK_V3".to_vec();
    for len in [1u8, 2, 3, 1, 2, 3] {
        silk.extend_from_slice(&[len, 0]);
        silk.extend(std::iter::repeat_n(0xA5, usize::from(len)));
    }
    for _ in 0..3 {
        // Same input, same result: nothing outside the packet influences the output.
        let a = decode_silk(&silk, DecodeOptions::default());
        let b = decode_silk(&silk, DecodeOptions::default());
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("nondeterministic: {a:?} vs {b:?}"),
        }
    }
}

#[test]
fn rate_switching_stream_at_every_output_rate() {
    // A 16 kHz-internal stream followed by a 24 kHz-internal one: the SDK switches its internal
    // rate mid-stream, which overflows silk-rs's buffers at 8/12/16 kHz output.
    let mut silk = b"#!SILK_V3".to_vec();
    silk.extend(body("pysilk_standard_16k.silk"));
    silk.extend(body("ilink_tencent_24k.silk"));
    let native = decode_silk(&silk, DecodeOptions::default()).unwrap();
    assert_eq!(native.samples.len(), (68 + 69) * 480);
    for rate in [8_000, 12_000, 16_000, 44_100] {
        let pcm = decode_silk(&silk, DecodeOptions::default().sample_rate(rate)).unwrap();
        assert_eq!(pcm.sample_rate, rate);
        let expected = (native.samples.len() as u64 * u64::from(rate)).div_ceil(24_000);
        assert_eq!(pcm.samples.len() as u64, expected, "{rate} Hz");
    }
}

#[test]
fn rates_that_crash_silk_rs_are_rejected() {
    let silk = read("ilink_tencent_24k.silk");
    for rate in [0, 1, 100, 3_999, 384_001, u32::MAX, i32::MAX as u32 + 1] {
        assert!(matches!(
            decode_silk(&silk, DecodeOptions::default().sample_rate(rate)),
            Err(SilkError::BadSampleRate { .. })
        ));
        assert!(matches!(
            encode_pcm(&[0; 480], rate, EncodeOptions::default()),
            Err(SilkError::BadSampleRate { .. })
        ));
    }
}

#[test]
fn endless_lost_packets_hit_the_cap() {
    // 2 bytes of input per 20 ms of concealed output: a small file claiming hours.
    let mut silk = b"\x02#!SILK_V3".to_vec();
    silk.resize(10 + 2 * 40_000, 0); // 40 000 empty packets = 800 s
    assert!(matches!(
        decode_silk(&silk, DecodeOptions::default()),
        Err(SilkError::TooLong { max }) if max == Duration::from_secs(600)
    ));
    let one_minute = DecodeOptions::default().max_duration(Duration::from_secs(60));
    assert!(matches!(
        decode_silk(&silk, one_minute),
        Err(SilkError::TooLong { .. })
    ));
    assert!(matches!(
        audio_to_voice(&silk, EncodeOptions::default()),
        Err(SilkError::TooLong { .. })
    ));
}

#[test]
fn oversized_and_negative_lengths() {
    for len in [1025u16, 0x7fff, 0x8000, 0xfffe] {
        let mut silk = b"#!SILK_V3".to_vec();
        silk.extend_from_slice(&len.to_le_bytes());
        silk.extend(std::iter::repeat_n(0u8, 2000));
        assert!(matches!(
            decode_silk(&silk, DecodeOptions::default()),
            Err(SilkError::BadPacketLength { .. })
        ));
        assert!(probe(&silk).is_err());
    }
}

#[test]
fn errors_say_what_failed() {
    let err = decode_silk(b"\x02#!SILK_V3\x10\x00abc", DecodeOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("truncated") && text.contains("packet 0"),
        "{text}"
    );
    let err = decode_silk(b"nope", DecodeOptions::default()).unwrap_err();
    assert!(err.to_string().contains("#!SILK_V3"));
}

fn valid_stream() -> impl Strategy<Value = Vec<u8>> {
    Just(read("ilink_tencent_24k.silk"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_silk(&bytes, DecodeOptions::default());
        let _ = playtime_ms(&bytes);
        let _ = is_silk(&bytes);
    }

    #[test]
    fn arbitrary_packets_after_a_header_never_panic(
        tencent in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        rate in prop_oneof![Just(24_000u32), Just(8_000), Just(44_100)],
    ) {
        let mut silk = if tencent { b"\x02#!SILK_V3".to_vec() } else { b"#!SILK_V3".to_vec() };
        silk.extend(body);
        match decode_silk(&silk, DecodeOptions::default().sample_rate(rate)) {
            Ok(pcm) => prop_assert_eq!(pcm.sample_rate, rate),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn well_framed_random_payloads_decode_or_fail_cleanly(
        packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..40),
    ) {
        let mut silk = b"\x02#!SILK_V3".to_vec();
        for p in &packets {
            silk.extend_from_slice(&(p.len() as u16).to_le_bytes());
            silk.extend_from_slice(p);
        }
        prop_assert_eq!(playtime_ms(&silk).unwrap(), packets.len() as u64 * 20);
        match decode_silk(&silk, DecodeOptions::default()) {
            // At least one 20 ms frame per packet, at most five.
            Ok(pcm) => prop_assert!(
                (packets.len() * 480..=packets.len() * 2400).contains(&pcm.samples.len())
            ),
            Err(SilkError::CorruptPacket { packet, .. }) => prop_assert!(packet < packets.len()),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn mutated_valid_stream_never_panics(
        silk in valid_stream(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
    ) {
        let mut silk = silk;
        for (at, byte) in flips {
            let i = at.index(silk.len());
            silk[i] ^= byte;
        }
        let _ = decode_silk(&silk, DecodeOptions::default());
        let _ = audio_to_voice(&silk, EncodeOptions::default());
    }

    #[test]
    fn arbitrary_audio_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = audio_to_voice(&bytes, EncodeOptions::default());
    }
}

#[test]
fn an_empty_audio_input_is_no_audio() {
    assert!(matches!(
        decode_audio(&[], DecodeOptions::default()),
        Err(SilkError::Empty)
    ));
    let path = std::env::temp_dir().join(format!("ilink-empty-{}.wav", std::process::id()));
    std::fs::write(&path, b"").unwrap();
    let result = decode_audio_file(&path, DecodeOptions::default());
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(result, Err(SilkError::Empty)), "{result:?}");
}
