//! The CDN client: uploads with retries, downloads with a size cap.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use ilink_crypto::{Decryptor, EcbCipher, MediaKey, ciphertext_len};
use ilink_http::{
    Backoff, ErrorKind as HttpErrorKind, HttpClient, HttpError, Request, RequestBody, Response,
};
use ilink_proto::{CdnMedia, GetUploadUrlResponse, Secret};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};

use crate::error::{CdnError, CdnErrorKind};
use crate::integrity::{Checker, Expected};
use crate::sniff::{MediaFormat, SNIFF_LEN, sniff};
use crate::source::{MediaSource, PreparedUpload, READ_CHUNK, io_error};
use crate::url::{
    DEFAULT_CDN_BASE_URL, HostAllowlist, built_download_url, check_full_url, upload_url,
};

/// Default download cap: 100 MiB, the official client's `WEIXIN_MEDIA_MAX_BYTES`.
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 100 * 1024 * 1024;

/// Attempts per upload, as the official client (`UPLOAD_MAX_RETRIES = 3`).
pub const DEFAULT_UPLOAD_ATTEMPTS: u32 = 3;

/// How far a transfer has got, passed to a [`ProgressFn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Bytes transferred so far (ciphertext bytes on the wire). An upload retry starts again
    /// from 0.
    pub done: u64,
    /// Total bytes expected, when known.
    pub total: Option<u64>,
}

/// A progress callback. Called from the task driving the transfer; keep it cheap.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Configuration of a [`CdnClient`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CdnConfig {
    /// The CDN base URL. Default [`DEFAULT_CDN_BASE_URL`].
    pub base_url: String,
    /// Hosts a server-supplied `full_url` or `upload_full_url` may point at (the base URL's
    /// host is always allowed). Default [`HostAllowlist::default`].
    pub allowed_hosts: HostAllowlist,
    /// Largest plaintext a download may produce, in bytes. Default 100 MiB.
    pub max_download_bytes: u64,
    /// Attempts per upload (at least 1). Default 3.
    pub upload_attempts: u32,
    /// The delay between upload attempts: exponential with jitter. Default 250 ms doubling
    /// to 8 s ([`Backoff::default`]). The official client retries at once (docs/protocol.md
    /// §12.2); waiting lets a CDN that failed recover, and spreads out the retries of many
    /// clients that failed together.
    pub upload_backoff: Backoff,
}

impl Default for CdnConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_CDN_BASE_URL.to_owned(),
            allowed_hosts: HostAllowlist::default(),
            max_download_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
            upload_attempts: DEFAULT_UPLOAD_ATTEMPTS,
            upload_backoff: Backoff::default(),
        }
    }
}

impl CdnConfig {
    /// Set [`CdnConfig::base_url`].
    #[must_use]
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Set [`CdnConfig::allowed_hosts`].
    #[must_use]
    pub fn with_allowed_hosts(mut self, hosts: HostAllowlist) -> Self {
        self.allowed_hosts = hosts;
        self
    }

    /// Add one host (or `*.suffix`) to [`CdnConfig::allowed_hosts`].
    #[must_use]
    pub fn allow_host(mut self, host: &str) -> Self {
        self.allowed_hosts.add(host);
        self
    }

    /// Set [`CdnConfig::max_download_bytes`].
    #[must_use]
    pub fn with_max_download_bytes(mut self, bytes: u64) -> Self {
        self.max_download_bytes = bytes;
        self
    }

    /// Set [`CdnConfig::upload_backoff`].
    #[must_use]
    pub fn with_upload_backoff(mut self, backoff: Backoff) -> Self {
        self.upload_backoff = backoff;
        self
    }

    /// Set [`CdnConfig::upload_attempts`] (0 counts as 1).
    #[must_use]
    pub fn with_upload_attempts(mut self, attempts: u32) -> Self {
        self.upload_attempts = attempts.max(1);
        self
    }
}

/// A finished upload: what goes into the `CDNMedia` of the sendmessage that follows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UploadedMedia {
    /// The CDN's `x-encrypted-param`: the `encrypt_query_param` of the outbound `CDNMedia`.
    pub encrypt_query_param: String,
    /// The media key.
    pub key: MediaKey,
    /// Plaintext size.
    pub rawsize: u64,
    /// Ciphertext size (the `mid_size` / `video_size` of the outbound item).
    pub filesize: u64,
    /// MD5 of the plaintext, lowercase hex.
    pub rawfilemd5: String,
    /// The filekey used.
    pub filekey: String,
    /// Attempts it took (1 when the first succeeded).
    pub attempts: u32,
}

impl UploadedMedia {
    /// The outbound `CDNMedia`: `encrypt_query_param`, `aes_key` as base64 of the hex key,
    /// and `encrypt_type: 1`, as the official client sends it.
    #[must_use]
    pub fn cdn_media(&self) -> CdnMedia {
        CdnMedia::outbound(
            self.encrypt_query_param.clone(),
            Secret::new(self.key.to_base64_of_hex()),
        )
    }
}

/// What a download to a writer or file produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Downloaded {
    /// Plaintext bytes written.
    pub len: u64,
    /// The format sniffed from the first bytes, if recognised.
    pub format: Option<MediaFormat>,
}

/// Upload and download of media on the CDN, over the shared [`HttpClient`].
///
/// Cheap to clone (the HTTP connection pool is shared).
#[derive(Debug, Clone)]
pub struct CdnClient {
    http: HttpClient,
    config: Arc<CdnConfig>,
}

fn http_error(what: &str, e: HttpError) -> CdnError {
    CdnError::new(CdnErrorKind::Http, what.to_owned()).with_source(e)
}

/// At most this much of an error body goes into an error message.
const ERROR_BODY_MAX: usize = 512;

async fn error_text(resp: Response) -> String {
    match resp.body.collect_capped(64 * 1024).await {
        Ok(body) => {
            let text = String::from_utf8_lossy(body.get(..ERROR_BODY_MAX).unwrap_or(&body));
            text.trim().to_owned()
        }
        Err(_) => String::new(),
    }
}

/// Where downloaded plaintext goes.
enum Sink<'a> {
    Vec(&'a mut Vec<u8>),
    Writer(&'a mut (dyn AsyncWrite + Unpin + Send)),
}

impl CdnClient {
    /// A CDN client over `http`.
    #[must_use]
    pub fn new(http: HttpClient, config: CdnConfig) -> Self {
        Self {
            http,
            config: Arc::new(config),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &CdnConfig {
        &self.config
    }

    // ------------------------------------------------------------------------------------
    // upload
    // ------------------------------------------------------------------------------------

    /// Uploads `prepared` to the URL that getuploadurl answered (§12.2), chosen by
    /// [`CdnClient::upload_url`]: `upload_full_url` when non-empty and its host is allowed,
    /// else built from `upload_param` and the filekey.
    ///
    /// # Errors
    /// See [`CdnClient::upload_to`] and [`CdnClient::upload_url`].
    pub async fn upload(
        &self,
        prepared: &PreparedUpload,
        response: &GetUploadUrlResponse,
        progress: Option<ProgressFn>,
    ) -> Result<UploadedMedia, CdnError> {
        let url = self.upload_url(prepared, response)?;
        self.upload_to(&url, prepared, progress).await
    }

    /// The URL to upload `prepared` to (§12.2): `upload_full_url` if non-empty and its host
    /// is on [`CdnConfig::allowed_hosts`] (or is the CDN base host); else the URL built from
    /// `upload_param` on [`CdnConfig::base_url`].
    ///
    /// An `upload_full_url` to a host outside the allowlist is never contacted: the built URL
    /// is used instead when `upload_param` is present, otherwise this fails.
    ///
    /// # Errors
    /// [`CdnErrorKind::HostNotAllowed`] or [`CdnErrorKind::InvalidUrl`] (a refused
    /// `upload_full_url` without `upload_param`), [`CdnErrorKind::NoUploadTarget`] (neither).
    pub fn upload_url(
        &self,
        prepared: &PreparedUpload,
        response: &GetUploadUrlResponse,
    ) -> Result<String, CdnError> {
        let base = &self.config.base_url;
        let full = response
            .upload_full_url
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let param = response.upload_param.as_deref().filter(|s| !s.is_empty());
        if let Some(full) = full {
            match check_full_url(full, &self.config.allowed_hosts, base, "upload media to") {
                Ok(()) => return Ok(full.to_owned()),
                Err(e) if param.is_some() => {
                    tracing::warn!(error = %e, "ignoring upload_full_url; using upload_param");
                }
                Err(e) => return Err(e),
            }
        }
        upload_url(base, None, param, prepared.filekey())
    }

    /// POSTs the ciphertext of `prepared` to `url` with `Content-Type:
    /// application/octet-stream`, streamed from the source. Success is HTTP 200 with an
    /// `x-encrypted-param` header. A 4xx is final; other statuses, a missing header and
    /// transport errors are retried, up to [`CdnConfig::upload_attempts`] in all, after a
    /// delay from [`CdnConfig::upload_backoff`] (the official client retries at once).
    ///
    /// # Errors
    /// [`CdnErrorKind::UploadRejected`] (4xx, with the CDN's `x-error-message` or body),
    /// [`CdnErrorKind::UploadFailed`] (attempts exhausted), [`CdnErrorKind::Io`] or
    /// [`CdnErrorKind::SourceChanged`] (the source could not be read as hashed).
    pub async fn upload_to(
        &self,
        url: &str,
        prepared: &PreparedUpload,
        progress: Option<ProgressFn>,
    ) -> Result<UploadedMedia, CdnError> {
        let cipher = EcbCipher::new(prepared.key());
        let filesize = prepared.filesize();
        // In-memory sources are encrypted once and the ciphertext reused by every attempt.
        let in_memory = match prepared.source() {
            MediaSource::Bytes(b) => Some(Bytes::from(cipher.encrypt(b))),
            MediaSource::File(_) => None,
        };
        let attempts = self.config.upload_attempts.max(1);
        let mut last: Option<CdnError> = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                self.config.upload_backoff.sleep(attempt - 2).await;
            }
            let failure: Arc<Mutex<Option<CdnError>>> = Arc::default();
            let body = match (&in_memory, prepared.source()) {
                (Some(ct), _) => {
                    if let Some(p) = &progress {
                        p(Progress {
                            done: 0,
                            total: Some(filesize),
                        });
                    }
                    RequestBody::bytes(ct.clone())
                }
                (None, MediaSource::File(path)) => {
                    let file = tokio::fs::File::open(path)
                        .await
                        .map_err(|e| io_error("cannot open", path, e))?;
                    let stream = EncryptStream::new(
                        file,
                        cipher.clone(),
                        prepared.rawsize(),
                        progress.clone(),
                        Arc::clone(&failure),
                        path,
                    );
                    RequestBody::stream(stream, Some(filesize))
                }
                (None, MediaSource::Bytes(_)) => RequestBody::empty(),
            };
            let req = Request::post(url)
                .header("content-type", "application/octet-stream")
                .body(body);
            let outcome = match self.http.request(req).await {
                Ok(resp) => self.judge_upload(resp).await,
                Err(e) => {
                    let local = failure.lock().ok().and_then(|mut f| f.take());
                    if let Some(local) = local {
                        // The source failed: retrying would fail the same way.
                        return Err(local);
                    }
                    Err(http_error("the CDN upload request failed", e))
                }
            };
            match outcome {
                Ok(param) => {
                    if let (Some(p), true) = (&progress, in_memory.is_some()) {
                        p(Progress {
                            done: filesize,
                            total: Some(filesize),
                        });
                    }
                    return Ok(UploadedMedia {
                        encrypt_query_param: param,
                        key: prepared.key().clone(),
                        rawsize: prepared.rawsize(),
                        filesize,
                        rawfilemd5: prepared.rawfilemd5().to_owned(),
                        filekey: prepared.filekey().to_owned(),
                        attempts: attempt,
                    });
                }
                Err(e) if e.kind() == CdnErrorKind::UploadRejected => return Err(e),
                Err(e) => {
                    tracing::warn!(attempt, attempts, error = %e, "CDN upload attempt failed");
                    last = Some(e);
                }
            }
        }
        let detail = last.map_or_else(String::new, |e| format!(": last error: {e}"));
        Err(CdnError::new(
            CdnErrorKind::UploadFailed,
            format!("the CDN upload failed after {attempts} attempts{detail}"),
        ))
    }

    /// Judges one upload response (§12.2): `Ok(x-encrypted-param)`, a final 4xx error, or a
    /// retryable error.
    async fn judge_upload(&self, resp: Response) -> Result<String, CdnError> {
        let status = resp.status.as_u16();
        if (400..500).contains(&status) {
            let reason = match resp.header("x-error-message") {
                Some(m) if !m.trim().is_empty() => m.trim().to_owned(),
                _ => error_text(resp).await,
            };
            return Err(CdnError::new(
                CdnErrorKind::UploadRejected,
                format!("the CDN refused the upload with HTTP {status}: {reason}"),
            )
            .with_status(status));
        }
        let param = resp
            .header("x-encrypted-param")
            .map(str::to_owned)
            .filter(|p| !p.is_empty());
        // Read (and drop) the small body so the connection can be reused.
        let _ = resp.body.collect_capped(64 * 1024).await;
        match (status, param) {
            (200, Some(param)) => Ok(param),
            (200, None) => Err(CdnError::new(
                CdnErrorKind::UploadFailed,
                "the CDN answered 200 without an x-encrypted-param header",
            )
            .with_status(status)),
            _ => Err(CdnError::new(
                CdnErrorKind::UploadFailed,
                format!("the CDN answered the upload with HTTP {status}"),
            )
            .with_status(status)),
        }
    }

    // ------------------------------------------------------------------------------------
    // download
    // ------------------------------------------------------------------------------------

    /// The URL to download `media` from (§12.3): its `full_url` if present and its host is
    /// allowed; else the URL built from `encrypt_query_param`.
    ///
    /// A `full_url` to a host outside the allowlist is never contacted: the built URL is used
    /// instead when `encrypt_query_param` is present, otherwise this fails.
    ///
    /// # Errors
    /// [`CdnErrorKind::HostNotAllowed`], [`CdnErrorKind::InvalidUrl`].
    pub fn download_url(&self, media: &CdnMedia) -> Result<String, CdnError> {
        let base = &self.config.base_url;
        let full = media
            .full_url
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let param = media
            .encrypt_query_param
            .as_deref()
            .filter(|s| !s.is_empty());
        if let Some(full) = full {
            match check_full_url(
                full,
                &self.config.allowed_hosts,
                base,
                "download media from",
            ) {
                Ok(()) => return Ok(full.to_owned()),
                Err(e) => match param {
                    Some(_) => {
                        tracing::warn!(error = %e, "ignoring full_url; using encrypt_query_param")
                    }
                    None => return Err(e),
                },
            }
        }
        match param {
            Some(p) => Ok(built_download_url(base, p)),
            None => Err(CdnError::new(
                CdnErrorKind::InvalidUrl,
                "the media has neither full_url nor encrypt_query_param: nothing to download",
            )),
        }
    }

    /// Downloads `media` and decrypts it with `key` into memory. With `key` `None` the bytes
    /// are returned as they are (an image without a key is stored in the clear, §12.3).
    ///
    /// # Errors
    /// As [`CdnClient::download_url_to_vec`].
    pub async fn download(
        &self,
        media: &CdnMedia,
        key: Option<&MediaKey>,
    ) -> Result<Vec<u8>, CdnError> {
        self.download_checked(media, key, Expected::new()).await
    }

    /// [`CdnClient::download`], checked against what the message declares: a download that
    /// contradicts `expected` fails with [`CdnErrorKind::Integrity`] (reading stops as soon as
    /// the size is exceeded, or before it starts when the CDN announces a length that does not
    /// fit).
    ///
    /// # Errors
    /// As [`CdnClient::download_url_to_vec`], and [`CdnErrorKind::Integrity`].
    pub async fn download_checked(
        &self,
        media: &CdnMedia,
        key: Option<&MediaKey>,
        expected: Expected,
    ) -> Result<Vec<u8>, CdnError> {
        let url = self.download_url(media)?;
        self.download_url_to_vec_checked(&url, key, None, expected)
            .await
    }

    /// Downloads `url` into memory, decrypting with `key` if given.
    ///
    /// # Errors
    /// [`CdnErrorKind::DownloadFailed`] (non-2xx), [`CdnErrorKind::TooLarge`] (past
    /// [`CdnConfig::max_download_bytes`]; reading stops there), [`CdnErrorKind::Decrypt`],
    /// [`CdnErrorKind::Http`].
    pub async fn download_url_to_vec(
        &self,
        url: &str,
        key: Option<&MediaKey>,
        progress: Option<ProgressFn>,
    ) -> Result<Vec<u8>, CdnError> {
        self.download_url_to_vec_checked(url, key, progress, Expected::new())
            .await
    }

    /// [`CdnClient::download_url_to_vec`], checked against `expected` (see
    /// [`CdnClient::download_checked`]).
    ///
    /// # Errors
    /// As [`CdnClient::download_url_to_vec`], and [`CdnErrorKind::Integrity`].
    pub async fn download_url_to_vec_checked(
        &self,
        url: &str,
        key: Option<&MediaKey>,
        progress: Option<ProgressFn>,
        expected: Expected,
    ) -> Result<Vec<u8>, CdnError> {
        let mut out = Vec::new();
        self.fetch(url, key, Sink::Vec(&mut out), progress, expected)
            .await?;
        Ok(out)
    }

    /// Downloads `media`, decrypting with `key` if given, into `writer`, in constant memory.
    /// On error, what was already written stays written.
    ///
    /// # Errors
    /// As [`CdnClient::download_url_to_vec`], and [`CdnErrorKind::Io`] for write errors.
    pub async fn download_to_writer<W>(
        &self,
        media: &CdnMedia,
        key: Option<&MediaKey>,
        writer: &mut W,
        progress: Option<ProgressFn>,
    ) -> Result<Downloaded, CdnError>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let url = self.download_url(media)?;
        self.fetch(&url, key, Sink::Writer(writer), progress, Expected::new())
            .await
    }

    /// Downloads `media`, decrypting with `key` if given, into a file at `path` (replacing it
    /// once the download is complete), in constant memory. On error nothing is left behind
    /// and an existing file at `path` is untouched.
    ///
    /// # Errors
    /// As [`CdnClient::download_to_writer`].
    pub async fn download_to_file(
        &self,
        media: &CdnMedia,
        key: Option<&MediaKey>,
        path: &Path,
        progress: Option<ProgressFn>,
    ) -> Result<Downloaded, CdnError> {
        self.download_to_file_checked(media, key, path, progress, Expected::new())
            .await
    }

    /// [`CdnClient::download_to_file`], checked against `expected`: on a mismatch
    /// ([`CdnErrorKind::Integrity`]) the partial file is removed and nothing is written at
    /// `path`.
    ///
    /// # Errors
    /// As [`CdnClient::download_to_writer`], and [`CdnErrorKind::Integrity`].
    pub async fn download_to_file_checked(
        &self,
        media: &CdnMedia,
        key: Option<&MediaKey>,
        path: &Path,
        progress: Option<ProgressFn>,
        expected: Expected,
    ) -> Result<Downloaded, CdnError> {
        let url = self.download_url(media)?;
        self.download_url_to_file_checked(&url, key, path, progress, expected)
            .await
    }

    /// Downloads `url` into a new file at `path`; see [`CdnClient::download_to_file`].
    ///
    /// The data goes to `<path>.part` first and is renamed to `path` only when complete and
    /// decrypted, so a failed download never leaves a partial file or clobbers an existing one.
    ///
    /// # Errors
    /// As [`CdnClient::download_to_writer`].
    pub async fn download_url_to_file(
        &self,
        url: &str,
        key: Option<&MediaKey>,
        path: &Path,
        progress: Option<ProgressFn>,
    ) -> Result<Downloaded, CdnError> {
        self.download_url_to_file_checked(url, key, path, progress, Expected::new())
            .await
    }

    /// [`CdnClient::download_url_to_file`], checked against `expected` (see
    /// [`CdnClient::download_to_file_checked`]).
    ///
    /// If the future is dropped before it completes (the task is cancelled, Ctrl-C), the
    /// partial file is removed as well.
    ///
    /// # Errors
    /// As [`CdnClient::download_to_writer`], and [`CdnErrorKind::Integrity`].
    pub async fn download_url_to_file_checked(
        &self,
        url: &str,
        key: Option<&MediaKey>,
        path: &Path,
        progress: Option<ProgressFn>,
        expected: Expected,
    ) -> Result<Downloaded, CdnError> {
        let mut part = path.as_os_str().to_owned();
        part.push(".part");
        let part = std::path::PathBuf::from(part);
        let file = tokio::fs::File::create(&part)
            .await
            .map_err(|e| io_error("cannot create", &part, e))?;
        // Removes the partial file unless disarmed: on error, and when this future is dropped.
        let mut guard = PartGuard(Some(part.clone()));
        let mut writer = tokio::io::BufWriter::with_capacity(READ_CHUNK, file);
        let result = async {
            let done = self
                .fetch(url, key, Sink::Writer(&mut writer), progress, expected)
                .await?;
            writer
                .flush()
                .await
                .map_err(|e| io_error("cannot write", &part, e))?;
            writer
                .get_mut()
                .sync_all()
                .await
                .map_err(|e| io_error("cannot write", &part, e))?;
            tokio::fs::rename(&part, path)
                .await
                .map_err(|e| io_error("cannot rename the download to", path, e))?;
            Ok(done)
        }
        .await;
        drop(writer);
        if result.is_ok() {
            guard.0 = None;
        }
        drop(guard);
        result
    }

    async fn fetch(
        &self,
        url: &str,
        key: Option<&MediaKey>,
        mut sink: Sink<'_>,
        progress: Option<ProgressFn>,
        expected: Expected,
    ) -> Result<Downloaded, CdnError> {
        let mut checker = Checker::new(expected);
        let cap = self.config.max_download_bytes;
        let body_cap = if key.is_some() {
            ciphertext_len(cap)
        } else {
            cap
        };
        let too_large = || {
            CdnError::new(
                CdnErrorKind::TooLarge,
                format!(
                    "the media is larger than the download cap of {cap} bytes; reading stopped \
                     (raise CdnConfig::max_download_bytes if this size is expected)"
                ),
            )
        };
        let resp = self
            .http
            .request(Request::get(url).max_body(body_cap))
            .await
            .map_err(|e| http_error("the CDN download request failed", e))?;
        let status = resp.status.as_u16();
        if !resp.status.is_success() {
            let text = error_text(resp).await;
            return Err(CdnError::new(
                CdnErrorKind::DownloadFailed,
                format!("the CDN answered the download with HTTP {status}: {text}"),
            )
            .with_status(status));
        }
        let mut body = resp.body;
        let total = body.exact_len();
        if total.is_some_and(|n| n > body_cap) {
            return Err(too_large());
        }
        if let Some(n) = total {
            checker.check_body_len(n, key.is_some())?;
        }
        let mut decryptor = key.map(Decryptor::new);
        let mut scratch = Vec::new();
        let mut head: Vec<u8> = Vec::new();
        let mut written: u64 = 0;
        if let (Sink::Vec(v), Some(n)) = (&mut sink, total) {
            // The announced length is within the cap, checked above.
            v.reserve(usize::try_from(n).unwrap_or(0));
        }
        loop {
            let chunk = match body.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) if e.kind() == HttpErrorKind::BodyTooLarge => return Err(too_large()),
                Err(e) => return Err(http_error("reading the CDN download failed", e)),
            };
            if let Some(p) = &progress {
                p(Progress {
                    done: body.bytes_read(),
                    total,
                });
            }
            written += emit(
                &mut sink,
                &mut decryptor,
                &mut scratch,
                &mut head,
                &mut checker,
                &chunk,
            )
            .await?;
        }
        if let Some(dec) = decryptor.take() {
            scratch.clear();
            let out: &mut Vec<u8> = match &mut sink {
                Sink::Vec(v) => v,
                Sink::Writer(_) => &mut scratch,
            };
            let before = out.len();
            dec.finish(out).map_err(|e| {
                CdnError::new(
                    CdnErrorKind::Decrypt,
                    "the downloaded media could not be decrypted",
                )
                .with_source(e)
            })?;
            let tail = out.get(before..).unwrap_or_default();
            checker.update(tail)?;
            remember_head(&mut head, tail);
            written += tail.len() as u64;
            if let Sink::Writer(w) = &mut sink {
                write_all(w, &scratch).await?;
            }
        }
        if written > cap {
            return Err(too_large());
        }
        checker.finish()?;
        if let Sink::Vec(v) = &sink {
            head = v.get(..SNIFF_LEN).unwrap_or(v).to_vec();
        }
        Ok(Downloaded {
            len: written,
            format: sniff(&head),
        })
    }
}

fn remember_head(head: &mut Vec<u8>, data: &[u8]) {
    if head.len() < SNIFF_LEN {
        let take = (SNIFF_LEN - head.len()).min(data.len());
        head.extend_from_slice(data.get(..take).unwrap_or_default());
    }
}

async fn write_all(w: &mut (dyn AsyncWrite + Unpin + Send), data: &[u8]) -> Result<(), CdnError> {
    w.write_all(data).await.map_err(|e| {
        CdnError::new(CdnErrorKind::Io, "cannot write the downloaded media").with_source(e)
    })
}

/// Passes one ciphertext (or plain) chunk to the sink; returns plaintext bytes produced.
/// The plaintext is checked before it is written.
async fn emit(
    sink: &mut Sink<'_>,
    decryptor: &mut Option<Decryptor>,
    scratch: &mut Vec<u8>,
    head: &mut Vec<u8>,
    checker: &mut Checker,
    chunk: &[u8],
) -> Result<u64, CdnError> {
    match (sink, decryptor) {
        (Sink::Vec(v), Some(dec)) => {
            let before = v.len();
            dec.update(chunk, v);
            checker.update(v.get(before..).unwrap_or_default())?;
            Ok((v.len() - before) as u64)
        }
        (Sink::Vec(v), None) => {
            checker.update(chunk)?;
            v.extend_from_slice(chunk);
            Ok(chunk.len() as u64)
        }
        (Sink::Writer(w), Some(dec)) => {
            scratch.clear();
            dec.update(chunk, scratch);
            checker.update(scratch)?;
            remember_head(head, scratch);
            write_all(w, scratch).await?;
            Ok(scratch.len() as u64)
        }
        (Sink::Writer(w), None) => {
            checker.update(chunk)?;
            remember_head(head, chunk);
            write_all(w, chunk).await?;
            Ok(chunk.len() as u64)
        }
    }
}

/// Removes a partial download file when dropped armed (on error or cancellation).
struct PartGuard(Option<std::path::PathBuf>);

impl Drop for PartGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            // Synchronous on purpose: it must also run when the future is dropped, where no
            // await is possible. Removing one file is quick.
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The upload body: reads the file in whole chunks, encrypts each in place, pads the last.
struct EncryptStream {
    file: Pin<Box<tokio::fs::File>>,
    cipher: EcbCipher,
    buf: BytesMut,
    filled: usize,
    remaining: u64,
    sent: u64,
    total: u64,
    done: bool,
    progress: Option<ProgressFn>,
    failure: Arc<Mutex<Option<CdnError>>>,
    path: std::path::PathBuf,
}

impl EncryptStream {
    fn new(
        file: tokio::fs::File,
        cipher: EcbCipher,
        rawsize: u64,
        progress: Option<ProgressFn>,
        failure: Arc<Mutex<Option<CdnError>>>,
        path: &Path,
    ) -> Self {
        Self {
            file: Box::pin(file),
            cipher,
            buf: BytesMut::new(),
            filled: 0,
            remaining: rawsize,
            sent: 0,
            total: ciphertext_len(rawsize),
            done: false,
            progress,
            failure,
            path: path.to_path_buf(),
        }
    }

    fn fail(&mut self, err: CdnError) -> Poll<Option<io::Result<Bytes>>> {
        self.done = true;
        let msg = err.to_string();
        if let Ok(mut slot) = self.failure.lock() {
            *slot = Some(err);
        }
        Poll::Ready(Some(Err(io::Error::other(msg))))
    }

    fn changed(&mut self) -> Poll<Option<io::Result<Bytes>>> {
        let err = CdnError::new(
            CdnErrorKind::SourceChanged,
            format!(
                "{} changed size while it was being uploaded; upload it again",
                self.path.display()
            ),
        );
        self.fail(err)
    }
}

impl Stream for EncryptStream {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        // READ_CHUNK is a multiple of 16; 16 more bytes leave room for the padding block.
        if this.filled == 0 {
            this.buf.clear();
            this.buf.resize(READ_CHUNK + 16, 0);
        }
        let mut eof = false;
        while this.filled < READ_CHUNK {
            let Some(dst) = this.buf.get_mut(this.filled..READ_CHUNK) else {
                break;
            };
            let mut rb = ReadBuf::new(dst);
            match ready!(this.file.as_mut().poll_read(cx, &mut rb)) {
                Ok(()) if rb.filled().is_empty() => {
                    eof = true;
                    break;
                }
                Ok(()) => this.filled += rb.filled().len(),
                Err(e) => {
                    let err = io_error("cannot read", &this.path.clone(), e);
                    return this.fail(err);
                }
            }
        }
        let n = this.filled;
        this.filled = 0;
        if n as u64 > this.remaining || (eof && n as u64 != this.remaining) {
            return this.changed();
        }
        this.remaining -= n as u64;
        let out_len = if eof {
            this.done = true;
            match this.cipher.encrypt_padded_in_place(&mut this.buf, n) {
                Ok(ct) => ct.len(),
                Err(e) => {
                    let err = CdnError::new(CdnErrorKind::Io, "encryption failed").with_source(e);
                    return this.fail(err);
                }
            }
        } else {
            let Some(block) = this.buf.get_mut(..n) else {
                return this.changed();
            };
            if let Err(e) = this.cipher.encrypt_blocks(block) {
                let err = CdnError::new(CdnErrorKind::Io, "encryption failed").with_source(e);
                return this.fail(err);
            }
            n
        };
        let chunk = this.buf.split_to(out_len).freeze();
        this.sent += out_len as u64;
        if let Some(p) = &this.progress {
            p(Progress {
                done: this.sent,
                total: Some(this.total),
            });
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}
