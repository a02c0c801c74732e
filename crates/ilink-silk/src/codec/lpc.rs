//! From normalised line spectral frequencies (NLSFs) to stable LPC filters: the multi-stage
//! NLSF codebook sum, NLSF stabilisation, NLSF to prediction coefficients via the P/Q
//! polynomials, and bandwidth expansion until the filter is stable (checked through the
//! reflection coefficients of the step-down recursion).

#![forbid(unsafe_code)]

use super::fixed::{clz32, div32, inverse32_var_q, rshift_round, rshift_round64, smmul, smulww};
use super::tables::LSF_COS_TAB_Q12;
use super::{MAX_LPC_ORDER, NlsfCodebook};

/// Sums the codebook vectors of every stage for `indices`, then stabilises the result.
pub(crate) fn nlsf_msvq_decode(
    out: &mut [i32; MAX_LPC_ORDER],
    cb: &NlsfCodebook,
    indices: &[usize],
    order: usize,
) {
    out.fill(0);
    let mut first_vector = 0usize;
    for (stage, (&n_vectors, &index)) in cb.stage_vectors.iter().zip(indices).enumerate() {
        let start = (first_vector + index.min(n_vectors.saturating_sub(1))) * order;
        if let Some(vector) = cb.vectors.get(start..start + order) {
            for (o, &v) in out.iter_mut().zip(vector) {
                *o = if stage == 0 {
                    i32::from(v)
                } else {
                    o.wrapping_add(i32::from(v))
                };
            }
        }
        first_vector += n_vectors;
    }
    nlsf_stabilize(&mut out[..order], cb.ndelta_min);
}

/// Moves NLSFs apart until each is at least its minimum distance from its neighbours.
pub(crate) fn nlsf_stabilize(nlsf: &mut [i32], ndelta_min: &[i32]) {
    let l = nlsf.len();
    if l == 0 || ndelta_min.len() < l + 1 {
        return;
    }
    let d = |i: usize| ndelta_min[i];
    for _ in 0..20 {
        let mut min_diff = nlsf[0] - d(0);
        let mut at = 0;
        for i in 1..l {
            let diff = nlsf[i] - (nlsf[i - 1] + d(i));
            if diff < min_diff {
                min_diff = diff;
                at = i;
            }
        }
        let diff = (1 << 15) - (nlsf[l - 1] + d(l));
        if diff < min_diff {
            min_diff = diff;
            at = l;
        }
        if min_diff >= 0 {
            return;
        }
        if at == 0 {
            nlsf[0] = d(0);
        } else if at == l {
            nlsf[l - 1] = (1 << 15) - d(l);
        } else {
            let mut min_center: i32 = (0..at).map(d).sum();
            min_center += d(at) >> 1;
            let mut max_center: i32 = 1 << 15;
            for k in (at + 1..=l).rev() {
                max_center -= d(k);
            }
            max_center -= d(at) - (d(at) >> 1);
            let mid = rshift_round(nlsf[at - 1].wrapping_add(nlsf[at]), 1);
            // The reference's LIMIT: the bounds may cross on hostile input.
            let center = if min_center > max_center {
                mid.clamp(max_center, min_center)
            } else {
                mid.clamp(min_center, max_center)
            };
            nlsf[at - 1] = center - (d(at) >> 1);
            nlsf[at] = nlsf[at - 1] + d(at);
        }
    }
    // Fallback after too many rounds: sort, then push apart from both ends.
    nlsf.sort_unstable();
    nlsf[0] = nlsf[0].max(d(0));
    for i in 1..l {
        nlsf[i] = nlsf[i].max(nlsf[i - 1] + d(i));
    }
    nlsf[l - 1] = nlsf[l - 1].min((1 << 15) - d(l));
    for i in (0..l - 1).rev() {
        nlsf[i] = nlsf[i].min(nlsf[i + 1] - d(i + 1));
    }
}

fn find_poly(out: &mut [i32; MAX_LPC_ORDER / 2 + 1], c: &[i32], dd: usize) {
    out[0] = 1 << 20;
    out[1] = -c[0];
    for k in 1..dd {
        let f = i64::from(c[2 * k]);
        out[k + 1] =
            (out[k - 1] << 1).wrapping_sub(rshift_round64(f * i64::from(out[k]), 20) as i32);
        for n in (2..=k).rev() {
            out[n] = out[n]
                .wrapping_add(out[n - 2])
                .wrapping_sub(rshift_round64(f * i64::from(out[n - 1]), 20) as i32);
        }
        out[1] = out[1].wrapping_sub(c[2 * k]);
    }
}

/// NLSFs (Q15) to LPC coefficients (Q12), limited to the `i16` range.
pub(crate) fn nlsf_to_lpc(a: &mut [i16], nlsf: &[i32]) {
    let d = nlsf.len().min(a.len()).min(MAX_LPC_ORDER);
    let mut cos = [0i32; MAX_LPC_ORDER];
    for (c, &f) in cos.iter_mut().zip(&nlsf[..d]) {
        let f = f.clamp(0, 32767);
        let f_int = (f >> 8) as usize;
        let f_frac = f - ((f_int as i32) << 8);
        let v = LSF_COS_TAB_Q12.get(f_int).copied().unwrap_or(0);
        let next = LSF_COS_TAB_Q12.get(f_int + 1).copied().unwrap_or(v);
        *c = (v << 8) + (next - v) * f_frac;
    }
    let dd = d / 2;
    let mut p = [0i32; MAX_LPC_ORDER / 2 + 1];
    let mut q = [0i32; MAX_LPC_ORDER / 2 + 1];
    find_poly(&mut p, &cos[..d], dd);
    find_poly(&mut q, &cos[1..d], dd);
    let mut a32 = [0i32; MAX_LPC_ORDER];
    for k in 0..dd {
        let pt = p[k + 1].wrapping_add(p[k]);
        let qt = q[k + 1].wrapping_sub(q[k]);
        a32[k] = -rshift_round(pt.wrapping_add(qt), 9);
        a32[d - k - 1] = rshift_round(qt.wrapping_sub(pt), 9);
    }
    let mut i = 0;
    while i < 10 {
        let mut maxabs = 0i32;
        let mut idx = 0usize;
        for (k, &v) in a32[..d].iter().enumerate() {
            let absval = v.wrapping_abs();
            if absval > maxabs {
                maxabs = absval;
                idx = k;
            }
        }
        if maxabs > i32::from(i16::MAX) {
            let maxabs = maxabs.min(98369);
            let sc_q16 = 65470
                - div32(
                    (65470 >> 2) * (maxabs - i32::from(i16::MAX)),
                    (maxabs.wrapping_mul(idx as i32 + 1)) >> 2,
                );
            bwexpander_32(&mut a32[..d], sc_q16);
        } else {
            break;
        }
        i += 1;
    }
    if i == 10 {
        for v in &mut a32[..d] {
            *v = (*v).clamp(i32::from(i16::MIN), i32::from(i16::MAX));
        }
    }
    for (o, &v) in a.iter_mut().zip(&a32[..d]) {
        *o = v as i16;
    }
}

/// Bandwidth expansion of 32-bit coefficients.
pub(crate) fn bwexpander_32(ar: &mut [i32], chirp_q16: i32) {
    let mut tmp = chirp_q16;
    let n = ar.len();
    for v in ar.iter_mut().take(n.saturating_sub(1)) {
        *v = smulww(*v, tmp);
        tmp = smulww(chirp_q16, tmp);
    }
    if let Some(last) = ar.last_mut() {
        *last = smulww(*last, tmp);
    }
}

/// Bandwidth expansion of Q12 coefficients (exact rounding, no bias).
pub(crate) fn bwexpander(ar: &mut [i16], chirp_q16: i32) {
    let mut chirp = chirp_q16;
    let minus_one = chirp_q16 - 65536;
    let n = ar.len();
    for v in ar.iter_mut().take(n.saturating_sub(1)) {
        *v = rshift_round(chirp.wrapping_mul(i32::from(*v)), 16) as i16;
        chirp = chirp.wrapping_add(rshift_round(chirp.wrapping_mul(minus_one), 16));
    }
    if let Some(last) = ar.last_mut() {
        *last = rshift_round(chirp.wrapping_mul(i32::from(*last)), 16) as i16;
    }
}

const A_LIMIT_Q16: i32 = 65520; // 0.99975 in Q16, rounded as the reference's FIX_CONST

/// The inverse prediction gain of a Q12 filter (Q30), or `None` if the filter is unstable.
pub(crate) fn inverse_pred_gain(a_q12: &[i16]) -> Option<i32> {
    match inverse_pred_gain_raw(a_q12) {
        (gain, true) => Some(gain),
        (_, false) => None,
    }
}

/// The inverse prediction gain and whether the filter is stable; for an unstable filter the
/// gain is what the step-down recursion had accumulated when it stopped (the concealment
/// uses that value as the reference does).
pub(crate) fn inverse_pred_gain_raw(a_q12: &[i16]) -> (i32, bool) {
    let order = a_q12.len().min(MAX_LPC_ORDER);
    let mut bufs = [[0i32; MAX_LPC_ORDER]; 2];
    let mut cur = order & 1;
    for (dst, &a) in bufs[cur].iter_mut().zip(a_q12) {
        *dst = i32::from(a) << 4;
    }
    let mut inv_gain_q30: i32 = 1 << 30;
    for k in (1..order).rev() {
        let ak = bufs[cur][k];
        if !(-A_LIMIT_Q16..=A_LIMIT_Q16).contains(&ak) {
            return (inv_gain_q30, false);
        }
        let rc_q31 = -(ak << 15);
        let rc_mult1_q30 = (i32::MAX >> 1).wrapping_sub(smmul(rc_q31, rc_q31));
        let mut rc_mult2_q16 = inverse32_var_q(rc_mult1_q30, 46);
        inv_gain_q30 = smmul(inv_gain_q30, rc_mult1_q30) << 2;
        let old = cur;
        cur = k & 1;
        let headrm = clz32(rc_mult2_q16) - 1;
        rc_mult2_q16 = rc_mult2_q16.wrapping_shl(headrm as u32);
        let (aold, anew) = if old == cur {
            // Same buffer (only when order is 1); copy first.
            let copy = bufs[old];
            (copy, &mut bufs[cur])
        } else {
            let copy = bufs[old];
            (copy, &mut bufs[cur])
        };
        for n in 0..k {
            let tmp = aold[n].wrapping_sub(smmul(aold[k - n - 1], rc_q31) << 1);
            anew[n] = smmul(tmp, rc_mult2_q16).wrapping_shl((16 - headrm) as u32);
        }
    }
    let a0 = bufs[cur][0];
    if !(-A_LIMIT_Q16..=A_LIMIT_Q16).contains(&a0) {
        return (inv_gain_q30, false);
    }
    let rc_q31 = -(a0 << 15);
    let rc_mult1_q30 = (i32::MAX >> 1).wrapping_sub(smmul(rc_q31, rc_q31));
    inv_gain_q30 = smmul(inv_gain_q30, rc_mult1_q30) << 2;
    (inv_gain_q30, true)
}

/// NLSFs to a stable Q12 filter: convert, then expand the bandwidth until stable.
pub(crate) fn nlsf_to_lpc_stable(a: &mut [i16], nlsf: &[i32]) {
    nlsf_to_lpc(a, nlsf);
    let mut i = 0;
    while i < 20 {
        if inverse_pred_gain(a).is_none() {
            bwexpander(a, 65536 - (10 + i) * i);
        } else {
            break;
        }
        i += 1;
    }
    if i == 20 {
        a.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stabilize_enforces_minimum_spacing() {
        let dmin = [100, 50, 50, 50, 100];
        let mut nlsf = [10, 20, 20, 40000];
        nlsf_stabilize(&mut nlsf, &dmin);
        assert!(nlsf[0] >= dmin[0]);
        for i in 1..4 {
            assert!(nlsf[i] - nlsf[i - 1] >= dmin[i], "{nlsf:?}");
        }
        assert!(nlsf[3] <= (1 << 15) - dmin[4]);
    }

    #[test]
    fn evenly_spaced_nlsfs_give_a_stable_filter() {
        let nlsf: Vec<i32> = (1..=16).map(|i| i * 32767 / 17).collect();
        let mut a = [0i16; 16];
        nlsf_to_lpc_stable(&mut a, &nlsf);
        assert!(inverse_pred_gain(&a).is_some());
        // Flat spectrum: close to no prediction at all.
        assert!(a.iter().all(|&c| c.abs() < 200), "{a:?}");
    }

    #[test]
    fn an_unstable_filter_is_detected() {
        let mut a = [0i16; 10];
        a[0] = 4095 * 2; // a pole outside the unit circle
        assert!(inverse_pred_gain(&a).is_none());
        let mut b = a;
        bwexpander(&mut b, 32768);
        assert!(inverse_pred_gain(&b).is_some());
    }
}
