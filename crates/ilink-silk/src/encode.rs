//! PCM and WAV to SILK.

#![forbid(unsafe_code)]

use std::io::Cursor;
use std::time::Duration;

use crate::SilkError;
use crate::codec::enc;
use crate::decode::{DEFAULT_MAX_DURATION, max_samples};
use crate::format::{FRAME_MS, SilkFormat, push_packet};
use crate::resample::{check_rate, f32_to_i16, resample};

/// The rate voice made here is decoded at by default and says it has (`VoiceMeta`), in Hz.
const API_RATE: u32 = 24_000;

/// The SILK internal rates, in Hz.
const INTERNAL_RATES: [u32; 4] = [8_000, 12_000, 16_000, 24_000];

/// The internal rate an input at `rate` Hz is encoded at with `bitrate` bit/s: the input's own
/// rate when SILK has it, else the lowest SILK rate above it (24 kHz for anything faster), so
/// nothing is upsampled more than it must be; but no wider than the bit rate pays for (as the
/// SILK SDK's encoder chooses: 24 kHz from 25 kbit/s, 16 kHz from 14 kbit/s, 12 kHz from
/// 10 kbit/s, else 8 kHz).
fn internal_rate(rate: u32, bitrate: u32) -> u32 {
    let own = INTERNAL_RATES
        .iter()
        .copied()
        .find(|&r| r >= rate)
        .unwrap_or(API_RATE);
    let affordable = match bitrate {
        25_000.. => 24_000,
        14_000.. => 16_000,
        10_000.. => 12_000,
        _ => 8_000,
    };
    own.min(affordable)
}

/// `voice_item.encode_type` for SILK (docs/protocol.md §8.3).
pub const ENCODE_TYPE_SILK: u32 = 6;

/// The lowest encoder bit rate SILK supports, in bit/s.
pub const MIN_BITRATE: u32 = 5_000;
/// The highest encoder bit rate SILK supports, in bit/s.
pub const MAX_BITRATE: u32 = 100_000;
/// The default encoder bit rate, in bit/s: clear speech at 24 kHz in about 3 KB per second.
pub const DEFAULT_BITRATE: u32 = 24_000;

/// How to encode SILK. Build with [`EncodeOptions::default`] and the setters.
///
/// ```
/// let options = ilink_silk::EncodeOptions::default().bitrate(32_000).complexity(1);
/// assert_eq!(options.encoder_bitrate(), 32_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncodeOptions {
    bitrate: u32,
    complexity: u8,
    format: SilkFormat,
    max_duration: Duration,
}

impl Default for EncodeOptions {
    /// [`DEFAULT_BITRATE`], complexity 2 (best), Tencent layout, at most
    /// [`DEFAULT_MAX_DURATION`] of audio.
    fn default() -> Self {
        Self {
            bitrate: DEFAULT_BITRATE,
            complexity: 2,
            format: SilkFormat::Tencent,
            max_duration: DEFAULT_MAX_DURATION,
        }
    }
}

impl EncodeOptions {
    /// Target bit rate during speech, in bit/s ([`MIN_BITRATE`]..=[`MAX_BITRATE`]; checked when
    /// encoding).
    #[must_use]
    pub fn bitrate(mut self, bits_per_second: u32) -> Self {
        self.bitrate = bits_per_second;
        self
    }

    /// Encoder complexity: 0 (fastest), 1 or 2 (best, default).
    #[must_use]
    pub fn complexity(mut self, complexity: u8) -> Self {
        self.complexity = complexity;
        self
    }

    /// Output layout. [`SilkFormat::Tencent`] (the default) is what WeChat plays;
    /// [`SilkFormat::Standard`] writes the SDK's layout with the `0xFFFF` end marker.
    #[must_use]
    pub fn format(mut self, format: SilkFormat) -> Self {
        self.format = format;
        self
    }

    /// The longest input to accept (default [`DEFAULT_MAX_DURATION`]); longer input is a
    /// [`SilkError::TooLong`] error.
    #[must_use]
    pub fn max_duration(mut self, max: Duration) -> Self {
        self.max_duration = max;
        self
    }

    /// The configured bit rate.
    pub fn encoder_bitrate(&self) -> u32 {
        self.bitrate
    }

    /// The configured complexity.
    pub fn encoder_complexity(&self) -> u8 {
        self.complexity
    }

    /// The configured output layout.
    pub fn output_format(&self) -> SilkFormat {
        self.format
    }

    /// The configured maximum input duration.
    pub fn input_max_duration(&self) -> Duration {
        self.max_duration
    }

    fn validate(&self) -> Result<(), SilkError> {
        if !(MIN_BITRATE..=MAX_BITRATE).contains(&self.bitrate) {
            return Err(SilkError::BadBitrate {
                bitrate: self.bitrate,
                min: MIN_BITRATE,
                max: MAX_BITRATE,
            });
        }
        if self.complexity > 2 {
            return Err(SilkError::BadComplexity(self.complexity));
        }
        Ok(())
    }
}

/// What a `voice_item` says about its audio (docs/protocol.md §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VoiceMeta {
    /// `playtime`: play time in milliseconds (whole 20 ms frames).
    pub playtime_ms: u64,
    /// `sample_rate`: always 24 000 for voice made here. The SILK stream carries its own
    /// internal rate (8, 12, 16 or 24 kHz, chosen from the input's rate and the bit rate,
    /// see [`encode_pcm`]) and decodes to any
    /// output rate; 24 000 is the rate receivers decode voice at (Tencent's client always
    /// does, docs/protocol.md §13) and what [`crate::decode_silk`] returns by default.
    pub sample_rate: u32,
    /// `encode_type`: always [`ENCODE_TYPE_SILK`] (6).
    pub encode_type: u32,
    /// `bits_per_sample`: always 16.
    pub bits_per_sample: u32,
}

impl VoiceMeta {
    /// The metadata of a 24 kHz SILK voice of `playtime_ms` milliseconds.
    pub fn silk(playtime_ms: u64) -> Self {
        Self {
            playtime_ms,
            sample_rate: API_RATE,
            encode_type: ENCODE_TYPE_SILK,
            bits_per_sample: 16,
        }
    }
}

/// An encoded voice message: the SILK bytes to upload and the `voice_item` metadata.
/// (`Debug` shows the length of the SILK bytes, not the bytes.)
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedVoice {
    /// The SILK file (Tencent layout unless [`EncodeOptions::format`] said otherwise).
    pub silk: Vec<u8>,
    /// Its metadata.
    pub meta: VoiceMeta,
}

impl std::fmt::Debug for EncodedVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedVoice")
            .field("silk", &format_args!("[{} bytes]", self.silk.len()))
            .field("meta", &self.meta)
            .finish()
    }
}

/// Encodes 16-bit mono PCM at `sample_rate` Hz to SILK.
///
/// SILK codes at an internal rate of 8, 12, 16 or 24 kHz. Input at one of those rates is
/// encoded at it and input at any other rate is first resampled to the next SILK rate above it
/// (24 kHz for rates above 24 kHz), except that the bit rate caps the internal rate as the
/// SILK SDK does (24 kHz needs 25 kbit/s, 16 kHz 14 kbit/s, 12 kHz 10 kbit/s; below that
/// 8 kHz): at the default 24 kbit/s, 24 kHz input is coded at 16 kHz, which is what the
/// reference encoder does too. The last partial 20 ms frame is padded with silence, never dropped, so
/// `meta.playtime_ms` is the input's length rounded up to 20 ms.
///
/// ```
/// use ilink_silk::{encode_pcm, EncodeOptions};
/// let pcm: Vec<i16> = (0..16_010).map(|i| ((i as f32 * 0.07).sin() * 6000.0) as i16).collect();
/// let voice = encode_pcm(&pcm, 16_000, EncodeOptions::default())?;
/// assert!(voice.silk.starts_with(b"\x02#!SILK_V3"));
/// assert_eq!(voice.meta.playtime_ms, 1020); // 1000.6 ms rounded up to whole frames
/// assert_eq!(voice.meta.sample_rate, 24_000);
/// assert_eq!(voice.meta.encode_type, 6);
/// # Ok::<(), ilink_silk::SilkError>(())
/// ```
pub fn encode_pcm(
    samples: &[i16],
    sample_rate: u32,
    options: EncodeOptions,
) -> Result<EncodedVoice, SilkError> {
    options.validate()?;
    check_rate(sample_rate)?;
    check_length(samples.len(), sample_rate, &options)?;
    let internal = internal_rate(sample_rate, options.bitrate);
    if sample_rate == internal {
        encode_native(samples, internal, &options)
    } else {
        let floats = crate::resample::i16_to_f32(samples);
        encode_native(
            &f32_to_i16(&resample(&floats, sample_rate, internal)?),
            internal,
            &options,
        )
    }
}

/// Encodes mono float samples (nominal range -1..1) at `sample_rate` Hz.
pub(crate) fn encode_f32(
    samples: &[f32],
    sample_rate: u32,
    options: EncodeOptions,
) -> Result<EncodedVoice, SilkError> {
    options.validate()?;
    check_rate(sample_rate)?;
    check_length(samples.len(), sample_rate, &options)?;
    let internal = internal_rate(sample_rate, options.bitrate);
    let native = resample(samples, sample_rate, internal)?;
    encode_native(&f32_to_i16(&native), internal, &options)
}

fn check_length(len: usize, rate: u32, options: &EncodeOptions) -> Result<(), SilkError> {
    if len == 0 {
        return Err(SilkError::Empty);
    }
    if len > max_samples(options.max_duration, rate) {
        return Err(SilkError::TooLong {
            max: options.max_duration,
        });
    }
    Ok(())
}

/// Encodes validated samples at the internal rate `rate` (8, 12, 16 or 24 kHz), one 20 ms
/// frame per packet, padding the last frame.
fn encode_native(
    samples: &[i16],
    rate: u32,
    options: &EncodeOptions,
) -> Result<EncodedVoice, SilkError> {
    if samples.is_empty() {
        return Err(SilkError::Empty);
    }
    let packets = enc::encode(
        samples,
        enc::Settings {
            fs_khz: (rate / 1000) as usize,
            bitrate: options.bitrate,
            complexity: options.complexity,
        },
    );
    let frames = packets.len();
    let bytes: usize = packets.iter().map(|p| p.len() + 2).sum();
    let mut silk = Vec::with_capacity(12 + bytes);
    options.format.write_header(&mut silk);
    for packet in &packets {
        push_packet(&mut silk, packet);
    }
    if options.format == SilkFormat::Standard {
        silk.extend_from_slice(&(-1i16).to_le_bytes());
    }
    Ok(EncodedVoice {
        silk,
        meta: VoiceMeta::silk(frames as u64 * FRAME_MS),
    })
}

/// Encodes a WAV file (any sample rate and channel count; 8/16/24/32-bit integer or 32-bit
/// float samples) to SILK. Channels are mixed to mono; the rate is handled as by
/// [`encode_pcm`].
///
/// ```
/// # use std::io::Cursor;
/// let mut wav = Vec::new();
/// let spec = hound::WavSpec { channels: 2, sample_rate: 44_100, bits_per_sample: 16,
///                             sample_format: hound::SampleFormat::Int };
/// let mut w = hound::WavWriter::new(Cursor::new(&mut wav), spec).unwrap();
/// for i in 0..44_100 { w.write_sample((i % 100) as i16 * 100).unwrap(); w.write_sample(0i16).unwrap(); }
/// w.finalize().unwrap();
/// let voice = ilink_silk::encode_wav(&wav, ilink_silk::EncodeOptions::default())?;
/// assert_eq!(voice.meta.playtime_ms, 1000);
/// # Ok::<(), ilink_silk::SilkError>(())
/// ```
pub fn encode_wav(wav: &[u8], options: EncodeOptions) -> Result<EncodedVoice, SilkError> {
    options.validate()?;
    let (mono, rate) = crate::audio::guard(|| read_wav_mono(wav, options.max_duration))?;
    encode_f32(&mono, rate, options)
}

/// Reads a WAV file into mono floats, refusing more than `max` of audio.
pub(crate) fn read_wav_mono(wav: &[u8], max: Duration) -> Result<(Vec<f32>, u32), SilkError> {
    let mut reader = hound::WavReader::new(Cursor::new(wav))?;
    let spec = reader.spec();
    let rate = check_rate(spec.sample_rate)?;
    let channels = usize::from(spec.channels.max(1));
    let cap = max_samples(max, rate);
    // The header's length is only a claim (recorders that stop early leave it too long, streams
    // write 0xFFFFFFFF): reserve no more than the file can hold, and stop at its real end.
    let declared = reader.duration() as usize;
    let bytes_per_frame = channels * usize::from(spec.bits_per_sample.div_ceil(8)).max(1);
    let mut mono = Vec::with_capacity(declared.min(wav.len() / bytes_per_frame).min(cap));
    let mut acc = 0.0f32;
    let mut n = 0usize;
    let mut push = |v: Result<f32, hound::Error>, mono: &mut Vec<f32>| -> Result<bool, SilkError> {
        let v = match v {
            Ok(v) => v,
            // Reading from memory, the only I/O error is running out of bytes (hound reports
            // it as `Other`): the data ends here.
            Err(hound::Error::IoError(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        acc += v;
        n += 1;
        if n == channels {
            if mono.len() == cap {
                return Err(SilkError::TooLong { max });
            }
            mono.push(acc / channels as f32);
            acc = 0.0;
            n = 0;
        }
        Ok(true)
    };
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, _) => {
            for s in reader.samples::<f32>() {
                if !push(s, &mut mono)? {
                    break;
                }
            }
        }
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            for s in reader.samples::<i32>() {
                if !push(s.map(|v| v as f32 * scale), &mut mono)? {
                    break;
                }
            }
        }
        (hound::SampleFormat::Int, _) => return Err(SilkError::Wav(hound::Error::Unsupported)),
    }
    Ok((mono, rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeOptions, decode_silk};
    use crate::format::playtime_ms;

    fn tone(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as f32 * 0.06).sin() * 8000.0) as i16)
            .collect()
    }

    #[test]
    fn exactly_one_tencent_prefix() {
        let voice = encode_pcm(&tone(4800), 24_000, EncodeOptions::default()).unwrap();
        assert_eq!(voice.silk[0], 0x02);
        assert_eq!(&voice.silk[1..10], b"#!SILK_V3");
        assert_ne!(voice.silk[1], 0x02);
        assert_eq!(voice.meta, VoiceMeta::silk(200));
        assert_eq!(playtime_ms(&voice.silk).unwrap(), 200);
        assert!(!voice.silk.ends_with(&[0xff, 0xff]));
    }

    #[test]
    fn the_internal_rate_follows_the_input_and_the_bitrate() {
        for (rate, bitrate, internal) in [
            (8_000, 24_000, 8_000),
            (12_000, 24_000, 12_000),
            (16_000, 24_000, 16_000),
            (24_000, 24_000, 16_000),
            (24_000, 25_000, 24_000),
            (48_000, 60_000, 24_000),
            (44_100, 24_000, 16_000),
            (11_025, 60_000, 12_000),
            (22_050, 30_000, 24_000),
            (16_000, 12_000, 12_000),
            (16_000, 5_000, 8_000),
            (4_000, 100_000, 8_000),
        ] {
            assert_eq!(
                internal_rate(rate, bitrate),
                internal,
                "{rate} Hz, {bitrate} bit/s"
            );
        }
    }

    #[test]
    fn debug_shows_length_not_bytes() {
        let voice = EncodedVoice {
            silk: vec![0; 3000],
            meta: VoiceMeta::silk(1000),
        };
        let text = format!("{voice:?}");
        assert!(
            text.starts_with("EncodedVoice { silk: [3000 bytes], meta: VoiceMeta {"),
            "{text}"
        );
        assert!(text.contains("playtime_ms: 1000") && text.contains("encode_type: 6"));
    }

    #[test]
    fn standard_layout_has_end_marker() {
        let options = EncodeOptions::default().format(SilkFormat::Standard);
        let voice = encode_pcm(&tone(4800), 24_000, options).unwrap();
        assert!(voice.silk.starts_with(b"#!SILK_V3"));
        assert!(voice.silk.ends_with(&[0xff, 0xff]));
        assert_eq!(playtime_ms(&voice.silk).unwrap(), 200);
    }

    #[test]
    fn partial_last_frame_is_padded_not_dropped() {
        for (n, frames) in [(1, 1), (479, 1), (480, 1), (481, 2), (24_001, 51)] {
            let voice = encode_pcm(&tone(n), 24_000, EncodeOptions::default()).unwrap();
            assert_eq!(voice.meta.playtime_ms, frames * 20, "{n} samples");
            let pcm = decode_silk(&voice.silk, DecodeOptions::default()).unwrap();
            assert_eq!(pcm.samples.len() as u64, frames * 480);
        }
    }

    #[test]
    fn options_are_validated() {
        let s = tone(480);
        for bitrate in [0, 4_999, 100_001] {
            let err = encode_pcm(&s, 24_000, EncodeOptions::default().bitrate(bitrate));
            assert!(matches!(err, Err(SilkError::BadBitrate { .. })));
        }
        let err = encode_pcm(&s, 24_000, EncodeOptions::default().complexity(3));
        assert!(matches!(err, Err(SilkError::BadComplexity(3))));
        for rate in [0, 100, 1_000_000] {
            let err = encode_pcm(&s, rate, EncodeOptions::default());
            assert!(matches!(err, Err(SilkError::BadSampleRate { .. })));
        }
        assert!(matches!(
            encode_pcm(&[], 24_000, EncodeOptions::default()),
            Err(SilkError::Empty)
        ));
        let short = EncodeOptions::default().max_duration(Duration::from_millis(10));
        assert!(matches!(
            encode_pcm(&s, 24_000, short),
            Err(SilkError::TooLong { .. })
        ));
    }

    #[test]
    fn every_complexity_and_bitrate_extreme_works() {
        let s = tone(2400);
        for complexity in 0..=2 {
            for bitrate in [MIN_BITRATE, DEFAULT_BITRATE, MAX_BITRATE] {
                let options = EncodeOptions::default()
                    .complexity(complexity)
                    .bitrate(bitrate);
                let voice = encode_pcm(&s, 24_000, options).unwrap();
                assert_eq!(voice.meta.playtime_ms, 100);
            }
        }
    }

    #[test]
    fn higher_bitrate_gives_bigger_files() {
        let s = tone(24_000);
        let low = encode_pcm(&s, 24_000, EncodeOptions::default().bitrate(10_000)).unwrap();
        let high = encode_pcm(&s, 24_000, EncodeOptions::default().bitrate(60_000)).unwrap();
        assert!(
            high.silk.len() > low.silk.len() * 2,
            "{} vs {}",
            high.silk.len(),
            low.silk.len()
        );
    }

    #[test]
    fn wav_of_unsupported_depth_or_garbage_is_an_error() {
        assert!(matches!(
            encode_wav(b"not a wav", EncodeOptions::default()),
            Err(SilkError::Wav(_))
        ));
    }
}
