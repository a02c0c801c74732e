//! Fixed-point primitives with the exact rounding of the SILK reference (two's complement,
//! wrapping where the reference wraps). Names follow the usual DSP mnemonics: `smulwb` is a
//! 32x16-bit multiply keeping the top 32 bits of the 48-bit product, and so on.

#![forbid(unsafe_code)]

/// `(a * (b as i16)) >> 16`, computed in two halves as the reference does.
#[inline(always)]
pub(crate) fn smulwb(a: i32, b: i32) -> i32 {
    let b = i32::from(b as i16);
    (a >> 16)
        .wrapping_mul(b)
        .wrapping_add(((a & 0xFFFF).wrapping_mul(b)) >> 16)
}

/// `acc + smulwb(a, b)`.
#[inline(always)]
pub(crate) fn smlawb(acc: i32, a: i32, b: i32) -> i32 {
    acc.wrapping_add(smulwb(a, b))
}

/// `(a as i16) * (b as i16)`.
#[inline(always)]
pub(crate) fn smulbb(a: i32, b: i32) -> i32 {
    i32::from(a as i16).wrapping_mul(i32::from(b as i16))
}

/// `acc + (a as i16) * (b as i16)`.
#[inline(always)]
pub(crate) fn smlabb(acc: i32, a: i32, b: i32) -> i32 {
    acc.wrapping_add(smulbb(a, b))
}

/// `(a * b) >> 16` with full 32-bit `b`.
#[inline(always)]
pub(crate) fn smulww(a: i32, b: i32) -> i32 {
    smulwb(a, b).wrapping_add(a.wrapping_mul(rshift_round(b, 16)))
}

/// `acc + smulww(a, b)`.
#[inline(always)]
pub(crate) fn smlaww(acc: i32, a: i32, b: i32) -> i32 {
    smlawb(acc, a, b).wrapping_add(a.wrapping_mul(rshift_round(b, 16)))
}

/// The top 32 bits of the 64-bit product.
#[inline(always)]
pub(crate) fn smmul(a: i32, b: i32) -> i32 {
    ((i64::from(a) * i64::from(b)) >> 32) as i32
}

/// Arithmetic right shift by `shift` (>= 1) with rounding half up.
#[inline(always)]
pub(crate) fn rshift_round(a: i32, shift: u32) -> i32 {
    if shift == 1 {
        (a >> 1).wrapping_add(a & 1)
    } else {
        ((a >> (shift - 1)).wrapping_add(1)) >> 1
    }
}

/// 64-bit [`rshift_round`].
#[inline(always)]
pub(crate) fn rshift_round64(a: i64, shift: u32) -> i64 {
    if shift == 1 {
        (a >> 1).wrapping_add(a & 1)
    } else {
        ((a >> (shift - 1)).wrapping_add(1)) >> 1
    }
}

/// Saturates to the `i16` range.
#[inline(always)]
pub(crate) fn sat16(a: i32) -> i16 {
    a.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// Saturating 32-bit addition.
#[inline(always)]
pub(crate) fn add_sat32(a: i32, b: i32) -> i32 {
    a.saturating_add(b)
}

/// `a << shift`, saturated to the 32-bit range first.
#[inline(always)]
pub(crate) fn lshift_sat32(a: i32, shift: u32) -> i32 {
    let shift = shift.min(31);
    let lo = i32::MIN >> shift;
    let hi = i32::MAX >> shift;
    a.clamp(lo, hi) << shift
}

/// Leading zeros of a 32-bit value (32 for zero).
#[inline(always)]
pub(crate) fn clz32(a: i32) -> i32 {
    a.leading_zeros() as i32
}

/// The reference's linear congruential generator.
#[inline(always)]
pub(crate) fn rand(seed: i32) -> i32 {
    907_633_515_i32.wrapping_add(seed.wrapping_mul(196_314_165))
}

/// Integer division as C does it (truncating); 0 for a zero divisor (never reached with
/// valid arguments; avoids a panic on hostile ones).
#[inline(always)]
pub(crate) fn div32(a: i32, b: i32) -> i32 {
    if b == 0 { 0 } else { a.wrapping_div(b) }
}

/// An approximation of `(1 << q) / b` with the reference's rounding.
pub(crate) fn inverse32_var_q(b: i32, q: i32) -> i32 {
    let b_headrm = clz32(b.wrapping_abs()) - 1;
    let b_nrm = b.wrapping_shl(b_headrm as u32);
    let b_inv = div32(i32::MAX >> 2, b_nrm >> 16);
    let result = b_inv.wrapping_shl(16);
    let err_q32 = smulwb(b_nrm, b_inv).wrapping_neg().wrapping_shl(3);
    let result = smlaww(result, err_q32, b_inv);
    let lshift = 61 - b_headrm - q;
    if lshift <= 0 {
        lshift_sat32(result, (-lshift) as u32)
    } else if lshift < 32 {
        result >> lshift
    } else {
        0
    }
}

/// An approximation of `(a << q) / b` with the reference's rounding.
pub(crate) fn div32_var_q(a: i32, b: i32, q: i32) -> i32 {
    let a_headrm = clz32(a.wrapping_abs()) - 1;
    let mut a_nrm = a.wrapping_shl(a_headrm as u32);
    let b_headrm = clz32(b.wrapping_abs()) - 1;
    let b_nrm = b.wrapping_shl(b_headrm as u32);
    let b_inv = div32(i32::MAX >> 2, b_nrm >> 16);
    let result = smulwb(a_nrm, b_inv);
    a_nrm = a_nrm.wrapping_sub(smmul(b_nrm, result).wrapping_shl(3));
    let result = smlawb(result, a_nrm, b_inv);
    let lshift = 29 + a_headrm - b_headrm - q;
    if lshift <= 0 {
        lshift_sat32(result, (-lshift) as u32)
    } else if lshift < 32 {
        result >> lshift
    } else {
        0
    }
}

/// Piecewise-parabolic `2^(x / 128)`.
pub(crate) fn log2lin(in_log_q7: i32) -> i32 {
    if in_log_q7 < 0 {
        return 0;
    }
    if in_log_q7 >= 31 << 7 {
        return i32::MAX;
    }
    let out = 1i32 << (in_log_q7 >> 7);
    let frac = in_log_q7 & 0x7F;
    let poly = smlawb(frac, frac.wrapping_mul(128 - frac), -174);
    if in_log_q7 < 2048 {
        out.wrapping_add(out.wrapping_mul(poly) >> 7)
    } else {
        out.wrapping_add((out >> 7).wrapping_mul(poly))
    }
}

/// Square root approximation (Q0 in, result scaled as the reference's `SQRT_APPROX`).
pub(crate) fn sqrt_approx(x: i32) -> i32 {
    if x <= 0 {
        return 0;
    }
    let lz = clz32(x);
    let frac_q7 = (x.rotate_right((24 - lz).rem_euclid(32) as u32)) & 0x7F;
    let mut y: i32 = if lz & 1 != 0 { 32768 } else { 46214 };
    y >>= lz >> 1;
    smlawb(y, y, smulbb(213, frac_q7))
}

/// Energy of `x` as `(energy, shift)`: the sum of squares shifted right so it fits in 31 bits.
pub(crate) fn sum_sqr_shift(x: &[i16]) -> (i32, i32) {
    let len = x.len() as isize - 1;
    let mut nrg: i32 = 0;
    let mut shft = 0;
    let mut i: isize = 0;
    let at = |i: isize| i32::from(x.get(i as usize).copied().unwrap_or(0));
    while i < len {
        nrg = nrg
            .wrapping_add(at(i).wrapping_mul(at(i)))
            .wrapping_add(at(i + 1).wrapping_mul(at(i + 1)));
        i += 2;
        if nrg < 0 {
            nrg = ((nrg as u32) >> 2) as i32;
            shft = 2;
            break;
        }
    }
    while i < len {
        let tmp = at(i)
            .wrapping_mul(at(i))
            .wrapping_add(at(i + 1).wrapping_mul(at(i + 1)));
        nrg = (nrg as u32).wrapping_add((tmp as u32) >> shft) as i32;
        if nrg < 0 {
            nrg = ((nrg as u32) >> 2) as i32;
            shft += 2;
        }
        i += 2;
    }
    if i == len {
        let tmp = at(i).wrapping_mul(at(i));
        nrg = (nrg as u32).wrapping_add((tmp as u32) >> shft) as i32;
    }
    if nrg as u32 & 0xC000_0000 != 0 {
        nrg = ((nrg as u32) >> 2) as i32;
        shft += 2;
    }
    (nrg, shft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The two-halves multiply is the floor of the exact 48-bit product over 2^16.
        #[test]
        fn smulwb_is_floor_of_exact_product(a in any::<i32>(), b in any::<i16>()) {
            let exact = (i64::from(a) * i64::from(b)).div_euclid(1 << 16);
            prop_assert_eq!(i64::from(smulwb(a, i32::from(b))), exact);
        }

        #[test]
        fn rshift_round_rounds_half_up(a in -(1i32 << 30)..(1 << 30), s in 1u32..20) {
            let exact = (f64::from(a) / f64::from(1u32 << s) + 0.5).floor() as i32;
            prop_assert_eq!(rshift_round(a, s), exact);
        }
    }

    #[test]
    fn inverse_and_division_are_close_to_exact() {
        for b in [1, 3, 100, 65_536, 1 << 20, 123_456_789] {
            let approx = i64::from(inverse32_var_q(b, 32));
            let exact = (1i64 << 32) / i64::from(b);
            assert!(
                (approx - exact.min(i64::from(i32::MAX))).abs() <= exact / 1000 + 2,
                "{b}"
            );
        }
        assert!((div32_var_q(1 << 16, 1 << 16, 16) - (1 << 16)).abs() <= 1);
        assert!((div32_var_q(3 << 20, 1 << 20, 16) - (3 << 16)).abs() <= 3);
        assert_eq!(log2lin(7 << 7), 128);
        assert_eq!(log2lin(-1), 0);
        assert_eq!(log2lin(31 << 7), i32::MAX);
    }

    #[test]
    fn energy_of_a_constant_signal() {
        assert_eq!(sum_sqr_shift(&[100; 10]), (100_000, 0));
        let (e, shift) = sum_sqr_shift(&[i16::MAX; 480]);
        assert!(e > 0 && e < 1 << 30 && shift > 0);
    }
}
