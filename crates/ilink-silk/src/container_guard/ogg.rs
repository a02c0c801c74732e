//! Ogg comment packets, reassembled the way symphonia's `OggReader` reassembles them.
//!
//! symphonia's Vorbis, Opus and Ogg-FLAC mappings read Vorbis comments (and Ogg-FLAC
//! pictures) from whole packets, reserving each declared length before reading it. Pages are
//! found as symphonia finds them (capture pattern, CRC; after a bad page the search resumes
//! right after its `OggS`), packets are joined per logical stream with its continuation rules,
//! and every comment or picture packet is checked against its own length.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{Read, Seek};

use symphonia::core::checksum::Crc32;
use symphonia::core::io::Monitor;

use super::{fields, read_at};
use crate::SilkError;

const HEADER_LEN: usize = 27;
/// Bytes read at a time while looking for the next capture pattern.
const CHUNK: u64 = 64 * 1024;

/// A packet split over pages, per logical stream.
#[derive(Default)]
struct Stream {
    /// The stream began with an Ogg-FLAC identification packet.
    flac: bool,
    /// Bytes of an unfinished packet: kept only if the packet is one to check.
    partial: Option<Vec<u8>>,
    /// An unfinished packet is pending (kept or not).
    pending: bool,
}

/// Which structure a complete packet holds, and where it starts in the packet.
fn comment_like(packet: &[u8], flac: bool) -> Option<(&'static str, usize, bool)> {
    if packet.starts_with(b"\x03vorbis") {
        return Some(("Vorbis comment header", 7, false));
    }
    if packet.starts_with(b"OpusTags") {
        return Some(("Opus comment header", 8, false));
    }
    match packet.first() {
        Some(&b) if flac && b != 0xff && b & 0x7f == 4 => {
            Some(("FLAC VORBIS_COMMENT packet", 4, false))
        }
        Some(&b) if flac && b != 0xff && b & 0x7f == 6 => Some(("FLAC PICTURE packet", 4, true)),
        _ => None,
    }
}

fn check_packet(
    packet: &[u8],
    stream: &Stream,
    serial: u32,
    page_at: u64,
) -> Result<(), SilkError> {
    let Some((what, skip, is_picture)) = comment_like(packet, stream.flac) else {
        return Ok(());
    };
    let body = packet.get(skip..).unwrap_or_default();
    let checked = if is_picture {
        fields::picture(body)
    } else {
        fields::vorbis_comment(body)
    };
    checked.map_err(|problem| SilkError::MalformedContainer {
        container: "Ogg",
        problem: format!(
            "{what} of stream {serial:#x} ending in the page at byte {page_at} ({} bytes): {problem}",
            packet.len()
        ),
    })
}

/// Whether a packet's first bytes make it one to keep while it is being reassembled.
fn worth_keeping(start: &[u8], flac: bool) -> bool {
    // A continued piece is made of 255-byte segments, so its first 8 bytes are there.
    comment_like(start, flac).is_some()
}

/// A page symphonia accepts.
struct Page {
    serial: u32,
    flags: u8,
    lacing: Vec<u8>,
    body: Vec<u8>,
}

/// The page at `pos`, if it is one symphonia accepts (valid header and CRC).
fn page_at<R: Read + Seek>(source: &mut R, pos: u64) -> Result<Option<Page>, SilkError> {
    let mut header = read_at(source, pos, HEADER_LEN as u64)?;
    if header.len() < HEADER_LEN || header.get(4) != Some(&0) {
        return Ok(None);
    }
    let flags = header[5];
    if flags & 0xf8 != 0 {
        return Ok(None);
    }
    let serial = u32::from_le_bytes([header[14], header[15], header[16], header[17]]);
    let crc = u32::from_le_bytes([header[22], header[23], header[24], header[25]]);
    let segments = u64::from(header[26]);
    let lacing = read_at(source, pos + HEADER_LEN as u64, segments)?;
    if lacing.len() as u64 != segments {
        return Ok(None);
    }
    let body_len: u64 = lacing.iter().map(|&l| u64::from(l)).sum();
    let body = read_at(source, pos + HEADER_LEN as u64 + segments, body_len)?;
    if body.len() as u64 != body_len {
        return Ok(None);
    }
    header[22..26].fill(0);
    let mut sum = Crc32::new(0);
    sum.process_buf_bytes(&header);
    sum.process_buf_bytes(&lacing);
    sum.process_buf_bytes(&body);
    Ok((sum.crc() == crc).then_some(Page {
        serial,
        flags,
        lacing,
        body,
    }))
}

/// The next capture pattern at or after `from`.
fn next_capture<R: Read + Seek>(source: &mut R, mut from: u64) -> Result<Option<u64>, SilkError> {
    loop {
        let chunk = read_at(source, from, CHUNK)?;
        if chunk.len() < 4 {
            return Ok(None);
        }
        if let Some(at) = chunk.windows(4).position(|w| w == b"OggS") {
            return Ok(Some(from + at as u64));
        }
        from += chunk.len() as u64 - 3;
    }
}

/// Walks the pages from the capture pattern at `start` to the end of the input.
pub(super) fn check<R: Read + Seek>(
    source: &mut R,
    start: u64,
    _len: u64,
) -> Result<(), SilkError> {
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    let mut pos = start;
    while let Some(at) = next_capture(source, pos)? {
        let Some(Page {
            serial,
            flags,
            lacing,
            body,
        }) = page_at(source, at)?
        else {
            // symphonia resumes its search right after the capture pattern.
            pos = at + 4;
            continue;
        };
        pos = at + HEADER_LEN as u64 + lacing.len() as u64 + body.len() as u64;
        let stream = streams.entry(serial).or_default();
        let continuation = flags & 0x01 != 0;
        let mut pieces = Vec::new();
        let mut offset = 0usize;
        let mut piece_start = 0usize;
        for &l in &lacing {
            offset += usize::from(l);
            if l < 255 {
                pieces.push(&body[piece_start..offset]);
                piece_start = offset;
            }
        }
        let unfinished = &body[piece_start..];
        let mut complete = pieces.into_iter();
        if !continuation && stream.pending {
            stream.pending = false;
            stream.partial = None;
        }
        if continuation && !stream.pending {
            // symphonia drops the first (incomplete) packet; or the page, if it has none.
            if complete.next().is_none() {
                continue;
            }
        }
        for piece in complete {
            let packet = match stream.partial.take() {
                Some(mut head) => {
                    head.extend_from_slice(piece);
                    head
                }
                None if stream.pending => {
                    // An unfinished packet not worth keeping: its end is not either.
                    stream.pending = false;
                    continue;
                }
                None => piece.to_vec(),
            };
            stream.pending = false;
            if flags & 0x02 != 0 && packet.starts_with(b"\x7fFLAC") {
                stream.flac = true;
            }
            check_packet(&packet, stream, serial, at)?;
        }
        if !unfinished.is_empty() {
            match stream.partial.as_mut() {
                Some(head) => head.extend_from_slice(unfinished),
                None if stream.pending => {}
                None if worth_keeping(unfinished, stream.flac) => {
                    stream.partial = Some(unfinished.to_vec());
                }
                None => {}
            }
            stream.pending = true;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A page holding `packets`; the last one is left unfinished if `open`.
    fn page(serial: u32, flags: u8, packets: &[&[u8]], open: bool) -> Vec<u8> {
        let mut lacing = Vec::new();
        let mut body = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            let mut n = p.len();
            while n >= 255 {
                lacing.push(255);
                n -= 255;
            }
            if !(open && i == packets.len() - 1) {
                lacing.push(n as u8);
            }
            body.extend_from_slice(p);
        }
        let mut h = b"OggS".to_vec();
        h.push(0);
        h.push(flags);
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&serial.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.push(lacing.len() as u8);
        h.extend_from_slice(&lacing);
        h.extend_from_slice(&body);
        let mut sum = Crc32::new(0);
        sum.process_buf_bytes(&h);
        h[22..26].copy_from_slice(&sum.crc().to_le_bytes());
        h
    }

    fn comment_packet(prefix: &[u8], comment_len: u32, pad: usize) -> Vec<u8> {
        let mut p = prefix.to_vec();
        p.extend_from_slice(&5u32.to_le_bytes());
        p.extend_from_slice(b"ilink");
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(&comment_len.to_le_bytes());
        p.extend(std::iter::repeat_n(b'a', pad));
        p
    }

    fn run(bytes: Vec<u8>) -> Result<(), SilkError> {
        let len = bytes.len() as u64;
        check(&mut Cursor::new(bytes), 0, len)
    }

    #[test]
    fn honest_headers_pass() {
        let mut file = page(7, 0x02, &[b"\x01vorbis\0\0\0\0"], false);
        file.extend(page(
            7,
            0,
            &[&comment_packet(b"\x03vorbis", 600, 600), b"\x05vorbis"],
            false,
        ));
        run(file).unwrap();
    }

    #[test]
    fn inflated_comments_are_refused_even_across_pages() {
        let packet = comment_packet(b"\x03vorbis", u32::MAX, 600);
        let (head, tail) = packet.split_at(510);
        let mut file = page(7, 0x02, &[b"\x01vorbis\0\0\0\0"], false);
        file.extend(page(7, 0, &[head], true));
        file.extend(page(7, 0x01, &[tail], false));
        let err = run(file).unwrap_err();
        assert!(
            err.to_string()
                .contains("Vorbis comment header of stream 0x7 ending in the page at byte"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("comment 0 declares 4294967295 bytes"),
            "{err}"
        );
        let opus = page(9, 0x02, &[&comment_packet(b"OpusTags", 1 << 30, 4)], false);
        assert!(run(opus).is_err());
    }

    #[test]
    fn flac_metadata_packets_are_checked_in_flac_streams_only() {
        let mut block = vec![0x84, 0, 0, 0];
        block.extend(comment_packet(b"", u32::MAX, 4));
        let mut file = page(3, 0x02, &[b"\x7fFLAC\x01\x00\x00\x01fLaC"], false);
        file.extend(page(3, 0, &[&block], false));
        assert!(run(file).is_err());
        let mut other = page(3, 0x02, &[b"\x01vorbis\0\0\0\0"], false);
        other.extend(page(3, 0, &[&block], false));
        run(other).unwrap();
    }

    #[test]
    fn pages_with_a_bad_crc_are_skipped_like_symphonia_does() {
        let mut bad = page(
            7,
            0x02,
            &[&comment_packet(b"\x03vorbis", u32::MAX, 4)],
            false,
        );
        bad[22] ^= 1;
        run(bad).unwrap();
        // ...but a good page hidden inside a bad one is found.
        let inner = page(
            7,
            0x02,
            &[&comment_packet(b"\x03vorbis", u32::MAX, 4)],
            false,
        );
        let mut outer = page(8, 0x02, &[&inner], false);
        outer[22] ^= 1;
        assert!(run(outer).is_err());
    }
}
