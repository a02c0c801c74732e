//! Errors of the command line and the exit codes they map to.

use std::fmt;

use ilink_client::{ErrorKind, SendError, SendErrorKind};

/// An error and its causes, outermost first, joined by `": "`. Every error of the
/// workspace prints only its own layer (the cause is its `source()`), so the chain states
/// each fact once.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// The documented exit codes of `ilink`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: the command failed (network, I/O, bad data, a demo check).
    Failure = 1,
    /// 2: the command line was wrong (clap uses 2 as well).
    Usage = 2,
    /// 3: a login is needed: no stored account, the token is stale or expired, or the QR
    /// login failed or was cancelled.
    Auth = 3,
    /// 4: the message was not delivered: throttled (`ret:-2`), no context token for the user
    /// (they must write to the bot first), or refused by the server.
    NotDelivered = 4,
    /// 5: another process consumes this account's messages (`ilink echo`, `ilink tail` or a
    /// bot hold its lock).
    Busy = 5,
    /// 6: part of a text waits in the durable outbound queue (the user's reply window allows
    /// no more now); it is sent when the user writes again.
    Queued = 6,
}

impl Exit {
    /// The words an error with this exit code starts with (as in the help's table).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Failure => "error",
            Self::Usage => "usage error",
            Self::Auth => "login needed",
            Self::NotDelivered => "not delivered",
            Self::Busy => "account busy",
            Self::Queued => "queued",
        }
    }
}

/// An error that ends the command: what happened, what to do, and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub exit: Exit,
    /// What happened.
    pub message: String,
    /// What to do about it, if there is more to say than the message.
    pub hint: Option<String>,
}

impl CliError {
    /// A new error.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            hint: None,
        }
    }

    /// A failure (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(Exit::Failure, message)
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// Adds what to do.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Wraps any error with a short context.
    pub fn io(context: &str, e: impl fmt::Display) -> Self {
        Self::failure(format!("{context}: {e}"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl From<ilink_client::Error> for CliError {
    fn from(e: ilink_client::Error) -> Self {
        let exit = match e.kind() {
            ErrorKind::NotLoggedIn | ErrorKind::SessionExpired | ErrorKind::Login => Exit::Auth,
            ErrorKind::InvalidInput => Exit::Usage,
            ErrorKind::AccountBusy => Exit::Busy,
            _ => Exit::Failure,
        };
        let err = Self::new(exit, chain(&e));
        match e.kind() {
            ErrorKind::NotLoggedIn | ErrorKind::SessionExpired => {
                err.hint("run `ilink login` (with the same --state-dir and --base-url)")
            }
            ErrorKind::AccountBusy => err.hint(
                "`ilink echo`, `ilink tail` and bots consume an account's messages, one at a \
                 time: stop the other one first (`ilink send`, `doctor` and `download` work \
                 meanwhile)",
            ),
            _ => err.hint(e.hint()),
        }
    }
}

impl From<SendError> for CliError {
    fn from(e: SendError) -> Self {
        let (exit, hint) = match e.kind() {
            SendErrorKind::StaleToken | SendErrorKind::SessionExpired => (
                Exit::Auth,
                Some("the session expired: run `ilink login` again"),
            ),
            SendErrorKind::NoContextToken => (
                Exit::NotDelivered,
                Some(
                    "the user must write to the bot first; run `ilink tail` or `ilink echo` \
                     once so the bot sees their message and stores a context token",
                ),
            ),
            SendErrorKind::Throttled(_) => (
                Exit::NotDelivered,
                Some(
                    "the server refused the message (code -2): too many replies since the \
                     user's last message, more than 24 h since it, or a burst; wait for the \
                     user to write again",
                ),
            ),
            SendErrorKind::BadTarget | SendErrorKind::Rejected => (Exit::NotDelivered, None),
            SendErrorKind::BudgetExceeded => (
                Exit::NotDelivered,
                Some(
                    "the user's reply window allows fewer messages than the text needs; \
                     drop --all-or-nothing to queue the rest until the user writes",
                ),
            ),
            SendErrorKind::QueueFull => (
                Exit::NotDelivered,
                Some("see `ilink queue show --to USER`; `ilink queue clear --to USER` empties it"),
            ),
            SendErrorKind::Invalid => (Exit::Usage, None),
            _ => (Exit::Failure, None),
        };
        // The message names the server's code (`ret` or `errcode`) and errmsg; causes follow.
        let err = Self::new(exit, chain(&e));
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}

/// The result type of commands.
pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_carries_the_hint() {
        let e = CliError::failure("boom").hint("do this");
        assert_eq!(e.to_string(), "boom\n  hint: do this");
        assert_eq!(e.exit as i32, 1);
    }

    #[test]
    fn the_chain_says_each_layer_once() {
        let e = ilink_client::Error::new(ErrorKind::Store, "saving the cursor")
            .with_source(std::io::Error::other("disk full"));
        assert_eq!(chain(&e), "saving the cursor: disk full");
        let cli = CliError::from(e);
        assert_eq!(cli.message, "saving the cursor: disk full");
        assert!(cli.hint.is_some());
    }

    #[test]
    fn exit_codes_are_stable() {
        assert_eq!(Exit::Failure as i32, 1);
        assert_eq!(Exit::Usage as i32, 2);
        assert_eq!(Exit::Auth as i32, 3);
        assert_eq!(Exit::NotDelivered as i32, 4);
        assert_eq!(Exit::Busy as i32, 5);
        assert_eq!(Exit::Queued as i32, 6);
    }
}
