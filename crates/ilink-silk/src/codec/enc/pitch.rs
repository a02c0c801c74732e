//! Pitch analysis and long-term prediction: a coarse normalised-correlation search on the
//! input decimated to 4 kHz, refined at the internal rate on the LPC residual over the lag
//! and contour codebooks the bitstream offers, then per subframe a 5-tap predictor from the
//! normal equations, vector-quantised with the decoder's three LTP codebooks (one codebook
//! per frame, chosen by the total of distortion and rate).

#![forbid(unsafe_code)]

use super::super::tables as t;
use super::super::{LTP_ORDER, NB_SUBFR};
use super::pulses::symbol_bits;

/// The pitch analysis of one frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pitch {
    /// The coded lag (in samples at the internal rate).
    pub(crate) lag: i32,
    /// The contour index.
    pub(crate) contour: usize,
    /// The lag of each subframe (`lag` plus the contour's offset).
    pub(crate) lags: [i32; NB_SUBFR],
    /// The coarse normalised correlation (0..1).
    pub(crate) corr: f32,
}

fn contour_delta(fs_khz: usize, k: usize, c: usize) -> i32 {
    let v = if fs_khz == 8 {
        t::CB_LAGS_STAGE2.get(k * 11 + c)
    } else {
        t::CB_LAGS_STAGE3.get(k * 34 + c)
    };
    i32::from(v.copied().unwrap_or(0))
}

pub(crate) fn n_contours(fs_khz: usize) -> usize {
    if fs_khz == 8 { 11 } else { 34 }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Searches the pitch of the frame `x[pos..pos + fl]`; `x` holds at least 18 ms of history
/// before `pos` and `res` (the LPC residual, same indexing) likewise. `complexity` 0 skips
/// the contour search. Returns `None` when `pos` lacks history.
pub(crate) fn search(
    x: &[f32],
    res: &[f32],
    pos: usize,
    fs_khz: usize,
    complexity: u8,
) -> Option<Pitch> {
    let fl = fs_khz * 20;
    let sl = fl / NB_SUBFR;
    let min_lag = 2 * fs_khz as i32;
    let max_lag = 18 * fs_khz as i32;
    let d = (fs_khz / 4).max(1);
    // Decimated copy from pos - 18 ms to pos + 20 ms.
    let hist = 18 * fs_khz + 2 * d;
    let start = pos.checked_sub(hist)?;
    let end = (pos + fl).min(x.len());
    let span = x.get(start..end)?;
    let dec: Vec<f32> = span
        .chunks_exact(d)
        .map(|c| c.iter().sum::<f32>())
        .collect();
    let cur0 = hist / d;
    let cur = dec.get(cur0..)?;
    if cur.len() < 40 {
        return None;
    }
    let e0 = dot(cur, cur);
    if e0 <= 1e-3 {
        return None;
    }
    let (lo, hi) = (8usize, 72usize);
    let mut best = (f32::MIN, 0usize, 0f32);
    let mut corrs = [0f32; 80];
    for lag in lo..=hi {
        let Some(past) = cur0
            .checked_sub(lag)
            .and_then(|s| dec.get(s..s + cur.len()))
        else {
            continue;
        };
        let c = dot(cur, past);
        let e = dot(past, past);
        let nc = if c > 0.0 {
            c / (e0 * e).sqrt().max(1e-9)
        } else {
            0.0
        };
        corrs[lag] = nc;
        let score = nc * (1.0 - 0.18 * ((lag as f32) / lo as f32).log2() / 3.17);
        if score > best.0 {
            best = (score, lag, nc);
        }
    }
    let (_, coarse, corr) = best;
    if coarse == 0 {
        return None;
    }
    // Refine at the full rate on the residual.
    let centre = (coarse * d) as i32;
    let spread = d as i32 + 1;
    let n_c = if complexity == 0 {
        1
    } else {
        n_contours(fs_khz)
    };
    let (cmin, cmax) = (-10i32, 10i32);
    let l_lo = (centre - spread + cmin).max(min_lag);
    let l_hi = (centre + spread + cmax).min(max_lag);
    if l_lo > l_hi {
        return None;
    }
    let width = (l_hi - l_lo + 1) as usize;
    // score[k][l - l_lo] = energy a one-tap predictor at lag l removes from subframe k.
    let mut table = vec![0f32; NB_SUBFR * width];
    for k in 0..NB_SUBFR {
        let s = pos + k * sl;
        let target = res.get(s..s + sl)?;
        for (i, l) in (l_lo..=l_hi).enumerate() {
            let Some(past) = s.checked_sub(l as usize).and_then(|p| res.get(p..p + sl)) else {
                continue;
            };
            let c = dot(target, past);
            let e = dot(past, past);
            if c > 0.0 && e > 0.0 {
                table[k * width + i] = c * c / e;
            }
        }
    }
    let mut pick = (f32::MIN, centre.clamp(min_lag, max_lag), 0usize);
    for lag in (centre - spread).max(min_lag)..=(centre + spread).min(max_lag) {
        'contour: for c in 0..n_c {
            let mut total = 0f32;
            for k in 0..NB_SUBFR {
                let l = lag + contour_delta(fs_khz, k, c);
                if l < min_lag || l > max_lag || l < l_lo || l > l_hi {
                    continue 'contour;
                }
                total += table[k * width + (l - l_lo) as usize];
            }
            if total > pick.0 {
                pick = (total, lag, c);
            }
        }
    }
    let (_, lag, contour) = pick;
    let mut lags = [0i32; NB_SUBFR];
    for (k, l) in lags.iter_mut().enumerate() {
        *l = lag + contour_delta(fs_khz, k, contour);
    }
    Some(Pitch {
        lag,
        contour,
        lags,
        corr,
    })
}

/// The chosen LTP filters: the codebook, the index per subframe, and the Q14 taps.
pub(crate) struct Ltp {
    pub(crate) per_index: usize,
    pub(crate) indices: [usize; NB_SUBFR],
    pub(crate) coef_q14: [i16; LTP_ORDER * NB_SUBFR],
    /// The residual energy left per subframe with the quantised taps.
    pub(crate) residual: [f32; NB_SUBFR],
}

fn codebook(p: usize) -> (&'static [u16], &'static [i16]) {
    match p {
        0 => (&t::LTP_GAIN_CDF_0, &t::LTP_GAIN_VQ_0_Q14),
        1 => (&t::LTP_GAIN_CDF_1, &t::LTP_GAIN_VQ_1_Q14),
        _ => (&t::LTP_GAIN_CDF_2, &t::LTP_GAIN_VQ_2_Q14),
    }
}

/// Finds the quantised 5-tap predictors for the residual `res` of the frame at `pos` with
/// subframe lags `lags`; `floor` is the smallest residual energy worth removing per subframe.
pub(crate) fn ltp_analysis(
    res: &[f32],
    pos: usize,
    sl: usize,
    lags: &[i32; NB_SUBFR],
    floor: &[f32; NB_SUBFR],
) -> Option<Ltp> {
    let mut rr = [[[0f64; LTP_ORDER]; LTP_ORDER]; NB_SUBFR];
    let mut cc = [[0f64; LTP_ORDER]; NB_SUBFR];
    let mut ee = [0f64; NB_SUBFR];
    for k in 0..NB_SUBFR {
        let s = pos + k * sl;
        let target = res.get(s..s + sl)?;
        let lag = usize::try_from(lags[k]).ok()?;
        // Tap j reads res[n - lag + 2 - j].
        let base = (s + LTP_ORDER / 2).checked_sub(lag)?;
        let mut cols: [&[f32]; LTP_ORDER] = [&[]; LTP_ORDER];
        for (j, col) in cols.iter_mut().enumerate() {
            let from = base.checked_sub(j)?;
            *col = res.get(from..from + sl)?;
        }
        ee[k] = target.iter().map(|v| f64::from(*v) * f64::from(*v)).sum();
        for i in 0..LTP_ORDER {
            cc[k][i] = cols[i]
                .iter()
                .zip(target)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            for j in i..LTP_ORDER {
                let v: f64 = cols[i]
                    .iter()
                    .zip(cols[j])
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                rr[k][i][j] = v;
                rr[k][j][i] = v;
            }
        }
    }
    let mut best: Option<(f32, Ltp)> = None;
    for p in 0..3 {
        let (cdf, vq) = codebook(p);
        let n = vq.len() / LTP_ORDER;
        let mut cost = symbol_bits(&t::LTP_PER_INDEX_CDF, p);
        let mut choice = Ltp {
            per_index: p,
            indices: [0; NB_SUBFR],
            coef_q14: [0; LTP_ORDER * NB_SUBFR],
            residual: [0.0; NB_SUBFR],
        };
        for k in 0..NB_SUBFR {
            let mut sub_best = (f32::MAX, 0usize, 0f32);
            for j in 0..n {
                let mut b = [0f64; LTP_ORDER];
                for (i, bi) in b.iter_mut().enumerate() {
                    *bi = f64::from(vq.get(j * LTP_ORDER + i).copied().unwrap_or(0)) / 16384.0;
                }
                let mut err = ee[k];
                for i in 0..LTP_ORDER {
                    err -= 2.0 * b[i] * cc[k][i];
                    for m in 0..LTP_ORDER {
                        err += b[i] * rr[k][i][m] * b[m];
                    }
                }
                let err = (err as f32).max(floor[k]).max(1e-6);
                let c = 0.5 * sl as f32 * err.log2() + symbol_bits(cdf, j);
                if c < sub_best.0 {
                    sub_best = (c, j, err);
                }
            }
            cost += sub_best.0;
            choice.indices[k] = sub_best.1;
            choice.residual[k] = sub_best.2;
            for i in 0..LTP_ORDER {
                choice.coef_q14[k * LTP_ORDER + i] =
                    vq.get(sub_best.1 * LTP_ORDER + i).copied().unwrap_or(0);
            }
        }
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, choice));
        }
    }
    best.map(|(_, l)| l)
}

/// The CDF and start index for coding the LTP index of codebook `p`.
pub(crate) fn ltp_cdf(p: usize) -> (&'static [u16], usize) {
    (
        codebook(p).0,
        t::LTP_GAIN_CDF_OFFSETS.get(p).copied().unwrap_or(0),
    )
}
