#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod client;
mod error;
mod integrity;
mod sniff;
mod source;
mod url;

pub use crate::client::{
    CdnClient, CdnConfig, DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_UPLOAD_ATTEMPTS, Downloaded,
    Progress, ProgressFn, UploadedMedia,
};
pub use crate::error::{BoxError, CdnError, CdnErrorKind};
pub use crate::integrity::Expected;
pub use crate::sniff::{MediaFormat, MediaKind, SNIFF_LEN, sniff};
pub use crate::source::{MediaSource, PreparedUpload, Probe};
pub use crate::url::{
    DEFAULT_CDN_BASE_URL, HostAllowlist, built_download_url, encode_uri_component, upload_url,
};
/// The retry delay of uploads (see [`CdnConfig::upload_backoff`]).
pub use ilink_http::Backoff;

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<crate::CdnClient>();
        assert_send_sync::<crate::CdnConfig>();
        assert_send_sync::<crate::CdnError>();
        assert_send_sync::<crate::PreparedUpload>();
        assert_send_sync::<crate::UploadedMedia>();
        assert_send_sync::<crate::MediaSource>();
        assert_send_sync::<crate::HostAllowlist>();
        assert_send_sync::<crate::Expected>();
    }
}
