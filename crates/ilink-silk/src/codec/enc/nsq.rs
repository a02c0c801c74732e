//! The noise-shaping quantiser: chooses the excitation pulses sample by sample while running
//! the decoder's own synthesis (same fixed-point long-term and short-term prediction, same
//! state re-whitening and gain changes, same sign dither), so the encoder's reconstruction
//! is exactly what the decoder will output (before its high-pass filter).
//!
//! The quantisation error is fed back through a short-term shaping filter (the input's LPC
//! filter with its bandwidth widened, over frequency-warping all-pass sections), a spectral
//! tilt and, in voiced frames, a harmonic one at the pitch lag, so the noise follows the
//! speech spectrum and hides under it instead of being white.

#![forbid(unsafe_code)]

use super::super::fixed::{
    div32_var_q, inverse32_var_q, rand, rshift_round, sat16, smulwb, smulww,
};
use super::super::synth::{SubframeStart, lpc_pred, ltp_pred, rescale_states};
use super::super::tables::QUANTIZATION_OFFSETS_Q10;
use super::super::{LTP_ORDER, MAX_FRAME_LENGTH, MAX_LPC_ORDER, NB_SUBFR, SIG_TYPE_VOICED};

/// The largest pulse magnitude the quantiser emits.
const MAX_PULSE: i32 = 8191;
/// History kept for the harmonic shaping (longest lag plus taps).
const HARM_LEN: usize = 1024;
/// Sections of the warped shaping filter's chain, the input included.
const WARP_LEN: usize = MAX_LPC_ORDER + 1;

/// The short-term shaping filter `F(D) = 1 - sum shape[k] D^(k+1)` over all-pass sections
/// `D = (z^-1 - warp) / (1 - warp z^-1)` (frequency warping: finer resolution at low
/// frequencies). `D` passes its input through at `-warp`, so `F` has a direct term `gain`; the
/// quantiser feeds back the part of `F`'s output that the past determines.
#[derive(Clone, Copy)]
struct Warped<'a> {
    shape: &'a [f32; MAX_LPC_ORDER],
    warp: f32,
    /// `(-warp)^k`: how the current input reaches section `k`.
    direct: [f32; WARP_LEN],
    /// `F`'s direct term `1 - sum shape[k] (-warp)^(k+1)` (positive for a stable `F`).
    gain: f32,
}

impl<'a> Warped<'a> {
    fn new(shape: &'a [f32; MAX_LPC_ORDER], warp: f32) -> Self {
        let mut direct = [0f32; WARP_LEN];
        let mut p = 1f32;
        for d in direct.iter_mut() {
            *d = p;
            p *= -warp;
        }
        let mut gain = 1f32;
        for (c, d) in shape.iter().zip(&direct[1..]) {
            gain -= c * d;
        }
        Self {
            shape,
            warp,
            direct,
            gain: gain.max(0.05),
        }
    }

    /// The sections' outputs for a zero current input (into `zero`), and
    /// `sum shape[k] zero[k+1]`. (All sections run: coefficients past the order are zero.)
    #[inline]
    fn predict(&self, state: &[f32; WARP_LEN], zero: &mut [f32; WARP_LEN]) -> f32 {
        // Section k: zero[k] = state[k-1] + warp (state[k] - zero[k-1]), zero[0] = 0; run as
        // two interleaved recursions two sections apart (half the serial latency):
        // zero[k] = t[k] - warp t[k-1] + warp^2 zero[k-2], t[k] = state[k-1] + warp state[k].
        let l = self.warp;
        let l2 = l * l;
        let mut t = [0f32; WARP_LEN];
        for k in 1..WARP_LEN {
            t[k] = state[k - 1] + l * state[k];
        }
        zero[0] = 0.0;
        zero[1] = t[1];
        for k in 2..WARP_LEN {
            zero[k] = (t[k] - l * t[k - 1]) + l2 * zero[k - 2];
        }
        let mut acc = [0f32; 4];
        for k in 0..MAX_LPC_ORDER {
            acc[k % 4] += self.shape[k] * zero[k + 1];
        }
        (acc[0] + acc[1]) + (acc[2] + acc[3])
    }

    /// The state once the current input `err` is known.
    #[inline]
    fn commit(&self, state: &mut [f32; WARP_LEN], zero: &[f32; WARP_LEN], err: f32) {
        for k in 0..WARP_LEN {
            state[k] = zero[k] + self.direct[k] * err;
        }
    }
}

/// The decoder's synthesis state as the encoder tracks it, plus the shaping filters' state.
#[derive(Clone)]
pub(crate) struct NsqState {
    s_ltp_q16: Box<[i32; 2 * MAX_FRAME_LENGTH]>,
    s_lpc_q14: [i32; MAX_FRAME_LENGTH / NB_SUBFR + MAX_LPC_ORDER],
    out_buf: Box<[i16; 2 * MAX_FRAME_LENGTH]>,
    prev_inv_gain_q16: i32,
    /// The short-term shaping filter's state: the shaped error's last value through 0..=order
    /// all-pass sections (plain delays when unwarped), in Q10 units of the current gain.
    warped: [f32; WARP_LEN],
    /// The whitened shaped error (sample units), for the harmonic shaping.
    harm: Box<[f32; HARM_LEN]>,
    harm_pos: usize,
    /// The gain of the last subframe (sample units), 0 before the first.
    last_gain: f32,
}

/// What the quantiser needs for one frame.
pub(crate) struct NsqFrame<'a> {
    pub(crate) frame_length: usize,
    pub(crate) subfr_length: usize,
    pub(crate) order: usize,
    pub(crate) sigtype: usize,
    pub(crate) quant_offset_type: usize,
    pub(crate) gains_q16: [i32; NB_SUBFR],
    pub(crate) pred_coef_q12: [[i16; MAX_LPC_ORDER]; 2],
    pub(crate) interpolated: bool,
    pub(crate) ltp_coef_q14: [i16; LTP_ORDER * NB_SUBFR],
    pub(crate) pitch_l: [i32; NB_SUBFR],
    pub(crate) ltp_scale_q14: i32,
    pub(crate) seed: i32,
    /// Short-term shaping coefficients per subframe (`err[n] ~ sum shape[k] err[n-1-k]`, over
    /// all-pass sections when warped), zero past the order.
    pub(crate) shape: &'a [[f32; MAX_LPC_ORDER]; NB_SUBFR],
    /// Harmonic shaping gain per subframe (0: none).
    pub(crate) harm_gain: [f32; NB_SUBFR],
    /// Frequency warping of the short-term shaping filter (0: none).
    pub(crate) warp: f32,
    /// Spectral tilt of the noise (0: none; 0.3: less noise at low frequencies).
    pub(crate) tilt: f32,
    /// Dead zone: how far below one half a value must round up to a larger magnitude.
    pub(crate) dead_zone: f32,
    /// Paths kept by the delayed-decision search (1: decide each sample at once).
    pub(crate) paths: usize,
    /// Rate weight of the delayed-decision search per unit of pulse magnitude.
    pub(crate) lambda: f32,
    /// Forces every pulse to zero (the bounded fallback for frames that will not fit).
    pub(crate) silent: bool,
}

impl NsqState {
    pub(crate) fn new() -> Self {
        Self {
            s_ltp_q16: Box::new([0; 2 * MAX_FRAME_LENGTH]),
            s_lpc_q14: [0; MAX_FRAME_LENGTH / NB_SUBFR + MAX_LPC_ORDER],
            out_buf: Box::new([0; 2 * MAX_FRAME_LENGTH]),
            prev_inv_gain_q16: 65536,
            warped: [0.0; WARP_LEN],
            harm: Box::new([0.0; HARM_LEN]),
            harm_pos: 0,
            last_gain: 0.0,
        }
    }

    /// Quantises one frame of input `x` (sample units) into pulses `q` and writes the
    /// decoder's reconstruction (before its high-pass) to `xq`.
    pub(crate) fn quantize(
        &mut self,
        f: &NsqFrame<'_>,
        x: &[f32],
        q: &mut [i32; MAX_FRAME_LENGTH],
        xq: &mut [i16; MAX_FRAME_LENGTH],
    ) {
        let fl = f.frame_length.min(MAX_FRAME_LENGTH);
        let sl = f.subfr_length.min(fl / NB_SUBFR);
        let order = f.order.min(MAX_LPC_ORDER);
        let offset_q10 = i32::from(
            QUANTIZATION_OFFSETS_Q10
                .get(f.sigtype * 2 + f.quant_offset_type)
                .copied()
                .unwrap_or(0),
        );
        let voiced = f.sigtype == SIG_TYPE_VOICED;
        let mut seed = f.seed;
        let mut s_ltp = [0i16; MAX_FRAME_LENGTH];
        let mut ltp_idx = fl;
        let mut vec_q10 = [0i32; MAX_FRAME_LENGTH / NB_SUBFR];
        for k in 0..NB_SUBFR {
            let a_q12 = f.pred_coef_q12[k >> 1];
            let gain_q16 = f.gains_q16[k].max(1);
            let inv_gain_q16 = inverse32_var_q(gain_q16, 32).min(i32::from(i16::MAX));
            let gain_adj_q16 = if inv_gain_q16 != self.prev_inv_gain_q16 {
                div32_var_q(inv_gain_q16, self.prev_inv_gain_q16, 16)
            } else {
                1 << 16
            };
            let b_q14: [i16; LTP_ORDER] = {
                let mut b = [0i16; LTP_ORDER];
                if let Some(src) = f.ltp_coef_q14.get(k * LTP_ORDER..(k + 1) * LTP_ORDER) {
                    b.copy_from_slice(src);
                }
                b
            };
            let lag = f.pitch_l[k];
            rescale_states(
                &mut self.s_ltp_q16[..],
                &mut self.s_lpc_q14,
                &self.out_buf[..],
                &mut s_ltp,
                &SubframeStart {
                    k,
                    frame_length: fl,
                    order,
                    voiced,
                    rewhiten: k & (3 - (usize::from(f.interpolated) << 1)) == 0,
                    lag,
                    a_q12: &a_q12,
                    inv_gain_q16,
                    gain_adj_q16,
                    ltp_scale_q14: f.ltp_scale_q14,
                    ltp_idx,
                },
            );
            self.prev_inv_gain_q16 = inv_gain_q16;

            // From sample units to the excitation's Q10 units at this gain.
            let gain = gain_q16 as f32 / 65536.0;
            let to_q10 = 1024.0 / gain;
            if self.last_gain > 0.0 {
                let r = self.last_gain / gain;
                for e in &mut self.warped {
                    *e *= r;
                }
            }
            // The shaping feedback is stable for the filters the analysis makes, but no input may
            // leave it stuck at infinity or NaN: start it afresh (the synthesis is unaffected).
            if !self.warped.iter().all(|v| v.is_finite() && v.abs() < 1e12)
                || !self.harm.get(self.harm_pos).is_some_and(|v| v.is_finite())
            {
                self.warped = [0.0; WARP_LEN];
                self.harm.fill(0.0);
            }
            let shape = &f.shape[k];
            let warped = Warped::new(shape, f.warp);
            let harm_gain = f.harm_gain[k];
            let lag_u = usize::try_from(lag).unwrap_or(0).clamp(1, HARM_LEN - 2);
            if f.paths > 1 && !f.silent {
                let sub = Subframe {
                    k,
                    sl,
                    order,
                    voiced,
                    lag,
                    b_q14,
                    a_q12,
                    offset_q10,
                    to_q10,
                };
                self.subframe_delayed(f, &sub, x, &mut seed, &mut ltp_idx, q, &mut vec_q10);
            } else {
                for i in 0..sl {
                    let n = k * sl + i;
                    let ltp_q10 = if voiced {
                        let center = (ltp_idx as i64 - i64::from(lag) + (LTP_ORDER / 2) as i64)
                            .max(0) as usize;
                        rshift_round(ltp_pred(&self.s_ltp_q16[..], center, &b_q14), 4)
                    } else {
                        0
                    };
                    // LPC prediction exactly as the decoder's synthesis makes it.
                    let pos = MAX_LPC_ORDER + i;
                    let lpc_q10 = lpc_pred(&self.s_lpc_q14, pos, &a_q12[..order]);
                    let pred = ltp_q10.wrapping_add(lpc_q10);
                    // Noise feedback: the short-term shaping filter on the shaped error, in cascade
                    // with the harmonic one on its whitened part.
                    let mut zero = [0f32; WARP_LEN];
                    let st = warped.predict(&self.warped, &mut zero);
                    // The tilt: noise moved from low to high frequencies by (1 - tilt z^-1).
                    let prev_w = self.harm.get(self.harm_pos).copied().unwrap_or(0.0) * to_q10;
                    let mut fb = st - f.tilt * prev_w;
                    if harm_gain > 0.0 {
                        let h = |d: usize| {
                            let at = (self.harm_pos + HARM_LEN - d) % HARM_LEN;
                            self.harm.get(at).copied().unwrap_or(0.0)
                        };
                        let hv = 0.25 * h(lag_u + 1) + 0.5 * h(lag_u) + 0.25 * h(lag_u - 1);
                        fb += harm_gain * hv * to_q10;
                    }
                    let fb = fb / warped.gain;
                    let xin = x.get(n).copied().unwrap_or(0.0) * to_q10;
                    let target = xin - pred as f32 + fb;
                    seed = rand(seed);
                    let negate = seed < 0;
                    let mut pulse = 0i32;
                    if !f.silent {
                        let u =
                            (if negate { -target } else { target } - offset_q10 as f32) / 1024.0;
                        let mag = u.abs() + 0.5 - f.dead_zone;
                        let m = if mag.is_finite() {
                            mag.floor().clamp(0.0, MAX_PULSE as f32)
                        } else {
                            0.0
                        };
                        pulse = if u < 0.0 { -(m as i32) } else { m as i32 };
                    }
                    let e = pulse.wrapping_shl(10).wrapping_add(offset_q10);
                    let exc = if negate { e.wrapping_neg() } else { e };
                    seed = seed.wrapping_add(pulse);
                    if let Some(o) = q.get_mut(n) {
                        *o = pulse;
                    }
                    let r = exc.wrapping_add(ltp_q10);
                    if voiced {
                        if let Some(d) = self.s_ltp_q16.get_mut(ltp_idx) {
                            *d = r.wrapping_shl(6);
                        }
                        ltp_idx += 1;
                    }
                    let y_q10 = r.wrapping_add(lpc_q10);
                    if let Some(s) = self.s_lpc_q14.get_mut(pos) {
                        *s = y_q10.wrapping_shl(4);
                    }
                    // Shaped error (reconstruction minus input) in Q10 units.
                    let err = y_q10 as f32 - xin;
                    warped.commit(&mut self.warped, &zero, err);
                    self.harm_pos = (self.harm_pos + 1) % HARM_LEN;
                    if let Some(h) = self.harm.get_mut(self.harm_pos) {
                        // Back through the cascade: the error before the tilt and short-term
                        // shaping (the whitened error), in sample units.
                        *h = (warped.gain * err - st + f.tilt * prev_w) / to_q10;
                    }
                    if let Some(o) = vec_q10.get_mut(i) {
                        *o = y_q10;
                    }
                }
            }
            let out = &mut self.out_buf[fl + k * sl..fl + (k + 1) * sl];
            for i in 0..sl {
                out[i] = sat16(rshift_round(smulww(vec_q10[i], gain_q16), 10));
            }
            self.s_lpc_q14.copy_within(sl..sl + MAX_LPC_ORDER, 0);
            self.last_gain = gain;
        }
        xq[..fl].copy_from_slice(&self.out_buf[fl..2 * fl]);
        self.out_buf.copy_within(fl..2 * fl, 0);
    }
}

const MAX_SUB: usize = MAX_FRAME_LENGTH / NB_SUBFR;
const MAX_PATHS: usize = 8;

/// The per-subframe constants of the delayed-decision search.
struct Subframe {
    k: usize,
    sl: usize,
    order: usize,
    voiced: bool,
    lag: i32,
    b_q14: [i16; LTP_ORDER],
    a_q12: [i16; MAX_LPC_ORDER],
    offset_q10: i32,
    to_q10: f32,
}

/// One path of the delayed-decision search over a subframe: its own copy of everything the
/// subframe's decisions change.
#[derive(Clone)]
struct Path {
    cost: f32,
    seed: i32,
    lpc: [i32; MAX_LPC_ORDER + MAX_SUB],
    ltp: [i32; MAX_SUB],
    q: [i32; MAX_SUB],
    y: [i32; MAX_SUB],
    w: [f32; MAX_SUB],
    warped: [f32; WARP_LEN],
    prev_w: f32,
}

/// What one path would do with one sample.
#[derive(Clone, Copy, Default)]
struct Step {
    ltp_q10: i32,
    lpc_q10: i32,
    st: f32,
    zero: [f32; WARP_LEN],
    xin: f32,
    seed: i32,
    pulse: [i32; 2],
    exc: [i32; 2],
    cost: [f32; 2],
}

impl NsqState {
    /// Quantises one subframe keeping several paths (each sample rounded both ways, the best
    /// paths by distortion plus rate surviving), then commits the best path.
    #[allow(clippy::too_many_arguments)]
    fn subframe_delayed(
        &mut self,
        f: &NsqFrame<'_>,
        sub: &Subframe,
        x: &[f32],
        seed: &mut i32,
        ltp_idx: &mut usize,
        q: &mut [i32; MAX_FRAME_LENGTH],
        vec_q10: &mut [i32; MAX_FRAME_LENGTH / NB_SUBFR],
    ) {
        let sl = sub.sl.min(MAX_SUB);
        let order = sub.order;
        let n_paths = f.paths.clamp(1, MAX_PATHS);
        let base = *ltp_idx;
        let prev_w = self.harm.get(self.harm_pos).copied().unwrap_or(0.0) * sub.to_q10;
        let mut start = Path {
            cost: 0.0,
            seed: *seed,
            lpc: [0; MAX_LPC_ORDER + MAX_SUB],
            ltp: [0; MAX_SUB],
            q: [0; MAX_SUB],
            y: [0; MAX_SUB],
            w: [0.0; MAX_SUB],
            warped: self.warped,
            prev_w,
        };
        start.lpc[..MAX_LPC_ORDER].copy_from_slice(&self.s_lpc_q14[..MAX_LPC_ORDER]);
        // Paths start equal; a small cost difference keeps them from all picking the same.
        let mut paths: Vec<Path> = vec![start; n_paths];
        for (j, p) in paths.iter_mut().enumerate() {
            p.cost = j as f32 * 1e-3;
        }
        let warped = Warped::new(&f.shape[sub.k], f.warp);
        let harm_gain = f.harm_gain[sub.k];
        let lag_u = usize::try_from(sub.lag).unwrap_or(0).clamp(2, HARM_LEN - 2);
        let mut steps = [Step::default(); MAX_PATHS];
        for i in 0..sl {
            let n = sub.k * sub.sl + i;
            let xin = x.get(n).copied().unwrap_or(0.0) * sub.to_q10;
            for (p, step) in paths.iter().zip(steps.iter_mut()) {
                let ltp_q10 = if sub.voiced {
                    let center = (base + i) as i64 - i64::from(sub.lag) + (LTP_ORDER / 2) as i64;
                    let mut acc = 0i32;
                    for (j, &b) in sub.b_q14.iter().enumerate() {
                        let at = center - j as i64;
                        let v = if at >= base as i64 {
                            p.ltp.get((at - base as i64) as usize).copied().unwrap_or(0)
                        } else {
                            usize::try_from(at)
                                .ok()
                                .and_then(|a| self.s_ltp_q16.get(a))
                                .copied()
                                .unwrap_or(0)
                        };
                        acc = acc.wrapping_add(smulwb(v, i32::from(b)));
                    }
                    rshift_round(acc, 4)
                } else {
                    0
                };
                let lpc_q10 = lpc_pred(&p.lpc, MAX_LPC_ORDER + i, &sub.a_q12[..order]);
                let mut zero = [0f32; WARP_LEN];
                let st = warped.predict(&p.warped, &mut zero);
                let mut fb = st - f.tilt * p.prev_w;
                if harm_gain > 0.0 {
                    let w = |d: usize| -> f32 {
                        if d <= i {
                            p.w.get(i - d).copied().unwrap_or(0.0)
                        } else {
                            let back = d - i - 1;
                            let at = (self.harm_pos + HARM_LEN - back % HARM_LEN) % HARM_LEN;
                            self.harm.get(at).copied().unwrap_or(0.0) * sub.to_q10
                        }
                    };
                    fb += harm_gain * (0.25 * w(lag_u + 1) + 0.5 * w(lag_u) + 0.25 * w(lag_u - 1));
                }
                let fb = fb / warped.gain;
                let target = xin - ltp_q10.wrapping_add(lpc_q10) as f32 + fb;
                let s1 = rand(p.seed);
                let negate = s1 < 0;
                let u = (if negate { -target } else { target } - sub.offset_q10 as f32) / 1024.0;
                let m0 = if u.is_finite() {
                    u.abs().floor().clamp(0.0, (MAX_PULSE - 1) as f32) as i32
                } else {
                    0
                };
                let mut out = Step {
                    ltp_q10,
                    lpc_q10,
                    st,
                    zero,
                    xin,
                    seed: s1,
                    ..Step::default()
                };
                for (c, m) in [m0, m0 + 1].into_iter().enumerate() {
                    let pulse = if u < 0.0 { -m } else { m };
                    let e = pulse.wrapping_shl(10).wrapping_add(sub.offset_q10);
                    let exc = if negate { e.wrapping_neg() } else { e };
                    let d = (exc as f32 - target) / 1024.0;
                    out.pulse[c] = pulse;
                    out.exc[c] = exc;
                    out.cost[c] = p.cost + d * d + f.lambda * m as f32;
                }
                *step = out;
            }
            // Each path keeps its better choice; the best second choice replaces the worst
            // path when it beats it.
            let mut worst = (f32::MIN, 0usize);
            let mut second = (f32::MAX, 0usize);
            let mut pick = [0usize; MAX_PATHS];
            for (j, st) in steps.iter().enumerate().take(n_paths) {
                let b = usize::from(st.cost[1] < st.cost[0]);
                pick[j] = b;
                if st.cost[b] > worst.0 {
                    worst = (st.cost[b], j);
                }
                if st.cost[1 - b] < second.0 {
                    second = (st.cost[1 - b], j);
                }
            }
            let mut replaced: Option<(usize, Path)> = None;
            if second.0 < worst.0 && n_paths > 1 {
                let (src, dst) = (second.1, worst.1);
                if let (Some(p), Some(st)) = (paths.get(src), steps.get(src)) {
                    let mut copy = p.clone();
                    apply(
                        &mut copy,
                        st,
                        1 - pick[src],
                        i,
                        (&warped, f.tilt),
                        sub.voiced,
                    );
                    replaced = Some((dst, copy));
                }
            }
            for (j, p) in paths.iter_mut().enumerate() {
                if let Some(st) = steps.get(j) {
                    apply(p, st, pick[j], i, (&warped, f.tilt), sub.voiced);
                }
            }
            if let Some((slot, copy)) =
                replaced.and_then(|(dst, copy)| paths.get_mut(dst).map(|slot| (slot, copy)))
            {
                *slot = copy;
            }
        }
        let Some(best) = paths.iter().min_by(|a, b| a.cost.total_cmp(&b.cost)) else {
            return;
        };
        for i in 0..sl {
            if let Some(o) = q.get_mut(sub.k * sub.sl + i) {
                *o = best.q[i];
            }
            if let Some(d) = self.s_ltp_q16.get_mut(base + i).filter(|_| sub.voiced) {
                *d = best.ltp[i];
            }
            vec_q10[i] = best.y[i];
            self.harm_pos = (self.harm_pos + 1) % HARM_LEN;
            if let Some(h) = self.harm.get_mut(self.harm_pos) {
                *h = best.w[i] / sub.to_q10;
            }
        }
        if sub.voiced {
            *ltp_idx += sl;
        }
        self.s_lpc_q14[MAX_LPC_ORDER..MAX_LPC_ORDER + sl]
            .copy_from_slice(&best.lpc[MAX_LPC_ORDER..MAX_LPC_ORDER + sl]);
        self.warped = best.warped;
        *seed = best.seed;
    }
}

/// Applies choice `c` of `st` to path `p` at sample `i` of the subframe.
/// `shaping` is the short-term shaping filter and the tilt.
fn apply(p: &mut Path, st: &Step, c: usize, i: usize, shaping: (&Warped<'_>, f32), voiced: bool) {
    let (warped, tilt) = shaping;
    let c = c.min(1);
    p.cost = st.cost[c];
    p.seed = st.seed.wrapping_add(st.pulse[c]);
    let r = st.exc[c].wrapping_add(st.ltp_q10);
    let y = r.wrapping_add(st.lpc_q10);
    if let Some(v) = p.q.get_mut(i) {
        *v = st.pulse[c];
    }
    if let Some(v) = p.ltp.get_mut(i).filter(|_| voiced) {
        *v = r.wrapping_shl(6);
    }
    if let Some(v) = p.y.get_mut(i) {
        *v = y;
    }
    if let Some(v) = p.lpc.get_mut(MAX_LPC_ORDER + i) {
        *v = y.wrapping_shl(4);
    }
    let err = y as f32 - st.xin;
    let w = warped.gain * err - st.st + tilt * p.prev_w;
    warped.commit(&mut p.warped, &st.zero, err);
    p.prev_w = w;
    if let Some(v) = p.w.get_mut(i) {
        *v = w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The feedback the quantiser computes before each sample plus the sample's own share
    /// (`gain * e`) is the warped filter `F(D) e = e - sum shape[k] D^(k+1) e`, with every
    /// `D^k e` computed by running `e` through k all-pass sections.
    #[test]
    fn warped_feedback_is_the_warped_filter() {
        let mut shape = [0f32; MAX_LPC_ORDER];
        for (k, c) in shape.iter_mut().enumerate().take(10) {
            *c = 0.6 * (-0.55f32).powi(k as i32 + 1);
        }
        let e: Vec<f32> = (0..300u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 16) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        for warp in [0.0f32, 0.24, 0.36] {
            let filter = Warped::new(&shape, warp);
            // D^k e for k = 0..=10, sample by sample: y[n] = x[n-1] - warp x[n] + warp y[n-1].
            let mut copies = vec![e.clone()];
            for k in 1..=10 {
                let prev: &Vec<f32> = &copies[k - 1];
                let mut y = vec![0f32; e.len()];
                for n in 0..e.len() {
                    let x1 = if n > 0 { prev[n - 1] } else { 0.0 };
                    let y1 = if n > 0 { y[n - 1] } else { 0.0 };
                    y[n] = x1 - warp * prev[n] + warp * y1;
                }
                copies.push(y);
            }
            let mut state = [0f32; WARP_LEN];
            for n in 0..e.len() {
                let mut zero = [0f32; WARP_LEN];
                let st = filter.predict(&state, &mut zero);
                filter.commit(&mut state, &zero, e[n]);
                let got = filter.gain * e[n] - st;
                let want = e[n] - (0..10).map(|k| shape[k] * copies[k + 1][n]).sum::<f32>();
                assert!(
                    (got - want).abs() < 1e-4,
                    "warp {warp} n {n}: {got} vs {want}"
                );
            }
            // Unwarped, the sections are plain delays and the filter starts with 1.
            assert_eq!(
                filter.gain == 1.0,
                warp == 0.0,
                "warp {warp}: {}",
                filter.gain
            );
        }
    }

    /// A shaping state left at NaN or infinity (it cannot get there from the analysis's
    /// filters, but nothing may stay stuck there) is started afresh at the next subframe.
    #[test]
    fn a_non_finite_shaping_state_is_reset() {
        let shape = [[
            0.5f32, -0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ]; NB_SUBFR];
        let x: Vec<f32> = (0..160).map(|i| 1000.0 * (i as f32 * 0.3).sin()).collect();
        for paths in [1, 4] {
            let mut nsq = NsqState::new();
            nsq.warped[3] = f32::NAN;
            nsq.warped[5] = f32::INFINITY;
            let frame = NsqFrame {
                frame_length: 160,
                subfr_length: 40,
                order: 10,
                sigtype: 1,
                quant_offset_type: 0,
                gains_q16: [50 << 16; NB_SUBFR],
                pred_coef_q12: [[0; MAX_LPC_ORDER]; 2],
                interpolated: false,
                ltp_coef_q14: [0; LTP_ORDER * NB_SUBFR],
                pitch_l: [0; NB_SUBFR],
                ltp_scale_q14: 15565,
                seed: 0,
                shape: &shape,
                harm_gain: [0.0; NB_SUBFR],
                warp: 0.1,
                tilt: 0.5,
                dead_zone: 0.45,
                paths,
                lambda: 0.6,
                silent: false,
            };
            let mut q = [0i32; MAX_FRAME_LENGTH];
            let mut xq = [0i16; MAX_FRAME_LENGTH];
            nsq.quantize(&frame, &x, &mut q, &mut xq);
            assert!(nsq.warped.iter().all(|v| v.is_finite()), "paths {paths}");
            // The reconstruction follows the input (20 dB or more above the error).
            let signal: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
            let noise: f64 = x
                .iter()
                .zip(&xq)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum();
            assert!(signal > 100.0 * noise, "paths {paths}: {signal} / {noise}");
        }
    }
}
