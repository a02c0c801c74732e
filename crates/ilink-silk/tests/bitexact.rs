//! The Rust decoder against the SILK SDK's C decoder (the `c-reference` feature): the same
//! PCM, sample for sample, on a corpus made by the C encoder at every internal rate, bitrates
//! from the lowest to the highest, every complexity, 1 to 5 frames per packet, in-band FEC and
//! DTX; on the committed streams of silk-python, silk-wasm and ilink; with packets marked lost
//! (concealment and comfort noise); across internal rate switches; and at every output rate
//! the reference accepts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{flac24k, read, speech_like};
use ilink_silk::reference::{self, EncoderSettings};
use ilink_silk::{DecodeOptions, SilkError, decode_silk};
use proptest::prelude::*;

/// The output rates of the reference decoder.
const RATES: [u32; 7] = [8_000, 12_000, 16_000, 24_000, 32_000, 44_100, 48_000];

/// Speech with pauses: the recording, silence, a speech-like signal, silence (DTX and comfort
/// noise need the pauses), about 3 s at 24 kHz.
fn source() -> Vec<i16> {
    let mut pcm = flac24k("speech24k.flac");
    pcm.extend(std::iter::repeat_n(0i16, 7_200));
    pcm.extend(speech_like(24_000, 1.0));
    pcm.extend((0..4_800).map(|i| ((i * 7919) % 61) as i16 - 30));
    pcm
}

/// Both decoders at `rate`: equal PCM, or the same error.
fn assert_same(silk: &[u8], rate: u32, what: &str) {
    let rust = decode_silk(silk, DecodeOptions::default().sample_rate(rate));
    let c = reference::decode(silk, rate);
    match (rust, c) {
        (Ok(r), Ok(c)) => {
            let first = r.samples.iter().zip(&c).position(|(a, b)| a != b);
            assert_eq!(
                (r.samples.len(), first),
                (c.len(), None),
                "{what} at {rate} Hz: first differing sample"
            );
        }
        (Err(r), Err(c)) => assert_eq!(r.to_string(), c.to_string(), "{what} at {rate} Hz"),
        (r, c) => panic!(
            "{what} at {rate} Hz: Rust {:?} vs C {:?}",
            r.map(|p| p.samples.len()),
            c.map(|p| p.len())
        ),
    }
}

/// Packet payloads of a Tencent stream.
fn packets(silk: &[u8]) -> Vec<Vec<u8>> {
    let mut at = if silk[0] == 2 { 10 } else { 9 };
    let mut out = Vec::new();
    while at + 2 <= silk.len() {
        let len = i16::from_le_bytes([silk[at], silk[at + 1]]);
        if len < 0 {
            break;
        }
        let len = len as usize;
        out.push(silk[at + 2..at + 2 + len].to_vec());
        at += 2 + len;
    }
    out
}

fn stream(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"\x02#!SILK_V3".to_vec();
    for p in packets {
        out.extend_from_slice(&(p.len() as u16).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// The stream with some packets marked lost: every `every`-th, and a burst of three.
fn with_losses(silk: &[u8], every: usize) -> Vec<u8> {
    let mut p = packets(silk);
    let n = p.len();
    for (i, packet) in p.iter_mut().enumerate() {
        if i % every == every - 1 || (n > 12 && (n / 2..n / 2 + 3).contains(&i)) {
            packet.clear();
        }
    }
    stream(&p)
}

/// The internal rate (kHz) a packet is coded at: its first range-coded symbol, read directly
/// (the range decoder starts with the first 4 bytes and a 16-bit range of 0xFFFF).
fn internal_khz(packet: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    for (d, s) in b.iter_mut().zip(packet) {
        *d = *s;
    }
    let base = u32::from_be_bytes(b);
    let steps = [16_000u32, 32_000, 48_000]
        .iter()
        .filter(|&&c| 0xFFFF * c <= base)
        .count();
    [8, 12, 16, 24][steps]
}

#[test]
fn committed_streams_match_at_every_rate() {
    for name in [
        "ilink_tencent_24k.silk",
        "pysilk_tencent_24k.silk",
        "silkwasm_tencent_24k.silk",
        "pysilk_standard_16k.silk",
    ] {
        let silk = read(name);
        for rate in RATES {
            assert_same(&silk, rate, name);
            assert_same(&with_losses(&silk, 5), rate, &format!("{name} with losses"));
        }
    }
}

#[test]
fn every_internal_rate_bitrate_and_complexity_matches() {
    let pcm = source();
    let mut streams = 0;
    let mut seen = std::collections::BTreeSet::new();
    for internal in [8_000, 12_000, 16_000, 24_000] {
        for bitrate in [5_000, 12_000, 25_000, 60_000, 100_000] {
            for complexity in 0..=2 {
                let settings = EncoderSettings::default()
                    .max_internal_rate(internal)
                    .bitrate(bitrate)
                    .complexity(complexity);
                let silk = reference::encode(&pcm, settings).unwrap();
                seen.extend(packets(&silk).iter().map(|p| internal_khz(p)));
                let what =
                    format!("{internal} Hz internal, {bitrate} bit/s, complexity {complexity}");
                // Every output rate for one complexity, 24 kHz for the others (the rate
                // conversion does not depend on the encoder's complexity).
                let rates: &[u32] = if complexity == 2 { &RATES } else { &[24_000] };
                for &rate in rates {
                    assert_same(&silk, rate, &what);
                }
                assert_same(&with_losses(&silk, 7), 24_000, &format!("{what}, losses"));
                streams += 1;
            }
        }
    }
    assert_eq!(streams, 60);
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [8, 12, 16, 24],
        "internal rates covered"
    );
}

#[test]
fn multi_frame_packets_fec_and_dtx_match() {
    let pcm = source();
    for internal in [8_000, 16_000, 24_000] {
        for packet_ms in [40, 60, 100] {
            let settings = EncoderSettings::default()
                .max_internal_rate(internal)
                .packet_ms(packet_ms)
                .bitrate(20_000);
            let silk = reference::encode(&pcm, settings).unwrap();
            let what = format!("{internal} Hz, {packet_ms} ms packets");
            assert!(packets(&silk).iter().all(|p| !p.is_empty()), "{what}");
            for rate in [12_000, 24_000, 48_000] {
                assert_same(&silk, rate, &what);
                assert_same(&with_losses(&silk, 4), rate, &format!("{what}, losses"));
            }
        }
        let fec = EncoderSettings::default()
            .max_internal_rate(internal)
            .bitrate(30_000)
            .fec(true, 20);
        let silk = reference::encode(&pcm, fec).unwrap();
        for rate in [16_000, 24_000] {
            assert_same(&silk, rate, &format!("{internal} Hz with FEC"));
            assert_same(
                &with_losses(&silk, 3),
                rate,
                &format!("{internal} Hz FEC, losses"),
            );
        }
        let dtx = EncoderSettings::default()
            .max_internal_rate(internal)
            .dtx(true);
        let silk = reference::encode(&pcm, dtx).unwrap();
        for rate in [8_000, 24_000, 44_100] {
            assert_same(&silk, rate, &format!("{internal} Hz with DTX"));
        }
    }
}

#[test]
fn dtx_streams_have_lost_packets_and_match() {
    let silk = reference::encode(&source(), EncoderSettings::default().dtx(true)).unwrap();
    let empty = packets(&silk).iter().filter(|p| p.is_empty()).count();
    assert!(empty > 10, "DTX left {empty} empty packets");
    assert_same(&silk, 24_000, "DTX");
}

#[test]
fn internal_rate_switches_match() {
    let pcm = source();
    let mut spliced = Vec::new();
    for internal in [24_000, 8_000, 16_000, 12_000, 24_000] {
        let silk = reference::encode(&pcm, EncoderSettings::default().max_internal_rate(internal))
            .unwrap();
        spliced.extend(packets(&silk).into_iter().take(40));
    }
    let silk = stream(&spliced);
    for rate in RATES {
        assert_same(&silk, rate, "spliced internal rates");
        assert_same(
            &with_losses(&silk, 9),
            rate,
            "spliced internal rates with losses",
        );
    }
}

#[test]
fn only_lost_packets_match() {
    let silk = stream(&vec![Vec::new(); 30]);
    for rate in RATES {
        assert_same(&silk, rate, "all lost");
    }
}

#[test]
fn corrupt_packets_give_the_same_error() {
    let silk = read("ilink_tencent_24k.silk");
    let mut p = packets(&silk);
    p[20] = vec![0xFF; 40];
    let bad = stream(&p);
    let err = decode_silk(&bad, DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(err, SilkError::CorruptPacket { packet: 20, .. }),
        "{err}"
    );
    assert_same(&bad, 24_000, "corrupt packet 20");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Damaged packets (bytes flipped, cut short, or swapped between streams): the same PCM
    /// or the same error.
    #[test]
    fn damaged_streams_match(
        flips in proptest::collection::vec((0usize..80, 0usize..200, any::<u8>()), 1..6),
        cut in proptest::option::of((0usize..80, 0usize..60)),
        rate in proptest::sample::select(RATES.to_vec()),
    ) {
        let mut p = packets(&read("pysilk_standard_16k.silk"));
        p.extend(packets(&read("ilink_tencent_24k.silk")));
        let n = p.len();
        for (packet, byte, value) in flips {
            let packet = &mut p[packet % n];
            if !packet.is_empty() {
                let i = byte % packet.len();
                packet[i] ^= value;
            }
        }
        if let Some((packet, len)) = cut {
            p[packet % n].truncate(len);
        }
        assert_same(&stream(&p), rate, "damaged");
    }

    /// Any bytes as one packet, after a good stream (the decoder's state is warm).
    #[test]
    fn garbage_packets_match(garbage in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut p = packets(&read("ilink_tencent_24k.silk"));
        p.truncate(10);
        p.push(garbage);
        assert_same(&stream(&p), 24_000, "garbage");
    }

    /// Packets at the SDK's 1024-byte limit, then short ones: the reference reads up to 4
    /// bytes past a packet from its internal buffer (stale bytes of longer packets, and past
    /// its end the decoder state that follows it); so must we.
    #[test]
    fn long_then_short_packets_match(
        filler in proptest::collection::vec(any::<u8>(), 1024),
        len in 1015usize..=1024,
        cut in 1usize..60,
    ) {
        let mut p = packets(&read("ilink_tencent_24k.silk"));
        p.truncate(6);
        // A real frame, then junk up to `len` bytes (the decoder stops after the frame).
        let mut long = p[4].clone();
        long.extend_from_slice(&filler[long.len()..len]);
        p.push(long);
        let mut short = p[5].clone();
        short.truncate(cut);
        p.push(short);
        assert_same(&stream(&p), 24_000, "long then short");
    }
}

/// Writes the seeds of the `silk_decode_diff` fuzz target (run by hand:
/// `cargo test -p ilink-silk --test bitexact write_fuzz_seeds -- --ignored`).
#[test]
#[ignore = "writes fuzz/corpus/silk_decode_diff"]
fn write_fuzz_seeds() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/silk_decode_diff");
    std::fs::create_dir_all(&dir).unwrap();
    let short: Vec<i16> = source().into_iter().take(24_000).collect();
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, internal) in [8_000, 12_000, 16_000, 24_000].into_iter().enumerate() {
        let silk = reference::encode(
            &short,
            EncoderSettings::default()
                .max_internal_rate(internal)
                .bitrate(30_000),
        )
        .unwrap();
        seeds.push((
            format!("internal-{internal}"),
            [&[i as u8][..], &silk].concat(),
        ));
        seeds.push((
            format!("internal-{internal}-losses"),
            [&[i as u8 + 3][..], &with_losses(&silk, 4)].concat(),
        ));
    }
    let multi = reference::encode(
        &short,
        EncoderSettings::default().packet_ms(100).bitrate(8_000),
    )
    .unwrap();
    seeds.push((
        "five-frames-per-packet".into(),
        [&[6u8][..], &multi].concat(),
    ));
    let fec = reference::encode(
        &short,
        EncoderSettings::default().fec(true, 20).bitrate(16_000),
    )
    .unwrap();
    seeds.push(("fec".into(), [&[2u8][..], &fec].concat()));
    let dtx = reference::encode(
        &source(),
        EncoderSettings::default().dtx(true).bitrate(8_000),
    )
    .unwrap();
    seeds.push(("dtx".into(), [&[5u8][..], &dtx].concat()));
    seeds.push((
        "pysilk-standard-16k".into(),
        [&[1u8][..], &read("pysilk_standard_16k.silk")].concat(),
    ));
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
