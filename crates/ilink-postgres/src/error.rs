//! Errors: every failure is an [`ilink_client::Error`] (kind [`ErrorKind::Store`], or
//! [`ErrorKind::InvalidInput`] for a bad URL, or `LeaseLost` for a stale fence) whose source
//! is a [`PgError`] saying what kind of PostgreSQL failure it was.

use std::error::Error as StdError;
use std::fmt;

use ilink_client::{BoxError, Error, ErrorKind};
use tokio_postgres::error::SqlState;

/// What kind of PostgreSQL failure a [`PgError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PgErrorKind {
    /// The URL or TLS settings are invalid.
    Config,
    /// The server could not be reached: connection refused, unknown host, timed out.
    Connect,
    /// The TLS handshake failed (the server refused TLS under `sslmode=require`, or its
    /// certificate did not verify).
    Tls,
    /// The server refused the login: wrong password, unknown role, no `pg_hba.conf` entry.
    Auth,
    /// The database named in the URL does not exist.
    NoDatabase,
    /// The role lacks a privilege (to create the tables, or to use them).
    Permission,
    /// The database's ilink schema is newer than this build knows: upgrade ilink.
    SchemaTooNew,
    /// Creating or upgrading the schema failed.
    Migration,
    /// The connection was lost (the server restarted or closed it).
    ConnectionLost,
    /// No connection became free in time (the pool is exhausted).
    PoolTimeout,
    /// A statement failed for another reason (the server's message is in the source).
    Query,
}

/// A PostgreSQL failure: its kind, a message for people, and the driver's error as source.
pub struct PgError {
    kind: PgErrorKind,
    message: String,
    source: Option<BoxError>,
}

impl PgError {
    pub(crate) fn new(
        kind: PgErrorKind,
        message: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> PgErrorKind {
        self.kind
    }

    /// The SQLSTATE code the server sent (`"28P01"`...), if it sent one.
    pub fn sql_state(&self) -> Option<&str> {
        self.source
            .as_ref()
            .and_then(|s| s.downcast_ref::<tokio_postgres::Error>())
            .and_then(|e| e.code())
            .map(SqlState::code)
    }
}

impl fmt::Debug for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for PgError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// The [`PgErrorKind`] of an error from this crate, if it came from PostgreSQL.
pub fn pg_error_kind(error: &Error) -> Option<PgErrorKind> {
    let mut cur: Option<&(dyn StdError + 'static)> = StdError::source(error);
    while let Some(e) = cur {
        if let Some(pg) = e.downcast_ref::<PgError>() {
            return Some(pg.kind);
        }
        cur = e.source();
    }
    None
}

/// Classifies a driver error and says what to do about it.
pub(crate) fn classify(e: &tokio_postgres::Error) -> (PgErrorKind, &'static str) {
    if let Some(code) = e.code() {
        let kind = match code {
            c if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                PgErrorKind::Auth
            }
            c if *c == SqlState::INVALID_CATALOG_NAME => PgErrorKind::NoDatabase,
            c if *c == SqlState::INSUFFICIENT_PRIVILEGE => PgErrorKind::Permission,
            c if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW =>
            {
                PgErrorKind::ConnectionLost
            }
            c if *c == SqlState::TOO_MANY_CONNECTIONS => PgErrorKind::Connect,
            _ => PgErrorKind::Query,
        };
        return (kind, advice(kind));
    }
    if e.is_closed() {
        return (
            PgErrorKind::ConnectionLost,
            advice(PgErrorKind::ConnectionLost),
        );
    }
    // No SQLSTATE: an I/O or TLS failure, or a driver-side failure.
    let mut cur: Option<&(dyn StdError + 'static)> = StdError::source(e);
    while let Some(s) = cur {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let kind = match io.kind() {
                std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::NotFound
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::HostUnreachable
                | std::io::ErrorKind::NetworkUnreachable => PgErrorKind::Connect,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => PgErrorKind::ConnectionLost,
                _ if io
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
                {
                    PgErrorKind::Tls
                }
                _ => PgErrorKind::Connect,
            };
            return (kind, advice(kind));
        }
        if s.downcast_ref::<rustls::Error>().is_some() {
            return (PgErrorKind::Tls, advice(PgErrorKind::Tls));
        }
        cur = s.source();
    }
    let text = e.to_string();
    let kind = if text.contains("TLS") || text.contains("SSL") {
        PgErrorKind::Tls
    } else if text.contains("timed out") || text.contains("connect") {
        PgErrorKind::Connect
    } else if text.contains("password") || text.contains("authentication") {
        PgErrorKind::Auth
    } else {
        PgErrorKind::Query
    };
    (kind, advice(kind))
}

fn advice(kind: PgErrorKind) -> &'static str {
    match kind {
        PgErrorKind::Config => "check the PostgreSQL URL",
        PgErrorKind::Connect => {
            "cannot reach the server: is PostgreSQL running and listening at that host and port?"
        }
        PgErrorKind::Tls => {
            "the TLS handshake failed: check sslmode, and sslrootcert for a private CA"
        }
        PgErrorKind::Auth => {
            "the server refused the login: check the user and password (or $PGPASSWORD) and pg_hba.conf"
        }
        PgErrorKind::NoDatabase => "the database does not exist: create it (createdb NAME)",
        PgErrorKind::Permission => {
            "permission denied: the role needs CREATE on the schema (once, for the tables) and \
             SELECT/INSERT/UPDATE/DELETE on the ilink_* tables"
        }
        PgErrorKind::SchemaTooNew => "the database was set up by a newer ilink: upgrade ilink",
        PgErrorKind::Migration => "creating or upgrading the ilink tables failed",
        PgErrorKind::ConnectionLost => {
            "the connection to the server was lost; the next call opens a new one"
        }
        PgErrorKind::PoolTimeout => {
            "no database connection became free in time: raise pool_max_size or check the server"
        }
        PgErrorKind::Query => "the statement failed",
    }
}

/// `what` failed because of the driver error `e`: a typed store error.
pub(crate) fn from_pg(what: &str, e: tokio_postgres::Error) -> Error {
    let (kind, advice) = classify(&e);
    // The server's own words (for a statement error) are in the source's Display.
    Error::new(ErrorKind::Store, what.to_owned()).with_source(PgError::new(
        kind,
        advice,
        Some(Box::new(e)),
    ))
}

/// `what` failed because of a pool error.
pub(crate) fn from_pool(what: &str, e: deadpool_postgres::PoolError) -> Error {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => from_pg(what, e),
        PoolError::Timeout(_) => {
            Error::new(ErrorKind::Store, what.to_owned()).with_source(PgError::new(
                PgErrorKind::PoolTimeout,
                advice(PgErrorKind::PoolTimeout),
                None,
            ))
        }
        other => Error::new(ErrorKind::Store, what.to_owned()).with_source(PgError::new(
            PgErrorKind::ConnectionLost,
            format!("the connection pool failed: {other}"),
            None,
        )),
    }
}

/// An error of `kind` with our own message (no driver error underneath).
pub(crate) fn store_error(
    what: impl Into<String>,
    kind: PgErrorKind,
    why: impl Into<String>,
) -> Error {
    Error::new(ErrorKind::Store, what).with_source(PgError::new(kind, why, None))
}

/// True when `e` says the connection it ran on is gone (worth one retry on a new one).
pub(crate) fn is_connection_lost(e: &tokio_postgres::Error) -> bool {
    classify(e).0 == PgErrorKind::ConnectionLost
}
