//! A SILK v3 decoder in safe Rust, sample-exact with the SILK SDK 1.0.9.6 reference decoder.
//!
//! The bitstream is the one of the SILK SDK that Tencent's voice messages use (described in
//! the IETF SILK drafts by Vos et al.; RFC 6716 section 4.2 describes the Opus variant, whose
//! ideas are the same but whose tables and packet layout differ). A packet holds up to five
//! 20 ms frames, all range coded in one stream. Each frame carries:
//!
//! * (first frame only) the internal sampling rate: 8, 12, 16 or 24 kHz;
//! * signal type (voiced/unvoiced) and quantisation offset type;
//! * four subframe gains on a log scale (the first coded absolutely or as a delta);
//! * the spectral envelope as a path through a multi-stage NLSF codebook (10 coefficients at
//!   8 kHz, 16 otherwise) and an interpolation factor with the previous frame's NLSFs;
//! * for voiced frames: a pitch lag and contour, five-tap LTP filters per subframe from one of
//!   three codebooks, and an LTP scaling;
//! * a seed for the sign dither, the excitation pulses (shell coded per 16 samples, with extra
//!   LSBs and signs), the VAD flag and a frame-termination code (last frame, more frames,
//!   or in-band FEC data follows).
//!
//! The decoder turns these into PCM with long-term and short-term prediction, a high-pass
//! filter, packet-loss concealment and comfort noise, and resamples to the output rate.
//! Module map: [`range`] (arithmetic decoding), [`params`] (parameters and pulses), [`lpc`]
//! (NLSF to LPC), [`synth`] (excitation and prediction), [`plc`] (loss concealment and
//! comfort noise), [`resampler`] (output rate conversion), [`tables`] (the reference data).
//!
//! [`enc`] is the encoder: it writes this bitstream from PCM, running the decoder's synthesis
//! (the fixed-point helpers of [`synth`] and [`lpc`]) inside its quantiser.

#![forbid(unsafe_code)]
// Signal-processing loops index several buffers by the same sample index.
#![allow(clippy::needless_range_loop)]

pub(crate) mod enc;
mod fixed;
mod lpc;
mod params;
mod plc;
mod range;
mod resampler;
mod synth;
mod tables;

use params::FrameParams;
use plc::{Cng, Plc};
use range::RangeDecoder;
use resampler::Resampler;

pub(crate) const MAX_ARITHM_BYTES: usize = 1024;
pub(crate) const NB_SUBFR: usize = 4;
pub(crate) const LTP_ORDER: usize = 5;
pub(crate) const MAX_LPC_ORDER: usize = 16;
pub(crate) const MAX_FRAME_LENGTH: usize = 480;
pub(crate) const SIG_TYPE_VOICED: usize = 0;
const FRAME_LENGTH_MS: usize = 20;
const MAX_FRAMES_PER_PACKET: usize = 5;
const NO_LBRR_THRES: i32 = 10;
const MORE_FRAMES: i32 = 1;
const LAST_FRAME: i32 = 0;
const LBRR_VER1: i32 = 2;
const LBRR_VER2: i32 = 3;

/// The output rates the reference decoder accepts with its own resamplers, in Hz.
pub(crate) const REFERENCE_RATES: [u32; 7] =
    [8_000, 12_000, 16_000, 24_000, 32_000, 44_100, 48_000];

/// The most output samples one frame can give (20 ms at 48 kHz).
pub(crate) const MAX_OUTPUT_SAMPLES: usize = 48 * FRAME_LENGTH_MS;

/// The reference's error codes.
pub(crate) const DEC_PAYLOAD_TOO_LARGE: i32 = -11;
/// A frame could not be decoded.
pub(crate) const DEC_PAYLOAD_ERROR: i32 = -12;
/// Output rate outside 8..=48 kHz.
pub(crate) const DEC_INVALID_SAMPLING_FREQUENCY: i32 = -10;

/// One NLSF multi-stage codebook.
pub(crate) struct NlsfCodebook {
    pub(crate) stage_vectors: &'static [usize],
    pub(crate) vectors: &'static [i16],
    pub(crate) ndelta_min: &'static [i32],
    pub(crate) cdf: &'static [u16],
    pub(crate) cdf_start: &'static [usize],
    pub(crate) middle_idx: &'static [usize],
}

static NLSF_CB0_10: NlsfCodebook = NlsfCodebook {
    stage_vectors: &tables::NLSF_CB0_10_STAGE_VECTORS,
    vectors: &tables::NLSF_CB0_10_Q15,
    ndelta_min: &tables::NLSF_CB0_10_NDELTA_MIN_Q15,
    cdf: &tables::NLSF_CB0_10_CDF,
    cdf_start: &tables::NLSF_CB0_10_CDF_START,
    middle_idx: &tables::NLSF_CB0_10_MIDDLE_IDX,
};
static NLSF_CB1_10: NlsfCodebook = NlsfCodebook {
    stage_vectors: &tables::NLSF_CB1_10_STAGE_VECTORS,
    vectors: &tables::NLSF_CB1_10_Q15,
    ndelta_min: &tables::NLSF_CB1_10_NDELTA_MIN_Q15,
    cdf: &tables::NLSF_CB1_10_CDF,
    cdf_start: &tables::NLSF_CB1_10_CDF_START,
    middle_idx: &tables::NLSF_CB1_10_MIDDLE_IDX,
};
static NLSF_CB0_16: NlsfCodebook = NlsfCodebook {
    stage_vectors: &tables::NLSF_CB0_16_STAGE_VECTORS,
    vectors: &tables::NLSF_CB0_16_Q15,
    ndelta_min: &tables::NLSF_CB0_16_NDELTA_MIN_Q15,
    cdf: &tables::NLSF_CB0_16_CDF,
    cdf_start: &tables::NLSF_CB0_16_CDF_START,
    middle_idx: &tables::NLSF_CB0_16_MIDDLE_IDX,
};
static NLSF_CB1_16: NlsfCodebook = NlsfCodebook {
    stage_vectors: &tables::NLSF_CB1_16_STAGE_VECTORS,
    vectors: &tables::NLSF_CB1_16_Q15,
    ndelta_min: &tables::NLSF_CB1_16_NDELTA_MIN_Q15,
    cdf: &tables::NLSF_CB1_16_CDF,
    cdf_start: &tables::NLSF_CB1_16_CDF_START,
    middle_idx: &tables::NLSF_CB1_16_MIDDLE_IDX,
};

/// SILK decoder state (one voice stream).
pub(crate) struct Decoder {
    rc: RangeDecoder,
    prev_inv_gain_q16: i32,
    s_ltp_q16: [i32; 2 * MAX_FRAME_LENGTH],
    s_lpc_q14: [i32; MAX_FRAME_LENGTH / NB_SUBFR + MAX_LPC_ORDER],
    exc_q10: [i32; MAX_FRAME_LENGTH],
    res_q10: [i32; MAX_FRAME_LENGTH],
    out_buf: [i16; 2 * MAX_FRAME_LENGTH],
    lag_prev: i32,
    last_gain_index: i32,
    type_offset_prev: usize,
    hp_state: [i32; 2],
    hp_a: &'static [i16; 2],
    hp_b: &'static [i16; 3],
    fs_khz: i32,
    prev_api_rate: i32,
    frame_length: usize,
    subfr_length: usize,
    lpc_order: usize,
    prev_nlsf_q15: [i32; MAX_LPC_ORDER],
    first_frame_after_reset: bool,
    n_bytes_left: i64,
    n_frames_decoded: usize,
    n_frames_in_packet: usize,
    more_internal_frames: bool,
    frame_termination: i32,
    resampler: Resampler,
    vad_flag: i32,
    no_fec_counter: i32,
    inband_fec_offset: i32,
    cng: Cng,
    loss_cnt: i32,
    prev_sigtype: usize,
    plc: Plc,
    /// The last frame's parameters (for the encoder's diagnostics).
    #[cfg(test)]
    pub(crate) last_params: Option<FrameParams>,
}

impl Decoder {
    /// A fresh decoder (internal rate 24 kHz until the first packet says otherwise).
    pub(crate) fn new() -> Box<Self> {
        let mut d = Box::new(Self {
            rc: RangeDecoder::new(),
            prev_inv_gain_q16: 0,
            s_ltp_q16: [0; 2 * MAX_FRAME_LENGTH],
            s_lpc_q14: [0; MAX_FRAME_LENGTH / NB_SUBFR + MAX_LPC_ORDER],
            exc_q10: [0; MAX_FRAME_LENGTH],
            res_q10: [0; MAX_FRAME_LENGTH],
            out_buf: [0; 2 * MAX_FRAME_LENGTH],
            lag_prev: 0,
            last_gain_index: 0,
            type_offset_prev: 0,
            hp_state: [0; 2],
            hp_a: &tables::DEC_A_HP_24,
            hp_b: &tables::DEC_B_HP_24,
            fs_khz: 0,
            prev_api_rate: 0,
            frame_length: 0,
            subfr_length: 0,
            lpc_order: 0,
            prev_nlsf_q15: [0; MAX_LPC_ORDER],
            first_frame_after_reset: false,
            n_bytes_left: 0,
            n_frames_decoded: 0,
            n_frames_in_packet: 0,
            more_internal_frames: false,
            frame_termination: 0,
            resampler: Resampler::default(),
            vad_flag: 0,
            no_fec_counter: 0,
            inband_fec_offset: 0,
            cng: Cng::new(),
            loss_cnt: 0,
            prev_sigtype: 0,
            plc: Plc::new(),
            #[cfg(test)]
            last_params: None,
        });
        d.set_fs(24);
        d.first_frame_after_reset = true;
        d.prev_inv_gain_q16 = 65536;
        d.cng_reset();
        d.plc_reset();
        d
    }

    fn nlsf_codebook(&self, sigtype: usize) -> &'static NlsfCodebook {
        match (self.lpc_order == 10, sigtype == 0) {
            (true, true) => &NLSF_CB0_10,
            (true, false) => &NLSF_CB1_10,
            (false, true) => &NLSF_CB0_16,
            (false, false) => &NLSF_CB1_16,
        }
    }

    fn set_fs(&mut self, fs_khz: i32) {
        if self.fs_khz == fs_khz {
            return;
        }
        self.fs_khz = fs_khz;
        let khz = usize::try_from(fs_khz).unwrap_or(24).min(24);
        self.frame_length = FRAME_LENGTH_MS * khz;
        self.subfr_length = FRAME_LENGTH_MS / NB_SUBFR * khz;
        self.lpc_order = if fs_khz == 8 { 10 } else { 16 };
        self.s_lpc_q14[..MAX_LPC_ORDER].fill(0);
        self.out_buf[..MAX_FRAME_LENGTH].fill(0);
        self.prev_nlsf_q15 = [0; MAX_LPC_ORDER];
        self.lag_prev = 100;
        self.last_gain_index = 1;
        self.prev_sigtype = 0;
        self.first_frame_after_reset = true;
        (self.hp_a, self.hp_b) = match fs_khz {
            24 => (&tables::DEC_A_HP_24, &tables::DEC_B_HP_24),
            16 => (&tables::DEC_A_HP_16, &tables::DEC_B_HP_16),
            12 => (&tables::DEC_A_HP_12, &tables::DEC_B_HP_12),
            _ => (&tables::DEC_A_HP_8, &tables::DEC_B_HP_8),
        };
    }

    /// Decodes or conceals one frame at the internal rate into `out`; returns its length and
    /// the reference's status code for it (0, or [`DEC_PAYLOAD_ERROR`] when the frame could
    /// not be decoded and was concealed instead).
    fn decode_frame(
        &mut self,
        out: &mut [i16; MAX_FRAME_LENGTH],
        packet: &[u8],
        lost: bool,
    ) -> (usize, i32) {
        let mut ctrl = FrameParams::default();
        let mut conceal = lost;
        let mut status = 0;
        if !lost {
            let fs_khz_old = self.fs_khz;
            if self.n_frames_decoded == 0 {
                self.rc.init(packet);
            }
            self.rc.set_tail(self.prev_inv_gain_q16);
            let mut q = [0i32; MAX_FRAME_LENGTH];
            self.decode_parameters(&mut ctrl, &mut q);
            if self.rc.error.is_some() {
                // As the reference: conceal instead, back to the previous rate, report.
                self.n_bytes_left = 0;
                conceal = true;
                self.set_fs(fs_khz_old);
                status = DEC_PAYLOAD_ERROR;
            } else {
                self.n_frames_decoded += 1;
                #[cfg(test)]
                {
                    self.last_params = Some(ctrl.clone());
                }
                self.decode_core(&mut ctrl, out, &q);
                let fl = self.frame_length;
                self.plc(&mut ctrl, &mut out[..fl], false);
                self.loss_cnt = 0;
                self.prev_sigtype = ctrl.sigtype;
                self.first_frame_after_reset = false;
            }
        }
        let fl = self.frame_length;
        if conceal {
            self.plc(&mut ctrl, &mut out[..fl], true);
        }
        self.out_buf[..fl].copy_from_slice(&out[..fl]);
        self.plc_glue_frames(&mut out[..fl]);
        self.cng(&ctrl, &mut out[..fl]);
        biquad(&mut out[..fl], self.hp_b, self.hp_a, &mut self.hp_state);
        self.lag_prev = ctrl.pitch_l[NB_SUBFR - 1];
        (fl, status)
    }

    /// One call of the reference API: decodes the next frame of `packet` (or conceals one if
    /// `lost`), resamples to `api_rate` Hz and appends the samples to `pcm`.
    pub(crate) fn decode_call(
        &mut self,
        packet: &[u8],
        lost: bool,
        api_rate: i32,
        pcm: &mut Vec<i16>,
    ) -> Result<(), i32> {
        if !self.more_internal_frames {
            self.n_frames_decoded = 0;
        }
        if !self.more_internal_frames && !lost && packet.len() > MAX_ARITHM_BYTES {
            return Err(DEC_PAYLOAD_TOO_LARGE);
        }
        let prev_fs_khz = self.fs_khz;
        let mut internal = [0i16; MAX_FRAME_LENGTH];
        let (n, mut status) = self.decode_frame(&mut internal, packet, lost);
        if !lost {
            if self.n_bytes_left > 0
                && self.frame_termination == MORE_FRAMES
                && self.n_frames_decoded < MAX_FRAMES_PER_PACKET
            {
                self.more_internal_frames = true;
            } else {
                self.more_internal_frames = false;
                self.n_frames_in_packet = self.n_frames_decoded;
                if self.vad_flag == 1 {
                    match self.frame_termination {
                        LAST_FRAME => {
                            self.no_fec_counter += 1;
                            if self.no_fec_counter > NO_LBRR_THRES {
                                self.inband_fec_offset = 0;
                            }
                        }
                        LBRR_VER1 => {
                            self.inband_fec_offset = 1;
                            self.no_fec_counter = 0;
                        }
                        LBRR_VER2 => {
                            self.inband_fec_offset = 2;
                            self.no_fec_counter = 0;
                        }
                        _ => {}
                    }
                }
            }
        }
        if !(8000..=48_000).contains(&api_rate) {
            return Err(DEC_INVALID_SAMPLING_FREQUENCY);
        }
        let internal = internal.get(..n).unwrap_or(&[]);
        if self.fs_khz * 1000 != api_rate {
            if prev_fs_khz != self.fs_khz || self.prev_api_rate != api_rate {
                self.resampler = Resampler::new(self.fs_khz * 1000, api_rate);
                // The reference assigns the resampler's (successful) initialisation status
                // over the frame's, so a concealed bad frame passes as good in that call.
                status = 0;
            }
            let out_len =
                (n as i64 * i64::from(api_rate) / (i64::from(self.fs_khz) * 1000)) as usize;
            let mut out = [0i16; MAX_OUTPUT_SAMPLES];
            self.resampler.process(&mut out, internal);
            pcm.extend_from_slice(out.get(..out_len.min(MAX_OUTPUT_SAMPLES)).unwrap_or(&[]));
        } else {
            pcm.extend_from_slice(internal);
        }
        self.prev_api_rate = api_rate;
        if status != 0 {
            return Err(status);
        }
        Ok(())
    }

    /// Whether the packet being decoded has more frames.
    pub(crate) fn more_frames(&self) -> bool {
        self.more_internal_frames
    }
}

/// Second-order high-pass (ARMA) filter in place; coefficients in Q13.
fn biquad(sig: &mut [i16], b: &[i16; 3], a: &[i16; 2], s: &mut [i32; 2]) {
    use fixed::{rshift_round, sat16, smlabb, smulwb};
    let (mut s0, mut s1) = (s[0], s[1]);
    let a0_neg = -i32::from(a[0]);
    let a1_neg = -i32::from(a[1]);
    for x in sig.iter_mut() {
        let in16 = i32::from(*x);
        let out32 = smlabb(s0, in16, i32::from(b[0]));
        s0 = smlabb(s1, in16, i32::from(b[1]));
        s0 = s0.wrapping_add(smulwb(out32, a0_neg).wrapping_shl(3));
        s1 = smulwb(out32, a1_neg).wrapping_shl(3);
        s1 = smlabb(s1, in16, i32::from(b[2]));
        *x = sat16(rshift_round(out32, 13).wrapping_add(1));
    }
    *s = [s0, s1];
}

/// Decodes validated packets (an empty packet is a lost one) to `api_rate` Hz, at most `cap`
/// samples (`Err(None)` past it). An undecodable packet is `Err(Some((index, code)))` with
/// the reference's error code.
pub(crate) fn decode_packets(
    packets: &[&[u8]],
    api_rate: u32,
    cap: usize,
) -> Result<Vec<i16>, Option<(usize, i32)>> {
    let rate = i32::try_from(api_rate).unwrap_or(0);
    let mut decoder = Decoder::new();
    let per_frame = usize::try_from(api_rate / 50).unwrap_or(0).max(1);
    let mut pcm = Vec::with_capacity(packets.len().saturating_mul(per_frame).min(cap));
    let mut frames_per_packet = 1;
    for (index, packet) in packets.iter().enumerate() {
        let fail = |code| Some((index, code));
        if packet.is_empty() {
            for _ in 0..frames_per_packet {
                decoder
                    .decode_call(&[], true, rate, &mut pcm)
                    .map_err(fail)?;
            }
        } else {
            let mut frames = 0;
            loop {
                decoder
                    .decode_call(packet, false, rate, &mut pcm)
                    .map_err(fail)?;
                frames += 1;
                if !decoder.more_frames() || frames == MAX_FRAMES_PER_PACKET {
                    break;
                }
            }
            frames_per_packet = frames;
        }
        if pcm.len() > cap {
            return Err(None);
        }
    }
    Ok(pcm)
}
