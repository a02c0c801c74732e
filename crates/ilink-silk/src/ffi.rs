//! The FFI boundary: the only module of ilink with `unsafe` code.
//!
//! It wraps the SILK SDK's C functions (bound by the `silk-sys` crate) in two small safe types,
//! [`Decoder`] and [`Encoder`], whose signatures make the SDK's known hazards unreachable:
//!
//! * **Fixed API rate.** Both run the SDK at [`API_RATE`] (24 kHz) only. The SDK's own
//!   resampler writes past the caller's buffer at rates that are not a whole number of kHz, and
//!   at 8/12/16 kHz when a stream switches to a higher internal rate; at 24 kHz (the SDK's
//!   highest internal rate) output per frame is at most 480 samples. The output buffer is still
//!   sized for the SDK's absolute maximum (`MAX_API_FS_KHZ * FRAME_LENGTH_MS` = 960 samples).
//!   Other output rates are produced in Rust (see `resample`).
//! * **No short reads past a packet.** The SDK's range decoder reads 4 bytes at the start of a
//!   packet whatever its length. Every packet is copied into a zeroed buffer with
//!   [`PACKET_SLACK`] spare bytes before the call, so the SDK only ever reads our memory, and
//!   reads zeros past the payload (deterministic output).
//! * **Lengths are checked in Rust.** Payloads are at most [`MAX_PACKET_BYTES`] (the SDK's own
//!   limit); the caller (`format`) has already validated the framing.
//! * **Bounded work.** A packet yields at most [`MAX_FRAMES_PER_PACKET`] frames, whatever the
//!   SDK's state says.
//! * **Aligned state.** SDK state lives in `u64`-aligned buffers (the SDK casts them to structs
//!   of 32-bit fields).
//! * **Full frames into the encoder.** The encoder is fed exactly one 20 ms frame per call
//!   (the caller pads the last one), so no audio is dropped and the output buffer
//!   ([`MAX_ENCODED_BYTES`]) is never short.
//!
//! SAFETY, overall: every pointer passed below comes from a live Rust allocation owned by the
//! wrapper or borrowed for the duration of the call, with the length the SDK is told; the SDK
//! keeps no pointer past a call (its state is the buffer we own).

#![allow(unsafe_code)]

use std::ffi::{c_int, c_short, c_void};

use silk_sys as sys;

use crate::SilkError;
// The constants live in `format` (the default build has no FFI module); re-exported here for
// the code that still names them through `ffi`.
use crate::format::MAX_PACKET_BYTES;
#[allow(unused_imports)]
pub(crate) use crate::format::{API_RATE, FRAME_SAMPLES};

/// The SDK's maximum frames per packet (`SILK_MAX_FRAMES_PER_PACKET`).
pub(crate) const MAX_FRAMES_PER_PACKET: usize = 5;

/// Zero bytes kept after every payload handed to the decoder (it reads up to 4 past a short
/// packet; 8 keeps a margin).
const PACKET_SLACK: usize = 8;

/// Output buffer size of one decode call: the SDK's `MAX_API_FS_KHZ * FRAME_LENGTH_MS`, plus
/// slack: at 48 kHz from a 16 kHz stream the SDK's resampler writes 962 samples for a
/// 960-sample frame (two 10 ms batches of 481; found by the comparison with the Rust decoder).
const MAX_DECODED_SAMPLES: usize = 48 * 20 + 64;

/// Samples the SDK reports for one frame at most (`MAX_API_FS_KHZ * FRAME_LENGTH_MS`).
const MAX_REPORTED_SAMPLES: usize = 48 * 20;

/// Output buffer size of one encode call (one 20 ms frame never comes close; this is the
/// SDK's 5 frames * 250 bytes, as in its reference encoder).
const MAX_ENCODED_BYTES: usize = 1250;

/// A zeroed, 8-byte aligned buffer of at least `bytes` bytes for SDK state.
fn state_buffer(bytes: c_int) -> Result<Vec<u64>, SilkError> {
    let bytes = usize::try_from(bytes).map_err(|_| SilkError::Sdk {
        call: "Get_*_Size",
        code: bytes,
    })?;
    Ok(vec![0u64; bytes.div_ceil(8)])
}

fn check(call: &'static str, code: c_int) -> Result<(), SilkError> {
    if code == 0 {
        Ok(())
    } else {
        Err(SilkError::Sdk { call, code })
    }
}

/// A SILK decoder (the C reference; ilink decodes with its Rust decoder, and this one is
/// reachable only through the `c-reference` feature and the tests).
#[cfg_attr(not(feature = "c-reference"), allow(dead_code))]
pub(crate) struct Decoder {
    state: Vec<u64>,
    control: sys::SKP_SILK_SDK_DecControlStruct,
    packet: Box<[u8; MAX_PACKET_BYTES + PACKET_SLACK]>,
    out: Box<[i16; MAX_DECODED_SAMPLES]>,
    /// Frames in the last good packet: how many frames a lost packet stands for.
    frames_per_packet: usize,
    /// The output rate the SDK is called with.
    api_rate: c_int,
}

#[cfg_attr(not(feature = "c-reference"), allow(dead_code))]
impl Decoder {
    /// A fresh decoder at [`API_RATE`].
    #[cfg(test)]
    pub(crate) fn new() -> Result<Self, SilkError> {
        Self::with_rate(API_RATE)
    }

    /// A fresh decoder producing `rate` Hz, which must be one of the SDK's whole-kHz rates
    /// (8, 12, 16, 24, 32, 48 kHz) or 44.1 kHz; only the comparison tests use rates other
    /// than [`API_RATE`].
    pub(crate) fn with_rate(rate: u32) -> Result<Self, SilkError> {
        if !crate::codec::REFERENCE_RATES.contains(&rate) {
            return Err(SilkError::BadSampleRate {
                rate,
                min: crate::MIN_SAMPLE_RATE,
                max: crate::MAX_SAMPLE_RATE,
            });
        }
        let mut size: c_int = 0;
        // SAFETY: writes one c_int through a valid pointer.
        check("Get_Decoder_Size", unsafe {
            sys::SKP_Silk_SDK_Get_Decoder_Size(&mut size)
        })?;
        let mut state = state_buffer(size)?;
        // SAFETY: `state` holds at least `size` bytes, as the SDK asked for.
        check("InitDecoder", unsafe {
            sys::SKP_Silk_SDK_InitDecoder(state.as_mut_ptr().cast::<c_void>())
        })?;
        Ok(Self {
            state,
            control: sys::SKP_SILK_SDK_DecControlStruct {
                API_sampleRate: API_RATE as c_int,
                frameSize: 0,
                framesPerPacket: 1,
                moreInternalDecoderFrames: 0,
                inBandFECOffset: 0,
            },
            packet: Box::new([0; MAX_PACKET_BYTES + PACKET_SLACK]),
            out: Box::new([0; MAX_DECODED_SAMPLES]),
            frames_per_packet: 1,
            api_rate: rate as c_int,
        })
    }

    /// One call of `SKP_Silk_SDK_Decode` on the staged packet; appends its output to `pcm`.
    fn decode_call(&mut self, lost: bool, len: usize, pcm: &mut Vec<i16>) -> Result<(), c_int> {
        debug_assert!(len <= MAX_PACKET_BYTES);
        let mut n_out = MAX_REPORTED_SAMPLES as c_short;
        // The API rate is reset before every call: the SDK must never see anything else.
        self.control.API_sampleRate = self.api_rate;
        // SAFETY: `state` is an initialised decoder state of the size the SDK asked for.
        // `packet` holds `len` <= MAX_PACKET_BYTES payload bytes followed by at least
        // PACKET_SLACK zero bytes, covering the SDK's 4-byte read at the start of a packet.
        // `out` holds MAX_DECODED_SAMPLES samples, more than one call writes at any API rate
        // it accepts (960 plus the resampler's overshoot of at most a few samples).
        let code = unsafe {
            sys::SKP_Silk_SDK_Decode(
                self.state.as_mut_ptr().cast::<c_void>(),
                &mut self.control,
                c_int::from(lost),
                self.packet.as_ptr(),
                len as c_int,
                self.out.as_mut_ptr(),
                &mut n_out,
            )
        };
        if code != 0 {
            return Err(code);
        }
        let n = usize::try_from(n_out)
            .unwrap_or(0)
            .min(MAX_REPORTED_SAMPLES);
        pcm.extend_from_slice(self.out.get(..n).unwrap_or_default());
        Ok(())
    }

    /// Decodes one packet (every frame in it) and appends 24 kHz samples to `pcm`.
    ///
    /// An empty packet is a lost packet: the SDK conceals it (as many frames as the last
    /// packet held). `index` is only used for the error.
    pub(crate) fn decode_packet(
        &mut self,
        payload: &[u8],
        index: usize,
        pcm: &mut Vec<i16>,
    ) -> Result<(), SilkError> {
        let corrupt = |code| SilkError::CorruptPacket {
            packet: index,
            code,
        };
        if payload.is_empty() {
            self.packet.fill(0);
            for _ in 0..self.frames_per_packet {
                self.decode_call(true, 0, pcm).map_err(corrupt)?;
            }
            return Ok(());
        }
        let len = payload.len();
        let Some(staged) = self.packet.get_mut(..len) else {
            // `format` never yields longer packets; refuse rather than truncate.
            return Err(SilkError::BadPacketLength {
                offset: 0,
                packet: index,
                length: i16::try_from(len).unwrap_or(i16::MAX),
                max: MAX_PACKET_BYTES,
            });
        };
        staged.copy_from_slice(payload);
        if let Some(tail) = self.packet.get_mut(len..) {
            tail.fill(0);
        }
        let mut frames = 0;
        loop {
            self.decode_call(false, len, pcm).map_err(corrupt)?;
            frames += 1;
            if self.control.moreInternalDecoderFrames == 0 || frames == MAX_FRAMES_PER_PACKET {
                break;
            }
        }
        self.frames_per_packet = frames;
        Ok(())
    }
}

/// Every setting of the SDK encoder, for building the comparison corpus (the voice path uses
/// [`Encoder::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "c-reference"), allow(dead_code))]
pub(crate) struct EncoderConfig {
    /// Input rate in Hz (one of the SDK's seven).
    pub(crate) api_rate: u32,
    /// Highest internal rate in Hz: 8000, 12000, 16000 or 24000.
    pub(crate) max_internal_rate: u32,
    /// Packet length in ms: 20, 40, 60, 80 or 100 (1 to 5 frames).
    pub(crate) packet_ms: u32,
    /// Target bitrate in bits per second.
    pub(crate) bitrate: u32,
    /// 0, 1 or 2.
    pub(crate) complexity: u8,
    /// In-band FEC (LBRR) on.
    pub(crate) fec: bool,
    /// Discontinuous transmission on (silent packets may be empty).
    pub(crate) dtx: bool,
    /// Expected packet loss in percent (drives FEC).
    pub(crate) loss_pct: u8,
}

/// A SILK encoder taking 24 kHz mono PCM, one 20 ms frame per packet.
pub(crate) struct Encoder {
    state: Vec<u64>,
    control: sys::SKP_SILK_SDK_EncControlStruct,
    out: Box<[u8; MAX_ENCODED_BYTES]>,
    /// Samples per call of [`Encoder::encode_packet`].
    #[cfg_attr(not(feature = "c-reference"), allow(dead_code))]
    packet_samples: usize,
}

impl Encoder {
    /// A fresh encoder. `bitrate` and `complexity` are validated by the caller
    /// (`encode::EncodeOptions`); the SDK re-checks them and its error is returned.
    #[allow(dead_code)] // Unused since the encoder is Rust (src/codec/enc).
    pub(crate) fn new(bitrate: u32, complexity: u8) -> Result<Self, SilkError> {
        let mut size: c_int = 0;
        // SAFETY: writes one c_int through a valid pointer.
        check("Get_Encoder_Size", unsafe {
            sys::SKP_Silk_SDK_Get_Encoder_Size(&mut size)
        })?;
        let mut state = state_buffer(size)?;
        let mut status = sys::SKP_SILK_SDK_EncControlStruct {
            API_sampleRate: 0,
            maxInternalSampleRate: 0,
            packetSize: 0,
            bitRate: 0,
            packetLossPercentage: 0,
            complexity: 0,
            useInBandFEC: 0,
            useDTX: 0,
        };
        // SAFETY: `state` holds at least `size` bytes; `status` is a valid struct to write.
        check("InitEncoder", unsafe {
            sys::SKP_Silk_SDK_InitEncoder(state.as_mut_ptr().cast::<c_void>(), &mut status)
        })?;
        Ok(Self {
            state,
            control: sys::SKP_SILK_SDK_EncControlStruct {
                API_sampleRate: API_RATE as c_int,
                maxInternalSampleRate: API_RATE as c_int,
                packetSize: FRAME_SAMPLES as c_int,
                bitRate: c_int::try_from(bitrate).unwrap_or(c_int::MAX),
                packetLossPercentage: 0,
                complexity: c_int::from(complexity),
                useInBandFEC: 0,
                useDTX: 0,
            },
            out: Box::new([0; MAX_ENCODED_BYTES]),
            packet_samples: FRAME_SAMPLES,
        })
    }

    /// A fresh encoder with every SDK setting given (validated here and by the SDK).
    #[cfg_attr(not(feature = "c-reference"), allow(dead_code))]
    pub(crate) fn with_config(config: &EncoderConfig) -> Result<Self, SilkError> {
        let bad = || SilkError::Sdk {
            call: "Encode (configuration)",
            code: -2,
        };
        if !crate::codec::REFERENCE_RATES.contains(&config.api_rate)
            || ![8_000, 12_000, 16_000, 24_000].contains(&config.max_internal_rate)
            || ![20, 40, 60, 80, 100].contains(&config.packet_ms)
            || config.complexity > 2
            || config.loss_pct > 100
        {
            return Err(bad());
        }
        let mut encoder = Self::new(24_000, 0)?;
        let packet_samples = (config.api_rate as usize * config.packet_ms as usize) / 1000;
        encoder.control = sys::SKP_SILK_SDK_EncControlStruct {
            API_sampleRate: config.api_rate as c_int,
            maxInternalSampleRate: config.max_internal_rate as c_int,
            packetSize: packet_samples as c_int,
            bitRate: c_int::try_from(config.bitrate).unwrap_or(c_int::MAX),
            packetLossPercentage: c_int::from(config.loss_pct),
            complexity: c_int::from(config.complexity),
            useInBandFEC: c_int::from(config.fec),
            useDTX: c_int::from(config.dtx),
        };
        encoder.packet_samples = packet_samples;
        Ok(encoder)
    }

    /// Samples [`Encoder::encode_packet`] takes per call.
    #[cfg_attr(not(feature = "c-reference"), allow(dead_code))]
    pub(crate) fn packet_samples(&self) -> usize {
        self.packet_samples
    }

    /// Encodes one packet's worth of samples (exactly [`Encoder::packet_samples`]); returns
    /// the payload, empty when the SDK sent nothing (DTX).
    #[cfg_attr(not(feature = "c-reference"), allow(dead_code))]
    pub(crate) fn encode_packet(&mut self, samples: &[i16]) -> Result<&[u8], SilkError> {
        if samples.len() != self.packet_samples {
            return Err(SilkError::Sdk {
                call: "Encode (input length)",
                code: -1,
            });
        }
        let mut n_out = MAX_ENCODED_BYTES as c_short;
        // SAFETY: `state` is an initialised encoder state; `samples` holds exactly one packet
        // of input at the configured API rate (checked above), which the SDK reads and never
        // exceeds; `out` holds MAX_ENCODED_BYTES bytes (5 frames of at most 250) and the SDK
        // is told so through `n_out`.
        let code = unsafe {
            sys::SKP_Silk_SDK_Encode(
                self.state.as_mut_ptr().cast::<c_void>(),
                &self.control,
                samples.as_ptr(),
                samples.len() as c_int,
                self.out.as_mut_ptr(),
                &mut n_out,
            )
        };
        check("Encode", code)?;
        let n = usize::try_from(n_out).unwrap_or(0).min(MAX_ENCODED_BYTES);
        Ok(self.out.get(..n).unwrap_or_default())
    }

    /// Encodes exactly one 20 ms frame; returns the packet payload (possibly empty if the SDK
    /// produced none for this frame).
    #[allow(dead_code)] // Unused since the encoder is Rust (src/codec/enc).
    pub(crate) fn encode_frame(
        &mut self,
        frame: &[i16; FRAME_SAMPLES],
    ) -> Result<&[u8], SilkError> {
        let mut n_out = MAX_ENCODED_BYTES as c_short;
        // SAFETY: `state` is an initialised encoder state; `frame` holds FRAME_SAMPLES samples
        // (exactly one 20 ms packet at the 24 kHz API rate in `control`); `out` holds
        // MAX_ENCODED_BYTES bytes and the SDK is told so through `n_out`.
        let code = unsafe {
            sys::SKP_Silk_SDK_Encode(
                self.state.as_mut_ptr().cast::<c_void>(),
                &self.control,
                frame.as_ptr(),
                FRAME_SAMPLES as c_int,
                self.out.as_mut_ptr(),
                &mut n_out,
            )
        };
        check("Encode", code)?;
        let n = usize::try_from(n_out).unwrap_or(0).min(MAX_PACKET_BYTES);
        Ok(self.out.get(..n).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_packet_before_any_audio_gives_one_silent_frame() {
        let mut dec = Decoder::new().unwrap();
        let mut pcm = Vec::new();
        dec.decode_packet(&[], 0, &mut pcm).unwrap();
        assert_eq!(pcm.len(), FRAME_SAMPLES);
    }

    #[test]
    fn one_byte_packet_reads_only_our_buffer() {
        // Must neither crash nor read past our buffer (checked under AddressSanitizer, see README).
        let mut dec = Decoder::new().unwrap();
        let mut pcm = Vec::new();
        for b in [0u8, 0x55, 0xff] {
            let _ = dec.decode_packet(&[b], 0, &mut pcm);
        }
        assert!(pcm.len() <= 3 * MAX_FRAMES_PER_PACKET * FRAME_SAMPLES);
    }

    #[test]
    fn encoder_emits_one_packet_per_frame() {
        let mut enc = Encoder::new(24_000, 2).unwrap();
        let frame = [0i16; FRAME_SAMPLES];
        for _ in 0..5 {
            let packet = enc.encode_frame(&frame).unwrap();
            assert!(!packet.is_empty());
            assert!(packet.len() <= MAX_PACKET_BYTES);
        }
    }
}
