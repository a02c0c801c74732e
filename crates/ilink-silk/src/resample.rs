//! Sample-rate conversion of whole mono signals with `rubato`'s windowed-sinc resampler, and
//! sample format helpers.

#![forbid(unsafe_code)]

use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
    calculate_cutoff,
};

use crate::SilkError;

/// The lowest sample rate accepted anywhere in this crate, in Hz.
pub const MIN_SAMPLE_RATE: u32 = 4_000;
/// The highest sample rate accepted anywhere in this crate, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 384_000;

/// Input frames per resampler call.
const CHUNK: usize = 1024;

/// Taps of the windowed-sinc filter.
const SINC_LEN: usize = 128;

/// The most outputs [`phase_fix`] may drop.
const MAX_SKIP: usize = 1024;

/// Zeros to prepend and outputs to drop so that resampled output n lands on input time
/// n * from / to: with t = (skip + 1) * from / to - 1, pad = t must be a whole number >= 0.
/// Exact when `skip + 1` is a multiple of `to / gcd(from, to)` (at most [`MAX_SKIP`] + 1, which
/// covers every pair of common rates); otherwise the closest fit, within half an input sample.
fn phase_fix(from: u32, to: u32) -> (usize, usize) {
    let (from, to) = (u64::from(from), u64::from(to));
    let mut best = (0usize, 0usize, u64::MAX);
    for skip in 0..=MAX_SKIP as u64 {
        // t * to = (skip + 1) * from - to, kept in integers.
        let Some(num) = ((skip + 1) * from).checked_sub(to) else {
            continue;
        };
        let (whole, rest) = (num / to, num % to);
        let (pad, err) = if rest * 2 <= to {
            (whole, rest)
        } else {
            (whole + 1, to - rest)
        };
        if err < best.2 {
            best = (pad as usize, skip as usize, err);
            if err == 0 {
                break;
            }
        }
    }
    (best.0, best.1)
}

/// Returns `rate` if it is within [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`].
pub(crate) fn check_rate(rate: u32) -> Result<u32, SilkError> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(SilkError::BadSampleRate {
            rate,
            min: MIN_SAMPLE_RATE,
            max: MAX_SAMPLE_RATE,
        })
    }
}

/// Number of output samples for `len` input samples converted from `from` to `to` Hz
/// (rounded up, so a partial last sample period is kept).
pub(crate) fn output_len(len: usize, from: u32, to: u32) -> usize {
    let n = (len as u128 * u128::from(to)).div_ceil(u128::from(from.max(1)));
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Converts a whole mono signal from `from` Hz to `to` Hz. Output is aligned with the input
/// and has [`output_len`] samples.
pub(crate) fn resample(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, SilkError> {
    check_rate(from)?;
    check_rate(to)?;
    if from == to || input.is_empty() {
        return Ok(input.to_vec());
    }
    let err = |e: &dyn std::fmt::Display| SilkError::Resample(e.to_string());
    let window = WindowFunction::BlackmanHarris2;
    let params = SincInterpolationParameters {
        sinc_len: SINC_LEN,
        f_cutoff: calculate_cutoff(SINC_LEN, window),
        interpolation: SincInterpolationType::Linear,
        oversampling_factor: 256,
        window,
    };
    let ratio = f64::from(to) / f64::from(from);
    let mut resampler =
        SincFixedIn::<f32>::new(ratio, 1.0, params, CHUNK, 1).map_err(|e| err(&e))?;
    let wanted = output_len(input.len(), from, to);
    // Output n of `SincFixedIn` is the input at time (n + 1) / ratio - 1 (measured; its
    // `output_delay()` does not describe this). Prepending `pad` zeros and dropping `skip`
    // outputs makes output n the input at time n / ratio, exactly when the rates allow.
    let (pad, skip) = phase_fix(from, to);
    let padded: Vec<f32>;
    let input = if pad == 0 {
        input
    } else {
        padded = std::iter::repeat_n(0.0, pad)
            .chain(input.iter().copied())
            .collect();
        &padded
    };
    let mut out = Vec::with_capacity(skip + wanted + resampler.output_frames_max());
    let mut buf = resampler.output_buffer_allocate(true);

    let mut chunks = input.chunks_exact(CHUNK);
    for chunk in chunks.by_ref() {
        let (_, n) = resampler
            .process_into_buffer(&[chunk], &mut buf, None)
            .map_err(|e| err(&e))?;
        extend(&mut out, &buf, n);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let (_, n) = resampler
            .process_partial_into_buffer(Some(&[rest]), &mut buf, None)
            .map_err(|e| err(&e))?;
        extend(&mut out, &buf, n);
    }
    // Flush the tail the filter holds back. Each call yields about CHUNK * ratio frames; the
    // bound only guards against a resampler that stops producing output.
    let per_flush = ((CHUNK as f64 * ratio) as usize).max(1);
    let max_flushes = 8 + (skip + 2 * SINC_LEN) / per_flush;
    let mut flushes = 0;
    while out.len() < skip + wanted && flushes < max_flushes {
        let (_, n) = resampler
            .process_partial_into_buffer(None::<&[&[f32]]>, &mut buf, None)
            .map_err(|e| err(&e))?;
        extend(&mut out, &buf, n);
        flushes += 1;
    }
    let mut out = out.split_off(skip.min(out.len()));
    out.resize(wanted, 0.0);
    Ok(out)
}

fn extend(out: &mut Vec<f32>, buf: &[Vec<f32>], n: usize) {
    if let Some(channel) = buf.first() {
        out.extend_from_slice(channel.get(..n).unwrap_or(channel));
    }
}

/// Converts 16-bit samples to floats in [-1, 1).
pub(crate) fn i16_to_f32(samples: &[i16]) -> Vec<f32> {
    samples.iter().map(|&s| f32::from(s) / 32768.0).collect()
}

/// Converts floats to 16-bit samples, rounding and clipping.
pub(crate) fn f32_to_i16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|&s| {
            let v = (s * 32768.0).round();
            if v.is_nan() {
                0
            } else {
                // Saturating float-to-int cast after clamping: the value is in range.
                v.clamp(-32768.0, 32767.0) as i16
            }
        })
        .collect()
}

/// Resamples 16-bit mono samples.
pub(crate) fn resample_i16(input: &[i16], from: u32, to: u32) -> Result<Vec<i16>, SilkError> {
    if from == to {
        check_rate(from)?;
        return Ok(input.to_vec());
    }
    Ok(f32_to_i16(&resample(&i16_to_f32(input), from, to)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Best SNR (dB) of `out` against a 300 Hz sine of amplitude 0.5 sampled at `to` Hz,
    /// over fractional delays of -1..=1 input samples (the resampler's phase offset).
    fn best_snr(out: &[f32], from: u32, to: u32) -> (f64, f64) {
        let mut best = (0.0, f64::MIN);
        for k in -100..=100 {
            let delay = f64::from(k) * 0.01;
            let (mut err, mut sig) = (0.0, 0.0);
            // Ignore the edges, where the filter sees zeros.
            for (i, &o) in out.iter().enumerate().take(out.len() - 300).skip(300) {
                let t = i as f64 * f64::from(from) / f64::from(to) + delay;
                let y = 0.5 * (2.0 * std::f64::consts::PI * 300.0 * t / f64::from(from)).sin();
                err += (f64::from(o) - y).powi(2);
                sig += y * y;
            }
            let snr = 10.0 * (sig / err).log10();
            if snr > best.1 {
                best = (delay, snr);
            }
        }
        best
    }

    #[test]
    fn resampled_sine_matches_ideal_sine() {
        for (from, to) in [
            (44_100, 24_000),
            (8_000, 24_000),
            (24_000, 16_000),
            (48_000, 24_000),
        ] {
            let input = sine(from, 300.0, 0.5);
            let out = resample(&input, from, to).unwrap();
            assert_eq!(out.len(), output_len(input.len(), from, to));
            let (delay, snr) = best_snr(&out, from, to);
            assert!(snr > 60.0, "{from}->{to}: SNR {snr} dB at delay {delay}");
            // Output n is the input at time n / ratio: no fractional delay.
            assert!(
                delay.abs() < 0.015,
                "{from}->{to}: delay {delay} input samples"
            );
        }
    }

    #[test]
    fn phase_fix_is_exact_for_common_rates() {
        assert_eq!(phase_fix(44_100, 24_000), (146, 79));
        assert_eq!(phase_fix(8_000, 24_000), (0, 2));
        assert_eq!(phase_fix(48_000, 24_000), (1, 0));
        assert_eq!(phase_fix(24_000, 16_000), (2, 1));
        for from in [
            8_000, 11_025, 12_000, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000,
        ] {
            for to in [8_000, 16_000, 24_000, 44_100, 48_000] {
                if from == to {
                    continue;
                }
                let (pad, skip) = phase_fix(from, to);
                let (f, t) = (from as u64, to as u64);
                assert_eq!((skip as u64 + 1) * f, (pad as u64 + 1) * t, "{from}->{to}");
            }
        }
        // Awkward rates still get a fit within half an input sample.
        let (pad, skip) = phase_fix(44_101, 24_000);
        let t = (skip as f64 + 1.0) * 44_101.0 / 24_000.0 - 1.0;
        assert!((t - pad as f64).abs() <= 0.5);
    }

    #[test]
    fn identity_and_empty() {
        assert_eq!(
            resample(&[0.25, -0.5], 24_000, 24_000).unwrap(),
            vec![0.25, -0.5]
        );
        assert!(resample(&[], 8_000, 24_000).unwrap().is_empty());
    }

    #[test]
    fn rates_are_validated() {
        assert!(matches!(
            resample(&[0.0], 0, 24_000),
            Err(SilkError::BadSampleRate { rate: 0, .. })
        ));
        assert!(resample_i16(&[0], 24_000, 1_000_000).is_err());
        assert!(resample_i16(&[0], 3_999, 3_999).is_err());
    }

    #[test]
    fn sample_conversion_clips() {
        assert_eq!(
            f32_to_i16(&[2.0, -2.0, 0.0, f32::NAN]),
            vec![32767, -32768, 0, 0]
        );
        assert_eq!(i16_to_f32(&[-32768]), vec![-1.0]);
    }
}
