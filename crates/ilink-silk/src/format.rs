//! SILK v3 file framing, parsed and validated in Rust before any byte reaches the C decoder.
//!
//! A SILK v3 file is `#!SILK_V3` followed by packets, each a little-endian signed 16-bit byte
//! count and that many bytes of payload. The standard (Skype) layout may end with the length
//! `-1` (`0xFFFF`) as an end marker. Tencent's layout puts one `0x02` byte before the header and
//! writes no end marker.

#![forbid(unsafe_code)]

use crate::SilkError;

/// The magic that starts every SILK v3 stream (after Tencent's `0x02`, if present).
pub const SILK_MAGIC: &[u8; 9] = b"#!SILK_V3";

/// The byte Tencent puts before [`SILK_MAGIC`]. WeChat needs exactly one.
pub const TENCENT_PREFIX: u8 = 0x02;

/// The largest packet payload the SILK decoder accepts (`MAX_ARITHM_BYTES` in the SDK).
pub const MAX_PACKET_BYTES: usize = 1024;

/// Audio per SILK frame, in milliseconds.
pub const FRAME_MS: u64 = 20;

/// The rate ilink encodes at and decodes to before any conversion, in Hz (the SILK SDK's
/// highest internal rate; also the only rate the C SDK is ever called with as API rate on the
/// voice path).
pub(crate) const API_RATE: u32 = 24_000;

/// Samples in one 20 ms frame at [`API_RATE`].
#[cfg(any(test, feature = "c-reference"))]
pub(crate) const FRAME_SAMPLES: usize = 480;

/// The end marker of the standard layout: a packet length of -1.
const END_MARKER: i16 = -1;

/// Which of the two SILK v3 file layouts a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SilkFormat {
    /// WeChat/QQ layout: `0x02`, `#!SILK_V3`, packets, no end marker. What WeChat sends and
    /// expects.
    #[default]
    Tencent,
    /// The SILK SDK's own layout: `#!SILK_V3`, packets, optionally the end marker `0xFFFF`.
    Standard,
}

impl SilkFormat {
    /// Detects the layout from the first bytes; `None` if `bytes` is not SILK v3.
    ///
    /// ```
    /// use ilink_silk::SilkFormat;
    /// assert_eq!(SilkFormat::detect(b"\x02#!SILK_V3"), Some(SilkFormat::Tencent));
    /// assert_eq!(SilkFormat::detect(b"#!SILK_V3\xff\xff"), Some(SilkFormat::Standard));
    /// assert_eq!(SilkFormat::detect(b"\x02\x02#!SILK_V3"), None);
    /// ```
    pub fn detect(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(SILK_MAGIC) {
            Some(Self::Standard)
        } else if bytes.first() == Some(&TENCENT_PREFIX)
            && bytes
                .get(1..)
                .is_some_and(|rest| rest.starts_with(SILK_MAGIC))
        {
            Some(Self::Tencent)
        } else {
            None
        }
    }

    /// The length of this layout's header (prefix and magic) in bytes.
    pub fn header_len(self) -> usize {
        match self {
            Self::Tencent => 1 + SILK_MAGIC.len(),
            Self::Standard => SILK_MAGIC.len(),
        }
    }

    /// Writes this layout's header into `out`.
    pub(crate) fn write_header(self, out: &mut Vec<u8>) {
        if self == Self::Tencent {
            out.push(TENCENT_PREFIX);
        }
        out.extend_from_slice(SILK_MAGIC);
    }
}

/// Whether `bytes` starts like a SILK v3 stream (either layout). Checks only the header.
///
/// ```
/// assert!(ilink_silk::is_silk(b"\x02#!SILK_V3\x00\x00"));
/// assert!(!ilink_silk::is_silk(b"RIFF....WAVE"));
/// ```
pub fn is_silk(bytes: &[u8]) -> bool {
    SilkFormat::detect(bytes).is_some()
}

/// Iterates over the packets of a SILK stream, validating each length against the input.
///
/// Yields each packet's payload (possibly empty: a lost packet). Stops at the end of input or
/// at the end marker; yields one error and then stops if the framing is broken.
#[derive(Debug, Clone)]
pub(crate) struct Packets<'a> {
    rest: &'a [u8],
    offset: usize,
    index: usize,
    done: bool,
    /// Whether the stream ended with the standard end marker.
    pub(crate) saw_end_marker: bool,
}

impl<'a> Packets<'a> {
    /// Checks the header and returns the layout and an iterator over the packets.
    pub(crate) fn new(bytes: &'a [u8]) -> Result<(SilkFormat, Self), SilkError> {
        let format = SilkFormat::detect(bytes).ok_or(SilkError::NotSilk)?;
        let header = format.header_len();
        let rest = bytes.get(header..).ok_or(SilkError::NotSilk)?;
        Ok((
            format,
            Self {
                rest,
                offset: header,
                index: 0,
                done: false,
                saw_end_marker: false,
            },
        ))
    }

    fn fail(&mut self, err: SilkError) -> Option<Result<&'a [u8], SilkError>> {
        self.done = true;
        Some(Err(err))
    }
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<&'a [u8], SilkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            self.done = true;
            return None;
        }
        let Some((len_bytes, after)) = self.rest.split_first_chunk::<2>() else {
            let available = self.rest.len();
            return self.fail(SilkError::Truncated {
                offset: self.offset,
                packet: self.index,
                needed: 2,
                available,
            });
        };
        let length = i16::from_le_bytes(*len_bytes);
        if length == END_MARKER {
            // Anything after the end marker is not part of the stream, as in the SDK's decoder.
            self.done = true;
            self.saw_end_marker = true;
            return None;
        }
        let Ok(len) = usize::try_from(length) else {
            return self.fail(SilkError::BadPacketLength {
                offset: self.offset,
                packet: self.index,
                length,
                max: MAX_PACKET_BYTES,
            });
        };
        if len > MAX_PACKET_BYTES {
            return self.fail(SilkError::BadPacketLength {
                offset: self.offset,
                packet: self.index,
                length,
                max: MAX_PACKET_BYTES,
            });
        }
        let Some((payload, rest)) = after.split_at_checked(len) else {
            let available = after.len();
            return self.fail(SilkError::Truncated {
                offset: self.offset,
                packet: self.index,
                needed: len,
                available,
            });
        };
        self.rest = rest;
        self.offset += 2 + len;
        self.index += 1;
        Some(Ok(payload))
    }
}

/// A validated SILK stream: every packet, borrowed from the input.
#[derive(Debug, Clone)]
pub(crate) struct Framing<'a> {
    pub(crate) packets: Vec<&'a [u8]>,
}

/// Parses and validates the whole framing, refusing more than `max_packets` packets.
///
/// `too_long` is the error returned when the cap is exceeded.
pub(crate) fn parse(
    bytes: &[u8],
    max_packets: usize,
    too_long: impl FnOnce() -> SilkError,
) -> Result<Framing<'_>, SilkError> {
    let (_, iter) = Packets::new(bytes)?;
    let mut packets = Vec::new();
    for packet in iter {
        if packets.len() == max_packets {
            return Err(too_long());
        }
        packets.push(packet?);
    }
    Ok(Framing { packets })
}

/// The play time of a SILK stream in milliseconds, from its framing alone (no decoding).
///
/// Counts packets, each taken as one 20 ms frame: WeChat and every common encoder write one
/// frame per packet. (A stream packing several frames per packet plays longer than this says;
/// [`decode_silk`](crate::decode_silk) gives the exact length.) The whole framing is validated,
/// so a truncated or corrupt stream is an error, not a wrong number.
///
/// ```
/// // header, then two packets of 1 and 2 bytes, then the end marker
/// let silk = b"#!SILK_V3\x01\x00\xaa\x02\x00\xbb\xcc\xff\xff";
/// assert_eq!(ilink_silk::playtime_ms(silk)?, 40);
/// # Ok::<(), ilink_silk::SilkError>(())
/// ```
pub fn playtime_ms(silk: &[u8]) -> Result<u64, SilkError> {
    let (_, packets) = Packets::new(silk)?;
    let mut frames: u64 = 0;
    for packet in packets {
        packet?;
        frames += 1;
    }
    Ok(frames * FRAME_MS)
}

/// Re-frames a SILK stream (either layout) in `format`, validating it and keeping every
/// packet byte for byte, in one pass without collecting the packets. Refuses more than
/// `max_packets` packets with `too_long`. Returns the stream and its packet count.
pub(crate) fn reframe(
    silk: &[u8],
    format: SilkFormat,
    max_packets: usize,
    too_long: impl FnOnce() -> SilkError,
) -> Result<(Vec<u8>, usize), SilkError> {
    let (_, packets) = Packets::new(silk)?;
    let mut out = Vec::with_capacity(silk.len() + 2);
    format.write_header(&mut out);
    let mut count = 0;
    for packet in packets {
        let packet = packet?;
        if count == max_packets {
            return Err(too_long());
        }
        push_packet(&mut out, packet);
        count += 1;
    }
    if format == SilkFormat::Standard {
        out.extend_from_slice(&END_MARKER.to_le_bytes());
    }
    Ok((out, count))
}

/// Appends one length-prefixed packet. `packet` is at most [`MAX_PACKET_BYTES`] long.
pub(crate) fn push_packet(out: &mut Vec<u8>, packet: &[u8]) {
    let len = u16::try_from(packet.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(packet);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(bytes: &[u8]) -> Result<Vec<Vec<u8>>, SilkError> {
        let (_, packets) = Packets::new(bytes)?;
        packets.map(|p| p.map(<[u8]>::to_vec)).collect()
    }

    #[test]
    fn detects_both_layouts_and_rejects_others() {
        assert_eq!(
            SilkFormat::detect(b"\x02#!SILK_V3"),
            Some(SilkFormat::Tencent)
        );
        assert_eq!(SilkFormat::detect(b"#!SILK_V3"), Some(SilkFormat::Standard));
        assert_eq!(SilkFormat::detect(b"\x02\x02#!SILK_V3"), None);
        assert_eq!(SilkFormat::detect(b"#!SILK_V2"), None);
        assert_eq!(SilkFormat::detect(b"#!SILK"), None);
        assert_eq!(SilkFormat::detect(b""), None);
        assert_eq!(SilkFormat::detect(b"\x02"), None);
        assert!(matches!(Packets::new(b"#!AMR\n"), Err(SilkError::NotSilk)));
    }

    #[test]
    fn reads_packets_and_stops_at_end_marker() {
        let stream = b"#!SILK_V3\x02\x00ab\x00\x00\x01\x00c\xff\xffjunk after marker";
        let packets = collect(stream).unwrap();
        assert_eq!(packets, vec![b"ab".to_vec(), vec![], b"c".to_vec()]);
        let (_, mut iter) = Packets::new(stream).unwrap();
        assert_eq!(iter.by_ref().count(), 3);
        assert!(iter.saw_end_marker);
    }

    #[test]
    fn tencent_stream_without_marker() {
        let packets = collect(b"\x02#!SILK_V3\x01\x00x\x01\x00y").unwrap();
        assert_eq!(packets, vec![b"x".to_vec(), b"y".to_vec()]);
    }

    #[test]
    fn truncated_payload_is_an_error_with_position() {
        let err = collect(b"#!SILK_V3\x01\x00x\x05\x00abc").unwrap_err();
        match err {
            SilkError::Truncated {
                offset,
                packet,
                needed,
                available,
            } => {
                assert_eq!((offset, packet, needed, available), (12, 1, 5, 3));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn truncated_length_field_is_an_error() {
        let err = collect(b"#!SILK_V3\x01\x00x\x05").unwrap_err();
        assert!(matches!(
            err,
            SilkError::Truncated {
                needed: 2,
                available: 1,
                ..
            }
        ));
    }

    #[test]
    fn negative_and_oversized_lengths_are_rejected() {
        let err = collect(b"#!SILK_V3\xfe\xff").unwrap_err();
        assert!(matches!(err, SilkError::BadPacketLength { length: -2, .. }));
        let mut big = b"#!SILK_V3".to_vec();
        big.extend_from_slice(&1025u16.to_le_bytes());
        big.extend_from_slice(&[0; 1025]);
        let err = collect(&big).unwrap_err();
        assert!(matches!(
            err,
            SilkError::BadPacketLength { length: 1025, .. }
        ));
    }

    #[test]
    fn parse_enforces_packet_cap() {
        let stream = b"#!SILK_V3\x00\x00\x00\x00\x00\x00";
        assert_eq!(
            parse(stream, 3, || SilkError::Empty).unwrap().packets.len(),
            3
        );
        assert!(matches!(
            parse(stream, 2, || SilkError::Empty),
            Err(SilkError::Empty)
        ));
    }

    #[test]
    fn playtime_counts_frames() {
        assert_eq!(playtime_ms(b"\x02#!SILK_V3").unwrap(), 0);
        assert_eq!(
            playtime_ms(b"\x02#!SILK_V3\x01\x00a\x01\x00b\x00\x00").unwrap(),
            60
        );
        assert!(playtime_ms(b"\x02#!SILK_V3\x09\x00a").is_err());
        assert!(playtime_ms(b"garbage").is_err());
    }

    #[test]
    fn reframe_sets_prefix_and_marker_per_layout() {
        let cap = || SilkError::Empty;
        for input in [
            &b"#!SILK_V3\x01\x00a\xff\xff"[..],
            b"\x02#!SILK_V3\x01\x00a",
        ] {
            let (tencent, n) = reframe(input, SilkFormat::Tencent, 10, cap).unwrap();
            assert_eq!((tencent, n), (b"\x02#!SILK_V3\x01\x00a".to_vec(), 1));
            let (standard, _) = reframe(input, SilkFormat::Standard, 10, cap).unwrap();
            assert_eq!(standard, b"#!SILK_V3\x01\x00a\xff\xff".to_vec());
        }
        assert!(matches!(
            reframe(b"#!SILK_V3\x00\x00\x00\x00", SilkFormat::Tencent, 1, cap),
            Err(SilkError::Empty)
        ));
        assert!(reframe(b"#!SILK_V3\x05\x00", SilkFormat::Tencent, 10, cap).is_err());
    }
}
