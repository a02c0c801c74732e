//! The range encoder: the exact inverse of [`super::super::range::RangeDecoder`].
//!
//! The state is a 32-bit window `base` onto the low end of the coding interval (the bytes
//! before it are already in `out`) and a 16-bit `range`: the interval's width is
//! `range << 16` in that window. Each symbol moves `base` up by `range * cdf[s]` (a carry out
//! of the window increments the bytes already written) and narrows the width to
//! `range * (cdf[s + 1] - cdf[s])`; whole bytes leave the window as the decoder reads them in.

#![forbid(unsafe_code)]

/// Range encoder for one packet.
pub(crate) struct RangeEncoder {
    out: Vec<u8>,
    base: u32,
    range: u32,
}

impl RangeEncoder {
    pub(crate) fn new() -> Self {
        Self {
            out: Vec::with_capacity(256),
            base: 0,
            range: 0xFFFF,
        }
    }

    fn carry(&mut self) {
        for b in self.out.iter_mut().rev() {
            *b = b.wrapping_add(1);
            if *b != 0 {
                break;
            }
        }
    }

    fn emit_top_byte(&mut self) {
        self.out.push((self.base >> 24) as u8);
        self.base <<= 8;
    }

    /// Codes symbol `s` of the table `cdf` (Q16, from 0 up to 65535). A symbol outside the
    /// table is clamped to its last symbol (never reached by the encoder's own choices).
    pub(crate) fn encode(&mut self, cdf: &[u16], s: usize) {
        let last = cdf.len().saturating_sub(2);
        let s = s.min(last);
        let low = u32::from(cdf.get(s).copied().unwrap_or(0));
        let high = u32::from(cdf.get(s + 1).copied().unwrap_or(0xFFFF)).max(low + 1);
        let (base, overflow) = self.base.overflowing_add(self.range.wrapping_mul(low));
        self.base = base;
        if overflow {
            self.carry();
        }
        let range32 = self.range.wrapping_mul(high - low);
        if range32 & 0xFF00_0000 != 0 {
            self.range = range32 >> 16;
        } else {
            if range32 & 0xFFFF_0000 != 0 {
                self.range = range32 >> 8;
            } else {
                self.range = range32;
                self.emit_top_byte();
            }
            self.emit_top_byte();
        }
    }

    /// Ends the packet: writes the shortest value whose every continuation lies in the final
    /// interval, with the unused bits of its last byte set to ones (the decoder checks them).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let need = (self.range.wrapping_sub(1).leading_zeros() as usize).saturating_sub(14);
        let need = need.clamp(1, 32);
        let block = 1u64 << (32 - need);
        let mut v = (u64::from(self.base) + block - 1) & !(block - 1);
        v |= block - 1;
        if v >> 32 != 0 {
            self.carry();
        }
        let v = v as u32;
        for i in 0..need.div_ceil(8) {
            self.out.push((v >> (24 - 8 * i)) as u8);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::range::RangeDecoder;
    use super::super::super::tables as t;
    use super::*;

    fn roundtrip(symbols: &[(&[u16], usize, usize)]) {
        let mut enc = RangeEncoder::new();
        for &(cdf, _, s) in symbols {
            enc.encode(cdf, s);
        }
        let bytes = enc.finish();
        // Whatever follows the packet in the decoder's buffer must not matter.
        for junk in [0x00u8, 0xFF, 0x5A] {
            let mut dec = RangeDecoder::new();
            let mut padded = bytes.clone();
            padded.extend_from_slice(&[junk; 8]);
            dec.init(&padded);
            dec.init(&bytes);
            for &(cdf, start, s) in symbols {
                assert_eq!(dec.decode(cdf, start), s);
            }
            assert!(dec.error.is_none());
            assert_eq!(dec.bytes_left(), 0);
            dec.check_after_decoding();
            assert!(dec.error.is_none());
        }
    }

    #[test]
    fn symbols_round_trip_through_the_decoder() {
        let mut seed = 12345u32;
        for n in [1usize, 2, 5, 17, 100, 700] {
            let mut syms: Vec<(&[u16], usize, usize)> = Vec::new();
            for _ in 0..n {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let pick = (seed >> 16) % 4;
                let entry: (&[u16], usize, usize) = match pick {
                    0 => (&t::LSB_CDF, 1, ((seed >> 8) & 1) as usize),
                    1 => (&t::SEED_CDF, 2, ((seed >> 8) & 3) as usize),
                    2 => (
                        &t::GAIN_CDF[..65],
                        t::GAIN_CDF_OFFSET,
                        ((seed >> 8) % 64) as usize,
                    ),
                    _ => (&t::PITCH_LAG_SWB_CDF, 128, ((seed >> 8) % 385) as usize),
                };
                syms.push(entry);
            }
            roundtrip(&syms);
        }
    }

    #[test]
    fn improbable_symbols_carry_correctly() {
        // The last symbol of a skewed table pushes base up repeatedly: carries.
        let syms: Vec<(&[u16], usize, usize)> = (0..300)
            .map(|i| (&t::TYPE_OFFSET_CDF[..], 2, if i % 3 == 0 { 3 } else { 0 }))
            .collect();
        roundtrip(&syms);
        let syms: Vec<(&[u16], usize, usize)> =
            (0..300).map(|_| (&t::VAD_FLAG_CDF[..], 1, 1)).collect();
        roundtrip(&syms);
    }
}
