//! ID3v2 tags, walked the way symphonia's `Id3v2Reader` (run by the probe) reads them.
//!
//! symphonia reserves each frame's declared size (up to 4 GiB in ID3v2.3) before reading it;
//! a frame larger than what is left of its tag is refused here.

#![forbid(unsafe_code)]

use std::io::{Read, Seek};

use super::read_at;
use crate::SilkError;

fn syncsafe(bytes: [u8; 4]) -> u32 {
    bytes
        .iter()
        .fold(0u32, |acc, b| (acc << 7) | u32::from(b & 0x7f))
}

/// Removes the unsynchronisation scheme's `0x00` after each `0xFF`, as symphonia's
/// `UnsyncStream` does for ID3v2.2 and 2.3 tags.
fn resync(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut last = 0u8;
    for &b in raw {
        if last == 0xff && b == 0 {
            last = 0;
            continue;
        }
        out.push(b);
        last = b;
    }
    out
}

fn valid_id(id: &[u8]) -> bool {
    id.iter()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// Checks the tag at `at` (input length `len`). Returns where the probe resumes its search,
/// or `None` where symphonia stops on this tag by itself (bad version, truncated tag).
pub(super) fn check<R: Read + Seek>(
    source: &mut R,
    at: u64,
    len: u64,
) -> Result<Option<u64>, SilkError> {
    let header = read_at(source, at, 10)?;
    let [_, _, _, major, minor, flags, s0, s1, s2, s3] = header[..] else {
        return Ok(None);
    };
    if major == 0xff || minor == 0xff || !(2..=4).contains(&major) {
        return Ok(None);
    }
    if major == 2 && flags & 0x40 != 0 {
        return Ok(None);
    }
    let size = u64::from(syncsafe([s0, s1, s2, s3]));
    // At most 256 MiB (a 28-bit size) and never more than the input holds.
    let raw = read_at(source, at + 10, size)?;
    let tag = if flags & 0x80 != 0 && major < 4 {
        resync(&raw)
    } else {
        raw
    };
    frames(&tag, major, flags & 0x40 != 0).map_err(|problem| SilkError::MalformedContainer {
        container: "ID3v2",
        problem: format!("tag at byte {at} (version 2.{major}, {size} bytes): {problem}"),
    })?;
    let end = at + 10 + size;
    Ok((end <= len).then_some(end))
}

/// Length of the extended header as symphonia reads it, or `None` where it fails on it.
fn extended_header(tag: &[u8], major: u8) -> Option<usize> {
    if major == 3 {
        let size = u32::from_be_bytes(*tag.first_chunk::<4>()?);
        let flags = u16::from_be_bytes(*tag.get(4..)?.first_chunk::<2>()?);
        return match size {
            6 => Some(10),
            10 if flags & 0x8000 != 0 => Some(14),
            10 => Some(10),
            _ => None,
        };
    }
    // 2.4: size, flag byte count (must be 1), flags, then each flagged field with its length.
    if *tag.get(4)? != 1 {
        return None;
    }
    let flags = *tag.get(5)?;
    let mut used = 6;
    for (bit, data) in [(0x40, 0), (0x20, 5), (0x10, 1)] {
        if flags & bit != 0 {
            used += 1 + data;
        }
    }
    Some(used)
}

/// Walks the frames; an error says which frame does not fit.
fn frames(tag: &[u8], major: u8, extended: bool) -> Result<(), String> {
    let mut pos = if extended && major >= 3 {
        match extended_header(tag, major) {
            Some(n) => n,
            None => return Ok(()),
        }
    } else {
        0
    };
    let header_len = if major == 2 { 6 } else { 10 };
    loop {
        let Some(header) = tag.get(pos..pos + header_len) else {
            return Ok(());
        };
        let (id, size) = if major == 2 {
            let (id, size) = header.split_at(3);
            (
                id,
                u64::from(u32::from_be_bytes([0, size[0], size[1], size[2]])),
            )
        } else {
            let (id, rest) = header.split_at(4);
            let quad = [rest[0], rest[1], rest[2], rest[3]];
            let size = if major == 3 {
                u32::from_be_bytes(quad)
            } else {
                syncsafe(quad)
            };
            (id, u64::from(size))
        };
        if !valid_id(id) {
            // Padding: symphonia stops here.
            return Ok(());
        }
        pos += header_len;
        let left = (tag.len() - pos) as u64;
        if size > left {
            return Err(format!(
                "frame {} declares {size} bytes but only {left} remain in the tag",
                String::from_utf8_lossy(id)
            ));
        }
        pos += size as usize;
        if tag.len() - pos < header_len {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn tag(major: u8, flags: u8, body: &[u8]) -> Vec<u8> {
        let n = body.len() as u32;
        let mut t = vec![b'I', b'D', b'3', major, 0, flags];
        t.extend([
            (n >> 21) as u8 & 0x7f,
            (n >> 14) as u8 & 0x7f,
            (n >> 7) as u8 & 0x7f,
            n as u8 & 0x7f,
        ]);
        t.extend_from_slice(body);
        t
    }

    fn frame3(id: &[u8; 4], size: u32, data: &[u8]) -> Vec<u8> {
        let mut f = id.to_vec();
        f.extend_from_slice(&size.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(data);
        f
    }

    fn run(bytes: Vec<u8>) -> Result<Option<u64>, SilkError> {
        let len = bytes.len() as u64;
        check(&mut Cursor::new(bytes), 0, len)
    }

    #[test]
    fn honest_tags_pass_and_say_where_the_probe_resumes() {
        let mut body = frame3(b"TIT2", 4, b"\0abc");
        body.extend(frame3(b"TPE1", 2, b"\0x"));
        body.extend_from_slice(&[0; 20]); // padding
        let mut file = tag(3, 0, &body);
        let end = file.len() as u64;
        file.extend_from_slice(&[0xff, 0xfb, 0x90, 0x00]);
        assert_eq!(run(file).unwrap(), Some(end));
        // 2.2 frames: 3-byte id and size.
        let mut file = tag(2, 0, b"TT2\0\0\x03\0ab");
        file.extend_from_slice(&[0; 8]);
        assert!(run(file).unwrap().is_some());
    }

    #[test]
    fn frames_larger_than_the_tag_are_refused() {
        let body = frame3(b"APIC", 0xFFFF_FFF0, b"\0image/png\0");
        let err = run(tag(3, 0, &body)).unwrap_err();
        match err {
            SilkError::MalformedContainer {
                container: "ID3v2",
                problem,
            } => assert_eq!(
                problem,
                "tag at byte 0 (version 2.3, 21 bytes): frame APIC declares 4294967280 bytes but \
                 only 11 remain in the tag"
            ),
            other => panic!("{other:?}"),
        }
        // 2.4 sizes are syncsafe.
        let mut body = b"TIT2".to_vec();
        body.extend_from_slice(&[0x7f, 0x7f, 0x7f, 0x7f, 0, 0]);
        body.extend_from_slice(b"\0abc");
        assert!(run(tag(4, 0, &body)).is_err());
    }

    #[test]
    fn unsynchronised_and_extended_tags() {
        // 2.3 extended header of 6 bytes (10 with its size field).
        let mut body = vec![0, 0, 0, 6, 0, 0, 0, 0, 0, 0];
        body.extend(frame3(b"TIT2", 2, b"\0a"));
        assert!(run(tag(3, 0x40, &body)).unwrap().is_some());
        body.extend(frame3(b"TPE1", 1000, b"\0a"));
        assert!(run(tag(3, 0x40, &body)).is_err());
        // Unsynchronisation: the 0x00 after 0xFF is not part of the frame.
        assert_eq!(
            resync(&[0xff, 0x00, 0xe0, 0xff, 0x00, 0x00]),
            [0xff, 0xe0, 0xff, 0x00]
        );
        let body = frame3(b"TIT2", 3, b"\0\xff\x00a");
        assert!(run(tag(3, 0x80, &body)).unwrap().is_some());
    }

    #[test]
    fn versions_symphonia_rejects_are_left_to_it() {
        assert_eq!(run(tag(5, 0, &[1, 2, 3])).unwrap(), None);
        assert_eq!(run(tag(2, 0x40, &[1, 2, 3])).unwrap(), None);
        assert_eq!(run(b"ID3\x03".to_vec()).unwrap(), None);
    }
}
