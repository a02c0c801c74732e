//! Request and response bodies.

use std::fmt;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;

use crate::error::{BoxError, ErrorKind, HttpError, RequestBodyFailure};

/// A stream of request body chunks.
pub type ChunkStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// The body of a [`Request`](crate::Request): nothing, bytes in memory, or a stream (for
/// uploads in constant memory).
pub struct RequestBody {
    inner: ReqInner,
}

enum ReqInner {
    Empty,
    Full(Option<Bytes>),
    Stream {
        stream: ChunkStream,
        len: Option<u64>,
    },
}

impl RequestBody {
    /// No body.
    pub fn empty() -> Self {
        Self {
            inner: ReqInner::Empty,
        }
    }

    /// A body held in memory.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        Self {
            inner: ReqInner::Full(Some(bytes.into())),
        }
    }

    /// A streamed body. With `len`, a `Content-Length` header is sent and the stream must yield
    /// exactly that many bytes; without it, the body is sent with chunked transfer encoding.
    pub fn stream<S>(stream: S, len: Option<u64>) -> Self
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        Self {
            inner: ReqInner::Stream {
                stream: Box::pin(stream),
                len,
            },
        }
    }

    /// A body read from an async reader in chunks of `chunk_size` bytes (64 KiB if 0).
    /// See [`RequestBody::stream`] for `len`.
    pub fn reader<R>(reader: R, len: Option<u64>, chunk_size: usize) -> Self
    where
        R: AsyncRead + Send + 'static,
    {
        let chunk_size = if chunk_size == 0 {
            64 * 1024
        } else {
            chunk_size
        };
        Self::stream(
            ReaderStream {
                reader: Box::pin(reader),
                buf: BytesMut::new(),
                chunk_size,
                done: false,
            },
            len,
        )
    }

    /// The exact length, when known.
    pub fn len(&self) -> Option<u64> {
        match &self.inner {
            ReqInner::Empty => Some(0),
            ReqInner::Full(b) => Some(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReqInner::Stream { len, .. } => *len,
        }
    }

    /// True when the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            ReqInner::Empty => f.write_str("RequestBody::Empty"),
            ReqInner::Full(b) => write!(
                f,
                "RequestBody::Bytes({} bytes)",
                b.as_ref().map_or(0, Bytes::len)
            ),
            ReqInner::Stream { len, .. } => write!(f, "RequestBody::Stream(len: {len:?})"),
        }
    }
}

impl From<Vec<u8>> for RequestBody {
    fn from(v: Vec<u8>) -> Self {
        Self::bytes(v)
    }
}

impl From<Bytes> for RequestBody {
    fn from(v: Bytes) -> Self {
        Self::bytes(v)
    }
}

impl From<String> for RequestBody {
    fn from(v: String) -> Self {
        Self::bytes(v)
    }
}

impl From<&'static str> for RequestBody {
    fn from(v: &'static str) -> Self {
        Self::bytes(Bytes::from_static(v.as_bytes()))
    }
}

/// Adapts a `RequestBody` to hyper's body trait (kept private so hyper stays out of the API).
pub(crate) struct HyperReqBody(pub(crate) RequestBody);

impl HttpBody for HyperReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match &mut this.0.inner {
            ReqInner::Empty => Poll::Ready(None),
            ReqInner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqInner::Stream { stream, .. } => match ready!(stream.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                Some(Err(e)) => Poll::Ready(Some(Err(Box::new(RequestBodyFailure(e))))),
                None => Poll::Ready(None),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0.inner {
            ReqInner::Empty => true,
            ReqInner::Full(b) => b.is_none(),
            ReqInner::Stream { len, .. } => *len == Some(0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.0.len() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

struct ReaderStream {
    reader: Pin<Box<dyn AsyncRead + Send>>,
    buf: BytesMut,
    chunk_size: usize,
    done: bool,
}

impl Stream for ReaderStream {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.buf.capacity() < this.chunk_size {
            this.buf.reserve(this.chunk_size);
        }
        this.buf.resize(this.chunk_size, 0);
        let mut rb = ReadBuf::new(&mut this.buf[..]);
        let res = ready!(this.reader.as_mut().poll_read(cx, &mut rb));
        let filled = rb.filled().len();
        match res {
            Ok(()) if filled == 0 => {
                this.done = true;
                this.buf = BytesMut::new();
                Poll::Ready(None)
            }
            Ok(()) => {
                this.buf.truncate(filled);
                Poll::Ready(Some(Ok(this.buf.split().freeze())))
            }
            Err(e) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

/// The body of a [`Response`](crate::Response), read as a stream of chunks. Reading honours the
/// request's deadline and the body cap: past the cap it fails with
/// [`ErrorKind::BodyTooLarge`] without reading further.
///
/// `Body` implements [`Stream`] of `Result<Bytes, HttpError>`; or call [`Body::chunk`] in a loop,
/// or [`Body::collect`] / [`Body::collect_capped`] for the whole body in memory.
pub struct Body {
    incoming: Option<Incoming>,
    deadline: Option<Pin<Box<Sleep>>>,
    limit: u64,
    read: u64,
    context: String,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("limit", &self.limit)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl Body {
    pub(crate) fn new(
        incoming: Incoming,
        deadline: Option<Pin<Box<Sleep>>>,
        limit: u64,
        context: String,
    ) -> Self {
        Self {
            incoming: Some(incoming),
            deadline,
            limit,
            read: 0,
            context,
        }
    }

    /// The body cap in bytes for this response.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Lower the body cap (a higher value than the current one is ignored).
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = self.limit.min(limit);
    }

    /// The number of body bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The exact body length announced by the server, if any.
    pub fn exact_len(&self) -> Option<u64> {
        self.incoming.as_ref().and_then(|b| b.size_hint().exact())
    }

    /// The next chunk, or `None` at the end of the body.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx))
            .await
            .transpose()
    }

    /// Read the whole body into memory, up to the body cap.
    pub async fn collect(self) -> Result<Bytes, HttpError> {
        let limit = self.limit;
        self.collect_capped(limit).await
    }

    /// Read the whole body into memory, failing with [`ErrorKind::BodyTooLarge`] past `max`
    /// bytes (or past the body cap, if lower).
    pub async fn collect_capped(mut self, max: u64) -> Result<Bytes, HttpError> {
        self.set_limit(max);
        let mut first: Option<Bytes> = None;
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            if first.is_none() && buf.is_empty() {
                first = Some(chunk);
                continue;
            }
            if let Some(f) = first.take() {
                buf.extend_from_slice(&f);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(match first {
            Some(f) => f,
            None => buf.freeze(),
        })
    }

    fn too_large(&self) -> HttpError {
        HttpError::msg(
            ErrorKind::BodyTooLarge,
            format!("the body exceeds the cap of {} bytes", self.limit),
        )
        .with_context(self.context.clone())
    }
}

impl Stream for Body {
    type Item = Result<Bytes, HttpError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(incoming) = this.incoming.as_mut() else {
            return Poll::Ready(None);
        };
        if this.read == 0
            && let Some(n) = incoming.size_hint().exact()
            && n > this.limit
        {
            this.incoming = None;
            return Poll::Ready(Some(Err(this.too_large())));
        }
        if let Some(sleep) = this.deadline.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            this.incoming = None;
            return Poll::Ready(Some(Err(HttpError::msg(
                ErrorKind::Timeout,
                "the deadline passed while reading the response body",
            )
            .with_context(this.context.clone()))));
        }
        loop {
            let Some(incoming) = this.incoming.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(Pin::new(incoming).poll_frame(cx)) {
                None => {
                    this.incoming = None;
                    return Poll::Ready(None);
                }
                Some(Err(e)) => {
                    this.incoming = None;
                    let err = crate::error::classify(Box::new(e), false)
                        .with_context(this.context.clone());
                    return Poll::Ready(Some(Err(err)));
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers: ignored
                    };
                    this.read = this.read.saturating_add(data.len() as u64);
                    if this.read > this.limit {
                        this.incoming = None;
                        return Poll::Ready(Some(Err(this.too_large())));
                    }
                    if data.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
            }
        }
    }
}
