//! The SILK range decoder (the arithmetic decoder of the SILK SDK bitstream, as described in
//! the SILK drafts by Vos et al.; RFC 6716 section 4.1 describes Opus' later variant).
//!
//! Symbols are coded against cumulative distribution tables in Q16 that start at 0 and end at
//! 65535. The decoder keeps a 32-bit `base` (the code value minus the interval's low end) and a
//! 16-bit `range`; each symbol narrows the interval and renormalises a byte at a time.
//!
//! Two details of the reference are kept on purpose, because the comparison with it is
//! sample-exact even on damaged input: the first 4 bytes are read from the packet (zeros past
//! its end), and later bytes come from an internal 1024-byte copy whose bytes past the packet
//! hold whatever the previous, longer packets left there (and, past the copy's end, the four
//! bytes of the decoder's previous inverse gain, which the reference keeps right after it).

#![forbid(unsafe_code)]

use super::MAX_ARITHM_BYTES;

/// A range decoding error (the reference's `RANGE_CODER_*` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeError {
    /// A symbol fell outside its table.
    CdfOutOfRange,
    /// Renormalisation found bits that cannot occur in a valid stream.
    NormalizationFailed,
    /// The interval collapsed to nothing.
    ZeroIntervalWidth,
    /// The padding bits of the last byte are not all ones.
    CheckFailed,
    /// The frame used more bytes than the packet holds.
    ReadBeyondBuffer,
}

/// Range decoder state for one packet.
pub(crate) struct RangeDecoder {
    buffer: Box<[u8; MAX_ARITHM_BYTES]>,
    /// The four bytes the reference reads past its buffer (see the module docs).
    tail: [u8; 4],
    len: usize,
    ix: usize,
    base: u32,
    range: u32,
    pub(crate) error: Option<RangeError>,
}

impl RangeDecoder {
    pub(crate) fn new() -> Self {
        Self {
            buffer: Box::new([0; MAX_ARITHM_BYTES]),
            tail: [0; 4],
            len: 0,
            ix: 0,
            base: 0,
            range: 0xFFFF,
            error: None,
        }
    }

    /// Starts decoding `packet` (at most [`MAX_ARITHM_BYTES`] long; the caller checks).
    pub(crate) fn init(&mut self, packet: &[u8]) {
        let len = packet.len().min(MAX_ARITHM_BYTES);
        if let (Some(dst), Some(src)) = (self.buffer.get_mut(..len), packet.get(..len)) {
            dst.copy_from_slice(src);
        }
        let byte = |i: usize| u32::from(packet.get(i).copied().unwrap_or(0));
        self.base = byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
        self.len = len;
        self.ix = 0;
        self.range = 0xFFFF;
        self.error = None;
    }

    /// Sets the bytes read past the internal buffer (the previous inverse gain, little-endian).
    pub(crate) fn set_tail(&mut self, prev_inv_gain_q16: i32) {
        self.tail = prev_inv_gain_q16.to_le_bytes();
    }

    fn next_byte(&mut self) -> u32 {
        if self.ix >= self.len {
            return 0;
        }
        let at = self.ix + 4;
        self.ix += 1;
        let b = match self.buffer.get(at) {
            Some(&b) => b,
            None => self.tail.get(at - MAX_ARITHM_BYTES).copied().unwrap_or(0),
        };
        u32::from(b)
    }

    fn fail(&mut self, e: RangeError) -> usize {
        self.error = Some(e);
        0
    }

    /// Decodes one symbol with the table `cdf`, starting the search at `start`.
    /// After an error every symbol decodes as 0, as in the reference.
    pub(crate) fn decode(&mut self, cdf: &[u16], start: usize) -> usize {
        if self.error.is_some() {
            return 0;
        }
        let at = |i: usize| u32::from(cdf.get(i).copied().unwrap_or(0xFFFF));
        let range = self.range;
        let base = self.base;
        let mut ix = start;
        let mut high = at(ix);
        let low;
        if range.wrapping_mul(high) > base {
            loop {
                let Some(prev) = ix.checked_sub(1) else {
                    return self.fail(RangeError::CdfOutOfRange);
                };
                ix = prev;
                let l = at(ix);
                if range.wrapping_mul(l) <= base {
                    low = l;
                    break;
                }
                high = l;
                if high == 0 {
                    return self.fail(RangeError::CdfOutOfRange);
                }
            }
        } else {
            loop {
                let l = high;
                ix += 1;
                high = at(ix);
                if range.wrapping_mul(high) > base {
                    ix -= 1;
                    low = l;
                    break;
                }
                if high == 0xFFFF {
                    return self.fail(RangeError::CdfOutOfRange);
                }
            }
        }
        let symbol = ix;
        let mut base = base.wrapping_sub(range.wrapping_mul(low));
        let range32 = range.wrapping_mul(high.wrapping_sub(low));
        let range16;
        if range32 & 0xFF00_0000 != 0 {
            range16 = range32 >> 16;
        } else {
            if range32 & 0xFFFF_0000 != 0 {
                range16 = range32 >> 8;
                if base >> 24 != 0 {
                    return self.fail(RangeError::NormalizationFailed);
                }
            } else {
                range16 = range32;
                if base >> 16 != 0 {
                    return self.fail(RangeError::NormalizationFailed);
                }
                base = base << 8 | self.next_byte();
            }
            base = base << 8 | self.next_byte();
        }
        if range16 == 0 {
            return self.fail(RangeError::ZeroIntervalWidth);
        }
        self.base = base;
        self.range = range16;
        symbol
    }

    /// Bytes used so far (rounded up), as the reference counts them.
    pub(crate) fn bytes_used(&self) -> usize {
        let bits =
            (self.ix << 3) as i64 + i64::from((self.range.wrapping_sub(1)).leading_zeros()) - 14;
        usize::try_from((bits + 7) >> 3).unwrap_or(0)
    }

    /// Bytes of the packet not used by the frames decoded so far (negative: over-read).
    pub(crate) fn bytes_left(&self) -> i64 {
        self.len as i64 - self.bytes_used() as i64
    }

    /// Checks that the unused bits of the last byte are ones (only when no byte is left).
    pub(crate) fn check_after_decoding(&mut self) {
        let bits =
            (self.ix << 3) as i64 + i64::from((self.range.wrapping_sub(1)).leading_zeros()) - 14;
        let n_bytes = (bits + 7) >> 3;
        if n_bytes > self.len as i64 {
            self.error = Some(RangeError::CheckFailed);
            return;
        }
        if bits & 7 != 0 {
            let mask = 0xFFu8 >> (bits & 7);
            let last = usize::try_from(n_bytes - 1)
                .ok()
                .and_then(|i| self.buffer.get(i))
                .copied()
                .unwrap_or(0);
            if last & mask != mask {
                self.error = Some(RangeError::CheckFailed);
            }
        }
    }

    pub(crate) fn set_error(&mut self, e: RangeError) {
        self.error = Some(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALVES: [u16; 3] = [0, 32768, 65535];

    #[test]
    fn first_bits_pick_the_symbol() {
        let mut rc = RangeDecoder::new();
        rc.init(&[0x00, 0, 0, 0]);
        assert_eq!(rc.decode(&HALVES, 1), 0);
        rc.init(&[0xC0, 0, 0, 0]);
        assert_eq!(rc.decode(&HALVES, 1), 1);
        assert!(rc.error.is_none());
        assert_eq!(rc.bytes_used(), 1);
    }

    #[test]
    fn short_packets_read_zeros_and_errors_stick() {
        let mut rc = RangeDecoder::new();
        rc.init(&[0xFF, 0xFF, 0xFF, 0xFF]);
        // 0xFFFFFFFF is past 0xFFFF * 65535: out of every table.
        assert_eq!(rc.decode(&HALVES, 1), 0);
        assert_eq!(rc.error, Some(RangeError::CdfOutOfRange));
        rc.init(&[0xC0]);
        assert_eq!(rc.decode(&HALVES, 1), 1);
        rc.set_error(RangeError::ReadBeyondBuffer);
        assert_eq!(rc.decode(&HALVES, 1), 0);
    }

    #[test]
    fn bytes_past_a_packet_come_from_earlier_packets() {
        // The reference keeps its copy of earlier, longer packets; decoding a 1-byte packet
        // far enough reads them.
        let mut a = RangeDecoder::new();
        a.init(&[0x40, 0, 0, 0, 0xAA, 0xBB, 0xCC]);
        a.init(&[0x40]);
        let mut b = RangeDecoder::new();
        b.init(&[0x40]);
        let mut sa = Vec::new();
        let mut sb = Vec::new();
        for _ in 0..40 {
            sa.push(a.decode(&HALVES, 1));
            sb.push(b.decode(&HALVES, 1));
        }
        assert_ne!(sa, sb);
    }
}
