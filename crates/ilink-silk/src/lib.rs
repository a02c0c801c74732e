#![doc = include_str!("../README.md")]
// `unsafe` is confined to the FFI module (`ffi`), which allows it explicitly and is compiled
// only with the C SDK (the non-default `c-reference` feature); every other module carries
// `#![forbid(unsafe_code)]`.
#![deny(unsafe_code)]

mod audio;
mod codec;
mod container_guard;
mod decode;
mod encode;
mod error;
#[cfg(feature = "c-reference")]
mod ffi;
mod format;
#[cfg(feature = "c-reference")]
pub mod reference;
mod resample;

pub use audio::{audio_file_to_voice, audio_to_voice, decode_audio, decode_audio_file};
pub use decode::{
    DEFAULT_MAX_DURATION, DecodeOptions, Pcm, decode_silk, decode_to_wav, decode_to_wav_with,
    probe, to_tencent,
};
pub use encode::{
    DEFAULT_BITRATE, ENCODE_TYPE_SILK, EncodeOptions, EncodedVoice, MAX_BITRATE, MIN_BITRATE,
    VoiceMeta, encode_pcm, encode_wav,
};
pub use error::SilkError;
pub use format::{MAX_PACKET_BYTES, SILK_MAGIC, SilkFormat, TENCENT_PREFIX, is_silk, playtime_ms};
pub use resample::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};

/// The sample rate of every voice this crate makes, and of SILK decoding before any
/// conversion, in Hz.
pub const VOICE_SAMPLE_RATE: u32 = format::API_RATE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<SilkError>();
        check::<Pcm>();
        check::<EncodedVoice>();
        check::<VoiceMeta>();
        check::<DecodeOptions>();
        check::<EncodeOptions>();
        check::<SilkFormat>();
    }
}
