//! Synthesis: excitation from pulses (with the pseudo-random sign dither), long-term
//! (pitch) prediction with re-whitening of the past output when the LPC filter changes,
//! short-term LPC synthesis, and gain scaling.

#![forbid(unsafe_code)]

use super::fixed::{
    div32_var_q, inverse32_var_q, rand, rshift_round, sat16, smlabb, smlawb, smulbb, smulwb, smulww,
};
use super::params::FrameParams;
use super::tables::QUANTIZATION_OFFSETS_Q10;
use super::{Decoder, LTP_ORDER, MAX_FRAME_LENGTH, MAX_LPC_ORDER, NB_SUBFR, SIG_TYPE_VOICED};

/// One sample of the 5-tap LTP filter around `center` in `s_ltp_q16`: taps at `center`,
/// `center - 1`, ... `center - 4` times `b[0]` ... `b[4]` (0 where out of range).
#[inline(always)]
pub(crate) fn ltp_pred(s: &[i32], center: usize, b: &[i16]) -> i32 {
    let Some(window) = center
        .checked_sub(LTP_ORDER - 1)
        .and_then(|start| s.get(start..=center))
    else {
        return ltp_pred_slow(s, center, b);
    };
    let mut acc = 0i32;
    for (&x, &c) in window.iter().rev().zip(b) {
        acc = smlawb(acc, x, i32::from(c));
    }
    acc
}

#[cold]
fn ltp_pred_slow(s: &[i32], center: usize, b: &[i16]) -> i32 {
    let mut acc = 0i32;
    for (k, &c) in b.iter().enumerate() {
        let x = center
            .checked_sub(k)
            .and_then(|i| s.get(i))
            .copied()
            .unwrap_or(0);
        acc = smlawb(acc, x, i32::from(c));
    }
    acc
}

/// One LPC prediction: `state[pos - 1 - j]` times `a[j]`, summed over the filter order.
#[inline(always)]
pub(crate) fn lpc_pred(state: &[i32], pos: usize, a: &[i16]) -> i32 {
    let Some(window) = pos
        .checked_sub(a.len())
        .and_then(|start| state.get(start..pos))
    else {
        return 0;
    };
    let mut acc = 0i32;
    for (&x, &c) in window.iter().rev().zip(a) {
        acc = smlawb(acc, x, i32::from(c));
    }
    acc
}

/// Short-term synthesis of `res` (Q10) into `out` (Q10), with the state in Q14 at
/// `state[MAX_LPC_ORDER..]` following the `MAX_LPC_ORDER` previous values.
///
/// The newest state value is kept in a register rather than reloaded: a vector load that
/// spans a value stored one iteration earlier stalls store forwarding (measured: the loop ran
/// slower than the reference's scalar one). The sum is the same (wrapping adds commute).
#[inline(always)]
pub(crate) fn lpc_synthesis_q14(state: &mut [i32], res: &[i32], a: &[i16], out: &mut [i32]) {
    let Some((&a0, rest)) = a.split_first() else {
        return;
    };
    let mut last = state.get(MAX_LPC_ORDER - 1).copied().unwrap_or(0);
    for (i, (o, &r)) in out.iter_mut().zip(res).enumerate() {
        let pos = MAX_LPC_ORDER + i;
        let pred = smulwb(last, i32::from(a0)).wrapping_add(lpc_pred(state, pos - 1, rest));
        *o = r.wrapping_add(pred);
        last = o.wrapping_shl(4);
        if let Some(s) = state.get_mut(pos) {
            *s = last;
        }
    }
}

impl Decoder {
    /// Runs synthesis for one decoded frame and writes `frame_length` samples to `xq`.
    pub(crate) fn decode_core(
        &mut self,
        ctrl: &mut FrameParams,
        xq: &mut [i16],
        q: &[i32; MAX_FRAME_LENGTH],
    ) {
        let fl = self.frame_length;
        let sl = self.subfr_length;
        let order = self.lpc_order;
        let offset_q10 = i32::from(
            QUANTIZATION_OFFSETS_Q10
                .get(ctrl.sigtype * 2 + ctrl.quant_offset_type)
                .copied()
                .unwrap_or(0),
        );
        let interp = ctrl.nlsf_interp_coef_q2 < 4;

        let mut seed = ctrl.seed;
        for i in 0..fl {
            seed = rand(seed);
            let dither = seed >> 31;
            let e = (q[i].wrapping_shl(10)).wrapping_add(offset_q10);
            self.exc_q10[i] = (e ^ dither).wrapping_sub(dither);
            seed = seed.wrapping_add(q[i]);
        }

        let mut s_ltp = [0i16; MAX_FRAME_LENGTH];
        let mut ltp_idx = fl;
        let mut lag = 0i32;
        let mut vec_q10 = [0i32; MAX_FRAME_LENGTH / NB_SUBFR];
        for k in 0..NB_SUBFR {
            let a_q12 = ctrl.pred_coef_q12[k >> 1];
            let gain_q16 = ctrl.gains_q16[k];
            let mut sigtype = ctrl.sigtype;
            let inv_gain_q16 = inverse32_var_q(gain_q16.max(1), 32).min(i32::from(i16::MAX));
            let gain_adj_q16 = if inv_gain_q16 != self.prev_inv_gain_q16 {
                div32_var_q(inv_gain_q16, self.prev_inv_gain_q16, 16)
            } else {
                1 << 16
            };
            if self.loss_cnt != 0
                && self.prev_sigtype == SIG_TYPE_VOICED
                && ctrl.sigtype != SIG_TYPE_VOICED
                && k < NB_SUBFR / 2
            {
                let b = &mut ctrl.ltp_coef_q14[k * LTP_ORDER..(k + 1) * LTP_ORDER];
                b.fill(0);
                b[LTP_ORDER / 2] = 1 << 12;
                sigtype = SIG_TYPE_VOICED;
                ctrl.pitch_l[k] = self.lag_prev;
            }
            let b_q14: [i16; LTP_ORDER] = {
                let mut b = [0i16; LTP_ORDER];
                b.copy_from_slice(&ctrl.ltp_coef_q14[k * LTP_ORDER..(k + 1) * LTP_ORDER]);
                b
            };
            if sigtype == SIG_TYPE_VOICED {
                lag = ctrl.pitch_l[k];
            }
            rescale_states(
                &mut self.s_ltp_q16,
                &mut self.s_lpc_q14,
                &self.out_buf,
                &mut s_ltp,
                &SubframeStart {
                    k,
                    frame_length: fl,
                    order,
                    voiced: sigtype == SIG_TYPE_VOICED,
                    rewhiten: k & (3 - (usize::from(interp) << 1)) == 0,
                    lag,
                    a_q12: &a_q12,
                    inv_gain_q16,
                    gain_adj_q16,
                    ltp_scale_q14: ctrl.ltp_scale_q14,
                    ltp_idx,
                },
            );
            self.prev_inv_gain_q16 = inv_gain_q16;

            let exc = &self.exc_q10[k * sl..(k + 1) * sl];
            let res = &mut self.res_q10[k * sl..(k + 1) * sl];
            if sigtype == SIG_TYPE_VOICED {
                for i in 0..sl {
                    let center =
                        (ltp_idx as i64 - i64::from(lag) + (LTP_ORDER / 2) as i64) as usize;
                    let pred = ltp_pred(&self.s_ltp_q16, center, &b_q14);
                    res[i] = exc[i].wrapping_add(rshift_round(pred, 4));
                    if let Some(d) = self.s_ltp_q16.get_mut(ltp_idx) {
                        *d = res[i].wrapping_shl(6);
                    }
                    ltp_idx += 1;
                }
            } else {
                res.copy_from_slice(exc);
            }

            lpc_synthesis_q14(
                &mut self.s_lpc_q14,
                res,
                &a_q12[..order],
                &mut vec_q10[..sl],
            );
            let out = &mut self.out_buf[fl + k * sl..fl + (k + 1) * sl];
            for i in 0..sl {
                out[i] = sat16(rshift_round(smulww(vec_q10[i], gain_q16), 10));
            }
            self.s_lpc_q14.copy_within(sl..sl + MAX_LPC_ORDER, 0);
        }
        if let (Some(dst), Some(src)) = (xq.get_mut(..fl), self.out_buf.get(fl..2 * fl)) {
            dst.copy_from_slice(src);
        }
    }
}

/// MA prediction-error filter of `len` samples of `input[from..]` into `out[at..]`.
pub(crate) fn ma_prediction(
    input: &[i16],
    from: usize,
    b: &[i16],
    state: &mut [i32; MAX_LPC_ORDER],
    out: &mut [i16],
    at: usize,
    len: usize,
) {
    let order = b.len();
    if order == 0 {
        return;
    }
    for k in 0..len {
        let in16 = i32::from(input.get(from + k).copied().unwrap_or(0));
        let out32 = rshift_round(in16.wrapping_shl(12).wrapping_sub(state[0]), 12);
        for d in 0..order - 1 {
            state[d] = smlabb(state[d + 1], in16, i32::from(b[d]));
        }
        state[order - 1] = smulbb(in16, i32::from(b[order - 1]));
        if let Some(o) = out.get_mut(at + k) {
            *o = sat16(out32);
        }
    }
}

/// Where a subframe starts, for [`rescale_states`].
pub(crate) struct SubframeStart<'a> {
    pub(crate) k: usize,
    pub(crate) frame_length: usize,
    pub(crate) order: usize,
    pub(crate) voiced: bool,
    /// Whether the LTP state is rebuilt from the past output with the new LPC filter.
    pub(crate) rewhiten: bool,
    pub(crate) lag: i32,
    pub(crate) a_q12: &'a [i16; MAX_LPC_ORDER],
    pub(crate) inv_gain_q16: i32,
    pub(crate) gain_adj_q16: i32,
    pub(crate) ltp_scale_q14: i32,
    /// Where the subframe's LTP samples start in `s_ltp_q16`.
    pub(crate) ltp_idx: usize,
}

/// The state update at the start of a subframe, as the reference decoder makes it (and the
/// encoder's quantiser tracks it): in voiced subframes the LTP state before `ltp_idx` is
/// re-whitened from the past output `out_buf` (through `s_ltp`) with the new filter and
/// gain, or rescaled for the gain change; then the LPC state is rescaled.
pub(crate) fn rescale_states(
    s_ltp_q16: &mut [i32],
    s_lpc_q14: &mut [i32],
    out_buf: &[i16],
    s_ltp: &mut [i16; MAX_FRAME_LENGTH],
    sub: &SubframeStart<'_>,
) {
    let fl = sub.frame_length;
    let n = usize::try_from(sub.lag).unwrap_or(0) + LTP_ORDER / 2;
    if sub.voiced && sub.rewhiten {
        let start = fl as i64 - i64::from(sub.lag) - sub.order as i64 - (LTP_ORDER / 2) as i64;
        let start = usize::try_from(start).unwrap_or(0);
        let mut filt_state = [0i32; MAX_LPC_ORDER];
        ma_prediction(
            out_buf,
            start + sub.k * (fl >> 2),
            &sub.a_q12[..sub.order],
            &mut filt_state,
            s_ltp,
            start,
            fl.saturating_sub(start),
        );
        let mut inv_gain_q32 = sub.inv_gain_q16.wrapping_shl(16);
        if sub.k == 0 {
            inv_gain_q32 = smulwb(inv_gain_q32, sub.ltp_scale_q14).wrapping_shl(2);
        }
        for i in 0..n {
            let (Some(dst), Some(src)) = (
                sub.ltp_idx.checked_sub(i + 1),
                fl.checked_sub(i + 1).and_then(|j| s_ltp.get(j)),
            ) else {
                break;
            };
            if let Some(d) = s_ltp_q16.get_mut(dst) {
                *d = smulwb(inv_gain_q32, i32::from(*src));
            }
        }
    } else if sub.voiced && sub.gain_adj_q16 != 1 << 16 {
        for i in 0..n {
            if let Some(d) = sub
                .ltp_idx
                .checked_sub(i + 1)
                .and_then(|j| s_ltp_q16.get_mut(j))
            {
                *d = smulww(sub.gain_adj_q16, *d);
            }
        }
    }
    for s in s_lpc_q14.iter_mut().take(MAX_LPC_ORDER) {
        *s = smulww(sub.gain_adj_q16, *s);
    }
}
