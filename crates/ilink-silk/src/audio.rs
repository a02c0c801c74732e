//! Any common audio file to PCM and to a voice message, in process with `symphonia`.

#![forbid(unsafe_code)]

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Duration;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::SilkError;
use crate::container_guard;
use crate::decode::{DecodeOptions, Pcm, max_samples};
use crate::encode::{EncodeOptions, EncodedVoice, VoiceMeta, encode_f32};
use crate::format::{self, FRAME_MS};
use crate::resample::{check_rate, f32_to_i16, resample};

/// Packets that fail to decode before the file is given up as corrupt.
const MAX_BAD_PACKETS: usize = 64;

/// Runs a third-party parser on untrusted input, turning a panic inside it into an error.
///
/// symphonia and hound return errors for bad input by design, but a parser bug must not take
/// the caller's process down. (With `panic = "abort"` this cannot help, and does not hurt.)
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T, SilkError>) -> Result<T, SilkError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(SilkError::Audio {
            reason: "the audio parser failed on this input (it is malformed)".to_owned(),
        })
    })
}

fn audio_err(e: impl std::fmt::Display) -> SilkError {
    SilkError::Audio {
        reason: e.to_string(),
    }
}

/// Decodes an audio file held in memory (WAV, MP3, Ogg Vorbis, FLAC, AAC in MP4/M4A or ADTS)
/// to 16-bit mono PCM at `options`' sample rate (24 kHz by default).
///
/// Channels are averaged to mono; the rate is converted with a windowed-sinc resampler. The
/// format is detected from the content. Audio longer than `options`' maximum is an error.
pub fn decode_audio(bytes: &[u8], options: DecodeOptions) -> Result<Pcm, SilkError> {
    container_guard::check(&mut Cursor::new(bytes))?;
    let source = Cursor::new(bytes.to_vec());
    decode_source(Box::new(source), None, options)
}

/// Like [`decode_audio`], reading a file; its extension helps detect the format.
pub fn decode_audio_file(path: impl AsRef<Path>, options: DecodeOptions) -> Result<Pcm, SilkError> {
    let path = path.as_ref();
    let mut file = std::fs::File::open(path)?;
    container_guard::check(&mut file)?;
    let ext = path.extension().and_then(|e| e.to_str());
    decode_source(Box::new(file), ext, options)
}

fn decode_source(
    source: Box<dyn MediaSource>,
    ext: Option<&str>,
    options: DecodeOptions,
) -> Result<Pcm, SilkError> {
    let out_rate = check_rate(options.output_sample_rate())?;
    let max = options.output_max_duration();
    let (mono, rate) = guard(|| read_mono(source, ext, max))?;
    let samples = f32_to_i16(&resample(&mono, rate, out_rate)?);
    Ok(Pcm {
        samples,
        sample_rate: out_rate,
    })
}

/// Demuxes and decodes the first audio track to mono floats at its own rate.
fn read_mono(
    source: Box<dyn MediaSource>,
    ext: Option<&str>,
    max: Duration,
) -> Result<(Vec<f32>, u32), SilkError> {
    let stream = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = ext {
        hint.with_extension(ext);
    }
    let format_options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &format_options, &MetadataOptions::default())
        .map_err(audio_err)?;
    let mut reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| audio_err("the file has no audio track"))?;
    let track_id = track.id;
    let mut rate = track.codec_params.sample_rate;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(audio_err)?;

    let mut mono: Vec<f32> = Vec::new();
    let mut buffer: Option<(usize, SampleBuffer<f32>)> = None;
    let mut bad_packets = 0;
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            // A new chained stream starts: keep what we have (voice is one stream).
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(audio_err(e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymError::DecodeError(e)) => {
                bad_packets += 1;
                if bad_packets > MAX_BAD_PACKETS {
                    return Err(audio_err(format_args!("too many corrupt packets ({e})")));
                }
                continue;
            }
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(audio_err(e)),
        };
        let spec = *decoded.spec();
        match rate {
            Some(r) if r != spec.rate && !mono.is_empty() => {
                return Err(audio_err("the sample rate changes inside the file"));
            }
            _ => rate = Some(spec.rate),
        }
        let channels = spec.channels.count().max(1);
        let frames = decoded.frames();
        if frames == 0 {
            continue;
        }
        let cap = max_samples(max, check_rate(spec.rate)?);
        if mono.len() + frames > cap {
            return Err(SilkError::TooLong { max });
        }
        let needed = decoded.capacity();
        let buf = match &mut buffer {
            Some((c, buf)) if *c == channels && buf.capacity() >= needed * channels => buf,
            slot => {
                &mut slot
                    .insert((channels, SampleBuffer::new(needed as u64, spec)))
                    .1
            }
        };
        buf.copy_interleaved_ref(decoded);
        let scale = 1.0 / channels as f32;
        mono.extend(
            buf.samples()
                .chunks(channels)
                .map(|frame| frame.iter().sum::<f32>() * scale),
        );
    }
    let rate = rate.ok_or_else(|| audio_err("the file does not say its sample rate"))?;
    let rate = check_rate(rate)?;
    Ok((mono, rate))
}

/// Turns an audio file held in memory into a WeChat voice message: Tencent SILK (decoded at
/// 24 kHz by receivers) plus its `voice_item` metadata.
///
/// Accepts WAV (any rate, channel count and sample format), MP3, Ogg Vorbis, FLAC and AAC
/// (MP4/M4A or ADTS), decoded in process and mixed to mono; 8, 12, 16 and 24 kHz audio is
/// encoded at its own rate, other rates are resampled to the next SILK rate above (at most
/// 24 kHz) as [`crate::encode_pcm`] does. SILK input
/// (either layout) is validated and re-framed in the requested layout (Tencent by default)
/// without re-encoding; its play time counts one 20 ms frame per packet.
///
/// ```no_run
/// let mp3 = std::fs::read("hello.mp3")?;
/// let voice = ilink_silk::audio_to_voice(&mp3, ilink_silk::EncodeOptions::default())?;
/// println!("{} ms, {} bytes", voice.meta.playtime_ms, voice.silk.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn audio_to_voice(bytes: &[u8], options: EncodeOptions) -> Result<EncodedVoice, SilkError> {
    if format::is_silk(bytes) {
        return silk_to_voice(bytes, options);
    }
    container_guard::check(&mut Cursor::new(bytes))?;
    let max = options.input_max_duration();
    let decoded = guard(|| read_mono(Box::new(Cursor::new(bytes.to_vec())), None, max));
    let (mono, rate) = match decoded {
        // symphonia is strict about RIFF chunk lengths; hound reads WAV files whose header
        // promises more data than they hold (recorders that stopped early, streamed WAV).
        Err(SilkError::Audio { .. }) if is_wav(bytes) => {
            guard(|| crate::encode::read_wav_mono(bytes, max))?
        }
        other => other?,
    };
    encode_f32(&mono, rate, options)
}

fn is_wav(bytes: &[u8]) -> bool {
    bytes.get(..4) == Some(b"RIFF") && bytes.get(8..12) == Some(b"WAVE")
}

/// Like [`audio_to_voice`], reading a file; its extension helps detect the format.
pub fn audio_file_to_voice(
    path: impl AsRef<Path>,
    options: EncodeOptions,
) -> Result<EncodedVoice, SilkError> {
    let path = path.as_ref();
    let mut file = std::fs::File::open(path)?;
    let mut head = [0u8; 12];
    let n = std::io::Read::read(&mut file, &mut head)?;
    let head = head.get(..n).unwrap_or_default();
    if format::is_silk(head) {
        return silk_to_voice(&std::fs::read(path)?, options);
    }
    if is_wav(head) {
        // WAV takes the in-memory path, with its hound fallback for over-long headers.
        return audio_to_voice(&std::fs::read(path)?, options);
    }
    container_guard::check(&mut file)?;
    let ext = path.extension().and_then(|e| e.to_str());
    let (mono, rate) = guard(|| read_mono(Box::new(file), ext, options.input_max_duration()))?;
    encode_f32(&mono, rate, options)
}

fn silk_to_voice(silk: &[u8], options: EncodeOptions) -> Result<EncodedVoice, SilkError> {
    let max = options.input_max_duration();
    let max_frames = usize::try_from(max.as_millis() / u128::from(FRAME_MS)).unwrap_or(usize::MAX);
    let (silk, packets) = format::reframe(silk, options.output_format(), max_frames, || {
        SilkError::TooLong { max }
    })?;
    if packets == 0 {
        return Err(SilkError::Empty);
    }
    Ok(EncodedVoice {
        silk,
        meta: VoiceMeta::silk(packets as u64 * FRAME_MS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silk_input_is_reframed_not_reencoded() {
        let standard = b"#!SILK_V3\x01\x00\xaa\x02\x00\xbb\xcc\xff\xff";
        let voice = audio_to_voice(standard, EncodeOptions::default()).unwrap();
        assert_eq!(
            voice.silk,
            b"\x02#!SILK_V3\x01\x00\xaa\x02\x00\xbb\xcc".to_vec()
        );
        assert_eq!(voice.meta.playtime_ms, 40);
        assert!(matches!(
            audio_to_voice(b"\x02#!SILK_V3", EncodeOptions::default()),
            Err(SilkError::Empty)
        ));
    }

    #[test]
    fn unknown_bytes_are_an_audio_error() {
        let err = audio_to_voice(b"definitely not audio at all", EncodeOptions::default());
        assert!(matches!(err, Err(SilkError::Audio { .. })), "{err:?}");
        // No bytes at all is no audio, not an unknown format.
        let err = decode_audio(&[], DecodeOptions::default());
        assert!(matches!(err, Err(SilkError::Empty)), "{err:?}");
    }

    #[test]
    fn guard_turns_panics_into_errors() {
        let r: Result<(), SilkError> = guard(|| panic!("parser bug"));
        assert!(matches!(r, Err(SilkError::Audio { .. })));
    }
}
