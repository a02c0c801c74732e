//! FLAC metadata blocks, walked the way symphonia's `FlacReader` reads them.

#![forbid(unsafe_code)]

use std::io::{Read, Seek};

use super::{fields, read_at};
use crate::SilkError;

const VORBIS_COMMENT: u8 = 4;
const PICTURE: u8 = 6;
const APPLICATION: u8 = 2;

fn block_name(kind: u8) -> String {
    match kind {
        0 => "STREAMINFO".to_owned(),
        1 => "PADDING".to_owned(),
        APPLICATION => "APPLICATION".to_owned(),
        3 => "SEEKTABLE".to_owned(),
        VORBIS_COMMENT => "VORBIS_COMMENT".to_owned(),
        5 => "CUESHEET".to_owned(),
        PICTURE => "PICTURE".to_owned(),
        other => format!("type-{other}"),
    }
}

fn refuse(problem: String) -> SilkError {
    SilkError::MalformedContainer {
        container: "FLAC",
        problem,
    }
}

/// Walks the metadata blocks after the `fLaC` marker at `marker` (input length `len`).
///
/// Refused: a block running past the input; an APPLICATION block shorter than its 4-byte id
/// (symphonia computes `len - 4`); a VORBIS_COMMENT or PICTURE whose inner lengths exceed
/// the block.
pub(super) fn check<R: Read + Seek>(
    source: &mut R,
    marker: u64,
    len: u64,
) -> Result<(), SilkError> {
    let mut pos = marker + 4;
    loop {
        let header = read_at(source, pos, 4)?;
        let [flags, l0, l1, l2] = header[..] else {
            // symphonia fails on the missing header.
            return Ok(());
        };
        let kind = flags & 0x7f;
        let block_len = u32::from_be_bytes([0, l0, l1, l2]);
        let body = pos + 4;
        let left = len.saturating_sub(body);
        let at = format!("{} block at byte {pos}", block_name(kind));
        if u64::from(block_len) > left {
            return Err(refuse(format!(
                "{at} declares {block_len} bytes but only {left} remain in the file"
            )));
        }
        match kind {
            APPLICATION if block_len < 4 => {
                return Err(refuse(format!(
                    "{at} has {block_len} bytes, fewer than its 4-byte application id"
                )));
            }
            VORBIS_COMMENT | PICTURE => {
                // At most 16 MiB (a 24-bit length) and never more than the input holds.
                let bytes = read_at(source, body, u64::from(block_len))?;
                let checked = if kind == PICTURE {
                    fields::picture(&bytes)
                } else {
                    fields::vorbis_comment(&bytes)
                };
                checked
                    .map_err(|problem| refuse(format!("{at} ({block_len} bytes): {problem}")))?;
            }
            _ => {}
        }
        if flags & 0x80 != 0 {
            return Ok(());
        }
        pos = body + u64::from(block_len);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn block(kind: u8, last: bool, body: &[u8]) -> Vec<u8> {
        let len = (body.len() as u32).to_be_bytes();
        let mut b = vec![kind | if last { 0x80 } else { 0 }, len[1], len[2], len[3]];
        b.extend_from_slice(body);
        b
    }

    fn flac(blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut f = b"fLaC".to_vec();
        for b in blocks {
            f.extend_from_slice(b);
        }
        f.extend_from_slice(&[0xff, 0xf8, 0, 0]); // the start of a frame
        f
    }

    fn run(bytes: Vec<u8>) -> Result<(), SilkError> {
        let len = bytes.len() as u64;
        check(&mut Cursor::new(bytes), 0, len)
    }

    fn problem(result: Result<(), SilkError>) -> String {
        match result {
            Err(SilkError::MalformedContainer {
                container: "FLAC",
                problem,
            }) => problem,
            other => panic!("expected a FLAC refusal, got {other:?}"),
        }
    }

    fn comment(vendor_len: u32) -> Vec<u8> {
        let mut c = vendor_len.to_le_bytes().to_vec();
        c.extend_from_slice(b"ilink");
        c.extend_from_slice(&1u32.to_le_bytes());
        c.extend_from_slice(&7u32.to_le_bytes());
        c.extend_from_slice(b"TITLE=a");
        c
    }

    #[test]
    fn honest_metadata_passes() {
        let file = flac(&[
            block(0, false, &[0; 34]),
            block(1, false, &[0; 100]),
            block(VORBIS_COMMENT, false, &comment(5)),
            block(APPLICATION, true, b"abcd"),
        ]);
        run(file).unwrap();
    }

    #[test]
    fn the_f3_shape_is_refused() {
        // A VORBIS_COMMENT whose vendor length is 0xFFFFFFFF, as in the fuzz finding.
        let file = flac(&[
            block(0, false, &[0; 34]),
            block(VORBIS_COMMENT, true, &comment(u32::MAX)),
        ]);
        let p = problem(run(file));
        assert_eq!(
            p,
            "VORBIS_COMMENT block at byte 42 (24 bytes): the vendor string declares 4294967295 \
             bytes but only 20 remain"
        );
    }

    #[test]
    fn blocks_past_the_end_and_short_application_blocks_are_refused() {
        let mut file = b"fLaC".to_vec();
        file.extend(block(0, false, &[0; 34]));
        file.extend_from_slice(&[PICTURE | 0x80, 0xff, 0xff, 0xff, 1, 2, 3, 4]);
        let p = problem(run(file));
        assert!(
            p.starts_with("PICTURE block at byte 42 declares 16777215 bytes but only 4 remain"),
            "{p}"
        );
        let p = problem(run(flac(&[block(APPLICATION, true, b"ab")])));
        assert!(p.contains("fewer than its 4-byte application id"), "{p}");
    }

    #[test]
    fn hostile_pictures_are_refused() {
        let mut body = 3u32.to_be_bytes().to_vec();
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        body.extend_from_slice(b"image/png");
        let p = problem(run(flac(&[block(PICTURE, true, &body)])));
        assert!(p.contains("the MIME type declares 4294967295 bytes"), "{p}");
    }

    #[test]
    fn truncated_headers_are_left_to_symphonia() {
        run(b"fLaC".to_vec()).unwrap();
        run(b"fLaC\x00\x00".to_vec()).unwrap();
    }
}
