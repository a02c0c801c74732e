//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use ilink_silk::{DecodeOptions, decode_audio_file};

/// Path of a committed test file.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Bytes of a committed test file.
pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap()
}

/// 24 kHz 16-bit mono samples of a committed FLAC file (lossless: symphonia decodes the
/// 16-bit samples exactly and no resampling happens at 24 kHz).
pub fn flac24k(name: &str) -> Vec<i16> {
    let pcm = decode_audio_file(data(name), DecodeOptions::default()).unwrap();
    assert_eq!(pcm.sample_rate, 24_000);
    pcm.samples
}

/// FNV-1a 64 of the samples as little-endian bytes.
pub fn fnv1a(samples: &[i16]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for s in samples {
        for b in s.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Pearson correlation and SNR (dB) of `x` against `reference`, over their overlap when `x`
/// is shifted by `lag` samples (`x[i] ~ reference[i + lag]`).
pub fn compare_at(reference: &[i16], x: &[i16], lag: isize) -> (f64, f64) {
    let (r, x) = if lag >= 0 {
        (&reference[lag as usize..], x)
    } else {
        (reference, &x[lag.unsigned_abs()..])
    };
    let n = r.len().min(x.len());
    let (r, x) = (&r[..n], &x[..n]);
    assert!(n > 0, "no overlap");
    let nf = n as f64;
    let mr = r.iter().map(|&v| f64::from(v)).sum::<f64>() / nf;
    let mx = x.iter().map(|&v| f64::from(v)).sum::<f64>() / nf;
    let (mut srx, mut srr, mut sxx, mut err, mut sig) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (&a, &b) in r.iter().zip(x) {
        let (a, b) = (f64::from(a), f64::from(b));
        srx += (a - mr) * (b - mx);
        srr += (a - mr) * (a - mr);
        sxx += (b - mx) * (b - mx);
        err += (a - b) * (a - b);
        sig += a * a;
    }
    let corr = srx / (srr.sqrt() * sxx.sqrt());
    let snr = if err == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (sig / err).log10()
    };
    (corr, snr)
}

/// The lag in `lags` with the highest correlation, and that correlation and SNR.
pub fn best_alignment(
    reference: &[i16],
    x: &[i16],
    lags: std::ops::RangeInclusive<isize>,
) -> (isize, f64, f64) {
    let mut best = (0, f64::MIN, f64::MIN);
    for lag in lags {
        let (corr, snr) = compare_at(reference, x, lag);
        if corr > best.1 {
            best = (lag, corr, snr);
        }
    }
    best
}

/// A speech-like test signal: a harmonic series (up to about 2.5 kHz) with a gliding pitch and
/// a syllable envelope, at `rate` Hz for `secs` seconds. It is a continuous function of time,
/// so the same signal at two rates can be compared after resampling.
pub fn speech_like(rate: u32, secs: f64) -> Vec<i16> {
    let n = (f64::from(rate) * secs) as usize;
    let tau = 2.0 * std::f64::consts::PI;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            // Phase of a pitch gliding as 150 + 30 sin(2 pi 0.7 t) Hz, integrated.
            let phase = tau * 150.0 * t + 30.0 / 0.7 * (1.0 - (tau * 0.7 * t).cos());
            let harmonics = [
                (1.0, 1.0),
                (2.0, 0.6),
                (3.0, 0.5),
                (5.0, 0.3),
                (8.0, 0.15),
                (13.0, 0.08),
            ];
            let voiced: f64 = harmonics.iter().map(|(k, a)| a * (k * phase).sin()).sum();
            let envelope = 0.55 - 0.45 * (tau * 3.0 * t).cos();
            (voiced * envelope * 6000.0) as i16
        })
        .collect()
}

/// Packet payloads of a Tencent stream.
pub fn packets(silk: &[u8]) -> Vec<Vec<u8>> {
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

/// A Tencent stream of these packet payloads.
pub fn stream(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"\x02#!SILK_V3".to_vec();
    for p in packets {
        out.extend_from_slice(&(p.len() as u16).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// The stream with some packets marked lost: every `every`-th, and a burst of three.
pub fn with_losses(silk: &[u8], every: usize) -> Vec<u8> {
    let mut p = packets(silk);
    let n = p.len();
    for (i, packet) in p.iter_mut().enumerate() {
        if i % every == every - 1 || (n > 12 && (n / 2..n / 2 + 3).contains(&i)) {
            packet.clear();
        }
    }
    stream(&p)
}

/// The golden digests of the C reference decoder (`tests/data/golden/digests.tsv`): one line
/// per decoding, `stream \t output rate \t loss pattern \t samples \t FNV-1a-64`, the stream a
/// path under `tests/data`, the loss pattern 0 (none) or the `every` of [`with_losses`].
pub const GOLDEN_DIGESTS: &str = "golden/digests.tsv";

/// One line of [`GOLDEN_DIGESTS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Golden {
    pub stream: String,
    pub rate: u32,
    pub losses: usize,
    pub samples: usize,
    pub fnv: u64,
}

impl Golden {
    /// The stream bytes this line decodes (losses applied).
    pub fn bytes(&self) -> Vec<u8> {
        let silk = read(&self.stream);
        if self.losses == 0 {
            silk
        } else {
            with_losses(&silk, self.losses)
        }
    }

    /// The line as written in the file.
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{:016x}",
            self.stream, self.rate, self.losses, self.samples, self.fnv
        )
    }
}

/// The committed golden digests.
pub fn golden() -> Vec<Golden> {
    let text = String::from_utf8(read(GOLDEN_DIGESTS)).unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "bad golden line {l:?}");
            Golden {
                stream: f[0].to_owned(),
                rate: f[1].parse().unwrap(),
                losses: f[2].parse().unwrap(),
                samples: f[3].parse().unwrap(),
                fnv: u64::from_str_radix(f[4], 16).unwrap(),
            }
        })
        .collect()
}
