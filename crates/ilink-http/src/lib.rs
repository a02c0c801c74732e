#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod backoff;
mod body;
mod client;
mod connector;
mod error;

pub use backoff::Backoff;
pub use body::{Body, ChunkStream, RequestBody};
pub use client::{HttpClient, HttpConfig, Proxy, Request, Response};
pub use error::{BoxError, ErrorKind, HttpError};
/// The `http` crate, for [`Method`](http::Method), [`StatusCode`](http::StatusCode) and
/// [`HeaderMap`](http::HeaderMap) as used in this API.
pub use http;

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn public_types_are_send_sync() {
        assert_send_sync::<super::HttpClient>();
        assert_send_sync::<super::HttpConfig>();
        assert_send_sync::<super::HttpError>();
        assert_send_sync::<super::Proxy>();
        assert_send_sync::<super::Backoff>();
    }
    fn assert_send<T: Send>() {}
    #[test]
    fn bodies_are_send() {
        assert_send::<super::Body>();
        assert_send::<super::RequestBody>();
        assert_send::<super::Request>();
        assert_send::<super::Response>();
    }
}
