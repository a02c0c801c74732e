//! Media: send images, video, files and voice; download inbound media (PROTOCOL.md §9, §12,
//! §13), on top of `ilink-cdn`.

use std::path::Path;

use std::fmt;

use ilink_cdn::{MediaKind, MediaSource, PreparedUpload, ProgressFn, UploadedMedia};
use ilink_crypto::MediaKey;
use ilink_proto::{CdnMedia, GetUploadUrlResponse, ItemType, MessageItem, Secret, UploadMediaType};

use crate::account::Account;
use crate::error::{Error, ErrorKind, Result};
use crate::handler::MessageContext;
use crate::send::{SendError, SendErrorKind, SendOutcome};
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

fn cdn_error(what: &str, e: ilink_cdn::CdnError) -> Error {
    Error::new(ErrorKind::Media, what.to_owned()).with_source(e)
}

fn upload_error(e: Error) -> SendError {
    SendError::from_error(e).with_kind(SendErrorKind::Upload)
}

/// Which key decrypts an inbound item's media (PROTOCOL.md §12.4): for images the hex
/// `image_item.aeskey` first, else `media.aes_key` (none: a plain image); for other kinds
/// `media.aes_key`, which is required.
fn item_media_and_key(item: &MessageItem) -> Result<(&CdnMedia, Option<MediaKey>)> {
    let key_err = |e: ilink_crypto::KeyError| {
        Error::new(ErrorKind::Media, "the media key of the item is malformed").with_source(e)
    };
    let media = item.media().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            "this item has no downloadable media",
        )
    })?;
    if item.item_type == ItemType::Image {
        let img = item.image_item.as_ref();
        let key = MediaKey::from_image_item(
            img.and_then(|i| i.aeskey.as_ref()).map(Secret::expose),
            media.aes_key.as_ref().map(Secret::expose),
        )
        .map_err(key_err)?;
        return Ok((media, key));
    }
    let aes = media
        .aes_key
        .as_ref()
        .map(Secret::expose)
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Media,
                "the item has no aes_key; its media cannot be decrypted",
            )
        })?;
    let key = MediaKey::from_cdn_aes_key(aes).map_err(key_err)?;
    Ok((media, Some(key)))
}

impl InboundMessage {
    /// The media item the official client would download (PROTOCOL.md §8.4): the first
    /// downloadable item by priority IMAGE > VIDEO > FILE > VOICE (a voice item with a
    /// transcript is skipped), else the media of a quoted message.
    pub fn media_item(&self) -> Option<&MessageItem> {
        fn pick(items: &[&MessageItem]) -> Option<usize> {
            for wanted in [
                ItemType::Image,
                ItemType::Video,
                ItemType::File,
                ItemType::Voice,
            ] {
                for (i, item) in items.iter().enumerate() {
                    if item.item_type != wanted
                        || !item.media().is_some_and(CdnMedia::is_downloadable)
                    {
                        continue;
                    }
                    if wanted == ItemType::Voice
                        && item
                            .voice_item
                            .as_ref()
                            .and_then(|v| v.text.as_deref())
                            .is_some_and(|t| !t.is_empty())
                    {
                        continue;
                    }
                    return Some(i);
                }
            }
            None
        }
        let own: Vec<&MessageItem> = self.items().iter().collect();
        if let Some(i) = pick(&own) {
            return own.get(i).copied();
        }
        let quoted: Vec<&MessageItem> = self
            .items()
            .iter()
            .filter(|i| i.item_type == ItemType::Text)
            .filter_map(|i| i.ref_msg.as_ref()?.message_item.as_deref())
            .collect();
        pick(&quoted).and_then(|i| quoted.get(i).copied())
    }
}

impl Account {
    /// The CDN client of this account's [`Client`](crate::Client) (shares its connections).
    pub fn cdn(&self) -> &ilink_cdn::CdnClient {
        &self.shared().cdn
    }

    /// Upload `source` for `user` (getuploadurl, then the CDN POST with retries) and return
    /// what the sendmessage item needs. Most callers use [`Account::send_media`] instead.
    pub async fn upload_media(
        &self,
        user: &str,
        source: MediaSource,
        media_type: UploadMediaType,
    ) -> Result<UploadedMedia> {
        let prepared = PreparedUpload::prepare(source, media_type)
            .await
            .map_err(|e| cdn_error("reading the media", e))?;
        self.upload_prepared(user, &prepared, None).await
    }

    async fn upload_prepared(
        &self,
        user: &str,
        prepared: &PreparedUpload,
        progress: Option<ProgressFn>,
    ) -> Result<UploadedMedia> {
        let shared = self.shared();
        let req = prepared.get_upload_url_request(user, shared.transport.base_info());
        // Judged by the request path: a refusal or no upload target is an error.
        let resp: GetUploadUrlResponse = self.call(&req).await?;
        shared
            .cdn
            .upload(prepared, &resp, progress)
            .await
            .map_err(|e| cdn_error("uploading to the CDN", e))
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
        let token = self.precheck(user, None)?;
        let source = self.media_from_reader(reader).await?;
        let opts = MediaOpts {
            media_type: Some(media_type),
            file_name: Some(file_name.unwrap_or("file").to_owned()),
            token: Some(token),
            ..MediaOpts::default()
        };
        self.send_media_inner(user, source, &opts).await
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
            // Fail before anything is sent or uploaded if the user cannot be reached.
            self.precheck(user, opts.token.clone())?;
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
        let run_id = opts.run_id.as_deref();
        let progress = opts.progress.clone();
        let media_type = opts.media_type;
        #[cfg(feature = "voice")]
        if media_type == Some(MediaType::Voice) {
            let voice = encode_voice(source).await?;
            let prepared =
                PreparedUpload::prepare(MediaSource::bytes(voice.silk), UploadMediaType::Voice)
                    .await
                    .map_err(|e| upload_error(cdn_error("preparing the voice upload", e)))?;
            let up = self
                .upload_prepared(user, &prepared, progress)
                .await
                .map_err(upload_error)?;
            let item = MessageItem::voice(
                up.cdn_media(),
                voice.meta.sample_rate,
                voice.meta.playtime_ms,
            );
            return self
                .send_item_in_turn(user, item, Some(token), run_id)
                .await;
        }
        let kind = match media_type {
            Some(k) => k,
            None => match sniff_source(&source).await.map(|f| f.kind()) {
                Some(MediaKind::Image) => MediaType::Image,
                Some(MediaKind::Video) => MediaType::Video,
                _ => MediaType::File,
            },
        };
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
        let prepared = PreparedUpload::prepare(source, upload_type)
            .await
            .map_err(|e| upload_error(cdn_error("reading the media", e)))?;
        let up = self
            .upload_prepared(user, &prepared, progress)
            .await
            .map_err(upload_error)?;
        let item = match kind {
            MediaType::Image => MessageItem::image(up.cdn_media(), up.filesize),
            MediaType::Video => MessageItem::video(up.cdn_media(), up.filesize),
            _ => MessageItem::file(up.cdn_media(), file_name, up.rawsize),
        };
        self.send_item_in_turn(user, item, Some(token), run_id)
            .await
    }

    /// Download and decrypt the media of an inbound item into memory (up to the media cap,
    /// 100 MiB by default), choosing the key by PROTOCOL.md §12.4.
    pub async fn download(&self, item: &MessageItem) -> Result<Vec<u8>> {
        let (media, key) = item_media_and_key(item)?;
        self.shared()
            .cdn
            .download(media, key.as_ref())
            .await
            .map_err(|e| cdn_error("downloading media", e))
    }

    /// Download and decrypt the media of an inbound item into a file, in constant memory.
    /// Returns the number of bytes written.
    pub async fn download_to_file(&self, item: &MessageItem, path: &Path) -> Result<u64> {
        let (media, key) = item_media_and_key(item)?;
        self.shared()
            .cdn
            .download_to_file(media, key.as_ref(), path, None)
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

/// The format of a source from its first bytes (only those are read).
async fn sniff_source(source: &MediaSource) -> Option<ilink_cdn::MediaFormat> {
    match source {
        MediaSource::Bytes(b) => ilink_cdn::sniff(b),
        MediaSource::File(p) => {
            use tokio::io::AsyncReadExt as _;
            let mut f = tokio::fs::File::open(p).await.ok()?;
            let mut head = vec![0u8; ilink_cdn::SNIFF_LEN];
            let mut filled = 0;
            while filled < head.len() {
                match f.read(head.get_mut(filled..)?).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => filled += n,
                }
            }
            ilink_cdn::sniff(head.get(..filled)?)
        }
    }
}

#[cfg(feature = "voice")]
async fn encode_voice(source: MediaSource) -> Result<ilink_silk::EncodedVoice, SendError> {
    let invalid = |e: ilink_silk::SilkError| {
        SendError::from_error(
            Error::new(
                ErrorKind::InvalidInput,
                "the audio cannot be made into a voice message",
            )
            .with_source(e),
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
    .map_err(|e| {
        SendError::from_error(
            Error::new(ErrorKind::Media, "the voice encoder failed").with_source(e),
        )
    })?
    .map_err(invalid)
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
        self.account
            .send_media_in_turn(&self.user, self.source, &self.opts)
            .await
    }

    /// Like [`MediaSend::send`] for a send without caption: the one outcome.
    async fn send_one(self) -> Result<SendOutcome, SendError> {
        self.account
            .send_media_inner(&self.user, self.source, &self.opts)
            .await
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
