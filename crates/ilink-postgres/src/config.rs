//! Connection settings: a `postgres://` URL, the TLS mode and the pool size.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use ilink_client::{Error, ErrorKind, Result};

use crate::error::{PgError, PgErrorKind};

/// The pool size when the URL and the builder name none.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// How long opening one connection may take when the URL names no `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The `application_name` the server shows (`pg_stat_activity`) when the URL names none.
pub const DEFAULT_APPLICATION_NAME: &str = "ilink";
/// The largest `sslrootcert` file read, in bytes.
const MAX_ROOT_CERT_BYTES: u64 = 4 * 1024 * 1024;

/// How the connection is encrypted: the URL's `sslmode`.
///
/// Whenever TLS is used the server's certificate is **verified** (chain and host name): against
/// the file named by `sslrootcert` when the URL gives one, else against the Mozilla roots
/// (`webpki-roots`). That is stricter than libpq's `require`, which encrypts without checking
/// the certificate: a server with a self-signed certificate needs `sslrootcert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsMode {
    /// `sslmode=disable`: plain TCP (or a Unix socket).
    Disable,
    /// `sslmode=prefer` (the default, as in libpq): TLS if the server offers it, else plain.
    /// A server that offers TLS with a certificate that does not verify is an error, not a
    /// fallback to plain text.
    Prefer,
    /// `sslmode=require`, `verify-ca` or `verify-full`: TLS or no connection.
    Require,
}

/// Where and how to connect: parsed from a URL by [`PgConfig::from_url`], adjusted with the
/// builder methods, used by [`PgStore::connect_with`](crate::PgStore::connect_with).
///
/// `Debug` never shows the password (nor the URL it came in).
#[derive(Clone)]
pub struct PgConfig {
    pub(crate) inner: tokio_postgres::Config,
    pub(crate) tls: TlsMode,
    pub(crate) root_cert: Option<PathBuf>,
    pub(crate) pool_size: usize,
}

impl PgConfig {
    /// Parses a connection URL:
    /// `postgres://USER:PASSWORD@HOST:PORT/DBNAME?sslmode=require&sslrootcert=/path/ca.pem`
    /// (also `postgresql://`; the host may be a percent-encoded Unix socket directory, as in
    /// libpq). Every parameter of libpq's URL that `tokio-postgres` knows is accepted
    /// (`connect_timeout`, `application_name`, `options`, `keepalives`, ...), and
    /// `sslrootcert` (a PEM file of CA certificates) and `pool_max_size` (the number of
    /// connections kept; default [`DEFAULT_POOL_SIZE`]). libpq's `key=value` form is accepted
    /// too, without `sslrootcert` and `pool_max_size`.
    ///
    /// Without a password in the URL, `$PGPASSWORD` is used when set (a password on a
    /// command line is visible to other users of the machine in `ps`).
    ///
    /// Errors: [`ErrorKind::InvalidInput`] naming the bad part (never echoing the URL, which
    /// may hold a password).
    pub fn from_url(url: &str) -> Result<PgConfig> {
        let url = url.trim();
        let mut root_cert = None;
        let mut pool_size = DEFAULT_POOL_SIZE;
        let mut verify_mode = None;
        let rest = if let Some((base, query)) = split_url_query(url) {
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                match key {
                    "sslrootcert" => {
                        let path = percent_decode(value).ok_or_else(|| invalid("sslrootcert"))?;
                        root_cert = Some(PathBuf::from(path));
                    }
                    "pool_max_size" => {
                        pool_size = value
                            .parse::<usize>()
                            .ok()
                            .filter(|n| (1..=1024).contains(n))
                            .ok_or_else(|| {
                                config_error("pool_max_size must be a number from 1 to 1024")
                            })?;
                    }
                    // libpq's verifying modes; tokio-postgres knows only disable/prefer/require
                    // (and our TLS always verifies, see TlsMode).
                    "sslmode" if value == "verify-full" || value == "verify-ca" => {
                        verify_mode = Some(TlsMode::Require);
                        kept.push("sslmode=require".to_owned());
                    }
                    "sslmode" if value == "allow" => kept.push("sslmode=prefer".to_owned()),
                    _ => kept.push(pair.to_owned()),
                }
            }
            if kept.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        } else {
            url.to_owned()
        };
        let mut inner = tokio_postgres::Config::from_str(&rest).map_err(|e| {
            // tokio-postgres' parse errors name the option, never its value.
            config_error("the PostgreSQL URL is not valid").with_source(PgError::new(
                PgErrorKind::Config,
                "parsing the URL",
                Some(Box::new(e)),
            ))
        })?;
        if inner.get_hosts().is_empty() {
            return Err(config_error(
                "the PostgreSQL URL names no host (postgres://USER@HOST:PORT/DBNAME)",
            ));
        }
        if inner.get_user().is_none() {
            return Err(config_error(
                "the PostgreSQL URL names no user (postgres://USER@HOST:PORT/DBNAME)",
            ));
        }
        if inner.get_password().is_none()
            && let Some(pw) = std::env::var_os("PGPASSWORD")
            && !pw.is_empty()
        {
            inner.password(pw.as_encoded_bytes());
        }
        if inner.get_application_name().is_none() {
            inner.application_name(DEFAULT_APPLICATION_NAME);
        }
        if inner.get_connect_timeout().is_none() {
            inner.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        let tls = verify_mode.unwrap_or(match inner.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => TlsMode::Disable,
            tokio_postgres::config::SslMode::Require => TlsMode::Require,
            _ => TlsMode::Prefer,
        });
        Ok(PgConfig {
            inner,
            tls,
            root_cert,
            pool_size,
        })
    }

    /// Keep at most `n` connections open (1 or more). One operation of the store uses one
    /// connection for one statement; a bot serving many accounts from one process may want
    /// more than the default [`DEFAULT_POOL_SIZE`].
    #[must_use]
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// How long opening one connection may take (the URL's `connect_timeout`).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.inner.connect_timeout(timeout);
        self
    }

    /// The TLS mode.
    pub fn tls(&self) -> TlsMode {
        self.tls
    }

    /// The pool size.
    pub fn get_pool_size(&self) -> usize {
        self.pool_size
    }

    /// The database name, if the URL names one (else the server uses the user name).
    pub fn dbname(&self) -> Option<&str> {
        self.inner.get_dbname()
    }

    /// The user name.
    pub fn user(&self) -> Option<&str> {
        self.inner.get_user()
    }

    /// Whether a password is configured (from the URL or `$PGPASSWORD`); the password itself
    /// is never shown.
    pub fn has_password(&self) -> bool {
        self.inner.get_password().is_some()
    }

    /// Where the store connects, for messages: `HOST:PORT/DBNAME as USER` (no password).
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .inner
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let host = match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                };
                let ports = self.inner.get_ports();
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                format!("{host}:{port}")
            })
            .collect();
        format!(
            "{}/{} as {}",
            hosts.join(","),
            self.dbname().or(self.user()).unwrap_or("?"),
            self.user().unwrap_or("?")
        )
    }

    /// The rustls configuration for TLS connections: `sslrootcert`'s CAs or the web roots.
    pub(crate) fn rustls_config(&self) -> Result<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                use rustls::pki_types::pem::PemObject as _;
                let bytes = read_bounded(path).map_err(|e| {
                    config_error(format!(
                        "cannot read the sslrootcert file {}",
                        path.display()
                    ))
                    .with_source(e)
                })?;
                let mut n = 0usize;
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&bytes) {
                    let cert = cert.map_err(|e| {
                        config_error(format!(
                            "the sslrootcert file {} is not PEM certificates",
                            path.display()
                        ))
                        .with_source(PgError::new(
                            PgErrorKind::Config,
                            e.to_string(),
                            None,
                        ))
                    })?;
                    roots.add(cert).map_err(|e| {
                        config_error(format!(
                            "the sslrootcert file {} holds a certificate rustls refuses",
                            path.display()
                        ))
                        .with_source(e)
                    })?;
                    n += 1;
                }
                if n == 0 {
                    return Err(config_error(format!(
                        "the sslrootcert file {} holds no certificate",
                        path.display()
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("setting up TLS").with_source(e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(config)
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("server", &self.describe())
            .field(
                "password",
                &if self.has_password() {
                    "<redacted>"
                } else {
                    "<none>"
                },
            )
            .field("tls", &self.tls)
            .field("root_cert", &self.root_cert)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.inner.get_connect_timeout())
            .finish()
    }
}

fn read_bounded(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_ROOT_CERT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_ROOT_CERT_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_ROOT_CERT_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// `(before '?', after '?')` of a `postgres://` or `postgresql://` URL; `None` for another
/// form (libpq's `key=value`) or a URL without a query.
fn split_url_query(url: &str) -> Option<(&str, &str)> {
    let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
        return None;
    }
    url.split_once('?')
}

/// Decodes `%XX` escapes (and nothing else); `None` for a bad escape or non-UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn config_error(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

fn invalid(param: &str) -> Error {
    config_error(format!(
        "the PostgreSQL URL's {param} is not valid (bad %-escape?)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_url_with_tls_settings() {
        let c = PgConfig::from_url(
            "postgres://bot:s3cret-pw@db.example:6543/ilink?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&pool_max_size=3&application_name=x",
        )
        .unwrap();
        assert_eq!(c.tls(), TlsMode::Require);
        assert_eq!(
            c.root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(c.get_pool_size(), 3);
        assert_eq!(c.dbname(), Some("ilink"));
        assert_eq!(c.user(), Some("bot"));
        assert!(c.has_password());
        assert_eq!(c.inner.get_application_name(), Some("x"));
        assert_eq!(c.describe(), "db.example:6543/ilink as bot");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret-pw"), "{dbg}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
    }

    #[test]
    fn tls_modes() {
        let mode = |q: &str| {
            PgConfig::from_url(&format!("postgres://u@h/d{q}"))
                .unwrap()
                .tls()
        };
        assert_eq!(mode(""), TlsMode::Prefer);
        assert_eq!(mode("?sslmode=disable"), TlsMode::Disable);
        assert_eq!(mode("?sslmode=allow"), TlsMode::Prefer);
        assert_eq!(mode("?sslmode=prefer"), TlsMode::Prefer);
        assert_eq!(mode("?sslmode=require"), TlsMode::Require);
        assert_eq!(mode("?sslmode=verify-ca"), TlsMode::Require);
        assert_eq!(mode("?sslmode=verify-full"), TlsMode::Require);
        let e = PgConfig::from_url("postgres://u@h/d?sslmode=bogus").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        // The key=value form.
        let c = PgConfig::from_url("host=localhost user=u dbname=d sslmode=require").unwrap();
        assert_eq!(c.tls(), TlsMode::Require);
        assert_eq!(c.describe(), "localhost:5432/d as u");
    }

    #[test]
    fn defaults_and_errors() {
        let c = PgConfig::from_url("postgresql://u:pw@127.0.0.1/d").unwrap();
        assert_eq!(c.get_pool_size(), DEFAULT_POOL_SIZE);
        assert_eq!(
            c.inner.get_application_name(),
            Some(DEFAULT_APPLICATION_NAME)
        );
        assert_eq!(
            c.inner.get_connect_timeout(),
            Some(&DEFAULT_CONNECT_TIMEOUT)
        );
        let c = c.pool_size(0).connect_timeout(Duration::from_secs(2));
        assert_eq!(c.get_pool_size(), 1);
        for (url, what) in [
            ("postgres:///d", "no host"),
            ("postgres://u@h/d?pool_max_size=0", "pool_max_size"),
            ("postgres://u@h/d?pool_max_size=x", "pool_max_size"),
            ("postgres://u@h/d?sslrootcert=%zz", "sslrootcert"),
            ("postgres://u:pw@h/d?frobnicate=1", "not valid"),
            ("not a url at all", "not valid"),
        ] {
            let e = PgConfig::from_url(url).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{url}");
            assert!(e.to_string().contains(what), "{url}: {e}");
            assert!(!e.to_string().contains("pw"), "{url}: {e}");
        }
    }

    #[test]
    fn root_cert_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let c = PgConfig::from_url(&format!(
            "postgres://u@h/d?sslmode=require&sslrootcert={}",
            missing.display()
        ))
        .unwrap();
        let e = c.rustls_config().unwrap_err();
        assert!(e.to_string().contains("none.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, b"no certificates here\n").unwrap();
        let c = PgConfig::from_url(&format!(
            "postgres://u@h/d?sslmode=require&sslrootcert={}",
            empty.display()
        ))
        .unwrap();
        let e = c.rustls_config().unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        // Without sslrootcert: the web roots.
        PgConfig::from_url("postgres://u@h/d?sslmode=require")
            .unwrap()
            .rustls_config()
            .unwrap();
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2Ftmp%2Fa b").as_deref(), Some("/tmp/a b"));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
