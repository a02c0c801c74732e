//! A check of MP4/M4A sample tables before `symphonia` parses them.
//!
//! `symphonia-format-isomp4` 0.5 reserves memory for the entry counts of the `stco`, `co64`,
//! `stsz`, `stsc` and `stts` tables as the file declares them (`Vec::with_capacity(count)`)
//! before reading a single entry, so a 2 KB file can ask for 14 GB and abort the process (found
//! by the `audio_decode` fuzz target). No crate offers this check; it is small, so it is written
//! here: walk the box tree the way symphonia will (from the first `ftyp` its probe finds, through
//! `moov/trak/mdia/minf/stbl`) and refuse any table whose declared entries do not fit in its box.
//! What is allowed then costs at most the file's own size in memory.

#![forbid(unsafe_code)]

use std::io::{Read, Seek, SeekFrom};

use crate::SilkError;

use super::PROBE_LIMIT;

/// Boxes whose children symphonia reads on the way to the sample tables.
const CONTAINERS: [&[u8; 4]; 5] = [b"moov", b"trak", b"mdia", b"minf", b"stbl"];

/// Nesting and box-count limits of the walk (real files have a depth of 5 and tens of boxes).
const MAX_DEPTH: usize = 8;
const MAX_BOXES: usize = 100_000;

/// Bytes before the entry count, and bytes per entry, of the tables symphonia pre-allocates.
/// `stsz` is special-cased: its entries exist only when its constant sample size is 0.
fn table(kind: &[u8; 4]) -> Option<(u64, u64)> {
    match kind {
        b"stco" => Some((4, 4)),
        b"co64" => Some((4, 8)),
        b"stsc" => Some((4, 12)),
        b"stts" => Some((4, 8)),
        b"stsz" => Some((8, 4)),
        _ => None,
    }
}

fn refuse(kind: &[u8; 4], count: u64) -> SilkError {
    SilkError::MalformedContainer {
        container: "MP4",
        problem: format!(
            "`{}` table declares {count} entries that its box cannot hold",
            String::from_utf8_lossy(kind)
        ),
    }
}

/// Checks an MP4 stream's sample tables; streams without an `ftyp` in the probe window pass.
pub(super) fn check<R: Read + Seek>(source: &mut R) -> Result<(), SilkError> {
    let len = source.seek(SeekFrom::End(0))?;
    source.seek(SeekFrom::Start(0))?;
    let mut head = Vec::new();
    source.by_ref().take(PROBE_LIMIT).read_to_end(&mut head)?;
    let result = match head.windows(4).position(|w| w == b"ftyp") {
        Some(at) if at >= 4 => {
            let mut budget = MAX_BOXES;
            walk(source, at as u64 - 4, len, b"root", 0, &mut budget)
        }
        // No MP4 here; or an `ftyp` symphonia cannot seek back from, which it fails on itself.
        _ => Ok(()),
    };
    source.seek(SeekFrom::Start(0))?;
    result
}

fn read_u32<R: Read>(source: &mut R) -> Result<u32, SilkError> {
    let mut b = [0u8; 4];
    source.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn walk<R: Read + Seek>(
    source: &mut R,
    start: u64,
    end: u64,
    parent: &[u8; 4],
    depth: usize,
    budget: &mut usize,
) -> Result<(), SilkError> {
    let mut pos = start;
    while pos.saturating_add(8) <= end {
        *budget = budget
            .checked_sub(1)
            .ok_or_else(|| SilkError::MalformedContainer {
                container: "MP4",
                problem: format!("more than {MAX_BOXES} boxes"),
            })?;
        source.seek(SeekFrom::Start(pos))?;
        let size32 = read_u32(source)?;
        let mut kind = [0u8; 4];
        source.read_exact(&mut kind)?;
        let (header, size) = match size32 {
            0 => (8, end - pos),
            1 => {
                if pos.saturating_add(16) > end {
                    return Ok(());
                }
                let hi = u64::from(read_u32(source)?);
                let lo = u64::from(read_u32(source)?);
                (16, hi << 32 | lo)
            }
            n => (8, u64::from(n)),
        };
        if size < header {
            // symphonia rejects this box; nothing after it is read.
            return Ok(());
        }
        let box_end = pos.saturating_add(size).min(end);
        let payload = pos + header;
        if CONTAINERS.contains(&&kind) {
            if depth < MAX_DEPTH {
                walk(source, payload, box_end, &kind, depth + 1, budget)?;
            }
        } else if let Some((skip, entry)) = table(&kind).filter(|_| parent == b"stbl") {
            let count_at = payload + skip;
            if count_at + 4 <= box_end {
                let entries = if &kind == b"stsz" {
                    source.seek(SeekFrom::Start(count_at - 4))?;
                    let constant = read_u32(source)?;
                    let count = u64::from(read_u32(source)?);
                    if constant == 0 { count } else { 0 }
                } else {
                    source.seek(SeekFrom::Start(count_at))?;
                    u64::from(read_u32(source)?)
                };
                if entries.saturating_mul(entry) > box_end - (count_at + 4) {
                    return Err(refuse(&kind, entries));
                }
            }
        }
        pos = pos.saturating_add(size);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    fn file_with(table_box: Vec<u8>) -> Vec<u8> {
        let stbl = mp4_box(b"stbl", &table_box);
        let minf = mp4_box(b"minf", &stbl);
        let mdia = mp4_box(b"mdia", &minf);
        let trak = mp4_box(b"trak", &mdia);
        let moov = mp4_box(b"moov", &trak);
        let mut file = mp4_box(b"ftyp", b"M4A \0\0\0\0");
        file.extend(moov);
        file
    }

    fn table_box(kind: &[u8; 4], count: u32, entries: usize, entry: usize) -> Vec<u8> {
        let mut payload = vec![0u8; 4]; // version and flags
        if kind == b"stsz" {
            payload.extend_from_slice(&0u32.to_be_bytes());
        }
        payload.extend_from_slice(&count.to_be_bytes());
        payload.extend(std::iter::repeat_n(0u8, entries * entry));
        mp4_box(kind, &payload)
    }

    #[test]
    fn honest_tables_pass_and_inflated_ones_are_refused() {
        for (kind, entry) in [
            (b"stco", 4),
            (b"co64", 8),
            (b"stsc", 12),
            (b"stts", 8),
            (b"stsz", 4),
        ] {
            let ok = file_with(table_box(kind, 3, 3, entry));
            assert!(check(&mut Cursor::new(ok)).is_ok(), "{kind:?}");
            let bad = file_with(table_box(kind, 0x8000_0000, 3, entry));
            let err = check(&mut Cursor::new(bad)).unwrap_err();
            assert!(err.to_string().contains("cannot hold"), "{err}");
        }
    }

    #[test]
    fn constant_sample_size_has_no_entries() {
        let mut payload = vec![0u8; 4];
        payload.extend_from_slice(&1024u32.to_be_bytes());
        payload.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(check(&mut Cursor::new(file_with(mp4_box(b"stsz", &payload)))).is_ok());
    }

    #[test]
    fn non_mp4_and_odd_sizes_pass_through() {
        assert!(check(&mut Cursor::new(b"ID3\x03 not an mp4 at all".to_vec())).is_ok());
        assert!(check(&mut Cursor::new(b"ftyp".to_vec())).is_ok());
        // A box of size 0 runs to the end; size 1 has a 64-bit size; too-small sizes stop.
        let mut file = mp4_box(b"ftyp", b"M4A ");
        file.extend_from_slice(&0u32.to_be_bytes());
        file.extend_from_slice(b"moov");
        file.extend(table_box(b"stco", 1_000_000, 0, 4));
        assert!(
            check(&mut Cursor::new(file)).is_ok(),
            "stco is not inside stbl here"
        );
        let mut file = mp4_box(b"ftyp", b"M4A ");
        file.extend_from_slice(&3u32.to_be_bytes());
        file.extend_from_slice(b"moov");
        assert!(check(&mut Cursor::new(file)).is_ok());
    }

    #[test]
    fn leaves_the_source_at_the_start() {
        for bytes in [
            file_with(table_box(b"stco", 1, 1, 4)),
            b"fLaC and more".to_vec(),
        ] {
            let mut cursor = Cursor::new(bytes);
            check(&mut cursor).unwrap();
            assert_eq!(cursor.position(), 0);
        }
    }
}
