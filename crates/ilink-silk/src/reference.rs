//! The SILK SDK's own C encoder and decoder, for comparing ilink's Rust decoder against the
//! reference: the bit-exact tests, the differential fuzzer and the benches use it. Not for
//! production: the C decoder is only safe behind the guards of this crate's FFI module.
//!
//! Enabled by the non-default `c-reference` feature.

#![forbid(unsafe_code)]

use std::time::Duration;

use crate::SilkError;
use crate::decode::DEFAULT_MAX_DURATION;
use crate::ffi::{self, EncoderConfig};
use crate::format::{self, FRAME_MS, SilkFormat};

/// Every setting of the reference encoder.
///
/// ```
/// let settings = ilink_silk::reference::EncoderSettings::default().max_internal_rate(16_000);
/// assert_eq!(settings.packet_ms, 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncoderSettings {
    /// Input rate in Hz: 8000, 12000, 16000, 24000, 32000, 44100 or 48000.
    pub api_rate: u32,
    /// Highest internal rate in Hz: 8000, 12000, 16000 or 24000.
    pub max_internal_rate: u32,
    /// Packet length in ms: 20, 40, 60, 80 or 100 (1 to 5 frames per packet).
    pub packet_ms: u32,
    /// Target bitrate in bits per second (the SDK clamps it to 5000..=100000).
    pub bitrate: u32,
    /// Encoder complexity, 0 to 2.
    pub complexity: u8,
    /// In-band FEC (low bit-rate redundancy) on.
    pub fec: bool,
    /// Discontinuous transmission on: silent packets may be sent empty.
    pub dtx: bool,
    /// Expected packet loss, percent.
    pub loss_pct: u8,
}

impl Default for EncoderSettings {
    /// 24 kHz in, 24 kHz internal, 20 ms packets, 24 kbit/s, complexity 2, no FEC or DTX.
    fn default() -> Self {
        Self {
            api_rate: 24_000,
            max_internal_rate: 24_000,
            packet_ms: 20,
            bitrate: 24_000,
            complexity: 2,
            fec: false,
            dtx: false,
            loss_pct: 0,
        }
    }
}

impl EncoderSettings {
    /// Sets the highest internal rate (Hz).
    #[must_use]
    pub fn max_internal_rate(mut self, hz: u32) -> Self {
        self.max_internal_rate = hz;
        self
    }
    /// Sets the packet length (ms).
    #[must_use]
    pub fn packet_ms(mut self, ms: u32) -> Self {
        self.packet_ms = ms;
        self
    }
    /// Sets the bitrate (bits per second).
    #[must_use]
    pub fn bitrate(mut self, bps: u32) -> Self {
        self.bitrate = bps;
        self
    }
    /// Sets the complexity (0 to 2).
    #[must_use]
    pub fn complexity(mut self, complexity: u8) -> Self {
        self.complexity = complexity;
        self
    }
    /// Sets in-band FEC and the expected loss that drives it.
    #[must_use]
    pub fn fec(mut self, on: bool, loss_pct: u8) -> Self {
        self.fec = on;
        self.loss_pct = loss_pct;
        self
    }
    /// Sets DTX.
    #[must_use]
    pub fn dtx(mut self, on: bool) -> Self {
        self.dtx = on;
        self
    }
    /// Sets the input rate (Hz).
    #[must_use]
    pub fn api_rate(mut self, hz: u32) -> Self {
        self.api_rate = hz;
        self
    }
}

/// Encodes mono PCM at `settings.api_rate` with the reference encoder into a Tencent-layout
/// stream (the last partial packet is padded with silence). DTX packets are written as
/// zero-length packets, which decoders treat as lost.
pub fn encode(pcm: &[i16], settings: EncoderSettings) -> Result<Vec<u8>, SilkError> {
    let mut encoder = ffi::Encoder::with_config(&EncoderConfig {
        api_rate: settings.api_rate,
        max_internal_rate: settings.max_internal_rate,
        packet_ms: settings.packet_ms,
        bitrate: settings.bitrate,
        complexity: settings.complexity,
        fec: settings.fec,
        dtx: settings.dtx,
        loss_pct: settings.loss_pct,
    })?;
    let n = encoder.packet_samples();
    let mut out = Vec::new();
    SilkFormat::Tencent.write_header(&mut out);
    for chunk in pcm.chunks(n.max(1)) {
        let mut packet = chunk.to_vec();
        packet.resize(n, 0);
        let payload = encoder.encode_packet(&packet)?;
        format::push_packet(&mut out, payload);
    }
    Ok(out)
}

/// Decodes with the reference C decoder at `rate` Hz (one of the seven rates the SDK
/// accepts), with the same framing rules and caps as [`decode_silk`](crate::decode_silk).
pub fn decode(silk: &[u8], rate: u32) -> Result<Vec<i16>, SilkError> {
    decode_capped(silk, rate, DEFAULT_MAX_DURATION)
}

fn decode_capped(silk: &[u8], rate: u32, max: Duration) -> Result<Vec<i16>, SilkError> {
    let too_long = || SilkError::TooLong { max };
    let max_frames = usize::try_from(max.as_millis() / u128::from(FRAME_MS)).unwrap_or(usize::MAX);
    let framing = format::parse(silk, max_frames, too_long)?;
    let cap = crate::decode::max_samples(max, rate);
    let mut decoder = ffi::Decoder::with_rate(rate)?;
    let mut pcm = Vec::new();
    for (index, packet) in framing.packets.iter().enumerate() {
        decoder.decode_packet(packet, index, &mut pcm)?;
        if pcm.len() > cap {
            return Err(SilkError::TooLong { max });
        }
    }
    Ok(pcm)
}
