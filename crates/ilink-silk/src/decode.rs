//! SILK to PCM and WAV.

#![forbid(unsafe_code)]

use std::io::Cursor;
use std::time::Duration;

use crate::SilkError;
use crate::codec::{self, REFERENCE_RATES};
use crate::format::API_RATE;
use crate::format::{self, FRAME_MS, SilkFormat};
use crate::resample::{check_rate, resample_i16};

/// The default cap on decoded or encoded audio: 10 minutes (WeChat voice is at most 60 s).
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(600);

/// How to decode SILK. Build with [`DecodeOptions::default`] and the setters.
///
/// ```
/// use std::time::Duration;
/// let options = ilink_silk::DecodeOptions::default()
///     .sample_rate(16_000)
///     .max_duration(Duration::from_secs(60));
/// assert_eq!(options.output_sample_rate(), 16_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeOptions {
    sample_rate: u32,
    max_duration: Duration,
}

impl Default for DecodeOptions {
    /// 24 kHz output (what WeChat's own client uses), at most [`DEFAULT_MAX_DURATION`].
    fn default() -> Self {
        Self {
            sample_rate: API_RATE,
            max_duration: DEFAULT_MAX_DURATION,
        }
    }
}

impl DecodeOptions {
    /// Output sample rate in Hz (default 24 000). Any rate in
    /// [`MIN_SAMPLE_RATE`](crate::MIN_SAMPLE_RATE)..=[`MAX_SAMPLE_RATE`](crate::MAX_SAMPLE_RATE)
    /// works. At the rates the SILK reference decoder offers (8, 12, 16, 24, 32, 44.1 and
    /// 48 kHz) the output is the reference's, sample for sample (its own resamplers); other
    /// rates are decoded at 24 kHz and converted with a windowed-sinc resampler. Rates outside
    /// the range are an error at decode time.
    #[must_use]
    pub fn sample_rate(mut self, hz: u32) -> Self {
        self.sample_rate = hz;
        self
    }

    /// The longest audio to produce (default [`DEFAULT_MAX_DURATION`]); longer streams are
    /// a [`SilkError::TooLong`] error, found before any decoding work where possible.
    #[must_use]
    pub fn max_duration(mut self, max: Duration) -> Self {
        self.max_duration = max;
        self
    }

    /// The configured output sample rate in Hz.
    pub fn output_sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The configured maximum duration.
    pub fn output_max_duration(&self) -> Duration {
        self.max_duration
    }
}

/// 16-bit mono PCM and its sample rate. (`Debug` shows the length, not every sample.)
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Pcm {
    /// The samples, mono, native-endian `i16`.
    pub samples: Vec<i16>,
    /// Samples per second.
    pub sample_rate: u32,
}

impl std::fmt::Debug for Pcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pcm")
            .field("samples", &format_args!("[{} samples]", self.samples.len()))
            .field("sample_rate", &self.sample_rate)
            .finish()
    }
}

impl Pcm {
    /// How long the audio plays.
    pub fn duration(&self) -> Duration {
        if self.sample_rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.sample_rate))
    }

    /// The samples as a WAV file (RIFF, 44-byte header, PCM format 1, mono, 16-bit).
    pub fn to_wav(&self) -> Result<Vec<u8>, SilkError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: self.sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        // A RIFF file holds at most 4 GiB: refuse what cannot be written.
        let limit = (u32::MAX - 44) / 2;
        let count = u32::try_from(self.samples.len())
            .ok()
            .filter(|&n| n <= limit)
            .ok_or_else(|| SilkError::TooLong {
                max: Duration::from_secs_f64(f64::from(limit) / f64::from(self.sample_rate.max(1))),
            })?;
        let mut bytes = Vec::with_capacity(44 + 2 * self.samples.len());
        {
            let mut writer = hound::WavWriter::new(Cursor::new(&mut bytes), spec)?;
            let mut samples = writer.get_i16_writer(count);
            for &s in &self.samples {
                samples.write_sample(s);
            }
            samples.flush()?;
            writer.finalize()?;
        }
        Ok(bytes)
    }

    /// The samples as little-endian bytes (`s16le`, as tools such as `ffmpeg -f s16le` read).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }
}

/// The most samples `max` allows at `rate` Hz.
pub(crate) fn max_samples(max: Duration, rate: u32) -> usize {
    let n = max.as_millis().saturating_mul(u128::from(rate)) / 1000;
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Decodes SILK v3 (Tencent or standard layout) to 16-bit mono PCM.
///
/// The framing is validated completely before the decoder runs; truncated, corrupt or
/// over-long streams are errors, never panics. A packet of length 0 is a lost packet and is
/// concealed, as the SDK's reference decoder does.
///
/// ```
/// use ilink_silk::{decode_silk, encode_pcm, DecodeOptions, EncodeOptions};
/// let tone: Vec<i16> = (0..24_000).map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16).collect();
/// let voice = encode_pcm(&tone, 24_000, EncodeOptions::default())?;
/// let pcm = decode_silk(&voice.silk, DecodeOptions::default())?;
/// assert_eq!(pcm.sample_rate, 24_000);
/// assert_eq!(pcm.samples.len(), 24_000); // 50 frames of 20 ms
/// # Ok::<(), ilink_silk::SilkError>(())
/// ```
pub fn decode_silk(silk: &[u8], options: DecodeOptions) -> Result<Pcm, SilkError> {
    let rate = check_rate(options.sample_rate)?;
    let max = options.max_duration;
    let too_long = || SilkError::TooLong { max };
    let max_frames = usize::try_from(max.as_millis() / u128::from(FRAME_MS)).unwrap_or(usize::MAX);
    let framing = format::parse(silk, max_frames, too_long)?;
    let samples = if REFERENCE_RATES.contains(&rate) {
        decode_packets(&framing.packets, rate, max)?
    } else {
        let native = decode_packets(&framing.packets, API_RATE, max)?;
        resample_i16(&native, API_RATE, rate)?
    };
    Ok(Pcm {
        samples,
        sample_rate: rate,
    })
}

/// Runs the Rust decoder over validated packets at `rate` Hz (a reference rate), producing at
/// most `max` of audio.
fn decode_packets(packets: &[&[u8]], rate: u32, max: Duration) -> Result<Vec<i16>, SilkError> {
    codec::decode_packets(packets, rate, max_samples(max, rate)).map_err(|e| match e {
        Some((packet, code)) => SilkError::CorruptPacket { packet, code },
        None => SilkError::TooLong { max },
    })
}

/// Decodes SILK v3 to a 24 kHz mono 16-bit WAV file, the same form WeChat's official client
/// stores inbound voice in.
///
/// ```no_run
/// let silk = std::fs::read("voice.silk")?;
/// std::fs::write("voice.wav", ilink_silk::decode_to_wav(&silk)?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_to_wav(silk: &[u8]) -> Result<Vec<u8>, SilkError> {
    decode_to_wav_with(silk, DecodeOptions::default())
}

/// Decodes SILK v3 to a mono 16-bit WAV file with the given options.
pub fn decode_to_wav_with(silk: &[u8], options: DecodeOptions) -> Result<Vec<u8>, SilkError> {
    decode_silk(silk, options)?.to_wav()
}

/// Validates a SILK stream of either layout and returns it in Tencent's layout (exactly one
/// `0x02`, no end marker), without re-encoding. The packets are kept byte for byte.
///
/// ```
/// let standard = b"#!SILK_V3\x01\x00\xaa\xff\xff";
/// assert_eq!(ilink_silk::to_tencent(standard)?, b"\x02#!SILK_V3\x01\x00\xaa".to_vec());
/// # Ok::<(), ilink_silk::SilkError>(())
/// ```
pub fn to_tencent(silk: &[u8]) -> Result<Vec<u8>, SilkError> {
    let (tencent, _) = format::reframe(silk, SilkFormat::Tencent, usize::MAX, || SilkError::Empty)?;
    Ok(tencent)
}

/// The layout of a SILK stream, after validating its whole framing.
pub fn probe(silk: &[u8]) -> Result<SilkFormat, SilkError> {
    let (format, packets) = format::Packets::new(silk)?;
    for packet in packets {
        packet?;
    }
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FRAME_SAMPLES;

    #[test]
    fn debug_shows_length_not_samples() {
        let pcm = Pcm {
            samples: vec![7; 48_000],
            sample_rate: 24_000,
        };
        assert_eq!(
            format!("{pcm:?}"),
            "Pcm { samples: [48000 samples], sample_rate: 24000 }"
        );
        assert_eq!(pcm.duration(), Duration::from_secs(2));
    }

    #[test]
    fn empty_stream_decodes_to_nothing() {
        let pcm = decode_silk(b"\x02#!SILK_V3", DecodeOptions::default()).unwrap();
        assert!(pcm.samples.is_empty());
        assert_eq!(pcm.sample_rate, 24_000);
        assert_eq!(pcm.duration(), Duration::ZERO);
    }

    #[test]
    fn lost_packets_are_concealed_as_frames() {
        let pcm = decode_silk(
            b"#!SILK_V3\x00\x00\x00\x00\xff\xff",
            DecodeOptions::default(),
        )
        .unwrap();
        assert_eq!(pcm.samples.len(), 2 * FRAME_SAMPLES);
    }

    #[test]
    fn max_duration_is_enforced_before_decoding() {
        let mut silk = b"\x02#!SILK_V3".to_vec();
        for _ in 0..51 {
            silk.extend_from_slice(&[0, 0]);
        }
        let options = DecodeOptions::default().max_duration(Duration::from_secs(1));
        assert!(matches!(
            decode_silk(&silk, options),
            Err(SilkError::TooLong { max }) if max == Duration::from_secs(1)
        ));
        silk.truncate(silk.len() - 2);
        assert_eq!(decode_silk(&silk, options).unwrap().samples.len(), 24_000);
    }

    #[test]
    fn bad_output_rates_are_rejected() {
        for rate in [0, 1, 3_999, 384_001, u32::MAX] {
            let err = decode_silk(b"\x02#!SILK_V3", DecodeOptions::default().sample_rate(rate));
            assert!(
                matches!(err, Err(SilkError::BadSampleRate { .. })),
                "{rate}"
            );
        }
    }

    #[test]
    fn wav_header_is_44_bytes_mono_16_bit() {
        let pcm = Pcm {
            samples: vec![1, -1, 300],
            sample_rate: 24_000,
        };
        let wav = pcm.to_wav().unwrap();
        assert_eq!(wav.len(), 44 + 6);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(&wav[8..12], b"WAVE");
        assert_eq!(u16::from_le_bytes([wav[20], wav[21]]), 1); // PCM
        assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 1); // mono
        assert_eq!(
            u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
            24_000
        );
        assert_eq!(
            u32::from_le_bytes([wav[28], wav[29], wav[30], wav[31]]),
            48_000
        );
        assert_eq!(u16::from_le_bytes([wav[32], wav[33]]), 2); // block align
        assert_eq!(u16::from_le_bytes([wav[34], wav[35]]), 16);
        assert_eq!(&wav[44..], &[1, 0, 0xff, 0xff, 0x2c, 0x01]);
        assert_eq!(pcm.to_le_bytes(), vec![1, 0, 0xff, 0xff, 0x2c, 0x01]);
    }

    #[test]
    fn probe_reports_layout_and_validates() {
        assert_eq!(
            probe(b"\x02#!SILK_V3\x00\x00").unwrap(),
            SilkFormat::Tencent
        );
        assert_eq!(probe(b"#!SILK_V3\xff\xff").unwrap(), SilkFormat::Standard);
        assert!(probe(b"#!SILK_V3\x05\x00").is_err());
    }
}
