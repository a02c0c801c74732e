//! A pluggable voice codec for the web page: the emulator does not depend on a SILK codec;
//! `ilink sim` (and tests) plug one in through [`SimConfig::voice_codec`](crate::SimConfig::voice_codec).

use std::fmt;
use std::sync::Arc;

/// Converts audio to SILK and back, for the web page that plays the phone.
pub trait VoiceCodec: Send + Sync {
    /// Encodes an audio file (WAV, or whatever the codec reads) to SILK as WeChat sends it
    /// (24 kHz mono), returning the SILK bytes and the duration in milliseconds.
    ///
    /// # Errors
    /// A message saying why the audio could not be encoded (shown on the page).
    fn encode(&self, audio: &[u8]) -> Result<(Vec<u8>, u64), String>;

    /// Decodes SILK to a WAV file a browser can play.
    ///
    /// # Errors
    /// A message saying why the SILK could not be decoded (shown on the page).
    fn decode_to_wav(&self, silk: &[u8]) -> Result<Vec<u8>, String>;
}

/// A shared [`VoiceCodec`], as kept in [`SimConfig`](crate::SimConfig).
#[derive(Clone)]
pub struct VoiceCodecRef(pub Arc<dyn VoiceCodec>);

impl VoiceCodecRef {
    /// Wraps a codec.
    pub fn new(codec: impl VoiceCodec + 'static) -> Self {
        Self(Arc::new(codec))
    }
}

impl fmt::Debug for VoiceCodecRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VoiceCodec")
    }
}
