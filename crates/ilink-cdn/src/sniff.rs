//! Media format sniffing by magic bytes.
//!
//! Written by hand rather than with a general sniffing crate because the formats that matter
//! here include WeChat's own (SILK voice with its `0x02` prefix) and a few containers that
//! must be told apart by looking inside (ZIP-based Office documents, MP4 vs M4A vs HEIC by
//! `ftyp` brand); the table is small.

/// The broad kind of a media file, which decides how it is sent (docs/protocol.md §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaKind {
    /// A picture: sent as an IMAGE item.
    Image,
    /// A video: sent as a VIDEO item.
    Video,
    /// Sound: a voice message (SILK) or an audio file.
    Audio,
    /// A document or archive: sent as a FILE item.
    Document,
}

/// A file format recognised by [`sniff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaFormat {
    /// JPEG image.
    Jpeg,
    /// PNG image.
    Png,
    /// GIF image.
    Gif,
    /// WebP image.
    Webp,
    /// BMP image.
    Bmp,
    /// TIFF image.
    Tiff,
    /// HEIC/HEIF image.
    Heic,
    /// AVIF image.
    Avif,
    /// ICO icon.
    Ico,
    /// MP4 video (ISO base media, video brands).
    Mp4,
    /// QuickTime video.
    Mov,
    /// 3GP video.
    ThreeGp,
    /// Matroska video.
    Mkv,
    /// WebM video.
    Webm,
    /// AVI video.
    Avi,
    /// FLV video.
    Flv,
    /// SILK v3 voice. `wechat_prefix` is true for the form WeChat uses, with one `0x02` byte
    /// before the `#!SILK_V3` header.
    Silk {
        /// Whether the data starts with WeChat's `0x02` byte.
        wechat_prefix: bool,
    },
    /// AMR narrow-band or wide-band voice.
    Amr,
    /// MP3 audio (ID3 tag or MPEG frame sync).
    Mp3,
    /// Ogg container (Opus, Vorbis, Speex).
    Ogg,
    /// WAV audio.
    Wav,
    /// FLAC audio.
    Flac,
    /// AAC audio in ADTS frames.
    Aac,
    /// M4A audio (ISO base media, audio brands).
    M4a,
    /// PDF document.
    Pdf,
    /// Word document (OOXML, `.docx`).
    Docx,
    /// Excel workbook (OOXML, `.xlsx`).
    Xlsx,
    /// PowerPoint presentation (OOXML, `.pptx`).
    Pptx,
    /// Legacy Office document in an OLE compound file (`.doc`, `.xls`, `.ppt`).
    OleOffice,
    /// Any other ZIP archive.
    Zip,
    /// RAR archive.
    Rar,
    /// 7-Zip archive.
    SevenZip,
    /// gzip data.
    Gzip,
    /// RTF document.
    Rtf,
}

impl MediaFormat {
    /// The broad kind.
    #[must_use]
    pub const fn kind(self) -> MediaKind {
        match self {
            Self::Jpeg
            | Self::Png
            | Self::Gif
            | Self::Webp
            | Self::Bmp
            | Self::Tiff
            | Self::Heic
            | Self::Avif
            | Self::Ico => MediaKind::Image,
            Self::Mp4
            | Self::Mov
            | Self::ThreeGp
            | Self::Mkv
            | Self::Webm
            | Self::Avi
            | Self::Flv => MediaKind::Video,
            Self::Silk { .. }
            | Self::Amr
            | Self::Mp3
            | Self::Ogg
            | Self::Wav
            | Self::Flac
            | Self::Aac
            | Self::M4a => MediaKind::Audio,
            Self::Pdf
            | Self::Docx
            | Self::Xlsx
            | Self::Pptx
            | Self::OleOffice
            | Self::Zip
            | Self::Rar
            | Self::SevenZip
            | Self::Gzip
            | Self::Rtf => MediaKind::Document,
        }
    }

    /// Whether WeChat shows this as a picture in a chat, so it may go as an IMAGE item:
    /// JPEG, PNG, GIF, WebP and BMP. A stated guess, not a documented rule: these are the
    /// formats WeChat's own apps send and display; TIFF, HEIC, AVIF and ICO are not known to
    /// render in a chat and are refused as images (send them as files).
    #[must_use]
    pub const fn is_chat_image(self) -> bool {
        matches!(
            self,
            Self::Jpeg | Self::Png | Self::Gif | Self::Webp | Self::Bmp
        )
    }

    /// Whether WeChat plays this as a video in a chat, so it may go as a VIDEO item: MP4 and
    /// QuickTime (the containers phones record). A stated guess, like
    /// [`MediaFormat::is_chat_image`]; other containers (Matroska, WebM, AVI, FLV, 3GP) are
    /// refused as videos (send them as files).
    #[must_use]
    pub const fn is_chat_video(self) -> bool {
        matches!(self, Self::Mp4 | Self::Mov)
    }

    /// Whether a voice message can be made from this: the audio `ilink-silk` decodes (WAV,
    /// MP3, Ogg, FLAC, AAC in ADTS or M4A) and SILK itself. AMR is not decoded.
    #[must_use]
    pub const fn is_voice_source(self) -> bool {
        matches!(
            self,
            Self::Wav
                | Self::Mp3
                | Self::Ogg
                | Self::Flac
                | Self::Aac
                | Self::M4a
                | Self::Silk { .. }
        )
    }

    /// The usual MIME type.
    #[must_use]
    pub const fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
            Self::Bmp => "image/bmp",
            Self::Tiff => "image/tiff",
            Self::Heic => "image/heic",
            Self::Avif => "image/avif",
            Self::Ico => "image/x-icon",
            Self::Mp4 => "video/mp4",
            Self::Mov => "video/quicktime",
            Self::ThreeGp => "video/3gpp",
            Self::Mkv => "video/x-matroska",
            Self::Webm => "video/webm",
            Self::Avi => "video/x-msvideo",
            Self::Flv => "video/x-flv",
            Self::Silk { .. } => "audio/silk",
            Self::Amr => "audio/amr",
            Self::Mp3 => "audio/mpeg",
            Self::Ogg => "audio/ogg",
            Self::Wav => "audio/wav",
            Self::Flac => "audio/flac",
            Self::Aac => "audio/aac",
            Self::M4a => "audio/mp4",
            Self::Pdf => "application/pdf",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Pptx => {
                "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            }
            Self::OleOffice => "application/x-ole-storage",
            Self::Zip => "application/zip",
            Self::Rar => "application/vnd.rar",
            Self::SevenZip => "application/x-7z-compressed",
            Self::Gzip => "application/gzip",
            Self::Rtf => "application/rtf",
        }
    }

    /// The usual file extension, without the dot.
    #[must_use]
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::Webp => "webp",
            Self::Bmp => "bmp",
            Self::Tiff => "tif",
            Self::Heic => "heic",
            Self::Avif => "avif",
            Self::Ico => "ico",
            Self::Mp4 => "mp4",
            Self::Mov => "mov",
            Self::ThreeGp => "3gp",
            Self::Mkv => "mkv",
            Self::Webm => "webm",
            Self::Avi => "avi",
            Self::Flv => "flv",
            Self::Silk { .. } => "silk",
            Self::Amr => "amr",
            Self::Mp3 => "mp3",
            Self::Ogg => "ogg",
            Self::Wav => "wav",
            Self::Flac => "flac",
            Self::Aac => "aac",
            Self::M4a => "m4a",
            Self::Pdf => "pdf",
            Self::Docx => "docx",
            Self::Xlsx => "xlsx",
            Self::Pptx => "pptx",
            Self::OleOffice => "doc",
            Self::Zip => "zip",
            Self::Rar => "rar",
            Self::SevenZip => "7z",
            Self::Gzip => "gz",
            Self::Rtf => "rtf",
        }
    }
}

/// How many leading bytes [`sniff`] looks at; pass at least this many when you can.
/// (It needs the local file headers of a ZIP to tell Office documents from other archives.)
pub const SNIFF_LEN: usize = 4096;

fn starts(data: &[u8], magic: &[u8]) -> bool {
    data.starts_with(magic)
}

fn at(data: &[u8], offset: usize, magic: &[u8]) -> bool {
    data.get(offset..).is_some_and(|d| d.starts_with(magic))
}

/// Identifies a file from its first bytes (ideally [`SNIFF_LEN`] or more). Returns `None` for
/// unknown data, including plain text.
///
/// ```
/// use ilink_cdn::{MediaFormat, MediaKind, sniff};
///
/// assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some(MediaFormat::Png));
/// let voice = sniff(b"\x02#!SILK_V3\x0c\x00").unwrap();
/// assert_eq!(voice, MediaFormat::Silk { wechat_prefix: true });
/// assert_eq!(voice.kind(), MediaKind::Audio);
/// assert_eq!(sniff(b"hello"), None);
/// ```
#[must_use]
pub fn sniff(data: &[u8]) -> Option<MediaFormat> {
    use MediaFormat as F;
    let fmt = if starts(data, b"\xff\xd8\xff") {
        F::Jpeg
    } else if starts(data, b"\x89PNG\r\n\x1a\n") {
        F::Png
    } else if starts(data, b"GIF87a") || starts(data, b"GIF89a") {
        F::Gif
    } else if starts(data, b"RIFF") && at(data, 8, b"WEBP") {
        F::Webp
    } else if starts(data, b"RIFF") && at(data, 8, b"WAVE") {
        F::Wav
    } else if starts(data, b"RIFF") && at(data, 8, b"AVI ") {
        F::Avi
    } else if starts(data, b"#!SILK_V3") {
        F::Silk {
            wechat_prefix: false,
        }
    } else if starts(data, b"\x02#!SILK_V3") {
        F::Silk {
            wechat_prefix: true,
        }
    } else if starts(data, b"#!AMR") {
        F::Amr
    } else if at(data, 4, b"ftyp") {
        return sniff_ftyp(data);
    } else if starts(data, b"%PDF-") {
        F::Pdf
    } else if starts(data, b"PK\x03\x04") {
        sniff_zip(data)
    } else if starts(data, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        F::OleOffice
    } else if starts(data, b"OggS") {
        F::Ogg
    } else if starts(data, b"fLaC") {
        F::Flac
    } else if starts(data, b"ID3") {
        F::Mp3
    } else if starts(data, b"\x1a\x45\xdf\xa3") {
        sniff_ebml(data)
    } else if starts(data, b"FLV\x01") {
        F::Flv
    } else if starts(data, b"Rar!\x1a\x07") {
        F::Rar
    } else if starts(data, b"7z\xbc\xaf\x27\x1c") {
        F::SevenZip
    } else if starts(data, b"\x1f\x8b") {
        F::Gzip
    } else if starts(data, b"{\\rtf") {
        F::Rtf
    } else if starts(data, b"BM") && data.len() >= 14 && at(data, 6, b"\0\0\0\0") {
        F::Bmp
    } else if starts(data, b"II*\0") || starts(data, b"MM\0*") {
        F::Tiff
    } else if starts(data, b"\0\0\x01\0") && data.len() >= 6 {
        F::Ico
    } else {
        return sniff_frames(data);
    };
    Some(fmt)
}

/// ISO base media files: the major brand (and, for ambiguous ones, compatible brands).
fn sniff_ftyp(data: &[u8]) -> Option<MediaFormat> {
    use MediaFormat as F;
    let brand = data.get(8..12)?;
    Some(match brand {
        b"heic" | b"heix" | b"hevc" | b"hevx" | b"mif1" | b"msf1" | b"heim" | b"heis" => F::Heic,
        b"avif" | b"avis" => F::Avif,
        b"M4A " | b"M4B " | b"M4P " | b"F4A " => F::M4a,
        b"qt  " => F::Mov,
        b"3gp4" | b"3gp5" | b"3gp6" | b"3g2a" | b"3ge6" | b"3gg6" => F::ThreeGp,
        _ => F::Mp4,
    })
}

/// ZIP archives: OOXML documents carry `word/`, `xl/` or `ppt/` entries near the start.
fn sniff_zip(data: &[u8]) -> MediaFormat {
    let head = data.get(..SNIFF_LEN).unwrap_or(data);
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    if has(b"word/") {
        MediaFormat::Docx
    } else if has(b"xl/") {
        MediaFormat::Xlsx
    } else if has(b"ppt/") {
        MediaFormat::Pptx
    } else {
        MediaFormat::Zip
    }
}

/// EBML: WebM declares its doctype as "webm"; otherwise Matroska.
fn sniff_ebml(data: &[u8]) -> MediaFormat {
    let head = data.get(..64).unwrap_or(data);
    if head.windows(4).any(|w| w == b"webm") {
        MediaFormat::Webm
    } else {
        MediaFormat::Mkv
    }
}

/// Headerless audio frames: MPEG audio (MP3) and ADTS (AAC) by their frame sync.
fn sniff_frames(data: &[u8]) -> Option<MediaFormat> {
    let (&b0, &b1) = (data.first()?, data.get(1)?);
    if b0 != 0xff || b1 & 0xe0 != 0xe0 {
        return None;
    }
    // ADTS: sync 0xFFF, layer bits 00.
    if b1 & 0xf6 == 0xf0 {
        return Some(MediaFormat::Aac);
    }
    // MPEG audio: version != reserved (01), layer != reserved (00); plausible bitrate index.
    let version = (b1 >> 3) & 0x03;
    let layer = (b1 >> 1) & 0x03;
    let bitrate = data.get(2).map(|b| b >> 4);
    if version != 0x01 && layer != 0x00 && bitrate.is_some_and(|b| b != 0x0f) {
        return Some(MediaFormat::Mp3);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use MediaFormat as F;

    fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
        let mut v = b"\0\0\0\x20ftyp".to_vec();
        v.extend_from_slice(brand);
        v.extend_from_slice(&[0; 20]);
        v
    }

    fn zip_with(entry: &str) -> Vec<u8> {
        let mut v = b"PK\x03\x04\x14\0\0\0\x08\0".to_vec();
        v.extend_from_slice(&[0; 20]);
        v.extend_from_slice(entry.as_bytes());
        v
    }

    #[test]
    fn table() {
        let cases: Vec<(Vec<u8>, Option<MediaFormat>)> = vec![
            (b"\xff\xd8\xff\xe0\0\x10JFIF".to_vec(), Some(F::Jpeg)),
            (b"\x89PNG\r\n\x1a\n".to_vec(), Some(F::Png)),
            (b"GIF89a\x01\0".to_vec(), Some(F::Gif)),
            (b"RIFF\0\0\0\0WEBPVP8 ".to_vec(), Some(F::Webp)),
            (b"RIFF\x24\0\0\0WAVEfmt ".to_vec(), Some(F::Wav)),
            (b"RIFF\0\0\0\0AVI LIST".to_vec(), Some(F::Avi)),
            (b"BM\x36\0\x0c\0\0\0\0\0\x36\0\0\0".to_vec(), Some(F::Bmp)),
            (b"II*\0\x08\0\0\0".to_vec(), Some(F::Tiff)),
            (ftyp(b"heic"), Some(F::Heic)),
            (ftyp(b"avif"), Some(F::Avif)),
            (ftyp(b"isom"), Some(F::Mp4)),
            (ftyp(b"mp42"), Some(F::Mp4)),
            (ftyp(b"qt  "), Some(F::Mov)),
            (ftyp(b"M4A "), Some(F::M4a)),
            (ftyp(b"3gp5"), Some(F::ThreeGp)),
            (
                b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm".to_vec(),
                Some(F::Webm),
            ),
            (
                b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska".to_vec(),
                Some(F::Mkv),
            ),
            (b"FLV\x01\x05".to_vec(), Some(F::Flv)),
            (
                b"#!SILK_V3\x0c".to_vec(),
                Some(F::Silk {
                    wechat_prefix: false,
                }),
            ),
            (
                b"\x02#!SILK_V3\x0c".to_vec(),
                Some(F::Silk {
                    wechat_prefix: true,
                }),
            ),
            (b"#!AMR\n".to_vec(), Some(F::Amr)),
            (b"#!AMR-WB\n".to_vec(), Some(F::Amr)),
            (b"ID3\x04\0\0\0\0\0\0".to_vec(), Some(F::Mp3)),
            (b"\xff\xfb\x90\x64".to_vec(), Some(F::Mp3)),
            (b"\xff\xf1\x50\x80".to_vec(), Some(F::Aac)),
            (b"OggS\0\x02".to_vec(), Some(F::Ogg)),
            (b"fLaC\0\0\0\x22".to_vec(), Some(F::Flac)),
            (b"%PDF-1.7\n".to_vec(), Some(F::Pdf)),
            (zip_with("word/document.xml"), Some(F::Docx)),
            (zip_with("xl/workbook.xml"), Some(F::Xlsx)),
            (zip_with("ppt/presentation.xml"), Some(F::Pptx)),
            (zip_with("readme.txt"), Some(F::Zip)),
            (
                b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0".to_vec(),
                Some(F::OleOffice),
            ),
            (b"Rar!\x1a\x07\x01\0".to_vec(), Some(F::Rar)),
            (b"7z\xbc\xaf\x27\x1c\0\x04".to_vec(), Some(F::SevenZip)),
            (b"\x1f\x8b\x08\0".to_vec(), Some(F::Gzip)),
            (b"{\\rtf1\\ansi".to_vec(), Some(F::Rtf)),
            (b"hello-cdn-plaintext-0123456789".to_vec(), None),
            (b"".to_vec(), None),
            (b"\xff".to_vec(), None),
            (b"\xff\xff\xff\xff".to_vec(), None),
            (b"\0\0\0\x20ftyp".to_vec(), None),
        ];
        for (data, want) in cases {
            assert_eq!(sniff(&data), want, "{:?}", &data[..data.len().min(12)]);
        }
    }

    #[test]
    fn kinds_mimes_extensions() {
        assert_eq!(F::Jpeg.kind(), MediaKind::Image);
        assert_eq!(F::Mp4.kind(), MediaKind::Video);
        assert_eq!(F::M4a.kind(), MediaKind::Audio);
        assert_eq!(F::Docx.kind(), MediaKind::Document);
        assert_eq!(F::Mp4.mime(), "video/mp4");
        assert_eq!(
            F::Silk {
                wechat_prefix: true
            }
            .extension(),
            "silk"
        );
        assert_eq!(F::Pdf.extension(), "pdf");
    }

    #[test]
    fn what_goes_as_image_video_and_voice() {
        for f in [F::Jpeg, F::Png, F::Gif, F::Webp, F::Bmp] {
            assert!(f.is_chat_image(), "{f:?}");
            assert!(!f.is_chat_video() && !f.is_voice_source());
        }
        for f in [F::Tiff, F::Heic, F::Avif, F::Ico, F::Mp4, F::Mp3, F::Pdf] {
            assert!(!f.is_chat_image(), "{f:?}");
        }
        assert!(F::Mp4.is_chat_video() && F::Mov.is_chat_video());
        for f in [F::Mkv, F::Webm, F::Avi, F::Flv, F::ThreeGp, F::M4a, F::Mp3] {
            assert!(!f.is_chat_video(), "{f:?}");
        }
        for f in [F::Wav, F::Mp3, F::Ogg, F::Flac, F::Aac, F::M4a] {
            assert!(f.is_voice_source(), "{f:?}");
        }
        assert!(
            F::Silk {
                wechat_prefix: false
            }
            .is_voice_source()
        );
        for f in [F::Amr, F::Mp4, F::Pdf, F::Png] {
            assert!(!f.is_voice_source(), "{f:?}");
        }
    }
}
