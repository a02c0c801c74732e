//! Upload sources and the first read pass (MD5, size, format) before getuploadurl.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ilink_crypto::{Md5Hasher, MediaKey, ciphertext_len, new_filekey};
use ilink_proto::{BaseInfo, GetUploadUrlRequest, Secret, UploadMediaType};

use crate::error::{CdnError, CdnErrorKind};
use crate::sniff::{MediaFormat, SNIFF_LEN, sniff};

/// Chunk size for reading files.
pub(crate) const READ_CHUNK: usize = 256 * 1024;

/// What to upload: bytes in memory, or a file read in chunks (constant memory).
#[derive(Clone)]
pub enum MediaSource {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A file on disk. It is read twice: once for its MD5 and size, once to encrypt and send
    /// (once more per retried attempt).
    File(PathBuf),
}

impl fmt::Debug for MediaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "MediaSource::Bytes({} bytes)", b.len()),
            Self::File(p) => f.debug_tuple("MediaSource::File").field(p).finish(),
        }
    }
}

impl MediaSource {
    /// Bytes in memory.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        Self::Bytes(bytes.into())
    }

    /// A file on disk.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::File(path.into())
    }

    /// Reads `reader` to its end into memory, for sources that cannot be read twice (a
    /// socket, a pipe). Fails without reading further once more than `max_bytes` arrive.
    ///
    /// # Errors
    /// [`CdnErrorKind::TooLarge`] past `max_bytes`, [`CdnErrorKind::Io`] on a read error.
    pub async fn from_reader<R>(reader: R, max_bytes: u64) -> Result<Self, CdnError>
    where
        R: tokio::io::AsyncRead + Unpin,
    {
        use tokio::io::AsyncReadExt as _;
        let mut buf = Vec::new();
        reader
            .take(max_bytes.saturating_add(1))
            .read_to_end(&mut buf)
            .await
            .map_err(|e| CdnError::new(CdnErrorKind::Io, "cannot read the media").with_source(e))?;
        if buf.len() as u64 > max_bytes {
            return Err(CdnError::new(
                CdnErrorKind::TooLarge,
                format!("the media is larger than the limit of {max_bytes} bytes"),
            ));
        }
        Ok(Self::Bytes(buf.into()))
    }

    /// The format of the source from its first [`SNIFF_LEN`] bytes (only those are read), to
    /// choose the media type before [`PreparedUpload::prepare`]. `None` if unrecognised or
    /// unreadable.
    pub async fn sniff(&self) -> Option<MediaFormat> {
        match self {
            Self::Bytes(b) => sniff(b),
            Self::File(p) => {
                use tokio::io::AsyncReadExt as _;
                let file = tokio::fs::File::open(p).await.ok()?;
                let mut head = Vec::with_capacity(SNIFF_LEN);
                file.take(SNIFF_LEN as u64)
                    .read_to_end(&mut head)
                    .await
                    .ok()?;
                sniff(&head)
            }
        }
    }

    /// The size and format of the source, without hashing it: the length of the bytes or
    /// the file's size from its metadata, and [`sniff`] of the first [`SNIFF_LEN`] bytes.
    /// Cheap enough to run before every upload, so that media the server would refuse is
    /// refused before anything is sent.
    ///
    /// # Errors
    /// [`CdnErrorKind::Io`] when the file cannot be opened or read, or is not a regular
    /// file (a directory, say).
    pub async fn probe(&self) -> Result<Probe, CdnError> {
        match self {
            Self::Bytes(b) => Ok(Probe {
                len: b.len() as u64,
                format: sniff(b),
            }),
            Self::File(p) => {
                use tokio::io::AsyncReadExt as _;
                let meta = tokio::fs::metadata(p)
                    .await
                    .map_err(|e| io_error("cannot read", p, e))?;
                if !meta.is_file() {
                    return Err(CdnError::new(
                        CdnErrorKind::Io,
                        format!("{} is not a regular file", p.display()),
                    ));
                }
                let file = tokio::fs::File::open(p)
                    .await
                    .map_err(|e| io_error("cannot open", p, e))?;
                let mut head = Vec::with_capacity(SNIFF_LEN);
                file.take(SNIFF_LEN as u64)
                    .read_to_end(&mut head)
                    .await
                    .map_err(|e| io_error("cannot read", p, e))?;
                Ok(Probe {
                    len: meta.len(),
                    format: sniff(&head),
                })
            }
        }
    }

    /// The file's name (for `file_item.file_name`), if the source is a file.
    #[must_use]
    pub fn file_name(&self) -> Option<String> {
        match self {
            Self::Bytes(_) => None,
            Self::File(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
        }
    }
}

/// What [`MediaSource::probe`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Probe {
    /// Size in bytes (plaintext).
    pub len: u64,
    /// The format sniffed from the first bytes, if recognised.
    pub format: Option<MediaFormat>,
}

impl From<Vec<u8>> for MediaSource {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v.into())
    }
}

impl From<Bytes> for MediaSource {
    fn from(v: Bytes) -> Self {
        Self::Bytes(v)
    }
}

impl From<PathBuf> for MediaSource {
    fn from(p: PathBuf) -> Self {
        Self::File(p)
    }
}

impl From<&Path> for MediaSource {
    fn from(p: &Path) -> Self {
        Self::File(p.to_path_buf())
    }
}

pub(crate) fn io_error(what: &str, path: &Path, err: std::io::Error) -> CdnError {
    CdnError::new(CdnErrorKind::Io, format!("{what} {}", path.display())).with_source(err)
}

/// Size, MD5 and the first bytes of a source, in one read.
struct Digest {
    len: u64,
    md5_hex: String,
    head: Vec<u8>,
}

fn digest_bytes(data: &[u8]) -> Digest {
    let mut h = Md5Hasher::new();
    h.update(data);
    Digest {
        len: data.len() as u64,
        md5_hex: h.finish_hex(),
        head: data.get(..SNIFF_LEN).unwrap_or(data).to_vec(),
    }
}

fn digest_file(path: &Path) -> Result<Digest, CdnError> {
    let mut file = std::fs::File::open(path).map_err(|e| io_error("cannot open", path, e))?;
    let mut h = Md5Hasher::new();
    let mut head = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("cannot read", path, e)),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        if head.len() < SNIFF_LEN {
            let take = (SNIFF_LEN - head.len()).min(n);
            head.extend_from_slice(chunk.get(..take).unwrap_or_default());
        }
        h.update(chunk);
    }
    Ok(Digest {
        len: h.len(),
        md5_hex: h.finish_hex(),
        head,
    })
}

/// A source that has been read once for its size and MD5, with a fresh key and filekey:
/// everything needed for the getuploadurl request (docs/protocol.md §12.1) and then the upload.
///
/// ```
/// use ilink_cdn::{MediaSource, PreparedUpload};
/// use ilink_proto::{BaseInfo, UploadMediaType};
///
/// # async fn demo() -> Result<(), ilink_cdn::CdnError> {
/// let prepared = PreparedUpload::prepare(MediaSource::bytes(vec![0u8; 100]), UploadMediaType::Image).await?;
/// assert_eq!(prepared.rawsize(), 100);
/// assert_eq!(prepared.filesize(), 112);
/// let req = prepared.get_upload_url_request("o9abc@im.wechat", BaseInfo::default());
/// assert_eq!(req.no_need_thumb, Some(true));
/// # Ok(()) }
/// ```
pub struct PreparedUpload {
    source: MediaSource,
    media_type: UploadMediaType,
    key: MediaKey,
    filekey: String,
    rawsize: u64,
    rawfilemd5: String,
    format: Option<MediaFormat>,
}

impl fmt::Debug for PreparedUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedUpload")
            .field("source", &self.source)
            .field("media_type", &self.media_type)
            .field("key", &self.key)
            .field("filekey", &self.filekey)
            .field("rawsize", &self.rawsize)
            .field("rawfilemd5", &self.rawfilemd5)
            .field("format", &self.format)
            .finish()
    }
}

impl PreparedUpload {
    /// Reads `source` once (size, MD5, format) and generates a random key and filekey, as the
    /// official client does for every upload. A file is read on a blocking thread.
    ///
    /// # Errors
    /// [`CdnErrorKind::Io`] if the file cannot be read, [`CdnErrorKind::Random`] if no random
    /// bytes are available.
    pub async fn prepare(
        source: MediaSource,
        media_type: UploadMediaType,
    ) -> Result<Self, CdnError> {
        let key = MediaKey::generate()?;
        let filekey = new_filekey()?;
        Self::prepare_with_key(source, media_type, key, filekey).await
    }

    /// Like [`PreparedUpload::prepare`], with a given key and filekey (for tests and for
    /// re-sending with a known key).
    ///
    /// # Errors
    /// [`CdnErrorKind::Io`] if the file cannot be read.
    pub async fn prepare_with_key(
        source: MediaSource,
        media_type: UploadMediaType,
        key: MediaKey,
        filekey: String,
    ) -> Result<Self, CdnError> {
        let digest = match &source {
            // Hashing a large buffer takes a while: keep it off the async threads.
            MediaSource::Bytes(b) if b.len() > READ_CHUNK => {
                let b = b.clone();
                tokio::task::spawn_blocking(move || digest_bytes(&b))
                    .await
                    .map_err(|e| {
                        CdnError::new(CdnErrorKind::Io, "the hashing task failed").with_source(e)
                    })?
            }
            MediaSource::Bytes(b) => digest_bytes(b),
            MediaSource::File(p) => {
                let path = p.clone();
                tokio::task::spawn_blocking(move || digest_file(&path))
                    .await
                    .map_err(|e| {
                        CdnError::new(CdnErrorKind::Io, "the file hashing task failed")
                            .with_source(e)
                    })??
            }
        };
        Ok(Self {
            source,
            media_type,
            key,
            filekey,
            rawsize: digest.len,
            rawfilemd5: digest.md5_hex,
            format: sniff(&digest.head),
        })
    }

    /// The getuploadurl request with every field the official client sends: `filekey`,
    /// `media_type`, `to_user_id`, `rawsize`, `rawfilemd5`, `filesize`, `no_need_thumb: true`,
    /// `aeskey` (hex) and `base_info`.
    #[must_use]
    pub fn get_upload_url_request(
        &self,
        to_user_id: impl Into<String>,
        base_info: BaseInfo,
    ) -> GetUploadUrlRequest {
        GetUploadUrlRequest::new(
            self.filekey.clone(),
            self.media_type,
            to_user_id,
            self.rawsize,
            self.rawfilemd5.clone(),
            Secret::new(self.key.to_hex()),
            base_info,
        )
    }

    /// The source.
    #[must_use]
    pub fn source(&self) -> &MediaSource {
        &self.source
    }

    /// The media type sent to getuploadurl.
    #[must_use]
    pub fn media_type(&self) -> UploadMediaType {
        self.media_type
    }

    /// The media key.
    #[must_use]
    pub fn key(&self) -> &MediaKey {
        &self.key
    }

    /// The filekey: 32 lowercase hex digits.
    #[must_use]
    pub fn filekey(&self) -> &str {
        &self.filekey
    }

    /// Plaintext size (`rawsize`).
    #[must_use]
    pub fn rawsize(&self) -> u64 {
        self.rawsize
    }

    /// Ciphertext size (`filesize`).
    #[must_use]
    pub fn filesize(&self) -> u64 {
        ciphertext_len(self.rawsize)
    }

    /// MD5 of the plaintext in lowercase hex (`rawfilemd5`).
    #[must_use]
    pub fn rawfilemd5(&self) -> &str {
        &self.rawfilemd5
    }

    /// The format sniffed from the first bytes, if recognised.
    #[must_use]
    pub fn format(&self) -> Option<MediaFormat> {
        self.format
    }
}
