//! A SILK v3 encoder in safe Rust, written from the published description of the codec (the
//! IETF SILK drafts by Vos et al.; RFC 6716 section 5.2 describes the same ideas for Opus).
//!
//! Each 20 ms frame (one per packet) goes through:
//!
//! * a high-pass filter against DC, and a simple energy voice-activity detector
//!   with a tracked noise floor;
//! * LPC analysis (windowed autocorrelation with a lag window), conversion to NLSFs and
//!   multi-stage vector quantisation with the decoder's codebooks ([`lpc`]);
//! * pitch analysis (coarse at 4 kHz, refined over the lag contours) and, for voiced
//!   frames, 5-tap LTP filters from the decoder's codebooks ([`pitch`]);
//! * subframe gains from the residual level of the noise-shaping analysis (so the noise keeps
//!   a steady distance below the input's smooth envelope), finer in voiced frames the more
//!   the pitch predictor gains, floored near the actual residual, and scaled by a slow rate
//!   control with a bit reservoir (pauses leave bits for speech), quantised on the decoder's
//!   log scale;
//! * the noise-shaping quantiser, which runs the decoder's synthesis exactly ([`nsq`]), at
//!   complexity 2 with a delayed decision over four paths per subframe;
//! * range coding of every parameter and the pulses ([`range`], [`pulses`]).
//!
//! NLSF interpolation as in the reference: when the last frame's NLSFs interpolated towards
//! those of the second half leave less residual energy than one filter for the whole frame,
//! the frame carries its second half's NLSFs and an interpolation factor. The shaping filter
//! is analysed per subframe and frequency-warped (fitted and run over first-order all-pass
//! sections, as the SILK drafts describe for the higher complexities), so its resolution is
//! finest at the low frequencies where the harmonics of high voices lie; the warped filter's
//! direct term is folded into the quantiser's feedback.
//!
//! Simpler than the reference: a delayed decision that commits at subframe ends, a first-order
//! noise tilt that grows with the pitch instead of the reference's low-frequency and tilt
//! shaping (harmonic shaping is implemented but off: it measured no gain), one LTP scaling (no
//! packet-loss adaptation), a plain energy VAD, and a rate control that steers one step from
//! the bits of past frames (the reference sets a signal-to-noise target from the bit rate
//! instead).

#![forbid(unsafe_code)]
#![allow(clippy::needless_range_loop)]

use std::borrow::Cow;

mod lpc;
mod nsq;
mod pitch;
mod pulses;
mod range;

use super::fixed::{log2lin, smulwb};
use super::lpc::nlsf_to_lpc_stable;
use super::tables as t;
use super::{
    LTP_ORDER, MAX_FRAME_LENGTH, MAX_LPC_ORDER, NB_SUBFR, NLSF_CB0_10, NLSF_CB0_16, NLSF_CB1_10,
    NLSF_CB1_16, NlsfCodebook, SIG_TYPE_VOICED,
};
use nsq::{NsqFrame, NsqState};
use range::RangeEncoder;

const OFFSET_Q7: i32 = (6 * 128) / 6 + 16 * 128;
const INV_SCALE_Q16: i32 = (65536 * (((86 - 6) * 128) / 6)) / (64 - 1);
const N_GAIN_LEVELS: i32 = 64;
const MIN_DELTA_GAIN: i32 = -4;
const MAX_DELTA_GAIN: i32 = 40;
const SIG_TYPE_UNVOICED: usize = 1;
/// Cut-off of the input's high-pass filter, in Hz: only DC and rumble (measured: 10 Hz
/// scores 0.04 PESQ above 60 Hz and 0.11 above 110 Hz; the decoder high-passes anyway).
const INPUT_HIGHPASS_HZ: f32 = 10.0;
/// Frames without speech below this energy (dB of the mean square, 20 dB = RMS 10, -70 dBFS)
/// are coded without pulses (measured: +0.01 PESQ, 8 to 9 bytes a frame of digital silence
/// instead of 15 to 40).
const SILENCE_DB: f32 = 20.0;
/// How far (dB) above the tracked noise floor a frame must be to count as speech.
const VAD_MARGIN_DB: f32 = 4.0;
/// Normalised correlation (at 4 kHz) above which a speech frame is coded as voiced.
const VOICING_THRESHOLD: f32 = 0.45;
/// The cost of one NLSF bit in weighted squared NLSF error.
const NLSF_MU: f32 = 6e-4;
/// Bandwidth widening of the input's LPC filter for the short-term noise shaping.
const SHAPE_CHIRP: f64 = 0.985;
/// Frequency warping of the short-term noise shaping at 16 kHz (scaled with the rate): the
/// shaping filter is fitted and run over all-pass sections, which resolves the low
/// frequencies finer, where the harmonics of high voices lie (measured: 0 to 0.2 lifts the
/// 16 kHz mean PESQ from 3.837 to 3.929 and the 24 kHz one from 3.819 to 3.926; 0.1 and 0.3
/// score less).
const SHAPE_WARP_AT_16K: f32 = 0.2;
/// Lag window (Gaussian, Hz) of the prediction filter's analysis.
const LPC_LAG_HZ: f64 = 60.0;
/// Lag window (Gaussian, Hz) of the shaping analysis.
const SHAPING_LAG_HZ: f64 = 15.0;
/// Harmonic noise shaping gain in voiced frames (measured: no gain on PESQ; off).
const HARMONIC_SHAPING: f32 = 0.0;
/// Rounding dead zone of the pulse quantiser (a cheap rate-distortion trade-off).
const DEAD_ZONE: f32 = 0.45;
/// Paths of the delayed-decision quantiser at complexity 2 (measured: +0.04 PESQ over 1).
const DELAYED_PATHS: usize = 4;
/// Its rate weight per unit of pulse magnitude (in squared pulse units).
const DELAYED_LAMBDA: f32 = 0.6;
/// Spectral tilt of the quantisation noise: `1 - NOISE_TILT z^-1` moves it from low to high
/// frequencies, where speech masks it better (unvoiced frames; measured 0.7..0.95).
const NOISE_TILT: f32 = 0.85;
/// The tilt in voiced frames at a pitch of [`NOISE_TILT_F0_HZ`]; it grows by
/// [`NOISE_TILT_PER_OCTAVE`] per octave of pitch (high voices leave the low frequencies
/// empty, so noise there is heard; low voices mask it and keep the noise off the highs).
/// (Measured with warped shaping: a constant 0.8 scores 3.929 at 16 kHz; this 3.948.)
const NOISE_TILT_VOICED: f32 = 0.75;
/// See [`NOISE_TILT_VOICED`].
const NOISE_TILT_PER_OCTAVE: f32 = 0.1;
/// See [`NOISE_TILT_VOICED`] (Hz).
const NOISE_TILT_F0_HZ: f32 = 160.0;
/// How much coarser (log2) unvoiced frames are quantised than the shaping residual's level
/// (bits go to the voiced frames, whose noise is heard more; measured 0.47..1.6, best
/// 1.0..1.3).
const UNVOICED_STEP: f32 = 1.1;
/// How much finer (log2) voiced frames are quantised at most, as the pitch predictor's gain
/// grows (first fitted to the reference encoder's gains (2.1); with the warped shaping
/// analysis, 1.5..1.7 measure best, 0.02 PESQ above 2.1, on two frame alignments).
const VOICED_FINER_MAX: f32 = 1.7;
/// The pitch predictor gain (dB) that makes a voiced frame 63 % of [`VOICED_FINER_MAX`] finer.
const VOICED_FINER_DB: f32 = 7.0;
/// The lowest gain in squared units of the residual's RMS times the rate step (measured: 0.4
/// scores 0.03 PESQ above none).
const RESIDUAL_FLOOR: f32 = 0.4;
/// How fast the rate control steers the step (log2 per frame per doubling of the bits):
/// slow, so the noise level stays steady over a sentence (measured: 0.03 scores 0.15 PESQ
/// above 0.3 at the same bit rate).
const RATE_STEER: f32 = 0.03;
/// The rate control's first step (log2) at one bit per sample, and its slope per doubling of
/// the bits per sample (measured where the control settles on speech).
const RATE_OFFSET_AT_1BPS: f32 = 1.0;
const RATE_OFFSET_SLOPE: f32 = 1.47;
/// How much of a subframe's gain envelope (log2) comes from its neighbours' mean.
const GAIN_SMOOTHING: f32 = 0.8;
/// How many frames' worth of unspent bits the rate control keeps for later speech.
const RESERVOIR_FRAMES: f32 = 25.0;
/// The largest packet the encoder lets itself write (the decoder accepts 1024 bytes).
const MAX_PACKET: usize = 1000;

/// The decoded gain (Q16) of gain index `idx`.
fn gain_q16(idx: i32) -> i32 {
    log2lin((smulwb(INV_SCALE_Q16, idx) + OFFSET_Q7).min(3967))
}

/// The gain index nearest (in the log domain) to `gain` in sample units.
fn gain_index(gain: f32) -> i32 {
    let g = (gain.max(1e-3) * 65536.0).log2() * 128.0;
    let step = INV_SCALE_Q16 as f32 / 65536.0;
    let idx = ((g - OFFSET_Q7 as f32) / step).round();
    if idx.is_finite() {
        (idx as i32).clamp(0, N_GAIN_LEVELS - 1)
    } else {
        0
    }
}

/// A second-order high-pass filter (direct form I, f32).
struct HighPass {
    b: [f32; 3],
    a: [f32; 2],
    x: [f32; 2],
    y: [f32; 2],
}

impl HighPass {
    fn new(cutoff_hz: f32, fs_hz: f32) -> Self {
        let w = 2.0 * std::f32::consts::PI * cutoff_hz / fs_hz;
        let alpha = w.sin() / (2.0 * std::f32::consts::FRAC_1_SQRT_2);
        let cw = w.cos();
        let a0 = 1.0 + alpha;
        Self {
            b: [
                (1.0 + cw) / 2.0 / a0,
                -(1.0 + cw) / a0,
                (1.0 + cw) / 2.0 / a0,
            ],
            a: [-2.0 * cw / a0, (1.0 - alpha) / a0],
            x: [0.0; 2],
            y: [0.0; 2],
        }
    }

    fn run(&mut self, v: f32) -> f32 {
        let y = self.b[0] * v + self.b[1] * self.x[0] + self.b[2] * self.x[1]
            - self.a[0] * self.y[0]
            - self.a[1] * self.y[1];
        self.x = [v, self.x[0]];
        self.y = [y, self.y[0]];
        y
    }
}

/// Encoder settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Internal (and input) rate in kHz: 8, 12, 16 or 24.
    pub(crate) fs_khz: usize,
    /// Target bit rate in bit/s.
    pub(crate) bitrate: u32,
    /// 0 (fastest) ..= 2 (best).
    pub(crate) complexity: u8,
}

/// The encoder state carried from frame to frame.
pub(crate) struct Encoder {
    fs_khz: usize,
    frame_length: usize,
    subfr_length: usize,
    order: usize,
    bitrate: u32,
    complexity: u8,
    nsq: NsqState,
    frame_count: u32,
    /// Rate control: log2 of the quantiser step relative to the residual level.
    rate_offset: f32,
    /// Rate control: bits left unspent (negative: overspent), bounded.
    reservoir: f32,
    /// VAD: tracked noise floor in dB.
    noise_db: f32,
    prev_nlsf: [i32; MAX_LPC_ORDER],
    /// The decoder's output for the last frame (before its high-pass), as the quantiser
    /// tracked it.
    last_xq: [i16; MAX_FRAME_LENGTH],
    #[cfg(test)]
    last_q: [i32; MAX_FRAME_LENGTH],
    /// Parameters to use instead of the analysis's (diagnostics), with a mask of which.
    #[cfg(test)]
    transplant: Option<(super::params::FrameParams, u32)>,
}

/// Encodes 16-bit mono PCM at `settings.fs_khz` kHz into SILK packets, one per 20 ms frame
/// (the last one padded with silence).
pub(crate) fn encode(pcm: &[i16], settings: Settings) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(settings);
    let fl = enc.frame_length;
    let frames = pcm.len().div_ceil(fl);
    // History before the first frame (silence) and look-ahead after the last.
    let hist = 2 * fl;
    let ahead = fl;
    let mut sig = vec![0f32; hist + frames * fl + ahead];
    let mut hp = HighPass::new(INPUT_HIGHPASS_HZ, (enc.fs_khz * 1000) as f32);
    for (o, &s) in sig[hist..].iter_mut().zip(pcm) {
        *o = hp.run(f32::from(s));
    }
    let mut packets = Vec::with_capacity(frames);
    for f in 0..frames {
        packets.push(enc.encode_frame(&sig, hist + f * fl));
    }
    packets
}

impl Encoder {
    fn new(s: Settings) -> Self {
        let fs_khz = match s.fs_khz {
            8 | 12 | 16 | 24 => s.fs_khz,
            _ => 24,
        };
        let fl = fs_khz * 20;
        let bitrate = s.bitrate.clamp(5_000, 100_000);
        // Bits per sample at this rate, and a first guess of the step for it.
        let bps = bitrate as f32 / (fs_khz * 1000) as f32;
        Self {
            fs_khz,
            frame_length: fl,
            subfr_length: fl / NB_SUBFR,
            order: if fs_khz == 8 { 10 } else { 16 },
            bitrate,
            complexity: s.complexity.min(2),
            nsq: NsqState::new(),
            frame_count: 0,
            rate_offset: RATE_OFFSET_AT_1BPS - RATE_OFFSET_SLOPE * bps.log2(),
            reservoir: 0.0,
            noise_db: 30.0,
            prev_nlsf: [0; MAX_LPC_ORDER],
            last_xq: [0; MAX_FRAME_LENGTH],
            #[cfg(test)]
            last_q: [0; MAX_FRAME_LENGTH],
            #[cfg(test)]
            transplant: None,
        }
    }

    fn codebook(&self, sigtype: usize) -> &'static NlsfCodebook {
        match (self.order == 10, sigtype == SIG_TYPE_VOICED) {
            (true, true) => &NLSF_CB0_10,
            (true, false) => &NLSF_CB1_10,
            (false, true) => &NLSF_CB0_16,
            (false, false) => &NLSF_CB1_16,
        }
    }

    /// Encodes the frame `sig[pos..pos + frame_length]` (`sig` has history before and
    /// look-ahead after it) into one packet.
    fn encode_frame(&mut self, sig: &[f32], pos: usize) -> Vec<u8> {
        let fl = self.frame_length;
        let sl = self.subfr_length;
        let order = self.order;
        let fs_hz = (self.fs_khz * 1000) as f32;
        let Some(frame) = sig.get(pos..pos + fl) else {
            return Vec::new();
        };

        // Voice activity from the frame energy against a tracked noise floor.
        let energy = frame.iter().map(|v| v * v).sum::<f32>() / fl as f32;
        let energy_db = 10.0 * (energy + 1.0).log10();
        if energy_db < self.noise_db {
            self.noise_db = energy_db.max(0.0);
        } else {
            // Rise slowly (at most 5 dB a second) so speech is never taken for the floor.
            self.noise_db += (0.02 * (energy_db - self.noise_db)).min(0.1);
        }
        let speech = energy_db > 30.0 && energy_db > self.noise_db + VAD_MARGIN_DB;

        // The LPC analyses span the frame and a quarter frame on each side.
        let lpc_from = pos.saturating_sub(fl / 4);
        let lpc_to = (pos + fl + fl / 4).min(sig.len());
        let hist = 18 * self.fs_khz + 2 * 6 + sl + 16;
        let r0 = pos.saturating_sub(hist);
        let local = pos - r0;
        let x = &sig[r0..(pos + fl).min(sig.len())];

        // The pitch search runs on the residual of an unquantised filter.
        let pitch = if speech {
            let windowed = sine_windowed(sig, lpc_from, lpc_to);
            let (a, _) = lpc::analyse(&windowed, order, fs_hz, LPC_LAG_HZ, 0.0);
            let res = residual(x, &a[..order]);
            pitch::search(x, &res, local, self.fs_khz, self.complexity)
        } else {
            None
        };
        let voiced = pitch.filter(|p| p.corr > VOICING_THRESHOLD);
        // Voiced frames: the prediction filter is analysed with the pitch's harmonics taken
        // out, so it models the envelope and not single harmonics (high voices).
        // (Measured: the three worst recordings, the human voice and two high female voices,
        // 0.10 to 0.23 PESQ better.)
        let lpc_sig = match &voiced {
            Some(p) => Cow::Owned(pitch_removed(sig, lpc_from, lpc_to, pos, sl, &p.lags)),
            None => Cow::Borrowed(sig.get(lpc_from..lpc_to).unwrap_or(&[])),
        };
        let (a, nlsf) = lpc_nlsf(&lpc_sig, 0, lpc_sig.len(), order, fs_hz);
        let sigtype = if voiced.is_some() {
            SIG_TYPE_VOICED
        } else {
            SIG_TYPE_UNVOICED
        };
        // Quantisation offset: the low one, but the high one (more "noise fill" around zero
        // pulses) for frames without speech.
        #[allow(unused_mut)]
        let mut qot = usize::from(sigtype != SIG_TYPE_VOICED && !speech);

        // NLSF interpolation (as the reference does it): the frame's NLSFs may be those of its
        // second half, with the first half's filter interpolated from the last frame's; chosen
        // when that leaves less residual energy than one filter for the whole frame.
        let mut interp = 4usize;
        let mut target_nlsf = nlsf;
        if self.complexity > 0 && self.frame_count > 0 {
            let (a2, nlsf2) = lpc_nlsf(
                &lpc_sig,
                pos + fl / 2 - fl / 4 - lpc_from,
                pos + fl + fl / 4 - lpc_from,
                order,
                fs_hz,
            );
            let e_full = seg_energy(x, local, local + fl, &a[..order]);
            let e2 = seg_energy(x, local + fl / 2, local + fl, &a2[..order]);
            let mut best = e_full;
            for k in 0..4i32 {
                let mut cand = [0i32; MAX_LPC_ORDER];
                for i in 0..order {
                    cand[i] = self.prev_nlsf[i] + ((k * (nlsf2[i] - self.prev_nlsf[i])) >> 2);
                }
                let mut a_cand = [0i16; MAX_LPC_ORDER];
                nlsf_to_lpc_stable(&mut a_cand[..order], &cand[..order]);
                let af: Vec<f64> = a_cand[..order]
                    .iter()
                    .map(|&v| f64::from(v) / 4096.0)
                    .collect();
                let e = e2 + seg_energy(x, local, local + fl / 2, &af);
                if e < best {
                    best = e;
                    interp = k as usize;
                    target_nlsf = nlsf2;
                }
            }
        }

        // NLSF quantisation and the decoder's filter.
        let survivors = [2, 4, 8][usize::from(self.complexity)];
        let (nlsf_idx, nlsf_q) = lpc::quantize_nlsf(
            &target_nlsf[..order],
            self.codebook(sigtype),
            survivors,
            NLSF_MU,
        );
        let mut a_q12 = [0i16; MAX_LPC_ORDER];
        nlsf_to_lpc_stable(&mut a_q12[..order], &nlsf_q[..order]);
        let mut a0_q12 = a_q12;
        if interp < 4 {
            let mut cand = [0i32; MAX_LPC_ORDER];
            for i in 0..order {
                cand[i] =
                    self.prev_nlsf[i] + ((interp as i32 * (nlsf_q[i] - self.prev_nlsf[i])) >> 2);
            }
            nlsf_to_lpc_stable(&mut a0_q12[..order], &cand[..order]);
        }
        self.prev_nlsf = nlsf_q;
        let to_f64 = |a: &[i16]| -> Vec<f64> { a.iter().map(|&v| f64::from(v) / 4096.0).collect() };
        let resq = residual(x, &to_f64(&a_q12[..order]));
        let resq0 = if interp < 4 {
            residual(x, &to_f64(&a0_q12[..order]))
        } else {
            Vec::new()
        };

        // Residual energy per subframe, after LTP for voiced frames.
        let mut nrg = [0f32; NB_SUBFR];
        for k in 0..NB_SUBFR {
            let s = local + k * sl;
            let r = if k < 2 && interp < 4 { &resq0 } else { &resq };
            nrg[k] = r
                .get(s..s + sl)
                .map_or(0.0, |v| v.iter().map(|x| x * x).sum::<f32>());
        }
        // Noise shaping: the input's envelope with a widened bandwidth, analysed per subframe
        // (a window of three subframes around each) with frequency warping; the analysis's
        // residual level also sets the subframe's gain, so the noise follows the input's
        // smooth envelope.
        let gamma = SHAPE_CHIRP;
        let warp = SHAPE_WARP_AT_16K * self.fs_khz as f32 / 16.0;
        let mut shape = [[0f32; MAX_LPC_ORDER]; NB_SUBFR];
        let mut shape_rms = [0f32; NB_SUBFR];
        for (k, s) in shape.iter_mut().enumerate() {
            let from = (pos + k * sl).saturating_sub(sl);
            let (sub_a, rms) = shaping_lpc(sig, from, pos + (k + 2) * sl, order, fs_hz, warp);
            shape_rms[k] = rms;
            let mut g = 1.0;
            for i in 0..order {
                g *= gamma;
                s[i] = (sub_a[i] * g) as f32;
            }
        }

        let step = self.rate_offset.exp2();
        let nrg_short = nrg;
        let mut ltp = None;
        if let Some(p) = voiced {
            let mut floor = [0f32; NB_SUBFR];
            for k in 0..NB_SUBFR {
                floor[k] = nrg[k] * 1e-3 + 1.0;
            }
            ltp = pitch::ltp_analysis(&resq, local, sl, &p.lags, &floor);
            if let Some(l) = &ltp {
                nrg = l.residual;
            }
        }
        let voiced = if ltp.is_some() { voiced } else { None };
        #[allow(unused_mut)]
        let mut sigtype = if voiced.is_some() {
            SIG_TYPE_VOICED
        } else {
            sigtype
        };

        // Subframe gains (the quantiser's step): the shaping analysis's residual level, so the
        // noise follows the input's smooth envelope at a steady signal-to-noise ratio, times
        // the rate control's step. Unvoiced frames are coarser; voiced ones finer the more the
        // pitch predictor gains. The gain never falls far below the actual residual's level
        // (which would cost many large pulses for little).
        let ltp_db = {
            let before: f32 = nrg_short.iter().sum();
            let after: f32 = nrg.iter().sum::<f32>().max(1e-3);
            10.0 * (before / after).max(1.0).log10()
        };
        let class_log2 = if voiced.is_some() {
            -VOICED_FINER_MAX * (1.0 - (-ltp_db / VOICED_FINER_DB).exp())
        } else {
            UNVOICED_STEP
        };
        let class_step = step * class_log2.exp2();
        // The gains' envelope smoothed across the frame's subframes (in the log domain): the
        // noise level should not follow every syllable's edge (measured: +0.06 PESQ).
        let mut shape_lg = [0f32; NB_SUBFR];
        for k in 0..NB_SUBFR {
            shape_lg[k] = shape_rms[k].max(1.0).log2();
        }
        for k in 0..NB_SUBFR {
            let prev = shape_lg[k.saturating_sub(1)];
            let next = shape_lg[(k + 1).min(NB_SUBFR - 1)];
            shape_rms[k] = ((1.0 - GAIN_SMOOTHING) * shape_lg[k]
                + GAIN_SMOOTHING * 0.5 * (prev + next))
                .exp2();
        }
        let mut gain_idx = [0i32; NB_SUBFR];
        for k in 0..NB_SUBFR {
            let shaped = shape_rms[k] * class_step;
            let floor = RESIDUAL_FLOOR * step * step * nrg[k] / sl as f32;
            gain_idx[k] = gain_index((shaped * shaped + floor).sqrt().max(1.0));
        }

        let harm = if voiced.is_some() {
            HARMONIC_SHAPING
        } else {
            0.0
        };

        let mut pitch_l = [0i32; NB_SUBFR];
        let mut ltp_coef = [0i16; LTP_ORDER * NB_SUBFR];
        if let (Some(p), Some(l)) = (&voiced, &ltp) {
            pitch_l = p.lags;
            ltp_coef = l.coef_q14;
        }
        #[allow(unused_mut)]
        let mut is_voiced = voiced.is_some();
        #[allow(unused_mut)]
        let mut ltp_scale = i32::from(t::LTP_SCALES_Q14[0]);
        #[cfg(test)]
        if let Some((p, mask)) = self.transplant.take() {
            if mask & 1 != 0 {
                for k in 0..NB_SUBFR {
                    if let Some(i) = (0..N_GAIN_LEVELS).find(|&i| gain_q16(i) == p.gains_q16[k]) {
                        gain_idx[k] = i;
                    }
                }
            }
            if mask & 2 != 0 {
                a0_q12 = p.pred_coef_q12[0];
                a_q12 = p.pred_coef_q12[1];
                interp = p.nlsf_interp_coef_q2.clamp(0, 4) as usize;
            }
            if mask & 4 != 0 {
                sigtype = p.sigtype;
                is_voiced = sigtype == SIG_TYPE_VOICED;
                pitch_l = p.pitch_l;
                ltp_coef = p.ltp_coef_q14;
                ltp_scale = p.ltp_scale_q14;
            }
            if mask & 8 != 0 {
                qot = p.quant_offset_type;
            }
        }
        let seed = (self.frame_count & 3) as i32;
        self.frame_count = self.frame_count.wrapping_add(1);

        let saved = self.nsq.clone();
        let mut q = [0i32; MAX_FRAME_LENGTH];
        let mut xq = [0i16; MAX_FRAME_LENGTH];
        let mut bump = 0i32;
        let mut attempt = 0;
        let packet = loop {
            // Frames without speech and nearly silent carry no pulses: the quantiser would
            // otherwise spend ~15 bytes a frame following the last LSBs of digital silence.
            let silent = attempt >= 6 || (!speech && energy_db < SILENCE_DB);
            let mut idx = gain_idx;
            for v in &mut idx {
                *v = (*v + bump).clamp(0, N_GAIN_LEVELS - 1);
            }
            // The deltas the bitstream can carry.
            for k in 1..NB_SUBFR {
                idx[k] = idx[k].clamp(idx[k - 1] + MIN_DELTA_GAIN, idx[k - 1] + MAX_DELTA_GAIN);
                idx[k] = idx[k].clamp(0, N_GAIN_LEVELS - 1);
            }
            let mut gains = [0i32; NB_SUBFR];
            for k in 0..NB_SUBFR {
                gains[k] = gain_q16(idx[k]);
            }
            let mut pred = [[0i16; MAX_LPC_ORDER]; 2];
            pred[0] = a0_q12;
            pred[1] = a_q12;
            let frame_params = NsqFrame {
                frame_length: fl,
                subfr_length: sl,
                order,
                sigtype,
                quant_offset_type: qot,
                gains_q16: gains,
                pred_coef_q12: pred,
                interpolated: interp < 4,
                ltp_coef_q14: ltp_coef,
                pitch_l,
                ltp_scale_q14: ltp_scale,
                seed,
                shape: &shape,
                harm_gain: [harm; NB_SUBFR],
                dead_zone: DEAD_ZONE,
                silent,
                warp,
                tilt: if is_voiced {
                    let lag = pitch_l.iter().sum::<i32>().max(1) as f32 / NB_SUBFR as f32;
                    let f0 = fs_hz / lag;
                    (NOISE_TILT_VOICED + NOISE_TILT_PER_OCTAVE * (f0 / NOISE_TILT_F0_HZ).log2())
                        .clamp(0.3, 0.95)
                } else {
                    NOISE_TILT
                },
                paths: if self.complexity >= 2 {
                    DELAYED_PATHS
                } else {
                    1
                },
                lambda: DELAYED_LAMBDA,
            };
            self.nsq = saved.clone();
            self.nsq.quantize(&frame_params, frame, &mut q, &mut xq);

            let mut rc = RangeEncoder::new();
            let fs_ix = t::SAMPLING_RATES_KHZ
                .iter()
                .position(|&k| k as usize == self.fs_khz)
                .unwrap_or(3);
            rc.encode(&t::SAMPLING_RATES_CDF, fs_ix);
            rc.encode(&t::TYPE_OFFSET_CDF, sigtype * 2 + qot);
            rc.encode(
                t::GAIN_CDF.get(sigtype * 65..).unwrap_or(&[]),
                idx[0] as usize,
            );
            for k in 1..NB_SUBFR {
                rc.encode(
                    &t::DELTA_GAIN_CDF,
                    (idx[k] - idx[k - 1] - MIN_DELTA_GAIN) as usize,
                );
            }
            let cb = self.codebook(sigtype);
            for (s, &ix) in nlsf_idx.iter().enumerate().take(cb.stage_vectors.len()) {
                let cdf = cb
                    .cdf
                    .get(cb.cdf_start.get(s).copied().unwrap_or(0)..)
                    .unwrap_or(&[]);
                rc.encode(cdf, ix);
            }
            rc.encode(&t::NLSF_INTERPOLATION_FACTOR_CDF, interp);
            if let (Some(p), Some(l)) = (&voiced, &ltp) {
                let lag_cdf: &[u16] = match self.fs_khz {
                    8 => &t::PITCH_LAG_NB_CDF,
                    12 => &t::PITCH_LAG_MB_CDF,
                    16 => &t::PITCH_LAG_WB_CDF,
                    _ => &t::PITCH_LAG_SWB_CDF,
                };
                rc.encode(lag_cdf, (p.lag - 2 * self.fs_khz as i32).max(0) as usize);
                if self.fs_khz == 8 {
                    rc.encode(&t::PITCH_CONTOUR_NB_CDF, p.contour);
                } else {
                    rc.encode(&t::PITCH_CONTOUR_CDF, p.contour);
                }
                rc.encode(&t::LTP_PER_INDEX_CDF, l.per_index);
                let (cdf, _) = pitch::ltp_cdf(l.per_index);
                for &ix in &l.indices {
                    rc.encode(cdf, ix);
                }
                rc.encode(&t::LTP_SCALE_CDF, 0);
            }
            rc.encode(&t::SEED_CDF, seed as usize);
            pulses::encode_pulses(&mut rc, &q[..fl], sigtype, qot);
            rc.encode(&t::VAD_FLAG_CDF, usize::from(speech));
            rc.encode(&t::FRAME_TERMINATION_CDF, 0);
            let bytes = rc.finish();
            if bytes.len() <= MAX_PACKET || silent {
                break bytes;
            }
            attempt += 1;
            bump += 6;
        };

        self.last_xq = xq;
        #[cfg(test)]
        {
            self.last_q = q;
        }
        // Rate control: a reservoir of the bits pauses leave unspent (at most RESERVOIR_FRAMES
        // frames' worth, either way), and a slow steer of the step so speech frames spend
        // their share of the target plus what the reservoir can give.
        let target = self.bitrate as f32 / 50.0;
        let bits = (packet.len() * 8) as f32;
        let cap = RESERVOIR_FRAMES * target;
        self.reservoir = (self.reservoir + target - bits).clamp(-cap, cap);
        if speech {
            let goal = target + self.reservoir / RESERVOIR_FRAMES;
            let err = (bits / goal.max(0.25 * target)).log2().clamp(-1.0, 1.0);
            self.rate_offset = (self.rate_offset + RATE_STEER * err).clamp(-6.0, 8.0);
        }
        packet
    }
}

/// Residual energy of `x[from..to]` with predictor `a` (history from `x` before `from`).
fn seg_energy(x: &[f32], from: usize, to: usize, a: &[f64]) -> f32 {
    let mut e = 0f32;
    for n in from..to.min(x.len()) {
        let mut acc = x[n];
        for (k, &c) in a.iter().enumerate() {
            if let Some(v) = n.checked_sub(k + 1).and_then(|j| x.get(j)) {
                acc -= c as f32 * v;
            }
        }
        e += acc * acc;
    }
    e
}

/// `sig[from..to]` (as much of it as there is) under a sine window.
fn sine_windowed(sig: &[f32], from: usize, to: usize) -> Vec<f32> {
    let span = sig.get(from..to.min(sig.len())).unwrap_or(&[]);
    let n = span.len().max(1);
    // sin((i + 0.5) d) by rotation: no sine per sample.
    let d = std::f64::consts::PI / n as f64;
    let (sd, cd) = d.sin_cos();
    let (mut s, mut c) = (0.5 * d).sin_cos();
    span.iter()
        .map(|&v| {
            let out = v * s as f32;
            (s, c) = (s * cd + c * sd, c * cd - s * sd);
            out
        })
        .collect()
}

/// The shaping filter's LPC analysis of `sig[from..to]` (sine window, a white-noise floor
/// 30 dB down, a narrow lag window, frequency warping `warp`): the warped predictor and the
/// RMS of its residual (in sample units, as the unwarped filter's would be).
fn shaping_lpc(
    sig: &[f32],
    from: usize,
    to: usize,
    order: usize,
    fs_hz: f32,
    warp: f32,
) -> ([f64; MAX_LPC_ORDER], f32) {
    let windowed = sine_windowed(sig, from, to);
    let warp = f64::from(warp);
    let (a, err) = lpc::analyse(&windowed, order, fs_hz, SHAPING_LAG_HZ, warp);
    // The warped filter's direct term: its residual, brought back to a filter that starts
    // with 1, has the level an unwarped analysis would find (the geometric mean of the
    // modelled spectrum).
    let mut direct = 1f64;
    let mut power = 1f64;
    for &c in a.iter().take(order) {
        power *= -warp;
        direct -= c * power;
    }
    // The sine window's energy is half the span's length.
    let n = windowed.len().max(1);
    let rms = (err / (n as f64 / 2.0)).max(0.0).sqrt() / direct.max(0.05);
    (a, rms as f32)
}

/// Windowed LPC analysis of `sig[from..to]` and its NLSFs; a filter whose NLSFs cannot be
/// found is widened until they can, or replaced by a flat one.
fn lpc_nlsf(
    sig: &[f32],
    from: usize,
    to: usize,
    order: usize,
    fs_hz: f32,
) -> ([f64; MAX_LPC_ORDER], [i32; MAX_LPC_ORDER]) {
    let windowed = sine_windowed(sig, from, to);
    let (mut a, _) = lpc::analyse(&windowed, order, fs_hz, LPC_LAG_HZ, 0.0);
    let mut nlsf = [0i32; MAX_LPC_ORDER];
    let mut ok = lpc::a_to_nlsf(&a[..order], &mut nlsf);
    let mut chirp = 1.0;
    while !ok && chirp > 0.5 {
        chirp *= 0.97;
        let mut g = 1.0;
        for c in a.iter_mut().take(order) {
            g *= chirp;
            *c *= g;
        }
        ok = lpc::a_to_nlsf(&a[..order], &mut nlsf);
    }
    if !ok {
        for i in 0..order {
            nlsf[i] = ((i as i32 + 1) * 32768) / (order as i32 + 1);
        }
        a = [0.0; MAX_LPC_ORDER];
    }
    (a, nlsf)
}

/// `sig[from..to]` with the pitch predicted from one lag back taken out: a one-tap predictor
/// per subframe (lag `lags[k]` in subframe `k` of the frame at `pos`, the nearest subframe's
/// outside it), its gain the normalised correlation clamped to `0..=1`.
fn pitch_removed(
    sig: &[f32],
    from: usize,
    to: usize,
    pos: usize,
    sl: usize,
    lags: &[i32; NB_SUBFR],
) -> Vec<f32> {
    let seg = |n: usize| {
        ((n as i64 - pos as i64).div_euclid(sl as i64)).clamp(0, NB_SUBFR as i64 - 1) as usize
    };
    let mut num = [0f32; NB_SUBFR];
    let mut den = [0f32; NB_SUBFR];
    for n in from..to {
        let k = seg(n);
        let lag = lags[k].max(1) as usize;
        if let (Some(&x), Some(&y)) = (sig.get(n), n.checked_sub(lag).and_then(|j| sig.get(j))) {
            num[k] += x * y;
            den[k] += y * y;
        }
    }
    let beta: Vec<f32> = (0..NB_SUBFR)
        .map(|k| (num[k] / den[k].max(1.0)).clamp(0.0, 1.0))
        .collect();
    (from..to)
        .map(|n| {
            let k = seg(n);
            let lag = lags[k].max(1) as usize;
            let y = n
                .checked_sub(lag)
                .and_then(|j| sig.get(j))
                .copied()
                .unwrap_or(0.0);
            sig.get(n).copied().unwrap_or(0.0) - beta[k] * y
        })
        .collect()
}

/// The prediction residual of `x` with predictor `a` (zero history before `x`).
fn residual(x: &[f32], a: &[f64]) -> Vec<f32> {
    let p = a.len();
    let af: Vec<f32> = a.iter().map(|&v| v as f32).collect();
    let mut out = vec![0f32; x.len()];
    for n in 0..x.len() {
        let mut acc = x[n];
        for k in 0..p.min(n) {
            acc -= af[k] * x[n - 1 - k];
        }
        out[n] = acc;
    }
    out
}

#[cfg(all(test, feature = "c-reference"))]
mod diag;

#[cfg(test)]
mod tests {
    use super::super::tables as t;
    use super::super::{Decoder, biquad};
    use super::*;

    /// A voiced-like test signal: a pulse train through resonances, with noise bursts.
    pub(crate) fn speechlike(n: usize, fs: usize, seed: u32) -> Vec<i16> {
        let mut s = seed;
        let mut y = [0f32; 4];
        (0..n)
            .map(|i| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = ((s >> 16) as f32 / 32768.0 - 1.0) * 300.0;
                let period = fs / (110 + (i * 60 / fs.max(1)) % 90);
                let voiced = (i / (fs / 4)) % 3 != 2;
                let e = if voiced && i % period.max(1) == 0 {
                    9000.0
                } else {
                    0.0
                } + noise;
                let v = e + 1.6 * y[0] - 0.9 * y[1];
                y = [v, y[0], y[1], y[2]];
                (v * 0.5).clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    /// Encodes `pcm` and checks every packet decodes, with the decoder's output equal to
    /// what the encoder tracked.
    pub(crate) fn check_exact(pcm: &[i16], settings: Settings) {
        let mut enc = Encoder::new(settings);
        let fl = enc.frame_length;
        let frames = pcm.len().div_ceil(fl);
        let hist = 2 * fl;
        let mut sig = vec![0f32; hist + frames * fl + fl];
        let mut hp = HighPass::new(INPUT_HIGHPASS_HZ, (enc.fs_khz * 1000) as f32);
        for (o, &v) in sig[hist..].iter_mut().zip(pcm) {
            *o = hp.run(f32::from(v));
        }
        let mut dec = Decoder::new();
        let (a, b) = match enc.fs_khz {
            24 => (&t::DEC_A_HP_24, &t::DEC_B_HP_24),
            16 => (&t::DEC_A_HP_16, &t::DEC_B_HP_16),
            12 => (&t::DEC_A_HP_12, &t::DEC_B_HP_12),
            _ => (&t::DEC_A_HP_8, &t::DEC_B_HP_8),
        };
        let mut hp_state = [0i32; 2];
        for f in 0..frames {
            let packet = enc.encode_frame(&sig, hist + f * fl);
            let mut out = Vec::new();
            let r = dec.decode_call(&packet, false, (enc.fs_khz * 1000) as i32, &mut out);
            assert_eq!(r, Ok(()), "frame {f} {settings:?} packet {packet:02x?}");
            assert!(!dec.more_frames());
            let mut want = enc.last_xq;
            biquad(&mut want[..fl], b, a, &mut hp_state);
            assert_eq!(&out[..], &want[..fl], "frame {f} {settings:?}");
        }
    }

    #[test]
    fn decoder_output_is_what_the_encoder_tracked() {
        for fs_khz in [8, 12, 16, 24] {
            for (bitrate, complexity) in [(5_000, 0), (24_000, 2), (60_000, 1)] {
                let pcm = speechlike(fs_khz * 1000, fs_khz * 1000, 7);
                check_exact(
                    &pcm,
                    Settings {
                        fs_khz,
                        bitrate,
                        complexity,
                    },
                );
            }
        }
    }
}
