//! QR login (docs/protocol.md §6).

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::time::Duration;

use ilink_proto::{
    CompatVersion, GetBotQrCodeRequest, GetBotQrCodeResponse, QrCodeStatusQuery,
    QrCodeStatusResponse, QrStatus, Secret, consts,
};
use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::store::Credentials;
use crate::transport::{QrCodeCall, Target, Transport};

/// A boxed future, as returned by [`LoginPresenter::verify_code`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A QR code to show to the user.
#[derive(Clone)]
#[non_exhaustive]
pub struct QrCode {
    /// The content to encode in the QR code (`qrcode_img_content`, a URL); also worth printing
    /// as a link.
    pub content: String,
    /// Which QR code of this login this is, from 1.
    pub number: u32,
    /// How many QR codes a login shows at most (3).
    pub max: u32,
}

impl fmt::Debug for QrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QrCode")
            .field("content", &self.content)
            .field("number", &self.number)
            .field("max", &self.max)
            .finish()
    }
}

/// Progress of a QR login, for a [`LoginPresenter`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginEvent {
    /// The code was scanned; waiting for the user to confirm on the phone.
    Scanned,
    /// The server moved polling to another host (`scaned_but_redirect`).
    Redirected {
        /// The new host.
        host: String,
    },
    /// The QR code expired; a new one follows if the limit allows.
    Expired,
    /// Too many wrong verify codes; a new QR code follows if the limit allows.
    VerifyCodeBlocked,
    /// The entered verify code was accepted.
    VerifyCodeAccepted,
    /// The login was confirmed for this bot account.
    Confirmed {
        /// The bot's id (`ilink_bot_id`).
        account_id: String,
    },
    /// This bot is already bound to this client (`binded_redirect`); nothing changes.
    AlreadyBound,
    /// A status poll failed (network error, HTTP error or timeout): the login server may have
    /// stopped answering. After [`MAX_STATUS_FAILURES`] in a row, or failures for
    /// [`STATUS_FAILURE_WINDOW`] (and at least 3), the login fails.
    ServerNotAnswering {
        /// Failed polls in a row so far.
        failures: u32,
        /// What failed, last.
        error: String,
    },
}

/// Status polls that may fail in a row (network error, HTTP error, timeout) before a login
/// gives up with [`ErrorKind::Login`]: the server stopped answering. A flaky network that
/// fails a few polls and recovers does not end the login.
pub const MAX_STATUS_FAILURES: u32 = 10;

/// How long status polls may keep failing (with at least 3 failures) before a login gives up,
/// when each failure is slow (a server that accepts connections but never answers: each poll
/// waits for its timeout, 35 s by default).
pub const STATUS_FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The longest verify code accepted, in digits.
const MAX_VERIFY_CODE_DIGITS: usize = 16;

/// A verify code as typed ("482 913", " 4829-13 ") to the digits the server expects
/// ("482913"): spaces and dashes removed. `None` when anything else is left, or nothing, or
/// more than 16 digits.
pub fn normalize_verify_code(typed: &str) -> Option<String> {
    let digits: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (!digits.is_empty()
        && digits.len() <= MAX_VERIFY_CODE_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit()))
    .then_some(digits)
}

/// Shows the QR login to a person. Implement it for a GUI; [`TerminalPresenter`] draws in a
/// terminal.
pub trait LoginPresenter: Send + Sync {
    /// Show a (new) QR code.
    fn show_qr(&self, qr: &QrCode);

    /// Progress of the login. The default ignores it.
    fn event(&self, event: &LoginEvent) {
        let _ = event;
    }

    /// The server asks for the digits shown in the phone's WeChat (`need_verifycode`);
    /// `wrong` is true when the previous code was rejected. `None` cancels the login.
    /// The default cancels.
    fn verify_code(&self, wrong: bool) -> BoxFuture<'_, Option<String>> {
        let _ = wrong;
        Box::pin(async { None })
    }
}

/// What a login ended with.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoginOutcome {
    /// A bot account was confirmed; its credentials are saved and it is ready to use.
    Confirmed(crate::Account),
    /// `binded_redirect`: the bot is already connected to this client; no new credentials.
    AlreadyBound,
    /// The login was confirmed but the credentials could not be saved in the store. They are
    /// here, and were written to `rescued_to` (mode 0600, the format of the file store's
    /// `credentials.json`) if that worked: nothing is lost, but the account is not open.
    Unsaved {
        /// The confirmed credentials.
        credentials: Credentials,
        /// Why the store refused them.
        error: crate::Error,
        /// Where a copy was written, if anywhere.
        rescued_to: Option<std::path::PathBuf>,
    },
}

/// Render `content` as a QR code with Unicode half blocks (two modules per character row), with
/// a quiet zone, for a terminal.
pub fn render_qr_unicode(content: &str) -> Result<String> {
    let code = qrcode::QrCode::new(content.as_bytes()).map_err(|e| {
        Error::new(ErrorKind::InvalidInput, "the QR content cannot be encoded").with_source(e)
    })?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// A presenter for terminals: draws the QR code with Unicode blocks on stderr with the link
/// under it, reports progress, and reads verify codes from stdin.
#[derive(Debug, Default, Clone)]
pub struct TerminalPresenter {
    _priv: (),
}

impl TerminalPresenter {
    /// A terminal presenter.
    pub fn new() -> Self {
        Self::default()
    }
}

impl LoginPresenter for TerminalPresenter {
    fn show_qr(&self, qr: &QrCode) {
        let mut err = std::io::stderr().lock();
        let art = render_qr_unicode(&qr.content).unwrap_or_default();
        let _ = writeln!(
            err,
            "Scan with WeChat to connect (QR code {}/{}):\n{art}\n{}\n",
            qr.number, qr.max, qr.content
        );
    }

    fn event(&self, event: &LoginEvent) {
        let text = match event {
            LoginEvent::Scanned => "Scanned; confirm on your phone.".to_owned(),
            LoginEvent::Redirected { host } => format!("Redirected to {host}."),
            LoginEvent::Expired => "The QR code expired.".to_owned(),
            LoginEvent::VerifyCodeBlocked => "Too many wrong codes.".to_owned(),
            LoginEvent::VerifyCodeAccepted => "Code accepted.".to_owned(),
            LoginEvent::Confirmed { account_id } => {
                format!("Confirmed on the phone as {account_id}; saving the credentials.")
            }
            LoginEvent::ServerNotAnswering { failures, error } => {
                format!(
                    "The login server did not answer properly ({failures} time(s) in a row): {error}"
                )
            }
            LoginEvent::AlreadyBound => "This bot is already connected here.".to_owned(),
        };
        let _ = writeln!(std::io::stderr(), "{text}");
    }

    fn verify_code(&self, wrong: bool) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            let prompt = if wrong {
                "Wrong code. Enter the number shown in WeChat: "
            } else {
                "Enter the number shown in WeChat: "
            };
            let _ = write!(std::io::stderr(), "{prompt}");
            let _ = std::io::stderr().flush();
            tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                match std::io::stdin().read_line(&mut line) {
                    Ok(n) if n > 0 => Some(line.trim().to_owned()),
                    _ => None,
                }
            })
            .await
            .ok()
            .flatten()
        })
    }
}

/// The raw result of the QR flow.
pub(crate) enum LoginResult {
    Confirmed(Credentials),
    AlreadyBound,
}

async fn fetch_qr(
    transport: &Transport,
    local_tokens: &[Secret],
    version: &CompatVersion,
) -> Result<(String, String)> {
    let cfg = transport.config();
    let body = version
        .posts_qrcode_request()
        .then(|| GetBotQrCodeRequest::new(local_tokens.iter().cloned()));
    let to = Target {
        base: &cfg.qr_base_url,
        token: None,
    };
    let resp: GetBotQrCodeResponse = transport.call(to, &QrCodeCall(body)).await?;
    let qrcode = resp
        .qrcode
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::Login, "get_bot_qrcode answered without a qrcode"))?;
    let content = resp.qrcode_img_content.unwrap_or_default();
    Ok((qrcode, content))
}

/// Run the QR login state machine (§6.2).
pub(crate) async fn run_login(
    transport: &Transport,
    presenter: &dyn LoginPresenter,
    local_tokens: &[Secret],
) -> Result<LoginResult> {
    let cfg = transport.config();
    let version = cfg.compat_version;
    let deadline = Instant::now() + cfg.timeouts.qr_login;
    let max = consts::MAX_QR_REFRESH_COUNT;
    let mut number = 1u32;
    let (mut qrcode, content) = fetch_qr(transport, local_tokens, &version).await?;
    presenter.show_qr(&QrCode {
        content,
        number,
        max,
    });
    let mut poll_base = cfg.qr_base_url.clone();
    let mut verify: Option<String> = None;
    let mut failures = 0u32;
    let mut failing_since = Instant::now();

    loop {
        if Instant::now() >= deadline {
            return Err(Error::new(
                ErrorKind::Login,
                format!(
                    "the QR login timed out after {} s",
                    cfg.timeouts.qr_login.as_secs()
                ),
            ));
        }
        let query = QrCodeStatusQuery {
            qrcode: qrcode.clone(),
            verify_code: verify.clone(),
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timeout = cfg
            .timeouts
            .qr_status
            .min(remaining)
            .max(Duration::from_millis(1));
        // A timeout or any transport / HTTP error counts as `wait` (§4).
        // ... but a server that stops answering is reported, and after a few polls in a row
        // ends the login.
        let to = Target {
            base: &poll_base,
            token: None,
        };
        let status: QrCodeStatusResponse = match transport
            .call_with_timeout(to, &query, timeout)
            .await
        {
            Ok(r) => {
                failures = 0;
                r
            }
            Err(e) => {
                if failures == 0 {
                    failing_since = Instant::now();
                }
                failures += 1;
                tracing::debug!(error = %e, failures, "get_qrcode_status failed; treated as wait");
                presenter.event(&LoginEvent::ServerNotAnswering {
                    failures,
                    error: e.to_string(),
                });
                if failures >= MAX_STATUS_FAILURES
                    || (failures >= 3 && failing_since.elapsed() >= STATUS_FAILURE_WINDOW)
                {
                    return Err(Error::new(
                        ErrorKind::Login,
                        format!(
                            "the login server {poll_base} stopped answering \
                                 ({failures} status polls failed in a row)"
                        ),
                    )
                    .with_source(e));
                }
                QrCodeStatusResponse::default()
            }
        };
        let mut delay = cfg.delays.qr_poll;
        let mut refresh = false;
        match &status.status {
            QrStatus::Wait => {}
            QrStatus::Scaned => {
                if verify.take().is_some() {
                    presenter.event(&LoginEvent::VerifyCodeAccepted);
                }
                presenter.event(&LoginEvent::Scanned);
            }
            QrStatus::NeedVerifyCode => {
                let mut wrong = verify.is_some();
                // Normalised before it is sent; what is not a code is asked for again.
                let code = loop {
                    match presenter.verify_code(wrong).await {
                        None => {
                            return Err(Error::new(
                                ErrorKind::Login,
                                "the QR login was cancelled (no verify code entered)",
                            ));
                        }
                        Some(typed) if typed.trim().is_empty() => {
                            return Err(Error::new(
                                ErrorKind::Login,
                                "the QR login was cancelled (no verify code entered)",
                            ));
                        }
                        Some(typed) => match normalize_verify_code(&typed) {
                            Some(code) => break code,
                            None => {
                                tracing::debug!("the verify code is not digits; asking again");
                                wrong = true;
                            }
                        },
                    }
                };
                verify = Some(code);
                delay = Duration::ZERO;
            }
            QrStatus::VerifyCodeBlocked => {
                verify = None;
                presenter.event(&LoginEvent::VerifyCodeBlocked);
                refresh = true;
            }
            QrStatus::Expired => {
                presenter.event(&LoginEvent::Expired);
                refresh = true;
            }
            QrStatus::ScanedButRedirect => {
                if let Some(host) = status.redirect_host.as_deref().filter(|h| !h.is_empty()) {
                    poll_base = format!("{}://{host}", cfg.redirect_scheme);
                    presenter.event(&LoginEvent::Redirected {
                        host: host.to_owned(),
                    });
                }
            }
            QrStatus::BindedRedirect => {
                presenter.event(&LoginEvent::AlreadyBound);
                return Ok(LoginResult::AlreadyBound);
            }
            QrStatus::Confirmed => {
                let account_id = status
                    .ilink_bot_id
                    .clone()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Login,
                            "the login was confirmed without an ilink_bot_id",
                        )
                    })?;
                let token = status
                    .bot_token
                    .clone()
                    .filter(|t| !t.expose().trim().is_empty())
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Login,
                            "the login was confirmed without a bot_token",
                        )
                    })?;
                presenter.event(&LoginEvent::Confirmed {
                    account_id: account_id.clone(),
                });
                return Ok(LoginResult::Confirmed(Credentials {
                    account_id,
                    token: Secret::new(token.expose().trim()),
                    base_url: status.baseurl.clone().filter(|b| !b.trim().is_empty()),
                    user_id: status.ilink_user_id.clone().filter(|u| !u.is_empty()),
                    saved_at_ms: crate::util::now_ms(),
                }));
            }
            _ => {
                tracing::debug!(
                    status = status.status.as_str(),
                    "unknown QR status; waiting"
                );
            }
        }
        if refresh {
            number += 1;
            if number > max {
                return Err(Error::new(
                    ErrorKind::Login,
                    format!("no QR code was confirmed after {max} codes"),
                ));
            }
            let (q, content) = fetch_qr(transport, local_tokens, &version).await?;
            qrcode = q;
            poll_base = cfg.qr_base_url.clone();
            presenter.show_qr(&QrCode {
                content,
                number,
                max,
            });
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_codes_are_normalised() {
        assert_eq!(normalize_verify_code("482 913").as_deref(), Some("482913"));
        assert_eq!(
            normalize_verify_code(" 48-29 13\n").as_deref(),
            Some("482913")
        );
        assert_eq!(normalize_verify_code("48a913"), None);
        assert_eq!(normalize_verify_code("   "), None);
        assert_eq!(normalize_verify_code("１２３"), None);
        assert_eq!(normalize_verify_code(&"1".repeat(17)), None);
    }

    #[test]
    fn renders_a_real_qr_code() {
        let art =
            render_qr_unicode("https://liteapp.weixin.qq.com/q/xyz?qrcode=K&bot_type=3").unwrap();
        let lines: Vec<&str> = art.lines().collect();
        assert!(lines.len() > 10);
        assert!(art.contains('█') || art.contains('▀') || art.contains('▄'));
        // Every row has the same width.
        let w = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == w));
    }
}
