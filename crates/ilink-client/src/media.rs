//! Media: send images, video, files and voice; download inbound media (docs/protocol.md §9, §12,
//! §13), on top of `ilink-cdn`.

use std::path::Path;

use std::fmt;

use ilink_cdn::{MediaFormat, MediaKind, MediaSource, PreparedUpload, ProgressFn, UploadedMedia};
use ilink_crypto::MediaKey;
use ilink_proto::{CdnMedia, GetUploadUrlResponse, MessageItem, Secret, UploadMediaType};

use crate::account::Account;
use crate::error::{Error, ErrorKind, Result};
use crate::handler::MessageContext;
use crate::send::{MediaProblem, SendError, SendErrorKind, SendOutcome};
use crate::updates::InboundMessage;

/// How an outbound media file is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaType {
    /// An IMAGE item.
    Image,
    /// A VIDEO item.
    Video,
    /// A FILE item (any document; audio too, as the official client sends it).
    File,
    /// A VOICE item: any common audio file, converted to SILK (feature `voice`).
    #[cfg(feature = "voice")]
    #[cfg_attr(docsrs, doc(cfg(feature = "voice")))]
    Voice,
}

impl MediaType {
    /// What the type is called in messages.
    fn noun(self) -> &'static str {
        match self {
            Self::Image => "an image",
            Self::Video => "a video",
            Self::File => "a file",
            #[cfg(feature = "voice")]
            Self::Voice => "a voice message",
        }
    }
}

/// 100 MiB: the default limit of every kind.
const DEFAULT_MEDIA_LIMIT: u64 = 100 * 1024 * 1024;

/// The largest media accepted per kind, in bytes of the source (for voice: of the audio file
/// before it is made into SILK). Checked before anything is uploaded, so nothing is uploaded
/// only to be refused.
///
/// No per-kind limit of the live server is documented or reported. The default, 100 MiB
/// for every kind, is the one size the official client names (`WEIXIN_MEDIA_MAX_BYTES`,
/// its cap on media it stores, docs/protocol.md §12.3), and stays below what ilink-sim's CDN
/// accepts (110 MiB of ciphertext). A stated guess: lower it if the server refuses less.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaLimits {
    /// IMAGE items. Default 100 MiB.
    pub image: u64,
    /// VIDEO items. Default 100 MiB.
    pub video: u64,
    /// FILE items. Default 100 MiB.
    pub file: u64,
    /// The audio a VOICE item is made from. Default 100 MiB.
    pub voice: u64,
}

impl Default for MediaLimits {
    fn default() -> Self {
        Self {
            image: DEFAULT_MEDIA_LIMIT,
            video: DEFAULT_MEDIA_LIMIT,
            file: DEFAULT_MEDIA_LIMIT,
            voice: DEFAULT_MEDIA_LIMIT,
        }
    }
}

impl MediaLimits {
    /// The same limit for every kind.
    pub fn all(bytes: u64) -> Self {
        Self {
            image: bytes,
            video: bytes,
            file: bytes,
            voice: bytes,
        }
    }

    /// The limit for `media_type`.
    pub fn for_type(&self, media_type: MediaType) -> u64 {
        match media_type {
            MediaType::Image => self.image,
            MediaType::Video => self.video,
            MediaType::File => self.file,
            #[cfg(feature = "voice")]
            MediaType::Voice => self.voice,
        }
    }
}

/// Media that passed [`Account::check_media`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckedMedia {
    /// The type it will be sent as (the declared one, or the one its content chose).
    pub media_type: MediaType,
    /// Its size in bytes.
    pub len: u64,
    /// Its format, sniffed from the first bytes, if recognised.
    pub format: Option<MediaFormat>,
}

/// A size for messages: `5000 bytes`, or `120.0 MiB (125829120 bytes)`.
fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB {
        format!("{:.1} MiB ({bytes} bytes)", bytes as f64 / MIB as f64)
    } else {
        format!("{bytes} bytes")
    }
}

fn source_name(source: &MediaSource) -> String {
    match source {
        MediaSource::File(p) => p.display().to_string(),
        MediaSource::Bytes(_) => "the media".to_owned(),
    }
}

fn content_text(format: Option<MediaFormat>) -> String {
    match format {
        Some(f) => format!(
            "its content is {} ({})",
            f.extension().to_uppercase(),
            f.mime()
        ),
        None => "its content is not a recognised media format".to_owned(),
    }
}

/// The checks of [`Account::check_media`], on a probe already made.
fn check_probe(
    name: &str,
    len: u64,
    format: Option<MediaFormat>,
    declared: Option<MediaType>,
    limits: &MediaLimits,
) -> Result<CheckedMedia, SendError> {
    let media_type = match declared {
        Some(t) => t,
        None => match format.map(MediaFormat::kind) {
            Some(MediaKind::Image) if format.is_some_and(MediaFormat::is_chat_image) => {
                MediaType::Image
            }
            Some(MediaKind::Video) if format.is_some_and(MediaFormat::is_chat_video) => {
                MediaType::Video
            }
            _ => MediaType::File,
        },
    };
    if len == 0 {
        return Err(SendError::bad_media(
            MediaProblem::Empty,
            format!("{name} is empty (0 bytes): there is nothing to send"),
            None,
        ));
    }
    let limit = limits.for_type(media_type);
    if len > limit {
        return Err(SendError::bad_media(
            MediaProblem::TooLarge,
            format!(
                "{name} is {}, more than the {} allowed for {}; nothing was uploaded",
                size_text(len),
                size_text(limit),
                media_type.noun()
            ),
            None,
        ));
    }
    let fits = match media_type {
        MediaType::Image => format.is_some_and(MediaFormat::is_chat_image),
        MediaType::Video => format.is_some_and(MediaFormat::is_chat_video),
        MediaType::File => true,
        #[cfg(feature = "voice")]
        MediaType::Voice => format.is_some_and(MediaFormat::is_voice_source),
    };
    if !fits {
        let message = match media_type {
            MediaType::Image => format!(
                "{name} is not an image WeChat shows (JPEG, PNG, GIF, WebP or BMP): {}",
                content_text(format)
            ),
            MediaType::Video => format!(
                "{name} is not a video WeChat plays (MP4 or MOV): {}",
                content_text(format)
            ),
            _ => format!(
                "cannot make {name} into a voice message: the audio could not be read (WAV, MP3, \
                 Ogg, FLAC, AAC/M4A or SILK expected; {})",
                content_text(format)
            ),
        };
        return Err(SendError::bad_media(
            MediaProblem::WrongFormat,
            message,
            None,
        ));
    }
    Ok(CheckedMedia {
        media_type,
        len,
        format,
    })
}

fn cdn_error(what: &str, e: ilink_cdn::CdnError) -> Error {
    Error::new(ErrorKind::Media, what.to_owned()).with_source(e)
}

fn upload_error(e: Error) -> SendError {
    SendError::from_error(e).with_kind(SendErrorKind::Upload)
}

/// The media of an inbound item and the key that decrypts it (see [`crate::download`]).
fn item_media_and_key(item: &MessageItem) -> Result<(&CdnMedia, Option<MediaKey>)> {
    let key = crate::download::media_key(item)?;
    let media = item.media().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            "this item has no downloadable media",
        )
    })?;
    Ok((media, key))
}

impl InboundMessage {
    /// The media item the official client would download (docs/protocol.md §8.4): the first
    /// downloadable item by priority IMAGE > VIDEO > FILE > VOICE (a voice item with a
    /// transcript is skipped), else the media of a quoted message. See
    /// [`download::media_item`](crate::download::media_item).
    pub fn media_item(&self) -> Option<&MessageItem> {
        crate::download::media_item(self.items())
    }
}

impl Account {
    /// The CDN client of this account's [`Client`](crate::Client) (shares its connections).
    pub fn cdn(&self) -> &ilink_cdn::CdnClient {
        &self.shared().cdn
    }

    /// Check `source` before it is uploaded, as every media send does: it can be read, it is
    /// not empty, it is within [`ClientConfig::media_limits`](crate::ClientConfig::media_limits)
    /// for its type, and its content (sniffed from the first bytes) fits the type: an IMAGE
    /// must be an image WeChat shows ([`MediaFormat::is_chat_image`]), a VIDEO a video it
    /// plays ([`MediaFormat::is_chat_video`]), a VOICE audio that can be decoded
    /// ([`MediaFormat::is_voice_source`]); a FILE may hold anything. With `media_type`
    /// `None` the type follows the content (images and videos WeChat shows as such,
    /// everything else as FILE). Reads only the size and the first 4 KiB.
    ///
    /// # Errors
    /// [`SendErrorKind::BadMedia`] with the [`MediaProblem`].
    pub async fn check_media(
        &self,
        source: &MediaSource,
        media_type: Option<MediaType>,
    ) -> Result<CheckedMedia, SendError> {
        let name = source_name(source);
        // The I/O error says what could not be read and why; nothing more to add.
        let probe = source
            .probe()
            .await
            .map_err(|e| SendError::bad_media(MediaProblem::Unreadable, e.to_string(), None))?;
        check_probe(
            &name,
            probe.len,
            probe.format,
            media_type,
            &self.shared().config.media_limits,
        )
    }

    /// Upload `source` for `user` (getuploadurl with the user's `context_token`, then the CDN
    /// POST with retries) and return what the sendmessage item needs. Most callers use
    /// [`Account::send_media`] instead. The source is not checked against a media type
    /// (see [`Account::check_media`]); only an empty source or one above the file limit is
    /// refused.
    ///
    /// # Errors
    /// As a media send: [`SendErrorKind::NoContextToken`] before anything is read, a refused
    /// grant as a refused sendmessage, [`SendErrorKind::Upload`] when the CDN failed.
    pub async fn upload_media(
        &self,
        user: &str,
        source: MediaSource,
        media_type: UploadMediaType,
    ) -> Result<UploadedMedia, SendError> {
        let token = self.precheck(user, None)?;
        self.check_media(&source, Some(MediaType::File)).await?;
        let prepared = PreparedUpload::prepare(source, media_type)
            .await
            .map_err(|e| upload_error(cdn_error("reading the media", e)))?;
        self.upload_prepared(user, &prepared, &token, None).await
    }

    /// getuploadurl (with the chat's `context_token` unless
    /// [`ClientConfig::upload_context_token`](crate::ClientConfig::upload_context_token) is
    /// off), then the CDN upload. A grant refused with a code is judged like a refused
    /// sendmessage (docs/protocol.md §12.1 \[obs\]).
    async fn upload_prepared(
        &self,
        user: &str,
        prepared: &PreparedUpload,
        token: &Secret,
        progress: Option<ProgressFn>,
    ) -> Result<UploadedMedia, SendError> {
        let shared = self.shared();
        let mut req = prepared.get_upload_url_request(user, shared.transport.base_info());
        if shared.config.upload_context_token {
            req = req.with_context_token(token.clone());
        }
        // Judged by the request path: a refusal or no upload target is an error. A refusal
        // maps to the same `SendError` kinds as a refused sendmessage.
        let resp: GetUploadUrlResponse = self.call(&req).await.map_err(|e| match e.api_error() {
            Some(api) => {
                tracing::debug!(account = %self.id(), code = ?api.code(), "getuploadurl refused");
                SendError::grant_refused(api)
            }
            None => upload_error(e),
        })?;
        shared
            .cdn
            .upload(prepared, &resp, progress)
            .await
            .map_err(|e| upload_error(cdn_error("uploading to the CDN", e)))
    }

    /// Send an image.
    pub async fn send_image(
        &self,
        user: &str,
        source: impl Into<MediaSource>,
    ) -> Result<SendOutcome, SendError> {
        self.send_one(user, source.into(), MediaType::Image, None)
            .await
    }

    /// Send a video.
    pub async fn send_video(
        &self,
        user: &str,
        source: impl Into<MediaSource>,
    ) -> Result<SendOutcome, SendError> {
        self.send_one(user, source.into(), MediaType::Video, None)
            .await
    }

    /// Send a file. Its name is the file's name, or `file_name` for bytes (default `file`).
    pub async fn send_file(
        &self,
        user: &str,
        source: impl Into<MediaSource>,
        file_name: Option<&str>,
    ) -> Result<SendOutcome, SendError> {
        self.send_one(user, source.into(), MediaType::File, file_name)
            .await
    }

    /// Send a voice message made from any common audio file (WAV, MP3, Ogg, FLAC, AAC/M4A, or
    /// SILK): converted to 24 kHz SILK with one `0x02` prefix, sent with its `playtime`.
    #[cfg(feature = "voice")]
    #[cfg_attr(docsrs, doc(cfg(feature = "voice")))]
    pub async fn send_voice(
        &self,
        user: &str,
        source: impl Into<MediaSource>,
    ) -> Result<SendOutcome, SendError> {
        self.send_one(user, source.into(), MediaType::Voice, None)
            .await
    }

    async fn send_one(
        &self,
        user: &str,
        source: MediaSource,
        media_type: MediaType,
        file_name: Option<&str>,
    ) -> Result<SendOutcome, SendError> {
        let mut send = self.media(user, source).media_type(media_type);
        if let Some(n) = file_name {
            send = send.file_name(n);
        }
        send.send_one().await
    }

    /// Set up a media send to `user` with more options than the `send_*` methods: the media
    /// type, a file name, a caption, and an upload progress callback. Nothing is sent until
    /// [`MediaSend::send`] is awaited.
    ///
    /// ```no_run
    /// # async fn demo(account: ilink_client::Account) -> Result<(), ilink_client::SendError> {
    /// use std::sync::Arc;
    /// use ilink_client::{MediaType, cdn::Progress};
    /// account
    ///     .media("o9abc@im.wechat", std::path::PathBuf::from("report.pdf"))
    ///     .media_type(MediaType::File)
    ///     .progress(Arc::new(|p: Progress| eprintln!("{} of {:?} bytes", p.done, p.total)))
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn media(&self, user: &str, source: impl Into<MediaSource>) -> MediaSend<'_> {
        MediaSend {
            account: self,
            user: user.to_owned(),
            source: source.into(),
            opts: MediaOpts::default(),
        }
    }

    /// Read media from `reader` (a socket, a pipe, an HTTP body, stdin: anything that can be
    /// read only once) into a [`MediaSource`] that every `send_*` and `reply_*` method takes.
    /// The reader is read to its end into memory, because the upload needs the size and MD5
    /// first; at most [`ClientConfig::max_media_bytes`](crate::ClientConfig::max_media_bytes)
    /// (100 MiB by default), and reading stops as soon as more arrives.
    ///
    /// # Errors
    /// [`SendErrorKind::Upload`] when the reader fails or holds more than the cap (nothing
    /// was sent).
    pub async fn media_from_reader<R>(&self, reader: R) -> Result<MediaSource, SendError>
    where
        R: tokio::io::AsyncRead + Unpin + Send,
    {
        MediaSource::from_reader(reader, self.shared().config.max_media_bytes)
            .await
            .map_err(|e| upload_error(cdn_error("reading the media", e)))
    }

    /// Send media read from `reader` (see [`Account::media_from_reader`]) as `media_type`;
    /// `file_name` names a [`MediaType::File`] (default `file`). Whether `user` can be reached
    /// (a context token) is checked before the reader is touched.
    ///
    /// ```no_run
    /// # async fn demo(account: ilink_client::Account) -> Result<(), ilink_client::SendError> {
    /// use ilink_client::MediaType;
    /// let (mut tx, rx) = tokio::io::duplex(64 * 1024);
    /// tokio::spawn(async move {
    ///     use tokio::io::AsyncWriteExt as _;
    ///     let _ = tx.write_all(b"%PDF-1.4 ...").await; // e.g. a document being generated
    /// });
    /// account
    ///     .send_media_from_reader("o9abc@im.wechat", rx, MediaType::File, Some("report.pdf"))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_media_from_reader<R>(
        &self,
        user: &str,
        reader: R,
        media_type: MediaType,
        file_name: Option<&str>,
    ) -> Result<SendOutcome, SendError>
    where
        R: tokio::io::AsyncRead + Unpin + Send,
    {
        let send = async {
            let token = self.precheck(user, None)?;
            let source = self.media_from_reader(reader).await?;
            let opts = MediaOpts {
                media_type: Some(media_type),
                file_name: Some(file_name.unwrap_or("file").to_owned()),
                token: Some(token),
                ..MediaOpts::default()
            };
            self.send_media_inner(user, source, &opts).await
        };
        crate::metrics::replied(send.await)
    }

    /// Send media with an optional caption, as the official client does: the caption first as
    /// its own text message, then the media item. The media type follows the content (sniffed
    /// from its first bytes): images as IMAGE, video as VIDEO, everything else as FILE.
    /// Returns the outcomes in order (caption chunks, then the media).
    pub async fn send_media(
        &self,
        user: &str,
        source: impl Into<MediaSource>,
        caption: Option<&str>,
    ) -> Result<Vec<SendOutcome>, SendError> {
        let mut send = self.media(user, source);
        if let Some(c) = caption {
            send = send.caption(c);
        }
        send.send().await
    }

    async fn send_media_in_turn(
        &self,
        user: &str,
        source: MediaSource,
        opts: &MediaOpts,
    ) -> Result<Vec<SendOutcome>, SendError> {
        let mut sent = Vec::new();
        let run_id = opts.run_id.as_deref();
        if let Some(c) = opts.caption.as_deref().filter(|c| !c.trim().is_empty()) {
            // Fail before anything is sent or uploaded if the user cannot be reached or the
            // media would be refused.
            self.precheck(user, opts.token.clone())?;
            self.check_media(&source, opts.media_type).await?;
            sent = self
                .send_text_in_turn(user, c, opts.token.clone(), run_id)
                .await?;
        }
        match self.send_media_inner(user, source, opts).await {
            Ok(o) => {
                sent.push(o);
                Ok(sent)
            }
            Err(e) => Err(e.with_sent(sent)),
        }
    }

    async fn send_media_inner(
        &self,
        user: &str,
        source: MediaSource,
        opts: &MediaOpts,
    ) -> Result<SendOutcome, SendError> {
        let token = self.precheck(user, opts.token.clone())?;
        let checked = self.check_media(&source, opts.media_type).await?;
        let run_id = opts.run_id.as_deref();
        let progress = opts.progress.clone();
        let kind = checked.media_type;
        #[cfg(feature = "voice")]
        if kind == MediaType::Voice {
            let name = source_name(&source);
            let voice = encode_voice(source, &name).await?;
            let prepared =
                PreparedUpload::prepare(MediaSource::bytes(voice.silk), UploadMediaType::Voice)
                    .await
                    .map_err(|e| upload_error(cdn_error("preparing the voice upload", e)))?;
            let up = self
                .upload_prepared(user, &prepared, &token, progress)
                .await?;
            let item = MessageItem::voice(
                up.cdn_media(),
                voice.meta.sample_rate,
                voice.meta.playtime_ms,
            );
            return self
                .send_item_in_turn(user, item, Some(token), run_id)
                .await;
        }
        let upload_type = match kind {
            MediaType::Image => UploadMediaType::Image,
            MediaType::Video => UploadMediaType::Video,
            _ => UploadMediaType::File,
        };
        // A file keeps the name it was given, else the source's own, else `file`.
        let file_name = opts
            .file_name
            .clone()
            .or_else(|| source.file_name())
            .unwrap_or_else(|| "file".to_owned());
        let name = source_name(&source);
        let prepared = PreparedUpload::prepare(source, upload_type)
            .await
            .map_err(|e| upload_error(cdn_error("reading the media", e)))?;
        // The file may have changed since the check: judge what was hashed (and will be sent).
        check_probe(
            &name,
            prepared.rawsize(),
            checked.format,
            Some(kind),
            &self.shared().config.media_limits,
        )?;
        let up = self
            .upload_prepared(user, &prepared, &token, progress)
            .await?;
        let item = match kind {
            MediaType::Image => MessageItem::image(up.cdn_media(), up.filesize),
            MediaType::Video => MessageItem::video(up.cdn_media(), up.filesize),
            _ => MessageItem::file(up.cdn_media(), file_name, up.rawsize),
        };
        self.send_item_in_turn(user, item, Some(token), run_id)
            .await
    }

    /// Download and decrypt the media of an inbound item into memory (up to the media cap,
    /// 100 MiB by default), choosing the key by docs/protocol.md §12.4 and checking the size and
    /// MD5 the item declares ([`download::expected`](crate::download::expected)).
    ///
    /// # Errors
    /// [`ErrorKind::Media`] with an [`ilink_cdn::CdnError`] source; its kind is
    /// [`CdnErrorKind::Integrity`](ilink_cdn::CdnErrorKind::Integrity) when the media contradicts
    /// its declared size or MD5 (a wrong key that passed the padding check).
    pub async fn download(&self, item: &MessageItem) -> Result<Vec<u8>> {
        let (media, key) = item_media_and_key(item)?;
        self.shared()
            .cdn
            .download_checked(media, key.as_ref(), crate::download::expected(item))
            .await
            .map_err(|e| cdn_error("downloading media", e))
    }

    /// Download and decrypt the media of an inbound item into a file, in constant memory, with
    /// the checks of [`Account::download`]. Returns the number of bytes written. On any error
    /// nothing is written at `path` and no partial file is left.
    pub async fn download_to_file(&self, item: &MessageItem, path: &Path) -> Result<u64> {
        let (media, key) = item_media_and_key(item)?;
        self.shared()
            .cdn
            .download_to_file_checked(
                media,
                key.as_ref(),
                path,
                None,
                crate::download::expected(item),
            )
            .await
            .map(|d| d.len)
            .map_err(|e| cdn_error("downloading media", e))
    }

    /// Download an inbound voice item and decode its SILK to a 24 kHz mono WAV file.
    #[cfg(feature = "voice")]
    #[cfg_attr(docsrs, doc(cfg(feature = "voice")))]
    pub async fn download_voice_wav(&self, item: &MessageItem) -> Result<Vec<u8>> {
        let silk = self.download(item).await?;
        tokio::task::spawn_blocking(move || ilink_silk::decode_to_wav(&silk))
            .await
            .map_err(|e| Error::new(ErrorKind::Media, "the voice decoder failed").with_source(e))?
            .map_err(|e| Error::new(ErrorKind::Media, "decoding the voice message").with_source(e))
    }
}

#[cfg(feature = "voice")]
async fn encode_voice(
    source: MediaSource,
    name: &str,
) -> Result<ilink_silk::EncodedVoice, SendError> {
    // The decoder's reason goes into the one message: the error reads once.
    let unreadable = |why: String| {
        SendError::bad_media(
            MediaProblem::Unreadable,
            format!("cannot make {name} into a voice message: the audio could not be read: {why}"),
            None,
        )
    };
    tokio::task::spawn_blocking(move || match source {
        MediaSource::Bytes(b) => {
            ilink_silk::audio_to_voice(&b, ilink_silk::EncodeOptions::default())
        }
        MediaSource::File(p) => {
            ilink_silk::audio_file_to_voice(&p, ilink_silk::EncodeOptions::default())
        }
    })
    .await
    .map_err(|e| unreadable(format!("the voice encoder failed: {e}")))?
    .map_err(|e| unreadable(e.to_string()))
}

/// The options of a media send (see [`MediaSend`]).
#[derive(Clone, Default)]
struct MediaOpts {
    media_type: Option<MediaType>,
    file_name: Option<String>,
    caption: Option<String>,
    token: Option<Secret>,
    run_id: Option<String>,
    progress: Option<ProgressFn>,
}

/// A media send being set up, made by [`Account::media`] (to any reachable user) or
/// [`MessageContext::media`] (a reply in the turn: the message's `context_token` and the
/// turn's `run_id`). Set options, then await [`MediaSend::send`].
#[must_use = "nothing is sent until `.send()` is awaited"]
pub struct MediaSend<'a> {
    account: &'a Account,
    user: String,
    source: MediaSource,
    opts: MediaOpts,
}

impl fmt::Debug for MediaSend<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaSend")
            .field("account", &self.account.id())
            .field("user", &self.user)
            .field("source", &self.source)
            .field("media_type", &self.opts.media_type)
            .field("file_name", &self.opts.file_name)
            .field("caption", &self.opts.caption)
            .field("run_id", &self.opts.run_id)
            .field("progress", &self.opts.progress.is_some())
            .finish_non_exhaustive()
    }
}

impl MediaSend<'_> {
    /// Send as this type instead of following the content (images as IMAGE, video as VIDEO,
    /// everything else as FILE).
    pub fn media_type(mut self, media_type: MediaType) -> Self {
        self.opts.media_type = Some(media_type);
        self
    }

    /// The name a FILE item shows (default: the source file's name, else `file`). Ignored for
    /// other types.
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.opts.file_name = Some(name.into());
        self
    }

    /// A caption, sent first as its own text message, as the official client does.
    pub fn caption(mut self, caption: impl Into<String>) -> Self {
        self.opts.caption = Some(caption.into());
        self
    }

    /// Called as the CDN upload goes: [`Progress::done`](ilink_cdn::Progress::done) counts
    /// ciphertext bytes out of `total` (the encrypted size); a retried upload starts again
    /// from 0. In-memory sources report 0 at the start and the total at the end; file sources
    /// report as they stream. Called from the sending task: keep it cheap.
    pub fn progress(mut self, progress: ProgressFn) -> Self {
        self.opts.progress = Some(progress);
        self
    }

    /// Upload and send: the caption (if any) first, then the media item. Returns the outcomes
    /// in order (caption chunks, then the media).
    ///
    /// # Errors
    /// As [`Account::send_media`]; [`SendErrorKind::Upload`] when the upload failed (nothing
    /// of the media was sent; a caption already sent is in [`SendError::sent`]).
    pub async fn send(self) -> Result<Vec<SendOutcome>, SendError> {
        let r = self
            .account
            .send_media_in_turn(&self.user, self.source, &self.opts)
            .await;
        crate::metrics::replied(r)
    }

    /// Like [`MediaSend::send`] for a send without caption: the one outcome.
    async fn send_one(self) -> Result<SendOutcome, SendError> {
        let r = self
            .account
            .send_media_inner(&self.user, self.source, &self.opts)
            .await;
        crate::metrics::replied(r)
    }
}

impl MessageContext {
    /// Set up a reply with media in this turn (the message's `context_token` and the turn's
    /// `run_id`), with the options of [`MediaSend`]: type, file name, caption, progress.
    pub fn media(&self, source: impl Into<MediaSource>) -> MediaSend<'_> {
        MediaSend {
            account: self.account(),
            user: self.from().to_owned(),
            source: source.into(),
            opts: MediaOpts {
                token: self.message().context_token().cloned(),
                run_id: Some(self.run_id().to_owned()),
                ..MediaOpts::default()
            },
        }
    }

    /// Reply with media and an optional caption (see [`Account::send_media`]).
    pub async fn reply_media(
        &self,
        source: impl Into<MediaSource>,
        caption: Option<&str>,
    ) -> Result<Vec<SendOutcome>, SendError> {
        let mut send = self.media(source);
        if let Some(c) = caption {
            send = send.caption(c);
        }
        send.send().await
    }

    /// Reply with media of a given type (see [`MediaType`]).
    pub async fn reply_media_as(
        &self,
        source: impl Into<MediaSource>,
        media_type: MediaType,
    ) -> Result<SendOutcome, SendError> {
        self.media(source).media_type(media_type).send_one().await
    }

    /// Reply with a FILE item named `file_name` (bytes have no name of their own), in this
    /// turn (its `context_token` and `run_id`).
    pub async fn reply_file(
        &self,
        source: impl Into<MediaSource>,
        file_name: &str,
    ) -> Result<SendOutcome, SendError> {
        self.media(source)
            .media_type(MediaType::File)
            .file_name(file_name)
            .send_one()
            .await
    }

    /// Download the media of this message (see [`InboundMessage::media_item`]).
    pub async fn download_media(&self) -> Result<Option<Vec<u8>>> {
        match self.message().media_item() {
            Some(item) => self.account().download(item).await.map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size_text(5000), "5000 bytes");
        assert_eq!(size_text(120_000_000), "114.4 MiB (120000000 bytes)");
    }

    #[test]
    fn the_type_follows_the_content_when_not_declared() {
        let l = MediaLimits::default();
        let kind = |f: Option<MediaFormat>| check_probe("x", 10, f, None, &l).unwrap().media_type;
        assert_eq!(kind(Some(MediaFormat::Png)), MediaType::Image);
        assert_eq!(kind(Some(MediaFormat::Mp4)), MediaType::Video);
        assert_eq!(kind(Some(MediaFormat::Heic)), MediaType::File);
        assert_eq!(kind(Some(MediaFormat::Mkv)), MediaType::File);
        assert_eq!(kind(Some(MediaFormat::Mp3)), MediaType::File);
        assert_eq!(kind(None), MediaType::File);
    }

    #[test]
    fn limits_are_per_type_and_inclusive() {
        let mut l = MediaLimits::all(100);
        l.image = 10;
        let png = Some(MediaFormat::Png);
        assert!(check_probe("x", 10, png, Some(MediaType::Image), &l).is_ok());
        let e = check_probe("x", 11, png, Some(MediaType::Image), &l).unwrap_err();
        assert_eq!(e.kind(), SendErrorKind::BadMedia(MediaProblem::TooLarge));
        assert!(check_probe("x", 11, png, Some(MediaType::File), &l).is_ok());
        let e = check_probe("x", 0, None, Some(MediaType::File), &l).unwrap_err();
        assert_eq!(e.kind(), SendErrorKind::BadMedia(MediaProblem::Empty));
    }
}
