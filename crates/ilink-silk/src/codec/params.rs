//! Parameter decoding for one frame: sampling rate, signal type, gains, NLSF path and
//! interpolation, pitch lags and contour, LTP gains and scaling, seed, excitation pulses
//! (rate level, pulses per 16-sample block, shell tree splits, extra LSBs, signs), VAD flag and
//! frame termination.

#![forbid(unsafe_code)]

use super::fixed::{log2lin, smulwb};
use super::lpc::{bwexpander, nlsf_msvq_decode, nlsf_to_lpc_stable};
use super::range::RangeDecoder;
use super::tables as t;
use super::{Decoder, LTP_ORDER, MAX_FRAME_LENGTH, MAX_LPC_ORDER, NB_SUBFR, SIG_TYPE_VOICED};

const MIN_DELTA_GAIN_QUANT: i32 = -4;
const OFFSET_Q7: i32 = (6 * 128) / 6 + 16 * 128;
const INV_SCALE_Q16: i32 = (65536 * (((86 - 6) * 128) / 6)) / (64 - 1);
const SHELL_CODEC_FRAME_LENGTH: usize = 16;
const MAX_PULSES: usize = 18;
/// Most extra-LSB rounds per block accepted (the encoder uses a handful; 32 fill an `i32`).
const MAX_LSHIFTS: u32 = 64;
const N_RATE_LEVELS: usize = 10;
const BWE_AFTER_LOSS_Q16: i32 = 63570;
const PITCH_EST_MIN_LAG_MS: i32 = 2;

/// Everything decoded for one frame that synthesis needs.
#[derive(Clone)]
pub(crate) struct FrameParams {
    pub(crate) pitch_l: [i32; NB_SUBFR],
    pub(crate) gains_q16: [i32; NB_SUBFR],
    pub(crate) seed: i32,
    pub(crate) pred_coef_q12: [[i16; MAX_LPC_ORDER]; 2],
    pub(crate) ltp_coef_q14: [i16; LTP_ORDER * NB_SUBFR],
    pub(crate) ltp_scale_q14: i32,
    pub(crate) rate_level: usize,
    pub(crate) quant_offset_type: usize,
    pub(crate) sigtype: usize,
    pub(crate) nlsf_interp_coef_q2: i32,
}

impl Default for FrameParams {
    fn default() -> Self {
        Self {
            pitch_l: [0; NB_SUBFR],
            gains_q16: [0; NB_SUBFR],
            seed: 0,
            pred_coef_q12: [[0; MAX_LPC_ORDER]; 2],
            ltp_coef_q14: [0; LTP_ORDER * NB_SUBFR],
            ltp_scale_q14: 0,
            rate_level: 0,
            quant_offset_type: 0,
            sigtype: 0,
            nlsf_interp_coef_q2: 0,
        }
    }
}

fn sub(table: &[u16], start: usize) -> &[u16] {
    table.get(start..).unwrap_or(&[])
}

impl Decoder {
    /// Decodes the parameters and pulses of the next frame of the current packet.
    /// Errors are left in `self.rc.error`; the caller checks it.
    pub(crate) fn decode_parameters(
        &mut self,
        ctrl: &mut FrameParams,
        q: &mut [i32; MAX_FRAME_LENGTH],
    ) {
        if self.n_frames_decoded == 0 {
            let ix = self
                .rc
                .decode(&t::SAMPLING_RATES_CDF, t::SAMPLING_RATES_OFFSET);
            let Some(&fs) = t::SAMPLING_RATES_KHZ.get(ix) else {
                self.rc.set_error(super::range::RangeError::CdfOutOfRange);
                return;
            };
            self.set_fs(fs as i32);
        }
        let ix = if self.n_frames_decoded == 0 {
            self.rc
                .decode(&t::TYPE_OFFSET_CDF, t::TYPE_OFFSET_CDF_OFFSET)
        } else {
            let row = sub(&t::TYPE_OFFSET_JOINT_CDF, self.type_offset_prev * 5);
            self.rc.decode(row, t::TYPE_OFFSET_CDF_OFFSET)
        };
        ctrl.sigtype = (ix >> 1) & 1;
        ctrl.quant_offset_type = ix & 1;
        self.type_offset_prev = ix.min(3);

        // Gains.
        let mut gain_ix = [0i32; NB_SUBFR];
        gain_ix[0] = if self.n_frames_decoded == 0 {
            self.rc
                .decode(sub(&t::GAIN_CDF, ctrl.sigtype * 65), t::GAIN_CDF_OFFSET) as i32
        } else {
            self.rc.decode(&t::DELTA_GAIN_CDF, t::DELTA_GAIN_CDF_OFFSET) as i32
        };
        for g in gain_ix.iter_mut().skip(1) {
            *g = self.rc.decode(&t::DELTA_GAIN_CDF, t::DELTA_GAIN_CDF_OFFSET) as i32;
        }
        for (k, &ind) in gain_ix.iter().enumerate() {
            if k == 0 && self.n_frames_decoded == 0 {
                self.last_gain_index = ind;
            } else {
                self.last_gain_index = self
                    .last_gain_index
                    .wrapping_add(ind + MIN_DELTA_GAIN_QUANT);
            }
            ctrl.gains_q16[k] =
                log2lin((smulwb(INV_SCALE_Q16, self.last_gain_index) + OFFSET_Q7).min(3967));
        }

        // NLSFs.
        let cb = self.nlsf_codebook(ctrl.sigtype);
        let mut indices = [0usize; 10];
        for (s, index) in indices.iter_mut().enumerate().take(cb.stage_vectors.len()) {
            let cdf = sub(cb.cdf, cb.cdf_start.get(s).copied().unwrap_or(0));
            *index = self
                .rc
                .decode(cdf, cb.middle_idx.get(s).copied().unwrap_or(0));
        }
        let mut nlsf = [0i32; MAX_LPC_ORDER];
        let order = self.lpc_order;
        nlsf_msvq_decode(&mut nlsf, cb, &indices, order);

        ctrl.nlsf_interp_coef_q2 = self.rc.decode(
            &t::NLSF_INTERPOLATION_FACTOR_CDF,
            t::NLSF_INTERPOLATION_FACTOR_OFFSET,
        ) as i32;
        if self.first_frame_after_reset {
            ctrl.nlsf_interp_coef_q2 = 4;
        }
        nlsf_to_lpc_stable(&mut ctrl.pred_coef_q12[1][..order], &nlsf[..order]);
        if ctrl.nlsf_interp_coef_q2 < 4 {
            let mut nlsf0 = [0i32; MAX_LPC_ORDER];
            for i in 0..order {
                let prev = self.prev_nlsf_q15[i];
                nlsf0[i] = prev + ((ctrl.nlsf_interp_coef_q2 * (nlsf[i] - prev)) >> 2);
            }
            nlsf_to_lpc_stable(&mut ctrl.pred_coef_q12[0][..order], &nlsf0[..order]);
        } else {
            ctrl.pred_coef_q12[0] = ctrl.pred_coef_q12[1];
        }
        self.prev_nlsf_q15[..order].copy_from_slice(&nlsf[..order]);
        if self.loss_cnt != 0 {
            bwexpander(&mut ctrl.pred_coef_q12[0][..order], BWE_AFTER_LOSS_Q16);
            bwexpander(&mut ctrl.pred_coef_q12[1][..order], BWE_AFTER_LOSS_Q16);
        }

        if ctrl.sigtype == SIG_TYPE_VOICED {
            let (lag_cdf, lag_off): (&[u16], usize) = match self.fs_khz {
                8 => (&t::PITCH_LAG_NB_CDF, t::PITCH_LAG_NB_CDF_OFFSET),
                12 => (&t::PITCH_LAG_MB_CDF, t::PITCH_LAG_MB_CDF_OFFSET),
                16 => (&t::PITCH_LAG_WB_CDF, t::PITCH_LAG_WB_CDF_OFFSET),
                _ => (&t::PITCH_LAG_SWB_CDF, t::PITCH_LAG_SWB_CDF_OFFSET),
            };
            let lag_ix = self.rc.decode(lag_cdf, lag_off) as i32;
            let contour_ix = if self.fs_khz == 8 {
                self.rc
                    .decode(&t::PITCH_CONTOUR_NB_CDF, t::PITCH_CONTOUR_NB_CDF_OFFSET)
            } else {
                self.rc
                    .decode(&t::PITCH_CONTOUR_CDF, t::PITCH_CONTOUR_CDF_OFFSET)
            };
            let lag = PITCH_EST_MIN_LAG_MS * self.fs_khz + lag_ix;
            for (i, p) in ctrl.pitch_l.iter_mut().enumerate() {
                let delta = if self.fs_khz == 8 {
                    t::CB_LAGS_STAGE2.get(i * 11 + contour_ix)
                } else {
                    t::CB_LAGS_STAGE3.get(i * 34 + contour_ix)
                };
                *p = lag + i32::from(delta.copied().unwrap_or(0));
            }

            let per_index = self
                .rc
                .decode(&t::LTP_PER_INDEX_CDF, t::LTP_PER_INDEX_CDF_OFFSET);
            let (cdf, off, vq): (&[u16], usize, &[i16]) = match per_index {
                0 => (
                    &t::LTP_GAIN_CDF_0,
                    t::LTP_GAIN_CDF_OFFSETS[0],
                    &t::LTP_GAIN_VQ_0_Q14,
                ),
                1 => (
                    &t::LTP_GAIN_CDF_1,
                    t::LTP_GAIN_CDF_OFFSETS[1],
                    &t::LTP_GAIN_VQ_1_Q14,
                ),
                _ => (
                    &t::LTP_GAIN_CDF_2,
                    t::LTP_GAIN_CDF_OFFSETS[2],
                    &t::LTP_GAIN_VQ_2_Q14,
                ),
            };
            for k in 0..NB_SUBFR {
                let ix = self.rc.decode(cdf, off);
                for i in 0..LTP_ORDER {
                    ctrl.ltp_coef_q14[k * LTP_ORDER + i] =
                        vq.get(ix * LTP_ORDER + i).copied().unwrap_or(0);
                }
            }
            let ix = self.rc.decode(&t::LTP_SCALE_CDF, t::LTP_SCALE_OFFSET);
            ctrl.ltp_scale_q14 = i32::from(t::LTP_SCALES_Q14.get(ix).copied().unwrap_or(0));
        } else {
            ctrl.pitch_l = [0; NB_SUBFR];
            ctrl.ltp_coef_q14 = [0; LTP_ORDER * NB_SUBFR];
            ctrl.ltp_scale_q14 = 0;
        }

        ctrl.seed = self.rc.decode(&t::SEED_CDF, t::SEED_OFFSET) as i32;
        self.decode_pulses(ctrl, q);
        self.vad_flag = self.rc.decode(&t::VAD_FLAG_CDF, t::VAD_FLAG_OFFSET) as i32;
        self.frame_termination =
            self.rc
                .decode(&t::FRAME_TERMINATION_CDF, t::FRAME_TERMINATION_OFFSET) as i32;

        let left = self.rc.bytes_left();
        self.n_bytes_left = left;
        if left < 0 {
            self.rc
                .set_error(super::range::RangeError::ReadBeyondBuffer);
        }
        if left == 0 {
            self.rc.check_after_decoding();
        }
    }

    pub(crate) fn decode_pulses(
        &mut self,
        ctrl: &mut FrameParams,
        q: &mut [i32; MAX_FRAME_LENGTH],
    ) {
        let rc = &mut self.rc;
        ctrl.rate_level = rc.decode(
            sub(&t::RATE_LEVELS_CDF, ctrl.sigtype * 10),
            t::RATE_LEVELS_CDF_OFFSET,
        );
        let blocks = self.frame_length / SHELL_CODEC_FRAME_LENGTH;
        let mut sum_pulses = [0usize; MAX_FRAME_LENGTH / SHELL_CODEC_FRAME_LENGTH];
        let mut n_lshifts = [0u32; MAX_FRAME_LENGTH / SHELL_CODEC_FRAME_LENGTH];
        let cdf = sub(
            &t::PULSES_PER_BLOCK_CDF,
            ctrl.rate_level.min(N_RATE_LEVELS - 1) * 21,
        );
        let lsb_cdf = sub(&t::PULSES_PER_BLOCK_CDF, (N_RATE_LEVELS - 1) * 21);
        for i in 0..blocks {
            sum_pulses[i] = rc.decode(cdf, t::PULSES_PER_BLOCK_CDF_OFFSET);
            // After an error every symbol is 0, which ends the loop. A stream that keeps
            // asking for more LSBs (past the end of its bytes the decoder's state could cycle,
            // and the reference would loop for ever) is refused after MAX_LSHIFTS rounds.
            while sum_pulses[i] == MAX_PULSES + 1 {
                n_lshifts[i] += 1;
                if n_lshifts[i] > MAX_LSHIFTS {
                    rc.set_error(super::range::RangeError::CdfOutOfRange);
                    break;
                }
                sum_pulses[i] = rc.decode(lsb_cdf, t::PULSES_PER_BLOCK_CDF_OFFSET);
            }
        }
        for i in 0..blocks {
            let block = &mut q[i * SHELL_CODEC_FRAME_LENGTH..(i + 1) * SHELL_CODEC_FRAME_LENGTH];
            if sum_pulses[i] > 0 {
                shell_decoder(block, rc, sum_pulses[i]);
            } else {
                block.fill(0);
            }
        }
        for i in 0..blocks {
            let n = n_lshifts[i];
            if n > 0 {
                for v in &mut q[i * SHELL_CODEC_FRAME_LENGTH..(i + 1) * SHELL_CODEC_FRAME_LENGTH] {
                    let mut abs_q = *v;
                    for _ in 0..n {
                        abs_q = abs_q.wrapping_shl(1);
                        abs_q = abs_q.wrapping_add(rc.decode(&t::LSB_CDF, 1) as i32);
                    }
                    *v = abs_q;
                }
            }
        }
        // Signs.
        let i =
            (N_RATE_LEVELS - 1) * ((ctrl.sigtype << 1) + ctrl.quant_offset_type) + ctrl.rate_level;
        let cdf = [0, t::SIGN_CDF.get(i).copied().unwrap_or(0), 65535];
        for v in &mut q[..self.frame_length] {
            if *v > 0 {
                let bit = rc.decode(&cdf, 1) as i32;
                *v = v.wrapping_mul((bit << 1) - 1);
            }
        }
    }
}

fn decode_split(rc: &mut RangeDecoder, p: usize, table: &[u16]) -> (usize, usize) {
    if p == 0 {
        return (0, 0);
    }
    let off = t::SHELL_CODE_TABLE_OFFSETS.get(p).copied().unwrap_or(0);
    let child = rc.decode(sub(table, off), p >> 1);
    (child, p.wrapping_sub(child))
}

/// Splits `total` pulses over 16 positions by a binary tree of splits (8+8, 4+4, 2+2, 1+1).
fn shell_decoder(out: &mut [i32], rc: &mut RangeDecoder, total: usize) {
    let (t0, t1, t2, t3) = (
        &t::SHELL_CODE_TABLE0[..],
        &t::SHELL_CODE_TABLE1[..],
        &t::SHELL_CODE_TABLE2[..],
        &t::SHELL_CODE_TABLE3[..],
    );
    let mut p3 = [0usize; 2];
    let mut p2 = [0usize; 4];
    let mut p1 = [0usize; 8];
    let mut p0 = [0usize; 16];
    (p3[0], p3[1]) = decode_split(rc, total, t3);
    // Depth-first order, as the bitstream has it.
    for a in 0..2 {
        (p2[2 * a], p2[2 * a + 1]) = decode_split(rc, p3[a], t2);
        for b in 2 * a..2 * a + 2 {
            (p1[2 * b], p1[2 * b + 1]) = decode_split(rc, p2[b], t1);
            for c in 2 * b..2 * b + 2 {
                (p0[2 * c], p0[2 * c + 1]) = decode_split(rc, p1[c], t0);
            }
        }
    }
    for (o, &v) in out.iter_mut().zip(&p0) {
        *o = v as i32;
    }
}
