//! Checks of container and tag sizes before `symphonia` reads them.
//!
//! `symphonia` 0.5 trusts the sizes that audio files declare: it reserves memory for an MP4
//! sample table, a FLAC/Vorbis comment, a picture or an ID3v2 frame as declared
//! (`vec![0; len]`, `Vec::with_capacity(count)`) before reading a byte of it. A few kilobytes
//! can ask for gigabytes, and a failed allocation aborts the process, which no `catch_unwind`
//! can stop (found by the `audio_decode` fuzz target: F2 for MP4, F3 for FLAC). No crate offers
//! these checks; each is a short walk over the headers, written here.
//!
//! [`check`] follows symphonia's probe: it skips (and checks) ID3v2 tags, finds the first
//! format marker the way the probe does, and walks that format's headers the way its reader
//! will, refusing any size that the bytes around it cannot hold. What passes costs symphonia at
//! most the input's own size in memory per allocation. Where symphonia would fail by itself
//! (bad version, truncated header) the check stops and lets it.

#![forbid(unsafe_code)]

mod fields;
mod flac;
mod id3;
mod mp4;
mod ogg;

use std::io::{Read, Seek, SeekFrom};

use crate::SilkError;

/// How far symphonia's probe searches for a format marker (`PROBE_SEARCH_LIMIT`), plus its
/// 16-byte window.
const PROBE_LIMIT: u64 = 1024 * 1024 + 16;

/// Chained ID3v2 tags followed before giving up the search (real files have one).
const MAX_TAGS: usize = 64;

/// Checks an audio input's container and tag sizes, leaving `source` at its start.
pub(crate) fn check<R: Read + Seek>(source: &mut R) -> Result<(), SilkError> {
    // An empty input is no audio (not a format the probe failed to recognise).
    if source.seek(SeekFrom::End(0))? == 0 {
        return Err(SilkError::Empty);
    }
    source.seek(SeekFrom::Start(0))?;
    mp4::check(source)?;
    let result = check_tags(source);
    source.seek(SeekFrom::Start(0))?;
    result
}

/// The format markers symphonia's default probe registers with the features this crate
/// enables, and what the guard does on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Id3,
    Flac,
    Ogg,
    /// RIFF (WAV): the format chunk's sample rate.
    Wav,
    /// MP3, ADTS or MP4: nothing (more) to check here.
    Other,
}

fn marker_at(context: &[u8]) -> Option<Marker> {
    const MPEG: [u8; 19] = [
        0xfe, 0xff, 0xf6, 0xf7, 0xe6, 0xe7, // layer 1
        0xfc, 0xfd, 0xf4, 0xf5, 0xe4, 0xe5, // layer 2
        0xfa, 0xfb, 0xf2, 0xf3, 0xe2, 0xe3, // layer 3
        0xf1, // ADTS
    ];
    match context {
        [b'I', b'D', b'3', ..] => Some(Marker::Id3),
        [b'f', b'L', b'a', b'C', ..] => Some(Marker::Flac),
        [b'O', b'g', b'g', b'S', ..] => Some(Marker::Ogg),
        [b'R', b'I', b'F', b'F', ..] => Some(Marker::Wav),
        [b'f', b't', b'y', b'p', ..] => Some(Marker::Other),
        [0xff, second, ..] if MPEG.contains(second) => Some(Marker::Other),
        _ => None,
    }
}

/// Reads up to `len` bytes at `pos` (fewer at the end of the input).
fn read_at<R: Read + Seek>(source: &mut R, pos: u64, len: u64) -> Result<Vec<u8>, SilkError> {
    source.seek(SeekFrom::Start(pos))?;
    let mut bytes = Vec::new();
    source.by_ref().take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Where symphonia's probe, starting at `from`, finds its first marker: it slides over up to
/// 1 MiB and needs the 16-byte window after a marker to be present.
fn find_marker<R: Read + Seek>(
    source: &mut R,
    from: u64,
) -> Result<Option<(u64, Marker)>, SilkError> {
    let window = read_at(source, from, PROBE_LIMIT)?;
    let found = window
        .windows(16)
        .enumerate()
        .find_map(|(at, context)| marker_at(context).map(|m| (from + at as u64, m)));
    Ok(found)
}

fn check_tags<R: Read + Seek>(source: &mut R) -> Result<(), SilkError> {
    let len = source.seek(SeekFrom::End(0))?;
    let mut from = 0;
    for _ in 0..MAX_TAGS {
        match find_marker(source, from)? {
            Some((at, Marker::Id3)) => match id3::check(source, at, len)? {
                Some(next) => from = next,
                None => return Ok(()),
            },
            Some((at, Marker::Flac)) => return flac::check(source, at, len),
            Some((at, Marker::Ogg)) => return ogg::check(source, at, len),
            Some((at, Marker::Wav)) => return check_wav_rate(source, at),
            Some((_, Marker::Other)) | None => return Ok(()),
        }
    }
    Ok(())
}

/// A WAV whose format chunk says 0 Hz makes symphonia 0.5 panic (a zero time base); the
/// panic is caught, but the default panic hook still prints it. Refuse it first. Walks at most
/// 64 chunks of the RIFF header from `at`; anything else is left to symphonia.
fn check_wav_rate<R: Read + Seek>(source: &mut R, at: u64) -> Result<(), SilkError> {
    let head = read_at(source, at, 12)?;
    if head.get(8..12) != Some(b"WAVE".as_slice()) {
        return Ok(());
    }
    let mut pos = at + 12;
    for _ in 0..64 {
        let chunk = read_at(source, pos, 16)?;
        let (Some(id), Some(size)) = (chunk.get(0..4), chunk.get(4..8)) else {
            return Ok(());
        };
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]);
        if id == b"fmt " {
            if let Some(rate) = chunk.get(12..16) {
                let rate = u32::from_le_bytes([rate[0], rate[1], rate[2], rate[3]]);
                if rate == 0 {
                    return Err(SilkError::BadSampleRate {
                        rate: 0,
                        min: crate::MIN_SAMPLE_RATE,
                        max: crate::MAX_SAMPLE_RATE,
                    });
                }
            }
            return Ok(());
        }
        // Chunks are padded to an even size.
        pos = pos
            .saturating_add(8)
            .saturating_add(u64::from(size) + u64::from(size & 1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn the_first_marker_decides() {
        let mut bytes = b"junk".to_vec();
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&[0u8; 20]);
        bytes.extend_from_slice(b"fLaC");
        bytes.extend_from_slice(&[0u8; 20]);
        let found = find_marker(&mut Cursor::new(bytes), 0).unwrap();
        assert_eq!(found, Some((4, Marker::Wav)));
        let mut flac = vec![0xff, 0x00];
        flac.extend_from_slice(b"fLaC");
        flac.extend_from_slice(&[0u8; 12]);
        let found = find_marker(&mut Cursor::new(flac.clone()), 0).unwrap();
        assert_eq!(found, Some((2, Marker::Flac)));
        // Without the 16-byte window after it, symphonia does not take the marker.
        flac.pop();
        assert_eq!(find_marker(&mut Cursor::new(flac), 0).unwrap(), None);
    }

    #[test]
    fn leaves_the_source_at_the_start() {
        let mut cursor = Cursor::new(b"fLaC\x80\0\0\x04abcdxxxxxxxxxxxxxxx".to_vec());
        check(&mut cursor).unwrap();
        assert_eq!(cursor.position(), 0);
    }

    /// A WAV header: PCM, mono, 16-bit, at `rate` Hz, with a `LIST` chunk before `fmt `.
    fn wav(rate: u32) -> Vec<u8> {
        let mut b = b"RIFF".to_vec();
        b.extend_from_slice(&2_100u32.to_le_bytes());
        b.extend_from_slice(b"WAVE");
        b.extend_from_slice(b"LIST");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(b"abc\0"); // 3 bytes and the pad byte
        b.extend_from_slice(b"fmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * 2).to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&2_000u32.to_le_bytes());
        b.extend_from_slice(&[0u8; 2_000]);
        b
    }

    #[test]
    fn a_wav_at_zero_hz_is_refused_before_symphonia() {
        let err = check(&mut Cursor::new(wav(0))).unwrap_err();
        assert!(
            matches!(err, SilkError::BadSampleRate { rate: 0, .. }),
            "{err:?}"
        );
        check(&mut Cursor::new(wav(16_000))).unwrap();
        // Through the public API: a typed error, not the parser's panic.
        let err = crate::decode_audio(&wav(0), crate::DecodeOptions::default()).unwrap_err();
        assert!(
            matches!(err, SilkError::BadSampleRate { rate: 0, .. }),
            "{err:?}"
        );
    }
}
