//! CDN URL rules (docs/protocol.md §12.2, §12.3) and the download host allowlist.

use std::fmt;

use ilink_http::http::Uri;

use crate::error::{CdnError, CdnErrorKind};

/// The default CDN base URL.
pub const DEFAULT_CDN_BASE_URL: &str = "https://novac2c.cdn.weixin.qq.com/c2c";

/// Percent-encodes like JavaScript's `encodeURIComponent` (the official client builds CDN
/// URLs with it); the workspace's one encoder, from `ilink-proto`.
pub use ilink_proto::encode_uri_component;

fn join(base: &str, path_and_query: &str) -> String {
    format!("{}/{path_and_query}", base.trim().trim_end_matches('/'))
}

/// The CDN upload URL (§12.2): `upload_full_url` if non-empty after trimming, else
/// `<cdn_base>/upload?encrypted_query_param=<enc(upload_param)>&filekey=<enc(filekey)>`.
///
/// This is the URL rule alone: it does not check the host of `upload_full_url`.
/// [`CdnClient::upload`](crate::CdnClient::upload) uses
/// [`CdnClient::upload_url`](crate::CdnClient::upload_url), which also applies the
/// [`HostAllowlist`].
///
/// # Errors
/// [`CdnErrorKind::NoUploadTarget`] if both `upload_full_url` and `upload_param` are empty
/// (getuploadurl failed; the official client treats this as the failure of that call).
///
/// ```
/// use ilink_cdn::upload_url;
/// let url = upload_url("https://novac2c.cdn.weixin.qq.com/c2c", None, Some("UPPARAM+/="), "b8cd")?;
/// assert_eq!(
///     url,
///     "https://novac2c.cdn.weixin.qq.com/c2c/upload?encrypted_query_param=UPPARAM%2B%2F%3D&filekey=b8cd"
/// );
/// # Ok::<(), ilink_cdn::CdnError>(())
/// ```
pub fn upload_url(
    cdn_base: &str,
    upload_full_url: Option<&str>,
    upload_param: Option<&str>,
    filekey: &str,
) -> Result<String, CdnError> {
    if let Some(full) = upload_full_url.map(str::trim).filter(|s| !s.is_empty()) {
        return Ok(full.to_owned());
    }
    match upload_param.filter(|s| !s.is_empty()) {
        Some(param) => Ok(join(
            cdn_base,
            &format!(
                "upload?encrypted_query_param={}&filekey={}",
                encode_uri_component(param),
                encode_uri_component(filekey)
            ),
        )),
        None => Err(CdnError::new(
            CdnErrorKind::NoUploadTarget,
            "getuploadurl returned neither upload_full_url nor upload_param; \
             the server refused the upload (check to_user_id and the account's media permission)",
        )),
    }
}

/// The built CDN download URL (§12.3):
/// `<cdn_base>/download?encrypted_query_param=<enc(encrypt_query_param)>`.
#[must_use]
pub fn built_download_url(cdn_base: &str, encrypt_query_param: &str) -> String {
    join(
        cdn_base,
        &format!(
            "download?encrypted_query_param={}",
            encode_uri_component(encrypt_query_param)
        ),
    )
}

/// Hosts that a server-supplied `full_url` (download) or `upload_full_url` (upload) may point
/// at. Transfers to any other host are refused before connecting, so a crafted message or a
/// hostile API server cannot make the bot fetch from or post to arbitrary URLs.
///
/// An entry is a host name or IP (`127.0.0.1`, `novac2c.cdn.weixin.qq.com`), matched exactly
/// and case-insensitively (any port), or `*.suffix`, which matches the suffix's subdomains
/// (not the suffix itself). The default list holds Tencent's media domains; the host of the
/// configured CDN base URL is always allowed as well.
#[derive(Clone, PartialEq, Eq)]
pub struct HostAllowlist {
    entries: Vec<String>,
}

impl fmt::Debug for HostAllowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.entries).finish()
    }
}

impl Default for HostAllowlist {
    fn default() -> Self {
        Self::new(["*.weixin.qq.com", "*.wechat.com", "*.qpic.cn"])
    }
}

impl HostAllowlist {
    /// An allowlist of exactly these entries.
    pub fn new<I, S>(entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Self {
            entries: Vec::new(),
        };
        for e in entries {
            list.add(e.as_ref());
        }
        list
    }

    /// An empty allowlist: only the CDN base host is allowed.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Adds an entry (a host, or `*.suffix`).
    pub fn add(&mut self, entry: &str) -> &mut Self {
        let e = entry
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if !e.is_empty() && !self.entries.contains(&e) {
            self.entries.push(e);
        }
        self
    }

    /// Adds an entry, builder style.
    #[must_use]
    pub fn with(mut self, entry: &str) -> Self {
        self.add(entry);
        self
    }

    /// The entries.
    #[must_use]
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Whether `host` (a bare host name or IP, no port) is allowed.
    #[must_use]
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        self.entries.iter().any(|e| match e.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
            None => *e == host,
        })
    }
}

/// The host of an absolute `http(s)` URL, checked for scheme and shape.
pub(crate) fn url_host(url: &str) -> Result<String, CdnError> {
    let invalid = || {
        CdnError::new(
            CdnErrorKind::InvalidUrl,
            "the media URL is not an absolute http:// or https:// URL",
        )
    };
    let uri: Uri = url.parse().map_err(|_| invalid())?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid());
    }
    // Userinfo (`user@host`) has no place in a CDN URL and is a classic way to disguise the
    // real host; refuse it.
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(invalid());
    }
    uri.host().map(str::to_owned).ok_or_else(invalid)
}

/// Checks a server-supplied `full_url` or `upload_full_url` against the allowlist (plus the
/// CDN base host). `what` names the transfer in the error ("download media from").
pub(crate) fn check_full_url(
    url: &str,
    allowlist: &HostAllowlist,
    cdn_base: &str,
    what: &str,
) -> Result<(), CdnError> {
    let host = url_host(url)?;
    let base_host = url_host(cdn_base).ok();
    let base_ok = base_host.is_some_and(|b| b.eq_ignore_ascii_case(&host));
    if base_ok || allowlist.allows_host(&host) {
        Ok(())
    } else {
        Err(CdnError::new(
            CdnErrorKind::HostNotAllowed,
            format!(
                "refusing to {what} host {host:?}: not on the CDN host allowlist \
                 (add it with HostAllowlist::add if you trust it)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_matches_encode_uri_component() {
        // Values computed with JavaScript's encodeURIComponent.
        assert_eq!(encode_uri_component("UPPARAM+/="), "UPPARAM%2B%2F%3D");
        assert_eq!(encode_uri_component("EQP/+="), "EQP%2F%2B%3D");
        assert_eq!(encode_uri_component("a b&c?d#e"), "a%20b%26c%3Fd%23e");
        assert_eq!(encode_uri_component("-_.!~*'()"), "-_.!~*'()");
        assert_eq!(encode_uri_component("é"), "%C3%A9");
        assert_eq!(encode_uri_component(""), "");
    }

    #[test]
    fn upload_url_rules() {
        let base = "http://127.0.0.1:1/c2c";
        assert_eq!(
            upload_url(base, Some("  https://x/upload?taskid=1 "), Some("P"), "k").unwrap(),
            "https://x/upload?taskid=1"
        );
        assert_eq!(
            upload_url(base, Some("   "), Some("P+"), "k/").unwrap(),
            "http://127.0.0.1:1/c2c/upload?encrypted_query_param=P%2B&filekey=k%2F"
        );
        assert_eq!(
            upload_url("http://h/c2c/", None, Some("P"), "k").unwrap(),
            "http://h/c2c/upload?encrypted_query_param=P&filekey=k"
        );
        let err = upload_url(base, Some(""), Some(""), "k").unwrap_err();
        assert_eq!(err.kind(), CdnErrorKind::NoUploadTarget);
        assert!(upload_url(base, None, None, "k").is_err());
    }

    #[test]
    fn download_url_built() {
        assert_eq!(
            built_download_url(DEFAULT_CDN_BASE_URL, "EQP/+="),
            "https://novac2c.cdn.weixin.qq.com/c2c/download?encrypted_query_param=EQP%2F%2B%3D"
        );
    }

    #[test]
    fn allowlist_matching() {
        let list = HostAllowlist::default().with("127.0.0.1").with("[::1]");
        assert!(list.allows_host("novac2c.cdn.weixin.qq.com"));
        assert!(list.allows_host("NOVAC2C.CDN.WEIXIN.QQ.COM"));
        assert!(list.allows_host("a.weixin.qq.com."));
        assert!(!list.allows_host("weixin.qq.com"));
        assert!(!list.allows_host("evilweixin.qq.com"));
        assert!(!list.allows_host("weixin.qq.com.evil.com"));
        assert!(list.allows_host("127.0.0.1"));
        assert!(list.allows_host("::1"));
        assert!(!list.allows_host("127.0.0.2"));
        assert!(!HostAllowlist::empty().allows_host("a.weixin.qq.com"));
    }

    #[test]
    fn full_url_checks() {
        let base = DEFAULT_CDN_BASE_URL;
        let list = HostAllowlist::default();
        assert!(
            check_full_url(
                "https://novac2c.cdn.weixin.qq.com/c2c/download?x=1",
                &list,
                base,
                "download media from"
            )
            .is_ok()
        );
        let err = check_full_url(
            "http://169.254.169.254/latest",
            &list,
            base,
            "upload media to",
        )
        .unwrap_err();
        assert_eq!(err.kind(), CdnErrorKind::HostNotAllowed);
        assert!(err.to_string().contains("169.254.169.254"));
        assert!(err.to_string().contains("upload media to"), "{err}");
        let err =
            check_full_url("https://a.weixin.qq.com@evil.com/x", &list, base, "x").unwrap_err();
        assert_eq!(err.kind(), CdnErrorKind::InvalidUrl);
        assert_eq!(
            check_full_url("file:///etc/passwd", &list, base, "x")
                .unwrap_err()
                .kind(),
            CdnErrorKind::InvalidUrl
        );
        assert_eq!(
            check_full_url("/relative", &list, base, "x")
                .unwrap_err()
                .kind(),
            CdnErrorKind::InvalidUrl
        );
        // The configured CDN base host is always allowed.
        assert!(
            check_full_url(
                "http://127.0.0.1:9/c2c/download",
                &HostAllowlist::empty(),
                "http://127.0.0.1:9/c2c",
                "x"
            )
            .is_ok()
        );
    }
}
