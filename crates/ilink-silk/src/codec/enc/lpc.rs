//! Spectral envelope analysis and quantisation: windowed autocorrelation LPC (Levinson
//! recursion), LPC to NLSF (roots of the symmetric and antisymmetric polynomials, found on a
//! grid and refined by bisection), and the multi-stage NLSF vector quantiser (an M-best tree
//! search over the decoder's codebooks, weighting each coefficient by how close its
//! neighbours are, with the codebook's own symbol costs as the rate term).

#![forbid(unsafe_code)]

use super::super::lpc::nlsf_msvq_decode;
use super::super::{MAX_LPC_ORDER, NlsfCodebook};
use super::pulses::symbol_bits;

/// Autocorrelation of `x` for lags 0..=order.
pub(crate) fn autocorr(x: &[f32], order: usize) -> [f64; MAX_LPC_ORDER + 1] {
    let mut r = [0f64; MAX_LPC_ORDER + 1];
    for (lag, out) in r.iter_mut().enumerate().take(order.min(MAX_LPC_ORDER) + 1) {
        let mut acc = 0f64;
        for (a, b) in x.iter().skip(lag).zip(x) {
            acc += f64::from(*a) * f64::from(*b);
        }
        *out = acc;
    }
    r
}

/// Warped autocorrelation of `x` for lags 0..=order: the correlation of `x` with its copies
/// through a chain of first-order all-pass sections `(z^-1 - warp) / (1 - warp z^-1)`, which
/// for `warp > 0` stretches the low frequencies (a predictor fitted to it resolves the low
/// harmonics of high voices). `warp == 0` gives the plain autocorrelation.
pub(crate) fn warped_autocorr(x: &[f32], order: usize, warp: f64) -> [f64; MAX_LPC_ORDER + 1] {
    let order = order.min(MAX_LPC_ORDER);
    let mut r = [0f64; MAX_LPC_ORDER + 1];
    let mut state = [0f64; MAX_LPC_ORDER + 1];
    for &v in x {
        let mut below_new = f64::from(v);
        let mut below_old = state[0];
        state[0] = below_new;
        r[0] += below_new * below_new;
        for k in 1..=order {
            let old = state[k];
            let new = below_old + warp * (old - below_new);
            state[k] = new;
            r[k] += f64::from(v) * new;
            below_new = new;
            below_old = old;
        }
    }
    r
}

/// Levinson-Durbin: predictor `a` (`x[n] ~ sum a[k] x[n-1-k]`) and the residual energy.
pub(crate) fn levinson(r: &[f64; MAX_LPC_ORDER + 1], order: usize) -> ([f64; MAX_LPC_ORDER], f64) {
    let order = order.min(MAX_LPC_ORDER);
    let mut a = [0f64; MAX_LPC_ORDER];
    let mut err = r[0];
    if err <= 0.0 || !err.is_finite() {
        return (a, 0.0);
    }
    for i in 0..order {
        let mut acc = r[i + 1];
        for j in 0..i {
            acc -= a[j] * r[i - j];
        }
        let k = (acc / err).clamp(-0.9999, 0.9999);
        let prev = a;
        a[i] = k;
        for j in 0..i {
            a[j] = prev[j] - k * prev[i - 1 - j];
        }
        err *= 1.0 - k * k;
    }
    (a, err)
}

/// The LPC analysis of `x` (already windowed): predictor of `order` taps and its residual
/// energy, with a Gaussian lag window of `lag_hz` at `fs_hz` and a white-noise floor 30 dB
/// down (which keeps the predictor from amplifying the quantisation noise in bands the input
/// leaves empty). With `warp != 0` the analysis is frequency-warped ([`warped_autocorr`]):
/// the predictor is over all-pass sections instead of delays.
pub(crate) fn analyse(
    x: &[f32],
    order: usize,
    fs_hz: f32,
    lag_hz: f64,
    warp: f64,
) -> ([f64; MAX_LPC_ORDER], f64) {
    let mut r = if warp == 0.0 {
        autocorr(x, order)
    } else {
        warped_autocorr(x, order, warp)
    };
    let floor = 1e-3;
    r[0] = r[0] * (1.0 + floor) + 1e-3;
    let w = 2.0 * std::f64::consts::PI * lag_hz / f64::from(fs_hz);
    for (k, v) in r.iter_mut().enumerate().skip(1) {
        *v *= (-0.5 * (w * k as f64).powi(2)).exp();
    }
    levinson(&r, order)
}

/// Evaluates the symmetric (`odd == false`) or antisymmetric polynomial of `c` on the unit
/// circle at `omega`, as a real function whose zeros are the line spectral frequencies.
fn eval_poly(c: &[f64], odd: bool, omega: f64) -> f64 {
    eval_poly_at(c, odd, (omega * 0.5).sin_cos())
}

/// [`eval_poly`] with the sine and cosine of half the frequency given.
fn eval_poly_at(c: &[f64], odd: bool, (s1, c1): (f64, f64)) -> f64 {
    // Terms k = 0..=p/2 at multiples m = p + 1 - 2k of theta = omega / 2 (odd m, from the
    // largest down); cos and sin of odd multiples follow from those of theta and 2 theta:
    // f((m + 2) theta) = 2 cos(2 theta) f(m theta) - f((m - 2) theta).
    let p = c.len() - 2; // the order
    let c2 = 2.0 * c1 * c1 - 1.0;
    let mut prev = if odd { -s1 } else { c1 }; // f(-theta)
    let mut cur = if odd { s1 } else { c1 }; // f(theta)
    let mut vals = [0f64; MAX_LPC_ORDER / 2 + 1];
    let n = p / 2 + 1;
    // vals[j] = f((2j + 1) theta)
    for v in vals.iter_mut().take(n) {
        *v = cur;
        let next = 2.0 * c2 * cur - prev;
        prev = cur;
        cur = next;
    }
    let mut acc = 0f64;
    for k in 0..n {
        acc += c[k] * vals[n - 1 - k];
    }
    acc
}

/// Points of the NLSF root search's grid over (0, pi).
const NLSF_GRID: usize = 384;

/// The sine and cosine of half of each grid frequency `pi (g + 0.5) / NLSF_GRID`.
fn nlsf_grid() -> &'static [(f64, f64); NLSF_GRID] {
    static GRID: std::sync::OnceLock<[(f64, f64); NLSF_GRID]> = std::sync::OnceLock::new();
    GRID.get_or_init(|| {
        let mut g = [(0.0, 0.0); NLSF_GRID];
        for (i, v) in g.iter_mut().enumerate() {
            *v = (0.5 * std::f64::consts::PI * (i as f64 + 0.5) / NLSF_GRID as f64).sin_cos();
        }
        g
    })
}

/// LPC predictor to NLSFs in Q15 (sorted, in (0, 32768)), or `None` when the roots could not
/// all be found.
pub(crate) fn a_to_nlsf(a: &[f64], out: &mut [i32; MAX_LPC_ORDER]) -> bool {
    let p = a.len();
    if p == 0 || p > MAX_LPC_ORDER || !p.is_multiple_of(2) {
        return false;
    }
    let mut c = [0f64; MAX_LPC_ORDER + 2];
    c[0] = 1.0;
    for k in 0..p {
        c[k + 1] = -a[k];
    }
    let mut pp = [0f64; MAX_LPC_ORDER + 2];
    let mut qq = [0f64; MAX_LPC_ORDER + 2];
    for k in 0..=p + 1 {
        pp[k] = c[k] + c[p + 1 - k];
        qq[k] = c[k] - c[p + 1 - k];
    }
    let (pp, qq) = (&pp[..p + 2], &qq[..p + 2]);
    let grid = nlsf_grid();
    let mut found = 0usize;
    let mut roots = [0f64; MAX_LPC_ORDER];
    for (poly, odd) in [(pp, false), (qq, true)] {
        let mut prev_w = std::f64::consts::PI / (2 * NLSF_GRID) as f64;
        let mut prev_v = eval_poly_at(poly, odd, grid[0]);
        for (g, &half) in grid.iter().enumerate().skip(1) {
            let w = std::f64::consts::PI * (g as f64 + 0.5) / NLSF_GRID as f64;
            let v = eval_poly_at(poly, odd, half);
            if (prev_v <= 0.0) != (v <= 0.0) {
                // Bisection to well under a Q15 step, then the secant within the bracket.
                let (mut lo, mut hi, mut vlo, mut vhi) = (prev_w, w, prev_v, v);
                for _ in 0..8 {
                    let mid = 0.5 * (lo + hi);
                    let vm = eval_poly(poly, odd, mid);
                    if (vm <= 0.0) == (vlo <= 0.0) {
                        lo = mid;
                        vlo = vm;
                    } else {
                        hi = mid;
                        vhi = vm;
                    }
                }
                let span = vlo - vhi;
                let t = if span != 0.0 && span.is_finite() {
                    (vlo / span).clamp(0.0, 1.0)
                } else {
                    0.5
                };
                if found < p {
                    roots[found] = lo + t * (hi - lo);
                }
                found += 1;
            }
            prev_w = w;
            prev_v = v;
        }
    }
    if found != p {
        return false;
    }
    let roots = &mut roots[..p];
    roots.sort_by(f64::total_cmp);
    for (o, &w) in out.iter_mut().zip(roots.iter()) {
        *o = ((w / std::f64::consts::PI) * 32768.0)
            .round()
            .clamp(1.0, 32767.0) as i32;
    }
    true
}

/// NLSF quantisation weights (inverse distances to the neighbours), normalised units.
pub(crate) fn nlsf_weights(nlsf: &[i32], w: &mut [f32; MAX_LPC_ORDER]) {
    let p = nlsf.len().min(MAX_LPC_ORDER);
    for i in 0..p {
        let prev = if i == 0 { 0 } else { nlsf[i - 1] };
        let next = if i + 1 == p { 32768 } else { nlsf[i + 1] };
        let d1 = ((nlsf[i] - prev).max(64)) as f32 / 32768.0;
        let d2 = ((next - nlsf[i]).max(64)) as f32 / 32768.0;
        w[i] = 1.0 / d1 + 1.0 / d2;
    }
}

#[derive(Clone, Copy)]
struct Path {
    cost: f32,
    bits: f32,
    residual: [f32; MAX_LPC_ORDER],
    indices: [usize; 10],
}

/// Multi-stage VQ of `target` (Q15) with `survivors` paths kept per stage and `mu` the cost
/// of a bit in weighted squared error. Returns the indices and the decoded NLSFs.
pub(crate) fn quantize_nlsf(
    target: &[i32],
    cb: &NlsfCodebook,
    survivors: usize,
    mu: f32,
) -> ([usize; 10], [i32; MAX_LPC_ORDER]) {
    let order = target.len().min(MAX_LPC_ORDER);
    let mut w = [0f32; MAX_LPC_ORDER];
    nlsf_weights(&target[..order], &mut w);
    let mut start = Path {
        cost: 0.0,
        bits: 0.0,
        residual: [0.0; MAX_LPC_ORDER],
        indices: [0; 10],
    };
    for (r, &t) in start.residual.iter_mut().zip(target) {
        *r = t as f32 / 32768.0;
    }
    let survivors = survivors.clamp(1, 16);
    let mut paths: Vec<Path> = vec![start];
    let mut next: Vec<Path> = Vec::with_capacity(survivors * 128);
    let mut first = 0usize;
    for (stage, &n_vectors) in cb.stage_vectors.iter().enumerate().take(10) {
        let cdf = cb
            .cdf
            .get(cb.cdf_start.get(stage).copied().unwrap_or(0)..)
            .unwrap_or(&[]);
        next.clear();
        for path in &paths {
            for j in 0..n_vectors {
                let Some(v) = cb.vectors.get((first + j) * order..(first + j + 1) * order) else {
                    break;
                };
                let mut err = 0f32;
                for i in 0..order {
                    let d = path.residual[i] - f32::from(v[i]) / 32768.0;
                    err += w[i] * d * d;
                }
                let bits = path.bits + symbol_bits(cdf, j);
                let cost = err + mu * bits;
                if next.len() >= survivors && cost >= next.last().map_or(f32::MAX, |p| p.cost) {
                    continue;
                }
                let mut p = *path;
                p.cost = cost;
                p.bits = bits;
                p.indices[stage] = j;
                for i in 0..order {
                    p.residual[i] -= f32::from(v[i]) / 32768.0;
                }
                let at = next.partition_point(|q| q.cost <= cost);
                next.insert(at, p);
                next.truncate(survivors);
            }
        }
        std::mem::swap(&mut paths, &mut next);
        first += n_vectors;
    }
    let indices = paths.first().map_or([0; 10], |p| p.indices);
    let mut out = [0i32; MAX_LPC_ORDER];
    nlsf_msvq_decode(&mut out, cb, &indices, order);
    (indices, out)
}

#[cfg(test)]
mod tests {
    use super::super::super::lpc::nlsf_to_lpc;
    use super::*;

    #[test]
    fn nlsf_conversion_round_trips_through_the_decoder() {
        // A resonant 16th-order filter from a synthetic vowel-like signal.
        let x: Vec<f32> = (0..480)
            .map(|i| {
                let t = i as f32;
                (t * 0.09).sin() * 3000.0
                    + (t * 0.31).sin() * 1500.0
                    + (t * 0.77).sin() * 600.0
                    + ((i * 7919 % 101) as f32 - 50.0) * 4.0
            })
            .collect();
        for order in [10usize, 16] {
            let (a, _) = analyse(&x, order, 24_000.0, 60.0, 0.0);
            let mut nlsf = [0i32; MAX_LPC_ORDER];
            assert!(a_to_nlsf(&a[..order], &mut nlsf));
            assert!(nlsf[..order].windows(2).all(|w| w[0] < w[1]), "{nlsf:?}");
            let mut back = [0i16; MAX_LPC_ORDER];
            nlsf_to_lpc(&mut back[..order], &nlsf[..order]);
            for k in 0..order {
                let want = a[k] * 4096.0;
                assert!(
                    (f64::from(back[k]) - want).abs() < 40.0 + want.abs() * 0.02,
                    "order {order} tap {k}: {} vs {want}",
                    back[k]
                );
            }
        }
    }

    /// `x` through one all-pass section `(z^-1 - warp) / (1 - warp z^-1)`, from rest.
    fn all_pass(x: &[f64], warp: f64) -> Vec<f64> {
        let (mut x1, mut y1) = (0f64, 0f64);
        x.iter()
            .map(|&v| {
                let y = x1 - warp * v + warp * y1;
                (x1, y1) = (v, y);
                y
            })
            .collect()
    }

    #[test]
    fn warped_autocorrelation_correlates_with_all_pass_copies() {
        let x: Vec<f32> = (0..400u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 16) % 2001) as f32 - 1000.0)
            .collect();
        let order = 8;
        // Unwarped, it is the plain autocorrelation.
        let plain = autocorr(&x, order);
        let r0 = warped_autocorr(&x, order, 0.0);
        for k in 0..=order {
            assert!((plain[k] - r0[k]).abs() <= 1e-9 * plain[0], "lag {k}");
        }
        for warp in [0.2, -0.35] {
            let r = warped_autocorr(&x, order, warp);
            let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let mut copy = x64.clone();
            for k in 0..=order {
                let want: f64 = x64.iter().zip(&copy).map(|(a, b)| a * b).sum();
                assert!(
                    (r[k] - want).abs() <= 1e-9 * r[0],
                    "warp {warp} lag {k}: {} vs {want}",
                    r[k]
                );
                copy = all_pass(&copy, warp);
            }
        }
        // Warping moves the resolution but keeps the energy at lag 0.
        assert_eq!(r0[0], warped_autocorr(&x, order, 0.3)[0]);
    }
}
