//! The one error type of this crate.

#![forbid(unsafe_code)]

use std::time::Duration;

/// Everything that can go wrong turning voice into audio or audio into voice.
///
/// Each variant says what failed; the `Display` text also says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SilkError {
    /// The bytes do not start with `#!SILK_V3` (optionally preceded by one `0x02`).
    #[error(
        "not a SILK v3 stream: expected `#!SILK_V3` or `\\x02#!SILK_V3` at the start; \
         check that the voice was decrypted with the right key"
    )]
    NotSilk,
    /// The stream ends in the middle of a packet or of a packet's length field.
    #[error(
        "SILK stream truncated at byte {offset}: packet {packet} needs {needed} bytes but only \
         {available} remain; the download was probably cut short"
    )]
    Truncated {
        /// Byte offset (from the start of the input) where the incomplete packet begins.
        offset: usize,
        /// Zero-based index of the incomplete packet.
        packet: usize,
        /// Bytes the packet (or its length field) needs.
        needed: usize,
        /// Bytes actually left in the input.
        available: usize,
    },
    /// A packet length field holds a value no SILK encoder writes.
    #[error(
        "SILK packet {packet} at byte {offset} has an invalid length {length} \
         (valid: 0..={max}, or -1 as the end marker); the stream is corrupt"
    )]
    BadPacketLength {
        /// Byte offset of the length field.
        offset: usize,
        /// Zero-based packet index.
        packet: usize,
        /// The length as read (signed 16-bit little-endian).
        length: i16,
        /// The largest accepted length.
        max: usize,
    },
    /// The SILK decoder rejected a packet's payload.
    #[error("SILK packet {packet} could not be decoded (SDK error {code}); the stream is corrupt")]
    CorruptPacket {
        /// Zero-based packet index.
        packet: usize,
        /// The SILK SDK's error code.
        code: i32,
    },
    /// Decoding or encoding would produce more audio than the configured maximum.
    #[error(
        "audio longer than the allowed maximum of {max:?}; raise `max_duration` in the options \
         if this is intended"
    )]
    TooLong {
        /// The configured maximum.
        max: Duration,
    },
    /// A sample rate outside the supported range was requested or found.
    #[error("unsupported sample rate {rate} Hz (supported: {min}..={max} Hz)")]
    BadSampleRate {
        /// The rejected rate.
        rate: u32,
        /// Smallest supported rate.
        min: u32,
        /// Largest supported rate.
        max: u32,
    },
    /// An encoder bit rate outside what SILK supports.
    #[error("unsupported SILK bit rate {bitrate} bit/s (supported: {min}..={max})")]
    BadBitrate {
        /// The rejected bit rate.
        bitrate: u32,
        /// Smallest supported bit rate.
        min: u32,
        /// Largest supported bit rate.
        max: u32,
    },
    /// An encoder complexity other than 0, 1 or 2.
    #[error("unsupported SILK complexity {0} (supported: 0, 1, 2)")]
    BadComplexity(u8),
    /// There was no audio to encode.
    #[error("no audio to encode: the input holds no samples (or, for SILK input, no packets)")]
    Empty,
    /// The SILK SDK reported an error that input validation should have prevented.
    #[error(
        "SILK SDK call `{call}` failed with code {code}; this is a bug in ilink-silk, please report it"
    )]
    Sdk {
        /// The SDK function that failed.
        call: &'static str,
        /// Its error code.
        code: i32,
    },
    /// A WAV file could not be read or written.
    #[error("WAV error; check that the file is a PCM or float WAV")]
    Wav(#[from] hound::Error),
    /// An audio file could not be read: unknown container or codec, or corrupt data.
    #[error(
        "could not decode the audio file: {reason}; supported are WAV, MP3, Ogg Vorbis, FLAC and AAC/M4A"
    )]
    Audio {
        /// What went wrong, from the demuxer or decoder.
        reason: String,
    },
    /// An audio file's container declares sizes that its own bytes cannot hold (a sample table
    /// larger than its box, a tag longer than its block, a length past the end of the file).
    ///
    /// Such files are refused before they reach the demuxer, which would otherwise reserve the
    /// declared size in memory (up to gigabytes) and could abort the process.
    #[error(
        "refused a corrupt or hostile {container} file: {problem}; it was not decoded, re-export \
         it from an audio editor if it is genuine"
    )]
    MalformedContainer {
        /// The container or tag format: `MP4`, `FLAC`, `Ogg` or `ID3v2`.
        container: &'static str,
        /// What is wrong, with the offending sizes.
        problem: String,
    },
    /// The resampler failed.
    #[error("resampling failed: {0}")]
    Resample(String),
    /// Reading an input file failed.
    #[error("could not read the audio file")]
    Io(#[from] std::io::Error),
}
