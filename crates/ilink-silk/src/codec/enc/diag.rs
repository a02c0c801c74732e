//! Tuning diagnostics (ignored tests, need the C reference): which part of the analysis
//! costs quality, found by running the quantiser with the C encoder's decoded parameters.
//!
//! ```text
//! DIAG_LIST=target/xtask/pesq/list.tsv DIAG_OUT=/tmp/diag DIAG_MASKS=0,1,2,4,8 \
//!   cargo test --release -p ilink-silk --features c-reference --lib diag -- --ignored --nocapture
//! ```
//!
//! For each recording of the list (as `cargo xtask pesq` writes it) at 16 kHz and
//! `DIAG_BITRATE` (24 000 unless set): the C encoder's stream is decoded with its parameters;
//! the Rust encoder then runs on the same input (aligned to the C encoder's delay) with the
//! parameters the mask names taken from the C stream instead of its own analysis (1 gains,
//! 2 LPC and interpolation, 4 signal type, pitch and LTP, 8 quantisation offset). Writes
//! 16 kHz WAVs (`NAME.ref`, `.c`, `.ours`, `.mMASK`) to score with PESQ, and prints sizes.
//! (This is how the gains were found to be the main gap: C's gains alone lifted ilink from
//! 3.55 to 3.87.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::super::Decoder;
use super::super::params::FrameParams;
use super::*;
use crate::reference::{self, EncoderSettings};
use crate::{DecodeOptions, decode_audio_file};

fn write16(path: &std::path::Path, samples: &[i16]) {
    let pcm = crate::Pcm {
        samples: samples.to_vec(),
        sample_rate: 16_000,
    };
    std::fs::write(path, pcm.to_wav().unwrap()).unwrap();
}

fn packets(stream: &[u8]) -> Vec<Vec<u8>> {
    let framing = crate::format::parse(stream, 1 << 20, || panic!("too long")).unwrap();
    framing.packets.iter().map(|p| p.to_vec()).collect()
}

/// Decodes at 24 kHz, returning the output and each frame's parameters.
fn decode(packets: &[Vec<u8>]) -> (Vec<i16>, Vec<FrameParams>) {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    let mut params = Vec::new();
    for p in packets {
        dec.decode_call(p, false, 16_000, &mut out).unwrap();
        params.push(dec.last_params.take().unwrap_or_default());
    }
    (out, params)
}

fn diag_bitrate() -> u32 {
    std::env::var("DIAG_BITRATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24_000)
}

fn hp_coefs() -> (&'static [i16; 2], &'static [i16; 3]) {
    (&t::DEC_A_HP_16, &t::DEC_B_HP_16)
}

/// Our quantiser over `pcm` (24 kHz) with `params` transplanted per `mask`.
fn transplant(pcm: &[i16], params: &[FrameParams], mask: u32, delay: usize) -> Vec<i16> {
    let settings = Settings {
        fs_khz: 16,
        bitrate: diag_bitrate(),
        complexity: 2,
    };
    let mut enc = Encoder::new(settings);
    let fl = enc.frame_length;
    let mut shifted = vec![0i16; delay];
    shifted.extend_from_slice(pcm);
    let frames = params.len();
    let hist = 2 * fl;
    let mut sig = vec![0f32; hist + frames * fl + fl];
    let mut hp = HighPass::new(INPUT_HIGHPASS_HZ, 16_000.0);
    for (o, &v) in sig[hist..].iter_mut().zip(&shifted) {
        *o = hp.run(f32::from(v));
    }
    let (a, b) = hp_coefs();
    let mut hp_state = [0i32; 2];
    let mut out = Vec::new();
    let mut bytes = 0;
    for (f, p) in params.iter().enumerate() {
        enc.transplant = Some((p.clone(), mask));
        bytes += enc.encode_frame(&sig, hist + f * fl).len();
        let mut y = enc.last_xq;
        super::super::biquad(&mut y[..fl], b, a, &mut hp_state);
        out.extend_from_slice(&y[..fl]);
    }
    eprintln!(
        "  mask {mask}: {bytes} bytes, rate_offset {:.2}",
        enc.rate_offset
    );
    out
}

fn best_delay(x: &[i16], y: &[i16]) -> usize {
    let mut best = (f64::MIN, 0);
    for d in 0..1200 {
        let mut c = 0f64;
        for (i, &v) in x.iter().enumerate() {
            if let Some(&w) = y.get(i + d) {
                c += f64::from(v) * f64::from(w);
            }
        }
        if c > best.0 {
            best = (c, d);
        }
    }
    best.1
}

#[test]
#[ignore = "a tuning diagnostic; needs DIAG_LIST and DIAG_OUT"]
fn transplant_c_parameters() {
    let (Ok(list), Ok(out)) = (std::env::var("DIAG_LIST"), std::env::var("DIAG_OUT")) else {
        return;
    };
    let masks: Vec<u32> = std::env::var("DIAG_MASKS")
        .unwrap_or_else(|_| "15".into())
        .split(',')
        .map(|m| m.parse().unwrap())
        .collect();
    let out = std::path::PathBuf::from(out);
    std::fs::create_dir_all(&out).unwrap();
    let text = std::fs::read_to_string(list).unwrap();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split('\t');
        let name = fields.next().unwrap();
        let mut pcm = Vec::new();
        for file in fields {
            if !pcm.is_empty() {
                pcm.extend(std::iter::repeat_n(0i16, 3200));
            }
            let p = decode_audio_file(file, DecodeOptions::default().sample_rate(16_000)).unwrap();
            pcm.extend_from_slice(&p.samples);
        }
        let c_stream = reference::encode(
            &pcm,
            EncoderSettings::default()
                .api_rate(16_000)
                .max_internal_rate(16_000)
                .bitrate(diag_bitrate()),
        )
        .unwrap();
        let c_packets = packets(&c_stream);
        let (c_out, c_params) = decode(&c_packets);
        let delay = best_delay(&pcm, &c_out);
        let ours = encode(
            &pcm,
            Settings {
                fs_khz: 16,
                bitrate: diag_bitrate(),
                complexity: 2,
            },
        );
        let (ours_out, ours_params) = decode(&ours);
        let c_bytes: usize = c_packets.iter().map(Vec::len).sum();
        let o_bytes: usize = ours.iter().map(Vec::len).sum();
        let voiced = |p: &[FrameParams]| p.iter().filter(|f| f.sigtype == 0).count();
        let mean_gain = |p: &[FrameParams]| {
            p.iter()
                .flat_map(|f| f.gains_q16.iter())
                .map(|&g| (f64::from(g.max(1)) / 65536.0).log2())
                .sum::<f64>()
                / (p.len() * 4).max(1) as f64
        };
        eprintln!(
            "{name}: delay {delay}, bytes C {c_bytes} ours {o_bytes}, voiced C {} ours {}, \
             mean log2 gain C {:.2} ours {:.2}, frames {}",
            voiced(&c_params),
            voiced(&ours_params),
            mean_gain(&c_params),
            mean_gain(&ours_params),
            c_params.len()
        );
        let mut csv = String::from("f,k,c_sig,o_sig,c_qot,o_qot,c_g,o_g,e\n");
        for (f, (c, o)) in c_params.iter().zip(&ours_params).enumerate() {
            let fl = 320;
            let sub = |k: usize, d: usize| {
                let from = (f * fl + k * 80).saturating_sub(d);
                let seg = pcm.get(from..(from + 80).min(pcm.len())).unwrap_or(&[]);
                (seg.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / 80.0 + 1.0).log2() / 2.0
            };
            for k in 0..4 {
                let lg = |g: i32| (f64::from(g.max(1)) / 65536.0).log2();
                csv += &format!(
                    "{f},{k},{},{},{},{},{:.3},{:.3},{:.3}\n",
                    c.sigtype,
                    o.sigtype,
                    c.quant_offset_type,
                    o.quant_offset_type,
                    lg(c.gains_q16[k]),
                    lg(o.gains_q16[k]),
                    sub(k, 0)
                );
            }
        }
        std::fs::write(out.join(format!("{name}.csv")), csv).unwrap();
        write16(&out.join(format!("{name}.ref.wav")), &pcm);
        write16(&out.join(format!("{name}.c.wav")), &c_out);
        write16(&out.join(format!("{name}.ours.wav")), &ours_out);
        let mut stream = Vec::new();
        crate::format::SilkFormat::Tencent.write_header(&mut stream);
        for p in &ours {
            crate::format::push_packet(&mut stream, p);
        }
        let d16 = reference::decode(&stream, 16_000).unwrap();
        write16(&out.join(format!("{name}.oursC16.wav")), &d16);
        for &m in &masks {
            let y = transplant(&pcm, &c_params, m, delay);
            write16(&out.join(format!("{name}.m{m}.wav")), &y);
        }
    }
}
