//! Vorbis comments and FLAC pictures: the length-prefixed structures that FLAC and Ogg share.
//!
//! Each check gets the bytes symphonia's reader can reach (a FLAC block's body, or the rest of
//! an Ogg packet) and fails with what is wrong when a declared length does not fit in them.
//! A structure that merely ends early passes: symphonia fails on it without a large allocation.

#![forbid(unsafe_code)]

/// A forward-only reader over a byte slice.
pub(super) struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Bytes left.
    pub(super) fn left(&self) -> u64 {
        self.rest.len() as u64
    }

    fn quad(&mut self) -> Option<[u8; 4]> {
        let (head, rest) = self.rest.split_first_chunk::<4>()?;
        self.rest = rest;
        Some(*head)
    }

    pub(super) fn u32_le(&mut self) -> Option<u32> {
        self.quad().map(u32::from_le_bytes)
    }

    pub(super) fn u32_be(&mut self) -> Option<u32> {
        self.quad().map(u32::from_be_bytes)
    }

    /// Skips `n` bytes; false (and nothing skipped) if fewer are left.
    pub(super) fn skip(&mut self, n: u64) -> bool {
        match usize::try_from(n).ok().and_then(|n| self.rest.get(n..)) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// Reads a length field (`u32`) and skips that many bytes, or says what does not fit.
    fn sized(&mut self, what: &str, big_endian: bool) -> Result<bool, String> {
        let length = if big_endian {
            self.u32_be()
        } else {
            self.u32_le()
        };
        let Some(length) = length else {
            return Ok(false);
        };
        if self.skip(u64::from(length)) {
            Ok(true)
        } else {
            Err(format!(
                "{what} declares {length} bytes but only {} remain",
                self.left()
            ))
        }
    }
}

/// Checks a Vorbis comment structure without framing bit (vendor string, comment count,
/// length-prefixed comments; little-endian), as symphonia's `read_comment_no_framing` reads it.
pub(super) fn vorbis_comment(bytes: &[u8]) -> Result<(), String> {
    let mut fields = Fields::new(bytes);
    if !fields.sized("the vendor string", false)? {
        return Ok(());
    }
    let Some(count) = fields.u32_le() else {
        return Ok(());
    };
    // Each comment needs at least its 4-byte length.
    if u64::from(count) * 4 > fields.left() {
        return Err(format!(
            "{count} comments are declared but only {} bytes remain",
            fields.left()
        ));
    }
    for index in 0..count {
        if !fields.sized(&format!("comment {index}"), false)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Checks a FLAC PICTURE structure (big-endian), as symphonia's `read_picture_block` reads it.
pub(super) fn picture(bytes: &[u8]) -> Result<(), String> {
    let mut fields = Fields::new(bytes);
    // Picture type, then the MIME type and the description.
    if fields.u32_be().is_none()
        || !fields.sized("the MIME type", true)?
        || !fields.sized("the description", true)?
    {
        return Ok(());
    }
    // Width, height, colour depth and palette size.
    if !fields.skip(16) {
        return Ok(());
    }
    fields.sized("the picture data", true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(vendor: &[u8], comments: &[&[u8]]) -> Vec<u8> {
        let mut b = (vendor.len() as u32).to_le_bytes().to_vec();
        b.extend_from_slice(vendor);
        b.extend_from_slice(&(comments.len() as u32).to_le_bytes());
        for c in comments {
            b.extend_from_slice(&(c.len() as u32).to_le_bytes());
            b.extend_from_slice(c);
        }
        b
    }

    #[test]
    fn honest_comments_pass() {
        assert_eq!(
            vorbis_comment(&comment(b"reference libFLAC", &[b"TITLE=a", b""])),
            Ok(())
        );
        assert_eq!(vorbis_comment(&comment(b"", &[])), Ok(()));
        // Ending early is symphonia's error to report, not an allocation risk.
        assert_eq!(vorbis_comment(&[1, 0]), Ok(()));
    }

    #[test]
    fn oversized_vendor_count_and_comment_are_refused() {
        let mut bad_vendor = comment(b"x", &[]);
        bad_vendor[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = vorbis_comment(&bad_vendor).unwrap_err();
        assert_eq!(
            err,
            "the vendor string declares 4294967295 bytes but only 5 remain"
        );

        let mut bad_count = comment(b"v", &[b"A=1"]);
        bad_count[5..9].copy_from_slice(&1000u32.to_le_bytes());
        let err = vorbis_comment(&bad_count).unwrap_err();
        assert_eq!(err, "1000 comments are declared but only 7 bytes remain");

        let mut bad_comment = comment(b"v", &[b"A=1", b"B=2"]);
        let at = bad_comment.len() - 7;
        bad_comment[at..at + 4].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        let err = vorbis_comment(&bad_comment).unwrap_err();
        assert_eq!(err, "comment 1 declares 4294967295 bytes but only 3 remain");
    }

    fn picture_block(mime: &[u8], desc: &[u8], data: &[u8]) -> Vec<u8> {
        let mut b = 3u32.to_be_bytes().to_vec();
        for part in [mime, desc] {
            b.extend_from_slice(&(part.len() as u32).to_be_bytes());
            b.extend_from_slice(part);
        }
        b.extend_from_slice(&[0u8; 16]);
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn pictures_must_fit() {
        let ok = picture_block(b"image/png", b"cover", b"\x89PNG....");
        assert_eq!(picture(&ok), Ok(()));
        for (field, at, what) in [
            (0, 4, "the MIME type"),
            (1, 17, "the description"),
            (2, 42, "the picture data"),
        ] {
            let mut bad = ok.clone();
            bad[at..at + 4].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
            let err = picture(&bad).unwrap_err();
            assert!(
                err.starts_with(&format!("{what} declares 2147483647 bytes")),
                "{field}: {err}"
            );
        }
    }
}
