//! The Rust decoder against the SILK SDK's C decoder (the `c-reference` feature): the same
//! PCM, sample for sample, on a corpus made by the C encoder at every internal rate, bitrates
//! from the lowest to the highest, every complexity, 1 to 5 frames per packet, in-band FEC and
//! DTX; on the committed streams of silk-python, silk-wasm and ilink; with packets marked lost
//! (concealment and comfort noise); across internal rate switches; and at every output rate
//! the reference accepts.
//!
//! Needs the C SDK: `cargo test -p ilink-silk --features c-reference`. Without it,
//! `tests/golden.rs` checks the Rust decoder against digests of the C decoder's output.
#![cfg(feature = "c-reference")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Golden, flac24k, fnv1a, golden, packets, read, speech_like, stream, with_losses};
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

/// ilink's own encoder (Rust): every stream it makes, at every internal rate it uses (it
/// encodes 8, 12, 16 and 24 kHz input at that rate), bitrates from the lowest to the highest
/// and every complexity, decodes without error with both decoders, to the same samples and to
/// the length its metadata says.
#[test]
fn rust_encoder_streams_decode_identically_with_both_decoders() {
    let source = source();
    let mut seen = std::collections::BTreeSet::new();
    for rate in [8_000u32, 12_000, 16_000, 24_000] {
        let pcm = if rate == 24_000 {
            source.clone()
        } else {
            let wav = ilink_silk::Pcm {
                samples: source.clone(),
                sample_rate: 24_000,
            }
            .to_wav()
            .unwrap();
            ilink_silk::decode_audio(&wav, DecodeOptions::default().sample_rate(rate))
                .unwrap()
                .samples
        };
        for bitrate in [
            ilink_silk::MIN_BITRATE,
            12_000,
            24_000,
            60_000,
            ilink_silk::MAX_BITRATE,
        ] {
            for complexity in 0..=2 {
                let options = ilink_silk::EncodeOptions::default()
                    .bitrate(bitrate)
                    .complexity(complexity);
                let voice = ilink_silk::encode_pcm(&pcm, rate, options).unwrap();
                seen.extend(packets(&voice.silk).iter().map(|p| internal_khz(p)));
                let what = format!(
                    "ilink encoder, {rate} Hz in, {bitrate} bit/s, complexity {complexity}"
                );
                for out in [24_000, rate] {
                    let c = reference::decode(&voice.silk, out).unwrap();
                    assert_eq!(
                        c.len() as u64,
                        voice.meta.playtime_ms * u64::from(out) / 1000,
                        "{what}: length at {out} Hz"
                    );
                    assert_same(&voice.silk, out, &what);
                }
                assert_same(
                    &with_losses(&voice.silk, 6),
                    24_000,
                    &format!("{what}, losses"),
                );
            }
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [8, 12, 16, 24],
        "internal rates the Rust encoder used"
    );
}

/// A stream of the golden corpus: its path under `tests/data`, its bytes, the output rates and
/// loss patterns (0: none) it is decoded with.
struct GoldenStream {
    path: String,
    silk: Vec<u8>,
    rates: Vec<u32>,
    losses: Vec<usize>,
}

/// The golden corpus, made with the C encoder (deterministic) and the committed streams.
fn golden_streams() -> Vec<GoldenStream> {
    let pcm = source();
    let mut out = Vec::new();
    let mut add = |path: String, silk: Vec<u8>, rates: &[u32], losses: &[usize]| {
        out.push(GoldenStream {
            path,
            silk,
            rates: rates.to_vec(),
            losses: losses.to_vec(),
        });
    };
    for (i, internal) in [8_000, 12_000, 16_000, 24_000].into_iter().enumerate() {
        for (bitrate, complexity) in [(5_000, 0), (12_000, 1), (25_000, 2), (60_000, 1)] {
            let settings = EncoderSettings::default()
                .max_internal_rate(internal)
                .bitrate(bitrate)
                .complexity(complexity);
            let silk = reference::encode(&pcm, settings).unwrap();
            // Every output rate for complexity 2, 24 kHz and one other for the rest.
            let rates: Vec<u32> = if complexity == 2 {
                RATES.to_vec()
            } else {
                vec![
                    24_000,
                    RATES[(i * 3 + usize::from(complexity)) % RATES.len()],
                ]
            };
            add(
                format!(
                    "golden/c_{}k_{bitrate}bps_c{complexity}.silk",
                    internal / 1000
                ),
                silk,
                &rates,
                &[0, 7],
            );
        }
    }
    for internal in [8_000, 24_000] {
        for packet_ms in [60, 100] {
            let settings = EncoderSettings::default()
                .max_internal_rate(internal)
                .packet_ms(packet_ms)
                .bitrate(20_000);
            let silk = reference::encode(&pcm, settings).unwrap();
            add(
                format!("golden/c_{}k_{packet_ms}ms.silk", internal / 1000),
                silk,
                &[12_000, 24_000, 48_000],
                &[0, 4],
            );
        }
    }
    for internal in [16_000, 24_000] {
        let fec = EncoderSettings::default()
            .max_internal_rate(internal)
            .bitrate(30_000)
            .fec(true, 20);
        let silk = reference::encode(&pcm, fec).unwrap();
        add(
            format!("golden/c_{}k_fec.silk", internal / 1000),
            silk,
            &[16_000, 24_000],
            &[0, 3],
        );
        let dtx = EncoderSettings::default()
            .max_internal_rate(internal)
            .dtx(true);
        let silk = reference::encode(&pcm, dtx).unwrap();
        add(
            format!("golden/c_{}k_dtx.silk", internal / 1000),
            silk,
            &[8_000, 24_000, 44_100],
            &[0],
        );
    }
    let mut spliced = Vec::new();
    for internal in [24_000, 8_000, 16_000, 12_000, 24_000] {
        let silk = reference::encode(&pcm, EncoderSettings::default().max_internal_rate(internal))
            .unwrap();
        spliced.extend(packets(&silk).into_iter().take(25));
    }
    add(
        "golden/c_rate_switches.silk".into(),
        stream(&spliced),
        &RATES,
        &[0, 9],
    );
    add(
        "golden/all_lost.silk".into(),
        stream(&vec![Vec::new(); 30]),
        &RATES,
        &[0],
    );
    for name in [
        "ilink_tencent_24k.silk",
        "pysilk_tencent_24k.silk",
        "silkwasm_tencent_24k.silk",
        "pysilk_standard_16k.silk",
    ] {
        add(name.into(), read(name), &RATES, &[0, 5]);
    }
    out
}

/// Every committed golden digest is what the C decoder gives now.
#[test]
fn golden_digests_are_the_c_decoders() {
    let lines = golden();
    assert!(!lines.is_empty());
    for g in lines {
        let pcm = reference::decode(&g.bytes(), g.rate).unwrap();
        assert_eq!(
            (pcm.len(), fnv1a(&pcm)),
            (g.samples, g.fnv),
            "{} at {} Hz, losses {}",
            g.stream,
            g.rate,
            g.losses
        );
    }
}

/// Writes `tests/data/golden/` (run by hand after changing the corpus:
/// `cargo test -p ilink-silk --features c-reference --test bitexact write_golden -- --ignored`).
#[test]
#[ignore = "writes tests/data/golden"]
fn write_golden() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    std::fs::create_dir_all(data.join("golden")).unwrap();
    let mut text = String::from(
        "# The C reference decoder's output on the golden corpus (tests/golden.rs):\n\
         # stream (under tests/data)\toutput rate\tlosses (0 or every n-th packet)\tsamples\tFNV-1a-64\n",
    );
    for g in golden_streams() {
        if g.path.starts_with("golden/") {
            std::fs::write(data.join(&g.path), &g.silk).unwrap();
        }
        for &losses in &g.losses {
            let silk = if losses == 0 {
                g.silk.clone()
            } else {
                with_losses(&g.silk, losses)
            };
            for &rate in &g.rates {
                let pcm = reference::decode(&silk, rate).unwrap();
                let line = Golden {
                    stream: g.path.clone(),
                    rate,
                    losses,
                    samples: pcm.len(),
                    fnv: fnv1a(&pcm),
                };
                text.push_str(&line.line());
                text.push('\n');
            }
        }
    }
    std::fs::write(data.join(common::GOLDEN_DIGESTS), text).unwrap();
}
