//! Conversion from the internal rate (8, 12, 16 or 24 kHz) to the output rate, with the
//! reference's filters so that the output is sample-exact:
//!
//! * equal rates: copy;
//! * exactly 2x up: two allpass sections per output phase plus a notch just above Nyquist;
//! * other ratios up: the same 2x upsampler, then fractional interpolation with a 6-tap FIR
//!   (144 phases);
//! * down by 3:4, 2:3, 1:2 or 1:3: a second-order AR prefilter, then a symmetric 12-tap FIR
//!   with 1, 2 or 3 interpolation phases.
//!
//! Each 10 ms batch restarts its interpolation position at zero, as the reference does.

#![forbid(unsafe_code)]

use super::fixed::{rshift_round, sat16, smlabb, smlawb, smulbb, smulwb, smulww};
use super::tables as t;

const BATCH_MAX: usize = 480;
const ORDER_FIR_144: usize = 6;
const DOWN_ORDER_FIR: usize = 12;

#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
enum Kind {
    #[default]
    Copy,
    Up2,
    IirFir,
    DownFir,
}

/// Resampler state for one rate pair.
#[derive(Clone, Default)]
pub(crate) struct Resampler {
    kind: Kind,
    s_iir: [i32; 6],
    s_fir_i16: [i16; 2 * ORDER_FIR_144],
    s_fir_i32: [i32; DOWN_ORDER_FIR],
    batch_size: usize,
    inv_ratio_q16: i32,
    fir_fracs: i32,
    coefs: &'static [i16],
}

impl Resampler {
    /// A resampler from `fs_in` to `fs_out` Hz (`fs_in` one of 8, 12, 16, 24 kHz).
    pub(crate) fn new(fs_in: i32, fs_out: i32) -> Self {
        let mut s = Self {
            batch_size: usize::try_from(fs_in / 100).unwrap_or(0).min(BATCH_MAX),
            ..Self::default()
        };
        let mut up2 = 0;
        if fs_out > fs_in {
            if fs_out == 2 * fs_in {
                s.kind = Kind::Up2;
            } else {
                s.kind = Kind::IirFir;
                up2 = 1;
            }
        } else if fs_out < fs_in {
            s.kind = Kind::DownFir;
            let (fracs, coefs): (i32, &'static [i16]) = if fs_out * 4 == fs_in * 3 {
                (3, &t::RESAMPLER_3_4_COEFS)
            } else if fs_out * 3 == fs_in * 2 {
                (2, &t::RESAMPLER_2_3_COEFS)
            } else if fs_out * 2 == fs_in {
                (1, &t::RESAMPLER_1_2_COEFS)
            } else if fs_out * 8 == fs_in * 3 {
                (3, &t::RESAMPLER_3_8_COEFS)
            } else {
                (1, &t::RESAMPLER_1_3_COEFS)
            };
            s.fir_fracs = fracs;
            s.coefs = coefs;
        }
        let mut inv = ((fs_in << (14 + up2)) / fs_out.max(1)) << 2;
        while smulww(inv, fs_out) < fs_in << up2 {
            inv += 1;
        }
        s.inv_ratio_q16 = inv;
        s
    }

    /// Resamples `input` into `out`; writes past `out`'s end are dropped.
    pub(crate) fn process(&mut self, out: &mut [i16], input: &[i16]) {
        match self.kind {
            Kind::Copy => {
                for (o, &i) in out.iter_mut().zip(input) {
                    *o = i;
                }
            }
            Kind::Up2 => {
                let mut n = 0;
                up2_hq(&mut self.s_iir, input, |v| {
                    if let Some(o) = out.get_mut(n) {
                        *o = v;
                    }
                    n += 1;
                });
            }
            Kind::IirFir => self.iir_fir(out, input),
            Kind::DownFir => self.down_fir(out, input),
        }
    }

    fn iir_fir(&mut self, out: &mut [i16], mut input: &[i16]) {
        let mut buf = [0i16; 2 * BATCH_MAX + 2 * ORDER_FIR_144];
        buf[..2 * ORDER_FIR_144].copy_from_slice(&self.s_fir_i16);
        let inc = self.inv_ratio_q16.max(1);
        let mut written = 0usize;
        loop {
            let n = input.len().min(self.batch_size.max(1));
            let (batch, rest) = input.split_at(n);
            let mut w = ORDER_FIR_144;
            up2_hq(&mut self.s_iir, batch, |v| {
                if let Some(b) = buf.get_mut(w) {
                    *b = v;
                }
                w += 1;
            });
            let max_index_q16 = (n as i32) << 17;
            let mut index_q16 = 0i32;
            while index_q16 < max_index_q16 {
                let table_index = smulwb(index_q16 & 0xFFFF, 144) as usize;
                let p = (index_q16 >> 16) as usize;
                let mirror = 143usize.saturating_sub(table_index);
                let fir = &t::RESAMPLER_FRAC_FIR_144;
                if let (Some(x), Some(c), Some(m)) = (
                    buf.get(p..p + 6),
                    fir.get(table_index * 3..table_index * 3 + 3),
                    fir.get(mirror * 3..mirror * 3 + 3),
                ) {
                    let x = |k: usize| i32::from(x[k]);
                    let mut res_q15 = smulbb(x(0), i32::from(c[0]));
                    res_q15 = smlabb(res_q15, x(1), i32::from(c[1]));
                    res_q15 = smlabb(res_q15, x(2), i32::from(c[2]));
                    res_q15 = smlabb(res_q15, x(3), i32::from(m[2]));
                    res_q15 = smlabb(res_q15, x(4), i32::from(m[1]));
                    res_q15 = smlabb(res_q15, x(5), i32::from(m[0]));
                    if let Some(o) = out.get_mut(written) {
                        *o = sat16(rshift_round(res_q15, 15));
                    }
                }
                written += 1;
                index_q16 = index_q16.wrapping_add(inc);
            }
            let keep = 2 * n;
            buf.copy_within(keep..keep + 2 * ORDER_FIR_144, 0);
            input = rest;
            if input.is_empty() {
                break;
            }
        }
        self.s_fir_i16.copy_from_slice(&buf[..2 * ORDER_FIR_144]);
    }

    fn down_fir(&mut self, out: &mut [i16], mut input: &[i16]) {
        let mut buf = [0i32; BATCH_MAX + DOWN_ORDER_FIR];
        buf[..DOWN_ORDER_FIR].copy_from_slice(&self.s_fir_i32);
        let coefs = self.coefs;
        let a = |k: usize| i32::from(coefs.get(k).copied().unwrap_or(0));
        let fir = |k: usize| i32::from(coefs.get(2 + k).copied().unwrap_or(0));
        let inc = self.inv_ratio_q16.max(1);
        let mut written = 0usize;
        loop {
            let n = input.len().min(self.batch_size.max(1));
            let (batch, rest) = input.split_at(n);
            // Second-order AR prefilter, output in Q8.
            for (k, &x) in batch.iter().enumerate() {
                let out32 = self.s_iir[0].wrapping_add(i32::from(x) << 8);
                buf[DOWN_ORDER_FIR + k] = out32;
                let out32 = out32.wrapping_shl(2);
                self.s_iir[0] = smlawb(self.s_iir[1], out32, a(0));
                self.s_iir[1] = smulwb(out32, a(1));
            }
            let max_index_q16 = (n as i32) << 16;
            let mut index_q16 = 0i32;
            while index_q16 < max_index_q16 {
                let p = (index_q16 >> 16) as usize;
                let x = |k: usize| buf.get(p + k).copied().unwrap_or(0);
                let res_q6 = if self.fir_fracs == 1 {
                    let mut r = smulwb(x(0).wrapping_add(x(11)), fir(0));
                    for k in 1..6 {
                        r = smlawb(r, x(k).wrapping_add(x(11 - k)), fir(k));
                    }
                    r
                } else {
                    let ind = smulwb(index_q16 & 0xFFFF, self.fir_fracs) as usize;
                    let row = DOWN_ORDER_FIR / 2 * ind;
                    let mut r = smulwb(x(0), fir(row));
                    for k in 1..6 {
                        r = smlawb(r, x(k), fir(row + k));
                    }
                    let row =
                        DOWN_ORDER_FIR / 2 * (self.fir_fracs as usize).saturating_sub(1 + ind);
                    for k in 0..6 {
                        r = smlawb(r, x(11 - k), fir(row + k));
                    }
                    r
                };
                if let Some(o) = out.get_mut(written) {
                    *o = sat16(rshift_round(res_q6, 6));
                }
                written += 1;
                index_q16 = index_q16.wrapping_add(inc);
            }
            buf.copy_within(n..n + DOWN_ORDER_FIR, 0);
            input = rest;
            if input.is_empty() {
                break;
            }
        }
        self.s_fir_i32.copy_from_slice(&buf[..DOWN_ORDER_FIR]);
    }
}

/// High-quality 2x upsampler; calls `emit` for each output sample in order.
fn up2_hq(s: &mut [i32; 6], input: &[i16], mut emit: impl FnMut(i16)) {
    let c0 = &t::RESAMPLER_UP2_HQ_0;
    let c1 = &t::RESAMPLER_UP2_HQ_1;
    let notch = &t::RESAMPLER_UP2_HQ_NOTCH;
    let c = |v: i16| i32::from(v);
    for &x in input {
        let in32 = i32::from(x) << 10;
        // Even output sample.
        let y = in32.wrapping_sub(s[0]);
        let xx = smulwb(y, c(c0[0]));
        let out1 = s[0].wrapping_add(xx);
        s[0] = in32.wrapping_add(xx);
        let y = out1.wrapping_sub(s[1]);
        let xx = smlawb(y, y, c(c0[1]));
        let mut out2 = s[1].wrapping_add(xx);
        s[1] = out1.wrapping_add(xx);
        out2 = smlawb(out2, s[5], c(notch[2]));
        out2 = smlawb(out2, s[4], c(notch[1]));
        let out1 = smlawb(out2, s[4], c(notch[0]));
        s[5] = out2.wrapping_sub(s[5]);
        emit(sat16(smlawb(256, out1, c(notch[3])) >> 9));
        // Odd output sample.
        let y = in32.wrapping_sub(s[2]);
        let xx = smulwb(y, c(c1[0]));
        let out1 = s[2].wrapping_add(xx);
        s[2] = in32.wrapping_add(xx);
        let y = out1.wrapping_sub(s[3]);
        let xx = smlawb(y, y, c(c1[1]));
        let mut out2 = s[3].wrapping_add(xx);
        s[3] = out1.wrapping_add(xx);
        out2 = smlawb(out2, s[4], c(notch[2]));
        out2 = smlawb(out2, s[5], c(notch[1]));
        let out1 = smlawb(out2, s[5], c(notch[0]));
        s[4] = out2.wrapping_sub(s[4]);
        emit(sat16(smlawb(256, out1, c(notch[3])) >> 9));
    }
}
