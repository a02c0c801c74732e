//! Packet loss concealment (extrapolating the last good frame's pitch and LPC with decaying
//! gains and a noise excitation drawn from its residual), the energy-matched fade-in of the
//! first good frame after a loss, and comfort noise generation during losses.

#![forbid(unsafe_code)]

use super::fixed::{
    add_sat32, clz32, div32, lshift_sat32, rand, rshift_round, sat16, smlawb, smulbb, smulwb,
    smulww, sqrt_approx, sum_sqr_shift,
};
use super::lpc::{bwexpander, inverse_pred_gain_raw, nlsf_to_lpc_stable};
use super::params::FrameParams;
use super::synth::{lpc_synthesis_q14, ltp_pred};
use super::{Decoder, LTP_ORDER, MAX_FRAME_LENGTH, MAX_LPC_ORDER, NB_SUBFR, SIG_TYPE_VOICED};

const BWE_COEF_Q16: i32 = 64880;
const V_PITCH_GAIN_START_MIN_Q14: i32 = 11469;
const V_PITCH_GAIN_START_MAX_Q14: i32 = 15565;
const MAX_PITCH_LAG_MS: i32 = 18;
const RAND_BUF_SIZE: usize = 128;
const RAND_BUF_MASK: i32 = 127;
const LOG2_INV_LPC_GAIN_HIGH_THRES: u32 = 3;
const LOG2_INV_LPC_GAIN_LOW_THRES: u32 = 8;
const PITCH_DRIFT_FAC_Q16: i32 = 655;
const HARM_ATT_Q15: [i32; 2] = [32440, 31130];
const PLC_RAND_ATTENUATE_V_Q15: [i32; 2] = [31130, 26214];
const PLC_RAND_ATTENUATE_UV_Q15: [i32; 2] = [32440, 29491];
const CNG_BUF_MASK_MAX: usize = 255;
const CNG_GAIN_SMTH_Q16: i32 = 4634;
const CNG_NLSF_SMTH_Q16: i32 = 16348;

/// Concealment state.
#[derive(Clone)]
pub(crate) struct Plc {
    pub(crate) pitch_l_q8: i32,
    pub(crate) ltp_coef_q14: [i16; LTP_ORDER],
    pub(crate) prev_lpc_q12: [i16; MAX_LPC_ORDER],
    pub(crate) last_frame_lost: bool,
    pub(crate) rand_seed: i32,
    pub(crate) rand_scale_q14: i32,
    pub(crate) conc_energy: i32,
    pub(crate) conc_energy_shift: i32,
    pub(crate) prev_ltp_scale_q14: i32,
    pub(crate) prev_gain_q16: [i32; NB_SUBFR],
    pub(crate) fs_khz: i32,
}

/// Comfort noise state.
#[derive(Clone)]
pub(crate) struct Cng {
    pub(crate) exc_buf_q10: [i32; MAX_FRAME_LENGTH],
    pub(crate) smth_nlsf_q15: [i32; MAX_LPC_ORDER],
    pub(crate) synth_state: [i32; MAX_LPC_ORDER],
    pub(crate) smth_gain_q16: i32,
    pub(crate) rand_seed: i32,
    pub(crate) fs_khz: i32,
}

impl Plc {
    pub(crate) fn new() -> Self {
        Self {
            pitch_l_q8: 0,
            ltp_coef_q14: [0; LTP_ORDER],
            prev_lpc_q12: [0; MAX_LPC_ORDER],
            last_frame_lost: false,
            rand_seed: 0,
            rand_scale_q14: 0,
            conc_energy: 0,
            conc_energy_shift: 0,
            prev_ltp_scale_q14: 0,
            prev_gain_q16: [0; NB_SUBFR],
            fs_khz: 0,
        }
    }
}

impl Cng {
    pub(crate) fn new() -> Self {
        Self {
            exc_buf_q10: [0; MAX_FRAME_LENGTH],
            smth_nlsf_q15: [0; MAX_LPC_ORDER],
            synth_state: [0; MAX_LPC_ORDER],
            smth_gain_q16: 0,
            rand_seed: 0,
            fs_khz: 0,
        }
    }
}

impl Decoder {
    pub(crate) fn plc_reset(&mut self) {
        self.plc.pitch_l_q8 = (self.frame_length >> 1) as i32;
    }

    pub(crate) fn cng_reset(&mut self) {
        let step = div32(i32::from(i16::MAX), self.lpc_order as i32 + 1);
        let mut acc = 0;
        for v in self.cng.smth_nlsf_q15.iter_mut().take(self.lpc_order) {
            acc += step;
            *v = acc;
        }
        self.cng.smth_gain_q16 = 0;
        self.cng.rand_seed = 3_176_576;
    }

    /// PLC entry point: conceal a lost frame, or learn from a good one.
    pub(crate) fn plc(&mut self, ctrl: &mut FrameParams, signal: &mut [i16], lost: bool) {
        if self.fs_khz != self.plc.fs_khz {
            self.plc_reset();
            self.plc.fs_khz = self.fs_khz;
        }
        if lost {
            self.plc_conceal(ctrl, signal);
            self.loss_cnt += 1;
        } else {
            self.plc_update(ctrl);
        }
    }

    fn plc_update(&mut self, ctrl: &FrameParams) {
        let plc = &mut self.plc;
        self.prev_sigtype = ctrl.sigtype;
        let mut ltp_gain_q14 = 0i32;
        if ctrl.sigtype == SIG_TYPE_VOICED {
            let last_pitch = ctrl.pitch_l[NB_SUBFR - 1];
            let mut j = 0usize;
            while ((j * self.subfr_length) as i64) < i64::from(last_pitch) && j < NB_SUBFR {
                let sf = NB_SUBFR - 1 - j;
                let coefs = &ctrl.ltp_coef_q14[sf * LTP_ORDER..(sf + 1) * LTP_ORDER];
                let tmp: i32 = coefs.iter().map(|&c| i32::from(c)).sum();
                if tmp > ltp_gain_q14 {
                    ltp_gain_q14 = tmp;
                    plc.ltp_coef_q14.copy_from_slice(coefs);
                    plc.pitch_l_q8 = ctrl.pitch_l[sf].wrapping_shl(8);
                }
                j += 1;
            }
            plc.ltp_coef_q14 = [0; LTP_ORDER];
            plc.ltp_coef_q14[LTP_ORDER / 2] = ltp_gain_q14 as i16;
            if ltp_gain_q14 < V_PITCH_GAIN_START_MIN_Q14 {
                let scale_q10 = div32(V_PITCH_GAIN_START_MIN_Q14 << 10, ltp_gain_q14.max(1));
                for c in &mut plc.ltp_coef_q14 {
                    *c = (smulbb(i32::from(*c), scale_q10) >> 10) as i16;
                }
            } else if ltp_gain_q14 > V_PITCH_GAIN_START_MAX_Q14 {
                let scale_q14 = div32(V_PITCH_GAIN_START_MAX_Q14 << 14, ltp_gain_q14.max(1));
                for c in &mut plc.ltp_coef_q14 {
                    *c = (smulbb(i32::from(*c), scale_q14) >> 14) as i16;
                }
            }
        } else {
            plc.pitch_l_q8 = smulbb(self.fs_khz, 18) << 8;
            plc.ltp_coef_q14 = [0; LTP_ORDER];
        }
        let order = self.lpc_order;
        plc.prev_lpc_q12[..order].copy_from_slice(&ctrl.pred_coef_q12[1][..order]);
        plc.prev_ltp_scale_q14 = ctrl.ltp_scale_q14;
        plc.prev_gain_q16 = ctrl.gains_q16;
    }

    fn plc_conceal(&mut self, ctrl: &mut FrameParams, signal: &mut [i16]) {
        let fl = self.frame_length;
        let sl = self.subfr_length;
        let order = self.lpc_order;
        self.s_ltp_q16.copy_within(fl..2 * fl, 0);
        bwexpander(&mut self.plc.prev_lpc_q12[..order], BWE_COEF_Q16);

        let mut exc_buf = [0i16; MAX_FRAME_LENGTH];
        for (n, k) in (NB_SUBFR / 2..NB_SUBFR).enumerate() {
            for i in 0..sl {
                exc_buf[n * sl + i] =
                    (smulww(self.exc_q10[i + k * sl], self.plc.prev_gain_q16[k]) >> 10) as i16;
            }
        }
        let (energy1, shift1) = sum_sqr_shift(&exc_buf[..sl]);
        let (energy2, shift2) = sum_sqr_shift(&exc_buf[sl..2 * sl]);
        let rand_start = if (energy1 >> shift2) < (energy2 >> shift1) {
            (3 * sl).saturating_sub(RAND_BUF_SIZE)
        } else {
            fl.saturating_sub(RAND_BUF_SIZE)
        };

        let mut b_q14 = self.plc.ltp_coef_q14;
        let mut rand_scale_q14 = self.plc.rand_scale_q14;
        let att = (self.loss_cnt.clamp(0, 1)) as usize;
        let harm_gain_q15 = HARM_ATT_Q15[att];
        let mut rand_gain_q15 = if self.prev_sigtype == SIG_TYPE_VOICED {
            PLC_RAND_ATTENUATE_V_Q15[att]
        } else {
            PLC_RAND_ATTENUATE_UV_Q15[att]
        };
        if self.loss_cnt == 0 {
            rand_scale_q14 = 1 << 14;
            if self.prev_sigtype == SIG_TYPE_VOICED {
                for &b in &b_q14 {
                    rand_scale_q14 = i32::from((rand_scale_q14 - i32::from(b)) as i16);
                }
                rand_scale_q14 = rand_scale_q14.max(3277);
                rand_scale_q14 =
                    i32::from((smulbb(rand_scale_q14, self.plc.prev_ltp_scale_q14) >> 14) as i16);
            } else {
                let (inv_gain_q30, _stable) =
                    inverse_pred_gain_raw(&self.plc.prev_lpc_q12[..order]);
                let mut down = ((1 << 30) >> LOG2_INV_LPC_GAIN_HIGH_THRES).min(inv_gain_q30);
                down = ((1 << 30) >> LOG2_INV_LPC_GAIN_LOW_THRES).max(down);
                down <<= LOG2_INV_LPC_GAIN_HIGH_THRES;
                rand_gain_q15 = smulwb(down, rand_gain_q15) >> 14;
            }
        }

        let mut rand_seed = self.plc.rand_seed;
        let mut lag = rshift_round(self.plc.pitch_l_q8, 8);
        let mut ltp_idx = fl;
        let mut sig_q10 = [0i32; MAX_FRAME_LENGTH];
        for k in 0..NB_SUBFR {
            for i in 0..sl {
                rand_seed = rand(rand_seed);
                let idx = ((rand_seed >> 25) & RAND_BUF_MASK) as usize;
                let center = (ltp_idx as i64 - i64::from(lag) + (LTP_ORDER / 2) as i64) as usize;
                let ltp = ltp_pred(&self.s_ltp_q16, center, &b_q14);
                let noise = self.exc_q10.get(rand_start + idx).copied().unwrap_or(0);
                let mut exc = smulwb(noise, rand_scale_q14).wrapping_shl(2);
                exc = exc.wrapping_add(rshift_round(ltp, 4));
                if let Some(d) = self.s_ltp_q16.get_mut(ltp_idx) {
                    *d = exc.wrapping_shl(6);
                }
                ltp_idx += 1;
                sig_q10[k * sl + i] = exc;
            }
            for b in &mut b_q14 {
                *b = (smulbb(harm_gain_q15, i32::from(*b)) >> 15) as i16;
            }
            rand_scale_q14 = i32::from((smulbb(rand_scale_q14, rand_gain_q15) >> 15) as i16);
            self.plc.pitch_l_q8 = self
                .plc
                .pitch_l_q8
                .wrapping_add(smulwb(self.plc.pitch_l_q8, PITCH_DRIFT_FAC_Q16));
            self.plc.pitch_l_q8 = self
                .plc
                .pitch_l_q8
                .min(smulbb(MAX_PITCH_LAG_MS, self.fs_khz) << 8);
            lag = rshift_round(self.plc.pitch_l_q8, 8);
        }

        let a = self.plc.prev_lpc_q12;
        let exc = sig_q10;
        for k in 0..NB_SUBFR {
            lpc_synthesis_q14(
                &mut self.s_lpc_q14,
                &exc[k * sl..(k + 1) * sl],
                &a[..order],
                &mut sig_q10[k * sl..(k + 1) * sl],
            );
            self.s_lpc_q14.copy_within(sl..sl + MAX_LPC_ORDER, 0);
        }
        let gain = self.plc.prev_gain_q16[NB_SUBFR - 1];
        for (o, &s) in signal.iter_mut().zip(&sig_q10[..fl]) {
            *o = sat16(rshift_round(smulww(s, gain), 10));
        }
        self.plc.rand_seed = rand_seed;
        self.plc.rand_scale_q14 = rand_scale_q14;
        // The reference scales its stored LTP taps in place while concealing.
        self.plc.ltp_coef_q14 = b_q14;
        ctrl.pitch_l = [lag; NB_SUBFR];
    }

    /// Fades in the first good frame after a loss if it is louder than the concealment was.
    pub(crate) fn plc_glue_frames(&mut self, signal: &mut [i16]) {
        let plc = &mut self.plc;
        if self.loss_cnt != 0 {
            let (e, s) = sum_sqr_shift(signal);
            plc.conc_energy = e;
            plc.conc_energy_shift = s;
            plc.last_frame_lost = true;
            return;
        }
        if plc.last_frame_lost {
            let (mut energy, energy_shift) = sum_sqr_shift(signal);
            if energy_shift > plc.conc_energy_shift {
                plc.conc_energy >>= energy_shift - plc.conc_energy_shift;
            } else if energy_shift < plc.conc_energy_shift {
                energy >>= plc.conc_energy_shift - energy_shift;
            }
            if energy > plc.conc_energy {
                let lz = clz32(plc.conc_energy) - 1;
                plc.conc_energy = plc.conc_energy.wrapping_shl(lz as u32);
                energy >>= (24 - lz).max(0);
                let frac_q24 = div32(plc.conc_energy, energy.max(1));
                let mut gain_q12 = sqrt_approx(frac_q24);
                let slope_q12 = div32((1 << 12) - gain_q12, signal.len() as i32);
                for s in signal.iter_mut() {
                    *s = (gain_q12.wrapping_mul(i32::from(*s)) >> 12) as i16;
                    gain_q12 = (gain_q12 + slope_q12).min(1 << 12);
                }
            }
        }
        plc.last_frame_lost = false;
    }

    /// Updates the comfort noise model from good unvoiced-activity frames and adds comfort
    /// noise to concealed frames.
    pub(crate) fn cng(&mut self, ctrl: &FrameParams, signal: &mut [i16]) {
        if self.fs_khz != self.cng.fs_khz {
            self.cng_reset();
            self.cng.fs_khz = self.fs_khz;
        }
        let order = self.lpc_order;
        let sl = self.subfr_length;
        if self.loss_cnt == 0 && self.vad_flag == 0 {
            for i in 0..order {
                let c = &mut self.cng.smth_nlsf_q15[i];
                *c = c.wrapping_add(smulwb(
                    self.prev_nlsf_q15[i].wrapping_sub(*c),
                    CNG_NLSF_SMTH_Q16,
                ));
            }
            let mut max_gain = 0;
            let mut subfr = 0;
            for (i, &g) in ctrl.gains_q16.iter().enumerate() {
                if g > max_gain {
                    max_gain = g;
                    subfr = i;
                }
            }
            self.cng.exc_buf_q10.copy_within(0..(NB_SUBFR - 1) * sl, sl);
            self.cng.exc_buf_q10[..sl].copy_from_slice(&self.exc_q10[subfr * sl..(subfr + 1) * sl]);
            for &g in &ctrl.gains_q16 {
                self.cng.smth_gain_q16 = self.cng.smth_gain_q16.wrapping_add(smulwb(
                    g.wrapping_sub(self.cng.smth_gain_q16),
                    CNG_GAIN_SMTH_Q16,
                ));
            }
        }
        if self.loss_cnt != 0 {
            let len = signal.len();
            let mut cng_sig = [0i16; MAX_FRAME_LENGTH];
            let mut mask = CNG_BUF_MASK_MAX;
            while mask > len {
                mask >>= 1;
            }
            let mut seed = self.cng.rand_seed;
            for c in cng_sig.iter_mut().take(len) {
                seed = rand(seed);
                let idx = ((seed >> 24) as usize) & mask;
                let e = self.cng.exc_buf_q10.get(idx).copied().unwrap_or(0);
                *c = sat16(rshift_round(smulww(e, self.cng.smth_gain_q16), 10));
            }
            self.cng.rand_seed = seed;
            let mut lpc = [0i16; MAX_LPC_ORDER];
            let nlsf = self.cng.smth_nlsf_q15;
            nlsf_to_lpc_stable(&mut lpc[..order], &nlsf[..order]);
            lpc_synthesis(
                &mut cng_sig[..len],
                &lpc[..order],
                1 << 26,
                &mut self.cng.synth_state[..order],
            );
            for (s, &c) in signal.iter_mut().zip(&cng_sig[..len]) {
                *s = sat16(i32::from(*s) + i32::from(c));
            }
        } else {
            self.cng.synth_state[..order].fill(0);
        }
    }
}

/// All-pole synthesis in place, with the state in Q14 (`state[order-1]` is the newest).
fn lpc_synthesis(sig: &mut [i16], a_q12: &[i16], gain_q26: i32, state: &mut [i32]) {
    let order = a_q12.len();
    if order == 0 || state.len() < order {
        return;
    }
    for s in sig.iter_mut() {
        let mut acc = 0i32;
        for (j, &a) in a_q12.iter().enumerate() {
            acc = smlawb(acc, state[order - 1 - j], i32::from(a));
        }
        state.copy_within(1..order, 0);
        acc = add_sat32(acc, smulwb(gain_q26, i32::from(*s)));
        *s = sat16(rshift_round(acc, 10));
        state[order - 1] = lshift_sat32(acc, 4);
    }
}
